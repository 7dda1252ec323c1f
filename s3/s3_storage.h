/* s3/s3_storage.h: the S3 storage backend, the public face of s3/.
 *
 * s3_storage_open() returns an s3v_storage (common/storage.h) whose keys live under
 * s3://bucket/prefix/, so the engine uses S3 and a local folder interchangeably. Configuration
 * (credentials, region, endpoint, CA bundle, tunables) is read only through the env function given
 * (see s3/s3_config.h for every variable and the precedence), never from the process environment
 * directly.
 *
 * Behaviour (details in s3/README.md):
 *  - One libcurl multi handle plus a share handle (DNS cache, TLS sessions) per storage, kept until
 *    close, so connections stay warm across calls (and across Lambda invocations when the storage
 *    lives for the process). At most S3VEC_S3_MAX_CONCURRENCY transfers run at once.
 *  - Every call is bounded by its deadline (S3V_ERR_TIMEOUT). 500/502/504, 503 SlowDown, 429,
 *    400 RequestTimeout, 409 ConditionalRequestConflict, connection failures and resets, stalls,
 *    truncated bodies and wrong Content-Range are retried with exponential backoff and full jitter
 *    while the deadline allows; then 5xx -> S3V_ERR_REMOTE, 503/429 -> S3V_ERR_THROTTLED, transport
 *    -> S3V_ERR_NETWORK, 409 ConditionalRequestConflict -> S3V_ERR_PRECONDITION.
 *    4xx are not retried: 403 -> S3V_ERR_ACCESS_DENIED, 404 -> S3V_ERR_NOT_FOUND, 412 ->
 *    S3V_ERR_PRECONDITION, 416 or a short range -> S3V_ERR_CORRUPT; the message carries S3's Code and
 *    Message (and never a credential).
 *  - Ranged reads are hedged: a range whose response has not started after max(S3VEC_S3_HEDGE_MIN_MS,
 *    p95 of recent first-byte latencies) gets one duplicate request; the first to finish wins and the
 *    other is cancelled.
 *  - put() signs the SHA-256 of the body; put_file() streams files up to one part size with a single
 *    PUT and larger ones as a multipart upload (parts of S3VEC_S3_PART_SIZE_MB, uploaded in parallel,
 *    aborted on failure). Conditions: If-None-Match: * (create) and If-Match: <etag> (replace) on PUT
 *    and on CompleteMultipartUpload.
 *  - ETags are returned as S3 sends them, quotes included; pass them back unchanged for If-Match.
 *
 * Threading: as every s3v_storage, one thread at a time per handle; separate handles are
 * independent. s3_storage_open() calls curl_global_init once (thread-safe through pthread_once). */
#ifndef S3_STORAGE_H
#define S3_STORAGE_H

#include <stdint.h>

#include "common/status.h"
#include "common/storage.h"

/* The environment lookup the backend uses (pass getenv; tests pass a fake). */
typedef const char *(*s3v_getenv_fn)(const char *name);

/* Opens the S3 backend for url = "s3://bucket" or "s3://bucket/prefix" (the prefix becomes the
 * root of every key). Nothing is sent over the network here: a wrong bucket or credential shows up
 * on first use. *out is written only on success; close with s3v_storage_close().
 * Errors: S3V_ERR_INVALID (malformed URL), S3V_ERR_CONFIG (no credentials, malformed variable or
 * file), S3V_ERR_NOMEM, S3V_ERR_INTERNAL (libcurl initialisation failed). */
S3V_MUST_USE s3v_status s3_storage_open(const char *url, s3v_getenv_fn env, s3v_storage **out);

/* "s3://..." -> s3_storage_open(url, env, out); anything else is a local folder:
 * s3v_storage_local_open(url_or_path, create, out). */
S3V_MUST_USE s3v_status s3_storage_open_any(const char *url_or_path, int create, s3v_getenv_fn env,
                                            s3v_storage **out);

/* 1 when st is an S3 backend (so s3_storage_stats applies), else 0. NULL gives 0. */
int s3_storage_is_s3(const s3v_storage *st);

/* Counters since open, cumulative (take two snapshots and subtract for one query). */
typedef struct s3_stats {
    uint64_t requests;          /* HTTP requests sent, retries and hedges included */
    uint64_t bytes_down;        /* response body bytes received */
    uint64_t bytes_up;          /* request body bytes sent */
    uint64_t retries;           /* requests re-sent after a retryable failure */
    uint64_t hedges;            /* duplicate requests started for slow ranges */
    uint64_t hedge_wins;        /* ranges whose duplicate finished first */
    uint64_t throttled;         /* 503 SlowDown / 429 responses seen */
    uint64_t failures;          /* operations that returned an error to the caller */
    uint64_t first_byte_p50_us; /* over the recent first-byte latencies (0 before any) */
    uint64_t first_byte_p95_us;
} s3_stats;

/* Copies the counters of an S3 backend into *out. S3V_ERR_INVALID when st is not one (out untouched). */
S3V_MUST_USE s3v_status s3_storage_stats(s3v_storage *st, s3_stats *out);

#endif
