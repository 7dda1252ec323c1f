/* handler/registry.c: open indexes, the shared cluster cache, freshness checks. */
#include "handler/registry.h"

#include <pthread.h>
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
    uint64_t tail_wall_ms;    /* last time the log was read */
    uint64_t used_seq;        /* for LRU */
} entry;

typedef struct writer_entry {
    char name[NAME_CAP];
    wal_writer *w;
    uint64_t used_seq;
} writer_entry;

/* The background log probe: one worker thread with its own storage handle GETs one log slot while the
 * caller's thread serves the read (hd_registry_get_overlapped / hd_registry_settle). */
typedef struct probe {
    s3v_storage *st; /* borrowed; NULL: no probe, reads refresh the log first */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;           /* the thread exists */
    int stop;              /* asks the thread to end */
    int busy;              /* a GET is asked for or under way */
    char name[NAME_CAP];   /* the index it is for */
    char key[WAL_KEY_MAX]; /* the slot's storage key */
    uint64_t seq;          /* the slot */
    uint64_t deadline;
    uint64_t wall_ms; /* when it was asked for (becomes the entry's tail_wall_ms) */
    s3v_status got;   /* the GET's outcome, and its body */
    uint8_t *bytes;
    size_t size;
    char err[512]; /* the worker thread's error message (messages are per thread) */
} probe;

struct hd_registry {
    s3v_storage *st;
    probe pr;
    cluster_cache *cache;
    uint32_t fresh_ms;
    uint32_t max_open;
    uint32_t tail_ms;
    size_t tail_max_bytes;
    entry *e;
    size_t len;
    writer_entry *w;
    size_t wlen;
    uint64_t seq;
};

static void *probe_main(void *arg)
{
    probe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->busy && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        pthread_mutex_unlock(&p->mu);
        s3v_buf b;
        s3v_buf_init(&b, WAL_MAX_OBJECT_SIZE);
        s3v_status got = s3v_storage_get(p->st, p->key, p->deadline, &b, NULL);
        size_t size = 0;
        uint8_t *bytes = got == S3V_OK ? s3v_buf_take(&b, &size) : NULL;
        s3v_buf_free(&b);
        pthread_mutex_lock(&p->mu);
        p->got = got;
        p->bytes = bytes;
        p->size = size;
        snprintf(p->err, sizeof p->err, "%s", got == S3V_OK ? "" : s3v_errmsg(got));
        s3v_error_clear();
        p->busy = 0;
        /* wake a waiting caller after unlocking, so it does not wake only to block on the mutex */
        pthread_mutex_unlock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Hands the GET of log slot seq (storage key p->key, already written) for index `name` to the worker. */
static void probe_start(probe *p, const char *name, uint64_t deadline, uint64_t wall_ms)
{
    memcpy(p->name, name, sizeof p->name);
    p->deadline = deadline;
    p->wall_ms = wall_ms;
    pthread_mutex_lock(&p->mu);
    p->busy = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_signal(&p->cv); /* only the worker waits now; after unlocking: one wake-up, not two */
}

/* Waits until the probe is idle. */
static void probe_wait(probe *p)
{
    if (!p->running) return;
    pthread_mutex_lock(&p->mu);
    while (p->busy) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Waits for a probe nobody settled (the read failed before it could) and drops its result: the slot
 * is simply read again by the next refresh. Nothing to do when no probe is outstanding. */
static void probe_discard(probe *p)
{
    if (!p->name[0]) return;
    probe_wait(p);
    free(p->bytes);
    p->bytes = NULL;
    p->name[0] = 0;
}

s3v_status hd_registry_new(s3v_storage *st, const hd_registry_opts *opts, hd_registry **out)
{
    hd_registry *r = calloc(1, sizeof *r);
    if (!r) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    r->st = st;
    r->fresh_ms = opts->fresh_ms;
    r->max_open = opts->max_open ? opts->max_open : DEFAULT_MAX_OPEN;
    r->tail_ms = opts->tail_ms;
    r->tail_max_bytes = opts->tail_max_bytes;
    r->e = calloc(r->max_open, sizeof *r->e);
    r->w = calloc(r->max_open, sizeof *r->w);
    s3v_status rc = r->e && r->w ? cluster_cache_new(opts->cache_bytes, &r->cache)
                                 : s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    if (rc != S3V_OK) {
        free(r->e);
        free(r->w);
        free(r);
        return rc;
    }
    r->pr.st = opts->probe_storage;
    if (r->pr.st) {
        pthread_mutex_init(&r->pr.mu, NULL);
        pthread_cond_init(&r->pr.cv, NULL);
        if (pthread_create(&r->pr.thread, NULL, probe_main, &r->pr) == 0) {
            r->pr.running = 1;
        } else {
            s3v_log(S3V_LOG_WARN, "cannot start the log probe thread; reads will read the log first");
            pthread_cond_destroy(&r->pr.cv);
            pthread_mutex_destroy(&r->pr.mu);
            r->pr.st = NULL;
        }
    }
    *out = r;
    return S3V_OK;
}

void hd_registry_free(hd_registry *r)
{
    if (!r) return;
    if (r->pr.running) {
        probe_discard(&r->pr);
        pthread_mutex_lock(&r->pr.mu);
        r->pr.stop = 1;
        pthread_cond_broadcast(&r->pr.cv);
        pthread_mutex_unlock(&r->pr.mu);
        pthread_join(r->pr.thread, NULL);
        pthread_cond_destroy(&r->pr.cv);
        pthread_mutex_destroy(&r->pr.mu);
    }
    for (size_t i = 0; i < r->len; i++) ivf_index_close(r->e[i].ix);
    for (size_t i = 0; i < r->wlen; i++) wal_writer_free(r->w[i].w);
    free(r->e);
    free(r->w);
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

static s3v_status open_index(hd_registry *r, const char *name, uint64_t deadline, ivf_index **out)
{
    ivf_open_opts oo = {.tail_max_bytes = r->tail_max_bytes};
    return ivf_index_open_ex(r->st, name, r->cache, &oo, deadline, out);
}

/* Opens a fresh generation of e->name and swaps it in. */
static s3v_status reopen(hd_registry *r, entry *e, uint64_t deadline)
{
    ivf_index *nix;
    S3V_TRY(open_index(r, e->name, deadline, &nix));
    e->tail_wall_ms = s3v_wall_ms();
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

/* Applies the outcome of a log read to entry e (the reopen and error rules both paths share). */
static s3v_status after_log_read(hd_registry *r, entry *e, s3v_status st, int reo, hd_open_info *info,
                                 uint64_t deadline)
{
    if (st == S3V_OK && reo) {
        st = reopen(r, e, deadline);
        if (st == S3V_OK) info->reloaded = 1;
    }
    if (st == S3V_ERR_NOT_FOUND && reo) {
        char name[NAME_CAP];
        memcpy(name, e->name, sizeof name);
        remove_entry(r, e);
        return s3v_error_context(st, "index %s", name);
    }
    /* not serving acknowledged writes would be a wrong answer: the request fails */
    if (st != S3V_OK) return s3v_error_context(st, "reading the log of index %s", e->name);
    return S3V_OK;
}

static s3v_status get_impl(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                           ivf_index **out, hd_open_info *info, int *pending)
{
    hd_open_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (pending) *pending = 0;
    probe_discard(&r->pr);
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
        uint64_t tnow = s3v_wall_ms();
        probe *p = &r->pr;
        if (!info->reloaded && (tnow - e->tail_wall_ms >= r->tail_ms || tnow < e->tail_wall_ms)) {
            info->tail_checked = 1;
            if (pending && p->running && ivf_index_next_log_key(e->ix, p->key, sizeof p->key, &p->seq)) {
                /* only the next slot's GET is due: the worker makes it while the caller reads */
                probe_start(p, name, deadline, tnow);
                *pending = 1;
            } else {
                int reo = 0;
                ivf_refresh_info ri;
                s3v_status st = ivf_index_refresh(e->ix, deadline, &reo, &ri);
                info->tail_objects = ri.objects;
                info->tail_requests = ri.requests;
                st = after_log_read(r, e, st, reo, info, deadline);
                if (st != S3V_OK) {
                    info->ms_open = (double)(s3v_now_ns() - t0) / 1e6;
                    return st;
                }
                e->tail_wall_ms = tnow;
            }
        }
        e->used_seq = ++r->seq;
        info->ms_open = (double)(s3v_now_ns() - t0) / 1e6;
        *out = e->ix;
        return S3V_OK;
    }
    ivf_index *ix;
    s3v_status st = open_index(r, name, deadline, &ix);
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
    e->tail_wall_ms = e->checked_wall_ms;
    e->used_seq = ++r->seq;
    s3v_log(S3V_LOG_INFO, "index %s: opened generation %s (%u clusters, dimension %u, %.1f ms)", name,
            ivf_index_manifest(ix)->generation, ivf_index_manifest(ix)->nlist,
            ivf_index_manifest(ix)->dimension, info->ms_open);
    *out = ix;
    return S3V_OK;
}

s3v_status hd_registry_get(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                           ivf_index **out, hd_open_info *info)
{
    return get_impl(r, vb, idx, deadline, out, info, NULL);
}

s3v_status hd_registry_get_overlapped(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                                      ivf_index **out, hd_open_info *info, int *pending)
{
    return get_impl(r, vb, idx, deadline, out, info, pending);
}

s3v_status hd_registry_settle(hd_registry *r, const char *vb, const char *idx, uint64_t deadline, int *redo,
                              hd_open_info *info)
{
    *redo = 0;
    probe *p = &r->pr;
    char name[NAME_CAP];
    join_name(name, vb, idx);
    if (!p->name[0] || strcmp(p->name, name) != 0) return S3V_OK; /* nothing pending for this index */
    uint64_t t0 = s3v_now_ns();
    probe_wait(p);
    p->name[0] = 0;
    uint8_t *bytes = p->bytes;
    p->bytes = NULL;
    entry *e = find(r, name);
    if (!e) { /* cannot happen between get and settle; be safe: read again */
        free(bytes);
        *redo = 1;
        return S3V_OK;
    }
    s3v_status got = p->got;
    if (got != S3V_OK && got != S3V_ERR_NOT_FOUND) got = s3v_errorf(got, "%s", p->err);
    int reo = 0;
    ivf_refresh_info ri;
    s3v_status st =
        ivf_index_refresh_from(e->ix, p->seq, got, bytes, bytes ? p->size : 0, deadline, &reo, &ri);
    info->tail_objects += ri.objects;
    info->tail_requests += ri.requests;
    uint64_t tail_wall = p->wall_ms;
    st = after_log_read(r, e, st, reo, info, deadline);
    info->ms_open += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return st;
    e->tail_wall_ms = tail_wall;
    *redo = ri.objects > 0 || reo;
    return S3V_OK;
}

s3v_status hd_registry_recheck(hd_registry *r, const char *vb, const char *idx, uint64_t deadline,
                               int *changed)
{
    probe_discard(&r->pr);
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

s3v_status hd_registry_writer(hd_registry *r, const char *vb, const char *idx, wal_writer **out)
{
    char name[NAME_CAP];
    join_name(name, vb, idx);
    for (size_t i = 0; i < r->wlen; i++)
        if (strcmp(r->w[i].name, name) == 0) {
            r->w[i].used_seq = ++r->seq;
            *out = r->w[i].w;
            return S3V_OK;
        }
    wal_writer *w;
    S3V_TRY(wal_writer_new(r->st, name, &w));
    if (r->wlen == r->max_open) { /* drop the least recently used writer */
        size_t lru = 0;
        for (size_t i = 1; i < r->wlen; i++)
            if (r->w[i].used_seq < r->w[lru].used_seq) lru = i;
        wal_writer_free(r->w[lru].w);
        r->w[lru] = r->w[--r->wlen];
    }
    writer_entry *we = &r->w[r->wlen++];
    memcpy(we->name, name, sizeof we->name);
    we->w = w;
    we->used_seq = ++r->seq;
    *out = w;
    return S3V_OK;
}

void hd_registry_forget(hd_registry *r, const char *vb, const char *idx)
{
    probe_discard(&r->pr);
    char name[NAME_CAP];
    join_name(name, vb, idx);
    entry *e = find(r, name);
    if (e) remove_entry(r, e);
    for (size_t i = 0; i < r->wlen; i++)
        if (strcmp(r->w[i].name, name) == 0) {
            wal_writer_free(r->w[i].w);
            r->w[i] = r->w[--r->wlen];
            break;
        }
}
