/* tests/unit/test_handler.c: the handler end to end on a local-folder deployment: each operation's
 * answer equals the engine's own answer for the same request; every malformed request field gets a
 * ValidationException naming it (and names that could escape an index never touch storage); the
 * HTTP (proxy) and direct (payload / function error) shapes; pagination covers every vector exactly
 * once; oversized responses become errors; a replaced index generation is picked up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/rng.h"
#include "engine/build.h"
#include "engine/filter.h"
#include "engine/index.h"
#include "engine/kernels.h"
#include "handler/handler.h"
#include "tests/unit/testutil.h"

#define N  1500
#define D  16
#define VB "demo-bucket"
#define IX "demo-index"

static char tmpdir[256];
static char root[320];
static float data[N * D];

/* ---- a storage wrapper that counts calls, to prove some requests never reach storage ---- */

typedef struct counting {
    s3v_storage base;
    s3v_storage *inner;
    int calls;
} counting;

static s3v_status c_get(s3v_storage *s, const char *k, uint64_t d, s3v_buf *o, s3v_obj_info *i)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_get(c->inner, k, d, o, i);
}
static s3v_status c_get_ranges(s3v_storage *s, const s3v_range *r, size_t n, uint64_t d, s3v_range_cb cb,
                               void *a)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_get_ranges(c->inner, r, n, d, cb, a);
}
static s3v_status c_put(s3v_storage *s, const char *k, const uint8_t *p, size_t n, const s3v_put_cond *cd,
                        uint64_t d, s3v_obj_info *i)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_put(c->inner, k, p, n, cd, d, i);
}
static s3v_status c_put_file(s3v_storage *s, const char *k, const char *path, const s3v_put_cond *cd,
                             uint64_t d, s3v_obj_info *i)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_put_file(c->inner, k, path, cd, d, i);
}
static s3v_status c_head(s3v_storage *s, const char *k, uint64_t d, s3v_obj_info *i)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_head(c->inner, k, d, i);
}
static s3v_status c_list(s3v_storage *s, const s3v_list_req *r, uint64_t d, s3v_list_cb cb, void *a)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_list(c->inner, r, d, cb, a);
}
static s3v_status c_del(s3v_storage *s, const char *k, uint64_t d)
{
    counting *c = (counting *)s;
    c->calls++;
    return s3v_storage_del(c->inner, k, d);
}
static void c_describe(s3v_storage *s, const char *k, char *o, size_t n)
{
    s3v_storage_describe(((counting *)s)->inner, k, o, n);
}
static void c_close(s3v_storage *s) { (void)s; }

static const s3v_storage_ops COUNTING_OPS = {"counting", c_get,  c_get_ranges, c_put,      c_put_file,
                                             c_head,     c_list, c_del,        c_describe, c_close};
static counting cst;

/* ---- data and index ---- */

static const char *GENRES[] = {"drama", "comedy", "news"};

static void write_input(const char *path, float scale)
{
    FILE *f = fopen(path, "w");
    for (int i = 0; i < N; i++) {
        fprintf(f, "{\"key\":\"doc-%d\",\"data\":[", i);
        for (int j = 0; j < D; j++) fprintf(f, "%s%.9g", j ? "," : "", data[i * D + j] * scale);
        fprintf(f, "],\"metadata\":{\"genre\":\"%s\",\"year\":%d}}\n", GENRES[i % 3], 1990 + i % 35);
    }
    fclose(f);
}

static s3v_status build(const char *prefix, const char *input, int overwrite)
{
    s3v_storage *st;
    S3V_TRY(s3v_storage_local_open(root, 1, &st));
    vec_reader *r;
    s3v_status rc = vec_reader_open(input, NULL, &r);
    if (rc == S3V_OK) {
        ivf_build_opts o = {.metric = IVF_METRIC_COSINE,
                            .nlist = 24,
                            .seed = 3,
                            .threads = 2,
                            .tmp_dir = tmpdir,
                            .overwrite = overwrite};
        rc = ivf_build(st, prefix, r, &o, NULL);
        vec_reader_close(r);
    }
    s3v_storage_close(st);
    return rc;
}

/* ---- invoking ---- */

static const hd_invocation INV = {"req-1", "arn:aws:lambda:eu-west-1:111122223333:function:fn",
                                  S3V_NO_DEADLINE};

/* Invokes and parses the payload; *fe = function_error. Caller deletes the result. */
static cJSON *invoke(hd_handler *h, const char *event, hd_response *resp)
{
    size_t n = strlen(event);
    uint8_t *p = malloc(n);
    memcpy(p, event, n);
    s3v_status st = hd_handler_invoke(h, &INV, p, n, resp);
    free(p);
    if (st != S3V_OK || !resp->payload) return NULL;
    return cJSON_ParseWithLength((const char *)resp->payload, resp->payload_size);
}

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void query_text(char *out, size_t cap, const float *q, int topk, const char *extra)
{
    int n = snprintf(out, cap,
                     "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                     "\",\"topK\":%d,\"queryVector\":{\"float32\":[",
                     topk);
    for (int j = 0; j < D; j++) n += snprintf(out + n, cap - (size_t)n, "%s%.9g", j ? "," : "", q[j]);
    snprintf(out + n, cap - (size_t)n, "]}%s}", extra);
}

/* Opens the index directly for reference answers. */
static ivf_index *open_ref(s3v_storage **st, cluster_cache **cache)
{
    if (s3v_storage_local_open(root, 0, st) != S3V_OK) return NULL;
    if (cluster_cache_new(1 << 24, cache) != S3V_OK) return NULL;
    ivf_index *ix = NULL;
    if (ivf_index_open(*st, VB "/" IX, *cache, S3V_NO_DEADLINE, &ix) != S3V_OK) return NULL;
    return ix;
}

static void close_ref(ivf_index *ix, s3v_storage *st, cluster_cache *cache)
{
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);
}

/* ---- tests ---- */

static void test_query_equals_engine(hd_handler *h)
{
    s3v_storage *st;
    cluster_cache *cache;
    ivf_index *ix = open_ref(&st, &cache);
    REQUIRE(ix != NULL, "reference index");
    char ev[4096];
    for (int t = 0; t < 20; t++) {
        const float *q = data + (t * 37 % N) * D;
        int topk = 1 + t * 5;
        query_text(ev, sizeof ev, q, topk, ",\"returnDistance\":true,\"returnMetadata\":true");
        hd_response resp;
        cJSON *j = invoke(h, ev, &resp);
        REQUIRE(j && resp.http_status == 200 && !resp.error_type, "query %d: %.200s", t,
                resp.payload ? (const char *)resp.payload : "");
        CHECK(strcmp(str_of(j, "distanceMetric"), "cosine") == 0, "metric");
        ivf_query iq = {.vector = q,
                        .dim = D,
                        .topk = (uint32_t)topk,
                        .want_metadata = 1,
                        .deadline_ns = S3V_NO_DEADLINE};
        ivf_result ref;
        REQUIRE(ivf_index_search(ix, &iq, &ref) == S3V_OK, "engine search");
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(j, "vectors");
        CHECK(cJSON_GetArraySize(vs) == (int)ref.len, "query %d: %d results, engine %zu", t,
              cJSON_GetArraySize(vs), ref.len);
        int i = 0;
        for (const cJSON *v = vs ? vs->child : NULL; v && i < (int)ref.len; v = v->next, i++) {
            const ivf_hit *hh = &ref.hits[i];
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)hh->key_len, (const char *)hh->key);
            CHECK(strcmp(str_of(v, "key"), key) == 0, "query %d rank %d: %s vs %s", t, i, str_of(v, "key"),
                  key);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(v, "distance");
            CHECK(cJSON_IsNumber(d) && (float)d->valuedouble == hh->distance, "distance %d exact", i);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "metadata");
            char *mt = cJSON_PrintUnformatted(m);
            CHECK(mt && hh->meta && strlen(mt) == hh->meta_len && memcmp(mt, hh->meta, hh->meta_len) == 0,
                  "metadata %d", i);
            free(mt);
        }
        ivf_result_free(&ref);
        cJSON_Delete(j);
    }
    /* no returnDistance / returnMetadata: keys only (the S3 Vectors defaults) */
    query_text(ev, sizeof ev, data, 3, "");
    hd_response resp;
    cJSON *j = invoke(h, ev, &resp);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "vectors"), 0);
    CHECK(first && !cJSON_GetObjectItemCaseSensitive(first, "distance") &&
              !cJSON_GetObjectItemCaseSensitive(first, "metadata") &&
              !cJSON_GetObjectItemCaseSensitive(j, "statistics"),
          "defaults: key only");
    cJSON_Delete(j);

    /* filter: every result matches, and the answer is the engine's filtered answer */
    query_text(
        ev, sizeof ev, data + 5 * D, 10,
        ",\"returnMetadata\":true,\"returnStatistics\":true,\"filter\":{\"$and\":[{\"genre\":\"news\"},"
        "{\"year\":{\"$gte\":2010}}]}");
    j = invoke(h, ev, &resp);
    REQUIRE(j && resp.http_status == 200, "filtered query");
    s3v_filter *f;
    const char *ft = "{\"$and\":[{\"genre\":\"news\"},{\"year\":{\"$gte\":2010}}]}";
    REQUIRE(filter_compile_text(ft, strlen(ft), &f) == S3V_OK, "filter");
    ivf_query iq = {
        .vector = data + 5 * D, .dim = D, .topk = 10, .filter = f, .deadline_ns = S3V_NO_DEADLINE};
    ivf_result ref;
    REQUIRE(ivf_index_search(ix, &iq, &ref) == S3V_OK, "engine filtered search");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(j, "vectors");
    CHECK(cJSON_GetArraySize(vs) == 10 && ref.len == 10, "10 filtered results");
    int i = 0;
    for (const cJSON *v = vs ? vs->child : NULL; v; v = v->next, i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "metadata");
        CHECK(strcmp(str_of(m, "genre"), "news") == 0 &&
                  cJSON_GetObjectItemCaseSensitive(m, "year")->valuedouble >= 2010,
              "result %d matches the filter", i);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)ref.hits[i].key_len, (const char *)ref.hits[i].key);
        CHECK(i < (int)ref.len && strcmp(str_of(v, "key"), key) == 0, "filtered rank %d equals engine", i);
    }
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(j, "statistics");
    CHECK(cJSON_GetObjectItemCaseSensitive(stats, "clustersScanned") &&
              cJSON_GetObjectItemCaseSensitive(stats, "clustersScanned")->valueint >= 1 &&
              cJSON_GetObjectItemCaseSensitive(stats, "filterEvaluations")->valuedouble > 0 &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(stats, "indexGeneration")),
          "statistics extension");
    ivf_result_free(&ref);
    filter_free(f);
    cJSON_Delete(j);

    /* nprobe extension: the answer equals the engine's with the same nprobe (here: exact, all clusters) */
    query_text(ev, sizeof ev, data + 9 * D, 10, ",\"nprobe\":100000,\"returnStatistics\":true");
    j = invoke(h, ev, &resp);
    stats = cJSON_GetObjectItemCaseSensitive(j, "statistics");
    CHECK(stats && cJSON_GetObjectItemCaseSensitive(stats, "nprobe")->valueint ==
                       (int)ivf_index_manifest(ix)->nlist,
          "nprobe clamped to nlist");
    cJSON_Delete(j);
    query_text(ev, sizeof ev, data + 9 * D, 10, ",\"recallTarget\":0.5,\"returnStatistics\":true");
    j = invoke(h, ev, &resp);
    stats = cJSON_GetObjectItemCaseSensitive(j, "statistics");
    CHECK(stats && cJSON_GetObjectItemCaseSensitive(stats, "nprobe")->valueint ==
                       (int)ivf_index_nprobe_for_recall(ix, 0.5f),
          "recallTarget uses the calibration");
    cJSON_Delete(j);
    close_ref(ix, st, cache);
}

/* Expects a ValidationException in payload mode naming `path`; returns storage calls made. */
static int expect_validation(hd_handler *h, const char *event, const char *path)
{
    hd_response resp;
    int before = cst.calls;
    cJSON *j = invoke(h, event, &resp);
    CHECK(j != NULL, "payload for %.80s", event);
    CHECK(resp.http_status == 400 && resp.error_type && strcmp(resp.error_type, "ValidationException") == 0,
          "validation error for %.120s (status %d, %s)", event, resp.http_status,
          resp.error_type ? resp.error_type : "none");
    CHECK(strcmp(str_of(j, "errorType"), "ValidationException") == 0, "errorType in payload");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "statusCode");
    CHECK(cJSON_IsNumber(sc) && sc->valueint == 400, "statusCode 400");
    const cJSON *fl = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "fieldList"), 0);
    if (path) {
        CHECK(strcmp(str_of(fl, "path"), path) == 0, "path '%s' (want '%s') for %.120s: %s",
              str_of(fl, "path"), path, event, str_of(j, "errorMessage"));
    }
    cJSON_Delete(j);
    return cst.calls - before;
}

#define Q(extra) \
    "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"" extra "}"
#define QV16 "\"queryVector\":{\"float32\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}"

static void test_validation(hd_handler *h)
{
    expect_validation(h, Q(",\"topK\":0," QV16), "topK");
    expect_validation(h, Q(",\"topK\":101," QV16), "topK");
    expect_validation(h, Q(",\"topK\":\"5\"," QV16), "topK");
    expect_validation(h, Q(",\"topK\":2.5," QV16), "topK");
    expect_validation(h, Q(",\"topK\":true," QV16), "topK");
    expect_validation(h, Q("," QV16), "topK");
    expect_validation(h, Q(",\"topK\":3"), "queryVector");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":[1,2]"), "queryVector");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":\"1,2\"}"), "queryVector.float32");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":[]}"), "queryVector.float32");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float64\":[1]}"), "queryVector.float32");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":[1,\"2\"]}"), "queryVector.float32[1]");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":[1,1e39]}"), "queryVector.float32[1]");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":[1,2,3]}"), "queryVector");
    expect_validation(h, Q(",\"topK\":3,\"queryVector\":{\"float32\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"),
                      "queryVector");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"returnMetadata\":\"yes\""), "returnMetadata");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"returnDistance\":1"), "returnDistance");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"filter\":{\"genre\":{\"$bad\":1}}"), "filter");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"filter\":[]"), "filter");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"filter\":\"genre=drama\""), "filter");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"nprobe\":0"), "nprobe");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"recallTarget\":2"), "recallTarget");
    expect_validation(h, Q(",\"topK\":3," QV16 ",\"recallTarget\":0.9,\"nprobe\":3"), "recallTarget");

    /* names: rejected before any storage access */
    const char *names[][2] = {
        {"{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB
         "\",\"indexName\":\"../x\",\"topK\":1," QV16 "}",
         "indexName"},
        {"{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"..\",\"indexName\":\"" IX
         "\",\"topK\":1," QV16 "}",
         "vectorBucketName"},
        {"{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"a/../../b\"}",
         "indexName"},
        {"{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "/x\",\"indexName\":\"" IX "\"}",
         "vectorBucketName"},
        {"{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"..\"}", "indexName"},
        {"{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":5}", "indexName"},
        {"{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\"}", "indexName"},
        {"{\"operation\":\"GetIndex\",\"indexName\":\"" IX "\"}", "vectorBucketName"},
        {"{\"operation\":\"GetIndex\",\"indexArn\":\"arn:aws:s3vectors:us-east-1:123456789012:bucket/" VB
         "/index/../x\"}",
         "indexArn"},
        {"{\"operation\":\"GetIndex\",\"indexArn\":\"arn:aws:s3vectors:us-east-1:123456789012:bucket/" VB
         "/index/other\",\"indexName\":\"" IX "\"}",
         "indexArn"},
        {"{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"../" VB "\"}", "vectorBucketName"},
        {"{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"prefix\":\"../\"}", "prefix"},
        {"{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"nextToken\":\"../x\"}",
         "nextToken"},
        {"{\"operation\":\"ListIndexes\"}", "vectorBucketName"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK(expect_validation(h, names[i][0], names[i][1]) == 0, "no storage access for %s", names[i][0]);

    /* GetVectors */
    const char *gv = "{\"operation\":\"GetVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"";
    char ev[8192];
    snprintf(ev, sizeof ev, "%s}", gv);
    expect_validation(h, ev, "keys");
    snprintf(ev, sizeof ev, "%s,\"keys\":[]}", gv);
    expect_validation(h, ev, "keys");
    snprintf(ev, sizeof ev, "%s,\"keys\":\"doc-1\"}", gv);
    expect_validation(h, ev, "keys");
    snprintf(ev, sizeof ev, "%s,\"keys\":[\"doc-1\",7]}", gv);
    expect_validation(h, ev, "keys[1]");
    snprintf(ev, sizeof ev, "%s,\"keys\":[\"\"]}", gv);
    expect_validation(h, ev, "keys[0]");
    snprintf(ev, sizeof ev, "%s,\"keys\":[\"a\"],\"returnData\":\"true\"}", gv);
    expect_validation(h, ev, "returnData");
    int n = snprintf(ev, sizeof ev, "%s,\"keys\":[", gv);
    for (int i = 0; i < 101; i++) n += snprintf(ev + n, sizeof ev - (size_t)n, "%s\"k%d\"", i ? "," : "", i);
    snprintf(ev + n, sizeof ev - (size_t)n, "]}");
    expect_validation(h, ev, "keys");

    /* ListVectors */
    const char *lv =
        "{\"operation\":\"ListVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"";
    static const char *lv_bad[][2] = {
        {",\"maxResults\":0}", "maxResults"},
        {",\"maxResults\":1001}", "maxResults"},
        {",\"maxResults\":[10]}", "maxResults"},
        {",\"segmentCount\":17,\"segmentIndex\":0}", "segmentCount"},
        {",\"segmentCount\":2}", "segmentIndex"},
        {",\"segmentIndex\":1}", "segmentCount"},
        {",\"segmentCount\":2,\"segmentIndex\":2}", "segmentIndex"},
        {",\"segmentCount\":2,\"segmentIndex\":-1}", "segmentIndex"},
        {",\"nextToken\":\"\"}", "nextToken"},
        {",\"nextToken\":\"not-a-token\"}", "nextToken"},
        {",\"nextToken\":42}", "nextToken"},
        {",\"returnMetadata\":null,\"returnData\":{}}", "returnData"},
    };
    for (size_t i = 0; i < sizeof lv_bad / sizeof *lv_bad; i++) {
        snprintf(ev, sizeof ev, "%s%s", lv, lv_bad[i][0]);
        expect_validation(h, ev, lv_bad[i][1]);
    }
    /* ListIndexes */
    expect_validation(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"maxResults\":501}",
                      "maxResults");
    expect_validation(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"prefix\":\"A\"}",
                      "prefix");
    expect_validation(h,
                      "{\"operation\":\"ListIndexes\",\"vectorBucketArn\":\"arn:aws:s3vectors:us-east-1:"
                      "123456789012:bucket/other\",\"vectorBucketName\":\"" VB "\"}",
                      "vectorBucketArn");
    /* malformed JSON and wrong shapes */
    expect_validation(h, "{\"operation\":\"QueryVectors\",", NULL);
    expect_validation(h, "[]", NULL);
    /* null members count as absent */
    hd_response resp;
    cJSON *j = invoke(
        h, Q(",\"topK\":2," QV16 ",\"filter\":null,\"returnMetadata\":null,\"unknownField\":[1]"), &resp);
    CHECK(resp.http_status == 200 && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "vectors")) == 2,
          "nulls and unknown fields are ignored");
    cJSON_Delete(j);
}

static void test_errors_and_shapes(hd_handler *h)
{
    hd_response resp;
    /* unknown index: NotFoundException */
    cJSON *j = invoke(
        h, "{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"nope\"}", &resp);
    CHECK(resp.http_status == 404 && strcmp(str_of(j, "errorType"), "NotFoundException") == 0,
          "not found: %s", resp.payload ? (const char *)resp.payload : "");
    cJSON_Delete(j);
    j = invoke(h, Q(",\"topK\":3," QV16 "") /* index exists */, &resp);
    cJSON_Delete(j);
    j = invoke(h,
               "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"nobucket\",\"indexName\":\"" IX
               "\",\"topK\":3," QV16 "}",
               &resp);
    CHECK(resp.http_status == 404 && strcmp(str_of(j, "errorType"), "NotFoundException") == 0,
          "query unknown index");
    cJSON_Delete(j);

    /* routing errors */
    j = invoke(h, "{\"operation\":\"Frobnicate\"}", &resp);
    CHECK(resp.http_status == 404 && strcmp(str_of(j, "errorType"), "UnknownOperationException") == 0,
          "unknown op");
    cJSON_Delete(j);
    j = invoke(h, "{\"vectorBucketName\":\"" VB "\"}", &resp);
    CHECK(strcmp(str_of(j, "errorType"), "UnknownOperationException") == 0 &&
              strstr(str_of(j, "errorMessage"), "operation"),
          "no operation");
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"PutVectors\"}", &resp);
    CHECK(resp.http_status == 403 && strcmp(str_of(j, "errorType"), "AccessDeniedException") == 0 &&
              strstr(str_of(j, "errorMessage"), "read-only"),
          "a write to a read-only deployment");
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"CreateVectorBucket\"}", &resp);
    CHECK(resp.http_status == 501 && strcmp(str_of(j, "errorType"), "NotImplementedException") == 0,
          "vector bucket operations are not served");
    cJSON_Delete(j);

    /* HTTP shape: proxy response, error header, rest-json error body */
    const char *v2 =
        "{\"version\":\"2.0\",\"rawPath\":\"/QueryVectors\",\"requestContext\":{\"http\":{\"method\":"
        "\"POST\"}},\"body\":\"{\\\"vectorBucketName\\\":\\\"" VB "\\\",\\\"indexName\\\":\\\"" IX
        "\\\",\\\"topK\\\":0}\"}";
    j = invoke(h, v2, &resp);
    REQUIRE(j != NULL, "proxy response is JSON");
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "statusCode")->valueint == 400, "statusCode");
    const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(j, "headers");
    CHECK(strcmp(str_of(hdrs, "x-amzn-ErrorType"), "ValidationException") == 0, "x-amzn-ErrorType");
    CHECK(strcmp(str_of(hdrs, "x-amzn-RequestId"), "req-1") == 0, "request id header");
    CHECK(strcmp(str_of(hdrs, "Content-Type"), "application/json") == 0, "content type");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "isBase64Encoded")), "isBase64Encoded false");
    cJSON *body = cJSON_Parse(str_of(j, "body"));
    CHECK(
        body && strstr(str_of(body, "message"), "topK") &&
            strcmp(str_of(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "fieldList"), 0), "path"),
                   "topK") == 0,
        "error body message + fieldList");
    cJSON_Delete(body);
    cJSON_Delete(j);
    /* GET is not an operation */
    j = invoke(h, "{\"httpMethod\":\"GET\",\"path\":\"/GetIndex\",\"requestContext\":{}}", &resp);
    CHECK(j && cJSON_GetObjectItemCaseSensitive(j, "statusCode")->valueint == 404, "GET -> 404");
    cJSON_Delete(j);
    /* success in the HTTP shape */
    const char *ok =
        "{\"version\":\"2.0\",\"rawPath\":\"/GetIndex\",\"requestContext\":{\"http\":{\"method\":"
        "\"POST\"}},\"body\":\"eyJ2ZWN0b3JCdWNrZXROYW1lIjoiZGVtby1idWNrZXQiLCJpbmRleE5hbWUiOiJkZW1vLW"
        "luZGV4In0=\",\"isBase64Encoded\":true}";
    j = invoke(h, ok, &resp);
    CHECK(j && cJSON_GetObjectItemCaseSensitive(j, "statusCode")->valueint == 200, "proxy 200");
    body = cJSON_Parse(str_of(j, "body"));
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(body, "index");
    CHECK(strcmp(str_of(idx, "indexName"), IX) == 0 &&
              cJSON_GetObjectItemCaseSensitive(idx, "dimension")->valueint == D,
          "GetIndex through a base64 HTTP event");
    cJSON_Delete(body);
    cJSON_Delete(j);

    /* function error mode: no payload, the runtime posts an error */
    s3v_status st =
        hd_handler_invoke(h, &INV, (const uint8_t *)"{\"operation\":\"GetIndex\",\"errorMode\":\"function\"}",
                          strlen("{\"operation\":\"GetIndex\",\"errorMode\":\"function\"}"), &resp);
    CHECK(st == S3V_OK && resp.function_error && strcmp(resp.error_type, "ValidationException") == 0 &&
              strstr(resp.error_message, "vectorBucketName"),
          "function error");
}

static void test_get_and_list(hd_handler *h)
{
    s3v_storage *st;
    cluster_cache *cache;
    ivf_index *ix = open_ref(&st, &cache);
    REQUIRE(ix != NULL, "reference index");
    hd_response resp;
    cJSON *j = invoke(
        h,
        "{\"operation\":\"GetVectors\",\"indexArn\":\"arn:aws:s3vectors:us-east-1:123456789012:bucket/" VB
        "/index/" IX "\",\"keys\":[\"doc-7\",\"missing\",\"doc-1200\",\"doc-7\"],\"returnData\":true,"
        "\"returnMetadata\":true}",
        &resp);
    REQUIRE(j && resp.http_status == 200, "GetVectors");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(j, "vectors");
    const char *want[] = {"doc-7", "doc-1200", "doc-7"};
    CHECK(cJSON_GetArraySize(vs) == 3, "missing key skipped, order kept (%d)", cJSON_GetArraySize(vs));
    const uint8_t *keys[] = {(const uint8_t *)"doc-7", (const uint8_t *)"doc-1200"};
    size_t lens[] = {5, 8};
    ivf_result ref;
    REQUIRE(ivf_index_get(ix, keys, lens, 2, 1, 1, S3V_NO_DEADLINE, &ref) == S3V_OK && ref.len == 2,
            "engine get");
    int i = 0;
    for (const cJSON *v = vs ? vs->child : NULL; v && i < 3; v = v->next, i++) {
        CHECK(strcmp(str_of(v, "key"), want[i]) == 0, "key %d", i);
        const ivf_hit *hh = &ref.hits[i == 1 ? 1 : 0];
        const cJSON *f =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "data"), "float32");
        int same = cJSON_GetArraySize(f) == D;
        for (int k = 0; same && k < D; k++)
            same = (float)cJSON_GetArrayItem(f, k)->valuedouble == hh->data[k];
        CHECK(same, "data of %s equals the engine's, bit for bit", want[i]);
        CHECK(strcmp(str_of(cJSON_GetObjectItemCaseSensitive(v, "metadata"), "genre"),
                     i == 1 ? "drama" : "comedy") == 0,
              "metadata %d", i);
    }
    ivf_result_free(&ref);
    cJSON_Delete(j);

    /* ListVectors: pages and segments cover every key exactly once */
    for (int segc = 1; segc <= 3; segc += 2) {
        char *seen = calloc(N, 1);
        int total = 0, pages = 0;
        for (int seg = 0; seg < segc; seg++) {
            char token[256] = "";
            do {
                char ev[1024];
                int n = snprintf(ev, sizeof ev,
                                 "{\"operation\":\"ListVectors\",\"vectorBucketName\":\"" VB
                                 "\",\"indexName\":\"" IX "\",\"maxResults\":333");
                if (segc > 1)
                    n += snprintf(ev + n, sizeof ev - (size_t)n, ",\"segmentCount\":%d,\"segmentIndex\":%d",
                                  segc, seg);
                if (token[0]) n += snprintf(ev + n, sizeof ev - (size_t)n, ",\"nextToken\":\"%s\"", token);
                snprintf(ev + n, sizeof ev - (size_t)n, "}");
                j = invoke(h, ev, &resp);
                REQUIRE(j && resp.http_status == 200, "list page: %.200s",
                        resp.payload ? (const char *)resp.payload : "");
                vs = cJSON_GetObjectItemCaseSensitive(j, "vectors");
                CHECK(cJSON_GetArraySize(vs) <= 333, "page size");
                for (const cJSON *v = vs->child; v; v = v->next) {
                    int id = atoi(str_of(v, "key") + 4);
                    if (id >= 0 && id < N) seen[id]++;
                    total++;
                }
                snprintf(token, sizeof token, "%s", str_of(j, "nextToken"));
                pages++;
                cJSON_Delete(j);
            } while (token[0] && pages < 100);
        }
        int once = 1;
        for (int k = 0; k < N; k++) once &= seen[k] == 1;
        CHECK(once && total == N, "%d segment(s): every key exactly once (%d listed, %d pages)", segc, total,
              pages);
        free(seen);
    }
    close_ref(ix, st, cache);

    /* GetIndex / ListIndexes */
    j = invoke(h, "{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
               &resp);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(j, "index");
    CHECK(strcmp(str_of(idx, "indexArn"),
                 "arn:aws:s3vectors:eu-west-1:111122223333:bucket/" VB "/index/" IX) == 0,
          "ARN from the function's region and account: %s", str_of(idx, "indexArn"));
    CHECK(strcmp(str_of(idx, "distanceMetric"), "cosine") == 0 &&
              strcmp(str_of(idx, "dataType"), "float32") == 0,
          "metric, data type");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(idx, "creationTime");
    CHECK(cJSON_IsNumber(ct) && ct->valuedouble > 1.6e9, "creationTime in epoch seconds");
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\"}", &resp);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    CHECK(cJSON_GetArraySize(list) == 2 &&
              strcmp(str_of(cJSON_GetArrayItem(list, 0), "indexName"), IX) == 0 &&
              strcmp(str_of(cJSON_GetArrayItem(list, 1), "indexName"), "other.index") == 0 &&
              !cJSON_GetObjectItemCaseSensitive(j, "nextToken"),
          "two indexes, the folder without a manifest left out: %.300s", resp.payload);
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"maxResults\":1}", &resp);
    list = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    char tok[128];
    snprintf(tok, sizeof tok, "%s", str_of(j, "nextToken"));
    CHECK(cJSON_GetArraySize(list) == 1 && tok[0], "page of one with a token");
    cJSON_Delete(j);
    char ev[512];
    snprintf(ev, sizeof ev,
             "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"maxResults\":1,"
             "\"nextToken\":\"%s\"}",
             tok);
    j = invoke(h, ev, &resp);
    list = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    CHECK(cJSON_GetArraySize(list) == 1 &&
              strcmp(str_of(cJSON_GetArrayItem(list, 0), "indexName"), "other.index") == 0,
          "second page");
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\",\"prefix\":\"oth\"}",
               &resp);
    list = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    CHECK(cJSON_GetArraySize(list) == 1, "prefix");
    cJSON_Delete(j);
    j = invoke(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"empty-bucket\"}", &resp);
    CHECK(resp.http_status == 200 && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "indexes")) == 0,
          "empty bucket lists nothing");
    cJSON_Delete(j);
}

static void test_too_large(void)
{
    hd_config cfg = {.cache_bytes = 1 << 20, .fresh_ms = 10000, .max_response_size = 4096};
    hd_handler *h;
    REQUIRE(hd_handler_new(&cfg, &cst.base, &h) == S3V_OK, "handler");
    hd_response resp;
    cJSON *j = invoke(h,
                      "{\"operation\":\"ListVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                      "\",\"maxResults\":1000,\"returnMetadata\":true,\"returnData\":true}",
                      &resp);
    CHECK(resp.http_status == 400 && strstr(str_of(j, "errorMessage"), "4194304") == NULL &&
              strstr(str_of(j, "errorMessage"), "response would exceed"),
          "oversized response is a clear error: %s", str_of(j, "errorMessage"));
    CHECK(resp.payload_size <= 4096, "error fits");
    cJSON_Delete(j);
    /* the same oversized answer in the HTTP shape (escaping makes the proxy body bigger than the JSON) */
    j = invoke(h,
               "{\"version\":\"2.0\",\"rawPath\":\"/"
               "ListVectors\",\"requestContext\":{\"http\":{\"method\":\"POST\"}},"
               "\"body\":\"{\\\"vectorBucketName\\\":\\\"" VB "\\\",\\\"indexName\\\":\\\"" IX
               "\\\",\\\"maxResults\\\":70,\\\"returnMetadata\\\":true}\"}",
               &resp);
    CHECK(j && cJSON_GetObjectItemCaseSensitive(j, "statusCode")->valueint == 400 &&
              resp.payload_size <= 4096,
          "proxy too large -> 400");
    cJSON_Delete(j);
    /* the next, small request is served */
    j = invoke(h, Q(",\"topK\":2," QV16), &resp);
    CHECK(resp.http_status == 200, "next request served");
    cJSON_Delete(j);
    hd_handler_free(h);
}

static void test_freshness(void)
{
    char input[512];
    snprintf(input, sizeof input, "%s/in2.jsonl", tmpdir);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: fresh_ms = 0 (check every request); pass 1: fresh_ms = 1 h: the vanished data objects of
         * the replaced generation trigger the re-check */
        hd_config cfg = {.cache_bytes = 0, .fresh_ms = pass ? 3600000 : 0};
        hd_handler *h;
        REQUIRE(hd_handler_new(&cfg, &cst.base, &h) == S3V_OK, "handler");
        char ev[4096];
        query_text(ev, sizeof ev, data + 11 * D, 5, ",\"returnStatistics\":true,\"returnDistance\":true");
        hd_response resp;
        cJSON *j = invoke(h, ev, &resp);
        char gen1[64];
        snprintf(gen1, sizeof gen1, "%s",
                 str_of(cJSON_GetObjectItemCaseSensitive(j, "statistics"), "indexGeneration"));
        cJSON_Delete(j);
        write_input(input, pass ? 1.0f : -1.0f); /* negated vectors: different nearest neighbours */
        REQUIRE(build(VB "/" IX, input, 1) == S3V_OK, "rebuild: %s", s3v_errmsg(S3V_ERR_INVALID));
        j = invoke(h, ev, &resp);
        const char *gen2 = str_of(cJSON_GetObjectItemCaseSensitive(j, "statistics"), "indexGeneration");
        CHECK(resp.http_status == 200 && gen1[0] && strcmp(gen1, gen2) != 0,
              "pass %d: new generation %s after %s (%.200s)", pass, gen2, gen1,
              resp.payload ? (const char *)resp.payload : "");
        s3v_storage *st;
        cluster_cache *cache;
        ivf_index *ix = open_ref(&st, &cache);
        ivf_query iq = {.vector = data + 11 * D, .dim = D, .topk = 5, .deadline_ns = S3V_NO_DEADLINE};
        ivf_result ref;
        REQUIRE(ix && ivf_index_search(ix, &iq, &ref) == S3V_OK, "reference");
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "vectors"), 0);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)ref.hits[0].key_len, (const char *)ref.hits[0].key);
        CHECK(strcmp(str_of(first, "key"), key) == 0, "answers come from the new generation");
        ivf_result_free(&ref);
        close_ref(ix, st, cache);
        cJSON_Delete(j);
        hd_handler_free(h);
    }
}

static void test_many(hd_handler *h)
{
    /* a mix of good and bad requests; leaks show under ASan/valgrind */
    char ev[4096];
    int ok = 0;
    for (int i = 0; i < 300; i++) {
        hd_response resp;
        cJSON *j;
        switch (i % 5) {
        case 0: query_text(ev, sizeof ev, data + (i % N) * D, 10, ",\"returnMetadata\":true"); break;
        case 1: snprintf(ev, sizeof ev, Q(",\"topK\":0," QV16)); break;
        case 2:
            snprintf(ev, sizeof ev,
                     "{\"operation\":\"GetVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                     "\",\"keys\":[\"doc-%d\"],\"returnData\":true}",
                     i);
            break;
        case 3: snprintf(ev, sizeof ev, "{not json %d", i); break;
        default:
            snprintf(ev, sizeof ev,
                     "{\"operation\":\"ListVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                     "\",\"maxResults\":50}");
            break;
        }
        j = invoke(h, ev, &resp);
        ok += j != NULL && (resp.http_status == 200) == (i % 5 == 0 || i % 5 == 2 || i % 5 == 4);
        cJSON_Delete(j);
    }
    CHECK(ok == 300, "300 mixed invocations answered as expected (%d)", ok);
}

int main(void)
{
    kern_init(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-test-handler-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(root, sizeof root, "%s/root", tmpdir);
    s3v_rng r;
    s3v_rng_seed(&r, 11);
    for (int i = 0; i < N * D; i++) data[i] = (float)(s3v_rng_unit(&r) * 2 - 1);
    char input[512];
    snprintf(input, sizeof input, "%s/in.jsonl", tmpdir);
    write_input(input, 1.0f);
    if (build(VB "/" IX, input, 0) != S3V_OK || build(VB "/other.index", input, 0) != S3V_OK ||
        build("other-bucket/idx", input, 0) != S3V_OK) {
        fprintf(stderr, "build failed: %s\n", s3v_errmsg(S3V_ERR_INVALID));
        return 1;
    }
    char stray[600];
    snprintf(stray, sizeof stray, "%s/" VB "/not-an-index", root);
    mkdir(stray, 0755);
    snprintf(stray, sizeof stray, "%s/" VB "/not-an-index/readme", root);
    FILE *f = fopen(stray, "w");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
    s3v_storage *local;
    if (s3v_storage_local_open(root, 0, &local) != S3V_OK) return 1;
    cst.base.ops = &COUNTING_OPS;
    cst.inner = local;

    hd_config cfg = {.cache_bytes = 8 << 20, .fresh_ms = 10000, .direct_errors = HD_ERROR_MODE_PAYLOAD};
    hd_handler *h;
    if (hd_handler_new(&cfg, &cst.base, &h) != S3V_OK) return 1;
    CHECK(hd_handler_preload(h, VB "/" IX, S3V_NO_DEADLINE) == S3V_OK, "preload");
    CHECK(hd_handler_preload(h, VB "/../x", S3V_NO_DEADLINE) == S3V_ERR_INVALID, "preload rejects bad names");
    CHECK(hd_handler_preload(h, VB "/missing", S3V_NO_DEADLINE) == S3V_ERR_NOT_FOUND,
          "preload of a missing index");
    test_query_equals_engine(h);
    test_validation(h);
    test_errors_and_shapes(h);
    test_get_and_list(h);
    test_many(h);
    hd_handler_free(h);
    test_too_large();
    test_freshness();
    s3v_storage_close(local);
    tu_rm_rf(tmpdir);
    return TEST_SUMMARY();
}
