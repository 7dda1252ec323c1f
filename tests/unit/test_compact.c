/* tests/unit/test_compact.c: compaction and garbage collection on a local folder.
 *
 *  - folding keeps the contents (every key's latest value and metadata, deletes stay deleted), moves the
 *    log start, and retires the old generation and the folded slots;
 *  - a reader that opened the old generation keeps answering after the swap (nothing is deleted within
 *    the grace period); after it, the retired objects are deleted and the list is emptied;
 *  - orphaned generations (counter at most the current one) are deleted, newer ones are not;
 *  - retraining when the index doubled or drifted, splitting an outgrown cluster without retraining;
 *  - an empty index: the first compaction trains, deleting everything gives an empty index again;
 *  - a compactor that loses the race deletes its new generation and retries on the new manifest; with
 *    one attempt it fails with CONFLICT and leaves nothing behind;
 *  - an i8 index keeps its quantizer, so untouched vectors do not change across compactions. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/rng.h"
#include "engine/build.h"
#include "engine/compact.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"
#include "engine/tail.h"
#include "engine/wal.h"
#include "testutil.h"

#define D       8
#define GRACE_S 3 /* the grace period of the index whose garbage is collected (seconds) */

static char tmpdir[256];

static int exists(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Generation folders in dir. */
static int count_generations(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (ivf_generation_valid(e->d_name)) n++;
    closedir(d);
    return n;
}

static void gauss(s3v_rng *r, const float *c, float spread, float *out)
{
    for (int j = 0; j < D; j++) {
        double u1 = s3v_rng_unit(r) + 1e-12, u2 = s3v_rng_unit(r);
        out[j] = (c ? c[j] : 0) + spread * (float)(sqrt(-2 * log(u1)) * cos(6.283185307 * u2));
    }
}

static float centres[10][D];

/* Builds n vectors "v<i>" around 10 centres into dir (grace in seconds, 0 = default). */
static s3v_storage *build_dir(const char *dir, int n, ivf_metric metric, ivf_encoding enc, uint32_t nlist,
                              uint32_t grace)
{
    s3v_rng r;
    s3v_rng_seed(&r, 11);
    for (int c = 0; c < 10; c++) gauss(&r, NULL, 5, centres[c]);
    char input[600];
    snprintf(input, sizeof input, "%s/in.jsonl", tmpdir);
    FILE *f = fopen(input, "w");
    for (int i = 0; i < n; i++) {
        float v[D];
        gauss(&r, centres[i % 10], 1, v);
        fprintf(f, "{\"key\":\"v%d\",\"data\":[", i);
        for (int j = 0; j < D; j++) fprintf(f, "%s%.9g", j ? "," : "", v[j]);
        fprintf(f, "],\"metadata\":{\"i\":%d}}\n", i);
    }
    fclose(f);
    s3v_storage *st = NULL;
    if (s3v_storage_local_open(dir, 1, &st) != S3V_OK) return NULL;
    vec_reader *rd;
    if (vec_reader_open(input, NULL, &rd) != S3V_OK) return st;
    ivf_build_opts o = {.metric = metric,
                        .encoding = enc,
                        .nlist = nlist,
                        .seed = 2,
                        .threads = 2,
                        .tmp_dir = tmpdir,
                        .grace_seconds = grace};
    s3v_status bs = ivf_build(st, "", rd, &o, NULL);
    CHECK(bs == S3V_OK, "build: %s", s3v_errmsg(bs));
    vec_reader_close(rd);
    return st;
}

static s3v_status write_puts(s3v_storage *st, int from, int to, const float *centre, float spread,
                             uint64_t seed)
{
    wal_writer *w;
    S3V_TRY(wal_writer_new(st, "", &w));
    wal_batch b;
    wal_batch_init(&b, D);
    s3v_rng r;
    s3v_rng_seed(&r, seed);
    s3v_status rc = S3V_OK;
    for (int i = from; i < to && rc == S3V_OK; i++) {
        float v[D];
        gauss(&r, centre ? centre : centres[i % 10], spread, v);
        char k[16], m[32];
        snprintf(k, sizeof k, "v%d", i);
        snprintf(m, sizeof m, "{\"i\":%d,\"w\":1}", i);
        rc = wal_batch_put(&b, (const uint8_t *)k, strlen(k), v, (const uint8_t *)m, strlen(m));
        if (rc == S3V_OK && (b.count == 500 || i + 1 == to)) {
            rc = wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL);
            wal_batch_reset(&b);
        }
    }
    wal_batch_free(&b);
    wal_writer_free(w);
    return rc;
}

static s3v_status write_deletes(s3v_storage *st, int from, int to)
{
    wal_writer *w;
    S3V_TRY(wal_writer_new(st, "", &w));
    wal_batch b;
    wal_batch_init(&b, D);
    s3v_status rc = S3V_OK;
    for (int i = from; i < to && rc == S3V_OK; i++) {
        char k[16];
        snprintf(k, sizeof k, "v%d", i);
        rc = wal_batch_delete(&b, (const uint8_t *)k, strlen(k));
        if (rc == S3V_OK && (b.count == 500 || i + 1 == to)) {
            rc = wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL);
            wal_batch_reset(&b);
        }
    }
    wal_batch_free(&b);
    wal_writer_free(w);
    return rc;
}

/* The logical contents: key -> "vector bytes + metadata" for keys v0..v<n-1>, via get. found[i] = 1 when
 * present. */
typedef struct snapshot {
    int n;
    unsigned char *found;
    float *vec;
    char (*meta)[48];
} snapshot;

static void snap(ivf_index *ix, int n, snapshot *s)
{
    s->n = n;
    s->found = calloc((size_t)n, 1);
    s->vec = calloc((size_t)n * D, sizeof(float));
    s->meta = calloc((size_t)n, sizeof *s->meta);
    for (int first = 0; first < n; first += 100) {
        int m = n - first < 100 ? n - first : 100;
        const uint8_t *keys[100];
        size_t lens[100];
        char names[100][16];
        for (int i = 0; i < m; i++) {
            snprintf(names[i], sizeof names[i], "v%d", first + i);
            keys[i] = (const uint8_t *)names[i];
            lens[i] = strlen(names[i]);
        }
        ivf_result r;
        if (ivf_index_get(ix, keys, lens, (size_t)m, 1, 1, S3V_NO_DEADLINE, &r) != S3V_OK) continue;
        for (size_t a = 0; a < r.len; a++) {
            char b[16];
            snprintf(b, sizeof b, "%.*s", (int)r.hits[a].key_len, (const char *)r.hits[a].key);
            int id = atoi(b + 1);
            s->found[id] = 1;
            memcpy(s->vec + (size_t)id * D, r.hits[a].data, D * sizeof(float));
            snprintf(s->meta[id], sizeof s->meta[id], "%.*s", (int)r.hits[a].meta_len,
                     r.hits[a].meta ? (const char *)r.hits[a].meta : "");
        }
        ivf_result_free(&r);
    }
}

static int snap_equal(const snapshot *a, const snapshot *b, int *live)
{
    int diff = 0;
    *live = 0;
    for (int i = 0; i < a->n; i++) {
        *live += a->found[i];
        if (a->found[i] != b->found[i])
            diff++;
        else if (a->found[i] && (memcmp(a->vec + (size_t)i * D, b->vec + (size_t)i * D, D * sizeof(float)) ||
                                 strcmp(a->meta[i], b->meta[i])))
            diff++;
    }
    return diff;
}

static void snap_free(snapshot *s)
{
    free(s->found);
    free(s->vec);
    free(s->meta);
}

static ivf_index *open_ix(s3v_storage *st)
{
    ivf_index *ix = NULL;
    s3v_status rc = ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix);
    CHECK(rc == S3V_OK, "open: %s", s3v_errmsg(rc));
    return ix;
}

static void test_fold_and_gc(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fold", tmpdir);
    s3v_storage *st = build_dir(dir, 1500, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 15, GRACE_S);
    REQUIRE(st != NULL, "storage");
    REQUIRE(write_puts(st, 1400, 1900, NULL, 1, 5) == S3V_OK, "puts (100 overwrites, 400 new)");
    REQUIRE(write_deletes(st, 0, 150) == S3V_OK, "deletes");
    REQUIRE(write_puts(st, 100, 120, NULL, 1, 6) == S3V_OK, "re-puts after delete");
    ivf_index *old = open_ix(st);
    REQUIRE(old != NULL, "open");
    snapshot before, after, old_after;
    snap(old, 2000, &before);
    char gen0[IVF_NAME_MAX];
    snprintf(gen0, sizeof gen0, "%s", ivf_index_manifest(old)->generation);

    ivf_compact_opts co = {.threads = 2, .tmp_dir = tmpdir};
    ivf_compact_report rep;
    s3v_status rc = ivf_compact(st, "", &co, &rep);
    uint64_t committed_ms = s3v_wall_ms();
    REQUIRE(rc == S3V_OK && rep.committed, "compact: %s", s3v_errmsg(rc));
    CHECK(rep.wal_from == 0 && rep.wal_to == 2 && rep.folded_objects == 3, "folded slots 0..2 (%llu..%llu)",
          (unsigned long long)rep.wal_from, (unsigned long long)rep.wal_to);
    CHECK(rep.count_before == 1500 && rep.count_after == 1500 - 150 + 20 + 400, "count 1500 -> %llu",
          (unsigned long long)rep.count_after);
    CHECK(!rep.retrained, "no retraining for +18%%");
    ivf_index *ix = open_ix(st);
    REQUIRE(ix != NULL, "reopen");
    const ivf_manifest *m = ivf_index_manifest(ix);
    CHECK(m->wal_start == 3 && strcmp(m->generation, gen0) != 0, "start 3, a new generation");
    CHECK(m->retired_len == 2, "the old generation and the log range are retired (%zu)", m->retired_len);
    snap(ix, 2000, &after);
    int live;
    CHECK(snap_equal(&before, &after, &live) == 0, "every key keeps its latest value and metadata (%d live)",
          live);
    CHECK(live == 1500 - 150 + 20 + 400, "live keys %d", live);
    /* the reader of the old generation still answers: nothing was deleted */
    snap(old, 2000, &old_after);
    CHECK(snap_equal(&before, &old_after, &live) == 0,
          "a reader of the old generation is unaffected by the swap");
    float q[D];
    memcpy(q, centres[3], sizeof q);
    ivf_query qq = {.vector = q, .dim = D, .topk = 5, .deadline_ns = S3V_NO_DEADLINE};
    ivf_result r;
    CHECK(ivf_index_search(old, &qq, &r) == S3V_OK && r.len == 5, "old reader searches");
    ivf_result_free(&r);
    CHECK(exists(dir, gen0), "old generation objects kept within the grace period");
    rc = ivf_compact(st, "", &co, &rep);
    if (s3v_wall_ms() - committed_ms < GRACE_S * 1000 - 200) /* a slow machine (valgrind) may be past it */
        CHECK(rc == S3V_OK && !rep.committed && rep.gc_pending == 2 && rep.gc_objects == 0,
              "a second run finds nothing to fold and nothing expired (%u pending)", rep.gc_pending);
    while (s3v_wall_ms() - committed_ms <= GRACE_S * 1000 + 100) usleep(100 * 1000);
    if (rep.gc_objects) { /* the second run was already past the grace period: it collected */
        CHECK(rep.gc_generations == 1 && rep.gc_log_ranges == 1, "collected by the second run");
        rc = S3V_OK;
    } else {
        rc = ivf_compact(st, "", &co, &rep);
    }
    CHECK(rc == S3V_OK && rep.gc_generations == 1 && rep.gc_log_ranges == 1 && rep.gc_objects >= 6,
          "after the grace period both are deleted (%u gens, %u ranges, %llu objects)", rep.gc_generations,
          rep.gc_log_ranges, (unsigned long long)rep.gc_objects);
    CHECK(rep.committed, "and the manifest's retired list is emptied");
    CHECK(!exists(dir, gen0), "old generation folder gone");
    ivf_manifest mm;
    REQUIRE(ivf_manifest_load(st, "", S3V_NO_DEADLINE, &mm, NULL) == S3V_OK, "manifest");
    CHECK(mm.retired_len == 0, "retired list empty (%zu)", mm.retired_len);
    char walf[700], inc[17];
    ivf_incarnation_format(mm.incarnation, inc);
    snprintf(walf, sizeof walf, "wal/%s/%020d", inc, 0);
    CHECK(!exists(dir, walf), "folded log objects deleted");
    ivf_manifest_free(&mm);

    /* orphans: an old counter is deleted, a newer one (a compaction still writing) is not */
    char p[700];
    snprintf(p, sizeof p, "%s/g00000000-deadbeef", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/g00000000-deadbeef/data-0000", dir);
    FILE *f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/g7fffffff-deadbeef", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/g7fffffff-deadbeef/centroids", dir);
    f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    co.gc_only = 1;
    rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.gc_orphans == 1, "one orphan deleted (%u)", rep.gc_orphans);
    CHECK(!exists(dir, "g00000000-deadbeef") && exists(dir, "g7fffffff-deadbeef"), "the right one");
    snap_free(&before);
    snap_free(&after);
    snap_free(&old_after);
    ivf_index_close(old);
    ivf_index_close(ix);
    s3v_storage_close(st);
}

static void test_retrain_and_split(void)
{
    char dir[512];
    ivf_compact_opts co = {.threads = 2, .tmp_dir = tmpdir};
    ivf_compact_report rep;
    /* growth: 1000 -> 2100 vectors */
    snprintf(dir, sizeof dir, "%s/growth", tmpdir);
    s3v_storage *st = build_dir(dir, 1000, IVF_METRIC_COSINE, IVF_ENC_F32, 10, 0);
    REQUIRE(st != NULL && write_puts(st, 1000, 2100, NULL, 1, 7) == S3V_OK, "grow");
    s3v_status rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.retrained && rep.retrain_reason && !strcmp(rep.retrain_reason, "growth"),
          "retrained for growth (%s)", rep.retrain_reason ? rep.retrain_reason : "no");
    CHECK(rep.nlist_after == ivf_default_nlist(2100) || rep.nlist_after > ivf_default_nlist(2100),
          "nlist for the new size (%u)", rep.nlist_after);
    ivf_manifest m;
    REQUIRE(ivf_manifest_load(st, "", S3V_NO_DEADLINE, &m, NULL) == S3V_OK, "manifest");
    CHECK(m.trained_count == 2100, "training baseline recorded (%llu)", (unsigned long long)m.trained_count);
    ivf_manifest_free(&m);
    s3v_storage_close(st);

    /* drift: 500 vectors far from everything */
    snprintf(dir, sizeof dir, "%s/drift", tmpdir);
    st = build_dir(dir, 2000, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 20, 0);
    float far[D];
    for (int j = 0; j < D; j++) far[j] = 60;
    REQUIRE(st != NULL && write_puts(st, 2000, 2500, far, 3, 8) == S3V_OK, "drift");
    rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.retrained && rep.retrain_reason && !strcmp(rep.retrain_reason, "drift"),
          "retrained for drift (%s)", rep.retrain_reason ? rep.retrain_reason : "no");
    s3v_storage_close(st);

    /* split: 800 vectors tight around one existing centre */
    snprintf(dir, sizeof dir, "%s/split", tmpdir);
    st = build_dir(dir, 2000, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 20, 0);
    REQUIRE(st != NULL && write_puts(st, 2000, 2800, centres[4], 0.5f, 9) == S3V_OK, "crowd one cluster");
    rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && !rep.retrained && rep.splits >= 1 && rep.nlist_after > 20,
          "the crowded cluster was split without retraining (%u splits, nlist %u, retrained %d)", rep.splits,
          rep.nlist_after, rep.retrained);
    ivf_index *ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    uint32_t maxc = 0;
    const ivf_centroids *c = ivf_index_centroids(ix);
    for (uint32_t i = 0; i < c->nlist; i++)
        if (c->clusters[i].count > maxc) maxc = c->clusters[i].count;
    CHECK(maxc <= 4 * 2800 / 20 + 64, "no cluster above the split limit (%u)", maxc);
    ivf_index_close(ix);
    s3v_storage_close(st);
}

static void test_empty(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    s3v_storage *st = NULL;
    REQUIRE(s3v_storage_local_open(dir, 1, &st) == S3V_OK, "storage");
    REQUIRE(ivf_create_empty(st, "", D, IVF_METRIC_EUCLIDEAN, IVF_ENC_F16, NULL, 0, 0, S3V_NO_DEADLINE,
                             NULL) == S3V_OK,
            "create");
    ivf_compact_opts co = {.threads = 1, .tmp_dir = tmpdir};
    ivf_compact_report rep;
    s3v_status rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && !rep.committed, "an empty log: nothing to do");
    for (int c = 0; c < 10; c++)
        for (int j = 0; j < D; j++) centres[c][j] = (float)(c * 3 + j);
    REQUIRE(write_puts(st, 0, 120, NULL, 1, 3) == S3V_OK, "puts");
    rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.committed && rep.retrained && !strcmp(rep.retrain_reason, "new") &&
              rep.count_after == 120 && rep.nlist_after >= 1,
          "the first compaction trains (%s, %u clusters)", s3v_errmsg(rc), rep.nlist_after);
    REQUIRE(write_deletes(st, 0, 120) == S3V_OK, "delete all");
    rc = ivf_compact(st, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.committed && rep.count_after == 0 && rep.nlist_after == 0,
          "deleting everything gives an empty index (%s)", s3v_errmsg(rc));
    ivf_index *ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    CHECK(ivf_index_manifest(ix)->nlist == 0 && ivf_index_manifest(ix)->count == 0, "empty manifest");
    float q[D] = {1};
    ivf_query qq = {.vector = q, .dim = D, .topk = 5, .deadline_ns = S3V_NO_DEADLINE};
    ivf_result r;
    CHECK(ivf_index_search(ix, &qq, &r) == S3V_OK && r.len == 0, "searching it finds nothing");
    ivf_result_free(&r);
    ivf_index_close(ix);
    REQUIRE(write_puts(st, 500, 505, NULL, 1, 4) == S3V_OK, "write again");
    ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    CHECK(ivf_index_search(ix, &qq, &r) == S3V_OK && r.len == 5, "and read again (%zu)", r.len);
    ivf_result_free(&r);
    ivf_index_close(ix);
    s3v_storage_close(st);
}

/* ---- a storage that lets another writer change the manifest right before our conditional put ---- */

typedef struct racing {
    s3v_storage base;
    s3v_storage *inner;
    int races_left;
} racing;

static s3v_status rc_get(s3v_storage *s, const char *k, uint64_t d, s3v_buf *o, s3v_obj_info *i)
{
    return s3v_storage_get(((racing *)s)->inner, k, d, o, i);
}
static s3v_status rc_get_ranges(s3v_storage *s, const s3v_range *r, size_t n, uint64_t d, s3v_range_cb cb,
                                void *a)
{
    return s3v_storage_get_ranges(((racing *)s)->inner, r, n, d, cb, a);
}
static s3v_status rc_put(s3v_storage *s, const char *k, const uint8_t *p, size_t n, const s3v_put_cond *cd,
                         uint64_t d, s3v_obj_info *i)
{
    racing *x = (racing *)s;
    if (cd && cd->mode == S3V_PUT_IF_MATCH && !strcmp(k, "manifest") && x->races_left > 0) {
        x->races_left--;
        s3v_buf b;
        s3v_buf_init(&b, 1 << 20);
        s3v_status st = s3v_storage_get(x->inner, "manifest", d, &b, NULL);
        s3v_put_cond always = {S3V_PUT_ALWAYS, NULL};
        usleep(2000); /* a new mtime: a new etag */
        if (st == S3V_OK) st = s3v_storage_put(x->inner, "manifest", b.ptr, b.len, &always, d, NULL);
        s3v_buf_free(&b);
        if (st != S3V_OK) return st;
    }
    return s3v_storage_put(x->inner, k, p, n, cd, d, i);
}
static s3v_status rc_put_file(s3v_storage *s, const char *k, const char *path, const s3v_put_cond *cd,
                              uint64_t d, s3v_obj_info *i)
{
    return s3v_storage_put_file(((racing *)s)->inner, k, path, cd, d, i);
}
static s3v_status rc_head(s3v_storage *s, const char *k, uint64_t d, s3v_obj_info *i)
{
    return s3v_storage_head(((racing *)s)->inner, k, d, i);
}
static s3v_status rc_list(s3v_storage *s, const s3v_list_req *r, uint64_t d, s3v_list_cb cb, void *a)
{
    return s3v_storage_list(((racing *)s)->inner, r, d, cb, a);
}
static s3v_status rc_del(s3v_storage *s, const char *k, uint64_t d)
{
    return s3v_storage_del(((racing *)s)->inner, k, d);
}
static void rc_describe(s3v_storage *s, const char *k, char *o, size_t n)
{
    s3v_storage_describe(((racing *)s)->inner, k, o, n);
}
static void rc_close(s3v_storage *s) { (void)s; }

static const s3v_storage_ops RACING_OPS = {"racing", rc_get,  rc_get_ranges, rc_put,      rc_put_file,
                                           rc_head,  rc_list, rc_del,        rc_describe, rc_close};

static void test_lost_race(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/race", tmpdir);
    s3v_storage *st = build_dir(dir, 800, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 8, 0);
    REQUIRE(st != NULL && write_puts(st, 800, 900, NULL, 1, 12) == S3V_OK, "puts");
    ivf_index *ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    snapshot before, after;
    snap(ix, 1000, &before);
    ivf_index_close(ix);
    racing x = {{&RACING_OPS}, st, 1};
    ivf_compact_opts co = {.threads = 1, .tmp_dir = tmpdir, .attempts = 1};
    ivf_compact_report rep;
    s3v_status rc = ivf_compact(&x.base, "", &co, &rep);
    CHECK(rc == S3V_ERR_CONFLICT && !rep.committed && rep.lost_races == 1, "one attempt, lost: CONFLICT (%s)",
          s3v_status_name(rc));
    CHECK(count_generations(dir) == 1, "the loser deleted its generation (%d folders)",
          count_generations(dir));
    x.races_left = 1;
    co.attempts = 2;
    rc = ivf_compact(&x.base, "", &co, &rep);
    CHECK(rc == S3V_OK && rep.committed && rep.lost_races == 1 && rep.attempts == 2,
          "lost once, then folded on the new manifest (%s, %d lost, %u attempts)", s3v_errmsg(rc),
          rep.lost_races, rep.attempts);
    CHECK(count_generations(dir) == 2, "the new and the retired generation only (%d)",
          count_generations(dir));
    ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    snap(ix, 1000, &after);
    int live;
    CHECK(snap_equal(&before, &after, &live) == 0 && live == 900, "contents kept (%d live)", live);
    snap_free(&before);
    snap_free(&after);
    ivf_index_close(ix);
    s3v_storage_close(st);
}

static void test_i8_stable(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/i8", tmpdir);
    s3v_storage *st = build_dir(dir, 1000, IVF_METRIC_EUCLIDEAN, IVF_ENC_I8, 10, 0);
    REQUIRE(st != NULL, "build");
    ivf_index *ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    snapshot s0, s1;
    snap(ix, 1000, &s0);
    ivf_index_close(ix);
    ivf_compact_opts co = {.threads = 1, .tmp_dir = tmpdir};
    ivf_compact_report rep;
    for (int round = 0; round < 2; round++) {
        REQUIRE(write_puts(st, 1000 + round, 1001 + round, NULL, 1, 20 + (uint64_t)round) == S3V_OK, "a put");
        CHECK(ivf_compact(st, "", &co, &rep) == S3V_OK && rep.committed, "compact %d", round);
    }
    ix = open_ix(st);
    REQUIRE(ix != NULL, "open");
    snap(ix, 1000, &s1);
    int live;
    CHECK(snap_equal(&s0, &s1, &live) == 0 && live == 1000,
          "i8 vectors are bit-identical after two compactions (the quantizer is kept)");
    snap_free(&s0);
    snap_free(&s1);
    ivf_index_close(ix);
    s3v_storage_close(st);
}

/* The logs a DeleteIndex leaves behind (closed with a drop marker) are deleted after their grace period:
 * by the compaction of an index re-created under the name, or by ivf_collect_dropped when there is none. */
static void test_dead_logs(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dead", tmpdir);
    s3v_storage *st = NULL;
    REQUIRE(s3v_storage_local_open(dir, 1, &st) == S3V_OK, "storage");
    const char *names[2] = {"vb/gone", "vb/again"};
    uint64_t t0 = s3v_wall_ms();
    for (int i = 0; i < 2; i++) {
        REQUIRE(ivf_create_empty(st, names[i], D, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 1,
                                 S3V_NO_DEADLINE, NULL) == S3V_OK,
                "create %s", names[i]);
        wal_writer *w;
        REQUIRE(wal_writer_new(st, names[i], &w) == S3V_OK, "writer");
        wal_batch b;
        wal_batch_init(&b, D);
        float v[D] = {1};
        CHECK(wal_batch_put(&b, (const uint8_t *)"a", 1, v, NULL, 0) == S3V_OK, "batch");
        CHECK(wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL) == S3V_OK, "append");
        wal_batch_free(&b);
        wal_writer_free(w);
        REQUIRE(ivf_drop(st, names[i], S3V_NO_DEADLINE) == S3V_OK, "drop %s", names[i]);
    }
    REQUIRE(ivf_create_empty(st, "vb/again", D, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 1,
                             S3V_NO_DEADLINE, NULL) == S3V_OK,
            "re-create vb/again");
    char p[600];
    CHECK(exists(dir, "vb/gone/wal") && !exists(dir, "vb/gone/manifest"),
          "a deleted index leaves its log only");
    ivf_compact_report rep;
    s3v_status rc = ivf_collect_dropped(st, "vb/gone", S3V_NO_DEADLINE, &rep);
    if (s3v_wall_ms() - t0 < 800)
        CHECK(rc == S3V_OK && rep.gc_dead_logs == 0 && rep.gc_pending == 1,
              "within the grace period it stays");
    while (s3v_wall_ms() - t0 < 1300) usleep(50 * 1000);
    rc = ivf_collect_dropped(st, "vb/gone", S3V_NO_DEADLINE, &rep);
    CHECK(rc == S3V_OK && rep.gc_dead_logs == 1 && rep.gc_objects == 2 && !exists(dir, "vb/gone"),
          "then it goes (%u logs, %llu objects)", rep.gc_dead_logs, (unsigned long long)rep.gc_objects);
    ivf_compact_opts co = {.threads = 1, .tmp_dir = tmpdir};
    rc = ivf_compact(st, "vb/again", &co, &rep);
    CHECK(rc == S3V_OK && rep.gc_dead_logs == 1,
          "the compaction of a re-created index deletes the old log (%u)", rep.gc_dead_logs);
    ivf_manifest m;
    REQUIRE(ivf_manifest_load(st, "vb/again", S3V_NO_DEADLINE, &m, NULL) == S3V_OK, "manifest");
    char inc[17];
    ivf_incarnation_format(m.incarnation, inc);
    DIR *d;
    int others = 0;
    snprintf(p, sizeof p, "%s/vb/again/wal", dir);
    d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strcmp(e->d_name, inc) != 0) others++;
    if (d) closedir(d);
    CHECK(others == 0, "only the current incarnation's log is left (%d others)", others);
    ivf_manifest_free(&m);
    s3v_storage_close(st);
}

int main(void)
{
    kern_init(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-test-compact-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_fold_and_gc();
    test_retrain_and_split();
    test_empty();
    test_lost_race();
    test_i8_stable();
    test_dead_logs();
    tu_rm_rf(tmpdir);
    return TEST_SUMMARY();
}
