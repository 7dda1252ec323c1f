/* tests/unit/test_handler_writes.c: the write operations through the handler on a local-folder deployment:
 * CreateIndex, PutVectors, DeleteVectors, DeleteIndex and the Compact invocation, with the service
 * model's shapes, limits and errors (ValidationException with the fieldList path, ConflictException,
 * NotFoundException, AccessDeniedException when the deployment is read-only), and read-your-writes: a
 * write acknowledged by one handler (one Lambda container) is read at once by another, unless that one
 * was configured to read the log less often. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/rng.h"
#include "engine/kernels.h"
#include "handler/handler.h"
#include "tests/unit/testutil.h"

#define VB "docs"
#define IX "notes"
#define D  8

static char root[256];

static const hd_invocation INV = {"req-w", "arn:aws:lambda:eu-west-1:111122223333:function:fn",
                                  S3V_NO_DEADLINE};

static cJSON *invoke(hd_handler *h, const char *event, hd_response *resp)
{
    size_t n = strlen(event);
    uint8_t *p = malloc(n ? n : 1);
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

static const char *field_path(const cJSON *o)
{
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(o, "fieldList");
    return fl ? str_of(cJSON_GetArrayItem(fl, 0), "path") : "";
}

/* Invokes `event`; CHECKs that it fails with `type` (and the fieldList path when given). */
static void expect_error(hd_handler *h, const char *event, const char *type, int status, const char *path,
                         const char *what)
{
    hd_response resp;
    cJSON *j = invoke(h, event, &resp);
    CHECK(j && !strcmp(str_of(j, "errorType"), type) && resp.http_status == status &&
              (!path || !strcmp(field_path(j), path)),
          "%s: expected %s %d at '%s', got %s %d at '%s' (%s)", what, type, status, path ? path : "",
          j ? str_of(j, "errorType") : "?", resp.http_status, j ? field_path(j) : "",
          j ? str_of(j, "errorMessage") : "");
    cJSON_Delete(j);
}

static cJSON *expect_ok(hd_handler *h, const char *event, const char *what)
{
    hd_response resp;
    cJSON *j = invoke(h, event, &resp);
    CHECK(j && resp.http_status == 200 && !cJSON_GetObjectItemCaseSensitive(j, "errorType"), "%s: %s", what,
          j ? str_of(j, "errorMessage") : "no payload");
    return j;
}

static hd_handler *new_handler(s3v_storage *st, int allow_writes, uint32_t tail_ms, s3v_storage *probe_st)
{
    hd_config cfg = {.cache_bytes = 8 << 20,
                     .fresh_ms = 10000,
                     .allow_writes = allow_writes,
                     .tail_ms = tail_ms,
                     .tmp_dir = root,
                     .probe_storage = probe_st};
    hd_handler *h = NULL;
    if (hd_handler_new(&cfg, st, &h) != S3V_OK) return NULL;
    return h;
}

/* {"operation":"PutVectors",...} for keys k<from>..k<to-1>, vectors (i, i*scale, 1, ...) */
static char *put_event(int from, int to, float scale, const char *meta_extra)
{
    size_t cap = 256 + (size_t)(to - from) * (D * 24 + 96);
    char *e = malloc(cap);
    int n = snprintf(e, cap,
                     "{\"operation\":\"PutVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                     "\",\"vectors\":[");
    for (int i = from; i < to; i++) {
        n += snprintf(e + n, cap - (size_t)n, "%s{\"key\":\"k%d\",\"data\":{\"float32\":[",
                      i > from ? "," : "", i);
        for (int j = 0; j < D; j++)
            n += snprintf(e + n, cap - (size_t)n, "%s%.9g", j ? "," : "",
                          j == 0   ? (double)i
                          : j == 1 ? (double)(i * scale)
                                   : 1.0 + 0.01 * j);
        n += snprintf(e + n, cap - (size_t)n, "]},\"metadata\":{\"i\":%d,\"even\":%s%s}}", i,
                      i % 2 ? "false" : "true", meta_extra ? meta_extra : "");
    }
    snprintf(e + n, cap - (size_t)n, "]}");
    return e;
}

static int count_keys(const cJSON *j)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "vectors"));
}

static cJSON *get_keys(hd_handler *h, const char *keys_json)
{
    char e[1024];
    snprintf(e, sizeof e,
             "{\"operation\":\"GetVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
             "\",\"keys\":%s,\"returnData\":true,\"returnMetadata\":true}",
             keys_json);
    return expect_ok(h, e, "GetVectors");
}

static void test_read_only(s3v_storage *st)
{
    hd_handler *h = new_handler(st, 0, 0, NULL);
    REQUIRE(h != NULL, "handler");
    const char *ops[] = {"CreateIndex", "DeleteIndex", "PutVectors", "DeleteVectors", "Compact"};
    for (size_t i = 0; i < 5; i++) {
        char e[256];
        snprintf(e, sizeof e,
                 "{\"operation\":\"%s\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}", ops[i]);
        expect_error(h, e, "AccessDeniedException", 403, NULL, ops[i]);
    }
    hd_handler_free(h);
}

static void test_create(hd_handler *h)
{
    const char *base = "{\"operation\":\"CreateIndex\",\"vectorBucketName\":\"" VB "\"";
    char e[1024];
#define EV(extra) (snprintf(e, sizeof e, "%s%s}", base, extra), e)
    expect_error(h, EV(",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"cosine\""),
                 "ValidationException", 400, "indexName", "no indexName");
    expect_error(h,
                 EV(",\"indexName\":\"Bad_Name\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":"
                    "\"cosine\""),
                 "ValidationException", 400, "indexName", "bad indexName");
    expect_error(h, EV(",\"indexName\":\"" IX "\",\"dimension\":8,\"distanceMetric\":\"cosine\""),
                 "ValidationException", 400, "dataType", "no dataType");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float16\",\"dimension\":8,\"distanceMetric\":\"cosine\""),
                 "ValidationException", 400, "dataType", "float16");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":0,\"distanceMetric\":\"cosine\""),
                 "ValidationException", 400, "dimension", "dimension 0");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":4097,\"distanceMetric\":\"cosine\""),
                 "ValidationException", 400, "dimension", "dimension 4097");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"manhattan\""),
                 "ValidationException", 400, "distanceMetric", "bad metric");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"cosine\","
                    "\"metadataConfiguration\":{}"),
                 "ValidationException", 400, "metadataConfiguration.nonFilterableMetadataKeys", "no keys");
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"cosine\","
                    "\"metadataConfiguration\":{\"nonFilterableMetadataKeys\":[\"a\",\"b\",\"c\",\"d\",\"e\","
                    "\"f\",\"g\","
                    "\"h\",\"i\",\"j\",\"k\"]}"),
                 "ValidationException", 400, "metadataConfiguration.nonFilterableMetadataKeys", "11 keys");
    expect_error(
        h,
        EV(",\"indexName\":\"" IX "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"cosine\","
           "\"metadataConfiguration\":{\"nonFilterableMetadataKeys\":[\"\"]}"),
        "ValidationException", 400, "metadataConfiguration.nonFilterableMetadataKeys[0]", "empty key");
    cJSON *j =
        expect_ok(h,
                  EV(",\"indexName\":\"" IX "\",\"dataType\":\"float32\",\"dimension\":8,"
                     "\"distanceMetric\":\"cosine\",\"metadataConfiguration\":{\"nonFilterableMetadataKeys\":"
                     "[\"body\"]}"),
                  "CreateIndex");
    CHECK(!strcmp(str_of(j, "indexArn"), "arn:aws:s3vectors:eu-west-1:111122223333:bucket/" VB "/index/" IX),
          "indexArn (%s)", str_of(j, "indexArn"));
    cJSON_Delete(j);
    expect_error(h,
                 EV(",\"indexName\":\"" IX
                    "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"cosine\""),
                 "ConflictException", 409, NULL, "create twice");
    j = expect_ok(h, "{\"operation\":\"GetIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
                  "GetIndex");
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
    CHECK(cJSON_GetObjectItemCaseSensitive(ix, "dimension")->valueint == 8 &&
              !strcmp(str_of(ix, "distanceMetric"), "cosine") && !strcmp(str_of(ix, "dataType"), "float32"),
          "GetIndex describes the new index");
    CHECK(cJSON_GetObjectItemCaseSensitive(ix, "metadataConfiguration") != NULL,
          "with its non-filterable keys");
    cJSON_Delete(j);
    j = expect_ok(h, "{\"operation\":\"ListIndexes\",\"vectorBucketName\":\"" VB "\"}", "ListIndexes");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "indexes")) == 1, "ListIndexes lists it");
    cJSON_Delete(j);
    j = expect_ok(h,
                  "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                  "\",\"topK\":3,\"queryVector\":{\"float32\":[1,0,0,0,0,0,0,0]}}",
                  "query an empty index");
    CHECK(count_keys(j) == 0, "an empty index answers with no vectors");
    cJSON_Delete(j);
#undef EV
}

static void test_put_validation(hd_handler *h)
{
    const char *pre =
        "{\"operation\":\"PutVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"";
    char e[8192];
#define EV(extra) (snprintf(e, sizeof e, "%s%s}", pre, extra), e)
    expect_error(h, EV(""), "ValidationException", 400, "vectors", "no vectors");
    expect_error(h, EV(",\"vectors\":[]"), "ValidationException", 400, "vectors", "empty vectors");
    expect_error(h, EV(",\"vectors\":[{\"data\":{\"float32\":[1,1,1,1,1,1,1,1]}}]"), "ValidationException",
                 400, "vectors[0].key", "no key");
    expect_error(h, EV(",\"vectors\":[{\"key\":\"\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]}}]"),
                 "ValidationException", 400, "vectors[0].key", "empty key");
    expect_error(h, EV(",\"vectors\":[{\"key\":\"a\"}]"), "ValidationException", 400, "vectors[0].data",
                 "no data");
    expect_error(h, EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1]}}]"),
                 "ValidationException", 400, "vectors[0].data.float32", "wrong dimension");
    expect_error(h, EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,\"x\"]}}]"),
                 "ValidationException", 400, "vectors[0].data.float32[7]", "a string element");
    expect_error(h, EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1e39]}}]"),
                 "ValidationException", 400, "vectors[0].data.float32[7]", "beyond float32");
    expect_error(h,
                 EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]}},"
                    "{\"key\":\"b\",\"data\":{\"float32\":[0,0,0,0,0,0,0,0]}}]"),
                 "ValidationException", 400, "vectors[1].data.float32", "zero vector under cosine");
    expect_error(
        h, EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]},\"metadata\":[1]}]"),
        "ValidationException", 400, "vectors[0].metadata", "metadata not an object");
    expect_error(h,
                 EV(",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]},\"metadata\":{"
                    "\"x\":{\"y\":1}}}]"),
                 "ValidationException", 400, "vectors[0].metadata", "nested metadata");
    /* a 1025-character key */
    char key[1100];
    memset(key, 'q', 1025);
    key[1025] = 0;
    char ev[2000];
    snprintf(ev, sizeof ev, ",\"vectors\":[{\"key\":\"%s\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]}}]", key);
    expect_error(h, EV(ev), "ValidationException", 400, "vectors[0].key", "1025-character key");
    /* 2048 bytes of filterable metadata is the limit; the non-filterable key does not count */
    char big[3000], meta[3200];
    memset(big, 'b', 2100);
    big[2100] = 0;
    snprintf(
        meta, sizeof meta,
        ",\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]},\"metadata\":{\"t\":\"%s\"}}]",
        big);
    expect_error(h, EV(meta), "ValidationException", 400, "vectors[0].metadata",
                 "filterable metadata over 2048 bytes");
    snprintf(meta, sizeof meta,
             ",\"vectors\":[{\"key\":\"nf\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]},\"metadata\":{\"body\":"
             "\"%s\"}}]",
             big);
    cJSON *j = expect_ok(h, EV(meta), "a large non-filterable value is accepted");
    cJSON_Delete(j);
    /* 501 vectors */
    char *many = put_event(0, 501, 1, NULL);
    expect_error(h, many, "ValidationException", 400, "vectors", "501 vectors");
    free(many);
    expect_error(h,
                 "{\"operation\":\"PutVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"nope\","
                 "\"vectors\":[{\"key\":\"a\",\"data\":{\"float32\":[1,1,1,1,1,1,1,1]}}]}",
                 "NotFoundException", 404, NULL, "a missing index");
    /* DeleteVectors */
    expect_error(h,
                 "{\"operation\":\"DeleteVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
                 "ValidationException", 400, "keys", "no keys");
    expect_error(h,
                 "{\"operation\":\"DeleteVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                 "\",\"keys\":[]}",
                 "ValidationException", 400, "keys", "empty keys");
    expect_error(h,
                 "{\"operation\":\"DeleteVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                 "\",\"keys\":[\"a\",3]}",
                 "ValidationException", 400, "keys[1]", "a number key");
#undef EV
}

static void test_read_your_writes(hd_handler *a, hd_handler *b, hd_handler *lazy)
{
    /* warm all three on the index first, so that reads below come from open indexes */
    const char *q = "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                    "\",\"topK\":100,\"queryVector\":{\"float32\":[1,1,1,1,1,1,1,1]},\"returnDistance\":true,"
                    "\"returnStatistics\":true}";
    cJSON *j;
    hd_handler *hs[3] = {a, b, lazy};
    for (int i = 0; i < 3; i++) cJSON_Delete(expect_ok(hs[i], q, "warm"));
    char *ev = put_event(0, 40, 0.5f, NULL);
    j = expect_ok(a, ev, "PutVectors 40");
    CHECK(j && cJSON_GetArraySize(j) == 0, "PutVectors answers {}");
    cJSON_Delete(j);
    free(ev);
    j = expect_ok(b, q, "query through the other handler");
    CHECK(count_keys(j) == 41, "the other container sees all 40 (+1) at once (%d)", count_keys(j));
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(j, "statistics");
    CHECK(stats && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(stats, "tailChecked")) &&
              cJSON_GetObjectItemCaseSensitive(stats, "tailVectors")->valueint == 41,
          "statistics: the tail was read and searched");
    /* b reads the log on its probe thread while it searches: the search ran before the new slot was
     * applied, so it was made again */
    CHECK(stats && cJSON_GetObjectItemCaseSensitive(stats, "tailObjectsRead")->valueint == 1,
          "statistics: the one new log object was read (by the probe)");
    cJSON_Delete(j);
    j = expect_ok(b, q, "the same query, nothing new");
    stats = cJSON_GetObjectItemCaseSensitive(j, "statistics");
    CHECK(count_keys(j) == 41 && stats &&
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(stats, "tailChecked")) &&
              cJSON_GetObjectItemCaseSensitive(stats, "tailObjectsRead")->valueint == 0,
          "nothing new: the probe's free slot confirms the answer (%d keys)", count_keys(j));
    cJSON_Delete(j);
    for (int round = 0; round < 3; round++) { /* writes by a, each seen by b's very next query */
        char *evr = put_event(100 + round, 101 + round, 0.5f, NULL);
        cJSON_Delete(expect_ok(a, evr, "PutVectors 1"));
        free(evr);
        j = expect_ok(b, q, "query after one more write");
        CHECK(count_keys(j) == 42 + round, "write %d is seen by the next query (%d keys)", round,
              count_keys(j));
        cJSON_Delete(j);
    }
    cJSON_Delete(expect_ok(a,
                           "{\"operation\":\"DeleteVectors\",\"vectorBucketName\":\"" VB
                           "\",\"indexName\":\"" IX "\",\"keys\":[\"k100\",\"k101\",\"k102\"]}",
                           "DeleteVectors k100..k102"));
    j = expect_ok(b, q, "query after the delete");
    CHECK(count_keys(j) == 41, "the deletes are seen by the next query (%d keys)", count_keys(j));
    cJSON_Delete(j);
    j = expect_ok(lazy, q, "query through the lazy handler");
    CHECK(count_keys(j) == 1, "a handler told to read the log every minute does not see them yet (%d)",
          count_keys(j));
    cJSON_Delete(j);
    j = get_keys(b, "[\"k7\",\"absent\",\"k3\"]");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vectors");
    CHECK(cJSON_GetArraySize(v) == 2 && !strcmp(str_of(cJSON_GetArrayItem(v, 0), "key"), "k7"),
          "GetVectors: request order, the missing key skipped");
    const cJSON *d0 = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 0), "data"), "float32");
    CHECK(d0 && cJSON_GetArrayItem(d0, 0)->valuedouble == 7 && cJSON_GetArrayItem(d0, 1)->valuedouble == 3.5,
          "the data as written");
    const cJSON *m0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 0), "metadata");
    CHECK(m0 && cJSON_GetObjectItemCaseSensitive(m0, "i")->valueint == 7 &&
              cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m0, "even")),
          "the metadata as written");
    cJSON_Delete(j);
    /* overwrite through b, read through a */
    ev = put_event(5, 10, 100, ",\"v\":2");
    cJSON_Delete(expect_ok(b, ev, "overwrite 5..9"));
    free(ev);
    j = get_keys(a, "[\"k7\"]");
    v = cJSON_GetObjectItemCaseSensitive(j, "vectors");
    d0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 0), "data"),
                                          "float32");
    CHECK(d0 && cJSON_GetArrayItem(d0, 1)->valuedouble == 700, "the writer of the latest value wins (%g)",
          d0 ? cJSON_GetArrayItem(d0, 1)->valuedouble : -1);
    cJSON_Delete(j);
    /* delete through a, read through b */
    cJSON_Delete(expect_ok(a,
                           "{\"operation\":\"DeleteVectors\",\"vectorBucketName\":\"" VB
                           "\",\"indexName\":\"" IX "\",\"keys\":[\"k1\",\"k2\",\"never\"]}",
                           "DeleteVectors"));
    j = get_keys(b, "[\"k1\",\"k2\",\"k3\"]");
    CHECK(count_keys(j) == 1, "deleted keys are gone at once (%d)", count_keys(j));
    cJSON_Delete(j);
    j = expect_ok(b,
                  "{\"operation\":\"ListVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                  "\",\"maxResults\":7}",
                  "ListVectors");
    CHECK(count_keys(j) == 7 && cJSON_GetObjectItemCaseSensitive(j, "nextToken"), "a page of 7 with a token");
    cJSON_Delete(j);
    /* filtered query over the tail */
    j = expect_ok(
        b,
        "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
        "\",\"topK\":100,\"queryVector\":{\"float32\":[1,1,1,1,1,1,1,1]},\"filter\":{\"even\":true},"
        "\"returnMetadata\":true}",
        "filtered query");
    int n = count_keys(j), ok = 1;
    v = cJSON_GetObjectItemCaseSensitive(j, "vectors");
    for (int i = 0; i < n; i++)
        ok &= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, i), "metadata"), "even"));
    /* even keys k0..k38, but k2 was deleted; "nf" has no such metadata */
    CHECK(n == 19 && ok, "the filter applies to the tail (%d even keys)", n);
    cJSON_Delete(j);
    expect_error(b,
                 "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
                 "\",\"topK\":3,\"queryVector\":{\"float32\":[1,1,1,1,1,1,1,1]},\"filter\":{\"body\":\"x\"}}",
                 "ValidationException", 400, "filter", "the non-filterable key set at creation");
}

static void test_compact_and_delete(hd_handler *a, hd_handler *b)
{
    const char *q =
        "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX
        "\",\"topK\":100,\"queryVector\":{\"float32\":[1,1,1,1,1,1,1,1]},\"returnDistance\":true}";
    cJSON *before = expect_ok(b, q, "before compaction");
    /* Compact is a direct invocation only */
    const char *http = "{\"version\":\"2.0\",\"rawPath\":\"/"
                       "Compact\",\"requestContext\":{\"http\":{\"method\":\"POST\"}},\"body\":\"{}\"}";
    hd_response resp;
    cJSON *j = invoke(a, http, &resp);
    CHECK(resp.http_status == 404 && resp.error_type && !strcmp(resp.error_type, "UnknownOperationException"),
          "Compact over HTTP is refused (%d)", resp.http_status);
    cJSON_Delete(j);
    j = expect_ok(a, "{\"operation\":\"Compact\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
                  "Compact");
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "indexes"), 0);
    CHECK(e && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "committed")) &&
              cJSON_GetObjectItemCaseSensitive(e, "countAfter")->valueint == 39 &&
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "complete")),
          "Compact folded the log: 39 vectors");
    cJSON_Delete(j);
    cJSON *after = expect_ok(b, q, "after compaction");
    char *t1 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(before, "vectors"));
    char *t2 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(after, "vectors"));
    CHECK(t1 && t2 && !strcmp(t1, t2), "an exhaustive query answers the same before and after");
    free(t1);
    free(t2);
    cJSON_Delete(before);
    cJSON_Delete(after);
    j = expect_ok(a, "{\"operation\":\"Compact\"}", "Compact everything");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "indexes")) == 1,
          "every index of every bucket");
    cJSON_Delete(j);
    expect_error(a, "{\"operation\":\"Compact\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"nope\"}",
                 "NotFoundException", 404, NULL, "Compact of a missing index");
    /* DeleteIndex, then everything about it is gone; a new index of the same name starts empty */
    cJSON_Delete(expect_ok(
        a, "{\"operation\":\"DeleteIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
        "DeleteIndex"));
    expect_error(a, q, "NotFoundException", 404, NULL, "query a deleted index");
    expect_error(a,
                 "{\"operation\":\"DeleteIndex\",\"vectorBucketName\":\"" VB "\",\"indexName\":\"" IX "\"}",
                 "NotFoundException", 404, NULL, "delete twice");
    char *ev = put_event(0, 1, 1, NULL);
    expect_error(a, ev, "NotFoundException", 404, NULL, "write to a deleted index");
    cJSON_Delete(expect_ok(a,
                           "{\"operation\":\"CreateIndex\",\"vectorBucketName\":\"" VB
                           "\",\"indexName\":\"" IX
                           "\",\"dataType\":\"float32\",\"dimension\":8,\"distanceMetric\":\"euclidean\"}",
                           "re-create"));
    cJSON_Delete(expect_ok(a, ev, "write to the new index"));
    free(ev);
    j = expect_ok(a, q, "query the new index");
    CHECK(count_keys(j) == 1 && !strcmp(str_of(j, "distanceMetric"), "euclidean"),
          "the new index holds only the new write (%d)", count_keys(j));
    cJSON_Delete(j);
}

int main(void)
{
    kern_init(0);
    snprintf(root, sizeof root, "/tmp/s3vec-test-hw-XXXXXX");
    if (!mkdtemp(root)) return 1;
    s3v_storage *st, *probe_st;
    if (s3v_storage_local_open(root, 0, &st) != S3V_OK) return 1;
    if (s3v_storage_local_open(root, 0, &probe_st) != S3V_OK) return 1;
    test_read_only(st);
    /* b reads the log on a second storage handle while it searches (as the bootstrap does); a and lazy
     * read it first */
    hd_handler *a = new_handler(st, 1, 0, NULL), *b = new_handler(st, 1, 0, probe_st),
               *lazy = new_handler(st, 1, 60000, NULL);
    if (!a || !b || !lazy) return 1;
    test_create(a);
    test_put_validation(a);
    test_read_your_writes(a, b, lazy);
    test_compact_and_delete(a, b);
    hd_handler_free(a);
    hd_handler_free(b);
    hd_handler_free(lazy);
    s3v_storage_close(probe_st);
    s3v_storage_close(st);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return TEST_SUMMARY();
}
