/* s3/s3_sigv4.c: AWS Signature Version 4 (see s3_sigv4.h). OpenSSL errors stop here. */
#include "s3/s3_sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUERY_PAIRS 128
#define ALGORITHM       "AWS4-HMAC-SHA256"

void s3_sigv4_out_init(s3_sigv4_out *out)
{
    memset(out->amz_date, 0, sizeof out->amz_date);
    memset(out->signature, 0, sizeof out->signature);
    s3v_buf_init(&out->canonical_request, S3_SIGV4_TEXT_MAX);
    s3v_buf_init(&out->string_to_sign, S3_SIGV4_TEXT_MAX);
    s3v_buf_init(&out->result, S3_SIGV4_TEXT_MAX);
}

void s3_sigv4_out_free(s3_sigv4_out *out)
{
    if (!out) return;
    s3v_buf_free(&out->canonical_request);
    s3v_buf_free(&out->string_to_sign);
    s3v_buf_free(&out->result);
}

static int is_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

s3v_status s3_sigv4_uri_encode(s3v_buf *out, const uint8_t *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    S3V_TRY(s3v_buf_reserve(out, len));
    size_t run = 0; /* s[run..i) are bytes that stay: appended in one piece */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) continue;
        S3V_TRY(s3v_buf_append(out, s + run, i - run));
        uint8_t e[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
        S3V_TRY(s3v_buf_append(out, e, 3));
        run = i + 1;
    }
    return s3v_buf_append(out, s + run, len - run);
}

static void to_hex(const uint8_t *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- SHA-256 and HMAC-SHA256 ------------------------------------------------------------------
 * OpenSSL 3's one-shot HMAC() and EVP_sha256() look the algorithm up in the provider store on every
 * call (HMAC() builds and frees a whole EVP_MAC context), which made signing a ranged GET cost about
 * 46 us. The digest is fetched once per process here, and HMAC (RFC 2104) is two digests over the
 * padded key: the same bytes, about 10x cheaper. */

static const EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* kept for the process */
#endif
    if (!sha256_md) sha256_md = EVP_sha256();
}

/* SHA-256 of the concatenation of up to two pieces. */
static s3v_status sha256_2(const void *a, size_t a_len, const void *b, size_t b_len, uint8_t out[32])
{
    pthread_once(&sha256_once, sha256_fetch);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, sha256_md, NULL) == 1 && EVP_DigestUpdate(ctx, a, a_len) == 1 &&
             (!b_len || EVP_DigestUpdate(ctx, b, b_len) == 1) && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
             n == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? S3V_OK : s3v_errorf(S3V_ERR_INTERNAL, "SHA-256 failed in libcrypto");
}

s3v_status s3_sigv4_sha256_hex(const uint8_t *data, size_t size, char hex[65])
{
    uint8_t md[32];
    S3V_TRY(sha256_2(data ? data : (const uint8_t *)"", size, NULL, 0, md));
    to_hex(md, 32, hex);
    return S3V_OK;
}

static s3v_status hmac(const uint8_t *key, size_t key_len, const void *msg, size_t msg_len, uint8_t out[32])
{
    uint8_t k[64], pad[64], inner[32];
    memset(k, 0, sizeof k);
    s3v_status st = S3V_OK;
    if (key_len > sizeof k)
        st = sha256_2(key, key_len, NULL, 0, k);
    else
        memcpy(k, key, key_len);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    if (st == S3V_OK) st = sha256_2(pad, 64, msg, msg_len, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    if (st == S3V_OK) st = sha256_2(pad, 64, inner, 32, out);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    return st;
}

s3v_status s3_sigv4_signing_key(const char *secret_access_key, const char *date8, const char *region,
                                const char *service, uint8_t key[32])
{
    uint8_t k_secret[256 + 4], k_date[32], k_region[32], k_service[32];
    size_t slen = secret_access_key ? strlen(secret_access_key) : 0;
    if (!slen || slen > 256 || !date8 || strlen(date8) < 8 || !region || !service)
        return s3v_errorf(S3V_ERR_INVALID, "cannot derive a signing key: missing or oversized input");
    memcpy(k_secret, "AWS4", 4);
    memcpy(k_secret + 4, secret_access_key, slen);
    s3v_status st = hmac(k_secret, slen + 4, date8, 8, k_date);
    if (st == S3V_OK) st = hmac(k_date, 32, region, strlen(region), k_region);
    if (st == S3V_OK) st = hmac(k_region, 32, service, strlen(service), k_service);
    if (st == S3V_OK) st = hmac(k_service, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k_secret, sizeof k_secret);
    OPENSSL_cleanse(k_date, sizeof k_date);
    OPENSSL_cleanse(k_region, sizeof k_region);
    OPENSSL_cleanse(k_service, sizeof k_service);
    return st;
}

void s3_sigv4_amz_date(int64_t unix_time, char out[17])
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- canonical URI ---------------------------------------------------------------------------- */

/* Appends the canonical (encoded, optionally normalized) path. */
static s3v_status canonical_path(s3v_buf *out, const char *path, int normalize)
{
    if (!path || !*path) return s3v_buf_append_str(out, "/");
    if (!normalize) return s3_sigv4_uri_encode(out, (const uint8_t *)path, strlen(path), 1);
    /* Remove dot segments and empty segments; keep a trailing slash. Segment stack kept as offsets. */
    size_t len = strlen(path);
    size_t seg_start[256], nseg = 0, seg_len[256];
    size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/') i++;
        size_t s = i;
        while (i < len && path[i] != '/') i++;
        size_t n = i - s;
        if (n == 0 || (n == 1 && path[s] == '.')) continue;
        if (n == 2 && path[s] == '.' && path[s + 1] == '.') {
            if (nseg) nseg--;
            continue;
        }
        if (nseg == 256) return s3v_errorf(S3V_ERR_INVALID, "path has too many segments to normalize");
        seg_start[nseg] = s;
        seg_len[nseg++] = n;
    }
    S3V_TRY(s3v_buf_append_str(out, "/"));
    for (size_t k = 0; k < nseg; k++) {
        if (k) S3V_TRY(s3v_buf_append_str(out, "/"));
        S3V_TRY(s3_sigv4_uri_encode(out, (const uint8_t *)path + seg_start[k], seg_len[k], 1));
    }
    if (nseg && path[len - 1] == '/') S3V_TRY(s3v_buf_append_str(out, "/"));
    return S3V_OK;
}

/* ---- canonical query -------------------------------------------------------------------------- */

typedef struct qpair {
    char *name; /* canonical (encoded) */
    char *value;
} qpair;

typedef struct qlist {
    qpair p[MAX_QUERY_PAIRS];
    size_t n;
} qlist;

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (s, n) and re-encodes canonically into a new string. */
static s3v_status reencode(const char *s, size_t n, int decode, char **out)
{
    s3v_buf dec, enc;
    s3v_buf_init(&dec, S3_SIGV4_TEXT_MAX);
    s3v_buf_init(&enc, S3_SIGV4_TEXT_MAX);
    s3v_status st = S3V_OK;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (decode && c == '%') {
            if (i + 2 >= n) {
                st = s3v_errorf(S3V_ERR_INVALID, "malformed percent-escape in query");
                goto fail;
            }
            int h = hexval((uint8_t)s[i + 1]), l = hexval((uint8_t)s[i + 2]);
            if (h < 0 || l < 0) {
                st = s3v_errorf(S3V_ERR_INVALID, "malformed percent-escape in query");
                goto fail;
            }
            c = (uint8_t)(h * 16 + l);
            i += 2;
        }
        S3V_CHECK(s3v_buf_append(&dec, &c, 1));
    }
    S3V_CHECK(s3_sigv4_uri_encode(&enc, dec.ptr ? dec.ptr : (const uint8_t *)"", dec.len, 0));
    S3V_CHECK(s3v_buf_append(&enc, "", 0)); /* ensures an allocation even when empty */
    size_t sz;
    *out = (char *)s3v_buf_take(&enc, &sz);
fail:
    s3v_buf_free(&dec);
    s3v_buf_free(&enc);
    return st;
}

static void qlist_free(qlist *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].name);
        free(q->p[i].value);
    }
    q->n = 0;
}

static s3v_status qlist_add(qlist *q, const char *name, size_t name_len, const char *value, size_t value_len,
                            int decode)
{
    if (q->n == MAX_QUERY_PAIRS) return s3v_errorf(S3V_ERR_INVALID, "too many query parameters");
    char *n = NULL, *v = NULL;
    S3V_TRY(reencode(name, name_len, decode, &n));
    s3v_status st = reencode(value, value_len, decode, &v);
    if (st != S3V_OK) {
        free(n);
        return st;
    }
    q->p[q->n].name = n;
    q->p[q->n].value = v;
    q->n++;
    return S3V_OK;
}

static s3v_status qlist_parse(qlist *q, const char *query)
{
    if (!query) return S3V_OK;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n) {
            const char *eq = memchr(p, '=', n);
            if (eq)
                S3V_TRY(qlist_add(q, p, (size_t)(eq - p), eq + 1, n - (size_t)(eq - p) - 1, 1));
            else
                S3V_TRY(qlist_add(q, p, n, "", 0, 1));
        }
        p += n;
        if (*p == '&') p++;
    }
    return S3V_OK;
}

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static s3v_status qlist_emit(qlist *q, s3v_buf *out)
{
    qsort(q->p, q->n, sizeof q->p[0], qpair_cmp);
    for (size_t i = 0; i < q->n; i++) {
        if (i) S3V_TRY(s3v_buf_append_str(out, "&"));
        S3V_TRY(s3v_buf_append_str(out, q->p[i].name));
        S3V_TRY(s3v_buf_append_str(out, "="));
        S3V_TRY(s3v_buf_append_str(out, q->p[i].value));
    }
    return S3V_OK;
}

/* ---- canonical headers ------------------------------------------------------------------------ */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Case-insensitive name compare (ASCII). */
static int name_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y || !x) return x - y;
    }
}

static s3v_status append_lower(s3v_buf *out, const char *s)
{
    size_t n = strlen(s);
    S3V_TRY(s3v_buf_reserve(out, n));
    uint8_t *d = out->ptr + out->len;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        d[i] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
    }
    out->len += n;
    out->ptr[out->len] = 0;
    return S3V_OK;
}

/* Trimmed value with runs of white space collapsed to one space. */
static s3v_status append_trimmed(s3v_buf *out, const char *v)
{
    while (is_space(*v)) v++;
    while (*v) { /* a word, then its run of white space becomes one space unless it ends the value */
        const char *w = v;
        while (*v && !is_space(*v)) v++;
        S3V_TRY(s3v_buf_append(out, w, (size_t)(v - w)));
        while (is_space(*v)) v++;
        if (*v) S3V_TRY(s3v_buf_append(out, " ", 1));
    }
    return S3V_OK;
}

static s3v_status check_header_name(const char *name)
{
    if (!name || !*name) return s3v_errorf(S3V_ERR_INVALID, "empty header name");
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f)
            return s3v_errorf(S3V_ERR_INVALID, "bad character in header name");
    return S3V_OK;
}

/* Writes the canonical header block (each "name:value\n") and the signed header list. */
static s3v_status canonical_headers(const s3_sigv4_header *h, size_t n, s3v_buf *block, s3v_buf *signed_list)
{
    size_t order[S3_SIGV4_MAX_HEADERS + 4];
    for (size_t i = 0; i < n; i++) {
        S3V_TRY(check_header_name(h[i].name));
        if (!h[i].value) return s3v_errorf(S3V_ERR_INVALID, "header without a value");
        /* stable insertion sort by lower-case name */
        size_t j = i;
        while (j > 0 && name_cmp(h[order[j - 1]].name, h[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t i = 0; i < n;) {
        const char *name = h[order[i]].name;
        if (signed_list->len) S3V_TRY(s3v_buf_append_str(signed_list, ";"));
        S3V_TRY(append_lower(signed_list, name));
        S3V_TRY(append_lower(block, name));
        S3V_TRY(s3v_buf_append_str(block, ":"));
        size_t j = i;
        for (; j < n && name_cmp(h[order[j]].name, name) == 0; j++) {
            if (j > i) S3V_TRY(s3v_buf_append_str(block, ","));
            S3V_TRY(append_trimmed(block, h[order[j]].value));
        }
        S3V_TRY(s3v_buf_append_str(block, "\n"));
        i = j;
    }
    return S3V_OK;
}

/* ---- signing ---------------------------------------------------------------------------------- */

static s3v_status check_inputs(const s3_sigv4_req *req, const s3_sigv4_creds *creds,
                               const s3_sigv4_opts *opts)
{
    if (!req || !creds || !opts || !req->method || !*req->method || !req->payload_hash)
        return s3v_errorf(S3V_ERR_INVALID, "incomplete request to sign");
    if (!creds->access_key_id || !*creds->access_key_id || !creds->secret_access_key ||
        !*creds->secret_access_key)
        return s3v_errorf(S3V_ERR_INVALID, "no credentials to sign with");
    if (!opts->region || !*opts->region || !opts->service || !*opts->service)
        return s3v_errorf(S3V_ERR_INVALID, "region and service are required to sign");
    if (req->header_count > S3_SIGV4_MAX_HEADERS)
        return s3v_errorf(S3V_ERR_INVALID, "too many headers to sign");
    if (req->header_count && !req->headers) return s3v_errorf(S3V_ERR_INVALID, "headers missing");
    return S3V_OK;
}

/* Builds the string to sign from the canonical request and computes the signature. */
static s3v_status finish(const s3_sigv4_creds *creds, const s3_sigv4_opts *opts, const uint8_t *signing_key,
                         const char *scope, s3_sigv4_out *out)
{
    char creq_hash[65];
    S3V_TRY(s3_sigv4_sha256_hex(out->canonical_request.ptr, out->canonical_request.len, creq_hash));
    S3V_TRY(s3v_buf_printf(&out->string_to_sign, ALGORITHM "\n%s\n%s\n%s", out->amz_date, scope, creq_hash));

    if (strlen(creds->secret_access_key) > 256)
        return s3v_errorf(S3V_ERR_INVALID, "secret access key too long");
    uint8_t k_signing[32], sig[32];
    s3v_status st = S3V_OK;
    if (signing_key)
        memcpy(k_signing, signing_key, 32);
    else
        st = s3_sigv4_signing_key(creds->secret_access_key, out->amz_date, opts->region, opts->service,
                                  k_signing);
    if (st == S3V_OK) st = hmac(k_signing, 32, out->string_to_sign.ptr, out->string_to_sign.len, sig);
    OPENSSL_cleanse(k_signing, sizeof k_signing);
    S3V_TRY(st);
    to_hex(sig, 32, out->signature);
    return S3V_OK;
}

static void reset_out(s3_sigv4_out *out)
{
    s3v_buf_reset(&out->canonical_request);
    s3v_buf_reset(&out->string_to_sign);
    s3v_buf_reset(&out->result);
    out->signature[0] = 0;
}

s3v_status s3_sigv4_sign(const s3_sigv4_req *req, const s3_sigv4_creds *creds, const s3_sigv4_opts *opts,
                         s3_sigv4_out *out)
{
    return s3_sigv4_sign_with_key(req, creds, opts, NULL, out);
}

s3v_status s3_sigv4_sign_with_key(const s3_sigv4_req *req, const s3_sigv4_creds *creds,
                                  const s3_sigv4_opts *opts, const uint8_t *signing_key, s3_sigv4_out *out)
{
    S3V_TRY(check_inputs(req, creds, opts));
    reset_out(out);
    s3_sigv4_amz_date(opts->unix_time, out->amz_date);
    int has_token = creds->session_token && *creds->session_token;

    s3_sigv4_header all[S3_SIGV4_MAX_HEADERS + 3];
    size_t n = 0;
    for (size_t i = 0; i < req->header_count; i++) all[n++] = req->headers[i];
    all[n++] = (s3_sigv4_header){"x-amz-date", out->amz_date};
    if (opts->content_sha256_header) all[n++] = (s3_sigv4_header){"x-amz-content-sha256", req->payload_hash};
    if (has_token && !opts->omit_session_token)
        all[n++] = (s3_sigv4_header){"x-amz-security-token", creds->session_token};

    char scope[256];
    int sn =
        snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request", out->amz_date, opts->region, opts->service);
    if (sn < 0 || (size_t)sn >= sizeof scope)
        return s3v_errorf(S3V_ERR_INVALID, "region or service too long");

    s3v_status st = S3V_OK;
    qlist q = {.n = 0};
    s3v_buf block, signed_list;
    s3v_buf_init(&block, S3_SIGV4_TEXT_MAX);
    s3v_buf_init(&signed_list, S3_SIGV4_TEXT_MAX);
    s3v_buf *cr = &out->canonical_request;
    S3V_CHECK(s3v_buf_printf(cr, "%s\n", req->method));
    S3V_CHECK(canonical_path(cr, req->path, opts->normalize_path));
    S3V_CHECK(s3v_buf_append_str(cr, "\n"));
    S3V_CHECK(qlist_parse(&q, req->query));
    S3V_CHECK(qlist_emit(&q, cr));
    S3V_CHECK(s3v_buf_append_str(cr, "\n"));
    S3V_CHECK(canonical_headers(all, n, &block, &signed_list));
    S3V_CHECK(s3v_buf_printf(cr, "%s\n%s\n%s", block.ptr ? (char *)block.ptr : "",
                             signed_list.ptr ? (char *)signed_list.ptr : "", req->payload_hash));
    S3V_CHECK(finish(creds, opts, signing_key, scope, out));
    S3V_CHECK(s3v_buf_printf(&out->result, ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                             creds->access_key_id, scope, (char *)signed_list.ptr, out->signature));
fail:
    qlist_free(&q);
    s3v_buf_free(&block);
    s3v_buf_free(&signed_list);
    return st;
}

s3v_status s3_sigv4_presign(const s3_sigv4_req *req, const s3_sigv4_creds *creds, const s3_sigv4_opts *opts,
                            uint32_t expires_s, s3_sigv4_out *out)
{
    S3V_TRY(check_inputs(req, creds, opts));
    if (expires_s < 1 || expires_s > 604800)
        return s3v_errorf(S3V_ERR_INVALID, "presign expiry out of range");
    reset_out(out);
    s3_sigv4_amz_date(opts->unix_time, out->amz_date);
    int has_token = creds->session_token && *creds->session_token;

    char scope[256], credential[512], expires[16];
    int sn =
        snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request", out->amz_date, opts->region, opts->service);
    if (sn < 0 || (size_t)sn >= sizeof scope)
        return s3v_errorf(S3V_ERR_INVALID, "region or service too long");
    sn = snprintf(credential, sizeof credential, "%s/%s", creds->access_key_id, scope);
    if (sn < 0 || (size_t)sn >= sizeof credential)
        return s3v_errorf(S3V_ERR_INVALID, "access key id too long");
    snprintf(expires, sizeof expires, "%u", expires_s);

    s3v_status st = S3V_OK;
    qlist q = {.n = 0};
    s3v_buf block, signed_list;
    s3v_buf_init(&block, S3_SIGV4_TEXT_MAX);
    s3v_buf_init(&signed_list, S3_SIGV4_TEXT_MAX);
    S3V_CHECK(canonical_headers(req->headers, req->header_count, &block, &signed_list));
    S3V_CHECK(qlist_parse(&q, req->query));
#define ADD(k, v) S3V_CHECK(qlist_add(&q, k, strlen(k), v, strlen(v), 0))
    ADD("X-Amz-Algorithm", ALGORITHM);
    ADD("X-Amz-Credential", credential);
    ADD("X-Amz-Date", out->amz_date);
    ADD("X-Amz-Expires", expires);
    if (has_token && !opts->omit_session_token) ADD("X-Amz-Security-Token", creds->session_token);
    ADD("X-Amz-SignedHeaders", signed_list.ptr ? (char *)signed_list.ptr : "");
    s3v_buf *cr = &out->canonical_request;
    S3V_CHECK(s3v_buf_printf(cr, "%s\n", req->method));
    S3V_CHECK(canonical_path(cr, req->path, opts->normalize_path));
    S3V_CHECK(s3v_buf_append_str(cr, "\n"));
    S3V_CHECK(qlist_emit(&q, cr));
    S3V_CHECK(s3v_buf_printf(cr, "\n%s\n%s\n%s", block.ptr ? (char *)block.ptr : "",
                             signed_list.ptr ? (char *)signed_list.ptr : "", req->payload_hash));
    S3V_CHECK(finish(creds, opts, NULL, scope, out));
    S3V_CHECK(qlist_emit(&q, &out->result));
    if (has_token && opts->omit_session_token) {
        qlist_free(&q);
        ADD("X-Amz-Security-Token", creds->session_token);
        S3V_CHECK(s3v_buf_append_str(&out->result, "&"));
        S3V_CHECK(qlist_emit(&q, &out->result));
    }
#undef ADD
    S3V_CHECK(s3v_buf_printf(&out->result, "&X-Amz-Signature=%s", out->signature));
fail:
    qlist_free(&q);
    s3v_buf_free(&block);
    s3v_buf_free(&signed_list);
    return st;
}
