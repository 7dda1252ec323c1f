/* tests/unit/test_s3_sigv4_key.c: the SigV4 signing key and signing with a kept key (the S3 client
 * derives the key once per UTC day instead of once per request).
 *
 * The key for AWS's documented example, the HMAC-SHA256 of s3_sigv4.c against OpenSSL's own HMAC()
 * for secrets of every length class (short, at the 64-byte block edge, longer: the key is hashed
 * first), and signing with a kept key gives byte-for-byte the signature of signing from the secret,
 * while a key of another day does not. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "s3/s3_sigv4.h"
#include "tests/unit/testutil.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The derivation with OpenSSL's one-shot HMAC(): the reference. */
static void ref_key(const char *secret, const char *date8, const char *region, const char *service,
                    uint8_t out[32])
{
    uint8_t k[300], a[32], b[32];
    unsigned int n = 0;
    size_t sl = strlen(secret);
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl);
    HMAC(EVP_sha256(), k, (int)(sl + 4), (const uint8_t *)date8, 8, a, &n);
    HMAC(EVP_sha256(), a, 32, (const uint8_t *)region, strlen(region), b, &n);
    HMAC(EVP_sha256(), b, 32, (const uint8_t *)service, strlen(service), a, &n);
    HMAC(EVP_sha256(), a, 32, (const uint8_t *)"aws4_request", 12, out, &n);
}

static void test_documented_key(void)
{
    uint8_t key[32];
    char h[65];
    REQUIRE(s3_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
                                 key) == S3V_OK,
            "derive");
    hex(key, 32, h);
    CHECK(!strcmp(h, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"),
          "AWS example key: %s", h);
    CHECK(s3_sigv4_signing_key("", "20120215", "us-east-1", "s3", key) == S3V_ERR_INVALID, "empty secret");
    CHECK(s3_sigv4_signing_key("x", "2012", "us-east-1", "s3", key) == S3V_ERR_INVALID, "short date");
}

static void test_against_openssl(void)
{
    char secret[257];
    static const size_t lens[] = {1, 40, 59, 60, 61, 64, 100, 200, 256};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        for (size_t j = 0; j < lens[i]; j++) secret[j] = (char)('A' + (j * 7 + i) % 58);
        secret[lens[i]] = 0;
        uint8_t got[32], want[32];
        REQUIRE(s3_sigv4_signing_key(secret, "20261122T031500Z", "eu-west-3", "s3", got) == S3V_OK,
                "derive %zu", lens[i]);
        ref_key(secret, "20261122", "eu-west-3", "s3", want);
        CHECK(!memcmp(got, want, 32), "secret of %zu bytes: key differs from OpenSSL HMAC()", lens[i]);
    }
}

static void test_sign_with_key(void)
{
    s3_sigv4_header h[2] = {{"host", "bkt.s3.us-east-1.amazonaws.com"}, {"range", "bytes=100-200"}};
    s3_sigv4_creds creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token/with+chars"};
    s3_sigv4_req req = {"GET", "/idx/data-0000", "x-id=GetObject", h, 2, S3_SIGV4_UNSIGNED_PAYLOAD};
    s3_sigv4_opts opts = {"us-east-1", "s3", 1763780000, 0, 1, 0}; /* 2025-11-22 */
    s3_sigv4_out a, b;
    s3_sigv4_out_init(&a);
    s3_sigv4_out_init(&b);
    uint8_t key[32], other[32];
    REQUIRE(s3_sigv4_sign(&req, &creds, &opts, &a) == S3V_OK, "sign from the secret");
    REQUIRE(s3_sigv4_signing_key(creds.secret_access_key, a.amz_date, "us-east-1", "s3", key) == S3V_OK,
            "key");
    REQUIRE(s3_sigv4_sign_with_key(&req, &creds, &opts, key, &b) == S3V_OK, "sign with the key");
    CHECK(!strcmp((char *)a.result.ptr, (char *)b.result.ptr), "kept key: %s vs %s", (char *)a.result.ptr,
          (char *)b.result.ptr);
    REQUIRE(s3_sigv4_sign_with_key(&req, &creds, &opts, NULL, &b) == S3V_OK, "sign with NULL");
    CHECK(!strcmp(a.signature, b.signature), "NULL key derives it");
    REQUIRE(s3_sigv4_signing_key(creds.secret_access_key, "20251121", "us-east-1", "s3", other) == S3V_OK,
            "key");
    REQUIRE(s3_sigv4_sign_with_key(&req, &creds, &opts, other, &b) == S3V_OK, "sign with yesterday's key");
    CHECK(strcmp(a.signature, b.signature) != 0, "a key of another day gives another signature");
    s3_sigv4_out_free(&a);
    s3_sigv4_out_free(&b);
}

int main(void)
{
    test_documented_key();
    test_against_openssl();
    test_sign_with_key();
    return TEST_SUMMARY();
}
