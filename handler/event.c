/* handler/event.c: Lambda event shape detection and request extraction. */
#include "handler/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hd_event_kind_name(hd_event_kind k)
{
    switch (k) {
    case HD_EVENT_REST_V1: return "rest-v1";
    case HD_EVENT_HTTP_V2: return "http-v2";
    case HD_EVENT_FUNCTION_URL: return "function-url";
    default: return "direct";
    }
}

void hd_event_free(hd_event *ev)
{
    if (!ev) return;
    cJSON_Delete(ev->root);
    cJSON_Delete(ev->body);
    cJSON_Delete(ev->empty);
    memset(ev, 0, sizeof *ev);
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

size_t hd_base64_decode(const char *in, size_t n, uint8_t *out)
{
    while (n > 0 && in[n - 1] == '=') n--; /* padding is optional */
    if (n % 4 == 1) return (size_t)-1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) return (size_t)-1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o;
}

/* Describes where and why cJSON stopped, for the error message. */
static void parse_failure(const char *what, const char *text, size_t n, const char *stop, hd_error *err)
{
    size_t at = stop && stop >= text && stop <= text + n ? (size_t)(stop - text) : 0;
    const char *hint = "";
    const char *s = text + at;
    size_t left = n - at;
    if ((left >= 3 && memcmp(s, "NaN", 3) == 0) || (left >= 8 && memcmp(s, "Infinity", 8) == 0) ||
        (left >= 9 && memcmp(s, "-Infinity", 9) == 0))
        hint = " (NaN and Infinity are not JSON numbers; vectors must hold finite numbers)";
    else if (at + 1 >= n)
        hint = " (unexpected end of input)";
    hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID, "%s is not valid JSON: syntax error at byte %zu%s",
               what, at, hint);
}

/* Parses exactly one JSON value (whitespace around it allowed) from (p, n). */
static s3v_status parse_json(const char *what, const char *p, size_t n, cJSON **out, hd_error *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, n, &end, 0);
    if (!j) {
        parse_failure(what, p, n, end, err);
        return S3V_ERR_INVALID;
    }
    for (const char *q = end; q && q < p + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(j);
            return hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID,
                              "%s is not valid JSON: unexpected data after the value at byte %zu", what,
                              (size_t)(q - p));
        }
    }
    *out = j;
    return S3V_OK;
}

static const char *get_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parses the body member of an HTTP event or a direct payload into ev->body. */
static s3v_status parse_body(hd_event *ev, const cJSON *holder, hd_error *err)
{
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(holder, "body");
    if (!body || cJSON_IsNull(body)) return S3V_OK;
    if (cJSON_IsObject(body)) {
        ev->request = body;
        return S3V_OK;
    }
    if (!cJSON_IsString(body))
        return hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID,
                          "the event's body must be a string (or, for a direct invocation, an object)");
    const char *s = body->valuestring;
    size_t n = strlen(s);
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(holder, "isBase64Encoded");
    uint8_t *decoded = NULL;
    if (cJSON_IsTrue(b64)) {
        decoded = malloc(n / 4 * 3 + 4);
        if (!decoded)
            return hd_err_set(err, HD_ERR_INTERNAL, S3V_ERR_NOMEM, "out of memory decoding the body");
        size_t m = hd_base64_decode(s, n, decoded);
        if (m == (size_t)-1) {
            free(decoded);
            return hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID,
                              "the body is marked isBase64Encoded but is not valid base64");
        }
        s = (const char *)decoded;
        n = m;
    }
    size_t lead = 0;
    while (lead < n && (s[lead] == ' ' || s[lead] == '\t' || s[lead] == '\n' || s[lead] == '\r')) lead++;
    s3v_status st = S3V_OK;
    if (lead < n) {
        st = parse_json("the request body", s, n, &ev->body, err);
        if (st == S3V_OK && !cJSON_IsObject(ev->body))
            st =
                hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID, "the request body must be a JSON object");
        if (st == S3V_OK) ev->request = ev->body;
    }
    free(decoded);
    return st;
}

static void copy_upper(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        char c = src[i];
        dst[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    dst[i] = 0;
}

/* The operation from an HTTP path: the last non-empty segment. */
static void operation_from_path(hd_event *ev, const char *path)
{
    if (!path) return;
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    if (n - s >= sizeof ev->operation) return; /* too long to be an operation: stays unknown */
    memcpy(ev->operation, path + s, n - s);
    ev->operation[n - s] = 0;
}

static void set_operation(hd_event *ev, const char *op)
{
    if (op && strlen(op) < sizeof ev->operation) snprintf(ev->operation, sizeof ev->operation, "%s", op);
}

static hd_error_mode parse_error_mode(const char *s)
{
    if (!s) return HD_ERROR_MODE_DEFAULT;
    if (strcmp(s, "payload") == 0) return HD_ERROR_MODE_PAYLOAD;
    if (strcmp(s, "function") == 0) return HD_ERROR_MODE_FUNCTION;
    return HD_ERROR_MODE_DEFAULT;
}

s3v_status hd_event_decode(const uint8_t *p, size_t n, hd_event *out, hd_error *err)
{
    memset(out, 0, sizeof *out);
    err->type = HD_ERR_NONE;
    if (n > HD_EVENT_MAX_SIZE)
        return hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_TOO_LARGE,
                          "the event is %zu bytes; the limit is %u", n, HD_EVENT_MAX_SIZE);
    S3V_TRY(parse_json("the event", (const char *)p, n, &out->root, err));
    const cJSON *root = out->root;
    if (!cJSON_IsObject(root))
        return hd_err_set(err, HD_ERR_VALIDATION, S3V_ERR_INVALID, "the event must be a JSON object");
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(root, "requestContext");
    const cJSON *http = cJSON_IsObject(rc) ? cJSON_GetObjectItemCaseSensitive(rc, "http") : NULL;
    const char *version = get_str(root, "version");
    const char *http_method = get_str(root, "httpMethod");
    if (cJSON_IsObject(http) || (version && strcmp(version, "2.0") == 0 && get_str(root, "rawPath"))) {
        const char *domain = get_str(rc, "domainName");
        out->kind = domain && strstr(domain, ".lambda-url.") ? HD_EVENT_FUNCTION_URL : HD_EVENT_HTTP_V2;
        copy_upper(out->method, sizeof out->method, get_str(http, "method"));
        const char *path = get_str(root, "rawPath");
        operation_from_path(out, path ? path : get_str(http, "path"));
    } else if (http_method && (cJSON_IsObject(rc) || cJSON_GetObjectItemCaseSensitive(root, "resource") ||
                               cJSON_GetObjectItemCaseSensitive(root, "path"))) {
        out->kind = HD_EVENT_REST_V1;
        copy_upper(out->method, sizeof out->method, http_method);
        const char *path = get_str(root, "path");
        if (!path) path = get_str(rc, "path");
        if (!path) path = get_str(rc, "resourcePath");
        operation_from_path(out, path);
    } else {
        out->kind = HD_EVENT_DIRECT;
    }
    if (hd_event_is_http(out->kind)) {
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "pathParameters");
        const char *op = get_str(pp, "operation");
        if (op) {
            out->operation[0] = 0;
            set_operation(out, op);
        }
        S3V_TRY(parse_body(out, root, err));
    } else {
        set_operation(out, get_str(root, "operation"));
        out->error_mode = parse_error_mode(get_str(root, "errorMode"));
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(root, "body");
        if (body && !cJSON_IsNull(body)) {
            S3V_TRY(parse_body(out, root, err));
        } else {
            out->request = root;
        }
        if (out->request && !out->operation[0]) set_operation(out, get_str(out->request, "operation"));
        if (out->request && out->error_mode == HD_ERROR_MODE_DEFAULT)
            out->error_mode = parse_error_mode(get_str(out->request, "errorMode"));
    }
    if (!out->request) {
        out->empty = cJSON_CreateObject();
        if (!out->empty) return hd_err_set(err, HD_ERR_INTERNAL, S3V_ERR_NOMEM, "out of memory");
        out->request = out->empty;
    }
    return S3V_OK;
}
