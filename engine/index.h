/* engine/index.h: an opened index generation (manifest + centroids kept in memory: the warm state)
 * with its unindexed tail (engine/tail.h: the log records not yet folded in, so every acknowledged
 * write is read at once), and the three read paths: search (QueryVectors), get by key (GetVectors),
 * list (ListVectors), each answering over generation + tail (a key's latest record in the tail wins;
 * deleted keys are gone).
 *
 * A query probes the nprobe nearest centroids, fetches the missing clusters with one parallel ranged
 * read (each range verified by its CRC before use, and retried once when the bytes are corrupt), scans
 * them with the SIMD kernels as each arrives, and keeps the top k with a heap. With a filter, vectors
 * are tested only when their distance would enter the heap, and further clusters are probed in
 * rounds until k matches are found or every cluster has been scanned.
 *
 * Ownership: the index borrows the storage and the cache (both must outlive it). Results own their
 * memory (ivf_result_free). An index and its cache are used by one thread at a time. */
#ifndef S3V_INDEX_H
#define S3V_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"
#include "common/storage.h"
#include "engine/cache.h"
#include "engine/filter.h"
#include "engine/format.h"

typedef struct ivf_index ivf_index;
typedef struct ivf_tail ivf_tail; /* engine/tail.h */

/* Reads just the manifest of the index at prefix (etag may be NULL). S3V_ERR_NOT_FOUND when there is
 * none; a corrupt manifest is S3V_ERR_CORRUPT naming it. */
S3V_MUST_USE s3v_status ivf_manifest_load(s3v_storage *st, const char *prefix, uint64_t deadline_ns,
                                          ivf_manifest *out, char *etag);

/* DeleteIndex: appends a DROP marker to the index's log (engine/wal.h: readers that have the index open
 * notice at their next read), deletes the manifest (the commit point: from then on the index does not
 * exist, and writers in flight fail their acknowledgement), then every object under the index's prefix
 * except the logs, which the garbage collector deletes after their grace period (ivf_compact, or
 * ivf_collect_dropped for a name that is not re-used). S3V_ERR_NOT_FOUND when there is no manifest. */
S3V_MUST_USE s3v_status ivf_drop(s3v_storage *st, const char *prefix, uint64_t deadline_ns);

/* Reads the manifest and the centroids object of the index at `prefix` in st, and the log from the
 * manifest's start (one listing, then the objects in parallel) into the tail.
 * S3V_ERR_NOT_FOUND when there is no manifest; S3V_ERR_CORRUPT / _UNSUPPORTED with the object's name;
 * S3V_ERR_TOO_LARGE when the tail would pass its memory cap (run compaction). An empty index (nlist 0)
 * opens with no centroids: every read is answered from the tail. */
S3V_MUST_USE s3v_status ivf_index_open(s3v_storage *st, const char *prefix, cluster_cache *cache,
                                       uint64_t deadline_ns, ivf_index **out);

typedef struct ivf_open_opts {
    size_t tail_max_bytes;   /* 0: IVF_TAIL_DEFAULT_MAX_BYTES */
    int no_tail;             /* 1: do not read the log (tools that look at the generation alone) */
    uint64_t tail_max_slots; /* 0: the whole log; else at most this many log objects (compaction) */
} ivf_open_opts;

S3V_MUST_USE s3v_status ivf_index_open_ex(s3v_storage *st, const char *prefix, cluster_cache *cache,
                                          const ivf_open_opts *opts, uint64_t deadline_ns, ivf_index **out);
void ivf_index_close(ivf_index *ix);

typedef struct ivf_refresh_info {
    uint32_t requests;    /* storage requests made */
    uint32_t objects;     /* log objects read and applied */
    int manifest_checked; /* the manifest was re-read (its copy was older than a quarter grace period) */
} ivf_refresh_info;

/* Read-your-writes: reads the log objects written since the last refresh (one GET of the next slot
 * when nothing is new) and applies them. A manifest read longer ago than a quarter of the index's grace
 * period is read again first, since log objects below a newer start may be garbage-collected after the
 * grace period; when it names another generation or incarnation, *reopen = 1 and nothing else is done
 * (the caller opens the index again). info may be NULL. */
S3V_MUST_USE s3v_status ivf_index_refresh(ivf_index *ix, uint64_t deadline_ns, int *reopen,
                                          ivf_refresh_info *info);

/* The same refresh in two halves, so that its one GET can overlap a read (handler/registry.c does it
 * from another thread with its own storage handle, while this thread searches):
 * ivf_index_next_log_key() returns 1 and writes the storage key of the next log slot and its number
 * when that GET is all ivf_index_refresh() would do now (no manifest re-read due); else 0 (call
 * ivf_index_refresh() instead). ivf_index_refresh_from() then completes the refresh with that GET's
 * outcome: `got` its status (S3V_ERR_NOT_FOUND: the slot is free, nothing is new), bytes/size its body
 * (malloc'd, taken over, freed here; NULL when got is not S3V_OK). It applies the object, reads any
 * later slots itself, and reports as ivf_index_refresh() does; info->objects > 0 or *reopen means reads
 * made before it may have missed writes. If the tail moved meanwhile it falls back to a full refresh. */
int ivf_index_next_log_key(const ivf_index *ix, char *key, size_t cap, uint64_t *seq);
S3V_MUST_USE s3v_status ivf_index_refresh_from(ivf_index *ix, uint64_t seq, s3v_status got, uint8_t *bytes,
                                               size_t size, uint64_t deadline_ns, int *reopen,
                                               ivf_refresh_info *info);

/* The tail (never NULL once open, unless opened with no_tail). */
const ivf_tail *ivf_index_tail(const ivf_index *ix);

const ivf_manifest *ivf_index_manifest(const ivf_index *ix);
const ivf_centroids *ivf_index_centroids(const ivf_index *ix);
/* Bytes of memory held by the warm state (centroids, directories). */
size_t ivf_index_memory(const ivf_index *ix);

/* Re-reads the manifest; *changed = 1 when it names another generation or incarnation than this index
 * (the caller then opens the index again). */
S3V_MUST_USE s3v_status ivf_index_check_fresh(ivf_index *ix, uint64_t deadline_ns, int *changed);

/* Probe count for a recall target in (0, 1]: the smallest calibrated nprobe meeting it (nlist if none). */
uint32_t ivf_index_nprobe_for_recall(const ivf_index *ix, float recall);

#define IVF_TOPK_MAX 10000

typedef struct ivf_query {
    const float *vector;
    uint32_t dim;
    uint32_t topk;            /* 1..IVF_TOPK_MAX */
    uint32_t nprobe;          /* 0: from recall_target, else the index default */
    float recall_target;      /* 0: none */
    int exact;                /* scan every cluster */
    const s3v_filter *filter; /* NULL: none */
    int want_metadata;
    int want_data;
    uint64_t deadline_ns;
} ivf_query;

typedef struct ivf_hit {
    const uint8_t *key;
    size_t key_len;
    float distance;
    const uint8_t *meta; /* NULL when not asked for or absent */
    size_t meta_len;
    const float *data; /* dim floats when asked for, else NULL */
} ivf_hit;

typedef struct ivf_stats {
    uint32_t nprobe; /* clusters the query asked for */
    uint32_t clusters_scanned;
    uint32_t rounds; /* probe rounds (more than 1 when a filter needed more clusters) */
    uint32_t cache_hits;
    uint32_t cache_misses;
    uint32_t requests; /* storage range reads issued */
    uint64_t bytes_fetched;
    uint64_t vectors_scanned;
    uint64_t filter_evaluations;
    uint64_t tail_vectors;  /* live vectors in the unindexed tail */
    uint64_t tail_scored;   /* of those, scored exactly (the rest were ruled out by their bound) */
    uint64_t tail_shadowed; /* generation candidates skipped because the tail has a newer record */
    double ms_probe, ms_fetch, ms_scan, ms_tail, ms_total;
} ivf_stats;

typedef struct ivf_result {
    ivf_hit *hits;
    size_t len;
    ivf_stats stats;
    s3v_buf arena; /* keys, metadata and data of the hits */
} ivf_result;

/* Top-k search. Errors: S3V_ERR_DIMENSION, S3V_ERR_INVALID (NaN/Inf, zero vector under cosine, topk out
 * of range), storage errors, S3V_ERR_TIMEOUT, S3V_ERR_CORRUPT naming the object and cluster. */
S3V_MUST_USE s3v_status ivf_index_search(ivf_index *ix, const ivf_query *q, ivf_result *out);

/* GetVectors: hits for the keys that exist, in request order (missing keys are skipped). */
S3V_MUST_USE s3v_status ivf_index_get(ivf_index *ix, const uint8_t *const *keys, const size_t *key_lens,
                                      size_t n, int want_data, int want_metadata, uint64_t deadline_ns,
                                      ivf_result *out);

typedef struct ivf_list_req {
    uint32_t segment_count; /* 0 or 1: one segment */
    uint32_t segment_index;
    uint32_t max_results;   /* 0: 500 */
    size_t max_bytes;       /* 0: 1 MiB of keys, metadata and data */
    const char *next_token; /* NULL: from the start */
    int want_data;
    int want_metadata;
    uint64_t deadline_ns;
} ivf_list_req;

#define IVF_TOKEN_MAX 128

/* ListVectors: one page; next_token receives "" at the end. The generation's vectors come first (those
 * the tail overwrote or deleted are skipped), then the tail's live vectors in key-hash order. A token from
 * another generation or segment is S3V_ERR_INVALID. Without concurrent writes every vector is listed
 * exactly once; a vector written while a listing runs may be listed twice or not at all. */
S3V_MUST_USE s3v_status ivf_index_list(ivf_index *ix, const ivf_list_req *req, ivf_result *out,
                                       char next_token[IVF_TOKEN_MAX]);

void ivf_result_free(ivf_result *r);

/* Every live vector of the index, generation first (vectors the tail overwrote or deleted skipped),
 * then the tail's live puts: what compaction folds into a new generation. Vectors are decoded to float32
 * (f16 and i8 generations give their stored approximation). Clusters are fetched CHUNK at a time and
 * released when passed. The record (engine/input.h) stays valid until the next call. */
typedef struct ivf_iter ivf_iter;
struct vec_record;
S3V_MUST_USE s3v_status ivf_iter_new(ivf_index *ix, uint64_t deadline_ns, ivf_iter **out);
S3V_MUST_USE s3v_status ivf_iter_next(ivf_iter *it, struct vec_record *rec, int *has);
void ivf_iter_free(ivf_iter *it);

typedef struct ivf_verify_report {
    uint64_t vectors;  /* vectors in verified clusters */
    uint32_t clusters; /* clusters read and verified */
    uint32_t pages;    /* key-map pages read and verified */
    uint64_t bytes;    /* bytes read */
} ivf_verify_report;

/* Reads every cluster and key-map page (bypassing nothing: each is checksummed, its keys and metadata
 * decoded, every key-map entry checked to name a cluster that holds a key with that hash). The first
 * problem is returned as S3V_ERR_CORRUPT naming the object. (The log objects of the tail were verified
 * when they were read.) */
S3V_MUST_USE s3v_status ivf_index_verify(ivf_index *ix, uint64_t deadline_ns, ivf_verify_report *report);

#endif
