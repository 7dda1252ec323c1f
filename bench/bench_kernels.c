/* bench/bench_kernels.c: the scan kernels against the memory-bandwidth limit, and dot_f32_tile against
 * the FMA peak and OpenBLAS sgemm, all measured in the same run on one thread.
 *
 * Scan: a buffer far larger than the last-level cache (default 1 GiB) is filled with rows of each
 * dtype and scanned with the table's `*_rows` kernels in chunks of 1024 rows (as the scan loop does
 * per cluster). Beside each measurement, the same bytes are read by plain load-and-xor loops: the
 * fastest that reads one sequential stream and the fastest that reads several streams side by side
 * (one thread gets more DRAM bandwidth from several streams, and the f32 scans read four). The faster
 * of the two paired read passes is the bandwidth limit one thread can reach, and the kernel is
 * reported as a ratio to it (and, for comparison with earlier runs, to the one-stream loop alone).
 * Kernel and read passes alternate; each figure is the median of --reps passes.
 *
 * Tile: dot_f32_tile on k-means-like shapes (x_len points x c_len centroids x n dims) in GFLOP/s
 * (2 * x_len * c_len * n flops), beside (a) the FMA peak of this core measured by a register-only
 * FMA loop and (b) cblas_sgemm from OpenBLAS, loaded with dlopen (no build dependency: if
 * libopenblas.so.0 is not installed the column says so), forced to one thread.
 *
 * Usage: bench_kernels [--mib N] [--reps R] [--table scalar|avx2|neon] [--dtype f32|f16|i8] [--skip-scan]
 *                      [--skip-tile]
 * Prints Markdown tables. Needs about N MiB + 200 MiB of memory. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/rng.h"
#include "engine/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#define CHUNK_ROWS 1024

static volatile uint64_t sink; /* keeps results alive */

/* Time is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a shared machine, time slices given to
 * other processes are not counted. Memory traffic of other processes still competes, for the kernel
 * and the read loop alike, which is why each ratio pairs passes run back to back. */
static uint64_t cpu_ns(void) { return s3v_thread_cpu_ns(); }

static double secs(uint64_t t0) { return (double)(cpu_ns() - t0) * 1e-9; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the bandwidth limit: plain read loops ------------------------------------------------------ */

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_avx2_x4(const uint8_t *p, size_t size)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 128 <= size; i += 128) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}

__attribute__((target("avx2"))) static uint64_t read_avx2_x8_prefetch(const uint8_t *p, size_t size)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a, e = a, f = a, g = a, h = a;
    size_t i = 0;
    for (; i + 256 <= size; i += 256) {
        _mm_prefetch((const char *)(p + i + 2048), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i + 2048 + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i + 2048 + 128), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i + 2048 + 192), _MM_HINT_T0);
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
        e = _mm256_xor_si256(e, _mm256_load_si256((const __m256i *)(p + i + 128)));
        f = _mm256_xor_si256(f, _mm256_load_si256((const __m256i *)(p + i + 160)));
        g = _mm256_xor_si256(g, _mm256_load_si256((const __m256i *)(p + i + 192)));
        h = _mm256_xor_si256(h, _mm256_load_si256((const __m256i *)(p + i + 224)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)),
                         _mm256_xor_si256(_mm256_xor_si256(e, f), _mm256_xor_si256(g, h)));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}

__attribute__((target("avx2"))) static uint64_t read_avx2_x8(const uint8_t *p, size_t size)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a, e = a, f = a, g = a, h = a;
    size_t i = 0;
    for (; i + 256 <= size; i += 256) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
        e = _mm256_xor_si256(e, _mm256_load_si256((const __m256i *)(p + i + 128)));
        f = _mm256_xor_si256(f, _mm256_load_si256((const __m256i *)(p + i + 160)));
        g = _mm256_xor_si256(g, _mm256_load_si256((const __m256i *)(p + i + 192)));
        h = _mm256_xor_si256(h, _mm256_load_si256((const __m256i *)(p + i + 224)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)),
                         _mm256_xor_si256(_mm256_xor_si256(e, f), _mm256_xor_si256(g, h)));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}

/* S streams (2, 4 or 8) read side by side: the range is cut into S equal parts and part k is read at
 * the same offset as part 0. One thread reaches more DRAM bandwidth with several streams than with
 * one (the hardware prefetchers run one stream each), and the f32 scans read four streams, so the
 * limit they are held to must include this. Parts are multiples of 256 bytes; the rest is not read,
 * which makes the rate slightly optimistic (at most 2 KiB of a range of many MiB). */
__attribute__((target("avx2"))) static uint64_t read_avx2_streams(const uint8_t *p, size_t size, size_t s)
{
    size_t part = size / s / 256 * 256;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a, e = a, f = a, g = a, h = a;
#define RD(v, ptr) v = _mm256_xor_si256(v, _mm256_load_si256((const __m256i *)(ptr)))
    if (s == 2) {
        const uint8_t *p0 = p, *p1 = p + part;
        for (size_t i = 0; i < part; i += 128) {
            RD(a, p0 + i), RD(b, p0 + i + 32), RD(c, p0 + i + 64), RD(d, p0 + i + 96);
            RD(e, p1 + i), RD(f, p1 + i + 32), RD(g, p1 + i + 64), RD(h, p1 + i + 96);
        }
    } else if (s == 4) {
        const uint8_t *p0 = p, *p1 = p + part, *p2 = p + 2 * part, *p3 = p + 3 * part;
        for (size_t i = 0; i < part; i += 64) {
            RD(a, p0 + i), RD(b, p0 + i + 32), RD(c, p1 + i), RD(d, p1 + i + 32);
            RD(e, p2 + i), RD(f, p2 + i + 32), RD(g, p3 + i), RD(h, p3 + i + 32);
        }
    } else {
        const uint8_t *p0 = p, *p1 = p + part, *p2 = p + 2 * part, *p3 = p + 3 * part;
        const uint8_t *p4 = p + 4 * part, *p5 = p + 5 * part, *p6 = p + 6 * part, *p7 = p + 7 * part;
        for (size_t i = 0; i < part; i += 32) {
            RD(a, p0 + i), RD(b, p1 + i), RD(c, p2 + i), RD(d, p3 + i);
            RD(e, p4 + i), RD(f, p5 + i), RD(g, p6 + i), RD(h, p7 + i);
        }
    }
#undef RD
    a = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)),
                         _mm256_xor_si256(_mm256_xor_si256(e, f), _mm256_xor_si256(g, h)));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}

static uint64_t read_avx2_2streams(const uint8_t *p, size_t size) { return read_avx2_streams(p, size, 2); }
static uint64_t read_avx2_4streams(const uint8_t *p, size_t size) { return read_avx2_streams(p, size, 4); }
static uint64_t read_avx2_8streams(const uint8_t *p, size_t size) { return read_avx2_streams(p, size, 8); }

/* s streams within each block of `block` bytes, block after block: the shape of a scan that cuts
 * each call's rows into quarters (one call = 1024 rows = 0.1-6 MiB here). */
static uint64_t read_avx2_blocks(const uint8_t *p, size_t size, size_t block, size_t s)
{
    uint64_t x = 0;
    size_t o = 0;
    for (; o + block <= size; o += block) x ^= read_avx2_streams(p + o, block, s);
    return x ^ read_avx2_streams(p + o, size - o, s);
}

static uint64_t read_avx2_4streams_256k(const uint8_t *p, size_t size)
{
    return read_avx2_blocks(p, size, 256 << 10, 4);
}
static uint64_t read_avx2_8streams_256k(const uint8_t *p, size_t size)
{
    return read_avx2_blocks(p, size, 256 << 10, 8);
}
static uint64_t read_avx2_4streams_4m(const uint8_t *p, size_t size)
{
    return read_avx2_blocks(p, size, 4 << 20, 4);
}
#elif defined(__aarch64__)
static uint64_t read_neon_x4(const uint8_t *p, size_t size)
{
    uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 64 <= size; i += 64) {
        a = veorq_u64(a, vld1q_u64((const uint64_t *)(p + i)));
        b = veorq_u64(b, vld1q_u64((const uint64_t *)(p + i + 16)));
        c = veorq_u64(c, vld1q_u64((const uint64_t *)(p + i + 32)));
        d = veorq_u64(d, vld1q_u64((const uint64_t *)(p + i + 48)));
    }
    a = veorq_u64(veorq_u64(a, b), veorq_u64(c, d));
    return vgetq_lane_u64(a, 0) ^ vgetq_lane_u64(a, 1);
}

/* Four streams side by side, as read_avx2_streams with s = 4. */
static uint64_t read_neon_4streams(const uint8_t *p, size_t size)
{
    size_t part = size / 4 / 64 * 64;
    const uint8_t *p0 = p, *p1 = p + part, *p2 = p + 2 * part, *p3 = p + 3 * part;
    uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
    for (size_t i = 0; i < part; i += 16) {
        a = veorq_u64(a, vld1q_u64((const uint64_t *)(p0 + i)));
        b = veorq_u64(b, vld1q_u64((const uint64_t *)(p1 + i)));
        c = veorq_u64(c, vld1q_u64((const uint64_t *)(p2 + i)));
        d = veorq_u64(d, vld1q_u64((const uint64_t *)(p3 + i)));
    }
    a = veorq_u64(veorq_u64(a, b), veorq_u64(c, d));
    return vgetq_lane_u64(a, 0) ^ vgetq_lane_u64(a, 1);
}
#endif

static uint64_t read_u64(const uint8_t *p, size_t size)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= size / 8; i += 4) a ^= w[i], b ^= w[i + 1], c ^= w[i + 2], d ^= w[i + 3];
    return a ^ b ^ c ^ d;
}

typedef uint64_t (*read_fn)(const uint8_t *, size_t);
struct reader {
    const char *name;
    read_fn fn;
    int streams; /* 1: one sequential stream; more: that many side by side */
};
#define MAX_READERS 16

static size_t readers_get(struct reader *r)
{
    size_t n = 0;
    r[n++] = (struct reader){"u64 x4", read_u64, 1};
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        r[n++] = (struct reader){"avx2 x4", read_avx2_x4, 1};
        r[n++] = (struct reader){"avx2 x8", read_avx2_x8, 1};
        r[n++] = (struct reader){"avx2 x8 + prefetch", read_avx2_x8_prefetch, 1};
        r[n++] = (struct reader){"avx2 2 streams", read_avx2_2streams, 2};
        r[n++] = (struct reader){"avx2 4 streams", read_avx2_4streams, 4};
        r[n++] = (struct reader){"avx2 8 streams", read_avx2_8streams, 8};
        r[n++] = (struct reader){"avx2 4 streams/256K", read_avx2_4streams_256k, 4};
        r[n++] = (struct reader){"avx2 8 streams/256K", read_avx2_8streams_256k, 8};
        r[n++] = (struct reader){"avx2 4 streams/4M", read_avx2_4streams_4m, 4};
    }
#elif defined(__aarch64__)
    r[n++] = (struct reader){"neon x4", read_neon_x4, 1};
    r[n++] = (struct reader){"neon 4 streams", read_neon_4streams, 4};
#endif
    return n;
}

/* ---- scan --------------------------------------------------------------------------------------- */

enum dtype { DT_F32, DT_F16, DT_I8 };
static const char *const DT_NAME[] = {"f32", "f16", "i8"};
static const size_t DT_SIZE[] = {4, 2, 1};

/* One pass over all rows with the chosen kernel, in chunks of CHUNK_ROWS. */
static void scan_rows(const kern_table *t, enum dtype dt, int dot, const uint8_t *buf, size_t rows, size_t n,
                      const void *q, void *out)
{
    size_t row_size = n * DT_SIZE[dt];
    for (size_t r = 0; r < rows; r += CHUNK_ROWS) {
        size_t len = rows - r < CHUNK_ROWS ? rows - r : CHUNK_ROWS;
        const uint8_t *p = buf + r * row_size;
        switch (dt) {
        case DT_F32:
            (dot ? t->dot_f32_rows : t->l2sq_f32_rows)(q, (const float *)(const void *)p, n, len, out);
            break;
        case DT_F16:
            (dot ? t->dot_f16_rows : t->l2sq_f16_rows)(q, (const uint16_t *)(const void *)p, n, len, out);
            break;
        case DT_I8: (dot ? t->dot_i8_rows : t->l2sq_i8_rows)(q, (const int8_t *)p, n, len, out); break;
        }
        sink += ((const uint32_t *)out)[len - 1];
    }
}

static double scan_pass(const kern_table *t, enum dtype dt, int dot, const uint8_t *buf, size_t rows,
                        size_t n, const void *q, void *out)
{
    uint64_t t0 = cpu_ns();
    scan_rows(t, dt, dot, buf, rows, n, q, out);
    return secs(t0);
}

static void fill(uint8_t *buf, size_t size, enum dtype dt, s3v_rng *rng)
{
    if (dt == DT_F32) {
        float *f = (float *)(void *)buf;
        for (size_t i = 0; i < size / 4; i++) f[i] = (float)(s3v_rng_unit(rng) * 2 - 1);
    } else if (dt == DT_F16) {
        uint16_t *h = (uint16_t *)(void *)buf;
        for (size_t i = 0; i < size / 2; i++) h[i] = kern_f32_to_f16_one((float)(s3v_rng_unit(rng) * 2 - 1));
    } else {
        for (size_t i = 0; i < size; i += 8) {
            uint64_t v = s3v_rng_next(rng);
            memcpy(buf + i, &v, size - i < 8 ? size - i : 8);
        }
    }
}

static void bench_scan(const kern_table *t, uint8_t *buf, size_t size, int reps, int only_dt)
{
    struct reader rd[MAX_READERS];
    size_t nrd = readers_get(rd);

    /* The limit: every read loop on the whole buffer; the best one-stream loop and the best
     * several-stream loop are each paired with every kernel pass below. */
    double best_bw[2] = {0, 0};
    const char *best_name[2] = {"", ""};
    read_fn best_fn[2] = {NULL, NULL};
    for (size_t k = 0; k < nrd; k++) {
        double v[64];
        for (int r = 0; r < reps; r++) {
            uint64_t t0 = cpu_ns();
            sink += rd[k].fn(buf, size);
            v[r] = (double)size / secs(t0) * 1e-9;
        }
        double m = median(v, reps);
        int multi = rd[k].streams > 1;
        printf("read loop %-20s %7.2f GB/s\n", rd[k].name, m);
        if (m > best_bw[multi]) best_bw[multi] = m, best_name[multi] = rd[k].name, best_fn[multi] = rd[k].fn;
    }
    printf("\none stream: %.2f GB/s (%s); several streams: %.2f GB/s (%s); medians of %d passes over %.0f "
           "MiB\n\n",
           best_bw[0], best_name[0], best_bw[1], best_fn[1] ? best_name[1] : "none", reps,
           (double)size / (1 << 20));

    static const size_t dims[] = {100, 768, 1536};
    float *qf = malloc(1536 * sizeof *qf);
    int8_t *qi = malloc(1536);
    void *out = malloc(CHUNK_ROWS * sizeof(float));
    s3v_rng rng;
    s3v_rng_seed(&rng, 42);
    if (!qf || !qi || !out) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < 1536; i++) qf[i] = (float)(s3v_rng_unit(&rng) * 2 - 1), qi[i] = (int8_t)(i * 37);

    /* ratio to the limit: the kernel pass over the faster of its two paired read passes */
    printf("| kernel (%s) | dim | Mvectors/s | GB/s | 1-stream read GB/s | ratio to 1 stream | multi-stream "
           "read GB/s | ratio to the limit |\n",
           t->name);
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int dt = DT_F32; dt <= DT_I8; dt++) {
        if (only_dt >= 0 && dt != only_dt) continue;
        fill(buf, size, (enum dtype)dt, &rng);
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int dot = 0; dot <= 1; dot++) {
                size_t n = dims[di], rows = size / (n * DT_SIZE[dt]);
                double bytes = (double)(rows * n * DT_SIZE[dt]);
                const void *q = dt == DT_I8 ? (const void *)qi : (const void *)qf;
                double kv[64], rv[2][64], rat1[64], rat[64];
                for (int r = 0; r < reps; r++) { /* a kernel pass, then read passes over the same bytes */
                    kv[r] = bytes / scan_pass(t, (enum dtype)dt, dot, buf, rows, n, q, out) * 1e-9;
                    for (int k = 0; k < 2; k++) {
                        rv[k][r] = 0;
                        if (!best_fn[k]) continue;
                        uint64_t t0 = cpu_ns();
                        sink += best_fn[k](buf, (size_t)bytes);
                        rv[k][r] = bytes / secs(t0) * 1e-9;
                    }
                    rat1[r] = kv[r] / rv[0][r];
                    rat[r] = kv[r] / (rv[1][r] > rv[0][r] ? rv[1][r] : rv[0][r]);
                }
                double gbs = median(kv, reps);
                printf("| %s_%s_rows | %zu | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                       dot ? "dot" : "l2sq", DT_NAME[dt], n, gbs * 1e9 / (double)(n * DT_SIZE[dt]) * 1e-6,
                       gbs, median(rv[0], reps), median(rat1, reps), median(rv[1], reps), median(rat, reps));
                fflush(stdout);
            }
    }
    free(qf);
    free(qi);
    free(out);
}

/* The same kernels on rows that stay in L2 (256 KiB scanned again and again): compute-bound, so
 * this shows instruction efficiency rather than memory, against the read loop on the same bytes. */
static void bench_scan_l2(const kern_table *t, int reps, int only_dt)
{
    const size_t size = 256 << 10;
    uint8_t *buf = aligned_alloc(4096, size);
    float *qf = malloc(1536 * sizeof *qf);
    int8_t *qi = malloc(1536);
    void *out = malloc(CHUNK_ROWS * sizeof(float));
    if (!buf || !qf || !qi || !out) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    struct reader rd[MAX_READERS];
    size_t nrd = readers_get(rd);
    s3v_rng rng;
    s3v_rng_seed(&rng, 43);
    /* the in-cache reference: the fastest read loop on this buffer */
    read_fn fast = rd[0].fn;
    double fast_bw = 0;
    for (size_t k = 0; k < nrd; k++) {
        double v[64];
        for (int r = 0; r < reps; r++) {
            uint64_t t0 = cpu_ns();
            for (int it = 0; it < 256; it++) sink += rd[k].fn(buf, size);
            v[r] = (double)size * 256 / secs(t0) * 1e-9;
        }
        double m = median(v, reps);
        if (m > fast_bw) fast_bw = m, fast = rd[k].fn;
    }
    for (size_t i = 0; i < 1536; i++) qf[i] = (float)(s3v_rng_unit(&rng) * 2 - 1), qi[i] = (int8_t)(i * 37);
    printf("\n| in L2 (256 KiB), %s | dim | GB/s | read loop GB/s | ratio |\n|---|---:|---:|---:|---:|\n",
           t->name);
    static const size_t dims[] = {100, 768};
    for (int dt = DT_F32; dt <= DT_I8; dt++) {
        if (only_dt >= 0 && dt != only_dt) continue;
        fill(buf, size, (enum dtype)dt, &rng);
        for (size_t di = 0; di < 2; di++) {
            size_t n = dims[di], rows = size / (n * DT_SIZE[dt]);
            double bytes = (double)(rows * n * DT_SIZE[dt]), kv[64], rv[64];
            const void *q = dt == DT_I8 ? (const void *)qi : (const void *)qf;
            size_t iters = (size_t)(64.0 * (1 << 20) / bytes) + 1; /* about 64 MiB per timing */
            for (int r = 0; r < reps; r++) {                       /* the timer is a system call */
                uint64_t t0 = cpu_ns();
                for (size_t k = 0; k < iters; k++) scan_rows(t, (enum dtype)dt, 0, buf, rows, n, q, out);
                kv[r] = bytes * (double)iters / secs(t0) * 1e-9;
                t0 = cpu_ns();
                for (size_t k = 0; k < iters; k++) sink += fast(buf, (size_t)bytes);
                rv[r] = bytes * (double)iters / secs(t0) * 1e-9;
            }
            double a = median(kv, reps), b = median(rv, reps);
            printf("| l2sq_%s_rows | %zu | %.1f | %.1f | %.2f |\n", DT_NAME[dt], n, a, b, a / b);
        }
    }
    free(buf);
    free(qf);
    free(qi);
    free(out);
}

/* ---- tile --------------------------------------------------------------------------------------- */

#if defined(__x86_64__)
/* 12 independent FMA chains in registers: 2 FMA ports x 4-5 cycles latency are covered. */
__attribute__((target("avx2,fma"))) static double fma_peak_gflops(void)
{
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m256 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    const long iters = 50 * 1000 * 1000;
    uint64_t t0 = cpu_ns();
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c), a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    double s = secs(t0);
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    t = _mm256_add_ps(t, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float f[8];
    _mm256_storeu_ps(f, t);
    sink += (uint64_t)f[0];
    return (double)iters * 12 * 8 * 2 / s * 1e-9;
}
#elif defined(__aarch64__)
static double fma_peak_gflops(void)
{
    float32x4_t a[16];
    for (int k = 0; k < 16; k++) a[k] = vdupq_n_f32(1.0f);
    const float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
    const long iters = 50 * 1000 * 1000;
    uint64_t t0 = cpu_ns();
    for (long i = 0; i < iters; i++) {
        for (int k = 0; k < 16; k++) a[k] = vfmaq_f32(c, a[k], m);
        __asm__ volatile(""
                         : "+w"(a[0]), "+w"(a[1]), "+w"(a[2]), "+w"(a[3]), "+w"(a[4]), "+w"(a[5]), "+w"(a[6]),
                           "+w"(a[7]));
    }
    double s = secs(t0);
    float32x4_t t = a[0];
    for (int k = 1; k < 16; k++) t = vaddq_f32(t, a[k]);
    sink += (uint64_t)vgetq_lane_f32(t, 0);
    return (double)iters * 16 * 4 * 2 / s * 1e-9;
}
#else
static double fma_peak_gflops(void) { return 0; }
#endif

/* cblas_sgemm through dlopen: enum arguments passed as int (their C ABI). */
typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static sgemm_fn blas_open(char *desc, size_t desc_size)
{
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    static const char *const libs[] = {"libopenblas.so.0", "libopenblas.so"};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        void *h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        sgemm_fn f;
        void *sym = dlsym(h, "cblas_sgemm");
        memcpy(&f, &sym, sizeof f);
        void (*set_threads)(int);
        sym = dlsym(h, "openblas_set_num_threads");
        memcpy(&set_threads, &sym, sizeof set_threads);
        char *(*config)(void);
        sym = dlsym(h, "openblas_get_config");
        memcpy(&config, &sym, sizeof config);
        if (!f) continue;
        if (set_threads) set_threads(1);
        snprintf(desc, desc_size, "%s (%s), 1 thread", libs[i], config ? config() : "?");
        return f;
    }
    snprintf(desc, desc_size, "OpenBLAS not found (apt-get install libopenblas0-pthread)");
    return NULL;
}

static double time_tile(const kern_table *t, sgemm_fn sgemm, const float *x, size_t xl, const float *c,
                        size_t cl, size_t n, float *out, int reps)
{
    double flops = 2.0 * (double)xl * (double)cl * (double)n, v[64];
    for (int r = 0; r < reps; r++) {
        int calls = 0;
        uint64_t t0 = cpu_ns();
        do {
            if (sgemm)
                sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)xl, (int)cl, (int)n, 1.0f, x, (int)n,
                      c, (int)n, 0.0f, out, (int)cl);
            else
                t->dot_f32_tile(x, xl, c, cl, n, out);
            calls++;
        } while (secs(t0) < 0.2);
        v[r] = flops * calls / secs(t0) * 1e-9;
        sink += (uint64_t)out[0];
    }
    return median(v, reps);
}

static void bench_tile(const kern_table *t, int reps)
{
    char desc[512];
    sgemm_fn sgemm = blas_open(desc, sizeof desc);
    double peak = fma_peak_gflops();
    printf("\nFMA peak (register-only FMA loop, 1 thread): %.1f GFLOP/s\nBLAS peer: %s\n\n", peak, desc);
    printf("| dot_f32_tile (%s) x_len x c_len x n | ours GFLOP/s | of FMA peak | OpenBLAS sgemm GFLOP/s | "
           "ours / "
           "OpenBLAS | max rel. diff |\n",
           t->name);
    printf("|---|---:|---:|---:|---:|---:|\n");
    static const size_t shapes[][3] = {{1024, 1024, 100},  {1024, 1024, 128}, {1024, 1024, 768},
                                       {1024, 1024, 1536}, {256, 4096, 768},  {6000, 64, 784}};
    s3v_rng rng;
    s3v_rng_seed(&rng, 7);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t xl = shapes[s][0], cl = shapes[s][1], n = shapes[s][2];
        float *x = malloc(xl * n * sizeof *x), *c = malloc(cl * n * sizeof *c);
        float *o1 = malloc(xl * cl * sizeof *o1), *o2 = malloc(xl * cl * sizeof *o2);
        if (!x || !c || !o1 || !o2) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < xl * n; i++) x[i] = (float)(s3v_rng_unit(&rng) * 2 - 1);
        for (size_t i = 0; i < cl * n; i++) c[i] = (float)(s3v_rng_unit(&rng) * 2 - 1);
        double ours = time_tile(t, NULL, x, xl, c, cl, n, o1, reps);
        double theirs = sgemm ? time_tile(t, sgemm, x, xl, c, cl, n, o2, reps) : 0;
        double diff = 0;
        if (sgemm)
            for (size_t i = 0; i < xl * cl; i++) {
                double d = fabs((double)o1[i] - o2[i]) / (fabs((double)o2[i]) + 1e-3 * sqrt((double)n));
                if (d > diff) diff = d;
            }
        printf("| %zu x %zu x %zu | %.1f | %.2f | ", xl, cl, n, ours, peak > 0 ? ours / peak : 0);
        if (sgemm)
            printf("%.1f | %.2f | %.1e |\n", theirs, ours / theirs, diff);
        else
            printf("- | - | - |\n");
        fflush(stdout);
        free(x);
        free(c);
        free(o1);
        free(o2);
    }
}

int main(int argc, char **argv)
{
    size_t mib = 1024;
    int reps = 9, do_scan = 1, do_tile = 1, only_dt = -1;
    const char *table = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--table") && i + 1 < argc)
            table = argv[++i];
        else if (!strcmp(argv[i], "--skip-scan"))
            do_scan = 0;
        else if (!strcmp(argv[i], "--skip-tile"))
            do_tile = 0;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            i++;
            for (int d = DT_F32; d <= DT_I8; d++)
                if (!strcmp(argv[i], DT_NAME[d])) only_dt = d;
            if (only_dt < 0) {
                fprintf(stderr, "--dtype is f32, f16 or i8\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: %s [--mib N] [--reps R] [--table scalar|avx2|neon] [--dtype f32|f16|i8] "
                    "[--skip-scan] "
                    "[--skip-tile]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 64 || mib < 16) {
        fprintf(stderr, "--reps must be 1..64 and --mib at least 16\n");
        return 2;
    }
    const kern_table *t = kern_avx2() ? kern_avx2() : kern_neon() ? kern_neon() : kern_scalar();
    if (table) {
        t = !strcmp(table, "scalar") ? kern_scalar()
            : !strcmp(table, "avx2") ? kern_avx2()
            : !strcmp(table, "neon") ? kern_neon()
                                     : NULL;
        if (!t) {
            fprintf(stderr, "table %s is not available here\n", table);
            return 2;
        }
    }
    printf("bench_kernels: table %s, 1 thread, %d passes per figure (median)\n\n", t->name, reps);
    if (do_scan) {
        size_t size = mib << 20;
        uint8_t *buf = aligned_alloc(4096, size);
        if (!buf) {
            fprintf(stderr, "cannot allocate %zu MiB\n", mib);
            return 1;
        }
        memset(buf, 1, size); /* fault every page in before timing */
        bench_scan(t, buf, size, reps, only_dt);
        free(buf);
        bench_scan_l2(t, reps, only_dt);
    }
    if (do_tile) bench_tile(t, reps);
    return 0;
}
