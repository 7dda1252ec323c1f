/* handler/errors.h: the S3 Vectors error model, and the one place that maps an s3v_status to it.
 *
 * Every failed request ends as one hd_error: a type from the s3vectors service model (botocore's
 * service-2.json: the exception shapes and their httpStatusCode), a message, and for validation
 * errors one fieldList entry {path, message} naming the offending request member. Only handler/
 * maps a status to an HTTP status (hd_err_http_status); bootstrap/ maps the outcome to the Runtime API.
 *
 * Status -> type (hd_err_from_status):
 *   INVALID, DIMENSION, TOO_LARGE          ValidationException          400
 *   NOT_FOUND                              NotFoundException            404
 *   ACCESS_DENIED                          AccessDeniedException        403
 *   TIMEOUT                                RequestTimeoutException      408
 *   THROTTLED                              TooManyRequestsException     429
 *   NETWORK, REMOTE                        ServiceUnavailableException  503
 *   CONFLICT, PRECONDITION                 ConflictException            409
 *   everything else (CORRUPT, IO, NOMEM, INTERNAL, UNSUPPORTED, CONFIG, CANCELLED)
 *                                          InternalServerException      500
 * Two types outside the model describe routing failures: UnknownOperationException (404, no such
 * operation) and NotImplementedException (501, an S3 Vectors write operation this version does not
 * serve); botocore surfaces both as a generic ClientError with that code.
 *
 * Messages come from s3v_errmsg() or the validators; they never contain request bodies or
 * credentials (object names may appear). Thread-safe (pure functions). */
#ifndef S3V_HD_ERRORS_H
#define S3V_HD_ERRORS_H

#include <stddef.h>

#include "common/buf.h"
#include "common/status.h"

typedef enum hd_err_type {
    HD_ERR_NONE = 0,
    HD_ERR_VALIDATION = 1,
    HD_ERR_NOT_FOUND = 2,
    HD_ERR_ACCESS_DENIED = 3,
    HD_ERR_CONFLICT = 4,
    HD_ERR_REQUEST_TIMEOUT = 5,
    HD_ERR_TOO_MANY_REQUESTS = 6,
    HD_ERR_SERVICE_UNAVAILABLE = 7,
    HD_ERR_INTERNAL = 8,
    HD_ERR_UNKNOWN_OPERATION = 9,
    HD_ERR_NOT_IMPLEMENTED = 10,
} hd_err_type;

#define HD_ERR_MESSAGE_MAX 512
#define HD_ERR_PATH_MAX    128

typedef struct hd_error {
    hd_err_type type;
    char message[HD_ERR_MESSAGE_MAX];
    char field_path[HD_ERR_PATH_MAX]; /* "" when there is no fieldList entry */
    char field_message[HD_ERR_MESSAGE_MAX];
} hd_error;

/* The wire name ("ValidationException", ...); "InternalServerException" for HD_ERR_NONE. */
const char *hd_err_type_name(hd_err_type t);
/* The HTTP status of the type in the service model (400, 404, ...). */
int hd_err_http_status(hd_err_type t);
/* The type for a failed status, as in the table above. */
hd_err_type hd_err_from_status(s3v_status st);

/* Sets *e to a validation error on `path` ("topK", "queryVector.float32[3]"); the top-level message
 * becomes "<path>: <message>". Returns S3V_ERR_INVALID so validators can `return hd_err_field(...)`. */
s3v_status hd_err_field(hd_error *e, const char *path, const char *fmt, ...) S3V_PRINTF(3, 4);
/* Sets *e from a failed status and its recorded message (s3v_errmsg(st)); `path` (may be NULL) adds a
 * fieldList entry when the type is ValidationException. Returns st. */
s3v_status hd_err_status(hd_error *e, s3v_status st, const char *path);
/* Sets *e to `type` with a formatted message. Returns `ret`. */
s3v_status hd_err_set(hd_error *e, hd_err_type type, s3v_status ret, const char *fmt, ...) S3V_PRINTF(4, 5);

/* Appends the rest-json error body {"message": ..., "fieldList": [{"path", "message"}]} (fieldList only
 * for validation errors that name a field). */
S3V_MUST_USE s3v_status hd_err_body(const hd_error *e, s3v_buf *out);

#endif
