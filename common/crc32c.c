/* common/crc32c.c: CRC-32C, slicing-by-8 in software, SSE4.2 / ARMv8 CRC in hardware. */
#include "common/crc32c.h"

#include <string.h>

#include "common/le.h"

static uint32_t table[8][256];
static int table_ready;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    table_ready = 1;
}

uint32_t s3v_crc32c_soft(uint32_t crc, const uint8_t *p, size_t n)
{
    if (!table_ready) build_table(); /* idempotent: same values if two threads race */
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = le_get_u32(p) ^ crc;
        uint32_t hi = le_get_u32(p + 4);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
static int hw_available(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
__attribute__((target("+crc"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_aarch64_crc32cx(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_aarch64_crc32cb(c, *p++);
    return ~c;
}
static int hw_available(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) { return s3v_crc32c_soft(crc, p, n); }
static int hw_available(void) { return 0; }
#endif

static uint32_t (*crc_fn)(uint32_t, const uint8_t *, size_t) = s3v_crc32c_soft;

const char *s3v_crc32c_init(int force_soft)
{
    if (!table_ready) build_table();
    if (!force_soft && hw_available()) {
        crc_fn = crc32c_hw;
        return "hardware";
    }
    crc_fn = s3v_crc32c_soft;
    return "software";
}

uint32_t s3v_crc32c(uint32_t crc, const uint8_t *data, size_t size) { return crc_fn(crc, data, size); }
