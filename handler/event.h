/* handler/event.h: decoding a Lambda event into (kind, method, operation, request fields).
 *
 * Shapes (detection is lenient, in this order; see handler/README.md for examples):
 *  1. HTTP API / Function URL (payload format 2.0): an object with "requestContext" holding an "http"
 *     object (or "version": "2.0" with "rawPath"). A requestContext.domainName containing
 *     ".lambda-url." marks a Function URL event; both answer with the proxy response shape.
 *     Method = requestContext.http.method; path = rawPath (else requestContext.http.path).
 *  2. API Gateway REST (v1 proxy): an object with a string "httpMethod" and a "requestContext",
 *     "resource" or "path" member. Path = "path" (else requestContext.path / resourcePath).
 *  3. Anything else that is a JSON object is a direct invocation (AWS SDK Invoke, Aurora
 *     aws_lambda.invoke, `sam local invoke`); in particular a payload with only a "body" key is one.
 * HTTP events: the operation is pathParameters.operation when present, else the last segment of the
 * path (so "/QueryVectors", "/prod/QueryVectors" and a "{operation}" route all work); the request is
 * the JSON object in "body", base64-decoded first when "isBase64Encoded" is true; a missing, null or
 * empty body is an empty request ({}).
 * Direct invocations: the request fields are the payload's top level, or the "body" member when there
 * is one (an object, or a string holding JSON, base64 when "isBase64Encoded" is true). The operation
 * is the string member "operation" of the payload (or of the body). "errorMode" ("payload" or
 * "function") picks how errors are returned for this call (see handler.h).
 *
 * Limits: an event of at most HD_EVENT_MAX_SIZE bytes (the 6 MB Lambda payload), nesting at most
 * cJSON's limit (1000). Input is (ptr, len) and never read past; it need not be NUL-terminated.
 * Errors set *err (ValidationException for malformed JSON or a body that is not an object, with the
 * reason) and still fill out->kind, so the error can be answered in the event's own shape.
 * Not thread-safe per event; separate events are independent. */
#ifndef S3V_HD_EVENT_H
#define S3V_HD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/status.h"
#include "handler/errors.h"

#define HD_EVENT_MAX_SIZE (6u * 1024u * 1024u)
#define HD_OPERATION_MAX  64

typedef enum hd_event_kind {
    HD_EVENT_DIRECT = 0,
    HD_EVENT_REST_V1 = 1,
    HD_EVENT_HTTP_V2 = 2,
    HD_EVENT_FUNCTION_URL = 3,
} hd_event_kind;

typedef enum hd_error_mode {
    HD_ERROR_MODE_DEFAULT = 0, /* the handler's configured default */
    HD_ERROR_MODE_PAYLOAD = 1,
    HD_ERROR_MODE_FUNCTION = 2,
} hd_error_mode;

typedef struct hd_event {
    hd_event_kind kind;
    char method[16];                  /* HTTP kinds: upper-case method ("" when absent) */
    char operation[HD_OPERATION_MAX]; /* "" when none was given (or it was too long) */
    hd_error_mode error_mode;
    const cJSON *request; /* the request fields object (never NULL after success); owned by root/body */
    /* owned */
    cJSON *root;
    cJSON *body;
    cJSON *empty;
} hd_event;

/* "direct", "rest-v1", "http-v2", "function-url". */
const char *hd_event_kind_name(hd_event_kind k);
/* 1 for the kinds answered with the API Gateway / Function URL proxy response shape. */
static inline int hd_event_is_http(hd_event_kind k) { return k != HD_EVENT_DIRECT; }

/* Decodes (p, n). On success *out owns its trees (free with hd_event_free). On failure returns
 * S3V_ERR_INVALID / _TOO_LARGE / _NOMEM, fills *err and out->kind, and *out still needs hd_event_free. */
S3V_MUST_USE s3v_status hd_event_decode(const uint8_t *p, size_t n, hd_event *out, hd_error *err);
/* Accepts a zeroed or already freed event. */
void hd_event_free(hd_event *ev);

/* Standard base64 (RFC 4648, '+' '/', padding optional, no whitespace) of (in, n) into out, which
 * needs (n / 4) * 3 + 3 bytes. Returns the decoded size, or (size_t)-1 for invalid input. */
size_t hd_base64_decode(const char *in, size_t n, uint8_t *out);

#endif
