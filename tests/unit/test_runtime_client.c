/* tests/unit/test_runtime_client.c: the Runtime API client (bootstrap/runtime.c) against a scripted
 * Runtime API on loopback: every invocation's headers and event reach the caller; responses and errors
 * go to the invocation's own URL (a request id outside the unreserved characters is escaped) with the
 * invocation id echoed; one keep-alive connection serves every request; the requests carry no Accept or
 * Expect header; and proxy variables in the environment (http_proxy, ALL_PROXY, ...) do not route the
 * Runtime API, which is local (a function configured with a proxy for its own traffic must still run).
 *
 * runtime.c is compiled into this program (the bootstrap is an executable, not a library). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootstrap/runtime.c"
#include "tests/unit/testutil.h"

#define N_INV      12
#define MAX_REQS   64
#define HEAD_CAP   2048
#define BODY_CAP   1024
#define SERVER_CAP (64 * 1024)

static const char *const IDS[N_INV] = {"8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                                       "id-1",
                                       "id with/slash and space",
                                       "id-3",
                                       "id-4",
                                       "id-5",
                                       "id-6",
                                       "id-7",
                                       "id-8",
                                       "id-9",
                                       "id-10",
                                       "id-11"};

/* What the scripted Runtime API saw. Written by the server thread; read by main after the join. */
typedef struct seen {
    char head[HEAD_CAP];
    char body[BODY_CAP];
} seen;

static seen reqs[MAX_REQS];
static int n_reqs, n_accepted, n_next;
static int lfd;
static volatile int stop_server;

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

/* Answers one complete request (head of hl bytes, body of bl bytes) on fd. */
static int answer(int fd, const char *head, size_t hl, const char *body, size_t bl)
{
    if (n_reqs < MAX_REQS) {
        seen *s = &reqs[n_reqs++];
        snprintf(s->head, sizeof s->head, "%.*s", (int)hl, head);
        snprintf(s->body, sizeof s->body, "%.*s", (int)bl, body);
    }
    char out[2048];
    int n;
    if (strncmp(head, "GET /2018-06-01/runtime/invocation/next ", 40) == 0 && n_next < N_INV) {
        int i = n_next++;
        char ev[64];
        int el = snprintf(ev, sizeof ev, "{\"n\":%d}", i);
        n = snprintf(
            out, sizeof out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %d\r\n"
            "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:f\r\n"
            "Lambda-Runtime-Trace-Id: Root=1-%08d\r\nLambda-Runtime-Invocation-Id: inv-%d\r\n"
            "Content-Length: %d\r\n\r\n%s",
            IDS[i], 1700000000 + i, i, i, el, ev);
    } else if (strncmp(head, "POST ", 5) == 0) {
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
                     "{\"status\":\"OK\"}\n");
    } else {
        n = snprintf(out, sizeof out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return write_all(fd, out, (size_t)n);
}

/* Serves every connection (at most 4 at once) until stop_server; requests are framed by Content-Length. */
static void *server_main(void *arg)
{
    (void)arg;
    static char buf[4][SERVER_CAP];
    size_t have[4] = {0};
    int fds[4] = {-1, -1, -1, -1};
    while (!stop_server) {
        struct pollfd p[5];
        p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < 4; i++) p[i + 1] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(p, 5, 50) <= 0) continue;
        if (p[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < 4 && fd >= 0; i++)
                if (fds[i] < 0) {
                    slot = i;
                    break;
                }
            if (slot < 0) {
                if (fd >= 0) close(fd);
            } else {
                fds[slot] = fd;
                have[slot] = 0;
                n_accepted++;
            }
        }
        for (int i = 0; i < 4; i++) {
            if (fds[i] < 0 || !(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(fds[i], buf[i] + have[i], SERVER_CAP - 1 - have[i]);
            if (r <= 0) {
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            have[i] += (size_t)r;
            buf[i][have[i]] = 0;
            for (;;) {
                char *e = strstr(buf[i], "\r\n\r\n");
                if (!e) break;
                size_t hl = (size_t)(e - buf[i]) + 4, bl = 0;
                for (char *q = buf[i]; q && q < e; q = strchr(q, '\n')) {
                    if (*q == '\n') q++;
                    if (strncasecmp(q, "Content-Length:", 15) == 0) bl = strtoul(q + 15, NULL, 10);
                }
                if (have[i] < hl + bl) break;
                if (answer(fds[i], buf[i], hl, buf[i] + hl, bl) != 0) break;
                memmove(buf[i], buf[i] + hl + bl, have[i] - hl - bl);
                have[i] -= hl + bl;
                buf[i][have[i]] = 0;
            }
        }
    }
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0) close(fds[i]);
    return NULL;
}

/* 1 when the head has a header line `name:` (case-insensitive), at the start of a line. */
static int has_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *q = strchr(head, '\n'); q; q = strchr(q, '\n')) {
        q++;
        if (strncasecmp(q, name, n) == 0 && q[n] == ':') return 1;
    }
    return 0;
}

static void test_client(int port)
{
    /* a dead proxy: if the client used it, every request would fail (connection refused) */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    setenv("all_proxy", "http://127.0.0.1:9", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%d", port);
    rt_client *c = rt_client_open(api);
    REQUIRE(c != NULL, "rt_client_open(%s)", api);
    static rt_invocation inv;
    for (int i = 0; i < N_INV; i++) {
        rt_result r = rt_next(c, &inv);
        REQUIRE(r == RT_OK, "rt_next #%d: %d", i, (int)r);
        CHECK(strcmp(inv.request_id, IDS[i]) == 0, "request id #%d: %s", i, inv.request_id);
        char want[32];
        snprintf(want, sizeof want, "inv-%d", i);
        CHECK(strcmp(inv.invocation_id, want) == 0, "invocation id #%d: %s", i, inv.invocation_id);
        CHECK(inv.deadline_epoch_ms == (uint64_t)(1700000000 + i), "deadline #%d: %llu", i,
              (unsigned long long)inv.deadline_epoch_ms);
        CHECK(inv.has_trace_id && strncmp(inv.trace_id, "Root=1-", 7) == 0, "trace id #%d", i);
        CHECK(strstr(inv.function_arn, ":eu-west-1:123456789012:") != NULL, "function arn #%d", i);
        char ev[32];
        snprintf(ev, sizeof ev, "{\"n\":%d}", i);
        CHECK(inv.event.len == strlen(ev) && memcmp(inv.event.ptr, ev, inv.event.len) == 0, "event #%d", i);
        if (i % 3 == 1) {
            r = rt_post_error(c, &inv, "Function.TestError", "it \"failed\"");
        } else {
            char body[64];
            int n = snprintf(body, sizeof body, "{\"answer\":%d}", i);
            r = rt_post_response(c, &inv, (const uint8_t *)body, (size_t)n);
        }
        CHECK(r == RT_OK, "post #%d: %d", i, (int)r);
        CHECK(rt_last_status(c) == 202, "post #%d answered %ld", i, rt_last_status(c));
    }
    rt_client_close(c);
}

int main(void)
{
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 8) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1\n");
        return 1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, server_main, NULL) != 0) return 1;
    test_client(ntohs(a.sin_port));
    stop_server = 1;
    pthread_join(th, NULL);
    close(lfd);

    CHECK(n_accepted == 1, "one keep-alive connection for every request (accepted %d)", n_accepted);
    CHECK(n_reqs == 2 * N_INV, "requests seen: %d", n_reqs);
    for (int k = 0; k < n_reqs; k++) {
        const seen *s = &reqs[k];
        int i = k / 2;
        CHECK(!has_header(s->head, "Accept"), "request %d carries Accept: %.80s", k, s->head);
        CHECK(!has_header(s->head, "Expect"), "request %d carries Expect: %.80s", k, s->head);
        if (k % 2 == 0) {
            CHECK(strncmp(s->head, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n", 50) == 0,
                  "request %d: %.80s", k, s->head);
            continue;
        }
        const char *what = i % 3 == 1 ? "error" : "response";
        char want[256], idh[64];
        const char *id = i == 2 ? "id%20with%2Fslash%20and%20space" : IDS[i];
        snprintf(want, sizeof want, "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\n", id, what);
        CHECK(strncmp(s->head, want, strlen(want)) == 0, "request %d: %.120s (want %s)", k, s->head, want);
        snprintf(idh, sizeof idh, "\r\nLambda-Runtime-Invocation-Id: inv-%d\r\n", i);
        CHECK(strstr(s->head, idh) != NULL, "request %d does not echo the invocation id: %.300s", k, s->head);
        if (i % 3 == 1) {
            CHECK(strstr(s->head, "\r\nLambda-Runtime-Function-Error-Type: Function.TestError\r\n") != NULL,
                  "error type header of request %d", k);
            cJSON *j = cJSON_Parse(s->body);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "errorMessage");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "errorType");
            CHECK(cJSON_IsString(m) && strcmp(m->valuestring, "it \"failed\"") == 0, "errorMessage: %s",
                  s->body);
            CHECK(cJSON_IsString(t) && strcmp(t->valuestring, "Function.TestError") == 0, "errorType: %s",
                  s->body);
            CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "stackTrace")), "stackTrace: %s",
                  s->body);
            cJSON_Delete(j);
        } else {
            char body[64];
            snprintf(body, sizeof body, "{\"answer\":%d}", i);
            CHECK(strcmp(s->body, body) == 0, "response body of request %d: %s", k, s->body);
        }
    }
    return TEST_SUMMARY();
}
