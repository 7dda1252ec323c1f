/* bench/s3model_origin.c: an S3 origin in C that applies the S3 network model itself, for the cold-query
 * benchmark (bench/bench_s3_cold.py --harness c).
 *
 *   s3model_origin --dir BUCKET=FOLDER [--dir ...] [--latency-ms 20] [--bandwidth-mbps 80] [--chunk-kib 64]
 *                  [--port 0]
 *   prints "listening on 127.0.0.1:PORT" once it accepts, then serves until SIGTERM or SIGINT.
 *
 * What it serves (the same as tests/integration/s3lib/origin.py, which it mirrors): every regular file
 * under FOLDER as the object BUCKET/<path relative to FOLDER>, path-style, over HTTP/1.1 keep-alive on
 * 127.0.0.1 only, with no authentication check. GET (whole object, or one "Range: bytes=a-b", "a-" or
 * "-n"; 206 with Content-Range, 416 when the range starts past the end, 200 with the whole object when
 * the Range header does not parse), HEAD, ListObjectsV2 of a bucket (GET /BUCKET?list-type=2 with
 * prefix, delimiter, start-after, continuation-token = the last name of the previous page, max-keys;
 * keys in byte order). ETag = the quoted MD5 of the object, as S3 gives for single-part objects. 404
 * NoSuchKey for unknown keys, 501 for other methods (the connection is then closed). `GET /_origin/stats`
 * answers {"requests": N, "bytes": N} (object and list requests answered, object body bytes sent) and
 * `GET /_origin/reset` zeroes them. Files are opened at start and sent with sendfile() from the page
 * cache; they must not change while it runs.
 *
 * The model (throttling mode; 0 turns either part off), per TCP connection:
 *  - latency: each answer's status line and headers leave latency_ms after the request's header block
 *    arrived (connection set-up is not delayed);
 *  - bandwidth: the body leaves in chunks of chunk_kib KiB through a modelled link of bandwidth_mbps
 *    (10^6 bytes/s): a chunk is written when its last byte would have crossed the link,
 *    f = max(f_previous, start) + len / rate, never earlier. The link banks no credit while idle, and
 *    timer lateness does not accumulate (f comes from the model, not from when the previous chunk was
 *    written). So a response of B bytes completes latency + B / rate after its request at the
 *    earliest, as the model says.
 * Timing: one thread, epoll, and one timerfd armed (absolute, CLOCK_MONOTONIC) at the earliest due
 * time of any connection; timer slack is set to 1 ns so chunks leave when due, not up to 50 us late.
 * Connections waiting for a due time are found by a scan of the connection table (at most CONN_MAX).
 * A socket that does not take a released chunk at once is waited on with EPOLLOUT (the client is not
 * reading: TCP back-pressure).
 *
 * Limits: CONN_MAX connections (more are accepted and closed at once), IN_MAX bytes of request head
 * (431 and close when larger), OBJ_MAX objects, keys up to KEY_MAX bytes. Bench tool: it is not a test
 * of S3 semantics (no writes, no auth, no virtual-hosted style). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CONN_MAX  1024
#define IN_MAX    (16 * 1024)
#define HEAD_MAX  1024
#define OBJ_MAX   100000
#define KEY_MAX   1024
#define LIST_MAX  1000 /* default and largest max-keys */
#define EVENT_MAX 128

/* ---- objects ------------------------------------------------------------------------------------ */

typedef struct object {
    char *key; /* "bucket/relative/path" */
    int fd;
    uint64_t size;
    char etag[40]; /* "\"<32 hex>\"" */
} object;

typedef struct origin {
    object *objs; /* sorted by key bytes */
    size_t nobj;
    double latency_ns;
    double rate; /* bytes per ns; 0 = no cap */
    size_t chunk;
    uint64_t requests, bytes_sent;
} origin;

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const object *)a)->key, ((const object *)b)->key);
}

static object *obj_find(origin *o, const char *key)
{
    object probe = {.key = (char *)key};
    return bsearch(&probe, o->objs, o->nobj, sizeof *o->objs, obj_cmp);
}

static int md5_etag(int fd, uint64_t size, char out[40])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(1 << 20);
    int ok = ctx && buf && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;
    uint64_t off = 0;
    while (ok && off < size) {
        ssize_t r = pread(fd, buf, 1 << 20, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            ok = 0;
            break;
        }
        ok = EVP_DigestUpdate(ctx, buf, (size_t)r) == 1;
        off += (uint64_t)r;
    }
    uint8_t md[16];
    unsigned int md_len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 16;
    if (ok) {
        out[0] = '"';
        for (int i = 0; i < 16; i++) snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
        out[33] = '"';
        out[34] = 0;
    }
    EVP_MD_CTX_free(ctx);
    free(buf);
    return ok;
}

/* Adds every regular file under dir (path relative to the folder root: rel) as bucket/rel. */
static int add_folder(origin *o, const char *bucket, const char *dir, const char *rel)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "s3model_origin: cannot open %s: %s\n", dir, strerror(errno));
        return 0;
    }
    int ok = 1;
    struct dirent *de;
    while (ok && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char path[4096], sub[KEY_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
            snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >= (int)sizeof sub) {
            fprintf(stderr, "s3model_origin: path too long under %s\n", dir);
            ok = 0;
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && de->d_type != DT_LNK) {
            ok = add_folder(o, bucket, path, sub);
            continue;
        }
        if (!S_ISREG(sb.st_mode)) continue;
        if (o->nobj == OBJ_MAX) {
            fprintf(stderr, "s3model_origin: more than %d objects\n", OBJ_MAX);
            ok = 0;
            break;
        }
        object *ob = &o->objs[o->nobj];
        size_t kl = strlen(bucket) + 1 + strlen(sub) + 1;
        ob->key = malloc(kl);
        ob->fd = open(path, O_RDONLY | O_CLOEXEC);
        ob->size = (uint64_t)sb.st_size;
        if (!ob->key || ob->fd < 0 || !md5_etag(ob->fd, ob->size, ob->etag)) {
            fprintf(stderr, "s3model_origin: cannot read %s\n", path);
            if (ob->fd >= 0) close(ob->fd);
            free(ob->key);
            ok = 0;
            break;
        }
        snprintf(ob->key, kl, "%s/%s", bucket, sub);
        o->nobj++;
    }
    closedir(d);
    return ok;
}

/* ---- a growable text buffer for bodies (lists, errors, stats) ------------------------------------ */

typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
}

static void text_str(text *t, const char *s) { text_add(t, s, strlen(s)); }

static void text_xml(text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '&')
            text_str(t, "&amp;");
        else if (s[i] == '<')
            text_str(t, "&lt;");
        else if (s[i] == '>')
            text_str(t, "&gt;");
        else
            text_add(t, s + i, 1);
    }
}

/* ---- URL decoding ------------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated); plus_space turns '+' into ' ' (query
 * values, as Python's parse_qs). Returns 0 when it does not fit or decodes to a NUL byte. */
static int url_decode(const char *s, size_t n, int plus_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == 0 || o + 1 >= cap) return 0;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 1;
}

/* Value of query parameter name in q[0..n) (decoded into out), 1 when present. */
static int query_param(const char *q, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nl && !memcmp(q, name, nl)) {
            const char *v = eq ? eq + 1 : stop;
            if (!url_decode(v, (size_t)(stop - v), 1, out, cap)) out[0] = 0;
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    out[0] = 0;
    return 0;
}

/* ---- ListObjectsV2 ------------------------------------------------------------------------------ */

static void list_objects(origin *o, const char *bucket, const char *q, size_t qn, text *out)
{
    char prefix[KEY_MAX], delim[64], after[KEY_MAX], token[KEY_MAX], mk[32];
    query_param(q, qn, "prefix", prefix, sizeof prefix);
    query_param(q, qn, "delimiter", delim, sizeof delim);
    query_param(q, qn, "start-after", after, sizeof after);
    if (query_param(q, qn, "continuation-token", token, sizeof token) && token[0])
        memcpy(after, token, sizeof after);
    long max_keys = LIST_MAX;
    if (query_param(q, qn, "max-keys", mk, sizeof mk) && mk[0]) max_keys = strtol(mk, NULL, 10);
    if (max_keys < 0) max_keys = 0;
    if (max_keys > LIST_MAX) max_keys = LIST_MAX;
    size_t bl = strlen(bucket), pl = strlen(prefix), dl = strlen(delim);

    /* entries: (name, length, is_prefix); names point into object keys */
    typedef struct entry {
        const char *name;
        size_t len;
        int is_prefix;
        uint64_t size;
    } entry;
    entry *ents = malloc(((size_t)max_keys + 1) * sizeof *ents);
    if (!ents) {
        out->failed = 1;
        return;
    }
    size_t ne = 0;
    for (size_t i = 0; i < o->nobj && ne <= (size_t)max_keys; i++) {
        const char *full = o->objs[i].key;
        if (strncmp(full, bucket, bl) || full[bl] != '/') continue;
        const char *k = full + bl + 1;
        if (strncmp(k, prefix, pl) || strcmp(k, after) <= 0) continue;
        const char *cut = dl ? strstr(k + pl, delim) : NULL;
        entry e = {k, cut ? (size_t)(cut - k) + dl : strlen(k), cut != NULL, o->objs[i].size};
        if (ne && ents[ne - 1].is_prefix == e.is_prefix && ents[ne - 1].len == e.len &&
            !memcmp(ents[ne - 1].name, e.name, e.len))
            continue;
        if (e.is_prefix) { /* a prefix at or before start-after was listed on an earlier page */
            size_t al = strlen(after), m = e.len < al ? e.len : al;
            int c = memcmp(e.name, after, m);
            if (c < 0 || (c == 0 && e.len <= al)) continue;
        }
        ents[ne++] = e;
    }
    int truncated = ne > (size_t)max_keys;
    size_t page = truncated ? (size_t)max_keys : ne;
    char num[64];
    text_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>");
    text_xml(out, bucket, bl);
    text_str(out, "</Name><Prefix>");
    text_xml(out, prefix, pl);
    snprintf(num, sizeof num, "</Prefix><KeyCount>%zu</KeyCount><MaxKeys>%ld</MaxKeys>", page, max_keys);
    text_str(out, num);
    text_str(out, truncated ? "<IsTruncated>true</IsTruncated>" : "<IsTruncated>false</IsTruncated>");
    if (truncated && page) {
        text_str(out, "<NextContinuationToken>");
        text_xml(out, ents[page - 1].name, ents[page - 1].len);
        text_str(out, "</NextContinuationToken>");
    }
    for (size_t i = 0; i < page; i++) {
        if (ents[i].is_prefix) {
            text_str(out, "<CommonPrefixes><Prefix>");
            text_xml(out, ents[i].name, ents[i].len);
            text_str(out, "</Prefix></CommonPrefixes>");
        } else {
            text_str(out, "<Contents><Key>");
            text_xml(out, ents[i].name, ents[i].len);
            snprintf(num, sizeof num, "</Key><Size>%llu</Size></Contents>", (unsigned long long)ents[i].size);
            text_str(out, num);
        }
    }
    text_str(out, "</ListBucketResult>");
    free(ents);
}

/* ---- connections -------------------------------------------------------------------------------- */

typedef enum conn_state { C_READ, C_SEND } conn_state;

typedef struct conn {
    int fd;
    conn_state state;
    int close_after; /* close once this response is out */
    uint32_t events; /* epoll interest now */
    uint8_t in[IN_MAX];
    size_t in_len;
    /* the response being sent */
    char head[HEAD_MAX];
    size_t head_len, head_off;
    text mem;    /* body from memory (lists, errors, stats), or empty */
    int file_fd; /* body from this file, or -1 */
    uint64_t file_off;
    uint64_t body_len, body_sent;
    int counted;         /* an object body: its bytes count in the stats */
    uint64_t start_ns;   /* the answer may start then */
    double link_free_ns; /* the modelled link is busy until then */
    uint64_t released;   /* body bytes released by the model so far */
    uint64_t next_len;   /* the next chunk, released at next_at (0 = none computed) */
    uint64_t next_at;
    uint64_t due_ns; /* wake this connection then (0 = not waiting on time) */
} conn;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct server {
    origin *o;
    int ep, lfd, tfd, sfd;
    conn *conns[CONN_MAX];
    uint64_t armed_ns; /* the timerfd's current expiry, 0 = disarmed */
} server;

static void conn_close(server *s, conn *c)
{
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (size_t i = 0; i < CONN_MAX; i++)
        if (s->conns[i] == c) s->conns[i] = NULL;
    free(c->mem.p);
    free(c);
}

static int conn_want(server *s, conn *c, uint32_t ev)
{
    if (c->events == ev) return 1;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) != 0) return 0;
    c->events = ev;
    return 1;
}

static void respond(conn *c, int status, const char *reason, const char *extra, uint64_t length)
{
    c->head_len = (size_t)snprintf(
        c->head, sizeof c->head, "HTTP/1.1 %d %s\r\n%sContent-Length: %llu\r\n%s\r\n", status, reason,
        extra ? extra : "", (unsigned long long)length, c->close_after ? "Connection: close\r\n" : "");
    c->head_off = 0;
    c->body_len = length;
}

static void respond_text(conn *c, int status, const char *reason, const char *ctype, int head_only)
{
    char extra[128];
    snprintf(extra, sizeof extra, "Content-Type: %s\r\n", ctype);
    respond(c, status, reason, extra, c->mem.len);
    if (head_only) c->body_len = 0;
}

/* Case-insensitive header value of name in the head block h[0..n) (NUL-terminated into out). */
static int header_value(const char *h, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = memchr(h, '\n', n);
    const char *end = h + n;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (vl >= cap) return 0;
            memcpy(out, v, vl);
            out[vl] = 0;
            return 1;
        }
        p = eol;
    }
    return 0;
}

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against size into [*a, *b]; 0 when it does not parse
 * (the whole object is served), -1 when unsatisfiable (a >= size), 1 when fine. */
static int parse_range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    if (strncmp(v, "bytes=", 6)) return 0;
    v += 6;
    char *end;
    if (*v == '-') {
        if (v[1] < '0' || v[1] > '9') return 0;
        unsigned long long n = strtoull(v + 1, &end, 10);
        if (*end || n == 0) return 0;
        if (size == 0) return -1;
        *a = n >= size ? 0 : size - n;
        *b = size - 1;
        return 1;
    }
    if (*v < '0' || *v > '9') return 0;
    unsigned long long x = strtoull(v, &end, 10), y;
    if (*end != '-') return 0;
    v = end + 1;
    if (*v == 0) {
        y = UINT64_MAX;
    } else {
        if (*v < '0' || *v > '9') return 0;
        y = strtoull(v, &end, 10);
        if (*end || y < x) return 0;
    }
    if (x >= size) return -1;
    *a = x;
    *b = y < size - 1 ? y : size - 1;
    return 1;
}

/* Clears the previous response; the next one may start at start_ns. */
static void resp_reset(conn *c, uint64_t start_ns)
{
    c->mem.len = 0;
    c->file_fd = -1;
    c->file_off = 0;
    c->body_len = c->body_sent = 0;
    c->counted = 0;
    c->released = 0;
    c->next_len = 0;
    c->start_ns = start_ns;
    c->due_ns = 0;
    c->state = C_SEND;
}

/* Handles the request whose head is c->in[0..head_n) (ending in CRLFCRLF); sets up the response. */
static void handle_request(server *s, conn *c, size_t head_n, uint64_t arrived)
{
    origin *o = s->o;
    const char *h = (const char *)c->in;
    const char *sp1 = memchr(h, ' ', head_n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_n - (size_t)(sp1 + 1 - h)) : NULL;
    resp_reset(c, arrived + (uint64_t)o->latency_ns);
    char cl[32];
    if (!sp1 || !sp2 ||
        (header_value(h, head_n, "content-length", cl, sizeof cl) && strtoull(cl, NULL, 10) > 0)) {
        c->close_after = 1; /* bodies are not read: answer and close */
        text_str(&c->mem, "<Error><Code>NotImplemented</Code><Message>no request bodies</Message></Error>");
        respond_text(c, 501, "Not Implemented", "application/xml", 0);
        return;
    }
    size_t ml = (size_t)(sp1 - h);
    int is_head = ml == 4 && !memcmp(h, "HEAD", 4);
    if (!is_head && !(ml == 3 && !memcmp(h, "GET", 3))) {
        c->close_after = 1;
        text_str(&c->mem, "<Error><Code>NotImplemented</Code><Message>GET and HEAD only</Message></Error>");
        respond_text(c, 501, "Not Implemented", "application/xml", is_head);
        return;
    }
    const char *target = sp1 + 1;
    size_t tl = (size_t)(sp2 - target);
    const char *qm = memchr(target, '?', tl);
    size_t pathl = qm ? (size_t)(qm - target) : tl;
    const char *q = qm ? qm + 1 : "";
    size_t qn = qm ? tl - pathl - 1 : 0;
    char key[KEY_MAX];
    if (!url_decode(target, pathl, 0, key, sizeof key)) {
        text_str(&c->mem, "<Error><Code>KeyTooLongError</Code><Message>bad key</Message></Error>");
        respond_text(c, 400, "Bad Request", "application/xml", is_head);
        return;
    }
    const char *k = key;
    while (*k == '/') k++;
    char lt[8];
    size_t kl = strlen(k);
    while (kl && k[kl - 1] == '/') kl--;
    if (query_param(q, qn, "list-type", lt, sizeof lt) && !strcmp(lt, "2") && !memchr(k, '/', kl)) {
        char bucket[KEY_MAX];
        memcpy(bucket, k, kl);
        bucket[kl] = 0;
        list_objects(o, bucket, q, qn, &c->mem);
        o->requests++;
        respond_text(c, 200, "OK", "application/xml", is_head);
        return;
    }
    if (!strcmp(k, "_origin/stats") || !strcmp(k, "_origin/reset")) {
        if (!strcmp(k, "_origin/reset")) o->requests = o->bytes_sent = 0;
        char js[128];
        snprintf(js, sizeof js, "{\"requests\": %llu, \"bytes\": %llu}", (unsigned long long)o->requests,
                 (unsigned long long)o->bytes_sent);
        text_str(&c->mem, js);
        c->start_ns = arrived; /* the harness's own calls are not modelled */
        respond_text(c, 200, "OK", "application/json", is_head);
        return;
    }
    o->requests++;
    object *ob = obj_find(o, k);
    if (!ob) {
        text_str(&c->mem, "<Error><Code>NoSuchKey</Code><Message>not found</Message></Error>");
        respond_text(c, 404, "Not Found", "application/xml", is_head);
        return;
    }
    char extra[256], rv[128];
    uint64_t a = 0, b = ob->size ? ob->size - 1 : 0;
    int r = header_value(h, head_n, "range", rv, sizeof rv) ? parse_range(rv, ob->size, &a, &b) : 0;
    if (r < 0) {
        text_str(&c->mem, "<Error><Code>InvalidRange</Code><Message>bad</Message></Error>");
        respond_text(c, 416, "Range Not Satisfiable", "application/xml", is_head);
        return;
    }
    if (r > 0) {
        snprintf(extra, sizeof extra, "ETag: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n", ob->etag,
                 (unsigned long long)a, (unsigned long long)b, (unsigned long long)ob->size);
        respond(c, 206, "Partial Content", extra, b + 1 - a);
    } else {
        snprintf(extra, sizeof extra, "ETag: %s\r\n", ob->etag);
        respond(c, 200, "OK", extra, ob->size);
        a = 0;
    }
    if (is_head) {
        c->body_len = 0;
        return;
    }
    c->file_fd = ob->fd;
    c->file_off = a;
    c->counted = 1;
}

/* Sends what the model allows now; sets c->due_ns when it must wait for time. Returns 0 when the
 * connection must be closed. */
static int conn_pump(server *s, conn *c, uint64_t now)
{
    origin *o = s->o;
    c->due_ns = 0;
    if (now < c->start_ns) {
        c->due_ns = c->start_ns;
        return conn_want(s, c, 0);
    }
    while (c->head_off < c->head_len) {
        int more = c->body_len && !o->rate ? MSG_MORE : 0;
        ssize_t w = send(c->fd, c->head + c->head_off, c->head_len - c->head_off, MSG_NOSIGNAL | more);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return conn_want(s, c, EPOLLOUT);
        if (w <= 0) return 0;
        c->head_off += (size_t)w;
    }
    while (c->body_sent < c->body_len) {
        if (c->released == c->body_sent) { /* release the next chunk when its last byte crossed the link */
            if (!c->next_len) {
                uint64_t left = c->body_len - c->released;
                if (o->rate) {
                    c->next_len = left < o->chunk ? left : o->chunk;
                    double from =
                        c->link_free_ns > (double)c->start_ns ? c->link_free_ns : (double)c->start_ns;
                    c->link_free_ns = from + (double)c->next_len / o->rate;
                    c->next_at = (uint64_t)(c->link_free_ns + 0.999);
                } else {
                    c->next_len = left;
                    c->next_at = 0;
                }
            }
            if (c->next_at > now) {
                c->due_ns = c->next_at;
                return conn_want(s, c, 0);
            }
            c->released += c->next_len;
            c->next_len = 0;
        }
        size_t n = (size_t)(c->released - c->body_sent);
        ssize_t w;
        if (c->file_fd >= 0) {
            off_t off = (off_t)(c->file_off + c->body_sent);
            w = sendfile(c->fd, c->file_fd, &off, n);
        } else {
            w = send(c->fd, c->mem.p + c->body_sent, n, MSG_NOSIGNAL);
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return conn_want(s, c, EPOLLOUT);
        if (w <= 0) return 0;
        c->body_sent += (uint64_t)w;
        if (c->counted) o->bytes_sent += (uint64_t)w;
    }
    /* the response is out */
    if (c->close_after) return 0;
    c->state = C_READ;
    return conn_want(s, c, EPOLLIN | EPOLLRDHUP);
}

/* Sends what may be sent now and starts the requests waiting in c->in, one at a time; 0 when the
 * connection must be closed. */
static int conn_drive(server *s, conn *c, uint64_t now)
{
    if (c->state == C_SEND && !conn_pump(s, c, now)) return 0;
    while (c->state == C_READ) {
        uint8_t *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!e && c->in_len < IN_MAX) return 1;
        if (!e) { /* a head larger than IN_MAX */
            c->close_after = 1;
            c->in_len = 0;
            resp_reset(c, now);
            respond(c, 431, "Request Header Fields Too Large", NULL, 0);
        } else {
            size_t head_n = (size_t)(e + 4 - c->in);
            handle_request(s, c, head_n, now);
            memmove(c->in, c->in + head_n, c->in_len - head_n);
            c->in_len -= head_n;
        }
        if (!conn_pump(s, c, now)) return 0;
    }
    return 1;
}

static int conn_read(server *s, conn *c, uint64_t now)
{
    while (c->in_len < IN_MAX) {
        ssize_t r = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) return 0;
        c->in_len += (size_t)r;
    }
    return conn_drive(s, c, now);
}

static void accept_all(server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        size_t slot = CONN_MAX;
        for (size_t i = 0; i < CONN_MAX && slot == CONN_MAX; i++)
            if (!s->conns[i]) slot = i;
        conn *c = slot < CONN_MAX ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->file_fd = -1;
        c->state = C_READ;
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event e = {.events = c->events, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            free(c);
            continue;
        }
        s->conns[slot] = c;
    }
}

/* Arms the timerfd at the earliest due time (or disarms it). */
static void arm_timer(server *s)
{
    uint64_t next = 0;
    for (size_t i = 0; i < CONN_MAX; i++) {
        conn *c = s->conns[i];
        if (c && c->due_ns && (!next || c->due_ns < next)) next = c->due_ns;
    }
    if (next == s->armed_ns) return;
    struct itimerspec its = {{0, 0}, {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)}};
    if (timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) s->armed_ns = next;
}

static int serve(server *s)
{
    struct epoll_event ev[EVENT_MAX];
    for (;;) {
        arm_timer(s);
        int n = epoll_wait(s->ep, ev, EVENT_MAX, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 0;
        uint64_t now = now_ns();
        int timer = 0;
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &s->lfd) {
                accept_all(s);
            } else if (p == &s->sfd) {
                return 1;
            } else if (p == &s->tfd) {
                uint64_t exp;
                if (read(s->tfd, &exp, sizeof exp) < 0) { /* nothing: re-armed below */
                }
                s->armed_ns = 0;
                timer = 1;
            } else {
                conn *c = p;
                int ok = 1;
                if (ev[i].events & (EPOLLERR | EPOLLHUP)) ok = 0;
                if (ok && (ev[i].events & EPOLLOUT) && c->state == C_SEND) ok = conn_drive(s, c, now);
                if (ok && (ev[i].events & (EPOLLIN | EPOLLRDHUP)) && c->state == C_READ)
                    ok = conn_read(s, c, now);
                if (!ok) conn_close(s, c);
            }
        }
        if (!timer) continue;
        now = now_ns();
        for (size_t i = 0; i < CONN_MAX; i++) {
            conn *c = s->conns[i];
            if (!c || !c->due_ns || c->due_ns > now) continue;
            if (!conn_drive(s, c, now)) conn_close(s, c);
        }
    }
}

/* ---- main --------------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: s3model_origin --dir BUCKET=FOLDER [--dir ...] [--latency-ms MS] "
                    "[--bandwidth-mbps MBPS] [--chunk-kib KIB] [--port PORT]\n");
    return 2;
}

int main(int argc, char **argv)
{
    origin o = {0};
    server s = {.o = &o, .ep = -1, .lfd = -1, .tfd = -1, .sfd = -1};
    double latency_ms = 0, mbps = 0, chunk_kib = 64;
    int port = 0, rc = 1;
    o.objs = calloc(OBJ_MAX, sizeof *o.objs);
    if (!o.objs) return 1;
    int ndirs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            rc = usage();
            goto out;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--dir")) {
            const char *eq = strchr(v, '=');
            char bucket[256];
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof bucket) {
                rc = usage();
                goto out;
            }
            memcpy(bucket, v, (size_t)(eq - v));
            bucket[eq - v] = 0;
            if (strchr(bucket, '/') || !add_folder(&o, bucket, eq + 1, "")) goto out;
            ndirs++;
        } else if (!strcmp(a, "--latency-ms")) {
            latency_ms = strtod(v, NULL);
        } else if (!strcmp(a, "--bandwidth-mbps")) {
            mbps = strtod(v, NULL);
        } else if (!strcmp(a, "--chunk-kib")) {
            chunk_kib = strtod(v, NULL);
        } else if (!strcmp(a, "--port")) {
            port = atoi(v);
        } else {
            rc = usage();
            goto out;
        }
    }
    if (!ndirs || latency_ms < 0 || mbps < 0 || chunk_kib < 1 || chunk_kib > 1 << 20 || port < 0 ||
        port > 65535) {
        rc = usage();
        goto out;
    }
    qsort(o.objs, o.nobj, sizeof *o.objs, obj_cmp);
    o.latency_ns = latency_ms * 1e6;
    o.rate = mbps * 1e6 / 1e9;
    o.chunk = (size_t)(chunk_kib * 1024);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    s.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.sfd < 0 || s.tfd < 0 || s.ep < 0 || s.lfd < 0) {
        perror("s3model_origin: setup");
        goto out;
    }
    int one = 1;
    setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(s.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s.lfd, 1024) != 0 ||
        getsockname(s.lfd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("s3model_origin: listen");
        goto out;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s.lfd};
    struct epoll_event et = {.events = EPOLLIN, .data.ptr = &s.tfd};
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &s.sfd};
    if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &e) || epoll_ctl(s.ep, EPOLL_CTL_ADD, s.tfd, &et) ||
        epoll_ctl(s.ep, EPOLL_CTL_ADD, s.sfd, &es)) {
        perror("s3model_origin: epoll");
        goto out;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    rc = serve(&s) ? 0 : 1;
out:
    for (size_t i = 0; i < CONN_MAX; i++)
        if (s.conns[i]) conn_close(&s, s.conns[i]);
    for (size_t i = 0; i < o.nobj; i++) {
        close(o.objs[i].fd);
        free(o.objs[i].key);
    }
    free(o.objs);
    if (s.lfd >= 0) close(s.lfd);
    if (s.tfd >= 0) close(s.tfd);
    if (s.sfd >= 0) close(s.sfd);
    if (s.ep >= 0) close(s.ep);
    return rc;
}
