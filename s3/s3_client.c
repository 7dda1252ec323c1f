/* s3/s3_client.c: concurrent S3 requests over one curl multi handle (see s3_client.h).
 * CURLcode and HTTP statuses are turned into s3v_status here and never leave the module. */
#include "s3/s3_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "s3/s3_retry.h"
#include "s3/s3_sigv4.h"
#include "s3/s3_xml.h"

#define POOL_MAX        64
#define RECV_BUFFER     (256 * 1024)
#define MS              1000000ull
#define HEADER_LINE_MAX 4096

typedef struct xfer {
    s3_client *c;
    s3_op *op;
    size_t index;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    s3v_buf url;
    s3v_buf body; /* 2xx body */
    s3v_buf err;  /* other bodies, capped */
    long http;
    char etag[S3V_ETAG_MAX];
    char content_range[128];
    uint64_t content_length;
    int have_cl;
    int body_started;
    int ranged_200;       /* server ignored Range: slice the range out of the whole object */
    int range_done_early; /* ranged_200 and the range is complete: the transfer was stopped on purpose */
    uint64_t skip;
    int overflow;
    uint64_t start_ns, first_byte_ns;
    int is_hedge;
    struct xfer *twin;
    struct xfer *next;
    const uint8_t *up;
    size_t up_size, up_pos;
} xfer;

struct s3_client {
    s3_config cfg;
    CURLM *multi;
    CURLSH *share;
    CURL *pool[POOL_MAX];
    size_t pool_n;
    xfer *active;
    size_t nactive;
    s3_latency lat;
    s3v_rng rng;
    s3_stats stats;
    char key_date[9];        /* "YYYYMMDD" of signing_key, "" before the first request */
    uint8_t signing_key[32]; /* SigV4 key of cfg's secret and region for key_date (a secret: wiped) */
};

/* ---- setup ------------------------------------------------------------------------------------ */

s3v_status s3_client_new(const s3_config *cfg, s3_client **out)
{
    s3_client *c = calloc(1, sizeof *c);
    if (!c) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    c->cfg = *cfg;
    c->multi = curl_multi_init();
    c->share = curl_share_init();
    if (!c->multi || !c->share) {
        s3_client_free(c);
        return s3v_errorf(S3V_ERR_INTERNAL, "libcurl could not create its handles");
    }
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(cfg->max_concurrency + 8));
    s3v_rng_seed(&c->rng, s3v_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c);
    *out = c;
    return S3V_OK;
}

static void xfer_free(s3_client *c, xfer *x);

void s3_client_free(s3_client *c)
{
    if (!c) return;
    while (c->active) xfer_free(c, c->active);
    for (size_t i = 0; i < c->pool_n; i++) curl_easy_cleanup(c->pool[i]);
    if (c->multi) curl_multi_cleanup(c->multi);
    if (c->share) curl_share_cleanup(c->share);
    s3_config_wipe(&c->cfg);
    explicit_bzero(c->signing_key, sizeof c->signing_key);
    free(c);
}

const s3_config *s3_client_config(const s3_client *c) { return &c->cfg; }

void s3_client_stats(const s3_client *c, s3_stats *out)
{
    *out = c->stats;
    out->first_byte_p50_us = s3_latency_quantile(&c->lat, 0.5);
    out->first_byte_p95_us = s3_latency_quantile(&c->lat, 0.95);
}

void s3_client_count_failure(s3_client *c) { c->stats.failures++; }

void s3_client_describe(const s3_client *c, const char *key, char *out, size_t out_size)
{
    snprintf(out, out_size, "s3://%s/%s", c->cfg.bucket, key ? key : "");
}

void s3_op_init(s3_op *op, const char *method, const char *key)
{
    memset(op, 0, sizeof *op);
    op->method = method;
    op->key = key;
    op->body_fd = -1;
    op->resp_max = S3_ERR_BODY_MAX;
    s3v_buf_init(&op->resp, 0);
}

void s3_op_release(s3_op *op)
{
    s3v_buf_free(&op->resp);
    free(op->file_body);
    op->file_body = NULL;
}

/* ---- curl callbacks --------------------------------------------------------------------------- */

static void copy_trimmed(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t len = size * nitems;
    if (!x->first_byte_ns) x->first_byte_ns = s3v_now_ns();
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100-continue, too) */
        const char *sp = memchr(p, ' ', len);
        long code = 0;
        if (sp)
            for (const char *q = sp + 1; q < p + len && *q >= '0' && *q <= '9' && code < 1000; q++)
                code = code * 10 + (*q - '0');
        x->http = code;
        x->etag[0] = 0;
        x->content_range[0] = 0;
        x->have_cl = 0;
        x->content_length = 0;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || len > HEADER_LINE_MAX) return len;
    size_t nl = (size_t)(colon - p), vl = len - nl - 1;
    const char *v = colon + 1;
    if (nl == 4 && strncasecmp(p, "etag", 4) == 0) {
        copy_trimmed(x->etag, sizeof x->etag, v, vl);
    } else if (nl == 13 && strncasecmp(p, "content-range", 13) == 0) {
        copy_trimmed(x->content_range, sizeof x->content_range, v, vl);
    } else if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
        char num[32];
        copy_trimmed(num, sizeof num, v, vl);
        char *end;
        errno = 0;
        unsigned long long cl = strtoull(num, &end, 10);
        if (!errno && end != num && !*end && num[0] != '-') {
            x->content_length = cl;
            x->have_cl = 1;
        }
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t len = size * nmemb;
    s3_op *op = x->op;
    if (!x->first_byte_ns) x->first_byte_ns = s3v_now_ns();
    if (x->http < 200 || x->http > 299) {
        size_t room = x->err.max - x->err.len;
        if (room && s3v_buf_append(&x->err, p, len < room ? len : room) != S3V_OK) return len;
        return len;
    }
    x->c->stats.bytes_down += len;
    if (!x->body_started) {
        x->body_started = 1;
        if (op->range_size && x->http == 200) {
            x->ranged_200 = 1;
            x->skip = op->range_offset;
        }
        if (x->have_cl && !x->ranged_200) {
            if (x->content_length > x->body.max) {
                x->overflow = 1;
                return 0;
            }
            if (s3v_buf_reserve(&x->body, (size_t)x->content_length) != S3V_OK) {
                x->overflow = 1;
                return 0;
            }
        }
    }
    const char *d = p;
    size_t m = len;
    if (x->skip) {
        size_t s = x->skip < m ? (size_t)x->skip : m;
        d += s;
        m -= s;
        x->skip -= s;
    }
    if (x->ranged_200) {
        size_t want = (size_t)(op->range_size - x->body.len);
        if (m > want) m = want;
    }
    if (m && s3v_buf_append(&x->body, d, m) != S3V_OK) {
        x->overflow = 1;
        return 0;
    }
    if (x->ranged_200 && x->body.len == op->range_size) {
        x->range_done_early = 1;
        return 0; /* stop: the rest of the object is not wanted */
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t room = size * nitems, left = x->up_size - x->up_pos;
    size_t n = room < left ? room : left;
    if (n) memcpy(buf, x->up + x->up_pos, n);
    x->up_pos += n;
    x->c->stats.bytes_up += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    xfer *x = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->up_size) return CURL_SEEKFUNC_FAIL;
    x->up_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ---- starting a transfer ---------------------------------------------------------------------- */

static s3v_status load_file_body(s3_op *op)
{
    if (op->file_body || op->body_fd < 0) return S3V_OK;
    uint8_t *b = malloc(op->body_size ? op->body_size : 1);
    if (!b) return s3v_errorf(S3V_ERR_NOMEM, "out of memory for a %zu-byte upload part", op->body_size);
    size_t got = 0;
    while (got < op->body_size) {
        ssize_t r = pread(op->body_fd, b + got, op->body_size - got, (off_t)(op->body_offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(b);
            return r == 0 ? s3v_errorf(S3V_ERR_IO, "file shrank while uploading it")
                          : s3v_errorf(S3V_ERR_IO, "cannot read the file to upload: %s", strerror(e));
        }
        got += (size_t)r;
    }
    op->file_body = b;
    return S3V_OK;
}

static const uint8_t *op_body(const s3_op *op) { return op->body_fd >= 0 ? op->file_body : op->body; }

static int is_method(const s3_op *op, const char *m) { return strcmp(op->method, m) == 0; }

static s3v_status add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[S3_TOKEN_MAX + 256];
    int n =
        value ? snprintf(line, sizeof line, "%s: %s", name, value) : snprintf(line, sizeof line, "%s:", name);
    if (n < 0 || (size_t)n >= sizeof line) return s3v_errorf(S3V_ERR_INTERNAL, "header %s too long", name);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l) return s3v_errorf(S3V_ERR_NOMEM, "out of memory building headers");
    *list = l;
    return S3V_OK;
}

/* Raw (unencoded) request path for op. */
static s3v_status op_path(const s3_client *c, const s3_op *op, s3v_buf *out)
{
    S3V_TRY(s3v_buf_append_str(out, c->cfg.base_path));
    if (op->key) {
        S3V_TRY(s3v_buf_append_str(out, "/"));
        S3V_TRY(s3v_buf_append_str(out, op->key));
    } else if (!c->cfg.base_path[0]) {
        S3V_TRY(s3v_buf_append_str(out, "/"));
    }
    return S3V_OK;
}

static s3v_status xfer_prepare(s3_client *c, xfer *x, uint64_t deadline_ns)
{
    s3_op *op = x->op;
    const s3_config *cfg = &c->cfg;
    s3v_status st = S3V_OK;
    s3v_buf path;
    s3v_buf_init(&path, 8192);
    s3_sigv4_out sig;
    s3_sigv4_out_init(&sig);

    S3V_CHECK(op_path(c, op, &path));
    S3V_CHECK(s3v_buf_printf(&x->url, "%s://%s", cfg->scheme, cfg->connect_host));
    S3V_CHECK(s3_sigv4_uri_encode(&x->url, path.ptr, path.len, 1));
    if (op->query && *op->query) S3V_CHECK(s3v_buf_printf(&x->url, "?%s", op->query));

    char range[64];
    s3_sigv4_header h[6];
    size_t nh = 0;
    h[nh++] = (s3_sigv4_header){"host", cfg->host};
    if (op->range_size) {
        snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)op->range_offset,
                 (unsigned long long)(op->range_offset + op->range_size - 1));
        h[nh++] = (s3_sigv4_header){"range", range};
    }
    if (op->if_match) h[nh++] = (s3_sigv4_header){"if-match", op->if_match};
    if (op->if_none_match) h[nh++] = (s3_sigv4_header){"if-none-match", op->if_none_match};
    if (op->content_type) h[nh++] = (s3_sigv4_header){"content-type", op->content_type};

    s3_sigv4_creds creds = {cfg->access_key_id, cfg->secret_access_key,
                            cfg->session_token[0] ? cfg->session_token : NULL};
    s3_sigv4_req req = {op->method, (const char *)path.ptr, op->query, h, nh, op->payload_hash};
    s3_sigv4_opts opts = {cfg->region, "s3", (int64_t)(s3v_wall_ms() / 1000), 0, 1, 0};
    char amz_date[17];
    s3_sigv4_amz_date(opts.unix_time, amz_date);
    if (memcmp(c->key_date, amz_date, 8) != 0) { /* the signing key changes once a day (UTC) */
        S3V_CHECK(s3_sigv4_signing_key(cfg->secret_access_key, amz_date, cfg->region, "s3", c->signing_key));
        memcpy(c->key_date, amz_date, 8);
        c->key_date[8] = 0;
    }
    S3V_CHECK(s3_sigv4_sign_with_key(&req, &creds, &opts, c->signing_key, &sig));

    for (size_t i = 0; i < nh; i++) S3V_CHECK(add_header(&x->hdrs, h[i].name, h[i].value));
    S3V_CHECK(add_header(&x->hdrs, "x-amz-date", sig.amz_date));
    S3V_CHECK(add_header(&x->hdrs, "x-amz-content-sha256", op->payload_hash));
    if (creds.session_token) S3V_CHECK(add_header(&x->hdrs, "x-amz-security-token", creds.session_token));
    S3V_CHECK(add_header(&x->hdrs, "Authorization", (const char *)sig.result.ptr));
    S3V_CHECK(add_header(&x->hdrs, "Expect", NULL));
    S3V_CHECK(add_header(&x->hdrs, "Accept", NULL));
    if (!op->content_type) S3V_CHECK(add_header(&x->hdrs, "Content-Type", NULL));

    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, (const char *)x->url.ptr);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, c->share);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "s3vec");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((cfg->stall_timeout_ms + 999) / 1000));
    long connect_ms = (long)cfg->connect_timeout_ms;
    if (deadline_ns != S3V_NO_DEADLINE) {
        int64_t left = s3v_deadline_left_ms(deadline_ns);
        if (left < 1) left = 1;
        if (left < connect_ms) connect_ms = (long)left;
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    if (cfg->ca_bundle[0]) curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_bundle);
    if (is_method(op, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (is_method(op, "PUT")) {
        x->up = op_body(op);
        x->up_size = op->body_size;
        x->up_pos = 0;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)op->body_size);
    } else if (is_method(op, "POST")) {
        const uint8_t *b = op_body(op);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)op->body_size);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, b ? (const char *)b : "");
        c->stats.bytes_up += op->body_size;
    } else if (!is_method(op, "GET")) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, op->method);
    }
fail:
    s3v_buf_free(&path);
    s3_sigv4_out_free(&sig);
    return st;
}

static s3v_status xfer_start(s3_client *c, s3_op *op, size_t index, int is_hedge, uint64_t deadline_ns,
                             xfer **out)
{
    if (!op->payload_hash[0]) {
        if (is_method(op, "GET") || is_method(op, "HEAD")) {
            snprintf(op->payload_hash, sizeof op->payload_hash, "%s", S3_SIGV4_UNSIGNED_PAYLOAD);
        } else {
            S3V_TRY(load_file_body(op));
            S3V_TRY(s3_sigv4_sha256_hex(op_body(op), op->body_size, op->payload_hash));
        }
    }
    S3V_TRY(load_file_body(op));
    xfer *x = calloc(1, sizeof *x);
    if (!x) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    x->c = c;
    x->op = op;
    x->index = index;
    x->is_hedge = is_hedge;
    s3v_buf_init(&x->url, 16384);
    s3v_buf_init(&x->body, op->resp_max);
    s3v_buf_init(&x->err, S3_ERR_BODY_MAX);
    x->easy = c->pool_n ? c->pool[--c->pool_n] : curl_easy_init();
    if (!x->easy) {
        free(x);
        return s3v_errorf(S3V_ERR_INTERNAL, "libcurl could not create a handle");
    }
    curl_easy_reset(x->easy);
    s3v_status st = xfer_prepare(c, x, deadline_ns);
    if (st == S3V_OK && curl_multi_add_handle(c->multi, x->easy) != CURLM_OK)
        st = s3v_errorf(S3V_ERR_INTERNAL, "libcurl refused a transfer");
    if (st != S3V_OK) {
        curl_slist_free_all(x->hdrs);
        if (c->pool_n < POOL_MAX)
            c->pool[c->pool_n++] = x->easy;
        else
            curl_easy_cleanup(x->easy);
        s3v_buf_free(&x->url);
        free(x);
        return st;
    }
    x->start_ns = s3v_now_ns();
    x->next = c->active;
    c->active = x;
    c->nactive++;
    op->nactive++;
    c->stats.requests++;
    *out = x;
    return S3V_OK;
}

static void xfer_free(s3_client *c, xfer *x)
{
    curl_multi_remove_handle(c->multi, x->easy);
    for (xfer **pp = &c->active; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    c->nactive--;
    x->op->nactive--;
    if (x->twin) x->twin->twin = NULL;
    curl_slist_free_all(x->hdrs);
    if (c->pool_n < POOL_MAX)
        c->pool[c->pool_n++] = x->easy;
    else
        curl_easy_cleanup(x->easy);
    s3v_buf_free(&x->url);
    s3v_buf_free(&x->body);
    s3v_buf_free(&x->err);
    free(x);
}

/* ---- finishing a transfer --------------------------------------------------------------------- */

/* Parses "bytes a-b/t" (t may be '*'). */
static int parse_content_range(const char *s, uint64_t *a, uint64_t *b, uint64_t *t, int *t_known)
{
    unsigned long long x, y, z;
    int n = 0;
    if (sscanf(s, "bytes %llu-%llu/%llu%n", &x, &y, &z, &n) == 3 && n > 0 && s[n] == 0) {
        *a = x, *b = y, *t = z, *t_known = 1;
        return y >= x;
    }
    n = 0;
    if (sscanf(s, "bytes %llu-%llu/*%n", &x, &y, &n) == 2 && n > 0 && s[n] == 0) {
        *a = x, *b = y, *t = 0, *t_known = 0;
        return y >= x;
    }
    return 0;
}

/* Text at an XML path, or "" when absent or malformed. */
static void xml_text(const uint8_t *data, size_t len, const char *path, char *out, size_t out_size)
{
    if (s3_xml_find(data, len, path, out, out_size) != S3V_OK) out[0] = 0;
}

/* Decides the outcome of a transfer that finished at the HTTP level. */
static s3v_status judge_http(s3_client *c, xfer *x, int *retry, char *msg, size_t msg_size)
{
    s3_op *op = x->op;
    long http = x->http;
    char where[1200];
    s3_client_describe(c, op->key, where, sizeof where);
    *retry = 0;
    if (http >= 200 && http <= 299) {
        if (op->range_size) {
            uint64_t want_end = op->range_offset + op->range_size - 1;
            if (http == 206) {
                uint64_t a, b, t;
                int t_known;
                if (!parse_content_range(x->content_range, &a, &b, &t, &t_known)) {
                    *retry = 1;
                    snprintf(msg, msg_size, "%s: 206 with a malformed Content-Range", where);
                    return S3V_ERR_REMOTE;
                }
                if (a == op->range_offset && b < want_end && t_known && b + 1 == t) {
                    snprintf(msg, msg_size, "%s: range %llu+%llu is past the end of the object (%llu bytes)",
                             where, (unsigned long long)op->range_offset, (unsigned long long)op->range_size,
                             (unsigned long long)t);
                    return S3V_ERR_CORRUPT;
                }
                if (a != op->range_offset || b != want_end) {
                    *retry = 1;
                    snprintf(msg, msg_size, "%s: asked bytes %llu-%llu, got Content-Range %s", where,
                             (unsigned long long)op->range_offset, (unsigned long long)want_end,
                             x->content_range);
                    return S3V_ERR_REMOTE;
                }
                if (x->body.len != op->range_size) {
                    *retry = 1;
                    snprintf(msg, msg_size, "%s: truncated range (%zu of %llu bytes)", where, x->body.len,
                             (unsigned long long)op->range_size);
                    return S3V_ERR_NETWORK;
                }
                op->object_size = t_known ? t : 0;
            } else {
                if (x->body.len != op->range_size) {
                    if (x->have_cl && x->content_length < op->range_offset + op->range_size) {
                        snprintf(msg, msg_size,
                                 "%s: range %llu+%llu is past the end of the object (%llu bytes)", where,
                                 (unsigned long long)op->range_offset, (unsigned long long)op->range_size,
                                 (unsigned long long)x->content_length);
                        return S3V_ERR_CORRUPT;
                    }
                    *retry = 1;
                    snprintf(msg, msg_size, "%s: truncated body", where);
                    return S3V_ERR_NETWORK;
                }
                op->object_size = x->have_cl ? x->content_length : 0;
            }
        } else {
            if (x->have_cl && !is_method(op, "HEAD") && x->body.len != x->content_length) {
                *retry = 1;
                snprintf(msg, msg_size, "%s: truncated body (%zu of %llu bytes)", where, x->body.len,
                         (unsigned long long)x->content_length);
                return S3V_ERR_NETWORK;
            }
            op->object_size = x->have_cl ? x->content_length : x->body.len;
        }
        if (is_method(op, "POST") && x->body.len) {
            char root[64], code[128] = "", text[256] = "";
            if (s3_xml_root(x->body.ptr, x->body.len, root, sizeof root) == S3V_OK &&
                strcmp(root, "Error") == 0) {
                xml_text(x->body.ptr, x->body.len, "Error/Code", code, sizeof code);
                xml_text(x->body.ptr, x->body.len, "Error/Message", text, sizeof text);
                s3v_status st = s3_retry_classify(500, code, retry);
                snprintf(msg, msg_size, "%s: %s %s: %s", where, op->method, code[0] ? code : "Error", text);
                return st;
            }
        }
        return S3V_OK;
    }
    char code[128] = "", text[256] = "", reqid[128] = "";
    if (x->err.len) {
        xml_text(x->err.ptr, x->err.len, "Error/Code", code, sizeof code);
        xml_text(x->err.ptr, x->err.len, "Error/Message", text, sizeof text);
        xml_text(x->err.ptr, x->err.len, "Error/RequestId", reqid, sizeof reqid);
    }
    if (http == 503 || http == 429 || strcmp(code, "SlowDown") == 0) c->stats.throttled++;
    s3v_status st = s3_retry_classify(http, code, retry);
    if (!code[0] && http == 404) snprintf(code, sizeof code, "NotFound");
    snprintf(msg, msg_size, "%s: %s %ld %s%s%s%s%s%s", where, op->method, http, code[0] ? code : "(no code)",
             text[0] ? ": " : "", text, reqid[0] ? " (request id " : "", reqid, reqid[0] ? ")" : "");
    return st;
}

static s3v_status judge_curl(s3_client *c, xfer *x, CURLcode rc, uint64_t now, uint64_t deadline_ns,
                             int *retry, char *msg, size_t msg_size)
{
    s3_op *op = x->op;
    char where[1200];
    s3_client_describe(c, op->key, where, sizeof where);
    const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    *retry = 0;
    if (rc == CURLE_WRITE_ERROR && x->overflow) {
        if (op->range_size) { /* the server sent more than the range: a bad answer, try again */
            *retry = 1;
            snprintf(msg, msg_size, "%s: response larger than the requested range", where);
            return S3V_ERR_REMOTE;
        }
        snprintf(msg, msg_size, "%s: object larger than the %zu-byte limit", where, x->body.max);
        return S3V_ERR_TOO_LARGE;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        if (deadline_ns != S3V_NO_DEADLINE && now + 2 * MS >= deadline_ns) {
            snprintf(msg, msg_size, "%s: deadline passed during %s", where, op->method);
            return S3V_ERR_TIMEOUT;
        }
        *retry = 1;
        snprintf(msg, msg_size, "%s: %s stalled or could not connect: %s", where, op->method, detail);
        return S3V_ERR_NETWORK;
    case CURLE_OUT_OF_MEMORY:
        snprintf(msg, msg_size, "%s: out of memory in libcurl", where);
        return S3V_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        snprintf(msg, msg_size, "%s: libcurl rejected the request: %s", where, detail);
        return S3V_ERR_INTERNAL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        snprintf(msg, msg_size, "%s: TLS verification failed (CA bundle %.300s): %s", where,
                 c->cfg.ca_bundle[0] ? c->cfg.ca_bundle : "libcurl default", detail);
        return S3V_ERR_NETWORK;
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(msg, msg_size, "%s: %s aborted: %s", where, op->method, detail);
        return S3V_ERR_IO;
    default:
        /* connection refused or reset, truncated body (PARTIAL_FILE), empty reply, DNS, TLS handshake... */
        *retry = 1;
        snprintf(msg, msg_size, "%s: %s failed: %s", where, op->method, detail);
        return S3V_ERR_NETWORK;
    }
}

typedef struct run_ctx {
    s3_op *ops;
    size_t count;
    size_t remaining;
    uint64_t deadline_ns;
    s3_op_done_fn done;
    void *arg;
} run_ctx;

/* Marks op finished and tells the caller. */
static s3v_status op_finish(s3_client *c, run_ctx *r, s3_op *op, size_t index)
{
    op->done = 1;
    r->remaining--;
    free(op->file_body);
    op->file_body = NULL;
    if (op->status != S3V_OK) {
        s3v_errorf(op->status, "%s", op->msg);
        if (S3V_LOG_ENABLED(S3V_LOG_DEBUG))
            s3v_log(S3V_LOG_DEBUG, "s3: %s failed after %u attempt(s): %s", op->method, op->attempts,
                    op->msg);
    }
    return r->done ? r->done(r->arg, op, index) : S3V_OK;
}

static s3v_status xfer_done(s3_client *c, run_ctx *r, xfer *x, CURLcode rc)
{
    s3_op *op = x->op;
    size_t index = x->index;
    uint64_t now = s3v_now_ns();
    if (op->done) { /* cannot happen (a winner cancels its twin), kept for safety */
        xfer_free(c, x);
        return S3V_OK;
    }
    int retry = 0;
    char msg[S3_MSG_MAX];
    msg[0] = 0;
    s3v_status st;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x->range_done_early))
        st = judge_http(c, x, &retry, msg, sizeof msg);
    else
        st = judge_curl(c, x, rc, now, r->deadline_ns, &retry, msg, sizeof msg);
    op->http_status = x->http;

    if (st == S3V_OK) {
        if (x->first_byte_ns && (is_method(op, "GET") || is_method(op, "HEAD")))
            s3_latency_add(&c->lat, (x->first_byte_ns - x->start_ns) / 1000);
        if (x->is_hedge) c->stats.hedge_wins++;
        if (x->twin) xfer_free(c, x->twin);
        s3v_buf_free(&op->resp);
        op->resp = x->body; /* move */
        s3v_buf_init(&x->body, 0);
        snprintf(op->etag, sizeof op->etag, "%s", x->etag);
        op->status = S3V_OK;
        op->msg[0] = 0;
        xfer_free(c, x);
        return op_finish(c, r, op, index);
    }
    op->status = st;
    snprintf(op->msg, sizeof op->msg, "%s", msg);
    if (x->twin) { /* the other copy is still running: let it decide */
        xfer_free(c, x);
        return S3V_OK;
    }
    xfer_free(c, x);
    if (retry && op->attempts < c->cfg.max_attempts) {
        uint64_t wait =
            s3_backoff_ms(op->attempts, c->cfg.backoff_base_ms, c->cfg.backoff_cap_ms, &c->rng) * MS;
        if (r->deadline_ns == S3V_NO_DEADLINE || now + wait < r->deadline_ns) {
            op->not_before_ns = now + wait;
            if (S3V_LOG_ENABLED(S3V_LOG_DEBUG))
                s3v_log(S3V_LOG_DEBUG, "s3: retrying in %llu ms (attempt %u): %s",
                        (unsigned long long)(wait / MS), op->attempts + 1, msg);
            return S3V_OK;
        }
    }
    if (retry) {
        size_t n = strlen(op->msg);
        snprintf(op->msg + n, sizeof op->msg - n, " (after %u attempt%s)", op->attempts,
                 op->attempts == 1 ? "" : "s");
    }
    return op_finish(c, r, op, index);
}

/* ---- the run loop ----------------------------------------------------------------------------- */

s3v_status s3_client_run(s3_client *c, s3_op *ops, size_t count, size_t max_parallel, uint64_t deadline_ns,
                         s3_op_done_fn done, void *arg)
{
    if (!max_parallel || max_parallel > c->cfg.max_concurrency) max_parallel = c->cfg.max_concurrency;
    run_ctx r = {ops, count, count, deadline_ns, done, arg};
    for (size_t i = 0; i < count; i++) {
        s3_op *op = &ops[i];
        op->done = 0;
        op->attempts = 0;
        op->not_before_ns = 0;
        op->nactive = 0;
        op->status = S3V_OK;
        op->http_status = 0;
        op->msg[0] = 0;
        op->etag[0] = 0;
        op->object_size = 0;
        s3v_buf_free(&op->resp);
        s3v_buf_init(&op->resp, op->resp_max);
    }
    s3v_status result = S3V_OK;
    size_t cursor = 0;
    size_t hedge_budget = count / 4 + 2;
    while (r.remaining) {
        uint64_t now = s3v_now_ns();
        if (deadline_ns != S3V_NO_DEADLINE && now >= deadline_ns) {
            result = S3V_ERR_TIMEOUT;
            break;
        }
        while (cursor < count && ops[cursor].done) cursor++;
        /* start what may start */
        for (size_t i = cursor; i < count && c->nactive < max_parallel; i++) {
            s3_op *op = &ops[i];
            if (op->done || op->nactive || op->not_before_ns > now) continue;
            if (op->attempts) c->stats.retries++;
            op->attempts++;
            xfer *x;
            s3v_status st = xfer_start(c, op, i, 0, deadline_ns, &x);
            if (st != S3V_OK) {
                op->status = st;
                snprintf(op->msg, sizeof op->msg, "%s", s3v_errmsg(st));
                st = op_finish(c, &r, op, i);
                if (st != S3V_OK) {
                    result = st;
                    goto out;
                }
            }
        }
        /* hedge slow ranges */
        uint64_t next_hedge = UINT64_MAX;
        if (c->cfg.hedge && hedge_budget) {
            uint64_t thr = s3_hedge_threshold_us(&c->lat, c->cfg.hedge_min_ms) * 1000;
            for (xfer *x = c->active; x; x = x->next) {
                if (!x->op->hedgeable || x->twin || x->is_hedge || x->first_byte_ns) continue;
                if (x->start_ns > now || now - x->start_ns < thr) {
                    if (x->start_ns + thr < next_hedge) next_hedge = x->start_ns + thr;
                    continue;
                }
                if (c->nactive >= max_parallel || !hedge_budget) continue;
                xfer *h;
                if (xfer_start(c, x->op, x->index, 1, deadline_ns, &h) == S3V_OK) {
                    h->twin = x;
                    x->twin = h;
                    c->stats.hedges++;
                    hedge_budget--;
                    if (S3V_LOG_ENABLED(S3V_LOG_DEBUG))
                        s3v_log(S3V_LOG_DEBUG, "s3: hedging a %s after %llu ms without a response",
                                x->op->method, (unsigned long long)((now - x->start_ns) / MS));
                }
            }
        }
        int running = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int queued;
        while ((m = curl_multi_info_read(c->multi, &queued)) != NULL) {
            if (m->msg != CURLMSG_DONE) continue;
            xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            if (!x) continue;
            s3v_status st = xfer_done(c, &r, x, m->data.result);
            if (st != S3V_OK) {
                result = st;
                goto out;
            }
        }
        if (!r.remaining) break;
        /* sleep until something happens: socket activity, a retry becoming due, a hedge, the deadline */
        now = s3v_now_ns();
        uint64_t wake = now + 1000 * MS;
        if (deadline_ns != S3V_NO_DEADLINE && deadline_ns < wake) wake = deadline_ns;
        if (next_hedge < wake) wake = next_hedge;
        for (size_t i = cursor; i < count; i++) {
            s3_op *op = &ops[i];
            if (op->done || op->nactive) continue;
            uint64_t t = op->not_before_ns > now ? op->not_before_ns : now;
            if (t < now || (t == now && c->nactive < max_parallel)) {
                wake = now;
                break;
            }
            if (t > now && t < wake) wake = t;
        }
        int timeout_ms = wake <= now ? 0 : (int)((wake - now + MS - 1) / MS);
        if (timeout_ms > 0) curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    }
out:
    while (c->active) xfer_free(c, c->active);
    size_t unfinished = 0;
    const char *last = NULL;
    for (size_t i = 0; i < count; i++) {
        s3_op *op = &ops[i];
        free(op->file_body);
        op->file_body = NULL;
        if (op->done) continue;
        unfinished++;
        if (op->msg[0] && !last) last = op->msg;
        op->status = result == S3V_ERR_TIMEOUT ? S3V_ERR_TIMEOUT : S3V_ERR_CANCELLED;
    }
    if (result == S3V_ERR_TIMEOUT) {
        char where[1200];
        s3_client_describe(c, count ? ops[0].key : NULL, where, sizeof where);
        return s3v_errorf(S3V_ERR_TIMEOUT, "%s: deadline passed with %zu of %zu request%s unfinished%s%s",
                          where, unfinished, count, count == 1 ? "" : "s", last ? "; last error: " : "",
                          last ? last : "");
    }
    return result;
}
