/* common/status.h: the one status enum of the whole project, and the per-thread error message.
 *
 * Every fallible function returns s3v_status (values are stable; append only). A function that fails
 * may record a human-readable message with s3v_errorf(); callers print s3v_errmsg(). The message is
 * per thread and describes the most recent failure that recorded one. Messages never contain request
 * bodies or credentials. Only handler/ maps a status to HTTP and only bootstrap/ to the Runtime API. */
#ifndef S3V_STATUS_H
#define S3V_STATUS_H

#include <stddef.h>

#define S3V_MUST_USE     __attribute__((warn_unused_result))
#define S3V_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum s3v_status {
    S3V_OK = 0,
    S3V_ERR_NOMEM = 1,          /* allocation failed */
    S3V_ERR_INVALID = 2,        /* bad argument or request data */
    S3V_ERR_NOT_FOUND = 3,      /* object, index or key does not exist */
    S3V_ERR_CORRUPT = 4,        /* stored data failed a checksum or format check */
    S3V_ERR_IO = 5,             /* local file-system error */
    S3V_ERR_TOO_LARGE = 6,      /* a bounded buffer or a limit would be exceeded */
    S3V_ERR_UNSUPPORTED = 7,    /* unknown format version or feature */
    S3V_ERR_PRECONDITION = 8,   /* a conditional write lost (If-Match / If-None-Match) */
    S3V_ERR_TIMEOUT = 9,        /* the deadline passed */
    S3V_ERR_ACCESS_DENIED = 10, /* storage refused the credentials or the permission */
    S3V_ERR_THROTTLED = 11,     /* storage asked us to slow down, retries exhausted */
    S3V_ERR_NETWORK = 12,       /* transport failure, retries exhausted */
    S3V_ERR_REMOTE = 13,        /* storage answered 5xx, retries exhausted */
    S3V_ERR_CONFLICT = 14,      /* the resource already exists */
    S3V_ERR_INTERNAL = 15,      /* a bug: an invariant did not hold */
    S3V_ERR_DIMENSION = 16,     /* vector dimension does not match the index */
    S3V_ERR_CONFIG = 17,        /* configuration or credentials missing or malformed */
    S3V_ERR_CANCELLED = 18,     /* the caller stopped the operation (callback asked to stop) */
} s3v_status;

/* Stable lower-case name of a status ("ok", "not_found", ...). Never NULL. */
const char *s3v_status_name(s3v_status st);

/* Records a formatted message for this thread and returns st unchanged, so that
 * `return s3v_errorf(S3V_ERR_INVALID, "dimension %zu, index has %zu", a, b);` reads naturally. */
s3v_status s3v_errorf(s3v_status st, const char *fmt, ...) S3V_PRINTF(2, 3);

/* Prefixes the current message with "<context>: " (for adding an object name on the way up). */
s3v_status s3v_error_context(s3v_status st, const char *fmt, ...) S3V_PRINTF(2, 3);

/* The message recorded last on this thread, or the status name when none was recorded since the
 * last s3v_error_clear(). Valid until the next s3v_errorf/clear on this thread. */
const char *s3v_errmsg(s3v_status st);

void s3v_error_clear(void);

/* Forward a failure to the caller (zstd FORWARD_IF_ERROR). */
#define S3V_TRY(expr)                                  \
    do {                                               \
        s3v_status s3v_try_st_ = (expr);               \
        if (s3v_try_st_ != S3V_OK) return s3v_try_st_; \
    } while (0)

/* Store a failure in `st` and jump to the function's one `fail:` label. */
#define S3V_CHECK(expr)              \
    do {                             \
        st = (expr);                 \
        if (st != S3V_OK) goto fail; \
    } while (0)

#endif
