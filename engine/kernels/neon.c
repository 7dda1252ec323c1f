/* engine/kernels/neon.c: the kernel table for aarch64 with NEON (ASIMD, mandatory on ARMv8-A, so
 * no run-time check is needed). Half precision uses the base FCVTL/FCVTN conversions (vcvt_f32_f16,
 * vcvt_f16_f32), not the optional FP16 arithmetic; i8 uses widening multiplies (vmull_s8 / vabd +
 * vmull_u8) with pairwise accumulation into 32-bit lanes, exact within the bounds in kernels.h. The
 * optional dot-product extension (SDOT) is not used.
 *
 * Same structure as avx2.c: `*_rows` cut the rows into four quarters and score row j of each
 * quarter together, sharing query loads (four sequential memory streams; not measured on arm64
 * hardware, see bench/results/kernels.md); tails shorter than a vector are finished in scalar code
 * (reading halves with memcpy, so no alignment is assumed); dot_f32_tile is a packed GEMM with an
 * 8 x 12 micro-tile (24 accumulators, vfmaq_laneq_f32). Only static inline helpers. */
#include <arm_neon.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

const kern_table *kern_neon_table(void);

static inline uint16_t get_u16(const uint16_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float32x4_t load_f16(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* ---- f32 ---------------------------------------------------------------------------------------- */

static float l2sq_f32_neon(const float *a, const float *b, size_t n)
{
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        float32x4_t d2 = vsubq_f32(vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        float32x4_t d3 = vsubq_f32(vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
        s2 = vfmaq_f32(s2, d2, d2);
        s3 = vfmaq_f32(s3, d3, d3);
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        s0 = vfmaq_f32(s0, d, d);
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float dot_f32_neon(const float *a, const float *b, size_t n)
{
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Four rows at r0..r3 (anywhere in memory) against q; results to res[0..3]. */
static inline void l2sq_f32_x4(const float *q, const float *r0, const float *r1, const float *r2,
                               const float *r3, size_t n, float res[4])
{
    const float *rk[4] = {r0, r1, r2, r3};
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0, d;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        d = vsubq_f32(vld1q_f32(r0 + i), q0), a0 = vfmaq_f32(a0, d, d);
        d = vsubq_f32(vld1q_f32(r1 + i), q0), a1 = vfmaq_f32(a1, d, d);
        d = vsubq_f32(vld1q_f32(r2 + i), q0), a2 = vfmaq_f32(a2, d, d);
        d = vsubq_f32(vld1q_f32(r3 + i), q0), a3 = vfmaq_f32(a3, d, d);
        d = vsubq_f32(vld1q_f32(r0 + i + 4), q1), b0 = vfmaq_f32(b0, d, d);
        d = vsubq_f32(vld1q_f32(r1 + i + 4), q1), b1 = vfmaq_f32(b1, d, d);
        d = vsubq_f32(vld1q_f32(r2 + i + 4), q1), b2 = vfmaq_f32(b2, d, d);
        d = vsubq_f32(vld1q_f32(r3 + i + 4), q1), b3 = vfmaq_f32(b3, d, d);
    }
    if (i + 4 <= n) {
        float32x4_t q0 = vld1q_f32(q + i);
        d = vsubq_f32(vld1q_f32(r0 + i), q0), a0 = vfmaq_f32(a0, d, d);
        d = vsubq_f32(vld1q_f32(r1 + i), q0), a1 = vfmaq_f32(a1, d, d);
        d = vsubq_f32(vld1q_f32(r2 + i), q0), a2 = vfmaq_f32(a2, d, d);
        d = vsubq_f32(vld1q_f32(r3 + i), q0), a3 = vfmaq_f32(a3, d, d);
        i += 4;
    }
    float s[4] = {vaddvq_f32(vaddq_f32(a0, b0)), vaddvq_f32(vaddq_f32(a1, b1)), vaddvq_f32(vaddq_f32(a2, b2)),
                  vaddvq_f32(vaddq_f32(a3, b3))};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) {
            float dd = rk[k][i] - q[i];
            s[k] += dd * dd;
        }
    memcpy(res, s, sizeof s);
}

static inline void dot_f32_x4(const float *q, const float *r0, const float *r1, const float *r2,
                              const float *r3, size_t n, float res[4])
{
    const float *rk[4] = {r0, r1, r2, r3};
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        a0 = vfmaq_f32(a0, vld1q_f32(r0 + i), q0);
        a1 = vfmaq_f32(a1, vld1q_f32(r1 + i), q0);
        a2 = vfmaq_f32(a2, vld1q_f32(r2 + i), q0);
        a3 = vfmaq_f32(a3, vld1q_f32(r3 + i), q0);
        b0 = vfmaq_f32(b0, vld1q_f32(r0 + i + 4), q1);
        b1 = vfmaq_f32(b1, vld1q_f32(r1 + i + 4), q1);
        b2 = vfmaq_f32(b2, vld1q_f32(r2 + i + 4), q1);
        b3 = vfmaq_f32(b3, vld1q_f32(r3 + i + 4), q1);
    }
    if (i + 4 <= n) {
        float32x4_t q0 = vld1q_f32(q + i);
        a0 = vfmaq_f32(a0, vld1q_f32(r0 + i), q0);
        a1 = vfmaq_f32(a1, vld1q_f32(r1 + i), q0);
        a2 = vfmaq_f32(a2, vld1q_f32(r2 + i), q0);
        a3 = vfmaq_f32(a3, vld1q_f32(r3 + i), q0);
        i += 4;
    }
    float s[4] = {vaddvq_f32(vaddq_f32(a0, b0)), vaddvq_f32(vaddq_f32(a1, b1)), vaddvq_f32(vaddq_f32(a2, b2)),
                  vaddvq_f32(vaddq_f32(a3, b3))};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) s[k] += rk[k][i] * q[i];
    memcpy(res, s, sizeof s);
}

/* The scans read four streams (see the file comment): the rows are cut into four equal quarters and row j
 * of each quarter is scored together by NAME_x4; the rows_len % 4 rows left at the end go alone. */
#define NEON_ROWS(NAME, QT, RT, OT)                                                               \
    static void NAME##_rows_neon(const QT *q, const RT *rows, size_t n, size_t rows_len, OT *out) \
    {                                                                                             \
        size_t quarter = rows_len / 4, stride = quarter * n;                                      \
        const RT *x = rows;                                                                       \
        for (size_t r = 0; r < quarter; r++, x += n) {                                            \
            OT s[4];                                                                              \
            NAME##_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n, s);                    \
            for (size_t k = 0; k < 4; k++) out[r + k * quarter] = s[k];                           \
        }                                                                                         \
        for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = NAME##_neon(q, rows + r * n, n); \
    }

NEON_ROWS(l2sq_f32, float, float, float)

NEON_ROWS(dot_f32, float, float, float)

/* ---- f16 ---------------------------------------------------------------------------------------- */

static float l2sq_f16_neon(const float *q, const uint16_t *x, size_t n)
{
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(q + i), load_f16(x + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(q + i + 4), load_f16(x + i + 4));
        float32x4_t d2 = vsubq_f32(vld1q_f32(q + i + 8), load_f16(x + i + 8));
        float32x4_t d3 = vsubq_f32(vld1q_f32(q + i + 12), load_f16(x + i + 12));
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
        s2 = vfmaq_f32(s2, d2, d2);
        s3 = vfmaq_f32(s3, d3, d3);
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(q + i), load_f16(x + i));
        s0 = vfmaq_f32(s0, d, d);
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) {
        float d = q[i] - kern_f16_to_f32_one(get_u16(x + i));
        s += d * d;
    }
    return s;
}

static float dot_f16_neon(const float *q, const uint16_t *x, size_t n)
{
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(q + i), load_f16(x + i));
        s1 = vfmaq_f32(s1, vld1q_f32(q + i + 4), load_f16(x + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(q + i + 8), load_f16(x + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(q + i + 12), load_f16(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(q + i), load_f16(x + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += q[i] * kern_f16_to_f32_one(get_u16(x + i));
    return s;
}

static inline void l2sq_f16_x4(const float *q, const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                               const uint16_t *r3, size_t n, float res[4])
{
    const uint16_t *rk[4] = {r0, r1, r2, r3};
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0, d;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        d = vsubq_f32(load_f16(r0 + i), q0), a0 = vfmaq_f32(a0, d, d);
        d = vsubq_f32(load_f16(r1 + i), q0), a1 = vfmaq_f32(a1, d, d);
        d = vsubq_f32(load_f16(r2 + i), q0), a2 = vfmaq_f32(a2, d, d);
        d = vsubq_f32(load_f16(r3 + i), q0), a3 = vfmaq_f32(a3, d, d);
        d = vsubq_f32(load_f16(r0 + i + 4), q1), b0 = vfmaq_f32(b0, d, d);
        d = vsubq_f32(load_f16(r1 + i + 4), q1), b1 = vfmaq_f32(b1, d, d);
        d = vsubq_f32(load_f16(r2 + i + 4), q1), b2 = vfmaq_f32(b2, d, d);
        d = vsubq_f32(load_f16(r3 + i + 4), q1), b3 = vfmaq_f32(b3, d, d);
    }
    if (i + 4 <= n) {
        float32x4_t q0 = vld1q_f32(q + i);
        d = vsubq_f32(load_f16(r0 + i), q0), a0 = vfmaq_f32(a0, d, d);
        d = vsubq_f32(load_f16(r1 + i), q0), a1 = vfmaq_f32(a1, d, d);
        d = vsubq_f32(load_f16(r2 + i), q0), a2 = vfmaq_f32(a2, d, d);
        d = vsubq_f32(load_f16(r3 + i), q0), a3 = vfmaq_f32(a3, d, d);
        i += 4;
    }
    float s[4] = {vaddvq_f32(vaddq_f32(a0, b0)), vaddvq_f32(vaddq_f32(a1, b1)), vaddvq_f32(vaddq_f32(a2, b2)),
                  vaddvq_f32(vaddq_f32(a3, b3))};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) {
            float dd = kern_f16_to_f32_one(get_u16(rk[k] + i)) - q[i];
            s[k] += dd * dd;
        }
    memcpy(res, s, sizeof s);
}

static inline void dot_f16_x4(const float *q, const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                              const uint16_t *r3, size_t n, float res[4])
{
    const uint16_t *rk[4] = {r0, r1, r2, r3};
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        a0 = vfmaq_f32(a0, load_f16(r0 + i), q0);
        a1 = vfmaq_f32(a1, load_f16(r1 + i), q0);
        a2 = vfmaq_f32(a2, load_f16(r2 + i), q0);
        a3 = vfmaq_f32(a3, load_f16(r3 + i), q0);
        b0 = vfmaq_f32(b0, load_f16(r0 + i + 4), q1);
        b1 = vfmaq_f32(b1, load_f16(r1 + i + 4), q1);
        b2 = vfmaq_f32(b2, load_f16(r2 + i + 4), q1);
        b3 = vfmaq_f32(b3, load_f16(r3 + i + 4), q1);
    }
    if (i + 4 <= n) {
        float32x4_t q0 = vld1q_f32(q + i);
        a0 = vfmaq_f32(a0, load_f16(r0 + i), q0);
        a1 = vfmaq_f32(a1, load_f16(r1 + i), q0);
        a2 = vfmaq_f32(a2, load_f16(r2 + i), q0);
        a3 = vfmaq_f32(a3, load_f16(r3 + i), q0);
        i += 4;
    }
    float s[4] = {vaddvq_f32(vaddq_f32(a0, b0)), vaddvq_f32(vaddq_f32(a1, b1)), vaddvq_f32(vaddq_f32(a2, b2)),
                  vaddvq_f32(vaddq_f32(a3, b3))};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) s[k] += kern_f16_to_f32_one(get_u16(rk[k] + i)) * q[i];
    memcpy(res, s, sizeof s);
}

NEON_ROWS(l2sq_f16, float, uint16_t, float)

NEON_ROWS(dot_f16, float, uint16_t, float)

/* ---- i8 -----------------------------------------------------------------------------------------
 * dot: vmull_s8 gives exact int16 products (|a*b| <= 16384), vpadalq_s16 adds pairs into int32.
 * l2sq: vabdq_s8 gives |a-b| <= 255 as an unsigned byte, vmull_u8 its exact square (<= 65025) in
 * uint16, vpadalq_u16 adds pairs into uint32; the total fits int32 within the kernels.h bound. */

static inline int32x4_t dot16_i8(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

static inline uint32x4_t l2sq16_i8(uint32x4_t acc, int8x16_t a, int8x16_t b)
{
    uint8x16_t d = vreinterpretq_u8_s8(vabdq_s8(a, b));
    acc = vpadalq_u16(acc, vmull_u8(vget_low_u8(d), vget_low_u8(d)));
    return vpadalq_u16(acc, vmull_high_u8(d, d));
}

static int32_t l2sq_i8_neon(const int8_t *a, const int8_t *b, size_t n)
{
    uint32x4_t s0 = vdupq_n_u32(0), s1 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = l2sq16_i8(s0, vld1q_s8(a + i), vld1q_s8(b + i));
        s1 = l2sq16_i8(s1, vld1q_s8(a + i + 16), vld1q_s8(b + i + 16));
    }
    if (i + 16 <= n) {
        s0 = l2sq16_i8(s0, vld1q_s8(a + i), vld1q_s8(b + i));
        i += 16;
    }
    uint32_t s = vaddvq_u32(vaddq_u32(s0, s1));
    for (; i < n; i++) {
        int32_t d = (int32_t)a[i] - (int32_t)b[i];
        s += (uint32_t)(d * d);
    }
    return (int32_t)s;
}

static int32_t dot_i8_neon(const int8_t *a, const int8_t *b, size_t n)
{
    int32x4_t s0 = vdupq_n_s32(0), s1 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = dot16_i8(s0, vld1q_s8(a + i), vld1q_s8(b + i));
        s1 = dot16_i8(s1, vld1q_s8(a + i + 16), vld1q_s8(b + i + 16));
    }
    if (i + 16 <= n) {
        s0 = dot16_i8(s0, vld1q_s8(a + i), vld1q_s8(b + i));
        i += 16;
    }
    int32_t s = vaddvq_s32(vaddq_s32(s0, s1));
    for (; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

static inline void l2sq_i8_x4(const int8_t *q, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                              const int8_t *r3, size_t n, int32_t res[4])
{
    const int8_t *rk[4] = {r0, r1, r2, r3};
    uint32x4_t a0 = vdupq_n_u32(0), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int8x16_t q0 = vld1q_s8(q + i);
        a0 = l2sq16_i8(a0, vld1q_s8(r0 + i), q0);
        a1 = l2sq16_i8(a1, vld1q_s8(r1 + i), q0);
        a2 = l2sq16_i8(a2, vld1q_s8(r2 + i), q0);
        a3 = l2sq16_i8(a3, vld1q_s8(r3 + i), q0);
    }
    uint32_t s[4] = {vaddvq_u32(a0), vaddvq_u32(a1), vaddvq_u32(a2), vaddvq_u32(a3)};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) {
            int32_t d = (int32_t)rk[k][i] - (int32_t)q[i];
            s[k] += (uint32_t)(d * d);
        }
    for (size_t k = 0; k < 4; k++) res[k] = (int32_t)s[k];
}

static inline void dot_i8_x4(const int8_t *q, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                             const int8_t *r3, size_t n, int32_t res[4])
{
    const int8_t *rk[4] = {r0, r1, r2, r3};
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int8x16_t q0 = vld1q_s8(q + i);
        a0 = dot16_i8(a0, vld1q_s8(r0 + i), q0);
        a1 = dot16_i8(a1, vld1q_s8(r1 + i), q0);
        a2 = dot16_i8(a2, vld1q_s8(r2 + i), q0);
        a3 = dot16_i8(a3, vld1q_s8(r3 + i), q0);
    }
    int32_t s[4] = {vaddvq_s32(a0), vaddvq_s32(a1), vaddvq_s32(a2), vaddvq_s32(a3)};
    for (; i < n; i++)
        for (size_t k = 0; k < 4; k++) s[k] += (int32_t)rk[k][i] * (int32_t)q[i];
    memcpy(res, s, sizeof s);
}

NEON_ROWS(l2sq_i8, int8_t, int8_t, int32_t)

NEON_ROWS(dot_i8, int8_t, int8_t, int32_t)

/* ---- dot_f32_tile: packed GEMM with an 8 x 12 micro-tile (see avx2.c for the loop structure) ---- */

enum { TILE_MR = 8, TILE_NR = 12, TILE_KC = 256, TILE_MC = 96, TILE_NC = 1020 };
#define TILE_MIN_X 4

#define TILE_ROW(i, av, lane)                                                                           \
    c##i##0 = vfmaq_laneq_f32(c##i##0, b0, av, lane), c##i##1 = vfmaq_laneq_f32(c##i##1, b1, av, lane), \
    c##i##2 = vfmaq_laneq_f32(c##i##2, b2, av, lane)

static inline void tile_kernel_8x12(size_t kc, const float *ap, const float *bp, float *out, size_t ldo,
                                    size_t m, size_t nn, int add)
{
    float32x4_t z = vdupq_n_f32(0);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z, c30 = z,
                c31 = z, c32 = z;
    float32x4_t c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z, c60 = z, c61 = z, c62 = z, c70 = z,
                c71 = z, c72 = z;
    for (size_t k = 0; k < kc; k++) {
        float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
        float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
        TILE_ROW(0, a0, 0);
        TILE_ROW(1, a0, 1);
        TILE_ROW(2, a0, 2);
        TILE_ROW(3, a0, 3);
        TILE_ROW(4, a1, 0);
        TILE_ROW(5, a1, 1);
        TILE_ROW(6, a1, 2);
        TILE_ROW(7, a1, 3);
        ap += TILE_MR;
        bp += TILE_NR;
    }
    float32x4_t acc[TILE_MR][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32},
                                   {c40, c41, c42}, {c50, c51, c52}, {c60, c61, c62}, {c70, c71, c72}};
    float tmp[TILE_NR];
    for (size_t i = 0; i < m; i++) {
        float *o = out + i * ldo;
        if (nn == TILE_NR) {
            for (size_t v = 0; v < 3; v++) {
                float32x4_t x = acc[i][v];
                if (add) x = vaddq_f32(x, vld1q_f32(o + 4 * v));
                vst1q_f32(o + 4 * v, x);
            }
        } else {
            vst1q_f32(tmp, acc[i][0]);
            vst1q_f32(tmp + 4, acc[i][1]);
            vst1q_f32(tmp + 8, acc[i][2]);
            for (size_t j = 0; j < nn; j++) o[j] = add ? o[j] + tmp[j] : tmp[j];
        }
    }
}

static void tile_pack_x(const float *x, size_t n, size_t m, size_t kc, float *ap)
{
    for (size_t i0 = 0; i0 < m; i0 += TILE_MR) {
        size_t mr = m - i0 < TILE_MR ? m - i0 : TILE_MR;
        for (size_t i = 0; i < mr; i++) {
            const float *src = x + (i0 + i) * n;
            for (size_t k = 0; k < kc; k++) ap[k * TILE_MR + i] = src[k];
        }
        for (size_t i = mr; i < TILE_MR; i++)
            for (size_t k = 0; k < kc; k++) ap[k * TILE_MR + i] = 0;
        ap += TILE_MR * kc;
    }
}

static void tile_pack_c(const float *c, size_t n, size_t nc, size_t kc, float *bp)
{
    for (size_t j0 = 0; j0 < nc; j0 += TILE_NR) {
        size_t nr = nc - j0 < TILE_NR ? nc - j0 : TILE_NR;
        for (size_t j = 0; j < nr; j++) {
            const float *src = c + (j0 + j) * n;
            for (size_t k = 0; k < kc; k++) bp[k * TILE_NR + j] = src[k];
        }
        for (size_t j = nr; j < TILE_NR; j++)
            for (size_t k = 0; k < kc; k++) bp[k * TILE_NR + j] = 0;
        bp += TILE_NR * kc;
    }
}

static void dot_f32_tile_neon(const float *x, size_t x_len, const float *c, size_t c_len, size_t n,
                              float *out)
{
    if (x_len == 0 || c_len == 0) return;
    float *ap = NULL, *bp = NULL;
    if (x_len >= TILE_MIN_X && n > 0) {
        ap = aligned_alloc(64, sizeof(float) * TILE_MC * TILE_KC);
        bp = aligned_alloc(64, sizeof(float) * TILE_NC * TILE_KC);
    }
    if (!ap || !bp) {
        free(ap);
        free(bp);
        for (size_t i = 0; i < x_len; i++) dot_f32_rows_neon(x + i * n, c, n, c_len, out + i * c_len);
        return;
    }
    for (size_t jc = 0; jc < c_len; jc += TILE_NC) {
        size_t nc = c_len - jc < TILE_NC ? c_len - jc : TILE_NC;
        for (size_t pc = 0; pc < n; pc += TILE_KC) {
            size_t kc = n - pc < TILE_KC ? n - pc : TILE_KC;
            tile_pack_c(c + jc * n + pc, n, nc, kc, bp);
            for (size_t ic = 0; ic < x_len; ic += TILE_MC) {
                size_t mc = x_len - ic < TILE_MC ? x_len - ic : TILE_MC;
                tile_pack_x(x + ic * n + pc, n, mc, kc, ap);
                for (size_t jr = 0; jr < nc; jr += TILE_NR) {
                    size_t nr = nc - jr < TILE_NR ? nc - jr : TILE_NR;
                    for (size_t ir = 0; ir < mc; ir += TILE_MR) {
                        size_t mr = mc - ir < TILE_MR ? mc - ir : TILE_MR;
                        tile_kernel_8x12(kc, ap + ir * kc, bp + jr * kc, out + (ic + ir) * c_len + jc + jr,
                                         c_len, mr, nr, pc > 0);
                    }
                }
            }
        }
    }
    free(ap);
    free(bp);
}

/* ---- conversions -------------------------------------------------------------------------------- */

static void f32_to_f16_neon(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i)));
        vst1_u16(dst + i, h);
    }
    for (; i < n; i++) {
        uint16_t h = kern_f32_to_f16_one(src[i]);
        memcpy(dst + i, &h, sizeof h);
    }
}

static void f16_to_f32_neon(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, load_f16(src + i));
    for (; i < n; i++) dst[i] = kern_f16_to_f32_one(get_u16(src + i));
}

static const kern_table neon_table = {
    .name = "neon",
    .l2sq_f32 = l2sq_f32_neon,
    .dot_f32 = dot_f32_neon,
    .l2sq_f16 = l2sq_f16_neon,
    .dot_f16 = dot_f16_neon,
    .l2sq_i8 = l2sq_i8_neon,
    .dot_i8 = dot_i8_neon,
    .l2sq_f32_rows = l2sq_f32_rows_neon,
    .dot_f32_rows = dot_f32_rows_neon,
    .l2sq_f16_rows = l2sq_f16_rows_neon,
    .dot_f16_rows = dot_f16_rows_neon,
    .l2sq_i8_rows = l2sq_i8_rows_neon,
    .dot_i8_rows = dot_i8_rows_neon,
    .dot_f32_tile = dot_f32_tile_neon,
    .f32_to_f16 = f32_to_f16_neon,
    .f16_to_f32 = f16_to_f32_neon,
};

const kern_table *kern_neon_table(void) { return &neon_table; }
