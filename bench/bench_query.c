/* bench/bench_query.c: warm single-thread query throughput and recall@k of an index in a local folder.
 *
 * Opens the index with a cluster cache large enough for all of it, warms the cache (ivf_index_verify
 * reads, checks and decodes every cluster and key-map page, then an untimed pass of the first 100
 * queries at the largest probe count asked for), and then, for each probe count, runs the whole query set one
 * query at a time on this thread, timing each ivf_index_search call with the monotonic clock (wall)
 * and with this thread's CPU clock (time slices given to other processes are not counted: on a shared
 * machine the CPU figure is the steadier one). Recall@k is computed against exact ground truth (.ivecs,
 * ids = 0-based base rows), which needs the index keys to be row numbers (build without --keys).
 * After the warm-up every timed query must be served from the cache: the program checks that no
 * cache miss or eviction happened and fails otherwise, so the figures are never polluted by reads.
 *
 * The peer (FAISS IndexIVFFlat, bench/faiss_ivf.py) runs in its own process; bench/bench_query.sh
 * alternates the two and prints the ratios. This program is single-threaded and uses no BLAS. The
 * kernel table is the best for this CPU, or the scalar reference when S3VEC_SIMD=scalar (as the CLI).
 *
 * usage: bench_query --index DIR --queries Q.fvecs --truth GT.ivecs [--nprobe LIST] [-k K] [--reps R]
 *                    [--limit N] [--cache-mb MB] [--tsv]
 *   LIST   comma-separated probe counts; "default" = the index's calibrated default, "all" = every
 *          cluster (exact search over the encoded vectors), e.g. "default,16,64,all"
 *   --tsv  one tab-separated line per (rep, nprobe) on stdout after '#' comment lines:
 *          rep nprobe recall qps_wall qps_cpu p50_ms p99_ms mean_vectors_scanned
 * Without --tsv, prints a Markdown table with the median of the reps for each probe count. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/status.h"
#include "common/storage.h"
#include "engine/cache.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"

#define MAX_PROBES 64
#define MAX_REPS   100

static const char HELP[] =
    "usage: bench_query --index DIR --queries Q.fvecs --truth GT.ivecs [--nprobe LIST] [-k K] [--reps R]\n"
    "                   [--limit N] [--cache-mb MB] [--tsv]\n"
    "  --nprobe LIST   comma-separated probe counts, 'default' for the index default, 'all' for every\n"
    "                  cluster (default: 1,2,4,8,16,32,64,128)\n"
    "  -k K            neighbours per query and recall@K (default 10)\n"
    "  --reps R        timed passes per probe count (default 3; the table shows the median)\n"
    "  --limit N       use the first N queries\n"
    "  --cache-mb MB   cluster cache budget (default: twice the index's data bytes + 64 MiB)\n"
    "  --tsv           machine-readable lines for bench/bench_query.sh\n";

typedef struct pass_result {
    uint32_t nprobe; /* probe count actually used */
    double recall;
    double qps_wall, qps_cpu;
    double p50_ms, p99_ms;
    double vectors_scanned; /* mean per query */
} pass_result;

static uint64_t cpu_ns(void) { return s3v_thread_cpu_ns(); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Value at percentile p of n sorted values (nearest rank). */
static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0) i--;
    if (i >= n) i = n - 1;
    return sorted[i];
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A key that is a decimal row number, or -1. */
static long key_row(const uint8_t *k, size_t n)
{
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return -1;
        v = v * 10 + (k[i] - '0');
    }
    return v;
}

/* Parses "default,1,2,all" into probes (0 = the index default, UINT32_MAX = every cluster). */
static int parse_probes(const char *s, uint32_t *probes, size_t *n)
{
    *n = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (*n == MAX_PROBES) return -1;
        if (len == 7 && strncmp(s, "default", 7) == 0) {
            probes[(*n)++] = 0;
        } else if (len == 3 && strncmp(s, "all", 3) == 0) {
            probes[(*n)++] = UINT32_MAX; /* the search clamps it to nlist: every cluster */
        } else {
            char *end = NULL;
            unsigned long v = strtoul(s, &end, 10);
            if (end != s + len || v < 1 || v > 1000000) return -1;
            probes[(*n)++] = (uint32_t)v;
        }
        s += len + (e ? 1 : 0);
    }
    return *n ? 0 : -1;
}

/* One pass over the queries at one probe count. lat_ms has nq slots. */
static s3v_status run_pass(ivf_index *ix, cluster_cache *cache, const float *queries, size_t nq, size_t dim,
                           const int32_t *truth, size_t tk, uint32_t k, uint32_t nprobe, double *lat_ms,
                           pass_result *out)
{
    ivf_query q = {.dim = (uint32_t)dim, .topk = k, .nprobe = nprobe, .deadline_ns = S3V_NO_DEADLINE};
    cache_stats before, after;
    cluster_cache_stats(cache, &before);
    uint64_t wall_total = 0, cpu_total = 0, scanned = 0, found = 0;
    uint32_t used = 0;
    for (size_t i = 0; i < nq; i++) {
        q.vector = queries + i * dim;
        ivf_result r;
        uint64_t c0 = cpu_ns(), t0 = s3v_now_ns();
        s3v_status st = ivf_index_search(ix, &q, &r);
        uint64_t t1 = s3v_now_ns(), c1 = cpu_ns();
        if (st != S3V_OK) return st;
        wall_total += t1 - t0;
        cpu_total += c1 - c0;
        lat_ms[i] = (double)(t1 - t0) / 1e6;
        scanned += r.stats.vectors_scanned;
        used = r.stats.nprobe;
        for (size_t a = 0; a < r.len && a < k; a++) {
            long row = key_row(r.hits[a].key, r.hits[a].key_len);
            if (row < 0) {
                int shown = r.hits[a].key_len > 64 ? 64 : (int)r.hits[a].key_len;
                st = s3v_errorf(
                    S3V_ERR_INVALID,
                    "index key '%.*s' is not a row number: build the benchmark index without --keys", shown,
                    (const char *)r.hits[a].key);
                ivf_result_free(&r);
                return st;
            }
            for (size_t b = 0; b < k; b++)
                if (truth[i * tk + b] == row) {
                    found++;
                    break;
                }
        }
        ivf_result_free(&r);
    }
    cluster_cache_stats(cache, &after);
    if (after.misses != before.misses || after.evictions != before.evictions)
        return s3v_errorf(S3V_ERR_INVALID,
                          "%llu cache misses and %llu evictions during a timed pass: raise --cache-mb",
                          (unsigned long long)(after.misses - before.misses),
                          (unsigned long long)(after.evictions - before.evictions));
    qsort(lat_ms, nq, sizeof *lat_ms, cmp_double);
    out->nprobe = used;
    out->recall = (double)found / ((double)nq * k);
    out->qps_wall = wall_total ? (double)nq * 1e9 / (double)wall_total : 0;
    out->qps_cpu = cpu_total ? (double)nq * 1e9 / (double)cpu_total : 0;
    out->p50_ms = pct(lat_ms, nq, 50);
    out->p99_ms = pct(lat_ms, nq, 99);
    out->vectors_scanned = (double)scanned / (double)nq;
    return S3V_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"index", required_argument, 0, 'i'},    {"queries", required_argument, 0, 'Q'},
        {"truth", required_argument, 0, 'g'},    {"nprobe", required_argument, 0, 'p'},
        {"reps", required_argument, 0, 'r'},     {"limit", required_argument, 0, 'l'},
        {"cache-mb", required_argument, 0, 'c'}, {"tsv", no_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *index_dir = NULL, *queries_path = NULL, *truth_path = NULL;
    uint32_t probes[MAX_PROBES] = {1, 2, 4, 8, 16, 32, 64, 128};
    size_t nprobes = 8;
    long k = 10, reps = 3, limit = 0, cache_mb = -1;
    int tsv = 0, c;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'i': index_dir = optarg; break;
        case 'Q': queries_path = optarg; break;
        case 'g': truth_path = optarg; break;
        case 'p':
            if (parse_probes(optarg, probes, &nprobes) != 0) {
                fprintf(stderr, "bench_query: --nprobe wants up to %d comma-separated counts or 'default'\n",
                        MAX_PROBES);
                return 2;
            }
            break;
        case 'k': k = strtol(optarg, &end, 10); break;
        case 'r': reps = strtol(optarg, &end, 10); break;
        case 'l': limit = strtol(optarg, &end, 10); break;
        case 'c': cache_mb = strtol(optarg, &end, 10); break;
        case 't': tsv = 1; break;
        case 'h': fputs(HELP, stdout); return 0;
        default: fputs(HELP, stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "bench_query: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (!index_dir || !queries_path || !truth_path || optind != argc || k < 1 || k > 100 || reps < 1 ||
        reps > MAX_REPS || limit < 0) {
        fputs(HELP, stderr);
        return 2;
    }

    const char *simd = getenv("S3VEC_SIMD"); /* "scalar" forces the reference kernels, as in the CLI */
    const kern_table *kt = kern_init(simd && strcmp(simd, "scalar") == 0);
    s3v_status st = S3V_OK;
    float *queries = NULL;
    int32_t *truth = NULL;
    size_t nq = 0, dim = 0, nt = 0, tk = 0;
    s3v_storage *sto = NULL;
    cluster_cache *cache = NULL;
    ivf_index *ix = NULL;
    double *lat = NULL;
    pass_result *res = NULL;
    int rc = 1;

    S3V_CHECK(vec_read_fvecs(queries_path, &queries, &nq, &dim));
    S3V_CHECK(vec_read_ivecs(truth_path, &truth, &nt, &tk));
    if (limit > 0 && (size_t)limit < nq) nq = (size_t)limit;
    if (nt < nq || tk < (size_t)k) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s has %zu rows of %zu ids; need %zu rows of at least %ld",
                        truth_path, nt, tk, nq, k);
        goto fail;
    }
    S3V_CHECK(s3v_storage_local_open(index_dir, 0, &sto));
    /* a cache of 64 MiB is enough to read the manifest; the real budget comes from it */
    size_t budget = (size_t)64 << 20;
    if (cache_mb >= 0) budget = (size_t)cache_mb << 20;
    S3V_CHECK(cluster_cache_new(budget, &cache));
    S3V_CHECK(ivf_index_open(sto, "", cache, S3V_NO_DEADLINE, &ix));
    const ivf_manifest *m = ivf_index_manifest(ix);
    uint64_t data_bytes = 0;
    for (size_t i = 0; i < m->data_len; i++) data_bytes += m->data[i].size;
    uint64_t index_bytes = data_bytes + m->centroids_size + m->keymap_size;
    if (cache_mb < 0) {
        /* re-open with the derived budget: blocks plus their decoded keys fit twice over */
        budget = (size_t)(2 * (data_bytes + m->keymap_size)) + ((size_t)64 << 20);
        ivf_index_close(ix);
        ix = NULL;
        m = NULL;
        cluster_cache_free(cache);
        cache = NULL;
        S3V_CHECK(cluster_cache_new(budget, &cache));
        S3V_CHECK(ivf_index_open(sto, "", cache, S3V_NO_DEADLINE, &ix));
        m = ivf_index_manifest(ix);
    }
    if (m->dimension != dim) {
        st = s3v_errorf(S3V_ERR_DIMENSION, "queries have dimension %zu, the index %u", dim, m->dimension);
        goto fail;
    }

    /* warm: every cluster and page read, verified and decoded; then one pass at the largest probe count */
    uint64_t t0 = s3v_now_ns();
    ivf_verify_report vr;
    S3V_CHECK(ivf_index_verify(ix, S3V_NO_DEADLINE, &vr));
    uint32_t warm_probe = 0;
    for (size_t i = 0; i < nprobes; i++) {
        uint32_t p = probes[i] == 0 ? m->default_nprobe : probes[i] > m->nlist ? m->nlist : probes[i];
        if (p > warm_probe) warm_probe = p;
    }
    lat = calloc(nq, sizeof *lat);
    res = calloc((size_t)reps * nprobes, sizeof *res);
    if (!lat || !res) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    pass_result warm; /* verify decoded every cluster already: 100 queries warm the code paths */
    S3V_CHECK(run_pass(ix, cache, queries, nq < 100 ? nq : 100, dim, truth, tk, (uint32_t)k, warm_probe, lat,
                       &warm));
    double warm_s = (double)(s3v_now_ns() - t0) / 1e9;
    cache_stats cs;
    cluster_cache_stats(cache, &cs);
    if (cs.evictions) {
        st = s3v_errorf(S3V_ERR_INVALID, "the cache evicted %llu entries while warming: raise --cache-mb",
                        (unsigned long long)cs.evictions);
        goto fail;
    }

    printf("# bench_query: index %s (%llu vectors x %u, %s, %s, nlist %u, default nprobe %u), index bytes "
           "%llu\n",
           index_dir, (unsigned long long)m->count, m->dimension, ivf_metric_name(m->metric),
           ivf_encoding_name(m->encoding), m->nlist, m->default_nprobe, (unsigned long long)index_bytes);
    printf("# queries %zu from %s, recall@%ld against %s; 1 thread, kernels %s, no BLAS\n", nq, queries_path,
           k, truth_path, kt->name);
    printf("# warm-up %.2f s: %u clusters + %u key-map pages verified (%llu bytes), cache %zu entries / %zu "
           "bytes of a %zu budget\n",
           warm_s, vr.clusters, vr.pages, (unsigned long long)vr.bytes, cs.entries, cs.bytes, cs.budget);

    for (long rep = 0; rep < reps; rep++)
        for (size_t i = 0; i < nprobes; i++) {
            pass_result *r = &res[rep * (long)nprobes + (long)i];
            S3V_CHECK(run_pass(ix, cache, queries, nq, dim, truth, tk, (uint32_t)k, probes[i], lat, r));
            if (tsv)
                printf("%ld\t%u\t%.5f\t%.1f\t%.1f\t%.4f\t%.4f\t%.1f\n", rep + 1, r->nprobe, r->recall,
                       r->qps_wall, r->qps_cpu, r->p50_ms, r->p99_ms, r->vectors_scanned);
        }
    if (!tsv) {
        printf(
            "\n| nprobe | recall@%ld | queries/s (wall) | queries/s (thread CPU) | p50 ms | p99 ms | vectors "
            "scanned/query |\n|---:|---:|---:|---:|---:|---:|---:|\n",
            k);
        double w[MAX_REPS], cp[MAX_REPS], p50[MAX_REPS], p99[MAX_REPS];
        for (size_t i = 0; i < nprobes; i++) {
            for (long rep = 0; rep < reps; rep++) {
                const pass_result *r = &res[rep * (long)nprobes + (long)i];
                w[rep] = r->qps_wall;
                cp[rep] = r->qps_cpu;
                p50[rep] = r->p50_ms;
                p99[rep] = r->p99_ms;
            }
            const pass_result *r0 = &res[i];
            printf("| %u%s%s | %.4f | %.0f | %.0f | %.3f | %.3f | %.0f |\n", r0->nprobe,
                   probes[i] ? "" : " (default)", r0->nprobe == m->nlist ? " (all)" : "", r0->recall,
                   median(w, (size_t)reps), median(cp, (size_t)reps), median(p50, (size_t)reps),
                   median(p99, (size_t)reps), r0->vectors_scanned);
        }
        printf("\nmedian of %ld passes of %zu queries each; recall is the same in every pass\n", reps, nq);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_query: %s\n", s3v_errmsg(st));
done:
    free(res);
    free(lat);
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(sto);
    free(truth);
    free(queries);
    return rc;
}
