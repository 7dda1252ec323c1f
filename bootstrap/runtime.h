/* bootstrap/runtime.h: a client of the Lambda Runtime API, version 2018-06-01 (the only code in s3vec
 * that talks to it).
 *
 * One libcurl easy handle is kept for the process, so the loopback connection stays open across
 * invocations; its options are set once at open and only the URL, method, body and headers change per
 * request (no per-request header list or option reset). GET /runtime/invocation/next has no timeout
 * (the sandbox is frozen while it waits); every request has a 10 s connect timeout only. Proxy
 * variables in the environment (HTTP_PROXY, http_proxy, ...) are ignored: the Runtime API is local.
 *
 * Failures (details in bootstrap/README.md):
 *  - transport errors (connection refused or reset, empty reply) and 502/503/504 answers are retried
 *    RT_RETRIES times with backoff (10, 20, 40, 80, 160 ms), then reported as RT_FATAL;
 *  - 500 from any endpoint is RT_FATAL ("non-recoverable state, the runtime should exit promptly" in
 *    the Runtime API specification);
 *  - a response post answered 413 is RT_TOO_LARGE; 400/403/410 (unknown or finished invocation) are
 *    RT_REJECTED: the invocation is over, the runtime moves on to the next one.
 * The caller (main.c) decides to exit on RT_FATAL.
 *
 * Headers read from /next: Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn,
 * -Trace-Id, -Client-Context, -Cognito-Identity, -Aws-Tenant-Id and -Invocation-Id. The invocation id
 * is echoed on the response and error posts (Lambda-Runtime-Invocation-Id) when it was given.
 * Header values are bounded (RT_*_MAX); a longer value is truncated and logged, except the request id,
 * whose overflow makes the invocation unanswerable (reported as RT_REJECTED after an error log).
 * Event bodies are bounded by RT_EVENT_MAX; a longer one sets event_too_large (Lambda itself never
 * sends more than 6 MB).
 *
 * Threading: one thread. */
#ifndef S3V_BS_RUNTIME_H
#define S3V_BS_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define RT_RETRIES     5
#define RT_EVENT_MAX   (7u * 1024u * 1024u) /* bytes: above Lambda's 6 MB request payload */
#define RT_ID_MAX      128
#define RT_ARN_MAX     512
#define RT_TRACE_MAX   1024
#define RT_CONTEXT_MAX 8192

typedef enum rt_result {
    RT_OK = 0,
    RT_FATAL = 1,     /* the Runtime API is gone or says the sandbox is broken: exit */
    RT_TOO_LARGE = 2, /* 413 on a response post */
    RT_REJECTED = 3,  /* 400/403/410: the invocation cannot be answered (any more) */
} rt_result;

typedef struct rt_invocation {
    char request_id[RT_ID_MAX];
    char invocation_id[RT_ID_MAX]; /* "" when not given */
    char function_arn[RT_ARN_MAX];
    char trace_id[RT_TRACE_MAX];
    char tenant_id[RT_ID_MAX];
    char client_context[RT_CONTEXT_MAX];
    char cognito_identity[RT_CONTEXT_MAX];
    uint64_t deadline_epoch_ms; /* 0 when not given */
    int has_trace_id, has_client_context, has_cognito_identity, has_tenant_id;
    int truncated;       /* a header value did not fit */
    int event_too_large; /* the payload exceeded RT_EVENT_MAX (event holds a prefix): answer with an error */
    s3v_buf event;       /* the payload */
} rt_invocation;

typedef struct rt_client rt_client;

/* `api` is AWS_LAMBDA_RUNTIME_API ("host:port"). NULL on failure (out of memory, curl init). */
rt_client *rt_client_open(const char *api);
void rt_client_close(rt_client *c);

/* Waits for the next invocation; fills *inv (its event buffer is reset and reused). */
rt_result rt_next(rt_client *c, rt_invocation *inv);
/* Posts the response payload of inv. */
rt_result rt_post_response(rt_client *c, const rt_invocation *inv, const uint8_t *payload, size_t size);
/* Posts {"errorMessage", "errorType", "stackTrace": []} to .../error with the
 * Lambda-Runtime-Function-Error-Type header. */
rt_result rt_post_error(rt_client *c, const rt_invocation *inv, const char *error_type, const char *message);
/* Posts the same body to /runtime/init/error (start-up failed). */
rt_result rt_post_init_error(rt_client *c, const char *error_type, const char *message);

/* HTTP status of the last request (0 when none was received). */
long rt_last_status(const rt_client *c);

#endif
