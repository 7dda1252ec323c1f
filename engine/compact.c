/* engine/compact.c: compaction and garbage collection (see compact.h and FORMAT.md "Compaction"). */
#include "engine/compact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/tail.h"
#include "engine/wal.h"

#define MANIFEST_CAP        (IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE)
#define DEFAULT_MAX_OBJECTS 100000
#define DEFAULT_TAIL_BYTES  ((size_t)4 << 30)

typedef struct run {
    s3v_storage *st;
    const char *prefix;
    const ivf_compact_opts *o;
    ivf_compact_report *rep;
    uint64_t deadline;
    char manifest_key[2048];
} run;

static double secs(uint64_t t0) { return (double)(s3v_now_ns() - t0) / 1e9; }

static s3v_status read_manifest(run *r, ivf_manifest *m, char etag[S3V_ETAG_MAX])
{
    s3v_buf buf;
    s3v_buf_init(&buf, MANIFEST_CAP);
    s3v_obj_info info = {0};
    s3v_status st = s3v_storage_get(r->st, r->manifest_key, r->deadline, &buf, &info);
    if (st == S3V_OK) {
        st = ivf_manifest_decode(buf.ptr, buf.len, m);
        if (st != S3V_OK) st = s3v_error_context(st, "manifest %s", r->manifest_key);
    }
    s3v_buf_free(&buf);
    if (st == S3V_OK) snprintf(etag, S3V_ETAG_MAX, "%s", info.etag);
    return st;
}

/* 1 when the manifest still has etag `etag` (so nothing changed since it was read). */
static s3v_status unchanged(run *r, const char *etag, int *same)
{
    s3v_obj_info info = {0};
    s3v_status st = s3v_storage_head(r->st, r->manifest_key, r->deadline, &info);
    if (st == S3V_ERR_NOT_FOUND) {
        s3v_error_clear();
        *same = 0;
        return S3V_OK;
    }
    S3V_TRY(st);
    *same = strcmp(info.etag, etag) == 0;
    return S3V_OK;
}

typedef struct del_ctx {
    s3v_storage *st;
    uint64_t deadline;
    uint64_t deleted;
    s3v_status status;
} del_ctx;

static int del_one(void *arg, const char *key, uint64_t size, int is_prefix)
{
    del_ctx *d = arg;
    if (is_prefix) return 0;
    s3v_status st = s3v_storage_del(d->st, key, d->deadline);
    if (st != S3V_OK) {
        d->status = st;
        return 1;
    }
    d->deleted++;
    return 0;
}

static s3v_status delete_generation(run *r, const char *gen)
{
    char rel[IVF_NAME_MAX + 2], p[2048];
    snprintf(rel, sizeof rel, "%s/", gen);
    S3V_TRY(ivf_key_join(r->prefix, rel, p, sizeof p));
    del_ctx d = {r->st, r->deadline, 0, S3V_OK};
    s3v_list_req req = {p, NULL, NULL, 0};
    S3V_TRY(s3v_storage_list(r->st, &req, r->deadline, del_one, &d));
    r->rep->gc_objects += d.deleted;
    return d.status;
}

/* Deletes slots from..to; on a failure (a deadline) *done_to is the last slot deleted + 1. */
static s3v_status delete_range(run *r, uint64_t incarnation, uint64_t from, uint64_t to, uint64_t *next)
{
    char key[WAL_KEY_MAX];
    for (uint64_t s = from; s <= to; s++) {
        *next = s;
        S3V_TRY(wal_object_key(r->prefix, incarnation, s, key, sizeof key));
        S3V_TRY(s3v_storage_del(r->st, key, r->deadline));
        r->rep->gc_objects++;
    }
    *next = to + 1;
    return S3V_OK;
}

typedef struct gen_list {
    char (*names)[IVF_NAME_MAX];
    size_t len, cap;
    size_t skip; /* length of "<prefix>/" */
    s3v_status st;
} gen_list;

static int on_folder(void *arg, const char *key, uint64_t size, int is_prefix)
{
    gen_list *g = arg;
    if (!is_prefix || strlen(key) <= g->skip + 1) return 0;
    char name[IVF_NAME_MAX];
    size_t n = strlen(key) - g->skip - 1; /* without the trailing '/' */
    if (n >= sizeof name) return 0;
    memcpy(name, key + g->skip, n);
    name[n] = 0;
    if (!ivf_generation_valid(name)) return 0;
    if (g->len == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        char(*p)[IVF_NAME_MAX] = realloc(g->names, cap * sizeof *p);
        if (!p) {
            g->st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            return 1;
        }
        g->names = p;
        g->cap = cap;
    }
    memcpy(g->names[g->len++], name, n + 1);
    return 0;
}

typedef struct inc_list {
    uint64_t *v;
    size_t len, cap;
    size_t skip;
} inc_list;

static int on_inc(void *arg, const char *key, uint64_t size, int is_prefix)
{
    inc_list *l = arg;
    size_t kl = strlen(key);
    if (!is_prefix || kl != l->skip + 17) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = key[l->skip + (size_t)i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = (v << 4) | (uint64_t)d;
    }
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        uint64_t *p = realloc(l->v, cap * sizeof *p);
        if (!p) return 1;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->len++] = v;
    return 0;
}

/* Deletes the logs of ended incarnations (a DROP marker older than its grace period) under r->prefix, all
 * but `current` when has_current. */
static s3v_status collect_dead_logs(run *r, int has_current, uint64_t current)
{
    char root[2048];
    S3V_TRY(wal_root(r->prefix, root, sizeof root));
    inc_list l = {NULL, 0, 0, strlen(root)};
    s3v_list_req req = {root, "/", NULL, 0};
    s3v_status st = s3v_storage_list(r->st, &req, r->deadline, on_inc, &l);
    uint64_t now = s3v_wall_ms();
    for (size_t i = 0; st == S3V_OK && i < l.len; i++) {
        if (has_current && l.v[i] == current) continue;
        int ended = 0;
        uint64_t at = 0;
        uint32_t grace = 0;
        st = wal_log_ended(r->st, r->prefix, l.v[i], r->deadline, &ended, &at, &grace);
        if (st != S3V_OK || !ended) continue;
        if (!at || !grace || now <= at || now - at <= (uint64_t)grace * 1000) {
            r->rep->gc_pending++;
            continue;
        }
        char folder[2048];
        st = wal_folder(r->prefix, l.v[i], folder, sizeof folder);
        del_ctx d = {r->st, r->deadline, 0, S3V_OK};
        s3v_list_req fr = {folder, NULL, NULL, 0};
        if (st == S3V_OK) st = s3v_storage_list(r->st, &fr, r->deadline, del_one, &d);
        if (st == S3V_OK) st = d.status;
        r->rep->gc_objects += d.deleted;
        if (st == S3V_OK) r->rep->gc_dead_logs++;
    }
    free(l.v);
    return st;
}

static int is_retired_generation(const ivf_manifest *m, const char *gen)
{
    for (size_t i = 0; i < m->retired_len; i++)
        if (m->retired[i].generation[0] && strcmp(m->retired[i].generation, gen) == 0) return 1;
    return 0;
}

/* Garbage collection against manifest m (etag): *keep receives the retired entries that stay (still in
 * their grace period, or not fully deleted), *changed = 1 when that differs from m's list. */
static s3v_status collect(run *r, const ivf_manifest *m, const char *etag, ivf_retired **keep,
                          size_t *keep_len, int *changed)
{
    uint64_t t0 = s3v_now_ns();
    *changed = 0;
    *keep_len = 0;
    *keep = calloc(m->retired_len + 2, sizeof **keep);
    if (!*keep) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    uint64_t now = s3v_wall_ms(), grace_ms = (uint64_t)m->grace_seconds * 1000;
    size_t expired = 0;
    for (size_t i = 0; i < m->retired_len; i++) {
        const ivf_retired *x = &m->retired[i];
        if (now > x->at_ms && now - x->at_ms > grace_ms)
            expired++;
        else
            r->rep->gc_pending++;
    }
    /* orphans: generation folders that are neither current nor retired, with a counter at most the
     * current one (a newer counter may be a compaction still writing) */
    gen_list g = {0};
    char root[2048];
    s3v_status st = ivf_key_join(r->prefix, "", root, sizeof root);
    if (st == S3V_OK && *r->prefix) snprintf(root, sizeof root, "%s/", r->prefix);
    g.skip = strlen(root);
    s3v_list_req req = {root, "/", NULL, 0};
    if (st == S3V_OK) st = s3v_storage_list(r->st, &req, r->deadline, on_folder, &g);
    if (st == S3V_OK) st = g.st;
    size_t norphans = 0;
    uint32_t current = ivf_generation_counter(m->generation);
    for (size_t i = 0; st == S3V_OK && i < g.len; i++)
        if (strcmp(g.names[i], m->generation) != 0 && !is_retired_generation(m, g.names[i]) &&
            ivf_generation_counter(g.names[i]) <= current)
            memcpy(g.names[norphans++], g.names[i], IVF_NAME_MAX);
    int same = 1;
    if (st == S3V_OK && (expired || norphans)) st = unchanged(r, etag, &same);
    if (st != S3V_OK || !same) { /* keep everything: a newer manifest may name these objects */
        memcpy(*keep, m->retired, m->retired_len * sizeof **keep);
        *keep_len = m->retired_len;
        free(g.names);
        r->rep->seconds_gc += secs(t0);
        return st;
    }
    for (size_t i = 0; st == S3V_OK && i < norphans; i++) {
        st = delete_generation(r, g.names[i]);
        if (st == S3V_OK) r->rep->gc_orphans++;
    }
    free(g.names);
    if (st == S3V_OK) st = collect_dead_logs(r, 1, m->incarnation);
    for (size_t i = 0; i < m->retired_len; i++) {
        const ivf_retired *x = &m->retired[i];
        int exp = now > x->at_ms && now - x->at_ms > grace_ms;
        if (exp && st == S3V_OK) {
            if (x->generation[0]) {
                st = delete_generation(r, x->generation);
                if (st == S3V_OK) {
                    r->rep->gc_generations++;
                    *changed = 1;
                    continue;
                }
            } else {
                uint64_t next = x->wal_from;
                st = delete_range(r, m->incarnation, x->wal_from, x->wal_to, &next);
                if (st == S3V_OK) {
                    r->rep->gc_log_ranges++;
                    *changed = 1;
                    continue;
                }
                if (next > x->wal_from) { /* partly deleted: keep the rest */
                    (*keep)[*keep_len] = *x;
                    (*keep)[(*keep_len)++].wal_from = next;
                    *changed = 1;
                    continue;
                }
            }
        }
        (*keep)[(*keep_len)++] = *x;
    }
    r->rep->seconds_gc += secs(t0);
    if (st != S3V_OK) {
        s3v_log(S3V_LOG_WARN, "compaction of %s: garbage collection stopped: %s", r->prefix, s3v_errmsg(st));
        if (st == S3V_ERR_TIMEOUT) return st;
        s3v_error_clear();
    }
    return S3V_OK;
}

/* Publishes m (an edited copy of the manifest read with etag) with If-Match. */
static s3v_status put_manifest(run *r, const ivf_manifest *m, const char *etag)
{
    s3v_buf buf;
    s3v_buf_init(&buf, MANIFEST_CAP);
    s3v_status st = ivf_manifest_encode(m, &buf);
    if (st == S3V_OK) {
        s3v_put_cond cond = {S3V_PUT_IF_MATCH, etag};
        st = s3v_storage_put(r->st, r->manifest_key, buf.ptr, buf.len, &cond, r->deadline, NULL);
    }
    s3v_buf_free(&buf);
    if (st == S3V_ERR_NOT_FOUND)
        st = s3v_errorf(S3V_ERR_CONFLICT, "the index was deleted during compaction");
    else if (st == S3V_ERR_PRECONDITION)
        st = s3v_errorf(S3V_ERR_CONFLICT, "another writer changed the manifest during compaction");
    return st;
}

/* A manifest like m with another retired list (borrowed) and, when empty_start is set, emptied. */
static s3v_status publish_edit(run *r, const ivf_manifest *m, const char *etag, ivf_retired *retired,
                               size_t retired_len, int empty, uint64_t wal_start)
{
    ivf_manifest e = *m; /* shallow: only fields set below differ; nothing is freed */
    e.retired = retired;
    e.retired_len = retired_len;
    if (empty) {
        ivf_generation_new(ivf_generation_counter(m->generation) + 1, e.generation);
        e.count = 0;
        e.nlist = 0;
        e.data = NULL;
        e.data_len = 0;
        e.calib = NULL;
        e.calib_len = 0;
        e.default_nprobe = 0;
        e.trained_count = 0;
        e.trained_mean_distance = 0;
        e.wal_start = wal_start;
        uint64_t now = s3v_wall_ms();
        for (size_t i = 0; i < retired_len; i++)
            if (!retired[i].at_ms) retired[i].at_ms = now;
        snprintf(r->rep->generation, sizeof r->rep->generation, "%s", e.generation);
    }
    return put_manifest(r, &e, etag);
}

/* The builder's record source: the index iterator, counting. */
typedef struct source_ctx {
    ivf_iter *it;
    uint64_t n;
} source_ctx;

static s3v_status source_next(void *arg, vec_record *rec, int *has)
{
    source_ctx *c = arg;
    S3V_TRY(ivf_iter_next(c->it, rec, has));
    if (*has) c->n++;
    return S3V_OK;
}

/* One fold against manifest m (etag). *lost = 1 when the manifest changed (retry). */
static s3v_status fold(run *r, const ivf_manifest *m, const char *etag, ivf_retired *keep, size_t keep_len,
                       int keep_changed, int *lost)
{
    const ivf_compact_opts *o = r->o;
    ivf_compact_report *rep = r->rep;
    *lost = 0;
    /* anything to fold? one request when not */
    char key[WAL_KEY_MAX];
    S3V_TRY(wal_object_key(r->prefix, m->incarnation, m->wal_start, key, sizeof key));
    s3v_obj_info info;
    s3v_status st = s3v_storage_head(r->st, key, r->deadline, &info);
    if (st == S3V_ERR_NOT_FOUND) {
        s3v_error_clear();
        if (!keep_changed) return S3V_OK;
        st = publish_edit(r, m, etag, keep, keep_len, 0, 0); /* drop what was collected from the list */
        if (st == S3V_OK) rep->committed = 1;
        if (st == S3V_ERR_CONFLICT) { /* harmless: the next run drops them */
            s3v_error_clear();
            st = S3V_OK;
        }
        return st;
    }
    S3V_TRY(st);

    uint64_t t0 = s3v_now_ns();
    cluster_cache *cache = NULL;
    ivf_index *ix = NULL;
    ivf_iter *it = NULL;
    ivf_retired *retired = NULL;
    S3V_TRY(cluster_cache_new(0, &cache));
    ivf_open_opts oo = {.tail_max_bytes = o->tail_max_bytes ? o->tail_max_bytes : DEFAULT_TAIL_BYTES,
                        .tail_max_slots = o->max_objects ? o->max_objects : DEFAULT_MAX_OBJECTS};
    S3V_CHECK(ivf_index_open_ex(r->st, r->prefix, cache, &oo, r->deadline, &ix));
    const ivf_manifest *im = ivf_index_manifest(ix);
    if (strcmp(im->generation, m->generation) != 0 || im->incarnation != m->incarnation ||
        im->wal_start != m->wal_start) {
        *lost = 1; /* the manifest moved between our two reads */
        goto fail;
    }
    ivf_tail_counts tc;
    ivf_tail_get_counts(ivf_index_tail(ix), &tc);
    uint64_t last = ivf_tail_next(ivf_index_tail(ix)) - 1;
    rep->wal_from = m->wal_start;
    rep->wal_to = last;
    rep->folded_objects = tc.objects;
    rep->folded_records = tc.records;
    rep->count_before = m->count;
    rep->nlist_before = m->nlist;
    rep->seconds_read += secs(t0);

    retired = calloc(keep_len + 2, sizeof *retired);
    if (!retired) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(retired, keep, keep_len * sizeof *retired);
    size_t nret = keep_len;
    if (m->nlist)
        snprintf(retired[nret++].generation, IVF_NAME_MAX, "%s", m->generation); /* at 0: at commit */
    retired[nret].wal_from = m->wal_start;
    retired[nret++].wal_to = last;
    if (nret > IVF_RETIRED_MAX) {
        st = s3v_errorf(S3V_ERR_TOO_LARGE, "the manifest's retired list is full; run compaction again later");
        goto fail;
    }

    t0 = s3v_now_ns();
    S3V_CHECK(ivf_iter_new(ix, r->deadline, &it));
    source_ctx sc = {it, 0};
    ivf_source src = {source_next, &sc, m->dimension, 0};
    const ivf_centroids *c = ivf_index_centroids(ix);
    ivf_build_opts bo = {.metric = m->metric,
                         .encoding = m->encoding,
                         .seed = o->seed ? o->seed : 1,
                         .threads = o->threads,
                         .max_cluster_factor = o->max_cluster_factor,
                         .zstd_level = o->zstd_level,
                         .tmp_dir = o->tmp_dir,
                         .non_filterable = (const char *const *)m->non_filterable,
                         .non_filterable_len = m->non_filterable_len,
                         .progress = o->progress,
                         .progress_arg = o->progress_arg,
                         .deadline_ns = r->deadline,
                         .base = m,
                         .base_etag = etag,
                         .wal_start = last + 1,
                         .retired = retired,
                         .retired_len = nret,
                         .centroids = m->nlist ? c->centroids : NULL,
                         .centroids_len = m->nlist,
                         .trained_count = m->trained_count,
                         .trained_mean_distance = m->trained_mean_distance,
                         .growth_factor = o->growth_factor,
                         .drift_factor = o->drift_factor,
                         .q_offset = m->nlist && m->encoding == IVF_ENC_I8 ? c->q_offset : NULL,
                         .q_scale = c->q_scale};
    ivf_build_report br;
    st = ivf_build_from(r->st, r->prefix, &src, &bo, &br);
    rep->seconds_build += secs(t0);
    if (st == S3V_ERR_INVALID && sc.n == 0) { /* everything was deleted: an empty index */
        s3v_error_clear();
        st = publish_edit(r, m, etag, retired, nret, 1, last + 1);
        if (st == S3V_OK) {
            rep->committed = 1;
            rep->count_after = 0;
            rep->nlist_after = 0;
        }
    } else if (st == S3V_OK) {
        rep->committed = 1;
        snprintf(rep->generation, sizeof rep->generation, "%s", br.generation);
        rep->count_after = br.count;
        rep->nlist_after = br.nlist;
        rep->splits = br.splits;
        rep->retrained = br.retrained;
        rep->retrain_reason = br.retrain_reason;
    }
    if (st == S3V_ERR_CONFLICT) {
        s3v_log(S3V_LOG_INFO, "compaction of %s lost the race: %s", r->prefix, s3v_errmsg(st));
        s3v_error_clear();
        *lost = 1;
        st = S3V_OK;
    }
fail:
    ivf_iter_free(it);
    ivf_index_close(ix);
    cluster_cache_free(cache);
    free(retired);
    return st;
}

s3v_status ivf_compact(s3v_storage *st, const char *prefix, const ivf_compact_opts *opts,
                       ivf_compact_report *report)
{
    ivf_compact_opts defaults = {0};
    ivf_compact_report local;
    if (!opts) opts = &defaults;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    report->wal_to = 0;
    run r = {st, prefix ? prefix : "", opts, report, opts->deadline_ns ? opts->deadline_ns : S3V_NO_DEADLINE,
             ""};
    S3V_TRY(ivf_key_join(r.prefix, "manifest", r.manifest_key, sizeof r.manifest_key));
    uint64_t t_all = s3v_now_ns();
    int attempts = opts->attempts > 0 ? opts->attempts : 2;
    s3v_status rc = S3V_OK;
    for (int a = 0; a < attempts; a++) {
        ivf_manifest m;
        char etag[S3V_ETAG_MAX];
        uint64_t t0 = s3v_now_ns();
        rc = read_manifest(&r, &m, etag);
        report->seconds_read += secs(t0);
        if (rc != S3V_OK) break;
        report->attempts++;
        if (!a) snprintf(report->old_generation, sizeof report->old_generation, "%s", m.generation);
        snprintf(report->generation, sizeof report->generation, "%s", m.generation);
        report->gc_pending = 0;
        ivf_retired *keep = NULL;
        size_t keep_len = 0;
        int changed = 0, lost = 0;
        if (!opts->no_gc) {
            rc = collect(&r, &m, etag, &keep, &keep_len, &changed);
        } else {
            keep = calloc(m.retired_len + 1, sizeof *keep);
            if (!keep)
                rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            else
                memcpy(keep, m.retired, m.retired_len * sizeof *keep);
            keep_len = m.retired_len;
        }
        if (rc == S3V_OK && opts->gc_only) {
            if (changed) {
                rc = publish_edit(&r, &m, etag, keep, keep_len, 0, 0);
                if (rc == S3V_OK) report->committed = 1;
                if (rc == S3V_ERR_CONFLICT) {
                    s3v_error_clear();
                    rc = S3V_OK;
                }
            }
        } else if (rc == S3V_OK) {
            rc = fold(&r, &m, etag, keep, keep_len, changed, &lost);
        }
        free(keep);
        ivf_manifest_free(&m);
        if (rc != S3V_OK || !lost) break;
        report->lost_races++;
        if (a + 1 == attempts)
            rc = s3v_errorf(S3V_ERR_CONFLICT,
                            "the manifest changed under every compaction attempt (%d); nothing was published",
                            attempts);
    }
    report->seconds_total = secs(t_all);
    return rc;
}

s3v_status ivf_collect_dropped(s3v_storage *st, const char *prefix, uint64_t deadline_ns,
                               ivf_compact_report *report)
{
    ivf_compact_opts o = {0};
    ivf_compact_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    run r = {st, prefix ? prefix : "", &o, report, deadline_ns ? deadline_ns : S3V_NO_DEADLINE, ""};
    uint64_t t0 = s3v_now_ns();
    s3v_status rc = collect_dead_logs(&r, 0, 0);
    report->seconds_gc = report->seconds_total = secs(t0);
    return rc;
}
