/* tests/unit/test_crc32c.c: CRC-32C, the checksum every stored object and block is verified with.
 *
 * Known answers (RFC 3720 B.4 and the "123456789" check value) for every path, then the software path
 * (slicing-by-8) and the hardware path (three interleaved lanes joined with shift tables, when the CPU
 * has it) against a bit-at-a-time reference on sizes around the lane boundaries, at unaligned
 * addresses, and continued across calls. A wrong lane join or shift table shows up as a mismatch on
 * inputs of 3 x 256 bytes or more. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/rng.h"
#include "tests/unit/testutil.h"

/* One bit at a time, straight from the definition: the reference. */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

typedef uint32_t (*crc_fn)(uint32_t, const uint8_t *, size_t);

static void test_known(const char *name, crc_fn f)
{
    uint8_t b[32];
    CHECK(f(0, (const uint8_t *)"123456789", 9) == 0xE3069283u, "%s: check value", name);
    memset(b, 0, sizeof b);
    CHECK(f(0, b, 32) == 0x8A9136AAu, "%s: 32 zero bytes", name);
    memset(b, 0xff, sizeof b);
    CHECK(f(0, b, 32) == 0x62A8AB43u, "%s: 32 0xff bytes", name);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    CHECK(f(0, b, 32) == 0x46DD794Eu, "%s: 0..31", name);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    CHECK(f(0, b, 32) == 0x113FDB5Cu, "%s: 31..0", name);
    CHECK(f(0, b, 0) == 0, "%s: empty input", name);
    CHECK(f(0x12345678u, b, 0) == 0x12345678u, "%s: empty input keeps the running value", name);
}

/* f against the reference on awkward sizes (around both lane lengths) at every alignment 0..7. */
static void test_sizes(const char *name, crc_fn f, const uint8_t *buf)
{
    static const size_t sizes[] = {1,     7,     8,     9,     255,   256,    257,    767,
                                   768,   769,   1000,  2303,  2304,  24575,  24576,  24577,
                                   25344, 49152, 49919, 73728, 99999, 139264, 781313, 1048576};
    size_t bad = 0, n = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t off = 0; off < 8; off++) {
            uint32_t want = crc_ref(0, buf + off, sizes[s]);
            uint32_t got = f(0, buf + off, sizes[s]);
            n++;
            if (got != want) {
                if (!bad)
                    fprintf(stderr, "%s: size %zu offset %zu: %08x, want %08x\n", name, sizes[s], off, got,
                            want);
                bad++;
            }
        }
    }
    CHECK(bad == 0, "%s: %zu of %zu sizes x offsets differ from the bitwise reference", name, bad, n);
}

/* crc(a || b) == crc(crc(a), b) for splits inside and across lanes. */
static void test_continue(const char *name, crc_fn f, const uint8_t *buf)
{
    const size_t total = 3 * 8192 * 2 + 3 * 256 + 13;
    uint32_t whole = crc_ref(0, buf, total);
    static const size_t cuts[] = {0, 1, 8, 255, 769, 8192, 24576, 24577, 30000, 3 * 8192 * 2 + 3 * 256 + 13};
    size_t bad = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        uint32_t c = f(0, buf, cuts[i]);
        c = f(c, buf + cuts[i], total - cuts[i]);
        if (c != whole) bad++;
    }
    CHECK(bad == 0, "%s: %zu split points give a different checksum than one call", name, bad);
}

int main(void)
{
    const size_t cap = (1u << 20) + 64;
    uint8_t *buf = malloc(cap);
    if (!buf) return 1;
    s3v_rng rng;
    s3v_rng_seed(&rng, 42);
    for (size_t i = 0; i < cap; i++) buf[i] = (uint8_t)s3v_rng_next(&rng);

    test_known("reference", crc_ref);
    test_known("software", s3v_crc32c_soft);
    test_sizes("software", s3v_crc32c_soft, buf);
    test_continue("software", s3v_crc32c_soft, buf);

    const char *forced = s3v_crc32c_init(1);
    CHECK(!strcmp(forced, "software"), "init(1) chose %s", forced);
    test_known("forced software", s3v_crc32c);

    const char *path = s3v_crc32c_init(0);
    printf("crc32c: the default path here is %s\n", path);
    test_known(path, s3v_crc32c);
    test_sizes(path, s3v_crc32c, buf);
    test_continue(path, s3v_crc32c, buf);
    /* flipping one byte anywhere changes the checksum (the lanes all take part) */
    size_t missed = 0;
    uint32_t base = s3v_crc32c(0, buf, 100000);
    for (size_t pos = 0; pos < 100000; pos += 997) {
        buf[pos] ^= 0x10;
        if (s3v_crc32c(0, buf, 100000) == base) missed++;
        buf[pos] ^= 0x10;
    }
    CHECK(missed == 0, "%s: %zu single-byte changes went unnoticed", path, missed);
    free(buf);
    return TEST_SUMMARY();
}
