/* cli/cmd_read.c: `s3vec get` and `s3vec list`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"

static const char GET_HELP[] =
    "usage: s3vec get <index> KEY [KEY...] [--data] [--metadata] [--json]\n"
    "\n"
    "Prints the vectors with these keys (missing keys are left out, as GetVectors does).\n";

static const char LIST_HELP[] =
    "usage: s3vec list <index> [options]\n"
    "\n"
    "options:\n"
    "  --max N             results per page (default 500, at most 1000)\n"
    "  --next-token T      continue after a previous page\n"
    "  --segment I/N       list segment I of N (0-based), for parallel listing\n"
    "  --all               follow next tokens to the end\n"
    "  --data, --metadata  include vector data / metadata\n"
    "  --json              JSON output (the S3 Vectors ListVectors response shape)\n";

static cJSON *vector_json(const ivf_hit *h, uint32_t dim, int want_meta, int want_data)
{
    cJSON *v = cJSON_CreateObject();
    char *key = strndup((const char *)h->key, h->key_len);
    cJSON_AddStringToObject(v, "key", key ? key : "");
    free(key);
    if (want_data && h->data) {
        cJSON *data = cJSON_AddObjectToObject(v, "data");
        cJSON *f = cJSON_AddArrayToObject(data, "float32");
        for (uint32_t j = 0; j < dim; j++) cJSON_AddItemToArray(f, cJSON_CreateNumber(h->data[j]));
    }
    if (want_meta) {
        cJSON *m = cli_meta_json(h->meta, h->meta_len);
        if (m) cJSON_AddItemToObject(v, "metadata", m);
    }
    return v;
}

static void print_line(const ivf_hit *h, uint32_t dim, int want_meta, int want_data)
{
    printf("%.*s", (int)h->key_len, (const char *)h->key);
    if (want_meta) printf("\t%.*s", (int)h->meta_len, h->meta ? (const char *)h->meta : "");
    if (want_data && h->data) {
        printf("\t[");
        for (uint32_t j = 0; j < dim; j++) printf("%s%.9g", j ? "," : "", h->data[j]);
        printf("]");
    }
    printf("\n");
}

int cmd_get(int argc, char **argv)
{
    static const struct option opts[] = {{"data", no_argument, 0, 'D'},
                                         {"metadata", no_argument, 0, 'M'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int want_data = 0, want_meta = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': want_data = 1; break;
        case 'M': want_meta = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(GET_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("get", "unknown option");
        }
    }
    if (argc - optind < 2) return cli_usage_error("get", "expected an index location and at least one key");
    const char *location = argv[optind];
    size_t n = (size_t)(argc - optind - 1);
    const uint8_t **keys = calloc(n, sizeof *keys);
    size_t *lens = calloc(n, sizeof *lens);
    if (!keys || !lens) {
        free(keys);
        free(lens);
        return cli_fail("get", s3v_errorf(S3V_ERR_NOMEM, "out of memory"));
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = (const uint8_t *)argv[optind + 1 + (int)i];
        lens[i] = strlen(argv[optind + 1 + (int)i]);
    }
    s3v_storage *st;
    cluster_cache *cache;
    ivf_index *ix;
    int rc = CLI_EXIT_OK;
    s3v_status s = cli_open_index(location, 64, &st, &cache, &ix);
    if (s == S3V_OK) {
        ivf_result r;
        s = ivf_index_get(ix, keys, lens, n, want_data, want_meta, s3v_deadline_in_ms(120000), &r);
        if (s == S3V_OK) {
            uint32_t dim = ivf_index_manifest(ix)->dimension;
            if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON *arr = cJSON_AddArrayToObject(o, "vectors");
                for (size_t i = 0; i < r.len; i++)
                    cJSON_AddItemToArray(arr, vector_json(&r.hits[i], dim, want_meta, want_data));
                cli_print_json(o, 1);
            } else {
                for (size_t i = 0; i < r.len; i++) print_line(&r.hits[i], dim, want_meta, want_data);
            }
            if (r.len < n) fprintf(stderr, "s3vec get: %zu of %zu keys not found\n", n - r.len, n);
            ivf_result_free(&r);
        }
        ivf_index_close(ix);
        cluster_cache_free(cache);
        s3v_storage_close(st);
    }
    if (s != S3V_OK) rc = cli_fail("get", s);
    free(keys);
    free(lens);
    return rc;
}

int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {{"max", required_argument, 0, 'm'},
                                         {"next-token", required_argument, 0, 't'},
                                         {"segment", required_argument, 0, 's'},
                                         {"all", no_argument, 0, 'a'},
                                         {"data", no_argument, 0, 'D'},
                                         {"metadata", no_argument, 0, 'M'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    ivf_list_req req = {.deadline_ns = S3V_NO_DEADLINE};
    int all = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'm':
            req.max_results = (uint32_t)strtoul(optarg, &end, 10);
            if (*end || req.max_results < 1 || req.max_results > 1000)
                return cli_usage_error("list", "--max must be between 1 and 1000");
            break;
        case 't': req.next_token = optarg; break;
        case 's': {
            unsigned a, b;
            char extra;
            if (sscanf(optarg, "%u/%u%c", &a, &b, &extra) != 2 || b < 1 || b > 16 || a >= b)
                return cli_usage_error("list", "--segment must be I/N with 0 <= I < N <= 16");
            req.segment_index = a;
            req.segment_count = b;
            break;
        }
        case 'a': all = 1; break;
        case 'D': req.want_data = 1; break;
        case 'M': req.want_metadata = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(LIST_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("list", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("list", "expected exactly one index location");
    s3v_storage *st;
    cluster_cache *cache;
    ivf_index *ix;
    s3v_status s = cli_open_index(argv[optind], 64, &st, &cache, &ix);
    if (s != S3V_OK) return cli_fail("list", s);
    uint32_t dim = ivf_index_manifest(ix)->dimension;
    char token[IVF_TOKEN_MAX] = "";
    char prev[IVF_TOKEN_MAX] = "";
    cJSON *out = json ? cJSON_CreateObject() : NULL;
    cJSON *arr = out ? cJSON_AddArrayToObject(out, "vectors") : NULL;
    for (;;) {
        ivf_result r;
        s = ivf_index_list(ix, &req, &r, token);
        if (s != S3V_OK) break;
        for (size_t i = 0; i < r.len; i++) {
            if (arr)
                cJSON_AddItemToArray(arr, vector_json(&r.hits[i], dim, req.want_metadata, req.want_data));
            else
                print_line(&r.hits[i], dim, req.want_metadata, req.want_data);
        }
        ivf_result_free(&r);
        if (!all || !token[0]) break;
        snprintf(prev, sizeof prev, "%s", token);
        req.next_token = prev;
    }
    int rc = CLI_EXIT_OK;
    if (s != S3V_OK) {
        cJSON_Delete(out);
        rc = cli_fail("list", s);
    } else if (out) {
        if (token[0]) cJSON_AddStringToObject(out, "nextToken", token);
        cli_print_json(out, 1);
    } else if (token[0]) {
        fprintf(stderr, "next token: %s\n", token);
    }
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);
    return rc;
}
