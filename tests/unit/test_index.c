/* tests/unit/test_index.c: build small indexes in a temporary folder for every metric and encoding and
 * check search (against brute force), filters, get, list, errors, corruption, determinism, overwrite. */
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
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"
#include "testutil.h"

#define N     3000
#define D     16
#define NRARE 5

static char tmpdir[256];
static float data[N * D];

static int is_rare(int i) { return i % 611 == 17; }

static void write_input(const char *path, int dup)
{
    FILE *f = fopen(path, "w");
    for (int i = 0; i < N; i++) {
        fprintf(f, "{\"key\":\"v%d\",\"data\":[", dup && i == 2999 ? 5 : i);
        for (int j = 0; j < D; j++) fprintf(f, "%s%.9g", j ? "," : "", data[i * D + j]);
        fprintf(f, "],\"metadata\":{\"genre\":\"%c\",\"year\":%d%s,\"tags\":[\"t%d\",\"t%d\"]}}\n",
                'a' + i % 4, 1980 + i % 40, is_rare(i) ? ",\"rare\":true" : "", i % 3, i % 5);
    }
    fclose(f);
}

static void make_data(void)
{
    s3v_rng r;
    s3v_rng_seed(&r, 42);
    float centres[20][D];
    for (int c = 0; c < 20; c++)
        for (int j = 0; j < D; j++) centres[c][j] = (float)(s3v_rng_unit(&r) * 20 - 10);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            data[i * D + j] = centres[i % 20][j] + (float)((s3v_rng_unit(&r) - 0.5) * 4 + (j == 0 ? 0.3 : 0));
}

static float true_dist(ivf_metric m, const float *q, const float *x)
{
    double dot = 0, qq = 0, xx = 0, l2 = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)q[j] * x[j];
        qq += (double)q[j] * q[j];
        xx += (double)x[j] * x[j];
        l2 += ((double)q[j] - x[j]) * ((double)q[j] - x[j]);
    }
    if (m == IVF_METRIC_EUCLIDEAN) return (float)sqrt(l2);
    if (m == IVF_METRIC_COSINE) return (float)(1 - dot / sqrt(qq * xx));
    return (float)-dot;
}

/* brute-force top k over rows passing `pred` (NULL = all): writes row ids */
static int brute(ivf_metric m, const float *q, int k, int (*pred)(int), int *out)
{
    int n = 0;
    double best[64]; /* float distances: their order is the same in double */
    for (int i = 0; i < N; i++) {
        if (pred && !pred(i)) continue;
        tu_topk_insert(best, out, &n, k, true_dist(m, q, data + i * D), i);
    }
    return n;
}

static int key_row(const ivf_hit *h)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)h->key_len, (const char *)h->key);
    return buf[0] == 'v' ? atoi(buf + 1) : -1;
}

static int genre_a(int i) { return i % 4 == 0; }

static s3v_status build_at(const char *dir, ivf_metric m, ivf_encoding e, int overwrite, const char *input,
                           ivf_build_report *rep)
{
    s3v_storage *st;
    S3V_TRY(s3v_storage_local_open(dir, 1, &st));
    vec_reader *r;
    s3v_status rc = vec_reader_open(input, NULL, &r);
    if (rc == S3V_OK) {
        ivf_build_opts o = {.metric = m,
                            .encoding = e,
                            .nlist = 30,
                            .seed = 7,
                            .threads = 2,
                            .tmp_dir = tmpdir,
                            .overwrite = overwrite};
        rc = ivf_build(st, "", r, &o, rep);
        vec_reader_close(r);
    }
    s3v_storage_close(st);
    return rc;
}

static void check_index(ivf_metric m, ivf_encoding e)
{
    char dir[512], input[512];
    snprintf(input, sizeof input, "%s/in.jsonl", tmpdir);
    snprintf(dir, sizeof dir, "%s/idx-%d-%d", tmpdir, (int)m, (int)e);
    ivf_build_report rep;
    REQUIRE(build_at(dir, m, e, 0, input, &rep) == S3V_OK, "build %d/%d: %s", m, e,
            s3v_errmsg(S3V_ERR_INVALID));
    CHECK(rep.count == N && rep.nlist >= 30, "report count %llu nlist %u", (unsigned long long)rep.count,
          rep.nlist);
    s3v_storage *st;
    REQUIRE(s3v_storage_local_open(dir, 0, &st) == S3V_OK, "open storage");
    cluster_cache *cache;
    REQUIRE(cluster_cache_new(1 << 20, &cache) == S3V_OK, "cache");
    ivf_index *ix;
    REQUIRE(ivf_index_open(st, "", cache, S3V_NO_DEADLINE, &ix) == S3V_OK, "open: %s",
            s3v_errmsg(S3V_ERR_INVALID));
    const ivf_manifest *man = ivf_index_manifest(ix);
    CHECK(man->count == N && man->dimension == D && man->metric == m && man->encoding == e, "manifest");

    /* exact and default-probe search against brute force */
    double exact_recall = 0, probe_recall = 0, max_rel = 0;
    int nq = 40;
    for (int qi = 0; qi < nq; qi++) {
        float q[D];
        for (int j = 0; j < D; j++) q[j] = data[(qi * 73) % N * D + j] + 0.05f * (float)((j * 7 + qi) % 5);
        int truth[10];
        brute(m, q, 10, NULL, truth);
        for (int exact = 1; exact >= 0; exact--) {
            ivf_query qq = {
                .vector = q, .dim = D, .topk = 10, .exact = exact, .deadline_ns = S3V_NO_DEADLINE};
            ivf_result r;
            REQUIRE(ivf_index_search(ix, &qq, &r) == S3V_OK, "search: %s", s3v_errmsg(S3V_ERR_INVALID));
            int hit = 0;
            for (size_t a = 0; a < r.len; a++) {
                int row = key_row(&r.hits[a]);
                for (int b = 0; b < 10; b++) hit += row == truth[b];
                if (exact && row >= 0) {
                    float td = true_dist(m, q, data + row * D);
                    /* cosine distances are near 0 for near neighbours: compare absolutely */
                    double rel = m == IVF_METRIC_COSINE ? fabs(td - r.hits[a].distance)
                                                        : fabs(td - r.hits[a].distance) / (fabs(td) + 1e-3);
                    if (rel > max_rel) max_rel = rel;
                }
                if (a) CHECK(r.hits[a].distance >= r.hits[a - 1].distance, "sorted by distance");
            }
            CHECK(r.len == 10, "10 results");
            if (exact)
                exact_recall += hit / 10.0;
            else
                probe_recall += hit / 10.0;
            if (exact) CHECK(r.stats.clusters_scanned == man->nlist, "exact scans every cluster");
            ivf_result_free(&r);
        }
    }
    exact_recall /= nq;
    probe_recall /= nq;
    double want_exact = e == IVF_ENC_F32 ? 0.999 : e == IVF_ENC_F16 ? 0.98 : 0.85;
    double tol = m == IVF_METRIC_COSINE ? (e == IVF_ENC_F32   ? 1e-5
                                           : e == IVF_ENC_F16 ? 1e-3
                                                              : 2e-2)
                                        : (e == IVF_ENC_F32   ? 1e-4
                                           : e == IVF_ENC_F16 ? 2e-2
                                                              : 0.25);
    CHECK(exact_recall >= want_exact, "metric %d enc %d: exact recall %.3f < %.3f", m, e, exact_recall,
          want_exact);
    CHECK(max_rel <= tol, "metric %d enc %d: distance error %.2g > %.2g", m, e, max_rel, tol);
    CHECK(probe_recall >= want_exact - 0.1, "metric %d enc %d: default-probe recall %.3f", m, e,
          probe_recall);

    /* filters: the rare vectors are found wherever they are, even probing one cluster */
    s3v_filter *rare, *ga, *none;
    const char *f1 = "{\"rare\": true}", *f2 = "{\"genre\": {\"$eq\": \"a\"}}",
               *f3 = "{\"year\": {\"$gt\": 5000}}";
    REQUIRE(filter_compile_text(f1, strlen(f1), &rare) == S3V_OK, "filter %s", f1);
    REQUIRE(filter_compile_text(f2, strlen(f2), &ga) == S3V_OK, "filter %s", f2);
    REQUIRE(filter_compile_text(f3, strlen(f3), &none) == S3V_OK, "filter %s", f3);
    float q0[D];
    memcpy(q0, data, sizeof q0);
    ivf_query fq = {.vector = q0,
                    .dim = D,
                    .topk = 10,
                    .nprobe = 1,
                    .filter = rare,
                    .want_metadata = 1,
                    .deadline_ns = S3V_NO_DEADLINE};
    ivf_result r;
    REQUIRE(ivf_index_search(ix, &fq, &r) == S3V_OK, "filtered search");
    CHECK(r.len == NRARE, "all %d rare vectors found (got %zu)", NRARE, r.len);
    for (size_t a = 0; a < r.len; a++) {
        CHECK(is_rare(key_row(&r.hits[a])), "a filtered hit matches the filter");
        CHECK(r.hits[a].meta && memmem(r.hits[a].meta, r.hits[a].meta_len, "\"rare\":true", 11),
              "metadata returned");
    }
    CHECK(r.stats.rounds > 1 && r.stats.clusters_scanned == man->nlist,
          "probing continued to the whole index");
    ivf_result_free(&r);
    fq.filter = ga;
    fq.exact = 1;
    fq.topk = 10;
    REQUIRE(ivf_index_search(ix, &fq, &r) == S3V_OK, "filtered exact search");
    int truth[10];
    brute(m, q0, 10, genre_a, truth);
    int hit = 0;
    for (size_t a = 0; a < r.len; a++) {
        CHECK(genre_a(key_row(&r.hits[a])), "genre a");
        for (int b = 0; b < 10; b++) hit += key_row(&r.hits[a]) == truth[b];
    }
    /* i8 codes reorder near ties: one query is allowed 4 swaps there; f32/f16 must match */
    CHECK(r.len == 10 && hit >= (e == IVF_ENC_I8 ? 6 : 10),
          "metric %d enc %d: filtered exact equals brute force (%d/10)", m, e, hit);
    ivf_result_free(&r);
    fq.filter = none;
    fq.exact = 0;
    REQUIRE(ivf_index_search(ix, &fq, &r) == S3V_OK, "unmatched filter");
    CHECK(r.len == 0 && r.stats.clusters_scanned == man->nlist, "no match: empty after scanning everything");
    ivf_result_free(&r);
    filter_free(rare);
    filter_free(ga);
    filter_free(none);

    /* get by key, in request order, missing keys left out */
    const uint8_t *keys[3] = {(const uint8_t *)"v17", (const uint8_t *)"nope", (const uint8_t *)"v2999"};
    size_t lens[3] = {3, 4, 5};
    REQUIRE(ivf_index_get(ix, keys, lens, 3, 1, 1, S3V_NO_DEADLINE, &r) == S3V_OK, "get");
    REQUIRE(r.len == 2, "two of three keys found (%zu)", r.len);
    CHECK(key_row(&r.hits[0]) == 17 && key_row(&r.hits[1]) == 2999, "request order");
    double derr = 0;
    for (int j = 0; j < D; j++) derr = fmax(derr, fabs(r.hits[0].data[j] - data[17 * D + j]));
    CHECK(derr <= (e == IVF_ENC_F32   ? 0
                   : e == IVF_ENC_F16 ? 0.01
                                      : 0.1),
          "get returns the data (err %g)", derr);
    CHECK(r.hits[0].meta && memmem(r.hits[0].meta, r.hits[0].meta_len, "\"year\":1997", 11),
          "get returns metadata");
    ivf_result_free(&r);

    /* list: pages cover every key once; segments partition the index */
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    int total = 0, dups = 0;
    for (uint32_t seg = 0; seg < 3; seg++) {
        ivf_list_req lr = {
            .segment_count = 3, .segment_index = seg, .max_results = 97, .deadline_ns = S3V_NO_DEADLINE};
        char tok[IVF_TOKEN_MAX], prev[IVF_TOKEN_MAX];
        do {
            REQUIRE(ivf_index_list(ix, &lr, &r, tok) == S3V_OK, "list: %s", s3v_errmsg(S3V_ERR_INVALID));
            CHECK(r.len <= 97, "page size");
            for (size_t a = 0; a < r.len; a++) {
                int row = key_row(&r.hits[a]);
                if (row >= 0 && row < N) dups += seen[row]++;
                total++;
            }
            ivf_result_free(&r);
            snprintf(prev, sizeof prev, "%s", tok);
            lr.next_token = prev;
            if (tok[0] && seg == 0) {
                ivf_list_req bad = lr;
                bad.segment_index = 1;
                CHECK(ivf_index_list(ix, &bad, &r, tok) == S3V_ERR_INVALID, "token from another segment");
                snprintf(tok, sizeof tok, "%s", prev);
            }
        } while (tok[0]);
    }
    CHECK(total == N && dups == 0, "listed %d keys with %d duplicates", total, dups);
    ivf_list_req bad = {.next_token = "1.g00000009-00000000.1.0.0.0", .deadline_ns = S3V_NO_DEADLINE};
    char tok[IVF_TOKEN_MAX];
    CHECK(ivf_index_list(ix, &bad, &r, tok) == S3V_ERR_INVALID, "token from another generation");

    /* bad queries */
    float qbad[D + 1] = {0};
    ivf_query bq = {.vector = qbad, .dim = D + 1, .topk = 10, .deadline_ns = S3V_NO_DEADLINE};
    CHECK(ivf_index_search(ix, &bq, &r) == S3V_ERR_DIMENSION, "wrong dimension");
    bq.dim = D;
    qbad[3] = NAN;
    CHECK(ivf_index_search(ix, &bq, &r) == S3V_ERR_INVALID, "NaN");
    qbad[3] = 0;
    if (m == IVF_METRIC_COSINE)
        CHECK(ivf_index_search(ix, &bq, &r) == S3V_ERR_INVALID, "zero vector under cosine");
    qbad[0] = 1;
    bq.topk = 0;
    CHECK(ivf_index_search(ix, &bq, &r) == S3V_ERR_INVALID, "topk 0");
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);
}

static size_t read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    *out = malloc((size_t)n + 1);
    size_t got = fread(*out, 1, (size_t)n, f);
    fclose(f);
    return got;
}

/* the generation folder name inside an index folder */
static int find_gen(const char *dir, char *gen, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] == 'g') {
            snprintf(gen, n, "%s", e->d_name);
            found++;
        }
    closedir(d);
    return found;
}

static void test_lifecycle(void)
{
    char input[512], dir[512], dir2[512], path[1100], gen[300], gen2[300];
    snprintf(input, sizeof input, "%s/in.jsonl", tmpdir);
    snprintf(dir, sizeof dir, "%s/life", tmpdir);
    snprintf(dir2, sizeof dir2, "%s/life2", tmpdir);
    ivf_build_report rep;
    REQUIRE(build_at(dir, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 0, input, &rep) == S3V_OK, "build");
    REQUIRE(build_at(dir2, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 0, input, &rep) == S3V_OK, "build again");
    /* same seed and input: identical objects */
    REQUIRE(find_gen(dir, gen, sizeof gen) == 1 && find_gen(dir2, gen2, sizeof gen2) == 1,
            "one generation each");
    const char *objs[] = {"centroids", "data-0000", "keymap"};
    for (int i = 0; i < 3; i++) {
        uint8_t *a = NULL, *b = NULL;
        snprintf(path, sizeof path, "%s/%s/%s", dir, gen, objs[i]);
        size_t na = read_file(path, &a);
        snprintf(path, sizeof path, "%s/%s/%s", dir2, gen2, objs[i]);
        size_t nb = read_file(path, &b);
        CHECK(na > 0 && na == nb && memcmp(a, b, na) == 0, "%s is identical across builds with one seed",
              objs[i]);
        free(a);
        free(b);
    }
    /* an existing index is not replaced without overwrite */
    CHECK(build_at(dir, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 0, input, &rep) == S3V_ERR_CONFLICT, "exists");
    REQUIRE(build_at(dir, IVF_METRIC_COSINE, IVF_ENC_F32, 1, input, &rep) == S3V_OK, "overwrite");
    CHECK(strncmp(rep.generation, "g00000002-", 10) == 0, "generation counter advanced: %s", rep.generation);
    char g3[300];
    CHECK(find_gen(dir, g3, sizeof g3) == 1 && strcmp(g3, rep.generation) == 0, "old generation deleted");

    /* a flipped byte in a data object is reported with the object's name */
    snprintf(path, sizeof path, "%s/%s/data-0000", dir2, gen2);
    FILE *f = fopen(path, "r+b");
    fseek(f, 5000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 5000, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    s3v_storage *st;
    REQUIRE(s3v_storage_local_open(dir2, 0, &st) == S3V_OK, "storage");
    ivf_index *ix;
    REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix) == S3V_OK, "open");
    float q[D] = {1};
    ivf_query qq = {.vector = q, .dim = D, .topk = 5, .exact = 1, .deadline_ns = S3V_NO_DEADLINE};
    ivf_result r;
    s3v_status s = ivf_index_search(ix, &qq, &r);
    CHECK(s == S3V_ERR_CORRUPT, "corrupt data object detected (%s)", s3v_status_name(s));
    CHECK(strstr(s3v_errmsg(s), "data-0000") != NULL, "message names the object: %s", s3v_errmsg(s));
    ivf_index_close(ix);
    s3v_storage_close(st);

    /* duplicate keys are refused */
    snprintf(input, sizeof input, "%s/dup.jsonl", tmpdir);
    write_input(input, 1);
    snprintf(dir, sizeof dir, "%s/dup", tmpdir);
    s = build_at(dir, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, 0, input, &rep);
    CHECK(s == S3V_ERR_INVALID && strstr(s3v_errmsg(s), "duplicate key 'v5'"), "duplicate: %s",
          s3v_errmsg(s));
    char g4[300];
    CHECK(find_gen(dir, g4, sizeof g4) == 0, "a failed build publishes nothing");
}

int main(void)
{
    kern_init(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-test-index-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    make_data();
    char input[512];
    snprintf(input, sizeof input, "%s/in.jsonl", tmpdir);
    write_input(input, 0);
    for (int m = 0; m < 3; m++)
        for (int e = 0; e < 3; e++) check_index((ivf_metric)m, (ivf_encoding)e);
    test_lifecycle();
    tu_rm_rf(tmpdir);
    return TEST_SUMMARY();
}
