/* tests/unit/test_format.c: the index objects of engine/FORMAT.md: round trips, and every corruption
 * (a flipped byte anywhere, any truncation) is detected, never decoded into wrong values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/le.h"
#include "engine/format.h"
#include "engine/kernels.h"
#include "testutil.h"

#define APPEND(b, p, n) CHECK(s3v_buf_append(b, p, n) == S3V_OK, "append")

static void make_manifest(ivf_manifest *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->generation, sizeof m->generation, "g00000003-0badcafe");
    snprintf(m->creation_time, sizeof m->creation_time, "2026-11-21T10:00:00Z");
    m->dimension = 7;
    m->metric = IVF_METRIC_COSINE;
    m->encoding = IVF_ENC_F16;
    m->count = 1000;
    m->nlist = 9;
    snprintf(m->centroids_key, sizeof m->centroids_key, "g00000003-0badcafe/centroids");
    m->centroids_size = 1234;
    m->centroids_crc = 0xdeadbeef;
    m->data = calloc(2, sizeof *m->data);
    m->data_len = 2;
    snprintf(m->data[0].key, sizeof m->data[0].key, "g00000003-0badcafe/data-0000");
    m->data[0].size = 5000;
    snprintf(m->data[1].key, sizeof m->data[1].key, "g00000003-0badcafe/data-0001");
    m->data[1].size = 6000;
    snprintf(m->keymap_key, sizeof m->keymap_key, "g00000003-0badcafe/keymap");
    m->keymap_size = 12000;
    m->default_nprobe = 3;
    m->calib = calloc(2, sizeof *m->calib);
    m->calib[0] = (ivf_calib_point){1, 0.5f};
    m->calib[1] = (ivf_calib_point){3, 0.97f};
    m->calib_len = 2;
    m->non_filterable = calloc(1, sizeof(char *));
    m->non_filterable[0] = strdup("text");
    m->non_filterable_len = 1;
    m->extra = cJSON_Parse("{\"futureField\": {\"next\": 7}}");
}

static void test_manifest(void)
{
    ivf_manifest m, d;
    make_manifest(&m);
    s3v_buf b;
    s3v_buf_init(&b, 1 << 20);
    REQUIRE(ivf_manifest_encode(&m, &b) == S3V_OK, "encode");
    REQUIRE(ivf_manifest_decode(b.ptr, b.len, &d) == S3V_OK, "decode: %s", s3v_errmsg(S3V_ERR_CORRUPT));
    CHECK(strcmp(d.generation, m.generation) == 0, "generation");
    CHECK(d.dimension == 7 && d.metric == IVF_METRIC_COSINE && d.encoding == IVF_ENC_F16, "shape");
    CHECK(d.count == 1000 && d.nlist == 9 && d.default_nprobe == 3, "counts");
    CHECK(d.data_len == 2 && d.data[1].size == 6000 && strcmp(d.data[1].key, m.data[1].key) == 0,
          "data refs");
    CHECK(d.centroids_crc == 0xdeadbeef && d.centroids_size == 1234, "centroids ref");
    CHECK(d.calib_len == 2 && d.calib[1].nprobe == 3 && fabsf(d.calib[1].recall - 0.97f) < 1e-4f,
          "calibration");
    CHECK(d.non_filterable_len == 1 && strcmp(d.non_filterable[0], "text") == 0, "non-filterable keys");
    cJSON *wal = cJSON_GetObjectItem(d.extra, "futureField");
    CHECK(wal && cJSON_GetObjectItem(wal, "next")->valueint == 7, "unknown fields are kept for re-encoding");
    ivf_manifest_free(&d);

    /* every single flipped bit is detected */
    int undetected = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b.ptr[i] ^= (uint8_t)(1u << bit);
            if (ivf_manifest_decode(b.ptr, b.len, &d) == S3V_OK) {
                undetected++;
                ivf_manifest_free(&d);
            }
            b.ptr[i] ^= (uint8_t)(1u << bit);
        }
    }
    CHECK(undetected == 0, "%d flipped bits in the manifest went undetected", undetected);
    /* every truncation is detected */
    int trunc_ok = 0;
    for (size_t n = 0; n < b.len; n++)
        if (ivf_manifest_decode(b.ptr, n, &d) == S3V_OK) {
            trunc_ok++;
            ivf_manifest_free(&d);
        }
    CHECK(trunc_ok == 0, "%d truncations of the manifest decoded", trunc_ok);
    /* a future version is refused as unsupported, not as corrupt */
    le_put_u32(b.ptr + 8, 2);
    le_put_u32(b.ptr + 20, s3v_crc32c(0, b.ptr, 20));
    CHECK(ivf_manifest_decode(b.ptr, b.len, &d) == S3V_ERR_UNSUPPORTED, "version 2 is unsupported");
    s3v_buf_free(&b);
    ivf_manifest_free(&m);
}

static void test_centroids(void)
{
    ivf_centroids c = {.dim = 5,
                       .nlist = 3,
                       .npages = 2,
                       .encoding = IVF_ENC_I8,
                       .metric = IVF_METRIC_EUCLIDEAN,
                       .count = 30};
    float cent[15];
    for (int i = 0; i < 15; i++) cent[i] = (float)i * 0.5f - 3;
    ivf_cluster_ref refs[3] = {{0, 10, 0, 100, 1}, {0, 15, 100, 200, 2}, {1, 5, 0, 50, 3}};
    ivf_keypage_ref pages[2] = {{5, 0, 240, 9}, {900, 240, 120, 8}};
    float off[5] = {1, 2, 3, 4, 5};
    c.centroids = cent;
    c.clusters = refs;
    c.pages = pages;
    c.q_offset = off;
    c.q_scale = 0.25f;
    s3v_buf b;
    s3v_buf_init(&b, 1 << 20);
    REQUIRE(ivf_centroids_encode(&c, &b) == S3V_OK, "encode");
    uint64_t sizes[2] = {300, 50};
    ivf_centroids d;
    REQUIRE(ivf_centroids_decode(b.ptr, b.len, sizes, 2, 360, &d) == S3V_OK, "decode: %s",
            s3v_errmsg(S3V_ERR_CORRUPT));
    CHECK(memcmp(d.centroids, cent, sizeof cent) == 0, "centroids");
    CHECK(d.clusters[1].offset == 100 && d.clusters[1].size == 200 && d.clusters[2].object == 1, "directory");
    CHECK(d.pages[1].first_hash == 900 && d.pages[1].size == 120, "pages");
    CHECK(d.q_scale == 0.25f && d.q_offset[4] == 5, "quantizer");
    ivf_centroids_free(&d);
    /* a directory entry pointing outside its data object is corrupt */
    uint64_t small[2] = {250, 50};
    CHECK(ivf_centroids_decode(b.ptr, b.len, small, 2, 360, &d) == S3V_ERR_CORRUPT, "ref outside the object");
    CHECK(ivf_centroids_decode(b.ptr, b.len, sizes, 1, 360, &d) == S3V_ERR_CORRUPT,
          "ref to a missing object");
    CHECK(ivf_centroids_decode(b.ptr, b.len, sizes, 2, 300, &d) == S3V_ERR_CORRUPT,
          "page outside the key map");
    int undetected = 0;
    for (size_t i = 0; i < b.len; i++) {
        b.ptr[i] ^= 0x10;
        if (ivf_centroids_decode(b.ptr, b.len, sizes, 2, 360, &d) == S3V_OK) {
            undetected++;
            ivf_centroids_free(&d);
        }
        b.ptr[i] ^= 0x10;
    }
    CHECK(undetected == 0, "%d flipped bytes in the centroids went undetected", undetected);
    s3v_buf_free(&b);
}

static void test_block(int zstd_level, ivf_encoding enc, int with_norms)
{
    const uint32_t dim = 9, n = 40;
    size_t es = ivf_encoding_size(enc);
    uint8_t *vec = malloc(n * dim * es);
    for (size_t i = 0; i < n * dim * es; i++) vec[i] = (uint8_t)(i * 31 + 7);
    float norms[40];
    for (uint32_t i = 0; i < n; i++) norms[i] = 1.0f / (float)(i + 1);
    /* rest: lengths, keys, meta lengths, metadata */
    s3v_buf rest;
    s3v_buf_init(&rest, 1 << 20);
    char key[32], meta[64];
    uint8_t tmp[4];
    for (uint32_t i = 0; i < n; i++) {
        le_put_u16(tmp, (uint16_t)snprintf(key, sizeof key, "key-%u", i));
        APPEND(&rest, tmp, 2);
    }
    for (uint32_t i = 0; i < n; i++) APPEND(&rest, key, (size_t)snprintf(key, sizeof key, "key-%u", i));
    for (uint32_t i = 0; i < n; i++) {
        le_put_u32(tmp, i % 3 ? (uint32_t)snprintf(meta, sizeof meta, "{\"genre\":\"g%u\",\"year\":%u}",
                                                   i % 5, 1990 + i)
                              : 0);
        APPEND(&rest, tmp, 4);
    }
    for (uint32_t i = 0; i < n; i++)
        if (i % 3)
            APPEND(&rest, meta,
                   (size_t)snprintf(meta, sizeof meta, "{\"genre\":\"g%u\",\"year\":%u}", i % 5, 1990 + i));
    s3v_buf b;
    s3v_buf_init(&b, 1 << 20);
    uint32_t crc;
    REQUIRE(ivf_block_encode(&b, 4, dim, enc, n, vec, with_norms ? norms : NULL, rest.ptr, rest.len,
                             zstd_level, &crc) == S3V_OK,
            "encode");
    ivf_cluster_ref ref = {0, n, 0, b.len, crc};
    ivf_block blk;
    REQUIRE(ivf_block_parse(b.ptr, b.len, &ref, 4, dim, enc, &blk) == S3V_OK, "parse");
    CHECK(memcmp(blk.vectors, vec, n * dim * es) == 0, "vectors in place");
    CHECK(!!(blk.flags & IVF_BLOCK_FLAG_ZSTD) == (zstd_level > 0), "compressed exactly when asked (level %d)",
          zstd_level);
    if (with_norms)
        CHECK(blk.inv_norms && le_get_f32(blk.inv_norms + 4 * 7) == norms[7], "norms");
    else
        CHECK(blk.inv_norms == NULL, "no norms");
    ivf_rest r;
    REQUIRE(ivf_rest_decode(&blk, &r) == S3V_OK, "rest");
    CHECK(r.key_off[13] - r.key_off[12] == 6 && memcmp(r.keys + r.key_off[12], "key-12", 6) == 0, "key 12");
    CHECK(r.meta_off[1] - r.meta_off[0] == 0, "vector 0 has no metadata");
    CHECK(memcmp(r.meta + r.meta_off[2], "{\"genre\":\"g2\",\"year\":1992}", 26) == 0, "metadata 2");
    ivf_rest_free(&r);
    /* wrong cluster id or dimension is a mismatch with the directory */
    CHECK(ivf_block_parse(b.ptr, b.len, &ref, 5, dim, enc, &blk) == S3V_ERR_CORRUPT, "cluster id");
    CHECK(ivf_block_parse(b.ptr, b.len, &ref, 4, dim + 1, enc, &blk) == S3V_ERR_CORRUPT, "dimension");
    int undetected = 0;
    for (size_t i = 0; i < b.len; i++) {
        b.ptr[i] ^= 0x01;
        if (ivf_block_parse(b.ptr, b.len, &ref, 4, dim, enc, &blk) == S3V_OK) undetected++;
        b.ptr[i] ^= 0x01;
    }
    CHECK(undetected == 0, "%d flipped bytes in a block went undetected", undetected);
    for (size_t n2 = 0; n2 < b.len; n2 += 7)
        CHECK(ivf_block_parse(b.ptr, n2, &ref, 4, dim, enc, &blk) != S3V_OK, "truncated to %zu", n2);
    s3v_buf_free(&b);
    s3v_buf_free(&rest);
    free(vec);
}

/* A block whose CRC is right but whose rest section lies (crafted, e.g. by a buggy writer) is still refused. */
static void test_rest_lies(void)
{
    uint8_t rest[2 + 1 + 4];
    le_put_u16(rest, 500); /* key length past the section */
    rest[2] = 'k';
    le_put_u32(rest + 3, 0);
    uint8_t vec[4] = {0};
    s3v_buf b;
    s3v_buf_init(&b, 4096);
    uint32_t crc;
    REQUIRE(ivf_block_encode(&b, 0, 1, IVF_ENC_F32, 1, vec, NULL, rest, sizeof rest, 0, &crc) == S3V_OK,
            "encode");
    ivf_cluster_ref ref = {0, 1, 0, b.len, crc};
    ivf_block blk;
    REQUIRE(ivf_block_parse(b.ptr, b.len, &ref, 0, 1, IVF_ENC_F32, &blk) == S3V_OK, "parse");
    ivf_rest r;
    CHECK(ivf_rest_decode(&blk, &r) == S3V_ERR_CORRUPT, "lying key length is corrupt");
    s3v_buf_free(&b);
}

static void test_names(void)
{
    CHECK(ivf_generation_valid("g00000001-5f3a9c21"), "valid generation");
    CHECK(!ivf_generation_valid("g00000001-5f3a9c2"), "short");
    CHECK(!ivf_generation_valid("g0000000X-5f3a9c21"), "non-hex");
    CHECK(!ivf_generation_valid("../00001-5f3a9c21"), "path");
    ivf_metric m;
    CHECK(ivf_metric_parse("cosine", &m) == S3V_OK && m == IVF_METRIC_COSINE, "metric");
    CHECK(ivf_metric_parse("manhattan", &m) == S3V_ERR_INVALID, "unknown metric");
    ivf_encoding e;
    CHECK(ivf_encoding_parse("int8", &e) == S3V_OK && e == IVF_ENC_I8, "encoding alias");
    CHECK(ivf_key_hash((const uint8_t *)"a", 1) != ivf_key_hash((const uint8_t *)"b", 1), "hash differs");
    char k[64];
    CHECK(ivf_key_join("", "manifest", k, sizeof k) == S3V_OK && strcmp(k, "manifest") == 0, "join root");
    CHECK(ivf_key_join("vb/idx", "manifest", k, sizeof k) == S3V_OK && strcmp(k, "vb/idx/manifest") == 0,
          "join");
}

int main(void)
{
    kern_init(0);
    test_manifest();
    test_centroids();
    for (int enc = 0; enc < 3; enc++) {
        test_block(0, (ivf_encoding)enc, 0);
        test_block(3, (ivf_encoding)enc, 1);
    }
    test_rest_lies();
    test_names();
    return TEST_SUMMARY();
}
