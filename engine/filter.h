/* engine/filter.h: the S3 Vectors metadata filter language, compiled once per query and evaluated
 * per vector, plus validation of per-vector metadata.
 *
 * Language: a JSON object. Operators $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or;
 * {"k": v} is implicit equality; several keys in one object are an implicit $and. $eq (and implicit
 * equality, $in) on a metadata value that is an array matches when any element matches. Comparisons
 * ($gt...) apply to numbers (and strings where S3 Vectors allows it; see filter.c). A filter that
 * is malformed fails at compile time with S3V_ERR_INVALID and a message naming the offending path
 * (e.g. "filter.$and[1].year: $gt needs a number"). A missing key never matches a comparison.
 *
 * Evaluation runs on the raw metadata JSON text of a vector, exactly as stored in the index, without
 * building a tree, so a filtered scan costs little more than an unfiltered one.
 *
 * Threading: a compiled filter is immutable and may be shared by threads. */
#ifndef S3V_FILTER_H
#define S3V_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/status.h"

typedef struct s3v_filter s3v_filter;

/* Compiles a filter document. *out is written only on success; free with filter_free(). */
S3V_MUST_USE s3v_status filter_compile(const cJSON *doc, s3v_filter **out);
/* Same, from JSON text (ptr, len), for the CLI's --filter. */
S3V_MUST_USE s3v_status filter_compile_text(const char *json, size_t len, s3v_filter **out);
void filter_free(s3v_filter *f);

/* 1 when the vector whose metadata is the JSON object text (ptr, len) matches, else 0.
 * len = 0 means the vector has no metadata. Malformed metadata text never matches and never reads
 * outside (ptr, len). */
int filter_match(const s3v_filter *f, const uint8_t *metadata_json, size_t len);

/* Limits of S3 Vectors on metadata (values documented in filter.c with their source). */
#define S3V_METADATA_MAX_SIZE (40 * 1024)       /* total metadata bytes per vector */
#define S3V_FILTERABLE_METADATA_MAX_SIZE (2048) /* filterable metadata bytes per vector */
#define S3V_METADATA_MAX_KEYS 50                /* top-level keys per vector */

/* Validates one vector's metadata (a cJSON object) against the S3 Vectors rules: an object whose
 * values are strings, numbers, booleans or lists of those; size limits (total and filterable, where
 * keys listed in non_filterable do not count toward the filterable limit). On failure returns
 * S3V_ERR_INVALID with a message naming the key. non_filterable may be NULL. */
S3V_MUST_USE s3v_status metadata_validate(const cJSON *metadata, const char *const *non_filterable,
                                          size_t non_filterable_len);

#endif
