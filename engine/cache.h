/* engine/cache.h: the process-wide, byte-bounded LRU cache of verified cluster blocks (and key-map
 * pages), so repeated queries touch storage less.
 *
 * Entries are keyed by (index uid, slot): the uid is unique per opened index generation, slot is a
 * cluster id or CACHE_SLOT_PAGE | page number. An entry handed out by get/put is pinned until
 * cluster_cache_unpin; pinned entries are never evicted (a query's working set may exceed the budget
 * briefly). budget 0 keeps nothing that is not pinned. The charge of an entry is its block bytes plus
 * its decoded keys/metadata when decoded.
 *
 * Not thread-safe: one thread queries at a time (the Lambda runtime and the CLI are single-threaded
 * on the query path). */
#ifndef S3V_CACHE_H
#define S3V_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "engine/format.h"

#define CACHE_SLOT_PAGE 0x80000000u

typedef struct cluster_cache cluster_cache;

typedef struct cache_entry {
    uint64_t uid;
    uint32_t slot;
    uint8_t *bytes; /* owned: the verified block or page */
    size_t size;
    ivf_block blk; /* clusters: parsed view into bytes */
    ivf_rest rest; /* clusters: decoded keys/metadata when rest_ready */
    int rest_ready;
    /* internal */
    size_t charge;
    int pins;
    int linked;
    struct cache_entry *prev, *next, *hnext;
} cache_entry;

typedef struct cache_stats {
    uint64_t hits, misses, evictions;
    size_t bytes, budget, entries;
} cache_stats;

S3V_MUST_USE s3v_status cluster_cache_new(size_t budget, cluster_cache **out);
void cluster_cache_free(cluster_cache *c);

/* Returns the pinned entry or NULL (counted as hit / miss). */
cache_entry *cluster_cache_get(cluster_cache *c, uint64_t uid, uint32_t slot);
/* Inserts bytes (ownership moves to the cache, also on failure) and returns the pinned entry. If the
 * key is present already, the new bytes are freed and the existing entry is returned. blk may be NULL
 * for pages. */
S3V_MUST_USE s3v_status cluster_cache_put(cluster_cache *c, uint64_t uid, uint32_t slot, uint8_t *bytes,
                                          size_t size, const ivf_block *blk, cache_entry **out);
/* Decodes the entry's keys and metadata once (kept with the entry). */
S3V_MUST_USE s3v_status cluster_cache_rest(cluster_cache *c, cache_entry *e);
void cluster_cache_unpin(cluster_cache *c, cache_entry *e);
/* Drops every unpinned entry of uid (an index closed or replaced). */
void cluster_cache_drop(cluster_cache *c, uint64_t uid);
void cluster_cache_stats(const cluster_cache *c, cache_stats *out);

/* A fresh uid for an opened index (process-wide counter). */
uint64_t cluster_cache_new_uid(void);

#endif
