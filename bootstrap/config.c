/* bootstrap/config.c: environment -> bs_config. */
#include "bootstrap/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FRESH_MS  10000u
#define DEFAULT_CACHE_MB  64u
#define DEFAULT_MAX_OPEN  32u
#define PROCESS_ALLOWANCE 96u
#define MIN_CACHE_MB      16u
#define MAX_FRESH_SECONDS 86400.0

static int fail(char *msg, size_t n, const char *fmt, const char *name, const char *value)
{
    snprintf(msg, n, fmt, name, value);
    return -1;
}

/* An unsigned integer in [lo, hi]; returns 0 or -1. */
static int parse_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
    if (!s || !*s) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int copy_env(char *dst, size_t cap, const char *name, char *msg, size_t msg_size)
{
    const char *v = getenv(name);
    dst[0] = 0;
    if (!v) return 0;
    if (strlen(v) >= cap) return fail(msg, msg_size, "%s is too long%s", name, "");
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int bs_config_load(bs_config *cfg, char *msg, size_t n)
{
    memset(cfg, 0, sizeof *cfg);
    const char *v;
    if (copy_env(cfg->runtime_api, sizeof cfg->runtime_api, "AWS_LAMBDA_RUNTIME_API", msg, n)) return -1;
    if (!cfg->runtime_api[0])
        return fail(msg, n, "%s is not set%s: this program runs as a Lambda custom runtime",
                    "AWS_LAMBDA_RUNTIME_API", "");

    cfg->log_level = S3V_LOG_INFO;
    if ((v = getenv("S3VEC_LOG")) && *v && s3v_log_parse_level(v, &cfg->log_level) != 0)
        return fail(msg, n, "%s must be error, warn, info or debug (got '%s')", "S3VEC_LOG", v);

    if (copy_env(cfg->storage, sizeof cfg->storage, "S3VEC_STORAGE", msg, n)) return -1;
    if (!cfg->storage[0])
        return fail(msg, n, "%s is not set%s: give the deployment root, s3://bucket/prefix or a folder",
                    "S3VEC_STORAGE", "");
    if (copy_env(cfg->default_index, sizeof cfg->default_index, "S3VEC_DEFAULT_INDEX", msg, n)) return -1;

    unsigned long long u;
    if ((v = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")) && *v) {
        if (parse_uint(v, 1, 1u << 20, &u) != 0)
            return fail(msg, n, "%s must be a number of MB (got '%s')", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", v);
        cfg->memory_mb = (uint32_t)u;
    }
    cfg->cache_mb = DEFAULT_CACHE_MB;
    if (cfg->memory_mb) {
        cfg->cache_mb = cfg->memory_mb > PROCESS_ALLOWANCE ? (cfg->memory_mb - PROCESS_ALLOWANCE) / 2 : 0;
        if (cfg->cache_mb < MIN_CACHE_MB) cfg->cache_mb = MIN_CACHE_MB;
    }
    if ((v = getenv("S3VEC_CACHE_MB")) && *v) {
        if (parse_uint(v, 0, 1u << 20, &u) != 0)
            return fail(msg, n, "%s must be a whole number of MiB (got '%s')", "S3VEC_CACHE_MB", v);
        cfg->cache_mb = (size_t)u;
    }

    cfg->fresh_ms = DEFAULT_FRESH_MS;
    if ((v = getenv("S3VEC_FRESH_SECONDS")) && *v) {
        char *end = NULL;
        double s = strtod(v, &end);
        if (*end || !(s >= 0 && s <= MAX_FRESH_SECONDS))
            return fail(msg, n, "%s must be a number of seconds between 0 and 86400 (got '%s')",
                        "S3VEC_FRESH_SECONDS", v);
        cfg->fresh_ms = (uint32_t)llround(s * 1000.0);
    }

    cfg->tail_ms = 0;
    if ((v = getenv("S3VEC_TAIL_SECONDS")) && *v) {
        char *end = NULL;
        double s = strtod(v, &end);
        if (*end || !(s >= 0 && s <= MAX_FRESH_SECONDS))
            return fail(msg, n, "%s must be a number of seconds between 0 and 86400 (got '%s')",
                        "S3VEC_TAIL_SECONDS", v);
        cfg->tail_ms = (uint32_t)llround(s * 1000.0);
    }

    cfg->allow_writes = 0;
    if ((v = getenv("S3VEC_ALLOW_WRITES")) && *v) {
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            cfg->allow_writes = 1;
        else if (strcmp(v, "false") != 0 && strcmp(v, "0") != 0)
            return fail(msg, n, "%s must be true or false (got '%s')", "S3VEC_ALLOW_WRITES", v);
    }

    /* the unindexed tail of each open index, and compaction's copy of the log: half of the function's
     * memory beyond the process allowance each (they are rarely large at once), at least 64 MiB */
    cfg->tail_mb = cfg->memory_mb > PROCESS_ALLOWANCE ? (cfg->memory_mb - PROCESS_ALLOWANCE) / 2 : 512;
    if (cfg->tail_mb < 64) cfg->tail_mb = 64;
    if ((v = getenv("S3VEC_TAIL_MB")) && *v) {
        if (parse_uint(v, 1, 1u << 20, &u) != 0)
            return fail(msg, n, "%s must be a whole number of MiB (got '%s')", "S3VEC_TAIL_MB", v);
        cfg->tail_mb = (size_t)u;
    }
    if (copy_env(cfg->tmp_dir, sizeof cfg->tmp_dir, "S3VEC_TMP_DIR", msg, n)) return -1;
    if (!cfg->tmp_dir[0]) snprintf(cfg->tmp_dir, sizeof cfg->tmp_dir, "/tmp");

    cfg->max_open = DEFAULT_MAX_OPEN;
    if ((v = getenv("S3VEC_MAX_OPEN_INDEXES")) && *v) {
        if (parse_uint(v, 1, 4096, &u) != 0)
            return fail(msg, n, "%s must be between 1 and 4096 (got '%s')", "S3VEC_MAX_OPEN_INDEXES", v);
        cfg->max_open = (uint32_t)u;
    }

    cfg->direct_errors = HD_ERROR_MODE_PAYLOAD;
    if ((v = getenv("S3VEC_DIRECT_ERRORS")) && *v) {
        if (strcmp(v, "payload") == 0)
            cfg->direct_errors = HD_ERROR_MODE_PAYLOAD;
        else if (strcmp(v, "function") == 0)
            cfg->direct_errors = HD_ERROR_MODE_FUNCTION;
        else
            return fail(msg, n, "%s must be payload or function (got '%s')", "S3VEC_DIRECT_ERRORS", v);
    }

    if ((v = getenv("S3VEC_SIMD")) && *v) {
        if (strcmp(v, "scalar") == 0)
            cfg->force_scalar = 1;
        else if (strcmp(v, "auto") != 0)
            return fail(msg, n, "%s must be scalar or auto (got '%s')", "S3VEC_SIMD", v);
    }

    snprintf(cfg->region, sizeof cfg->region, "%s", "us-east-1");
    if ((v = getenv("AWS_REGION")) && *v) snprintf(cfg->region, sizeof cfg->region, "%s", v);
    snprintf(cfg->account, sizeof cfg->account, "%s", "000000000000");
    if ((v = getenv("S3VEC_ACCOUNT_ID")) && *v) {
        if (strlen(v) != 12 || parse_uint(v, 0, 999999999999ull, &u) != 0)
            return fail(msg, n, "%s must be 12 digits (got '%s')", "S3VEC_ACCOUNT_ID", v);
        snprintf(cfg->account, sizeof cfg->account, "%s", v);
    }
    return 0;
}
