/* handler/ops_write.c: the S3 Vectors write operations (CreateIndex, DeleteIndex, PutVectors,
 * DeleteVectors) and the Compact invocation: request validation against the s3vectors service model,
 * the engine call (engine/wal.h, engine/compact.h), and the output shape. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "engine/build.h"
#include "engine/compact.h"
#include "engine/filter.h"
#include "engine/format.h"
#include "engine/input.h"
#include "engine/wal.h"
#include "handler/handler_int.h"
#include "handler/jsonw.h"

#define VECTOR_KEY_MAX_CHARS   1024
#define BUCKET_ARN_MAX_CHARS   2048
#define METADATA_KEY_MAX_CHARS 63

/* The vector bucket of CreateIndex: vectorBucketName or vectorBucketArn (both when they agree). */
static s3v_status resolve_bucket(hd_req *r)
{
    const char *vbn, *arn, *why;
    S3V_TRY(hd_get_string(r, "vectorBucketName", 0, SIZE_MAX, 0, &vbn));
    S3V_TRY(hd_get_string(r, "vectorBucketArn", 1, BUCKET_ARN_MAX_CHARS, 0, &arn));
    if (vbn && (why = hd_name_bucket_problem(vbn, strlen(vbn))) != NULL)
        return hd_err_field(r->err, "vectorBucketName", "%s", why);
    if (arn) {
        char vb[HD_NAME_MAX];
        if ((why = hd_arn_parse_bucket(arn, strlen(arn), vb)) != NULL)
            return hd_err_field(r->err, "vectorBucketArn", "%s", why);
        if (vbn && strcmp(vbn, vb) != 0)
            return hd_err_field(r->err, "vectorBucketArn",
                                "names another vector bucket than vectorBucketName");
        memcpy(r->vb, vb, sizeof vb);
        return S3V_OK;
    }
    if (!vbn) return hd_err_field(r->err, "vectorBucketName", "is required (or give vectorBucketArn)");
    memcpy(r->vb, vbn, strlen(vbn) + 1);
    return S3V_OK;
}

static void engine_prefix(const hd_req *r, char *out, size_t n) { snprintf(out, n, "%s/%s", r->vb, r->idx); }

static s3v_status write_failed(hd_req *r, s3v_status st, const char *path)
{
    if (st == S3V_ERR_NOT_FOUND) return hd_not_found_index(r, st);
    return hd_err_status(r->err, st, path);
}

/* ---- CreateIndex ---- */

s3v_status hd_op_create_index(hd_req *r)
{
    S3V_TRY(resolve_bucket(r));
    const char *ixn, *dtype, *metric_s, *enc_s, *why;
    S3V_TRY(hd_get_string(r, "indexName", 0, SIZE_MAX, 1, &ixn));
    if ((why = hd_name_index_problem(ixn, strlen(ixn))) != NULL)
        return hd_err_field(r->err, "indexName", "%s", why);
    memcpy(r->idx, ixn, strlen(ixn) + 1);
    S3V_TRY(hd_get_string(r, "dataType", 0, SIZE_MAX, 1, &dtype));
    if (strcmp(dtype, "float32") != 0) return hd_err_field(r->err, "dataType", "must be float32");
    long long dim = 0;
    S3V_TRY(hd_get_int(r, "dimension", 1, IVF_DIM_MAX, 1, &dim, NULL));
    S3V_TRY(hd_get_string(r, "distanceMetric", 0, SIZE_MAX, 1, &metric_s));
    ivf_metric metric;
    if (strcmp(metric_s, "euclidean") && strcmp(metric_s, "cosine") && strcmp(metric_s, "dot"))
        return hd_err_field(r->err, "distanceMetric", "must be euclidean or cosine (or the extension dot)");
    if (ivf_metric_parse(metric_s, &metric) != S3V_OK)
        return hd_err_field(r->err, "distanceMetric", "must be euclidean or cosine");
    ivf_encoding enc = IVF_ENC_F32;
    S3V_TRY(
        hd_get_string(r, "encoding", 0, SIZE_MAX, 0, &enc_s)); /* extension: how compaction stores vectors */
    if (enc_s && (strcmp(enc_s, "f32") && strcmp(enc_s, "f16") && strcmp(enc_s, "i8")))
        return hd_err_field(r->err, "encoding", "must be f32, f16 or i8");
    if (enc_s && ivf_encoding_parse(enc_s, &enc) != S3V_OK)
        return hd_err_field(r->err, "encoding", "must be f32, f16 or i8");
    const char *nf[HD_NON_FILTERABLE_MAX];
    size_t nf_len = 0;
    const cJSON *mc = hd_member(r, "metadataConfiguration");
    if (mc) {
        if (!cJSON_IsObject(mc)) return hd_err_field(r->err, "metadataConfiguration", "must be an object");
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(mc, "nonFilterableMetadataKeys");
        if (!keys || cJSON_IsNull(keys))
            return hd_err_field(r->err, "metadataConfiguration.nonFilterableMetadataKeys", "is required");
        int n = cJSON_GetArraySize(keys);
        if (!cJSON_IsArray(keys) || n < 1 || n > HD_NON_FILTERABLE_MAX)
            return hd_err_field(r->err, "metadataConfiguration.nonFilterableMetadataKeys",
                                "must be a list of 1 to %d keys", HD_NON_FILTERABLE_MAX);
        for (const cJSON *k = keys->child; k; k = k->next) {
            size_t chars = cJSON_IsString(k) ? hd_utf8_chars(k->valuestring) : 0;
            if (chars < 1 || chars > METADATA_KEY_MAX_CHARS) {
                char path[96];
                snprintf(path, sizeof path, "metadataConfiguration.nonFilterableMetadataKeys[%zu]", nf_len);
                return hd_err_field(r->err, path, "must be a string of 1 to %d characters",
                                    METADATA_KEY_MAX_CHARS);
            }
            for (size_t i = 0; i < nf_len; i++)
                if (!strcmp(nf[i], k->valuestring))
                    return hd_err_field(r->err, "metadataConfiguration.nonFilterableMetadataKeys",
                                        "lists a key twice");
            nf[nf_len++] = k->valuestring;
        }
    }
    char prefix[2 * HD_NAME_MAX + 2];
    engine_prefix(r, prefix, sizeof prefix);
    uint64_t t0 = s3v_now_ns();
    s3v_status st = ivf_create_empty(hd_registry_storage(r->h->reg), prefix, (uint32_t)dim, metric, enc, nf,
                                     nf_len, 0, r->deadline, NULL);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    hd_registry_forget(r->h->reg, r->vb,
                       r->idx); /* whatever this process knew of an earlier index of the name */
    if (st == S3V_ERR_CONFLICT)
        return hd_err_set(r->err, HD_ERR_CONFLICT, st, "An index named %s already exists in vector bucket %s",
                          r->idx, r->vb);
    if (st != S3V_OK) return hd_err_status(r->err, st, NULL);
    char arn[256];
    hd_arn_format_index(arn, sizeof arn, r->region, r->account, r->vb, r->idx);
    st = hd_json_raw(r->out, "{\"indexArn\":");
    if (st == S3V_OK) st = hd_json_cstr(r->out, arn);
    if (st == S3V_OK) st = hd_json_raw(r->out, "}");
    r->results = 1;
    return st == S3V_OK ? S3V_OK : hd_output_failed(r, st);
}

/* ---- DeleteIndex ---- */

s3v_status hd_op_delete_index(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    char prefix[2 * HD_NAME_MAX + 2];
    engine_prefix(r, prefix, sizeof prefix);
    uint64_t t0 = s3v_now_ns();
    s3v_status st = ivf_drop(hd_registry_storage(r->h->reg), prefix, r->deadline);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    hd_registry_forget(r->h->reg, r->vb, r->idx);
    if (st == S3V_ERR_NOT_FOUND) return hd_not_found_index(r, st);
    if (st != S3V_OK) return hd_err_status(r->err, st, NULL);
    st = hd_json_raw(r->out, "{}");
    return st == S3V_OK ? S3V_OK : hd_output_failed(r, st);
}

/* ---- PutVectors / DeleteVectors ---- */

static s3v_status writer_for(hd_req *r, wal_writer **w, const ivf_manifest **m)
{
    s3v_status st = hd_registry_writer(r->h->reg, r->vb, r->idx, w);
    if (st != S3V_OK) return hd_err_status(r->err, st, NULL);
    uint64_t t0 = s3v_now_ns();
    st = wal_writer_prepare(*w, r->deadline, m);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return write_failed(r, st, NULL);
    return S3V_OK;
}

static s3v_status append(hd_req *r, wal_writer *w, const wal_batch *b)
{
    uint64_t t0 = s3v_now_ns();
    wal_append_info info;
    s3v_status st = wal_writer_append(w, b, r->deadline, &info);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st != S3V_OK) return write_failed(r, st, NULL);
    s3v_log(S3V_LOG_DEBUG, "index %s/%s: %u records in log slot %llu (%u conflicts, %u requests)", r->vb,
            r->idx, b->count, (unsigned long long)info.seq, info.conflicts, info.requests);
    r->results = b->count;
    st = hd_json_raw(r->out, "{}");
    return st == S3V_OK ? S3V_OK : hd_output_failed(r, st);
}

/* The vector of one PutVectors entry into v (dim floats). */
static s3v_status parse_data(hd_req *r, const cJSON *vec, int i, const ivf_manifest *m, float *v)
{
    char path[64];
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(vec, "data");
    snprintf(path, sizeof path, "vectors[%d].data", i);
    if (!data || cJSON_IsNull(data)) return hd_err_field(r->err, path, "is required");
    if (!cJSON_IsObject(data))
        return hd_err_field(r->err, path, "must be an object such as {\"float32\": [...]}");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(data, "float32");
    snprintf(path, sizeof path, "vectors[%d].data.float32", i);
    if (!f || cJSON_IsNull(f)) return hd_err_field(r->err, path, "is required");
    if (!cJSON_IsArray(f)) return hd_err_field(r->err, path, "must be a list of numbers");
    uint32_t n = 0;
    for (const cJSON *e = f->child; e; e = e->next, n++) {
        if (n >= m->dimension) break;
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || !isfinite(d) || fabs(d) > FLT_MAX) {
            snprintf(path, sizeof path, "vectors[%d].data.float32[%u]", i, n);
            return hd_err_field(r->err, path,
                                cJSON_IsNumber(e) ? "must be a finite 32-bit float" : "must be a number");
        }
        v[n] = (float)d;
    }
    int total = cJSON_GetArraySize(f);
    if (total != (int)m->dimension)
        return hd_err_field(r->err, path, "has %d elements; the index has dimension %u", total, m->dimension);
    s3v_status st = wal_vector_check(m->metric, m->encoding, v, m->dimension);
    if (st != S3V_OK) return hd_err_field(r->err, path, "%s", s3v_errmsg(st));
    return S3V_OK;
}

static s3v_status check_key(hd_req *r, const cJSON *k, const char *path)
{
    size_t chars = cJSON_IsString(k) ? hd_utf8_chars(k->valuestring) : 0;
    if (!cJSON_IsString(k)) return hd_err_field(r->err, path, k ? "must be a string" : "is required");
    if (chars < 1 || chars > VECTOR_KEY_MAX_CHARS)
        return hd_err_field(r->err, path, "must be between 1 and %d characters long", VECTOR_KEY_MAX_CHARS);
    return S3V_OK;
}

s3v_status hd_op_put_vectors(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    const cJSON *vectors = hd_member(r, "vectors");
    if (!vectors) return hd_err_field(r->err, "vectors", "is required");
    int nv = cJSON_GetArraySize(vectors);
    if (!cJSON_IsArray(vectors)) return hd_err_field(r->err, "vectors", "must be a list");
    if (nv < 1 || nv > HD_PUT_VECTORS_MAX)
        return hd_err_field(r->err, "vectors", "must have between 1 and %d vectors (got %d)",
                            HD_PUT_VECTORS_MAX, nv);
    wal_writer *w;
    const ivf_manifest *m;
    S3V_TRY(writer_for(r, &w, &m));
    wal_batch b;
    wal_batch_init(&b, m->dimension);
    s3v_buf meta;
    s3v_buf_init(&meta, WAL_MAX_META_SIZE);
    s3v_status st = S3V_OK;
    int i = 0;
    for (const cJSON *vec = vectors->child; vec && st == S3V_OK; vec = vec->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "vectors[%d]", i);
        if (!cJSON_IsObject(vec)) {
            st = hd_err_field(r->err, path, "must be an object with key and data");
            break;
        }
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(vec, "key");
        snprintf(path, sizeof path, "vectors[%d].key", i);
        if ((st = check_key(r, k && !cJSON_IsNull(k) ? k : NULL, path)) != S3V_OK) break;
        if ((st = parse_data(r, vec, i, m, r->h->qvec)) != S3V_OK) break;
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(vec, "metadata");
        s3v_buf_reset(&meta);
        if (md && !cJSON_IsNull(md)) {
            snprintf(path, sizeof path, "vectors[%d].metadata", i);
            if (!cJSON_IsObject(md)) {
                st = hd_err_field(r->err, path, "must be an object");
                break;
            }
            s3v_status vs =
                metadata_validate(md, (const char *const *)m->non_filterable, m->non_filterable_len);
            if (vs == S3V_OK) vs = metadata_serialize(md, &meta);
            if (vs != S3V_OK) {
                st = hd_err_field(r->err, path, "%s", s3v_errmsg(vs));
                break;
            }
        }
        s3v_status bs = wal_batch_put(&b, (const uint8_t *)k->valuestring, strlen(k->valuestring), r->h->qvec,
                                      meta.len ? meta.ptr : NULL, meta.len);
        if (bs != S3V_OK) st = hd_err_field(r->err, path, "%s", s3v_errmsg(bs));
    }
    if (st == S3V_OK) st = append(r, w, &b);
    wal_batch_free(&b);
    s3v_buf_free(&meta);
    return st;
}

s3v_status hd_op_delete_vectors(hd_req *r)
{
    S3V_TRY(hd_resolve_index(r));
    const cJSON *keys = hd_member(r, "keys");
    if (!keys) return hd_err_field(r->err, "keys", "is required");
    int nk = cJSON_GetArraySize(keys);
    if (!cJSON_IsArray(keys)) return hd_err_field(r->err, "keys", "must be a list of strings");
    if (nk < 1 || nk > HD_PUT_VECTORS_MAX)
        return hd_err_field(r->err, "keys", "must have between 1 and %d keys (got %d)", HD_PUT_VECTORS_MAX,
                            nk);
    int i = 0;
    for (const cJSON *k = keys->child; k; k = k->next, i++) {
        char path[32];
        snprintf(path, sizeof path, "keys[%d]", i);
        S3V_TRY(check_key(r, k, path));
    }
    wal_writer *w;
    const ivf_manifest *m;
    S3V_TRY(writer_for(r, &w, &m));
    wal_batch b;
    wal_batch_init(&b, m->dimension);
    s3v_status st = S3V_OK;
    i = 0;
    for (const cJSON *k = keys->child; k && st == S3V_OK; k = k->next, i++) {
        s3v_status bs = wal_batch_delete(&b, (const uint8_t *)k->valuestring, strlen(k->valuestring));
        if (bs != S3V_OK) {
            char path[32];
            snprintf(path, sizeof path, "keys[%d]", i);
            st = hd_err_field(r->err, path, "%s", s3v_errmsg(bs));
        }
    }
    if (st == S3V_OK) st = append(r, w, &b);
    wal_batch_free(&b);
    return st;
}

/* ---- Compact (a direct invocation: the scheduled rule, or an operator) ---- */

typedef struct name_list {
    char (*v)[HD_NAME_MAX];
    size_t len, cap;
    size_t skip;
    int bucket; /* names are vector buckets (else indexes) */
} name_list;

static int on_name(void *arg, const char *key, uint64_t size, int is_prefix)
{
    name_list *l = arg;
    size_t kl = strlen(key);
    if (!is_prefix || kl <= l->skip + 1) return 0;
    const char *name = key + l->skip;
    size_t n = kl - l->skip - 1;
    if ((l->bucket ? hd_name_bucket_problem(name, n) : hd_name_index_problem(name, n)) != NULL) return 0;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char(*p)[HD_NAME_MAX] = realloc(l->v, cap * sizeof *p);
        if (!p) return 1;
        l->v = p;
        l->cap = cap;
    }
    memcpy(l->v[l->len], name, n);
    l->v[l->len++][n] = 0;
    return 0;
}

static s3v_status list_names(hd_req *r, const char *prefix, int bucket, name_list *out)
{
    memset(out, 0, sizeof *out);
    out->skip = strlen(prefix);
    out->bucket = bucket;
    s3v_list_req lr = {prefix, "/", NULL, 0};
    return s3v_storage_list(hd_registry_storage(r->h->reg), &lr, r->deadline, on_name, out);
}

static s3v_status compact_one(hd_req *r, const char *vb, const char *idx, int gc_only, int *first,
                              int *timed_out)
{
    char prefix[2 * HD_NAME_MAX + 2];
    snprintf(prefix, sizeof prefix, "%s/%s", vb, idx);
    ivf_compact_opts o = {.tmp_dir = r->h->cfg.tmp_dir,
                          .deadline_ns = r->deadline,
                          .gc_only = gc_only,
                          .tail_max_bytes = r->h->cfg.compact_max_bytes};
    ivf_compact_report rep;
    uint64_t t0 = s3v_now_ns();
    s3v_status st = ivf_compact(hd_registry_storage(r->h->reg), prefix, &o, &rep);
    r->ms_engine += (double)(s3v_now_ns() - t0) / 1e6;
    if (st == S3V_ERR_NOT_FOUND && r->idx[0]) return hd_not_found_index(r, st);
    if (st == S3V_ERR_NOT_FOUND) { /* listed: not an index (any more): the logs a DeleteIndex left behind */
        s3v_error_clear();
        st = ivf_collect_dropped(hd_registry_storage(r->h->reg), prefix, r->deadline, &rep);
        if (st != S3V_OK || !rep.gc_dead_logs) return S3V_OK;
        s3v_log(S3V_LOG_INFO, "compact %s: deleted %u logs of a deleted index (%llu objects)", prefix,
                rep.gc_dead_logs, (unsigned long long)rep.gc_objects);
        return S3V_OK;
    }
    if (st == S3V_OK && rep.committed)
        hd_registry_forget(r->h->reg, vb, idx); /* reopen on the next request */
    s3v_buf *b = r->out;
    S3V_TRY(hd_json_raw(b, *first ? "{\"vectorBucketName\":" : ",{\"vectorBucketName\":"));
    *first = 0;
    S3V_TRY(hd_json_cstr(b, vb));
    S3V_TRY(hd_json_raw(b, ",\"indexName\":"));
    S3V_TRY(hd_json_cstr(b, idx));
    if (st != S3V_OK) {
        hd_error e;
        memset(&e, 0, sizeof e);
        hd_err_status(&e, st, NULL);
        if (st == S3V_ERR_TIMEOUT) *timed_out = 1;
        S3V_TRY(hd_json_raw(b, ",\"errorType\":"));
        S3V_TRY(hd_json_cstr(b, hd_err_type_name(e.type)));
        S3V_TRY(hd_json_raw(b, ",\"errorMessage\":"));
        S3V_TRY(hd_json_cstr(b, e.message));
        s3v_log(S3V_LOG_WARN, "compact %s: %s", prefix, e.message);
        return hd_json_raw(b, "}");
    }
    r->results++;
    S3V_TRY(
        s3v_buf_printf(b,
                       ",\"committed\":%s,\"foldedObjects\":%llu,\"foldedRecords\":%llu,\"countBefore\":%llu,"
                       "\"countAfter\":%llu,\"nlistBefore\":%u,\"nlistAfter\":%u,\"splitClusters\":%u,"
                       "\"retrained\":%s,\"lostRaces\":%d,\"garbageObjects\":%llu,\"garbagePending\":%u",
                       rep.committed ? "true" : "false", (unsigned long long)rep.folded_objects,
                       (unsigned long long)rep.folded_records, (unsigned long long)rep.count_before,
                       (unsigned long long)rep.count_after, rep.nlist_before, rep.nlist_after, rep.splits,
                       rep.retrained ? "true" : "false", rep.lost_races, (unsigned long long)rep.gc_objects,
                       rep.gc_pending));
    if (rep.retrain_reason) {
        S3V_TRY(hd_json_raw(b, ",\"retrainReason\":"));
        S3V_TRY(hd_json_cstr(b, rep.retrain_reason));
    }
    S3V_TRY(hd_json_raw(b, ",\"generation\":"));
    S3V_TRY(hd_json_cstr(b, rep.generation));
    S3V_TRY(hd_json_raw(b, ",\"seconds\":"));
    S3V_TRY(hd_json_f64(b, rep.seconds_total));
    s3v_log(S3V_LOG_INFO, "compact %s: %s, folded %llu records in %llu objects, %llu -> %llu vectors, %.2f s",
            prefix, rep.committed ? "committed" : "nothing to commit", (unsigned long long)rep.folded_records,
            (unsigned long long)rep.folded_objects, (unsigned long long)rep.count_before,
            (unsigned long long)rep.count_after, rep.seconds_total);
    return hd_json_raw(b, "}");
}

s3v_status hd_op_compact(hd_req *r)
{
    int gc_only = 0;
    S3V_TRY(hd_get_bool(r, "gcOnly", &gc_only));
    const char *vbn, *ixn, *arn;
    S3V_TRY(hd_get_string(r, "vectorBucketName", 0, SIZE_MAX, 0, &vbn));
    S3V_TRY(hd_get_string(r, "indexName", 0, SIZE_MAX, 0, &ixn));
    S3V_TRY(hd_get_string(r, "indexArn", 0, SIZE_MAX, 0, &arn));
    int one = ixn || arn;
    if (one)
        S3V_TRY(hd_resolve_index(r));
    else if (vbn) {
        const char *why = hd_name_bucket_problem(vbn, strlen(vbn));
        if (why) return hd_err_field(r->err, "vectorBucketName", "%s", why);
        snprintf(r->vb, sizeof r->vb, "%s", vbn);
    }
    s3v_status st = hd_json_raw(r->out, "{\"indexes\":[");
    int first = 1, timed_out = 0;
    if (st == S3V_OK && one) {
        st = compact_one(r, r->vb, r->idx, gc_only, &first, &timed_out);
    } else if (st == S3V_OK) { /* every index of one vector bucket, or of every vector bucket */
        name_list buckets = {0};
        if (vbn) {
            buckets.v = malloc(sizeof *buckets.v);
            if (buckets.v) {
                snprintf(buckets.v[0], HD_NAME_MAX, "%s", vbn);
                buckets.len = 1;
            }
        } else {
            st = list_names(r, "", 1, &buckets);
        }
        for (size_t bi = 0; st == S3V_OK && bi < buckets.len && !timed_out; bi++) {
            char p[HD_NAME_MAX + 2];
            snprintf(p, sizeof p, "%s/", buckets.v[bi]);
            name_list idx;
            st = list_names(r, p, 0, &idx);
            for (size_t ii = 0; st == S3V_OK && ii < idx.len && !timed_out; ii++)
                st = compact_one(r, buckets.v[bi], idx.v[ii], gc_only, &first, &timed_out);
            free(idx.v);
        }
        free(buckets.v);
        if (st != S3V_OK && st != S3V_ERR_TOO_LARGE && st != S3V_ERR_NOMEM)
            return hd_err_status(r->err, st, NULL);
    }
    if (st == S3V_ERR_NOT_FOUND) return st; /* the named index: the error is set */
    if (st == S3V_OK) st = hd_json_raw(r->out, timed_out ? "],\"complete\":false}" : "],\"complete\":true}");
    return st == S3V_OK ? S3V_OK : hd_output_failed(r, st);
}
