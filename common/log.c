/* common/log.c: stderr logging. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

static volatile int log_level = S3V_LOG_WARN;

void s3v_log_set_level(s3v_log_level level) { log_level = (int)level; }
s3v_log_level s3v_log_get_level(void) { return (s3v_log_level)log_level; }

int s3v_log_parse_level(const char *s, s3v_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (s3v_log_level)i;
            return 0;
        }
    }
    return -1;
}

void s3v_log(s3v_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if ((int)level > log_level) return;
    char line[2048];
    int n = snprintf(line, sizeof line, "s3vec %s ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
