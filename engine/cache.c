/* engine/cache.c: LRU of cluster blocks; open hashing on (uid, slot) plus a doubly-linked list. */
#include "engine/cache.h"

#include <stdlib.h>
#include <string.h>

struct cluster_cache {
    size_t budget;
    size_t bytes;
    size_t entries;
    cache_entry **table;
    size_t table_size;        /* power of two */
    cache_entry *head, *tail; /* head = most recently used */
    uint64_t hits, misses, evictions;
};

static uint64_t uid_counter;

uint64_t cluster_cache_new_uid(void) { return __atomic_add_fetch(&uid_counter, 1, __ATOMIC_RELAXED); }

static size_t bucket(const cluster_cache *c, uint64_t uid, uint32_t slot)
{
    uint64_t h = uid * 0x9E3779B97F4A7C15ull ^ (slot + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return (size_t)h & (c->table_size - 1);
}

s3v_status cluster_cache_new(size_t budget, cluster_cache **out)
{
    cluster_cache *c = calloc(1, sizeof *c);
    if (!c) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    c->budget = budget;
    c->table_size = 1024;
    c->table = calloc(c->table_size, sizeof *c->table);
    if (!c->table) {
        free(c);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return S3V_OK;
}

static void entry_free(cache_entry *e)
{
    ivf_rest_free(&e->rest);
    free(e->bytes);
    free(e);
}

static void lru_unlink(cluster_cache *c, cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(cluster_cache *c, cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void table_remove(cluster_cache *c, cache_entry *e)
{
    cache_entry **pp = &c->table[bucket(c, e->uid, e->slot)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    e->hnext = NULL;
}

/* Removes e from the cache; frees it now unless pinned (then unpin frees it). */
static void evict(cluster_cache *c, cache_entry *e)
{
    table_remove(c, e);
    lru_unlink(c, e);
    c->bytes -= e->charge;
    c->entries--;
    e->linked = 0;
    if (e->pins == 0) entry_free(e);
}

static void shrink(cluster_cache *c)
{
    cache_entry *e = c->tail;
    while (c->bytes > c->budget && e) {
        cache_entry *prev = e->prev;
        if (e->pins == 0) {
            evict(c, e);
            c->evictions++;
        }
        e = prev;
    }
}

void cluster_cache_free(cluster_cache *c)
{
    if (!c) return;
    cache_entry *e = c->head;
    while (e) {
        cache_entry *n = e->next;
        entry_free(e);
        e = n;
    }
    free(c->table);
    free(c);
}

cache_entry *cluster_cache_get(cluster_cache *c, uint64_t uid, uint32_t slot)
{
    for (cache_entry *e = c->table[bucket(c, uid, slot)]; e; e = e->hnext) {
        if (e->uid == uid && e->slot == slot) {
            lru_unlink(c, e);
            lru_front(c, e);
            e->pins++;
            c->hits++;
            return e;
        }
    }
    c->misses++;
    return NULL;
}

static void grow_table(cluster_cache *c)
{
    size_t ns = c->table_size * 2;
    cache_entry **nt = calloc(ns, sizeof *nt);
    if (!nt) return; /* keep the smaller table: slower, still correct */
    cache_entry **old = c->table;
    size_t os = c->table_size;
    c->table = nt;
    c->table_size = ns;
    for (size_t i = 0; i < os; i++) {
        cache_entry *e = old[i];
        while (e) {
            cache_entry *n = e->hnext;
            size_t b = bucket(c, e->uid, e->slot);
            e->hnext = nt[b];
            nt[b] = e;
            e = n;
        }
    }
    free(old);
}

s3v_status cluster_cache_put(cluster_cache *c, uint64_t uid, uint32_t slot, uint8_t *bytes, size_t size,
                             const ivf_block *blk, cache_entry **out)
{
    for (cache_entry *e = c->table[bucket(c, uid, slot)]; e; e = e->hnext) {
        if (e->uid == uid && e->slot == slot) {
            free(bytes);
            lru_unlink(c, e);
            lru_front(c, e);
            e->pins++;
            *out = e;
            return S3V_OK;
        }
    }
    cache_entry *e = calloc(1, sizeof *e);
    if (!e) {
        free(bytes);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory caching a cluster");
    }
    e->uid = uid;
    e->slot = slot;
    e->bytes = bytes;
    e->size = size;
    if (blk) e->blk = *blk;
    e->charge = size + sizeof *e;
    e->pins = 1;
    e->linked = 1;
    if (c->entries + 1 > c->table_size) grow_table(c);
    size_t b = bucket(c, uid, slot);
    e->hnext = c->table[b];
    c->table[b] = e;
    lru_front(c, e);
    c->bytes += e->charge;
    c->entries++;
    shrink(c);
    *out = e;
    return S3V_OK;
}

s3v_status cluster_cache_rest(cluster_cache *c, cache_entry *e)
{
    if (e->rest_ready) return S3V_OK;
    S3V_TRY(ivf_rest_decode(&e->blk, &e->rest));
    e->rest_ready = 1;
    size_t extra = ivf_rest_heap_size(&e->rest);
    e->charge += extra;
    if (e->linked) {
        c->bytes += extra;
        shrink(c);
    }
    return S3V_OK;
}

void cluster_cache_unpin(cluster_cache *c, cache_entry *e)
{
    if (!e) return;
    e->pins--;
    if (e->pins > 0) return;
    if (!e->linked)
        entry_free(e);
    else if (c->bytes > c->budget)
        shrink(c);
}

void cluster_cache_drop(cluster_cache *c, uint64_t uid)
{
    cache_entry *e = c->head;
    while (e) {
        cache_entry *n = e->next;
        if (e->uid == uid && e->pins == 0) evict(c, e);
        e = n;
    }
}

void cluster_cache_stats(const cluster_cache *c, cache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->bytes = c->bytes;
    out->budget = c->budget;
    out->entries = c->entries;
}
