/* tests/integration/drivers/s3_driver.c: drives the s3v_storage API for the S3 integration tests.
 *
 *   s3_driver URL get KEY OUT_FILE
 *   s3_driver URL ranges OUT_FILE KEY:OFFSET:SIZE...   (range bytes concatenated in argument order)
 *   s3_driver URL put KEY IN_FILE [--if-none-match | --if-match ETAG]
 *   s3_driver URL put-file KEY IN_FILE [--if-none-match | --if-match ETAG]
 *   s3_driver URL head KEY
 *   s3_driver URL list PREFIX [--delimiter D] [--start-after K] [--max-keys N] [--stop-after N]
 *   s3_driver URL del KEY
 * Common options: --deadline-ms N (default none), --repeat N (run the command N times on one handle).
 *
 * Configuration comes from the environment (AWS_*, S3VEC_S3_*), passed as getenv. Prints one JSON
 * line: {"ok":..,"status":"..","msg":"..","etag":"..","size":N,"elapsed_ms":..,"iter_ms":[..],"stats":{..},
 * "entries":[..],"ranges":[..]} and exits 0 when the command succeeded, 1 when it returned an error,
 * 2 on a usage error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/storage.h"
#include "s3/s3_storage.h"

/* getenv returns char *; s3v_getenv_fn returns const char *. */
static const char *env_lookup(const char *name) { return getenv(name); }

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

typedef struct list_out {
    FILE *f;
    size_t n, stop_after;
} list_out;

static int on_entry(void *arg, const char *key, uint64_t size, int is_prefix)
{
    list_out *lo = arg;
    fprintf(lo->f, "%s{\"key\":", lo->n ? "," : "");
    json_str(lo->f, key);
    fprintf(lo->f, ",\"size\":%llu,\"prefix\":%s}", (unsigned long long)size, is_prefix ? "true" : "false");
    lo->n++;
    return lo->stop_after && lo->n >= lo->stop_after;
}

typedef struct range_out {
    uint8_t **data;
    size_t *size;
    s3v_status *st;
    size_t *order;
    size_t done;
} range_out;

static s3v_status on_range(void *arg, size_t i, s3v_status st, s3v_buf *data)
{
    range_out *ro = arg;
    ro->st[i] = st;
    ro->order[ro->done++] = i;
    if (st == S3V_OK) ro->data[i] = s3v_buf_take(data, &ro->size[i]);
    return S3V_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: s3_driver URL get|ranges|put|put-file|head|list|del ... (see the source)\n");
    return 2;
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *url = argv[1], *cmd = argv[2];
    uint64_t deadline_ms = 0;
    int repeat = 1;
    const char *if_match = NULL, *delimiter = NULL, *start_after = NULL;
    int if_none_match = 0;
    size_t max_keys = 0, stop_after = 0;
    char *pos[4096];
    int npos = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--deadline-ms") && i + 1 < argc)
            deadline_ms = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--if-match") && i + 1 < argc)
            if_match = argv[++i];
        else if (!strcmp(argv[i], "--if-none-match"))
            if_none_match = 1;
        else if (!strcmp(argv[i], "--delimiter") && i + 1 < argc)
            delimiter = argv[++i];
        else if (!strcmp(argv[i], "--start-after") && i + 1 < argc)
            start_after = argv[++i];
        else if (!strcmp(argv[i], "--max-keys") && i + 1 < argc)
            max_keys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--stop-after") && i + 1 < argc)
            stop_after = strtoull(argv[++i], NULL, 10);
        else if (npos < 4096)
            pos[npos++] = argv[i];
        else
            return usage();
    }
    s3v_storage *st = NULL;
    s3v_status rc = s3_storage_open_any(url, 1, env_lookup, &st);
    if (rc != S3V_OK) {
        printf("{\"ok\":false,\"status\":\"%s\",\"msg\":", s3v_status_name(rc));
        json_str(stdout, s3v_errmsg(rc));
        printf("}\n");
        return 1;
    }
    s3v_put_cond cond = {if_none_match ? S3V_PUT_IF_NONE_MATCH
                         : if_match    ? S3V_PUT_IF_MATCH
                                       : S3V_PUT_ALWAYS,
                         if_match};
    s3v_obj_info info = {0, ""};
    char *entries = NULL, *rangetxt = NULL;
    size_t entries_len = 0, rangetxt_len = 0;
    uint64_t t0 = s3v_now_ns();
    char iters[8192];
    size_t iters_len = 0;
    iters[0] = 0;
    for (int r = 0; r < repeat && rc == S3V_OK; r++) {
        uint64_t ti = s3v_now_ns();
        uint64_t deadline = deadline_ms ? s3v_deadline_in_ms(deadline_ms) : S3V_NO_DEADLINE;
        if (!strcmp(cmd, "get") && npos == 2) {
            s3v_buf b;
            s3v_buf_init(&b, (size_t)1 << 31);
            rc = s3v_storage_get(st, pos[0], deadline, &b, &info);
            if (rc == S3V_OK) {
                FILE *f = fopen(pos[1], "wb");
                if (!f || (b.len && fwrite(b.ptr, 1, b.len, f) != b.len)) rc = S3V_ERR_IO;
                if (f) fclose(f);
            }
            s3v_buf_free(&b);
        } else if (!strcmp(cmd, "ranges") && npos >= 2) {
            size_t n = (size_t)npos - 1;
            s3v_range *ranges = calloc(n, sizeof *ranges);
            char **keys = calloc(n, sizeof *keys);
            range_out ro = {calloc(n, sizeof(uint8_t *)), calloc(n, sizeof(size_t)),
                            calloc(n, sizeof(s3v_status)), calloc(n, sizeof(size_t)), 0};
            for (size_t i = 0; i < n; i++) {
                char *spec = strdup(pos[i + 1]);
                char *c2 = spec ? strrchr(spec, ':') : NULL;
                if (c2) *c2 = 0;
                char *c1 = c2 ? strrchr(spec, ':') : NULL;
                if (!c1) {
                    fprintf(stderr, "bad range spec %s (want KEY:OFFSET:SIZE)\n", pos[i + 1]);
                    return 2;
                }
                *c1 = 0;
                keys[i] = spec;
                ranges[i] = (s3v_range){spec, strtoull(c1 + 1, NULL, 10), strtoull(c2 + 1, NULL, 10)};
            }
            rc = s3v_storage_get_ranges(st, ranges, n, deadline, on_range, &ro);
            FILE *f = fopen(pos[0], "wb");
            FILE *mem = open_memstream(&rangetxt, &rangetxt_len);
            for (size_t i = 0; i < n; i++) {
                if (ro.data[i] && f) fwrite(ro.data[i], 1, ro.size[i], f);
                fprintf(mem, "%s{\"status\":\"%s\",\"size\":%zu}", i ? "," : "",
                        i < ro.done || ro.data[i] ? s3v_status_name(ro.st[i]) : "not_called", ro.size[i]);
                if (ro.st[i] != S3V_OK && rc == S3V_OK) rc = ro.st[i];
                free(ro.data[i]);
            }
            fprintf(mem, "],\"order\":[");
            for (size_t i = 0; i < ro.done; i++) fprintf(mem, "%s%zu", i ? "," : "", ro.order[i]);
            fclose(mem);
            if (f) fclose(f);
            free(ro.data);
            free(ro.size);
            free(ro.st);
            free(ro.order);
            free(ranges);
            for (size_t i = 0; i < n; i++) free(keys[i]);
            free(keys);
            if (r + 1 < repeat) {
                free(rangetxt);
                rangetxt = NULL;
            }
        } else if (!strcmp(cmd, "put") && npos == 2) {
            size_t size = 0;
            uint8_t *data = read_all(pos[1], &size);
            rc = data ? s3v_storage_put(st, pos[0], data, size, &cond, deadline, &info) : S3V_ERR_IO;
            free(data);
        } else if (!strcmp(cmd, "put-file") && npos == 2) {
            rc = s3v_storage_put_file(st, pos[0], pos[1], &cond, deadline, &info);
        } else if (!strcmp(cmd, "head") && npos == 1) {
            rc = s3v_storage_head(st, pos[0], deadline, &info);
        } else if (!strcmp(cmd, "del") && npos == 1) {
            rc = s3v_storage_del(st, pos[0], deadline);
        } else if (!strcmp(cmd, "list") && npos == 1) {
            free(entries);
            entries = NULL;
            FILE *mem = open_memstream(&entries, &entries_len);
            list_out lo = {mem, 0, stop_after};
            s3v_list_req req = {pos[0], delimiter, start_after, max_keys};
            rc = s3v_storage_list(st, &req, deadline, on_entry, &lo);
            fclose(mem);
        } else {
            s3v_storage_close(st);
            return usage();
        }
        int w = snprintf(iters + iters_len, sizeof iters - iters_len, "%s%.3f", r ? "," : "",
                         (double)(s3v_now_ns() - ti) / 1e6);
        if (w > 0 && (size_t)w < sizeof iters - iters_len) iters_len += (size_t)w;
    }
    double elapsed_ms = (double)(s3v_now_ns() - t0) / 1e6;
    printf("{\"ok\":%s,\"status\":\"%s\",\"msg\":", rc == S3V_OK ? "true" : "false", s3v_status_name(rc));
    json_str(stdout, rc == S3V_OK ? "" : s3v_errmsg(rc));
    printf(",\"etag\":");
    json_str(stdout, info.etag);
    printf(",\"size\":%llu,\"elapsed_ms\":%.3f,\"iter_ms\":[%s]", (unsigned long long)info.size, elapsed_ms,
           iters);
    s3_stats stats;
    if (s3_storage_is_s3(st) && s3_storage_stats(st, &stats) == S3V_OK)
        printf(",\"stats\":{\"requests\":%llu,\"bytes_down\":%llu,\"bytes_up\":%llu,\"retries\":%llu,"
               "\"hedges\":%llu,"
               "\"hedge_wins\":%llu,\"throttled\":%llu,\"failures\":%llu,\"p50_us\":%llu,\"p95_us\":%llu}",
               (unsigned long long)stats.requests, (unsigned long long)stats.bytes_down,
               (unsigned long long)stats.bytes_up, (unsigned long long)stats.retries,
               (unsigned long long)stats.hedges, (unsigned long long)stats.hedge_wins,
               (unsigned long long)stats.throttled, (unsigned long long)stats.failures,
               (unsigned long long)stats.first_byte_p50_us, (unsigned long long)stats.first_byte_p95_us);
    if (entries) printf(",\"entries\":[%s]", entries);
    if (rangetxt) printf(",\"ranges\":[%s]", rangetxt);
    printf("}\n");
    free(entries);
    free(rangetxt);
    s3v_storage_close(st);
    return rc == S3V_OK ? 0 : 1;
}
