/* s3/s3_storage.c: the S3 implementation of s3v_storage_ops (see s3_storage.h). */
#include "s3/s3_storage.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "s3/s3_client.h"
#include "s3/s3_config.h"
#include "s3/s3_sigv4.h"
#include "s3/s3_xml.h"

#define FULL_KEY_MAX  (S3_PREFIX_MAX + S3V_KEY_MAX + 1)
#define LIST_PAGE_MAX 1000
#define LIST_RESP_MAX (8u * 1024u * 1024u) /* a 1000-key page is well under 1 MiB */
#define MPU_MAX_PARTS 10000
#define MPU_RESP_MAX  (1024u * 1024u)
#define MPU_ABORT_MS  10000
#define S3_QUERY_MAX  4096

typedef struct s3_storage_impl {
    s3v_storage base;
    s3_client *client;
} s3_storage_impl;

static const s3v_storage_ops s3_ops;

static s3_client *client_of(s3v_storage *sto) { return ((s3_storage_impl *)sto)->client; }

/* root prefix + key, after validating key. */
static s3v_status full_key(s3v_storage *sto, const char *key, char out[FULL_KEY_MAX])
{
    S3V_TRY(s3v_storage_key_check(key));
    const s3_config *cfg = s3_client_config(client_of(sto));
    snprintf(out, FULL_KEY_MAX, "%s%s", cfg->prefix, key);
    return S3V_OK;
}

static s3v_status fail_count(s3v_storage *sto, s3v_status st)
{
    if (st != S3V_OK) s3_client_count_failure(client_of(sto));
    return st;
}

/* Runs a single op; returns its status (the message is set for failures). */
static s3v_status run_one(s3v_storage *sto, s3_op *op, uint64_t deadline_ns)
{
    s3v_status st = s3_client_run(client_of(sto), op, 1, 1, deadline_ns, NULL, NULL);
    if (st != S3V_OK) return st;
    if (op->status != S3V_OK) return s3v_errorf(op->status, "%s", op->msg);
    return S3V_OK;
}

static void fill_info(s3v_obj_info *info, uint64_t size, const char *etag)
{
    if (!info) return;
    info->size = size;
    snprintf(info->etag, sizeof info->etag, "%s", etag);
}

/* Query-encodes s (every reserved byte escaped, '/' too). */
static s3v_status enc(s3v_buf *q, const char *s)
{
    return s3_sigv4_uri_encode(q, (const uint8_t *)s, strlen(s), 0);
}

/* ---- reads ------------------------------------------------------------------------------------ */

static s3v_status s3_get(s3v_storage *sto, const char *key, uint64_t deadline_ns, s3v_buf *out,
                         s3v_obj_info *info)
{
    char fk[FULL_KEY_MAX];
    S3V_TRY(full_key(sto, key, fk));
    s3_op op;
    s3_op_init(&op, "GET", fk);
    op.resp_max = out->max - out->len;
    op.hedgeable = 1;
    s3v_status st = run_one(sto, &op, deadline_ns);
    if (st == S3V_OK) {
        if (out->len == 0 && op.resp.ptr) { /* hand the memory over instead of copying */
            free(out->ptr);
            out->ptr = op.resp.ptr;
            out->len = op.resp.len;
            out->cap = op.resp.cap;
            s3v_buf_init(&op.resp, 0);
        } else if (op.resp.len) {
            st = s3v_buf_append(out, op.resp.ptr, op.resp.len);
        }
        if (st == S3V_OK) fill_info(info, op.object_size, op.etag);
    }
    s3_op_release(&op);
    return fail_count(sto, st);
}

typedef struct ranges_ctx {
    size_t *range_index; /* op index -> range index */
    s3v_range_cb cb;
    void *arg;
} ranges_ctx;

static s3v_status range_done(void *arg, s3_op *op, size_t index)
{
    ranges_ctx *ctx = arg;
    s3v_status st = ctx->cb(ctx->arg, ctx->range_index[index], op->status, &op->resp);
    s3v_buf_free(&op->resp);
    return st;
}

typedef struct by_size {
    uint64_t size;
    size_t index;
} by_size;

/* Largest first, then the caller's order. */
static int by_size_cmp(const void *a, const void *b)
{
    const by_size *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static s3v_status s3_get_ranges(s3v_storage *sto, const s3v_range *ranges, size_t count, uint64_t deadline_ns,
                                s3v_range_cb cb, void *arg)
{
    if (!count) return S3V_OK;
    s3_op *ops = calloc(count, sizeof *ops);
    char **keys = calloc(count, sizeof *keys);
    size_t *index = calloc(count, sizeof *index);
    by_size *order = calloc(count, sizeof *order);
    s3v_status st = S3V_OK;
    size_t n = 0;
    if (!ops || !keys || !index || !order) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory for %zu ranges", count);
        goto done;
    }
    /* Requests go out largest first: the longest transfer starts earliest, which is what bounds the
     * batch (one round trip plus the largest range), and with more ranges than connections it is the
     * longest-processing-time-first schedule. Callbacks come in completion order either way. */
    for (size_t i = 0; i < count; i++) order[i] = (by_size){ranges[i].size, i};
    qsort(order, count, sizeof *order, by_size_cmp);
    for (size_t k = 0; k < count; k++) {
        size_t i = order[k].index;
        char fk[FULL_KEY_MAX];
        s3v_status ks = full_key(sto, ranges[i].key, fk);
        if (ks == S3V_OK && ranges[i].size == 0)
            ks = s3v_errorf(S3V_ERR_INVALID, "empty range of %s", ranges[i].key);
        if (ks == S3V_OK && ranges[i].size > SIZE_MAX / 2)
            ks = s3v_errorf(S3V_ERR_TOO_LARGE, "range of %s too large", ranges[i].key);
        if (ks != S3V_OK) { /* reported at once, as the local backend does */
            s3v_buf empty;
            s3v_buf_init(&empty, 0);
            st = cb(arg, i, ks, &empty);
            s3v_buf_free(&empty);
            if (st != S3V_OK) goto done;
            continue;
        }
        keys[n] = strdup(fk);
        if (!keys[n]) {
            st = s3v_errorf(S3V_ERR_NOMEM, "out of memory for %zu ranges", count);
            goto done;
        }
        s3_op_init(&ops[n], "GET", keys[n]);
        ops[n].range_offset = ranges[i].offset;
        ops[n].range_size = ranges[i].size;
        ops[n].resp_max = (size_t)ranges[i].size;
        ops[n].hedgeable = 1;
        index[n] = i;
        n++;
    }
    ranges_ctx ctx = {index, cb, arg};
    st = s3_client_run(client_of(sto), ops, n, 0, deadline_ns, range_done, &ctx);
done:
    for (size_t i = 0; ops && i < n; i++) s3_op_release(&ops[i]);
    for (size_t i = 0; keys && i < n; i++) free(keys[i]);
    free(ops);
    free(keys);
    free(index);
    free(order);
    return fail_count(sto, st);
}

static s3v_status s3_head(s3v_storage *sto, const char *key, uint64_t deadline_ns, s3v_obj_info *info)
{
    char fk[FULL_KEY_MAX];
    S3V_TRY(full_key(sto, key, fk));
    s3_op op;
    s3_op_init(&op, "HEAD", fk);
    op.hedgeable = 1;
    s3v_status st = run_one(sto, &op, deadline_ns);
    if (st == S3V_OK) fill_info(info, op.object_size, op.etag);
    s3_op_release(&op);
    return fail_count(sto, st);
}

/* ---- writes ----------------------------------------------------------------------------------- */

static s3v_status apply_cond(s3_op *op, const s3v_put_cond *cond)
{
    if (!cond || cond->mode == S3V_PUT_ALWAYS) return S3V_OK;
    if (cond->mode == S3V_PUT_IF_NONE_MATCH) {
        op->if_none_match = "*";
        return S3V_OK;
    }
    if (cond->mode == S3V_PUT_IF_MATCH) {
        if (!cond->etag || !*cond->etag) return s3v_errorf(S3V_ERR_INVALID, "If-Match without an etag");
        for (const char *p = cond->etag; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
                return s3v_errorf(S3V_ERR_INVALID, "etag contains a control byte");
        op->if_match = cond->etag;
        return S3V_OK;
    }
    return s3v_errorf(S3V_ERR_INVALID, "unknown put condition %d", (int)cond->mode);
}

/* A conditional PUT that was retried and then failed its condition may have succeeded the first
 * time, its answer lost (a reset after S3 wrote the object). The ETag of a single-part object that
 * is not SSE-KMS encrypted is the MD5 of its bytes: when the object now holds exactly our bytes, the
 * write is ours (or indistinguishable from ours) and succeeded. Returns 1 then, with its etag. */
static int write_landed(s3v_storage *sto, const char *fk, const uint8_t *data, size_t size,
                        uint64_t deadline_ns, char etag[S3V_ETAG_MAX])
{
    uint8_t md[16];
    unsigned int md_len = 0;
    if (EVP_Digest(data ? data : (const uint8_t *)"", size, md, &md_len, EVP_md5(), NULL) != 1 ||
        md_len != 16)
        return 0;
    char want[40];
    want[0] = '"';
    for (int i = 0; i < 16; i++) snprintf(want + 1 + 2 * i, 3, "%02x", md[i]);
    want[33] = '"';
    want[34] = 0;
    s3_op op;
    s3_op_init(&op, "HEAD", fk);
    int landed = run_one(sto, &op, deadline_ns) == S3V_OK && op.object_size == size && !strcmp(op.etag, want);
    if (landed) snprintf(etag, S3V_ETAG_MAX, "%s", op.etag);
    s3_op_release(&op);
    return landed;
}

static s3v_status s3_put(s3v_storage *sto, const char *key, const uint8_t *data, size_t size,
                         const s3v_put_cond *cond, uint64_t deadline_ns, s3v_obj_info *info)
{
    char fk[FULL_KEY_MAX];
    S3V_TRY(full_key(sto, key, fk));
    s3_op op;
    s3_op_init(&op, "PUT", fk);
    op.body = data;
    op.body_size = size;
    s3v_status st = apply_cond(&op, cond);
    if (st == S3V_OK) st = run_one(sto, &op, deadline_ns);
    if (st == S3V_OK) fill_info(info, size, op.etag);
    if (st == S3V_ERR_PRECONDITION && op.attempts > 1) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", s3v_errmsg(st));
        char etag[S3V_ETAG_MAX];
        if (write_landed(sto, fk, data, size, deadline_ns, etag)) {
            st = S3V_OK;
            fill_info(info, size, etag);
        } else {
            s3v_errorf(st, "%s", msg);
        }
    }
    s3_op_release(&op);
    return fail_count(sto, st);
}

typedef struct parts_ctx {
    char (*etags)[S3V_ETAG_MAX];
} parts_ctx;

static s3v_status part_done(void *arg, s3_op *op, size_t index)
{
    parts_ctx *pc = arg;
    if (op->status != S3V_OK) return s3v_errorf(op->status, "part %zu: %s", index + 1, op->msg);
    if (!op->etag[0]) return s3v_errorf(S3V_ERR_REMOTE, "part %zu: S3 returned no ETag", index + 1);
    memcpy(pc->etags[index], op->etag, S3V_ETAG_MAX);
    s3v_buf_free(&op->resp);
    return S3V_OK;
}

static void multipart_abort(s3v_storage *sto, const char *fk, const char *upload_query)
{
    s3_op op;
    s3_op_init(&op, "DELETE", fk);
    op.query = upload_query;
    s3v_status st = run_one(sto, &op, s3v_deadline_in_ms(MPU_ABORT_MS));
    if (st != S3V_OK && st != S3V_ERR_NOT_FOUND)
        s3v_log(S3V_LOG_WARN, "s3: could not abort a multipart upload (%s); a lifecycle rule cleans it up",
                s3v_status_name(st));
    s3_op_release(&op);
}

static s3v_status multipart_put(s3v_storage *sto, const char *fk, int fd, uint64_t size,
                                const s3v_put_cond *cond, uint64_t deadline_ns, s3v_obj_info *info)
{
    const s3_config *cfg = s3_client_config(client_of(sto));
    uint64_t part = cfg->part_size;
    while ((size + part - 1) / part > MPU_MAX_PARTS) part *= 2;
    size_t nparts = (size_t)((size + part - 1) / part);
    char upload_id[1024] = "";
    s3_op *ops = NULL;
    char(*queries)[S3_QUERY_MAX] = NULL;
    char(*etags)[S3V_ETAG_MAX] = NULL;
    s3v_buf uq, xml;
    s3v_buf_init(&uq, S3_QUERY_MAX);
    s3v_buf_init(&xml, (size_t)nparts * 256 + 1024);
    s3_op op;
    s3_op_init(&op, "POST", fk);
    s3v_status st = S3V_OK;
    int started = 0;

    /* 1. initiate */
    op.query = "uploads";
    op.resp_max = MPU_RESP_MAX;
    S3V_CHECK(run_one(sto, &op, deadline_ns));
    s3v_status xs = s3_xml_find(op.resp.ptr, op.resp.len, "*/UploadId", upload_id, sizeof upload_id);
    if (xs != S3V_OK || !upload_id[0]) {
        st = s3v_errorf(S3V_ERR_REMOTE, "s3://%s/%s: CreateMultipartUpload returned no UploadId", cfg->bucket,
                        fk);
        goto fail;
    }
    started = 1;
    S3V_CHECK(s3v_buf_append_str(&uq, "uploadId="));
    S3V_CHECK(enc(&uq, upload_id));

    /* 2. parts, in parallel */
    ops = calloc(nparts, sizeof *ops);
    queries = calloc(nparts, sizeof *queries);
    etags = calloc(nparts, sizeof *etags);
    if (!ops || !queries || !etags) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory for %zu parts", nparts);
        goto fail;
    }
    for (size_t i = 0; i < nparts; i++) {
        s3_op_init(&ops[i], "PUT", fk);
        snprintf(queries[i], S3_QUERY_MAX, "partNumber=%zu&%s", i + 1, (const char *)uq.ptr);
        ops[i].query = queries[i];
        ops[i].body_fd = fd;
        ops[i].body_offset = (uint64_t)i * part;
        ops[i].body_size = (size_t)(i + 1 < nparts ? part : size - (uint64_t)i * part);
    }
    parts_ctx pc = {etags};
    st = s3_client_run(client_of(sto), ops, nparts, cfg->upload_concurrency, deadline_ns, part_done, &pc);
    for (size_t i = 0; i < nparts; i++) s3_op_release(&ops[i]);
    if (st != S3V_OK) goto fail;

    /* 3. complete, with the write condition */
    S3V_CHECK(s3v_buf_append_str(
        &xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"));
    for (size_t i = 0; i < nparts; i++) {
        char esc[S3V_ETAG_MAX * 6 + 1];
        if (s3_xml_escape(etags[i], esc, sizeof esc) != 0) {
            st = s3v_errorf(S3V_ERR_REMOTE, "part ETag too long");
            goto fail;
        }
        S3V_CHECK(
            s3v_buf_printf(&xml, "<Part><ETag>%s</ETag><PartNumber>%zu</PartNumber></Part>", esc, i + 1));
    }
    S3V_CHECK(s3v_buf_append_str(&xml, "</CompleteMultipartUpload>"));
    s3_op_release(&op);
    s3_op_init(&op, "POST", fk);
    op.query = (const char *)uq.ptr;
    op.body = xml.ptr;
    op.body_size = xml.len;
    op.content_type = "application/xml";
    op.resp_max = MPU_RESP_MAX;
    S3V_CHECK(apply_cond(&op, cond));
    S3V_CHECK(run_one(sto, &op, deadline_ns));
    char etag_raw[S3V_ETAG_MAX] = "";
    if (s3_xml_find(op.resp.ptr, op.resp.len, "*/ETag", etag_raw, sizeof etag_raw) != S3V_OK) etag_raw[0] = 0;
    fill_info(info, size, etag_raw[0] ? etag_raw : op.etag);
    started = 0; /* completed: nothing to abort */
fail:
    if (started) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", s3v_errmsg(st));
        multipart_abort(sto, fk, (const char *)uq.ptr);
        s3v_errorf(st, "%s", msg);
    }
    s3_op_release(&op);
    s3v_buf_free(&uq);
    s3v_buf_free(&xml);
    free(ops);
    free(queries);
    free(etags);
    return st;
}

static s3v_status s3_put_file(s3v_storage *sto, const char *key, const char *path, const s3v_put_cond *cond,
                              uint64_t deadline_ns, s3v_obj_info *info)
{
    char fk[FULL_KEY_MAX];
    S3V_TRY(full_key(sto, key, fk));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s3v_status e = errno == ENOENT   ? S3V_ERR_NOT_FOUND
                       : errno == EACCES ? S3V_ERR_ACCESS_DENIED
                                         : S3V_ERR_IO;
        return fail_count(sto, s3v_errorf(e, "cannot open %s: %s", path, strerror(errno)));
    }
    struct stat sb;
    s3v_status st = S3V_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = s3v_errorf(S3V_ERR_IO, "%s is not a regular file", path);
    } else if ((uint64_t)sb.st_size > s3_client_config(client_of(sto))->part_size) {
        st = multipart_put(sto, fk, fd, (uint64_t)sb.st_size, cond, deadline_ns, info);
    } else {
        s3_op op;
        s3_op_init(&op, "PUT", fk);
        op.body_fd = fd;
        op.body_size = (size_t)sb.st_size;
        st = apply_cond(&op, cond);
        if (st == S3V_OK) st = run_one(sto, &op, deadline_ns);
        if (st == S3V_OK) fill_info(info, (uint64_t)sb.st_size, op.etag);
        s3_op_release(&op);
    }
    close(fd);
    return fail_count(sto, st);
}

static s3v_status s3_del(s3v_storage *sto, const char *key, uint64_t deadline_ns)
{
    char fk[FULL_KEY_MAX];
    S3V_TRY(full_key(sto, key, fk));
    s3_op op;
    s3_op_init(&op, "DELETE", fk);
    s3v_status st = run_one(sto, &op, deadline_ns);
    if (st == S3V_ERR_NOT_FOUND && op.http_status == 404) {
        /* S3 answers 204 for a missing key; a 404 here means NoSuchKey from a stricter store. Only a
         * missing bucket is an error. */
        if (!strstr(op.msg, "NoSuchBucket")) st = S3V_OK;
    }
    s3_op_release(&op);
    return fail_count(sto, st);
}

/* ---- listing ---------------------------------------------------------------------------------- */

static s3v_status check_list_text(const char *what, const char *s)
{
    if (strlen(s) > S3V_KEY_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "list %s longer than %d bytes", what, S3V_KEY_MAX);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            return s3v_errorf(S3V_ERR_INVALID, "list %s contains a control byte", what);
    return S3V_OK;
}

static s3v_status s3_list(s3v_storage *sto, const s3v_list_req *req, uint64_t deadline_ns, s3v_list_cb cb,
                          void *arg)
{
    const s3_config *cfg = s3_client_config(client_of(sto));
    const char *prefix = req->prefix ? req->prefix : "";
    S3V_TRY(check_list_text("prefix", prefix));
    if (strstr(prefix, "..")) return s3v_errorf(S3V_ERR_INVALID, "list prefix contains '..'");
    if (req->delimiter) S3V_TRY(check_list_text("delimiter", req->delimiter));
    if (req->start_after) S3V_TRY(check_list_text("start_after", req->start_after));
    size_t root_len = strlen(cfg->prefix), emitted = 0;
    char full[FULL_KEY_MAX], token[1024] = "";
    s3v_buf q;
    s3v_buf_init(&q, 3 * FULL_KEY_MAX + 4096);
    s3v_status st = S3V_OK;
    for (;;) {
        s3v_buf_reset(&q);
        S3V_CHECK(s3v_buf_append_str(&q, "list-type=2&prefix="));
        snprintf(full, sizeof full, "%s%s", cfg->prefix, prefix);
        S3V_CHECK(enc(&q, full));
        if (req->delimiter && *req->delimiter) {
            S3V_CHECK(s3v_buf_append_str(&q, "&delimiter="));
            S3V_CHECK(enc(&q, req->delimiter));
        }
        if (token[0]) {
            S3V_CHECK(s3v_buf_append_str(&q, "&continuation-token="));
            S3V_CHECK(enc(&q, token));
        } else if (req->start_after && *req->start_after) {
            snprintf(full, sizeof full, "%s%s", cfg->prefix, req->start_after);
            S3V_CHECK(s3v_buf_append_str(&q, "&start-after="));
            S3V_CHECK(enc(&q, full));
        }
        size_t page = cfg->list_page ? cfg->list_page : LIST_PAGE_MAX;
        if (req->max_keys && req->max_keys - emitted < page) page = req->max_keys - emitted;
        S3V_CHECK(s3v_buf_printf(&q, "&max-keys=%zu", page));

        s3_op op;
        s3_op_init(&op, "GET", NULL);
        op.query = (const char *)q.ptr;
        op.resp_max = LIST_RESP_MAX;
        op.hedgeable = 1;
        st = run_one(sto, &op, deadline_ns);
        s3_list_page pg;
        if (st == S3V_OK) st = s3_xml_list_parse(op.resp.ptr, op.resp.len, &pg);
        s3_op_release(&op);
        if (st != S3V_OK) goto fail;
        int stop = 0;
        for (size_t i = 0; i < pg.count && !stop; i++) {
            const char *k = pg.entries[i].key;
            if (strncmp(k, cfg->prefix, root_len) != 0 || !k[root_len]) continue; /* outside the root */
            k += root_len;
            if (req->start_after && strcmp(k, req->start_after) <= 0) continue;
            if (req->max_keys && emitted >= req->max_keys) {
                stop = 1;
                break;
            }
            emitted++;
            if (cb(arg, k, pg.entries[i].size, pg.entries[i].is_prefix)) stop = 1;
        }
        int more = pg.truncated && !stop && (!req->max_keys || emitted < req->max_keys);
        if (more) snprintf(token, sizeof token, "%s", pg.next_token);
        s3_xml_list_free(&pg);
        if (!more) break;
        if (!token[0]) {
            st = s3v_errorf(S3V_ERR_REMOTE, "truncated listing without a continuation token");
            goto fail;
        }
    }
fail:
    s3v_buf_free(&q);
    return fail_count(sto, st);
}

/* ---- handle ----------------------------------------------------------------------------------- */

static void s3_describe(s3v_storage *sto, const char *key, char *out, size_t out_size)
{
    const s3_config *cfg = s3_client_config(client_of(sto));
    snprintf(out, out_size, "s3://%s/%s%s", cfg->bucket, cfg->prefix, key ? key : "");
}

static void s3_close(s3v_storage *sto)
{
    s3_storage_impl *s = (s3_storage_impl *)sto;
    s3_client_free(s->client);
    free(s);
}

static const s3v_storage_ops s3_ops = {
    .name = "s3",
    .get = s3_get,
    .get_ranges = s3_get_ranges,
    .put = s3_put,
    .put_file = s3_put_file,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .describe = s3_describe,
    .close = s3_close,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

s3v_status s3_storage_open(const char *url, s3v_getenv_fn env, s3v_storage **out)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return s3v_errorf(S3V_ERR_INTERNAL, "libcurl failed to initialise");
    s3_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    s3v_status st = s3_config_load(cfg, url, env);
    s3_storage_impl *s = NULL;
    if (st == S3V_OK) {
        s = calloc(1, sizeof *s);
        if (!s) st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    if (st == S3V_OK) st = s3_client_new(cfg, &s->client);
    s3_config_wipe(cfg);
    free(cfg);
    if (st != S3V_OK) {
        free(s);
        return st;
    }
    s->base.ops = &s3_ops;
    *out = &s->base;
    return S3V_OK;
}

s3v_status s3_storage_open_any(const char *url_or_path, int create, s3v_getenv_fn env, s3v_storage **out)
{
    if (!url_or_path) return s3v_errorf(S3V_ERR_INVALID, "no storage location given");
    if (strncmp(url_or_path, "s3://", 5) == 0) return s3_storage_open(url_or_path, env, out);
    return s3v_storage_local_open(url_or_path, create, out);
}

int s3_storage_is_s3(const s3v_storage *sto) { return sto && sto->ops == &s3_ops; }

s3v_status s3_storage_stats(s3v_storage *sto, s3_stats *out)
{
    if (!s3_storage_is_s3(sto)) return s3v_errorf(S3V_ERR_INVALID, "not an S3 storage");
    s3_client_stats(client_of(sto), out);
    return S3V_OK;
}
