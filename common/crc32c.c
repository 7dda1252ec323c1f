/* common/crc32c.c: CRC-32C, slicing-by-8 in software, SSE4.2 / ARMv8 CRC in hardware.
 *
 * The hardware instruction has a latency of about 3 cycles and a throughput of one per cycle, so one
 * dependent chain runs at a third of what the unit can do. The hardware path therefore splits long
 * inputs into three lanes of LANE_LONG (then LANE_SHORT) bytes, runs the three chains interleaved, and
 * joins them: the raw CRC register is linear over GF(2), so crc(A || B) = shift(crc(A), |B|) ^ crc0(B),
 * where crc0 starts from a zero register and shift() appends |B| zero bytes. shift() for the two fixed
 * lane lengths is a 32x32 bit matrix, applied with four 256-entry tables built once by
 * s3v_crc32c_init(). Whatever is left (under 3 x LANE_SHORT bytes) runs on one chain. */
#include "common/crc32c.h"

#include <string.h>

#include "common/le.h"

#define POLY       0x82F63B78u /* reflected Castagnoli polynomial */
#define LANE_LONG  8192
#define LANE_SHORT 256

static uint32_t table[8][256];
static int table_ready;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
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

/* ---- appending zero bytes to a raw CRC register (GF(2) matrices) --------------------------------- */

/* A linear map on 32-bit registers: op[i] is the image of bit i. */
static uint32_t gf2_apply(const uint32_t op[32], uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; v; i++, v >>= 1)
        if (v & 1) r ^= op[i];
    return r;
}

/* Builds shift[k][b] = (the register after `bytes` zero bytes are appended to the register b << 8k). */
static void build_shift(uint32_t shift[4][256], size_t bytes)
{
    uint32_t op[32], sq[32];
    /* one zero bit: the register moves right one place and the polynomial is added when bit 0 falls out */
    op[0] = POLY;
    for (int i = 1; i < 32; i++) op[i] = 1u << (i - 1);
    /* square up to one zero byte (8 bits), then to the wanted number of bytes (a power of two here) */
    for (size_t bits = 1; bits < 8 * bytes; bits *= 2) {
        for (int i = 0; i < 32; i++) sq[i] = gf2_apply(op, op[i]);
        memcpy(op, sq, sizeof op);
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) shift[k][b] = gf2_apply(op, b << (8 * k));
}

static uint32_t shift_long[4][256], shift_short[4][256];

static inline uint32_t shift_apply(const uint32_t s[4][256], uint32_t crc)
{
    return s[0][crc & 0xff] ^ s[1][(crc >> 8) & 0xff] ^ s[2][(crc >> 16) & 0xff] ^ s[3][crc >> 24];
}

/* ---- hardware ------------------------------------------------------------------------------------ */

/* Three chains over three consecutive lanes of LANE bytes, joined with SHIFT (the tables for LANE zero
 * bytes), for as long as 3 x LANE bytes remain. Part of CRC32C_LANES. */
#define CRC32C_THREE_LANES(STEP64, LANE, SHIFT)               \
    while (n >= 3 * (LANE)) {                                 \
        uint64_t c1 = 0, c2 = 0;                              \
        for (size_t i = 0; i < (LANE); i += 8) {              \
            uint64_t v0, v1, v2;                              \
            memcpy(&v0, p + i, 8);                            \
            memcpy(&v1, p + (LANE) + i, 8);                   \
            memcpy(&v2, p + 2 * (LANE) + i, 8);               \
            c0 = STEP64(c0, v0);                              \
            c1 = STEP64(c1, v1);                              \
            c2 = STEP64(c2, v2);                              \
        }                                                     \
        c0 = shift_apply(SHIFT, (uint32_t)c0) ^ (uint32_t)c1; \
        c0 = shift_apply(SHIFT, (uint32_t)c0) ^ (uint32_t)c2; \
        p += 3 * (LANE);                                      \
        n -= 3 * (LANE);                                      \
    }

/* The body of both hardware paths: STEP64(c, v) and STEP8(c, b) advance a raw register. */
#define CRC32C_LANES(STEP64, STEP8)                     \
    uint64_t c0 = ~crc;                                 \
    CRC32C_THREE_LANES(STEP64, LANE_LONG, shift_long)   \
    CRC32C_THREE_LANES(STEP64, LANE_SHORT, shift_short) \
    while (n >= 8) {                                    \
        uint64_t v;                                     \
        memcpy(&v, p, 8);                               \
        c0 = STEP64(c0, v);                             \
        p += 8;                                         \
        n -= 8;                                         \
    }                                                   \
    uint32_t c32 = (uint32_t)c0;                        \
    while (n--) c32 = STEP8(c32, *p++);                 \
    return ~c32;

#if defined(__x86_64__)
#include <nmmintrin.h>
#define X86_STEP64(c, v) _mm_crc32_u64((c), (v))
#define X86_STEP8(c, b)  _mm_crc32_u8((c), (b))
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    CRC32C_LANES(X86_STEP64, X86_STEP8)
}
static int hw_available(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#define ARM_STEP64(c, v) __builtin_aarch64_crc32cx((uint32_t)(c), (v))
#define ARM_STEP8(c, b)  __builtin_aarch64_crc32cb((c), (b))
__attribute__((target("+crc"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    CRC32C_LANES(ARM_STEP64, ARM_STEP8)
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
        build_shift(shift_long, LANE_LONG);
        build_shift(shift_short, LANE_SHORT);
        crc_fn = crc32c_hw;
        return "hardware";
    }
    crc_fn = s3v_crc32c_soft;
    return "software";
}

uint32_t s3v_crc32c(uint32_t crc, const uint8_t *data, size_t size) { return crc_fn(crc, data, size); }
