/* engine/kernels/avx2.c: the kernel table for x86_64 with AVX2 + FMA + F16C.
 *
 * Compiled with -mavx2 -mfma -mf16c (engine/CMakeLists.txt); entered only through kern_avx2(), which
 * checks the CPU first. Only static inline helpers, so no AVX instruction leaks into code the
 * selector runs before that check.
 *
 * Tails never read past the end of an argument: f32 uses masked loads; f16 and i8 load the last full
 * vector of the row (ending exactly at element n) and mask off the lanes already counted; dimensions
 * shorter than one vector go through a zero-padded stack copy.
 *
 * `*_rows` kernels read four streams at once: the rows_len rows are cut into four equal quarters and
 * row j of every quarter is scored together (rows j, j + Q, j + 2Q, j + 3Q, Q = rows_len / 4), each
 * query load feeding all four; the rows_len % 4 rows left at the end go one at a time. Within each
 * quarter memory is read in address order. Measured with bench/bench_kernels.c on AMD EPYC (Zen 3):
 * one thread reads DRAM 1.2-1.3x faster as four sequential streams than as one (the hardware
 * prefetchers follow each stream), and these kernels reach 0.9-1.0 of the four-stream read loop for
 * f32 at dims 100-1536, against 0.77-0.89 of the one-stream loop for the earlier layouts (four
 * adjacent rows side by side, or one row after another). Walking four ADJACENT rows side by side
 * stays slow at row sizes of 0.5-2 KiB (0.5-0.7): the four streams share pages.
 * f32 l2sq computes q - x rather than x - q, so the row load folds into the subtraction (one
 * micro-op fewer per 32 bytes: 0.74 -> 0.86 of the one-stream read loop at dim 100 on its own). Two
 * accumulators per row for the float types keep FMA latency hidden when the rows sit in cache.
 *
 * dot_f32_tile is a packed, register-blocked GEMM (6 x 16 micro-tile, BLIS loop order). */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

const kern_table *kern_avx2_table(void);

/* ---- helpers ------------------------------------------------------------------------------------ */

/* lo_mask[8 - r .. 15 - r] has its first r entries set: lanes [0, r) on. */
static const int32_t lo_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
/* hi_mask32[r .. r + 7] has its last r entries set: lanes [8 - r, 8) on. */
static const int32_t hi_mask32[16] = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1};
/* hi_mask16[r .. r + 15]: the last r of sixteen int16 lanes on. */
static const int16_t hi_mask16[32] = {0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
                                      -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

static inline __m256i mask_first(size_t r) { return _mm256_loadu_si256((const __m256i *)(lo_mask + 8 - r)); }
static inline __m256 mask_last_ps(size_t r) { return _mm256_loadu_ps((const float *)(hi_mask32 + r)); }
static inline __m256i mask_last_epi16(size_t r)
{
    return _mm256_loadu_si256((const __m256i *)(hi_mask16 + r));
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The four horizontal sums of a, b, c, d, in that order. */
static inline __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b);
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_hadd_epi32(a, b);
    __m256i cd = _mm256_hadd_epi32(c, d);
    __m256i abcd = _mm256_hadd_epi32(ab, cd);
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256i load_i8(const int8_t *p)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* ---- f32 ---------------------------------------------------------------------------------------- */

static float l2sq_f32_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __m256i m = mask_first(n - i);
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static float dot_f32_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = mask_first(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* Four rows at r0..r3 (anywhere in memory) against q, walked side by side so each query load feeds
 * four rows; the four results in one vector, in that order. Two accumulators per row keep the FMA
 * latency hidden when the rows sit in cache. m masks the last n % 8 elements (mask_first(n % 8)). */
static inline __m128 l2sq_f32_x4(const float *q, const float *r0, const float *r1, const float *r2,
                                 const float *r3, size_t n, __m256i m)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(),
           b3 = _mm256_setzero_ps();
    __m256 d;
    size_t i = 0;
    /* q - x, not x - q: the same square, and the row load folds into the subtraction (one micro-op
     * fewer per 32 bytes; measured 0.74 -> 0.86 of the read bandwidth at dim 100) */
    for (; i + 16 <= n; i += 16) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r0 + i)), a0 = _mm256_fmadd_ps(d, d, a0);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r1 + i)), a1 = _mm256_fmadd_ps(d, d, a1);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r2 + i)), a2 = _mm256_fmadd_ps(d, d, a2);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r3 + i)), a3 = _mm256_fmadd_ps(d, d, a3);
        d = _mm256_sub_ps(q1, _mm256_loadu_ps(r0 + i + 8)), b0 = _mm256_fmadd_ps(d, d, b0);
        d = _mm256_sub_ps(q1, _mm256_loadu_ps(r1 + i + 8)), b1 = _mm256_fmadd_ps(d, d, b1);
        d = _mm256_sub_ps(q1, _mm256_loadu_ps(r2 + i + 8)), b2 = _mm256_fmadd_ps(d, d, b2);
        d = _mm256_sub_ps(q1, _mm256_loadu_ps(r3 + i + 8)), b3 = _mm256_fmadd_ps(d, d, b3);
    }
    if (i + 8 <= n) {
        __m256 q0 = _mm256_loadu_ps(q + i);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r0 + i)), a0 = _mm256_fmadd_ps(d, d, a0);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r1 + i)), a1 = _mm256_fmadd_ps(d, d, a1);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r2 + i)), a2 = _mm256_fmadd_ps(d, d, a2);
        d = _mm256_sub_ps(q0, _mm256_loadu_ps(r3 + i)), a3 = _mm256_fmadd_ps(d, d, a3);
        i += 8;
    }
    if (i < n) {
        __m256 q0 = _mm256_maskload_ps(q + i, m);
        d = _mm256_sub_ps(q0, _mm256_maskload_ps(r0 + i, m)), b0 = _mm256_fmadd_ps(d, d, b0);
        d = _mm256_sub_ps(q0, _mm256_maskload_ps(r1 + i, m)), b1 = _mm256_fmadd_ps(d, d, b1);
        d = _mm256_sub_ps(q0, _mm256_maskload_ps(r2 + i, m)), b2 = _mm256_fmadd_ps(d, d, b2);
        d = _mm256_sub_ps(q0, _mm256_maskload_ps(r3 + i, m)), b3 = _mm256_fmadd_ps(d, d, b3);
    }
    return hsum4_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2),
                    _mm256_add_ps(a3, b3));
}

static inline __m128 dot_f32_x4(const float *q, const float *r0, const float *r1, const float *r2,
                                const float *r3, size_t n, __m256i m)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(),
           b3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r0 + i), a0);
        a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r1 + i), a1);
        a2 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r2 + i), a2);
        a3 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r3 + i), a3);
        b0 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r0 + i + 8), b0);
        b1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r1 + i + 8), b1);
        b2 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r2 + i + 8), b2);
        b3 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r3 + i + 8), b3);
    }
    if (i + 8 <= n) {
        __m256 q0 = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r0 + i), a0);
        a1 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r1 + i), a1);
        a2 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r2 + i), a2);
        a3 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r3 + i), a3);
        i += 8;
    }
    if (i < n) {
        __m256 q0 = _mm256_maskload_ps(q + i, m);
        b0 = _mm256_fmadd_ps(q0, _mm256_maskload_ps(r0 + i, m), b0);
        b1 = _mm256_fmadd_ps(q0, _mm256_maskload_ps(r1 + i, m), b1);
        b2 = _mm256_fmadd_ps(q0, _mm256_maskload_ps(r2 + i, m), b2);
        b3 = _mm256_fmadd_ps(q0, _mm256_maskload_ps(r3 + i, m), b3);
    }
    return hsum4_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2),
                    _mm256_add_ps(a3, b3));
}

/* The four results of rows r, r + s, r + 2s, r + 3s, to out[0], out[s], out[2s], out[3s]. */
static inline void store_ps_x4(float *out, size_t s, __m128 v)
{
    _mm_store_ss(out, v);
    _mm_store_ss(out + s, _mm_movehdup_ps(v));
    _mm_store_ss(out + 2 * s, _mm_movehl_ps(v, v));
    _mm_store_ss(out + 3 * s, _mm_shuffle_ps(v, v, _MM_SHUFFLE(3, 3, 3, 3)));
}

/* f32 scans read four streams (see the file comment): the rows are cut into four equal quarters
 * and row j of each quarter is scored together; the rows_len % 4 rows left at the end go alone. */
static void l2sq_f32_rows_avx2(const float *q, const float *rows, size_t n, size_t rows_len, float *out)
{
    size_t quarter = rows_len / 4, stride = quarter * n;
    __m256i m = mask_first(n % 8);
    const float *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_ps_x4(out + r, quarter, l2sq_f32_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n, m));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = l2sq_f32_avx2(q, rows + r * n, n);
}

static void dot_f32_rows_avx2(const float *q, const float *rows, size_t n, size_t rows_len, float *out)
{
    size_t quarter = rows_len / 4, stride = quarter * n;
    __m256i m = mask_first(n % 8);
    const float *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_ps_x4(out + r, quarter, dot_f32_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n, m));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = dot_f32_avx2(q, rows + r * n, n);
}

/* ---- f16 (f32 query, half rows) ----------------------------------------------------------------- */

/* Dimensions below 8: zero-padded copies, then one vector. Padding lanes are 0 on both sides. */
static inline __m256 short_f16(const uint16_t *x, size_t n)
{
    uint16_t buf[8] = {0};
    memcpy(buf, x, n * sizeof *x);
    return load_f16(buf);
}

static float l2sq_f16_avx2(const float *q, const uint16_t *x, size_t n)
{
    if (n < 8) {
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(q, mask_first(n)), short_f16(x, n));
        return hsum_ps(_mm256_mul_ps(d, d));
    }
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_f16(x + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), load_f16(x + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 16), load_f16(x + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 24), load_f16(x + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_f16(x + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (i < n) { /* last 8 elements, lanes already counted masked off */
        __m256 m = mask_last_ps(n - i);
        __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(q + n - 8), load_f16(x + n - 8)), m);
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static float dot_f16_avx2(const float *q, const uint16_t *x, size_t n)
{
    if (n < 8) return hsum_ps(_mm256_mul_ps(_mm256_maskload_ps(q, mask_first(n)), short_f16(x, n)));
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16(x + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_f16(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), load_f16(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), load_f16(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_f16(x + i), s0);
    if (i < n) {
        __m256 m = mask_last_ps(n - i);
        __m256 qt = _mm256_and_ps(_mm256_loadu_ps(q + n - 8), m);
        __m256 xt = _mm256_and_ps(load_f16(x + n - 8), m);
        s1 = _mm256_fmadd_ps(qt, xt, s1);
    }
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* Four half rows against q; n >= 8. */
static inline __m128 l2sq_f16_x4(const float *q, const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                                 const uint16_t *r3, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(),
           b3 = _mm256_setzero_ps();
    __m256 d;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        d = _mm256_sub_ps(load_f16(r0 + i), q0), a0 = _mm256_fmadd_ps(d, d, a0);
        d = _mm256_sub_ps(load_f16(r1 + i), q0), a1 = _mm256_fmadd_ps(d, d, a1);
        d = _mm256_sub_ps(load_f16(r2 + i), q0), a2 = _mm256_fmadd_ps(d, d, a2);
        d = _mm256_sub_ps(load_f16(r3 + i), q0), a3 = _mm256_fmadd_ps(d, d, a3);
        d = _mm256_sub_ps(load_f16(r0 + i + 8), q1), b0 = _mm256_fmadd_ps(d, d, b0);
        d = _mm256_sub_ps(load_f16(r1 + i + 8), q1), b1 = _mm256_fmadd_ps(d, d, b1);
        d = _mm256_sub_ps(load_f16(r2 + i + 8), q1), b2 = _mm256_fmadd_ps(d, d, b2);
        d = _mm256_sub_ps(load_f16(r3 + i + 8), q1), b3 = _mm256_fmadd_ps(d, d, b3);
    }
    if (i + 8 <= n) {
        __m256 q0 = _mm256_loadu_ps(q + i);
        d = _mm256_sub_ps(load_f16(r0 + i), q0), a0 = _mm256_fmadd_ps(d, d, a0);
        d = _mm256_sub_ps(load_f16(r1 + i), q0), a1 = _mm256_fmadd_ps(d, d, a1);
        d = _mm256_sub_ps(load_f16(r2 + i), q0), a2 = _mm256_fmadd_ps(d, d, a2);
        d = _mm256_sub_ps(load_f16(r3 + i), q0), a3 = _mm256_fmadd_ps(d, d, a3);
        i += 8;
    }
    if (i < n) {
        __m256 m = mask_last_ps(n - i);
        __m256 q0 = _mm256_loadu_ps(q + n - 8);
        d = _mm256_and_ps(_mm256_sub_ps(load_f16(r0 + n - 8), q0), m), b0 = _mm256_fmadd_ps(d, d, b0);
        d = _mm256_and_ps(_mm256_sub_ps(load_f16(r1 + n - 8), q0), m), b1 = _mm256_fmadd_ps(d, d, b1);
        d = _mm256_and_ps(_mm256_sub_ps(load_f16(r2 + n - 8), q0), m), b2 = _mm256_fmadd_ps(d, d, b2);
        d = _mm256_and_ps(_mm256_sub_ps(load_f16(r3 + n - 8), q0), m), b3 = _mm256_fmadd_ps(d, d, b3);
    }
    return hsum4_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2),
                    _mm256_add_ps(a3, b3));
}

static inline __m128 dot_f16_x4(const float *q, const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                                const uint16_t *r3, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(),
           b3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        a0 = _mm256_fmadd_ps(load_f16(r0 + i), q0, a0);
        a1 = _mm256_fmadd_ps(load_f16(r1 + i), q0, a1);
        a2 = _mm256_fmadd_ps(load_f16(r2 + i), q0, a2);
        a3 = _mm256_fmadd_ps(load_f16(r3 + i), q0, a3);
        b0 = _mm256_fmadd_ps(load_f16(r0 + i + 8), q1, b0);
        b1 = _mm256_fmadd_ps(load_f16(r1 + i + 8), q1, b1);
        b2 = _mm256_fmadd_ps(load_f16(r2 + i + 8), q1, b2);
        b3 = _mm256_fmadd_ps(load_f16(r3 + i + 8), q1, b3);
    }
    if (i + 8 <= n) {
        __m256 q0 = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(load_f16(r0 + i), q0, a0);
        a1 = _mm256_fmadd_ps(load_f16(r1 + i), q0, a1);
        a2 = _mm256_fmadd_ps(load_f16(r2 + i), q0, a2);
        a3 = _mm256_fmadd_ps(load_f16(r3 + i), q0, a3);
        i += 8;
    }
    if (i < n) { /* both factors masked, so a non-finite value in a counted lane cannot leak in */
        __m256 m = mask_last_ps(n - i);
        __m256 q0 = _mm256_and_ps(_mm256_loadu_ps(q + n - 8), m);
        b0 = _mm256_fmadd_ps(_mm256_and_ps(load_f16(r0 + n - 8), m), q0, b0);
        b1 = _mm256_fmadd_ps(_mm256_and_ps(load_f16(r1 + n - 8), m), q0, b1);
        b2 = _mm256_fmadd_ps(_mm256_and_ps(load_f16(r2 + n - 8), m), q0, b2);
        b3 = _mm256_fmadd_ps(_mm256_and_ps(load_f16(r3 + n - 8), m), q0, b3);
    }
    return hsum4_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2),
                    _mm256_add_ps(a3, b3));
}

static void l2sq_f16_rows_avx2(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out)
{
    size_t quarter = n >= 8 ? rows_len / 4 : 0, stride = quarter * n;
    const uint16_t *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_ps_x4(out + r, quarter, l2sq_f16_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = l2sq_f16_avx2(q, rows + r * n, n);
}

static void dot_f16_rows_avx2(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out)
{
    size_t quarter = n >= 8 ? rows_len / 4 : 0, stride = quarter * n;
    const uint16_t *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_ps_x4(out + r, quarter, dot_f16_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = dot_f16_avx2(q, rows + r * n, n);
}

/* ---- i8: sign-extend to int16, _mm256_madd_epi16 into int32 lanes --------------------------------
 * Exact: every int16 product or squared difference fits (|a*b| <= 16384, (a-b)^2 <= 65025 after
 * madd's pairwise sum into int32), and int32 lane sums stay exact within the bounds in kernels.h. */

static inline __m256i short_i8(const int8_t *x, size_t n)
{
    int8_t buf[16] = {0};
    memcpy(buf, x, n);
    return load_i8(buf);
}

static int32_t l2sq_i8_avx2(const int8_t *a, const int8_t *b, size_t n)
{
    if (n < 16) {
        __m256i d = _mm256_sub_epi16(short_i8(a, n), short_i8(b, n));
        return hsum_epi32(_mm256_madd_epi16(d, d));
    }
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i d0 = _mm256_sub_epi16(load_i8(a + i), load_i8(b + i));
        __m256i d1 = _mm256_sub_epi16(load_i8(a + i + 16), load_i8(b + i + 16));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(d0, d0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(d1, d1));
    }
    if (i + 16 <= n) {
        __m256i d = _mm256_sub_epi16(load_i8(a + i), load_i8(b + i));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(d, d));
        i += 16;
    }
    if (i < n) {
        __m256i d = _mm256_sub_epi16(load_i8(a + n - 16), load_i8(b + n - 16));
        d = _mm256_and_si256(d, mask_last_epi16(n - i));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(d, d));
    }
    return hsum_epi32(_mm256_add_epi32(s0, s1));
}

static int32_t dot_i8_avx2(const int8_t *a, const int8_t *b, size_t n)
{
    if (n < 16) return hsum_epi32(_mm256_madd_epi16(short_i8(a, n), short_i8(b, n)));
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load_i8(a + i), load_i8(b + i)));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(load_i8(a + i + 16), load_i8(b + i + 16)));
    }
    if (i + 16 <= n) {
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load_i8(a + i), load_i8(b + i)));
        i += 16;
    }
    if (i < n) {
        __m256i at = _mm256_and_si256(load_i8(a + n - 16), mask_last_epi16(n - i));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(at, load_i8(b + n - 16)));
    }
    return hsum_epi32(_mm256_add_epi32(s0, s1));
}

/* Four int8 rows against q; n >= 16. */
static inline __m128i l2sq_i8_x4(const int8_t *q, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                                 const int8_t *r3, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
    __m256i d;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i q0 = load_i8(q + i);
        d = _mm256_sub_epi16(load_i8(r0 + i), q0), a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(d, d));
        d = _mm256_sub_epi16(load_i8(r1 + i), q0), a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(d, d));
        d = _mm256_sub_epi16(load_i8(r2 + i), q0), a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(d, d));
        d = _mm256_sub_epi16(load_i8(r3 + i), q0), a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(d, d));
    }
    if (i < n) {
        __m256i m = mask_last_epi16(n - i);
        __m256i q0 = load_i8(q + n - 16);
        d = _mm256_and_si256(_mm256_sub_epi16(load_i8(r0 + n - 16), q0), m);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(d, d));
        d = _mm256_and_si256(_mm256_sub_epi16(load_i8(r1 + n - 16), q0), m);
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(d, d));
        d = _mm256_and_si256(_mm256_sub_epi16(load_i8(r2 + n - 16), q0), m);
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(d, d));
        d = _mm256_and_si256(_mm256_sub_epi16(load_i8(r3 + n - 16), q0), m);
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(d, d));
    }
    return hsum4_epi32(a0, a1, a2, a3);
}

static inline __m128i dot_i8_x4(const int8_t *q, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                                const int8_t *r3, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i q0 = load_i8(q + i);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load_i8(r0 + i), q0));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(load_i8(r1 + i), q0));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(load_i8(r2 + i), q0));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(load_i8(r3 + i), q0));
    }
    if (i < n) { /* integers: zeroing the query lanes already counted is enough */
        __m256i q0 = _mm256_and_si256(load_i8(q + n - 16), mask_last_epi16(n - i));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load_i8(r0 + n - 16), q0));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(load_i8(r1 + n - 16), q0));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(load_i8(r2 + n - 16), q0));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(load_i8(r3 + n - 16), q0));
    }
    return hsum4_epi32(a0, a1, a2, a3);
}

/* The four results of rows r, r + s, r + 2s, r + 3s, to out[0], out[s], out[2s], out[3s]. */
static inline void store_epi32_x4(int32_t *out, size_t s, __m128i v)
{
    out[0] = _mm_cvtsi128_si32(v);
    out[s] = _mm_extract_epi32(v, 1);
    out[2 * s] = _mm_extract_epi32(v, 2);
    out[3 * s] = _mm_extract_epi32(v, 3);
}

static void l2sq_i8_rows_avx2(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out)
{
    size_t quarter = n >= 16 ? rows_len / 4 : 0, stride = quarter * n;
    const int8_t *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_epi32_x4(out + r, quarter, l2sq_i8_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = l2sq_i8_avx2(q, rows + r * n, n);
}

static void dot_i8_rows_avx2(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out)
{
    size_t quarter = n >= 16 ? rows_len / 4 : 0, stride = quarter * n;
    const int8_t *x = rows;
    for (size_t r = 0; r < quarter; r++, x += n)
        store_epi32_x4(out + r, quarter, dot_i8_x4(q, x, x + stride, x + 2 * stride, x + 3 * stride, n));
    for (size_t r = 4 * quarter; r < rows_len; r++) out[r] = dot_i8_avx2(q, rows + r * n, n);
}

/* ---- dot_f32_tile: out = X . C^T --------------------------------------------------------------
 * BLIS-style loops: for each block of TILE_NC centroids and TILE_KC dimensions, C is packed into
 * 16-wide column panels ([k][16], 8 x 8 register transposes; the block stays in L2/L3); the 6 x 16
 * micro-kernel keeps its 12 accumulators in registers, loads two C vectors and broadcasts six X
 * values per k straight from six X rows (X needs no packing: its rows are already contiguous in k),
 * and streams one C panel from L1. Points are walked in blocks of TILE_MC rows per C panel so that
 * the X block stays in L2. Partial tiles are zero-padded (C) or clamped to the last row (X) and
 * clipped when storing. Results accumulate into out across k blocks. */

enum { TILE_MR = 6, TILE_NR = 16, TILE_KC = 256, TILE_MC = 120, TILE_NC = 1024 };

/* Below this many points the packing does not pay off: one dot_f32_rows per point. */
#define TILE_MIN_X 4

static inline void tile_kernel_6x16(size_t kc, const float *x, size_t ldx, size_t m, const float *bp,
                                    float *out, size_t ldo, size_t nn, int add)
{
    /* rows past m repeat the last row: computed, never stored */
    const float *x0 = x, *x1 = x + (m > 1 ? 1 : 0) * ldx, *x2 = x + (m > 2 ? 2 : m - 1) * ldx;
    const float *x3 = x + (m > 3 ? 3 : m - 1) * ldx, *x4 = x + (m > 4 ? 4 : m - 1) * ldx;
    const float *x5 = x + (m > 5 ? 5 : m - 1) * ldx;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps();
    __m256 c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps();
    __m256 c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (size_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        __m256 a;
        a = _mm256_broadcast_ss(x0 + k), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(x1 + k), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(x2 + k), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(x3 + k), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(x4 + k), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(x5 + k), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
        bp += TILE_NR;
    }
    __m256 acc[TILE_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (nn == TILE_NR) {
        for (size_t i = 0; i < m; i++) {
            float *o = out + i * ldo;
            if (add) {
                acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(o));
                acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(o + 8));
            }
            _mm256_storeu_ps(o, acc[i][0]);
            _mm256_storeu_ps(o + 8, acc[i][1]);
        }
        return;
    }
    float tmp[TILE_NR];
    for (size_t i = 0; i < m; i++) {
        float *o = out + i * ldo;
        _mm256_storeu_ps(tmp, acc[i][0]);
        _mm256_storeu_ps(tmp + 8, acc[i][1]);
        for (size_t j = 0; j < nn; j++) o[j] = add ? o[j] + tmp[j] : tmp[j];
    }
}

/* Eight rows of C (stride n) by eight dimensions, transposed into eight k-rows of a panel. */
static inline void pack_8x8(const float *c, size_t n, float *dst)
{
    __m256 r0 = _mm256_loadu_ps(c), r1 = _mm256_loadu_ps(c + n), r2 = _mm256_loadu_ps(c + 2 * n);
    __m256 r3 = _mm256_loadu_ps(c + 3 * n), r4 = _mm256_loadu_ps(c + 4 * n), r5 = _mm256_loadu_ps(c + 5 * n);
    __m256 r6 = _mm256_loadu_ps(c + 6 * n), r7 = _mm256_loadu_ps(c + 7 * n);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
           u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
           u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
           u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
           u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_store_ps(dst + 0 * TILE_NR, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_store_ps(dst + 1 * TILE_NR, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_store_ps(dst + 2 * TILE_NR, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_store_ps(dst + 3 * TILE_NR, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_store_ps(dst + 4 * TILE_NR, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_store_ps(dst + 5 * TILE_NR, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_store_ps(dst + 6 * TILE_NR, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_store_ps(dst + 7 * TILE_NR, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Packs centroids [0, nc) x dims [0, kc) (stride n) into 16-wide panels ([k][16]); columns past nc
 * are zero. Full 8 x 8 blocks go through registers, the edges element by element. */
static void tile_pack_c(const float *c, size_t n, size_t nc, size_t kc, float *bp)
{
    for (size_t j0 = 0; j0 < nc; j0 += TILE_NR) {
        size_t nr = nc - j0 < TILE_NR ? nc - j0 : TILE_NR;
        for (size_t h = 0; h < TILE_NR; h += 8) { /* the two 8-wide halves of the panel */
            size_t w = nr > h ? (nr - h < 8 ? nr - h : 8) : 0;
            const float *src = c + (j0 + h) * n;
            size_t k = 0;
            if (w == 8)
                for (; k + 8 <= kc; k += 8) pack_8x8(src + k, n, bp + k * TILE_NR + h);
            for (; k < kc; k++)
                for (size_t j = 0; j < 8; j++) bp[k * TILE_NR + h + j] = j < w ? src[j * n + k] : 0.0f;
        }
        bp += TILE_NR * kc;
    }
}

static void dot_f32_tile_avx2(const float *x, size_t x_len, const float *c, size_t c_len, size_t n,
                              float *out)
{
    if (x_len == 0 || c_len == 0) return;
    float *bp = NULL;
    if (x_len >= TILE_MIN_X && n > 0) { /* panels for one block: at most TILE_NC x TILE_KC floats (1 MiB) */
        size_t nc_max = c_len < TILE_NC ? (c_len + TILE_NR - 1) / TILE_NR * TILE_NR : TILE_NC;
        size_t kc_max = n < TILE_KC ? n : TILE_KC;
        bp =
            aligned_alloc(64, sizeof(float) * nc_max * kc_max); /* a multiple of 64 bytes: nc_max % 16 == 0 */
    }
    if (!bp) { /* few points, n = 0, or no memory for the panels: no packing */
        for (size_t i = 0; i < x_len; i++) dot_f32_rows_avx2(x + i * n, c, n, c_len, out + i * c_len);
        return;
    }
    for (size_t jc = 0; jc < c_len; jc += TILE_NC) {
        size_t nc = c_len - jc < TILE_NC ? c_len - jc : TILE_NC;
        for (size_t pc = 0; pc < n; pc += TILE_KC) {
            size_t kc = n - pc < TILE_KC ? n - pc : TILE_KC;
            tile_pack_c(c + jc * n + pc, n, nc, kc, bp);
            for (size_t ic = 0; ic < x_len; ic += TILE_MC) {
                size_t mc = x_len - ic < TILE_MC ? x_len - ic : TILE_MC;
                for (size_t jr = 0; jr < nc; jr += TILE_NR) {
                    size_t nr = nc - jr < TILE_NR ? nc - jr : TILE_NR;
                    for (size_t ir = 0; ir < mc; ir += TILE_MR) {
                        size_t mr = mc - ir < TILE_MR ? mc - ir : TILE_MR;
                        tile_kernel_6x16(kc, x + (ic + ir) * n + pc, n, mr, bp + jr * kc,
                                         out + (ic + ir) * c_len + jc + jr, c_len, nr, pc > 0);
                    }
                }
            }
        }
    }
    free(bp);
}

/* ---- conversions -------------------------------------------------------------------------------- */

static void f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        uint16_t buf[8];
        __m256 v = _mm256_maskload_ps(src + i, mask_first(n - i));
        _mm_storeu_si128((__m128i *)buf, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        memcpy(dst + i, buf, (n - i) * sizeof *dst);
    }
}

static void f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(src + i));
    if (i < n) _mm256_maskstore_ps(dst + i, mask_first(n - i), short_f16(src + i, n - i));
}

static const kern_table avx2_table = {
    .name = "avx2",
    .l2sq_f32 = l2sq_f32_avx2,
    .dot_f32 = dot_f32_avx2,
    .l2sq_f16 = l2sq_f16_avx2,
    .dot_f16 = dot_f16_avx2,
    .l2sq_i8 = l2sq_i8_avx2,
    .dot_i8 = dot_i8_avx2,
    .l2sq_f32_rows = l2sq_f32_rows_avx2,
    .dot_f32_rows = dot_f32_rows_avx2,
    .l2sq_f16_rows = l2sq_f16_rows_avx2,
    .dot_f16_rows = dot_f16_rows_avx2,
    .l2sq_i8_rows = l2sq_i8_rows_avx2,
    .dot_i8_rows = dot_i8_rows_avx2,
    .dot_f32_tile = dot_f32_tile_avx2,
    .f32_to_f16 = f32_to_f16_avx2,
    .f16_to_f32 = f16_to_f32_avx2,
};

const kern_table *kern_avx2_table(void) { return &avx2_table; }
