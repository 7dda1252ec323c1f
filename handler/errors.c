/* handler/errors.c: S3 Vectors error types, HTTP statuses and the status mapping. */
#include "handler/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "handler/jsonw.h"

static const struct {
    const char *name;
    int http;
} TYPES[] = {
    [HD_ERR_NONE] = {"InternalServerException", 500},
    [HD_ERR_VALIDATION] = {"ValidationException", 400},
    [HD_ERR_NOT_FOUND] = {"NotFoundException", 404},
    [HD_ERR_ACCESS_DENIED] = {"AccessDeniedException", 403},
    [HD_ERR_CONFLICT] = {"ConflictException", 409},
    [HD_ERR_REQUEST_TIMEOUT] = {"RequestTimeoutException", 408},
    [HD_ERR_TOO_MANY_REQUESTS] = {"TooManyRequestsException", 429},
    [HD_ERR_SERVICE_UNAVAILABLE] = {"ServiceUnavailableException", 503},
    [HD_ERR_INTERNAL] = {"InternalServerException", 500},
    [HD_ERR_UNKNOWN_OPERATION] = {"UnknownOperationException", 404},
    [HD_ERR_NOT_IMPLEMENTED] = {"NotImplementedException", 501},
};

const char *hd_err_type_name(hd_err_type t)
{
    if ((size_t)t >= sizeof TYPES / sizeof TYPES[0]) t = HD_ERR_INTERNAL;
    return TYPES[t].name;
}

int hd_err_http_status(hd_err_type t)
{
    if ((size_t)t >= sizeof TYPES / sizeof TYPES[0]) t = HD_ERR_INTERNAL;
    return TYPES[t].http;
}

hd_err_type hd_err_from_status(s3v_status st)
{
    switch (st) {
    case S3V_OK: return HD_ERR_NONE;
    case S3V_ERR_INVALID:
    case S3V_ERR_DIMENSION:
    case S3V_ERR_TOO_LARGE: return HD_ERR_VALIDATION;
    case S3V_ERR_NOT_FOUND: return HD_ERR_NOT_FOUND;
    case S3V_ERR_ACCESS_DENIED: return HD_ERR_ACCESS_DENIED;
    case S3V_ERR_TIMEOUT: return HD_ERR_REQUEST_TIMEOUT;
    case S3V_ERR_THROTTLED: return HD_ERR_TOO_MANY_REQUESTS;
    case S3V_ERR_NETWORK:
    case S3V_ERR_REMOTE: return HD_ERR_SERVICE_UNAVAILABLE;
    case S3V_ERR_CONFLICT:
    case S3V_ERR_PRECONDITION: return HD_ERR_CONFLICT;
    default: return HD_ERR_INTERNAL;
    }
}

s3v_status hd_err_field(hd_error *e, const char *path, const char *fmt, ...)
{
    e->type = HD_ERR_VALIDATION;
    snprintf(e->field_path, sizeof e->field_path, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->field_message, sizeof e->field_message, fmt, ap);
    va_end(ap);
    snprintf(e->message, sizeof e->message, "%.127s: %.380s", e->field_path, e->field_message);
    return S3V_ERR_INVALID;
}

s3v_status hd_err_status(hd_error *e, s3v_status st, const char *path)
{
    e->type = hd_err_from_status(st);
    snprintf(e->message, sizeof e->message, "%s", s3v_errmsg(st));
    e->field_path[0] = 0;
    e->field_message[0] = 0;
    if (e->type == HD_ERR_VALIDATION && path && *path) {
        snprintf(e->field_path, sizeof e->field_path, "%s", path);
        snprintf(e->field_message, sizeof e->field_message, "%s", e->message);
    }
    return st;
}

s3v_status hd_err_set(hd_error *e, hd_err_type type, s3v_status ret, const char *fmt, ...)
{
    e->type = type;
    e->field_path[0] = 0;
    e->field_message[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return ret;
}

s3v_status hd_err_body(const hd_error *e, s3v_buf *out)
{
    S3V_TRY(hd_json_raw(out, "{\"message\":"));
    S3V_TRY(hd_json_cstr(out, e->message));
    if (e->type == HD_ERR_VALIDATION && e->field_path[0]) {
        S3V_TRY(hd_json_raw(out, ",\"fieldList\":[{\"path\":"));
        S3V_TRY(hd_json_cstr(out, e->field_path));
        S3V_TRY(hd_json_raw(out, ",\"message\":"));
        S3V_TRY(hd_json_cstr(out, e->field_message));
        S3V_TRY(hd_json_raw(out, "}]"));
    }
    return hd_json_raw(out, "}");
}
