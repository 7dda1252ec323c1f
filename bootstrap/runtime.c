/* bootstrap/runtime.c: the Runtime API client over one libcurl easy handle. */
#include "bootstrap/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/log.h"

#define API_PREFIX        "/2018-06-01/runtime"
#define CONNECT_TIMEOUT_S 10L
#define URL_MAX           (RT_ID_MAX * 3 + 256)
#define ERROR_BODY_MAX    (64 * 1024)

/* Request headers are passed to curl as curl_slist nodes that live in the client (curl only reads the
 * list during a transfer), so no request allocates a header list. */
#define HDR_NODES 6

struct rt_client {
    CURL *curl;
    char base[256];     /* "http://host:port/2018-06-01/runtime" */
    char next_url[300]; /* base + "/invocation/next" */
    long status;
    rt_invocation *hdr_target; /* headers of the current /next go here */
    s3v_buf *body_target;      /* the body of the current request goes here (NULL: discard) */
    int body_overflow;
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist hdr[HDR_NODES]; /* the current request's extra headers */
    char id_header[RT_ID_MAX + 40];   /* "Lambda-Runtime-Invocation-Id: ..." */
    char type_header[160];            /* "Lambda-Runtime-Function-Error-Type: ..." */
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg);
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg);

/* Options that stay the same for every request, set once: curl_easy_reset() and re-setting them per
 * request cost more than the request's own work on a loopback connection. */
static int set_fixed_options(rt_client *c)
{
    CURL *k = c->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                           \
    do {                                                        \
        if (rc == CURLE_OK) rc = curl_easy_setopt(k, opt, val); \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    SET(CURLOPT_TIMEOUT, 0L); /* never: /next blocks while the sandbox is frozen */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* the Runtime API is local: an HTTP_PROXY or http_proxy in the function's environment must not
     * route it (and curl then does not look the proxy variables up for every request) */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

rt_client *rt_client_open(const char *api)
{
    if (!api || !*api || strlen(api) > 200) return NULL;
    rt_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->curl = curl_easy_init())) {
        free(c);
        return NULL;
    }
    snprintf(c->base, sizeof c->base, "http://%s" API_PREFIX, api);
    snprintf(c->next_url, sizeof c->next_url, "%s/invocation/next", c->base);
    if (set_fixed_options(c) != 0) {
        rt_client_close(c);
        return NULL;
    }
    return c;
}

void rt_client_close(rt_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->curl);
    free(c);
}

long rt_last_status(const rt_client *c) { return c->status; }

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    rt_client *c = arg;
    size_t n = size * nmemb;
    if (!c->body_target) return n;
    if (s3v_buf_append(c->body_target, ptr, n) != S3V_OK) {
        c->body_overflow = 1;
        return 0; /* abort the transfer */
    }
    return n;
}

/* Copies a header value into dst (cap bytes), trimming; returns 0 when it had to be truncated. */
static int copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    int ok = n < cap;
    if (!ok) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
    return ok;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    rt_client *c = arg;
    size_t n = size * nmemb;
    rt_invocation *inv = c->hdr_target;
    if (!inv) return n;
    const char *colon = memchr(ptr, ':', n);
    if (!colon) return n;
    size_t nl = (size_t)(colon - ptr);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(ptr, name, nl) == 0)
    int ok = 1;
    if (IS("Lambda-Runtime-Aws-Request-Id")) {
        ok = copy_value(inv->request_id, sizeof inv->request_id, v, vl);
    } else if (IS("Lambda-Runtime-Invocation-Id")) {
        ok = copy_value(inv->invocation_id, sizeof inv->invocation_id, v, vl);
    } else if (IS("Lambda-Runtime-Deadline-Ms")) {
        char tmp[32];
        copy_value(tmp, sizeof tmp, v, vl);
        char *end = NULL;
        unsigned long long ms = strtoull(tmp, &end, 10);
        inv->deadline_epoch_ms = end && end != tmp && !*end ? (uint64_t)ms : 0;
    } else if (IS("Lambda-Runtime-Invoked-Function-Arn")) {
        ok = copy_value(inv->function_arn, sizeof inv->function_arn, v, vl);
    } else if (IS("Lambda-Runtime-Trace-Id")) {
        ok = copy_value(inv->trace_id, sizeof inv->trace_id, v, vl);
        inv->has_trace_id = 1;
    } else if (IS("Lambda-Runtime-Client-Context")) {
        ok = copy_value(inv->client_context, sizeof inv->client_context, v, vl);
        inv->has_client_context = 1;
    } else if (IS("Lambda-Runtime-Cognito-Identity")) {
        ok = copy_value(inv->cognito_identity, sizeof inv->cognito_identity, v, vl);
        inv->has_cognito_identity = 1;
    } else if (IS("Lambda-Runtime-Aws-Tenant-Id")) {
        ok = copy_value(inv->tenant_id, sizeof inv->tenant_id, v, vl);
        inv->has_tenant_id = 1;
    }
#undef IS
    if (!ok) inv->truncated = 1;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int transient_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return 1;
    default: return 0;
    }
}

/* The request's extra headers as a list of the client's own nodes (curl reads it during the
 * transfer only). Every request also drops the Accept header curl adds by default, which no Runtime
 * API reads. */
static struct curl_slist *header_list(rt_client *c, const char *const *headers)
{
    size_t n = 0;
    c->hdr[n++].data = "Accept:";
    for (const char *const *h = headers; h && *h && n < HDR_NODES; h++) c->hdr[n++].data = (char *)*h;
    for (size_t i = 0; i < n; i++) c->hdr[i].next = i + 1 < n ? &c->hdr[i + 1] : NULL;
    return &c->hdr[0];
}

/* One request with retries. method "GET" or "POST". Headers: NULL-terminated list of "Name: value"
 * (at most HDR_NODES - 1; the strings must live until the request returns). The fixed options are
 * set at open; only the URL, the method, the body and the headers change between requests. */
static rt_result request(rt_client *c, const char *method, const char *url, const char *const *headers,
                         const uint8_t *body, size_t body_size, s3v_buf *out, rt_invocation *hdr)
{
    CURL *k = c->curl;
    int post = strcmp(method, "POST") == 0;
    curl_easy_setopt(k, CURLOPT_URL, url);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, header_list(c, headers));
    if (post) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_size);
    } else {
        curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
    }
    rt_result res = RT_FATAL;
    long backoff = 10;
    for (int attempt = 0; attempt <= RT_RETRIES; attempt++) {
        if (attempt) {
            sleep_ms(backoff);
            backoff *= 2;
        }
        if (out) s3v_buf_reset(out);
        c->body_target = out;
        c->body_overflow = 0;
        c->hdr_target = hdr;
        c->status = 0;
        c->errbuf[0] = 0;
        if (hdr) { /* headers of an earlier attempt must not leak into this one */
            s3v_buf keep = hdr->event;
            memset(hdr, 0, sizeof *hdr);
            hdr->event = keep;
        }
        CURLcode rc = curl_easy_perform(k);
        curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &c->status);
        if (rc == CURLE_WRITE_ERROR && c->body_overflow) {
            s3v_log(S3V_LOG_ERROR, "runtime api: %s %s: body larger than %zu bytes", method, url,
                    out ? out->max : (size_t)0);
            res = hdr && hdr->request_id[0] ? RT_OK : RT_FATAL; /* answerable: the caller sees the flag */
            if (hdr) hdr->event_too_large = 1;
            break;
        }
        if (rc != CURLE_OK) {
            if (transient_curl(rc) && attempt < RT_RETRIES) {
                s3v_log(S3V_LOG_WARN, "runtime api: %s %s failed (%s); retrying", method, url,
                        c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
                continue;
            }
            s3v_log(S3V_LOG_ERROR, "runtime api: %s %s failed (%s)", method, url,
                    c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
            res = RT_FATAL;
            break;
        }
        long s = c->status;
        if (s >= 200 && s < 300) {
            res = RT_OK;
            break;
        }
        if ((s == 502 || s == 503 || s == 504) && attempt < RT_RETRIES) {
            s3v_log(S3V_LOG_WARN, "runtime api: %s %s answered %ld; retrying", method, url, s);
            continue;
        }
        if (s == 413) {
            res = RT_TOO_LARGE;
        } else if (s == 400 || s == 403 || s == 404 || s == 410) {
            res = RT_REJECTED;
        } else {
            res = RT_FATAL;
        }
        s3v_log(res == RT_FATAL ? S3V_LOG_ERROR : S3V_LOG_WARN, "runtime api: %s %s answered %ld", method,
                url, s);
        break;
    }
    c->hdr_target = NULL;
    c->body_target = NULL;
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, NULL);
    return res;
}

rt_result rt_next(rt_client *c, rt_invocation *inv)
{
    if (inv->event.max == 0) s3v_buf_init(&inv->event, RT_EVENT_MAX);
    if (inv->event.cap > (1u << 20)) s3v_buf_free(&inv->event); /* do not keep a big event's memory */
    /* any failure of /next is fatal: retries of transient failures happen inside request() */
    if (request(c, "GET", c->next_url, NULL, NULL, 0, &inv->event, inv) != RT_OK) return RT_FATAL;
    if (!inv->request_id[0]) {
        s3v_log(S3V_LOG_ERROR, "runtime api: /next answered without Lambda-Runtime-Aws-Request-Id");
        return RT_FATAL;
    }
    if (strlen(inv->request_id) >= RT_ID_MAX - 1) {
        s3v_log(S3V_LOG_ERROR, "runtime api: request id longer than %d bytes; cannot answer it",
                RT_ID_MAX - 2);
        return RT_FATAL;
    }
    if (inv->truncated) s3v_log(S3V_LOG_WARN, "runtime api: a header of %s was truncated", inv->request_id);
    return RT_OK;
}

/* ".../invocation/<escaped id>/<what>". Request ids are UUIDs: they are escaped only when they hold
 * a character outside RFC 3986's unreserved set. */
static int invocation_url(rt_client *c, const rt_invocation *inv, const char *what, char *url, size_t cap)
{
    const char *id = inv->request_id;
    size_t i = 0;
    for (; id[i]; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.' || ch == '_' || ch == '~'))
            break;
    }
    char *esc = id[i] ? curl_easy_escape(c->curl, id, 0) : NULL;
    if (id[i] && !esc) return -1;
    int n = snprintf(url, cap, "%s/invocation/%s/%s", c->base, esc ? esc : id, what);
    curl_free(esc);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

rt_result rt_post_response(rt_client *c, const rt_invocation *inv, const uint8_t *payload, size_t size)
{
    char url[URL_MAX];
    if (invocation_url(c, inv, "response", url, sizeof url) != 0) return RT_FATAL;
    const char *headers[4] = {"Content-Type: application/json", "Expect:", NULL, NULL};
    if (inv->invocation_id[0]) {
        snprintf(c->id_header, sizeof c->id_header, "Lambda-Runtime-Invocation-Id: %s", inv->invocation_id);
        headers[2] = c->id_header;
    }
    return request(c, "POST", url, headers, payload, size, NULL, NULL);
}

/* {"errorMessage": ..., "errorType": ..., "stackTrace": []} (malloc'd; NULL when out of memory). */
static char *error_body(const char *error_type, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "errorMessage", message ? message : "");
    cJSON_AddStringToObject(o, "errorType", error_type);
    cJSON_AddArrayToObject(o, "stackTrace");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s && strlen(s) > ERROR_BODY_MAX) s[ERROR_BODY_MAX] = 0; /* never: messages are bounded */
    return s;
}

static rt_result post_error_to(rt_client *c, const char *url, const char *invocation_id,
                               const char *error_type, const char *message)
{
    char *body = error_body(error_type, message);
    if (!body) return RT_FATAL;
    snprintf(c->type_header, sizeof c->type_header, "Lambda-Runtime-Function-Error-Type: %s", error_type);
    const char *headers[5] = {"Content-Type: application/json", "Expect:", c->type_header, NULL, NULL};
    if (invocation_id && invocation_id[0]) {
        snprintf(c->id_header, sizeof c->id_header, "Lambda-Runtime-Invocation-Id: %s", invocation_id);
        headers[3] = c->id_header;
    }
    rt_result r = request(c, "POST", url, headers, (const uint8_t *)body, strlen(body), NULL, NULL);
    free(body);
    return r;
}

rt_result rt_post_error(rt_client *c, const rt_invocation *inv, const char *error_type, const char *message)
{
    char url[URL_MAX];
    if (invocation_url(c, inv, "error", url, sizeof url) != 0) return RT_FATAL;
    return post_error_to(c, url, inv->invocation_id, error_type, message);
}

rt_result rt_post_init_error(rt_client *c, const char *error_type, const char *message)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "%s/init/error", c->base);
    return post_error_to(c, url, NULL, error_type, message);
}
