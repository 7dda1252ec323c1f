/* engine/index.c: warm index state and the search / get / list read paths. */
#include "engine/index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/log.h"
#include "engine/input.h"
#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/score.h"
#include "engine/topk.h"
#include "engine/tail.h"
#include "engine/wal.h"

#define MANIFEST_CAP   (IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE)
#define CENTROIDS_CAP  ((size_t)2 << 30)
#define LIST_DEFAULT   500
#define LIST_MAX_BYTES (1u << 20)
#define LIST_BATCH     8
#define TAIL_FETCH     32 /* log objects fetched in parallel */

struct ivf_index {
    s3v_storage *st;
    char prefix[1024];
    cluster_cache *cache;
    int own_cache;
    uint64_t uid;
    ivf_manifest m;
    ivf_centroids c;
    const kern_table *kt;
    char **data_keys; /* full storage keys, one per data object */
    char keymap_key[2048];
    char manifest_key[2048];
    uint32_t max_count;
    /* per-query scratch, sized at open */
    float *dist;       /* max_count */
    float *cdist;      /* nlist */
    uint32_t *probe;   /* nlist */
    uint32_t *heap;    /* nlist */
    uint8_t *mark;     /* nlist */
    ivf_scorer scorer; /* the query being searched */
    float *rowbuf;     /* dim */
    /* the unindexed tail */
    ivf_tail *tail;
    uint64_t tail_max_slots;   /* 0: all */
    int dropped;               /* the log ends with a DROP marker: the index was deleted or replaced */
    uint64_t manifest_wall_ms; /* when the manifest in m was read (or last confirmed) */
};

/* ---- open ---- */

static s3v_status get_object(ivf_index *ix, const char *key, size_t cap, uint64_t deadline, s3v_buf *out,
                             s3v_obj_info *info)
{
    s3v_buf_init(out, cap);
    s3v_status st = s3v_storage_get(ix->st, key, deadline, out, info);
    if (st != S3V_OK) {
        char where[2200];
        s3v_storage_describe(ix->st, key, where, sizeof where);
        s3v_buf_free(out);
        /* the storage message usually names the object already */
        if (strstr(s3v_errmsg(st), where) || strstr(s3v_errmsg(st), key)) return st;
        return s3v_error_context(st, "%s", where);
    }
    return S3V_OK;
}

static s3v_status corrupt_in(ivf_index *ix, s3v_status st, const char *key)
{
    char where[2200];
    s3v_storage_describe(ix->st, key, where, sizeof where);
    return s3v_error_context(st, "index object %s", where);
}

void ivf_index_close(ivf_index *ix)
{
    if (!ix) return;
    if (ix->cache) {
        cluster_cache_drop(ix->cache, ix->uid);
        if (ix->own_cache) cluster_cache_free(ix->cache);
    }
    if (ix->data_keys)
        for (size_t i = 0; i < ix->m.data_len; i++) free(ix->data_keys[i]);
    free(ix->data_keys);
    ivf_manifest_free(&ix->m);
    ivf_centroids_free(&ix->c);
    free(ix->dist);
    free(ix->cdist);
    free(ix->probe);
    free(ix->heap);
    free(ix->mark);
    ivf_scorer_free(&ix->scorer);
    free(ix->rowbuf);
    ivf_tail_free(ix->tail);
    free(ix);
}

/* ---- the log ---- */

typedef struct tail_fetch {
    ivf_index *ix;
    const wal_slot *slots;
    uint8_t **bytes; /* per range, taken from the storage's buffers */
    size_t *sizes;
} tail_fetch;

static s3v_status on_log_range(void *arg, size_t i, s3v_status st, s3v_buf *data)
{
    tail_fetch *f = arg;
    if (st != S3V_OK) return st;
    f->bytes[i] = s3v_buf_take(data, &f->sizes[i]);
    if (!f->bytes[i])
        return s3v_errorf(S3V_ERR_CORRUPT, "log object %llu is empty", (unsigned long long)f->slots[i].seq);
    return S3V_OK;
}

static s3v_status log_corrupt(ivf_index *ix, s3v_status st, uint64_t seq)
{
    char key[WAL_KEY_MAX], where[WAL_KEY_MAX + 256];
    if (wal_object_key(ix->prefix, ix->m.incarnation, seq, key, sizeof key) != S3V_OK) return st;
    s3v_storage_describe(ix->st, key, where, sizeof where);
    return s3v_error_context(st, "log object %s", where);
}

/* Verifies one fetched log object and applies it to the tail (the tail takes the bytes). */
static s3v_status apply_object(ivf_index *ix, uint8_t *bytes, size_t size, uint64_t seq)
{
    wal_object o;
    s3v_status st = wal_object_parse(bytes, size, ix->m.incarnation, seq, ix->m.dimension, &o);
    if (st != S3V_OK) {
        free(bytes);
        return log_corrupt(ix, st, seq);
    }
    if (wal_object_is_drop(&o, NULL, NULL)) {
        free(bytes);
        ix->dropped = 1;
        return s3v_errorf(S3V_ERR_NOT_FOUND, "the index was deleted or replaced (its log ends at slot %llu)",
                          (unsigned long long)seq);
    }
    return ivf_tail_apply(ix->tail, bytes, &o);
}

/* Reads the slots listed from the tail's next slot on, TAIL_FETCH at a time in parallel. */
static s3v_status tail_read_listed(ivf_index *ix, uint64_t deadline, ivf_refresh_info *info)
{
    wal_slot *slots = NULL;
    size_t n = 0;
    info->requests++;
    S3V_TRY(wal_list_slots(ix->st, ix->prefix, ix->m.incarnation, ivf_tail_next(ix->tail),
                           (size_t)ix->tail_max_slots, deadline, &slots, &n));
    s3v_status st = S3V_OK;
    char(*keys)[WAL_KEY_MAX] = malloc(TAIL_FETCH * sizeof *keys);
    s3v_range *ranges = malloc(TAIL_FETCH * sizeof *ranges);
    uint8_t **bytes = calloc(TAIL_FETCH, sizeof *bytes);
    size_t *sizes = calloc(TAIL_FETCH, sizeof *sizes);
    if (!keys || !ranges || !bytes || !sizes) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory reading the log");
        goto fail;
    }
    for (size_t first = 0; first < n && st == S3V_OK; first += TAIL_FETCH) {
        size_t m = n - first < TAIL_FETCH ? n - first : TAIL_FETCH;
        for (size_t i = 0; i < m; i++) {
            const wal_slot *sl = &slots[first + i];
            if (sl->size < WAL_HEADER_SIZE || sl->size > WAL_MAX_OBJECT_SIZE) {
                st = log_corrupt(
                    ix,
                    s3v_errorf(S3V_ERR_CORRUPT, "size %llu is out of range", (unsigned long long)sl->size),
                    sl->seq);
                goto fail;
            }
            st = wal_object_key(ix->prefix, ix->m.incarnation, sl->seq, keys[i], sizeof keys[i]);
            if (st != S3V_OK) goto fail;
            ranges[i] = (s3v_range){keys[i], 0, sl->size};
        }
        tail_fetch f = {ix, slots + first, bytes, sizes};
        info->requests += (uint32_t)m;
        st = s3v_storage_get_ranges(ix->st, ranges, m, deadline, on_log_range, &f);
        for (size_t i = 0; i < m; i++) {
            if (st == S3V_OK) {
                st = apply_object(ix, bytes[i], sizes[i], slots[first + i].seq);
                if (st == S3V_OK) info->objects++;
            } else {
                free(bytes[i]);
            }
            bytes[i] = NULL;
        }
    }
fail:
    free(slots);
    free(keys);
    free(ranges);
    free(bytes);
    free(sizes);
    return st;
}

/* Applies the outcome of one GET of log slot seq (status `got`, body bytes/size, taken over): a missing
 * object or a reservation means nothing new is readable yet (*more = 0); an object is applied (*more = 1:
 * the next slot may hold another). */
static s3v_status apply_slot(ivf_index *ix, uint64_t seq, s3v_status got, uint8_t *bytes, size_t size,
                             ivf_refresh_info *info, int *more)
{
    *more = 0;
    if (got != S3V_OK) {
        free(bytes);
        if (got != S3V_ERR_NOT_FOUND) return got;
        s3v_error_clear();
        return S3V_OK;
    }
    if (!bytes) return log_corrupt(ix, s3v_errorf(S3V_ERR_CORRUPT, "empty object"), seq);
    if (wal_is_reservation(bytes, size)) { /* taken by a writer that has not written it yet */
        free(bytes);
        return S3V_OK;
    }
    S3V_TRY(apply_object(ix, bytes, size, seq));
    info->objects++;
    *more = 1;
    return S3V_OK;
}

/* Reads slot after slot until one is missing; switches to a listing when several are new. */
static s3v_status tail_catch_up(ivf_index *ix, uint64_t deadline, ivf_refresh_info *info)
{
    char key[WAL_KEY_MAX];
    for (int found = 0;; found++) {
        if (found == 2) return tail_read_listed(ix, deadline, info);
        uint64_t seq = ivf_tail_next(ix->tail);
        S3V_TRY(wal_object_key(ix->prefix, ix->m.incarnation, seq, key, sizeof key));
        s3v_buf b;
        s3v_buf_init(&b, WAL_MAX_OBJECT_SIZE);
        info->requests++;
        s3v_status st = s3v_storage_get(ix->st, key, deadline, &b, NULL);
        size_t size = 0;
        uint8_t *bytes = st == S3V_OK ? s3v_buf_take(&b, &size) : NULL;
        s3v_buf_free(&b);
        int more;
        S3V_TRY(apply_slot(ix, seq, st, bytes, size, info, &more));
        if (!more) return S3V_OK;
    }
}

static s3v_status read_manifest_into(ivf_index *ix, uint64_t deadline, ivf_manifest *out)
{
    s3v_buf buf;
    S3V_TRY(get_object(ix, ix->manifest_key, MANIFEST_CAP, deadline, &buf, NULL));
    s3v_status st = ivf_manifest_decode(buf.ptr, buf.len, out);
    s3v_buf_free(&buf);
    if (st != S3V_OK) return corrupt_in(ix, st, ix->manifest_key);
    return S3V_OK;
}

s3v_status ivf_manifest_load(s3v_storage *st, const char *prefix, uint64_t deadline, ivf_manifest *out,
                             char *etag)
{
    char key[2048];
    S3V_TRY(ivf_key_join(prefix, "manifest", key, sizeof key));
    s3v_buf buf;
    s3v_buf_init(&buf, MANIFEST_CAP);
    s3v_obj_info info = {0};
    s3v_status rc = s3v_storage_get(st, key, deadline, &buf, &info);
    if (rc == S3V_OK) {
        rc = ivf_manifest_decode(buf.ptr, buf.len, out);
        if (rc != S3V_OK) {
            char where[2200];
            s3v_storage_describe(st, key, where, sizeof where);
            rc = s3v_error_context(rc, "index object %s", where);
        }
    }
    s3v_buf_free(&buf);
    if (rc == S3V_OK && etag) snprintf(etag, S3V_ETAG_MAX, "%s", info.etag);
    return rc;
}

typedef struct drop_ctx {
    s3v_storage *st;
    uint64_t deadline;
    s3v_status status;
    const char *keep; /* keys under this prefix stay (the logs: collected after their grace period) */
} drop_ctx;

static int drop_one(void *arg, const char *key, uint64_t size, int is_prefix)
{
    drop_ctx *d = arg;
    if (is_prefix || !strncmp(key, d->keep, strlen(d->keep))) return 0;
    s3v_status st = s3v_storage_del(d->st, key, d->deadline);
    if (st != S3V_OK) {
        d->status = st;
        return 1;
    }
    return 0;
}

s3v_status ivf_drop(s3v_storage *st, const char *prefix, uint64_t deadline)
{
    char key[2048], folder[2048];
    S3V_TRY(ivf_key_join(prefix, "manifest", key, sizeof key));
    ivf_manifest m;
    S3V_TRY(ivf_manifest_load(st, prefix, deadline, &m, NULL));
    /* the marker first: every reader that has the index open finds it at its next read of the log */
    s3v_status rc =
        wal_append_drop(st, prefix, m.incarnation, m.dimension, m.wal_start, m.grace_seconds, deadline);
    ivf_manifest_free(&m);
    S3V_TRY(rc);
    S3V_TRY(s3v_storage_del(st, key, deadline));
    S3V_TRY(ivf_key_join(prefix, "", folder, sizeof folder));
    if (prefix && *prefix) snprintf(folder, sizeof folder, "%s/", prefix);
    char wal[2048];
    S3V_TRY(wal_root(prefix, wal, sizeof wal));
    drop_ctx d = {st, deadline, S3V_OK, wal};
    s3v_list_req req = {folder, NULL, NULL, 0};
    S3V_TRY(s3v_storage_list(st, &req, deadline, drop_one, &d));
    return d.status;
}

s3v_status ivf_index_open(s3v_storage *st, const char *prefix, cluster_cache *cache, uint64_t deadline,
                          ivf_index **out)
{
    return ivf_index_open_ex(st, prefix, cache, NULL, deadline, out);
}

s3v_status ivf_index_open_ex(s3v_storage *st, const char *prefix, cluster_cache *cache,
                             const ivf_open_opts *opts, uint64_t deadline, ivf_index **out)
{
    s3v_status rc = S3V_OK;
    s3v_buf buf = {0};
    uint64_t *sizes = NULL;
    ivf_index *ix = calloc(1, sizeof *ix);
    if (!ix) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    ix->st = st;
    ix->kt = kern_get();
    snprintf(ix->prefix, sizeof ix->prefix, "%s", prefix ? prefix : "");
    if (cache) {
        ix->cache = cache;
    } else {
        rc = cluster_cache_new(0, &ix->cache);
        if (rc != S3V_OK) goto fail;
        ix->own_cache = 1;
    }
    ix->uid = cluster_cache_new_uid();
    rc = ivf_key_join(ix->prefix, "manifest", ix->manifest_key, sizeof ix->manifest_key);
    if (rc != S3V_OK) goto fail;
    ix->manifest_wall_ms = s3v_wall_ms();
    rc = read_manifest_into(ix, deadline, &ix->m);
    if (rc != S3V_OK) goto fail;
    char key[2048];
    if (ix->m.nlist == 0) { /* an empty index: nothing but the log */
        ix->c.dim = ix->m.dimension;
        ix->c.metric = ix->m.metric;
        ix->c.encoding = ix->m.encoding;
    } else {
        rc = ivf_key_join(ix->prefix, ix->m.centroids_key, key, sizeof key);
        if (rc != S3V_OK) goto fail;
        rc = get_object(ix, key, CENTROIDS_CAP, deadline, &buf, NULL);
        if (rc != S3V_OK) goto fail;
        if (buf.len != ix->m.centroids_size || s3v_crc32c(0, buf.ptr, buf.len) != ix->m.centroids_crc) {
            rc = corrupt_in(ix, s3v_errorf(S3V_ERR_CORRUPT, "size or checksum does not match the manifest"),
                            key);
            goto fail;
        }
        sizes = malloc(ix->m.data_len * sizeof *sizes);
        ix->data_keys = calloc(ix->m.data_len, sizeof *ix->data_keys);
        if (!sizes || !ix->data_keys) {
            rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < ix->m.data_len; i++) {
            sizes[i] = ix->m.data[i].size;
            char dk[2048];
            rc = ivf_key_join(ix->prefix, ix->m.data[i].key, dk, sizeof dk);
            if (rc != S3V_OK) goto fail;
            ix->data_keys[i] = strdup(dk);
            if (!ix->data_keys[i]) {
                rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        rc = ivf_centroids_decode(buf.ptr, buf.len, sizes, ix->m.data_len, ix->m.keymap_size, &ix->c);
        if (rc != S3V_OK) {
            rc = corrupt_in(ix, rc, key);
            goto fail;
        }
        if (ix->c.dim != ix->m.dimension || ix->c.nlist != ix->m.nlist || ix->c.encoding != ix->m.encoding ||
            ix->c.metric != ix->m.metric || ix->c.count != ix->m.count) {
            rc = corrupt_in(ix, s3v_errorf(S3V_ERR_CORRUPT, "centroids header does not match the manifest"),
                            key);
            goto fail;
        }
        rc = ivf_key_join(ix->prefix, ix->m.keymap_key, ix->keymap_key, sizeof ix->keymap_key);
        if (rc != S3V_OK) goto fail;
    }
    for (uint32_t i = 0; i < ix->c.nlist; i++)
        if (ix->c.clusters[i].count > ix->max_count) ix->max_count = ix->c.clusters[i].count;
    uint32_t d = ix->c.dim;
    size_t nl = ix->c.nlist ? ix->c.nlist : 1;
    ix->dist = malloc(((size_t)ix->max_count + 1) * sizeof(float));
    ix->cdist = malloc(nl * sizeof(float));
    ix->probe = malloc(nl * sizeof(uint32_t));
    ix->heap = malloc(nl * sizeof(uint32_t));
    ix->mark = calloc(nl, 1);
    rc = ivf_scorer_init(&ix->scorer, ix->c.metric, ix->c.encoding, d, ix->c.q_offset, ix->c.q_scale,
                         (size_t)ix->max_count + 1);
    if (rc != S3V_OK) goto fail;
    ix->rowbuf = malloc(d * sizeof(float));
    if (!ix->dist || !ix->cdist || !ix->probe || !ix->heap || !ix->mark || !ix->rowbuf) {
        rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s3v_buf_free(&buf);
    free(sizes);
    sizes = NULL;
    if (opts) ix->tail_max_slots = opts->tail_max_slots;
    if (!opts || !opts->no_tail) {
        rc = ivf_tail_new(d, ix->m.metric, ix->m.wal_start, opts ? opts->tail_max_bytes : 0, &ix->tail);
        if (rc != S3V_OK) goto fail;
        ivf_refresh_info ri = {0};
        rc = tail_read_listed(ix, deadline, &ri); /* a listing is strongly consistent: no probe needed */
        if (rc != S3V_OK) goto fail;
    }
    *out = ix;
    return S3V_OK;
fail:
    s3v_buf_free(&buf);
    free(sizes);
    ivf_index_close(ix);
    return rc;
}

const ivf_manifest *ivf_index_manifest(const ivf_index *ix) { return &ix->m; }
const ivf_centroids *ivf_index_centroids(const ivf_index *ix) { return &ix->c; }

size_t ivf_index_memory(const ivf_index *ix)
{
    const ivf_centroids *c = &ix->c;
    ivf_tail_counts tc = {0};
    if (ix->tail) ivf_tail_get_counts(ix->tail, &tc);
    return (size_t)c->nlist * c->dim * 4 + (size_t)c->nlist * sizeof(ivf_cluster_ref) +
           (size_t)c->npages * sizeof(ivf_keypage_ref) + ((size_t)ix->max_count + 1) * 8 +
           (size_t)c->nlist * 8 + tc.bytes;
}

s3v_status ivf_index_check_fresh(ivf_index *ix, uint64_t deadline, int *changed)
{
    uint64_t t = s3v_wall_ms();
    ivf_manifest m;
    S3V_TRY(read_manifest_into(ix, deadline, &m));
    *changed = strcmp(m.generation, ix->m.generation) != 0 || m.incarnation != ix->m.incarnation;
    if (!*changed) ix->manifest_wall_ms = t;
    ivf_manifest_free(&m);
    return S3V_OK;
}

/* A DROP marker met while reading the log: whatever replaced the index is opened anew. */
static s3v_status dropped_to_reopen(ivf_index *ix, s3v_status st, int *reopen)
{
    if (st == S3V_ERR_NOT_FOUND && ix->dropped) {
        s3v_error_clear();
        *reopen = 1;
        return S3V_OK;
    }
    return st;
}

static int manifest_check_due(const ivf_index *ix)
{
    uint64_t now = s3v_wall_ms();
    return now < ix->manifest_wall_ms || now - ix->manifest_wall_ms > (uint64_t)ix->m.grace_seconds * 250;
}

s3v_status ivf_index_refresh(ivf_index *ix, uint64_t deadline, int *reopen, ivf_refresh_info *info)
{
    ivf_refresh_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    *reopen = 0;
    if (!ix->tail) return S3V_OK;
    if (manifest_check_due(ix)) {
        info->manifest_checked = 1;
        info->requests++;
        S3V_TRY(ivf_index_check_fresh(ix, deadline, reopen));
        if (*reopen) return S3V_OK;
    }
    return dropped_to_reopen(ix, tail_catch_up(ix, deadline, info), reopen);
}

int ivf_index_next_log_key(const ivf_index *ix, char *key, size_t cap, uint64_t *seq)
{
    if (!ix->tail || ix->dropped || manifest_check_due(ix)) return 0;
    *seq = ivf_tail_next(ix->tail);
    return wal_object_key(ix->prefix, ix->m.incarnation, *seq, key, cap) == S3V_OK;
}

s3v_status ivf_index_refresh_from(ivf_index *ix, uint64_t seq, s3v_status got, uint8_t *bytes, size_t size,
                                  uint64_t deadline, int *reopen, ivf_refresh_info *info)
{
    ivf_refresh_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    *reopen = 0;
    if (!ix->tail || seq != ivf_tail_next(ix->tail)) { /* not the slot the caller was given: start over */
        free(bytes);
        return ivf_index_refresh(ix, deadline, reopen, info);
    }
    info->requests++;
    int more;
    s3v_status st = apply_slot(ix, seq, got, bytes, size, info, &more);
    if (st == S3V_OK && more) st = tail_catch_up(ix, deadline, info);
    return dropped_to_reopen(ix, st, reopen);
}

const ivf_tail *ivf_index_tail(const ivf_index *ix) { return ix->tail; }

uint32_t ivf_index_nprobe_for_recall(const ivf_index *ix, float recall)
{
    for (size_t i = 0; i < ix->m.calib_len; i++)
        if (ix->m.calib[i].recall >= recall) return ix->m.calib[i].nprobe;
    return ix->c.nlist;
}

/* ---- fetching clusters and key-map pages through the cache ---- */

typedef struct held_set {
    cache_entry **e;
    size_t len, cap;
} held_set;

static s3v_status held_add(held_set *h, cache_entry *e, size_t *index)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cache_entry **p = realloc(h->e, cap * sizeof *p);
        if (!p) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        h->e = p;
        h->cap = cap;
    }
    *index = h->len;
    h->e[h->len++] = e;
    return S3V_OK;
}

static void held_release(ivf_index *ix, held_set *h)
{
    for (size_t i = 0; i < h->len; i++) cluster_cache_unpin(ix->cache, h->e[i]);
    free(h->e);
    memset(h, 0, sizeof *h);
}

/* Called with each available entry (from the cache or freshly fetched) and its index in the held set. */
typedef s3v_status (*entry_fn)(void *arg, size_t held_index, cache_entry *e);

typedef struct fetch_ctx {
    ivf_index *ix;
    const uint32_t *slots; /* the slots of the ranges */
    held_set *held;
    entry_fn fn;
    void *arg;
    uint32_t *retry;
    size_t retry_len;
    s3v_status fn_status;
    uint64_t ns_in_fn;
    char first_error[256];
} fetch_ctx;

static int slot_is_page(uint32_t slot) { return (slot & CACHE_SLOT_PAGE) != 0; }

static s3v_status verify_slot(ivf_index *ix, uint32_t slot, const uint8_t *p, size_t n, ivf_block *blk)
{
    if (slot_is_page(slot)) {
        const ivf_keypage_ref *r = &ix->c.pages[slot & ~CACHE_SLOT_PAGE];
        if (n != r->size || s3v_crc32c(0, p, n) != r->crc)
            return s3v_errorf(S3V_ERR_CORRUPT, "key map page %u: checksum mismatch", slot & ~CACHE_SLOT_PAGE);
        return S3V_OK;
    }
    return ivf_block_parse(p, n, &ix->c.clusters[slot], slot, ix->c.dim, ix->c.encoding, blk);
}

static s3v_status on_range(void *arg, size_t i, s3v_status st, s3v_buf *data)
{
    fetch_ctx *f = arg;
    if (st != S3V_OK) return st;
    uint32_t slot = f->slots[i];
    ivf_block blk;
    s3v_status vs = verify_slot(f->ix, slot, data->ptr, data->len, &blk);
    if (vs != S3V_OK) {
        if (!f->retry_len) snprintf(f->first_error, sizeof f->first_error, "%s", s3v_errmsg(vs));
        f->retry[f->retry_len++] = slot; /* fetched again once; a second failure is reported */
        return S3V_OK;
    }
    size_t size;
    uint8_t *bytes = s3v_buf_take(data, &size);
    cache_entry *e;
    S3V_TRY(
        cluster_cache_put(f->ix->cache, f->ix->uid, slot, bytes, size, slot_is_page(slot) ? NULL : &blk, &e));
    size_t hi;
    s3v_status hs = held_add(f->held, e, &hi);
    if (hs != S3V_OK) {
        cluster_cache_unpin(f->ix->cache, e);
        return hs;
    }
    uint64_t t0 = s3v_now_ns();
    s3v_status fs = f->fn ? f->fn(f->arg, hi, e) : S3V_OK;
    f->ns_in_fn += s3v_now_ns() - t0;
    if (fs != S3V_OK) f->fn_status = fs;
    return fs;
}

static void slot_range(ivf_index *ix, uint32_t slot, s3v_range *r)
{
    if (slot_is_page(slot)) {
        const ivf_keypage_ref *p = &ix->c.pages[slot & ~CACHE_SLOT_PAGE];
        *r = (s3v_range){ix->keymap_key, p->offset, p->size};
    } else {
        const ivf_cluster_ref *c = &ix->c.clusters[slot];
        *r = (s3v_range){ix->data_keys[c->object], c->offset, c->size};
    }
}

/* Makes every slot available: cached ones first, the rest with one parallel ranged read. fn runs once per
 * slot as soon as it is available. */
static s3v_status fetch_slots(ivf_index *ix, const uint32_t *slots, size_t n, uint64_t deadline,
                              held_set *held, entry_fn fn, void *arg, ivf_stats *stats)
{
    s3v_status st = S3V_OK;
    uint32_t *miss = malloc((n ? n : 1) * sizeof *miss);
    uint32_t *retry = malloc((n ? n : 1) * sizeof *retry);
    s3v_range *ranges = malloc((n ? n : 1) * sizeof *ranges);
    if (!miss || !retry || !ranges) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t nmiss = 0;
    uint64_t t_fn = 0;
    for (size_t i = 0; i < n; i++) {
        cache_entry *e = cluster_cache_get(ix->cache, ix->uid, slots[i]);
        if (!e) {
            miss[nmiss++] = slots[i];
            if (stats) stats->cache_misses++;
            continue;
        }
        if (stats) stats->cache_hits++;
        size_t hi;
        st = held_add(held, e, &hi);
        if (st != S3V_OK) {
            cluster_cache_unpin(ix->cache, e);
            goto fail;
        }
        uint64_t t0 = s3v_now_ns();
        if (fn) S3V_CHECK(fn(arg, hi, e));
        t_fn += s3v_now_ns() - t0;
    }
    uint64_t t_fetch = s3v_now_ns();
    for (int attempt = 0; attempt < 2 && nmiss; attempt++) {
        for (size_t i = 0; i < nmiss; i++) {
            slot_range(ix, miss[i], &ranges[i]);
            if (stats) stats->bytes_fetched += ranges[i].size;
        }
        if (stats) stats->requests += (uint32_t)nmiss;
        fetch_ctx f = {ix, miss, held, fn, arg, retry, 0, S3V_OK, 0, ""};
        st = s3v_storage_get_ranges(ix->st, ranges, nmiss, deadline, on_range, &f);
        t_fn += f.ns_in_fn;
        if (f.fn_status != S3V_OK) st = f.fn_status;
        if (st != S3V_OK) {
            if (st != f.fn_status && nmiss) {
                char where[2200];
                s3v_storage_describe(ix->st, ranges[0].key, where, sizeof where);
                st = s3v_error_context(st, "reading %zu range%s of %s", nmiss, nmiss > 1 ? "s" : "", where);
            }
            goto fail;
        }
        if (f.retry_len && attempt == 1) {
            s3v_range r;
            slot_range(ix, retry[0], &r);
            st = corrupt_in(ix,
                            s3v_errorf(S3V_ERR_CORRUPT, "%s (bytes %llu..%llu, read twice)", f.first_error,
                                       (unsigned long long)r.offset, (unsigned long long)(r.offset + r.size)),
                            r.key);
            goto fail;
        }
        memcpy(miss, retry, f.retry_len * sizeof *miss);
        nmiss = f.retry_len;
    }
    if (stats) {
        double total = (double)(s3v_now_ns() - t_fetch) / 1e6;
        stats->ms_scan += (double)t_fn / 1e6;
        stats->ms_fetch += total - (double)t_fn / 1e6 + 0; /* fetch time net of scanning */
        if (stats->ms_fetch < 0) stats->ms_fetch = 0;
    }
fail:
    free(miss);
    free(retry);
    free(ranges);
    return st;
}

/* ---- search ---- */

typedef struct search_ctx {
    ivf_index *ix;
    const ivf_query *q;
    topk heap;
    ivf_stats *stats;
    held_set held;
    int shadow; /* the tail has keys: generation candidates are checked against it */
} search_ctx;

/* 1 when row r of a generation block has a newer record (put or delete) in the tail. */
static int shadowed(ivf_index *ix, const ivf_rest *rs, uint32_t r)
{
    const uint8_t *k = rs->keys + rs->key_off[r];
    size_t kl = rs->key_off[r + 1] - rs->key_off[r];
    return ivf_tail_lookup(ix->tail, k, kl, ivf_key_hash(k, kl), NULL) != IVF_TAIL_ABSENT;
}

static s3v_status scan_entry(void *arg, size_t hi, cache_entry *e)
{
    search_ctx *s = arg;
    ivf_index *ix = s->ix;
    const ivf_block *b = &e->blk;
    uint32_t n = b->count;
    float *dist = ix->dist;
    s->stats->clusters_scanned++;
    if (n == 0) return S3V_OK;
    s->stats->vectors_scanned += n;
    ivf_scorer_rows(&ix->scorer, b->vectors, b->inv_norms, n, dist);
    const s3v_filter *flt = s->q->filter;
    uint64_t base = (uint64_t)hi << 32;
    float bound = topk_bound(&s->heap);
    for (uint32_t r = 0; r < n; r++) {
        if (!(dist[r] <= bound)) continue;
        if (s->shadow) {
            if (!e->rest_ready) S3V_TRY(cluster_cache_rest(ix->cache, e));
            if (shadowed(ix, &e->rest, r)) {
                s->stats->tail_shadowed++;
                continue;
            }
        }
        if (flt) {
            if (!e->rest_ready) S3V_TRY(cluster_cache_rest(ix->cache, e));
            s->stats->filter_evaluations++;
            const ivf_rest *rs = &e->rest;
            if (!filter_match(flt, rs->meta + rs->meta_off[r], rs->meta_off[r + 1] - rs->meta_off[r]))
                continue;
        }
        if (topk_push(&s->heap, dist[r], base | r)) bound = topk_bound(&s->heap);
    }
    return S3V_OK;
}

static s3v_status prepare_query(ivf_index *ix, const ivf_query *q)
{
    uint32_t d = ix->c.dim;
    if (q->dim != d)
        return s3v_errorf(S3V_ERR_DIMENSION, "query vector has dimension %u, the index has dimension %u",
                          q->dim, d);
    if (q->topk < 1 || q->topk > IVF_TOPK_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "topK must be between 1 and %d", IVF_TOPK_MAX);
    return ivf_scorer_set_query(&ix->scorer, q->vector);
}

static int probe_before(const float *dist, uint32_t a, uint32_t b)
{
    return dist[a] < dist[b] || (dist[a] == dist[b] && a < b);
}

/* Moves the m nearest clusters of probe[from..n) to probe[from..from+m), nearest first, with a bounded
 * max-heap (O(n log m)); the rest keep their relative order after them. */
static void select_probes(ivf_index *ix, uint32_t from, uint32_t m, uint32_t n)
{
    uint32_t *p = ix->probe, *h = ix->heap;
    const float *dist = ix->cdist;
    if (from + m > n) m = n - from;
    uint32_t len = 0;
    for (uint32_t i = from; i < n; i++) {
        uint32_t v = p[i];
        if (len < m) {
            uint32_t k = len++;
            while (k > 0 && probe_before(dist, h[(k - 1) / 2], v)) {
                h[k] = h[(k - 1) / 2];
                k = (k - 1) / 2;
            }
            h[k] = v;
        } else if (m && probe_before(dist, v, h[0])) {
            uint32_t k = 0;
            for (;;) {
                uint32_t c = 2 * k + 1;
                if (c >= len) break;
                if (c + 1 < len && probe_before(dist, h[c], h[c + 1])) c++;
                if (!probe_before(dist, v, h[c])) break;
                h[k] = h[c];
                k = c;
            }
            h[k] = v;
        }
    }
    for (uint32_t i = 0; i < len; i++) ix->mark[h[i]] = 1;
    /* heap sort ascending */
    for (uint32_t end = len; end > 1; end--) {
        uint32_t top = h[0];
        uint32_t v = h[end - 1];
        uint32_t k = 0, hl = end - 1;
        for (;;) {
            uint32_t c = 2 * k + 1;
            if (c >= hl) break;
            if (c + 1 < hl && probe_before(dist, h[c], h[c + 1])) c++;
            if (!probe_before(dist, v, h[c])) break;
            h[k] = h[c];
            k = c;
        }
        h[k] = v;
        h[end - 1] = top;
    }
    uint32_t w = from + len;
    for (uint32_t i = from; i < n; i++)
        if (!ix->mark[p[i]]) h[w++ - from] = p[i];
    for (uint32_t i = 0; i < len; i++) ix->mark[h[i]] = 0;
    memcpy(p + from, h, (size_t)(n - from) * sizeof *p);
}

static s3v_status arena_put(s3v_buf *a, const void *p, size_t n, size_t align, size_t *off)
{
    while (a->len % align) S3V_TRY(s3v_buf_append(a, "", 1));
    *off = a->len;
    return s3v_buf_append(a, p, n);
}

/* Appends one hit (key, metadata, data of row r of entry e) to out; pointers are offsets until fixed. */
static s3v_status add_hit(ivf_index *ix, cache_entry *e, uint32_t r, float distance, int want_meta,
                          int want_data, ivf_result *out, size_t *cap)
{
    if (!e->rest_ready) S3V_TRY(cluster_cache_rest(ix->cache, e));
    if (out->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        ivf_hit *h = realloc(out->hits, nc * sizeof *h);
        if (!h) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        out->hits = h;
        *cap = nc;
    }
    ivf_hit *h = &out->hits[out->len];
    memset(h, 0, sizeof *h);
    const ivf_rest *rs = &e->rest;
    size_t off;
    h->key_len = rs->key_off[r + 1] - rs->key_off[r];
    S3V_TRY(arena_put(&out->arena, rs->keys + rs->key_off[r], h->key_len, 1, &off));
    h->key = (const uint8_t *)(uintptr_t)(off + 1);
    h->distance = distance;
    size_t ml = rs->meta_off[r + 1] - rs->meta_off[r];
    if (want_meta && ml) {
        S3V_TRY(arena_put(&out->arena, rs->meta + rs->meta_off[r], ml, 1, &off));
        h->meta = (const uint8_t *)(uintptr_t)(off + 1);
        h->meta_len = ml;
    }
    if (want_data) {
        uint32_t d = ix->c.dim;
        quant_i8 qz = {d, ix->c.q_offset, ix->c.q_scale};
        quant_decode_row(ix->c.encoding, &qz,
                         e->blk.vectors + (size_t)r * d * ivf_encoding_size(ix->c.encoding), d, ix->rowbuf);
        S3V_TRY(arena_put(&out->arena, ix->rowbuf, d * sizeof(float), sizeof(float), &off));
        h->data = (const float *)(uintptr_t)(off + 1);
    }
    out->len++;
    return S3V_OK;
}

/* Appends one hit from live row `row` of the tail. */
static s3v_status add_tail_hit(ivf_index *ix, uint32_t row, float distance, int want_meta, int want_data,
                               ivf_result *out, size_t *cap)
{
    if (out->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        ivf_hit *h = realloc(out->hits, nc * sizeof *h);
        if (!h) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        out->hits = h;
        *cap = nc;
    }
    ivf_tail_row tr;
    ivf_tail_get_row(ix->tail, row, &tr);
    ivf_hit *h = &out->hits[out->len];
    memset(h, 0, sizeof *h);
    size_t off;
    h->key_len = tr.key_len;
    S3V_TRY(arena_put(&out->arena, tr.key, tr.key_len, 1, &off));
    h->key = (const uint8_t *)(uintptr_t)(off + 1);
    h->distance = distance;
    if (want_meta && tr.meta && tr.meta_len) {
        S3V_TRY(arena_put(&out->arena, tr.meta, tr.meta_len, 1, &off));
        h->meta = (const uint8_t *)(uintptr_t)(off + 1);
        h->meta_len = tr.meta_len;
    }
    if (want_data) {
        uint32_t d = ix->c.dim;
        for (uint32_t j = 0; j < d; j++) ix->rowbuf[j] = le_get_f32(tr.vector + 4 * (size_t)j);
        S3V_TRY(arena_put(&out->arena, ix->rowbuf, d * sizeof(float), sizeof(float), &off));
        h->data = (const float *)(uintptr_t)(off + 1);
    }
    out->len++;
    return S3V_OK;
}

/* Turns arena offsets (stored +1 so that 0 stays NULL) into pointers. */
static void fix_pointers(ivf_result *out)
{
    uint8_t *base = out->arena.ptr;
    for (size_t i = 0; i < out->len; i++) {
        ivf_hit *h = &out->hits[i];
        if (h->key) h->key = base + ((uintptr_t)h->key - 1);
        if (h->meta) h->meta = base + ((uintptr_t)h->meta - 1);
        if (h->data) h->data = (const float *)(base + ((uintptr_t)h->data - 1));
    }
}

static void result_init(ivf_result *out)
{
    memset(out, 0, sizeof *out);
    s3v_buf_init(&out->arena, (size_t)64 << 20);
}

void ivf_result_free(ivf_result *r)
{
    if (!r) return;
    free(r->hits);
    s3v_buf_free(&r->arena);
    memset(r, 0, sizeof *r);
}

s3v_status ivf_index_search(ivf_index *ix, const ivf_query *q, ivf_result *out)
{
    uint64_t t0 = s3v_now_ns();
    result_init(out);
    search_ctx s;
    memset(&s, 0, sizeof s);
    s.ix = ix;
    s.q = q;
    s.stats = &out->stats;
    s3v_status st = prepare_query(ix, q);
    if (st != S3V_OK) return st;
    S3V_TRY(topk_init(&s.heap, q->topk));
    ivf_tail_counts tc = {0};
    if (ix->tail) ivf_tail_get_counts(ix->tail, &tc);
    s.shadow = tc.keys > 0;
    uint32_t nlist = ix->c.nlist;
    uint32_t nprobe = q->exact               ? nlist
                      : q->nprobe            ? q->nprobe
                      : q->recall_target > 0 ? ivf_index_nprobe_for_recall(ix, q->recall_target)
                                             : ix->m.default_nprobe;
    if (nprobe > nlist) nprobe = nlist;
    if (nprobe < 1 && nlist) nprobe = 1;
    out->stats.nprobe = nprobe;
    ivf_scorer_centroids(&ix->scorer, ix->c.centroids, nlist, ix->cdist);
    for (uint32_t c = 0; c < nlist; c++) ix->probe[c] = c;
    out->stats.ms_probe = (double)(s3v_now_ns() - t0) / 1e6;
    uint32_t done = 0, round = nprobe;
    size_t cap = 0;
    while (done < nlist) {
        uint32_t m = round < nlist - done ? round : nlist - done;
        select_probes(ix, done, m, nlist);
        out->stats.rounds++;
        S3V_CHECK(fetch_slots(ix, ix->probe + done, m, q->deadline_ns, &s.held, scan_entry, &s, &out->stats));
        done += m;
        if (!q->filter || s.heap.len >= s.heap.k) break;
        if (q->deadline_ns != S3V_NO_DEADLINE && s3v_now_ns() > q->deadline_ns) {
            st = s3v_errorf(S3V_ERR_TIMEOUT, "deadline passed after scanning %u of %u clusters", done, nlist);
            goto fail;
        }
        round = round * 2;
    }
    if (tc.live) { /* the tail, exactly: after the generation, so its k-th distance bounds the scan */
        uint64_t t1 = s3v_now_ns();
        ivf_tail_search_stats ts;
        S3V_CHECK(ivf_tail_search(ix->tail, q->vector, q->filter, &s.heap, &ts));
        out->stats.tail_vectors = ts.live;
        out->stats.tail_scored = ts.exact;
        out->stats.filter_evaluations += ts.filter_evaluations;
        out->stats.ms_tail = (double)(s3v_now_ns() - t1) / 1e6;
    }
    topk_sort(&s.heap);
    for (size_t i = 0; i < s.heap.len; i++) {
        float dist = ivf_scorer_distance(ix->c.metric, s.heap.dist[i]);
        if (s.heap.id[i] & IVF_TAIL_ID_BIT) {
            S3V_CHECK(add_tail_hit(ix, (uint32_t)(s.heap.id[i] & ~IVF_TAIL_ID_BIT), dist, q->want_metadata,
                                   q->want_data, out, &cap));
            continue;
        }
        cache_entry *e = s.held.e[s.heap.id[i] >> 32];
        S3V_CHECK(add_hit(ix, e, (uint32_t)s.heap.id[i], dist, q->want_metadata, q->want_data, out, &cap));
    }
    fix_pointers(out);
    out->stats.ms_total = (double)(s3v_now_ns() - t0) / 1e6;
fail:
    held_release(ix, &s.held);
    topk_free(&s.heap);
    if (st != S3V_OK) ivf_result_free(out);
    return st;
}

/* ---- get by key ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static size_t uniq_u32(uint32_t *v, size_t n)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_u32);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[k - 1]) v[k++] = v[i];
    return k;
}

/* Pages that may hold hash h: the last page whose first hash <= h, and earlier pages while a run of h
 * may continue backwards into them. */
static size_t pages_for_hash(const ivf_index *ix, uint64_t h, uint32_t *out, size_t max)
{
    const ivf_keypage_ref *p = ix->c.pages;
    size_t lo = 0, hi = ix->c.npages;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p[mid].first_hash <= h)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    if (lo == 0) return 0;
    size_t j = lo - 1;
    out[n++] = CACHE_SLOT_PAGE | (uint32_t)j;
    while (j > 0 && p[j].first_hash == h && n < max) out[n++] = CACHE_SLOT_PAGE | (uint32_t)--j;
    return n;
}

typedef struct get_ctx {
    cache_entry **by_slot_e; /* filled as entries arrive: index by position in the slot list */
    const uint32_t *slots;
    size_t nslots;
} get_ctx;

static s3v_status note_entry(void *arg, size_t hi, cache_entry *e)
{
    get_ctx *g = arg;
    for (size_t i = 0; i < g->nslots; i++)
        if (g->slots[i] == e->slot) g->by_slot_e[i] = e;
    return S3V_OK;
}

static cache_entry *find_slot(const get_ctx *g, uint32_t slot)
{
    size_t lo = 0, hi = g->nslots;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->slots[mid] < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->nslots && g->slots[lo] == slot ? g->by_slot_e[lo] : NULL;
}

s3v_status ivf_index_get(ivf_index *ix, const uint8_t *const *keys, const size_t *key_lens, size_t n,
                         int want_data, int want_meta, uint64_t deadline, ivf_result *out)
{
    uint64_t t0 = s3v_now_ns();
    result_init(out);
    s3v_status st = S3V_OK;
    held_set held = {0};
    uint64_t *hashes = malloc((n ? n : 1) * sizeof *hashes);
    uint32_t *slots = malloc((n * 8 + 1) * sizeof *slots);
    uint32_t *clusters = NULL;
    size_t ncl = 0;
    get_ctx g = {0};
    get_ctx gc = {0};
    uint8_t *in_tail = calloc(n ? n : 1, 1); /* IVF_TAIL_* state of each key */
    uint32_t *tail_row = calloc(n ? n : 1, sizeof *tail_row);
    if (!hashes || !slots || !in_tail || !tail_row) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        hashes[i] = ivf_key_hash(keys[i], key_lens[i]);
        if (ix->tail)
            in_tail[i] = (uint8_t)ivf_tail_lookup(ix->tail, keys[i], key_lens[i], hashes[i], &tail_row[i]);
        if (in_tail[i] == IVF_TAIL_ABSENT) ns += pages_for_hash(ix, hashes[i], slots + ns, 8);
    }
    ns = uniq_u32(slots, ns);
    g.slots = slots;
    g.nslots = ns;
    g.by_slot_e = calloc(ns ? ns : 1, sizeof *g.by_slot_e);
    if (!g.by_slot_e) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    S3V_CHECK(fetch_slots(ix, slots, ns, deadline, &held, note_entry, &g, &out->stats));
    /* clusters named by the pages for each key */
    size_t ccap = n * 2 + 16;
    clusters = malloc(ccap * sizeof *clusters);
    if (!clusters) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t ps[8];
        if (in_tail[i] != IVF_TAIL_ABSENT) continue;
        size_t np = pages_for_hash(ix, hashes[i], ps, 8);
        for (size_t k = 0; k < np; k++) {
            cache_entry *e = find_slot(&g, ps[k]);
            if (!e) continue;
            size_t m = e->size / IVF_KEYMAP_ENTRY_SIZE;
            for (size_t r = 0; r < m; r++) {
                const uint8_t *ent = e->bytes + r * IVF_KEYMAP_ENTRY_SIZE;
                if (le_get_u64(ent) != hashes[i]) continue;
                uint32_t c = le_get_u32(ent + 8);
                if (c >= ix->c.nlist) {
                    st = corrupt_in(
                        ix, s3v_errorf(S3V_ERR_CORRUPT, "key map names cluster %u of %u", c, ix->c.nlist),
                        ix->keymap_key);
                    goto fail;
                }
                if (ncl == ccap) {
                    ccap *= 2;
                    uint32_t *nc = realloc(clusters, ccap * sizeof *nc);
                    if (!nc) {
                        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
                        goto fail;
                    }
                    clusters = nc;
                }
                clusters[ncl++] = c;
            }
        }
    }
    ncl = uniq_u32(clusters, ncl);
    gc.slots = clusters;
    gc.nslots = ncl;
    gc.by_slot_e = calloc(ncl ? ncl : 1, sizeof *gc.by_slot_e);
    if (!gc.by_slot_e) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    S3V_CHECK(fetch_slots(ix, clusters, ncl, deadline, &held, note_entry, &gc, &out->stats));
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        if (in_tail[i] == IVF_TAIL_PUT) {
            S3V_CHECK(add_tail_hit(ix, tail_row[i], 0.0f, want_meta, want_data, out, &cap));
            continue;
        }
        if (in_tail[i] == IVF_TAIL_DELETED) continue;
        for (size_t c = 0; c < ncl && !found; c++) {
            cache_entry *e = gc.by_slot_e[c];
            if (!e) continue;
            if (!e->rest_ready) S3V_CHECK(cluster_cache_rest(ix->cache, e));
            const ivf_rest *rs = &e->rest;
            for (uint32_t r = 0; r < rs->count; r++) {
                size_t kl = rs->key_off[r + 1] - rs->key_off[r];
                if (kl == key_lens[i] && memcmp(rs->keys + rs->key_off[r], keys[i], kl) == 0) {
                    S3V_CHECK(add_hit(ix, e, r, 0.0f, want_meta, want_data, out, &cap));
                    found = 1;
                    break;
                }
            }
        }
    }
    fix_pointers(out);
    out->stats.ms_total = (double)(s3v_now_ns() - t0) / 1e6;
fail:
    held_release(ix, &held);
    free(in_tail);
    free(tail_row);
    free(g.by_slot_e);
    free(gc.by_slot_e);
    free(hashes);
    free(slots);
    free(clusters);
    if (st != S3V_OK) ivf_result_free(out);
    return st;
}

/* ---- list ---- */

/* Tokens: "1.<gen>.<segc>.<segi>.<cluster>.<row>" continues in the generation at that vector;
 * "2.<gen>.<segc>.<segi>.<0|1>.<hash, 16 hex>" continues in the tail from its start (0) or after that key
 * hash (1). */
typedef struct list_pos {
    int in_tail;
    uint32_t cluster, row;
    int after_set;
    uint64_t after_hash;
} list_pos;

static s3v_status parse_token(const ivf_index *ix, const char *tok, uint32_t segc, uint32_t segi, list_pos *p)
{
    char gen[IVF_NAME_MAX];
    unsigned kind, sc, si, a;
    unsigned long long b;
    int used = 0;
    if (strlen(tok) >= IVF_TOKEN_MAX ||
        sscanf(tok, "%u.%24[^.].%u.%u.%u.%n", &kind, gen, &sc, &si, &a, &used) != 5 || !used ||
        (kind != 1 && kind != 2))
        return s3v_errorf(S3V_ERR_INVALID, "nextToken is not valid");
    const char *last = tok + used;
    char *end = NULL;
    if (!*last || !((*last >= '0' && *last <= '9') || (*last >= 'a' && *last <= 'f')))
        return s3v_errorf(S3V_ERR_INVALID, "nextToken is not valid");
    b = strtoull(last, &end, kind == 1 ? 10 : 16);
    if (*end) return s3v_errorf(S3V_ERR_INVALID, "nextToken is not valid");
    if (strcmp(gen, ix->m.generation) != 0)
        return s3v_errorf(S3V_ERR_INVALID,
                          "nextToken belongs to an earlier version of the index; start the listing again");
    if (sc != segc || si != segi) return s3v_errorf(S3V_ERR_INVALID, "nextToken belongs to another segment");
    memset(p, 0, sizeof *p);
    if (kind == 1) {
        if (a >= ix->c.nlist || b > UINT32_MAX) return s3v_errorf(S3V_ERR_INVALID, "nextToken is not valid");
        p->cluster = a;
        p->row = (uint32_t)b;
    } else {
        if (a > 1) return s3v_errorf(S3V_ERR_INVALID, "nextToken is not valid");
        p->in_tail = 1;
        p->after_set = (int)a;
        p->after_hash = b;
    }
    return S3V_OK;
}

/* The key-hash range of segment segi of segc for the tail part of a listing. */
static void hash_range(uint32_t segc, uint32_t segi, uint64_t *lo, uint64_t *hi)
{
    uint64_t step = UINT64_MAX / segc;
    *lo = step * segi;
    *hi = segi + 1 == segc ? UINT64_MAX : step * (segi + 1) - 1;
}

s3v_status ivf_index_list(ivf_index *ix, const ivf_list_req *req, ivf_result *out,
                          char next_token[IVF_TOKEN_MAX])
{
    uint64_t t0 = s3v_now_ns();
    result_init(out);
    next_token[0] = 0;
    uint32_t segc = req->segment_count ? req->segment_count : 1;
    if (req->segment_index >= segc)
        return s3v_errorf(S3V_ERR_INVALID, "segmentIndex must be less than segmentCount");
    uint32_t nlist = ix->c.nlist;
    uint32_t c0 = (uint32_t)((uint64_t)nlist * req->segment_index / segc);
    uint32_t c1 = (uint32_t)((uint64_t)nlist * (req->segment_index + 1) / segc);
    list_pos pos = {0, c0, 0, 0, 0};
    if (req->next_token && *req->next_token) {
        S3V_TRY(parse_token(ix, req->next_token, segc, req->segment_index, &pos));
        if (!pos.in_tail && (pos.cluster < c0 || pos.cluster >= c1))
            return s3v_errorf(S3V_ERR_INVALID, "nextToken belongs to another segment");
    }
    uint32_t max_results = req->max_results ? req->max_results : LIST_DEFAULT;
    size_t max_bytes = req->max_bytes ? req->max_bytes : LIST_MAX_BYTES;
    s3v_status st = S3V_OK;
    size_t cap = 0;
    int full = 0;
    ivf_tail_counts tc = {0};
    if (ix->tail) ivf_tail_get_counts(ix->tail, &tc);
    uint32_t cluster = pos.in_tail ? c1 : pos.cluster, row = pos.row;
    while (cluster < c1 && !full) {
        uint32_t batch[LIST_BATCH];
        uint32_t nb = 0;
        for (uint32_t c = cluster; c < c1 && nb < LIST_BATCH; c++) batch[nb++] = c;
        held_set held = {0};
        get_ctx g = {0};
        g.slots = batch;
        g.nslots = nb;
        cache_entry *ents[LIST_BATCH] = {0};
        g.by_slot_e = ents;
        st = fetch_slots(ix, batch, nb, req->deadline_ns, &held, note_entry, &g, &out->stats);
        for (uint32_t k = 0; st == S3V_OK && k < nb && !full; k++) {
            cache_entry *e = ents[k];
            uint32_t count = ix->c.clusters[batch[k]].count;
            if (tc.keys && !e->rest_ready) st = cluster_cache_rest(ix->cache, e);
            for (uint32_t r = (batch[k] == cluster ? row : 0); st == S3V_OK && r < count; r++) {
                if (tc.keys && shadowed(ix, &e->rest, r)) continue; /* listed from the tail, or deleted */
                if (out->len >= max_results || out->arena.len >= max_bytes) {
                    snprintf(next_token, IVF_TOKEN_MAX, "1.%s.%u.%u.%u.%u", ix->m.generation, segc,
                             req->segment_index, batch[k], r);
                    full = 1;
                    break;
                }
                st = add_hit(ix, e, r, 0.0f, req->want_metadata, req->want_data, out, &cap);
            }
        }
        held_release(ix, &held);
        if (st != S3V_OK) break;
        cluster = batch[nb - 1] + 1;
        row = 0;
    }
    if (st == S3V_OK && !full && tc.live) { /* then the tail's live vectors of this segment */
        uint64_t lo, hi;
        hash_range(segc, req->segment_index, &lo, &hi);
        size_t room = out->len < max_results ? max_results - out->len : 0;
        if (!room || out->arena.len >= max_bytes) {
            snprintf(next_token, IVF_TOKEN_MAX, "2.%s.%u.%u.%d.%llx", ix->m.generation, segc,
                     req->segment_index, pos.after_set, (unsigned long long)pos.after_hash);
        } else {
            uint32_t *rows = malloc((room + 64) * sizeof *rows);
            size_t n = 0;
            int more = 0;
            if (!rows) st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            if (st == S3V_OK)
                st = ivf_tail_list(ix->tail, lo, hi, pos.after_set, pos.after_hash, room, rows, &n, &more);
            size_t k = 0;
            for (; st == S3V_OK && k < n; k++) {
                ivf_tail_row tr;
                ivf_tail_get_row(ix->tail, rows[k], &tr);
                /* the byte cap ends a page early, but never inside a run of equal hashes */
                if (out->arena.len >= max_bytes && k > 0) {
                    ivf_tail_row pr;
                    ivf_tail_get_row(ix->tail, rows[k - 1], &pr);
                    if (pr.hash != tr.hash) break;
                }
                st = add_tail_hit(ix, rows[k], 0.0f, req->want_metadata, req->want_data, out, &cap);
            }
            if (st == S3V_OK && (more || k < n)) {
                ivf_tail_row lr;
                ivf_tail_get_row(ix->tail, rows[k - 1], &lr);
                snprintf(next_token, IVF_TOKEN_MAX, "2.%s.%u.%u.1.%llx", ix->m.generation, segc,
                         req->segment_index, (unsigned long long)lr.hash);
            }
            free(rows);
        }
    }
    if (st != S3V_OK) {
        ivf_result_free(out);
        next_token[0] = 0;
        return st;
    }
    fix_pointers(out);
    out->stats.ms_total = (double)(s3v_now_ns() - t0) / 1e6;
    return S3V_OK;
}

/* ---- iterate everything (compaction) ---- */

#define ITER_CHUNK 16

struct ivf_iter {
    ivf_index *ix;
    uint64_t deadline;
    held_set held;
    cache_entry *ents[ITER_CHUNK];
    uint32_t first, nb; /* clusters first .. first + nb - 1 are held */
    uint32_t k, r;      /* position: entry k, row r */
    uint32_t tail_row;
    int in_tail;
    int shadow;
    float *vec;
    uint64_t emitted;
};

s3v_status ivf_iter_new(ivf_index *ix, uint64_t deadline, ivf_iter **out)
{
    ivf_iter *it = calloc(1, sizeof *it);
    if (!it) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    it->vec = malloc(ix->c.dim * sizeof *it->vec);
    if (!it->vec) {
        free(it);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    it->ix = ix;
    it->deadline = deadline;
    ivf_tail_counts tc = {0};
    if (ix->tail) ivf_tail_get_counts(ix->tail, &tc);
    it->shadow = tc.keys > 0;
    *out = it;
    return S3V_OK;
}

void ivf_iter_free(ivf_iter *it)
{
    if (!it) return;
    held_release(it->ix, &it->held);
    free(it->vec);
    free(it);
}

s3v_status ivf_iter_next(ivf_iter *it, struct vec_record *rec, int *has)
{
    ivf_index *ix = it->ix;
    uint32_t d = ix->c.dim;
    *has = 0;
    while (!it->in_tail) {
        if (it->k >= it->nb) { /* the next chunk of clusters */
            held_release(ix, &it->held);
            it->first += it->nb;
            it->nb = 0;
            it->k = it->r = 0;
            if (it->first >= ix->c.nlist) {
                it->in_tail = 1;
                break;
            }
            uint32_t batch[ITER_CHUNK];
            for (uint32_t c = it->first; c < ix->c.nlist && it->nb < ITER_CHUNK; c++) batch[it->nb++] = c;
            memset(it->ents, 0, sizeof it->ents);
            get_ctx g = {it->ents, batch, it->nb};
            S3V_TRY(fetch_slots(ix, batch, it->nb, it->deadline, &it->held, note_entry, &g, NULL));
            continue;
        }
        cache_entry *e = it->ents[it->k];
        if (!e || it->r >= e->blk.count) {
            it->k++;
            it->r = 0;
            continue;
        }
        if (!e->rest_ready) S3V_TRY(cluster_cache_rest(ix->cache, e));
        uint32_t r = it->r++;
        const ivf_rest *rs = &e->rest;
        if (it->shadow && shadowed(ix, rs, r)) continue;
        quant_i8 qz = {d, ix->c.q_offset, ix->c.q_scale};
        quant_decode_row(ix->c.encoding, &qz,
                         e->blk.vectors + (size_t)r * d * ivf_encoding_size(ix->c.encoding), d, it->vec);
        rec->row = it->emitted++;
        rec->key = rs->keys + rs->key_off[r];
        rec->key_len = rs->key_off[r + 1] - rs->key_off[r];
        rec->data = it->vec;
        rec->meta_len = rs->meta_off[r + 1] - rs->meta_off[r];
        rec->meta = rec->meta_len ? rs->meta + rs->meta_off[r] : NULL;
        *has = 1;
        return S3V_OK;
    }
    while (ix->tail && it->tail_row < ivf_tail_rows(ix->tail)) {
        uint32_t r = it->tail_row++;
        if (!ivf_tail_row_live(ix->tail, r)) continue;
        ivf_tail_row tr;
        ivf_tail_get_row(ix->tail, r, &tr);
        for (uint32_t j = 0; j < d; j++) it->vec[j] = le_get_f32(tr.vector + 4 * (size_t)j);
        rec->row = it->emitted++;
        rec->key = tr.key;
        rec->key_len = tr.key_len;
        rec->data = it->vec;
        rec->meta = tr.meta;
        rec->meta_len = tr.meta ? tr.meta_len : 0;
        *has = 1;
        return S3V_OK;
    }
    return S3V_OK;
}

/* ---- verify ---- */

typedef struct verify_ctx {
    ivf_index *ix;
    ivf_verify_report *rep;
    uint64_t *hashes; /* per cluster: sorted key hashes, filled as clusters are verified */
    uint64_t **by_cluster;
    uint32_t *nby;
} verify_ctx;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static s3v_status verify_entry(void *arg, size_t hi, cache_entry *e)
{
    verify_ctx *v = arg;
    ivf_index *ix = v->ix;
    v->rep->bytes += e->size;
    if (e->slot & CACHE_SLOT_PAGE) {
        v->rep->pages++;
        return S3V_OK;
    }
    if (!e->rest_ready) {
        s3v_status st = cluster_cache_rest(ix->cache, e);
        if (st != S3V_OK) return corrupt_in(ix, st, ix->data_keys[ix->c.clusters[e->slot].object]);
    }
    uint32_t n = e->rest.count;
    uint64_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    for (uint32_t r = 0; r < n; r++)
        h[r] = ivf_key_hash(e->rest.keys + e->rest.key_off[r], e->rest.key_off[r + 1] - e->rest.key_off[r]);
    qsort(h, n, sizeof *h, cmp_u64);
    v->by_cluster[e->slot] = h;
    v->nby[e->slot] = n;
    v->rep->clusters++;
    v->rep->vectors += n;
    return S3V_OK;
}

s3v_status ivf_index_verify(ivf_index *ix, uint64_t deadline, ivf_verify_report *rep)
{
    memset(rep, 0, sizeof *rep);
    uint32_t nl = ix->c.nlist, np = ix->c.npages;
    verify_ctx v = {ix, rep, NULL, NULL, NULL};
    v.by_cluster = calloc(nl, sizeof *v.by_cluster);
    v.nby = calloc(nl, sizeof *v.nby);
    uint32_t *slots = malloc(((size_t)(nl > np ? nl : np) + 1) * sizeof *slots);
    s3v_status st = S3V_OK;
    if (!v.by_cluster || !v.nby || !slots) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* clusters in batches so memory stays bounded by the cache, not the index */
    for (uint32_t first = 0; first < nl && st == S3V_OK; first += 64) {
        uint32_t m = nl - first < 64 ? nl - first : 64;
        for (uint32_t i = 0; i < m; i++) slots[i] = first + i;
        held_set held = {0};
        st = fetch_slots(ix, slots, m, deadline, &held, verify_entry, &v, NULL);
        held_release(ix, &held);
    }
    if (st != S3V_OK) goto fail;
    uint64_t entries = 0;
    for (uint32_t first = 0; first < np && st == S3V_OK; first += 64) {
        uint32_t m = np - first < 64 ? np - first : 64;
        for (uint32_t i = 0; i < m; i++) slots[i] = CACHE_SLOT_PAGE | (first + i);
        held_set held = {0};
        st = fetch_slots(ix, slots, m, deadline, &held, verify_entry, &v, NULL);
        for (size_t k = 0; st == S3V_OK && k < held.len; k++) {
            cache_entry *e = held.e[k];
            size_t cnt = e->size / IVF_KEYMAP_ENTRY_SIZE;
            for (size_t r = 0; r < cnt; r++) {
                uint64_t h = le_get_u64(e->bytes + r * IVF_KEYMAP_ENTRY_SIZE);
                uint32_t c = le_get_u32(e->bytes + r * IVF_KEYMAP_ENTRY_SIZE + 8);
                if (c >= nl || !bsearch(&h, v.by_cluster[c], v.nby[c], sizeof h, cmp_u64) ||
                    (r && h < le_get_u64(e->bytes + (r - 1) * IVF_KEYMAP_ENTRY_SIZE))) {
                    st = corrupt_in(ix,
                                    s3v_errorf(S3V_ERR_CORRUPT,
                                               "key map page %u entry %zu does not match the clusters",
                                               e->slot & ~CACHE_SLOT_PAGE, r),
                                    ix->keymap_key);
                    break;
                }
            }
            entries += cnt;
        }
        held_release(ix, &held);
    }
    if (st == S3V_OK && (entries != ix->c.count || rep->vectors != ix->c.count))
        st = corrupt_in(ix,
                        s3v_errorf(S3V_ERR_CORRUPT,
                                   "key map has %llu entries, clusters %llu vectors, manifest %llu",
                                   (unsigned long long)entries, (unsigned long long)rep->vectors,
                                   (unsigned long long)ix->c.count),
                        ix->keymap_key);
fail:
    if (v.by_cluster)
        for (uint32_t i = 0; i < nl; i++) free(v.by_cluster[i]);
    free(v.by_cluster);
    free(v.nby);
    free(slots);
    return st;
}
