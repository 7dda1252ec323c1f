/* tests/fuzz/fuzz_event.c: fuzz target for handler/event.c and the whole request path of the handler.
 *
 * Each input is one Lambda event (any bytes). It is used two ways:
 *  1. hd_event_decode: on success the request is a JSON object and the operation fits its buffer; on
 *     failure an error type is set;
 *  2. hd_handler_invoke on a handler whose storage is a guard: every key or list prefix the handler asks
 *     for must name something inside one index of a valid vector bucket ("vb/idx/..." with names that
 *     pass the S3 Vectors rules) or the bucket prefix "vb/" (ListIndexes); the guard answers NOT_FOUND or
 *     an empty listing. The response must be valid JSON no larger than the configured cap (a proxy
 *     response for HTTP events), or a function error with a type and a message.
 * Corpus: tests/fuzz/corpus/event/ (replayed by CTest as fuzz_event). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler/event.h"
#include "handler/handler.h"
#include "handler/names.h"
#include "tests/fuzz/fuzz.h"

#define RESPONSE_CAP (64 * 1024)

/* "vb/idx/rest" with valid names (rest may be empty), or "vb/" + an index-name prefix. */
static int key_inside_an_index(const char *key, int is_prefix)
{
    const char *s1 = strchr(key, '/');
    if (!s1 || hd_name_bucket_problem(key, (size_t)(s1 - key))) return 0;
    const char *ix = s1 + 1;
    const char *s2 = strchr(ix, '/');
    if (!s2) { /* a list prefix "vb/<prefix of an index name>" */
        if (!is_prefix) return 0;
        for (const char *p = ix; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) return 0;
        return 1;
    }
    if (hd_name_index_problem(ix, (size_t)(s2 - ix))) return 0;
    return strstr(s2, "/../") == NULL && strcmp(s2 + 1, "..") != 0;
}

static s3v_status g_get(s3v_storage *s, const char *k, uint64_t d, s3v_buf *o, s3v_obj_info *i)
{
    FUZZ_ASSERT(key_inside_an_index(k, 0));
    return s3v_errorf(S3V_ERR_NOT_FOUND, "not found");
}
static s3v_status g_get_ranges(s3v_storage *s, const s3v_range *r, size_t n, uint64_t d, s3v_range_cb cb,
                               void *a)
{
    for (size_t i = 0; i < n; i++) FUZZ_ASSERT(key_inside_an_index(r[i].key, 0));
    return s3v_errorf(S3V_ERR_NOT_FOUND, "not found");
}
static s3v_status g_put(s3v_storage *s, const char *k, const uint8_t *p, size_t n, const s3v_put_cond *c,
                        uint64_t d, s3v_obj_info *i)
{
    FUZZ_ASSERT(0 && "the read path never writes");
    return S3V_ERR_INTERNAL;
}
static s3v_status g_put_file(s3v_storage *s, const char *k, const char *path, const s3v_put_cond *c,
                             uint64_t d, s3v_obj_info *i)
{
    FUZZ_ASSERT(0 && "the read path never writes");
    return S3V_ERR_INTERNAL;
}
static s3v_status g_head(s3v_storage *s, const char *k, uint64_t d, s3v_obj_info *i)
{
    FUZZ_ASSERT(key_inside_an_index(k, 0));
    return s3v_errorf(S3V_ERR_NOT_FOUND, "not found");
}
static s3v_status g_list(s3v_storage *s, const s3v_list_req *r, uint64_t d, s3v_list_cb cb, void *a)
{
    FUZZ_ASSERT(r->prefix && key_inside_an_index(r->prefix, 1));
    return S3V_OK;
}
static s3v_status g_del(s3v_storage *s, const char *k, uint64_t d)
{
    FUZZ_ASSERT(0 && "the read path never deletes");
    return S3V_ERR_INTERNAL;
}
static void g_describe(s3v_storage *s, const char *k, char *o, size_t n)
{
    snprintf(o, n, "guard/%s", k ? k : "");
}
static void g_close(s3v_storage *s) { (void)s; }

static const s3v_storage_ops GUARD_OPS = {"guard", g_get,  g_get_ranges, g_put,      g_put_file,
                                          g_head,  g_list, g_del,        g_describe, g_close};
static s3v_storage guard = {&GUARD_OPS};
static hd_handler *handler;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    hd_config cfg = {.cache_bytes = 1 << 20, .fresh_ms = 1000, .max_response_size = RESPONSE_CAP};
    if (hd_handler_new(&cfg, &guard, &handler) != S3V_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!handler) LLVMFuzzerInitialize(NULL, NULL);
    hd_event ev;
    hd_error err;
    s3v_status st = hd_event_decode(data, size, &ev, &err);
    if (st == S3V_OK) {
        FUZZ_ASSERT(cJSON_IsObject(ev.request));
        FUZZ_ASSERT(strlen(ev.operation) < sizeof ev.operation);
    } else {
        FUZZ_ASSERT(err.type != HD_ERR_NONE && err.message[0]);
    }
    FUZZ_ASSERT(ev.kind <= HD_EVENT_FUNCTION_URL);
    hd_event_free(&ev);

    hd_invocation inv = {"fuzz-request", "arn:aws:lambda:us-east-1:123456789012:function:f", S3V_NO_DEADLINE};
    hd_response resp;
    st = hd_handler_invoke(handler, &inv, data, size, &resp);
    FUZZ_ASSERT(st == S3V_OK);
    if (resp.function_error) {
        FUZZ_ASSERT(resp.error_type && resp.error_message);
    } else {
        FUZZ_ASSERT(resp.payload && resp.payload_size <= RESPONSE_CAP);
        cJSON *j = cJSON_ParseWithLength((const char *)resp.payload, resp.payload_size);
        FUZZ_ASSERT(cJSON_IsObject(j));
        if (hd_event_is_http(resp.kind)) {
            const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "statusCode");
            const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
            FUZZ_ASSERT(cJSON_IsNumber(code) && code->valueint == resp.http_status);
            cJSON *inner = cJSON_IsString(body) ? cJSON_Parse(body->valuestring) : NULL;
            FUZZ_ASSERT(cJSON_IsObject(inner));
            cJSON_Delete(inner);
        }
        cJSON_Delete(j);
    }
    return 0;
}
