/* tests/unit/test_handler_names.c: the handler's pure parts: vector bucket / index names and ARNs
 * (nothing outside an index can be named), the status -> S3 Vectors error mapping, and the JSON
 * writer (valid JSON from any bytes; shortest float32 text that reads back to the same float). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/rng.h"
#include "handler/errors.h"
#include "handler/jsonw.h"
#include "handler/names.h"
#include "tests/unit/testutil.h"

static void test_names(void)
{
    static const char *good_bucket[] = {"abc", "my-bucket-1", "0aa", "a-b",
                                        "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"};
    static const char *bad_bucket[] = {"ab",
                                       "-abc",
                                       "abc-",
                                       "ABC",
                                       "a.b.c",
                                       "a_b",
                                       "../x",
                                       "a/b",
                                       "abc ",
                                       "",
                                       "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"};
    for (size_t i = 0; i < sizeof good_bucket / sizeof *good_bucket; i++)
        CHECK(!hd_name_bucket_problem(good_bucket[i], strlen(good_bucket[i])), "bucket '%s' valid",
              good_bucket[i]);
    for (size_t i = 0; i < sizeof bad_bucket / sizeof *bad_bucket; i++)
        CHECK(hd_name_bucket_problem(bad_bucket[i], strlen(bad_bucket[i])) != NULL, "bucket '%s' invalid",
              bad_bucket[i]);
    static const char *good_index[] = {"idx", "my.index-2", "a.b", "0-9"};
    static const char *bad_index[] = {"..",  "...", ".abc", "abc.", "../x", "x/..",
                                      "a/b", "Idx", "a b",  "a\\b", "ab",   "a%2e"};
    for (size_t i = 0; i < sizeof good_index / sizeof *good_index; i++)
        CHECK(!hd_name_index_problem(good_index[i], strlen(good_index[i])), "index '%s' valid",
              good_index[i]);
    for (size_t i = 0; i < sizeof bad_index / sizeof *bad_index; i++)
        CHECK(hd_name_index_problem(bad_index[i], strlen(bad_index[i])) != NULL, "index '%s' invalid",
              bad_index[i]);
    /* a NUL inside the length is not a valid character */
    CHECK(hd_name_index_problem("ab\0cd", 5) != NULL, "embedded NUL");
}

static void test_arns(void)
{
    char vb[HD_NAME_MAX], idx[HD_NAME_MAX];
    const char *a = "arn:aws:s3vectors:us-east-1:123456789012:bucket/my-bucket/index/my.index";
    CHECK(!hd_arn_parse_index(a, strlen(a), vb, idx) && strcmp(vb, "my-bucket") == 0 &&
              strcmp(idx, "my.index") == 0,
          "index arn");
    a = "arn:aws-cn:s3vectors:cn-north-1:123456789012:bucket/vb1/index/idx";
    CHECK(!hd_arn_parse_index(a, strlen(a), vb, idx), "partition suffix");
    static const char *bad[] = {
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/my-bucket/index/../x",
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/../index/idx",
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/vb1/index/idx/extra",
        "arn:aws:s3vectors:us-east-1:12345678901:bucket/vb1/index/idx",
        "arn:aws:s3:us-east-1:123456789012:bucket/vb1/index/idx",
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/vb1",
        "arn:aws:s3vectors::123456789012:bucket/vb1/index/idx",
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/vb1/index/",
        "arn:azure:s3vectors:us-east-1:123456789012:bucket/vb1/index/idx",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(hd_arn_parse_index(bad[i], strlen(bad[i]), vb, idx) != NULL, "bad index arn '%s'", bad[i]);
    a = "arn:aws:s3vectors:eu-west-1:123456789012:bucket/vb-2";
    CHECK(!hd_arn_parse_bucket(a, strlen(a), vb) && strcmp(vb, "vb-2") == 0, "bucket arn");
    a = "arn:aws:s3vectors:eu-west-1:123456789012:bucket/vb-2/index/x";
    CHECK(hd_arn_parse_bucket(a, strlen(a), vb) != NULL, "an index arn is not a bucket arn");
    char out[200];
    hd_arn_format_index(out, sizeof out, "eu-west-1", "123456789012", "vb1", "ix.2");
    CHECK(strcmp(out, "arn:aws:s3vectors:eu-west-1:123456789012:bucket/vb1/index/ix.2") == 0, "format: %s",
          out);
    CHECK(!hd_arn_parse_index(out, strlen(out), vb, idx) && strcmp(vb, "vb1") == 0 &&
              strcmp(idx, "ix.2") == 0,
          "round trip");
}

static void test_errors(void)
{
    static const struct {
        s3v_status st;
        const char *name;
        int http;
    } m[] = {
        {S3V_ERR_INVALID, "ValidationException", 400},
        {S3V_ERR_DIMENSION, "ValidationException", 400},
        {S3V_ERR_NOT_FOUND, "NotFoundException", 404},
        {S3V_ERR_ACCESS_DENIED, "AccessDeniedException", 403},
        {S3V_ERR_TIMEOUT, "RequestTimeoutException", 408},
        {S3V_ERR_THROTTLED, "TooManyRequestsException", 429},
        {S3V_ERR_NETWORK, "ServiceUnavailableException", 503},
        {S3V_ERR_REMOTE, "ServiceUnavailableException", 503},
        {S3V_ERR_CORRUPT, "InternalServerException", 500},
        {S3V_ERR_NOMEM, "InternalServerException", 500},
        {S3V_ERR_CONFLICT, "ConflictException", 409},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        hd_err_type t = hd_err_from_status(m[i].st);
        CHECK(strcmp(hd_err_type_name(t), m[i].name) == 0 && hd_err_http_status(t) == m[i].http,
              "status %d -> %s", (int)m[i].st, hd_err_type_name(t));
    }
    hd_error e;
    CHECK(hd_err_field(&e, "topK", "must be between %d and %d", 1, 100) == S3V_ERR_INVALID,
          "field returns INVALID");
    s3v_buf b;
    s3v_buf_init(&b, 4096);
    REQUIRE(hd_err_body(&e, &b) == S3V_OK, "body");
    cJSON *j = cJSON_Parse((const char *)b.ptr);
    REQUIRE(j != NULL, "error body is JSON: %s", b.ptr);
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "fieldList");
    CHECK(cJSON_GetArraySize(fl) == 1, "one field");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(fl, 0), "path");
    CHECK(cJSON_IsString(p) && strcmp(p->valuestring, "topK") == 0, "path topK");
    CHECK(strstr(cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring, "topK") != NULL, "message");
    cJSON_Delete(j);
    s3v_buf_reset(&b);
    s3v_errorf(S3V_ERR_NOT_FOUND, "no such thing");
    hd_err_status(&e, S3V_ERR_NOT_FOUND, "keys");
    REQUIRE(hd_err_body(&e, &b) == S3V_OK, "body");
    CHECK(strstr((const char *)b.ptr, "fieldList") == NULL, "no fieldList outside validation errors: %s",
          b.ptr);
    s3v_buf_free(&b);
}

static void test_strings(void)
{
    s3v_buf b;
    s3v_buf_init(&b, 1 << 16);
    /* every byte value, including invalid UTF-8, gives a JSON string cJSON accepts */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    REQUIRE(hd_json_str(&b, all, sizeof all) == S3V_OK, "append");
    cJSON *j = cJSON_ParseWithLength((const char *)b.ptr, b.len);
    CHECK(cJSON_IsString(j), "valid JSON string");
    /* the ASCII part survives exactly */
    CHECK(j && memcmp(j->valuestring + 1, all + 1, 127) == 0, "ASCII bytes preserved");
    cJSON_Delete(j);
    s3v_buf_reset(&b);
    const char *utf = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ \n\t";
    REQUIRE(hd_json_cstr(&b, utf) == S3V_OK, "utf8");
    j = cJSON_Parse((const char *)b.ptr);
    CHECK(j && strcmp(j->valuestring, utf) == 0, "valid UTF-8 and escapes round-trip: %s", b.ptr);
    cJSON_Delete(j);
    s3v_buf_reset(&b);
    /* overlong, surrogate and truncated sequences become U+FFFD */
    const char *bad = "a\xc0\xaf"
                      "b\xed\xa0\x80"
                      "c\xe2\x82";
    REQUIRE(hd_json_cstr(&b, bad) == S3V_OK, "bad utf8");
    j = cJSON_Parse((const char *)b.ptr);
    CHECK(strstr((const char *)b.ptr, "\\ufffd") != NULL && j != NULL, "%s", b.ptr);
    cJSON_Delete(j);
    s3v_buf_free(&b);
    /* the cap is enforced */
    s3v_buf_init(&b, 8);
    CHECK(hd_json_cstr(&b, "0123456789") == S3V_ERR_TOO_LARGE, "cap");
    s3v_buf_free(&b);
}

static void test_floats(void)
{
    static const struct {
        float v;
        const char *s;
    } fixed[] = {
        {0.1f, "0.1"},     {0.5f, "0.5"},   {1.0f, "1"},           {-2.25f, "-2.25"},
        {100.0f, "100"},   {1e-7f, "1e-7"}, {123456.0f, "123456"}, {3.4028235e38f, "3.4028235e38"},
        {0.001f, "0.001"}, {1e21f, "1e21"}, {0.0f, "0"},           {1.17549435e-38f, "1.1754944e-38"}};
    char out[40];
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        hd_json_format_f32(fixed[i].v, out);
        CHECK(strcmp(out, fixed[i].s) == 0, "%.9g -> %s (want %s)", (double)fixed[i].v, out, fixed[i].s);
    }
    hd_json_format_f32(NAN, out);
    CHECK(strcmp(out, "null") == 0, "NaN -> null");
    hd_json_format_f32(-INFINITY, out);
    CHECK(strcmp(out, "null") == 0, "inf -> null");
    /* random bit patterns: reads back exactly, at most 9 significant digits, valid JSON number */
    s3v_rng rng;
    s3v_rng_seed(&rng, 42);
    int bad = 0, checked = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)s3v_rng_next(&rng);
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v)) continue;
        size_t n = hd_json_format_f32(v, out);
        checked++;
        float back = strtof(out, NULL);
        /* significant digits: the digit string without leading and trailing zeros */
        char dg[40];
        int nd = 0;
        for (size_t k = 0; k < n && out[k] != 'e'; k++)
            if (out[k] >= '0' && out[k] <= '9' && (nd || out[k] != '0')) dg[nd++] = out[k];
        while (nd > 0 && dg[nd - 1] == '0') nd--;
        int digits = nd;
        cJSON *j = cJSON_Parse(out);
        if (back != v || digits > 9 || n > 18 || !cJSON_IsNumber(j)) {
            if (bad++ < 5) fprintf(stderr, "float %08x -> %s\n", bits, out);
        }
        cJSON_Delete(j);
    }
    CHECK(bad == 0, "%d of %d random floats did not round-trip", bad, checked);
    /* shortest: a float parsed from a short decimal prints as that decimal */
    const char *shorts[] = {"0.3", "1.5e-5", "42.42", "-0.0625", "7e30", "0.000123"};
    for (size_t i = 0; i < sizeof shorts / sizeof *shorts; i++) {
        float v = strtof(shorts[i], NULL);
        hd_json_format_f32(v, out);
        CHECK(strtof(out, NULL) == v && strlen(out) <= strlen(shorts[i]) + 1, "%s -> %s", shorts[i], out);
    }
}

int main(void)
{
    test_names();
    test_arns();
    test_errors();
    test_strings();
    test_floats();
    return TEST_SUMMARY();
}
