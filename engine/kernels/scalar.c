/* engine/kernels/scalar.c: the reference kernels, always built. Plain loops in the obvious order;
 * other ISAs are tested against these. */
#include <math.h>
#include <string.h>

#include "engine/kernels.h"

uint16_t kern_f32_to_f16_one(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0)); /* inf/nan */
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (e <= 0) {                                   /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++; /* may carry into exponent: correct */
    return (uint16_t)half;
}

float kern_f16_to_f32_one(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) { /* inf, or NaN made quiet (IEEE 754 conversion; F16C and NEON do the same) */
        x = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static float l2sq_f32_scalar(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float dot_f32_scalar(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float l2sq_f16_scalar(const float *q, const uint16_t *x, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) {
        float d = q[i] - kern_f16_to_f32_one(x[i]);
        s += d * d;
    }
    return s;
}

static float dot_f16_scalar(const float *q, const uint16_t *x, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) s += q[i] * kern_f16_to_f32_one(x[i]);
    return s;
}

static int32_t l2sq_i8_scalar(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t d = (int32_t)a[i] - (int32_t)b[i];
        s += d * d;
    }
    return s;
}

static int32_t dot_i8_scalar(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

static void l2sq_f32_rows_scalar(const float *q, const float *rows, size_t n, size_t rows_len, float *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = l2sq_f32_scalar(q, rows + r * n, n);
}

static void dot_f32_rows_scalar(const float *q, const float *rows, size_t n, size_t rows_len, float *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = dot_f32_scalar(q, rows + r * n, n);
}

static void l2sq_f16_rows_scalar(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = l2sq_f16_scalar(q, rows + r * n, n);
}

static void dot_f16_rows_scalar(const float *q, const uint16_t *rows, size_t n, size_t rows_len, float *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = dot_f16_scalar(q, rows + r * n, n);
}

static void l2sq_i8_rows_scalar(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = l2sq_i8_scalar(q, rows + r * n, n);
}

static void dot_i8_rows_scalar(const int8_t *q, const int8_t *rows, size_t n, size_t rows_len, int32_t *out)
{
    for (size_t r = 0; r < rows_len; r++) out[r] = dot_i8_scalar(q, rows + r * n, n);
}

static void dot_f32_tile_scalar(const float *x, size_t x_len, const float *c, size_t c_len, size_t n,
                                float *out)
{
    for (size_t i = 0; i < x_len; i++)
        for (size_t j = 0; j < c_len; j++) out[i * c_len + j] = dot_f32_scalar(x + i * n, c + j * n, n);
}

static void f32_to_f16_scalar(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = kern_f32_to_f16_one(src[i]);
}

static void f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = kern_f16_to_f32_one(src[i]);
}

static const kern_table scalar_table = {
    .name = "scalar",
    .l2sq_f32 = l2sq_f32_scalar,
    .dot_f32 = dot_f32_scalar,
    .l2sq_f16 = l2sq_f16_scalar,
    .dot_f16 = dot_f16_scalar,
    .l2sq_i8 = l2sq_i8_scalar,
    .dot_i8 = dot_i8_scalar,
    .l2sq_f32_rows = l2sq_f32_rows_scalar,
    .dot_f32_rows = dot_f32_rows_scalar,
    .l2sq_f16_rows = l2sq_f16_rows_scalar,
    .dot_f16_rows = dot_f16_rows_scalar,
    .l2sq_i8_rows = l2sq_i8_rows_scalar,
    .dot_i8_rows = dot_i8_rows_scalar,
    .dot_f32_tile = dot_f32_tile_scalar,
    .f32_to_f16 = f32_to_f16_scalar,
    .f16_to_f32 = f16_to_f32_scalar,
};

const kern_table *kern_scalar(void) { return &scalar_table; }
