/* bench/bench_writes.c: the write path, measured beside what the storage alone does in the same run.
 *
 * Three modes (bench/bench_writes.py runs them all against moto S3 and a local folder, and writes
 * bench/results/writes.md):
 *
 *   ingest      PutVectors throughput: W writer threads (each with its own storage handle and log writer)
 *               append batches of B GloVe vectors (one log object each) to one index for a number of
 *               rounds; vectors/s, storage requests and slot conflicts per batch. The limit beside it:
 *               the same threads PUT the same encoded objects to distinct keys with no condition (what
 *               the storage accepts at all), and the ratio ours / that.
 *   visibility  time from acknowledgement to visibility: a writer appends one vector; a reader that has
 *               the index open refreshes its tail until the key is there; beside it, the latency of one
 *               GET of a missing object (what each refresh costs when nothing is new).
 *   tail        query latency as the unindexed tail grows, on a local folder, warm: an index built from
 *               the first --base vectors, then tails of the next 0, 10K, 100K vectors written through the
 *               log, then everything compacted; single-thread ivf_index_search at the default probe count
 *               on the same queries, wall and thread-CPU ms, the tail's share of the time, how many tail
 *               vectors the int8 bound ruled out, recall@10 against the exact ground truth (full set)
 *               and the tail's own recall (of the true neighbours that live in the tail, the fraction
 *               returned: exact search says 1.0); and the compaction's time. Each time is the median
 *               over --passes passes of the queries (after one warming pass).
 *
 * usage: bench_writes ingest --storage LOC --input F.fvecs [--writers 1,2,4] [--rounds N] [--batch B]
 *        bench_writes visibility --storage LOC --input F.fvecs [--samples N]
 *        bench_writes tail --dir DIR --input F.fvecs --queries Q.fvecs --truth GT.ivecs [--base N]
 *                          [--tails 0,10000,100000] [--threads T] [--passes P]
 * LOC: s3://bucket/prefix (AWS_* variables as for the CLI) or a folder. Output: Markdown tables on stdout.
 * Threads: ingest uses one thread per writer; the tail queries run on one thread, no BLAS; the build and
 * the compaction use --threads (default: the CPUs). */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/storage.h"
#include "engine/build.h"
#include "engine/compact.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"
#include "engine/tail.h"
#include "engine/wal.h"
#include "s3/s3_storage.h"

static const char HELP[] =
    "usage: bench_writes ingest --storage LOC --input F.fvecs [--writers 1,2,4] [--rounds N] [--batch B]\n"
    "       bench_writes visibility --storage LOC --input F.fvecs [--samples N]\n"
    "       bench_writes tail --dir DIR --input F.fvecs --queries Q.fvecs --truth GT.ivecs [--base N]\n"
    "                         [--tails 0,10000,100000] [--threads T] [--passes P]\n";

static const char *env_lookup(const char *n) { return getenv(n); }

static uint64_t cpu_ns(void) { return s3v_thread_cpu_ns(); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0) i--;
    if (i >= n) i = n - 1;
    return n ? v[i] : 0;
}

static int die(const char *what, s3v_status st)
{
    fprintf(stderr, "bench_writes: %s: %s\n", what, s3v_errmsg(st));
    return 1;
}

/* ---- ingest ---- */

typedef struct writer_job {
    const char *loc;
    const char *prefix;
    const float *vecs;
    size_t nvec, dim;
    int id, rounds, batch;
    int raw; /* the limit: plain PUTs of the same bytes */
    uint64_t requests, conflicts, vectors, bytes;
    uint64_t waits, noops, reserved, ack_ns_sum;
    s3v_status st;
    char err[256];
} writer_job;

static void *writer_main(void *arg)
{
    writer_job *j = arg;
    s3v_storage *st = NULL;
    wal_writer *w = NULL;
    wal_batch b;
    wal_batch_init(&b, (uint32_t)j->dim);
    s3v_buf obj;
    s3v_buf_init(&obj, WAL_MAX_OBJECT_SIZE);
    j->st = s3_storage_open_any(j->loc, 1, env_lookup, &st);
    if (j->st == S3V_OK && !j->raw) j->st = wal_writer_new(st, j->prefix, &w);
    for (int r = 0; j->st == S3V_OK && r < j->rounds; r++) {
        wal_batch_reset(&b);
        for (int i = 0; j->st == S3V_OK && i < j->batch; i++) {
            size_t row = ((size_t)r * j->batch + (size_t)i + (size_t)j->id * 7919) % j->nvec;
            char key[48];
            int kl = snprintf(key, sizeof key, "w%d-r%d-%d", j->id, r, i);
            j->st = wal_batch_put(&b, (const uint8_t *)key, (size_t)kl, j->vecs + row * j->dim, NULL, 0);
        }
        if (j->st != S3V_OK) break;
        if (j->raw) {
            char key[256];
            s3v_buf_reset(&obj);
            j->st = wal_object_encode(&b, 1, (uint64_t)r, &obj);
            snprintf(key, sizeof key, "%s/raw/w%d-%d", j->prefix, j->id, r);
            s3v_put_cond cond = {S3V_PUT_ALWAYS, NULL};
            if (j->st == S3V_OK)
                j->st = s3v_storage_put(st, key, obj.ptr, obj.len, &cond, s3v_deadline_in_ms(60000), NULL);
            j->requests++;
            j->bytes += obj.len;
        } else {
            wal_append_info info;
            uint64_t t = s3v_now_ns();
            j->st = wal_writer_append(w, &b, s3v_deadline_in_ms(60000), &info);
            j->ack_ns_sum += s3v_now_ns() - t;
            j->requests += info.requests;
            j->conflicts += info.conflicts;
            j->waits += info.waits;
            j->noops += info.filled + info.broken;
            j->reserved += info.reserved;
            j->bytes += b.body.len + WAL_HEADER_SIZE;
        }
        if (j->st == S3V_OK) j->vectors += (uint64_t)j->batch;
    }
    if (j->st != S3V_OK) snprintf(j->err, sizeof j->err, "%s", s3v_errmsg(j->st));
    wal_batch_free(&b);
    s3v_buf_free(&obj);
    wal_writer_free(w);
    s3v_storage_close(st);
    return NULL;
}

typedef struct run_result {
    double seconds, vps, req_per_batch, conflicts_per_batch, mb_per_s;
    double waits_per_batch, noops_per_batch, reserved_share, ack_ms;
    int ok;
} run_result;

static run_result run_writers(const char *loc, const char *prefix, const float *vecs, size_t n, size_t dim,
                              int writers, int rounds, int batch, int raw)
{
    writer_job jobs[64];
    pthread_t th[64];
    run_result rr = {0};
    uint64_t t0 = s3v_now_ns();
    for (int i = 0; i < writers; i++) {
        jobs[i] = (writer_job){loc, prefix, vecs, n, dim, i, rounds, batch,  raw, 0,
                               0,   0,      0,    0, 0,   0, 0,      S3V_OK, ""};
        pthread_create(&th[i], NULL, writer_main, &jobs[i]);
    }
    uint64_t vectors = 0, requests = 0, conflicts = 0, bytes = 0, waits = 0, noops = 0, reserved = 0, ack = 0;
    rr.ok = 1;
    for (int i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].st != S3V_OK) {
            fprintf(stderr, "bench_writes: writer %d: %s\n", i, jobs[i].err);
            rr.ok = 0;
        }
        vectors += jobs[i].vectors;
        requests += jobs[i].requests;
        conflicts += jobs[i].conflicts;
        bytes += jobs[i].bytes;
        waits += jobs[i].waits;
        noops += jobs[i].noops;
        reserved += jobs[i].reserved;
        ack += jobs[i].ack_ns_sum;
    }
    rr.seconds = (double)(s3v_now_ns() - t0) / 1e9;
    rr.vps = (double)vectors / rr.seconds;
    double batches = (double)vectors / batch;
    rr.req_per_batch = batches ? (double)requests / batches : 0;
    rr.conflicts_per_batch = batches ? (double)conflicts / batches : 0;
    rr.waits_per_batch = batches ? (double)waits / batches : 0;
    rr.noops_per_batch = batches ? (double)noops / batches : 0;
    rr.reserved_share = batches ? (double)reserved / batches : 0;
    rr.ack_ms = batches ? (double)ack / batches / 1e6 : 0;
    rr.mb_per_s = (double)bytes / rr.seconds / 1e6;
    return rr;
}

static int mode_ingest(const char *loc, const float *vecs, size_t n, size_t dim, const char *writers_s,
                       int rounds, int batch)
{
    printf("| writers | vectors/s (ours) | MB/s | storage requests per batch | slot conflicts per batch | "
           "batches with a reservation | listings while waiting per batch | no-ops per batch | append ms "
           "(mean) | "
           "plain PUTs: vectors/s | MB/s | ours / plain PUTs |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    char list[256];
    snprintf(list, sizeof list, "%s", writers_s);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int w = atoi(tok);
        if (w < 1 || w > 64) continue;
        char prefix[64];
        snprintf(prefix, sizeof prefix, "ingest-%d-%llu", w, (unsigned long long)(s3v_wall_ms() % 1000000));
        s3v_storage *st;
        s3v_status s = s3_storage_open_any(loc, 1, env_lookup, &st);
        if (s == S3V_OK)
            s = ivf_create_empty(st, prefix, (uint32_t)dim, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0,
                                 s3v_deadline_in_ms(60000), NULL);
        s3v_storage_close(st);
        if (s != S3V_OK) return die("create-index", s);
        run_result ours = run_writers(loc, prefix, vecs, n, dim, w, rounds, batch, 0);
        run_result raw = run_writers(loc, prefix, vecs, n, dim, w, rounds, batch, 1);
        if (!ours.ok || !raw.ok) return 1;
        printf("| %d | %.0f | %.1f | %.2f | %.2f | %.0f%% | %.2f | %.2f | %.1f | %.0f | %.1f | %.2f |\n", w,
               ours.vps, ours.mb_per_s, ours.req_per_batch, ours.conflicts_per_batch,
               100 * ours.reserved_share, ours.waits_per_batch, ours.noops_per_batch, ours.ack_ms, raw.vps,
               raw.mb_per_s, ours.vps / raw.vps);
        fflush(stdout);
    }
    return 0;
}

/* ---- visibility ---- */

static int mode_visibility(const char *loc, const float *vecs, size_t dim, int samples)
{
    s3v_storage *ws, *rs;
    if (s3_storage_open_any(loc, 1, env_lookup, &ws) != S3V_OK) return 1;
    if (s3_storage_open_any(loc, 1, env_lookup, &rs) != S3V_OK) return 1;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "visibility-%llu", (unsigned long long)(s3v_wall_ms() % 1000000));
    s3v_status s = ivf_create_empty(ws, prefix, (uint32_t)dim, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0,
                                    s3v_deadline_in_ms(60000), NULL);
    if (s != S3V_OK) return die("create-index", s);
    wal_writer *w;
    ivf_index *ix;
    cluster_cache *cache;
    if (wal_writer_new(ws, prefix, &w) != S3V_OK || cluster_cache_new(1 << 24, &cache) != S3V_OK) return 1;
    s = ivf_index_open(rs, prefix, cache, s3v_deadline_in_ms(60000), &ix);
    if (s != S3V_OK) return die("open", s);
    double *vis = calloc((size_t)samples, sizeof *vis), *ack = calloc((size_t)samples, sizeof *ack);
    double *miss = calloc((size_t)samples, sizeof *miss);
    int refreshes = 0;
    wal_batch b;
    wal_batch_init(&b, (uint32_t)dim);
    for (int i = 0; i < samples; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "v%d", i);
        wal_batch_reset(&b);
        if (wal_batch_put(&b, (const uint8_t *)key, (size_t)kl, vecs + (size_t)i * dim, NULL, 0) != S3V_OK)
            return 1;
        uint64_t t0 = s3v_now_ns();
        s = wal_writer_append(w, &b, s3v_deadline_in_ms(60000), NULL);
        uint64_t t_ack = s3v_now_ns();
        if (s != S3V_OK) return die("append", s);
        ack[i] = (double)(t_ack - t0) / 1e6;
        for (;;) {
            int reopen = 0;
            s = ivf_index_refresh(ix, s3v_deadline_in_ms(60000), &reopen, NULL);
            refreshes++;
            if (s != S3V_OK) return die("refresh", s);
            if (ivf_tail_lookup(ivf_index_tail(ix), (const uint8_t *)key, (size_t)kl,
                                ivf_key_hash((const uint8_t *)key, (size_t)kl), NULL) == IVF_TAIL_PUT)
                break;
        }
        vis[i] = (double)(s3v_now_ns() - t_ack) / 1e6;
        /* the cost of one refresh when nothing is new: a GET of a missing object */
        t0 = s3v_now_ns();
        int reopen = 0;
        s = ivf_index_refresh(ix, s3v_deadline_in_ms(60000), &reopen, NULL);
        miss[i] = (double)(s3v_now_ns() - t0) / 1e6;
        if (s != S3V_OK) return die("refresh", s);
    }
    printf("| samples | acknowledgement ms p50 / p99 | acknowledgement to visible ms p50 / p99 | refreshes "
           "per write | "
           "one refresh with nothing new (GET of a missing object) ms p50 / p99 "
           "|\n|---:|---:|---:|---:|---:|\n");
    double a50 = pct(ack, (size_t)samples, 50), a99 = pct(ack, (size_t)samples, 99);
    double v50 = pct(vis, (size_t)samples, 50), v99 = pct(vis, (size_t)samples, 99);
    double m50 = pct(miss, (size_t)samples, 50), m99 = pct(miss, (size_t)samples, 99);
    printf("| %d | %.2f / %.2f | %.2f / %.2f | %.2f | %.2f / %.2f |\n", samples, a50, a99, v50, v99,
           (double)refreshes / samples, m50, m99);
    wal_batch_free(&b);
    free(vis);
    free(ack);
    free(miss);
    ivf_index_close(ix);
    cluster_cache_free(cache);
    wal_writer_free(w);
    s3v_storage_close(ws);
    s3v_storage_close(rs);
    return 0;
}

/* ---- tail ---- */

typedef struct qstats {
    double wall_p50, wall_mean, cpu_mean, tail_mean, recall, tail_recall, scored_frac;
    double tail_vectors;
} qstats;

static double median_of(double *v, int n) { return pct(v, (size_t)n, 50); }

/* Opens the index, runs every query once to warm the cache, then `passes` timed passes over the queries;
 * each figure is the median over the passes of that pass's figure (recall and pruning do not vary). */
static int measure(s3v_storage *st, const float *qs, size_t nq, size_t dim, const int32_t *gt, size_t gtk,
                   uint64_t tail_first, uint64_t tail_end, int passes, qstats *out)
{
    cluster_cache *cache;
    ivf_index *ix;
    if (cluster_cache_new((size_t)4 << 30, &cache) != S3V_OK) return 1;
    s3v_status s = ivf_index_open(st, "", cache, S3V_NO_DEADLINE, &ix);
    if (s != S3V_OK) return die("open", s);
    ivf_query q = {.dim = (uint32_t)dim, .topk = 10, .deadline_ns = S3V_NO_DEADLINE};
    for (size_t i = 0; i < nq; i++) { /* warm: every probed cluster in the cache */
        ivf_result r;
        q.vector = qs + i * dim;
        if (ivf_index_search(ix, &q, &r) != S3V_OK) return 1;
        ivf_result_free(&r);
    }
    double *wall = calloc(nq, sizeof *wall);
    double p50[16], wmean[16], cmean[16], tmean[16];
    if (passes > 16) passes = 16;
    double hits = 0, tail_truth = 0, tail_hits = 0, scored = 0, tv = 0;
    for (int p = 0; p < passes; p++) {
        double cpu = 0, tail = 0, wsum = 0;
        for (size_t i = 0; i < nq; i++) {
            ivf_result r;
            q.vector = qs + i * dim;
            uint64_t c0 = cpu_ns(), t0 = s3v_now_ns();
            s = ivf_index_search(ix, &q, &r);
            wall[i] = (double)(s3v_now_ns() - t0) / 1e6;
            cpu += (double)(cpu_ns() - c0) / 1e6;
            wsum += wall[i];
            if (s != S3V_OK) return die("search", s);
            tail += r.stats.ms_tail;
            if (p == 0) {
                scored += (double)r.stats.tail_scored;
                tv += (double)r.stats.tail_vectors;
                for (size_t t = 0; t < 10 && gt; t++) {
                    int32_t want = gt[i * gtk + t];
                    int found = 0;
                    for (size_t a = 0; a < r.len; a++) {
                        char k[32];
                        snprintf(k, sizeof k, "%.*s", (int)r.hits[a].key_len, (const char *)r.hits[a].key);
                        found |= atoi(k) == want;
                    }
                    hits += found;
                    if ((uint64_t)want >= tail_first && (uint64_t)want < tail_end) {
                        tail_truth++;
                        tail_hits += found;
                    }
                }
            }
            ivf_result_free(&r);
        }
        wmean[p] = wsum / (double)nq;
        p50[p] = pct(wall, nq, 50);
        cmean[p] = cpu / (double)nq;
        tmean[p] = tail / (double)nq;
    }
    out->wall_mean = median_of(wmean, passes);
    out->wall_p50 = median_of(p50, passes);
    out->cpu_mean = median_of(cmean, passes);
    out->tail_mean = median_of(tmean, passes);
    out->recall = gt ? hits / (10.0 * (double)nq) : -1;
    out->tail_recall = tail_truth ? tail_hits / tail_truth : -1;
    out->scored_frac = tv ? scored / tv : 0;
    out->tail_vectors = tv / (double)nq;
    free(wall);
    ivf_index_close(ix);
    cluster_cache_free(cache);
    return 0;
}

static s3v_status append_rows(s3v_storage *st, const float *vecs, size_t dim, uint64_t from, uint64_t to,
                              double *secs)
{
    wal_writer *w;
    S3V_TRY(wal_writer_new(st, "", &w));
    wal_batch b;
    wal_batch_init(&b, (uint32_t)dim);
    s3v_status s = S3V_OK;
    uint64_t t0 = s3v_now_ns();
    for (uint64_t i = from; i < to && s == S3V_OK; i++) {
        char key[24];
        int kl = snprintf(key, sizeof key, "%llu", (unsigned long long)i);
        s = wal_batch_put(&b, (const uint8_t *)key, (size_t)kl, vecs + i * dim, NULL, 0);
        if (s == S3V_OK && (b.count == WAL_MAX_RECORDS || i + 1 == to)) {
            s = wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL);
            wal_batch_reset(&b);
        }
    }
    *secs = (double)(s3v_now_ns() - t0) / 1e9;
    wal_batch_free(&b);
    wal_writer_free(w);
    return s;
}

typedef struct rows_src {
    const float *vecs;
    size_t dim;
    uint64_t i, n;
    char key[24];
} rows_src;

static s3v_status rows_next(void *arg, vec_record *rec, int *has)
{
    rows_src *r = arg;
    *has = r->i < r->n;
    if (!*has) return S3V_OK;
    rec->row = r->i;
    rec->key_len = (size_t)snprintf(r->key, sizeof r->key, "%llu", (unsigned long long)r->i);
    rec->key = (const uint8_t *)r->key;
    rec->data = r->vecs + r->i * r->dim;
    rec->meta = NULL;
    rec->meta_len = 0;
    r->i++;
    return S3V_OK;
}

static int mode_tail(const char *dir, const float *vecs, size_t n, size_t dim, const float *qs, size_t nq,
                     const int32_t *gt, size_t gtk, size_t gtn, uint64_t base, const char *tails_s,
                     int threads, int passes)
{
    s3v_storage *st;
    if (s3v_storage_local_open(dir, 1, &st) != S3V_OK) return 1;
    ivf_manifest m;
    uint64_t t0 = s3v_now_ns();
    if (ivf_manifest_load(st, "", S3V_NO_DEADLINE, &m, NULL) == S3V_OK) {
        ivf_manifest_free(&m);
        fprintf(stderr, "bench_writes: %s already holds an index; give an empty folder\n", dir);
        return 1;
    }
    s3v_error_clear();
    rows_src src = {vecs, dim, 0, base, ""};
    ivf_source in = {rows_next, &src, (uint32_t)dim, base};
    ivf_build_opts bo = {.metric = IVF_METRIC_EUCLIDEAN,
                         .encoding = IVF_ENC_F32,
                         .seed = 1,
                         .threads = threads,
                         .tmp_dir = dir};
    ivf_build_report br;
    s3v_status s = ivf_build_from(st, "", &in, &bo, &br);
    if (s != S3V_OK) return die("build", s);
    fprintf(stderr, "bench_writes: built %llu vectors, nlist %u, default nprobe %u in %.1f s\n",
            (unsigned long long)br.count, br.nlist, br.default_nprobe, (double)(s3v_now_ns() - t0) / 1e9);
    printf(
        "Index: the first %llu vectors, euclidean, f32, nlist %u, default nprobe %u; %zu queries, top 10, "
        "one thread, no BLAS, warm (every cluster in the cache), kernels %s; each time is the median of %d "
        "passes over the queries.\n\n",
        (unsigned long long)base, br.nlist, br.default_nprobe, nq, kern_get()->name, passes);
    printf("| unindexed tail | query ms p50 (wall) | mean (wall) | mean (thread CPU) | of which the tail "
           "(wall) | "
           "x no tail (CPU) | x the compacted index (CPU) | tail vectors scored exactly | recall@10 | tail "
           "recall |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    char list[256];
    snprintf(list, sizeof list, "%s", tails_s);
    uint64_t have = 0;
    qstats rows[16];
    uint64_t sizes[16];
    int nrows = 0;
    for (char *tok = strtok(list, ","); tok && nrows < 15; tok = strtok(NULL, ",")) {
        uint64_t t = strtoull(tok, NULL, 10);
        if (base + t > n) t = n - base;
        double secs = 0;
        if (t > have) {
            s = append_rows(st, vecs, dim, base + have, base + t, &secs);
            if (s != S3V_OK) return die("append", s);
            fprintf(stderr, "bench_writes: wrote %llu vectors through the log in %.1f s (local folder)\n",
                    (unsigned long long)(t - have), secs);
            have = t;
        }
        if (measure(st, qs, nq, dim, base + have == gtn ? gt : NULL, gtk, base, base + have, passes,
                    &rows[nrows]))
            return 1;
        sizes[nrows++] = have;
    }
    /* everything folded */
    ivf_compact_opts co = {.threads = threads, .tmp_dir = dir};
    ivf_compact_report cr;
    s = ivf_compact(st, "", &co, &cr);
    if (s != S3V_OK) return die("compact", s);
    qstats full;
    if (measure(st, qs, nq, dim, base + have == gtn ? gt : NULL, gtk, 0, 0, passes, &full)) return 1;
    for (int i = 0; i < nrows; i++) {
        char tr[32] = "-", rc[32] = "-";
        if (rows[i].tail_recall >= 0) snprintf(tr, sizeof tr, "%.4f", rows[i].tail_recall);
        if (rows[i].recall >= 0) snprintf(rc, sizeof rc, "%.4f", rows[i].recall);
        printf("| %llu | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.3f%% | %s | %s |\n",
               (unsigned long long)sizes[i], rows[i].wall_p50, rows[i].wall_mean, rows[i].cpu_mean,
               rows[i].tail_mean, rows[i].cpu_mean / rows[0].cpu_mean, rows[i].cpu_mean / full.cpu_mean,
               100 * rows[i].scored_frac, rc, tr);
    }
    char rc[32] = "-";
    if (full.recall >= 0) snprintf(rc, sizeof rc, "%.4f", full.recall);
    printf("| compacted (%llu vectors, nlist %u) | %.3f | %.3f | %.3f | - | %.2f | 1.00 | - | %s | - |\n\n",
           (unsigned long long)cr.count_after, cr.nlist_after, full.wall_p50, full.wall_mean, full.cpu_mean,
           full.cpu_mean / rows[0].cpu_mean, rc);
    printf("Compaction of the %llu-vector tail into the %llu-vector index: %.1f s (read %.1f, build %.1f, "
           "%d threads; "
           "%s, %u -> %u clusters, %u split)\n",
           (unsigned long long)cr.folded_records, (unsigned long long)cr.count_before, cr.seconds_total,
           cr.seconds_read, cr.seconds_build, threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
           cr.retrained ? (cr.retrain_reason ? cr.retrain_reason : "retrained")
                        : "assigned to the existing centroids",
           cr.nlist_before, cr.nlist_after, cr.splits);
    s3v_storage_close(st);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    static const struct option opts[] = {
        {"storage", required_argument, 0, 's'}, {"dir", required_argument, 0, 'd'},
        {"input", required_argument, 0, 'i'},   {"queries", required_argument, 0, 'q'},
        {"truth", required_argument, 0, 't'},   {"writers", required_argument, 0, 'w'},
        {"rounds", required_argument, 0, 'r'},  {"batch", required_argument, 0, 'b'},
        {"samples", required_argument, 0, 'n'}, {"base", required_argument, 0, 'B'},
        {"tails", required_argument, 0, 'T'},   {"threads", required_argument, 0, 'j'},
        {"passes", required_argument, 0, 'p'},  {0, 0, 0, 0}};
    const char *loc = NULL, *dir = NULL, *input = NULL, *queries = NULL, *truth = NULL, *writers = "1,2,4",
               *tails = "0,10000,100000";
    int rounds = 20, batch = 500, samples = 50, threads = 0, passes = 3, c;
    uint64_t base = 240479;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': loc = optarg; break;
        case 'd': dir = optarg; break;
        case 'i': input = optarg; break;
        case 'q': queries = optarg; break;
        case 't': truth = optarg; break;
        case 'w': writers = optarg; break;
        case 'r': rounds = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'n': samples = atoi(optarg); break;
        case 'B': base = strtoull(optarg, NULL, 10); break;
        case 'T': tails = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'p': passes = atoi(optarg); break;
        default: fputs(HELP, stderr); return 2;
        }
    }
    const char *simd = getenv("S3VEC_SIMD");
    kern_init(simd && !strcmp(simd, "scalar"));
    s3v_log_set_level(S3V_LOG_WARN);
    if (!input || batch < 1 || batch > WAL_MAX_RECORDS || rounds < 1 || samples < 1 || passes < 1 ||
        passes > 16) {
        fputs(HELP, stderr);
        return 2;
    }
    float *vecs = NULL;
    size_t n = 0, dim = 0;
    s3v_status s = vec_read_fvecs(input, &vecs, &n, &dim);
    if (s != S3V_OK) return die(input, s);
    int rc = 2;
    if (!strcmp(mode, "ingest") && loc) {
        rc = mode_ingest(loc, vecs, n, dim, writers, rounds, batch);
    } else if (!strcmp(mode, "visibility") && loc) {
        rc = mode_visibility(loc, vecs, dim, samples);
    } else if (!strcmp(mode, "tail") && dir && queries) {
        float *qs = NULL;
        int32_t *gt = NULL;
        size_t nq = 0, qd = 0, gn = 0, gk = 0;
        if ((s = vec_read_fvecs(queries, &qs, &nq, &qd)) != S3V_OK) return die(queries, s);
        if (truth && (s = vec_read_ivecs(truth, &gt, &gn, &gk)) != S3V_OK) return die(truth, s);
        if (gt && (gn != nq || gk < 10)) {
            fprintf(stderr, "bench_writes: %s does not match the queries\n", truth);
            return 1;
        }
        if (base >= n) base = n / 2;
        rc = mode_tail(dir, vecs, n, dim, qs, nq, gt, gk, n, base, tails, threads, passes);
        free(qs);
        free(gt);
    } else {
        fputs(HELP, stderr);
    }
    free(vecs);
    return rc;
}
