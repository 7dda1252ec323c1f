/* tests/unit/test_kernels.c: every SIMD kernel table built into this binary and supported by this CPU
 * (kern_avx2(), kern_neon()) against the scalar reference, on awkward sizes and unaligned pointers,
 * plus exhaustive half-precision conversion checks that hold for every table including scalar.
 *
 * Two kinds of data, both from a fixed seed:
 *  - integer-valued floats in [-8, 8]: every product and every partial sum is an integer below 2^24,
 *    so any summation order gives the exact result and SIMD must EQUAL scalar. A kernel that drops,
 *    repeats or misplaces one element fails here.
 *  - real floats in [-1, 1): SIMD may reassociate the sum and fuse multiply-adds. For any order of
 *    summing n terms t_i (each a correctly rounded or fused product), the error against the exact
 *    sum is at most gamma(n+1) * sum|t_i| with gamma(k) = k*u / (1 - k*u), u = 2^-24 (Higham,
 *    "Accuracy and Stability of Numerical Algorithms", 2nd ed., section 3.1). Scalar and SIMD are each
 *    within that of the exact value, so they differ by at most 2 * gamma(n+1) * sum|t_i|.
 * i8 results must be bit-identical. Inputs sit at the very end of exactly-sized allocations, so a
 * kernel reading past its arguments is caught by ASan and valgrind (CI runs both).
 *
 * The test forces kern_init(1) first, so it never depends on S3VEC_SIMD; the SIMD tables are reached
 * through kern_avx2()/kern_neon() directly. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/rng.h"
#include "engine/kernels.h"
#include "testutil.h"

/* The awkward sizes, plus 25 (all three loop stages of the 4-row kernels) and both sides of each
 * dtype's switch from 4-row blocks to single rows (256-byte rows: f32 64, f16 128, i8 256). Used by
 * the tile and conversion tests. */
static const size_t DIMS[] = {0, 1, 7, 9, 17, 25, 64, 65, 100, 128, 129, 256, 257, 784, 1536};
#define NDIMS         (sizeof DIMS / sizeof DIMS[0])
/* The scans (single vectors and `*_rows`) are tested on every n in 0..SCAN_DIMS_ALL (every tail length
 * of every loop stage for each dtype's vector widths) and on these larger ones. */
#define SCAN_DIMS_ALL 72
static const size_t SCAN_DIMS_LARGE[] = {96, 100, 127, 128, 129, 255, 256, 257, 384, 768, 784, 1023, 1536};
#define NSCAN_DIMS (SCAN_DIMS_ALL + 1 + sizeof SCAN_DIMS_LARGE / sizeof SCAN_DIMS_LARGE[0])
static size_t scan_dim(size_t k) { return k <= SCAN_DIMS_ALL ? k : SCAN_DIMS_LARGE[k - SCAN_DIMS_ALL - 1]; }
/* Row counts: below one 4-row group, every remainder after the groups (rows_len % 4 = 0..3) for one and
 * several groups, and counts whose quarters are odd; the last group always ends the array. */
static const size_t ROWS[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 30, 35};
#define NROWS    (sizeof ROWS / sizeof ROWS[0])
#define MAX_ROWS 35

enum { MODE_INT = 0, MODE_REAL = 1 };

static s3v_rng rng;

/* ---- allocation: data placed so that it ends exactly where its allocation ends ------------------ */

/* Returns a pointer to `size` bytes starting `skew` bytes into a fresh allocation of skew + size
 * bytes (at least 1); *base receives the pointer to free. */
static void *alloc_at_end(size_t size, size_t skew, void **base)
{
    uint8_t *p = calloc(skew + size ? skew + size : 1, 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    *base = p;
    return p + skew;
}

static float rand_float(int mode)
{
    if (mode == MODE_INT) return (float)((int)s3v_rng_below(&rng, 17) - 8);
    return (float)(s3v_rng_unit(&rng) * 2.0 - 1.0);
}

static void fill_f32(float *p, size_t len, float v)
{
    for (size_t i = 0; i < len; i++) p[i] = v;
}

static int8_t rand_i8(void) { return (int8_t)((int)s3v_rng_below(&rng, 256) - 128); }

static double gamma_n(size_t k)
{
    double u = ldexp(1.0, -24);
    return (double)k * u / (1.0 - (double)k * u);
}

/* SIMD result `got` vs scalar `want` for a sum of n terms with sum|t_i| = mag. */
static int close_enough(float got, float want, double mag, size_t n, int mode)
{
    if (mode == MODE_INT) return got == want;
    return fabs((double)got - (double)want) <= 2.0 * gamma_n(n + 1) * mag;
}

static double mag_l2sq_f32(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += (double)d * d;
    }
    return s;
}

static double mag_dot_f32(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    return s;
}

/* ---- f32 ---------------------------------------------------------------------------------------- */

static void test_f32(const kern_table *t, const kern_table *s, size_t n, size_t off, int mode)
{
    void *qb, *rb;
    size_t rows_max = MAX_ROWS;
    float *q = alloc_at_end(n * sizeof(float), off * sizeof(float), &qb);
    float *rows = alloc_at_end(n * rows_max * sizeof(float), ((off + 1) % 4) * sizeof(float), &rb);
    for (size_t i = 0; i < n; i++) q[i] = rand_float(mode);
    for (size_t i = 0; i < n * rows_max; i++) rows[i] = rand_float(mode);

    float got = t->l2sq_f32(q, rows, n), want = s->l2sq_f32(q, rows, n);
    CHECK(close_enough(got, want, mag_l2sq_f32(q, rows, n), n, mode),
          "%s l2sq_f32 n=%zu off=%zu mode=%d: %.9g vs %.9g", t->name, n, off, mode, got, want);
    got = t->dot_f32(q, rows, n), want = s->dot_f32(q, rows, n);
    CHECK(close_enough(got, want, mag_dot_f32(q, rows, n), n, mode),
          "%s dot_f32 n=%zu off=%zu mode=%d: %.9g vs %.9g", t->name, n, off, mode, got, want);

    for (size_t k = 0; k < NROWS; k++) {
        size_t rl = ROWS[k];
        /* the last rl rows of the allocation, so that the final row ends at the allocation's end */
        const float *r = rows + (rows_max - rl) * n;
        float out[MAX_ROWS + 1], ref[MAX_ROWS];
        fill_f32(out, rl, NAN); /* an output the kernel does not write fails the comparison */
        out[rl] = -12345.0f;
        t->l2sq_f32_rows(q, r, n, rl, out);
        s->l2sq_f32_rows(q, r, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(close_enough(out[j], ref[j], mag_l2sq_f32(q, r + j * n, n), n, mode),
                  "%s l2sq_f32_rows n=%zu rows=%zu row %zu off=%zu mode=%d: %.9g vs %.9g", t->name, n, rl, j,
                  off, mode, out[j], ref[j]);
        CHECK(out[rl] == -12345.0f, "%s l2sq_f32_rows wrote past out[%zu]", t->name, rl);
        fill_f32(out, rl, NAN);
        out[rl] = -12345.0f;
        t->dot_f32_rows(q, r, n, rl, out);
        s->dot_f32_rows(q, r, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(close_enough(out[j], ref[j], mag_dot_f32(q, r + j * n, n), n, mode),
                  "%s dot_f32_rows n=%zu rows=%zu row %zu off=%zu mode=%d: %.9g vs %.9g", t->name, n, rl, j,
                  off, mode, out[j], ref[j]);
        CHECK(out[rl] == -12345.0f, "%s dot_f32_rows wrote past out[%zu]", t->name, rl);
    }
    free(qb);
    free(rb);
}

/* ---- f16 ---------------------------------------------------------------------------------------- */

static double mag_l2sq_f16(const float *q, const uint16_t *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float d = q[i] - kern_f16_to_f32_one(x[i]);
        s += (double)d * d;
    }
    return s;
}

static double mag_dot_f16(const float *q, const uint16_t *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)q[i] * kern_f16_to_f32_one(x[i]));
    return s;
}

/* `skew_bytes` odd puts the half rows at an odd address (SIMD tables only: the scalar reference is
 * plain C and always gets an aligned copy of the same halves). */
static void test_f16(const kern_table *t, const kern_table *s, size_t n, size_t off, size_t skew_bytes,
                     int mode)
{
    void *qb, *xb;
    size_t rows_max = MAX_ROWS, len = n * rows_max;
    float *q = alloc_at_end(n * sizeof(float), off * sizeof(float), &qb);
    uint8_t *xbytes = alloc_at_end(len * sizeof(uint16_t), skew_bytes, &xb);
    uint16_t *ref_rows = malloc(len ? len * sizeof(uint16_t) : 1);
    REQUIRE(ref_rows != NULL, "oom");
    for (size_t i = 0; i < n; i++) q[i] = rand_float(mode);
    for (size_t i = 0; i < len; i++)
        ref_rows[i] = kern_f32_to_f16_one(rand_float(mode) * (mode ? 3.0f : 1.0f));
    memcpy(xbytes, ref_rows, len * sizeof(uint16_t));
    const uint16_t *x = (const uint16_t *)(const void *)xbytes;

    float got = t->l2sq_f16(q, x, n), want = s->l2sq_f16(q, ref_rows, n);
    CHECK(close_enough(got, want, mag_l2sq_f16(q, ref_rows, n), n, mode),
          "%s l2sq_f16 n=%zu off=%zu skew=%zu mode=%d: %.9g vs %.9g", t->name, n, off, skew_bytes, mode, got,
          want);
    got = t->dot_f16(q, x, n), want = s->dot_f16(q, ref_rows, n);
    CHECK(close_enough(got, want, mag_dot_f16(q, ref_rows, n), n, mode),
          "%s dot_f16 n=%zu off=%zu skew=%zu mode=%d: %.9g vs %.9g", t->name, n, off, skew_bytes, mode, got,
          want);

    for (size_t k = 0; k < NROWS; k++) {
        size_t rl = ROWS[k], first = (rows_max - rl) * n;
        float out[MAX_ROWS + 1], ref[MAX_ROWS];
        fill_f32(out, rl, NAN);
        out[rl] = -12345.0f;
        t->l2sq_f16_rows(q, x + first, n, rl, out);
        s->l2sq_f16_rows(q, ref_rows + first, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(close_enough(out[j], ref[j], mag_l2sq_f16(q, ref_rows + first + j * n, n), n, mode),
                  "%s l2sq_f16_rows n=%zu rows=%zu row %zu off=%zu skew=%zu mode=%d: %.9g vs %.9g", t->name,
                  n, rl, j, off, skew_bytes, mode, out[j], ref[j]);
        CHECK(out[rl] == -12345.0f, "%s l2sq_f16_rows wrote past out[%zu]", t->name, rl);
        fill_f32(out, rl, NAN);
        out[rl] = -12345.0f;
        t->dot_f16_rows(q, x + first, n, rl, out);
        s->dot_f16_rows(q, ref_rows + first, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(close_enough(out[j], ref[j], mag_dot_f16(q, ref_rows + first + j * n, n), n, mode),
                  "%s dot_f16_rows n=%zu rows=%zu row %zu off=%zu skew=%zu mode=%d: %.9g vs %.9g", t->name, n,
                  rl, j, off, skew_bytes, mode, out[j], ref[j]);
        CHECK(out[rl] == -12345.0f, "%s dot_f16_rows wrote past out[%zu]", t->name, rl);
    }
    free(ref_rows);
    free(qb);
    free(xb);
}

/* ---- i8 ----------------------------------------------------------------------------------------- */

static void test_i8(const kern_table *t, const kern_table *s, size_t n, size_t qoff, size_t roff)
{
    void *qb, *rb;
    size_t rows_max = MAX_ROWS;
    int8_t *q = alloc_at_end(n, qoff, &qb);
    int8_t *rows = alloc_at_end(n * rows_max, roff, &rb);
    for (size_t i = 0; i < n; i++) q[i] = rand_i8();
    for (size_t i = 0; i < n * rows_max; i++) rows[i] = rand_i8();

    int32_t got = t->l2sq_i8(q, rows, n), want = s->l2sq_i8(q, rows, n);
    CHECK(got == want, "%s l2sq_i8 n=%zu offs=%zu,%zu: %d vs %d", t->name, n, qoff, roff, got, want);
    got = t->dot_i8(q, rows, n), want = s->dot_i8(q, rows, n);
    CHECK(got == want, "%s dot_i8 n=%zu offs=%zu,%zu: %d vs %d", t->name, n, qoff, roff, got, want);

    for (size_t k = 0; k < NROWS; k++) {
        size_t rl = ROWS[k];
        const int8_t *r = rows + (rows_max - rl) * n;
        int32_t out[MAX_ROWS + 1], ref[MAX_ROWS];
        for (size_t j = 0; j < rl; j++) out[j] = INT32_MIN; /* never a result at these n */
        out[rl] = -12345;
        t->l2sq_i8_rows(q, r, n, rl, out);
        s->l2sq_i8_rows(q, r, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(out[j] == ref[j], "%s l2sq_i8_rows n=%zu rows=%zu row %zu: %d vs %d", t->name, n, rl, j,
                  out[j], ref[j]);
        CHECK(out[rl] == -12345, "%s l2sq_i8_rows wrote past out[%zu]", t->name, rl);
        for (size_t j = 0; j < rl; j++) out[j] = INT32_MIN;
        out[rl] = -12345;
        t->dot_i8_rows(q, r, n, rl, out);
        s->dot_i8_rows(q, r, n, rl, ref);
        for (size_t j = 0; j < rl; j++)
            CHECK(out[j] == ref[j], "%s dot_i8_rows n=%zu rows=%zu row %zu: %d vs %d", t->name, n, rl, j,
                  out[j], ref[j]);
        CHECK(out[rl] == -12345, "%s dot_i8_rows wrote past out[%zu]", t->name, rl);
    }
    free(qb);
    free(rb);
}

/* The documented exactness bounds (kernels.h): extreme values at the largest n each bound allows. */
static void test_i8_bounds(const kern_table *t)
{
    const size_t n_l2 = 33025, n_dot = 131071;
    int8_t *a = malloc(n_dot), *b = malloc(n_dot);
    REQUIRE(a && b, "oom");
    memset(a, 0x80, n_dot); /* -128 */
    memset(b, 0x7f, n_dot); /* 127 */
    int64_t want = (int64_t)n_l2 * 255 * 255;
    int32_t got = t->l2sq_i8(a, b, n_l2);
    CHECK(got == want, "%s l2sq_i8 at its bound n=%zu: %d vs %lld", t->name, n_l2, got, (long long)want);
    int32_t rows_out[2];
    memset(a, 0x80, 2 * 16384);
    memset(b, 0x7f, 2 * 16384);
    t->l2sq_i8_rows(a, b, 16384, 2, rows_out);
    CHECK(rows_out[0] == 16384 * 65025 && rows_out[1] == 16384 * 65025, "%s l2sq_i8_rows extremes: %d %d",
          t->name, rows_out[0], rows_out[1]);
    want = (int64_t)n_dot * 16384;
    got = t->dot_i8(a, a, n_dot);
    CHECK(got == want, "%s dot_i8 at its bound n=%zu: %d vs %lld", t->name, n_dot, got, (long long)want);
    want = -(int64_t)n_dot * 128 * 127;
    got = t->dot_i8(a, b, n_dot);
    CHECK(got == want, "%s dot_i8 -128*127 n=%zu: %d vs %lld", t->name, n_dot, got, (long long)want);
    free(a);
    free(b);
}

/* ---- dot_f32_tile ------------------------------------------------------------------------------- */

static void test_tile_case(const kern_table *t, const kern_table *s, size_t x_len, size_t c_len, size_t n,
                           int mode)
{
    void *xb, *cb;
    float *x = alloc_at_end(x_len * n * sizeof(float), sizeof(float), &xb);
    float *c = alloc_at_end(c_len * n * sizeof(float), 3 * sizeof(float), &cb);
    float *out = malloc((x_len * c_len + 1) * sizeof(float));
    float *ref = malloc((x_len * c_len + 1) * sizeof(float));
    REQUIRE(out && ref, "oom");
    for (size_t i = 0; i < x_len * n; i++) x[i] = rand_float(mode);
    for (size_t i = 0; i < c_len * n; i++) c[i] = rand_float(mode);
    for (size_t i = 0; i <= x_len * c_len; i++) out[i] = NAN; /* the kernel must write every output */
    out[x_len * c_len] = -12345.0f;
    t->dot_f32_tile(x, x_len, c, c_len, n, out);
    s->dot_f32_tile(x, x_len, c, c_len, n, ref);
    size_t bad = 0;
    for (size_t i = 0; i < x_len; i++)
        for (size_t j = 0; j < c_len; j++) {
            size_t k = i * c_len + j;
            if (!close_enough(out[k], ref[k], mag_dot_f32(x + i * n, c + j * n, n), n, mode)) {
                if (bad++ < 3)
                    fprintf(stderr, "  tile %zux%zu n=%zu mode=%d out[%zu][%zu] = %.9g vs %.9g\n", x_len,
                            c_len, n, mode, i, j, out[k], ref[k]);
            }
        }
    CHECK(bad == 0, "%s dot_f32_tile x_len=%zu c_len=%zu n=%zu mode=%d: %zu wrong", t->name, x_len, c_len, n,
          mode, bad);
    CHECK(out[x_len * c_len] == -12345.0f, "%s dot_f32_tile wrote past the end", t->name);
    free(out);
    free(ref);
    free(xb);
    free(cb);
}

static void test_tile(const kern_table *t, const kern_table *s)
{
    static const size_t xs[] = {0, 1, 3, 5, 6, 7, 17, 100};
    static const size_t cs[] = {0, 1, 15, 16, 17, 33};
    for (size_t d = 0; d < NDIMS; d++)
        for (size_t a = 0; a < sizeof xs / sizeof xs[0]; a++)
            for (size_t b = 0; b < sizeof cs / sizeof cs[0]; b++)
                for (int mode = 0; mode < 2; mode++) test_tile_case(t, s, xs[a], cs[b], DIMS[d], mode);
    /* more centroids than one packed block, and a dimension with a short last k block */
    test_tile_case(t, s, 13, 1100, 17, MODE_INT);
    test_tile_case(t, s, 7, 40, 300, MODE_REAL);
    test_tile_case(t, s, 200, 64, 128, MODE_INT);
}

/* ---- half conversions --------------------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Every half value: the value is exact (checked against an independent formula), converts back to
 * itself, and NaNs come back as quiet NaNs of the same sign and payload. */
static void test_f16_exhaustive(const kern_table *t)
{
    uint16_t *h = malloc(65536 * sizeof *h), *back = malloc(65536 * sizeof *back);
    float *f = malloc(65536 * sizeof *f);
    REQUIRE(h && back && f, "oom");
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    t->f16_to_f32(h, f, 65536);
    t->f32_to_f16(f, back, 65536);
    size_t bad_value = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t exp = (i >> 10) & 0x1f, man = i & 0x3ff, neg = i >> 15;
        if (exp == 31 && man != 0) {
            uint32_t want = (neg << 31) | 0x7fc00000u | (man << 13);
            if (!isnan(f[i]) || f32_bits(f[i]) != want || back[i] != (i | 0x200u)) bad_nan++;
            continue;
        }
        double v = exp == 31 ? INFINITY : exp == 0 ? ldexp(man, -24) : ldexp(1024 + man, (int)exp - 25);
        if (neg) v = -v;
        if ((double)f[i] != v || (signbit(f[i]) != 0) != (neg != 0)) bad_value++;
        if (back[i] != i) bad_trip++;
    }
    CHECK(bad_value == 0, "%s f16_to_f32: %zu of 65536 half values convert to the wrong float", t->name,
          bad_value);
    CHECK(bad_trip == 0, "%s f16 -> f32 -> f16: %zu of 65536 non-NaN halves do not come back", t->name,
          bad_trip);
    CHECK(bad_nan == 0, "%s f16 NaN handling: %zu of 2046 NaNs wrong", t->name, bad_nan);
    free(h);
    free(back);
    free(f);
}

struct edge {
    uint32_t f; /* f32 bits */
    uint16_t h; /* expected half */
};

/* Rounding edges; expected halves worked out by hand from IEEE 754 round-to-nearest-even. */
static const struct edge EDGES[] = {
    {0x00000000u, 0x0000}, /* +0 */
    {0x80000000u, 0x8000}, /* -0 */
    {0x3f800000u, 0x3c00}, /* 1 */
    {0x3f801000u, 0x3c00}, /* 1 + 2^-11: tie, even is 1 */
    {0x3f803000u, 0x3c02}, /* 1 + 3*2^-11: tie, even is 1 + 2^-9 */
    {0x3f801001u, 0x3c01}, /* just above the tie */
    {0x3f800fffu, 0x3c00}, /* just below the tie */
    {0x477fe000u, 0x7bff}, /* 65504, the largest half */
    {0x477fefffu, 0x7bff}, /* just below 65520 */
    {0x477ff000u, 0x7c00}, /* 65520: tie between 65504 and 2^16, even overflows to inf */
    {0xc77ff000u, 0xfc00}, /* -65520 */
    {0x501502f9u, 0x7c00}, /* 1e10 */
    {0x7f800000u, 0x7c00}, /* +inf */
    {0xff800000u, 0xfc00}, /* -inf */
    {0x33800000u, 0x0001}, /* 2^-24, the smallest subnormal */
    {0x33000000u, 0x0000}, /* 2^-25: tie between 0 and 2^-24, even is 0 */
    {0xb3000000u, 0x8000}, /* -2^-25 */
    {0x33000001u, 0x0001}, /* just above 2^-25 */
    {0x32ffffffu, 0x0000}, /* just below 2^-25 */
    {0x33c00000u, 0x0002}, /* 3*2^-25: tie between 1 and 2 subnormal units, even is 2 */
    {0x33a00000u, 0x0001}, /* 5*2^-26 = 1.25 units */
    {0x387fc000u, 0x03ff}, /* the largest subnormal */
    {0x387fe000u, 0x0400}, /* 1023.5 units: tie, even is the smallest normal */
    {0x387fdfffu, 0x03ff}, /* just below that tie */
    {0x38800000u, 0x0400}, /* 2^-14, the smallest normal */
    {0x00800000u, 0x0000}, /* FLT_MIN underflows to 0 */
    {0x00000001u, 0x0000}, /* the smallest f32 subnormal */
    {0x80000001u, 0x8000},
    {0x7fc00000u, 0x7e00}, /* quiet NaN */
    {0xffc00000u, 0xfe00},
    {0x7f800001u, 0x7e00}, /* signalling NaN, payload below the half's precision: quieted */
    {0x7fa00000u, 0x7f00}, /* signalling NaN with a payload kept in the top bits */
    {0x7f802000u, 0x7e01},
};
#define NEDGES (sizeof EDGES / sizeof EDGES[0])

static void test_f32_to_f16_edges(const kern_table *t)
{
    /* the edge list at every start offset 0..8, so each value passes through every vector lane and
     * through the tail path */
    float src[NEDGES + 8];
    uint16_t dst[NEDGES + 9];
    for (size_t shift = 0; shift <= 8; shift++) {
        for (size_t i = 0; i < shift; i++) src[i] = 0.5f;
        for (size_t i = 0; i < NEDGES; i++) src[shift + i] = bits_f32(EDGES[i].f);
        dst[NEDGES + shift] = 0xabcd;
        t->f32_to_f16(src, dst, NEDGES + shift);
        for (size_t i = 0; i < NEDGES; i++)
            CHECK(dst[shift + i] == EDGES[i].h, "%s f32_to_f16(%08x) at lane %zu = %04x, want %04x", t->name,
                  EDGES[i].f, (shift + i) % 8, dst[shift + i], EDGES[i].h);
        CHECK(dst[NEDGES + shift] == 0xabcd, "%s f32_to_f16 wrote past the end", t->name);
    }
    for (size_t i = 0; i < NEDGES; i++)
        CHECK(kern_f32_to_f16_one(bits_f32(EDGES[i].f)) == EDGES[i].h,
              "kern_f32_to_f16_one(%08x) = %04x, want %04x", EDGES[i].f,
              kern_f32_to_f16_one(bits_f32(EDGES[i].f)), EDGES[i].h);
}

/* Random f32 bit patterns (all exponents, NaNs included) and random lengths: bit-identical to scalar. */
static void test_conversions_random(const kern_table *t, const kern_table *s)
{
    enum { LEN = 1 << 16 };
    float *src = malloc(LEN * sizeof *src);
    uint16_t *a = malloc(LEN * sizeof *a), *b = malloc(LEN * sizeof *b);
    float *fa = malloc(LEN * sizeof *fa), *fb = malloc(LEN * sizeof *fb);
    REQUIRE(src && a && b && fa && fb, "oom");
    size_t bad = 0, bad_back = 0;
    for (int round = 0; round < 16; round++) {
        for (size_t i = 0; i < LEN; i++) {
            uint32_t u = (uint32_t)s3v_rng_next(&rng);
            if (round & 1) u = (u & 0x8fffffffu) | 0x30000000u; /* around the half range */
            src[i] = bits_f32(u);
        }
        size_t off = (size_t)round % 4, n = LEN - off - (size_t)round;
        t->f32_to_f16(src + off, a, n);
        s->f32_to_f16(src + off, b, n);
        if (memcmp(a, b, n * sizeof *a) != 0) bad++;
        t->f16_to_f32(a, fa, n);
        s->f16_to_f32(a, fb, n);
        if (memcmp(fa, fb, n * sizeof *fa) != 0) bad_back++;
    }
    CHECK(bad == 0, "%s f32_to_f16 differs from scalar on random bit patterns (%zu rounds)", t->name, bad);
    CHECK(bad_back == 0, "%s f16_to_f32 differs from scalar bitwise (%zu rounds)", t->name, bad_back);
    free(src);
    free(a);
    free(b);
    free(fa);
    free(fb);
}

/* Conversions on the awkward lengths and offsets, against scalar. */
static void test_conversions_sizes(const kern_table *t, const kern_table *s)
{
    for (size_t d = 0; d < NDIMS; d++)
        for (size_t off = 0; off < 4; off++) {
            size_t n = DIMS[d];
            void *fb, *hb;
            float *f = alloc_at_end(n * sizeof(float), off * sizeof(float), &fb);
            uint16_t *h = alloc_at_end(n * sizeof(uint16_t), off * sizeof(uint16_t), &hb);
            uint16_t hr[1536 + 1];
            float fr[1536 + 1], fo[1536 + 1];
            for (size_t i = 0; i < n; i++) f[i] = rand_float(MODE_REAL) * 1000.0f;
            hr[n] = 0xabcd;
            t->f32_to_f16(f, h, n);
            s->f32_to_f16(f, hr, n);
            CHECK(memcmp(h, hr, n * sizeof *h) == 0, "%s f32_to_f16 n=%zu off=%zu differs", t->name, n, off);
            fo[n] = -1.0f;
            t->f16_to_f32(h, fo, n);
            s->f16_to_f32(h, fr, n);
            CHECK(memcmp(fo, fr, n * sizeof *fo) == 0, "%s f16_to_f32 n=%zu off=%zu differs", t->name, n,
                  off);
            CHECK(fo[n] == -1.0f, "%s f16_to_f32 n=%zu wrote past the end", t->name, n);
            free(fb);
            free(hb);
        }
}

/* ---- non-finite values where a vector tail overlaps lanes already counted ---------------------- */

static void test_nonfinite_tails(const kern_table *t, const kern_table *s)
{
    /* n = 9 and n = 17: the f16 tail re-reads earlier lanes. An infinity in such a lane must count
     * once, as in scalar (+inf), never turn into NaN through 0 * inf. */
    for (size_t n = 9; n <= 17; n += 8) {
        float q[17];
        uint16_t x[17 * 5];
        for (size_t i = 0; i < n; i++) q[i] = 1.0f;
        for (size_t i = 0; i < n * 5; i++) x[i] = 0x3c00;     /* 1.0 */
        for (size_t r = 0; r < 5; r++) x[r * n + 1] = 0x7c00; /* +inf in lane 1 of every row */
        float out[5], ref[5];
        t->dot_f16_rows(q, x, n, 5, out);
        s->dot_f16_rows(q, x, n, 5, ref);
        for (size_t r = 0; r < 5; r++)
            CHECK(isinf(out[r]) && out[r] > 0 && isinf(ref[r]), "%s dot_f16_rows inf n=%zu row %zu: %g vs %g",
                  t->name, n, r, out[r], ref[r]);
        t->l2sq_f16_rows(q, x, n, 5, out);
        for (size_t r = 0; r < 5; r++)
            CHECK(isinf(out[r]) && out[r] > 0, "%s l2sq_f16_rows inf n=%zu row %zu: %g", t->name, n, r,
                  out[r]);
        CHECK(isinf(t->dot_f16(q, x, n)), "%s dot_f16 inf n=%zu", t->name, n);
    }
}

/* ---- selection ---------------------------------------------------------------------------------- */

static void test_select(void)
{
    CHECK(kern_get() == kern_scalar(), "kern_get() before kern_init() must be scalar");
    const kern_table *t = kern_init(1);
    CHECK(t == kern_scalar() && strcmp(t->name, "scalar") == 0, "kern_init(1) gave %s", t ? t->name : "NULL");
    CHECK(kern_get() == t, "kern_get() after kern_init(1)");
    CHECK(kern_init(0) == t, "a second kern_init() must return the first choice");
#if defined(__x86_64__)
    CHECK(kern_neon() == NULL, "no NEON table on x86_64");
#elif defined(__aarch64__)
    CHECK(kern_avx2() == NULL, "no AVX2 table on aarch64");
    CHECK(kern_neon() != NULL, "the NEON table is always available on aarch64");
#endif
}

static void test_table(const kern_table *t, const kern_table *s)
{
    printf("testing table %s against %s\n", t->name, s->name);
    for (size_t d = 0; d < NSCAN_DIMS; d++) {
        size_t n = scan_dim(d);
        for (size_t off = 0; off < 4; off++) {
            for (int mode = 0; mode < 2; mode++) {
                test_f32(t, s, n, off, mode);
                test_f16(t, s, n, off, off * sizeof(uint16_t), mode);
                test_f16(t, s, n, off, 2 * off + 1, mode); /* halves at an odd address */
            }
            for (size_t roff = 0; roff < 4; roff++) test_i8(t, s, n, off, roff);
        }
    }
    test_tile(t, s);
    test_conversions_sizes(t, s);
    test_conversions_random(t, s);
    test_nonfinite_tails(t, s);
}

int main(void)
{
    s3v_rng_seed(&rng, 20240611);
    test_select();
    const kern_table *s = kern_scalar();
    const kern_table *simd[] = {kern_avx2(), kern_neon()};
    size_t tested = 0;
    for (size_t i = 0; i < sizeof simd / sizeof simd[0]; i++) {
        if (!simd[i]) continue;
        test_table(simd[i], s);
        tested++;
    }
    if (!tested) printf("no SIMD table on this CPU/build: scalar checks only\n");
    /* every table, scalar included, meets the documented conversion semantics */
    const kern_table *all[] = {s, kern_avx2(), kern_neon()};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i]) continue;
        test_f16_exhaustive(all[i]);
        test_f32_to_f16_edges(all[i]);
        test_i8_bounds(all[i]);
    }
    return TEST_SUMMARY();
}
