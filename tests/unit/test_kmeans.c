/* tests/unit/test_kmeans.c: k-means training and assignment (engine/kmeans.h).
 *
 * Synthetic data only, made here with a fixed seed: Gaussian blobs with known centres (training must
 * find them and assignment must reproduce the generating labels), uniform random points (assignment
 * against a brute-force double-precision argmin; determinism across thread counts), and duplicated
 * points (empty-cluster repair). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/rng.h"
#include "engine/kernels.h"
#include "engine/kmeans.h"
#include "testutil.h"

static double gauss(s3v_rng *r)
{
    double u = s3v_rng_unit(r), v = s3v_rng_unit(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static void normalise_rows(float *x, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (size_t j = 0; j < dim; j++) ss += (double)x[i * dim + j] * x[i * dim + j];
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (float)(x[i * dim + j] / sqrt(ss));
    }
}

static double l2sq_d(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t j = 0; j < dim; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

static double dot_d(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t j = 0; j < dim; j++) s += (double)a[j] * b[j];
    return s;
}

/* blobs: `nb` centres with coordinates uniform in [-10, 10) (at least 4 apart), `per` points each
 * with N(0, sigma^2) noise; points are interleaved (point i belongs to blob i % nb). */
typedef struct blobs {
    size_t nb, per, n, dim;
    float *centre, *x;
    uint32_t *label;
} blobs;

static int blobs_make(blobs *b, size_t nb, size_t per, size_t dim, double sigma, uint64_t seed, int unit)
{
    s3v_rng r;
    s3v_rng_seed(&r, seed);
    b->nb = nb;
    b->per = per;
    b->n = nb * per;
    b->dim = dim;
    b->centre = malloc(nb * dim * sizeof(float));
    b->x = malloc(b->n * dim * sizeof(float));
    b->label = malloc(b->n * sizeof(uint32_t));
    if (!b->centre || !b->x || !b->label) return -1;
    for (size_t c = 0; c < nb; c++) {
        for (;;) {
            for (size_t j = 0; j < dim; j++) b->centre[c * dim + j] = (float)(20.0 * s3v_rng_unit(&r) - 10.0);
            if (unit) normalise_rows(b->centre + c * dim, 1, dim);
            double need = unit ? 0.5 : 16.0; /* squared separation */
            int ok = 1;
            for (size_t o = 0; o < c; o++)
                if (l2sq_d(b->centre + c * dim, b->centre + o * dim, dim) < need) ok = 0;
            if (ok) break;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        size_t c = i % nb;
        b->label[i] = (uint32_t)c;
        for (size_t j = 0; j < dim; j++)
            b->x[i * dim + j] = (float)(b->centre[c * dim + j] + sigma * gauss(&r));
    }
    if (unit) normalise_rows(b->x, b->n, dim);
    return 0;
}

static void blobs_free(blobs *b)
{
    free(b->centre);
    free(b->x);
    free(b->label);
}

static float *random_points(size_t n, size_t dim, uint64_t seed)
{
    s3v_rng r;
    s3v_rng_seed(&r, seed);
    float *x = malloc(n * dim * sizeof(float));
    if (!x) return NULL;
    for (size_t i = 0; i < n * dim; i++) x[i] = (float)(2.0 * s3v_rng_unit(&r) - 1.0);
    return x;
}

typedef struct progress_log {
    int calls, last_iter, niter;
    double obj[64];
} progress_log;

static void progress_cb(void *arg, int iter, int niter, double objective)
{
    progress_log *p = arg;
    if (p->calls < 64) p->obj[p->calls] = objective;
    p->calls++;
    p->last_iter = iter;
    p->niter = niter;
}

/* Training on separated blobs finds every centre, and assignment reproduces the labels. */
static void test_blobs(kmeans_metric metric, int unit, uint64_t seed)
{
    const size_t nb = 12, per = 300, dim = 24;
    const double sigma = unit ? 0.005 : 0.3;
    blobs b;
    REQUIRE(blobs_make(&b, nb, per, dim, sigma, 1000 + seed, unit) == 0, "alloc");
    float *cent = malloc(nb * dim * sizeof(float));
    uint32_t *assign = malloc(b.n * sizeof(uint32_t));
    float *dist = malloc(b.n * sizeof(float));
    REQUIRE(cent && assign && dist, "alloc");

    progress_log pl = {0};
    kmeans_opts o = {.k = nb,
                     .niter = 15,
                     .seed = seed,
                     .threads = 2,
                     .metric = metric,
                     .spherical = unit,
                     .progress = progress_cb,
                     .progress_arg = &pl,
                     .max_points_per_centroid = SIZE_MAX}; /* train on all points */
    s3v_status st = kmeans_train(b.x, b.n, dim, &o, cent);
    REQUIRE(st == S3V_OK, "train: %s", s3v_errmsg(st));
    CHECK(pl.calls == 15 && pl.last_iter == 15 && pl.niter == 15, "progress called %d times", pl.calls);

    /* each true centre has a trained centroid near it; the map centre -> centroid is a bijection */
    uint32_t map[16];
    int used[16] = {0};
    /* the mean of `per` points is within a few sigma * sqrt(dim / per) of the centre */
    double tol = unit ? 0.01 : 0.2;
    for (size_t c = 0; c < nb; c++) {
        double bd = INFINITY;
        for (size_t j = 0; j < nb; j++) {
            double d = sqrt(l2sq_d(b.centre + c * dim, cent + j * dim, dim));
            if (d < bd) {
                bd = d;
                map[c] = (uint32_t)j;
            }
        }
        /* unit blobs: the generating centre was normalised before noise, compare directions */
        CHECK(bd < tol, "metric %d seed %llu: centre %zu nearest centroid at %g", (int)metric,
              (unsigned long long)seed, c, bd);
        used[map[c]]++;
    }
    for (size_t j = 0; j < nb; j++) CHECK(used[j] == 1, "centroid %zu is nearest to %d centres", j, used[j]);

    st = kmeans_assign(b.x, b.n, dim, cent, nb, metric, 3, assign, dist);
    REQUIRE(st == S3V_OK, "assign: %s", s3v_errmsg(st));
    size_t wrong = 0;
    for (size_t i = 0; i < b.n; i++) wrong += assign[i] != map[b.label[i]];
    CHECK(wrong == 0, "metric %d seed %llu: %zu of %zu points not in their blob's cluster", (int)metric,
          (unsigned long long)seed, wrong, b.n);

    /* the progress objective is the mean distance of the training points (all of them here) */
    double mean = 0;
    for (size_t i = 0; i < b.n; i++) mean += dist[i];
    mean /= (double)b.n;
    if (metric == KMEANS_L2) {
        /* expected mean squared distance of a point to its blob's mean: about dim * sigma^2 */
        CHECK(mean > 0.8 * dim * sigma * sigma && mean < 1.2 * dim * sigma * sigma, "L2 objective %g", mean);
        for (int i = 1; i < pl.calls && i < 64; i++)
            CHECK(pl.obj[i] <= pl.obj[i - 1] * (1 + 1e-6), "objective rose at iteration %d: %g -> %g", i + 1,
                  pl.obj[i - 1], pl.obj[i]);
        /* the last update can only lower it, and at convergence it hardly moves */
        double last = pl.obj[pl.calls - 1];
        CHECK(mean <= last * (1 + 1e-6) && mean >= last * (1 - 1e-3), "last progress objective %g, final %g",
              last, mean);
    } else {
        CHECK(mean < -0.9 && mean >= -1.0001, "IP objective %g (unit data, tight blobs)", mean);
    }
    if (unit) {
        for (size_t j = 0; j < nb; j++) {
            double nrm = sqrt(dot_d(cent + j * dim, cent + j * dim, dim));
            CHECK(fabs(nrm - 1.0) < 1e-5, "spherical centroid %zu has norm %.8f", j, nrm);
        }
    }
    free(cent);
    free(assign);
    free(dist);
    blobs_free(&b);
}

/* kmeans_assign equals a double-precision brute-force argmin (ties aside), for both metrics; its
 * distances are the metric's; threads do not change the result. */
static void test_assign_brute(kmeans_metric metric)
{
    const size_t n = 1500, k = 37, dim = 17;
    float *x = random_points(n, dim, 7);
    float *c = random_points(k, dim, 8);
    uint32_t *a1 = malloc(n * sizeof(uint32_t)), *a3 = malloc(n * sizeof(uint32_t));
    float *d1 = malloc(n * sizeof(float)), *d3 = malloc(n * sizeof(float));
    REQUIRE(x && c && a1 && a3 && d1 && d3, "alloc");
    s3v_status st = kmeans_assign(x, n, dim, c, k, metric, 1, a1, d1);
    REQUIRE(st == S3V_OK, "assign: %s", s3v_errmsg(st));
    st = kmeans_assign(x, n, dim, c, k, metric, 3, a3, NULL);
    REQUIRE(st == S3V_OK, "assign: %s", s3v_errmsg(st));
    CHECK(memcmp(a1, a3, n * sizeof(uint32_t)) == 0, "assignment depends on threads");

    size_t exact = 0, bad = 0, bad_dist = 0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        double best = INFINITY, mine = NAN;
        size_t bj = 0;
        for (size_t j = 0; j < k; j++) {
            double d = metric == KMEANS_L2 ? l2sq_d(xi, c + j * dim, dim) : -dot_d(xi, c + j * dim, dim);
            if (d < best) {
                best = d;
                bj = j;
            }
            if (j == a1[i]) mine = d;
        }
        exact += bj == a1[i];
        /* a different choice is accepted only when it is as near up to float rounding */
        if (a1[i] >= k || !(mine - best <= 1e-5 * (1 + fabs(best)))) bad++;
        if (!(fabs(d1[i] - mine) <= 1e-4 * (1 + fabs(mine)))) bad_dist++;
    }
    CHECK(bad == 0, "metric %d: %zu points assigned to a centroid that is not the nearest", (int)metric, bad);
    CHECK(exact >= n - n / 100, "metric %d: only %zu of %zu equal to the brute-force argmin", (int)metric,
          exact, n);
    CHECK(bad_dist == 0, "metric %d: %zu distances differ from the brute-force ones", (int)metric, bad_dist);
    free(x);
    free(c);
    free(a1);
    free(a3);
    free(d1);
    free(d3);
}

/* Same seed, same input: the same bits for 1, 2 and 5 threads (sampling, k-means++ and Lloyd all run
 * over several chunks here); another seed gives other centroids. This catches sampling, seeding or
 * chunking that depends on the thread count, and races in the merge of the partial sums. */
static void test_determinism(kmeans_metric metric, int spherical)
{
    const size_t n = 40000, k = 64, dim = 8; /* sample 64 * 512 = 32768 of 40000: 11 Lloyd chunks */
    float *x = random_points(n, dim, 11);
    REQUIRE(x != NULL, "alloc");
    if (spherical) normalise_rows(x, n, dim);
    float *c[4];
    int threads[4] = {1, 2, 5, 2};
    uint64_t seeds[4] = {42, 42, 42, 43};
    for (int t = 0; t < 4; t++) {
        c[t] = malloc(k * dim * sizeof(float));
        REQUIRE(c[t] != NULL, "alloc");
        kmeans_opts o = {.k = k,
                         .niter = 6,
                         .seed = seeds[t],
                         .threads = threads[t],
                         .metric = metric,
                         .spherical = spherical,
                         .max_points_per_centroid = 512};
        s3v_status st = kmeans_train(x, n, dim, &o, c[t]);
        REQUIRE(st == S3V_OK, "train: %s", s3v_errmsg(st));
    }
    CHECK(memcmp(c[0], c[1], k * dim * sizeof(float)) == 0, "metric %d: 1 vs 2 threads differ", (int)metric);
    CHECK(memcmp(c[0], c[2], k * dim * sizeof(float)) == 0, "metric %d: 1 vs 5 threads differ", (int)metric);
    CHECK(memcmp(c[1], c[3], k * dim * sizeof(float)) != 0,
          "metric %d: seeds 42 and 43 give the same centroids", (int)metric);
    for (int t = 0; t < 4; t++) free(c[t]);
    free(x);
}

/* Counts centroids with members after assigning x; checks that all centroids are finite. */
static size_t nonempty_clusters(const float *x, size_t n, size_t dim, const float *cent, size_t k,
                                int *finite)
{
    uint32_t *a = malloc(n * sizeof(uint32_t));
    size_t *cnt = calloc(k, sizeof(size_t));
    size_t ne = 0;
    *finite = 1;
    for (size_t i = 0; i < k * dim; i++)
        if (!isfinite(cent[i])) *finite = 0;
    if (a && cnt && *finite && kmeans_assign(x, n, dim, cent, k, KMEANS_L2, 2, a, NULL) == S3V_OK) {
        for (size_t i = 0; i < n; i++) cnt[a[i]]++;
        for (size_t j = 0; j < k; j++) ne += cnt[j] > 0;
    }
    free(a);
    free(cnt);
    return ne;
}

/* Empty clusters: the data is mostly copies of one point A, plus `distinct` other points, so
 * k-means++ on its subset (4096 of 20000 points) sees few of the others and fills the remaining
 * centroids with copies of A. Repair must end with every centroid owning a point when there are at
 * least k distinct points, with as many as there are distinct points otherwise, and never a NaN. */
static void test_empty_repair(size_t distinct, size_t k, uint64_t seed)
{
    const size_t n = 20000, dim = 6;
    s3v_rng r;
    s3v_rng_seed(&r, 500 + seed);
    float *x = malloc(n * dim * sizeof(float)), *cent = malloc(k * dim * sizeof(float));
    REQUIRE(x && cent, "alloc");
    for (size_t j = 0; j < dim; j++) x[j] = (float)gauss(&r);
    for (size_t i = 1; i < n; i++) memcpy(x + i * dim, x, dim * sizeof(float));
    for (size_t d = 0; d < distinct; d++) { /* spread over the data, away from A */
        size_t i = 1 + (d * 7919) % (n - 1);
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (float)(5.0 + gauss(&r));
    }
    kmeans_opts o = {.k = k, .seed = seed, .threads = 2, .max_points_per_centroid = SIZE_MAX};
    s3v_status st = kmeans_train(x, n, dim, &o, cent);
    REQUIRE(st == S3V_OK, "train: %s", s3v_errmsg(st));
    int finite;
    size_t ne = nonempty_clusters(x, n, dim, cent, k, &finite);
    size_t want = distinct + 1 < k ? distinct + 1 : k;
    CHECK(finite, "distinct %zu, k %zu, seed %llu: a centroid is not finite", distinct, k,
          (unsigned long long)seed);
    CHECK(ne == want, "distinct %zu, k %zu, seed %llu: %zu non-empty clusters, want %zu", distinct, k,
          (unsigned long long)seed, ne, want);
    free(x);
    free(cent);
}

/* k close to n with duplicates: 40 points, 25 distinct values; k = 30 leaves 5 centroids without a
 * point (cannot be helped), k = 20 must use every centroid. */
static void test_duplicates_small(void)
{
    const size_t n = 40, dim = 3;
    s3v_rng r;
    s3v_rng_seed(&r, 77);
    float x[40 * 3], cent[30 * 3];
    for (size_t i = 0; i < 25; i++)
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (float)gauss(&r);
    for (size_t i = 25; i < n; i++) memcpy(x + i * dim, x + (i % 7) * dim, dim * sizeof(float));
    size_t ks[2] = {30, 20}, want[2] = {25, 20};
    for (int t = 0; t < 2; t++) {
        kmeans_opts o = {.k = ks[t], .seed = 5, .threads = 1};
        s3v_status st = kmeans_train(x, n, dim, &o, cent);
        REQUIRE(st == S3V_OK, "train: %s", s3v_errmsg(st));
        int finite;
        size_t ne = nonempty_clusters(x, n, dim, cent, ks[t], &finite);
        CHECK(finite, "k %zu: non-finite centroid", ks[t]);
        CHECK(ne == want[t], "k %zu: %zu non-empty clusters, want %zu", ks[t], ne, want[t]);
    }
}

/* k = n: every point is a centroid; k = 1: the centroid is the mean. */
static void test_edges(void)
{
    const size_t n = 50, dim = 5;
    float *x = random_points(n, dim, 3), cent[50 * 5];
    REQUIRE(x != NULL, "alloc");
    kmeans_opts o = {.k = n, .seed = 1};
    REQUIRE(kmeans_train(x, n, dim, &o, cent) == S3V_OK, "train k = n");
    int finite;
    CHECK(nonempty_clusters(x, n, dim, cent, n, &finite) == n && finite, "k = n: not one point per centroid");
    o.k = 1;
    REQUIRE(kmeans_train(x, n, dim, &o, cent) == S3V_OK, "train k = 1");
    for (size_t j = 0; j < dim; j++) {
        double m = 0;
        for (size_t i = 0; i < n; i++) m += x[i * dim + j];
        m /= (double)n;
        CHECK(fabs(cent[j] - m) < 1e-6, "k = 1: coordinate %zu is %g, mean %g", j, cent[j], m);
    }
    free(x);
}

static void test_invalid(void)
{
    const size_t n = 20, dim = 4;
    float *x = random_points(n, dim, 9), cent[8 * 4];
    uint32_t a[20];
    REQUIRE(x != NULL, "alloc");
    kmeans_opts good = {.k = 4, .seed = 1};
    kmeans_opts o;
    CHECK(kmeans_train(NULL, n, dim, &good, cent) == S3V_ERR_INVALID, "NULL x");
    CHECK(kmeans_train(x, n, dim, NULL, cent) == S3V_ERR_INVALID, "NULL opts");
    CHECK(kmeans_train(x, n, dim, &good, NULL) == S3V_ERR_INVALID, "NULL centroids");
    CHECK(kmeans_train(x, n, 0, &good, cent) == S3V_ERR_INVALID, "dim 0");
    CHECK(kmeans_train(x, 0, dim, &good, cent) == S3V_ERR_INVALID, "n 0");
    o = good;
    o.k = 0;
    CHECK(kmeans_train(x, n, dim, &o, cent) == S3V_ERR_INVALID, "k 0");
    o.k = n + 1;
    CHECK(kmeans_train(x, n, dim, &o, cent) == S3V_ERR_INVALID, "k > n");
    o = good;
    o.niter = -1;
    CHECK(kmeans_train(x, n, dim, &o, cent) == S3V_ERR_INVALID, "niter < 0");
    o = good;
    o.threads = -2;
    CHECK(kmeans_train(x, n, dim, &o, cent) == S3V_ERR_INVALID, "threads < 0");
    o = good;
    o.metric = (kmeans_metric)7;
    CHECK(kmeans_train(x, n, dim, &o, cent) == S3V_ERR_INVALID, "bad metric");

    /* a non-finite input is refused and the output is left alone */
    for (size_t i = 0; i < 8 * 4; i++) cent[i] = 123.0f;
    x[5 * dim + 2] = NAN;
    CHECK(kmeans_train(x, n, dim, &good, cent) == S3V_ERR_INVALID, "NaN input");
    x[5 * dim + 2] = INFINITY;
    CHECK(kmeans_train(x, n, dim, &good, cent) == S3V_ERR_INVALID, "infinite input");
    x[5 * dim + 2] = 3e30f; /* its square overflows */
    CHECK(kmeans_train(x, n, dim, &good, cent) == S3V_ERR_INVALID, "overflowing input");
    int untouched = 1;
    for (size_t i = 0; i < 8 * 4; i++) untouched &= cent[i] == 123.0f;
    CHECK(untouched, "centroids written on failure");
    x[5 * dim + 2] = 0.5f;

    REQUIRE(kmeans_train(x, n, dim, &good, cent) == S3V_OK, "train");
    CHECK(kmeans_assign(NULL, n, dim, cent, 4, KMEANS_L2, 1, a, NULL) == S3V_ERR_INVALID, "assign NULL x");
    CHECK(kmeans_assign(x, n, dim, NULL, 4, KMEANS_L2, 1, a, NULL) == S3V_ERR_INVALID, "assign NULL c");
    CHECK(kmeans_assign(x, n, dim, cent, 4, KMEANS_L2, 1, NULL, NULL) == S3V_ERR_INVALID, "assign NULL out");
    CHECK(kmeans_assign(x, n, dim, cent, 0, KMEANS_L2, 1, a, NULL) == S3V_ERR_INVALID, "assign k 0");
    CHECK(kmeans_assign(x, n, 0, cent, 4, KMEANS_L2, 1, a, NULL) == S3V_ERR_INVALID, "assign dim 0");
    CHECK(kmeans_assign(x, n, dim, cent, 4, (kmeans_metric)3, 1, a, NULL) == S3V_ERR_INVALID,
          "assign metric");
    CHECK(kmeans_assign(x, n, dim, cent, 4, KMEANS_L2, -1, a, NULL) == S3V_ERR_INVALID, "assign threads");
    CHECK(kmeans_assign(x, 0, dim, cent, 4, KMEANS_L2, 1, a, NULL) == S3V_OK, "assign n 0");
    cent[1] = NAN;
    CHECK(kmeans_assign(x, n, dim, cent, 4, KMEANS_L2, 1, a, NULL) == S3V_ERR_INVALID, "assign NaN centroid");
    free(x);
}

int main(void)
{
    kern_init(0);
    for (uint64_t seed = 1; seed <= 3; seed++) test_blobs(KMEANS_L2, 0, seed);
    for (uint64_t seed = 1; seed <= 2; seed++) test_blobs(KMEANS_IP, 1, seed);
    test_assign_brute(KMEANS_L2);
    test_assign_brute(KMEANS_IP);
    test_determinism(KMEANS_L2, 0);
    test_determinism(KMEANS_IP, 1);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        test_empty_repair(10, 8, seed);
        test_empty_repair(3, 8, seed);
    }
    test_duplicates_small();
    test_edges();
    test_invalid();
    return TEST_SUMMARY();
}
