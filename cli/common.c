/* cli/common.c: helpers shared by the subcommands. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "s3/s3_storage.h"

int cli_fail(const char *cmd, s3v_status st)
{
    fprintf(stderr, "s3vec %s: error: %s\n", cmd, s3v_errmsg(st));
    return CLI_EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "s3vec %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 's3vec %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

static const char *env_lookup(const char *name) { return getenv(name); }

s3v_status cli_open_storage(const char *location, int create, s3v_storage **out)
{
    return s3_storage_open_any(location, create, env_lookup, out);
}

s3v_status cli_open_index(const char *location, size_t cache_mb, s3v_storage **st, cluster_cache **cache,
                          ivf_index **ix)
{
    *st = NULL;
    *cache = NULL;
    *ix = NULL;
    S3V_TRY(cli_open_storage(location, 0, st));
    s3v_status rc = cluster_cache_new(cache_mb << 20, cache);
    if (rc == S3V_OK) rc = ivf_index_open(*st, "", *cache, s3v_deadline_in_ms(120000), ix);
    if (rc == S3V_ERR_NOT_FOUND) rc = s3v_error_context(rc, "no index at %s", location);
    if (rc != S3V_OK) {
        cluster_cache_free(*cache);
        s3v_storage_close(*st);
        *cache = NULL;
        *st = NULL;
    }
    return rc;
}

typedef struct progress_state {
    char phase[32];
    int last_pct;
    uint64_t t0;
} progress_state;

void cli_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
    static progress_state ps = {"", -1, 0};
    int tty = isatty(STDERR_FILENO);
    if (strcmp(ps.phase, phase) != 0) {
        if (tty && ps.phase[0]) fputc('\n', stderr);
        snprintf(ps.phase, sizeof ps.phase, "%s", phase);
        ps.last_pct = -1;
        ps.t0 = s3v_now_ns();
    }
    int pct = total ? (int)(100.0 * (double)done / (double)total) : -1;
    if (pct > 100) pct = 100;
    double secs = (double)(s3v_now_ns() - ps.t0) / 1e9;
    if (tty) {
        char bar[41];
        int fill = pct < 0 ? 0 : pct * 40 / 100;
        for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
        bar[40] = 0;
        if (pct >= 0)
            fprintf(stderr, "\r%-10s [%s] %3d%%  %llu/%llu  %.1fs", phase, bar, pct, (unsigned long long)done,
                    (unsigned long long)total, secs);
        else
            fprintf(stderr, "\r%-10s %llu  %.1fs", phase, (unsigned long long)done, secs);
        fflush(stderr);
    } else {
        /* plain lines: the start of a phase, every 10%, and the end */
        int step = pct < 0 ? -1 : pct / 10;
        if (step == ps.last_pct && !(pct == 100 && ps.last_pct != 100)) return;
        ps.last_pct = pct == 100 ? 100 : step;
        if (pct >= 0)
            fprintf(stderr, "s3vec build: %s %d%% (%llu/%llu) %.1fs\n", phase, pct, (unsigned long long)done,
                    (unsigned long long)total, secs);
        else
            fprintf(stderr, "s3vec build: %s %llu %.1fs\n", phase, (unsigned long long)done, secs);
    }
}

void cli_print_json(cJSON *j, int pretty)
{
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
    free(s);
    cJSON_Delete(j);
}

cJSON *cli_meta_json(const uint8_t *meta, size_t len)
{
    if (!meta || !len) return NULL;
    return cJSON_ParseWithLength((const char *)meta, len);
}

s3v_status cli_parse_vector(const char *text, float **out, uint32_t *dim)
{
    cJSON *j = cJSON_Parse(text);
    int n = cJSON_GetArraySize(j);
    if (!cJSON_IsArray(j) || n < 1) {
        cJSON_Delete(j);
        return s3v_errorf(S3V_ERR_INVALID, "--vector must be a JSON array of numbers, e.g. '[0.1, 0.2]'");
    }
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        cJSON_Delete(j);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    int i = 0;
    for (cJSON *e = j->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 3.4e38) {
            free(v);
            cJSON_Delete(j);
            return s3v_errorf(S3V_ERR_INVALID, "--vector element %d is not a finite number", i + 1);
        }
        v[i] = (float)e->valuedouble;
    }
    cJSON_Delete(j);
    *out = v;
    *dim = (uint32_t)n;
    return S3V_OK;
}

char **cli_list_split(const char *s, size_t *n)
{
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!v) return NULL;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) v[(*n)++] = strndup(p, len);
        p += len + (e ? 1 : 0);
    }
    return v;
}

void cli_list_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}
