/* engine/format.c: the on-disk objects of engine/FORMAT.md. */
#include "engine/format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "common/crc32c.h"
#include "common/le.h"

static const uint8_t MANIFEST_MAGIC[8] = {'S', '3', 'V', 'M', 'A', 'N', 'I', 0};
static const uint8_t CENTROIDS_MAGIC[8] = {'S', '3', 'V', 'C', 'E', 'N', 'T', 0};
static const uint8_t BLOCK_MAGIC[4] = {'S', '3', 'V', 'B'};

const char *ivf_metric_name(ivf_metric m)
{
    switch (m) {
    case IVF_METRIC_EUCLIDEAN: return "euclidean";
    case IVF_METRIC_COSINE: return "cosine";
    case IVF_METRIC_DOT: return "dot";
    }
    return "unknown";
}

s3v_status ivf_metric_parse(const char *s, ivf_metric *out)
{
    if (s && strcmp(s, "euclidean") == 0)
        *out = IVF_METRIC_EUCLIDEAN;
    else if (s && strcmp(s, "cosine") == 0)
        *out = IVF_METRIC_COSINE;
    else if (s && strcmp(s, "dot") == 0)
        *out = IVF_METRIC_DOT;
    else
        return s3v_errorf(S3V_ERR_INVALID, "unknown metric '%s' (expected euclidean, cosine or dot)",
                          s ? s : "");
    return S3V_OK;
}

const char *ivf_encoding_name(ivf_encoding e)
{
    switch (e) {
    case IVF_ENC_F32: return "f32";
    case IVF_ENC_F16: return "f16";
    case IVF_ENC_I8: return "i8";
    }
    return "unknown";
}

s3v_status ivf_encoding_parse(const char *s, ivf_encoding *out)
{
    if (s && (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0))
        *out = IVF_ENC_F32;
    else if (s && (strcmp(s, "f16") == 0 || strcmp(s, "float16") == 0))
        *out = IVF_ENC_F16;
    else if (s && (strcmp(s, "i8") == 0 || strcmp(s, "int8") == 0))
        *out = IVF_ENC_I8;
    else
        return s3v_errorf(S3V_ERR_INVALID, "unknown encoding '%s' (expected f32, f16 or i8)", s ? s : "");
    return S3V_OK;
}

size_t ivf_encoding_size(ivf_encoding e) { return e == IVF_ENC_F32 ? 4 : e == IVF_ENC_F16 ? 2 : 1; }

uint64_t ivf_key_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h;
}

s3v_status ivf_key_join(const char *prefix, const char *name, char *out, size_t out_size)
{
    int n = (prefix && *prefix) ? snprintf(out, out_size, "%s/%s", prefix, name)
                                : snprintf(out, out_size, "%s", name);
    if (n < 0 || (size_t)n >= out_size) return s3v_errorf(S3V_ERR_INVALID, "object key too long");
    return S3V_OK;
}

uint32_t ivf_generation_counter(const char *g) { return (uint32_t)strtoul(g + 1, NULL, 16); }

void ivf_incarnation_format(uint64_t inc, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)inc);
}

static int parse_incarnation(const char *s, uint64_t *out)
{
    if (strlen(s) != 16) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 1;
}

int ivf_generation_valid(const char *g)
{
    if (!g || strlen(g) != 18 || g[0] != 'g' || g[9] != '-') return 0;
    for (int i = 1; i < 18; i++) {
        if (i == 9) continue;
        char c = g[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return 1;
}

/* ---- manifest ---- */

static int name_ok(const char *s)
{
    /* object names inside an index: generation/name, lower-case letters, digits, '-', '/' */
    size_t n = strlen(s);
    if (n == 0 || n >= IVF_NAME_MAX || s[0] == '/' || strstr(s, "..") || strstr(s, "//")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '/' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static s3v_status get_u64(const cJSON *o, const char *name, uint64_t max, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != floor(v->valuedouble))
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest field '%s' missing or out of range", name);
    *out = (uint64_t)v->valuedouble;
    return S3V_OK;
}

static s3v_status get_name(const cJSON *o, const char *name, char *out, size_t out_size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= out_size)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest field '%s' missing or too long", name);
    snprintf(out, out_size, "%s", v->valuestring);
    return S3V_OK;
}

static s3v_status get_objref(const cJSON *o, const char *name, char *key, uint64_t *size)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsObject(r)) return s3v_errorf(S3V_ERR_CORRUPT, "manifest field '%s' missing", name);
    S3V_TRY(get_name(r, "key", key, IVF_NAME_MAX));
    if (!name_ok(key))
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest field '%s.key' is not a valid name", name);
    return get_u64(r, "size", UINT64_MAX >> 12, size);
}

static const char *const KNOWN_FIELDS[] = {"format",       "generation",
                                           "creationTime", "dimension",
                                           "metric",       "encoding",
                                           "count",        "nlist",
                                           "centroids",    "data",
                                           "keymap",       "defaultNprobe",
                                           "calibration",  "nonFilterableMetadataKeys",
                                           "build",        "wal",
                                           "retired",      "training"};

static int is_known(const char *name)
{
    for (size_t i = 0; i < sizeof KNOWN_FIELDS / sizeof *KNOWN_FIELDS; i++)
        if (strcmp(name, KNOWN_FIELDS[i]) == 0) return 1;
    return 0;
}

void ivf_manifest_free(ivf_manifest *m)
{
    if (!m) return;
    free(m->data);
    free(m->calib);
    for (size_t i = 0; i < m->non_filterable_len; i++) free(m->non_filterable[i]);
    free(m->non_filterable);
    free(m->retired);
    cJSON_Delete(m->build);
    cJSON_Delete(m->extra);
    memset(m, 0, sizeof *m);
}

static s3v_status common_from_json(const cJSON *root, ivf_manifest *m);

/* "wal", "retired" and "training" (all optional: an index from before the log has none). */
static s3v_status wal_from_json(const cJSON *root, ivf_manifest *m)
{
    uint64_t v;
    m->grace_seconds = IVF_GRACE_DEFAULT_S;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "wal");
    if (w) {
        if (!cJSON_IsObject(w)) return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'wal' is not an object");
        const cJSON *inc = cJSON_GetObjectItemCaseSensitive(w, "incarnation");
        if (!cJSON_IsString(inc) || !parse_incarnation(inc->valuestring, &m->incarnation))
            return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'wal.incarnation' is not 16 hex digits");
        S3V_TRY(get_u64(w, "start", 1ull << 52, &m->wal_start));
        S3V_TRY(get_u64(w, "graceSeconds", IVF_GRACE_MAX_S, &v));
        if (v < IVF_GRACE_MIN_S) return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'wal.graceSeconds' is 0");
        m->grace_seconds = (uint32_t)v;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "retired");
    if (r) {
        int n = cJSON_GetArraySize(r);
        if (!cJSON_IsArray(r) || n > IVF_RETIRED_MAX)
            return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'retired' is not a list of at most %d entries",
                              IVF_RETIRED_MAX);
        m->retired = calloc((size_t)(n ? n : 1), sizeof *m->retired);
        if (!m->retired) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        for (const cJSON *e = r->child; e; e = e->next) {
            ivf_retired *x = &m->retired[m->retired_len];
            if (!cJSON_IsObject(e))
                return s3v_errorf(S3V_ERR_CORRUPT, "manifest retired entry not an object");
            S3V_TRY(get_u64(e, "at", 1ull << 52, &x->at_ms));
            if (cJSON_GetObjectItemCaseSensitive(e, "generation")) {
                S3V_TRY(get_name(e, "generation", x->generation, sizeof x->generation));
                if (!ivf_generation_valid(x->generation))
                    return s3v_errorf(S3V_ERR_CORRUPT, "manifest retired generation '%s' is not valid",
                                      x->generation);
            } else {
                S3V_TRY(get_u64(e, "walFrom", 1ull << 52, &x->wal_from));
                S3V_TRY(get_u64(e, "walTo", 1ull << 52, &x->wal_to));
                if (x->wal_from > x->wal_to)
                    return s3v_errorf(S3V_ERR_CORRUPT, "manifest retired log range is reversed");
            }
            m->retired_len++;
        }
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "training");
    if (t) {
        if (!cJSON_IsObject(t))
            return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'training' is not an object");
        S3V_TRY(get_u64(t, "count", 1ull << 40, &m->trained_count));
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(t, "meanDistance");
        if (!cJSON_IsNumber(md) || !isfinite(md->valuedouble))
            return s3v_errorf(S3V_ERR_CORRUPT, "manifest field 'training.meanDistance' is not valid");
        m->trained_mean_distance = md->valuedouble;
    }
    return S3V_OK;
}

static s3v_status manifest_from_json(const cJSON *root, ivf_manifest *m)
{
    uint64_t v;
    S3V_TRY(get_u64(root, "format", 1000, &v));
    if (v != IVF_FORMAT_VERSION)
        return s3v_errorf(S3V_ERR_UNSUPPORTED, "manifest format %llu is not supported (this is format %d)",
                          (unsigned long long)v, IVF_FORMAT_VERSION);
    S3V_TRY(get_name(root, "generation", m->generation, sizeof m->generation));
    if (!ivf_generation_valid(m->generation))
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest generation '%s' is not valid", m->generation);
    S3V_TRY(get_name(root, "creationTime", m->creation_time, sizeof m->creation_time));
    S3V_TRY(get_u64(root, "dimension", IVF_DIM_MAX, &v));
    if (v == 0) return s3v_errorf(S3V_ERR_CORRUPT, "manifest dimension is 0");
    m->dimension = (uint32_t)v;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "metric");
    if (!cJSON_IsString(s) || ivf_metric_parse(s->valuestring, &m->metric) != S3V_OK)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest metric missing or unknown");
    s = cJSON_GetObjectItemCaseSensitive(root, "encoding");
    if (!cJSON_IsString(s) || ivf_encoding_parse(s->valuestring, &m->encoding) != S3V_OK)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest encoding missing or unknown");
    S3V_TRY(get_u64(root, "count", 1ull << 40, &m->count));
    S3V_TRY(get_u64(root, "nlist", IVF_NLIST_MAX, &v));
    m->nlist = (uint32_t)v;
    S3V_TRY(wal_from_json(root, m));
    if (m->nlist == 0) { /* an empty index: nothing but the description */
        if (m->count != 0 || cJSON_GetObjectItemCaseSensitive(root, "centroids") ||
            cJSON_GetObjectItemCaseSensitive(root, "data") ||
            cJSON_GetObjectItemCaseSensitive(root, "keymap"))
            return s3v_errorf(S3V_ERR_CORRUPT,
                              "manifest of an empty index (nlist 0) names vectors or objects");
        return common_from_json(root, m);
    }
    S3V_TRY(get_objref(root, "centroids", m->centroids_key, &m->centroids_size));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "centroids");
    S3V_TRY(get_u64(c, "crc32c", UINT32_MAX, &v));
    m->centroids_crc = (uint32_t)v;
    S3V_TRY(get_objref(root, "keymap", m->keymap_key, &m->keymap_size));
    S3V_TRY(get_u64(root, "defaultNprobe", IVF_NLIST_MAX, &v));
    m->default_nprobe = v ? (uint32_t)v : 1;
    if (m->default_nprobe > m->nlist) m->default_nprobe = m->nlist;

    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    int n = cJSON_GetArraySize(data);
    if (!cJSON_IsArray(data) || n < 1 || n > 65536)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest data list missing or empty");
    m->data = calloc((size_t)n, sizeof *m->data);
    if (!m->data) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    m->data_len = (size_t)n;
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(data, i);
        S3V_TRY(get_name(d, "key", m->data[i].key, IVF_NAME_MAX));
        if (!name_ok(m->data[i].key)) return s3v_errorf(S3V_ERR_CORRUPT, "manifest data key not valid");
        S3V_TRY(get_u64(d, "size", UINT64_MAX >> 12, &m->data[i].size));
    }
    return common_from_json(root, m);
}

/* Fields every manifest may have (also an empty index's). */
static s3v_status common_from_json(const cJSON *root, ivf_manifest *m)
{
    int n;
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(root, "calibration");
    if (cJSON_IsArray(cal)) {
        n = cJSON_GetArraySize(cal);
        if (n > 1024) return s3v_errorf(S3V_ERR_CORRUPT, "manifest calibration too long");
        m->calib = calloc((size_t)(n ? n : 1), sizeof *m->calib);
        if (!m->calib) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n; i++) {
            const cJSON *pt = cJSON_GetArrayItem(cal, i);
            const cJSON *a = cJSON_GetArrayItem(pt, 0), *b = cJSON_GetArrayItem(pt, 1);
            if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 1 || a->valuedouble > m->nlist ||
                !(b->valuedouble >= 0 && b->valuedouble <= 1))
                return s3v_errorf(S3V_ERR_CORRUPT, "manifest calibration point %d not valid", i);
            m->calib[i].nprobe = (uint32_t)a->valuedouble;
            m->calib[i].recall = (float)b->valuedouble;
        }
        m->calib_len = (size_t)n;
    }
    const cJSON *nf = cJSON_GetObjectItemCaseSensitive(root, "nonFilterableMetadataKeys");
    if (cJSON_IsArray(nf)) {
        n = cJSON_GetArraySize(nf);
        if (n > 64) return s3v_errorf(S3V_ERR_CORRUPT, "manifest nonFilterableMetadataKeys too long");
        m->non_filterable = calloc((size_t)(n ? n : 1), sizeof(char *));
        if (!m->non_filterable) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n; i++) {
            const cJSON *k = cJSON_GetArrayItem(nf, i);
            if (!cJSON_IsString(k)) return s3v_errorf(S3V_ERR_CORRUPT, "manifest metadata key not a string");
            m->non_filterable[i] = strdup(k->valuestring);
            if (!m->non_filterable[i]) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            m->non_filterable_len++;
        }
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "build");
    if (cJSON_IsObject(b)) {
        m->build = cJSON_Duplicate(b, 1);
        if (!m->build) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    m->extra = cJSON_CreateObject();
    if (!m->extra) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!it->string || is_known(it->string)) continue;
        cJSON *dup = cJSON_Duplicate(it, 1);
        if (!dup || !cJSON_AddItemToObject(m->extra, it->string, dup)) {
            cJSON_Delete(dup);
            return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        }
    }
    return S3V_OK;
}

s3v_status ivf_manifest_decode(const uint8_t *p, size_t n, ivf_manifest *out)
{
    if (n < IVF_MANIFEST_HEADER_SIZE)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest is truncated (%zu bytes)", n);
    if (memcmp(p, MANIFEST_MAGIC, 8) != 0)
        return s3v_errorf(S3V_ERR_CORRUPT, "not an s3vec manifest (bad magic)");
    if (le_get_u32(p + 20) != s3v_crc32c(0, p, 20))
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest header checksum mismatch");
    uint32_t version = le_get_u32(p + 8);
    if (version != IVF_FORMAT_VERSION)
        return s3v_errorf(S3V_ERR_UNSUPPORTED, "manifest version %u is not supported", version);
    uint32_t body = le_get_u32(p + 12);
    if (body > IVF_MANIFEST_MAX_BODY || body != n - IVF_MANIFEST_HEADER_SIZE)
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest body size %u does not match the object (%zu bytes)",
                          body, n);
    if (le_get_u32(p + 16) != s3v_crc32c(0, p + IVF_MANIFEST_HEADER_SIZE, body))
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest body checksum mismatch");
    cJSON *root = cJSON_ParseWithLength((const char *)p + IVF_MANIFEST_HEADER_SIZE, body);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return s3v_errorf(S3V_ERR_CORRUPT, "manifest body is not a JSON object");
    }
    ivf_manifest m;
    memset(&m, 0, sizeof m);
    s3v_status st = manifest_from_json(root, &m);
    cJSON_Delete(root);
    if (st != S3V_OK) {
        ivf_manifest_free(&m);
        return st;
    }
    *out = m;
    return S3V_OK;
}

static cJSON *objref(const char *key, uint64_t size)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddNumberToObject(o, "size", (double)size);
    return o;
}

s3v_status ivf_manifest_encode(const ivf_manifest *m, s3v_buf *out)
{
    s3v_status st = S3V_OK;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(root, "format", IVF_FORMAT_VERSION);
    cJSON_AddStringToObject(root, "generation", m->generation);
    cJSON_AddStringToObject(root, "creationTime", m->creation_time);
    cJSON_AddNumberToObject(root, "dimension", m->dimension);
    cJSON_AddStringToObject(root, "metric", ivf_metric_name(m->metric));
    cJSON_AddStringToObject(root, "encoding", ivf_encoding_name(m->encoding));
    cJSON_AddNumberToObject(root, "count", (double)m->count);
    cJSON_AddNumberToObject(root, "nlist", m->nlist);
    if (m->nlist) {
        cJSON *c = objref(m->centroids_key, m->centroids_size);
        if (c) cJSON_AddNumberToObject(c, "crc32c", m->centroids_crc);
        cJSON_AddItemToObject(root, "centroids", c);
        cJSON *data = cJSON_AddArrayToObject(root, "data");
        for (size_t i = 0; data && i < m->data_len; i++)
            cJSON_AddItemToArray(data, objref(m->data[i].key, m->data[i].size));
        cJSON_AddItemToObject(root, "keymap", objref(m->keymap_key, m->keymap_size));
    }
    cJSON_AddNumberToObject(root, "defaultNprobe", m->default_nprobe);
    cJSON *cal = cJSON_AddArrayToObject(root, "calibration");
    for (size_t i = 0; cal && i < m->calib_len; i++) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(m->calib[i].nprobe));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(round((double)m->calib[i].recall * 10000) / 10000));
        cJSON_AddItemToArray(cal, pt);
    }
    cJSON *nf = cJSON_AddArrayToObject(root, "nonFilterableMetadataKeys");
    for (size_t i = 0; nf && i < m->non_filterable_len; i++)
        cJSON_AddItemToArray(nf, cJSON_CreateString(m->non_filterable[i]));
    cJSON *w = cJSON_AddObjectToObject(root, "wal");
    if (w) {
        char inc[17];
        ivf_incarnation_format(m->incarnation, inc);
        cJSON_AddStringToObject(w, "incarnation", inc);
        cJSON_AddNumberToObject(w, "start", (double)m->wal_start);
        cJSON_AddNumberToObject(w, "graceSeconds", m->grace_seconds ? m->grace_seconds : IVF_GRACE_DEFAULT_S);
    }
    if (m->retired_len) {
        cJSON *ra = cJSON_AddArrayToObject(root, "retired");
        for (size_t i = 0; ra && i < m->retired_len; i++) {
            const ivf_retired *x = &m->retired[i];
            cJSON *e = cJSON_CreateObject();
            if (!e) break;
            if (x->generation[0]) {
                cJSON_AddStringToObject(e, "generation", x->generation);
            } else {
                cJSON_AddNumberToObject(e, "walFrom", (double)x->wal_from);
                cJSON_AddNumberToObject(e, "walTo", (double)x->wal_to);
            }
            cJSON_AddNumberToObject(e, "at", (double)x->at_ms);
            cJSON_AddItemToArray(ra, e);
        }
    }
    if (m->trained_count) {
        cJSON *t = cJSON_AddObjectToObject(root, "training");
        if (t) {
            cJSON_AddNumberToObject(t, "count", (double)m->trained_count);
            cJSON_AddNumberToObject(t, "meanDistance", m->trained_mean_distance);
        }
    }
    if (m->build) cJSON_AddItemToObject(root, "build", cJSON_Duplicate(m->build, 1));
    for (const cJSON *it = m->extra ? m->extra->child : NULL; it; it = it->next)
        if (it->string && !is_known(it->string))
            cJSON_AddItemToObject(root, it->string, cJSON_Duplicate(it, 1));
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory encoding the manifest");
        goto fail;
    }
    size_t body = strlen(text);
    if (body > IVF_MANIFEST_MAX_BODY) {
        st = s3v_errorf(S3V_ERR_TOO_LARGE, "manifest body of %zu bytes exceeds 1 MiB", body);
        goto fail;
    }
    uint8_t hdr[IVF_MANIFEST_HEADER_SIZE];
    memcpy(hdr, MANIFEST_MAGIC, 8);
    le_put_u32(hdr + 8, IVF_FORMAT_VERSION);
    le_put_u32(hdr + 12, (uint32_t)body);
    le_put_u32(hdr + 16, s3v_crc32c(0, (const uint8_t *)text, body));
    le_put_u32(hdr + 20, s3v_crc32c(0, hdr, 20));
    S3V_CHECK(s3v_buf_append(out, hdr, sizeof hdr));
    S3V_CHECK(s3v_buf_append(out, text, body));
fail:
    free(text);
    cJSON_Delete(root);
    return st;
}

/* ---- centroids ---- */

void ivf_centroids_free(ivf_centroids *c)
{
    if (!c) return;
    free(c->centroids);
    free(c->clusters);
    free(c->pages);
    free(c->q_offset);
    memset(c, 0, sizeof *c);
}

s3v_status ivf_centroids_decode(const uint8_t *p, size_t n, const uint64_t *data_sizes, size_t data_len,
                                uint64_t keymap_size, ivf_centroids *out)
{
    if (n < IVF_CENTROIDS_HEADER_SIZE) return s3v_errorf(S3V_ERR_CORRUPT, "centroids object is truncated");
    if (memcmp(p, CENTROIDS_MAGIC, 8) != 0)
        return s3v_errorf(S3V_ERR_CORRUPT, "not a centroids object (bad magic)");
    if (le_get_u32(p + 60) != s3v_crc32c(0, p, 60))
        return s3v_errorf(S3V_ERR_CORRUPT, "centroids header checksum mismatch");
    if (le_get_u32(p + 8) != IVF_FORMAT_VERSION)
        return s3v_errorf(S3V_ERR_UNSUPPORTED, "centroids version %u is not supported", le_get_u32(p + 8));
    if (le_get_u32(p + 56) != s3v_crc32c(0, p + IVF_CENTROIDS_HEADER_SIZE, n - IVF_CENTROIDS_HEADER_SIZE))
        return s3v_errorf(S3V_ERR_CORRUPT, "centroids body checksum mismatch");
    ivf_centroids c;
    memset(&c, 0, sizeof c);
    c.dim = le_get_u32(p + 12);
    c.nlist = le_get_u32(p + 16);
    uint32_t enc = le_get_u32(p + 20), metric = le_get_u32(p + 24);
    c.npages = le_get_u32(p + 28);
    c.count = le_get_u64(p + 32);
    if (c.dim == 0 || c.dim > IVF_DIM_MAX || c.nlist == 0 || c.nlist > IVF_NLIST_MAX || enc > 2 ||
        metric > 2 || c.npages > (1u << 28))
        return s3v_errorf(S3V_ERR_CORRUPT, "centroids header fields out of range");
    c.encoding = (ivf_encoding)enc;
    c.metric = (ivf_metric)metric;
    uint64_t need = (uint64_t)IVF_CENTROIDS_HEADER_SIZE + (uint64_t)c.nlist * c.dim * 4 +
                    (uint64_t)c.nlist * IVF_CLUSTER_REF_SIZE + (uint64_t)c.npages * IVF_KEYPAGE_REF_SIZE +
                    (c.encoding == IVF_ENC_I8 ? (uint64_t)c.dim * 4 + 4 : 0);
    if (need != n)
        return s3v_errorf(S3V_ERR_CORRUPT, "centroids object size %zu, expected %llu", n,
                          (unsigned long long)need);
    s3v_status st = S3V_OK;
    size_t cbytes = (size_t)c.nlist * c.dim * sizeof(float);
    c.centroids = aligned_alloc(64, (cbytes + 63) & ~(size_t)63);
    c.clusters = calloc(c.nlist, sizeof *c.clusters);
    c.pages = calloc(c.npages ? c.npages : 1, sizeof *c.pages);
    if (!c.centroids || !c.clusters || !c.pages) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory loading %u centroids", c.nlist);
        goto fail;
    }
    const uint8_t *q = p + IVF_CENTROIDS_HEADER_SIZE;
    for (size_t i = 0; i < (size_t)c.nlist * c.dim; i++, q += 4) {
        c.centroids[i] = le_get_f32(q);
        if (!isfinite(c.centroids[i])) {
            st = s3v_errorf(S3V_ERR_CORRUPT, "centroid value not finite");
            goto fail;
        }
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < c.nlist; i++, q += IVF_CLUSTER_REF_SIZE) {
        ivf_cluster_ref *r = &c.clusters[i];
        r->object = le_get_u32(q);
        r->count = le_get_u32(q + 4);
        r->offset = le_get_u64(q + 8);
        r->size = le_get_u64(q + 16);
        r->crc = le_get_u32(q + 24);
        if (r->object >= data_len || r->size < IVF_BLOCK_HEADER_SIZE || r->offset > data_sizes[r->object] ||
            r->size > data_sizes[r->object] - r->offset || r->size > (1ull << 32)) {
            st = s3v_errorf(S3V_ERR_CORRUPT, "cluster %u directory entry points outside its data object", i);
            goto fail;
        }
        total += r->count;
    }
    if (total != c.count) {
        st = s3v_errorf(S3V_ERR_CORRUPT, "cluster counts add up to %llu, header says %llu",
                        (unsigned long long)total, (unsigned long long)c.count);
        goto fail;
    }
    for (uint32_t i = 0; i < c.npages; i++, q += IVF_KEYPAGE_REF_SIZE) {
        ivf_keypage_ref *r = &c.pages[i];
        r->first_hash = le_get_u64(q);
        r->offset = le_get_u64(q + 8);
        r->size = le_get_u32(q + 16);
        r->crc = le_get_u32(q + 20);
        if (r->offset > keymap_size || r->size > keymap_size - r->offset || r->size % IVF_KEYMAP_ENTRY_SIZE ||
            r->size > IVF_KEYMAP_PAGE_ENTRIES * IVF_KEYMAP_ENTRY_SIZE ||
            (i && r->first_hash < c.pages[i - 1].first_hash)) {
            st = s3v_errorf(S3V_ERR_CORRUPT, "key map page %u directory entry not valid", i);
            goto fail;
        }
    }
    if (c.encoding == IVF_ENC_I8) {
        c.q_offset = malloc(c.dim * sizeof(float));
        if (!c.q_offset) {
            st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (uint32_t j = 0; j < c.dim; j++, q += 4) c.q_offset[j] = le_get_f32(q);
        c.q_scale = le_get_f32(q);
        if (!(c.q_scale > 0) || !isfinite(c.q_scale)) {
            st = s3v_errorf(S3V_ERR_CORRUPT, "i8 quantizer scale not valid");
            goto fail;
        }
    }
    *out = c;
    return S3V_OK;
fail:
    ivf_centroids_free(&c);
    return st;
}

s3v_status ivf_centroids_encode(const ivf_centroids *c, s3v_buf *out)
{
    size_t body = (size_t)c->nlist * c->dim * 4 + (size_t)c->nlist * IVF_CLUSTER_REF_SIZE +
                  (size_t)c->npages * IVF_KEYPAGE_REF_SIZE +
                  (c->encoding == IVF_ENC_I8 ? (size_t)c->dim * 4 + 4 : 0);
    size_t start = out->len;
    S3V_TRY(s3v_buf_reserve(out, IVF_CENTROIDS_HEADER_SIZE + body));
    uint8_t *h = out->ptr + start;
    memset(h, 0, IVF_CENTROIDS_HEADER_SIZE + body);
    memcpy(h, CENTROIDS_MAGIC, 8);
    le_put_u32(h + 8, IVF_FORMAT_VERSION);
    le_put_u32(h + 12, c->dim);
    le_put_u32(h + 16, c->nlist);
    le_put_u32(h + 20, (uint32_t)c->encoding);
    le_put_u32(h + 24, (uint32_t)c->metric);
    le_put_u32(h + 28, c->npages);
    le_put_u64(h + 32, c->count);
    uint8_t *q = h + IVF_CENTROIDS_HEADER_SIZE;
    for (size_t i = 0; i < (size_t)c->nlist * c->dim; i++, q += 4) le_put_f32(q, c->centroids[i]);
    for (uint32_t i = 0; i < c->nlist; i++, q += IVF_CLUSTER_REF_SIZE) {
        const ivf_cluster_ref *r = &c->clusters[i];
        le_put_u32(q, r->object);
        le_put_u32(q + 4, r->count);
        le_put_u64(q + 8, r->offset);
        le_put_u64(q + 16, r->size);
        le_put_u32(q + 24, r->crc);
    }
    for (uint32_t i = 0; i < c->npages; i++, q += IVF_KEYPAGE_REF_SIZE) {
        const ivf_keypage_ref *r = &c->pages[i];
        le_put_u64(q, r->first_hash);
        le_put_u64(q + 8, r->offset);
        le_put_u32(q + 16, r->size);
        le_put_u32(q + 20, r->crc);
    }
    if (c->encoding == IVF_ENC_I8) {
        for (uint32_t j = 0; j < c->dim; j++, q += 4) le_put_f32(q, c->q_offset[j]);
        le_put_f32(q, c->q_scale);
    }
    le_put_u32(h + 56, s3v_crc32c(0, h + IVF_CENTROIDS_HEADER_SIZE, body));
    le_put_u32(h + 60, s3v_crc32c(0, h, 60));
    out->len += IVF_CENTROIDS_HEADER_SIZE + body;
    out->ptr[out->len] = 0;
    return S3V_OK;
}

/* ---- cluster blocks ---- */

s3v_status ivf_block_parse(const uint8_t *p, size_t n, const ivf_cluster_ref *ref, uint32_t cluster_id,
                           uint32_t dim, ivf_encoding enc, ivf_block *out)
{
    if (n != ref->size)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: got %zu bytes, expected %llu", cluster_id, n,
                          (unsigned long long)ref->size);
    if (s3v_crc32c(0, p, n) != ref->crc)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: checksum mismatch", cluster_id);
    if (memcmp(p, BLOCK_MAGIC, 4) != 0)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: bad block magic", cluster_id);
    if (le_get_u16(p + 4) != IVF_FORMAT_VERSION)
        return s3v_errorf(S3V_ERR_UNSUPPORTED, "cluster %u: block version %u not supported", cluster_id,
                          le_get_u16(p + 4));
    ivf_block b;
    b.encoding = (ivf_encoding)le_get_u16(p + 6);
    b.cluster_id = le_get_u32(p + 8);
    b.count = le_get_u32(p + 12);
    b.dim = le_get_u32(p + 16);
    b.flags = le_get_u32(p + 20);
    b.rest_size = le_get_u32(p + 24);
    b.rest_raw_size = le_get_u32(p + 28);
    if (b.encoding != enc || b.cluster_id != cluster_id || b.count != ref->count || b.dim != dim)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: block header does not match the directory",
                          cluster_id);
    uint64_t vbytes = (uint64_t)b.count * b.dim * ivf_encoding_size(enc);
    uint64_t nbytes = (b.flags & IVF_BLOCK_FLAG_NORMS) ? (uint64_t)b.count * 4 : 0;
    if ((uint64_t)IVF_BLOCK_HEADER_SIZE + vbytes + nbytes + b.rest_size != n)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: section sizes do not add up", cluster_id);
    if (!(b.flags & IVF_BLOCK_FLAG_ZSTD) && b.rest_raw_size != b.rest_size)
        return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: rest section sizes differ", cluster_id);
    b.vectors = p + IVF_BLOCK_HEADER_SIZE;
    b.inv_norms = nbytes ? b.vectors + vbytes : NULL;
    b.rest = b.vectors + vbytes + nbytes;
    *out = b;
    return S3V_OK;
}

void ivf_rest_free(ivf_rest *r)
{
    if (!r) return;
    free(r->owned);
    free(r->key_off);
    free(r->meta_off);
    memset(r, 0, sizeof *r);
}

size_t ivf_rest_heap_size(const ivf_rest *r)
{
    return r->owned_size + 2 * ((size_t)r->count + 1) * sizeof(uint32_t);
}

s3v_status ivf_rest_decode(const ivf_block *b, ivf_rest *out)
{
    ivf_rest r;
    memset(&r, 0, sizeof r);
    s3v_status st = S3V_OK;
    const uint8_t *raw = b->rest;
    size_t raw_size = b->rest_raw_size;
    if (b->flags & IVF_BLOCK_FLAG_ZSTD) {
        if (raw_size > (1u << 31))
            return s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: rest section too large", b->cluster_id);
        r.owned = malloc(raw_size ? raw_size : 1);
        if (!r.owned) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        size_t got = ZSTD_decompress(r.owned, raw_size, b->rest, b->rest_size);
        if (ZSTD_isError(got) || got != raw_size) {
            st = s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: rest section does not decompress", b->cluster_id);
            goto fail;
        }
        raw = r.owned;
        r.owned_size = raw_size;
    }
    r.count = b->count;
    r.key_off = malloc(((size_t)b->count + 1) * sizeof(uint32_t));
    r.meta_off = malloc(((size_t)b->count + 1) * sizeof(uint32_t));
    if (!r.key_off || !r.meta_off) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t pos = (size_t)b->count * 2;
    if (pos > raw_size) goto bad;
    uint64_t acc = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        r.key_off[i] = (uint32_t)acc;
        uint16_t kl = le_get_u16(raw + 2 * (size_t)i);
        if (kl == 0 || kl > IVF_KEY_MAX) goto bad;
        acc += kl;
    }
    r.key_off[b->count] = (uint32_t)acc;
    if (acc > raw_size - pos) goto bad;
    r.keys = raw + pos;
    pos += acc;
    if ((size_t)b->count * 4 > raw_size - pos) goto bad;
    const uint8_t *mlens = raw + pos;
    pos += (size_t)b->count * 4;
    acc = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        r.meta_off[i] = (uint32_t)acc;
        acc += le_get_u32(mlens + 4 * (size_t)i);
    }
    r.meta_off[b->count] = (uint32_t)acc;
    if (acc != raw_size - pos) goto bad;
    r.meta = raw + pos;
    *out = r;
    return S3V_OK;
bad:
    st = s3v_errorf(S3V_ERR_CORRUPT, "cluster %u: keys/metadata section is malformed", b->cluster_id);
fail:
    ivf_rest_free(&r);
    return st;
}

s3v_status ivf_block_encode(s3v_buf *out, uint32_t cluster_id, uint32_t dim, ivf_encoding enc, uint32_t count,
                            const uint8_t *vectors, const float *inv_norms, const uint8_t *rest_raw,
                            size_t rest_raw_size, int zstd_level, uint32_t *crc)
{
    if (rest_raw_size > UINT32_MAX)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "cluster %u: keys and metadata exceed 4 GiB", cluster_id);
    size_t vbytes = (size_t)count * dim * ivf_encoding_size(enc);
    size_t nbytes = inv_norms ? (size_t)count * 4 : 0;
    size_t start = out->len;
    uint32_t flags = inv_norms ? IVF_BLOCK_FLAG_NORMS : 0;
    size_t bound = ZSTD_compressBound(rest_raw_size);
    S3V_TRY(s3v_buf_reserve(out, IVF_BLOCK_HEADER_SIZE + vbytes + nbytes +
                                     (bound > rest_raw_size ? bound : rest_raw_size)));
    uint8_t *h = out->ptr + start;
    uint8_t *v = h + IVF_BLOCK_HEADER_SIZE;
    if (vbytes) memcpy(v, vectors, vbytes);
    for (size_t i = 0; i < (inv_norms ? count : 0); i++) le_put_f32(v + vbytes + 4 * i, inv_norms[i]);
    uint8_t *rest = v + vbytes + nbytes;
    size_t stored = rest_raw_size;
    if (zstd_level > 0 && rest_raw_size >= 64) {
        size_t z = ZSTD_compress(rest, bound, rest_raw, rest_raw_size, zstd_level);
        if (!ZSTD_isError(z) && z < rest_raw_size - rest_raw_size / 8) {
            stored = z;
            flags |= IVF_BLOCK_FLAG_ZSTD;
        }
    }
    if (!(flags & IVF_BLOCK_FLAG_ZSTD) && rest_raw_size) memcpy(rest, rest_raw, rest_raw_size);
    memcpy(h, BLOCK_MAGIC, 4);
    le_put_u16(h + 4, IVF_FORMAT_VERSION);
    le_put_u16(h + 6, (uint16_t)enc);
    le_put_u32(h + 8, cluster_id);
    le_put_u32(h + 12, count);
    le_put_u32(h + 16, dim);
    le_put_u32(h + 20, flags);
    le_put_u32(h + 24, (uint32_t)stored);
    le_put_u32(h + 28, (uint32_t)rest_raw_size);
    size_t total = IVF_BLOCK_HEADER_SIZE + vbytes + nbytes + stored;
    *crc = s3v_crc32c(0, h, total);
    out->len += total;
    out->ptr[out->len] = 0;
    return S3V_OK;
}
