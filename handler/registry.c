/* handler/registry.c: open indexes, the shared cluster cache, freshness checks. */
#include "handler/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "handler/names.h"

#define DEFAULT_MAX_OPEN 32
#define NAME_CAP         (2 * HD_NAME_MAX + 2)

typedef struct entry {
    char name[NAME_CAP]; /* "vb/idx" */
    ivf_index *ix;
    uint64_t checked_wall_ms; /* last time the manifest was confirmed */
    uint64_t used_seq;        /* for LRU */
} entry;

struct hd_registry {
    s3v_storage *st;
    cluster_cache *cache;
    uint32_t fresh_ms;
    uint32_t max_open;
    entry *e;
    size_t len;
    uint64_t seq;
};

s3v_status hd_registry_new(s3v_storage *st, const hd_registry_opts *opts, hd_registry **out)
{
    hd_registry *r = calloc(1, sizeof *r);
    if (!r) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    r->st = st;
    r->fresh_ms = opts->fresh_ms;
    r->max_open = opts->max_open ? opts->max_open : DEFAULT_MAX_OPEN;
    r->e = calloc(r->max_open, sizeof *r->e);
    s3v_status rc =
        r->e ? cluster_cache_new(opts->cache_bytes, &r->cache) : s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    if (rc != S3V_OK) {
        free(r->e);
        free(r);
        return rc;
    }
    *out = r;
    return S3V_OK;
}

void hd_registry_free(hd_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->len; i++) ivf_index_close(r->e[i].ix);
    free(r->e);
    cluster_cache_free(r->cache);
    free(r);
}

cluster_cache *hd_registry_cache(hd_registry *r) { return r->cache; }
s3v_storage *hd_registry_storage(hd_registry *r) { return r->st; }
size_t hd_registry_open_count(const hd_registry *r) { return r->len; }

/* "vb/idx" into name (NAME_CAP bytes); both names are validated, at most 63 bytes each. */
static void join_name(char *name, const char *vb, const char *idx)
{
    size_t bl = strlen(vb), il = strlen(idx);
    if (bl > HD_NAME_MAX - 1) bl = HD_NAME_MAX - 1;
    if (il > HD_NAME_MAX - 1) il = HD_NAME_MAX - 1;
    memcpy(name, vb, bl);
    name[bl] = '/';
    memcpy(name + bl + 1, idx, il);
    name[bl + 1 + il] = 0;
}

static entry *find(hd_registry *r, const char *name)
{
    for (size_t i = 0; i < r->len; i++)
        if (strcmp(r->e[i].name, name) == 0) return &r->e[i];
    return NULL;
}

static void remove_entry(hd_registry *r, entry *e)
{
    ivf_index_close(e->ix);
    size_t i = (size_t)(e - r->e);
    r->e[i] = r->e[r->len - 1];
    r->len--;
}

ivf_index *hd_registry_peek(hd_registry *r, const char *vb, const char *idx)
{
    char name[NAME_CAP];
    join_name(name, vb, idx);
    entry *e = find(r, name);
    return e ? e->ix : NULL;
}

/* Opens a fresh generation of e->name and swaps it in. */
static s3v_status reopen(hd_registry *r, entry *e, uint64_t deadline)
{
    ivf_index *nix;
    S3V_TRY(ivf_index_open(r->st, e->name, r->cache, deadline, &nix));
    s3v_log(S3V_LOG_INFO, "index %s: generation %s replaces %s", e->name, ivf_index_manifest(nix)->generation,
            ivf_index_manifest(e->ix)->generation);
    ivf_index_close(e->ix);
    e->ix = nix;
    return S3V_OK;
}

/* Re-reads the manifest of e; swaps in a new generation when there is one. */
static s3v_status check(hd_registry *r, entry *e, uint64_t deadline, int *changed)
{
    *changed = 0;
    int ch = 0;
    s3v_status st = ivf_index_check_fresh(e->ix, deadline, &ch);
    e->checked_wall_ms = s3v_wall_ms();
    if (st == S3V_OK && ch) {
        st = reopen(r, e, deadline);
        if (st == S3V_OK) *changed = 1;
    }
    return st;
}

s3v_status hd_registry_get(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                           ivf_index **out, hd_open_info *info)
{
    hd_open_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    char name[NAME_CAP];
    join_name(name, vb, idx);
    uint64_t t0 = s3v_now_ns();
    entry *e = find(r, name);
    if (e) {
        uint64_t now = s3v_wall_ms();
        if (now - e->checked_wall_ms >= r->fresh_ms || now < e->checked_wall_ms) {
            info->checked = 1;
            int changed = 0;
            s3v_status st = check(r, e, deadline, &changed);
            if (st == S3V_ERR_NOT_FOUND) {
                s3v_log(S3V_LOG_INFO, "index %s: manifest is gone; closing the index", name);
                remove_entry(r, e);
                info->ms_open = (double)(s3v_now_ns() - t0) / 1e6;
                return s3v_error_context(st, "index %s", name);
            }
            if (st != S3V_OK)
                s3v_log(S3V_LOG_WARN, "index %s: freshness check failed (%s); serving generation %s", name,
                        s3v_errmsg(st), ivf_index_manifest(e->ix)->generation);
            info->reloaded = changed;
        }
        e->used_seq = ++r->seq;
        info->ms_open = (double)(s3v_now_ns() - t0) / 1e6;
        *out = e->ix;
        return S3V_OK;
    }
    ivf_index *ix;
    s3v_status st = ivf_index_open(r->st, name, r->cache, deadline, &ix);
    info->ms_open = (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return st;
    info->opened = 1;
    if (r->len == r->max_open) { /* make room: close the least recently used */
        entry *lru = &r->e[0];
        for (size_t i = 1; i < r->len; i++)
            if (r->e[i].used_seq < lru->used_seq) lru = &r->e[i];
        s3v_log(S3V_LOG_INFO, "index %s: closed to make room (at most %u open)", lru->name, r->max_open);
        remove_entry(r, lru);
    }
    e = &r->e[r->len++];
    memcpy(e->name, name, sizeof e->name);
    e->ix = ix;
    e->checked_wall_ms = s3v_wall_ms();
    e->used_seq = ++r->seq;
    s3v_log(S3V_LOG_INFO, "index %s: opened generation %s (%u clusters, dimension %u, %.1f ms)", name,
            ivf_index_manifest(ix)->generation, ivf_index_manifest(ix)->nlist,
            ivf_index_manifest(ix)->dimension, info->ms_open);
    *out = ix;
    return S3V_OK;
}

s3v_status hd_registry_recheck(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                               int *changed)
{
    *changed = 0;
    char name[NAME_CAP];
    join_name(name, vb, idx);
    entry *e = find(r, name);
    if (!e) return S3V_OK;
    s3v_status st = check(r, e, deadline, changed);
    if (st == S3V_ERR_NOT_FOUND) {
        remove_entry(r, e);
        return s3v_error_context(st, "index %s", name);
    }
    return st;
}
