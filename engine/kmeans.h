/* engine/kmeans.h: k-means training and nearest-centroid assignment for the IVF builder.
 *
 * Training: on at most k * max_points_per_centroid points (a seeded uniform subset, 256 per centroid
 * by default, as FAISS), k-means++ initialisation on a smaller seeded subset (16 points per
 * centroid, at least 4096, at most 128 MiB), then Lloyd iterations whose assignment step uses the
 * dot_f32_tile kernel (distances as |x|^2 + |c|^2 - 2 x.c), multi-threaded over fixed-size chunks
 * whose partial sums (double) are merged in chunk order, so the result depends only on the input and
 * the seed, never on the thread count. Empty clusters are repaired by splitting a large cluster's
 * centroid (see kmeans.c). Deterministic under `seed`: same input, seed and options give the same
 * bits on any thread count (with the same kernel table; SIMD and scalar tables round differently).
 *
 * Metric: KMEANS_L2 assigns to the nearest centroid by squared euclidean distance; KMEANS_IP to the
 * largest inner product (used for cosine, where the data are unit vectors and `spherical`
 * renormalises centroids after each update, and for dot). Ties go to the lowest centroid index.
 * k-means++ seeds by squared euclidean distance for both metrics.
 *
 * Input: every vector (and, for kmeans_assign, every centroid) must have a finite squared norm;
 * NaN, infinity or values whose squares overflow are refused with S3V_ERR_INVALID before any output
 * is written.
 *
 * Threading: functions are re-entrant; each call starts and joins its own worker threads (if a
 * thread cannot be created the call goes on with fewer, with the same result).
 * Memory: the caller owns x and the output arrays; work buffers are freed before returning. Work
 * memory beyond the input, O(threads * k * dim + block): k * dim doubles of sums, the same again
 * per worker plus one (training uses fewer workers rather than pass 1 GiB of these), per worker a
 * 384 x min(k, 1024) float tile (1.5 MiB) and a 384-row block, 4 bytes per sampled point, and the
 * k-means++ subset (at most 16 * k rows and 128 MiB). */
#ifndef S3V_KMEANS_H
#define S3V_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef enum kmeans_metric { KMEANS_L2 = 0, KMEANS_IP = 1 } kmeans_metric;

typedef struct kmeans_opts {
    size_t k;      /* number of centroids, 1 <= k <= n */
    int niter;     /* Lloyd iterations (0 = 10, FAISS's IVF default) */
    uint64_t seed; /* same seed + same input = same centroids */
    int threads;   /* worker threads; 0 = online CPUs */
    kmeans_metric metric;
    int spherical; /* renormalise centroids to unit length after each update */
    /* Optional progress report after each iteration (objective = mean distance). May be NULL. */
    void (*progress)(void *arg, int iter, int niter, double objective);
    void *progress_arg;
    /* Train on at most k * max_points_per_centroid points, a seeded uniform subset of x
     * (0 = 256, FAISS's default; SIZE_MAX = always all n points). */
    size_t max_points_per_centroid;
} kmeans_opts;

/* Trains k centroids on the n x dim row-major points x. Writes k*dim floats to centroids, only on
 * success. opts->progress, when set, is called on the calling thread after each iteration with the
 * mean distance (metric's, see kmeans_assign) of the sample to the centroids of that iteration.
 * Errors: S3V_ERR_INVALID (NULL pointer, k = 0, k > n, dim = 0, niter or threads < 0, unknown
 * metric, a non-finite vector, n > UINT32_MAX), S3V_ERR_NOMEM. */
S3V_MUST_USE s3v_status kmeans_train(const float *x, size_t n, size_t dim, const kmeans_opts *opts,
                                     float *centroids);

/* For each of the n points, the index of its nearest centroid (by metric) into assign[n], and,
 * when dist is not NULL, its distance (L2: squared euclidean computed as |x|^2 + |c|^2 - 2 x.c and
 * clamped at 0, so within float rounding of |x|^2 + |c|^2; IP: negated inner product) into dist[n].
 * threads = 0 uses the online CPUs. n = 0 does nothing.
 * Errors: S3V_ERR_INVALID (NULL pointer, k = 0, dim = 0, k > UINT32_MAX, threads < 0, unknown
 * metric, a non-finite vector or centroid), S3V_ERR_NOMEM. */
S3V_MUST_USE s3v_status kmeans_assign(const float *x, size_t n, size_t dim, const float *centroids, size_t k,
                                      kmeans_metric metric, int threads, uint32_t *assign, float *dist);

/* Number of CPUs this process may run on (its affinity mask; else the online CPUs; at least 1). */
int kmeans_default_threads(void);

#endif
