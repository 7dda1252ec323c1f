/* bench/bench_runtime.c: the Lambda runtime's own costs, each beside a peer measured in the same run.
 *
 *  1. Init duration: process start to the runtime's first GET /next, without a default index (and,
 *     for reference, with S3VEC_DEFAULT_INDEX, whose load is included). Measured two ways:
 *     - through the local Lambda (deploy/local/emulator.py): its init_ms of cold invocations;
 *     - through a minimal Runtime API written in C inside this program (spawn -> the first request
 *       read), which isolates the runtime from the emulator's Python.
 *     Peers: a trivial static C runtime (connect, GET /next, answer {} forever; compiled here with cc,
 *     skipped without a compiler) started the same two ways; /bin/true and our bootstrap exiting at
 *     once in main() (exec + shared libraries) via posix_spawn; /bin/true via subprocess.Popen, the
 *     emulator's own spawn path.
 *  2. Warm invocation overhead: for QueryVectors topK 10 (direct invocation, GloVe-100 or synthetic
 *     100-d vectors, index in a local folder, cluster cache warm), runtime_ms (event handed out on
 *     /next -> response received) minus the engine time the handler itself reports (statistics.msQuery
 *     + msIndexOpen) = runtime loop + event decoding + response encoding + the two loopback HTTP
 *     exchanges. Measured through the emulator (its runtime_ms) and through the C Runtime API (same
 *     definition: first byte of the /next answer written -> last byte of the response read). Peers:
 *     the engine's query time for the same queries in-process; the runtime_ms of the trivial C
 *     runtime (zero work) and of a trivial Python runtime (deploy/local/example_runtime.py, action
 *     "len") on the same emulator, i.e. the emulator's own floor; and of a zero-work runtime built on
 *     our Runtime API client (bootstrap/runtime.c, libcurl; compiled here against the system's shared
 *     libcurl) fed the same events, i.e. the floor plus the client's own share of the exchange. The
 *     split of our overhead comes from the runtime's log (handler_ms - engine_ms = decode + validate +
 *     encode).
 *  3. Event decoding by dimension, in-process: hd_event_decode + hd_event_free of a direct QueryVectors
 *     event with 100, 768 and 1536 numbers, printed as %.9g (float32's round-trip form) and as %.17g
 *     (what a client sending float32 values as doubles, e.g. numpy -> json, writes). Peer: glibc's
 *     strtod alone over the same number texts, the part no decoder built on it (cJSON's included) can
 *     skip.
 * Single-threaded queries (the runtime is single-threaded), no BLAS; kernels as kern_init chooses.
 * The machine is shared: run it a few times (nice -n -10 helps) and compare medians.
 *
 * usage: bench_runtime [--source DIR] [--bootstrap PATH] [--data DIR] [--n N] [--queries Q] [--cold C]
 *   --source     the source tree (default: found upward from this program, holding deploy/local)
 *   --bootstrap  the runtime (default: <build>/bootstrap/bootstrap next to this program's build); a
 *                packaged one works when staged with its task root, e.g.
 *                deploy/package.sh --arch x86_64 --bootstrap B --stage D --task-root D, then D/bootstrap
 *                (B built by package.sh --deps static, e.g. build/package-x86_64/bootstrap/bootstrap)
 *   --data       folder with glove100_base.fvecs / glove100_query.fvecs (default $S3VEC_DATA_DIR or
 *                /work/data); synthetic clustered 100-d data when absent
 *   --n          base vectors indexed (default 100000), --queries measured queries (default 2000),
 *   --cold       cold starts per configuration (default 20, at most 64) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
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
#include "handler/event.h"

extern char **environ;

#define MAX_COLD 64

static char tmpdir[256];
static char source_dir[PATH_MAX];
static char bootstrap[PATH_MAX];
static char trivial[PATH_MAX];   /* the trivial C runtime, "" when it could not be built */
static char curl_rt[PATH_MAX];   /* the zero-work runtime on bootstrap/runtime.c, "" when not built */
static char build_dir[PATH_MAX]; /* the build folder this program belongs to */

/* ---- small helpers ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p-quantile of v[0..n) (sorts v); NAN when empty. */
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

/* Processes this program started and has not stopped yet (stopped at exit, also after die()). */
static pid_t live[8];

static void track(pid_t pid, int on)
{
    for (size_t i = 0; i < sizeof live / sizeof *live; i++)
        if (on ? live[i] == 0 : live[i] == pid) {
            live[i] = on ? pid : 0;
            return;
        }
}

static void cleanup(void)
{
    for (size_t i = 0; i < sizeof live / sizeof *live; i++)
        if (live[i] > 0) {
            kill(live[i], SIGTERM);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
    if (tmpdir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "bench_runtime: could not remove %s\n", tmpdir);
        tmpdir[0] = 0;
    }
}

static void die(const char *msg)
{
    fprintf(stderr, "bench_runtime: %s\n", msg);
    exit(1); /* cleanup() runs */
}

static double ms_since(uint64_t t0) { return (double)(s3v_now_ns() - t0) / 1e6; }

/* ---- HTTP with libcurl (keep-alive), the emulator's client ---- */

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
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
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
    track(c.pid, 1);
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
        track(c->pid, 0);
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

/* runtime_ms of every invocation the emulator remembers (after a stats reset); returns the count. */
static size_t runtime_ms_list(int port, double *out, size_t cap, char (*rids)[64])
{
    cJSON *stats = get_stats(port);
    const cJSON *invs = cJSON_GetObjectItemCaseSensitive(stats, "invocations");
    size_t k = 0;
    for (const cJSON *e = invs ? invs->child : NULL; e && k < cap; e = e->next, k++) {
        out[k] = cJSON_GetObjectItemCaseSensitive(e, "runtime_ms")->valuedouble;
        if (rids)
            snprintf(rids[k], sizeof rids[k], "%s",
                     cJSON_GetObjectItemCaseSensitive(e, "request_id")->valuestring);
    }
    cJSON_Delete(stats);
    return k;
}

/* Start-to-exit of `path` (no arguments, empty environment, stderr to /dev/null) via posix_spawn, ms. */
static size_t spawn_to_exit(const char *path, int reps, double *out)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = s3v_now_ns();
        pid_t pid;
        if (posix_spawn(&pid, path, &fa, NULL, argv, envp) != 0) die("posix_spawn");
        waitpid(pid, NULL, 0);
        out[i] = ms_since(t0);
    }
    posix_spawn_file_actions_destroy(&fa);
    return (size_t)reps;
}

/* The same for /bin/true through Python's subprocess.Popen, as the emulator spawns; median ms. */
static double trivial_popen(int reps)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import subprocess,time,statistics\n"
             "v=[]\nfor _ in range(%d):\n t=time.perf_counter(); p=subprocess.Popen(['/bin/true'],"
             "stdin=subprocess.DEVNULL,stdout=subprocess.PIPE,stderr=subprocess.PIPE,start_new_session=True);"
             " p.wait(); p.stdout.close(); p.stderr.close(); v.append((time.perf_counter()-t)*1000)\n"
             "print(statistics.median(v))\"",
             reps);
    FILE *p = popen(cmd, "r");
    double ms = NAN;
    if (p) {
        if (fscanf(p, "%lf", &ms) != 1) ms = NAN;
        pclose(p);
    }
    return ms;
}

/* The trivial runtime: one connection, GET /next, POST "{}" as the response, forever. Compiled here
 * (static when the toolchain allows) so that no shared library is loaded at its start. */
static const char TRIVIAL_C[] =
    "#include <arpa/inet.h>\n#include <netinet/tcp.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
    "#include <string.h>\n#include <sys/socket.h>\n#include <unistd.h>\n"
    "static char b[1 << 16]; static size_t have;\n"
    "static int resp(int fd, char *rid) {\n"
    "  for (;;) { b[have] = 0; char *e = strstr(b, \"\\r\\n\\r\\n\");\n"
    "    if (e) { size_t hl = (size_t)(e - b) + 4, n = 0; char *c = strstr(b, \"Content-Length: \");\n"
    "      if (c && c < e) n = strtoul(c + 16, NULL, 10);\n"
    "      if (hl + n >= sizeof b) return -1;\n"
    "      while (have < hl + n) { ssize_t r = read(fd, b + have, sizeof b - 1 - have); if (r <= 0) return "
    "-1; "
    "have += (size_t)r; }\n"
    "      if (rid) { char *p = strstr(b, \"Lambda-Runtime-Aws-Request-Id: \"); if (!p || p > e || "
    "sscanf(p + 31, \"%63s\", rid) != 1) return -1; }\n"
    "      memmove(b, b + hl + n, have - hl - n); have -= hl + n; return 0; }\n"
    "    ssize_t r = read(fd, b + have, sizeof b - 1 - have); if (r <= 0) return -1; have += (size_t)r; } }\n"
    "int main(void) {\n"
    "  const char *api = getenv(\"AWS_LAMBDA_RUNTIME_API\"); char host[64]; int port, one = 1;\n"
    "  if (!api || sscanf(api, \"%63[^:]:%d\", host, &port) != 2) return 1;\n"
    "  int fd = socket(AF_INET, SOCK_STREAM, 0); setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof "
    "one);\n"
    "  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};\n"
    "  inet_pton(AF_INET, host, &a.sin_addr); if (connect(fd, (struct sockaddr *)&a, sizeof a)) return 1;\n"
    "  for (;;) { char q[512], rid[64]; int n = snprintf(q, sizeof q, \"GET "
    "/2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n\", api);\n"
    "    if (write(fd, q, (size_t)n) != n || resp(fd, rid)) return 1;\n"
    "    n = snprintf(q, sizeof q, \"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\\r\\nHost: "
    "%s\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n{}\", rid, api);\n"
    "    if (write(fd, q, (size_t)n) != n || resp(fd, NULL)) return 1; } }\n";

/* Writes `source` to <tmpdir>/<name>.c and runs `cmd` (which compiles it into `exe`); `exe` is emptied
 * (the peer is left out) when that fails. */
static void build_helper(const char *name, const char *source, const char *cmd, char *exe, const char *what)
{
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s.c", tmpdir, name);
    FILE *f = fopen(src, "w");
    if (!f) die("cannot write a helper's source");
    fputs(source, f);
    fclose(f);
    if (system(cmd) != 0 || !exists(exe)) {
        fprintf(stderr, "bench_runtime: could not build %s: left out\n", what);
        exe[0] = 0;
    }
}

static void build_trivial(void)
{
    char cmd[4 * PATH_MAX + 128];
    snprintf(trivial, sizeof trivial, "%s/trivial", tmpdir);
    snprintf(cmd, sizeof cmd,
             "cc -O2 -static -o '%s' '%s/trivial.c' 2>/dev/null || cc -O2 -o '%s' '%s/trivial.c' 2>/dev/null",
             trivial, tmpdir, trivial, tmpdir);
    build_helper("trivial", TRIVIAL_C, cmd, trivial, "the trivial C runtime (no C compiler?)");
}

/* The zero-work runtime on our own Runtime API client: bootstrap/runtime.c (libcurl) around a loop that
 * answers "{}" to every event. Its runtime_ms minus the trivial C runtime's is the client's share of the
 * exchange; ours minus its is the handler's (decode, validate, encode) and the engine's. Compiled here
 * against this build's common library and the system's shared libcurl (the bootstrap under test may be
 * the static zip build: the libcurl versions then match, the linking differs). */
static const char CURL_RT_C[] =
    "#include <stdlib.h>\n#include \"bootstrap/runtime.h\"\n"
    "int main(void) {\n"
    "  rt_client *c = rt_client_open(getenv(\"AWS_LAMBDA_RUNTIME_API\")); static rt_invocation inv;\n"
    "  if (!c) return 1;\n"
    "  for (;;) { if (rt_next(c, &inv) != RT_OK) return 1;\n"
    "    if (rt_post_response(c, &inv, (const unsigned char *)\"{}\", 2) == RT_FATAL) return 1; } }\n";

static void build_curl_rt(void)
{
    char cmd[6 * PATH_MAX + 256];
    snprintf(curl_rt, sizeof curl_rt, "%s/curl_rt", tmpdir);
    snprintf(cmd, sizeof cmd,
             "cc -O2 -I'%s' -o '%s' '%s/curl_rt.c' '%s/bootstrap/runtime.c' '%s/common/libs3v_common.a' "
             "$(pkg-config --cflags --libs libcurl libcjson 2>/dev/null || echo -lcurl -lcjson) 2>/dev/null",
             source_dir, curl_rt, tmpdir, source_dir, build_dir);
    build_helper("curl_rt", CURL_RT_C, cmd, curl_rt, "the libcurl zero-work runtime");
}

/* ---- a minimal Runtime API in C: one listening socket, one runtime, blocking I/O ---- */

typedef struct stub {
    int lfd, fd, port;
    pid_t pid;
    char *buf; /* received bytes; the first `consumed` belong to the request last returned */
    size_t have, cap, consumed;
} stub;

#define STUB_BUF_CAP  (8u << 20)
#define STUB_WAIT_MS  60000
#define STUB_HEAD_MAX 65536

static void stub_open(stub *s)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 8) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        die("stub: cannot listen");
    s->port = ntohs(a.sin_port);
    s->cap = STUB_BUF_CAP;
    s->buf = malloc(s->cap);
    if (!s->buf) die("out of memory");
}

static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, STUB_WAIT_MS);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

/* Starts the runtime with AWS_LAMBDA_RUNTIME_API pointing here; its stderr and stdout go to `log`. */
static void stub_spawn(stub *s, const char *runtime, const char *const *env, const char *log)
{
    char api[64], task[PATH_MAX + 32];
    snprintf(api, sizeof api, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:%d", s->port);
    snprintf(task, sizeof task, "LAMBDA_TASK_ROOT=%s", runtime);
    char *slash = strrchr(task, '/');
    if (slash) *slash = 0;
    char *envp[24];
    int n = 0;
    envp[n++] = api;
    envp[n++] = task;
    envp[n++] = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024";
    envp[n++] = "AWS_REGION=us-east-1";
    envp[n++] = "PATH=/usr/local/bin:/usr/bin/:/bin";
    for (int i = 0; env && env[i] && n < 23; i++) envp[n++] = (char *)env[i];
    envp[n] = NULL;
    char *argv[] = {(char *)runtime, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, s->lfd);
    if (posix_spawn(&s->pid, runtime, &fa, NULL, argv, envp) != 0) die("stub: cannot start the runtime");
    track(s->pid, 1);
    posix_spawn_file_actions_destroy(&fa);
}

static void stub_kill(stub *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        track(s->pid, 0);
        s->pid = 0;
    }
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->have = s->consumed = 0;
}

static void stub_close(stub *s)
{
    stub_kill(s);
    close(s->lfd);
    free(s->buf);
}

/* Reads one request: its head (NUL-terminated, in head[0..cap)) and body (*body points into the
 * buffer, valid until the next call). Accepts the runtime's connection when there is none. Returns
 * 0, or -1 when the runtime went away or did not ask within STUB_WAIT_MS. */
static int stub_read(stub *s, char *head, size_t cap, const char **body, size_t *body_len)
{
    if (s->consumed) { /* drop the previous request */
        memmove(s->buf, s->buf + s->consumed, s->have - s->consumed);
        s->have -= s->consumed;
        s->consumed = 0;
    }
    if (s->fd < 0) {
        if (wait_readable(s->lfd) != 0) return -1;
        s->fd = accept(s->lfd, NULL, NULL);
        if (s->fd < 0) return -1;
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s->have = s->consumed = 0;
    }
    for (;;) {
        s->buf[s->have < s->cap ? s->have : s->cap - 1] = 0;
        char *e = s->have ? strstr(s->buf, "\r\n\r\n") : NULL;
        if (e) {
            size_t hl = (size_t)(e - s->buf) + 4, n = 0;
            if (hl >= cap) return -1;
            memcpy(head, s->buf, hl);
            head[hl] = 0;
            for (char *p = head; (p = strchr(p, '\n')) != NULL;)
                if (!strncasecmp(++p, "Content-Length:", 15)) n = strtoul(p + 15, NULL, 10);
            if (hl + n + 1 > s->cap) return -1;
            while (s->have < hl + n) {
                if (wait_readable(s->fd) != 0) return -1;
                ssize_t r = read(s->fd, s->buf + s->have, s->cap - 1 - s->have);
                if (r <= 0) return -1;
                s->have += (size_t)r;
            }
            *body = s->buf + hl;
            *body_len = n;
            s->consumed = hl + n;
            return 0;
        }
        if (s->have > STUB_HEAD_MAX) return -1;
        if (wait_readable(s->fd) != 0) return -1;
        ssize_t r = read(s->fd, s->buf + s->have, s->cap - 1 - s->have);
        if (r <= 0) return -1;
        s->have += (size_t)r;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answers a GET /next with invocation `i` and its payload. */
static int stub_hand(stub *s, size_t i, const char *payload)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long deadline =
        (unsigned long long)tv.tv_sec * 1000u + (unsigned long long)tv.tv_usec / 1000 + 60000;
    char head[1024];
    size_t len = strlen(payload);
    int n = snprintf(
        head, sizeof head,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Lambda-Runtime-Aws-Request-Id: 00000000-0000-4000-8000-%012zu\r\n"
        "Lambda-Runtime-Deadline-Ms: %llu\r\n"
        "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n"
        "Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
        "Lambda-Runtime-Invocation-Id: 11111111-0000-4000-8000-%012zu\r\n"
        "Content-Length: %zu\r\n\r\n",
        i, deadline, i, len);
    char *msg = malloc((size_t)n + len);
    if (!msg) return -1;
    memcpy(msg, head, (size_t)n);
    memcpy(msg + n, payload, len);
    int rc = write_all(s->fd, msg, (size_t)n + len);
    free(msg);
    return rc;
}

static int stub_accept_post(stub *s)
{
    static const char ok[] =
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
        "{\"status\": \"OK\"}";
    return write_all(s->fd, ok, sizeof ok - 1);
}

/* Cold starts through the stub: spawn -> the first GET /next read, ms. */
static size_t stub_cold_starts(const char *runtime, const char *const *env, const char *log, int cold,
                               double *out)
{
    stub s;
    stub_open(&s);
    char head[STUB_HEAD_MAX];
    const char *body;
    size_t blen, n = 0;
    for (int i = 0; i < cold; i++) {
        uint64_t t0 = s3v_now_ns();
        stub_spawn(&s, runtime, env, log);
        if (stub_read(&s, head, sizeof head, &body, &blen) != 0 || strncmp(head, "GET ", 4) != 0)
            die("stub: the runtime did not ask for /next (see its log)");
        out[n++] = ms_since(t0);
        stub_kill(&s);
    }
    stub_close(&s);
    return n;
}

/* Warm invocations through the stub: after `warm` unmeasured ones, q measured; per invocation
 * runtime_ms (first byte of the /next answer written -> last byte of the response read) and, when
 * engine_ms != NULL, the engine time from the response's statistics. */
static void stub_warm(const char *runtime, const char *const *env, const char *log, char **payloads, size_t q,
                      size_t warm, double *runtime_ms, double *engine_ms)
{
    stub s;
    stub_open(&s);
    stub_spawn(&s, runtime, env, log);
    static char head[STUB_HEAD_MAX];
    const char *body;
    size_t blen;
    for (size_t i = 0; i < warm + q; i++) {
        size_t k = i % q;
        if (stub_read(&s, head, sizeof head, &body, &blen) != 0 || strncmp(head, "GET ", 4) != 0)
            die("stub: the runtime did not ask for /next (see its log)");
        uint64_t t0 = s3v_now_ns();
        if (stub_hand(&s, i, payloads[k]) != 0) die("stub: write failed");
        if (stub_read(&s, head, sizeof head, &body, &blen) != 0) die("stub: no response from the runtime");
        double ms = ms_since(t0);
        if (!strstr(head, "/response HTTP/1.1")) {
            fprintf(stderr, "bench_runtime: stub: the runtime posted %.80s: %.300s\n", head, body);
            die("stub: not a response");
        }
        if (i >= warm) {
            runtime_ms[i - warm] = ms;
            if (engine_ms) {
                cJSON *j = cJSON_ParseWithLength(body, blen);
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "statistics");
                const cJSON *mq = cJSON_GetObjectItemCaseSensitive(st, "msQuery");
                const cJSON *mo = cJSON_GetObjectItemCaseSensitive(st, "msIndexOpen");
                if (!cJSON_IsNumber(mq)) die("stub: response without statistics.msQuery");
                engine_ms[i - warm] = mq->valuedouble + (cJSON_IsNumber(mo) ? mo->valuedouble : 0);
                cJSON_Delete(j);
            }
        }
        if (stub_accept_post(&s) != 0) die("stub: write failed");
    }
    stub_close(&s);
}

/* ---- the runtime's own log: handler_ms - engine_ms and runtime_ms - handler_ms per request ---- */

/* For each log line "invoke req=<id> ... engine_ms=E handler_ms=H" whose id is rids[i]: split[n] = H - E,
 * loop[n] = runtime_ms[i] - H. Returns n. ids == NULL: the stub's ids (index i -> ...-%012zu + offset). */
static size_t log_split(const char *log, char (*rids)[64], size_t k, size_t id_offset,
                        const double *runtime_ms, double *split, double *loop)
{
    FILE *f = fopen(log, "r");
    char line[4096];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *rq = strstr(line, "invoke req=");
        const char *em = strstr(line, " engine_ms="), *hm = strstr(line, " handler_ms=");
        if (!rq || !em || !hm) continue;
        char id[64];
        if (sscanf(rq + 11, "%63s", id) != 1) continue;
        size_t i = k;
        if (rids) {
            for (i = 0; i < k && strcmp(rids[i], id) != 0; i++) continue;
        } else {
            const char *dash = strrchr(id, '-');
            size_t num = dash ? strtoull(dash + 1, NULL, 10) : 0;
            if (dash && num >= id_offset) i = num - id_offset;
        }
        if (i >= k) continue;
        double e = strtod(em + 11, NULL), h = strtod(hm + 12, NULL);
        split[n] = h - e;
        loop[n] = runtime_ms[i] - h;
        n++;
    }
    if (f) fclose(f);
    return n;
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
    size_t rows;
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
    if (!base_vecs || !query_vecs || !centres) die("out of memory");
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
    if (!s) die("out of memory");
    int n = snprintf(s, cap,
                     "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"bench\",\"indexName\":\"glove\","
                     "\"topK\":10,\"returnDistance\":true%s,\"queryVector\":{\"float32\":[",
                     stats ? ",\"returnStatistics\":true" : "");
    for (size_t j = 0; j < dim; j++)
        n += snprintf(s + n, cap - (size_t)n, "%s%.9g", j ? "," : "", (double)query_vecs[qi * dim + j]);
    snprintf(s + n, cap - (size_t)n, "]}}");
    return s;
}

/* ---- 3. event decoding by dimension (in-process) ---- */

#define DECODE_BATCHES 15

/* Median over DECODE_BATCHES batches of the per-event time of hd_event_decode + hd_event_free of a
 * direct QueryVectors event with `dim` numbers printed with `fmt`, and of glibc strtod alone over the
 * same number texts (what any decoder built on strtod pays, cJSON's included). Microseconds. */
static void decode_cost(uint32_t ndim, const char *fmt, double *us_decode, double *us_strtod, size_t *bytes)
{
    size_t cap = (size_t)ndim * 32 + 256, n = 0;
    char *ev = malloc(cap), (*nums)[32] = malloc((size_t)ndim * sizeof *nums);
    if (!ev || !nums) die("out of memory");
    n += (size_t)snprintf(ev, cap,
                          "{\"operation\":\"QueryVectors\",\"vectorBucketName\":\"bench\",\"indexName\":"
                          "\"glove\",\"topK\":10,\"returnDistance\":true,\"queryVector\":{\"float32\":[");
    s3v_rng r;
    s3v_rng_seed(&r, 11);
    for (uint32_t j = 0; j < ndim; j++) {
        float v = (float)((s3v_rng_unit(&r) - 0.5) * 2.0);
        snprintf(nums[j], sizeof nums[j], fmt, (double)v);
        n += (size_t)snprintf(ev + n, cap - n, "%s%s", j ? "," : "", nums[j]);
    }
    n += (size_t)snprintf(ev + n, cap - n, "]}}");
    int reps = ndim >= 768 ? 40 : 300;
    double dec[DECODE_BATCHES], sd[DECODE_BATCHES], sink = 0;
    for (int b = 0; b < DECODE_BATCHES; b++) {
        uint64_t t0 = s3v_now_ns();
        for (int i = 0; i < reps; i++) {
            hd_event e;
            hd_error err;
            if (hd_event_decode((const uint8_t *)ev, n, &e, &err) != S3V_OK) die("decode failed");
            hd_event_free(&e);
        }
        dec[b] = (double)(s3v_now_ns() - t0) / 1e3 / reps;
        t0 = s3v_now_ns();
        for (int i = 0; i < reps; i++)
            for (uint32_t j = 0; j < ndim; j++) sink += strtod(nums[j], NULL);
        sd[b] = (double)(s3v_now_ns() - t0) / 1e3 / reps;
    }
    if (sink == 12345.678) fprintf(stderr, "%g\n", sink); /* keeps the loop */
    *us_decode = pct(dec, DECODE_BATCHES, 0.5);
    *us_strtod = pct(sd, DECODE_BATCHES, 0.5);
    *bytes = n;
    free(ev);
    free(nums);
}

static void decode_table(void)
{
    static const uint32_t dims[] = {100, 768, 1536};
    static const char *fmts[] = {"%.9g", "%.17g"};
    printf("\n3. event decoding in-process (hd_event_decode + free of a direct QueryVectors event; cJSON), "
           "median of %d batches\n",
           DECODE_BATCHES);
    for (size_t f = 0; f < 2; f++)
        for (size_t d = 0; d < 3; d++) {
            double de, sd;
            size_t bytes;
            decode_cost(dims[d], fmts[f], &de, &sd, &bytes);
            printf(
                "   dim %4u, numbers as %-5s (%6zu B): decode %8.1f us (%5.0f ns/number); peer: strtod alone "
                "on the same numbers %8.1f us; ratio %.2f\n",
                dims[d], fmts[f], bytes, de, de * 1e3 / dims[d], sd, de / sd);
        }
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

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_runtime [--source DIR] [--bootstrap PATH] [--data DIR] [--n N] [--queries Q] "
               "[--cold C]\n(see the comment at the top of bench/bench_runtime.c)\n");
}

static const char *opt_str(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.2f ms", v);
    return buf;
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
            snprintf(build_dir, sizeof build_dir, "%.4000s/..", self);
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
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (cold < 1) cold = 1;
    if (cold > MAX_COLD) cold = MAX_COLD;
    if (nq < 1) nq = 1;
    char real_boot[PATH_MAX];
    if (!source_dir[0] || !realpath(bootstrap, real_boot))
        die("cannot find the source tree or the bootstrap (use --source/--bootstrap)");
    snprintf(bootstrap, sizeof bootstrap, "%s", real_boot);
    const kern_table *kt = kern_init(0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-bench-runtime-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = 0;
        die("mkdtemp");
    }
    atexit(cleanup);
    build_trivial();
    build_curl_rt();

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
            eng[i] = ms_since(t0);
            ivf_result_free(&r);
        }
    uint32_t nprobe = ivf_index_manifest(ix)->default_nprobe;
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);

    char envs[4][PATH_MAX + 32];
    snprintf(envs[0], sizeof envs[0], "S3VEC_STORAGE=%s", root);
    snprintf(envs[1], sizeof envs[1], "S3VEC_DEFAULT_INDEX=bench/glove");
    snprintf(envs[2], sizeof envs[2], "S3VEC_LOG=info");
    snprintf(envs[3], sizeof envs[3], "S3VEC_CACHE_MB=512");
    const char *env_a[] = {envs[0], envs[1], envs[2], envs[3], NULL};
    const char *env_b[] = {envs[0], envs[2], NULL};
    char log_a[PATH_MAX], log_b[PATH_MAX], log_c[PATH_MAX], log_t[PATH_MAX], log_s[PATH_MAX],
        log_si[PATH_MAX];
    snprintf(log_a, sizeof log_a, "%s/emu-a.log", tmpdir);
    snprintf(log_b, sizeof log_b, "%s/emu-b.log", tmpdir);
    snprintf(log_c, sizeof log_c, "%s/emu-c.log", tmpdir);
    snprintf(log_t, sizeof log_t, "%s/emu-t.log", tmpdir);
    snprintf(log_s, sizeof log_s, "%s/stub.log", tmpdir);
    snprintf(log_si, sizeof log_si, "%s/stub-init.log", tmpdir);
    char **payloads = calloc(query_n, sizeof *payloads);
    for (size_t i = 0; i < query_n; i++) payloads[i] = query_payload(i, 1);

    /* emulator A: default index, warm invocations */
    child a = start_emulator(bootstrap, log_a, env_a);
    http_buf b = {0};
    for (size_t i = 0; i < query_n; i++) /* warm-up: process, index and cache */
        if (http(a.port, INVOKE, payloads[i], &b) != 200) die("warm-up invoke failed");
    http(a.port, "/_emulator/stats/reset", "", &b);
    double *engine_ms = calloc(query_n, sizeof *engine_ms), *client_ms = calloc(query_n, sizeof *client_ms);
    size_t req_bytes = 0, resp_bytes = 0;
    for (size_t i = 0; i < query_n; i++) {
        uint64_t t0 = s3v_now_ns();
        if (http(a.port, INVOKE, payloads[i], &b) != 200) die("invoke failed");
        client_ms[i] = ms_since(t0);
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
    double *runtime_ms = calloc(query_n, sizeof *runtime_ms), *overhead = calloc(query_n, sizeof *overhead);
    double *split = calloc(query_n, sizeof *split), *loop_ms = calloc(query_n, sizeof *loop_ms);
    char(*rids)[64] = calloc(query_n, sizeof *rids);
    if (!engine_ms || !client_ms || !runtime_ms || !overhead || !split || !loop_ms || !rids)
        die("out of memory");
    size_t k = runtime_ms_list(a.port, runtime_ms, query_n, rids);
    for (size_t i = 0; i < k; i++) overhead[i] = runtime_ms[i] - engine_ms[i];
    usleep(200000); /* the emulator's log pump */
    size_t nh = log_split(log_a, rids, k, 0, runtime_ms, split, loop_ms);
    double init_idx[MAX_COLD];
    size_t nidx = cold_starts(a.port, payloads[0], cold, init_idx);
    stop_server(&a);

    /* emulator B: no default index (init = process start to the first /next) */
    child bb = start_emulator(bootstrap, log_b, env_b);
    double init_plain[MAX_COLD];
    size_t nplain = cold_starts(
        bb.port, "{\"operation\":\"GetIndex\",\"vectorBucketName\":\"bench\",\"indexName\":\"glove\"}", cold,
        init_plain);
    stop_server(&bb);
    double self_init[MAX_COLD]; /* the runtime's own measure of main() -> ready, from its log */
    size_t nself = 0;
    FILE *lf = fopen(log_b, "r");
    char line[1024];
    while (lf && fgets(line, sizeof line, lf) && nself < MAX_COLD) {
        const char *m = strstr(line, "init: ready in ");
        if (m) self_init[nself++] = strtod(m + 15, NULL);
    }
    if (lf) fclose(lf);

    /* emulator T: the trivial C runtime (init peer; warm: the emulator's floor) */
    double init_triv[MAX_COLD], *triv_ms = calloc(query_n, sizeof *triv_ms);
    size_t ntriv_init = 0, ntriv = 0;
    if (trivial[0]) {
        child t = start_emulator(trivial, log_t, NULL);
        ntriv_init = cold_starts(t.port, "{}", cold, init_triv);
        for (int i = 0; i < 200; i++) http(t.port, INVOKE, "{\"action\":\"len\"}", &b);
        http(t.port, "/_emulator/stats/reset", "", &b);
        for (size_t i = 0; i < query_n; i++) http(t.port, INVOKE, payloads[i], &b);
        ntriv = runtime_ms_list(t.port, triv_ms, query_n, NULL);
        stop_server(&t);
    }

    /* emulator K: the zero-work runtime on bootstrap/runtime.c (libcurl), the same events */
    double *curl_ms = calloc(query_n, sizeof *curl_ms);
    size_t ncurl = 0;
    if (curl_rt[0] && curl_ms) {
        child kk = start_emulator(curl_rt, log_t, NULL);
        for (int i = 0; i < 200; i++) http(kk.port, INVOKE, payloads[i % query_n], &b);
        http(kk.port, "/_emulator/stats/reset", "", &b);
        for (size_t i = 0; i < query_n; i++) http(kk.port, INVOKE, payloads[i], &b);
        ncurl = runtime_ms_list(kk.port, curl_ms, query_n, NULL);
        stop_server(&kk);
    }

    /* emulator C: a trivial Python runtime */
    char example[PATH_MAX + 64];
    snprintf(example, sizeof example, "%s/deploy/local/example_runtime.py", source_dir);
    child c = start_emulator(example, log_c, NULL);
    for (int i = 0; i < 200; i++) http(c.port, INVOKE, "{\"action\":\"len\"}", &b);
    http(c.port, "/_emulator/stats/reset", "", &b);
    for (size_t i = 0; i < query_n; i++) http(c.port, INVOKE, "{\"action\":\"len\"}", &b);
    double *floor_ms = calloc(query_n, sizeof *floor_ms);
    size_t nfloor = runtime_ms_list(c.port, floor_ms, query_n, NULL);
    stop_server(&c);

    /* the C Runtime API: init and warm overhead without any emulator */
    double sinit[MAX_COLD], sinit_triv[MAX_COLD];
    size_t nsinit = stub_cold_starts(bootstrap, env_b, log_si, cold, sinit), nsinit_triv = 0;
    if (trivial[0]) nsinit_triv = stub_cold_starts(trivial, NULL, log_si, cold, sinit_triv);
    double *s_runtime = calloc(query_n, sizeof *s_runtime), *s_engine = calloc(query_n, sizeof *s_engine);
    double *s_over = calloc(query_n, sizeof *s_over), *s_split = calloc(query_n, sizeof *s_split);
    double *s_loop = calloc(query_n, sizeof *s_loop), *s_triv = calloc(query_n, sizeof *s_triv);
    if (!triv_ms || !floor_ms || !s_runtime || !s_engine || !s_over || !s_split || !s_loop || !s_triv)
        die("out of memory");
    stub_warm(bootstrap, env_a, log_s, payloads, query_n, query_n, s_runtime, s_engine);
    for (size_t i = 0; i < query_n; i++) s_over[i] = s_runtime[i] - s_engine[i];
    size_t ns = log_split(log_s, NULL, query_n, query_n, s_runtime, s_split, s_loop);
    if (trivial[0]) stub_warm(trivial, NULL, log_si, payloads, query_n, 200, s_triv, NULL);

    double spawn_ms[MAX_COLD], libs_ms[MAX_COLD];
    size_t nspawn = spawn_to_exit("/bin/true", cold, spawn_ms);
    size_t nlibs = spawn_to_exit(bootstrap, cold, libs_ms);
    double popen_ms = trivial_popen(cold);

    /* report */
    char t1[32];
    double la[3] = {NAN, NAN, NAN};
    FILE *lav = fopen("/proc/loadavg", "r");
    if (lav) {
        if (fscanf(lav, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = NAN;
        fclose(lav);
    }
    double init_med = pct(init_plain, nplain, 0.5), triv_init_med = pct(init_triv, ntriv_init, 0.5);
    double sinit_med = pct(sinit, nsinit, 0.5), sinit_triv_med = pct(sinit_triv, nsinit_triv, 0.5);
    double ov50 = pct(overhead, k, 0.5), ov90 = pct(overhead, k, 0.9), ov99 = pct(overhead, k, 0.99);
    double en50 = pct(engine_ms, k, 0.5), rt50 = pct(runtime_ms, k, 0.5), fl50 = pct(floor_ms, nfloor, 0.5);
    double e50 = pct(eng, query_n, 0.5), cl50 = pct(client_ms, k, 0.5), tr50 = pct(triv_ms, ntriv, 0.5);
    double so50 = pct(s_over, query_n, 0.5), so90 = pct(s_over, query_n, 0.9),
           so99 = pct(s_over, query_n, 0.99);
    printf("bench_runtime: %s, %zu x %zu, euclidean f32, nlist %u, default nprobe %u; topK 10; kernels %s; "
           "queries single-threaded, no BLAS; load average %.2f %.2f %.2f\n",
           data_name, base_n, dim, rep.nlist, nprobe, kt->name, la[0], la[1], la[2]);
    printf("runtime: %s\n", bootstrap);
    printf("\n1. init duration (process start -> first GET /next), %d cold starts each, median [p90]\n",
           cold);
    printf("   through the emulator (its init_ms):\n");
    printf("     ours, no default index                       %8.2f ms [%.2f]\n", init_med,
           pct(init_plain, nplain, 0.9));
    printf("       of which main() -> ready (own log)         %8.2f ms\n", pct(self_init, nself, 0.5));
    printf("     ours, default index loaded at INIT           %8.2f ms [%.2f]\n", pct(init_idx, nidx, 0.5),
           pct(init_idx, nidx, 0.9));
    printf("     peer: trivial static C runtime               %8s", opt_str(triv_init_med, t1, sizeof t1));
    printf("   ratio ours / peer %.2f; ours - peer %.2f ms\n", init_med / triv_init_med,
           init_med - triv_init_med);
    printf("   through the C Runtime API in this program (spawn -> first request read):\n");
    printf("     ours, no default index                       %8.2f ms [%.2f]\n", sinit_med,
           pct(sinit, nsinit, 0.9));
    printf("     peer: trivial static C runtime               %8s", opt_str(sinit_triv_med, t1, sizeof t1));
    printf("   ratio ours / peer %.2f; ours - peer %.2f ms\n", sinit_med / sinit_triv_med,
           sinit_med - sinit_triv_med);
    printf("   process start alone, posix_spawn -> exit, from C: /bin/true %.2f ms; ours exiting at once in "
           "main() "
           "(exec + shared libraries) %.2f ms\n",
           pct(spawn_ms, nspawn, 0.5), pct(libs_ms, nlibs, 0.5));
    printf("   /bin/true via subprocess.Popen (the emulator's spawn path)          %.2f ms\n", popen_ms);
    printf("\n2. warm QueryVectors, %zu invocations (direct, %zu B request, %zu B response on average)\n", k,
           req_bytes / (k ? k : 1), resp_bytes / (k ? k : 1));
    printf("   through the emulator:\n");
    printf("     runtime_ms (event handed on /next -> response in)   median %.3f ms\n", rt50);
    printf("     engine time reported by the handler (msQuery)       median %.3f ms\n", en50);
    printf("     overhead = runtime_ms - engine time                 median %.3f  p90 %.3f  p99 %.3f ms\n",
           ov50, ov90, ov99);
    printf("       split (runtime's own clock, %zu matched): decode + validate + encode  median %.3f  p99 "
           "%.3f ms; "
           "/next + /response exchange (runtime_ms - handler_ms) median %.3f ms\n",
           nh, pct(split, nh, 0.5), pct(split, nh, 0.99), pct(loop_ms, nh, 0.5));
    printf("     peer: engine alone in-process, same queries, warm    median %.3f ms\n", e50);
    printf("     peer: trivial C runtime's runtime_ms (zero work: the emulator's floor)  median %s\n",
           ntriv ? (snprintf(t1, sizeof t1, "%.3f ms", tr50), t1) : "n/a");
    printf("     peer: zero-work runtime on bootstrap/runtime.c (libcurl), same events      median %s\n",
           ncurl ? (snprintf(t1, sizeof t1, "%.3f ms", pct(curl_ms, ncurl, 0.5)), t1) : "n/a");
    printf(
        "     peer: trivial Python runtime's runtime_ms (example_runtime.py, action len)  median %.3f ms\n",
        fl50);
    printf("     ratio overhead / engine query time = %.2f; overhead - trivial C runtime's runtime_ms = %.3f "
           "ms\n",
           ov50 / e50, ov50 - tr50);
    printf("     client round trip through the emulator's Invoke API  median %.3f ms\n", cl50);
    printf("   through the C Runtime API in this program (no emulator):\n");
    printf("     runtime_ms                                           median %.3f ms\n",
           pct(s_runtime, query_n, 0.5));
    printf("     engine time reported by the handler                  median %.3f ms\n",
           pct(s_engine, query_n, 0.5));
    printf("     overhead = runtime_ms - engine time                 median %.3f  p90 %.3f  p99 %.3f ms\n",
           so50, so90, so99);
    printf("       split (%zu matched): decode + validate + encode median %.3f ms; exchange median %.3f ms\n",
           ns, pct(s_split, ns, 0.5), pct(s_loop, ns, 0.5));
    printf("     peer: trivial C runtime's runtime_ms, same stub       median %s\n",
           trivial[0] ? (snprintf(t1, sizeof t1, "%.3f ms", pct(s_triv, query_n, 0.5)), t1) : "n/a");
    printf("     ratio overhead / engine query time = %.2f\n", so50 / e50);
    decode_table();

    for (size_t i = 0; i < query_n; i++) free(payloads[i]);
    free(payloads);
    free(b.p);
    free(eng);
    free(engine_ms);
    free(client_ms);
    free(runtime_ms);
    free(overhead);
    free(split);
    free(loop_ms);
    free(rids);
    free(triv_ms);
    free(curl_ms);
    free(floor_ms);
    free(s_runtime);
    free(s_engine);
    free(s_over);
    free(s_split);
    free(s_loop);
    free(s_triv);
    free(base_vecs);
    free(query_vecs);
    curl_easy_cleanup(curl);
    return 0;
}
