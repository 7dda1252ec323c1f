/* engine/tail.c: the unindexed tail (see tail.h). */
#include "engine/tail.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/topk.h"

#define NO_ROW       UINT32_MAX
#define FIT_MIN_ROWS 64    /* live rows before a grid is fitted (fewer are scanned exactly) */
#define FIT_MAX_ROWS 65536 /* no refit once a grid was fitted on this many rows */
#define FIT_SAMPLE   4096  /* rows sampled for the grid's ranges */
#define BLOCK        256   /* rows per int8 kernel call */
#define GRID_SPAN    1.75f /* the grid spans the sample's range this many times (see fit_grid) */
#define COMPACT_DEAD 4096  /* dead rows before the row arrays are rebuilt (and dead > live) */

typedef struct tbuf {
    uint8_t *bytes;
    size_t size;
    uint32_t refs;
} tbuf;

typedef struct tkey {
    uint64_t hash;
    const uint8_t *key; /* NULL: empty slot */
    uint32_t key_len;
    uint32_t row; /* NO_ROW: tombstone */
    uint32_t buf; /* buffer holding key */
    uint64_t seq;
} tkey;

typedef struct trow {
    const uint8_t *vec;
    const uint8_t *key;
    const uint8_t *meta;
    uint32_t key_len, meta_len;
    uint32_t buf;
    float err; /* |x' - x8|, rounded up (x' = x, or x/|x| for cosine) */
    float inv_norm;
    uint64_t hash;
    uint64_t seq;
    uint8_t alive;
} trow;

struct ivf_tail {
    uint32_t dim;
    ivf_metric metric;
    uint64_t next;
    size_t max_bytes;
    const kern_table *kt;
    tbuf *bufs;
    size_t nbufs, cap_bufs;
    size_t buf_bytes;
    tkey *tab;
    size_t tab_cap, tab_len;
    trow *rows;
    int8_t *codes;
    /* what the scan touches per row, apart from the codes: kept dense */
    uint8_t *live_v; /* 1 while the row is its key's latest record */
    float *errs;     /* rows[i].err */
    float *blkmax;   /* per BLOCK rows: at least the largest err of its live rows */
    uint32_t nrows, cap_rows, dead;
    int have_grid;
    uint64_t grid_rows;
    float *off;
    float scale;
    uint64_t objects, records, live, tombstones;
    /* search scratch */
    float *qn;
    int8_t *cq;
    int32_t *d8;
    float *xbuf;
};

s3v_status ivf_tail_new(uint32_t dim, ivf_metric metric, uint64_t start, size_t max_bytes, ivf_tail **out)
{
    if (dim == 0 || dim > IVF_DIM_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "tail dimension %u out of range", dim);
    ivf_tail *t = calloc(1, sizeof *t);
    if (!t) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    t->dim = dim;
    t->metric = metric;
    t->next = start;
    t->max_bytes = max_bytes ? max_bytes : IVF_TAIL_DEFAULT_MAX_BYTES;
    t->kt = kern_get();
    t->off = malloc(dim * sizeof *t->off);
    t->qn = malloc(dim * sizeof *t->qn);
    t->cq = malloc(dim);
    t->xbuf = malloc(dim * sizeof *t->xbuf);
    t->d8 = malloc(BLOCK * sizeof *t->d8);
    if (!t->off || !t->qn || !t->cq || !t->d8 || !t->xbuf) {
        ivf_tail_free(t);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    *out = t;
    return S3V_OK;
}

void ivf_tail_free(ivf_tail *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nbufs; i++) free(t->bufs[i].bytes);
    free(t->bufs);
    free(t->tab);
    free(t->rows);
    free(t->codes);
    free(t->live_v);
    free(t->errs);
    free(t->blkmax);
    free(t->off);
    free(t->qn);
    free(t->cq);
    free(t->d8);
    free(t->xbuf);
    free(t);
}

uint64_t ivf_tail_next(const ivf_tail *t) { return t->next; }

static size_t memory(const ivf_tail *t)
{
    return t->buf_bytes + (size_t)t->cap_rows * (sizeof(trow) + t->dim + 1 + sizeof(float)) +
           ((size_t)t->cap_rows / BLOCK + 1) * sizeof(float) + t->tab_cap * sizeof(tkey) +
           t->cap_bufs * sizeof(tbuf);
}

void ivf_tail_get_counts(const ivf_tail *t, ivf_tail_counts *out)
{
    out->objects = t->objects;
    out->records = t->records;
    out->keys = t->live + t->tombstones;
    out->live = t->live;
    out->tombstones = t->tombstones;
    out->bytes = memory(t);
}

static void unref(ivf_tail *t, uint32_t b)
{
    tbuf *x = &t->bufs[b];
    if (--x->refs == 0) {
        free(x->bytes);
        x->bytes = NULL;
        t->buf_bytes -= x->size;
        x->size = 0;
    }
}

/* ---- key table (open addressing, linear probing, never shrinks) ---- */

static tkey *find_slot(const ivf_tail *t, const uint8_t *key, size_t len, uint64_t hash)
{
    size_t mask = t->tab_cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        tkey *e = &t->tab[i];
        if (!e->key) return e;
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0) return e;
    }
}

static s3v_status grow_table(ivf_tail *t, size_t need)
{
    if (need * 2 <= t->tab_cap) return S3V_OK;
    size_t cap = t->tab_cap ? t->tab_cap : 1024;
    while (need * 2 > cap) cap *= 2;
    tkey *nt = calloc(cap, sizeof *nt);
    if (!nt) return s3v_errorf(S3V_ERR_NOMEM, "out of memory growing the tail's key table");
    tkey *old = t->tab;
    size_t old_cap = t->tab_cap;
    t->tab = nt;
    t->tab_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key) *find_slot(t, old[i].key, old[i].key_len, old[i].hash) = old[i];
    free(old);
    return S3V_OK;
}

ivf_tail_state ivf_tail_lookup(const ivf_tail *t, const uint8_t *key, size_t key_len, uint64_t hash,
                               uint32_t *row)
{
    if (!t->tab_len) return IVF_TAIL_ABSENT;
    const tkey *e = find_slot(t, key, key_len, hash);
    if (!e->key) return IVF_TAIL_ABSENT;
    if (e->row == NO_ROW) return IVF_TAIL_DELETED;
    if (row) *row = e->row;
    return IVF_TAIL_PUT;
}

/* ---- rows and the int8 grid ---- */

static s3v_status grow_rows(ivf_tail *t, uint32_t need)
{
    if (need <= t->cap_rows) return S3V_OK;
    if (need >= NO_ROW)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "the tail holds too many vectors; run compaction");
    uint32_t cap = t->cap_rows ? t->cap_rows : 1024;
    while (cap < need) cap = cap > UINT32_MAX / 2 ? NO_ROW - 1 : cap * 2;
    trow *r = realloc(t->rows, (size_t)cap * sizeof *r);
    if (r) t->rows = r;
    int8_t *c = realloc(t->codes, (size_t)cap * t->dim);
    if (c) t->codes = c;
    uint8_t *lv = realloc(t->live_v, cap);
    if (lv) t->live_v = lv;
    float *e = realloc(t->errs, (size_t)cap * sizeof *e);
    if (e) t->errs = e;
    float *bm = realloc(t->blkmax, ((size_t)cap / BLOCK + 1) * sizeof *bm);
    if (bm) t->blkmax = bm;
    if (!r || !c || !lv || !e || !bm) return s3v_errorf(S3V_ERR_NOMEM, "out of memory growing the tail");
    t->cap_rows = cap;
    return S3V_OK;
}

/* Row r's vector as the grid sees it (unit length for cosine) into out. */
static void row_point(const ivf_tail *t, const trow *r, float *out)
{
    for (uint32_t j = 0; j < t->dim; j++) {
        float v = le_get_f32(r->vec + 4 * (size_t)j);
        out[j] = t->metric == IVF_METRIC_COSINE ? (float)((double)v * r->inv_norm) : v;
    }
}

/* |p - (off + scale * c)| in double, the exact error of a code (the bound's ingredient). */
static double code_error(const ivf_tail *t, const float *p, const int8_t *c)
{
    double e = 0;
    for (uint32_t j = 0; j < t->dim; j++) {
        double d = (double)p[j] - ((double)t->off[j] + (double)t->scale * c[j]);
        e += d * d;
    }
    return sqrt(e);
}

static void encode_row(ivf_tail *t, uint32_t i)
{
    trow *r = &t->rows[i];
    int8_t *c = t->codes + (size_t)i * t->dim;
    row_point(t, r, t->xbuf);
    quant_i8 q = {t->dim, t->off, t->scale};
    if (quant_encode_row(IVF_ENC_I8, &q, t->xbuf, t->dim, (uint8_t *)c) != S3V_OK) /* i8 never fails */
        memset(c, 0, t->dim);
    double e = code_error(t, t->xbuf, c);
    r->err = nextafterf((float)(e * (1 + 1e-6)), INFINITY);
    t->errs[i] = r->err;
    if (r->err > t->blkmax[i / BLOCK]) t->blkmax[i / BLOCK] = r->err;
}

/* Fits the grid to (a sample of) the live rows, then re-encodes every live row. One scale for every
 * dimension (so the int8 kernel's sum is the distance on the grid), set by the widest dimension; each
 * dimension's range is its sample range widened GRID_SPAN times around its centre, so that few later values
 * are clamped: a clamped value makes its vector's error, and so its bound, large. Measured on GloVe-100
 * (100K vectors, 200 queries, the true 10th-neighbour distance as the bound): 0.5/99.5 percentiles leave
 * 57 % of the vectors to score exactly, the sample's min/max 3.9 %, min/max x 1.5 0.016 %, x 1.75 0.004 %,
 * x 3 0.008 % (the rounding error grows with the scale). The error stored per vector keeps the bound exact
 * whatever the grid. */
static s3v_status fit_grid(ivf_tail *t)
{
    uint32_t *ids = malloc((size_t)(t->live < FIT_SAMPLE ? t->live : FIT_SAMPLE) * sizeof *ids + 4);
    float *pts = NULL, *lo = NULL, *hi = NULL;
    s3v_status st = S3V_OK;
    if (!ids) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    size_t m = 0;
    uint64_t stride = t->live / FIT_SAMPLE + 1, seen = 0;
    for (uint32_t i = 0; i < t->nrows && m < FIT_SAMPLE; i++)
        if (t->rows[i].alive && seen++ % stride == 0) ids[m++] = i;
    pts = malloc((m ? m : 1) * (size_t)t->dim * sizeof *pts);
    lo = malloc(t->dim * sizeof *lo);
    hi = malloc(t->dim * sizeof *hi);
    if (!pts || !lo || !hi) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t r = 0; r < m; r++) row_point(t, &t->rows[ids[r]], pts + r * t->dim);
    for (uint32_t j = 0; j < t->dim; j++) {
        float a = INFINITY, b = -INFINITY;
        for (size_t r = 0; r < m; r++) {
            float v = pts[r * t->dim + j];
            if (v < a) a = v;
            if (v > b) b = v;
        }
        float c = (a + b) * 0.5f, h = (b - a) * 0.5f * GRID_SPAN;
        lo[j] = c - h;
        hi[j] = c + h;
    }
    quant_i8_fit(t->dim, lo, hi, t->off, &t->scale);
    t->have_grid = 1;
    t->grid_rows = t->live;
    for (uint32_t i = 0; i < t->nrows; i += BLOCK) t->blkmax[i / BLOCK] = 0;
    for (uint32_t i = 0; i < t->nrows; i++)
        if (t->rows[i].alive) encode_row(t, i);
fail:
    free(ids);
    free(pts);
    free(lo);
    free(hi);
    return st;
}

/* Drops dead rows from the arrays (row numbers change). */
static void compact_rows(ivf_tail *t)
{
    uint32_t *map = malloc((size_t)t->nrows * sizeof *map);
    if (!map) return; /* keeping dead rows is only slower */
    uint32_t w = 0;
    for (uint32_t i = 0; i < t->nrows; i++) {
        if (!t->rows[i].alive) {
            map[i] = NO_ROW;
            continue;
        }
        map[i] = w;
        if (w != i) {
            t->rows[w] = t->rows[i];
            memcpy(t->codes + (size_t)w * t->dim, t->codes + (size_t)i * t->dim, t->dim);
        }
        t->live_v[w] = 1;
        t->errs[w] = t->rows[w].err;
        w++;
    }
    for (uint32_t i = 0; i < w; i++) {
        if (i % BLOCK == 0) t->blkmax[i / BLOCK] = 0;
        if (t->errs[i] > t->blkmax[i / BLOCK]) t->blkmax[i / BLOCK] = t->errs[i];
    }
    for (size_t i = 0; i < t->tab_cap; i++)
        if (t->tab[i].key && t->tab[i].row != NO_ROW) t->tab[i].row = map[t->tab[i].row];
    t->nrows = w;
    t->dead = 0;
    free(map);
}

/* ---- apply ---- */

s3v_status ivf_tail_apply(ivf_tail *t, uint8_t *bytes, const wal_object *o)
{
    s3v_status st = S3V_OK;
    if (o->seq != t->next || o->dim != t->dim) {
        free(bytes);
        return s3v_errorf(S3V_ERR_INTERNAL, "log object %llu applied out of order (expected %llu)",
                          (unsigned long long)o->seq, (unsigned long long)t->next);
    }
    size_t size = WAL_HEADER_SIZE + o->body_size;
    size_t projected = memory(t) + size + (size_t)o->count * (sizeof(trow) + t->dim + 5 + 2 * sizeof(tkey));
    if (projected > t->max_bytes) {
        free(bytes);
        return s3v_errorf(S3V_ERR_TOO_LARGE,
                          "the unindexed log needs more than %zu MiB of memory; run compaction to fold it in",
                          t->max_bytes >> 20);
    }
    /* reserve everything first so that applying cannot fail halfway */
    if (t->nbufs == t->cap_bufs) {
        size_t cap = t->cap_bufs ? t->cap_bufs * 2 : 64;
        tbuf *b = realloc(t->bufs, cap * sizeof *b);
        if (!b) {
            free(bytes);
            return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        }
        t->bufs = b;
        t->cap_bufs = cap;
    }
    if ((st = grow_table(t, t->tab_len + o->count)) != S3V_OK ||
        (st = grow_rows(t, t->nrows + o->count)) != S3V_OK) {
        free(bytes);
        return st;
    }
    uint32_t b = (uint32_t)t->nbufs++;
    t->bufs[b] = (tbuf){bytes, size, 1}; /* held while applying: a later record may replace an earlier one */
    t->buf_bytes += size;
    size_t pos = 0;
    wal_record rec;
    uint32_t d = t->dim;
    while (wal_object_next(o, &pos, &rec)) {
        if (rec.op == WAL_OP_DROP) continue; /* the end of the incarnation: the index layer acts on it */
        uint64_t h = ivf_key_hash(rec.key, rec.key_len);
        tkey *e = find_slot(t, rec.key, rec.key_len, h);
        if (e->key) {
            if (e->row != NO_ROW) {
                trow *old = &t->rows[e->row];
                old->alive = 0;
                t->live_v[e->row] = 0;
                t->dead++;
                t->live--;
                unref(t, old->buf);
            } else {
                t->tombstones--;
            }
            unref(t, e->buf);
        } else {
            t->tab_len++;
        }
        e->hash = h;
        e->key = rec.key;
        e->key_len = rec.key_len;
        e->buf = b;
        e->seq = o->seq;
        t->bufs[b].refs++;
        if (rec.op == WAL_OP_PUT) {
            uint32_t i = t->nrows++;
            trow *r = &t->rows[i];
            r->vec = rec.vector;
            r->key = rec.key;
            r->key_len = rec.key_len;
            r->meta = rec.meta;
            r->meta_len = rec.meta_len;
            r->buf = b;
            r->hash = h;
            r->seq = o->seq;
            r->alive = 1;
            r->err = INFINITY;
            t->live_v[i] = 1;
            t->errs[i] = INFINITY;
            if (i % BLOCK == 0) t->blkmax[i / BLOCK] = 0; /* a fresh block (stale after compact_rows) */
            r->inv_norm = 1.0f;
            if (t->metric == IVF_METRIC_COSINE) {
                double ss = 0;
                for (uint32_t j = 0; j < d; j++) {
                    double v = le_get_f32(rec.vector + 4 * (size_t)j);
                    ss += v * v;
                }
                r->inv_norm = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            }
            t->bufs[b].refs++;
            e->row = i;
            t->live++;
            if (t->have_grid)
                encode_row(t, i); /* raises blkmax to its error */
            else
                t->blkmax[i / BLOCK] = INFINITY; /* until fit_grid encodes the row */
        } else {
            e->row = NO_ROW;
            t->tombstones++;
        }
    }
    unref(t, b); /* the hold taken above; the keys of the object still refer to it */
    t->next++;
    t->objects++;
    t->records += o->count;
    if (t->metric != IVF_METRIC_DOT && t->live >= FIT_MIN_ROWS &&
        (!t->have_grid || (t->grid_rows < FIT_MAX_ROWS && t->live >= 2 * t->grid_rows)))
        st = fit_grid(t);
    if (t->dead >= COMPACT_DEAD && t->dead > t->live) compact_rows(t);
    return st;
}

/* ---- rows ---- */

uint32_t ivf_tail_rows(const ivf_tail *t) { return t->nrows; }
int ivf_tail_row_live(const ivf_tail *t, uint32_t row) { return row < t->nrows && t->rows[row].alive; }

void ivf_tail_get_row(const ivf_tail *t, uint32_t row, ivf_tail_row *out)
{
    const trow *r = &t->rows[row];
    out->key = r->key;
    out->key_len = r->key_len;
    out->meta = r->meta;
    out->meta_len = r->meta_len;
    out->vector = r->vec;
    out->inv_norm = r->inv_norm;
    out->hash = r->hash;
    out->seq = r->seq;
}

/* ---- search ---- */

static float exact_score(const ivf_tail *t, const float *q, const trow *r)
{
    const float *x = (const float *)(const void *)r->vec; /* little-endian host, 4-byte aligned */
    switch (t->metric) {
    case IVF_METRIC_EUCLIDEAN: return t->kt->l2sq_f32(q, x, t->dim);
    case IVF_METRIC_COSINE: return 1.0f - t->kt->dot_f32(q, x, t->dim) * r->inv_norm;
    case IVF_METRIC_DOT: return -t->kt->dot_f32(q, x, t->dim);
    }
    return INFINITY;
}

static s3v_status consider(ivf_tail *t, const float *q, uint32_t i, const s3v_filter *flt, topk *heap,
                           ivf_tail_search_stats *s)
{
    const trow *r = &t->rows[i];
    s->exact++;
    float score = exact_score(t, q, r);
    if (!(score <= topk_bound(heap))) return S3V_OK;
    if (flt) {
        s->filter_evaluations++;
        if (!filter_match(flt, r->meta, r->meta ? r->meta_len : 0)) return S3V_OK;
    }
    topk_push(heap, score, IVF_TAIL_ID_BIT | i);
    return S3V_OK;
}

/* The pruning thresholds for heap bound `bound` (see ivf_tail_search). */
static void thresholds(float bound, int euclid, double rel, double err_q, float blk_err, double inv_scale,
                       double *bdist, int64_t *thr_block)
{
    *bdist = INFINITY;
    *thr_block = INT64_MAX;
    if (!isfinite(bound)) return;
    *bdist = euclid ? sqrt((double)bound * (1 + rel)) : sqrt(2 * ((double)bound + rel));
    double x = (*bdist + err_q + blk_err) * inv_scale;
    if (x * x < 9e18) *thr_block = (int64_t)ceil(x * x);
}

s3v_status ivf_tail_search(ivf_tail *t, const float *query, const s3v_filter *flt, topk *heap,
                           ivf_tail_search_stats *s)
{
    memset(s, 0, sizeof *s);
    s->live = t->live;
    if (!t->live) return S3V_OK;
    uint32_t d = t->dim;
    const float *q = query;
    if (t->metric == IVF_METRIC_COSINE) {
        double ss = 0;
        for (uint32_t j = 0; j < d; j++) ss += (double)query[j] * query[j];
        double inv = 1.0 / sqrt(ss);
        for (uint32_t j = 0; j < d; j++) t->qn[j] = (float)(query[j] * inv);
        q = t->qn;
    }
    if (!t->have_grid) {
        for (uint32_t i = 0; i < t->nrows; i++)
            if (t->rows[i].alive) S3V_TRY(consider(t, q, i, flt, heap, s));
        return S3V_OK;
    }
    quant_i8 grid = {d, t->off, t->scale};
    quant_i8_query_l2(&grid, q, t->cq);
    double err_q = code_error(t, q, t->cq);
    /* Margins for float rounding in the exact scores (relative for euclidean, absolute on the unit sphere
     * for cosine), so a vector is skipped only when its computed score could not enter the heap either. */
    double rel = 1e-3 + (double)d * 1e-6;
    double inv_scale = 1.0 / t->scale;
    int euclid = t->metric == IVF_METRIC_EUCLIDEAN;
    /* A row is ruled out when scale * sqrt(d8) - err_q - err_x > B, B the k-th best distance with the
     * margin: d8 > ((B + err_q + err_x) / scale)^2. With the block's largest err_x this is one integer
     * compare for most rows; the row's own err_x is used only near the threshold. The thresholds change
     * only when a vector enters the heap. */
    for (uint32_t r0 = 0; r0 < t->nrows; r0 += BLOCK) {
        uint32_t nb = t->nrows - r0 < BLOCK ? t->nrows - r0 : BLOCK;
        t->kt->l2sq_i8_rows(t->cq, t->codes + (size_t)r0 * d, d, nb, t->d8);
        float bound = topk_bound(heap);
        double bdist = INFINITY;
        int64_t thr_block = INT64_MAX;
        thresholds(bound, euclid, rel, err_q, t->blkmax[r0 / BLOCK], inv_scale, &bdist, &thr_block);
        for (uint32_t k = 0; k < nb; k++) {
            uint32_t i = r0 + k;
            if (!t->live_v[i] || t->d8[k] > thr_block) continue;
            if (isfinite(bdist)) {
                double x = (bdist + err_q + t->errs[i]) * inv_scale;
                if ((double)t->d8[k] > x * x) continue;
            }
            S3V_TRY(consider(t, q, i, flt, heap, s));
            float now = topk_bound(heap);
            if (now != bound) {
                bound = now;
                thresholds(bound, euclid, rel, err_q, t->blkmax[r0 / BLOCK], inv_scale, &bdist, &thr_block);
            }
        }
    }
    return S3V_OK;
}

/* ---- listing ---- */

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const ivf_tail *t = arg;
    const trow *x = &t->rows[*(const uint32_t *)a], *y = &t->rows[*(const uint32_t *)b];
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

s3v_status ivf_tail_list(const ivf_tail *t, uint64_t hash_lo, uint64_t hash_hi, int after_set,
                         uint64_t after_hash, size_t max, uint32_t *rows, size_t *n, int *more)
{
    *n = 0;
    *more = 0;
    size_t m = 0;
    uint32_t *cand = malloc(((size_t)t->live + 1) * sizeof *cand);
    if (!cand) return s3v_errorf(S3V_ERR_NOMEM, "out of memory listing the tail");
    for (uint32_t i = 0; i < t->nrows; i++) {
        const trow *r = &t->rows[i];
        if (!r->alive || r->hash < hash_lo || r->hash > hash_hi || (after_set && r->hash <= after_hash))
            continue;
        cand[m++] = i;
    }
    qsort_r(cand, m, sizeof *cand, cmp_rows, (void *)t);
    size_t k = 0;
    while (k < m &&
           (k < max || (k > 0 && t->rows[cand[k]].hash == t->rows[cand[k - 1]].hash && k < max + 64))) {
        rows[k] = cand[k];
        k++;
    }
    *n = k;
    *more = k < m;
    free(cand);
    return S3V_OK;
}
