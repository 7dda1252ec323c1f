/* tests/unit/test_s3_xml.c: the bounded XML scanner and the ListObjectsV2 / Error / multipart parsers,
 * on well-formed S3 responses and on hostile input (every truncation of a valid document, random
 * byte flips, deep nesting, entity tricks). Inputs are copied into exact-size heap buffers so that
 * ASan catches any read past the length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "s3/s3_xml.h"
#include "tests/unit/testutil.h"

/* An exact-size heap copy without a terminating NUL. */
static uint8_t *dup_exact(const char *s, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p && n) memcpy(p, s, n);
    return p;
}

static const char LIST_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>idx/</Prefix><KeyCount>4</KeyCount><MaxKeys>4</MaxKeys>"
    "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
    "<!-- a comment <Contents> that must be ignored -->"
    "<Contents><Key>idx/b&amp;c.bin</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;abc&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>idx/a&#x20;&#233;&#x1F600;</Key><Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>idx/aa/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix><![CDATA[idx/z<&>/]]></Prefix></CommonPrefixes>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

static void test_list_page(void)
{
    size_t n = sizeof LIST_PAGE - 1;
    uint8_t *doc = dup_exact(LIST_PAGE, n);
    s3_list_page pg;
    s3v_status st = s3_xml_list_parse(doc, n, &pg);
    REQUIRE(st == S3V_OK, "parse: %s", s3v_errmsg(st));
    CHECK(pg.count == 4, "4 entries, got %zu", pg.count);
    CHECK(pg.truncated == 1, "truncated");
    CHECK(!strcmp(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="), "token %s", pg.next_token);
    if (pg.count == 4) {
        /* merged in byte order of key: "idx/a \xc3\xa9..." < "idx/aa/" < "idx/b&c.bin" < "idx/z<&>/" */
        CHECK(!strcmp(pg.entries[0].key, "idx/a \xc3\xa9\xf0\x9f\x98\x80") && pg.entries[0].size == 0 &&
                  !pg.entries[0].is_prefix,
              "numeric references decoded to UTF-8: %s", pg.entries[0].key);
        CHECK(!strcmp(pg.entries[1].key, "idx/aa/") && pg.entries[1].is_prefix, "common prefix %s",
              pg.entries[1].key);
        CHECK(!strcmp(pg.entries[2].key, "idx/b&c.bin") && pg.entries[2].size == 1234, "escaped key %s",
              pg.entries[2].key);
        CHECK(!strcmp(pg.entries[3].key, "idx/z<&>/") && pg.entries[3].is_prefix, "CDATA prefix %s",
              pg.entries[3].key);
    }
    s3_xml_list_free(&pg);
    free(doc);

    const char *empty =
        "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>";
    doc = dup_exact(empty, strlen(empty));
    CHECK(s3_xml_list_parse(doc, strlen(empty), &pg) == S3V_OK && pg.count == 0 && !pg.truncated,
          "empty page");
    s3_xml_list_free(&pg);
    free(doc);

    const char *selfclose = "<ListBucketResult><Contents><Key>k</Key><Size>7</Size><Owner/></Contents>"
                            "<IsTruncated>false</IsTruncated></ListBucketResult>";
    doc = dup_exact(selfclose, strlen(selfclose));
    CHECK(s3_xml_list_parse(doc, strlen(selfclose), &pg) == S3V_OK && pg.count == 1 &&
              pg.entries[0].size == 7,
          "self-closing child");
    s3_xml_list_free(&pg);
    free(doc);
}

static void expect_list_error(const char *doc_text, const char *why)
{
    size_t n = strlen(doc_text);
    uint8_t *doc = dup_exact(doc_text, n);
    s3_list_page pg;
    memset(&pg, 0x5a, sizeof pg);
    s3v_status st = s3_xml_list_parse(doc, n, &pg);
    CHECK(st != S3V_OK, "%s must be rejected", why);
    CHECK(st == S3V_ERR_CORRUPT || st == S3V_ERR_NOMEM, "%s: status %s", why, s3v_status_name(st));
    free(doc);
}

static void test_list_hostile(void)
{
    expect_list_error("", "empty document");
    expect_list_error("   ", "white space only");
    expect_list_error("<Error><Code>AccessDenied</Code></Error>", "an Error document");
    expect_list_error("<ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents>", "unclosed root");
    expect_list_error("<ListBucketResult><Contents><Key>k</Size></Contents></ListBucketResult>",
                      "mismatched tag");
    expect_list_error("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
                      "entry without size");
    expect_list_error("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                      "entry without key");
    expect_list_error("<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
                      "empty key");
    expect_list_error("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
                      "negative size");
    expect_list_error("<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999999</Size></"
                      "Contents></ListBucketResult>",
                      "size overflow");
    expect_list_error("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                      "truncated without a token");
    expect_list_error(
        "<ListBucketResult><Contents><Key>&bogus;</Key><Size>1</Size></Contents></ListBucketResult>",
        "unknown entity");
    expect_list_error(
        "<ListBucketResult><Contents><Key>&#0;</Key><Size>1</Size></Contents></ListBucketResult>",
        "NUL character reference");
    expect_list_error(
        "<ListBucketResult><Contents><Key>&#xD800;</Key><Size>1</Size></Contents></ListBucketResult>",
        "surrogate reference");
    expect_list_error(
        "<ListBucketResult><Contents><Key>&#x110000;</Key><Size>1</Size></Contents></ListBucketResult>",
        "reference past U+10FFFF");
    expect_list_error(
        "<ListBucketResult><Contents><Key>&amp</Key><Size>1</Size></Contents></ListBucketResult>",
        "unterminated entity");
    expect_list_error("<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult></ListBucketResult>", "DOCTYPE");
    expect_list_error("<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
                      "two roots");
    expect_list_error("junk<ListBucketResult></ListBucketResult>", "text before the root");
    expect_list_error("<ListBucketResult><!-- never closed </ListBucketResult>", "unterminated comment");
    expect_list_error("<ListBucketResult><![CDATA[ never closed </ListBucketResult>", "unterminated CDATA");
    expect_list_error("<ListBucketResult a=\"never closed></ListBucketResult>", "unterminated attribute");
    expect_list_error("<ListBucketResult><a<b></b></a></ListBucketResult>", "'<' in a tag");
    expect_list_error("</ListBucketResult>", "closing tag first");

    /* a key longer than S3 allows */
    char *long_key = malloc(3000);
    if (long_key) {
        strcpy(long_key, "<ListBucketResult><Contents><Key>");
        size_t off = strlen(long_key);
        memset(long_key + off, 'k', 1100);
        strcpy(long_key + off + 1100, "</Key><Size>1</Size></Contents></ListBucketResult>");
        expect_list_error(long_key, "key over 1024 bytes");
        free(long_key);
    }
    /* nesting bomb */
    char deep[2048] = "<ListBucketResult>";
    for (int i = 0; i < 40; i++) strcat(deep, "<a>");
    expect_list_error(deep, "nesting deeper than the limit");
}

/* Every prefix of a valid page, and random single-byte corruptions, parse or fail cleanly. */
static void test_truncations_and_flips(void)
{
    size_t n = sizeof LIST_PAGE - 1;
    size_t ok_prefixes = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *doc = dup_exact(LIST_PAGE, len);
        s3_list_page pg;
        if (s3_xml_list_parse(doc, len, &pg) == S3V_OK) {
            ok_prefixes++;
            s3_xml_list_free(&pg);
        }
        free(doc);
    }
    CHECK(ok_prefixes == 0, "no proper prefix of the page is a complete document (%zu parsed)", ok_prefixes);

    s3v_rng rng;
    s3v_rng_seed(&rng, 42);
    size_t parsed = 0, rejected = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *doc = dup_exact(LIST_PAGE, n);
        int flips = 1 + (int)s3v_rng_below(&rng, 3);
        for (int f = 0; f < flips; f++) doc[s3v_rng_below(&rng, n)] = (uint8_t)s3v_rng_below(&rng, 256);
        s3_list_page pg;
        if (s3_xml_list_parse(doc, n, &pg) == S3V_OK) {
            parsed++;
            for (size_t i = 0; i < pg.count; i++) CHECK(pg.entries[i].key[0] != 0, "no empty key ever");
            s3_xml_list_free(&pg);
        } else {
            rejected++;
        }
        char out[64];
        s3v_status fs = s3_xml_find(doc, n, "*/NextContinuationToken", out, sizeof out);
        CHECK(fs == S3V_OK || fs == S3V_ERR_NOT_FOUND || fs == S3V_ERR_CORRUPT || fs == S3V_ERR_TOO_LARGE,
              "find on corrupt input: %s", s3v_status_name(fs));
        free(doc);
    }
    CHECK(parsed + rejected == 20000 && rejected > 0, "random corruption: %zu parsed, %zu rejected", parsed,
          rejected);
}

static void test_find_and_errors(void)
{
    const char *err = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                      "<Message>The request signature we calculated does not match &apos;x&apos;</Message>"
                      "<StringToSign>AWS4-HMAC-SHA256...</StringToSign><RequestId>R1</RequestId></Error>";
    size_t n = strlen(err);
    uint8_t *doc = dup_exact(err, n);
    char code[64], msg[128], root[32];
    CHECK(s3_xml_root(doc, n, root, sizeof root) == S3V_OK && !strcmp(root, "Error"), "root %s", root);
    CHECK(s3_xml_find(doc, n, "Error/Code", code, sizeof code) == S3V_OK &&
              !strcmp(code, "SignatureDoesNotMatch"),
          "code %s", code);
    CHECK(s3_xml_find(doc, n, "Error/Message", msg, sizeof msg) == S3V_OK &&
              !strcmp(msg, "The request signature we calculated does not match 'x'"),
          "message %s", msg);
    CHECK(s3_xml_find(doc, n, "Error/Missing", code, sizeof code) == S3V_ERR_NOT_FOUND, "absent element");
    CHECK(s3_xml_find(doc, n, "Other/Code", code, sizeof code) == S3V_ERR_NOT_FOUND, "wrong root");
    CHECK(s3_xml_find(doc, n, "*/RequestId", code, sizeof code) == S3V_OK && !strcmp(code, "R1"),
          "wildcard root");
    char tiny[4];
    CHECK(s3_xml_find(doc, n, "Error/Code", tiny, sizeof tiny) == S3V_ERR_TOO_LARGE, "value larger than out");
    free(doc);

    const char *mpu =
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>";
    doc = dup_exact(mpu, strlen(mpu));
    char id[64];
    CHECK(s3_xml_find(doc, strlen(mpu), "*/UploadId", id, sizeof id) == S3V_OK && !strcmp(id, "VXBsb2FkIElE"),
          "upload id %s", id);
    free(doc);

    /* a nested element with the same name below the target does not confuse the path match */
    const char *nested = "<R><A><B>x</B></A><B>y</B></R>";
    doc = dup_exact(nested, strlen(nested));
    CHECK(s3_xml_find(doc, strlen(nested), "R/B", id, sizeof id) == S3V_OK && !strcmp(id, "y"), "R/B = %s",
          id);
    CHECK(s3_xml_find(doc, strlen(nested), "R/A/B", id, sizeof id) == S3V_OK && !strcmp(id, "x"),
          "R/A/B = %s", id);
    free(doc);

    /* namespace prefixes are ignored */
    const char *ns = "<s3:Error xmlns:s3=\"u\"><s3:Code>SlowDown</s3:Code></s3:Error>";
    doc = dup_exact(ns, strlen(ns));
    CHECK(s3_xml_find(doc, strlen(ns), "Error/Code", code, sizeof code) == S3V_OK &&
              !strcmp(code, "SlowDown"),
          "prefixed names");
    free(doc);
}

static void test_escape(void)
{
    char out[64];
    CHECK(s3_xml_escape("\"e<t>a&g'", out, sizeof out) == 0 && !strcmp(out, "&quot;e&lt;t&gt;a&amp;g&apos;"),
          "escape: %s", out);
    char small[10];
    CHECK(s3_xml_escape("&&&&", small, sizeof small) == -1, "escape overflow detected");
    char back[64];
    size_t len;
    CHECK(s3_xml_unescape(out, strlen(out), back, sizeof back, &len) == S3V_OK &&
              !strcmp(back, "\"e<t>a&g'") && len == 9,
          "round trip");
    CHECK(s3_xml_unescape("abc", 3, back, 3, NULL) == S3V_ERR_TOO_LARGE, "no room for the NUL");
}

int main(void)
{
    test_list_page();
    test_list_hostile();
    test_truncations_and_flips();
    test_find_and_errors();
    test_escape();
    return TEST_SUMMARY();
}
