/* engine/kmeans.h: k-means training and nearest-centroid assignment for the IVF builder.
 *
 * Training: k-means++ initialisation on a subsample, then Lloyd iterations whose assignment step
 * uses the dot_f32_tile kernel (distances as |x|^2 + |c|^2 - 2 x.c), multi-threaded over fixed-size
 * chunks whose partial sums are merged in chunk order, so the result depends only on the input and
 * the seed, never on the thread count. Empty clusters are repaired by splitting a large cluster's
 * centroid. Deterministic under `seed`.
 *
 * Metric: KMEANS_L2 assigns to the nearest centroid by squared euclidean distance; KMEANS_IP to the
 * largest inner product (used for cosine, where the data are unit vectors and `spherical`
 * renormalises centroids after each update, and for dot).
 *
 * Threading: functions are re-entrant; each call starts and joins its own worker threads.
 * Memory: the caller owns x and the output arrays; work buffers are freed before returning. */
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

/* Trains k centroids on the n x dim row-major points x. Writes k*dim floats to centroids.
 * Errors: S3V_ERR_INVALID (k = 0, k > n, dim = 0), S3V_ERR_NOMEM. */
S3V_MUST_USE s3v_status kmeans_train(const float *x, size_t n, size_t dim, const kmeans_opts *opts,
                                     float *centroids);

/* For each of the n points, the index of its nearest centroid (by metric) into assign[n], and,
 * when dist is not NULL, its distance (L2: squared euclidean; IP: negated inner product) into
 * dist[n]. threads = 0 uses the online CPUs. */
S3V_MUST_USE s3v_status kmeans_assign(const float *x, size_t n, size_t dim, const float *centroids, size_t k,
                                      kmeans_metric metric, int threads, uint32_t *assign, float *dist);

/* Number of online CPUs (at least 1). */
int kmeans_default_threads(void);

#endif
