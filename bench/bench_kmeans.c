/* bench/bench_kmeans.c: k-means training and assignment against FAISS, measured in one run.
 *
 * Ours: kmeans_train on an fvecs file with k centroids (FAISS's sample size: k * 256 points, and its
 * IVF iteration count, 10), then kmeans_assign of every point (what an IVF build does next). The peer,
 * bench/kmeans_faiss.py run by Debian's /usr/bin/python3 (python3-faiss, OpenBLAS), does
 * IndexIVFFlat.train and .add on the same file with the same thread count. Rounds alternate ours and
 * FAISS so both see the same machine load; medians are printed with ratios ours / FAISS.
 *
 * Printed per side: train and assign wall time, effective GFLOP/s of the distance work, peak RSS
 * above the RSS before the phase (VmHWM reset through /proc/self/clear_refs), the k-means objective
 * of the last iteration (mean squared distance of the sample to the centroids of that iteration, as
 * FAISS reports it), and the mean squared distance of all points to their final centroid.
 *
 * usage: bench_kmeans [--data FVECS] [--k 1024] [--niter 0] [--threads 2] [--rounds 3] [--seed 1]
 *                     [--peer bench/kmeans_faiss.py] [--python /usr/bin/python3] [--no-peer] [--debug]
 *                     [--faiss-wait PASSIVE|ACTIVE]
 * FAISS's OpenMP threads run with OMP_WAIT_POLICY=PASSIVE by default: on a shared (loaded) machine
 * spinning OpenMP threads made FAISS twice as slow; on an idle machine ACTIVE may be a little faster,
 * so both are worth a run (--faiss-wait ACTIVE).
 * Data: /work/shared/data/get-glove100.sh /work/data (GloVe-100, 340,479 x 100). */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "engine/kernels.h"
#include "engine/kmeans.h"

typedef struct side {
    double train_s, assign_s, train_cpu_s, assign_cpu_s, obj_last, obj_all;
    long train_extra_kb, assign_extra_kb, peak_kb;
} side;

/* User + system CPU seconds of this process (all threads) so far. */
static double cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS; returns the RSS in KiB. */
static long hwm_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
    return status_kb("VmRSS");
}

static float *fvecs_read(const char *path, size_t *n_out, size_t *dim_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int32_t d;
    float *x = NULL;
    if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > 65536 || fseek(f, 0, SEEK_END)) goto fail;
    long size = ftell(f);
    size_t row = 4 + (size_t)d * 4;
    if (size <= 0 || (size_t)size % row) goto fail;
    size_t n = (size_t)size / row;
    x = malloc(n * (size_t)d * 4);
    if (!x || fseek(f, 0, SEEK_SET)) goto fail;
    for (size_t i = 0; i < n; i++) {
        int32_t di;
        if (fread(&di, 4, 1, f) != 1 || di != d || fread(x + i * (size_t)d, 4, (size_t)d, f) != (size_t)d)
            goto fail;
    }
    fclose(f);
    *n_out = n;
    *dim_out = (size_t)d;
    return x;
fail:
    fclose(f);
    free(x);
    return NULL;
}

static void last_objective(void *arg, int iter, int niter, double objective) { *(double *)arg = objective; }

static int run_ours(const float *x, size_t n, size_t dim, size_t k, int niter, int threads, uint64_t seed,
                    side *out)
{
    float *cent = malloc(k * dim * sizeof(float));
    uint32_t *assign = malloc(n * sizeof(uint32_t));
    float *dist = malloc(n * sizeof(float));
    if (!cent || !assign || !dist) return -1;
    memset(assign, 0, n * sizeof(uint32_t)); /* outputs are resident before the measurement */
    memset(dist, 0, n * sizeof(float));
    kmeans_opts o = {.k = k,
                     .niter = niter,
                     .seed = seed,
                     .threads = threads,
                     .metric = KMEANS_L2,
                     .progress = last_objective,
                     .progress_arg = &out->obj_last};
    long rss0 = hwm_reset();
    double c0 = cpu_s();
    uint64_t t0 = s3v_now_ns();
    s3v_status st = kmeans_train(x, n, dim, &o, cent);
    out->train_s = (double)(s3v_now_ns() - t0) * 1e-9;
    out->train_cpu_s = cpu_s() - c0;
    out->peak_kb = status_kb("VmHWM");
    out->train_extra_kb = out->peak_kb - rss0;
    if (st == S3V_OK) {
        rss0 = hwm_reset();
        c0 = cpu_s();
        t0 = s3v_now_ns();
        st = kmeans_assign(x, n, dim, cent, k, KMEANS_L2, threads, assign, dist);
        out->assign_s = (double)(s3v_now_ns() - t0) * 1e-9;
        out->assign_cpu_s = cpu_s() - c0;
        long hwm = status_kb("VmHWM");
        out->assign_extra_kb = hwm - rss0;
        if (hwm > out->peak_kb) out->peak_kb = hwm;
    }
    if (st != S3V_OK) {
        fprintf(stderr, "bench_kmeans: %s\n", s3v_errmsg(st));
        return -1;
    }
    double s = 0;
    for (size_t i = 0; i < n; i++) s += dist[i];
    out->obj_all = s / (double)n;
    free(cent);
    free(assign);
    free(dist);
    return 0;
}

static char *peer_info; /* the last peer's JSON, for its BLAS and thread report */

static int run_peer(const char *python, const char *peer, const char *wait, const char *data, size_t k,
                    int threads, int niter, side *out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d OMP_WAIT_POLICY=%s '%s' '%s' '%s' %zu %d %d",
             threads, threads, wait, python, peer, data, k, threads, niter);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf - 1, p);
    buf[len] = 0;
    if (pclose(p) != 0) {
        fprintf(stderr, "bench_kmeans: peer failed: %s\n", cmd);
        return -1;
    }
    cJSON *j = cJSON_Parse(buf);
    if (!j) {
        fprintf(stderr, "bench_kmeans: peer printed no JSON\n");
        return -1;
    }
#define NUM(name) (cJSON_GetNumberValue(cJSON_GetObjectItem(j, name)))
    out->train_s = NUM("train_s");
    out->assign_s = NUM("add_s");
    out->train_cpu_s = NUM("train_cpu_s");
    out->assign_cpu_s = NUM("add_cpu_s");
    out->obj_last = NUM("objective_last_iter");
    out->obj_all = NUM("objective_all");
    out->train_extra_kb = (long)NUM("train_extra_kb");
    out->assign_extra_kb = (long)NUM("add_extra_kb");
    out->peak_kb = (long)NUM("peak_rss_kb");
    if ((int)NUM("niter") != (niter ? niter : 10) || (int)NUM("omp_threads") != threads)
        fprintf(stderr, "bench_kmeans: peer ran niter %d with %d threads\n", (int)NUM("niter"),
                (int)NUM("omp_threads"));
#undef NUM
    free(peer_info);
    peer_info = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return 0;
}

/* GFLOP per CPU-second of kern->dot_f32_tile alone on the block shape kmeans uses (384 points x up
 * to 1024 centroids, both from the data), best of 5 passes over 64 blocks, on this thread. */
static double tile_rate(const kern_table *kt, const float *x, size_t n, size_t dim, size_t k)
{
    size_t rows = n < 384 ? n : 384, cols = k < 1024 ? k : 1024, blocks = 64;
    float *out = malloc(rows * cols * sizeof(float));
    if (!out || n < rows + cols) {
        free(out);
        return 0;
    }
    double best = 1e300;
    for (int rep = 0; rep < 5; rep++) {
        struct timespec a, b;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        for (size_t i = 0; i < blocks; i++)
            kt->dot_f32_tile(x + (i * rows % (n - rows - cols)) * dim, rows, x + (n - cols) * dim, cols, dim,
                             out);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        if (s < best) best = s;
    }
    free(out);
    return 2.0 * (double)(rows * cols * dim * blocks) * 1e-9 / best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over rounds of one field of side. */
static double median(const side *s, int rounds, size_t offset, int is_long)
{
    double v[64];
    for (int r = 0; r < rounds; r++) {
        const char *p = (const char *)&s[r] + offset;
        v[r] = is_long ? (double)*(const long *)p : *(const double *)p;
    }
    qsort(v, (size_t)rounds, sizeof v[0], cmp_double);
    return rounds % 2 ? v[rounds / 2] : 0.5 * (v[rounds / 2 - 1] + v[rounds / 2]);
}

int main(int argc, char **argv)
{
    const char *data = "/work/data/glove100_base.fvecs", *python = "/usr/bin/python3", *wait = "PASSIVE";
    char peer_default[4096];
    snprintf(peer_default, sizeof peer_default, "%s", __FILE__);
    char *slash = strrchr(peer_default, '/');
    snprintf(slash ? slash + 1 : peer_default,
             sizeof peer_default - (size_t)(slash ? slash + 1 - peer_default : 0), "kmeans_faiss.py");
    const char *peer = peer_default;
    size_t k = 1024;
    int niter = 0, threads = 2, rounds = 3, use_peer = 1;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-peer")) {
            use_peer = 0;
            continue;
        }
        if (!strcmp(a, "--debug")) { /* per-iteration log lines from kmeans */
            s3v_log_set_level(S3V_LOG_DEBUG);
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_kmeans: %s needs a value (see the header of bench/bench_kmeans.c)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--k"))
            k = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--niter"))
            niter = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--peer"))
            peer = v;
        else if (!strcmp(a, "--python"))
            python = v;
        else if (!strcmp(a, "--faiss-wait"))
            wait = v;
        else {
            fprintf(stderr, "bench_kmeans: unknown option %s\n", a);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 64 || threads < 1 || k == 0) {
        fprintf(stderr, "bench_kmeans: bad --rounds, --threads or --k\n");
        return 2;
    }
    const kern_table *kt = kern_init(0);
    size_t n, dim;
    float *x = fvecs_read(data, &n, &dim);
    if (!x) {
        fprintf(stderr, "bench_kmeans: cannot read %s (get it with /work/shared/data/get-glove100.sh)\n",
                data);
        return 1;
    }
    if (k > n) {
        fprintf(stderr, "bench_kmeans: k %zu > n %zu\n", k, n);
        return 2;
    }
    size_t sample = n < k * 256 ? n : k * 256;
    int iters = niter ? niter : 10;
    double load[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(lf);
    }
    printf("bench_kmeans: %s: n %zu, dim %zu; k %zu, sample %zu, %d iterations, %d threads, kernels %s, "
           "%d rounds; FAISS OMP_WAIT_POLICY=%s; load average at start %.2f %.2f %.2f\n",
           data, n, dim, k, sample, iters, threads, kt->name, rounds, wait, load[0], load[1], load[2]);
    fflush(stdout);

    side ours[64], theirs[64];
    for (int r = 0; r < rounds; r++) {
        if (run_ours(x, n, dim, k, niter, threads, seed + (uint64_t)r, &ours[r])) return 1;
        printf(
            "round %d ours:  train %7.2f s (cpu %6.2f)  assign %6.2f s (cpu %6.2f)  objective last %.4f all "
            "%.4f\n",
            r + 1, ours[r].train_s, ours[r].train_cpu_s, ours[r].assign_s, ours[r].assign_cpu_s,
            ours[r].obj_last, ours[r].obj_all);
        fflush(stdout);
        if (!use_peer) continue;
        if (run_peer(python, peer, wait, data, k, threads, niter, &theirs[r])) return 1;
        printf(
            "round %d FAISS: train %7.2f s (cpu %6.2f)  add    %6.2f s (cpu %6.2f)  objective last %.4f all "
            "%.4f\n",
            r + 1, theirs[r].train_s, theirs[r].train_cpu_s, theirs[r].assign_s, theirs[r].assign_cpu_s,
            theirs[r].obj_last, theirs[r].obj_all);
        fflush(stdout);
    }

    /* distance work: iterations x sample x k dot products (train), n x k (assign); 2 flops each */
    double train_gflop = 2.0 * (double)iters * (double)sample * (double)k * (double)dim * 1e-9;
    double assign_gflop = 2.0 * (double)n * (double)k * (double)dim * 1e-9;
    struct {
        const char *name;
        size_t off;
        int is_long;
        const char *unit;
    } rows[] = {
        {"train wall", offsetof(side, train_s), 0, "s"},
        {"assign wall (FAISS: add)", offsetof(side, assign_s), 0, "s"},
        {"train CPU (all threads)", offsetof(side, train_cpu_s), 0, "s"},
        {"assign CPU (all threads)", offsetof(side, assign_cpu_s), 0, "s"},
        {"train extra RSS", offsetof(side, train_extra_kb), 1, "MiB"},
        {"assign extra RSS", offsetof(side, assign_extra_kb), 1, "MiB"},
        {"peak RSS (incl. data)", offsetof(side, peak_kb), 1, "MiB"},
        {"objective, last iteration", offsetof(side, obj_last), 0, ""},
        {"objective, all points", offsetof(side, obj_all), 0, ""},
    };
    printf("\nmedians over %d rounds%s\n", rounds, use_peer ? "" : " (no peer)");
    printf("%-28s %12s %12s %10s\n", "", "ours", "FAISS", "ours/FAISS");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double a = median(ours, rounds, rows[i].off, rows[i].is_long);
        double b = use_peer ? median(theirs, rounds, rows[i].off, rows[i].is_long) : 0;
        double scale = rows[i].is_long ? 1.0 / 1024 : 1.0;
        if (use_peer)
            printf("%-28s %12.4f %12.4f %10.3f %s\n", rows[i].name, a * scale, b * scale, b != 0 ? a / b : 0,
                   rows[i].unit);
        else
            printf("%-28s %12.4f %12s %10s %s\n", rows[i].name, a * scale, "-", "-", rows[i].unit);
    }
    struct {
        const char *name;
        double gflop;
        size_t off;
    } rates[] = {
        {"train GFLOP/s (wall)", train_gflop, offsetof(side, train_s)},
        {"assign GFLOP/s (wall)", assign_gflop, offsetof(side, assign_s)},
        {"train GFLOP per CPU-second", train_gflop, offsetof(side, train_cpu_s)},
        {"assign GFLOP per CPU-second", assign_gflop, offsetof(side, assign_cpu_s)},
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        double a = rates[i].gflop / median(ours, rounds, rates[i].off, 0);
        printf("%-28s %12.1f", rates[i].name, a);
        if (use_peer) {
            double b = rates[i].gflop / median(theirs, rounds, rates[i].off, 0);
            printf(" %12.1f %10.3f", b, a / b);
        }
        printf("\n");
    }
    double tile = tile_rate(kt, x, n, dim, k);
    printf("%-28s %12.1f  (dot_f32_tile alone on 384 x %zu blocks, 1 thread: the kernel's limit)\n",
           "tile GFLOP per CPU-second", tile, k < 1024 ? k : (size_t)1024);
    if (use_peer && peer_info) printf("\nFAISS side (last round): %s\n", peer_info);
    free(peer_info);
    free(x);
    return 0;
}
