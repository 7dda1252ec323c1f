/* engine/tail.h: the unindexed tail of an index: every log record not yet folded into the generation,
 * applied in slot order, so reads see every acknowledged write (read-your-writes).
 *
 * State: key -> latest record (a put, or a tombstone for a delete). A put overwrites an earlier put or
 * tombstone of the same key; a delete turns any earlier state into a tombstone. Tombstones and puts both
 * shadow the key in the generation (the generation's copy is stale).
 *
 * Search is exact over the live puts (their recall is 1.0) but avoids reading every vector: each live
 * vector also has int8 codes on a grid fitted to the tail, and the exact distance |x - x8| to its codes;
 * with the query's own codes q8 and |q - q8|, the triangle inequality gives the lower bound
 * |q - x| >= |q8 - x8| - |q - q8| - |x - x8|, computed with the int8 kernel over 4x fewer bytes. A vector
 * whose bound exceeds the current k-th best distance cannot enter the results and is skipped; the rest are
 * scored exactly on their float32 values. (Euclidean and cosine, on unit vectors; dot product has no such
 * bound here and is scanned exactly in full.)
 *
 * Memory: the log objects' bytes are kept (records point into them) while any key or live vector still
 * refers to them, plus dim int8 codes and about 64 bytes per live vector; the total is capped at
 * max_bytes (S3V_ERR_TOO_LARGE: run compaction).
 *
 * Ownership: a tail owns everything it was given. Threading: one thread at a time. */
#ifndef S3V_TAIL_H
#define S3V_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "engine/filter.h"
#include "engine/format.h"
#include "engine/wal.h"

#define IVF_TAIL_DEFAULT_MAX_BYTES ((size_t)1 << 30)
/* Result ids of tail vectors in a topk heap: this bit | row. */
#define IVF_TAIL_ID_BIT            (1ull << 63)

typedef struct ivf_tail ivf_tail;
struct topk; /* engine/topk.h */

/* An empty tail whose next slot is `start`. max_bytes 0: IVF_TAIL_DEFAULT_MAX_BYTES. */
S3V_MUST_USE s3v_status ivf_tail_new(uint32_t dim, ivf_metric metric, uint64_t start, size_t max_bytes,
                                     ivf_tail **out);
void ivf_tail_free(ivf_tail *t);

/* The slot the tail expects next. */
uint64_t ivf_tail_next(const ivf_tail *t);

/* Applies a verified object (wal_object_parse of bytes) whose slot is ivf_tail_next(t). Takes ownership
 * of bytes (malloc'd; freed on failure too). S3V_ERR_INTERNAL for a slot out of order,
 * S3V_ERR_TOO_LARGE beyond max_bytes (the tail is unchanged then). */
S3V_MUST_USE s3v_status ivf_tail_apply(ivf_tail *t, uint8_t *bytes, const wal_object *o);

typedef struct ivf_tail_counts {
    uint64_t objects;    /* log objects applied */
    uint64_t records;    /* records applied */
    uint64_t keys;       /* distinct keys in the tail */
    uint64_t live;       /* keys whose latest record is a put */
    uint64_t tombstones; /* keys whose latest record is a delete */
    size_t bytes;        /* memory held */
} ivf_tail_counts;

void ivf_tail_get_counts(const ivf_tail *t, ivf_tail_counts *out);

typedef enum ivf_tail_state { IVF_TAIL_ABSENT = 0, IVF_TAIL_PUT = 1, IVF_TAIL_DELETED = 2 } ivf_tail_state;

/* The latest state of key (hash = ivf_key_hash(key)); *row receives the live row of a put. */
ivf_tail_state ivf_tail_lookup(const ivf_tail *t, const uint8_t *key, size_t key_len, uint64_t hash,
                               uint32_t *row);

typedef struct ivf_tail_row {
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *meta; /* NULL when none */
    uint32_t meta_len;
    const uint8_t *vector; /* dim little-endian float32 */
    float inv_norm;        /* cosine: 1/|x| */
    uint64_t hash;
    uint64_t seq; /* the slot the record came from */
} ivf_tail_row;

/* Row numbers run 0 .. ivf_tail_rows(t) - 1; a row is live while its key's latest record is that put.
 * Rows stay valid until the next ivf_tail_apply. */
uint32_t ivf_tail_rows(const ivf_tail *t);
int ivf_tail_row_live(const ivf_tail *t, uint32_t row);
void ivf_tail_get_row(const ivf_tail *t, uint32_t row, ivf_tail_row *out);

typedef struct ivf_tail_search_stats {
    uint64_t live;  /* live vectors considered */
    uint64_t exact; /* scored exactly (the rest were ruled out by the bound) */
    uint64_t filter_evaluations;
} ivf_tail_search_stats;

/* Pushes the live vectors that belong in the k best of `heap` (scores as engine/score.h defines them:
 * euclidean squared distance, cosine 1 - cos, dot -q.x) with ids IVF_TAIL_ID_BIT | row. query: dim
 * floats as given (finite; not zero under cosine: the caller checked). flt may be NULL. */
S3V_MUST_USE s3v_status ivf_tail_search(ivf_tail *t, const float *query, const s3v_filter *flt,
                                        struct topk *heap, ivf_tail_search_stats *stats);

/* Listing: live rows whose hash is in [hash_lo, hash_hi] and, when after_set, greater than after_hash,
 * in (hash, key) order; at most max rows, except that a run of equal hashes is never split across pages.
 * rows receives the row numbers (caller provides max + 64 entries), *n their number, *more = 1 when
 * further rows remain. */
S3V_MUST_USE s3v_status ivf_tail_list(const ivf_tail *t, uint64_t hash_lo, uint64_t hash_hi, int after_set,
                                      uint64_t after_hash, size_t max, uint32_t *rows, size_t *n, int *more);

#endif
