/* handler/ops.c: the S3 Vectors read operations: request validation against the s3vectors service
 * model, the engine call, and the output shape. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/filter.h"
#include "engine/format.h"
#include "handler/handler_int.h"
#include "handler/jsonw.h"

#define VECTOR_KEY_MAX_CHARS    1024
#define LIST_TOKEN_MAX_CHARS    2048
#define INDEX_TOKEN_MAX_CHARS   512
#define INDEX_ARN_MAX_CHARS     2048
#define LIST_DEFAULT_RESULTS    500
#define INDEXES_DEFAULT_RESULTS 500

/* ---- request members ---- */

/* A member, or NULL when absent or JSON null (null is treated as absent, as AWS JSON services do). */
const cJSON *hd_member(const hd_req *r, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->in, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

s3v_status hd_get_bool(hd_req *r, const char *name, int *out)
{
    const cJSON *v = hd_member(r, name);
    if (!v) return S3V_OK;
    if (!cJSON_IsBool(v)) return hd_err_field(r->err, name, "must be a boolean (true or false)");
    *out = cJSON_IsTrue(v);
    return S3V_OK;
}

/* An integer member in [min, max]; *present tells whether it was given (out untouched when not). */
s3v_status hd_get_int(hd_req *r, const char *name, long long min, long long max, int required, long long *out,
                      int *present)
{
    const cJSON *v = hd_member(r, name);
    if (present) *present = v != NULL;
    if (!v) return required ? hd_err_field(r->err, name, "is required") : S3V_OK;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return hd_err_field(r->err, name, "must be an integer");
    if (d < (double)min || d > (double)max)
        return hd_err_field(r->err, name, "must be between %lld and %lld (got %.0f)", min, max, d);
    *out = (long long)d;
    return S3V_OK;
}

size_t hd_utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    return n;
}

/* A string member of min..max characters (Unicode code points). */
s3v_status hd_get_string(hd_req *r, const char *name, size_t min, size_t max, int required, const char **out)
{
    const cJSON *v = hd_member(r, name);
    *out = NULL;
    if (!v) return required ? hd_err_field(r->err, name, "is required") : S3V_OK;
    if (!cJSON_IsString(v)) return hd_err_field(r->err, name, "must be a string");
    size_t n = hd_utf8_chars(v->valuestring);
    if (n < min || n > max)
        return hd_err_field(r->err, name, "must be between %zu and %zu characters long (got %zu)", min, max,
                            n);
    *out = v->valuestring;
    return S3V_OK;
}

/* vectorBucketName + indexName, or indexArn (both forms may be given when they agree). */
s3v_status hd_resolve_index(hd_req *r)
{
    const char *arn, *vbn, *ixn, *why;
    S3V_TRY(hd_get_string(r, "indexArn", 1, INDEX_ARN_MAX_CHARS, 0, &arn));
    S3V_TRY(hd_get_string(r, "vectorBucketName", 0, SIZE_MAX, 0, &vbn));
    S3V_TRY(hd_get_string(r, "indexName", 0, SIZE_MAX, 0, &ixn));
    if (vbn && (why = hd_name_bucket_problem(vbn, strlen(vbn))) != NULL)
        return hd_err_field(r->err, "vectorBucketName", "%s", why);
    if (ixn && (why = hd_name_index_problem(ixn, strlen(ixn))) != NULL)
        return hd_err_field(r->err, "indexName", "%s", why);
    if (arn) {
        char vb[HD_NAME_MAX], ix[HD_NAME_MAX];
        if ((why = hd_arn_parse_index(arn, strlen(arn), vb, ix)) != NULL)
            return hd_err_field(r->err, "indexArn", "%s", why);
        if ((vbn && strcmp(vbn, vb) != 0) || (ixn && strcmp(ixn, ix) != 0))
            return hd_err_field(r->err, "indexArn",
                                "names another index than vectorBucketName and indexName");
        memcpy(r->vb, vb, sizeof vb);
        memcpy(r->idx, ix, sizeof ix);
        return S3V_OK;
    }
    if (!vbn) return hd_err_field(r->err, "vectorBucketName", "is required (or give indexArn)");
    if (!ixn) return hd_err_field(r->err, "indexName", "is required (or give indexArn)");
    memcpy(r->vb, vbn, strlen(vbn) + 1); /* validated: at most 63 bytes */
    memcpy(r->idx, ixn, strlen(ixn) + 1);
    return S3V_OK;
}

s3v_status hd_not_found_index(hd_req *r, s3v_status st)
{
    s3v_log(S3V_LOG_DEBUG, "index %s/%s: %s", r->vb, r->idx, s3v_errmsg(st));
    return hd_err_set(r->err, HD_ERR_NOT_FOUND, st,
                      "The specified index could not be found: %s in vector bucket %s", r->idx, r->vb);
}

static s3v_status open_result(hd_req *r, s3v_status st)
{
    if (st == S3V_ERR_NOT_FOUND) return hd_not_found_index(r, st);
    if (st != S3V_OK) return hd_err_status(r->err, st, NULL);
    return S3V_OK;
}

/* hd_open_index, with the log read overlapping the caller's read when pending is not NULL (registry.h);
 * settle_index after that read. */
static s3v_status open_index_overlapped(hd_req *r, ivf_index **ix, hd_open_info *info, int *pending)
{
    uint64_t t0 = s3v_now_ns();
    s3v_status st = hd_registry_get_overlapped(r->h->reg, r->vb, r->idx, r->deadline, ix, info, pending);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    return open_result(r, st);
}

s3v_status hd_open_index(hd_req *r, ivf_index **ix, hd_open_info *info)
{
    return open_index_overlapped(r, ix, info, NULL);
}

static s3v_status settle_index(hd_req *r, hd_open_info *info, int *redo)
{
    uint64_t t0 = s3v_now_ns();
    s3v_status st = hd_registry_settle(r->h->reg, r->vb, r->idx, r->deadline, redo, info);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    return open_result(r, st);
}

/* ---- output helpers ---- */

static s3v_status put_key(s3v_buf *b, const ivf_hit *h)
{
    S3V_TRY(hd_json_raw(b, "{\"key\":"));
    return hd_json_str(b, h->key, h->key_len);
}

static s3v_status put_data(s3v_buf *b, const float *d, uint32_t dim)
{
    S3V_TRY(hd_json_raw(b, ",\"data\":{\"float32\":["));
    for (uint32_t j = 0; j < dim; j++) {
        if (j) S3V_TRY(s3v_buf_append(b, ",", 1));
        S3V_TRY(hd_json_f32(b, d[j]));
    }
    return hd_json_raw(b, "]}");
}

/* Stored metadata is the minified JSON object text the builder validated (and the block CRC covers). */
static s3v_status put_meta(s3v_buf *b, const ivf_hit *h)
{
    if (!h->meta || !h->meta_len) return S3V_OK;
    S3V_TRY(hd_json_raw(b, ",\"metadata\":"));
    return hd_json_raw_n(b, h->meta, h->meta_len);
}

/* ,"name":<v> for an unsigned count, without printf (this runs on every query that asks for statistics). */
static s3v_status put_count(s3v_buf *b, const char *name, uint64_t v)
{
    S3V_TRY(s3v_buf_append(b, ",\"", 2));
    S3V_TRY(hd_json_raw(b, name));
    S3V_TRY(s3v_buf_append(b, "\":", 2));
    return hd_json_u64(b, v);
}

/* ,"name":<ms with 3 decimals> (microsecond resolution). */
static s3v_status put_ms(s3v_buf *b, const char *name, double ms)
{
    uint64_t us = ms > 0 ? (uint64_t)(ms * 1000.0 + 0.5) : 0;
    char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10), 0};
    S3V_TRY(put_count(b, name, us / 1000));
    return s3v_buf_append(b, frac, 4);
}

/* Writes the output of a failed output step: the only failure is the response cap or memory. */
s3v_status hd_output_failed(hd_req *r, s3v_status st)
{
    if (st == S3V_ERR_TOO_LARGE)
        return hd_err_set(
            r->err, HD_ERR_VALIDATION, st,
            "the response would exceed the %zu-byte Lambda response limit; ask for fewer results "
            "(topK, maxResults, keys) or leave out data and metadata",
            r->out->max);
    return hd_err_status(r->err, st, NULL);
}

/* ---- QueryVectors ---- */

static s3v_status parse_query_vector(hd_req *r, uint32_t *dim)
{
    const cJSON *qv = hd_member(r, "queryVector");
    if (!qv) return hd_err_field(r->err, "queryVector", "is required");
    if (!cJSON_IsObject(qv))
        return hd_err_field(r->err, "queryVector", "must be an object such as {\"float32\": [...]}");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(qv, "float32");
    if (!f || cJSON_IsNull(f)) return hd_err_field(r->err, "queryVector.float32", "is required");
    if (!cJSON_IsArray(f)) return hd_err_field(r->err, "queryVector.float32", "must be a list of numbers");
    uint32_t n = 0;
    for (const cJSON *e = f->child; e; e = e->next, n++) {
        if (n >= IVF_DIM_MAX)
            return hd_err_field(r->err, "queryVector.float32", "has more than %d elements", IVF_DIM_MAX);
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || !isfinite(d) || fabs(d) > FLT_MAX) {
            char path[64]; /* formatted only on failure: this loop runs once per element */
            snprintf(path, sizeof path, "queryVector.float32[%u]", n);
            return hd_err_field(r->err, path,
                                cJSON_IsNumber(e) ? "must be a finite 32-bit float" : "must be a number");
        }
        r->h->qvec[n] = (float)d;
    }
    if (n == 0) return hd_err_field(r->err, "queryVector.float32", "must have at least 1 element");
    *dim = n;
    return S3V_OK;
}

static s3v_status put_statistics(s3v_buf *b, const ivf_stats *s, const hd_open_info *oi, const ivf_index *ix)
{
    S3V_TRY(hd_json_raw(b, ",\"statistics\":{\"nprobe\":"));
    S3V_TRY(hd_json_u64(b, s->nprobe));
    S3V_TRY(put_count(b, "clustersScanned", s->clusters_scanned));
    S3V_TRY(put_count(b, "rounds", s->rounds));
    S3V_TRY(put_count(b, "vectorsScanned", s->vectors_scanned));
    S3V_TRY(put_count(b, "cacheHits", s->cache_hits));
    S3V_TRY(put_count(b, "cacheMisses", s->cache_misses));
    S3V_TRY(put_count(b, "storageRequests", s->requests));
    S3V_TRY(put_count(b, "bytesFetched", s->bytes_fetched));
    S3V_TRY(put_count(b, "filterEvaluations", s->filter_evaluations));
    S3V_TRY(put_ms(b, "msProbe", s->ms_probe));
    S3V_TRY(put_ms(b, "msFetch", s->ms_fetch));
    S3V_TRY(put_ms(b, "msScan", s->ms_scan));
    S3V_TRY(put_ms(b, "msQuery", s->ms_total));
    S3V_TRY(put_count(b, "tailVectors", s->tail_vectors));
    S3V_TRY(put_count(b, "tailScored", s->tail_scored));
    S3V_TRY(put_count(b, "tailShadowed", s->tail_shadowed));
    S3V_TRY(put_ms(b, "msTail", s->ms_tail));
    S3V_TRY(hd_json_raw(b, oi->tail_checked ? ",\"tailChecked\":true" : ",\"tailChecked\":false"));
    S3V_TRY(put_count(b, "tailObjectsRead", oi->tail_objects));
    S3V_TRY(put_ms(b, "msIndexOpen", oi->ms_open));
    S3V_TRY(hd_json_raw(b, oi->opened ? ",\"indexOpened\":true" : ",\"indexOpened\":false"));
    S3V_TRY(hd_json_raw(b, oi->checked ? ",\"indexChecked\":true" : ",\"indexChecked\":false"));
    S3V_TRY(hd_json_raw(b, ",\"indexGeneration\":"));
    S3V_TRY(hd_json_cstr(b, ivf_index_manifest(ix)->generation));
    return hd_json_raw(b, "}");
}

s3v_status hd_op_query_vectors(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    long long topk = 0, nprobe = 0;
    int want_meta = 0, want_dist = 0, want_stats = 0, has_nprobe = 0;
    S3V_TRY(hd_get_int(r, "topK", 1, HD_QUERY_TOPK_MAX, 1, &topk, NULL));
    uint32_t dim = 0;
    S3V_TRY(parse_query_vector(r, &dim));
    S3V_TRY(hd_get_bool(r, "returnMetadata", &want_meta));
    S3V_TRY(hd_get_bool(r, "returnDistance", &want_dist));
    S3V_TRY(hd_get_bool(r, "returnStatistics", &want_stats));
    S3V_TRY(hd_get_int(r, "nprobe", 1, IVF_NLIST_MAX, 0, &nprobe, &has_nprobe));
    float recall = 0;
    const cJSON *rt = hd_member(r, "recallTarget");
    if (rt) {
        if (!cJSON_IsNumber(rt) || !(rt->valuedouble > 0 && rt->valuedouble <= 1))
            return hd_err_field(r->err, "recallTarget", "must be a number greater than 0 and at most 1");
        if (has_nprobe) return hd_err_field(r->err, "recallTarget", "cannot be combined with nprobe");
        recall = (float)rt->valuedouble;
    }
    s3v_filter *flt = NULL;
    const cJSON *fj = hd_member(r, "filter");
    if (fj) {
        s3v_status fs = filter_compile(fj, &flt);
        if (fs != S3V_OK) return hd_err_status(r->err, fs, "filter");
    }
    ivf_index *ix;
    hd_open_info oi;
    int pending = 0;
    s3v_status st = open_index_overlapped(r, &ix, &oi, &pending);
    if (st != S3V_OK) goto done;
    const ivf_manifest *m = ivf_index_manifest(ix);
    if (flt) {
        st = filter_check_filterable(flt, (const char *const *)m->non_filterable, m->non_filterable_len);
        if (st != S3V_OK) {
            hd_err_status(r->err, st, "filter");
            goto done;
        }
    }
    ivf_query q = {.vector = r->h->qvec,
                   .dim = dim,
                   .topk = (uint32_t)topk,
                   .nprobe = (uint32_t)nprobe,
                   .recall_target = recall,
                   .filter = flt,
                   .want_metadata = want_meta,
                   .deadline_ns = r->deadline};
    ivf_result res;
    uint64_t t0 = s3v_now_ns();
    st = ivf_index_search(ix, &q, &res);
    if (pending) { /* the log was read meanwhile: new writes mean searching again */
        int redo = 0;
        r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
        s3v_status ss = settle_index(r, &oi, &redo);
        t0 = s3v_now_ns();
        if (ss != S3V_OK || redo) { /* this answer is not served */
            if (st == S3V_OK) ivf_result_free(&res);
            st = ss;
        }
        if (ss != S3V_OK) goto done;
        if (redo) {
            ix = hd_registry_peek(r->h->reg, r->vb, r->idx);
            st = ix ? ivf_index_search(ix, &q, &res) : S3V_ERR_NOT_FOUND;
        }
    }
    if (st == S3V_ERR_NOT_FOUND) { /* a data object vanished: a writer replaced the generation */
        int changed = 0;
        s3v_status cs = hd_registry_recheck(r->h->reg, r->vb, r->idx, r->deadline, &changed);
        if (cs == S3V_ERR_NOT_FOUND) {
            r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
            st = hd_not_found_index(r, cs);
            goto done;
        }
        if (cs == S3V_OK && changed) {
            ix = hd_registry_peek(r->h->reg, r->vb, r->idx);
            st = ix ? ivf_index_search(ix, &q, &res) : S3V_ERR_NOT_FOUND;
        }
    }
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) {
        hd_err_status(r->err, st, "queryVector");
        goto done;
    }
    s3v_buf *b = r->out;
    s3v_status os = hd_json_raw(b, "{\"vectors\":[");
    for (size_t i = 0; os == S3V_OK && i < res.len; i++) {
        const ivf_hit *hit = &res.hits[i];
        if (i) os = s3v_buf_append(b, ",", 1);
        if (os == S3V_OK) os = put_key(b, hit);
        if (os == S3V_OK && want_dist) {
            os = hd_json_raw(b, ",\"distance\":");
            if (os == S3V_OK) os = hd_json_f32(b, hit->distance);
        }
        if (os == S3V_OK && want_meta) os = put_meta(b, hit);
        if (os == S3V_OK) os = s3v_buf_append(b, "}", 1);
    }
    if (os == S3V_OK) os = hd_json_raw(b, "],\"distanceMetric\":");
    if (os == S3V_OK) os = hd_json_cstr(b, ivf_metric_name(ivf_index_manifest(ix)->metric));
    if (os == S3V_OK && want_stats) os = put_statistics(b, &res.stats, &oi, ix);
    if (os == S3V_OK) os = hd_json_raw(b, "}");
    r->results = (uint32_t)res.len;
    ivf_result_free(&res);
    if (os != S3V_OK) st = hd_output_failed(r, os);
done:
    filter_free(flt);
    return st;
}

/* ---- GetVectors ---- */

static s3v_status put_vector_list(hd_req *r, const ivf_result *res, uint32_t dim, int want_data,
                                  int want_meta)
{
    s3v_buf *b = r->out;
    S3V_TRY(hd_json_raw(b, "{\"vectors\":["));
    for (size_t i = 0; i < res->len; i++) {
        const ivf_hit *hit = &res->hits[i];
        if (i) S3V_TRY(s3v_buf_append(b, ",", 1));
        S3V_TRY(put_key(b, hit));
        if (want_data && hit->data) S3V_TRY(put_data(b, hit->data, dim));
        if (want_meta) S3V_TRY(put_meta(b, hit));
        S3V_TRY(s3v_buf_append(b, "}", 1));
    }
    return hd_json_raw(b, "]");
}

s3v_status hd_op_get_vectors(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    int want_data = 0, want_meta = 0;
    const cJSON *keys = hd_member(r, "keys");
    if (!keys) return hd_err_field(r->err, "keys", "is required");
    if (!cJSON_IsArray(keys)) return hd_err_field(r->err, "keys", "must be a list of strings");
    int nk = cJSON_GetArraySize(keys);
    if (nk < 1 || nk > HD_GET_KEYS_MAX)
        return hd_err_field(r->err, "keys", "must have between 1 and %d keys (got %d)", HD_GET_KEYS_MAX, nk);
    const uint8_t *kp[HD_GET_KEYS_MAX];
    size_t kl[HD_GET_KEYS_MAX];
    int i = 0;
    for (const cJSON *e = keys->child; e; e = e->next, i++) {
        size_t chars = cJSON_IsString(e) ? hd_utf8_chars(e->valuestring) : 0;
        if (chars < 1 || chars > VECTOR_KEY_MAX_CHARS) {
            char path[32];
            snprintf(path, sizeof path, "keys[%d]", i);
            if (!cJSON_IsString(e)) return hd_err_field(r->err, path, "must be a string");
            return hd_err_field(r->err, path, "must be between 1 and %d characters long",
                                VECTOR_KEY_MAX_CHARS);
        }
        kp[i] = (const uint8_t *)e->valuestring;
        kl[i] = strlen(e->valuestring);
    }
    S3V_TRY(hd_get_bool(r, "returnData", &want_data));
    S3V_TRY(hd_get_bool(r, "returnMetadata", &want_meta));
    ivf_index *ix;
    hd_open_info oi;
    S3V_TRY(hd_open_index(r, &ix, &oi));
    ivf_result res;
    uint64_t t0 = s3v_now_ns();
    s3v_status st = ivf_index_get(ix, kp, kl, (size_t)nk, want_data, want_meta, r->deadline, &res);
    if (st == S3V_ERR_NOT_FOUND) {
        int changed = 0;
        s3v_status cs = hd_registry_recheck(r->h->reg, r->vb, r->idx, r->deadline, &changed);
        if (cs == S3V_ERR_NOT_FOUND) {
            r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
            return hd_not_found_index(r, cs);
        }
        if (cs == S3V_OK && changed && (ix = hd_registry_peek(r->h->reg, r->vb, r->idx)) != NULL)
            st = ivf_index_get(ix, kp, kl, (size_t)nk, want_data, want_meta, r->deadline, &res);
    }
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return hd_err_status(r->err, st, "keys");
    s3v_status os = put_vector_list(r, &res, ivf_index_manifest(ix)->dimension, want_data, want_meta);
    if (os == S3V_OK) os = hd_json_raw(r->out, "}");
    r->results = (uint32_t)res.len;
    ivf_result_free(&res);
    return os == S3V_OK ? S3V_OK : hd_output_failed(r, os);
}

/* ---- ListVectors ---- */

s3v_status hd_op_list_vectors(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    long long max_results = LIST_DEFAULT_RESULTS, segc = 1, segi = 0;
    int has_segc = 0, has_segi = 0, want_data = 0, want_meta = 0;
    const char *token;
    S3V_TRY(hd_get_int(r, "maxResults", 1, HD_LIST_MAX_RESULTS, 0, &max_results, NULL));
    S3V_TRY(hd_get_string(r, "nextToken", 1, LIST_TOKEN_MAX_CHARS, 0, &token));
    S3V_TRY(hd_get_int(r, "segmentCount", 1, HD_LIST_SEGMENTS, 0, &segc, &has_segc));
    S3V_TRY(hd_get_int(r, "segmentIndex", 0, HD_LIST_SEGMENTS - 1, 0, &segi, &has_segi));
    if (has_segc && !has_segi)
        return hd_err_field(r->err, "segmentIndex", "is required when segmentCount is given");
    if (has_segi && !has_segc)
        return hd_err_field(r->err, "segmentCount", "is required when segmentIndex is given");
    if (segi >= segc)
        return hd_err_field(r->err, "segmentIndex", "must be less than segmentCount (%lld)", segc);
    S3V_TRY(hd_get_bool(r, "returnData", &want_data));
    S3V_TRY(hd_get_bool(r, "returnMetadata", &want_meta));
    ivf_index *ix;
    hd_open_info oi;
    S3V_TRY(hd_open_index(r, &ix, &oi));
    ivf_list_req lr = {.segment_count = (uint32_t)segc,
                       .segment_index = (uint32_t)segi,
                       .max_results = (uint32_t)max_results,
                       .next_token = token,
                       .want_data = want_data,
                       .want_metadata = want_meta,
                       .deadline_ns = r->deadline};
    ivf_result res;
    char next[IVF_TOKEN_MAX];
    uint64_t t0 = s3v_now_ns();
    s3v_status st = ivf_index_list(ix, &lr, &res, next);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return hd_err_status(r->err, st, "nextToken");
    s3v_status os = put_vector_list(r, &res, ivf_index_manifest(ix)->dimension, want_data, want_meta);
    if (os == S3V_OK && next[0]) {
        os = hd_json_raw(r->out, ",\"nextToken\":");
        if (os == S3V_OK) os = hd_json_cstr(r->out, next);
    }
    if (os == S3V_OK) os = hd_json_raw(r->out, "}");
    r->results = (uint32_t)res.len;
    ivf_result_free(&res);
    return os == S3V_OK ? S3V_OK : hd_output_failed(r, os);
}

/* ---- GetIndex / ListIndexes ---- */

/* creationTime "YYYY-MM-DDTHH:MM:SS[.fff]Z" as Unix seconds (the rest-json timestamp format); 0 if unparseable. */
static double creation_epoch(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi;
    double s;
    if (sscanf(iso, "%d-%d-%dT%d:%d:%lf", &y, &mo, &d, &h, &mi, &s) != 6) return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = 0;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? 0 : (double)t + s;
}

static s3v_status put_index(hd_req *r, const char *vb, const char *idx, const ivf_manifest *m, int full)
{
    s3v_buf *b = r->out;
    char arn[256];
    hd_arn_format_index(arn, sizeof arn, r->region, r->account, vb, idx);
    S3V_TRY(hd_json_raw(b, "{\"vectorBucketName\":"));
    S3V_TRY(hd_json_cstr(b, vb));
    S3V_TRY(hd_json_raw(b, ",\"indexName\":"));
    S3V_TRY(hd_json_cstr(b, idx));
    S3V_TRY(hd_json_raw(b, ",\"indexArn\":"));
    S3V_TRY(hd_json_cstr(b, arn));
    S3V_TRY(hd_json_raw(b, ",\"creationTime\":"));
    S3V_TRY(hd_json_f64(b, creation_epoch(m->creation_time)));
    if (full) {
        S3V_TRY(s3v_buf_printf(
            b, ",\"dataType\":\"float32\",\"dimension\":%u,\"distanceMetric\":", m->dimension));
        S3V_TRY(hd_json_cstr(b, ivf_metric_name(m->metric)));
        if (m->non_filterable_len) {
            S3V_TRY(hd_json_raw(b, ",\"metadataConfiguration\":{\"nonFilterableMetadataKeys\":["));
            for (size_t i = 0; i < m->non_filterable_len; i++) {
                if (i) S3V_TRY(s3v_buf_append(b, ",", 1));
                S3V_TRY(hd_json_cstr(b, m->non_filterable[i]));
            }
            S3V_TRY(hd_json_raw(b, "]}"));
        }
    }
    return hd_json_raw(b, "}");
}

/* The manifest of vb/idx: from the open index when there is one, else one GET (the index is not
 * opened: GetIndex and ListIndexes do not load centroids). */
static s3v_status read_manifest(hd_req *r, const char *vb, const char *idx, ivf_manifest *out, int *have)
{
    *have = 0;
    char key[2 * HD_NAME_MAX + 16];
    snprintf(key, sizeof key, "%s/%s/manifest", vb, idx);
    s3v_buf buf;
    s3v_buf_init(&buf, IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE);
    uint64_t t0 = s3v_now_ns();
    s3v_status st = s3v_storage_get(r->h->st, key, r->deadline, &buf, NULL);
    if (st == S3V_OK) {
        st = ivf_manifest_decode(buf.ptr, buf.len, out);
        if (st != S3V_OK) st = s3v_error_context(st, "manifest of index %s/%s", vb, idx);
    }
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    s3v_buf_free(&buf);
    if (st == S3V_OK) *have = 1;
    return st;
}

s3v_status hd_op_get_index(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    ivf_index *ix = hd_registry_peek(r->h->reg, r->vb, r->idx);
    s3v_status st;
    if (ix) { /* open: go through the registry so freshness applies */
        hd_open_info oi;
        S3V_TRY(hd_open_index(r, &ix, &oi));
        st = hd_json_raw(r->out, "{\"index\":");
        if (st == S3V_OK) st = put_index(r, r->vb, r->idx, ivf_index_manifest(ix), 1);
    } else {
        ivf_manifest m;
        int have;
        st = read_manifest(r, r->vb, r->idx, &m, &have);
        if (st == S3V_ERR_NOT_FOUND) return hd_not_found_index(r, st);
        if (st != S3V_OK) return hd_err_status(r->err, st, NULL);
        st = hd_json_raw(r->out, "{\"index\":");
        if (st == S3V_OK) st = put_index(r, r->vb, r->idx, &m, 1);
        ivf_manifest_free(&m);
    }
    if (st == S3V_OK) st = hd_json_raw(r->out, "}");
    if (st != S3V_OK) return hd_output_failed(r, st);
    r->results = 1;
    return S3V_OK;
}

typedef struct list_names {
    char (*names)[HD_NAME_MAX];
    size_t len, cap;
    size_t skip_len;   /* "vb/" */
    const char *after; /* names <= this are skipped (nextToken) */
} list_names;

static int collect_name(void *arg, const char *key, uint64_t size, int is_prefix)
{
    list_names *ln = arg;
    if (!is_prefix) return 0; /* a stray object directly under the bucket prefix */
    size_t kl = strlen(key);
    if (kl <= ln->skip_len + 1) return 0;
    const char *name = key + ln->skip_len;
    size_t nl = kl - ln->skip_len - 1;             /* without the trailing '/' */
    if (hd_name_index_problem(name, nl)) return 0; /* not something an index could be named */
    char tmp[HD_NAME_MAX];
    memcpy(tmp, name, nl);
    tmp[nl] = 0;
    if (ln->after && strcmp(tmp, ln->after) <= 0) return 0;
    memcpy(ln->names[ln->len++], tmp, nl + 1);
    return ln->len == ln->cap; /* stop once we have one more than a page */
}

s3v_status hd_op_list_indexes(hd_req *r)
{
    const char *vbn, *arn, *token, *prefix, *why;
    long long max_results = INDEXES_DEFAULT_RESULTS;
    char vb[HD_NAME_MAX];
    S3V_TRY(hd_get_string(r, "vectorBucketName", 0, SIZE_MAX, 0, &vbn));
    S3V_TRY(hd_get_string(r, "vectorBucketArn", 1, INDEX_ARN_MAX_CHARS, 0, &arn));
    S3V_TRY(hd_get_int(r, "maxResults", 1, HD_LIST_INDEXES_MAX, 0, &max_results, NULL));
    S3V_TRY(hd_get_string(r, "nextToken", 1, INDEX_TOKEN_MAX_CHARS, 0, &token));
    S3V_TRY(hd_get_string(r, "prefix", 1, 63, 0, &prefix));
    if (vbn && (why = hd_name_bucket_problem(vbn, strlen(vbn))) != NULL)
        return hd_err_field(r->err, "vectorBucketName", "%s", why);
    if (arn) {
        if ((why = hd_arn_parse_bucket(arn, strlen(arn), vb)) != NULL)
            return hd_err_field(r->err, "vectorBucketArn", "%s", why);
        if (vbn && strcmp(vbn, vb) != 0)
            return hd_err_field(r->err, "vectorBucketArn",
                                "names another vector bucket than vectorBucketName");
    } else if (vbn) {
        snprintf(vb, sizeof vb, "%s", vbn);
    } else {
        return hd_err_field(r->err, "vectorBucketName", "is required (or give vectorBucketArn)");
    }
    if (token && hd_name_index_problem(token, strlen(token)))
        return hd_err_field(r->err, "nextToken", "is not a token returned by ListIndexes");
    if (prefix) {
        for (const char *p = prefix; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
                return hd_err_field(r->err, "prefix",
                                    "may contain only lowercase letters, digits, hyphens and periods");
    }
    snprintf(r->vb, sizeof r->vb, "%s", vb);
    list_names ln = {0};
    ln.cap = (size_t)max_results + 1;
    ln.names = malloc(ln.cap * sizeof *ln.names);
    if (!ln.names) return hd_err_set(r->err, HD_ERR_INTERNAL, S3V_ERR_NOMEM, "out of memory");
    char lprefix[2 * HD_NAME_MAX + 2];
    snprintf(lprefix, sizeof lprefix, "%s/%s", vb, prefix ? prefix : "");
    char after[2 * HD_NAME_MAX + 2];
    if (token) snprintf(after, sizeof after, "%s/%s", vb, token);
    ln.skip_len = strlen(vb) + 1;
    ln.after = token;
    s3v_list_req lr = {.prefix = lprefix, .delimiter = "/", .start_after = token ? after : NULL};
    uint64_t t0 = s3v_now_ns();
    s3v_status st = s3v_storage_list(r->h->st, &lr, r->deadline, collect_name, &ln);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) {
        free(ln.names);
        return hd_err_status(r->err, st, NULL);
    }
    s3v_buf *b = r->out;
    s3v_status os = hd_json_raw(b, "{\"indexes\":[");
    size_t shown = 0, i;
    const char *last = NULL; /* the last name handled (shown, or skipped as not an index) */
    int more = ln.len == ln.cap;
    for (i = 0; os == S3V_OK && i < ln.len && shown < (size_t)max_results; i++) {
        const char *name = ln.names[i];
        ivf_index *ix = hd_registry_peek(r->h->reg, vb, name);
        ivf_manifest m;
        int have = 0;
        const ivf_manifest *mp = ix ? ivf_index_manifest(ix) : NULL;
        if (!mp) {
            st = read_manifest(r, vb, name, &m, &have);
            if (st == S3V_ERR_NOT_FOUND) { /* a folder without a manifest is not an index */
                st = S3V_OK;
                last = name;
                continue;
            }
            if (st != S3V_OK) {
                if (shown > 0 && st == S3V_ERR_TIMEOUT) { /* out of time: return this page */
                    more = 1;
                    st = S3V_OK;
                    break;
                }
                break;
            }
            mp = &m;
        }
        if (shown) os = s3v_buf_append(b, ",", 1);
        if (os == S3V_OK) os = put_index(r, vb, name, mp, 0);
        if (have) ivf_manifest_free(&m);
        shown++;
        last = name;
    }
    if (i < ln.len) more = 1;
    if (st != S3V_OK) {
        free(ln.names);
        return hd_err_status(r->err, st, NULL);
    }
    if (os == S3V_OK) os = hd_json_raw(b, "]");
    if (os == S3V_OK && more && last) {
        os = hd_json_raw(b, ",\"nextToken\":");
        if (os == S3V_OK) os = hd_json_cstr(b, last);
    }
    if (os == S3V_OK) os = hd_json_raw(b, "}");
    free(ln.names);
    r->results = (uint32_t)shown;
    return os == S3V_OK ? S3V_OK : hd_output_failed(r, os);
}
