/* common/log.h: one-line log records on stderr (CloudWatch in Lambda).
 *
 * Format: "s3vec <level> <message>\n", written with a single write(2) so lines from several threads
 * do not interleave. Never log request bodies or credentials. The level is set once at start-up by
 * bootstrap/ or cli/ (the only places that read the environment). Thread-safe. */
#ifndef S3V_LOG_H
#define S3V_LOG_H

#include "common/status.h"

typedef enum s3v_log_level {
    S3V_LOG_ERROR = 0,
    S3V_LOG_WARN = 1,
    S3V_LOG_INFO = 2,
    S3V_LOG_DEBUG = 3,
} s3v_log_level;

void s3v_log_set_level(s3v_log_level level);
s3v_log_level s3v_log_get_level(void);
/* Parses "error|warn|info|debug" (case-insensitive); returns 0 and sets *out, or -1. */
int s3v_log_parse_level(const char *s, s3v_log_level *out);
void s3v_log(s3v_log_level level, const char *fmt, ...) S3V_PRINTF(2, 3);

#define S3V_LOG_ENABLED(lvl) ((lvl) <= s3v_log_get_level())

#endif
