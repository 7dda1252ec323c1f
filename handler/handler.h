/* handler/handler.h: one Lambda event in, one response payload out: the S3 Vectors API on the engine.
 *
 * hd_handler_invoke() decodes the event (handler/event.h), routes the operation (QueryVectors,
 * GetVectors, ListVectors, GetIndex, ListIndexes; and, when the configuration allows writes, CreateIndex,
 * DeleteIndex, PutVectors, DeleteVectors, and the direct-invocation-only Compact), validates the request
 * against the s3vectors service model, runs it on the warm index (handler/registry.h) or the write-ahead
 * log (engine/wal.h) and encodes the answer:
 *  - HTTP events (API Gateway REST v1, HTTP API v2, Function URL): the proxy response
 *    {"statusCode", "headers", "body", "isBase64Encoded"}; errors carry the model's HTTP status, the
 *    header x-amzn-ErrorType (what botocore's rest-json parser reads to raise the modeled exception)
 *    and the body {"message", "fieldList"}.
 *  - Direct invocations: the plain S3 Vectors output JSON. Errors, in "payload" mode (the default),
 *    are a normal payload {"errorType", "errorMessage", "statusCode", "fieldList"?} that SQL callers
 *    branch on (`payload ? 'errorType'`); in "function" mode they are a function error (the runtime
 *    posts {errorMessage, errorType} to /error, the caller sees X-Amz-Function-Error). The mode is the
 *    config default, overridden per call by the payload's "errorMode".
 * Every request error is a response, never a crash; the handler never exits and reads no
 * environment (bootstrap/ passes hd_config).
 *
 * Limits: the response payload is at most cfg.max_response_size bytes (default HD_RESPONSE_MAX, the
 * 6 MB Lambda limit); a result that would not fit becomes a ValidationException naming the size
 * ("ask for fewer results or leave out data/metadata"), so the runtime never posts an oversized body.
 *
 * Memory: the process lifetime owns the registry (indexes, cluster cache) and two reusable buffers;
 * everything else made for an invocation is freed before hd_handler_invoke returns. The response
 * stays valid until the next invoke or hd_handler_free.
 * Threading: one invocation at a time per handler. */
#ifndef S3V_HD_HANDLER_H
#define S3V_HD_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/status.h"
#include "common/storage.h"
#include "handler/errors.h"
#include "handler/event.h"

#define HD_RESPONSE_MAX       (6u * 1024u * 1024u) /* bytes: Lambda's synchronous response limit */
#define HD_QUERY_TOPK_MAX     100                  /* S3 Vectors: top-K results per QueryVectors */
#define HD_GET_KEYS_MAX       100                  /* GetVectors keys */
#define HD_LIST_MAX_RESULTS   1000                 /* ListVectors maxResults */
#define HD_LIST_SEGMENTS      16                   /* ListVectors segmentCount */
#define HD_LIST_INDEXES_MAX   500                  /* ListIndexes maxResults */
#define HD_PUT_VECTORS_MAX    500                  /* PutVectors vectors / DeleteVectors keys */
#define HD_NON_FILTERABLE_MAX 10                   /* CreateIndex nonFilterableMetadataKeys */

typedef struct hd_config {
    size_t cache_bytes;           /* cluster cache budget */
    uint32_t fresh_ms;            /* freshness interval of open indexes (wall clock) */
    uint32_t max_open_indexes;    /* 0: 32 */
    const char *region;           /* for ARNs; NULL: "us-east-1" (copied) */
    const char *account;          /* for ARNs when the invoked function ARN has none; NULL: "000000000000" */
    hd_error_mode direct_errors;  /* default for direct invocations: PAYLOAD (DEFAULT means PAYLOAD) */
    size_t max_response_size;     /* 0: HD_RESPONSE_MAX */
    uint32_t deadline_reserve_ms; /* time kept back from the Lambda deadline to encode and post; 0: 200 */
    int allow_writes;             /* serve CreateIndex, DeleteIndex, PutVectors, DeleteVectors, Compact */
    uint32_t tail_ms;             /* read the log at most this often before reads; 0: before every read */
    size_t tail_max_bytes;        /* unindexed tail memory per open index; 0: the engine's default */
    const char *tmp_dir;          /* compaction's spill files; NULL: /tmp (copied) */
    size_t compact_max_bytes;     /* compaction's memory for the folded log; 0: the engine's default */
    s3v_storage *probe_storage;   /* a second handle on the same storage: QueryVectors reads the log on it
                                     while it searches (handler/registry.h); NULL: log first. Borrowed. */
} hd_config;

typedef struct hd_handler hd_handler;

/* Creates the handler on a storage it borrows (the deployment root; must outlive the handler).
 * *out is written only on success. Errors: S3V_ERR_NOMEM. */
S3V_MUST_USE s3v_status hd_handler_new(const hd_config *cfg, s3v_storage *st, hd_handler **out);
void hd_handler_free(hd_handler *h);

/* Opens the index named "vectorBucket/index" now (at INIT). S3V_ERR_INVALID for a malformed name;
 * otherwise the errors of opening it (NOT_FOUND, CORRUPT, ...), with a message. */
S3V_MUST_USE s3v_status hd_handler_preload(hd_handler *h, const char *name, uint64_t deadline_ns);

/* What the runtime knows about the invocation (from the Runtime API headers). */
typedef struct hd_invocation {
    const char *request_id;   /* for the x-amzn-RequestId response header; may be NULL */
    const char *function_arn; /* invoked function ARN; its region and account name index ARNs; may be NULL */
    uint64_t deadline_ns;     /* absolute s3v_now_ns() deadline of the invocation, or S3V_NO_DEADLINE */
} hd_invocation;

typedef struct hd_response {
    const uint8_t *payload; /* the bytes to post (valid until the next invoke) */
    size_t payload_size;
    int function_error;        /* 1: post to /error with error_type and error_message instead */
    const char *error_type;    /* wire name of the error type, or NULL on success */
    const char *error_message; /* NULL on success */
    /* for the one log line per event */
    hd_event_kind kind;
    const char *operation; /* "" when unknown */
    int http_status;
    char index[2 * 64 + 2]; /* "vb/idx" when the request named one */
    uint32_t results;       /* vectors or indexes returned */
    double ms_engine;       /* time inside the engine (open + query), ms */
} hd_response;

/* Handles one event (p, n). Always produces a response (errors included) and returns S3V_OK, except
 * when not even an error response could be built (S3V_ERR_NOMEM), when *out is unspecified. */
S3V_MUST_USE s3v_status hd_handler_invoke(hd_handler *h, const hd_invocation *inv, const uint8_t *p, size_t n,
                                          hd_response *out);

#endif
