/* engine/build.h: the IVF builder (`s3vec build`, and the generation writer of compaction).
 *
 * Streams the input once into two spill files in tmp_dir (vectors as float32 rows; keys and metadata),
 * trains k-means on a random sample, assigns every vector to its nearest centroid with the SIMD
 * kernels, splits clusters larger than max_cluster_factor x the mean, writes the cluster blocks,
 * the key map and the centroids of a new generation, calibrates nprobe against exact search on a
 * sample, and commits by writing the manifest with a conditional put. Memory beyond the two memory-
 * mapped spill files is about 40 bytes per vector plus the training sample.
 *
 * Errors leave no manifest change; objects of an unpublished generation are deleted. The storage is
 * used from the calling thread only; worker threads only compute.
 *
 * A new index gets a random incarnation and an empty write-ahead log (start 0); --overwrite gives the
 * replacement a new incarnation too, so the replaced index's unfolded log is discarded with it.
 * Compaction (engine/compact.h) uses the same pipeline from another record source, with the current
 * centroids given (assign only; retrained when the data grew or drifted, see ivf_build_opts) and commits
 * over the manifest it read (If-Match its etag), keeping the incarnation. */
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

/* A stream of records: next() fills rec (valid until the next call) and sets *has, or sets *has = 0 at
 * the end. Records must be valid (finite, keys checked, metadata validated and minified), as vec_reader
 * produces them. */
typedef struct ivf_source {
    s3v_status (*next)(void *arg, vec_record *rec, int *has);
    void *arg;
    uint32_t dim;
    uint64_t count_hint; /* 0 when unknown */
} ivf_source;

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
    uint32_t grace_seconds; /* a new index's grace period for retired objects; 0: IVF_GRACE_DEFAULT_S */
    uint64_t deadline_ns;   /* 0 or S3V_NO_DEADLINE: none; otherwise S3V_ERR_TIMEOUT past it */
    /* Compaction: commit over `base` (read with etag `base_etag`): same incarnation, creation time, grace
     * and non-filterable keys; the log start and retired list below; the old generation is left for the
     * garbage collector. NULL for a build. */
    const ivf_manifest *base;
    const char *base_etag;
    uint64_t wal_start;
    const ivf_retired *retired;
    size_t retired_len;
    /* Compaction with centroids: assign to these (centroids_len x dim) instead of training, unless the
     * index grew to growth_factor x trained_count vectors (0: 2.0), or the mean assignment distance passed
     * drift_factor x trained_mean_distance (0: 1.2; euclidean and cosine only), or trained_count is 0
     * and force_retrain is set. */
    const float *centroids;
    uint32_t centroids_len;
    uint64_t trained_count;
    double trained_mean_distance;
    double growth_factor, drift_factor;
    int force_retrain;
    /* i8: keep this quantizer (dim offsets, scale) instead of fitting one, so the generation's codes
     * decode and re-encode to themselves; NULL: fit on the input */
    const float *q_offset;
    float q_scale;
} ivf_build_opts;

typedef struct ivf_build_report {
    uint64_t count;
    uint32_t dim;
    uint32_t nlist;
    uint32_t splits;            /* clusters split for size */
    int retrained;              /* k-means ran (always for a build; for a compaction only when triggered) */
    const char *retrain_reason; /* "new", "growth", "drift", "forced" or NULL */
    double mean_distance;       /* mean assignment distance (euclidean: |x - c|; cosine: 1 - cos) */
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
 * S3V_ERR_CONFLICT when the index exists and !overwrite (or, with opts->base, when the manifest changed
 * since it was read: nothing was published). report may be NULL. */
S3V_MUST_USE s3v_status ivf_build(s3v_storage *st, const char *prefix, vec_reader *in,
                                  const ivf_build_opts *opts, ivf_build_report *report);
/* The same from any record source. An empty source is S3V_ERR_INVALID. */
S3V_MUST_USE s3v_status ivf_build_from(s3v_storage *st, const char *prefix, const ivf_source *in,
                                       const ivf_build_opts *opts, ivf_build_report *report);

/* Writes a new empty index (nlist 0, no generation objects) with If-None-Match: CreateIndex.
 * S3V_ERR_CONFLICT when an index exists. non_filterable as in ivf_build_opts; grace 0 = default. */
S3V_MUST_USE s3v_status ivf_create_empty(s3v_storage *st, const char *prefix, uint32_t dim, ivf_metric metric,
                                         ivf_encoding encoding, const char *const *non_filterable,
                                         size_t non_filterable_len, uint32_t grace_seconds,
                                         uint64_t deadline_ns, ivf_manifest *out);

/* A fresh random generation name with the given counter (g<counter>-<random>), and a random incarnation. */
void ivf_generation_new(uint32_t counter, char out[IVF_NAME_MAX]);
uint64_t ivf_incarnation_new(void);

#endif
