/* handler/registry.h: the warm state: open indexes by name, one shared cluster cache, freshness.
 *
 * The registry lives for the process (made at INIT, kept across invocations). It maps "vb/idx" to an
 * open ivf_index (manifest + centroids in memory). An index is opened on first use (or at INIT by
 * hd_handler_preload). Freshness: when an index was last confirmed more than fresh_ms of wall-clock
 * time ago (wall clock, because a Lambda sandbox is frozen between invocations and may be thawed hours
 * later), the next request re-reads its manifest (one small GET); when the manifest names another
 * generation, the new generation is opened and swapped in before the request is served, and the old
 * one is closed (its cache entries dropped). So a newly published generation is served at most
 * fresh_ms after it was committed (plus the length of one request). fresh_ms = 0 checks on every
 * request. A failed check (network) keeps serving the open generation and is retried after the next
 * interval; a manifest that is gone (index deleted) closes the index and reports NOT_FOUND.
 *
 * Read-your-writes: an open index also holds its unindexed tail (engine/tail.h). Before a read is
 * served, the log objects written since the last look are read (one GET of the next slot when nothing
 * is new) unless the last look was less than tail_ms ago (wall clock; 0 = before every read, the
 * default: a write acknowledged anywhere is seen by the next read here). A DeleteIndex followed by a
 * CreateIndex of the same name elsewhere is noticed at the next freshness check.
 *
 * Writers: one wal_writer per index name (at most max_open, least recently used dropped), which keeps
 * its copy of the manifest and its position in the log between PutVectors / DeleteVectors calls.
 *
 * Bounds: at most max_open indexes are open at once (the least recently used one is closed to make
 * room); every open index's clusters share one cluster_cache of cache_bytes; each tail is capped at
 * tail_max_bytes.
 *
 * Ownership: the registry borrows the storage (which must outlive it) and owns the cache and the
 * indexes. Index pointers it returns stay valid until the next registry call.
 * Threading: one thread at a time (the Lambda runtime is single-threaded); the registry's own probe
 * thread only ever touches the probe storage and its own buffers. */
#ifndef S3V_HD_REGISTRY_H
#define S3V_HD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/storage.h"
#include "engine/cache.h"
#include "engine/index.h"
#include "engine/wal.h"

typedef struct hd_registry hd_registry;

typedef struct hd_registry_opts {
    size_t cache_bytes;         /* cluster cache budget */
    uint32_t fresh_ms;          /* freshness interval (wall clock) */
    uint32_t max_open;          /* 0: 32 */
    uint32_t tail_ms;           /* read the log at most this often (wall clock); 0: before every read */
    size_t tail_max_bytes;      /* per open index; 0: IVF_TAIL_DEFAULT_MAX_BYTES */
    s3v_storage *probe_storage; /* a second handle on the same storage, for the background log probe
                                   (hd_registry_get_overlapped); NULL: none. Borrowed. */
} hd_registry_opts;

/* What a get cost, for per-query statistics and logs. */
typedef struct hd_open_info {
    int opened;             /* the index was opened by this call (cold) */
    int checked;            /* the manifest was re-read for freshness */
    int reloaded;           /* a newer generation was swapped in */
    int tail_checked;       /* the log was read for new writes */
    uint32_t tail_objects;  /* new log objects applied */
    uint32_t tail_requests; /* storage requests the log read cost */
    double ms_open;         /* time spent opening / checking / reading the log, ms */
} hd_open_info;

S3V_MUST_USE s3v_status hd_registry_new(s3v_storage *st, const hd_registry_opts *opts, hd_registry **out);
/* Closes every index and frees the cache. Accepts NULL. */
void hd_registry_free(hd_registry *r);

/* The open, fresh index named vb/idx (both already validated with handler/names.h). Opens it when
 * needed. Errors: those of ivf_index_open (NOT_FOUND: no such index; the message names it). info may
 * be NULL. */
S3V_MUST_USE s3v_status hd_registry_get(hd_registry *r, const char *vb, const char *idx, uint64_t deadline_ns,
                                        ivf_index **out, hd_open_info *info);

/* Read-your-writes without the wait: like hd_registry_get, but when the one GET of the next log slot is
 * all the read of the log needs now (the common warm case) and a probe storage was given, that GET is
 * made by the registry's worker thread, on the probe storage, while the caller serves its read with the
 * index as it is; *pending = 1. With pending NULL it is hd_registry_get. The caller then calls hd_registry_settle before any other registry call
 * (another call drops the probe's result unread, which only means the slot is read again next time).
 * A read thus costs max(GET, read) instead of GET + read. */
S3V_MUST_USE s3v_status hd_registry_get_overlapped(hd_registry *r, const char *vb, const char *idx,
                                                   uint64_t deadline_ns, ivf_index **out, hd_open_info *info,
                                                   int *pending);

/* Waits for the probe of vb/idx and applies what it found (reading any later slots itself). *redo = 1
 * when there were new writes or the index was re-opened: the read served meanwhile may miss them and
 * must be made again on hd_registry_peek(vb, idx). Errors as hd_registry_get's log read (the request
 * fails rather than miss an acknowledged write); NOT_FOUND when the index is gone. info's tail fields
 * and ms_open are added to. */
S3V_MUST_USE s3v_status hd_registry_settle(hd_registry *r, const char *vb, const char *idx,
                                           uint64_t deadline_ns, int *redo, hd_open_info *info);

/* Re-checks vb/idx now (after a read failed with NOT_FOUND on a data object, which happens when a
 * writer replaced the generation and deleted the old objects). *changed = 1 when a newer generation
 * was swapped in (the caller retries once). */
S3V_MUST_USE s3v_status hd_registry_recheck(hd_registry *r, const char *vb, const char *idx,
                                            uint64_t deadline_ns, int *changed);

/* The open index vb/idx without any I/O, or NULL. */
ivf_index *hd_registry_peek(hd_registry *r, const char *vb, const char *idx);

/* The writer of vb/idx (created on first use; no I/O). Valid until the next registry call. */
S3V_MUST_USE s3v_status hd_registry_writer(hd_registry *r, const char *vb, const char *idx, wal_writer **out);

/* Closes vb/idx and drops its writer (after this process deleted or created the index). */
void hd_registry_forget(hd_registry *r, const char *vb, const char *idx);

cluster_cache *hd_registry_cache(hd_registry *r);
s3v_storage *hd_registry_storage(hd_registry *r);
size_t hd_registry_open_count(const hd_registry *r);

#endif
