/* common/status.c: status names and the per-thread error message. */
#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERRMSG_CAP 1024

static _Thread_local char errmsg[ERRMSG_CAP];
static _Thread_local int errmsg_set;

const char *s3v_status_name(s3v_status st)
{
    switch (st) {
    case S3V_OK: return "ok";
    case S3V_ERR_NOMEM: return "out_of_memory";
    case S3V_ERR_INVALID: return "invalid";
    case S3V_ERR_NOT_FOUND: return "not_found";
    case S3V_ERR_CORRUPT: return "corrupt";
    case S3V_ERR_IO: return "io_error";
    case S3V_ERR_TOO_LARGE: return "too_large";
    case S3V_ERR_UNSUPPORTED: return "unsupported";
    case S3V_ERR_PRECONDITION: return "precondition_failed";
    case S3V_ERR_TIMEOUT: return "timeout";
    case S3V_ERR_ACCESS_DENIED: return "access_denied";
    case S3V_ERR_THROTTLED: return "throttled";
    case S3V_ERR_NETWORK: return "network_error";
    case S3V_ERR_REMOTE: return "remote_error";
    case S3V_ERR_CONFLICT: return "conflict";
    case S3V_ERR_INTERNAL: return "internal_error";
    case S3V_ERR_DIMENSION: return "dimension_mismatch";
    case S3V_ERR_CONFIG: return "configuration_error";
    case S3V_ERR_CANCELLED: return "cancelled";
    }
    return "unknown_status";
}

s3v_status s3v_errorf(s3v_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    errmsg_set = 1;
    return st;
}

s3v_status s3v_error_context(s3v_status st, const char *fmt, ...)
{
    char prefix[512];
    char old[ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", errmsg_set ? errmsg : s3v_status_name(st));
    size_t plen = strlen(prefix);
    if (plen > sizeof errmsg - 3) plen = sizeof errmsg - 3;
    memcpy(errmsg, prefix, plen);
    memcpy(errmsg + plen, ": ", 2);
    size_t olen = strlen(old);
    if (olen > sizeof errmsg - plen - 3) olen = sizeof errmsg - plen - 3;
    memcpy(errmsg + plen + 2, old, olen);
    errmsg[plen + 2 + olen] = 0;
    errmsg_set = 1;
    return st;
}

const char *s3v_errmsg(s3v_status st) { return errmsg_set ? errmsg : s3v_status_name(st); }

void s3v_error_clear(void)
{
    errmsg[0] = '\0';
    errmsg_set = 0;
}
