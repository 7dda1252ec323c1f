/* engine/kmeans.c: k-means training and nearest-centroid assignment for the IVF builder (kmeans.h).
 *
 * Training sample. At most k * max_points_per_centroid points (256 by default, as FAISS) take part;
 * the subset is drawn by selection sampling (Knuth's algorithm S) under the seed, so it is a sorted
 * list of row numbers (4 bytes per sampled point). Rows are gathered block by block when they are
 * used; the sample is never copied whole.
 *
 * Initialisation. k-means++ (D^2 sampling with squared euclidean distance, for both metrics) on a
 * seeded subset of the sample of KPP_POINTS_PER_CENTROID * k points (at least KPP_MIN_POINTS, at most
 * KPP_MAX_SIZE bytes, never fewer than k), copied contiguous so each step is one l2sq_f32_rows pass.
 * Its k steps over s points cost s * k * dim, 1/16 of one Lloyd iteration on the 256-per-centroid
 * sample, where a pass over the whole sample per centroid would cost as much as 256 iterations.
 * A step updates D^2 chunk by chunk (in parallel when a step is large enough to pay for waking the
 * workers) and the chunk sums are added in chunk order before the draw.
 *
 * Lloyd iterations. The sample is cut into fixed chunks of CHUNK_LEN points, taken by the workers in
 * increasing order. A worker assigns its chunk BLOCK_ROWS points at a time against BLOCK_CENTROIDS
 * centroids per dot_f32_tile call (large blocks: the tile kernel packs both operands on each call,
 * which costs in proportion to 1/rows + 1/centroids; measured best on GloVe-100 at 384 x 1024). The
 * running argmin is over |c|^2/2 - x.c (L2: half of |x - c|^2 - |x|^2, so the ranking is the same) or
 * -x.c (IP), with the centroid half-norms computed once per iteration, in 4-lane GNU C vectors. The
 * worker then adds the chunk's points into a partial of double sums (only the rows of the clusters
 * the chunk touched are cleared and merged), which is merged into the shared sums once every chunk
 * before it has been merged. Every cluster sum is thus ((chunk 0 + chunk 1) + chunk 2) + ..., each
 * chunk summed in point order: the same bits for any number of threads. There is one partial more
 * than workers, so a worker does not wait for a slower one (or a descheduled one on a busy machine)
 * unless it is a whole chunk ahead. Centroids are float(sum / count).
 *
 * Empty clusters. After each update, each empty cluster (in index order) takes half of the largest
 * cluster not yet split in this round whose farthest member differs from its centroid: with d the
 * vector from that centroid c to its farthest member, the two become c + d/1024 and c - d/1024 (a
 * small symmetric perturbation, as FAISS does, but along d rather than along the coordinate signs,
 * so it also splits a centroid at the origin). The members with a positive projection on d move to
 * the new centroid and, as c is their mean, some have a negative one: both halves get members. When
 * every non-empty cluster holds identical points, an empty cluster keeps its centroid (no NaN).
 * `spherical` renormalises centroids after the update and the repair, as FAISS does.
 *
 * Memory beyond the input: the sample's row list (4 bytes per sampled point), the k-means++ subset
 * and its state, shared sums (k * dim doubles), workers + 1 partials (k * dim doubles each; fewer
 * workers when these would pass PARTIALS_MAX_SIZE), and per worker a block of rows and a tile of
 * inner products.
 *
 * Threads: a small pool started per call (the calling thread is worker 0); when a thread cannot be
 * created the call goes on with fewer, with the same result. */
#include "engine/kmeans.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "engine/kernels.h"

enum {
    CHUNK_LEN = 8 * 384,  /* points per task; fixed, so results do not depend on threads */
    BLOCK_ROWS = 384,     /* points per tile call (a multiple of 6 and 16) */
    KPP_CHUNK_LEN = 1024, /* points per k-means++ task */
    KPP_POINTS_PER_CENTROID = 16,
    KPP_MIN_POINTS = 4096,
    BLOCK_CENTROIDS = 1024, /* centroids per tile call */
    KPP_PARALLEL_WORK = 1 << 23,
    MAX_THREADS = 256,
    DEFAULT_NITER = 10,
    DEFAULT_MAX_POINTS_PER_CENTROID = 256,
};
/* Largest copy of the k-means++ subset, bytes. */
#define KPP_MAX_SIZE      ((size_t)128 << 20)
/* Bytes of partial sums above which kmeans_train uses fewer workers (k 4096 x dim 1536: 20). */
#define PARTIALS_MAX_SIZE ((size_t)1 << 30)
#define SPLIT_EPS         (1.0f / 1024.0f)

/* ---- worker pool ---------------------------------------------------------------------------- */

typedef void (*task_fn)(void *arg, size_t task, int worker);

typedef struct pool pool;

typedef struct pool_worker {
    pool *p;
    int id;
} pool_worker;

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t tid[MAX_THREADS];
    pool_worker arg[MAX_THREADS];
    int nworkers; /* including the calling thread */
    uint64_t gen;
    int running; /* helper threads still inside the current job */
    bool stop;
    task_fn fn;
    void *fn_arg;
    size_t ntasks;
    atomic_size_t next;
};

static void pool_tasks_run(pool *p, int worker)
{
    for (;;) {
        size_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->ntasks) return;
        p->fn(p->fn_arg, t, worker);
    }
}

static void *pool_thread_main(void *a)
{
    pool_worker *w = a;
    pool *p = w->p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        pool_tasks_run(p, w->id);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts up to nthreads - 1 helpers; p->nworkers says how many workers there are in the end. */
static s3v_status pool_start(pool *p, int nthreads)
{
    memset(p, 0, sizeof *p);
    if (pthread_mutex_init(&p->mu, NULL)) return s3v_errorf(S3V_ERR_NOMEM, "kmeans: mutex");
    if (pthread_cond_init(&p->wake, NULL)) {
        pthread_mutex_destroy(&p->mu);
        return s3v_errorf(S3V_ERR_NOMEM, "kmeans: condition variable");
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        return s3v_errorf(S3V_ERR_NOMEM, "kmeans: condition variable");
    }
    atomic_init(&p->next, 0);
    p->nworkers = 1;
    for (int i = 1; i < nthreads && i < MAX_THREADS; i++) {
        p->arg[i] = (pool_worker){p, i};
        if (pthread_create(&p->tid[i], NULL, pool_thread_main, &p->arg[i]) != 0) break;
        p->nworkers = i + 1;
    }
    return S3V_OK;
}

/* Runs fn(arg, t, worker) for t = 0 .. ntasks-1, tasks handed out in increasing order. */
static void pool_run(pool *p, size_t ntasks, task_fn fn, void *arg)
{
    if (p->nworkers == 1 || ntasks <= 1) {
        for (size_t t = 0; t < ntasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->fn_arg = arg;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    p->running = p->nworkers - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pool_tasks_run(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->running > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nworkers; i++) pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
}

int kmeans_default_threads(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < MAX_THREADS ? n : MAX_THREADS) : 1;
}

static int threads_resolve(int threads, size_t ntasks)
{
    if (threads <= 0) threads = kmeans_default_threads();
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if ((size_t)threads > ntasks) threads = ntasks ? (int)ntasks : 1;
    return threads;
}

static size_t div_up(size_t a, size_t b) { return a / b + (a % b != 0); }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- blocked assignment ---------------------------------------------------------------------- */

/* The shared, read-only state of one assignment pass. */
typedef struct assign_plan {
    const kern_table *kt;
    const float *x;       /* input rows */
    const uint32_t *rows; /* rows of x taking part, or NULL for rows 0 .. len-1 */
    size_t len;           /* points taking part */
    size_t dim;
    const float *cent; /* k x dim */
    size_t k;
    const float *half_norm; /* k: |c|^2 / 2 for L2, 0 for IP */
    kmeans_metric metric;
    size_t rblock; /* points per tile call */
    size_t cblock; /* centroids per tile call */
} assign_plan;

/* A worker's scratch for assignment. */
typedef struct assign_buf {
    float *xblk;   /* rblock x dim gathered rows */
    float *tile;   /* rblock x cblock inner products */
    float *best;   /* rblock running minimum */
    uint32_t *arg; /* rblock its centroid */
    float *dist;   /* rblock distances (metric) */
} assign_buf;

static void assign_buf_free(assign_buf *b)
{
    free(b->xblk);
    free(b->tile);
    free(b->best);
    free(b->arg);
    free(b->dist);
    memset(b, 0, sizeof *b);
}

static s3v_status assign_buf_alloc(assign_buf *b, const assign_plan *pl)
{
    memset(b, 0, sizeof *b);
    b->xblk = malloc(pl->rblock * pl->dim * sizeof(float));
    b->tile = malloc(pl->rblock * pl->cblock * sizeof(float));
    b->best = malloc(pl->rblock * sizeof(float));
    b->arg = malloc(pl->rblock * sizeof(uint32_t));
    b->dist = malloc(pl->rblock * sizeof(float));
    if (!b->xblk || !b->tile || !b->best || !b->arg || !b->dist) {
        assign_buf_free(b);
        return s3v_errorf(S3V_ERR_NOMEM, "kmeans: work buffers");
    }
    return S3V_OK;
}

/* Block sizes of the tile calls (see the file comment). */
static void plan_blocks(assign_plan *pl)
{
    pl->cblock = min_size(BLOCK_CENTROIDS, pl->k);
    pl->rblock = min_size(BLOCK_ROWS, pl->len); /* a few points need no 1.5 MiB tile */
}

/* The contiguous rows [s0, s0 + len) of the pass: a pointer into x, or gathered into b->xblk. */
static const float *rows_get(const assign_plan *pl, size_t s0, size_t len, assign_buf *b)
{
    if (!pl->rows) return pl->x + s0 * pl->dim;
    for (size_t r = 0; r < len; r++)
        memcpy(b->xblk + r * pl->dim, pl->x + (size_t)pl->rows[s0 + r] * pl->dim, pl->dim * sizeof(float));
    return b->xblk;
}

static const float *row_ptr(const assign_plan *pl, size_t s)
{
    return pl->x + (pl->rows ? (size_t)pl->rows[s] : s) * pl->dim;
}

/* The first minimum of hn[j] - t[j] over j < len, if below *best: into *best and *arg (j0 + j).
 * The running minimum improves rarely (about ln(len) times), so each group of 16 is first tested
 * against it with 4-lane GNU C vectors (SSE2 on x86_64, NEON on aarch64: baseline instructions, no
 * ISA flag) and only a group holding a smaller value is scanned in order. The result is that of the
 * plain loop, ties going to the lowest index. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f lanes_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void row_argmin(const float *t, const float *hn, size_t len, uint32_t j0, float *best, uint32_t *arg)
{
    float bv = *best;
    uint32_t bi = *arg;
    size_t j = 0;
    for (; j + 16 <= len; j += 16) {
        v4f b = {bv, bv, bv, bv};
        v4i lt = (lanes_load(hn + j) - lanes_load(t + j) < b) |
                 (lanes_load(hn + j + 4) - lanes_load(t + j + 4) < b) |
                 (lanes_load(hn + j + 8) - lanes_load(t + j + 8) < b) |
                 (lanes_load(hn + j + 12) - lanes_load(t + j + 12) < b);
        uint64_t any[2]; /* two 64-bit halves of the mask: cheaper than four lane reads */
        memcpy(any, &lt, sizeof any);
        if (!(any[0] | any[1])) continue;
        for (size_t q = j; q < j + 16; q++) {
            float v = hn[q] - t[q];
            if (v < bv) {
                bv = v;
                bi = (uint32_t)(j0 + q);
            }
        }
    }
    for (; j < len; j++) {
        float v = hn[j] - t[j];
        if (v < bv) {
            bv = v;
            bi = (uint32_t)(j0 + j);
        }
    }
    *best = bv;
    *arg = bi;
}

/* Nearest centroid of the len <= rblock contiguous rows xb into b->arg, and their distance
 * (L2: squared euclidean, clamped at 0; IP: -x.c) into b->dist when want_dist. */
static void assign_block(const assign_plan *pl, const float *xb, size_t len, assign_buf *b, bool want_dist)
{
    const size_t dim = pl->dim;
    for (size_t r = 0; r < len; r++) {
        b->best[r] = INFINITY;
        b->arg[r] = 0;
    }
    for (size_t j0 = 0; j0 < pl->k; j0 += pl->cblock) {
        size_t cl = min_size(pl->cblock, pl->k - j0);
        pl->kt->dot_f32_tile(xb, len, pl->cent + j0 * dim, cl, dim, b->tile);
        for (size_t r = 0; r < len; r++)
            row_argmin(b->tile + r * cl, pl->half_norm + j0, cl, (uint32_t)j0, &b->best[r], &b->arg[r]);
    }
    if (!want_dist) return;
    for (size_t r = 0; r < len; r++) {
        if (pl->metric == KMEANS_L2) {
            const float *xr = xb + r * dim;
            float d = pl->kt->dot_f32(xr, xr, dim) + 2.0f * b->best[r];
            b->dist[r] = d > 0 ? d : 0;
        } else {
            b->dist[r] = b->best[r];
        }
    }
}

/* Half squared norms (L2) or zeros (IP) of the k centroids. */
static void half_norms(const kern_table *kt, const float *cent, size_t k, size_t dim, kmeans_metric metric,
                       float *out)
{
    for (size_t j = 0; j < k; j++)
        out[j] = metric == KMEANS_L2 ? 0.5f * kt->dot_f32(cent + j * dim, cent + j * dim, dim) : 0.0f;
}

/* ---- input validation ------------------------------------------------------------------------ */

typedef struct check_ctx {
    const assign_plan *pl;
    atomic_bool bad;
} check_ctx;

static void check_chunk(void *arg, size_t chunk, int worker)
{
    check_ctx *c = arg;
    const assign_plan *pl = c->pl;
    size_t s1 = min_size((chunk + 1) * CHUNK_LEN, pl->len);
    for (size_t s = chunk * CHUNK_LEN; s < s1; s++) {
        const float *xr = row_ptr(pl, s);
        if (!isfinite(pl->kt->dot_f32(xr, xr, pl->dim))) {
            atomic_store(&c->bad, true);
            return;
        }
    }
}

/* S3V_ERR_INVALID unless every row of the pass has a finite squared norm (no NaN, no infinity,
 * no value whose square overflows). */
static s3v_status rows_check(pool *p, const assign_plan *pl)
{
    check_ctx c = {.pl = pl};
    atomic_init(&c.bad, false);
    pool_run(p, div_up(pl->len, CHUNK_LEN), check_chunk, &c);
    if (atomic_load(&c.bad)) return s3v_errorf(S3V_ERR_INVALID, "kmeans: input has a non-finite vector");
    return S3V_OK;
}

/* ---- kmeans_assign --------------------------------------------------------------------------- */

typedef struct assign_job {
    const assign_plan *pl;
    assign_buf *bufs;
    uint32_t *assign;
    float *dist;
} assign_job;

static void assign_chunk(void *arg, size_t chunk, int worker)
{
    assign_job *j = arg;
    const assign_plan *pl = j->pl;
    assign_buf *b = &j->bufs[worker];
    size_t s1 = min_size((chunk + 1) * CHUNK_LEN, pl->len);
    for (size_t s0 = chunk * CHUNK_LEN; s0 < s1; s0 += pl->rblock) {
        size_t len = min_size(pl->rblock, s1 - s0);
        assign_block(pl, rows_get(pl, s0, len, b), len, b, j->dist != NULL);
        memcpy(j->assign + s0, b->arg, len * sizeof(uint32_t));
        if (j->dist) memcpy(j->dist + s0, b->dist, len * sizeof(float));
    }
}

s3v_status kmeans_assign(const float *x, size_t n, size_t dim, const float *centroids, size_t k,
                         kmeans_metric metric, int threads, uint32_t *assign, float *dist)
{
    if (!x || !centroids || !assign || k == 0 || dim == 0 || k > UINT32_MAX || threads < 0 ||
        (metric != KMEANS_L2 && metric != KMEANS_IP))
        return s3v_errorf(S3V_ERR_INVALID, "kmeans_assign: bad argument (k %zu, dim %zu)", k, dim);
    if (n == 0) return S3V_OK;
    if (dim > SIZE_MAX / sizeof(double) / k / BLOCK_ROWS)
        return s3v_errorf(S3V_ERR_INVALID, "kmeans_assign: k %zu x dim %zu too large", k, dim);

    s3v_status st = S3V_OK;
    const kern_table *kt = kern_get();
    size_t nchunks = div_up(n, CHUNK_LEN);
    int nthreads = threads_resolve(threads, nchunks);
    float *hn = malloc(k * sizeof(float));
    assign_buf *bufs = calloc((size_t)nthreads, sizeof(assign_buf));
    pool p;
    bool pool_up = false;
    if (!hn || !bufs) {
        st = s3v_errorf(S3V_ERR_NOMEM, "kmeans_assign: work buffers");
        goto fail;
    }
    S3V_CHECK(pool_start(&p, nthreads));
    pool_up = true;

    assign_plan pl = {
        .kt = kt, .x = x, .len = n, .dim = dim, .cent = centroids, .k = k, .half_norm = hn, .metric = metric};
    plan_blocks(&pl);
    assign_plan cpl = pl; /* the centroids, checked as rows */
    cpl.x = centroids;
    cpl.len = k;
    S3V_CHECK(rows_check(&p, &cpl));
    S3V_CHECK(rows_check(&p, &pl));
    for (int w = 0; w < p.nworkers; w++) S3V_CHECK(assign_buf_alloc(&bufs[w], &pl));
    half_norms(kt, centroids, k, dim, metric, hn);

    assign_job job = {.pl = &pl, .bufs = bufs, .assign = assign, .dist = dist};
    pool_run(&p, nchunks, assign_chunk, &job);

fail:
    if (pool_up) pool_stop(&p);
    if (bufs)
        for (int w = 0; w < nthreads; w++) assign_buf_free(&bufs[w]);
    free(bufs);
    free(hn);
    return st;
}

/* ---- training ---------------------------------------------------------------------------------- */

/* The partial sums of one chunk, from its assignment until it is merged. */
typedef struct partial {
    double *sum;       /* k x dim; a row is valid while its count is non-zero */
    uint32_t *count;   /* k */
    float *far;        /* k: distance of the farthest member */
    uint32_t *far_at;  /* k: its position in the sample */
    uint32_t *touched; /* clusters with a non-zero count, in order of first touch */
    size_t ntouched;
    double objective; /* sum of the chunk's distances */
} partial;

/* A worker's scratch. */
typedef struct train_buf {
    assign_buf ab;
    float *kpp_tmp; /* KPP_CHUNK_LEN distances */
} train_buf;

typedef struct train_ctx {
    assign_plan pl;
    float *cent; /* the current centroids, k x dim */
    train_buf *bufs;
    size_t nchunks;
    /* Chunks are claimed in order together with a free partial; a finished chunk waits in ready[]
     * until all chunks before it are merged; whoever finishes the chunk that is next to merge merges
     * it and every ready chunk after it. One partial more than workers lets a worker run a chunk ahead
     * of a slow one instead of waiting for it. All under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a partial was freed */
    partial *parts;
    size_t nparts;
    size_t *free_parts, nfree;
    size_t *ready; /* nchunks: partial of a finished chunk, or SIZE_MAX */
    size_t next_chunk, merge_next;
    /* shared sums of one iteration */
    double *sum;      /* k x dim */
    uint64_t *count;  /* k */
    float *far;       /* k */
    uint32_t *far_at; /* k */
    double objective; /* sum of distances */
    /* k-means++ */
    float *kpp_x; /* the k-means++ subset, kpp_len x dim */
    size_t kpp_len;
    float *kpp_d2;      /* squared distance to the nearest chosen centre */
    double *kpp_sums;   /* per chunk of the subset */
    const float *kpp_c; /* the centre just chosen */
} train_ctx;

/* Adds a chunk's partial sums into the shared ones and clears the partial. Under t->mu. */
static void partial_merge(train_ctx *t, partial *b)
{
    const size_t dim = t->pl.dim;
    for (size_t i = 0; i < b->ntouched; i++) {
        uint32_t c = b->touched[i];
        double *dst = t->sum + (size_t)c * dim;
        const double *src = b->sum + (size_t)c * dim;
        if (t->count[c] == 0) {
            memcpy(dst, src, dim * sizeof(double));
            t->far[c] = b->far[c];
            t->far_at[c] = b->far_at[c];
        } else {
            for (size_t j = 0; j < dim; j++) dst[j] += src[j];
            if (b->far[c] > t->far[c]) {
                t->far[c] = b->far[c];
                t->far_at[c] = b->far_at[c];
            }
        }
        t->count[c] += b->count[c];
        b->count[c] = 0;
    }
    b->ntouched = 0;
    t->objective += b->objective;
    b->objective = 0;
}

/* One task of a Lloyd iteration: assigns the next chunk and accumulates it (the task number is
 * not used: chunks are claimed in order together with a partial, see train_ctx). */
static void train_chunk(void *arg, size_t task, int worker)
{
    train_ctx *t = arg;
    const assign_plan *pl = &t->pl;
    assign_buf *ab = &t->bufs[worker].ab;
    const size_t dim = pl->dim;

    pthread_mutex_lock(&t->mu);
    while (t->nfree == 0) pthread_cond_wait(&t->cv, &t->mu);
    size_t chunk = t->next_chunk++, pi = t->free_parts[--t->nfree];
    pthread_mutex_unlock(&t->mu);

    partial *b = &t->parts[pi];
    size_t s1 = min_size((chunk + 1) * CHUNK_LEN, pl->len);
    double obj = 0;
    for (size_t s0 = chunk * CHUNK_LEN; s0 < s1; s0 += pl->rblock) {
        size_t len = min_size(pl->rblock, s1 - s0);
        const float *xb = rows_get(pl, s0, len, ab);
        assign_block(pl, xb, len, ab, true);
        for (size_t r = 0; r < len; r++) {
            uint32_t c = ab->arg[r];
            float d = ab->dist[r];
            double *sum = b->sum + (size_t)c * dim;
            const float *xr = xb + r * dim;
            if (b->count[c]++ == 0) {
                b->touched[b->ntouched++] = c;
                for (size_t i = 0; i < dim; i++) sum[i] = xr[i];
                b->far[c] = d;
                b->far_at[c] = (uint32_t)(s0 + r);
            } else {
                for (size_t i = 0; i < dim; i++) sum[i] += xr[i];
                if (d > b->far[c]) {
                    b->far[c] = d;
                    b->far_at[c] = (uint32_t)(s0 + r);
                }
            }
            obj += d;
        }
    }
    b->objective = obj;

    pthread_mutex_lock(&t->mu);
    t->ready[chunk] = pi;
    bool freed = false;
    while (t->merge_next < t->nchunks && t->ready[t->merge_next] != SIZE_MAX) {
        size_t q = t->ready[t->merge_next];
        partial_merge(t, &t->parts[q]);
        t->ready[t->merge_next++] = SIZE_MAX;
        t->free_parts[t->nfree++] = q;
        freed = true;
    }
    if (freed) pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Splits a large cluster for each empty one (see the file comment). Returns the number split. */
static size_t clusters_repair(train_ctx *t, uint8_t *split)
{
    const assign_plan *pl = &t->pl;
    const size_t k = pl->k, dim = pl->dim;
    size_t nsplit = 0;
    memset(split, 0, k);
    for (size_t e = 0; e < k; e++) {
        if (t->count[e] != 0) continue;
        for (;;) {
            size_t best = SIZE_MAX;
            for (size_t j = 0; j < k; j++)
                if (!split[j] && t->count[j] >= 2 && (best == SIZE_MAX || t->count[j] > t->count[best]))
                    best = j;
            if (best == SIZE_MAX) return nsplit; /* nothing left to split */
            split[best] = 1;
            float *c = t->cent + best * dim, *ce = t->cent + e * dim;
            const float *far = row_ptr(pl, t->far_at[best]);
            /* c +- eps (far - c); if that rounds to one vector, half the way; if that too rounds to
             * one vector, far is c: the cluster cannot be split. */
            static const float steps[2] = {SPLIT_EPS, 0.5f};
            bool done = false;
            for (int s = 0; s < 2 && !done; s++) {
                bool differ = false;
                for (size_t i = 0; i < dim; i++) {
                    float delta = steps[s] * (far[i] - c[i]);
                    differ |= c[i] + delta != c[i] - delta;
                }
                if (!differ) continue;
                for (size_t i = 0; i < dim; i++) {
                    float delta = steps[s] * (far[i] - c[i]);
                    ce[i] = c[i] + delta;
                    c[i] -= delta;
                }
                done = true;
            }
            if (!done) continue; /* far is c: try the next largest cluster */
            split[e] = 1;
            t->count[e] = t->count[best] / 2;
            t->count[best] -= t->count[e];
            nsplit++;
            break;
        }
    }
    return nsplit;
}

/* ---- k-means++ on a subset of the sample ------------------------------------------------------- */

static void kpp_chunk(void *arg, size_t chunk, int worker)
{
    train_ctx *t = arg;
    const assign_plan *pl = &t->pl;
    size_t s0 = chunk * KPP_CHUNK_LEN, len = min_size(KPP_CHUNK_LEN, t->kpp_len - s0);
    float *d = t->bufs[worker].kpp_tmp, *d2 = t->kpp_d2 + s0;
    pl->kt->l2sq_f32_rows(t->kpp_c, t->kpp_x + s0 * pl->dim, pl->dim, len, d);
    double sum = 0;
    for (size_t s = 0; s < len; s++) {
        if (d[s] < d2[s]) d2[s] = d[s];
        sum += d2[s];
    }
    t->kpp_sums[chunk] = sum;
}

/* Draws a subset position with probability proportional to its D^2 (uniformly when all are 0). */
static size_t kpp_draw(const train_ctx *t, s3v_rng *rng, size_t nchunks)
{
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += t->kpp_sums[c];
    if (!(total > 0) || !isfinite(total)) return (size_t)s3v_rng_below(rng, t->kpp_len);
    double target = s3v_rng_unit(rng) * total, cum = 0;
    size_t c = 0;
    for (; c + 1 < nchunks; c++) {
        if (cum + t->kpp_sums[c] > target) break;
        cum += t->kpp_sums[c];
    }
    size_t last = SIZE_MAX, s1 = min_size((c + 1) * KPP_CHUNK_LEN, t->kpp_len);
    for (size_t s = c * KPP_CHUNK_LEN; s < s1; s++) {
        if (!(t->kpp_d2[s] > 0)) continue;
        last = s;
        cum += t->kpp_d2[s];
        if (cum > target) return s;
    }
    if (last != SIZE_MAX) return last; /* rounding: the walk ended just short of target */
    for (size_t s = 0; s < t->kpp_len; s++)
        if (t->kpp_d2[s] > 0) return s;
    return (size_t)s3v_rng_below(rng, t->kpp_len);
}

static void kpp_init(train_ctx *t, pool *p, s3v_rng *rng)
{
    const size_t dim = t->pl.dim, nchunks = div_up(t->kpp_len, KPP_CHUNK_LEN);
    /* one step is kpp_len x dim multiply-adds; below KPP_PARALLEL_WORK waking the other workers
     * for each of the k steps costs more than it saves (much more on a loaded machine) */
    const bool parallel = t->kpp_len * dim >= KPP_PARALLEL_WORK;
    for (size_t s = 0; s < t->kpp_len; s++) t->kpp_d2[s] = INFINITY;
    size_t pick = (size_t)s3v_rng_below(rng, t->kpp_len);
    for (size_t c = 0; c < t->pl.k; c++) {
        float *dst = t->cent + c * dim;
        memcpy(dst, t->kpp_x + pick * dim, dim * sizeof(float));
        if (c + 1 == t->pl.k) break;
        t->kpp_c = dst;
        if (parallel) {
            pool_run(p, nchunks, kpp_chunk, t);
        } else {
            for (size_t ch = 0; ch < nchunks; ch++) kpp_chunk(t, ch, 0);
        }
        pick = kpp_draw(t, rng, nchunks);
    }
}

/* Selection sampling (Knuth's algorithm S): m of 0 .. n-1, in increasing order, into out[m]. */
static void sample_sorted(s3v_rng *rng, size_t n, size_t m, uint32_t *out)
{
    size_t got = 0;
    for (size_t i = 0; i < n && got < m; i++)
        if ((double)(n - i) * s3v_rng_unit(rng) < (double)(m - got)) out[got++] = (uint32_t)i;
}

/* ---- kmeans_train -------------------------------------------------------------------------------- */

static void train_buf_free(train_buf *b)
{
    assign_buf_free(&b->ab);
    free(b->kpp_tmp);
    memset(b, 0, sizeof *b);
}

static s3v_status train_buf_alloc(train_buf *b, const assign_plan *pl)
{
    memset(b, 0, sizeof *b);
    S3V_TRY(assign_buf_alloc(&b->ab, pl));
    b->kpp_tmp = malloc(KPP_CHUNK_LEN * sizeof(float));
    if (!b->kpp_tmp) {
        train_buf_free(b);
        return s3v_errorf(S3V_ERR_NOMEM, "kmeans: work buffers");
    }
    return S3V_OK;
}

static void partial_free(partial *b)
{
    free(b->sum);
    free(b->count);
    free(b->far);
    free(b->far_at);
    free(b->touched);
    memset(b, 0, sizeof *b);
}

static s3v_status partial_alloc(partial *b, size_t k, size_t dim)
{
    memset(b, 0, sizeof *b);
    b->sum = malloc(k * dim * sizeof(double));
    b->count = calloc(k, sizeof(uint32_t));
    b->far = malloc(k * sizeof(float));
    b->far_at = malloc(k * sizeof(uint32_t));
    b->touched = malloc(k * sizeof(uint32_t));
    if (!b->sum || !b->count || !b->far || !b->far_at || !b->touched) {
        partial_free(b);
        return s3v_errorf(S3V_ERR_NOMEM, "kmeans: partial sums for k %zu x dim %zu", k, dim);
    }
    return S3V_OK;
}

static void centroids_update(train_ctx *t)
{
    const size_t dim = t->pl.dim;
    for (size_t c = 0; c < t->pl.k; c++) {
        if (t->count[c] == 0) continue; /* empty: repaired next */
        double inv = 1.0 / (double)t->count[c];
        const double *s = t->sum + c * dim;
        float *dst = t->cent + c * dim;
        for (size_t i = 0; i < dim; i++) dst[i] = (float)(s[i] * inv);
    }
}

static void centroids_normalise(float *cent, size_t k, size_t dim)
{
    for (size_t c = 0; c < k; c++) {
        float *v = cent + c * dim;
        double ss = 0;
        for (size_t i = 0; i < dim; i++) ss += (double)v[i] * v[i];
        if (!(ss > 0)) continue; /* a zero centroid stays zero */
        double inv = 1.0 / sqrt(ss);
        for (size_t i = 0; i < dim; i++) v[i] = (float)(v[i] * inv);
    }
}

s3v_status kmeans_train(const float *x, size_t n, size_t dim, const kmeans_opts *opts, float *centroids)
{
    if (!x || !opts || !centroids) return s3v_errorf(S3V_ERR_INVALID, "kmeans_train: NULL argument");
    const size_t k = opts->k;
    if (k == 0 || k > n || dim == 0 || opts->niter < 0 || opts->threads < 0 ||
        (opts->metric != KMEANS_L2 && opts->metric != KMEANS_IP))
        return s3v_errorf(S3V_ERR_INVALID, "kmeans_train: bad argument (n %zu, k %zu, dim %zu, niter %d)", n,
                          k, dim, opts->niter);
    if (n > UINT32_MAX || dim > SIZE_MAX / sizeof(double) / k / BLOCK_ROWS)
        return s3v_errorf(S3V_ERR_INVALID, "kmeans_train: n %zu, k %zu, dim %zu too large", n, k, dim);

    const int niter = opts->niter ? opts->niter : DEFAULT_NITER;
    const size_t mpc =
        opts->max_points_per_centroid ? opts->max_points_per_centroid : DEFAULT_MAX_POINTS_PER_CENTROID;
    const size_t m = mpc >= div_up(n, k) ? n : k * mpc; /* k * mpc < n here: no overflow */
    size_t kpp_len =
        KPP_POINTS_PER_CENTROID * k > KPP_MIN_POINTS ? KPP_POINTS_PER_CENTROID * k : KPP_MIN_POINTS;
    size_t kpp_cap = KPP_MAX_SIZE / (dim * sizeof(float)); /* bounded copy, but at least k points */
    kpp_len = min_size(m, min_size(kpp_len, kpp_cap > k ? kpp_cap : k));
    const size_t nchunks = div_up(m, CHUNK_LEN);
    /* workers + 1 partials of k * dim doubles: fewer workers when they would pass PARTIALS_MAX_SIZE
     * (the result does not depend on the number of workers) */
    size_t part_cap = PARTIALS_MAX_SIZE / (k * dim * sizeof(double));
    int nthreads = threads_resolve(opts->threads, nchunks);
    if (part_cap < 2) part_cap = 2;
    if ((size_t)nthreads + 1 > part_cap) nthreads = (int)(part_cap - 1);
    const kern_table *kt = kern_get();
    uint64_t t0 = s3v_now_ns();

    s3v_status st = S3V_OK;
    s3v_rng rng;
    s3v_rng_seed(&rng, opts->seed);
    train_ctx t = {0};
    uint32_t *sample = NULL, *kpp_pos = NULL;
    uint8_t *split = NULL;
    float *hn = NULL;
    pool p;
    bool pool_up = false, sync_up = false;

    t.cent = malloc(k * dim * sizeof(float));
    hn = malloc(k * sizeof(float));
    t.sum = malloc(k * dim * sizeof(double));
    t.count = malloc(k * sizeof(uint64_t));
    t.far = malloc(k * sizeof(float));
    t.far_at = malloc(k * sizeof(uint32_t));
    split = malloc(k);
    kpp_pos = malloc(kpp_len * sizeof(uint32_t));
    t.kpp_x = malloc(kpp_len * dim * sizeof(float));
    t.kpp_d2 = malloc(kpp_len * sizeof(float));
    t.kpp_sums = malloc(div_up(kpp_len, KPP_CHUNK_LEN) * sizeof(double));
    t.bufs = calloc((size_t)nthreads, sizeof(train_buf));
    t.nchunks = nchunks;
    t.parts = calloc((size_t)nthreads + 1, sizeof(partial));
    t.free_parts = malloc(((size_t)nthreads + 1) * sizeof(size_t));
    t.ready = malloc(nchunks * sizeof(size_t));
    if (m < n) sample = malloc(m * sizeof(uint32_t));
    if (!t.cent || !hn || !t.sum || !t.count || !t.far || !t.far_at || !split || !kpp_pos || !t.kpp_x ||
        !t.kpp_d2 || !t.kpp_sums || !t.bufs || !t.parts || !t.free_parts || !t.ready || (m < n && !sample)) {
        st = s3v_errorf(S3V_ERR_NOMEM, "kmeans_train: work buffers for k %zu x dim %zu", k, dim);
        goto fail;
    }
    if (pthread_mutex_init(&t.mu, NULL)) {
        st = s3v_errorf(S3V_ERR_NOMEM, "kmeans_train: mutex");
        goto fail;
    }
    if (pthread_cond_init(&t.cv, NULL)) {
        pthread_mutex_destroy(&t.mu);
        st = s3v_errorf(S3V_ERR_NOMEM, "kmeans_train: condition variable");
        goto fail;
    }
    sync_up = true;
    S3V_CHECK(pool_start(&p, nthreads));
    pool_up = true;

    t.kpp_len = kpp_len;
    if (sample) sample_sorted(&rng, n, m, sample);
    if (kpp_len < m) {
        sample_sorted(&rng, m, kpp_len, kpp_pos);
    } else {
        for (size_t s = 0; s < kpp_len; s++) kpp_pos[s] = (uint32_t)s;
    }
    t.pl = (assign_plan){.kt = kt,
                         .x = x,
                         .rows = sample,
                         .len = m,
                         .dim = dim,
                         .cent = t.cent,
                         .k = k,
                         .half_norm = hn,
                         .metric = opts->metric};
    plan_blocks(&t.pl);
    S3V_CHECK(rows_check(&p, &t.pl));
    for (size_t s = 0; s < kpp_len; s++)
        memcpy(t.kpp_x + s * dim, row_ptr(&t.pl, kpp_pos[s]), dim * sizeof(float));
    for (int w = 0; w < p.nworkers; w++) S3V_CHECK(train_buf_alloc(&t.bufs[w], &t.pl));
    t.nparts = (size_t)p.nworkers + 1;
    for (size_t i = 0; i < t.nparts; i++) S3V_CHECK(partial_alloc(&t.parts[i], k, dim));

    kpp_init(&t, &p, &rng);
    if (opts->spherical) centroids_normalise(t.cent, k, dim);
    uint64_t t1 = s3v_now_ns();
    s3v_log(S3V_LOG_DEBUG,
            "kmeans: n %zu, sample %zu, k %zu, dim %zu, %d threads; k-means++ on %zu points: %.3f s", n, m, k,
            dim, p.nworkers, kpp_len, (double)(t1 - t0) * 1e-9);

    for (int it = 1; it <= niter; it++) {
        uint64_t ti = s3v_now_ns();
        half_norms(kt, t.cent, k, dim, opts->metric, hn);
        memset(t.count, 0, k * sizeof(uint64_t));
        t.next_chunk = t.merge_next = 0;
        t.nfree = t.nparts;
        for (size_t i = 0; i < t.nparts; i++) t.free_parts[i] = i;
        for (size_t c = 0; c < nchunks; c++) t.ready[c] = SIZE_MAX;
        t.objective = 0;
        pool_run(&p, nchunks, train_chunk, &t);
        size_t nempty = 0;
        for (size_t c = 0; c < k; c++) nempty += t.count[c] == 0;
        centroids_update(&t);
        size_t nsplit = nempty ? clusters_repair(&t, split) : 0;
        if (opts->spherical) centroids_normalise(t.cent, k, dim);
        double obj = t.objective / (double)m;
        s3v_log(S3V_LOG_DEBUG, "kmeans: iteration %d/%d: objective %.6g, %zu empty, %zu split, %.3f s", it,
                niter, obj, nempty, nsplit, (double)(s3v_now_ns() - ti) * 1e-9);
        if (opts->progress) opts->progress(opts->progress_arg, it, niter, obj);
    }
    memcpy(centroids, t.cent, k * dim * sizeof(float));

fail:
    if (pool_up) pool_stop(&p);
    if (sync_up) {
        pthread_cond_destroy(&t.cv);
        pthread_mutex_destroy(&t.mu);
    }
    if (t.bufs)
        for (int w = 0; w < nthreads; w++) train_buf_free(&t.bufs[w]);
    free(t.bufs);
    if (t.parts)
        for (size_t i = 0; i < (size_t)nthreads + 1; i++) partial_free(&t.parts[i]);
    free(t.parts);
    free(t.free_parts);
    free(t.ready);
    free(t.kpp_sums);
    free(t.kpp_d2);
    free(t.kpp_x);
    free(kpp_pos);
    free(split);
    free(t.far_at);
    free(t.far);
    free(t.count);
    free(t.sum);
    free(hn);
    free(t.cent);
    free(sample);
    return st;
}
