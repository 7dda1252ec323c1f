/* s3/s3_client.h: S3 requests over one libcurl multi handle, with retries and hedging. Internal to s3/.
 *
 * An s3_client owns a curl multi handle, a share handle (DNS cache and TLS sessions) and a pool of
 * easy handles, all kept until s3_client_free so connections stay warm between calls. A call to
 * s3_client_run executes a batch of independent operations (s3_op) concurrently, at most
 * max_parallel at a time (and never more than the configured max_concurrency), each signed with
 * SigV4 at the moment it is sent, and returns when all have finished, the deadline passed
 * (S3V_ERR_TIMEOUT) or the done callback stopped the batch.
 *
 * Per operation: retryable failures (see s3_retry_classify, plus transport errors, stalls, truncated
 * bodies, a wrong Content-Range) are retried up to max_attempts times with full-jitter backoff, but
 * never past the deadline. An op with `hedgeable` set whose response has not started after the
 * hedging threshold gets one duplicate request; the first to succeed wins and the other is cancelled.
 * A 2xx response to a POST whose body is an <Error> document (S3 does this for
 * CompleteMultipartUpload) counts as that error.
 *
 * Ownership: ops and everything they point to belong to the caller and must stay valid during the
 * run. op->resp (the response body of a successful op) is owned by the op after the run: the caller
 * frees it with s3v_buf_free or moves it out with s3v_buf_take. Threading: one thread at a time per
 * client; the done callback runs on that thread. */
#ifndef S3_CLIENT_H
#define S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"
#include "common/storage.h"
#include "s3/s3_config.h"
#include "s3/s3_storage.h"

#define S3_ERR_BODY_MAX (64u * 1024u) /* cap on an error response body */
#define S3_MSG_MAX      2048

typedef struct s3_op {
    /* ---- request, set by the caller ---- */
    const char *method; /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *key;    /* full object key (root prefix included), raw bytes; NULL for the bucket */
    const char *query;  /* already-encoded query without '?', or NULL */
    uint64_t range_offset;
    uint64_t range_size; /* > 0: send Range: bytes=offset-(offset+size-1) and check the answer */
    const char *if_match;
    const char *if_none_match;
    const char *content_type;
    const uint8_t *body; /* memory body (PUT, POST), or NULL */
    size_t body_size;
    int body_fd; /* >= 0: the body is body_size bytes of this file at body_offset, read at start */
    uint64_t body_offset;
    size_t
        resp_max;  /* cap on the response body (2xx); bigger is S3V_ERR_TOO_LARGE (or a retry for a range) */
    int hedgeable; /* an idempotent read that may be duplicated when slow */
    /* ---- results, written by s3_client_run ---- */
    s3v_status status; /* S3V_OK or the op's failure */
    long http_status;  /* last HTTP status seen, 0 when none */
    s3v_buf resp;      /* response body on success (see Ownership) */
    char etag[S3V_ETAG_MAX];
    uint64_t object_size; /* total size from Content-Range, else Content-Length; 0 when unknown */
    char msg[S3_MSG_MAX]; /* message for a failure (no credentials) */
    /* ---- private to s3_client.c ---- */
    unsigned attempts;
    uint64_t not_before_ns;
    int nactive;
    int done;
    uint8_t *file_body; /* body read from body_fd */
    char payload_hash[65];
} s3_op;

/* Called once per op as it finishes, in completion order; op->status says how. Return S3V_OK to go
 * on; any other status cancels the outstanding ops and becomes s3_client_run's result. */
typedef s3v_status (*s3_op_done_fn)(void *arg, s3_op *op, size_t index);

typedef struct s3_client s3_client;

/* Makes a client for cfg (copied; the copy's secrets are wiped by s3_client_free).
 * S3V_ERR_NOMEM or S3V_ERR_INTERNAL when libcurl cannot be initialised. */
S3V_MUST_USE s3v_status s3_client_new(const s3_config *cfg, s3_client **out);
void s3_client_free(s3_client *c);

/* Prepares op for a request: zeroes it, sets method and key, body_fd = -1 and resp_max = 64 KiB. */
void s3_op_init(s3_op *op, const char *method, const char *key);
/* Releases what a finished op still owns (its response body and file buffer). */
void s3_op_release(s3_op *op);

/* Runs ops[0..count) (see the header comment). Returns S3V_OK when every op has finished (check
 * each op->status), S3V_ERR_TIMEOUT when the deadline passed first (unfinished ops get
 * S3V_ERR_TIMEOUT, without a callback), or the callback's status. max_parallel 0 = the client's
 * max_concurrency. */
S3V_MUST_USE s3v_status s3_client_run(s3_client *c, s3_op *ops, size_t count, size_t max_parallel,
                                      uint64_t deadline_ns, s3_op_done_fn done, void *arg);

const s3_config *s3_client_config(const s3_client *c);
void s3_client_stats(const s3_client *c, s3_stats *out);
/* Counts an operation that failed to the caller (the storage layer calls this once per failed call). */
void s3_client_count_failure(s3_client *c);

/* Human-readable location "s3://bucket/<key>" of a full key (for messages). */
void s3_client_describe(const s3_client *c, const char *key, char *out, size_t out_size);

#endif
