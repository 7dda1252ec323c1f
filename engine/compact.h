/* engine/compact.h: compaction (folding the write-ahead log into a new generation) and garbage
 * collection of what older generations and folded log objects left behind (FORMAT.md "Compaction").
 *
 * One run:
 *  1. reads the manifest (and its etag E);
 *  2. garbage collection: deletes the retired generations and retired log ranges whose grace period is
 *     over, and orphaned generations (neither current nor retired, counter at most the current one: a
 *     crashed or beaten compactor's objects, which can never be committed); the manifest's etag is
 *     checked again right before deleting, and nothing is deleted when it changed; and the logs of ended
 *     incarnations (a DROP marker, engine/wal.h, older than its grace period);
 *  3. when the log holds anything from the manifest's start: opens the index with its tail (at most
 *     max_objects log objects), streams every live vector (generation minus what the tail overwrote or
 *     deleted, then the tail's puts) through the builder with the current centroids (assign only; split
 *     clusters that outgrew the factor; retrain when the index grew 2x since the last training, the mean
 *     assignment distance drifted by more than 20 %, or there were no centroids), writes a new
 *     generation and swaps the manifest with If-Match E: start = the slot after the last folded one,
 *     and the old generation and the folded slots retired (stamped at the commit);
 *  4. a compactor that loses the race (the manifest changed) deletes its new objects and, when attempts
 *     remain, starts again from the new manifest; it never overwrites.
 * When everything was deleted the new manifest is an empty index (nlist 0).
 *
 * Queries in flight during a swap finish on the generation they started with: its objects are retired,
 * not deleted, for the grace period (default 20 minutes, longer than a Lambda invocation can run).
 *
 * Storage is used from the calling thread; the builder's worker threads only compute. */
#ifndef S3V_COMPACT_H
#define S3V_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/storage.h"
#include "engine/build.h"
#include "engine/format.h"

typedef struct ivf_compact_opts {
    const char *tmp_dir;   /* the builder's spill files; NULL = /tmp */
    int threads;           /* 0: the CPUs this process may use */
    uint64_t seed;         /* k-means seed when retraining; 0: 1 */
    uint64_t deadline_ns;  /* 0: none */
    int attempts;          /* tries when the manifest changes underneath; 0: 2 */
    uint64_t max_objects;  /* log objects folded per run; 0: 100000 */
    size_t tail_max_bytes; /* memory for the folded log; 0: 4 GiB */
    int gc_only;           /* collect garbage, fold nothing */
    int no_gc;             /* fold, collect nothing */
    double max_cluster_factor, growth_factor, drift_factor; /* 0: the builder's defaults */
    int zstd_level;
    ivf_progress_fn progress;
    void *progress_arg;
} ivf_compact_opts;

typedef struct ivf_compact_report {
    int committed;     /* a new manifest was published */
    int lost_races;    /* commits that found the manifest changed */
    uint32_t attempts; /* runs of the fold (1 + retries) */
    char old_generation[IVF_NAME_MAX];
    char generation[IVF_NAME_MAX]; /* the generation in force at the end */
    uint64_t wal_from, wal_to;     /* slots folded (wal_to < wal_from: none) */
    uint64_t folded_objects, folded_records;
    uint64_t count_before, count_after;
    uint32_t nlist_before, nlist_after;
    uint32_t splits;
    int retrained;
    const char *retrain_reason; /* static string or NULL */
    /* garbage collection */
    uint32_t gc_generations; /* retired generations deleted */
    uint32_t gc_log_ranges;  /* retired log ranges deleted */
    uint32_t gc_orphans;     /* orphaned generations deleted */
    uint32_t gc_dead_logs;   /* logs of deleted or replaced incarnations deleted (grace period over) */
    uint64_t gc_objects;     /* objects deleted */
    uint32_t gc_pending;     /* retired entries still inside their grace period */
    double seconds_read, seconds_build, seconds_gc, seconds_total;
} ivf_compact_report;

/* Compacts and collects the index at prefix of st. A run that folds nothing and finds nothing to collect
 * is S3V_OK with committed = 0. Errors: S3V_ERR_NOT_FOUND (no index), S3V_ERR_CONFLICT (lost every
 * attempt: the next run retries), S3V_ERR_TIMEOUT, storage and builder errors; none of them leaves a
 * partial state (a new generation is deleted unless committed). report may be NULL. */
S3V_MUST_USE s3v_status ivf_compact(s3v_storage *st, const char *prefix, const ivf_compact_opts *opts,
                                    ivf_compact_report *report);

/* For a prefix with no index (DeleteIndex left only the logs): deletes the logs of ended incarnations whose
 * grace period is over; gc_dead_logs, gc_objects and gc_pending say what happened. */
S3V_MUST_USE s3v_status ivf_collect_dropped(s3v_storage *st, const char *prefix, uint64_t deadline_ns,
                                            ivf_compact_report *report);

#endif
