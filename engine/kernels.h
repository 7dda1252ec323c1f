/* engine/kernels.h: distance kernels on one grid, <metric>_<dtype>_<isa>, chosen once at start-up.
 *
 * Metrics: l2sq (squared euclidean) and dot (inner product; cosine = dot on normalised vectors).
 * Dtypes: f32; f16 (IEEE half, stored as uint16_t, compared against an f32 query); i8 (int8 codes,
 * both sides int8, exact int32 result). Every function accepts any alignment and n = 0 (returns 0).
 * `*_rows` variants compare one query with `rows_len` contiguous rows of `n` elements each and write
 * rows_len results; they are what the scan loop calls. `dot_f32_tile` computes a block of inner
 * products for k-means and centroid probing: out[i * c_len + j] = dot(x + i*n, c + j*n).
 *
 * scalar.c is the reference and is always built; avx2.c (x86_64, AVX2+FMA+F16C) and neon.c
 * (aarch64) implement the same table. Results of SIMD paths differ from scalar only by float
 * reassociation (tests bound the relative error); i8 results are bit-identical.
 *
 * i8 range: int8 inputs may be any value in [-128, 127]. Results are exact while the true sum fits
 * int32: |a*b| <= 16384 so dot_i8 is exact for n <= 131071; (a-b)^2 <= 255^2 = 65025 so l2sq_i8 is
 * exact for n <= 33025. The index dimension limit (4096, engine/FORMAT.md) is far inside both;
 * callers must not pass larger n.
 *
 * Half precision: f32 -> f16 rounds to nearest even, overflows to infinity, keeps subnormals (no
 * flush to zero). f16 -> f32 is exact. A NaN converts to a quiet NaN of the same sign whose payload
 * keeps the top bits (f16 -> f32 sets the quiet bit, as IEEE 754 conversion and the F16C/NEON
 * instructions do), so every non-NaN half survives f16 -> f32 -> f16 unchanged and a NaN stays NaN.
 *
 * Tiles: dot_f32_tile may allocate a packing buffer (at most about 1 MiB) for the duration of the
 * call; if that fails it computes the same result without it. It never fails.
 *
 * Threading: kern_init() runs once at start-up, before other threads exist; afterwards the table
 * is read-only and every kernel is thread-safe. */
#ifndef S3V_KERNELS_H
#define S3V_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kern_table {
    const char *name; /* "scalar", "avx2", "neon" */

    float (*l2sq_f32)(const float *a, const float *b, size_t n);
    float (*dot_f32)(const float *a, const float *b, size_t n);
    float (*l2sq_f16)(const float *q, const uint16_t *x, size_t n);
    float (*dot_f16)(const float *q, const uint16_t *x, size_t n);
    int32_t (*l2sq_i8)(const int8_t *a, const int8_t *b, size_t n);
    int32_t (*dot_i8)(const int8_t *a, const int8_t *b, size_t n);

    void (*l2sq_f32_rows)(const float *q, const float *rows, size_t n, size_t rows_len, float *out);
    void (*dot_f32_rows)(const float *q, const float *rows, size_t n, size_t rows_len, float *out);
    void (*l2sq_f16_rows)(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out);
    void (*dot_f16_rows)(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out);
    void (*l2sq_i8_rows)(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out);
    void (*dot_i8_rows)(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out);

    void (*dot_f32_tile)(const float *x, size_t x_len, const float *c, size_t c_len, size_t n, float *out);

    void (*f32_to_f16)(const float *src, uint16_t *dst, size_t n); /* round to nearest even */
    void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
} kern_table;

/* Chooses the best table for this CPU (__builtin_cpu_supports / HWCAP), or scalar when
 * force_scalar is non-zero, logs the choice once at INFO level, also initialises CRC-32C, and
 * returns it. Later calls return the first choice. The caller (cli/, bootstrap/) reads the
 * environment variable S3VEC_SIMD=scalar and passes force_scalar. */
const kern_table *kern_init(int force_scalar);
/* The table chosen by kern_init(); the scalar table if kern_init() was never called. */
const kern_table *kern_get(void);

/* Individual tables, for tests and benchmarks. NULL when not compiled in or not supported by this
 * CPU (kern_avx2 checks the CPU). */
const kern_table *kern_scalar(void);
const kern_table *kern_avx2(void);
const kern_table *kern_neon(void);

/* Scalar half-precision conversions (the reference; also used where no table is at hand). */
uint16_t kern_f32_to_f16_one(float f);
float kern_f16_to_f32_one(uint16_t h);

#endif
