/* engine/format.h: encoding and decoding of the on-disk index objects specified in engine/FORMAT.md.
 *
 * Decoders take (ptr, len) of untrusted bytes, verify magic, versions, checksums and every size
 * before exposing anything, and report S3V_ERR_CORRUPT or S3V_ERR_UNSUPPORTED with a message; the
 * caller adds the object's name with s3v_error_context(). Decoded structs own their arrays (free with
 * the matching _free, which accepts zeroed structs) except ivf_block, which points into the caller's
 * buffer. Vectors are scanned in place, so s3vec requires a little-endian host (x86_64, aarch64).
 * Functions are re-entrant. */
#ifndef S3V_FORMAT_H
#define S3V_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/status.h"

#define IVF_FORMAT_VERSION        1
#define IVF_MANIFEST_HEADER_SIZE  24
#define IVF_MANIFEST_MAX_BODY     (1u << 20)
#define IVF_CENTROIDS_HEADER_SIZE 64
#define IVF_BLOCK_HEADER_SIZE     32
#define IVF_CLUSTER_REF_SIZE      32
#define IVF_KEYPAGE_REF_SIZE      24
#define IVF_KEYMAP_ENTRY_SIZE     12
#define IVF_KEYMAP_PAGE_ENTRIES   4096
#define IVF_DIM_MAX               4096
#define IVF_KEY_MAX               1024
#define IVF_NLIST_MAX             (1u << 22)
#define IVF_NAME_MAX              64 /* object keys inside an index ("g00000001-5f3a9c21/data-0000") */
#define IVF_BLOCK_FLAG_ZSTD       1u
#define IVF_BLOCK_FLAG_NORMS      2u

typedef enum ivf_metric { IVF_METRIC_EUCLIDEAN = 0, IVF_METRIC_COSINE = 1, IVF_METRIC_DOT = 2 } ivf_metric;
typedef enum ivf_encoding { IVF_ENC_F32 = 0, IVF_ENC_F16 = 1, IVF_ENC_I8 = 2 } ivf_encoding;

const char *ivf_metric_name(ivf_metric m);
S3V_MUST_USE s3v_status ivf_metric_parse(const char *s, ivf_metric *out);
const char *ivf_encoding_name(ivf_encoding e);
S3V_MUST_USE s3v_status ivf_encoding_parse(const char *s, ivf_encoding *out);
/* Bytes per element: 4, 2, 1. */
size_t ivf_encoding_size(ivf_encoding e);

typedef struct ivf_data_ref {
    char key[IVF_NAME_MAX];
    uint64_t size;
} ivf_data_ref;

typedef struct ivf_calib_point {
    uint32_t nprobe;
    float recall;
} ivf_calib_point;

#define IVF_GRACE_DEFAULT_S 1200 /* seconds retired objects outlive their retirement (> Lambda's 15 min) */
#define IVF_GRACE_MIN_S     1
#define IVF_GRACE_MAX_S     (7 * 24 * 3600)
#define IVF_RETIRED_MAX     4096 /* entries in the manifest's retired list */

/* Something a compaction (or build) replaced, kept until `at_ms` + grace so that queries and writers
 * that read an older manifest finish safely; then the garbage collector deletes it. Either a whole
 * generation (generation[0] != 0) or the log objects wal_from..wal_to (inclusive). */
typedef struct ivf_retired {
    char generation[IVF_NAME_MAX]; /* "" for a log range */
    uint64_t wal_from, wal_to;
    uint64_t at_ms; /* wall clock, ms since the epoch */
} ivf_retired;

typedef struct ivf_manifest {
    char generation[IVF_NAME_MAX];
    char creation_time[40];
    uint32_t dimension;
    ivf_metric metric;
    ivf_encoding encoding;
    uint64_t count;
    uint32_t nlist;
    char centroids_key[IVF_NAME_MAX];
    uint64_t centroids_size;
    uint32_t centroids_crc;
    ivf_data_ref *data;
    size_t data_len;
    char keymap_key[IVF_NAME_MAX];
    uint64_t keymap_size;
    uint32_t default_nprobe;
    ivf_calib_point *calib;
    size_t calib_len;
    char **non_filterable;
    size_t non_filterable_len;
    /* write-ahead log (FORMAT.md "Write-ahead log"); an index written before the log existed decodes
     * with incarnation 0, wal_start 0 and the default grace */
    uint64_t incarnation;   /* random id of this index instance (CreateIndex / build of a new index) */
    uint64_t wal_start;     /* first log sequence number not folded into the generation */
    uint32_t grace_seconds; /* how long retired objects are kept */
    ivf_retired *retired;
    size_t retired_len;
    /* the last full k-means training: vector count and mean assignment distance (0 = unknown) */
    uint64_t trained_count;
    double trained_mean_distance;
    cJSON *build; /* informational object, may be NULL; owned */
    cJSON *extra; /* every body field this version does not interpret, kept on re-encode; owned */
} ivf_manifest;

/* nlist 0 is an empty index (CreateIndex, or everything deleted): count 0, no centroids, data, key map or
 * calibration; it has a generation name but no generation objects. */
S3V_MUST_USE s3v_status ivf_manifest_decode(const uint8_t *p, size_t n, ivf_manifest *out);
/* Appends the encoded manifest to out. */
S3V_MUST_USE s3v_status ivf_manifest_encode(const ivf_manifest *m, s3v_buf *out);
void ivf_manifest_free(ivf_manifest *m);

typedef struct ivf_cluster_ref {
    uint32_t object; /* index into the manifest's data list */
    uint32_t count;
    uint64_t offset;
    uint64_t size;
    uint32_t crc;
} ivf_cluster_ref;

typedef struct ivf_keypage_ref {
    uint64_t first_hash;
    uint64_t offset;
    uint32_t size;
    uint32_t crc;
} ivf_keypage_ref;

typedef struct ivf_centroids {
    uint32_t dim;
    uint32_t nlist;
    uint32_t npages;
    ivf_encoding encoding;
    ivf_metric metric;
    uint64_t count;
    float *centroids;          /* nlist * dim, 64-byte aligned */
    ivf_cluster_ref *clusters; /* nlist */
    ivf_keypage_ref *pages;    /* npages */
    float *q_offset;           /* i8 only: dim */
    float q_scale;             /* i8 only */
} ivf_centroids;

/* Decodes and validates: every cluster ref lies inside its data object (sizes from the manifest's data
 * list, data_sizes[data_len]), pages lie inside the key map (keymap_size), counts add up. */
S3V_MUST_USE s3v_status ivf_centroids_decode(const uint8_t *p, size_t n, const uint64_t *data_sizes,
                                             size_t data_len, uint64_t keymap_size, ivf_centroids *out);
S3V_MUST_USE s3v_status ivf_centroids_encode(const ivf_centroids *c, s3v_buf *out);
void ivf_centroids_free(ivf_centroids *c);

/* A verified cluster block; pointers into the buffer given to ivf_block_parse. */
typedef struct ivf_block {
    uint32_t cluster_id;
    uint32_t count;
    uint32_t dim;
    ivf_encoding encoding;
    uint32_t flags;
    const uint8_t *vectors;   /* count * dim * elem bytes */
    const uint8_t *inv_norms; /* count float32 (unaligned; read with le_get_f32) or NULL */
    const uint8_t *rest;      /* stored rest section */
    uint32_t rest_size;
    uint32_t rest_raw_size;
} ivf_block;

/* Verifies the block against its directory entry (CRC, cluster id, count) and the index (dim, encoding). */
S3V_MUST_USE s3v_status ivf_block_parse(const uint8_t *p, size_t n, const ivf_cluster_ref *ref,
                                        uint32_t cluster_id, uint32_t dim, ivf_encoding enc, ivf_block *out);

/* The decoded rest section: keys and metadata of each vector. */
typedef struct ivf_rest {
    uint8_t *owned;      /* decompressed bytes when the section was compressed, else NULL */
    const uint8_t *keys; /* key bytes back to back */
    uint32_t *key_off;   /* count + 1 offsets into keys */
    const uint8_t *meta; /* metadata bytes back to back */
    uint32_t *meta_off;  /* count + 1 offsets into meta */
    uint32_t count;
    size_t owned_size;
} ivf_rest;

S3V_MUST_USE s3v_status ivf_rest_decode(const ivf_block *b, ivf_rest *out);
void ivf_rest_free(ivf_rest *r);
/* Total heap bytes held by a decoded rest (for cache accounting). */
size_t ivf_rest_heap_size(const ivf_rest *r);

/* Builds a block: header + vectors (already encoded) + optional inverse norms + rest section (raw bytes
 * laid out as FORMAT.md says; compressed with zstd at `zstd_level` when that saves at least 1/8, never
 * when zstd_level is 0). Appends to out and writes the CRC of the whole block to *crc. */
S3V_MUST_USE s3v_status ivf_block_encode(s3v_buf *out, uint32_t cluster_id, uint32_t dim, ivf_encoding enc,
                                         uint32_t count, const uint8_t *vectors, const float *inv_norms,
                                         const uint8_t *rest_raw, size_t rest_raw_size, int zstd_level,
                                         uint32_t *crc);

/* The key hash of the key map (FORMAT.md). */
uint64_t ivf_key_hash(const uint8_t *key, size_t len);

/* Joins an index prefix ("" or "bucket/index") and an object name into a storage key. */
S3V_MUST_USE s3v_status ivf_key_join(const char *prefix, const char *name, char *out, size_t out_size);

/* Validates a generation name "g<8 hex>-<8 hex>". */
int ivf_generation_valid(const char *gen);
/* The counter of a valid generation name (g<counter>-<random>). */
uint32_t ivf_generation_counter(const char *gen);
/* Incarnation ids are written as 16 lower-case hex digits. out holds 17 bytes. */
void ivf_incarnation_format(uint64_t inc, char out[17]);

#endif
