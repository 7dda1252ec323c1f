/* tests/unit/test_event.c: handler/event.c: which shape an event is, which operation it names, which
 * request fields it carries (plain and base64 bodies), and the errors for malformed events. Every event
 * is decoded from a buffer of exactly its size (no NUL after it), so ASan sees any over-read. */
#include <stdlib.h>
#include <string.h>

#include "handler/event.h"
#include "tests/unit/testutil.h"

/* Decodes text from an exact-size heap copy. */
static s3v_status decode(const char *text, hd_event *ev, hd_error *err)
{
    size_t n = strlen(text);
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, text, n);
    s3v_status st = hd_event_decode(p, n, ev, err);
    free(p);
    return st;
}

static const char *req_str(const hd_event *ev, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev->request, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_direct(void)
{
    hd_event ev;
    hd_error err;
    REQUIRE(decode("{\"operation\":\"QueryVectors\",\"indexName\":\"idx\",\"topK\":3}", &ev, &err) == S3V_OK,
            "%s", err.message);
    CHECK(ev.kind == HD_EVENT_DIRECT, "kind %d", ev.kind);
    CHECK(strcmp(ev.operation, "QueryVectors") == 0, "operation %s", ev.operation);
    CHECK(req_str(&ev, "indexName") && strcmp(req_str(&ev, "indexName"), "idx") == 0, "fields at top level");
    CHECK(ev.error_mode == HD_ERROR_MODE_DEFAULT, "mode");
    hd_event_free(&ev);

    /* a payload with only a body key: the body holds the request, operation inside */
    REQUIRE(decode("{\"body\":\"{\\\"operation\\\":\\\"GetIndex\\\",\\\"indexName\\\":\\\"abc\\\"}\"}", &ev,
                   &err) == S3V_OK,
            "%s", err.message);
    CHECK(ev.kind == HD_EVENT_DIRECT, "body-only is direct");
    CHECK(strcmp(ev.operation, "GetIndex") == 0, "operation from the body: %s", ev.operation);
    CHECK(req_str(&ev, "indexName") && strcmp(req_str(&ev, "indexName"), "abc") == 0, "fields from the body");
    hd_event_free(&ev);

    /* body as an object, operation and errorMode outside */
    REQUIRE(decode("{\"operation\":\"ListVectors\",\"errorMode\":\"function\",\"body\":{\"maxResults\":5}}",
                   &ev, &err) == S3V_OK,
            "%s", err.message);
    CHECK(strcmp(ev.operation, "ListVectors") == 0 && ev.error_mode == HD_ERROR_MODE_FUNCTION, "op + mode");
    CHECK(cJSON_GetObjectItemCaseSensitive(ev.request, "maxResults") != NULL, "object body");
    hd_event_free(&ev);

    /* base64 body in a direct payload */
    REQUIRE(decode("{\"body\":\"eyJvcGVyYXRpb24iOiJHZXRJbmRleCJ9\",\"isBase64Encoded\":true}", &ev, &err) ==
                S3V_OK,
            "%s", err.message);
    CHECK(strcmp(ev.operation, "GetIndex") == 0, "base64 direct body: %s", ev.operation);
    hd_event_free(&ev);

    /* errorMode payload inside the request; unknown values fall back to the default */
    REQUIRE(decode("{\"operation\":\"GetIndex\",\"errorMode\":\"payload\"}", &ev, &err) == S3V_OK,
            "mode payload");
    CHECK(ev.error_mode == HD_ERROR_MODE_PAYLOAD, "payload mode");
    hd_event_free(&ev);
    REQUIRE(decode("{\"operation\":\"GetIndex\",\"errorMode\":\"loud\"}", &ev, &err) == S3V_OK, "mode other");
    CHECK(ev.error_mode == HD_ERROR_MODE_DEFAULT, "unknown mode is the default");
    hd_event_free(&ev);

    /* no operation: decodes, the handler answers UnknownOperation */
    REQUIRE(decode("{\"topK\":3}", &ev, &err) == S3V_OK, "no operation");
    CHECK(ev.operation[0] == 0, "empty operation");
    hd_event_free(&ev);

    /* an operation name longer than any operation is left empty (never truncated into another) */
    char big[400];
    snprintf(big, sizeof big, "{\"operation\":\"%0300d\"}", 0);
    REQUIRE(decode(big, &ev, &err) == S3V_OK, "long operation");
    CHECK(ev.operation[0] == 0, "long operation dropped");
    hd_event_free(&ev);
}

static void test_http_v2(void)
{
    hd_event ev;
    hd_error err;
    const char *v2 = "{\"version\":\"2.0\",\"routeKey\":\"POST /{operation}\",\"rawPath\":\"/QueryVectors\","
                     "\"requestContext\":{\"domainName\":\"x.execute-api.us-east-1.amazonaws.com\","
                     "\"http\":{\"method\":\"post\",\"path\":\"/QueryVectors\"}},"
                     "\"body\":\"{\\\"topK\\\":7}\",\"isBase64Encoded\":false}";
    REQUIRE(decode(v2, &ev, &err) == S3V_OK, "%s", err.message);
    CHECK(ev.kind == HD_EVENT_HTTP_V2, "kind %d", ev.kind);
    CHECK(strcmp(ev.method, "POST") == 0, "method upper-cased: %s", ev.method);
    CHECK(strcmp(ev.operation, "QueryVectors") == 0, "op %s", ev.operation);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(ev.request, "topK");
    CHECK(cJSON_IsNumber(k) && k->valueint == 7, "body parsed");
    hd_event_free(&ev);

    /* Function URL: same shape, lambda-url domain; base64 body; stage-less path with trailing slash */
    const char *url = "{\"version\":\"2.0\",\"rawPath\":\"/ListIndexes/\",\"requestContext\":{\"domainName\":"
                      "\"abc.lambda-url.us-east-1.on.aws\",\"http\":{\"method\":\"POST\"}},"
                      "\"body\":\"eyJ2ZWN0b3JCdWNrZXROYW1lIjoidmIxIn0=\",\"isBase64Encoded\":true}";
    REQUIRE(decode(url, &ev, &err) == S3V_OK, "%s", err.message);
    CHECK(ev.kind == HD_EVENT_FUNCTION_URL, "function url kind %d", ev.kind);
    CHECK(strcmp(ev.operation, "ListIndexes") == 0, "op %s", ev.operation);
    CHECK(req_str(&ev, "vectorBucketName") && strcmp(req_str(&ev, "vectorBucketName"), "vb1") == 0,
          "base64 body decoded");
    hd_event_free(&ev);

    /* no body: an empty request */
    REQUIRE(decode("{\"version\":\"2.0\",\"rawPath\":\"/"
                   "GetIndex\",\"requestContext\":{\"http\":{\"method\":\"POST\"}}}",
                   &ev, &err) == S3V_OK,
            "%s", err.message);
    CHECK(cJSON_IsObject(ev.request) && ev.request->child == NULL, "empty request");
    hd_event_free(&ev);

    /* pathParameters.operation wins over the path */
    REQUIRE(
        decode("{\"rawPath\":\"/x/y\",\"pathParameters\":{\"operation\":\"GetVectors\"},\"requestContext\":"
               "{\"http\":{\"method\":\"POST\"}},\"body\":\"  \"}",
               &ev, &err) == S3V_OK,
        "%s", err.message);
    CHECK(strcmp(ev.operation, "GetVectors") == 0, "path parameter: %s", ev.operation);
    hd_event_free(&ev);
}

static void test_rest_v1(void)
{
    hd_event ev;
    hd_error err;
    const char *v1 = "{\"resource\":\"/{operation}\",\"path\":\"/prod/GetVectors\",\"httpMethod\":\"POST\","
                     "\"requestContext\":{\"stage\":\"prod\"},\"body\":\"{\\\"keys\\\":[\\\"a\\\"]}\","
                     "\"isBase64Encoded\":false}";
    REQUIRE(decode(v1, &ev, &err) == S3V_OK, "%s", err.message);
    CHECK(ev.kind == HD_EVENT_REST_V1, "kind %d", ev.kind);
    CHECK(strcmp(ev.operation, "GetVectors") == 0, "last path segment: %s", ev.operation);
    CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ev.request, "keys")), "body");
    hd_event_free(&ev);

    REQUIRE(decode("{\"httpMethod\":\"GET\",\"path\":\"/QueryVectors\",\"body\":null}", &ev, &err) == S3V_OK,
            "get");
    CHECK(ev.kind == HD_EVENT_REST_V1 && strcmp(ev.method, "GET") == 0, "GET kept for the router");
    hd_event_free(&ev);

    /* httpMethod alone (no requestContext/resource/path) is not enough for a REST event */
    REQUIRE(decode("{\"httpMethod\":\"POST\",\"operation\":\"GetIndex\"}", &ev, &err) == S3V_OK, "weak v1");
    CHECK(ev.kind == HD_EVENT_DIRECT, "lenient: direct");
    hd_event_free(&ev);
}

static void expect_error(const char *text, hd_event_kind kind, const char *needle)
{
    hd_event ev;
    hd_error err;
    s3v_status st = decode(text, &ev, &err);
    CHECK(st != S3V_OK, "should fail: %.60s", text);
    CHECK(err.type == HD_ERR_VALIDATION, "validation error for %.60s (type %d)", text, err.type);
    CHECK(ev.kind == kind, "kind %d for %.60s", ev.kind, text);
    CHECK(strstr(err.message, needle) != NULL, "message '%s' mentions '%s'", err.message, needle);
    hd_event_free(&ev);
}

static void test_errors(void)
{
    expect_error("", HD_EVENT_DIRECT, "not valid JSON");
    expect_error("{\"operation\":", HD_EVENT_DIRECT, "end of input");
    expect_error("[1,2]", HD_EVENT_DIRECT, "JSON object");
    expect_error("\"text\"", HD_EVENT_DIRECT, "JSON object");
    expect_error("{\"a\":1} {\"b\":2}", HD_EVENT_DIRECT, "unexpected data");
    expect_error("{\"operation\":\"QueryVectors\",\"queryVector\":{\"float32\":[NaN]}}", HD_EVENT_DIRECT,
                 "NaN");
    expect_error("{\"queryVector\":{\"float32\":[1,-Infinity]}}", HD_EVENT_DIRECT, "Infinity");
    const char *pre = "{\"version\":\"2.0\",\"rawPath\":\"/QueryVectors\",\"requestContext\":{\"http\":"
                      "{\"method\":\"POST\"}},";
    char buf[512];
    snprintf(buf, sizeof buf, "%s\"body\":\"{not json\"}", pre);
    expect_error(buf, HD_EVENT_HTTP_V2, "request body is not valid JSON");
    snprintf(buf, sizeof buf, "%s\"body\":\"[1]\"}", pre);
    expect_error(buf, HD_EVENT_HTTP_V2, "must be a JSON object");
    snprintf(buf, sizeof buf, "%s\"body\":\"!!!\",\"isBase64Encoded\":true}", pre);
    expect_error(buf, HD_EVENT_HTTP_V2, "base64");
    snprintf(buf, sizeof buf, "%s\"body\":42}", pre);
    expect_error(buf, HD_EVENT_HTTP_V2, "must be a string");
    expect_error("{\"body\":\"{\\\"x\\\":NaN}\"}", HD_EVENT_DIRECT, "NaN");

    /* over the size limit: refused before parsing */
    size_t n = HD_EVENT_MAX_SIZE + 1;
    uint8_t *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    hd_event ev;
    hd_error err;
    CHECK(hd_event_decode(big, n, &ev, &err) == S3V_ERR_TOO_LARGE, "too large");
    hd_event_free(&ev);
    free(big);
}

static void test_base64(void)
{
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},
             {"Zg==", "f"},
             {"Zm8=", "fo"},
             {"Zm9v", "foo"},
             {"Zm9vYg==", "foob"},
             {"Zm9vYmE=", "fooba"},
             {"Zm9vYmFy", "foobar"},
             {"Zm9vYg", "foob"}};
    uint8_t out[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t m = hd_base64_decode(v[i].in, strlen(v[i].in), out);
        CHECK(m == strlen(v[i].out) && memcmp(out, v[i].out, m) == 0, "base64 '%s'", v[i].in);
    }
    CHECK(hd_base64_decode("Zm9v!", 5, out) == (size_t)-1, "bad char");
    CHECK(hd_base64_decode("Z", 1, out) == (size_t)-1, "bad length");
    CHECK(hd_base64_decode("Zm 9v", 5, out) == (size_t)-1, "no whitespace");
}

int main(void)
{
    test_direct();
    test_http_v2();
    test_rest_v1();
    test_errors();
    test_base64();
    return TEST_SUMMARY();
}
