/* handler/jsonw.h: append-only JSON text writer on a bounded s3v_buf, for responses.
 *
 * Responses are written straight into one reused buffer (no tree is built), so encoding a topK 10
 * answer costs a few microseconds. Every function appends to `b` and fails only when the buffer's
 * cap would be exceeded (S3V_ERR_TOO_LARGE: the response would pass the 6 MB Lambda limit) or on
 * allocation failure; after a failure the buffer content is unspecified (the caller resets it).
 *
 * Strings: hd_json_str() writes a quoted JSON string from arbitrary bytes: '"', '\\' and control bytes
 * are escaped, bytes that are not valid UTF-8 are replaced by U+FFFD, so the output is always valid
 * JSON (stored keys are UTF-8 already; this guards the wire format).
 * Numbers: hd_json_f32() writes the shortest decimal that reads back as the same float32 (0.1f is
 * "0.1", not "0.100000001"), in plain notation for decimal exponents -4..15 and as "1.5e-5" / "3e38"
 * outside (as Python's repr); non-finite values are written as null. Thread-safe (no shared state). */
#ifndef S3V_HD_JSONW_H
#define S3V_HD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"

S3V_MUST_USE s3v_status hd_json_raw(s3v_buf *b, const char *s);
S3V_MUST_USE s3v_status hd_json_raw_n(s3v_buf *b, const void *p, size_t n);
/* A quoted, escaped JSON string of the bytes (p, n); p may be NULL when n is 0. */
S3V_MUST_USE s3v_status hd_json_str(s3v_buf *b, const void *p, size_t n);
S3V_MUST_USE s3v_status hd_json_cstr(s3v_buf *b, const char *s);
/* The body of a JSON string (no quotes), for embedding one JSON text inside another. */
S3V_MUST_USE s3v_status hd_json_str_body(s3v_buf *b, const void *p, size_t n);
S3V_MUST_USE s3v_status hd_json_f32(s3v_buf *b, float v);
/* A double with up to 17 significant digits, shortest form first (for statistics). */
S3V_MUST_USE s3v_status hd_json_f64(s3v_buf *b, double v);
S3V_MUST_USE s3v_status hd_json_u64(s3v_buf *b, uint64_t v);

/* Writes the shortest round-trip decimal form of v into out (at least 32 bytes), NUL-terminated, and
 * returns its length. "null" for NaN and infinities. Exposed for tests. */
size_t hd_json_format_f32(float v, char *out);

#endif
