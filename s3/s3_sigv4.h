/* s3/s3_sigv4.h: AWS Signature Version 4, header form and presigned-query form. Internal to s3/.
 *
 * Pure functions: no clock, no environment, no I/O. The signing time is a parameter so that tests
 * are deterministic. The canonical request, string to sign and signature reproduce the AWS signing
 * test suite (aws-c-auth tests/aws-signing-test-suite/v4) byte for byte.
 *
 * S3 signs with normalize_path = 0 (the path is URI-encoded once and never collapsed) and with an
 * x-amz-content-sha256 header holding either the hex SHA-256 of the body or "UNSIGNED-PAYLOAD".
 * s3vec's choice: GET and HEAD send UNSIGNED-PAYLOAD (no body; TLS protects integrity and index
 * objects carry their own checksums); PUT, POST and DELETE sign the SHA-256 of their body.
 *
 * Secrets: the secret key is used only inside s3_sigv4_sign/presign and is never copied into an
 * output. Outputs contain the access key id (public by design), never the secret. Thread-safe. */
#ifndef S3_SIGV4_H
#define S3_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"

#define S3_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define S3_SIGV4_EMPTY_SHA256     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_SIGV4_MAX_HEADERS      32
#define S3_SIGV4_TEXT_MAX         (64u * 1024u) /* cap on the canonical request and the other outputs */

typedef struct s3_sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when none */
} s3_sigv4_creds;

typedef struct s3_sigv4_header {
    const char *name; /* any case; compared case-insensitively */
    const char *value;
} s3_sigv4_header;

typedef struct s3_sigv4_req {
    const char *method; /* "GET", "PUT", ... */
    /* The path as bytes, NOT percent-encoded ("/bucket/my key"); it is encoded here (every byte but
     * A-Z a-z 0-9 - . _ ~ and '/' becomes %XX), so send the same encoding on the wire
     * (s3_sigv4_uri_encode with keep_slash = 1). */
    const char *path;
    /* The query as sent, without '?', or NULL. Each name and value is percent-decoded and re-encoded
     * canonically, then pairs are sorted by name and value; a name without '=' gets an empty value. */
    const char *query;
    /* Every header to sign, "host" included. Repeated names are joined with ',' in order. Values
     * are trimmed and runs of white space (including folded lines) collapse to one space. */
    const s3_sigv4_header *headers;
    size_t header_count;      /* <= S3_SIGV4_MAX_HEADERS */
    const char *payload_hash; /* lowercase hex SHA-256 of the body, or S3_SIGV4_UNSIGNED_PAYLOAD */
} s3_sigv4_req;

typedef struct s3_sigv4_opts {
    const char *region;  /* "us-east-1" */
    const char *service; /* "s3" */
    int64_t unix_time;   /* signing time, seconds since the Unix epoch (UTC) */
    int normalize_path;  /* 1: remove "." and ".." segments and empty segments (not for S3) */
    /* Header form: 1 adds a signed "x-amz-content-sha256: <payload_hash>" header (S3 needs it). */
    int content_sha256_header;
    /* 1: the session token is sent but left out of the signature (some STS flows); S3 signs it. */
    int omit_session_token;
} s3_sigv4_opts;

/* Results. Initialise with s3_sigv4_out_init(), release with s3_sigv4_out_free(). */
typedef struct s3_sigv4_out {
    char amz_date[17];         /* "20150830T123600Z": send as x-amz-date (header form) */
    char signature[65];        /* lowercase hex */
    s3v_buf canonical_request; /* for tests and debugging; contains no secret */
    s3v_buf string_to_sign;
    /* Header form: the Authorization header value. Presigned form: the complete query string to
     * send (the request's own parameters followed by the X-Amz-* ones), without '?'. */
    s3v_buf result;
} s3_sigv4_out;

void s3_sigv4_out_init(s3_sigv4_out *out);
void s3_sigv4_out_free(s3_sigv4_out *out);

/* Signs for the Authorization header. The caller then sends x-amz-date: out->amz_date,
 * x-amz-security-token (when creds has a token), x-amz-content-sha256 (when
 * opts->content_sha256_header) and Authorization: out->result, plus the headers in req; the signer
 * adds the first three to the canonical headers itself (they must not be in req->headers).
 * Returns S3V_ERR_INVALID for a missing field, too many headers or a malformed query,
 * S3V_ERR_TOO_LARGE past S3_SIGV4_TEXT_MAX, S3V_ERR_INTERNAL if libcrypto fails. out is reset first. */
S3V_MUST_USE s3v_status s3_sigv4_sign(const s3_sigv4_req *req, const s3_sigv4_creds *creds,
                                      const s3_sigv4_opts *opts, s3_sigv4_out *out);

/* s3_sigv4_sign with the signing key given: NULL derives it from the secret (four HMACs, as
 * s3_sigv4_sign); else the 32 bytes s3_sigv4_signing_key() gave for this secret, opts->region,
 * opts->service and the UTC date of opts->unix_time. A caller that signs many requests keeps the key
 * per date (a key for another date, region or secret gives a signature S3 rejects). */
S3V_MUST_USE s3v_status s3_sigv4_sign_with_key(const s3_sigv4_req *req, const s3_sigv4_creds *creds,
                                               const s3_sigv4_opts *opts, const uint8_t *signing_key,
                                               s3_sigv4_out *out);

/* Signs as a presigned URL valid for expires_s seconds (1..604800). The X-Amz-* parameters join the
 * canonical query; the session token is signed unless opts->omit_session_token, in which case it is
 * appended after signing. req->payload_hash goes in the canonical request (S3 uses
 * UNSIGNED-PAYLOAD). Same errors as s3_sigv4_sign. */
S3V_MUST_USE s3v_status s3_sigv4_presign(const s3_sigv4_req *req, const s3_sigv4_creds *creds,
                                         const s3_sigv4_opts *opts, uint32_t expires_s, s3_sigv4_out *out);

/* Appends the SigV4 URI encoding of (s, len) to out: A-Z a-z 0-9 - . _ ~ stay, '/' stays when
 * keep_slash, every other byte becomes %XX (upper-case hex). */
S3V_MUST_USE s3v_status s3_sigv4_uri_encode(s3v_buf *out, const uint8_t *s, size_t len, int keep_slash);

/* The SigV4 signing key HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service), "aws4_request")
 * into key[32], for date8 = "YYYYMMDD" (the first 8 bytes are used; an amz_date works). The key is a
 * secret: wipe it (OPENSSL_cleanse) when done. S3V_ERR_INVALID for a missing or oversized input,
 * S3V_ERR_INTERNAL if libcrypto fails. */
S3V_MUST_USE s3v_status s3_sigv4_signing_key(const char *secret_access_key, const char *date8,
                                             const char *region, const char *service, uint8_t key[32]);

/* Lowercase hex SHA-256 of (data, size) into hex[65]. S3V_ERR_INTERNAL if libcrypto fails. */
S3V_MUST_USE s3v_status s3_sigv4_sha256_hex(const uint8_t *data, size_t size, char hex[65]);

/* "YYYYMMDDTHHMMSSZ" for unix_time into out[17]. */
void s3_sigv4_amz_date(int64_t unix_time, char out[17]);

#endif
