/* engine/build.c: the offline IVF builder. See build.h for the pipeline. */
#include "engine/build.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/log.h"
#include "common/rng.h"
#include "engine/kernels.h"
#include "engine/kmeans.h"
#include "engine/quant.h"
#include "engine/score.h"
#include "engine/topk.h"
#include "engine/version.h"
#include "engine/wal.h"

#define DATA_OBJECT_MAX (4ull << 30) /* roll over to a new data object beyond this */
#define TRAIN_MEM_MAX   (1ull << 30) /* bytes of training sample */
#define CALIB_K         10
#define CALIB_TARGET    0.97f
#define ASSIGN_BATCH    65536

typedef struct tmpfile_ref {
    char path[4200];
    int fd;
} tmpfile_ref;

typedef struct builder {
    s3v_storage *st;
    const char *prefix;
    const ivf_build_opts *o;
    ivf_build_report *rep;
    const kern_table *kt;
    uint32_t dim;
    uint64_t n;
    int threads;
    uint64_t seed;
    uint64_t deadline;
    char tmp_base[4096];
    /* spill */
    tmpfile_ref vec_tmp, rest_tmp;
    const float *vecs; /* mmap of vec_tmp: n * dim */
    size_t vecs_size;
    const uint8_t *rest; /* mmap of rest_tmp */
    size_t rest_size;
    uint64_t *rest_off; /* n + 1 */
    uint64_t *hash;     /* n */
    float *inv_norm;    /* n, cosine only */
    float *vmin, *vmax; /* dim */
    uint64_t cap;       /* capacity of the per-vector arrays */
    /* model */
    uint32_t nlist;
    float *centroids; /* nlist * dim */
    uint32_t *assign; /* n */
    uint32_t *counts; /* nlist */
    uint32_t *order;  /* n, vector ids grouped by cluster */
    uint64_t *start;  /* nlist + 1, offsets into order */
    float *q_offset;
    float q_scale;
    /* output */
    ivf_cluster_ref *refs;
    ivf_keypage_ref *pages;
    uint32_t npages;
    tmpfile_ref *data_tmp;
    uint64_t *data_sizes;
    size_t data_len;
    const uint8_t **data_maps; /* data_len mmaps of the written data objects, for calibration */
    tmpfile_ref keymap_tmp;
    uint64_t keymap_size;
    ivf_calib_point *calib;
    size_t calib_len;
    uint64_t trained_count; /* for the manifest's "training" */
    double trained_mean;
} builder;

uint32_t ivf_default_nlist(uint64_t count)
{
    if (count == 0) return 1;
    double s = floor(sqrt((double)count) + 0.5);
    uint64_t nl = (uint64_t)s;
    if (nl > count / 39) nl = count / 39;
    if (nl < 1) nl = 1;
    if (nl > 65536) nl = 65536;
    return (uint32_t)nl;
}

static void progress(builder *b, const char *phase, uint64_t done, uint64_t total)
{
    if (b->o->progress) b->o->progress(b->o->progress_arg, phase, done, total);
}

static double secs_since(uint64_t t0) { return (double)(s3v_now_ns() - t0) / 1e9; }

static s3v_status tmp_open(builder *b, const char *what, tmpfile_ref *t)
{
    snprintf(t->path, sizeof t->path, "%s-%s-XXXXXX", b->tmp_base, what);
    t->fd = mkstemp(t->path);
    if (t->fd < 0) {
        int e = errno;
        t->path[0] = 0;
        return s3v_errorf(S3V_ERR_IO, "cannot create a temporary file in %s: %s",
                          b->o->tmp_dir ? b->o->tmp_dir : "/tmp", strerror(e));
    }
    return S3V_OK;
}

static void tmp_close(tmpfile_ref *t)
{
    if (t->fd > 0) close(t->fd);
    t->fd = -1;
    if (t->path[0]) unlink(t->path);
    t->path[0] = 0;
}

static s3v_status write_fd(int fd, const void *p, size_t n, const char *path)
{
    const uint8_t *q = p;
    while (n) {
        ssize_t w = write(fd, q, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return s3v_errorf(S3V_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        q += w;
        n -= (size_t)w;
    }
    return S3V_OK;
}

/* A write buffer in front of a temp file. */
typedef struct wbuf {
    tmpfile_ref *t;
    uint8_t *p;
    size_t len, cap;
    uint64_t written;
} wbuf;

static s3v_status wbuf_flush(wbuf *w)
{
    S3V_TRY(write_fd(w->t->fd, w->p, w->len, w->t->path));
    w->written += w->len;
    w->len = 0;
    return S3V_OK;
}

static s3v_status wbuf_put(wbuf *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) S3V_TRY(wbuf_flush(w));
    if (n > w->cap) {
        S3V_TRY(write_fd(w->t->fd, p, n, w->t->path));
        w->written += n;
        return S3V_OK;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
    return S3V_OK;
}

static s3v_status grow(builder *b, uint64_t need)
{
    if (need <= b->cap) return S3V_OK;
    uint64_t cap = b->cap ? b->cap * 2 : 65536;
    while (cap < need) cap *= 2;
    uint64_t *ro = realloc(b->rest_off, (cap + 1) * sizeof *ro);
    if (ro) b->rest_off = ro;
    uint64_t *h = realloc(b->hash, cap * sizeof *h);
    if (h) b->hash = h;
    if (!ro || !h)
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory at %llu vectors", (unsigned long long)need);
    if (b->o->metric == IVF_METRIC_COSINE) {
        float *nn = realloc(b->inv_norm, cap * sizeof *nn);
        if (!nn) return s3v_errorf(S3V_ERR_NOMEM, "out of memory at %llu vectors", (unsigned long long)need);
        b->inv_norm = nn;
    }
    b->cap = cap;
    return S3V_OK;
}

static s3v_status map_file(tmpfile_ref *t, size_t size, const void **out)
{
    if (size == 0) {
        *out = NULL;
        return S3V_OK;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, t->fd, 0);
    if (p == MAP_FAILED) return s3v_errorf(S3V_ERR_IO, "cannot map %s: %s", t->path, strerror(errno));
    *out = p;
    return S3V_OK;
}

/* Pass 1: validate, spill, hash keys, per-dimension ranges. */
static s3v_status pass_read(builder *b, const ivf_source *in)
{
    s3v_status st = S3V_OK;
    wbuf vw = {0}, rw = {0};
    S3V_TRY(tmp_open(b, "vectors", &b->vec_tmp));
    S3V_TRY(tmp_open(b, "rest", &b->rest_tmp));
    vw.t = &b->vec_tmp;
    rw.t = &b->rest_tmp;
    vw.cap = rw.cap = 4u << 20;
    vw.p = malloc(vw.cap);
    rw.p = malloc(rw.cap);
    b->vmin = malloc(b->dim * sizeof(float));
    b->vmax = malloc(b->dim * sizeof(float));
    if (!vw.p || !rw.p || !b->vmin || !b->vmax) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t j = 0; j < b->dim; j++) {
        b->vmin[j] = INFINITY;
        b->vmax[j] = -INFINITY;
    }
    uint64_t hint = in->count_hint;
    S3V_CHECK(grow(b, hint ? hint : 1)); /* also for an empty input: rest_off[0] is written below */
    for (;;) {
        vec_record rec;
        int has = 0;
        S3V_CHECK(in->next(in->arg, &rec, &has));
        if (!has) break;
        uint64_t i = b->n;
        S3V_CHECK(grow(b, i + 1));
        if (b->o->metric == IVF_METRIC_COSINE) {
            double ss = 0;
            for (uint32_t j = 0; j < b->dim; j++) ss += (double)rec.data[j] * rec.data[j];
            if (!(ss > 0)) {
                st = s3v_errorf(
                    S3V_ERR_INVALID,
                    "row %llu: a zero vector has no direction and cannot be used with the cosine metric",
                    (unsigned long long)rec.row + 1);
                goto fail;
            }
            b->inv_norm[i] = (float)(1.0 / sqrt(ss));
        }
        for (uint32_t j = 0; j < b->dim; j++) {
            if (rec.data[j] < b->vmin[j]) b->vmin[j] = rec.data[j];
            if (rec.data[j] > b->vmax[j]) b->vmax[j] = rec.data[j];
        }
        if (b->o->encoding == IVF_ENC_F16) {
            for (uint32_t j = 0; j < b->dim; j++)
                if (fabsf(rec.data[j]) > 65504.0f) {
                    st = s3v_errorf(
                        S3V_ERR_INVALID,
                        "row %llu: value %g at element %u does not fit the f16 encoding (max 65504); use f32",
                        (unsigned long long)rec.row + 1, rec.data[j], j + 1);
                    goto fail;
                }
        }
        S3V_CHECK(wbuf_put(&vw, rec.data, (size_t)b->dim * 4));
        uint8_t hdr[6];
        le_put_u16(hdr, (uint16_t)rec.key_len);
        le_put_u32(hdr + 2, (uint32_t)rec.meta_len);
        b->rest_off[i] = rw.written + rw.len;
        S3V_CHECK(wbuf_put(&rw, hdr, 6));
        S3V_CHECK(wbuf_put(&rw, rec.key, rec.key_len));
        if (rec.meta_len) S3V_CHECK(wbuf_put(&rw, rec.meta, rec.meta_len));
        b->hash[i] = ivf_key_hash(rec.key, rec.key_len);
        b->n++;
        if ((b->n & 0xffff) == 0) progress(b, "read", b->n, hint);
    }
    S3V_CHECK(wbuf_flush(&vw));
    S3V_CHECK(wbuf_flush(&rw));
    b->rest_off[b->n] = rw.written;
    progress(b, "read", b->n, b->n);
    if (b->n > UINT32_MAX) {
        st = s3v_errorf(S3V_ERR_TOO_LARGE, "more than %u vectors in one build", UINT32_MAX);
        goto fail;
    }
    b->vecs_size = (size_t)b->n * b->dim * 4;
    b->rest_size = (size_t)rw.written;
    S3V_CHECK(map_file(&b->vec_tmp, b->vecs_size, (const void **)&b->vecs));
    S3V_CHECK(map_file(&b->rest_tmp, b->rest_size, (const void **)&b->rest));
fail:
    free(vw.p);
    free(rw.p);
    return st;
}

static const float *row_of(const builder *b, uint64_t i) { return b->vecs + i * b->dim; }

/* Copies rows idx[0..m) (or m rows from first when idx is NULL) into out, normalised for cosine. */
static void gather_rows(const builder *b, const uint32_t *idx, uint64_t first, size_t m, float *out)
{
    for (size_t r = 0; r < m; r++) {
        uint64_t i = idx ? idx[r] : first + r;
        memcpy(out + r * b->dim, row_of(b, i), (size_t)b->dim * 4);
        if (b->o->metric == IVF_METRIC_COSINE)
            for (uint32_t j = 0; j < b->dim; j++) out[r * b->dim + j] *= b->inv_norm[i];
    }
}

static kmeans_metric km_metric(const builder *b)
{
    return b->o->metric == IVF_METRIC_EUCLIDEAN ? KMEANS_L2 : KMEANS_IP;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* m distinct random ids out of n (sorted, for sequential access), Floyd's algorithm via a bitmap. */
static s3v_status sample_ids(uint64_t n, size_t m, s3v_rng *rng, uint32_t **out)
{
    uint32_t *ids = malloc((m ? m : 1) * sizeof *ids);
    uint8_t *seen = calloc((size_t)(n / 8 + 1), 1);
    if (!ids || !seen) {
        free(ids);
        free(seen);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory sampling");
    }
    size_t k = 0;
    for (uint64_t j = n - m; j < n; j++) {
        uint64_t t = s3v_rng_below(rng, j + 1);
        if (seen[t / 8] & (1u << (t % 8))) t = j;
        seen[t / 8] |= (uint8_t)(1u << (t % 8));
        ids[k++] = (uint32_t)t;
    }
    free(seen);
    qsort(ids, m, sizeof *ids, cmp_u32);
    *out = ids;
    return S3V_OK;
}

static void km_progress(void *arg, int iter, int niter, double objective)
{
    builder *b = arg;
    progress(b, "train", (uint64_t)iter, (uint64_t)niter);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The i8 quantizer's per-dimension range: the 0.25 and 99.75 percentiles of a sample rather than the
 * extremes, so a few outliers (GloVe has values 13 standard deviations out) do not coarsen the grid for
 * everything else; values beyond are clamped to the end codes. */
static s3v_status fit_i8(builder *b)
{
    size_t m = b->n < 16384 ? (size_t)b->n : 16384;
    s3v_rng rng;
    s3v_rng_seed(&rng, b->seed ^ 0x6938ull);
    uint32_t *ids = NULL;
    S3V_TRY(sample_ids(b->n, m, &rng, &ids));
    float *col = malloc(m * sizeof *col);
    float *lo = malloc(b->dim * sizeof *lo), *hi = malloc(b->dim * sizeof *hi);
    b->q_offset = malloc(b->dim * sizeof(float));
    if (!col || !lo || !hi || !b->q_offset) {
        free(ids);
        free(col);
        free(lo);
        free(hi);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    size_t cut = m / 400;
    for (uint32_t j = 0; j < b->dim; j++) {
        for (size_t r = 0; r < m; r++) col[r] = row_of(b, ids[r])[j];
        qsort(col, m, sizeof *col, cmp_float);
        lo[j] = col[cut];
        hi[j] = col[m - 1 - cut];
    }
    quant_i8_fit(b->dim, lo, hi, b->q_offset, &b->q_scale);
    free(ids);
    free(col);
    free(lo);
    free(hi);
    return S3V_OK;
}

static s3v_status train(builder *b)
{
    uint64_t want = (uint64_t)b->nlist * 256;
    uint64_t mem_cap = TRAIN_MEM_MAX / ((uint64_t)b->dim * 4);
    if (mem_cap < (uint64_t)b->nlist * 39) mem_cap = (uint64_t)b->nlist * 39;
    if (want > mem_cap) want = mem_cap;
    if (want > b->n) want = b->n;
    s3v_rng rng;
    s3v_rng_seed(&rng, b->seed ^ 0x747261696eull);
    uint32_t *ids = NULL;
    S3V_TRY(sample_ids(b->n, (size_t)want, &rng, &ids));
    float *x = malloc((size_t)want * b->dim * 4);
    b->centroids = malloc((size_t)b->nlist * b->dim * 4);
    if (!x || !b->centroids) {
        free(ids);
        free(x);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory for a training sample of %llu vectors",
                          (unsigned long long)want);
    }
    gather_rows(b, ids, 0, (size_t)want, x);
    free(ids);
    kmeans_opts ko = {.k = b->nlist,
                      .niter = b->o->niter,
                      .seed = b->seed,
                      .threads = b->threads,
                      .metric = km_metric(b),
                      .spherical = b->o->metric == IVF_METRIC_COSINE,
                      .progress = km_progress,
                      .progress_arg = b};
    s3v_status st = kmeans_train(x, (size_t)want, b->dim, &ko, b->centroids);
    free(x);
    b->rep->train_points = want;
    return st;
}

/* Assigns every vector to its nearest centroid; the mean assignment distance (euclidean |x - c|, cosine
 * 1 - cos, dot -x.c) goes to b->rep->mean_distance. */
static s3v_status assign_all(builder *b, const char *phase)
{
    float *batch = NULL;
    float *dist = malloc((size_t)ASSIGN_BATCH * sizeof *dist);
    if (!dist) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    if (b->o->metric == IVF_METRIC_COSINE) {
        batch = malloc((size_t)ASSIGN_BATCH * b->dim * 4);
        if (!batch) {
            free(dist);
            return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        }
    }
    s3v_status st = S3V_OK;
    double sum = 0;
    for (uint64_t first = 0; first < b->n; first += ASSIGN_BATCH) {
        size_t m = (size_t)(b->n - first < ASSIGN_BATCH ? b->n - first : ASSIGN_BATCH);
        const float *x = row_of(b, first);
        if (batch) {
            gather_rows(b, NULL, first, m, batch);
            x = batch;
        }
        st = kmeans_assign(x, m, b->dim, b->centroids, b->nlist, km_metric(b), b->threads, b->assign + first,
                           dist);
        if (st != S3V_OK) break;
        for (size_t i = 0; i < m; i++)
            sum += b->o->metric == IVF_METRIC_EUCLIDEAN ? sqrt(dist[i] > 0 ? dist[i] : 0)
                   : b->o->metric == IVF_METRIC_COSINE  ? 1.0 + dist[i]
                                                        : dist[i];
        progress(b, phase, first + m, b->n);
    }
    free(batch);
    free(dist);
    if (st != S3V_OK) return st;
    b->rep->mean_distance = b->n ? sum / (double)b->n : 0;
    memset(b->counts, 0, b->nlist * sizeof *b->counts);
    for (uint64_t i = 0; i < b->n; i++) b->counts[b->assign[i]]++;
    return S3V_OK;
}

/* Splits every cluster larger than factor x mean into ceil(size / mean) parts with a local k-means,
 * appending the new centroids, then reassigns everything once. */
static s3v_status split_large(builder *b)
{
    double factor = b->o->max_cluster_factor > 0 ? b->o->max_cluster_factor : 4.0;
    double mean = (double)b->n / b->nlist;
    uint64_t limit = (uint64_t)ceil(factor * mean);
    if (limit < 64) limit = 64;
    uint32_t extra = 0, nsplit = 0;
    for (uint32_t c = 0; c < b->nlist; c++)
        if (b->counts[c] > limit) {
            extra += (uint32_t)ceil(b->counts[c] / mean) - 1;
            nsplit++;
        }
    if (!nsplit) return S3V_OK;
    uint32_t new_nlist = b->nlist + extra;
    float *cent = realloc(b->centroids, (size_t)new_nlist * b->dim * 4);
    uint32_t *counts = realloc(b->counts, (size_t)new_nlist * sizeof *counts);
    if (cent) b->centroids = cent;
    if (counts) b->counts = counts;
    if (!cent || !counts) return s3v_errorf(S3V_ERR_NOMEM, "out of memory splitting clusters");
    uint32_t next = b->nlist;
    s3v_status st = S3V_OK;
    for (uint32_t c = 0; c < b->nlist && st == S3V_OK; c++) {
        if (b->counts[c] <= limit) continue;
        uint32_t parts = (uint32_t)ceil(b->counts[c] / mean);
        size_t m = b->counts[c];
        size_t take = m < (size_t)parts * 256 ? m : (size_t)parts * 256;
        uint32_t *members = malloc(m * sizeof *members);
        float *x = malloc(take * b->dim * 4);
        float *sub = malloc((size_t)parts * b->dim * 4);
        if (!members || !x || !sub) st = s3v_errorf(S3V_ERR_NOMEM, "out of memory splitting clusters");
        if (st == S3V_OK) {
            size_t k = 0;
            for (uint64_t i = 0; i < b->n; i++)
                if (b->assign[i] == c) members[k++] = (uint32_t)i;
            /* an evenly spaced subset keeps this deterministic */
            for (size_t r = 0; r < take; r++) members[r] = members[(size_t)((double)r * m / take)];
            gather_rows(b, members, 0, take, x);
            kmeans_opts ko = {.k = parts,
                              .niter = b->o->niter,
                              .seed = b->seed + c,
                              .threads = b->threads,
                              .metric = km_metric(b),
                              .spherical = b->o->metric == IVF_METRIC_COSINE};
            st = kmeans_train(x, take, b->dim, &ko, sub);
        }
        if (st == S3V_OK) {
            memcpy(b->centroids + (size_t)c * b->dim, sub, (size_t)b->dim * 4);
            memcpy(b->centroids + (size_t)next * b->dim, sub + b->dim, (size_t)(parts - 1) * b->dim * 4);
            next += parts - 1;
        }
        free(members);
        free(x);
        free(sub);
        progress(b, "split", c + 1, b->nlist);
    }
    if (st != S3V_OK) return st;
    b->nlist = next;
    b->rep->splits = nsplit;
    return assign_all(b, "assign");
}

typedef struct hash_ent {
    uint64_t hash;
    uint32_t cluster;
    uint32_t id;
} hash_ent;

static int cmp_hash_ent(const void *a, const void *b)
{
    const hash_ent *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void rest_key(const builder *b, uint64_t i, const uint8_t **key, size_t *len)
{
    const uint8_t *p = b->rest + b->rest_off[i];
    *len = le_get_u16(p);
    *key = p + 6;
}

/* Sorts key hashes, rejects duplicate keys, writes the key map pages. */
static s3v_status write_keymap(builder *b)
{
    hash_ent *e = malloc((size_t)b->n * sizeof *e);
    if (!e) return s3v_errorf(S3V_ERR_NOMEM, "out of memory sorting keys");
    for (uint64_t i = 0; i < b->n; i++) e[i] = (hash_ent){b->hash[i], b->assign[i], (uint32_t)i};
    qsort(e, (size_t)b->n, sizeof *e, cmp_hash_ent);
    s3v_status st = S3V_OK;
    for (uint64_t i = 1; i < b->n; i++) {
        if (e[i].hash != e[i - 1].hash) continue;
        for (uint64_t j = i; j > 0 && e[j - 1].hash == e[i].hash; j--) {
            const uint8_t *k1, *k2;
            size_t l1, l2;
            rest_key(b, e[i].id, &k1, &l1);
            rest_key(b, e[j - 1].id, &k2, &l2);
            if (l1 == l2 && memcmp(k1, k2, l1) == 0) {
                uint32_t r1 = e[i].id < e[j - 1].id ? e[i].id : e[j - 1].id;
                uint32_t r2 = e[i].id < e[j - 1].id ? e[j - 1].id : e[i].id;
                st = s3v_errorf(S3V_ERR_INVALID,
                                "duplicate key '%.*s' at rows %u and %u (keys must be unique)",
                                (int)(l1 > 200 ? 200 : l1), (const char *)k1, r1 + 1, r2 + 1);
                goto fail;
            }
        }
    }
    S3V_CHECK(tmp_open(b, "keymap", &b->keymap_tmp));
    b->npages = (uint32_t)((b->n + IVF_KEYMAP_PAGE_ENTRIES - 1) / IVF_KEYMAP_PAGE_ENTRIES);
    b->pages = calloc(b->npages ? b->npages : 1, sizeof *b->pages);
    uint8_t *page = malloc(IVF_KEYMAP_PAGE_ENTRIES * IVF_KEYMAP_ENTRY_SIZE);
    if (!b->pages || !page) {
        free(page);
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t off = 0;
    for (uint32_t p = 0; p < b->npages && st == S3V_OK; p++) {
        uint64_t first = (uint64_t)p * IVF_KEYMAP_PAGE_ENTRIES;
        uint64_t m = b->n - first < IVF_KEYMAP_PAGE_ENTRIES ? b->n - first : IVF_KEYMAP_PAGE_ENTRIES;
        for (uint64_t i = 0; i < m; i++) {
            le_put_u64(page + i * IVF_KEYMAP_ENTRY_SIZE, e[first + i].hash);
            le_put_u32(page + i * IVF_KEYMAP_ENTRY_SIZE + 8, e[first + i].cluster);
        }
        size_t size = (size_t)m * IVF_KEYMAP_ENTRY_SIZE;
        b->pages[p] = (ivf_keypage_ref){e[first].hash, off, (uint32_t)size, s3v_crc32c(0, page, size)};
        st = write_fd(b->keymap_tmp.fd, page, size, b->keymap_tmp.path);
        off += size;
    }
    free(page);
    b->keymap_size = off;
fail:
    free(e);
    return st;
}

static s3v_status group_by_cluster(builder *b)
{
    b->order = malloc((size_t)b->n * sizeof *b->order);
    b->start = calloc((size_t)b->nlist + 1, sizeof *b->start);
    if (!b->order || !b->start) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    for (uint32_t c = 0; c < b->nlist; c++) b->start[c + 1] = b->start[c] + b->counts[c];
    uint64_t *fill = malloc((size_t)b->nlist * sizeof *fill);
    if (!fill) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    memcpy(fill, b->start, (size_t)b->nlist * sizeof *fill);
    for (uint64_t i = 0; i < b->n; i++) b->order[fill[b->assign[i]]++] = (uint32_t)i;
    free(fill);
    return S3V_OK;
}

static s3v_status new_data_object(builder *b)
{
    tmpfile_ref *t = realloc(b->data_tmp, (b->data_len + 1) * sizeof *t);
    if (t) b->data_tmp = t;
    uint64_t *s = realloc(b->data_sizes, (b->data_len + 1) * sizeof *s);
    if (s) b->data_sizes = s;
    if (!t || !s) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    b->data_tmp[b->data_len].fd = -1;
    b->data_tmp[b->data_len].path[0] = 0;
    b->data_sizes[b->data_len] = 0;
    b->data_len++;
    return tmp_open(b, "data", &b->data_tmp[b->data_len - 1]);
}

static s3v_status write_clusters(builder *b)
{
    s3v_status st = S3V_OK;
    size_t esize = ivf_encoding_size(b->o->encoding);
    uint32_t maxc = 0, minc = UINT32_MAX;
    for (uint32_t c = 0; c < b->nlist; c++) {
        if (b->counts[c] > maxc) maxc = b->counts[c];
        if (b->counts[c] < minc) minc = b->counts[c];
    }
    b->rep->max_cluster = maxc;
    b->rep->min_cluster = minc;
    quant_i8 q = {b->dim, b->q_offset, b->q_scale};
    uint8_t *vbuf = malloc((size_t)(maxc ? maxc : 1) * b->dim * esize);
    float *nbuf = malloc((size_t)(maxc ? maxc : 1) * sizeof(float));
    s3v_buf rest, block;
    s3v_buf_init(&rest, (size_t)1 << 32);
    s3v_buf_init(&block, (size_t)1 << 33);
    b->refs = calloc(b->nlist, sizeof *b->refs);
    if (!vbuf || !nbuf || !b->refs) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory writing clusters");
        goto fail;
    }
    S3V_CHECK(new_data_object(b));
    int zl = b->o->zstd_level == 0 ? 3 : b->o->zstd_level < 0 ? 0 : b->o->zstd_level;
    for (uint32_t c = 0; c < b->nlist; c++) {
        uint32_t m = b->counts[c];
        const uint32_t *mem = b->order + b->start[c];
        for (uint32_t r = 0; r < m; r++) {
            S3V_CHECK(quant_encode_row(b->o->encoding, &q, row_of(b, mem[r]), b->dim,
                                       vbuf + (size_t)r * b->dim * esize));
            if (b->inv_norm) nbuf[r] = b->inv_norm[mem[r]];
        }
        /* rest section: key lengths, keys, metadata lengths, metadata */
        s3v_buf_reset(&rest);
        uint8_t tmp[4];
        for (uint32_t r = 0; r < m; r++) {
            le_put_u16(tmp, le_get_u16(b->rest + b->rest_off[mem[r]]));
            S3V_CHECK(s3v_buf_append(&rest, tmp, 2));
        }
        for (uint32_t r = 0; r < m; r++) {
            const uint8_t *p = b->rest + b->rest_off[mem[r]];
            S3V_CHECK(s3v_buf_append(&rest, p + 6, le_get_u16(p)));
        }
        for (uint32_t r = 0; r < m; r++) {
            le_put_u32(tmp, le_get_u32(b->rest + b->rest_off[mem[r]] + 2));
            S3V_CHECK(s3v_buf_append(&rest, tmp, 4));
        }
        for (uint32_t r = 0; r < m; r++) {
            const uint8_t *p = b->rest + b->rest_off[mem[r]];
            S3V_CHECK(s3v_buf_append(&rest, p + 6 + le_get_u16(p), le_get_u32(p + 2)));
        }
        s3v_buf_reset(&block);
        uint32_t crc;
        S3V_CHECK(ivf_block_encode(&block, c, b->dim, b->o->encoding, m, vbuf, b->inv_norm ? nbuf : NULL,
                                   rest.ptr, rest.len, zl, &crc));
        size_t obj = b->data_len - 1;
        if (b->data_sizes[obj] && b->data_sizes[obj] + block.len > DATA_OBJECT_MAX) {
            S3V_CHECK(new_data_object(b));
            obj = b->data_len - 1;
        }
        b->refs[c] = (ivf_cluster_ref){(uint32_t)obj, m, b->data_sizes[obj], block.len, crc};
        S3V_CHECK(write_fd(b->data_tmp[obj].fd, block.ptr, block.len, b->data_tmp[obj].path));
        b->data_sizes[obj] += block.len;
        b->rep->vector_bytes += (uint64_t)m * b->dim * esize;
        b->rep->rest_raw_bytes += rest.len;
        b->rep->rest_stored_bytes += le_get_u32(block.ptr + 24);
        if ((c & 63) == 0 || c + 1 == b->nlist) progress(b, "write", c + 1, b->nlist);
    }
fail:
    free(vbuf);
    free(nbuf);
    s3v_buf_free(&rest);
    s3v_buf_free(&block);
    return st;
}

/* ---- calibration ---- */

typedef struct calib_job {
    builder *b;
    const uint32_t *queries;
    size_t nq;
    const uint32_t *ladder;
    size_t nladder;
    float *recall; /* nq * nladder */
    size_t next;   /* next query, under lock */
    pthread_mutex_t lock;
    s3v_status st;
} calib_job;

static float exact_score(const builder *b, const float *q, uint64_t i)
{
    const float *x = row_of(b, i);
    switch (b->o->metric) {
    case IVF_METRIC_EUCLIDEAN: return b->kt->l2sq_f32(q, x, b->dim);
    case IVF_METRIC_COSINE: return 1.0f - b->kt->dot_f32(q, x, b->dim) * b->inv_norm[i];
    case IVF_METRIC_DOT: return -b->kt->dot_f32(q, x, b->dim);
    }
    return 0;
}

static int cmp_probe(const void *a, const void *b)
{
    const float *x = a, *y = b; /* pairs (distance, index as float bits) */
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    uint32_t i, j;
    memcpy(&i, &x[1], 4);
    memcpy(&j, &y[1], 4);
    return i < j ? -1 : i > j;
}

/* One calibration query: exact top-k over the float input (the truth), then the probe ladder scored
 * exactly as queries will be, on the encoded blocks just written (so f16/i8 loss is measured too). */
static s3v_status calib_one(calib_job *j, size_t qi, float *qbuf, float *cdist, float *pairs, topk *exact,
                            topk *ivf, ivf_scorer *sc, float *rdist)
{
    builder *b = j->b;
    uint32_t self = j->queries[qi];
    gather_rows(b, &self, 0, 1, qbuf);
    size_t k = b->n - 1 < CALIB_K ? (size_t)(b->n - 1) : CALIB_K;
    topk_reset(exact);
    exact->k = k;
    for (uint64_t i = 0; i < b->n; i++)
        if (i != self) topk_push(exact, exact_score(b, qbuf, i), i);
    S3V_TRY(ivf_scorer_set_query(sc, qbuf));
    ivf_scorer_centroids(sc, b->centroids, b->nlist, cdist);
    for (uint32_t c = 0; c < b->nlist; c++) {
        pairs[2 * c] = cdist[c];
        memcpy(&pairs[2 * c + 1], &c, 4);
    }
    qsort(pairs, b->nlist, 2 * sizeof(float), cmp_probe);
    topk_reset(ivf);
    ivf->k = k;
    size_t li = 0;
    for (uint32_t p = 0; p < b->nlist && li < j->nladder; p++) {
        uint32_t c;
        memcpy(&c, &pairs[2 * p + 1], 4);
        const ivf_cluster_ref *ref = &b->refs[c];
        const uint8_t *blk = b->data_maps[ref->object] + ref->offset;
        const uint8_t *vec = blk + IVF_BLOCK_HEADER_SIZE;
        const uint8_t *norms =
            b->inv_norm ? vec + (size_t)ref->count * b->dim * ivf_encoding_size(b->o->encoding) : NULL;
        ivf_scorer_rows(sc, vec, norms, ref->count, rdist);
        for (uint32_t r = 0; r < ref->count; r++) {
            uint32_t id = b->order[b->start[c] + r];
            if (id != self) topk_push(ivf, rdist[r], id);
        }
        while (li < j->nladder && j->ladder[li] == p + 1) {
            size_t hit = 0;
            for (size_t x = 0; x < ivf->len; x++)
                for (size_t y = 0; y < exact->len; y++)
                    if (ivf->id[x] == exact->id[y]) hit++;
            float rec = k ? (float)hit / (float)k : 1.0f;
            j->recall[qi * j->nladder + li++] = rec;
            if (rec >= 1.0f)
                while (li < j->nladder) j->recall[qi * j->nladder + li++] = 1.0f;
        }
    }
    return S3V_OK;
}

static void *calib_worker(void *arg)
{
    calib_job *j = arg;
    builder *b = j->b;
    float *qbuf = malloc((size_t)b->dim * 4);
    float *cdist = malloc((size_t)b->nlist * 4);
    float *pairs = malloc((size_t)b->nlist * 8);
    float *rdist = malloc(((size_t)b->rep->max_cluster + 1) * sizeof(float));
    topk exact = {0}, ivf = {0};
    ivf_scorer sc;
    memset(&sc, 0, sizeof sc);
    s3v_status st =
        (!qbuf || !cdist || !pairs || !rdist) ? s3v_errorf(S3V_ERR_NOMEM, "out of memory") : S3V_OK;
    if (st == S3V_OK)
        st = ivf_scorer_init(&sc, b->o->metric, b->o->encoding, b->dim, b->q_offset, b->q_scale,
                             (size_t)b->rep->max_cluster + 1);
    if (st == S3V_OK) st = topk_init(&exact, CALIB_K);
    if (st == S3V_OK) st = topk_init(&ivf, CALIB_K);
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t qi = j->next++;
        if (st != S3V_OK && j->st == S3V_OK) j->st = st;
        int stop = qi >= j->nq || j->st != S3V_OK;
        if (!stop && b->o->progress && pthread_equal(pthread_self(), pthread_self()))
            progress(b, "calibrate", qi, j->nq);
        pthread_mutex_unlock(&j->lock);
        if (stop) break;
        st = calib_one(j, qi, qbuf, cdist, pairs, &exact, &ivf, &sc, rdist);
    }
    ivf_scorer_free(&sc);
    free(rdist);
    topk_free(&exact);
    topk_free(&ivf);
    free(qbuf);
    free(cdist);
    free(pairs);
    return NULL;
}

static s3v_status calibrate(builder *b)
{
    b->data_maps = calloc(b->data_len, sizeof *b->data_maps);
    if (!b->data_maps) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b->data_len; i++)
        S3V_TRY(map_file(&b->data_tmp[i], (size_t)b->data_sizes[i], (const void **)&b->data_maps[i]));
    uint32_t ladder[64];
    size_t nl = 0;
    static const uint32_t base[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128};
    for (size_t i = 0; i < sizeof base / sizeof *base && base[i] < b->nlist; i++) ladder[nl++] = base[i];
    for (uint32_t p = 192; p < b->nlist && nl < 62; p = p * 3 / 2) ladder[nl++] = p;
    ladder[nl++] = b->nlist;
    /* the exact ground truth costs n*dim per query: keep the whole calibration near 2e10 flops */
    double budget = 2e10 / ((double)b->n * b->dim + 1);
    size_t nq = b->o->calib_queries ? b->o->calib_queries : 200;
    if (nq > budget) nq = budget < 16 ? 16 : (size_t)budget;
    if (nq > b->n) nq = (size_t)b->n;
    b->calib = calloc(nl, sizeof *b->calib);
    if (!b->calib) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    b->calib_len = nl;
    if (b->n < 2) {
        for (size_t i = 0; i < nl; i++) b->calib[i] = (ivf_calib_point){ladder[i], 1.0f};
        return S3V_OK;
    }
    s3v_rng rng;
    s3v_rng_seed(&rng, b->seed ^ 0x63616c6962ull);
    uint32_t *queries = NULL;
    S3V_TRY(sample_ids(b->n, nq, &rng, &queries));
    calib_job j = {.b = b, .queries = queries, .nq = nq, .ladder = ladder, .nladder = nl, .st = S3V_OK};
    j.recall = calloc(nq * nl, sizeof *j.recall);
    if (!j.recall) {
        free(queries);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&j.lock, NULL);
    int nt = b->threads;
    pthread_t th[64];
    int started = 0;
    for (int t = 0; t < nt && t < 64; t++)
        if (pthread_create(&th[t], NULL, calib_worker, &j) == 0) started++;
    if (!started) calib_worker(&j);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.lock);
    s3v_status st = j.st;
    for (size_t l = 0; l < nl; l++) {
        double s = 0;
        for (size_t q = 0; q < nq; q++) s += j.recall[q * nl + l];
        b->calib[l] = (ivf_calib_point){ladder[l], (float)(s / nq)};
    }
    free(j.recall);
    free(queries);
    return st;
}

/* ---- upload and commit ---- */

static void iso_now(char *out, size_t n)
{
    time_t t = (time_t)(s3v_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "<gen>/<name>", the object name inside the index. */
static void gen_name(char *out, const char *gen, const char *name)
{
    if (snprintf(out, IVF_NAME_MAX, "%.24s/%.32s", gen, name) >= IVF_NAME_MAX) out[IVF_NAME_MAX - 1] = 0;
}

static s3v_status put_named(builder *b, const char *gen, const char *name, const char *path,
                            const s3v_buf *mem)
{
    char rel[IVF_NAME_MAX], key[2048];
    gen_name(rel, gen, name);
    S3V_TRY(ivf_key_join(b->prefix, rel, key, sizeof key));
    s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
    s3v_status st = path ? s3v_storage_put_file(b->st, key, path, &cond, b->deadline, NULL)
                         : s3v_storage_put(b->st, key, mem->ptr, mem->len, &cond, b->deadline, NULL);
    if (st != S3V_OK) return s3v_error_context(st, "uploading %s", key);
    return S3V_OK;
}

typedef struct del_ctx {
    s3v_storage *st;
    s3v_status status;
} del_ctx;

static int del_one(void *arg, const char *key, uint64_t size, int is_prefix)
{
    del_ctx *d = arg;
    if (is_prefix) return 0;
    s3v_status st = s3v_storage_del(d->st, key, S3V_NO_DEADLINE);
    if (st != S3V_OK && d->status == S3V_OK) d->status = st;
    return 0;
}

/* Deletes every object whose key starts with p. */
static s3v_status delete_prefix(s3v_storage *st, const char *p)
{
    del_ctx d = {st, S3V_OK};
    s3v_list_req req = {p, NULL, NULL, 0};
    S3V_TRY(s3v_storage_list(st, &req, S3V_NO_DEADLINE, del_one, &d));
    return d.status;
}

/* Deletes every object of generation `gen` under the index prefix. */
static s3v_status delete_generation(s3v_storage *st, const char *prefix, const char *gen)
{
    char p[2048], rel[IVF_NAME_MAX + 2];
    snprintf(rel, sizeof rel, "%s/", gen);
    S3V_TRY(ivf_key_join(prefix, rel, p, sizeof p));
    return delete_prefix(st, p);
}

static uint64_t random_u64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) return v;
    s3v_rng r; /* no entropy source: time and process id */
    s3v_rng_seed(&r, s3v_now_ns() ^ ((uint64_t)getpid() << 32) ^ s3v_wall_ms());
    return s3v_rng_next(&r);
}

void ivf_generation_new(uint32_t counter, char out[IVF_NAME_MAX])
{
    snprintf(out, IVF_NAME_MAX, "g%08x-%08x", counter, (uint32_t)random_u64());
}

uint64_t ivf_incarnation_new(void) { return random_u64(); }

static s3v_status commit(builder *b, const ivf_manifest *old, const char *old_etag)
{
    s3v_status st = S3V_OK;
    ivf_manifest m;
    memset(&m, 0, sizeof m);
    uint32_t counter = old ? ivf_generation_counter(old->generation) + 1 : 1;
    ivf_generation_new(counter, m.generation);
    snprintf(b->rep->generation, sizeof b->rep->generation, "%s", m.generation);
    const ivf_manifest *base = b->o->base;
    if (base) { /* compaction: the same index instance, its log folded up to wal_start */
        m.incarnation = base->incarnation;
        m.wal_start = b->o->wal_start;
        m.grace_seconds = base->grace_seconds;
        /* entries stamped 0 are retired by this commit: stamped now, right before the manifest is put, so
         * their grace period starts no earlier than the commit */
        if (b->o->retired_len) {
            m.retired = malloc(b->o->retired_len * sizeof *m.retired);
            if (!m.retired) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            memcpy(m.retired, b->o->retired, b->o->retired_len * sizeof *m.retired);
            m.retired_len = b->o->retired_len;
        }
    } else { /* a new index, or a replacement: a new incarnation with an empty log */
        m.incarnation = ivf_incarnation_new();
        m.grace_seconds = b->o->grace_seconds ? b->o->grace_seconds : IVF_GRACE_DEFAULT_S;
    }
    m.trained_count = b->trained_count;
    m.trained_mean_distance = b->trained_mean;
    if (old)
        snprintf(m.creation_time, sizeof m.creation_time, "%s", old->creation_time);
    else
        iso_now(m.creation_time, sizeof m.creation_time);
    m.dimension = b->dim;
    m.metric = b->o->metric;
    m.encoding = b->o->encoding;
    m.count = b->n;
    m.nlist = b->nlist;
    uint64_t t0 = s3v_now_ns();
    s3v_buf cbuf;
    s3v_buf_init(&cbuf, (size_t)1 << 34);
    m.data = calloc(b->data_len, sizeof *m.data);
    if (!m.data) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m.data_len = b->data_len;
    for (size_t i = 0; i < b->data_len; i++) {
        char name[32];
        snprintf(name, sizeof name, "data-%04zu", i);
        gen_name(m.data[i].key, m.generation, name);
        m.data[i].size = b->data_sizes[i];
        progress(b, "upload", i, b->data_len + 3);
        S3V_CHECK(put_named(b, m.generation, name, b->data_tmp[i].path, NULL));
        b->rep->total_bytes += b->data_sizes[i];
    }
    gen_name(m.keymap_key, m.generation, "keymap");
    m.keymap_size = b->keymap_size;
    S3V_CHECK(put_named(b, m.generation, "keymap", b->keymap_tmp.path, NULL));
    ivf_centroids c = {.dim = b->dim,
                       .nlist = b->nlist,
                       .npages = b->npages,
                       .encoding = b->o->encoding,
                       .metric = b->o->metric,
                       .count = b->n,
                       .centroids = b->centroids,
                       .clusters = b->refs,
                       .pages = b->pages,
                       .q_offset = b->q_offset,
                       .q_scale = b->q_scale};
    S3V_CHECK(ivf_centroids_encode(&c, &cbuf));
    gen_name(m.centroids_key, m.generation, "centroids");
    m.centroids_size = cbuf.len;
    m.centroids_crc = s3v_crc32c(0, cbuf.ptr, cbuf.len);
    S3V_CHECK(put_named(b, m.generation, "centroids", NULL, &cbuf));
    b->rep->total_bytes += cbuf.len + b->keymap_size;
    m.calib = b->calib;
    m.calib_len = b->calib_len;
    m.default_nprobe = b->nlist;
    b->rep->default_recall = b->calib_len ? b->calib[b->calib_len - 1].recall : 1.0f;
    /* the smallest probe count reaching the target, or, when the encoding caps recall below it, within
     * 0.01 of the best any probe count reaches */
    float best = 0, target = CALIB_TARGET;
    for (size_t i = 0; i < b->calib_len; i++)
        if (b->calib[i].recall > best) best = b->calib[i].recall;
    if (best - 0.01f < target) target = best - 0.01f;
    for (size_t i = 0; i < b->calib_len; i++)
        if (b->calib[i].recall >= target) {
            m.default_nprobe = b->calib[i].nprobe;
            b->rep->default_recall = b->calib[i].recall;
            break;
        }
    b->rep->default_nprobe = m.default_nprobe;
    m.non_filterable = (char **)b->o->non_filterable;
    m.non_filterable_len = b->o->non_filterable_len;
    m.build = cJSON_CreateObject();
    if (m.build) {
        cJSON_AddStringToObject(m.build, "tool", "s3vec " S3VEC_VERSION_STRING);
        cJSON_AddNumberToObject(m.build, "seed", (double)b->seed);
        cJSON_AddNumberToObject(m.build, "niter", b->o->niter ? b->o->niter : 10);
        cJSON_AddNumberToObject(m.build, "trainPoints", (double)b->rep->train_points);
        cJSON_AddNumberToObject(m.build, "splitClusters", b->rep->splits);
        cJSON_AddNumberToObject(m.build, "maxClusterSize", b->rep->max_cluster);
    }
    m.extra = old && old->extra ? cJSON_Duplicate(old->extra, 1) : NULL;
    uint64_t now_ms = s3v_wall_ms();
    for (size_t i = 0; i < m.retired_len; i++)
        if (!m.retired[i].at_ms) m.retired[i].at_ms = now_ms;
    s3v_buf mbuf;
    s3v_buf_init(&mbuf, IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE);
    st = ivf_manifest_encode(&m, &mbuf);
    if (st == S3V_OK) {
        char key[2048];
        st = ivf_key_join(b->prefix, "manifest", key, sizeof key);
        s3v_put_cond cond = {old ? S3V_PUT_IF_MATCH : S3V_PUT_IF_NONE_MATCH, old_etag};
        if (st == S3V_OK) st = s3v_storage_put(b->st, key, mbuf.ptr, mbuf.len, &cond, S3V_NO_DEADLINE, NULL);
        if (st == S3V_ERR_PRECONDITION)
            st = s3v_errorf(
                S3V_ERR_CONFLICT,
                "another writer changed the index while it was being built; nothing was published");
        b->rep->total_bytes += mbuf.len;
    }
    s3v_buf_free(&mbuf);
    m.calib = NULL; /* borrowed */
    m.non_filterable = NULL;
    m.non_filterable_len = 0;
    if (st != S3V_OK) goto fail;
    progress(b, "upload", b->data_len + 3, b->data_len + 3);
    b->rep->seconds_upload = secs_since(t0);
    if (old && !base) { /* a replacement: the old generation and its log go now */
        s3v_status ds = old->nlist ? delete_generation(b->st, b->prefix, old->generation) : S3V_OK;
        if (ds != S3V_OK)
            s3v_log(S3V_LOG_WARN, "old generation %s not fully deleted: %s", old->generation, s3v_errmsg(ds));
        /* the replaced incarnation's log ends with a marker, so readers that have it open notice at their
         * next read; compaction deletes that log after its grace period */
        ds = wal_append_drop(b->st, b->prefix, old->incarnation, old->dimension, old->wal_start,
                             old->grace_seconds, b->deadline);
        if (ds != S3V_OK)
            s3v_log(S3V_LOG_WARN, "the replaced index's log was not closed: %s", s3v_errmsg(ds));
    }
    ivf_manifest_free(&m);
    s3v_buf_free(&cbuf);
    return S3V_OK;
fail:
    m.calib = NULL;
    m.non_filterable = NULL;
    m.non_filterable_len = 0;
    ivf_manifest_free(&m);
    s3v_buf_free(&cbuf);
    if (b->rep->generation[0]) {
        s3v_status keep = st;
        (void)delete_generation(b->st, b->prefix, b->rep->generation);
        st = keep;
    }
    return st;
}

static void builder_free(builder *b)
{
    if (b->vecs) munmap((void *)b->vecs, b->vecs_size);
    if (b->rest) munmap((void *)b->rest, b->rest_size);
    tmp_close(&b->vec_tmp);
    tmp_close(&b->rest_tmp);
    tmp_close(&b->keymap_tmp);
    for (size_t i = 0; i < b->data_len; i++) {
        if (b->data_maps && b->data_maps[i]) munmap((void *)b->data_maps[i], (size_t)b->data_sizes[i]);
        tmp_close(&b->data_tmp[i]);
    }
    free(b->data_maps);
    free(b->data_tmp);
    free(b->data_sizes);
    free(b->rest_off);
    free(b->hash);
    free(b->inv_norm);
    free(b->vmin);
    free(b->vmax);
    free(b->centroids);
    free(b->assign);
    free(b->counts);
    free(b->order);
    free(b->start);
    free(b->q_offset);
    free(b->refs);
    free(b->pages);
    free(b->calib);
}

/* Reads the existing manifest, if any. *exists = 0 when there is none. */
static s3v_status read_old(s3v_storage *st, const char *prefix, ivf_manifest *m, char *etag, int *exists)
{
    char key[2048];
    S3V_TRY(ivf_key_join(prefix, "manifest", key, sizeof key));
    s3v_buf buf;
    s3v_buf_init(&buf, IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE);
    s3v_obj_info info = {0};
    s3v_status rc = s3v_storage_get(st, key, S3V_NO_DEADLINE, &buf, &info);
    *exists = 0;
    if (rc == S3V_ERR_NOT_FOUND) {
        s3v_buf_free(&buf);
        s3v_error_clear();
        return S3V_OK;
    }
    if (rc == S3V_OK) {
        rc = ivf_manifest_decode(buf.ptr, buf.len, m);
        if (rc != S3V_OK) rc = s3v_error_context(rc, "existing manifest %s", key);
    }
    s3v_buf_free(&buf);
    if (rc == S3V_OK) {
        *exists = 1;
        snprintf(etag, S3V_ETAG_MAX, "%s", info.etag);
    }
    return rc;
}

static s3v_status reader_next(void *arg, vec_record *rec, int *has) { return vec_reader_next(arg, rec, has); }

s3v_status ivf_build(s3v_storage *storage, const char *prefix, vec_reader *in, const ivf_build_opts *o,
                     ivf_build_report *rep)
{
    ivf_source src = {reader_next, in, vec_reader_dim(in), vec_reader_count_hint(in)};
    return ivf_build_from(storage, prefix, &src, o, rep);
}

static s3v_status check_deadline(const builder *b, const char *phase)
{
    if (b->deadline != S3V_NO_DEADLINE && s3v_now_ns() > b->deadline)
        return s3v_errorf(S3V_ERR_TIMEOUT, "the deadline passed before the %s phase; nothing was published",
                          phase);
    return S3V_OK;
}

/* With given centroids: assign, then decide whether the index needs a new k-means training. */
static s3v_status assign_or_retrain(builder *b)
{
    const ivf_build_opts *o = b->o;
    ivf_build_report *rep = b->rep;
    const char *reason = NULL;
    if (o->centroids && o->centroids_len) {
        b->nlist = o->centroids_len;
        b->centroids = malloc((size_t)b->nlist * b->dim * 4);
        b->counts = calloc(b->nlist, sizeof *b->counts);
        if (!b->centroids || !b->counts) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        memcpy(b->centroids, o->centroids, (size_t)b->nlist * b->dim * 4);
        S3V_TRY(assign_all(b, "assign"));
        double growth = o->growth_factor > 0 ? o->growth_factor : 2.0;
        double drift = o->drift_factor > 0 ? o->drift_factor : 1.2;
        if (b->n < b->nlist)
            reason = "shrink"; /* fewer vectors than clusters: most would be empty */
        else if (o->trained_count && (double)b->n >= growth * (double)o->trained_count)
            reason = "growth";
        else if (o->metric != IVF_METRIC_DOT && o->trained_mean_distance > 0 &&
                 rep->mean_distance > drift * o->trained_mean_distance)
            reason = "drift";
        else if (!o->trained_count && o->force_retrain)
            reason = "forced";
        if (!reason) {
            b->trained_count = o->trained_count ? o->trained_count : b->n;
            b->trained_mean = o->trained_mean_distance > 0 ? o->trained_mean_distance : rep->mean_distance;
            return S3V_OK;
        }
        free(b->centroids);
        free(b->counts);
        b->centroids = NULL;
        b->counts = NULL;
    } else {
        reason = "new";
    }
    rep->retrained = 1;
    rep->retrain_reason = reason;
    b->nlist = o->nlist && o->nlist <= b->n ? o->nlist : ivf_default_nlist(b->n);
    uint64_t t0 = s3v_now_ns();
    S3V_TRY(train(b));
    rep->seconds_train = secs_since(t0);
    b->counts = calloc(b->nlist, sizeof *b->counts);
    if (!b->counts) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    S3V_TRY(assign_all(b, "assign"));
    b->trained_count = b->n;
    b->trained_mean = -1; /* measured after splitting */
    return S3V_OK;
}

s3v_status ivf_build_from(s3v_storage *storage, const char *prefix, const ivf_source *in,
                          const ivf_build_opts *o, ivf_build_report *rep)
{
    ivf_build_report local_rep;
    if (!rep) rep = &local_rep;
    memset(rep, 0, sizeof *rep);
    builder b;
    memset(&b, 0, sizeof b);
    b.vec_tmp.fd = b.rest_tmp.fd = b.keymap_tmp.fd = -1;
    b.st = storage;
    b.prefix = prefix ? prefix : "";
    b.o = o;
    b.rep = rep;
    b.kt = kern_get();
    b.dim = in->dim;
    b.seed = o->seed;
    b.deadline = o->deadline_ns ? o->deadline_ns : S3V_NO_DEADLINE;
    b.threads = o->threads > 0 ? o->threads : kmeans_default_threads();
    snprintf(b.tmp_base, sizeof b.tmp_base, "%s/s3vec-build-%d", o->tmp_dir ? o->tmp_dir : "/tmp",
             (int)getpid());
    uint64_t t_all = s3v_now_ns(), t0;
    s3v_status st = S3V_OK;
    ivf_manifest old;
    memset(&old, 0, sizeof old);
    char old_etag[S3V_ETAG_MAX] = "";
    int exists = 0;
    if (o->base) {
        snprintf(old_etag, sizeof old_etag, "%s", o->base_etag ? o->base_etag : "");
    } else {
        S3V_CHECK(read_old(storage, b.prefix, &old, old_etag, &exists));
        if (exists && !o->overwrite) {
            char where[2048], key[2048];
            S3V_CHECK(ivf_key_join(b.prefix, "manifest", key, sizeof key));
            s3v_storage_describe(storage, key, where, sizeof where);
            st = s3v_errorf(S3V_ERR_CONFLICT, "an index already exists at %s (use --overwrite to replace it)",
                            where);
            goto fail;
        }
    }

    t0 = s3v_now_ns();
    S3V_CHECK(pass_read(&b, in));
    rep->seconds_read = secs_since(t0);
    rep->count = b.n;
    rep->dim = b.dim;
    if (b.n == 0) {
        st = s3v_errorf(S3V_ERR_INVALID, "no vectors to index");
        goto fail;
    }
    if (o->nlist > b.n && !o->centroids) {
        st = s3v_errorf(S3V_ERR_INVALID, "--nlist %u is larger than the number of vectors (%llu)", o->nlist,
                        (unsigned long long)b.n);
        goto fail;
    }
    if (o->encoding == IVF_ENC_I8 && o->q_offset) {
        b.q_offset = malloc(b.dim * sizeof(float));
        if (!b.q_offset) {
            st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(b.q_offset, o->q_offset, b.dim * sizeof(float));
        b.q_scale = o->q_scale;
    } else if (o->encoding == IVF_ENC_I8) {
        S3V_CHECK(fit_i8(&b));
    }
    S3V_CHECK(check_deadline(&b, "assign"));

    t0 = s3v_now_ns();
    b.assign = malloc((size_t)b.n * sizeof *b.assign);
    if (!b.assign) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    S3V_CHECK(assign_or_retrain(&b));
    S3V_CHECK(split_large(&b));
    if (b.trained_mean < 0) b.trained_mean = rep->mean_distance;
    rep->seconds_assign = secs_since(t0) - rep->seconds_train;
    rep->nlist = b.nlist;
    S3V_CHECK(check_deadline(&b, "write"));

    t0 = s3v_now_ns();
    S3V_CHECK(group_by_cluster(&b));
    S3V_CHECK(write_keymap(&b));
    S3V_CHECK(write_clusters(&b));
    rep->seconds_write = secs_since(t0);
    S3V_CHECK(check_deadline(&b, "calibrate"));

    t0 = s3v_now_ns();
    S3V_CHECK(calibrate(&b));
    rep->seconds_calibrate = secs_since(t0);
    S3V_CHECK(check_deadline(&b, "upload"));

    S3V_CHECK(commit(&b, o->base ? o->base : exists ? &old : NULL, old_etag));
    rep->seconds_total = secs_since(t_all);
fail:
    ivf_manifest_free(&old);
    builder_free(&b);
    return st;
}

s3v_status ivf_create_empty(s3v_storage *st, const char *prefix, uint32_t dim, ivf_metric metric,
                            ivf_encoding encoding, const char *const *non_filterable,
                            size_t non_filterable_len, uint32_t grace_seconds, uint64_t deadline,
                            ivf_manifest *out)
{
    if (dim == 0 || dim > IVF_DIM_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "dimension must be between 1 and %d", IVF_DIM_MAX);
    ivf_manifest m;
    memset(&m, 0, sizeof m);
    ivf_generation_new(0, m.generation);
    iso_now(m.creation_time, sizeof m.creation_time);
    m.dimension = dim;
    m.metric = metric;
    m.encoding = encoding;
    m.incarnation = ivf_incarnation_new();
    m.grace_seconds = grace_seconds ? grace_seconds : IVF_GRACE_DEFAULT_S;
    m.non_filterable = (char **)non_filterable;
    m.non_filterable_len = non_filterable_len;
    s3v_buf buf;
    s3v_buf_init(&buf, IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE);
    char key[2048];
    s3v_status rc = ivf_key_join(prefix, "manifest", key, sizeof key);
    if (rc == S3V_OK) rc = ivf_manifest_encode(&m, &buf);
    if (rc == S3V_OK) {
        s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
        rc = s3v_storage_put(st, key, buf.ptr, buf.len, &cond, deadline, NULL);
        if (rc == S3V_ERR_PRECONDITION) {
            char where[2200];
            s3v_storage_describe(st, key, where, sizeof where);
            rc = s3v_errorf(S3V_ERR_CONFLICT, "an index already exists at %s", where);
        }
    }
    if (rc == S3V_OK && out) rc = ivf_manifest_decode(buf.ptr, buf.len, out);
    s3v_buf_free(&buf);
    return rc;
}
