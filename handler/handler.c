/* handler/handler.c: routing, and the response shapes (proxy response, direct payload, errors). */
#include "handler/handler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/format.h"
#include "handler/handler_int.h"
#include "handler/jsonw.h"

#define BUF_KEEP_SIZE      (1u << 20) /* reusable buffers above this are released before the next event */
#define DEFAULT_RESERVE_MS 200

typedef struct op_entry {
    const char *name;
    hd_op_fn fn; /* NULL: an S3 Vectors operation this version does not serve */
    int writes;  /* served only when the configuration allows writes */
    int direct;  /* served only to direct invocations (not over HTTP) */
} op_entry;

static const op_entry OPS[] = {
    {"QueryVectors", hd_op_query_vectors, 0, 0},
    {"GetVectors", hd_op_get_vectors, 0, 0},
    {"ListVectors", hd_op_list_vectors, 0, 0},
    {"GetIndex", hd_op_get_index, 0, 0},
    {"ListIndexes", hd_op_list_indexes, 0, 0},
    {"PutVectors", hd_op_put_vectors, 1, 0},
    {"DeleteVectors", hd_op_delete_vectors, 1, 0},
    {"CreateIndex", hd_op_create_index, 1, 0},
    {"DeleteIndex", hd_op_delete_index, 1, 0},
    {"Compact", hd_op_compact, 1, 1},
    {"CreateVectorBucket", NULL, 0, 0},
    {"DeleteVectorBucket", NULL, 0, 0},
    {"GetVectorBucket", NULL, 0, 0},
    {"ListVectorBuckets", NULL, 0, 0},
    {"GetVectorBucketPolicy", NULL, 0, 0},
    {"PutVectorBucketPolicy", NULL, 0, 0},
    {"DeleteVectorBucketPolicy", NULL, 0, 0},
};

s3v_status hd_handler_new(const hd_config *cfg, s3v_storage *st, hd_handler **out)
{
    hd_handler *h = calloc(1, sizeof *h);
    if (!h) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    h->cfg = *cfg;
    if (!h->cfg.max_response_size) h->cfg.max_response_size = HD_RESPONSE_MAX;
    if (!h->cfg.deadline_reserve_ms) h->cfg.deadline_reserve_ms = DEFAULT_RESERVE_MS;
    if (h->cfg.direct_errors == HD_ERROR_MODE_DEFAULT) h->cfg.direct_errors = HD_ERROR_MODE_PAYLOAD;
    snprintf(h->region, sizeof h->region, "%s", cfg->region && *cfg->region ? cfg->region : "us-east-1");
    snprintf(h->account, sizeof h->account, "%s",
             cfg->account && *cfg->account ? cfg->account : "000000000000");
    h->cfg.region = h->region;
    h->cfg.account = h->account;
    h->st = st;
    s3v_buf_init(&h->body, h->cfg.max_response_size);
    s3v_buf_init(&h->resp, h->cfg.max_response_size);
    h->qvec = malloc(IVF_DIM_MAX * sizeof *h->qvec);
    snprintf(h->tmp_dir, sizeof h->tmp_dir, "%s", cfg->tmp_dir && *cfg->tmp_dir ? cfg->tmp_dir : "/tmp");
    h->cfg.tmp_dir = h->tmp_dir;
    hd_registry_opts ro = {cfg->cache_bytes, cfg->fresh_ms,       cfg->max_open_indexes,
                           cfg->tail_ms,     cfg->tail_max_bytes, cfg->probe_storage};
    s3v_status rc = h->qvec ? hd_registry_new(st, &ro, &h->reg) : s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    if (rc != S3V_OK) {
        free(h->qvec);
        free(h);
        return rc;
    }
    *out = h;
    return S3V_OK;
}

void hd_handler_free(hd_handler *h)
{
    if (!h) return;
    hd_registry_free(h->reg);
    s3v_buf_free(&h->body);
    s3v_buf_free(&h->resp);
    free(h->qvec);
    free(h);
}

s3v_status hd_handler_preload(hd_handler *h, const char *name, uint64_t deadline_ns)
{
    const char *slash = name ? strchr(name, '/') : NULL;
    if (!slash)
        return s3v_errorf(S3V_ERR_INVALID, "default index '%s' must be <vector bucket>/<index>",
                          name ? name : "");
    char vb[HD_NAME_MAX], idx[HD_NAME_MAX];
    size_t bl = (size_t)(slash - name), il = strlen(slash + 1);
    const char *why = hd_name_bucket_problem(name, bl);
    if (why) return s3v_errorf(S3V_ERR_INVALID, "default index '%s': vector bucket name %s", name, why);
    why = hd_name_index_problem(slash + 1, il);
    if (why) return s3v_errorf(S3V_ERR_INVALID, "default index '%s': index name %s", name, why);
    memcpy(vb, name, bl);
    vb[bl] = 0;
    memcpy(idx, slash + 1, il + 1);
    ivf_index *ix;
    return hd_registry_get(h->reg, vb, idx, deadline_ns, &ix, NULL);
}

/* Region and account of an ARN "arn:aws:lambda:<region>:<account>:function:<name>..." into the request. */
static void arn_region_account(const char *arn, char *region, size_t rcap, char *account, size_t acap)
{
    if (!arn || strncmp(arn, "arn:", 4) != 0) return;
    const char *f[5] = {0};
    const char *p = arn;
    for (int i = 0; i < 5 && p; i++) {
        f[i] = p;
        p = strchr(p, ':');
        if (p) p++;
    }
    if (!f[3] || !f[4]) return;
    size_t rl = (size_t)(f[4] - f[3] - 1);
    const char *ae = strchr(f[4], ':');
    size_t al = ae ? (size_t)(ae - f[4]) : strlen(f[4]);
    if (rl > 0 && rl < rcap) {
        memcpy(region, f[3], rl);
        region[rl] = 0;
    }
    if (al == 12 && al < acap) {
        memcpy(account, f[4], al);
        account[al] = 0;
    }
}

/* The proxy response {"statusCode", "headers", "body", "isBase64Encoded"} around `body`. */
static s3v_status wrap_proxy(hd_handler *h, const hd_invocation *inv, int status, const char *error_type,
                             const s3v_buf *body)
{
    s3v_buf *b = &h->resp;
    s3v_buf_reset(b);
    S3V_TRY(
        s3v_buf_printf(b, "{\"statusCode\":%d,\"headers\":{\"Content-Type\":\"application/json\"", status));
    if (inv && inv->request_id) {
        S3V_TRY(hd_json_raw(b, ",\"x-amzn-RequestId\":"));
        S3V_TRY(hd_json_cstr(b, inv->request_id));
    }
    if (error_type) {
        S3V_TRY(hd_json_raw(b, ",\"x-amzn-ErrorType\":"));
        S3V_TRY(hd_json_cstr(b, error_type));
    }
    S3V_TRY(hd_json_raw(b, "},\"body\":\""));
    S3V_TRY(hd_json_str_body(b, body->ptr, body->len));
    return hd_json_raw(b, "\",\"isBase64Encoded\":false}");
}

/* Builds the error response for h->err in the event's shape. */
static s3v_status build_error(hd_handler *h, const hd_invocation *inv, hd_event_kind kind, hd_error_mode mode,
                              hd_response *out)
{
    const hd_error *e = &h->err;
    const char *type = hd_err_type_name(e->type);
    int status = hd_err_http_status(e->type);
    out->http_status = status;
    out->error_type = type;
    out->error_message = e->message;
    s3v_buf_reset(&h->body);
    s3v_buf_reset(&h->resp);
    if (hd_event_is_http(kind)) {
        S3V_TRY(hd_err_body(e, &h->body));
        S3V_TRY(wrap_proxy(h, inv, status, type, &h->body));
        out->payload = h->resp.ptr;
        out->payload_size = h->resp.len;
        return S3V_OK;
    }
    if (mode == HD_ERROR_MODE_DEFAULT) mode = h->cfg.direct_errors;
    if (mode == HD_ERROR_MODE_FUNCTION) {
        out->function_error = 1;
        out->payload = NULL;
        out->payload_size = 0;
        return S3V_OK;
    }
    s3v_buf *b = &h->resp;
    S3V_TRY(hd_json_raw(b, "{\"errorType\":"));
    S3V_TRY(hd_json_cstr(b, type));
    S3V_TRY(hd_json_raw(b, ",\"errorMessage\":"));
    S3V_TRY(hd_json_cstr(b, e->message));
    S3V_TRY(s3v_buf_printf(b, ",\"statusCode\":%d", status));
    if (e->type == HD_ERR_VALIDATION && e->field_path[0]) {
        S3V_TRY(hd_json_raw(b, ",\"fieldList\":[{\"path\":"));
        S3V_TRY(hd_json_cstr(b, e->field_path));
        S3V_TRY(hd_json_raw(b, ",\"message\":"));
        S3V_TRY(hd_json_cstr(b, e->field_message));
        S3V_TRY(hd_json_raw(b, "}]"));
    }
    S3V_TRY(hd_json_raw(b, "}"));
    out->payload = b->ptr;
    out->payload_size = b->len;
    return S3V_OK;
}

static void release_big(s3v_buf *b)
{
    if (b->cap > BUF_KEEP_SIZE) s3v_buf_free(b);
    s3v_buf_reset(b);
}

s3v_status hd_handler_invoke(hd_handler *h, const hd_invocation *inv, const uint8_t *p, size_t n,
                             hd_response *out)
{
    memset(out, 0, sizeof *out);
    out->operation = "";
    release_big(&h->body);
    release_big(&h->resp);
    memset(&h->err, 0, sizeof h->err);
    s3v_error_clear();

    hd_req r;
    memset(&r, 0, sizeof r);
    r.h = h;
    r.err = &h->err;
    r.out = &h->body;
    char region[32], account[16];
    memcpy(region, h->region, sizeof region);
    memcpy(account, h->account, sizeof account);
    arn_region_account(inv ? inv->function_arn : NULL, region, sizeof region, account, sizeof account);
    r.region = region;
    r.account = account;
    r.deadline = S3V_NO_DEADLINE;
    if (inv && inv->deadline_ns != S3V_NO_DEADLINE) {
        uint64_t now = s3v_now_ns(), left = inv->deadline_ns > now ? inv->deadline_ns - now : 0;
        uint64_t reserve = (uint64_t)h->cfg.deadline_reserve_ms * 1000000u;
        if (reserve > left / 4) reserve = left / 4;
        r.deadline = now + left - reserve;
    }

    hd_event ev;
    s3v_status st = hd_event_decode(p, n, &ev, &h->err);
    out->kind = ev.kind;
    if (st == S3V_OK) {
        const op_entry *op = NULL;
        for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
            if (strcmp(OPS[i].name, ev.operation) == 0) op = &OPS[i];
        if (op) out->operation = op->name;
        if (hd_event_is_http(ev.kind) && strcmp(ev.method, "POST") != 0) {
            st = hd_err_set(&h->err, HD_ERR_UNKNOWN_OPERATION, S3V_ERR_INVALID,
                            "no operation %s /%s: S3 Vectors operations are POST /<OperationName>", ev.method,
                            ev.operation);
        } else if (!ev.operation[0]) {
            st = hd_err_set(
                &h->err, HD_ERR_UNKNOWN_OPERATION, S3V_ERR_INVALID,
                hd_event_is_http(ev.kind)
                    ? "no operation in the path: S3 Vectors operations are POST /<OperationName>"
                    : "a direct invocation must name its operation: {\"operation\": \"QueryVectors\", ...}");
        } else if (!op) {
            st = hd_err_set(&h->err, HD_ERR_UNKNOWN_OPERATION, S3V_ERR_INVALID, "unknown operation '%s'",
                            ev.operation);
        } else if (!op->fn) {
            st = hd_err_set(
                &h->err, HD_ERR_NOT_IMPLEMENTED, S3V_ERR_UNSUPPORTED,
                "%s is not served by s3vec (vector buckets are folders of the deployment's storage; "
                "the operations are QueryVectors, GetVectors, ListVectors, GetIndex, ListIndexes, "
                "CreateIndex, DeleteIndex, PutVectors and DeleteVectors)",
                op->name);
        } else if (op->direct && hd_event_is_http(ev.kind)) {
            st = hd_err_set(
                &h->err, HD_ERR_UNKNOWN_OPERATION, S3V_ERR_INVALID,
                "%s is a direct invocation of the function (Invoke or a schedule), not an HTTP route",
                op->name);
        } else if (op->writes && !h->cfg.allow_writes) {
            st =
                hd_err_set(&h->err, HD_ERR_ACCESS_DENIED, S3V_ERR_ACCESS_DENIED,
                           "%s writes, and this deployment is read-only (deploy with AllowWrites=true, which "
                           "sets S3VEC_ALLOW_WRITES=true)",
                           op->name);
        } else {
            r.in = ev.request;
            r.direct = !hd_event_is_http(ev.kind);
            st = op->fn(&r);
        }
    }
    out->ms_engine = r.ms_engine;
    if (r.vb[0]) { /* "vb/idx" (both at most 63 bytes, validated) */
        size_t bl = strlen(r.vb), il = strlen(r.idx);
        memcpy(out->index, r.vb, bl);
        if (il) out->index[bl++] = '/';
        memcpy(out->index + bl, r.idx, il + 1);
    }
    if (st == S3V_OK) {
        out->results = r.results;
        out->http_status = 200;
        if (hd_event_is_http(ev.kind)) {
            st = wrap_proxy(h, inv, 200, NULL, &h->body);
            if (st == S3V_OK) {
                out->payload = h->resp.ptr;
                out->payload_size = h->resp.len;
            } else {
                hd_err_set(
                    &h->err, HD_ERR_VALIDATION, st,
                    st == S3V_ERR_TOO_LARGE
                        ? "the response would exceed the %zu-byte Lambda response limit; ask for fewer "
                          "results (topK, maxResults, keys) or leave out data and metadata"
                        : "could not encode the response (%zu-byte limit)",
                    h->cfg.max_response_size);
                if (st != S3V_ERR_TOO_LARGE) h->err.type = HD_ERR_INTERNAL;
            }
        } else {
            out->payload = h->body.ptr;
            out->payload_size = h->body.len;
        }
    }
    if (st != S3V_OK) {
        out->results = 0;
        st = build_error(h, inv, ev.kind, ev.error_mode, out);
    }
    hd_event_free(&ev);
    return st;
}
