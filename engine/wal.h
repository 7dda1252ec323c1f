/* engine/wal.h: the write-ahead log of an index (engine/FORMAT.md, "Write-ahead log").
 *
 * One PutVectors or DeleteVectors call is one immutable log object
 * <index>/wal/<incarnation>/<20-digit sequence number>, created with a conditional write
 * (If-None-Match), so no two writers ever take the same slot. A reader finds new writes by reading slot
 * `next` until it is missing or reserved. The manifest names the incarnation and `start`, the first slot
 * not yet folded into the index by compaction.
 *
 * Under contention a writer first takes its slot with a 32-byte reservation (If-None-Match), then
 * replaces the reservation with the log object (If-Match its etag), so writers that lose a race lose a
 * small PUT instead of the whole object; racing writers spread over the next few slots at random. Before
 * acknowledging, a writer makes sure every slot below its own is written: free slots are filled with
 * empty ("no-op") log objects, reservations are waited for, and a reservation left by a writer that died
 * is replaced with a no-op after a timeout (its holder's If-Match then fails, and its write is retried in
 * a later slot). So every acknowledged write is reachable by a reader that reads slot after slot, and a
 * write that starts after an acknowledgement lands in a later slot. FORMAT.md "Writing" has the details.
 *
 * A write is acknowledged only after a second look at the manifest, taken after the log object
 * landed, shows the same incarnation and a start at or below the slot: then every reader that starts
 * afterwards sees it (in the log, or folded into a generation). If the index was deleted or replaced
 * meanwhile the object is removed and the write fails (S3V_ERR_NOT_FOUND). A slot below the start at
 * that second look was folded by a compaction after it landed: the write is in the generation. A stale
 * writer can never re-take a garbage-collected slot, because it puts within a quarter of the grace period
 * after a manifest read that showed the slot at or above the start (the grace rule). See FORMAT.md for
 * why this never loses or resurrects a write.
 *
 * Parsing takes (ptr, len) of untrusted bytes and verifies magic, version, both checksums, the slot
 * and incarnation the object claims, and every record before exposing anything.
 *
 * Threading: a wal_batch and a wal_writer belong to one thread; functions are otherwise re-entrant. */
#ifndef S3V_WAL_H
#define S3V_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"
#include "common/storage.h"
#include "engine/format.h"

#define WAL_HEADER_SIZE      48
#define WAL_VERSION          1
#define WAL_RECORD_HEADER    8
#define WAL_MAX_RECORDS      500           /* records per object: the PutVectors / DeleteVectors limit */
#define WAL_MAX_META_SIZE    (64u * 1024u) /* bytes of one record's metadata text */
#define WAL_MAX_OBJECT_SIZE  (40u << 20)   /* bytes of one log object */
#define WAL_SEQ_DIGITS       20
#define WAL_KEY_MAX          (1024 + 64) /* storage key of a log object, prefix included */
#define WAL_RESERVATION_SIZE 32          /* bytes of a reservation; every log object is larger (>= 48) */

/* PUT and DELETE are the records of PutVectors and DeleteVectors. DROP is the end of an incarnation
 * (DeleteIndex, or a build that replaced the index): an object holding one DROP record is appended to the
 * log, so every reader that still has the index open finds it at its next read of the log (instead of a
 * missing slot) and opens the index again; its metadata text is {"at": <ms since the epoch>, "grace":
 * <seconds>}, from which the garbage collector knows when the dead log may go. */
typedef enum wal_op { WAL_OP_PUT = 1, WAL_OP_DELETE = 2, WAL_OP_DROP = 3 } wal_op;

#define WAL_DROP_KEY "-drop-"

/* ---- building the records of one object ---- */

typedef struct wal_batch {
    uint32_t dim;
    uint32_t count;
    s3v_buf body; /* the records, laid out as FORMAT.md says */
} wal_batch;

void wal_batch_init(wal_batch *b, uint32_t dim);
void wal_batch_reset(wal_batch *b);
void wal_batch_free(wal_batch *b);

/* Appends a put of `vector` (b->dim floats, already checked with wal_vector_check) under key (checked
 * with vec_key_check), with metadata text (validated and minified by metadata_serialize; NULL/0 for
 * none). S3V_ERR_TOO_LARGE beyond WAL_MAX_RECORDS records, WAL_MAX_META_SIZE or WAL_MAX_OBJECT_SIZE;
 * S3V_ERR_INVALID for a bad key. */
S3V_MUST_USE s3v_status wal_batch_put(wal_batch *b, const uint8_t *key, size_t key_len, const float *vector,
                                      const uint8_t *meta, size_t meta_len);
/* Appends a delete (tombstone) of key. */
S3V_MUST_USE s3v_status wal_batch_delete(wal_batch *b, const uint8_t *key, size_t key_len);

/* Appends the DROP record (alone in its object) stamped now with the index's grace period. */
S3V_MUST_USE s3v_status wal_batch_drop(wal_batch *b, uint32_t grace_seconds);

/* Ends incarnation `incarnation` of the index at prefix: appends a DROP marker at the end of its log (the
 * first free slot at or after `start`, the manifest's log start, taken with If-None-Match like any log
 * object). Called by DeleteIndex before the manifest
 * is deleted and by a build that replaced the index after its new manifest is committed. */
S3V_MUST_USE s3v_status wal_append_drop(s3v_storage *st, const char *prefix, uint64_t incarnation,
                                        uint32_t dim, uint64_t start, uint32_t grace_seconds,
                                        uint64_t deadline_ns);

/* Checks a vector for an index of this metric and encoding: every value finite and a float32, not all
 * zero under cosine, within +-65504 for an f16 index (so compaction can always encode it).
 * S3V_ERR_INVALID with a message naming the element ("element 3 is not finite"). */
S3V_MUST_USE s3v_status wal_vector_check(ivf_metric metric, ivf_encoding encoding, const float *v,
                                         uint32_t dim);

/* ---- the object ---- */

/* Appends header + body of a log object for slot `seq` of `incarnation` to out. */
S3V_MUST_USE s3v_status wal_object_encode(const wal_batch *b, uint64_t incarnation, uint64_t seq,
                                          s3v_buf *out);

typedef struct wal_record {
    wal_op op;
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *vector; /* put: dim little-endian float32, 4-byte aligned within the object */
    const uint8_t *meta;   /* put: minified JSON object text, or NULL */
    uint32_t meta_len;
} wal_record;

/* A verified object: a view into the caller's bytes. */
typedef struct wal_object {
    uint64_t seq;
    uint64_t incarnation;
    uint32_t dim;
    uint32_t count;
    const uint8_t *body;
    size_t body_size;
} wal_object;

/* Verifies an object that should be slot `seq` of `incarnation` with vectors of `dim` (magic, version,
 * checksums, the slot and incarnation it names, every record's type, sizes, key (vec_key_check),
 * finite vector values, zero padding). S3V_ERR_CORRUPT / S3V_ERR_UNSUPPORTED with a message. */
S3V_MUST_USE s3v_status wal_object_parse(const uint8_t *p, size_t n, uint64_t incarnation, uint64_t seq,
                                         uint32_t dim, wal_object *out);
/* Iterates the records of a parsed object: start with *pos = 0; returns 1 and fills rec while records
 * remain, then 0. */
int wal_object_next(const wal_object *o, size_t *pos, wal_record *rec);

/* 1 when a parsed object is a DROP marker; *at_ms and *grace_s receive its stamp (0 when unreadable). */
int wal_object_is_drop(const wal_object *o, uint64_t *at_ms, uint32_t *grace_s);

/* 1 when the bytes of a slot are a reservation (the slot is taken but not yet written: a reader treats it
 * as missing). Checks the size and magic only; the writer that breaks a reservation verifies it fully. */
int wal_is_reservation(const uint8_t *p, size_t n);

/* "<prefix>/wal/<incarnation>/<seq, 20 digits>" (prefix may be ""). */
S3V_MUST_USE s3v_status wal_object_key(const char *prefix, uint64_t incarnation, uint64_t seq, char *out,
                                       size_t out_size);
/* "<prefix>/wal/<incarnation>/" and "<prefix>/wal/". */
S3V_MUST_USE s3v_status wal_folder(const char *prefix, uint64_t incarnation, char *out, size_t out_size);
S3V_MUST_USE s3v_status wal_root(const char *prefix, char *out, size_t out_size);
/* Parses the last segment of a log object key as a sequence number (exactly 20 digits). Returns 1 on
 * success. */
int wal_parse_seq(const char *name, uint64_t *seq);

/* ---- reading the log ---- */

typedef struct wal_slot {
    uint64_t seq;
    uint64_t size;
} wal_slot;

/* Lists the slots from `from` on that hold log objects in the log of `incarnation`, contiguous from `from`
 * (the listing stops at the first missing or reserved slot), at most max_slots. *out is malloc'd (free it), *len is
 * its length (0 when slot `from` does not exist). */
S3V_MUST_USE s3v_status wal_list_slots(s3v_storage *st, const char *prefix, uint64_t incarnation,
                                       uint64_t from, size_t max_slots, uint64_t deadline_ns, wal_slot **out,
                                       size_t *len);

/* Whether the log of `incarnation` ended with a DROP marker (looked for among its last slots), and the
 * marker's stamp. */
S3V_MUST_USE s3v_status wal_log_ended(s3v_storage *st, const char *prefix, uint64_t incarnation,
                                      uint64_t deadline_ns, int *ended, uint64_t *at_ms,
                                      uint32_t *grace_seconds);

/* ---- the writer ---- */

typedef struct wal_writer wal_writer;

/* A writer for the index at prefix of st (both borrowed; they must outlive the writer). No I/O. */
S3V_MUST_USE s3v_status wal_writer_new(s3v_storage *st, const char *prefix, wal_writer **out);
void wal_writer_free(wal_writer *w);

typedef struct wal_append_info {
    uint64_t seq;       /* the slot the batch was written to */
    uint32_t conflicts; /* slots found taken on the way */
    uint32_t requests;  /* storage requests made (GET, PUT, LIST, DELETE) */
    uint32_t retries;   /* whole attempts repeated (the manifest's window closed, a reservation broken) */
    uint32_t reserved;  /* 1 when the slot was taken with a reservation first */
    uint32_t waits;     /* listings made while waiting for reservations below the slot to be written */
    uint32_t broken;    /* stale reservations below the slot replaced with no-op objects */
    uint32_t filled;    /* free slots below the slot (skipped by contended writers) filled with no-ops */
} wal_append_info;

/* A reservation that stays in place longer than base_ms + (the object size it announces) / bytes_per_ms,
 * by this writer's clock, is taken to belong to a writer that died, and is replaced with a no-op object.
 * Defaults: 2000 ms and 4000 bytes/ms (4 MB/s). A healthy writer slower than that loses its slot and
 * retries; nothing is lost either way. */
void wal_writer_set_reserve_timeout(wal_writer *w, uint32_t base_ms, uint32_t bytes_per_ms);

/* Appends the batch as one log object and acknowledges it as described above. Reads the manifest when
 * the writer has none or its copy is older than a quarter of the index's grace period (and always once
 * after the write). Errors: S3V_ERR_NOT_FOUND (no index, or it was deleted or replaced during the write;
 * nothing was written), S3V_ERR_DIMENSION (batch dimension differs from the index), S3V_ERR_TIMEOUT,
 * S3V_ERR_INVALID (empty batch), storage errors. On an error other than NOT_FOUND / DIMENSION the write
 * may still become visible later (as with any timed-out request); it is never half applied. info may
 * be NULL. */
S3V_MUST_USE s3v_status wal_writer_append(wal_writer *w, const wal_batch *b, uint64_t deadline_ns,
                                          wal_append_info *info);

/* The manifest the writer read last (valid until the next append), or NULL. */
const ivf_manifest *wal_writer_manifest(const wal_writer *w);

/* Makes sure the writer holds a manifest read within its window (reading it when not) and returns it, so
 * that a caller can validate records against the index (dimension, metric, encoding, non-filterable keys)
 * before appending without an extra request. S3V_ERR_NOT_FOUND when there is no index. */
S3V_MUST_USE s3v_status wal_writer_prepare(wal_writer *w, uint64_t deadline_ns, const ivf_manifest **out);

#endif
