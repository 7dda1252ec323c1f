/* engine/build.h: the offline IVF builder (`s3vec build`).
 *
 * Streams the input once into two spill files in tmp_dir (vectors as float32 rows; keys and metadata),
 * trains k-means on a random sample, assigns every vector to its nearest centroid with the SIMD
 * kernels, splits clusters larger than max_cluster_factor x the mean, writes the cluster blocks,
 * the key map and the centroids of a new generation, calibrates nprobe against exact search on a
 * sample, and commits by writing the manifest with a conditional put. Memory beyond the two memory-
 * mapped spill files is about 40 bytes per vector plus the training sample.
 *
 * Errors leave no manifest change; objects of an unpublished generation are deleted. The storage is
 * used from the calling thread only; worker threads only compute. */
#ifndef S3V_BUILD_H
#define S3V_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/storage.h"
#include "engine/format.h"
#include "engine/input.h"

/* phase is one of "read", "train", "assign", "split", "write", "calibrate", "upload". */
typedef void (*ivf_progress_fn)(void *arg, const char *phase, uint64_t done, uint64_t total);

typedef struct ivf_build_opts {
    ivf_metric metric;
    ivf_encoding encoding;
    uint32_t nlist; /* 0: round(sqrt(count)), at most count / 39 (see ivf_default_nlist) */
    int niter;      /* k-means iterations; 0: 10 */
    uint64_t seed;
    int threads;                       /* 0: online CPUs */
    double max_cluster_factor;         /* 0: 4.0; clusters above factor x mean size are split */
    int zstd_level;                    /* keys/metadata compression: 0 = default (3), < 0 = off */
    const char *tmp_dir;               /* spill and staging files; NULL = "/tmp" */
    const char *const *non_filterable; /* metadata keys filters may not use */
    size_t non_filterable_len;
    int overwrite;          /* replace an existing index (new generation, old one deleted) */
    uint32_t calib_queries; /* 0: 200 (fewer for very large inputs) */
    ivf_progress_fn progress;
    void *progress_arg;
} ivf_build_opts;

typedef struct ivf_build_report {
    uint64_t count;
    uint32_t dim;
    uint32_t nlist;
    uint32_t splits; /* clusters split for size */
    uint32_t min_cluster;
    uint32_t max_cluster;
    uint32_t default_nprobe;
    float default_recall; /* calibrated recall@10 at default_nprobe */
    uint64_t train_points;
    uint64_t vector_bytes;      /* vector sections */
    uint64_t rest_raw_bytes;    /* keys + metadata before compression */
    uint64_t rest_stored_bytes; /* after */
    uint64_t total_bytes;       /* all objects written */
    double seconds_read, seconds_train, seconds_assign, seconds_write, seconds_calibrate, seconds_upload,
        seconds_total;
    char generation[IVF_NAME_MAX];
} ivf_build_report;

/* The documented default number of clusters for `count` vectors. */
uint32_t ivf_default_nlist(uint64_t count);

/* Builds the index at `prefix` (a key prefix in st, "" for the root) from `in`.
 * S3V_ERR_CONFLICT when the index exists and !overwrite. report may be NULL. */
S3V_MUST_USE s3v_status ivf_build(s3v_storage *st, const char *prefix, vec_reader *in,
                                  const ivf_build_opts *opts, ivf_build_report *report);

#endif
