/* engine/input.h: streaming readers for build inputs: .fvecs, .npy (float32, 2-D, C order) and JSON
 * Lines in the S3 Vectors PutVectors shape ({"key": "...", "data": [..] or {"float32": [..]},
 * "metadata": {...}}). fvecs/npy take an optional keys file (one key per line); without one, keys are
 * the 0-based row numbers.
 *
 * Readers hold one record at a time (plus an I/O buffer), so inputs of any size stream through.
 * Every problem is S3V_ERR_INVALID (or _IO / _NOT_FOUND for the file) with a message naming the file
 * and the 1-based row: a wrong dimension, a NaN or infinity, a key that is empty, longer than 1024 bytes
 * or not UTF-8, metadata that is not an object, a truncated file, an empty input.
 * A reader is used by one thread. */
#ifndef S3V_INPUT_H
#define S3V_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef enum vec_format { VEC_FORMAT_FVECS = 0, VEC_FORMAT_NPY = 1, VEC_FORMAT_JSONL = 2 } vec_format;

typedef struct vec_reader vec_reader;

/* One record; every pointer stays valid until the next vec_reader_next / _rewind / _close. */
typedef struct vec_record {
    uint64_t row; /* 0-based */
    const uint8_t *key;
    size_t key_len;
    const float *data;   /* dim floats */
    const uint8_t *meta; /* minified JSON object, or NULL */
    size_t meta_len;
} vec_record;

/* Opens `path`; the format comes from the extension (.fvecs, .npy, .jsonl/.ndjson/.json).
 * keys_path may be NULL (and must be NULL for JSON Lines, whose records carry keys). */
S3V_MUST_USE s3v_status vec_reader_open(const char *path, const char *keys_path, vec_reader **out);
void vec_reader_close(vec_reader *r);

vec_format vec_reader_format(const vec_reader *r);
/* Dimension, known after open (for JSON Lines, from the first record). */
uint32_t vec_reader_dim(const vec_reader *r);
/* Number of records when the format says it up front (fvecs, npy), else 0. */
uint64_t vec_reader_count_hint(const vec_reader *r);

/* Metadata keys that do not count toward the filterable-metadata limit when records are validated
 * (the index's nonFilterableMetadataKeys). The array must outlive the reader. */
void vec_reader_set_non_filterable(vec_reader *r, const char *const *keys, size_t len);

/* Reads the next record into *rec and sets *has = 1, or sets *has = 0 at the end. */
S3V_MUST_USE s3v_status vec_reader_next(vec_reader *r, vec_record *rec, int *has);
/* Starts again from the first record. */
S3V_MUST_USE s3v_status vec_reader_rewind(vec_reader *r);

/* Checks a vector key: 1..1024 bytes of valid UTF-8 without NUL. */
S3V_MUST_USE s3v_status vec_key_check(const uint8_t *key, size_t len);

/* Reads a whole .fvecs (or .ivecs: same layout with int32) file: *rows x *dim values into a malloc'd
 * array (caller frees). For ground truth and query files in the CLI and tests. */
S3V_MUST_USE s3v_status vec_read_fvecs(const char *path, float **out, size_t *rows, size_t *dim);
S3V_MUST_USE s3v_status vec_read_ivecs(const char *path, int32_t **out, size_t *rows, size_t *dim);

#endif
