/* engine/filter.h: the S3 Vectors metadata filter language, compiled once per query and evaluated
 * per vector, plus validation of per-vector metadata.
 *
 * Language (Amazon S3 User Guide, "Metadata filtering", s3-vectors-metadata-filtering.html): a JSON
 * object. Operators and the operand each accepts:
 *   $eq, $ne          a string, number or boolean
 *   $gt $gte $lt $lte  a number
 *   $in, $nin          a non-empty array of strings, numbers and booleans
 *   $exists            a boolean
 *   $and, $or          a non-empty array of filter objects
 * {"k": v} is implicit $eq; several keys in one object, and several operators in one key's object
 * ({"year": {"$gte": 2020, "$lt": 2025}}), are an implicit $and. $and/$or appear only where a key
 * may appear; the value operators only inside a key's object.
 *
 * Matching (MongoDB-like, as the guide describes):
 *  - Equality is by type: a string equals a string with the same UTF-8 bytes (after JSON escapes are
 *    decoded; case-sensitive, no Unicode normalisation); numbers compare numerically as doubles, so
 *    1 == 1.0 (integers beyond 2^53 lose precision as in any JSON double); booleans equal booleans.
 *    A string never equals a number ("1" != 1).
 *  - A metadata value that is an array matches $eq, $in and the range operators when any element
 *    does ({"tags": "a"} matches {"tags": ["a", "b"]}).
 *  - $ne is the negation of $eq and $nin of $in, so they also match a vector that lacks the key
 *    (MongoDB's rule; add {"k": {"$exists": true}} to exclude those). Every other operator never
 *    matches a missing key, except {"$exists": false}.
 *  - Range operators match numbers only; a string or boolean metadata value never matches them.
 *  - A null or object value (which metadata_validate refuses, but stored text may hold) exists for
 *    $exists and equals nothing.
 *
 * Compile errors are S3V_ERR_INVALID with a message naming the offending path, for example
 * "filter.$and[1].year.$gt: expected a number". Rejected: non-objects, empty objects (anywhere,
 * including the whole filter: send no filter instead), unknown operators, wrong operand types,
 * empty $and/$or/$in/$nin, non-finite numbers, and filters beyond the bounds below.
 *
 * Evaluation runs on the raw metadata JSON text of a vector, exactly as stored in the index, without
 * building a tree or allocating: one pass over the top-level object validates the whole text and
 * notes where the referenced keys' values are (the first occurrence of a duplicated key wins, as
 * with cJSON_GetObjectItemCaseSensitive); only those values are decoded. Text that is not a single
 * well-formed JSON object (truncated, bad escapes or lone surrogates, raw control characters in
 * strings, nesting deeper than S3V_FILTER_MAX_METADATA_DEPTH, a number token over 1024 bytes)
 * never matches, whatever the filter, and is never read outside (ptr, len).
 *
 * Threading: a compiled filter is immutable and may be shared by threads; filter_match uses only
 * the caller's stack. */
#ifndef S3V_FILTER_H
#define S3V_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/status.h"

/* Bounds of one compiled filter (ours; S3 Vectors documents none). */
#define S3V_FILTER_MAX_DEPTH          8           /* filter objects nested through $and/$or, top = 1 */
#define S3V_FILTER_MAX_NODES          1024        /* operators, ANDs/ORs and operand values */
#define S3V_FILTER_MAX_KEYS           64          /* distinct metadata keys one filter references */
#define S3V_FILTER_MAX_KEY_SIZE       1024        /* bytes of one key name */
#define S3V_FILTER_MAX_TEXT_SIZE      (64 * 1024) /* filter_compile_text input */
#define S3V_FILTER_MAX_METADATA_DEPTH 32          /* nesting in metadata text; deeper = malformed */

typedef struct s3v_filter s3v_filter;

/* Compiles a filter document. *out is written only on success; free with filter_free().
 * Errors: S3V_ERR_INVALID (message names the path), S3V_ERR_NOMEM. */
S3V_MUST_USE s3v_status filter_compile(const cJSON *doc, s3v_filter **out);
/* Same, from JSON text (ptr, len), for the CLI's --filter. The text must be exactly one JSON value
 * (surrounding whitespace allowed) of at most S3V_FILTER_MAX_TEXT_SIZE bytes. */
S3V_MUST_USE s3v_status filter_compile_text(const char *json, size_t len, s3v_filter **out);
/* Accepts NULL. */
void filter_free(s3v_filter *f);

/* 1 when the vector whose metadata is the JSON object text (ptr, len) matches, else 0. f must not
 * be NULL. len = 0 means the vector has no metadata (every key is missing; metadata_json may then be
 * NULL). Malformed metadata text never matches and never reads outside (ptr, len). */
int filter_match(const s3v_filter *f, const uint8_t *metadata_json, size_t len);

/* 1 when the filter names `key` (any operator, at any depth, including $exists), else 0. */
int filter_references(const s3v_filter *f, const char *key);

/* S3 Vectors documents that non-filterable metadata keys "can't be used as query filters"; this
 * rejects a filter that names any of them with S3V_ERR_INVALID and the message
 * "filter: metadata key 'k' is non-filterable and cannot be used in a filter". The handler calls it
 * after filter_compile with the index's nonFilterableMetadataKeys (rather than letting such a
 * filter silently match on a key S3 Vectors would not index). non_filterable may be NULL when
 * non_filterable_len is 0. */
S3V_MUST_USE s3v_status filter_check_filterable(const s3v_filter *f, const char *const *non_filterable,
                                                size_t non_filterable_len);

/* Limits of S3 Vectors on metadata (Amazon S3 User Guide, "Limitations and restrictions",
 * s3-vectors-limitations.html; the 2048 also appears verbatim in the service's ValidationException
 * "Filterable metadata must have at most 2048 bytes"). How sizes are measured is in filter.c. */
#define S3V_METADATA_MAX_SIZE            (40 * 1024) /* total metadata bytes per vector */
#define S3V_FILTERABLE_METADATA_MAX_SIZE (2048)      /* filterable metadata bytes per vector */
#define S3V_METADATA_MAX_KEYS            50          /* top-level keys per vector */

/* Validates one vector's metadata (a cJSON object) against the S3 Vectors rules: an object whose
 * values are strings, finite numbers, booleans or lists of those (null, nested objects and nested
 * lists are rejected), no duplicate keys, at most S3V_METADATA_MAX_KEYS keys, and the size limits
 * (total, and filterable, where keys listed in non_filterable do not count toward the filterable
 * limit). metadata NULL (no metadata) is valid. On failure returns S3V_ERR_INVALID with a message
 * naming the key ("metadata.tags[2]: expected a string, number or boolean"). non_filterable may be
 * NULL when non_filterable_len is 0. */
S3V_MUST_USE s3v_status metadata_validate(const cJSON *metadata, const char *const *non_filterable,
                                          size_t non_filterable_len);

/* The sizes metadata_validate measures, for callers that report them: total and filterable bytes
 * as defined in filter.c. metadata must be an object or NULL (sizes 0). */
void metadata_size(const cJSON *metadata, const char *const *non_filterable, size_t non_filterable_len,
                   size_t *total_size, size_t *filterable_size);

/* Appends validated metadata as the minified JSON text stored in the index: strings with the JSON
 * escapes (UTF-8 kept), numbers in the shortest form that reads back to the same double (so filters on
 * stored numbers and GetVectors see exactly what was written), no whitespace. */
S3V_MUST_USE s3v_status metadata_serialize(const cJSON *metadata, s3v_buf *out);

#endif
