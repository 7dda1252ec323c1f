/* tests/unit/test_wal.c: the write-ahead log and read-your-writes, on a local folder.
 *
 *  - log objects: round trip; every flipped bit, every truncation, a misplaced object (another slot or
 *    incarnation) and structurally bad records behind valid checksums are detected, never decoded;
 *  - vector checks (NaN, infinity, zero under cosine, f16 range);
 *  - the writer: slots are contiguous across writers, a writer behind the log jumps to its end, an
 *    index deleted and re-created under a writer is never written to (the write fails, nothing is left),
 *    a writer whose manifest copy is older than its window re-reads it (the grace rule, with a slot
 *    collected behind it);
 *  - tail semantics: upsert, delete, re-put after delete, duplicates in one batch;
 *  - merge: for every metric, search over generation + tail equals brute force over the logical
 *    contents (exact mode, with filters), the default-probe search never returns a stale or deleted
 *    vector and finds every tail vector of the true top k; get and list agree with the contents; the
 *    int8 bound rules out tail vectors without losing any;
 *  - the tail's rows under churn: after overwrites drop dead rows from its arrays and new keys follow,
 *    search still equals brute force and the bound still prunes;
 *  - refresh: a reader sees another writer's write at once, with one request when nothing is new;
 *  - reservations: readers stop at one; a writer above it waits for it to be written (a healthy one is
 *    never broken) or, once it outstays its timeout, fills it with a no-op (the late holder's write then
 *    fails and nothing is lost); a writer that lost a race takes later slots with reservations; writers
 *    on four threads leave a contiguous log in which every acknowledged write is found exactly once. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/le.h"
#include "common/rng.h"
#include "engine/build.h"
#include "engine/compact.h"
#include "engine/index.h"
#include "engine/input.h"
#include "engine/kernels.h"
#include "engine/tail.h"
#include "engine/topk.h"
#include "engine/wal.h"
#include "testutil.h"

#define D     16
#define NBASE 2000
#define NKEYS 3500 /* v0..v1999 built, v2000..v3499 written */

static char tmpdir[256];

/* ---- log objects ---- */

static void test_object_format(void)
{
    wal_batch b;
    wal_batch_init(&b, 3);
    float v1[3] = {1, -2.5f, 3e-7f}, v2[3] = {0, 0, 1};
    const char *meta = "{\"genre\":\"x\",\"n\":[1,2]}";
    CHECK(wal_batch_put(&b, (const uint8_t *)"alpha", 5, v1, (const uint8_t *)meta, strlen(meta)) == S3V_OK,
          "put");
    CHECK(wal_batch_delete(&b, (const uint8_t *)"beta", 4) == S3V_OK, "delete");
    char longkey[1025];
    memset(longkey, 'k', 1024);
    longkey[1024] = 0;
    CHECK(wal_batch_put(&b, (const uint8_t *)longkey, 1024, v2, NULL, 0) == S3V_OK,
          "put with a 1024-byte key");
    CHECK(wal_batch_put(&b, (const uint8_t *)longkey, 1025, v2, NULL, 0) != S3V_OK,
          "a 1025-byte key is refused");
    CHECK(wal_batch_delete(&b, (const uint8_t *)"", 0) != S3V_OK, "an empty key is refused");
    CHECK(b.count == 3, "three records (%u)", b.count);
    s3v_buf o;
    s3v_buf_init(&o, 1 << 20);
    REQUIRE(wal_object_encode(&b, 0x1122334455667788ull, 42, &o) == S3V_OK, "encode");
    wal_object obj;
    REQUIRE(wal_object_parse(o.ptr, o.len, 0x1122334455667788ull, 42, 3, &obj) == S3V_OK, "parse: %s",
            s3v_errmsg(S3V_ERR_CORRUPT));
    size_t pos = 0;
    wal_record r;
    int n = 0;
    while (wal_object_next(&obj, &pos, &r)) {
        if (n == 0) {
            CHECK(r.op == WAL_OP_PUT && r.key_len == 5 && !memcmp(r.key, "alpha", 5), "record 0 key");
            CHECK(le_get_f32(r.vector + 4) == -2.5f && le_get_f32(r.vector + 8) == 3e-7f, "record 0 vector");
            CHECK(r.meta_len == strlen(meta) && !memcmp(r.meta, meta, r.meta_len), "record 0 metadata");
            CHECK(((uintptr_t)r.vector - (uintptr_t)o.ptr) % 4 == 0,
                  "vectors are 4-byte aligned in the object");
        }
        if (n == 1)
            CHECK(r.op == WAL_OP_DELETE && r.key_len == 4 && !r.vector && !r.meta, "record 1 is a delete");
        if (n == 2) CHECK(r.op == WAL_OP_PUT && r.key_len == 1024 && !r.meta, "record 2");
        n++;
    }
    CHECK(n == 3, "three records read back (%d)", n);
    CHECK(wal_object_parse(o.ptr, o.len, 0x1122334455667788ull, 43, 3, &obj) == S3V_ERR_CORRUPT,
          "an object stored at another slot is refused");
    CHECK(wal_object_parse(o.ptr, o.len, 0x1122334455667789ull, 42, 3, &obj) == S3V_ERR_CORRUPT,
          "an object of another incarnation is refused");
    CHECK(wal_object_parse(o.ptr, o.len, 0x1122334455667788ull, 42, 4, &obj) == S3V_ERR_CORRUPT,
          "an object of another dimension is refused");
    int undetected = 0;
    for (size_t i = 0; i < o.len; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            o.ptr[i] ^= (uint8_t)(1u << bit);
            if (wal_object_parse(o.ptr, o.len, 0x1122334455667788ull, 42, 3, &obj) == S3V_OK) undetected++;
            o.ptr[i] ^= (uint8_t)(1u << bit);
        }
    CHECK(undetected == 0, "%d flipped bits went undetected", undetected);
    int bad_trunc = 0;
    for (size_t len = 0; len < o.len; len++)
        if (wal_object_parse(o.ptr, len, 0x1122334455667788ull, 42, 3, &obj) == S3V_OK) bad_trunc++;
    CHECK(bad_trunc == 0, "%d truncations went undetected", bad_trunc);

    /* structure is checked behind valid checksums: a bad op, padding and a value that is not finite */
    for (int c = 0; c < 3; c++) {
        s3v_buf x;
        s3v_buf_init(&x, 1 << 20);
        CHECK(s3v_buf_append(&x, o.ptr, o.len) == S3V_OK, "copy");
        uint8_t *body = x.ptr + WAL_HEADER_SIZE;
        if (c == 0) body[0] = 7;                           /* op */
        if (c == 1) body[8 + 12 + 5 + strlen(meta)] = 1;   /* first record's padding */
        if (c == 2) le_put_u32(body + 8 + 4, 0x7f800000u); /* +infinity in the first vector */
        le_put_u32(x.ptr + 40, s3v_crc32c(0, body, x.len - WAL_HEADER_SIZE));
        le_put_u32(x.ptr + 44, s3v_crc32c(0, x.ptr, 44));
        CHECK(wal_object_parse(x.ptr, x.len, 0x1122334455667788ull, 42, 3, &obj) == S3V_ERR_CORRUPT,
              "case %d: a structurally bad object with valid checksums is refused", c);
        s3v_buf_free(&x);
    }
    s3v_buf_free(&o);

    /* limits */
    wal_batch_reset(&b);
    for (int i = 0; i < WAL_MAX_RECORDS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        if (wal_batch_delete(&b, (const uint8_t *)k, strlen(k)) != S3V_OK) break;
    }
    CHECK(b.count == WAL_MAX_RECORDS, "500 records fit");
    CHECK(wal_batch_delete(&b, (const uint8_t *)"one-more", 8) == S3V_ERR_TOO_LARGE, "the 501st is refused");
    wal_batch_free(&b);

    float bad[3] = {1, NAN, 0}, inf[3] = {INFINITY, 0, 0}, zero[3] = {0, 0, 0}, big[3] = {70000, 0, 0};
    CHECK(wal_vector_check(IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, bad, 3) == S3V_ERR_INVALID, "NaN refused");
    CHECK(wal_vector_check(IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, inf, 3) == S3V_ERR_INVALID, "infinity refused");
    CHECK(wal_vector_check(IVF_METRIC_COSINE, IVF_ENC_F32, zero, 3) == S3V_ERR_INVALID,
          "zero under cosine refused");
    CHECK(wal_vector_check(IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, zero, 3) == S3V_OK,
          "zero under euclidean is fine");
    CHECK(wal_vector_check(IVF_METRIC_DOT, IVF_ENC_F16, big, 3) == S3V_ERR_INVALID, "70000 does not fit f16");
    CHECK(wal_vector_check(IVF_METRIC_DOT, IVF_ENC_F32, big, 3) == S3V_OK, "70000 fits f32");

    uint64_t seq;
    CHECK(wal_parse_seq("a/b/wal/0011223344556677/00000000000000000042", &seq) && seq == 42,
          "parse a slot name");
    CHECK(!wal_parse_seq("a/b/wal/x/0000000000000000004", &seq), "19 digits is not a slot");
    CHECK(!wal_parse_seq("a/b/wal/x/0000000000000000004a", &seq), "a letter is not a slot");
    CHECK(!wal_parse_seq("99999999999999999999", &seq), "an overflowing slot is refused");
}

/* An empty log object (the no-op that fills a slot whose writer died) and reservations. */
static void test_noop_and_reservation_format(void)
{
    wal_batch b;
    wal_batch_init(&b, 3);
    s3v_buf o;
    s3v_buf_init(&o, 1 << 20);
    REQUIRE(wal_object_encode(&b, 9, 4, &o) == S3V_OK, "encode a no-op");
    wal_object obj;
    CHECK(o.len == WAL_HEADER_SIZE && wal_object_parse(o.ptr, o.len, 9, 4, 3, &obj) == S3V_OK &&
              obj.count == 0 && obj.body_size == 0,
          "a no-op is a header with no records");
    size_t pos = 0;
    wal_record rec;
    CHECK(!wal_object_next(&obj, &pos, &rec) && !wal_object_is_drop(&obj, NULL, NULL), "it holds nothing");
    CHECK(!wal_is_reservation(o.ptr, o.len), "a no-op is not a reservation");
    le_put_u32(o.ptr + 32, 1); /* claims a record it does not have */
    le_put_u32(o.ptr + 44, s3v_crc32c(0, o.ptr, 44));
    CHECK(wal_object_parse(o.ptr, o.len, 9, 4, 3, &obj) == S3V_ERR_CORRUPT,
          "a count without a body: corrupt");
    float v[3] = {1, 2, 3};
    REQUIRE(wal_batch_put(&b, (const uint8_t *)"k", 1, v, NULL, 0) == S3V_OK, "put");
    s3v_buf_reset(&o);
    REQUIRE(wal_object_encode(&b, 9, 4, &o) == S3V_OK, "encode");
    le_put_u32(o.ptr + 32, 0); /* a body that claims no records */
    le_put_u32(o.ptr + 44, s3v_crc32c(0, o.ptr, 44));
    CHECK(wal_object_parse(o.ptr, o.len, 9, 4, 3, &obj) == S3V_ERR_CORRUPT, "a body with count 0: corrupt");
    uint8_t r[WAL_RESERVATION_SIZE] = {'S', '3', 'V', 'W', 'R', 'S', 'V', 0};
    CHECK(wal_is_reservation(r, sizeof r) && !wal_is_reservation(r, sizeof r - 1) &&
              !wal_is_reservation(o.ptr, WAL_RESERVATION_SIZE),
          "a reservation is told by its size and magic");
    s3v_buf_free(&o);
    wal_batch_free(&b);
}

/* ---- helpers over a local index ---- */

static s3v_storage *open_root(const char *dir)
{
    s3v_storage *st = NULL;
    if (s3v_storage_local_open(dir, 1, &st) != S3V_OK) return NULL;
    return st;
}

static s3v_status put_one(wal_writer *w, uint32_t dim, const char *key, const float *v, const char *meta,
                          uint64_t *seq)
{
    wal_batch b;
    wal_batch_init(&b, dim);
    s3v_status st = wal_batch_put(&b, (const uint8_t *)key, strlen(key), v, (const uint8_t *)meta,
                                  meta ? strlen(meta) : 0);
    wal_append_info info;
    if (st == S3V_OK) st = wal_writer_append(w, &b, S3V_NO_DEADLINE, &info);
    if (st == S3V_OK && seq) *seq = info.seq;
    wal_batch_free(&b);
    return st;
}

static s3v_status del_one(wal_writer *w, uint32_t dim, const char *key)
{
    wal_batch b;
    wal_batch_init(&b, dim);
    s3v_status st = wal_batch_delete(&b, (const uint8_t *)key, strlen(key));
    if (st == S3V_OK) st = wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL);
    wal_batch_free(&b);
    return st;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- the writer ---- */

static void test_writer(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/writer", tmpdir);
    s3v_storage *st = open_root(dir);
    REQUIRE(st != NULL, "storage");
    wal_writer *a, *b;
    REQUIRE(wal_writer_new(st, "vb/ix", &a) == S3V_OK && wal_writer_new(st, "vb/ix", &b) == S3V_OK,
            "writers");
    float v[4] = {1, 2, 3, 4};
    CHECK(put_one(a, 4, "k", v, NULL, NULL) == S3V_ERR_NOT_FOUND, "no index: NOT_FOUND");
    ivf_manifest m;
    REQUIRE(ivf_create_empty(st, "vb/ix", 4, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0, S3V_NO_DEADLINE,
                             &m) == S3V_OK,
            "create: %s", s3v_errmsg(S3V_ERR_INVALID));
    CHECK(m.nlist == 0 && m.count == 0 && m.wal_start == 0 && m.grace_seconds == IVF_GRACE_DEFAULT_S,
          "an empty index");
    CHECK(ivf_create_empty(st, "vb/ix", 4, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0, S3V_NO_DEADLINE,
                           NULL) == S3V_ERR_CONFLICT,
          "creating it again is a conflict");
    uint64_t inc = m.incarnation;
    ivf_manifest_free(&m);

    /* two writers interleaved: contiguous slots, each taken once */
    uint64_t seqs[12];
    for (int i = 0; i < 12; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        REQUIRE(put_one(i % 3 ? a : b, 4, k, v, NULL, &seqs[i]) == S3V_OK, "put %d: %s", i,
                s3v_errmsg(S3V_ERR_INVALID));
    }
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= seqs[i] == (uint64_t)i;
    CHECK(ok, "slots 0..11 in order across two writers");
    wal_slot *slots;
    size_t ns;
    REQUIRE(wal_list_slots(st, "vb/ix", inc, 0, 0, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list");
    CHECK(ns == 12 && slots[11].seq == 11, "12 slots listed (%zu)", ns);
    free(slots);
    REQUIRE(wal_list_slots(st, "vb/ix", inc, 5, 3, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list from 5");
    CHECK(ns == 3 && slots[0].seq == 5 && slots[2].seq == 7, "list from 5, at most 3");
    free(slots);

    /* a writer far behind (b's hint is 10, 40 slots were written since) jumps with a listing */
    wal_writer *c;
    REQUIRE(wal_writer_new(st, "vb/ix", &c) == S3V_OK, "writer c");
    for (int i = 0; i < 40; i++) REQUIRE(put_one(a, 4, "x", v, NULL, NULL) == S3V_OK, "filler");
    wal_batch bt;
    wal_batch_init(&bt, 4);
    CHECK(wal_batch_put(&bt, (const uint8_t *)"late", 4, v, NULL, 0) == S3V_OK, "batch");
    wal_append_info info;
    REQUIRE(wal_writer_append(b, &bt, S3V_NO_DEADLINE, &info) == S3V_OK, "late append");
    CHECK(info.seq == 52 && info.filled == 0, "the late writer lands right after the end (%llu, %u no-ops)",
          (unsigned long long)info.seq, info.filled);
    CHECK(info.conflicts == 1 && info.requests <= 6,
          "one conflict, then a listing found the end (%u conflicts)", info.conflicts);
    wal_batch_reset(&bt);
    CHECK(wal_writer_append(b, &bt, S3V_NO_DEADLINE, NULL) == S3V_ERR_INVALID, "an empty batch is refused");
    wal_batch_free(&bt);
    wal_batch_init(&bt, 5);
    float v5[5] = {1, 2, 3, 4, 5};
    CHECK(wal_batch_put(&bt, (const uint8_t *)"k", 1, v5, NULL, 0) == S3V_OK, "batch of dimension 5");
    CHECK(wal_writer_append(c, &bt, S3V_NO_DEADLINE, NULL) == S3V_ERR_DIMENSION, "wrong dimension refused");
    wal_batch_free(&bt);

    /* the index is deleted and re-created while `a` holds a fresh copy of the old manifest: a's write goes
     * to the dead incarnation's log, is found out by the second manifest read, removed and refused; a reader
     * that had the index open finds the deletion at its next read of the log */
    ivf_index *reader;
    REQUIRE(ivf_index_open(st, "vb/ix", NULL, S3V_NO_DEADLINE, &reader) == S3V_OK, "a reader");
    REQUIRE(ivf_drop(st, "vb/ix", S3V_NO_DEADLINE) == S3V_OK, "drop");
    int reopen = 0;
    CHECK(ivf_index_refresh(reader, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK && reopen,
          "the reader's next read of the log finds the deletion (it opens the index again)");
    ivf_index_close(reader);
    CHECK(ivf_index_open(st, "vb/ix", NULL, S3V_NO_DEADLINE, &reader) == S3V_ERR_NOT_FOUND, "and finds none");
    CHECK(ivf_drop(st, "vb/ix", S3V_NO_DEADLINE) == S3V_ERR_NOT_FOUND, "dropping again: NOT_FOUND");
    REQUIRE(ivf_create_empty(st, "vb/ix", 4, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0, S3V_NO_DEADLINE,
                             &m) == S3V_OK,
            "re-create");
    CHECK(m.incarnation != inc, "a new incarnation");
    uint64_t inc2 = m.incarnation;
    ivf_manifest_free(&m);
    s3v_status rc = put_one(a, 4, "ghost", v, NULL, NULL);
    CHECK(rc == S3V_ERR_NOT_FOUND, "a write racing a delete + create is refused (%s)", s3v_status_name(rc));
    char folder[600];
    char incs[17];
    ivf_incarnation_format(inc, incs);
    snprintf(folder, sizeof folder, "%s/vb/ix/wal/%s", dir, incs);
    int ended = 0;
    uint64_t at = 0;
    uint32_t grace = 0;
    CHECK(wal_log_ended(st, "vb/ix", inc, S3V_NO_DEADLINE, &ended, &at, &grace) == S3V_OK && ended &&
              grace == IVF_GRACE_DEFAULT_S && at > 0,
          "the dead log ends with the drop marker");
    CHECK(count_files(folder) == 54,
          "it keeps its 53 objects and the marker for the grace period; the refused "
          "write is not there (%d files)",
          count_files(folder));
    REQUIRE(wal_list_slots(st, "vb/ix", inc2, 0, 0, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list new log");
    CHECK(ns == 0, "the new index's log is empty");
    free(slots);
    uint64_t s0;
    CHECK(put_one(a, 4, "alive", v, NULL, &s0) == S3V_OK && s0 == 0,
          "the writer then writes to the new index");
    wal_writer_free(a);
    wal_writer_free(b);
    wal_writer_free(c);
    s3v_storage_close(st);
}

/* The grace rule: a writer whose copy of the manifest is older than a quarter of the grace period reads it
 * again before taking a slot, so a slot whose object was folded and then garbage-collected is never taken
 * again (which would put the write below the start, where nobody reads it). */
static void test_grace_rule(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/grace", tmpdir);
    s3v_storage *st = open_root(dir);
    REQUIRE(st != NULL, "storage");
    REQUIRE(ivf_create_empty(st, "", 4, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 1, S3V_NO_DEADLINE,
                             NULL) == S3V_OK,
            "create with a 1 s grace period");
    wal_writer *stale, *busy;
    REQUIRE(wal_writer_new(st, "", &stale) == S3V_OK && wal_writer_new(st, "", &busy) == S3V_OK, "writers");
    float v[4] = {1, 0, 0, 0};
    uint64_t seq;
    REQUIRE(put_one(stale, 4, "s0", v, NULL, &seq) == S3V_OK && seq == 0,
            "slot 0 (the stale writer's hint is 1)");
    for (int i = 1; i < 6; i++) {
        char k[8];
        snprintf(k, sizeof k, "b%d", i);
        float w[4] = {(float)i, 1, 0, 0};
        REQUIRE(put_one(busy, 4, k, w, NULL, NULL) == S3V_OK, "busy %d", i);
    }
    ivf_compact_opts co = {.threads = 1, .tmp_dir = tmpdir};
    ivf_compact_report rep;
    REQUIRE(ivf_compact(st, "", &co, &rep) == S3V_OK && rep.committed, "fold 0..5: %s",
            s3v_errmsg(S3V_ERR_INVALID));
    usleep(1300 * 1000); /* past the grace period */
    REQUIRE(ivf_compact(st, "", &co, &rep) == S3V_OK, "collect");
    CHECK(rep.gc_log_ranges == 1, "slots 0..5 were collected (%u ranges)", rep.gc_log_ranges);
    char p[600];
    snprintf(p, sizeof p, "%s/wal", dir);
    /* the stale writer's hint (1) points at a collected slot; its manifest copy is 1.3 s old (> 0.25 s) */
    float w[4] = {9, 9, 9, 9};
    REQUIRE(put_one(stale, 4, "after-gc", w, NULL, &seq) == S3V_OK, "stale writer: %s",
            s3v_errmsg(S3V_ERR_INVALID));
    CHECK(seq >= 6, "it wrote at or after the start (slot %llu)", (unsigned long long)seq);
    ivf_index *ix;
    REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix) == S3V_OK, "open");
    const uint8_t *k[1] = {(const uint8_t *)"after-gc"};
    size_t kl[1] = {8};
    ivf_result r;
    REQUIRE(ivf_index_get(ix, k, kl, 1, 1, 0, S3V_NO_DEADLINE, &r) == S3V_OK, "get");
    CHECK(r.len == 1 && r.hits[0].data[0] == 9, "the acknowledged write is visible");
    ivf_result_free(&r);
    ivf_index_close(ix);
    wal_writer_free(stale);
    wal_writer_free(busy);
    s3v_storage_close(st);
}

/* ---- tail semantics and refresh ---- */

static int get_value(ivf_index *ix, const char *key, float *first)
{
    const uint8_t *k[1] = {(const uint8_t *)key};
    size_t kl[1] = {strlen(key)};
    ivf_result r;
    if (ivf_index_get(ix, k, kl, 1, 1, 1, S3V_NO_DEADLINE, &r) != S3V_OK) return -1;
    int n = (int)r.len;
    if (n && first) *first = r.hits[0].data[0];
    ivf_result_free(&r);
    return n;
}

static void test_tail_semantics(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tail", tmpdir);
    s3v_storage *st = open_root(dir);
    REQUIRE(st != NULL, "storage");
    REQUIRE(ivf_create_empty(st, "", 2, IVF_METRIC_COSINE, IVF_ENC_F32, NULL, 0, 0, S3V_NO_DEADLINE, NULL) ==
                S3V_OK,
            "create");
    wal_writer *w;
    REQUIRE(wal_writer_new(st, "", &w) == S3V_OK, "writer");
    ivf_index *ix;
    REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix) == S3V_OK, "open the empty index");
    float v1[2] = {1, 0}, v2[2] = {2, 1}, v3[2] = {3, 1};
    REQUIRE(put_one(w, 2, "a", v1, "{\"n\":1}", NULL) == S3V_OK, "put a");
    int reopen = 0;
    ivf_refresh_info ri;
    REQUIRE(ivf_index_refresh(ix, S3V_NO_DEADLINE, &reopen, &ri) == S3V_OK && !reopen, "refresh");
    CHECK(ri.objects == 1, "one new object read (%u)", ri.objects);
    float f = 0;
    CHECK(get_value(ix, "a", &f) == 1 && f == 1, "read your write");
    REQUIRE(ivf_index_refresh(ix, S3V_NO_DEADLINE, &reopen, &ri) == S3V_OK, "refresh again");
    CHECK(ri.objects == 0 && ri.requests == 1, "nothing new costs one request (%u)", ri.requests);
    REQUIRE(put_one(w, 2, "a", v2, NULL, NULL) == S3V_OK, "overwrite a");
    REQUIRE(ivf_index_refresh(ix, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK, "refresh");
    CHECK(get_value(ix, "a", &f) == 1 && f == 2, "the latest write wins");
    REQUIRE(del_one(w, 2, "a") == S3V_OK, "delete a");
    REQUIRE(ivf_index_refresh(ix, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK, "refresh");
    CHECK(get_value(ix, "a", NULL) == 0, "a deleted key is gone");
    CHECK(del_one(w, 2, "never-there") == S3V_OK, "deleting a missing key is fine");
    REQUIRE(put_one(w, 2, "a", v3, NULL, NULL) == S3V_OK, "re-put a");
    /* duplicates in one batch: the later record wins */
    wal_batch b;
    wal_batch_init(&b, 2);
    CHECK(wal_batch_put(&b, (const uint8_t *)"d", 1, v1, NULL, 0) == S3V_OK &&
              wal_batch_put(&b, (const uint8_t *)"d", 1, v3, NULL, 0) == S3V_OK &&
              wal_batch_delete(&b, (const uint8_t *)"e", 1) == S3V_OK &&
              wal_batch_put(&b, (const uint8_t *)"e", 1, v2, NULL, 0) == S3V_OK,
          "batch");
    REQUIRE(wal_writer_append(w, &b, S3V_NO_DEADLINE, NULL) == S3V_OK, "append batch");
    wal_batch_free(&b);
    REQUIRE(ivf_index_refresh(ix, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK, "refresh");
    CHECK(get_value(ix, "a", &f) == 1 && f == 3, "re-put after delete is visible");
    CHECK(get_value(ix, "d", &f) == 1 && f == 3, "the later of two records in a batch wins");
    CHECK(get_value(ix, "e", &f) == 1 && f == 2, "put after delete in one batch");
    ivf_tail_counts tc;
    ivf_tail_get_counts(ivf_index_tail(ix), &tc);
    CHECK(tc.live == 3 && tc.tombstones == 1 && tc.keys == 4, "tail: 3 live, 1 tombstone (%llu, %llu)",
          (unsigned long long)tc.live, (unsigned long long)tc.tombstones);
    float q[2] = {1, 0.3f};
    ivf_query qq = {.vector = q, .dim = 2, .topk = 10, .want_metadata = 1, .deadline_ns = S3V_NO_DEADLINE};
    ivf_result r;
    REQUIRE(ivf_index_search(ix, &qq, &r) == S3V_OK, "search an index that is all tail: %s",
            s3v_errmsg(S3V_ERR_INVALID));
    CHECK(r.len == 3, "three live vectors found (%zu)", r.len);
    ivf_result_free(&r);
    ivf_list_req lr = {.max_results = 2, .deadline_ns = S3V_NO_DEADLINE};
    char tok[IVF_TOKEN_MAX], prev[IVF_TOKEN_MAX];
    int listed = 0, pages = 0;
    do {
        REQUIRE(ivf_index_list(ix, &lr, &r, tok) == S3V_OK, "list: %s", s3v_errmsg(S3V_ERR_INVALID));
        listed += (int)r.len;
        pages++;
        ivf_result_free(&r);
        snprintf(prev, sizeof prev, "%s", tok);
        lr.next_token = prev;
    } while (tok[0] && pages < 10);
    CHECK(listed == 3 && pages == 2, "list: 3 vectors in 2 pages (%d in %d)", listed, pages);
    /* a second reader opened now sees the same (the listing of the log at open) */
    ivf_index *ix2;
    REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix2) == S3V_OK, "open again");
    CHECK(get_value(ix2, "a", &f) == 1 && f == 3 && get_value(ix2, "e", &f) == 1,
          "a new reader sees everything");
    ivf_index_close(ix2);
    ivf_index_close(ix);
    wal_writer_free(w);
    s3v_storage_close(st);
}

/* ---- merge correctness against brute force over the logical contents ---- */

typedef struct model {
    float vec[NKEYS][D];
    int live[NKEYS];
    int genre[NKEYS];
    int in_tail[NKEYS]; /* the latest record is in the log */
} model;

static model M;

static double dist(ivf_metric m, const float *q, const float *x)
{
    double dot = 0, qq = 0, xx = 0, l2 = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)q[j] * x[j];
        qq += (double)q[j] * q[j];
        xx += (double)x[j] * x[j];
        l2 += ((double)q[j] - x[j]) * ((double)q[j] - x[j]);
    }
    return m == IVF_METRIC_EUCLIDEAN ? sqrt(l2) : m == IVF_METRIC_COSINE ? 1 - dot / sqrt(qq * xx) : -dot;
}

static int brute_k(ivf_metric m, const float *q, int k, int genre, int *out, double *outd)
{
    int n = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (!M.live[i] || (genre >= 0 && M.genre[i] != genre)) continue;
        tu_topk_insert(outd, out, &n, k, dist(m, q, M.vec[i]), i);
    }
    return n;
}

static int key_id(const uint8_t *k, size_t n)
{
    char b[32];
    snprintf(b, sizeof b, "%.*s", (int)n, (const char *)k);
    return b[0] == 'v' ? atoi(b + 1) : -1;
}

static void gauss_vec(s3v_rng *r, const float *centre, float spread, float *out)
{
    for (int j = 0; j < D; j++) {
        double u1 = s3v_rng_unit(r) + 1e-12, u2 = s3v_rng_unit(r);
        out[j] = centre[j] + spread * (float)(sqrt(-2 * log(u1)) * cos(6.283185307 * u2));
    }
}

static void model_put(wal_batch *b, int id, const float *v, int genre)
{
    char k[16], meta[32];
    snprintf(k, sizeof k, "v%d", id);
    snprintf(meta, sizeof meta, "{\"genre\":%d}", genre);
    CHECK(wal_batch_put(b, (const uint8_t *)k, strlen(k), v, (const uint8_t *)meta, strlen(meta)) == S3V_OK,
          "put");
    memcpy(M.vec[id], v, sizeof M.vec[id]);
    M.live[id] = 1;
    M.genre[id] = genre;
    M.in_tail[id] = 1;
}

static void model_del(wal_batch *b, int id)
{
    char k[16];
    snprintf(k, sizeof k, "v%d", id);
    CHECK(wal_batch_delete(b, (const uint8_t *)k, strlen(k)) == S3V_OK, "delete");
    M.live[id] = 0;
    M.in_tail[id] = 1;
}

static void flush(wal_writer *w, wal_batch *b)
{
    if (!b->count) return;
    s3v_status st = wal_writer_append(w, b, S3V_NO_DEADLINE, NULL);
    CHECK(st == S3V_OK, "append: %s", s3v_errmsg(st));
    wal_batch_reset(b);
}

/* Builds NBASE vectors, then writes through the log: 1500 new keys, overwrites of built and written
 * keys, deletes of both, re-puts after deletes. */
static void make_contents(const char *dir, ivf_metric metric, s3v_storage **out_st)
{
    memset(&M, 0, sizeof M);
    s3v_rng r;
    s3v_rng_seed(&r, 99 + (uint64_t)metric);
    float centres[12][D];
    for (int c = 0; c < 12; c++)
        for (int j = 0; j < D; j++) centres[c][j] = (float)(s3v_rng_unit(&r) * 8 - 4);
    char input[600];
    snprintf(input, sizeof input, "%s/base.jsonl", tmpdir);
    FILE *f = fopen(input, "w");
    for (int i = 0; i < NBASE; i++) {
        gauss_vec(&r, centres[i % 12], 1.0f, M.vec[i]);
        M.live[i] = 1;
        M.genre[i] = i % 4;
        fprintf(f, "{\"key\":\"v%d\",\"data\":[", i);
        for (int j = 0; j < D; j++) fprintf(f, "%s%.9g", j ? "," : "", M.vec[i][j]);
        fprintf(f, "],\"metadata\":{\"genre\":%d}}\n", M.genre[i]);
    }
    fclose(f);
    s3v_storage *st = open_root(dir);
    *out_st = st;
    vec_reader *rd;
    REQUIRE(vec_reader_open(input, NULL, &rd) == S3V_OK, "reader");
    ivf_build_opts o = {.metric = metric, .nlist = 20, .seed = 3, .threads = 2, .tmp_dir = tmpdir};
    s3v_status bs = ivf_build(st, "", rd, &o, NULL);
    vec_reader_close(rd);
    REQUIRE(bs == S3V_OK, "build: %s", s3v_errmsg(bs));
    wal_writer *w;
    REQUIRE(wal_writer_new(st, "", &w) == S3V_OK, "writer");
    wal_batch b;
    wal_batch_init(&b, D);
    float v[D];
    for (int i = NBASE; i < NKEYS; i++) { /* new keys, some near the data, some shifted */
        gauss_vec(&r, centres[i % 12], i % 5 == 0 ? 2.0f : 1.0f, v);
        model_put(&b, i, v, i % 4);
        if (b.count == 500) flush(w, &b);
    }
    flush(w, &b);
    for (int i = 0; i < 300; i++) { /* overwrite built keys, often moving them to another cluster */
        gauss_vec(&r, centres[(i * 7) % 12], 1.0f, v);
        model_put(&b, i, v, (i + 1) % 4);
    }
    for (int i = NBASE; i < NBASE + 100; i++) { /* overwrite written keys */
        gauss_vec(&r, centres[(i * 5) % 12], 1.0f, v);
        model_put(&b, i, v, i % 4);
    }
    flush(w, &b);
    for (int i = 300; i < 500; i++) model_del(&b, i);
    for (int i = NBASE + 100; i < NBASE + 200; i++) model_del(&b, i);
    flush(w, &b);
    for (int i = 300; i < 350; i++) { /* re-put after delete */
        gauss_vec(&r, centres[i % 12], 1.0f, v);
        model_put(&b, i, v, 3);
    }
    flush(w, &b);
    wal_batch_free(&b);
    wal_writer_free(w);
}

static void check_search(ivf_index *ix, ivf_metric metric, const char *what)
{
    s3v_rng r;
    s3v_rng_seed(&r, 5);
    int nq = 30, exact_ok = 0, stale = 0, tail_missed = 0, tail_truth = 0, filt_ok = 0;
    uint64_t tail_vectors = 0, tail_scored = 0;
    for (int qi = 0; qi < nq; qi++) {
        int src = (int)s3v_rng_below(&r, NKEYS);
        while (!M.live[src]) src = (src + 1) % NKEYS;
        float q[D];
        gauss_vec(&r, M.vec[src], 0.3f, q);
        int truth[10];
        double td[10];
        int nt = brute_k(metric, q, 10, -1, truth, td);
        for (int exact = 1; exact >= 0; exact--) {
            ivf_query qq = {
                .vector = q, .dim = D, .topk = 10, .exact = exact, .deadline_ns = S3V_NO_DEADLINE};
            ivf_result res;
            s3v_status st = ivf_index_search(ix, &qq, &res);
            REQUIRE(st == S3V_OK, "%s search: %s", what, s3v_errmsg(st));
            int same = (int)res.len == nt;
            for (size_t a = 0; a < res.len; a++) {
                int id = key_id(res.hits[a].key, res.hits[a].key_len);
                double d = id >= 0 && M.live[id] ? dist(metric, q, M.vec[id]) : 1e30;
                double tol = 1e-4 * (fabs(d) + 1);
                if (fabs(d - res.hits[a].distance) > tol) stale++; /* deleted, or an older value */
                if (exact && !(id == truth[a] || fabs(td[a] - res.hits[a].distance) <= tol)) same = 0;
            }
            if (exact) exact_ok += same;
            if (!exact) {
                tail_vectors += res.stats.tail_vectors;
                tail_scored += res.stats.tail_scored;
                for (int t = 0; t < nt; t++) { /* every true neighbour that lives in the tail is found */
                    if (!M.in_tail[truth[t]]) continue;
                    tail_truth++;
                    int found = 0;
                    for (size_t a = 0; a < res.len; a++)
                        found |= key_id(res.hits[a].key, res.hits[a].key_len) == truth[t];
                    tail_missed += !found;
                }
            }
            ivf_result_free(&res);
        }
        /* filtered, exact */
        s3v_filter *flt;
        char ft[32];
        int g = qi % 4;
        snprintf(ft, sizeof ft, "{\"genre\": %d}", g);
        REQUIRE(filter_compile_text(ft, strlen(ft), &flt) == S3V_OK, "filter");
        int ftruth[10];
        double ftd[10];
        int fn = brute_k(metric, q, 10, g, ftruth, ftd);
        ivf_query fq = {
            .vector = q, .dim = D, .topk = 10, .exact = 1, .filter = flt, .deadline_ns = S3V_NO_DEADLINE};
        ivf_result res;
        REQUIRE(ivf_index_search(ix, &fq, &res) == S3V_OK, "filtered search");
        int same = (int)res.len == fn;
        for (size_t a = 0; a < res.len && same; a++) {
            int id = key_id(res.hits[a].key, res.hits[a].key_len);
            same = id == ftruth[a] || fabs(ftd[a] - res.hits[a].distance) <= 1e-4 * (fabs(ftd[a]) + 1);
        }
        filt_ok += same;
        ivf_result_free(&res);
        filter_free(flt);
    }
    CHECK(exact_ok == nq, "%s: exact search over generation + tail equals brute force (%d/%d)", what,
          exact_ok, nq);
    CHECK(filt_ok == nq, "%s: filtered exact search equals brute force (%d/%d)", what, filt_ok, nq);
    CHECK(stale == 0, "%s: %d results were deleted or had an older value", what, stale);
    CHECK(tail_truth > 0 && tail_missed == 0, "%s: the tail's recall is 1.0 (%d of %d missed)", what,
          tail_missed, tail_truth);
    if (metric != IVF_METRIC_DOT)
        CHECK(tail_scored < tail_vectors, "%s: the int8 bound ruled out tail vectors (%llu of %llu scored)",
              what, (unsigned long long)tail_scored, (unsigned long long)tail_vectors);
    else
        CHECK(tail_scored == tail_vectors, "dot: every tail vector is scored");
}

static void check_get_list(ivf_index *ix, const char *what)
{
    /* get every key in batches of 100, in request order */
    int bad = 0, found_live = 0, live = 0;
    for (int first = 0; first < NKEYS; first += 100) {
        const uint8_t *keys[100];
        size_t lens[100];
        char names[100][16];
        for (int i = 0; i < 100; i++) {
            snprintf(names[i], sizeof names[i], "v%d", first + i);
            keys[i] = (const uint8_t *)names[i];
            lens[i] = strlen(names[i]);
        }
        ivf_result res;
        REQUIRE(ivf_index_get(ix, keys, lens, 100, 1, 1, S3V_NO_DEADLINE, &res) == S3V_OK, "get");
        size_t a = 0;
        for (int i = 0; i < 100; i++) {
            int id = first + i;
            live += M.live[id];
            if (!M.live[id]) continue;
            if (a >= res.len || key_id(res.hits[a].key, res.hits[a].key_len) != id) {
                bad++;
                continue;
            }
            found_live++;
            if (memcmp(res.hits[a].data, M.vec[id], sizeof M.vec[id]) != 0) bad++;
            char want[32];
            snprintf(want, sizeof want, "{\"genre\":%d}", M.genre[id]);
            if (!res.hits[a].meta || res.hits[a].meta_len != strlen(want) ||
                memcmp(res.hits[a].meta, want, strlen(want)))
                bad++;
            a++;
        }
        if (a != res.len) bad++;
        ivf_result_free(&res);
    }
    CHECK(bad == 0 && found_live == live,
          "%s: get returns the latest value of every live key and nothing else "
          "(%d problems, %d of %d)",
          what, bad, found_live, live);
    /* list in pages and in segments: every live key exactly once */
    for (uint32_t segc = 1; segc <= 3; segc += 2) {
        static unsigned char seen[NKEYS];
        memset(seen, 0, sizeof seen);
        int dups = 0, wrong = 0, total = 0;
        for (uint32_t seg = 0; seg < segc; seg++) {
            ivf_list_req lr = {.segment_count = segc,
                               .segment_index = seg,
                               .max_results = 97,
                               .deadline_ns = S3V_NO_DEADLINE};
            char tok[IVF_TOKEN_MAX], prev[IVF_TOKEN_MAX];
            int pages = 0;
            do {
                ivf_result res;
                REQUIRE(ivf_index_list(ix, &lr, &res, tok) == S3V_OK, "list: %s",
                        s3v_errmsg(S3V_ERR_INVALID));
                for (size_t a = 0; a < res.len; a++) {
                    int id = key_id(res.hits[a].key, res.hits[a].key_len);
                    if (id < 0 || !M.live[id])
                        wrong++;
                    else if (seen[id]++)
                        dups++;
                    total++;
                }
                ivf_result_free(&res);
                snprintf(prev, sizeof prev, "%s", tok);
                lr.next_token = prev;
            } while (tok[0] && ++pages < 1000);
        }
        CHECK(total == live && dups == 0 && wrong == 0,
              "%s: %u segment(s) list every live key once (%d listed of %d, %d twice, %d not live)", what,
              segc, total, live, dups, wrong);
    }
}

/* ---- the tail's row arrays under churn ---- */

#define CHURN_KEYS 2000

/* Applies one object of puts of keys [first, first + n) from vals to t. */
static void churn_apply(ivf_tail *t, int first, int n, float (*vals)[D])
{
    wal_batch b;
    wal_batch_init(&b, D);
    for (int i = first; i < first + n; i++) {
        char k[16];
        snprintf(k, sizeof k, "c%d", i);
        REQUIRE(wal_batch_put(&b, (const uint8_t *)k, strlen(k), vals[i], NULL, 0) == S3V_OK, "batch put");
    }
    s3v_buf out;
    s3v_buf_init(&out, (size_t)64 << 20);
    uint64_t seq = ivf_tail_next(t);
    REQUIRE(wal_object_encode(&b, 7, seq, &out) == S3V_OK, "encode");
    uint8_t *bytes = malloc(out.len);
    REQUIRE(bytes != NULL, "malloc");
    memcpy(bytes, out.ptr, out.len);
    wal_object o;
    REQUIRE(wal_object_parse(bytes, out.len, 7, seq, D, &o) == S3V_OK, "parse");
    REQUIRE(ivf_tail_apply(t, bytes, &o) == S3V_OK, "apply");
    s3v_buf_free(&out);
    wal_batch_free(&b);
}

/* Searches the tail with nq queries and compares with brute force over vals[0 .. n): *agree receives the
 * number of queries that agree, *scored and *live the vectors scored exactly and considered. */
static void churn_check(ivf_tail *t, ivf_metric metric, s3v_rng *r, int n, int nq, float (*vals)[D],
                        int *agree, uint64_t *scored, uint64_t *live)
{
    int ok = 0;
    for (int qi = 0; qi < nq; qi++) {
        float q[D];
        gauss_vec(r, vals[s3v_rng_below(r, (uint64_t)n)], 0.3f, q);
        double best[10];
        int bi[10], nb = 0;
        for (int i = 0; i < n; i++) { /* brute force: insertion into the 10 best */
            double dd = dist(metric, q, vals[i]);
            if (metric == IVF_METRIC_EUCLIDEAN) dd *= dd;
            tu_topk_insert(best, bi, &nb, 10, dd, i);
        }
        topk h;
        REQUIRE(topk_init(&h, 10) == S3V_OK, "topk");
        ivf_tail_search_stats ss;
        REQUIRE(ivf_tail_search(t, q, NULL, &h, &ss) == S3V_OK, "search");
        topk_sort(&h);
        *scored += ss.exact;
        *live += ss.live;
        int same = h.len == 10;
        for (size_t a = 0; same && a < h.len; a++) {
            ivf_tail_row row;
            ivf_tail_get_row(t, (uint32_t)(h.id[a] & ~IVF_TAIL_ID_BIT), &row);
            char want[16];
            snprintf(want, sizeof want, "c%d", bi[a]);
            /* equal keys, or an exact tie in distance */
            if ((row.key_len != strlen(want) || memcmp(row.key, want, row.key_len)) &&
                fabs(h.dist[a] - best[a]) > 1e-5 * (1 + fabs(best[a])))
                same = 0;
        }
        ok += same;
        topk_free(&h);
    }
    *agree = ok;
}

/* Overwrites the same 500 keys until the dead rows are dropped from the arrays (row numbers change),
 * then appends new keys across fresh blocks without a refit of the grid, then enough for a refit; after
 * each step search must equal brute force and the bound must still rule vectors out (the blocks' error
 * bounds are kept right through the rebuild and the appends). */
static void test_tail_churn(void)
{
    static float vals[CHURN_KEYS][D];
    for (int mi = 0; mi < 2; mi++) {
        ivf_metric metric = mi ? IVF_METRIC_COSINE : IVF_METRIC_EUCLIDEAN;
        const char *mn = ivf_metric_name(metric);
        s3v_rng r;
        s3v_rng_seed(&r, 41 + (uint64_t)mi);
        float centres[8][D];
        for (int c = 0; c < 8; c++)
            for (int j = 0; j < D; j++) centres[c][j] = (float)(s3v_rng_unit(&r) * 8 - 4);
        ivf_tail *t;
        REQUIRE(ivf_tail_new(D, metric, 0, 0, &t) == S3V_OK, "tail");
        for (int round = 0; round < 10; round++) { /* the 10th leaves 4500 dead rows: dropped */
            for (int i = 0; i < 500; i++) gauss_vec(&r, centres[(i + round) % 8], 1.0f, vals[i]);
            churn_apply(t, 0, 500, vals);
        }
        uint32_t rows = ivf_tail_rows(t);
        CHECK(rows == 500, "%s: dead rows dropped (%u rows for 500 keys)", mn, rows);
        const int steps[3] = {500, 900, CHURN_KEYS};
        for (int s = 0; s < 3; s++) {
            if (s) {
                for (int i = steps[s - 1]; i < steps[s]; i++) gauss_vec(&r, centres[i % 8], 1.0f, vals[i]);
                for (int first = steps[s - 1]; first < steps[s]; first += 500)
                    churn_apply(t, first, steps[s] - first < 500 ? steps[s] - first : 500, vals);
            }
            ivf_tail_counts tc;
            ivf_tail_get_counts(t, &tc);
            CHECK(tc.live == (uint64_t)steps[s], "%s: %d live (%llu)", mn, steps[s],
                  (unsigned long long)tc.live);
            uint64_t scored = 0, live = 0;
            int ok = 0;
            churn_check(t, metric, &r, steps[s], 40, vals, &ok, &scored, &live);
            CHECK(ok == 40, "%s, %d keys: tail search after churn equals brute force (%d/40)", mn, steps[s],
                  ok);
            CHECK(scored < live / 2, "%s, %d keys: the bound rules out most vectors (%llu of %llu scored)",
                  mn, steps[s], (unsigned long long)scored, (unsigned long long)live);
        }
        ivf_tail_free(t);
    }
}

static void test_merge(void)
{
    for (int mi = 0; mi < 3; mi++) {
        ivf_metric metric = (ivf_metric)mi;
        char dir[512], what[64];
        snprintf(dir, sizeof dir, "%s/merge-%d", tmpdir, mi);
        snprintf(what, sizeof what, "%s", ivf_metric_name(metric));
        s3v_storage *st;
        make_contents(dir, metric, &st);
        ivf_index *ix;
        REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix) == S3V_OK, "open: %s",
                s3v_errmsg(S3V_ERR_INVALID));
        check_search(ix, metric, what);
        check_get_list(ix, what);
        ivf_index_close(ix);
        /* and the same after compaction folded everything (the contents do not change) */
        ivf_compact_opts co = {.threads = 2, .tmp_dir = tmpdir};
        ivf_compact_report rep;
        s3v_status cs = ivf_compact(st, "", &co, &rep);
        REQUIRE(cs == S3V_OK && rep.committed, "compact: %s", s3v_errmsg(cs));
        memset(M.in_tail, 0, sizeof M.in_tail);
        REQUIRE(ivf_index_open(st, "", NULL, S3V_NO_DEADLINE, &ix) == S3V_OK, "reopen");
        ivf_tail_counts tc;
        ivf_tail_get_counts(ivf_index_tail(ix), &tc);
        CHECK(tc.records == 0, "%s: nothing left in the log after compaction", what);
        CHECK(ivf_index_manifest(ix)->count == (uint64_t)rep.count_after, "count");
        snprintf(what, sizeof what, "%s compacted", ivf_metric_name(metric));
        check_get_list(ix, what);
        ivf_index_close(ix);
        s3v_storage_close(st);
    }
}

/* ---- reservations ---- */

/* A new folder <tmpdir>/<name> (into dir, 512 bytes) holding an empty 4-d index vb/ix; its incarnation. */
static s3v_storage *empty_index(const char *name, char *dir, uint64_t *inc)
{
    snprintf(dir, 512, "%s/%s", tmpdir, name);
    s3v_storage *st = open_root(dir);
    ivf_manifest m;
    if (!st || ivf_create_empty(st, "vb/ix", 4, IVF_METRIC_EUCLIDEAN, IVF_ENC_F32, NULL, 0, 0,
                                S3V_NO_DEADLINE, &m) != S3V_OK) {
        fprintf(stderr, "cannot create an index in %s\n", dir);
        exit(1);
    }
    *inc = m.incarnation;
    ivf_manifest_free(&m);
    return st;
}

/* Puts a reservation of slot seq (as a writer that then stalls or dies would), returning its etag. */
static void reserve_slot(s3v_storage *st, uint64_t inc, uint64_t seq, char etag[S3V_ETAG_MAX])
{
    uint8_t r[WAL_RESERVATION_SIZE] = {'S', '3', 'V', 'W', 'R', 'S', 'V', 0};
    le_put_u64(r + 8, seq);
    le_put_u64(r + 16, inc);
    le_put_u32(r + 24, 1000);
    le_put_u32(r + 28, s3v_crc32c(0, r, 28));
    char key[WAL_KEY_MAX];
    REQUIRE(wal_object_key("vb/ix", inc, seq, key, sizeof key) == S3V_OK, "key");
    s3v_put_cond cond = {S3V_PUT_IF_NONE_MATCH, NULL};
    s3v_obj_info oi;
    REQUIRE(s3v_storage_put(st, key, r, sizeof r, &cond, S3V_NO_DEADLINE, &oi) == S3V_OK, "reserve %llu",
            (unsigned long long)seq);
    memcpy(etag, oi.etag, S3V_ETAG_MAX);
}

/* Replaces the reservation (etag) of slot seq with a one-put object, as its holder does. */
static s3v_status commit_slot(s3v_storage *st, uint64_t inc, uint64_t seq, const char *etag, const char *k)
{
    wal_batch b;
    wal_batch_init(&b, 4);
    float v[4] = {7, 7, 7, 7};
    s3v_buf o;
    s3v_buf_init(&o, 1 << 20);
    char key[WAL_KEY_MAX];
    s3v_status rc = wal_batch_put(&b, (const uint8_t *)k, strlen(k), v, NULL, 0);
    if (rc == S3V_OK) rc = wal_object_encode(&b, inc, seq, &o);
    if (rc == S3V_OK) rc = wal_object_key("vb/ix", inc, seq, key, sizeof key);
    s3v_put_cond cond = {S3V_PUT_IF_MATCH, etag};
    if (rc == S3V_OK) rc = s3v_storage_put(st, key, o.ptr, o.len, &cond, S3V_NO_DEADLINE, NULL);
    s3v_buf_free(&o);
    wal_batch_free(&b);
    return rc;
}

typedef struct append_job {
    wal_writer *w;
    const char *key;
    s3v_status rc;
    wal_append_info info;
    uint64_t ms;
} append_job;

static void *append_main(void *arg)
{
    append_job *j = arg;
    wal_batch b;
    wal_batch_init(&b, 4);
    float v[4] = {1, 1, 1, 1};
    uint64_t t = s3v_now_ns();
    j->rc = wal_batch_put(&b, (const uint8_t *)j->key, strlen(j->key), v, NULL, 0);
    if (j->rc == S3V_OK) j->rc = wal_writer_append(j->w, &b, S3V_NO_DEADLINE, &j->info);
    j->ms = (s3v_now_ns() - t) / 1000000;
    wal_batch_free(&b);
    return NULL;
}

static void test_reservations(void)
{
    char dir[512];
    uint64_t inc;
    s3v_storage *st = empty_index("reserve", dir, &inc);
    wal_writer *a;
    REQUIRE(wal_writer_new(st, "vb/ix", &a) == S3V_OK, "writer");
    float v[4] = {1, 2, 3, 4};
    REQUIRE(put_one(a, 4, "s0", v, NULL, NULL) == S3V_OK && put_one(a, 4, "s1", v, NULL, NULL) == S3V_OK,
            "slots 0 and 1");
    ivf_index *reader;
    REQUIRE(ivf_index_open(st, "vb/ix", NULL, S3V_NO_DEADLINE, &reader) == S3V_OK, "reader");

    /* a writer that reserved slot 2 and died: readers stop there */
    char dead[S3V_ETAG_MAX];
    reserve_slot(st, inc, 2, dead);
    wal_slot *slots;
    size_t ns;
    REQUIRE(wal_list_slots(st, "vb/ix", inc, 0, 0, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list");
    CHECK(ns == 2, "a listing stops at the reservation (%zu slots)", ns);
    free(slots);
    int reopen = 0;
    CHECK(ivf_index_refresh(reader, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK && !reopen &&
              ivf_tail_next(ivf_index_tail(reader)) == 2,
          "a reader's refresh treats it as not yet written");

    /* a writer that lands above it waits, then fills it with a no-op after its timeout */
    wal_writer *b;
    REQUIRE(wal_writer_new(st, "vb/ix", &b) == S3V_OK, "writer b");
    wal_writer_set_reserve_timeout(b, 150, 1000000);
    append_job j = {b, "above", S3V_OK, {0}, 0};
    append_main(&j);
    CHECK(j.rc == S3V_OK && j.info.seq == 3, "the write lands in slot 3 (%s, %llu)", s3v_status_name(j.rc),
          (unsigned long long)j.info.seq);
    CHECK(j.info.broken == 1 && j.info.waits >= 2 && j.ms >= 150,
          "after waiting %llu ms (%u listings) it replaced the dead reservation (%u)",
          (unsigned long long)j.ms, j.info.waits, j.info.broken);
    CHECK(commit_slot(st, inc, 2, dead, "late") == S3V_ERR_PRECONDITION,
          "the dead writer, come back, cannot write its slot any more");
    s3v_error_clear();
    reopen = 0;
    CHECK(ivf_index_refresh(reader, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK &&
              ivf_tail_next(ivf_index_tail(reader)) == 4,
          "the reader reads past the no-op to the new write");
    CHECK(get_value(reader, "above", NULL) == 1 && get_value(reader, "late", NULL) == 0,
          "the acknowledged write is visible, the refused one is not");

    /* a healthy reservation is waited for, never broken */
    char live[S3V_ETAG_MAX];
    reserve_slot(st, inc, 4, live);
    wal_writer *c;
    REQUIRE(wal_writer_new(st, "vb/ix", &c) == S3V_OK, "writer c");
    append_job jc = {c, "after-live", S3V_OK, {0}, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, append_main, &jc) == 0, "thread");
    s3v_sleep_us(80000);
    CHECK(commit_slot(st, inc, 4, live, "live") == S3V_OK, "the slow writer writes its reserved slot");
    pthread_join(th, NULL);
    CHECK(jc.rc == S3V_OK && jc.info.seq == 5 && jc.info.broken == 0 && jc.ms >= 80,
          "the writer above waited for it (%llu ms) and broke nothing", (unsigned long long)jc.ms);
    CHECK(ivf_index_refresh(reader, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK &&
              get_value(reader, "live", NULL) == 1 && get_value(reader, "after-live", NULL) == 1,
          "both writes are visible");

    /* a writer that loses a race switches to reservations */
    wal_writer *d;
    REQUIRE(wal_writer_new(st, "vb/ix", &d) == S3V_OK, "writer d");
    uint64_t s;
    REQUIRE(put_one(d, 4, "d6", v, NULL, &s) == S3V_OK && s == 6, "d writes slot 6");
    REQUIRE(put_one(c, 4, "c7", v, NULL, &s) == S3V_OK && s == 7, "c writes 7 (d's next slot)");
    append_job ja = {d, "d8", S3V_OK, {0}, 0};
    append_main(&ja);
    CHECK(ja.rc == S3V_OK && ja.info.conflicts == 1 && ja.info.reserved == 1 && ja.info.seq >= 8 &&
              ja.info.seq - 8 == ja.info.filled,
          "d lost slot 7 and took slot %llu with a reservation (conflicts %u, reserved %u, %u free slots "
          "below it filled)",
          (unsigned long long)ja.info.seq, ja.info.conflicts, ja.info.reserved, ja.info.filled);
    uint64_t last = ja.info.seq;
    append_job ja2 = {d, "d9", S3V_OK, {0}, 0};
    append_main(&ja2);
    CHECK(ja2.rc == S3V_OK && ja2.info.reserved == 1 && ja2.info.conflicts == 0 &&
              ja2.info.seq - (last + 1) == ja2.info.filled,
          "and keeps using them for a while");
    last = ja2.info.seq;
    CHECK(ivf_index_refresh(reader, S3V_NO_DEADLINE, &reopen, NULL) == S3V_OK &&
              ivf_tail_next(ivf_index_tail(reader)) == last + 1 && get_value(reader, "d8", NULL) == 1 &&
              get_value(reader, "d9", NULL) == 1,
          "a reader reads through the filled slots to both");
    REQUIRE(wal_list_slots(st, "vb/ix", inc, 0, 0, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list");
    int written = ns == last + 1;
    for (size_t i = 0; i < ns; i++) written &= slots[i].size >= WAL_HEADER_SIZE;
    CHECK(written, "slots 0..%llu all hold log objects (%zu)", (unsigned long long)last, ns);
    free(slots);
    ivf_index_close(reader);
    wal_writer_free(a);
    wal_writer_free(b);
    wal_writer_free(c);
    wal_writer_free(d);
    s3v_storage_close(st);
}

#define RACE_THREADS 4
#define RACE_WRITES  25

typedef struct race_job {
    const char *dir;
    int id;
    s3v_status rc;
    uint32_t conflicts, reserved, noops;
} race_job;

static void *race_main(void *arg)
{
    race_job *j = arg;
    s3v_storage *st = open_root(j->dir);
    wal_writer *w = NULL;
    j->rc = st ? wal_writer_new(st, "vb/ix", &w) : S3V_ERR_IO;
    for (int i = 0; i < RACE_WRITES && j->rc == S3V_OK; i++) {
        wal_batch b;
        wal_batch_init(&b, 4);
        char k[32];
        snprintf(k, sizeof k, "t%d-%d", j->id, i);
        float v[4] = {(float)j->id, (float)i, 0, 1};
        wal_append_info info;
        j->rc = wal_batch_put(&b, (const uint8_t *)k, strlen(k), v, NULL, 0);
        if (j->rc == S3V_OK) j->rc = wal_writer_append(w, &b, S3V_NO_DEADLINE, &info);
        if (j->rc == S3V_OK) {
            j->conflicts += info.conflicts;
            j->reserved += info.reserved;
            j->noops += info.filled + info.broken;
        }
        wal_batch_free(&b);
    }
    wal_writer_free(w);
    s3v_storage_close(st);
    return NULL;
}

static void test_reservation_race(void)
{
    char dir[512];
    uint64_t inc;
    s3v_storage *st = empty_index("race", dir, &inc);
    race_job jobs[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        jobs[i] = (race_job){dir, i, S3V_OK, 0, 0, 0};
        REQUIRE(pthread_create(&th[i], NULL, race_main, &jobs[i]) == 0, "thread");
    }
    uint32_t conflicts = 0, reserved = 0, noops = 0;
    int all_ok = 1;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        all_ok &= jobs[i].rc == S3V_OK;
        conflicts += jobs[i].conflicts;
        reserved += jobs[i].reserved;
        noops += jobs[i].noops;
    }
    CHECK(all_ok, "every write of %d threads acknowledged", RACE_THREADS);
    printf("# race: %u conflicts, %u of %d writes with a reservation, %u no-ops\n", conflicts, reserved,
           RACE_THREADS * RACE_WRITES, noops);
    wal_slot *slots;
    size_t ns;
    REQUIRE(wal_list_slots(st, "vb/ix", inc, 0, 0, S3V_NO_DEADLINE, &slots, &ns) == S3V_OK, "list");
    CHECK(ns == RACE_THREADS * RACE_WRITES + noops,
          "a contiguous log of written slots: every write and every no-op (%zu)", ns);
    free(slots);
    ivf_index *reader;
    REQUIRE(ivf_index_open(st, "vb/ix", NULL, S3V_NO_DEADLINE, &reader) == S3V_OK, "reader");
    int found = 0;
    for (int t = 0; t < RACE_THREADS; t++)
        for (int i = 0; i < RACE_WRITES; i++) {
            char k[32];
            snprintf(k, sizeof k, "t%d-%d", t, i);
            float first = -1;
            found += get_value(reader, k, &first) == 1 && first == (float)t;
        }
    CHECK(found == RACE_THREADS * RACE_WRITES, "every write found once (%d)", found);
    ivf_index_close(reader);
    s3v_storage_close(st);
}

int main(void)
{
    kern_init(0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3vec-test-wal-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_object_format();
    test_noop_and_reservation_format();
    test_writer();
    test_grace_rule();
    test_tail_semantics();
    test_merge();
    test_tail_churn();
    test_reservations();
    test_reservation_race();
    tu_rm_rf(tmpdir);
    return TEST_SUMMARY();
}
