/* bench/bench_runtime.c: the Lambda runtime's own costs, measured through the local Lambda emulator
 * (deploy/local/emulator.py) in one run, each beside a peer:
 *
 *  1. Init duration: process start to the first GET /next (the emulator's init_ms of a cold
 *     invocation), without a default index, beside the start-to-exit time of a trivial C program
 *     (/bin/true) spawned by the same Python mechanism the emulator uses (subprocess.Popen) and by
 *     posix_spawn from C. The same with S3VEC_DEFAULT_INDEX (index load included) for reference.
 *  2. Warm invocation overhead: for QueryVectors topK 10 (direct invocation, GloVe-100 or synthetic
 *     100-d vectors, index in a local folder, cluster cache warm), the emulator's runtime_ms (event
 *     handed out on /next -> response received) minus the engine time the handler itself reports
 *     (statistics.msQuery + msIndexOpen) = runtime loop + event decoding + response encoding + the two
 *     loopback HTTP exchanges. Beside it: the engine's query time for the same queries, and the same
 *     emulator's runtime_ms for a trivial Python runtime (deploy/local/example_runtime.py, action
 *     "len"), i.e. the floor of the emulator and its Runtime API.
 * Single-threaded queries (the runtime is single-threaded), no BLAS; kernels as kern_init chooses.
 *
 * usage: bench_runtime [--source DIR] [--bootstrap PATH] [--data DIR] [--n N] [--queries Q] [--cold C]
 *   --source     the source tree (default: found upward from this program, holding deploy/local)
 *   --bootstrap  the runtime (default: <build>/bootstrap/bootstrap next to this program's build)
 *   --data       folder with glove100_base.fvecs / glove100_query.fvecs (default $S3VEC_DATA_DIR or
 *                /work/data); synthetic clustered 100-d data when absent
 *   --n          base vectors indexed (default 100000), --queries measured queries (default 2000),
 *   --cold       cold starts per configuration (default 20) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/storage.h"
#include "engine/build.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"

extern char **environ;

static char tmpdir[256];
static char source_dir[PATH_MAX];
static char bootstrap[PATH_MAX];

/* ---- small helpers ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench_runtime: %s\n", msg);
    exit(1);
}

/* ---- HTTP with libcurl (keep-alive) ---- */

typedef struct http_buf {
    char *p;
    size_t n, cap;
} http_buf;

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    http_buf *b = arg;
    size_t n = size * nmemb;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

static CURL *curl;

/* POST (body != NULL) or GET; returns the HTTP status, the body in *out (caller frees out->p). */
static long http(int port, const char *path, const char *body, http_buf *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    out->n = 0;
    if (out->p) out->p[0] = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    if (curl_easy_perform(curl) != CURLE_OK) return 0;
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* ---- processes ---- */

typedef struct child {
    pid_t pid;
    int port;
} child;

/* Starts argv with stdout on a pipe; reads lines until one matches "<banner> listening on 127.0.0.1:PORT". */
static child start_server(char *const argv[], const char *banner)
{
    int fds[2];
    if (pipe(fds) != 0) die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    child c = {0, 0};
    if (posix_spawnp(&c.pid, argv[0], &fa, NULL, argv, environ) != 0) die("cannot start the emulator");
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    char want[128];
    snprintf(want, sizeof want, "%s listening on 127.0.0.1:%%d", banner);
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, want, &c.port) == 1) break;
    if (f) fclose(f);
    if (!c.port) die("the emulator did not start");
    return c;
}

static void stop_server(child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
}

static child start_emulator(const char *runtime, const char *log, const char *const *env)
{
    char emu[PATH_MAX + 64];
    snprintf(emu, sizeof emu, "%s/deploy/local/emulator.py", source_dir);
    char *argv[40];
    int a = 0;
    argv[a++] = "python3";
    argv[a++] = emu;
    argv[a++] = "--bootstrap";
    argv[a++] = (char *)runtime;
    argv[a++] = "--port";
    argv[a++] = "0";
    argv[a++] = "--timeout";
    argv[a++] = "60";
    argv[a++] = "--memory";
    argv[a++] = "1024";
    argv[a++] = "--log-file";
    argv[a++] = (char *)log;
    static char envs[16][PATH_MAX + 64];
    for (int i = 0; env && env[i] && i < 16; i++) {
        snprintf(envs[i], sizeof envs[i], "--env=%s", env[i]);
        argv[a++] = envs[i];
    }
    argv[a] = NULL;
    return start_server(argv, "emulator");
}

static cJSON *get_stats(int port)
{
    http_buf b = {0};
    if (http(port, "/_emulator/stats", NULL, &b) != 200) die("stats");
    cJSON *j = cJSON_Parse(b.p);
    free(b.p);
    if (!j) die("stats not JSON");
    return j;
}

static const char *INVOKE = "/2015-03-31/functions/function/invocations";

/* Kills the current sandbox process and waits until the emulator notices. */
static void kill_sandbox(int port)
{
    cJSON *st = get_stats(port);
    const cJSON *sb = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "sandboxes"), 0);
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(sb, "pid");
    if (cJSON_IsNumber(pid)) kill((pid_t)pid->valueint, SIGKILL);
    cJSON_Delete(st);
    for (int i = 0; i < 200; i++) {
        st = get_stats(port);
        sb = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "sandboxes"), 0);
        int stopped = strcmp(cJSON_GetObjectItemCaseSensitive(sb, "state")->valuestring, "stopped") == 0;
        cJSON_Delete(st);
        if (stopped) return;
        usleep(10000);
    }
    die("sandbox did not stop");
}

/* init_ms of `cold` cold starts (each followed by one invocation of `payload`). */
static size_t cold_starts(int port, const char *payload, int cold, double *out)
{
    http_buf b = {0};
    size_t n = 0;
    for (int i = 0; i < cold; i++) {
        if (i) kill_sandbox(port);
        if (http(port, INVOKE, payload, &b) != 200) die("cold invoke failed");
        cJSON *st = get_stats(port);
        const cJSON *inv = cJSON_GetObjectItemCaseSensitive(st, "invocations");
        const cJSON *last = cJSON_GetArrayItem(inv, cJSON_GetArraySize(inv) - 1);
        const cJSON *init = cJSON_GetObjectItemCaseSensitive(last, "init_ms");
        if (cJSON_IsNumber(init)) out[n++] = init->valuedouble;
        cJSON_Delete(st);
    }
    free(b.p);
    return n;
}

/* Start-to-exit of /bin/true via posix_spawn, ms. */
static size_t trivial_spawn(int reps, double *out)
{
    char *argv[] = {"/bin/true", NULL};
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = s3v_now_ns();
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0) die("spawn /bin/true");
        waitpid(pid, NULL, 0);
        out[i] = (double)(s3v_now_ns() - t0) / 1e6;
    }
    return (size_t)reps;
}

/* The bootstrap with an empty environment: it exits at the top of main() (no AWS_LAMBDA_RUNTIME_API),
 * so this is exec + loading its shared libraries + their constructors. ms, from C. */
static size_t bootstrap_exec(int reps, double *out)
{
    char *argv[] = {bootstrap, NULL};
    char *envp[] = {NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = s3v_now_ns();
        pid_t pid;
        if (posix_spawn(&pid, bootstrap, &fa, NULL, argv, envp) != 0) die("spawn bootstrap");
        waitpid(pid, NULL, 0);
        out[i] = (double)(s3v_now_ns() - t0) / 1e6;
    }
    posix_spawn_file_actions_destroy(&fa);
    return (size_t)reps;
}

/* The same through Python's subprocess.Popen (the emulator's spawn path), median ms. */
static double trivial_popen(int reps)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import subprocess,time,statistics\n"
             "v=[]\nfor _ in range(%d):\n t=time.perf_counter(); subprocess.Popen(['/bin/true'],"
             "stdout=subprocess.PIPE,stderr=subprocess.PIPE,start_new_session=True).wait(); "
             "v.append((time.perf_counter()-t)*1000)\nprint(statistics.median(v))\"",
             reps);
    FILE *p = popen(cmd, "r");
    double ms = NAN;
    if (p) {
        if (fscanf(p, "%lf", &ms) != 1) ms = NAN;
        pclose(p);
    }
    return ms;
}

/* ---- data ---- */

static float *base_vecs, *query_vecs;
static size_t base_n, query_n, dim;
static const char *data_name;

static void load_data(const char *data_dir, size_t n, size_t q)
{
    char bp[PATH_MAX], qp[PATH_MAX];
    snprintf(bp, sizeof bp, "%s/glove100_base.fvecs", data_dir);
    snprintf(qp, sizeof qp, "%s/glove100_query.fvecs", data_dir);
    size_t rows, d;
    if (exists(bp) && exists(qp) && vec_read_fvecs(bp, &base_vecs, &rows, &dim) == S3V_OK) {
        base_n = rows < n ? rows : n;
        float *qv;
        size_t qr, qd;
        if (vec_read_fvecs(qp, &qv, &qr, &qd) != S3V_OK || qd != dim) die("query file");
        query_vecs = qv;
        query_n = qr < q ? qr : q;
        data_name = "GloVe-100";
        return;
    }
    /* synthetic: clustered 100-d gaussians */
    dim = 100;
    base_n = n;
    query_n = q;
    base_vecs = malloc(base_n * dim * sizeof(float));
    query_vecs = malloc(query_n * dim * sizeof(float));
    float *centres = malloc(200 * dim * sizeof(float));
    s3v_rng r;
    s3v_rng_seed(&r, 9);
    for (size_t i = 0; i < 200 * dim; i++) centres[i] = (float)(s3v_rng_unit(&r) * 2 - 1);
    for (size_t i = 0; i < base_n + query_n; i++) {
        float *v = i < base_n ? base_vecs + i * dim : query_vecs + (i - base_n) * dim;
        const float *c = centres + (s3v_rng_below(&r, 200)) * dim;
        for (size_t j = 0; j < dim; j++) v[j] = c[j] + (float)((s3v_rng_unit(&r) - 0.5) * 0.6);
    }
    free(centres);
    data_name = "synthetic 100-d";
    (void)d;
}

static void write_fvecs(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write the base file");
    int32_t d = (int32_t)dim;
    for (size_t i = 0; i < base_n; i++) {
        fwrite(&d, 4, 1, f);
        fwrite(base_vecs + i * dim, sizeof(float), dim, f);
    }
    fclose(f);
}

static char *query_payload(size_t qi, int stats)
{
    size_t cap = dim * 24 + 512;
    char *s = malloc(cap);
    int n = snprintf(s, cap,
                     "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"bench\",\"indexName\":\"glove\","
                     "\"topK\":10,\"returnDistance\":true%s,\"queryVector\":{\"float32\":[",
                     stats ? ",\"returnStatistics\":true" : "");
    for (size_t j = 0; j < dim; j++)
        n += snprintf(s + n, cap - (size_t)n, "%s%.9g", j ? "," : "", (double)query_vecs[qi * dim + j]);
    snprintf(s + n, cap - (size_t)n, "]}}");
    return s;
}

/* ---- main ---- */

static void find_source(const char *argv0)
{
    char p[PATH_MAX];
    if (!realpath(argv0, p)) snprintf(p, sizeof p, "%s", argv0);
    for (int up = 0; up < 6; up++) {
        char *slash = strrchr(p, '/');
        if (!slash) break;
        *slash = 0;
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s/deploy/local/emulator.py", p);
        if (exists(probe)) {
            snprintf(source_dir, sizeof source_dir, "%s", p);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    const char *data_dir = getenv("S3VEC_DATA_DIR") ? getenv("S3VEC_DATA_DIR") : "/work/data";
    size_t n = 100000, nq = 2000;
    int cold = 20;
    find_source(argv[0]);
    char self[PATH_MAX];
    if (realpath(argv[0], self)) {
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(bootstrap, sizeof bootstrap, "%.4000s/../bootstrap/bootstrap", self);
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            snprintf(source_dir, sizeof source_dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--bootstrap") && i + 1 < argc)
            snprintf(bootstrap, sizeof bootstrap, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data_dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
            nq = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cold") && i + 1 < argc)
            cold = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: bench_runtime [--source DIR] [--bootstrap PATH] [--data DIR] [--n N] [--queries Q] "
                "[--cold C]\n(see the comment at the top of bench/bench_runtime.c)\n");
            return 0;
        } else {
            fprintf(stderr, "usage: bench_runtime [--source DIR] [--bootstrap PATH] [--data DIR] [--n N] "
                            "[--queries Q] [--cold C]\n");
            return 2;
        }
    }
    if (!source_dir[0] || !exists(bootstrap))
        die("cannot find the source tree or the bootstrap (use --source/--bootstrap)");
    const kern_table *kt = kern_init(0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-bench-runtime-XXXXXX");
    if (!mkdtemp(tmpdir)) die("mkdtemp");

    /* index */
    load_data(data_dir, n, nq);
    char base[PATH_MAX], root[PATH_MAX];
    snprintf(base, sizeof base, "%s/base.fvecs", tmpdir);
    snprintf(root, sizeof root, "%s/root", tmpdir);
    write_fvecs(base);
    s3v_storage *st;
    vec_reader *rd;
    if (s3v_storage_local_open(root, 1, &st) != S3V_OK || vec_reader_open(base, NULL, &rd) != S3V_OK)
        die("open");
    ivf_build_opts bo = {.metric = IVF_METRIC_EUCLIDEAN, .seed = 1, .threads = 2, .tmp_dir = tmpdir};
    ivf_build_report rep;
    fprintf(stderr, "bench_runtime: building a %zu x %zu index (%s)...\n", base_n, dim, data_name);
    if (ivf_build(st, "bench/glove", rd, &bo, &rep) != S3V_OK) die(s3v_errmsg(S3V_ERR_INVALID));
    vec_reader_close(rd);

    /* engine alone: the same queries, warm cache */
    cluster_cache *cache;
    ivf_index *ix;
    if (cluster_cache_new((size_t)1 << 30, &cache) != S3V_OK ||
        ivf_index_open(st, "bench/glove", cache, S3V_NO_DEADLINE, &ix) != S3V_OK)
        die("engine open");
    double *eng = calloc(query_n, sizeof *eng);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < query_n; i++) {
            ivf_query q = {.vector = query_vecs + i * dim,
                           .dim = (uint32_t)dim,
                           .topk = 10,
                           .deadline_ns = S3V_NO_DEADLINE};
            ivf_result r;
            uint64_t t0 = s3v_now_ns();
            if (ivf_index_search(ix, &q, &r) != S3V_OK) die("engine search");
            eng[i] = (double)(s3v_now_ns() - t0) / 1e6;
            ivf_result_free(&r);
        }
    uint32_t nprobe = ivf_index_manifest(ix)->default_nprobe;
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);

    /* emulator A: default index, warm invocations */
    char envs[4][PATH_MAX + 32];
    snprintf(envs[0], sizeof envs[0], "S3VEC_STORAGE=%s", root);
    snprintf(envs[1], sizeof envs[1], "S3VEC_DEFAULT_INDEX=bench/glove");
    snprintf(envs[2], sizeof envs[2], "S3VEC_LOG=info");
    snprintf(envs[3], sizeof envs[3], "S3VEC_CACHE_MB=512");
    const char *env_a[] = {envs[0], envs[1], envs[2], envs[3], NULL};
    const char *env_b[] = {envs[0], envs[2], NULL};
    char log_a[PATH_MAX], log_b[PATH_MAX], log_c[PATH_MAX];
    snprintf(log_a, sizeof log_a, "%s/emu-a.log", tmpdir);
    snprintf(log_b, sizeof log_b, "%s/emu-b.log", tmpdir);
    snprintf(log_c, sizeof log_c, "%s/emu-c.log", tmpdir);
    child a = start_emulator(bootstrap, log_a, env_a);
    http_buf b = {0};
    char **payloads = calloc(query_n, sizeof *payloads);
    for (size_t i = 0; i < query_n; i++) payloads[i] = query_payload(i, 1);
    for (size_t i = 0; i < query_n; i++) /* warm-up: process, index and cache */
        if (http(a.port, INVOKE, payloads[i], &b) != 200) die("warm-up invoke failed");
    http(a.port, "/_emulator/stats/reset", "", &b);
    double *engine_ms = calloc(query_n, sizeof *engine_ms), *client_ms = calloc(query_n, sizeof *client_ms);
    size_t req_bytes = 0, resp_bytes = 0;
    for (size_t i = 0; i < query_n; i++) {
        uint64_t t0 = s3v_now_ns();
        if (http(a.port, INVOKE, payloads[i], &b) != 200) die("invoke failed");
        client_ms[i] = (double)(s3v_now_ns() - t0) / 1e6;
        req_bytes += strlen(payloads[i]);
        resp_bytes += b.n;
        cJSON *j = cJSON_Parse(b.p);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "statistics");
        const cJSON *mq = cJSON_GetObjectItemCaseSensitive(s, "msQuery");
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(s, "msIndexOpen");
        if (!cJSON_IsNumber(mq) || cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "vectors")) != 10)
            die("unexpected response");
        engine_ms[i] = mq->valuedouble + (cJSON_IsNumber(mo) ? mo->valuedouble : 0);
        cJSON_Delete(j);
    }
    cJSON *stats = get_stats(a.port);
    const cJSON *invs = cJSON_GetObjectItemCaseSensitive(stats, "invocations");
    size_t ninv = (size_t)cJSON_GetArraySize(invs);
    double *runtime_ms = calloc(ninv + 1, sizeof *runtime_ms), *overhead = calloc(ninv + 1, sizeof *overhead);
    double *handler_ov = calloc(ninv + 1, sizeof *handler_ov), *loop_ms = calloc(ninv + 1, sizeof *loop_ms);
    char(*rids)[64] = calloc(ninv + 1, sizeof *rids);
    size_t k = 0;
    for (const cJSON *e = invs ? invs->child : NULL; e && k < query_n; e = e->next, k++) {
        runtime_ms[k] = cJSON_GetObjectItemCaseSensitive(e, "runtime_ms")->valuedouble;
        overhead[k] = runtime_ms[k] - engine_ms[k];
        snprintf(rids[k], sizeof rids[k], "%s",
                 cJSON_GetObjectItemCaseSensitive(e, "request_id")->valuestring);
    }
    cJSON_Delete(stats);
    /* the runtime's own per-invocation times from its log: handler_ms (decode + engine + encode) */
    usleep(200000);
    FILE *la = fopen(log_a, "r");
    char lline[2048];
    size_t nh = 0;
    while (la && fgets(lline, sizeof lline, la)) {
        const char *rq = strstr(lline, "invoke req=");
        const char *em = strstr(lline, " engine_ms="), *hm = strstr(lline, " handler_ms=");
        if (!rq || !em || !hm) continue;
        char id[64];
        if (sscanf(rq + 11, "%63s", id) != 1) continue;
        for (size_t i = 0; i < k; i++) {
            if (strcmp(rids[i], id) != 0) continue;
            double e = strtod(em + 11, NULL), hms = strtod(hm + 12, NULL);
            handler_ov[nh] = hms - e;
            loop_ms[nh] = runtime_ms[i] - hms;
            nh++;
            break;
        }
    }
    if (la) fclose(la);
    double init_idx[64];
    size_t nidx = cold_starts(a.port, payloads[0], cold < 64 ? cold : 64, init_idx);
    stop_server(&a);

    /* emulator B: no default index (init = process start to the first /next) */
    child bb = start_emulator(bootstrap, log_b, env_b);
    double init_plain[64];
    size_t nplain = cold_starts(
        bb.port, "{\"operation\":\"GetIndex\",\"vectorBucketName\":\"bench\",\"indexName\":\"glove\"}",
        cold < 64 ? cold : 64, init_plain);
    stop_server(&bb);
    /* the runtime's own measure of main() -> ready, from its log */
    double self_init[64];
    size_t nself = 0;
    FILE *lf = fopen(log_b, "r");
    char line[1024];
    while (lf && fgets(line, sizeof line, lf) && nself < 64) {
        const char *m = strstr(line, "init: ready in ");
        if (m) self_init[nself++] = strtod(m + 15, NULL);
    }
    if (lf) fclose(lf);

    /* emulator C: a trivial Python runtime (the emulator + Runtime API floor) */
    char example[PATH_MAX + 64];
    snprintf(example, sizeof example, "%s/deploy/local/example_runtime.py", source_dir);
    child c = start_emulator(example, log_c, NULL);
    for (int i = 0; i < 200; i++) http(c.port, INVOKE, "{\"action\":\"len\"}", &b);
    http(c.port, "/_emulator/stats/reset", "", &b);
    for (size_t i = 0; i < query_n; i++) http(c.port, INVOKE, "{\"action\":\"len\"}", &b);
    stats = get_stats(c.port);
    invs = cJSON_GetObjectItemCaseSensitive(stats, "invocations");
    size_t nfloor = 0;
    double *floor_ms = calloc((size_t)cJSON_GetArraySize(invs) + 1, sizeof *floor_ms);
    for (const cJSON *e = invs ? invs->child : NULL; e; e = e->next)
        floor_ms[nfloor++] = cJSON_GetObjectItemCaseSensitive(e, "runtime_ms")->valuedouble;
    cJSON_Delete(stats);
    stop_server(&c);

    double spawn_ms[64], libs_ms[64];
    size_t nspawn = trivial_spawn(cold < 64 ? cold : 64, spawn_ms);
    size_t nlibs = bootstrap_exec(cold < 64 ? cold : 64, libs_ms);
    double popen_ms = trivial_popen(cold);

    /* report */
    double init_med = pct(init_plain, nplain, 0.5), spawn_med = pct(spawn_ms, nspawn, 0.5);
    double ov50 = pct(overhead, k, 0.5), ov90 = pct(overhead, k, 0.9), ov99 = pct(overhead, k, 0.99);
    double en50 = pct(engine_ms, k, 0.5), rt50 = pct(runtime_ms, k, 0.5), fl50 = pct(floor_ms, nfloor, 0.5);
    double e50 = pct(eng, query_n, 0.5), cl50 = pct(client_ms, k, 0.5);
    printf("bench_runtime: %s, %zu x %zu, euclidean f32, nlist %u, default nprobe %u; topK 10; kernels %s; "
           "queries single-threaded, no BLAS\n",
           data_name, base_n, dim, rep.nlist, nprobe, kt->name);
    printf("\n1. init duration (process start -> first GET /next), %d cold starts each, median [p90]\n",
           cold);
    printf("   ours, no default index             %8.2f ms [%.2f]\n", init_med, pct(init_plain, nplain, 0.9));
    printf("     of which main() -> ready (own log) %6.2f ms\n", pct(self_init, nself, 0.5));
    printf("   ours, default index loaded at INIT  %8.2f ms [%.2f]\n", pct(init_idx, nidx, 0.5),
           pct(init_idx, nidx, 0.9));
    printf("   peer: /bin/true via subprocess.Popen (the emulator's spawn path) %6.2f ms\n", popen_ms);
    printf("   peer: /bin/true via posix_spawn from C                          %6.2f ms\n", spawn_med);
    printf("   ours: bootstrap exec + its shared libraries (exits at once in main), posix_spawn %6.2f ms\n",
           pct(libs_ms, nlibs, 0.5));
    printf("   ratio ours / Popen(/bin/true) = %.2f; ours - Popen(/bin/true) = %.2f ms\n",
           init_med / popen_ms, init_med - popen_ms);
    printf("\n2. warm QueryVectors, %zu invocations (direct, %zu B request, %zu B response on average)\n", k,
           req_bytes / (k ? k : 1), resp_bytes / (k ? k : 1));
    printf("   emulator runtime_ms (handed on /next -> response in)  median %.3f ms\n", rt50);
    printf("   engine time reported by the handler (msQuery)          median %.3f ms\n", en50);
    printf("   overhead = runtime_ms - engine time                    median %.3f  p90 %.3f  p99 %.3f ms\n",
           ov50, ov90, ov99);
    printf("   peer: engine alone in-process, same queries, warm       median %.3f ms\n", e50);
    printf("   peer: trivial Python runtime on the same emulator (runtime_ms, action len) median %.3f ms\n",
           fl50);
    printf("   ratio overhead / engine query time = %.2f; overhead / trivial-runtime floor = %.2f\n",
           ov50 / e50, ov50 / fl50);
    printf(
        "   split (runtime's own clock, %zu matched): decode + validate + encode  median %.3f  p99 %.3f ms\n",
        nh, pct(handler_ov, nh, 0.5), pct(handler_ov, nh, 0.99));
    printf("     /next + /response exchange with the emulator (runtime_ms - handler_ms)  median %.3f ms\n",
           pct(loop_ms, nh, 0.5));
    printf("   client round trip through the emulator's Invoke API    median %.3f ms\n", cl50);

    for (size_t i = 0; i < query_n; i++) free(payloads[i]);
    free(payloads);
    free(b.p);
    free(eng);
    free(engine_ms);
    free(client_ms);
    free(runtime_ms);
    free(overhead);
    free(handler_ov);
    free(loop_ms);
    free(rids);
    free(floor_ms);
    free(base_vecs);
    free(query_vecs);
    curl_easy_cleanup(curl);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "bench_runtime: could not remove %s\n", tmpdir);
    return 0;
}
