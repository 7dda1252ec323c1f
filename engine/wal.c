/* engine/wal.c: log objects and the writer. See wal.h and FORMAT.md "Write-ahead log". */
#include "engine/wal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/log.h"
#include "common/rng.h"
#include "engine/input.h"

static const uint8_t WAL_MAGIC[8] = {'S', '3', 'V', 'W', 'L', 'O', 'G', 0};
static const uint8_t RSV_MAGIC[8] = {'S', '3', 'V', 'W', 'R', 'S', 'V', 0};

#define MANIFEST_CAP  (IVF_MANIFEST_MAX_BODY + IVF_MANIFEST_HEADER_SIZE)
#define MAX_ATTEMPTS  8     /* whole attempts (fresh manifest, new slot) per append */
#define JUMP_AFTER    3     /* conflicts in a row before listing to find the end of the log */
#define CONTENDED     32    /* appends made with reservations after a conflict (a quiet one counts down) */
#define WAIT_FIRST_US 2000  /* first pause while waiting for reservations below the slot */
#define WAIT_MAX_US   50000 /* longest pause */
#define SPREAD_MAX    16    /* contended writers pick among this many slots at most */
#define MAX_FILL      64    /* holes filled per listing */

/* ---- batch ---- */

void wal_batch_init(wal_batch *b, uint32_t dim)
{
    b->dim = dim;
    b->count = 0;
    s3v_buf_init(&b->body, WAL_MAX_OBJECT_SIZE - WAL_HEADER_SIZE);
}

void wal_batch_reset(wal_batch *b)
{
    b->count = 0;
    s3v_buf_reset(&b->body);
}

void wal_batch_free(wal_batch *b)
{
    if (!b) return;
    s3v_buf_free(&b->body);
    b->count = 0;
}

static s3v_status append_record(wal_batch *b, wal_op op, const uint8_t *key, size_t key_len,
                                const float *vector, const uint8_t *meta, size_t meta_len)
{
    if (b->count >= WAL_MAX_RECORDS)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "a log object holds at most %d records", WAL_MAX_RECORDS);
    S3V_TRY(vec_key_check(key, key_len));
    if (meta_len > WAL_MAX_META_SIZE)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "metadata of %zu bytes exceeds %u", meta_len, WAL_MAX_META_SIZE);
    size_t vbytes = op == WAL_OP_PUT ? (size_t)b->dim * 4 : 0;
    size_t rec = WAL_RECORD_HEADER + vbytes + key_len + meta_len;
    size_t pad = (4 - rec % 4) % 4;
    size_t start = b->body.len;
    S3V_TRY(s3v_buf_reserve(&b->body, rec + pad));
    uint8_t *p = b->body.ptr + start;
    p[0] = (uint8_t)op;
    p[1] = 0;
    le_put_u16(p + 2, (uint16_t)key_len);
    le_put_u32(p + 4, (uint32_t)meta_len);
    uint8_t *q = p + WAL_RECORD_HEADER;
    for (uint32_t j = 0; j < (op == WAL_OP_PUT ? b->dim : 0); j++, q += 4) le_put_f32(q, vector[j]);
    memcpy(q, key, key_len);
    q += key_len;
    if (meta_len) memcpy(q, meta, meta_len);
    q += meta_len;
    memset(q, 0, pad);
    b->body.len += rec + pad;
    b->body.ptr[b->body.len] = 0;
    b->count++;
    return S3V_OK;
}

s3v_status wal_batch_put(wal_batch *b, const uint8_t *key, size_t key_len, const float *vector,
                         const uint8_t *meta, size_t meta_len)
{
    return append_record(b, WAL_OP_PUT, key, key_len, vector, meta, meta ? meta_len : 0);
}

s3v_status wal_batch_delete(wal_batch *b, const uint8_t *key, size_t key_len)
{
    return append_record(b, WAL_OP_DELETE, key, key_len, NULL, NULL, 0);
}

s3v_status wal_batch_drop(wal_batch *b, uint32_t grace_seconds)
{
    char meta[64];
    int n = snprintf(meta, sizeof meta, "{\"at\":%llu,\"grace\":%u}", (unsigned long long)s3v_wall_ms(),
                     grace_seconds);
    if (b->count) return s3v_errorf(S3V_ERR_INVALID, "a drop marker is alone in its log object");
    return append_record(b, WAL_OP_DROP, (const uint8_t *)WAL_DROP_KEY, strlen(WAL_DROP_KEY), NULL,
                         (const uint8_t *)meta, (size_t)n);
}

int wal_object_is_drop(const wal_object *o, uint64_t *at_ms, uint32_t *grace_s)
{
    size_t pos = 0;
    wal_record r;
    if (!wal_object_next(o, &pos, &r) || r.op != WAL_OP_DROP) return 0;
    unsigned long long at = 0;
    unsigned grace = 0;
    char text[80];
    snprintf(text, sizeof text, "%.*s", (int)(r.meta_len < 79 ? r.meta_len : 79),
             r.meta ? (const char *)r.meta : "");
    if (sscanf(text, "{\"at\":%llu,\"grace\":%u}", &at, &grace) != 2) at = grace = 0;
    if (at_ms) *at_ms = at;
    if (grace_s) *grace_s = grace;
    return 1;
}

s3v_status wal_vector_check(ivf_metric metric, ivf_encoding encoding, const float *v, uint32_t dim)
{
    double ss = 0;
    for (uint32_t j = 0; j < dim; j++) {
        if (!isfinite(v[j])) return s3v_errorf(S3V_ERR_INVALID, "element %u is not a finite number", j);
        if (encoding == IVF_ENC_F16 && fabsf(v[j]) > 65504.0f)
            return s3v_errorf(
                S3V_ERR_INVALID,
                "element %u (%g) does not fit the index's f16 encoding (at most 65504 in magnitude)", j,
                (double)v[j]);
        ss += (double)v[j] * v[j];
    }
    if (metric == IVF_METRIC_COSINE && !(ss > 0))
        return s3v_errorf(S3V_ERR_INVALID,
                          "a zero vector has no direction and cannot be used with the cosine metric");
    if (!isfinite(ss)) return s3v_errorf(S3V_ERR_INVALID, "the vector's squared length overflows a float");
    return S3V_OK;
}

/* ---- object ---- */

s3v_status wal_object_encode(const wal_batch *b, uint64_t incarnation, uint64_t seq, s3v_buf *out)
{
    if (b->body.len > WAL_MAX_OBJECT_SIZE - WAL_HEADER_SIZE)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "log object too large");
    uint8_t h[WAL_HEADER_SIZE];
    memcpy(h, WAL_MAGIC, 8);
    le_put_u32(h + 8, WAL_VERSION);
    le_put_u32(h + 12, b->dim);
    le_put_u64(h + 16, seq);
    le_put_u64(h + 24, incarnation);
    le_put_u32(h + 32, b->count);
    le_put_u32(h + 36, (uint32_t)b->body.len);
    le_put_u32(h + 40, s3v_crc32c(0, b->body.ptr, b->body.len));
    le_put_u32(h + 44, s3v_crc32c(0, h, 44));
    S3V_TRY(s3v_buf_reserve(out, sizeof h + b->body.len));
    S3V_TRY(s3v_buf_append(out, h, sizeof h));
    return s3v_buf_append(out, b->body.ptr, b->body.len);
}

/* Validates one record at body[pos..) and returns its padded size, or 0 when malformed (message set). */
static size_t check_record(const uint8_t *body, size_t size, size_t pos, uint32_t dim, uint32_t index)
{
    if (size - pos < WAL_RECORD_HEADER) {
        s3v_errorf(S3V_ERR_CORRUPT, "record %u is truncated", index);
        return 0;
    }
    const uint8_t *p = body + pos;
    uint8_t op = p[0];
    uint16_t kl = le_get_u16(p + 2);
    uint32_t ml = le_get_u32(p + 4);
    if ((op != WAL_OP_PUT && op != WAL_OP_DELETE && op != WAL_OP_DROP) || p[1] != 0 ||
        (op == WAL_OP_DELETE && ml) || ml > WAL_MAX_META_SIZE) {
        s3v_errorf(S3V_ERR_CORRUPT, "record %u has a bad header", index);
        return 0;
    }
    uint64_t vbytes = op == WAL_OP_PUT ? (uint64_t)dim * 4 : 0;
    uint64_t rec = WAL_RECORD_HEADER + vbytes + kl + ml;
    uint64_t padded = (rec + 3) & ~(uint64_t)3;
    if (padded > size - pos) {
        s3v_errorf(S3V_ERR_CORRUPT, "record %u runs past the end of the object", index);
        return 0;
    }
    const uint8_t *v = p + WAL_RECORD_HEADER;
    for (uint32_t j = 0; j < (op == WAL_OP_PUT ? dim : 0); j++)
        if (!isfinite(le_get_f32(v + 4 * (size_t)j))) {
            s3v_errorf(S3V_ERR_CORRUPT, "record %u holds a value that is not finite", index);
            return 0;
        }
    if (vec_key_check(v + vbytes, kl) != S3V_OK) {
        s3v_errorf(S3V_ERR_CORRUPT, "record %u has an invalid key", index);
        return 0;
    }
    for (uint64_t i = rec; i < padded; i++)
        if (p[i]) {
            s3v_errorf(S3V_ERR_CORRUPT, "record %u has non-zero padding", index);
            return 0;
        }
    return (size_t)padded;
}

s3v_status wal_object_parse(const uint8_t *p, size_t n, uint64_t incarnation, uint64_t seq, uint32_t dim,
                            wal_object *out)
{
    if (n < WAL_HEADER_SIZE) return s3v_errorf(S3V_ERR_CORRUPT, "log object is truncated (%zu bytes)", n);
    if (memcmp(p, WAL_MAGIC, 8) != 0)
        return s3v_errorf(S3V_ERR_CORRUPT, "not an s3vec log object (bad magic)");
    if (le_get_u32(p + 44) != s3v_crc32c(0, p, 44))
        return s3v_errorf(S3V_ERR_CORRUPT, "log object header checksum mismatch");
    if (le_get_u32(p + 8) != WAL_VERSION)
        return s3v_errorf(S3V_ERR_UNSUPPORTED, "log object version %u is not supported", le_get_u32(p + 8));
    wal_object o;
    o.dim = le_get_u32(p + 12);
    o.seq = le_get_u64(p + 16);
    o.incarnation = le_get_u64(p + 24);
    o.count = le_get_u32(p + 32);
    uint32_t body = le_get_u32(p + 36);
    if (o.dim != dim)
        return s3v_errorf(S3V_ERR_CORRUPT, "log object has dimension %u, the index %u", o.dim, dim);
    if (o.seq != seq || o.incarnation != incarnation)
        return s3v_errorf(S3V_ERR_CORRUPT,
                          "log object names slot %llu of another place than where it is stored",
                          (unsigned long long)o.seq);
    if (o.count > WAL_MAX_RECORDS || (o.count == 0) != (body == 0))
        return s3v_errorf(S3V_ERR_CORRUPT, "log object record count %u is out of range", o.count);
    if ((uint64_t)body != n - WAL_HEADER_SIZE)
        return s3v_errorf(S3V_ERR_CORRUPT, "log object body size %u does not match the object (%zu bytes)",
                          body, n);
    if (le_get_u32(p + 40) != s3v_crc32c(0, p + WAL_HEADER_SIZE, body))
        return s3v_errorf(S3V_ERR_CORRUPT, "log object body checksum mismatch");
    o.body = p + WAL_HEADER_SIZE;
    o.body_size = body;
    size_t pos = 0;
    for (uint32_t i = 0; i < o.count; i++) {
        size_t r = check_record(o.body, o.body_size, pos, dim, i);
        if (!r) return S3V_ERR_CORRUPT;
        if (o.body[pos] == WAL_OP_DROP && o.count != 1)
            return s3v_errorf(S3V_ERR_CORRUPT, "a drop marker shares its log object with other records");
        pos += r;
    }
    if (pos != o.body_size) return s3v_errorf(S3V_ERR_CORRUPT, "log object has bytes after its last record");
    *out = o;
    return S3V_OK;
}

int wal_object_next(const wal_object *o, size_t *pos, wal_record *rec)
{
    if (*pos >= o->body_size) return 0;
    const uint8_t *p = o->body + *pos;
    rec->op = (wal_op)p[0];
    rec->key_len = le_get_u16(p + 2);
    rec->meta_len = le_get_u32(p + 4);
    size_t vbytes = rec->op == WAL_OP_PUT ? (size_t)o->dim * 4 : 0;
    rec->vector = rec->op == WAL_OP_PUT ? p + WAL_RECORD_HEADER : NULL;
    rec->key = p + WAL_RECORD_HEADER + vbytes;
    rec->meta = rec->meta_len ? rec->key + rec->key_len : NULL;
    size_t size = WAL_RECORD_HEADER + vbytes + rec->key_len + rec->meta_len;
    *pos += (size + 3) & ~(size_t)3;
    return 1;
}

s3v_status wal_root(const char *prefix, char *out, size_t out_size)
{
    return ivf_key_join(prefix, "wal/", out, out_size);
}

s3v_status wal_folder(const char *prefix, uint64_t incarnation, char *out, size_t out_size)
{
    char rel[32];
    char inc[17];
    ivf_incarnation_format(incarnation, inc);
    snprintf(rel, sizeof rel, "wal/%s/", inc);
    return ivf_key_join(prefix, rel, out, out_size);
}

s3v_status wal_object_key(const char *prefix, uint64_t incarnation, uint64_t seq, char *out, size_t out_size)
{
    char rel[64];
    char inc[17];
    ivf_incarnation_format(incarnation, inc);
    snprintf(rel, sizeof rel, "wal/%s/%020llu", inc, (unsigned long long)seq);
    return ivf_key_join(prefix, rel, out, out_size);
}

int wal_parse_seq(const char *name, uint64_t *seq)
{
    const char *slash = strrchr(name, '/');
    const char *s = slash ? slash + 1 : name;
    if (strlen(s) != WAL_SEQ_DIGITS) return 0;
    uint64_t v = 0;
    for (int i = 0; i < WAL_SEQ_DIGITS; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *seq = v;
    return 1;
}

/* ---- reservations ---- */

/* magic, slot, incarnation, the size of the object to come, CRC-32C of bytes 0..27 */
static void reservation_encode(uint8_t r[WAL_RESERVATION_SIZE], uint64_t incarnation, uint64_t seq,
                               uint32_t size)
{
    memcpy(r, RSV_MAGIC, 8);
    le_put_u64(r + 8, seq);
    le_put_u64(r + 16, incarnation);
    le_put_u32(r + 24, size);
    le_put_u32(r + 28, s3v_crc32c(0, r, 28));
}

int wal_is_reservation(const uint8_t *p, size_t n)
{
    return n == WAL_RESERVATION_SIZE && memcmp(p, RSV_MAGIC, 8) == 0;
}

/* The object size a reservation of slot seq announces; 0 when the bytes are not one (or corrupt). */
static uint32_t reservation_size(const uint8_t *p, size_t n, uint64_t incarnation, uint64_t seq)
{
    if (!wal_is_reservation(p, n) || le_get_u32(p + 28) != s3v_crc32c(0, p, 28) || le_get_u64(p + 8) != seq ||
        le_get_u64(p + 16) != incarnation)
        return 0;
    return le_get_u32(p + 24);
}

/* ---- listing ---- */

typedef struct slot_list {
    wal_slot *v;
    size_t len, cap, max;
    uint64_t want;     /* the next slot expected */
    int stop_reserved; /* readers: a reservation ends the run like a missing slot */
    s3v_status st;
} slot_list;

static int on_slot(void *arg, const char *key, uint64_t size, int is_prefix)
{
    slot_list *l = arg;
    uint64_t seq;
    if (is_prefix || !wal_parse_seq(key, &seq)) return 0; /* not a log object: ignore */
    if (seq < l->want) return 0;
    if (seq != l->want || l->len >= l->max) return 1; /* a gap (never written) or enough */
    if (l->stop_reserved && size == WAL_RESERVATION_SIZE) return 1;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        wal_slot *p = realloc(l->v, cap * sizeof *p);
        if (!p) {
            l->st = s3v_errorf(S3V_ERR_NOMEM, "out of memory listing the log");
            return 1;
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->len++] = (wal_slot){seq, size};
    l->want = seq + 1;
    return 0;
}

/* The contiguous run of slots from `from`, reservations included unless stop_reserved. */
static s3v_status list_run(s3v_storage *st, const char *prefix, uint64_t incarnation, uint64_t from,
                           size_t max_slots, int stop_reserved, uint64_t deadline, wal_slot **out,
                           size_t *len)
{
    char folder[WAL_KEY_MAX], after[WAL_KEY_MAX];
    S3V_TRY(wal_folder(prefix, incarnation, folder, sizeof folder));
    if (from) S3V_TRY(wal_object_key(prefix, incarnation, from - 1, after, sizeof after));
    slot_list l = {NULL, 0, 0, max_slots ? max_slots : SIZE_MAX, from, stop_reserved, S3V_OK};
    s3v_list_req req = {folder, NULL, from ? after : NULL, 0};
    s3v_status rc = s3v_storage_list(st, &req, deadline, on_slot, &l);
    if (rc == S3V_OK) rc = l.st;
    if (rc != S3V_OK) {
        free(l.v);
        return rc;
    }
    *out = l.v;
    *len = l.len;
    return S3V_OK;
}

s3v_status wal_list_slots(s3v_storage *st, const char *prefix, uint64_t incarnation, uint64_t from,
                          size_t max_slots, uint64_t deadline, wal_slot **out, size_t *len)
{
    return list_run(st, prefix, incarnation, from, max_slots, 1, deadline, out, len);
}

typedef struct first_ctx {
    uint64_t seq;
    int any;
} first_ctx;

static int on_first(void *arg, const char *key, uint64_t size, int is_prefix)
{
    first_ctx *f = arg;
    uint64_t seq;
    if (is_prefix || !wal_parse_seq(key, &seq)) return 0;
    f->seq = seq;
    f->any = 1;
    return 1;
}

/* The lowest slot present in a log folder. */
static s3v_status first_slot(s3v_storage *st, const char *folder, uint64_t deadline, uint64_t *seq, int *any)
{
    first_ctx f = {0, 0};
    s3v_list_req req = {folder, NULL, NULL, 0};
    S3V_TRY(s3v_storage_list(st, &req, deadline, on_first, &f));
    *seq = f.seq;
    *any = f.any;
    return S3V_OK;
}

s3v_status wal_log_ended(s3v_storage *st, const char *prefix, uint64_t incarnation, uint64_t deadline,
                         int *ended, uint64_t *at_ms, uint32_t *grace_seconds)
{
    *ended = 0;
    char folder[WAL_KEY_MAX], key[WAL_KEY_MAX];
    S3V_TRY(wal_folder(prefix, incarnation, folder, sizeof folder));
    uint64_t first = 0;
    int any = 0;
    S3V_TRY(first_slot(st, folder, deadline, &first, &any));
    if (!any) return S3V_OK;
    wal_slot *v = NULL;
    size_t n = 0;
    S3V_TRY(list_run(st, prefix, incarnation, first, 0, 0, deadline, &v, &n));
    s3v_status rc = S3V_OK;
    /* the marker is the last object, unless writers that had not noticed the end appended (or reserved
     * slots) after it */
    for (size_t k = 0; rc == S3V_OK && k < 16 && k < n && !*ended; k++) {
        const wal_slot *sl = &v[n - 1 - k];
        if (sl->size == WAL_RESERVATION_SIZE) continue;
        rc = wal_object_key(prefix, incarnation, sl->seq, key, sizeof key);
        s3v_buf b;
        s3v_buf_init(&b, WAL_MAX_OBJECT_SIZE);
        if (rc == S3V_OK) rc = s3v_storage_get(st, key, deadline, &b, NULL);
        if (rc == S3V_OK && b.len >= WAL_HEADER_SIZE) {
            wal_object o;
            /* parse with the dimension the object states: a marker's is whatever the index had */
            if (wal_object_parse(b.ptr, b.len, incarnation, sl->seq, le_get_u32(b.ptr + 12), &o) == S3V_OK &&
                wal_object_is_drop(&o, at_ms, grace_seconds))
                *ended = 1;
            s3v_error_clear();
        }
        if (rc == S3V_ERR_NOT_FOUND) { /* removed meanwhile */
            s3v_error_clear();
            rc = S3V_OK;
        }
        s3v_buf_free(&b);
    }
    free(v);
    return rc;
}

/* ---- writer ---- */

struct wal_writer {
    s3v_storage *st;
    char prefix[1024];
    char manifest_key[1100];
    ivf_manifest m;
    int have_m;
    uint64_t m_mono_ns; /* when the manifest was read (monotonic) */
    uint64_t hint;      /* where to try next: after this writer's last write, or the end it last saw */
    uint64_t clean;     /* every slot below it held a written object (no reservation) when last seen */
    uint32_t contended; /* > 0: take slots with a reservation first */
    uint32_t spread;    /* contended: how many slots past the end to choose among (1 = the end) */
    s3v_rng rng;
    uint32_t rsv_base_ms, rsv_bytes_per_ms;
    s3v_buf obj;
};

s3v_status wal_writer_new(s3v_storage *st, const char *prefix, wal_writer **out)
{
    wal_writer *w = calloc(1, sizeof *w);
    if (!w) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    w->st = st;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix ? prefix : "");
    s3v_status rc = ivf_key_join(w->prefix, "manifest", w->manifest_key, sizeof w->manifest_key);
    if (rc != S3V_OK) {
        free(w);
        return rc;
    }
    s3v_buf_init(&w->obj, WAL_MAX_OBJECT_SIZE);
    w->rsv_base_ms = 2000;
    w->rsv_bytes_per_ms = 4000;
    w->spread = 1;
    s3v_rng_seed(&w->rng, s3v_now_ns() ^ (uint64_t)(uintptr_t)w);
    *out = w;
    return S3V_OK;
}

void wal_writer_free(wal_writer *w)
{
    if (!w) return;
    ivf_manifest_free(&w->m);
    s3v_buf_free(&w->obj);
    free(w);
}

const ivf_manifest *wal_writer_manifest(const wal_writer *w) { return w->have_m ? &w->m : NULL; }

void wal_writer_set_reserve_timeout(wal_writer *w, uint32_t base_ms, uint32_t bytes_per_ms)
{
    w->rsv_base_ms = base_ms;
    w->rsv_bytes_per_ms = bytes_per_ms ? bytes_per_ms : 1;
}

/* Reads the manifest into the writer. NOT_FOUND when the index does not exist. */
static s3v_status read_manifest(wal_writer *w, uint64_t deadline, wal_append_info *info)
{
    s3v_buf buf;
    s3v_buf_init(&buf, MANIFEST_CAP);
    uint64_t t = s3v_now_ns();
    info->requests++;
    s3v_status rc = s3v_storage_get(w->st, w->manifest_key, deadline, &buf, NULL);
    ivf_manifest m;
    if (rc == S3V_OK) {
        rc = ivf_manifest_decode(buf.ptr, buf.len, &m);
        if (rc != S3V_OK) {
            char where[1200];
            s3v_storage_describe(w->st, w->manifest_key, where, sizeof where);
            rc = s3v_error_context(rc, "%s", where);
        }
    }
    s3v_buf_free(&buf);
    if (rc != S3V_OK) return rc;
    if (w->have_m && m.incarnation != w->m.incarnation) w->hint = w->clean = 0;
    ivf_manifest_free(&w->m);
    w->m = m;
    w->have_m = 1;
    w->m_mono_ns = t;
    return S3V_OK;
}

static uint64_t window_ns(const ivf_manifest *m) { return (uint64_t)m->grace_seconds * 1000000000ull / 4; }

static void remove_object(wal_writer *w, const char *key, uint64_t deadline, wal_append_info *info)
{
    info->requests++;
    /* best effort: an object left behind lies in a dead incarnation, which compaction removes */
    s3v_status rc = s3v_storage_del(w->st, key, deadline);
    if (rc != S3V_OK) s3v_log(S3V_LOG_WARN, "log object %s was not removed: %s", key, s3v_errmsg(rc));
}

/* The first free slot from `from` on (the end of the run of taken slots), and the first reserved slot on
 * the way (*reserved = *end when there is none; reserved may be NULL). */
static s3v_status log_end(s3v_storage *st, const char *prefix, uint64_t inc, uint64_t from, uint64_t deadline,
                          uint64_t *end, uint64_t *reserved)
{
    wal_slot *v = NULL;
    size_t n = 0;
    S3V_TRY(list_run(st, prefix, inc, from, 0, 0, deadline, &v, &n));
    *end = n ? v[n - 1].seq + 1 : from;
    for (size_t i = 0; reserved && i <= n; i++)
        if (i == n || v[i].size == WAL_RESERVATION_SIZE) {
            *reserved = i == n ? *end : v[i].seq;
            break;
        }
    free(v);
    return S3V_OK;
}

/* The manifest's window closes a quarter of the grace period after it was read: no slot may be taken (or
 * filled) later than that (the grace rule), nor after the caller's deadline. */
static uint64_t window_deadline(const wal_writer *w, uint64_t deadline)
{
    uint64_t window_end = w->m_mono_ns + window_ns(&w->m);
    return deadline < window_end ? deadline : window_end;
}

s3v_status wal_writer_prepare(wal_writer *w, uint64_t deadline, const ivf_manifest **out)
{
    if (!w->have_m || s3v_now_ns() - w->m_mono_ns > window_ns(&w->m)) {
        wal_append_info info = {0};
        s3v_status rc = read_manifest(w, deadline, &info);
        if (rc == S3V_ERR_NOT_FOUND) return s3v_errorf(S3V_ERR_NOT_FOUND, "the index does not exist");
        S3V_TRY(rc);
    }
    *out = &w->m;
    return S3V_OK;
}

/* One listing from `lo` while a writer waits (a missing slot below `seq` was collected after it was
 * folded, or removed from a dead incarnation: not waited for). It finds the lowest reserved slot in
 * [lo, seq), and past seq the end of the contiguous run (`end`, the first missing slot) and the first
 * reserved slot in (seq, end) (`after`, = end when none). */
typedef struct rsv_scan {
    uint64_t lo, seq, first, after, end; /* first, after: UINT64_MAX while none is found */
    uint64_t want;                       /* the next slot expected at or above `fill_from` */
    uint64_t fill_from;       /* holes below this are not filled (collected slots, below the start) */
    uint64_t holes[MAX_FILL]; /* missing slots in [fill_from, seq) */
    size_t nholes;
} rsv_scan;

static void note_holes(rsv_scan *r, uint64_t upto)
{
    for (uint64_t h = r->want; h < upto && r->nholes < MAX_FILL; h++) r->holes[r->nholes++] = h;
    if (upto > r->want) r->want = upto;
}

static int on_rsv(void *arg, const char *key, uint64_t size, int is_prefix)
{
    rsv_scan *r = arg;
    uint64_t s;
    if (is_prefix || !wal_parse_seq(key, &s) || s < r->lo) return 0;
    if (s >= r->fill_from) note_holes(r, s < r->seq ? s : r->seq);
    if (s < r->fill_from) return 0;
    if (s < r->seq) {
        r->want = s + 1;
        if (size == WAL_RESERVATION_SIZE && r->first == UINT64_MAX) r->first = s;
        return 0;
    }
    if (s != r->end) return 1; /* the end of the run */
    if (size == WAL_RESERVATION_SIZE && r->after == UINT64_MAX && s > r->seq) r->after = s;
    r->end = s + 1;
    return 0;
}

/* PUTs a no-op object (no records) into slot s under `cond`. */
static s3v_status put_noop(wal_writer *w, uint64_t inc, uint64_t s, const s3v_put_cond *cond,
                           uint64_t deadline, wal_append_info *info)
{
    char key[WAL_KEY_MAX];
    S3V_TRY(wal_object_key(w->prefix, inc, s, key, sizeof key));
    wal_batch nop;
    wal_batch_init(&nop, w->m.dimension);
    s3v_buf obj;
    s3v_buf_init(&obj, WAL_HEADER_SIZE);
    s3v_status rc = wal_object_encode(&nop, inc, s, &obj);
    if (rc == S3V_OK) {
        info->requests++;
        rc = s3v_storage_put(w->st, key, obj.ptr, obj.len, cond, deadline, NULL);
    }
    s3v_buf_free(&obj);
    wal_batch_free(&nop);
    return rc;
}

/* Replaces the reservation of slot `s` with a no-op object if it has stood longer than its timeout since
 * `since` (monotonic ns); *done = 1 when the slot no longer needs waiting for. */
static s3v_status break_if_stale(wal_writer *w, uint64_t inc, uint64_t s, uint64_t since, uint64_t deadline,
                                 wal_append_info *info, int *done)
{
    *done = 0;
    uint64_t waited_ms = (s3v_now_ns() - since) / 1000000;
    if (waited_ms < w->rsv_base_ms) return S3V_OK;
    char key[WAL_KEY_MAX];
    S3V_TRY(wal_object_key(w->prefix, inc, s, key, sizeof key));
    s3v_buf b; /* a reservation or nothing: a larger object (stopped at its size) is written */
    s3v_buf_init(&b, WAL_RESERVATION_SIZE);
    s3v_obj_info oi;
    info->requests++;
    s3v_status rc = s3v_storage_get(w->st, key, deadline, &b, &oi);
    if (rc == S3V_ERR_NOT_FOUND || rc == S3V_ERR_TOO_LARGE) { /* collected (so folded), or written */
        s3v_error_clear();
        s3v_buf_free(&b);
        *done = 1;
        return S3V_OK;
    }
    if (rc != S3V_OK) {
        s3v_buf_free(&b);
        return rc;
    }
    int reserved = wal_is_reservation(b.ptr, b.len);
    uint32_t announced = reserved ? reservation_size(b.ptr, b.len, inc, s) : 0;
    s3v_buf_free(&b);
    if (!reserved) { /* written meanwhile */
        *done = 1;
        return S3V_OK;
    }
    if (waited_ms < w->rsv_base_ms + announced / w->rsv_bytes_per_ms) return S3V_OK;
    s3v_put_cond cond = {S3V_PUT_IF_MATCH, oi.etag};
    rc = put_noop(w, inc, s, &cond, deadline, info);
    if (rc == S3V_OK) {
        info->broken++;
        s3v_log(S3V_LOG_WARN, "log slot %llu was reserved for %llu ms and never written; filled with a no-op",
                (unsigned long long)s, (unsigned long long)waited_ms);
        *done = 1;
    } else if (rc == S3V_ERR_PRECONDITION || rc == S3V_ERR_NOT_FOUND) { /* written or broken meanwhile */
        s3v_error_clear();
        rc = S3V_OK;
    }
    return rc;
}

/* Puts a no-op object into a free slot (If-None-Match: a slot taken meanwhile is left as it is). */
static s3v_status fill_hole(wal_writer *w, uint64_t inc, uint64_t s, uint64_t deadline, wal_append_info *info)
{
    s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
    s3v_status rc = put_noop(w, inc, s, &cond, deadline, info);
    if (rc == S3V_OK) info->filled++;
    if (rc == S3V_ERR_PRECONDITION) {
        s3v_error_clear();
        rc = S3V_OK;
    }
    return rc;
}

/* Waits until no slot in [lo, seq) is free or holds a reservation, so that a reader going slot by slot
 * reaches seq. Free slots (skipped by contended writers) are filled with no-op objects at once, and so
 * are reservations that outstay their timeout. Lists at least once; the last listing's view past seq goes
 * to *end and *after (see rsv_scan). Holes are only filled in [fill_from, seq) and before put_deadline
 * (the grace rule: fill_from is the start of the log in a manifest read within the window). */
static s3v_status wait_below(wal_writer *w, uint64_t inc, uint64_t lo, uint64_t seq, uint64_t fill_from,
                             uint64_t put_deadline, uint64_t deadline, wal_append_info *info, uint64_t *end,
                             uint64_t *after)
{
    char folder[WAL_KEY_MAX], after_key[WAL_KEY_MAX];
    S3V_TRY(wal_folder(w->prefix, inc, folder, sizeof folder));
    uint64_t pause_us = WAIT_FIRST_US, watched = UINT64_MAX, since = 0;
    for (;;) {
        if (lo) S3V_TRY(wal_object_key(w->prefix, inc, lo - 1, after_key, sizeof after_key));
        rsv_scan r = {lo,        seq, UINT64_MAX, UINT64_MAX, seq, fill_from > lo ? fill_from : lo,
                      fill_from, {0}, 0};
        s3v_list_req req = {folder, NULL, lo ? after_key : NULL, 0};
        info->requests++;
        info->waits++;
        S3V_TRY(s3v_storage_list(w->st, &req, deadline, on_rsv, &r));
        note_holes(&r, seq);
        *end = r.end > seq ? r.end : seq + 1;
        *after = r.after < *end ? r.after : *end;
        if (r.nholes) {
            if (s3v_now_ns() >= put_deadline) { /* the grace rule: a fresh manifest before filling */
                S3V_TRY(read_manifest(w, deadline, info));
                if (w->m.incarnation != inc) return S3V_OK; /* the acknowledging read will refuse it */
                fill_from = w->m.wal_start;
                put_deadline = window_deadline(w, deadline);
                continue;
            }
            for (size_t i = 0; i < r.nholes; i++) {
                s3v_status rc = fill_hole(w, inc, r.holes[i], put_deadline, info);
                if (rc == S3V_ERR_TIMEOUT && s3v_now_ns() < deadline) { /* the window closed meanwhile */
                    s3v_error_clear();
                    break;
                }
                S3V_TRY(rc);
            }
            continue;
        }
        if (r.first == UINT64_MAX) return S3V_OK;
        lo = r.first;
        uint64_t now = s3v_now_ns();
        if (lo != watched) { /* a new one to watch: the earlier ones were written */
            watched = lo;
            since = now;
            pause_us = WAIT_FIRST_US;
        } else {
            int done;
            S3V_TRY(break_if_stale(w, inc, lo, since, deadline, info, &done));
            if (done) continue;
        }
        if (deadline != S3V_NO_DEADLINE && now + pause_us * 1000 >= deadline)
            return s3v_errorf(S3V_ERR_TIMEOUT,
                              "log slot %llu below this write was still reserved at the deadline",
                              (unsigned long long)lo);
        s3v_sleep_us(pause_us);
        pause_us = pause_us * 2 < WAIT_MAX_US ? pause_us * 2 : WAIT_MAX_US;
    }
}

/* Contended writers that all went for the same next slot would collide again and again: each picks one of
 * the next `spread` slots at random instead (the ones left free are filled with no-ops before any write
 * above them is acknowledged). `spread` grows with every conflict at a freshly listed end and shrinks with
 * every append that had no such conflict, so it follows the number of writers racing. */
static uint64_t pick_offset(wal_writer *w) { return w->spread > 1 ? s3v_rng_below(&w->rng, w->spread) : 0; }

/* Takes slot *seq or a later one for the encoded object in w->obj (re-encoded per slot): directly with
 * If-None-Match, or, when `*reserve`, with a reservation that is then replaced by the object. *lo is
 * lowered to the first slot found taken on the way (it may hold a reservation). S3V_ERR_PRECONDITION when
 * the reservation won was broken before the object replaced it. */
static s3v_status take_slot(wal_writer *w, const wal_batch *b, uint64_t inc, uint64_t *seq, uint64_t *lo,
                            int *reserve, uint64_t put_deadline, wal_append_info *info)
{
    char key[WAL_KEY_MAX];
    uint32_t since_list = 0; /* conflicts since the position came from a listing */
    int listed = 0;
    size_t size = WAL_HEADER_SIZE + b->body.len;
    s3v_obj_info oi;
    s3v_status rc;
    for (;;) {
        S3V_TRY(wal_object_key(w->prefix, inc, *seq, key, sizeof key));
        s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
        info->requests++;
        if (*reserve) {
            uint8_t r[WAL_RESERVATION_SIZE];
            reservation_encode(r, inc, *seq, (uint32_t)size);
            rc = s3v_storage_put(w->st, key, r, sizeof r, &cond, put_deadline, &oi);
        } else {
            s3v_buf_reset(&w->obj);
            S3V_TRY(wal_object_encode(b, inc, *seq, &w->obj));
            rc = s3v_storage_put(w->st, key, w->obj.ptr, w->obj.len, &cond, put_deadline, NULL);
        }
        if (rc != S3V_ERR_PRECONDITION) break;
        s3v_error_clear();
        info->conflicts++;
        if (*seq < *lo) *lo = *seq;
        *reserve = 1; /* contended: from now on a lost race costs a small PUT, not the object */
        /* A conflict at a position this writer remembered means the log moved on: one listing finds its
         * end. A conflict at the end just listed is a race with other writers: they spread out. */
        if (!listed || ++since_list % JUMP_AFTER == 0) {
            uint64_t end;
            info->requests++;
            S3V_TRY(log_end(w->st, w->prefix, inc, *seq + 1, put_deadline, &end, NULL));
            *seq = end + (listed ? pick_offset(w) : 0);
            listed = 1;
        } else {
            if (w->spread < SPREAD_MAX) w->spread++;
            *seq += 1 + pick_offset(w);
        }
    }
    if (rc != S3V_OK || !*reserve) return rc;
    info->reserved = 1;
    s3v_buf_reset(&w->obj);
    S3V_TRY(wal_object_encode(b, inc, *seq, &w->obj));
    s3v_put_cond cond = {S3V_PUT_IF_MATCH, oi.etag};
    info->requests++;
    rc = s3v_storage_put(w->st, key, w->obj.ptr, w->obj.len, &cond, put_deadline, NULL);
    if (rc == S3V_ERR_NOT_FOUND) { /* only a dead incarnation's log is removed: treat as broken */
        s3v_error_clear();
        rc = s3v_errorf(S3V_ERR_PRECONDITION, "the reservation of log slot %llu is gone",
                        (unsigned long long)*seq);
    }
    return rc;
}

s3v_status wal_writer_append(wal_writer *w, const wal_batch *b, uint64_t deadline, wal_append_info *info)
{
    wal_append_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (b->count == 0) return s3v_errorf(S3V_ERR_INVALID, "an empty batch is not written");
    char key[WAL_KEY_MAX];
    for (uint32_t attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (attempt) info->retries++;
        /* A slot is only safe to take within a quarter of the grace period after the manifest that
         * said it was at or above the start was read (FORMAT.md): re-read an older copy. */
        if (!w->have_m || s3v_now_ns() - w->m_mono_ns > window_ns(&w->m)) {
            s3v_status rc = read_manifest(w, deadline, info);
            if (rc == S3V_ERR_NOT_FOUND) return s3v_errorf(S3V_ERR_NOT_FOUND, "the index does not exist");
            S3V_TRY(rc);
        }
        if (b->dim != w->m.dimension)
            return s3v_errorf(S3V_ERR_DIMENSION, "vectors have dimension %u, the index has dimension %u",
                              b->dim, w->m.dimension);
        uint64_t inc = w->m.incarnation;
        /* `lo`: the first slot below ours that may still hold a reservation */
        uint64_t seq = w->hint > w->m.wal_start ? w->hint : w->m.wal_start;
        uint64_t lo = w->clean > w->m.wal_start ? w->clean : w->m.wal_start;
        if (lo > seq) lo = seq;
        if (w->hint <= w->m.wal_start) { /* no position of our own: one listing finds the end of the log */
            info->requests++;
            S3V_TRY(log_end(w->st, w->prefix, inc, w->m.wal_start, deadline, &seq, &lo));
        }
        uint64_t put_deadline = window_deadline(w, deadline);
        int reserve = w->contended > 0;
        if (reserve) seq += pick_offset(w);
        s3v_status rc = take_slot(w, b, inc, &seq, &lo, &reserve, put_deadline, info);
        if (reserve) w->contended = info->conflicts ? CONTENDED : w->contended - 1;
        if (!info->conflicts && w->spread > 1) w->spread--; /* no race this time */
        if (rc == S3V_ERR_PRECONDITION) { /* our reservation was taken for a dead one's: a later slot */
            s3v_error_clear();
            if (lo < w->clean || w->clean < w->m.wal_start) w->clean = lo;
            w->hint = seq + 1;
            continue;
        }
        if (rc == S3V_ERR_TIMEOUT && s3v_now_ns() < deadline) {
            w->have_m = 0; /* the manifest's window closed before a slot was won: read it again */
            continue;
        }
        S3V_TRY(rc);
        S3V_TRY(wal_object_key(w->prefix, inc, seq, key, sizeof key));
        /* Readers stop at a reservation: wait until those below ours are written (or broken). The listing
         * also shows how far the log has grown past ours: where a contended writer tries next. */
        uint64_t end = seq + 1, after = seq + 1;
        if (lo < seq || reserve) {
            rc = wait_below(w, inc, lo, seq, w->m.wal_start, put_deadline, deadline, info, &end, &after);
            if (rc != S3V_OK) return s3v_error_context(rc, "log object %llu", (unsigned long long)seq);
        }
        /* Acknowledge only when the index is still the one the slot belongs to. */
        rc = read_manifest(w, deadline, info);
        if (rc == S3V_ERR_NOT_FOUND) {
            remove_object(w, key, deadline, info);
            w->have_m = 0;
            return s3v_errorf(S3V_ERR_NOT_FOUND, "the index was deleted while the vectors were written");
        }
        if (rc != S3V_OK) return s3v_error_context(rc, "confirming log object %llu", (unsigned long long)seq);
        if (w->m.incarnation != inc) {
            remove_object(w, key, deadline, info);
            return s3v_errorf(S3V_ERR_NOT_FOUND,
                              "the index was deleted or replaced while the vectors were written");
        }
        /* seq below the start means a compaction already folded this object: it is visible */
        w->hint = end;
        w->clean = after;
        info->seq = seq;
        return S3V_OK;
    }
    return s3v_errorf(S3V_ERR_TIMEOUT, "no log slot could be taken in %d attempts", MAX_ATTEMPTS);
}

s3v_status wal_append_drop(s3v_storage *st, const char *prefix, uint64_t incarnation, uint32_t dim,
                           uint64_t start, uint32_t grace_seconds, uint64_t deadline)
{
    wal_batch b;
    wal_batch_init(&b, dim);
    s3v_buf obj;
    s3v_buf_init(&obj, 4096);
    char key[WAL_KEY_MAX], folder[WAL_KEY_MAX];
    s3v_status rc = wal_batch_drop(&b, grace_seconds);
    if (rc == S3V_OK) rc = wal_folder(prefix, incarnation, folder, sizeof folder);
    for (int attempt = 0; rc == S3V_OK && attempt < 16; attempt++) {
        /* the slots present are a contiguous run (collection deletes from the front): its end */
        uint64_t first = 0, from = 0;
        int any = 0;
        rc = first_slot(st, folder, deadline, &first, &any);
        if (rc == S3V_OK && any) rc = log_end(st, prefix, incarnation, first, deadline, &from, NULL);
        if (rc != S3V_OK) break;
        if (from < start) from = start; /* readers look from the start on */
        s3v_buf_reset(&obj);
        rc = wal_object_encode(&b, incarnation, from, &obj);
        if (rc == S3V_OK) rc = wal_object_key(prefix, incarnation, from, key, sizeof key);
        s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
        if (rc == S3V_OK) rc = s3v_storage_put(st, key, obj.ptr, obj.len, &cond, deadline, NULL);
        if (rc != S3V_ERR_PRECONDITION) break;
        s3v_error_clear();
        rc = S3V_OK; /* a writer took that slot meanwhile: look again */
    }
    wal_batch_free(&b);
    s3v_buf_free(&obj);
    return rc;
}
