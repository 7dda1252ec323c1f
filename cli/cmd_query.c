/* cli/cmd_query.c: `s3vec query`: one vector or a query file; recall and latency against ground truth. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/le.h"
#include "engine/filter.h"
#include "engine/input.h"

static const char HELP[] =
    "usage: s3vec query <index> (--vector '[...]' | --queries FILE.fvecs) [options]\n"
    "\n"
    "options:\n"
    "  --vector JSON         one query vector, a JSON array\n"
    "  --queries FILE        a .fvecs file of query vectors\n"
    "  -k, --top-k N         results per query (default 10)\n"
    "  --nprobe N            clusters to probe (default: the index's calibrated default)\n"
    "  --recall-target R     probe as many clusters as the build calibration says reach recall@10 R\n"
    "  --exact               scan every cluster (exact search)\n"
    "  --filter JSON         S3 Vectors metadata filter, e.g. '{\"genre\": {\"$eq\": \"drama\"}}'\n"
    "  --metadata            print metadata\n"
    "  --data                print vector data\n"
    "  --truth FILE.ivecs    ground truth (ids = base row numbers): print recall@K and latency\n"
    "  --truth-keys FILE     the base keys file (line i = key of row i) when keys are not row numbers\n"
    "  --save-truth FILE     write the result ids as .ivecs (use with --exact to make ground truth)\n"
    "  --limit N             use the first N queries of the file\n"
    "  --cache-mb N          cluster cache size (default 1024)\n"
    "  --repeat N            run the query set N times (the first pass warms the cache; latency from the "
    "last)\n"
    "  --stats               print per-query statistics (clusters, bytes, cache hits, times)\n"
    "  --json                JSON output (the S3 Vectors QueryVectors response shape)\n";

/* key -> row map for --truth-keys */
typedef struct keymap {
    char **keys;
    uint32_t *slots; /* open addressing; value = row + 1 */
    size_t cap;
    size_t n;
} keymap;

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static s3v_status keymap_load(const char *path, keymap *m)
{
    FILE *f = fopen(path, "r");
    if (!f) return s3v_errorf(S3V_ERR_NOT_FOUND, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t kc = 1024;
    m->keys = malloc(kc * sizeof *m->keys);
    while (m->keys && (len = getline(&line, &cap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (m->n == kc) {
            kc *= 2;
            char **k = realloc(m->keys, kc * sizeof *k);
            if (!k) break;
            m->keys = k;
        }
        m->keys[m->n++] = strdup(line);
    }
    free(line);
    fclose(f);
    m->cap = 1;
    while (m->cap < m->n * 2 + 2) m->cap *= 2;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->keys || !m->slots) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        size_t b = hash_str(m->keys[i], strlen(m->keys[i])) & (m->cap - 1);
        while (m->slots[b]) b = (b + 1) & (m->cap - 1);
        m->slots[b] = (uint32_t)i + 1;
    }
    return S3V_OK;
}

static long keymap_find(const keymap *m, const uint8_t *k, size_t n)
{
    if (!m->slots) {
        /* keys are row numbers */
        long v = 0;
        if (n == 0 || n > 10) return -1;
        for (size_t i = 0; i < n; i++) {
            if (k[i] < '0' || k[i] > '9') return -1;
            v = v * 10 + (k[i] - '0');
        }
        return v;
    }
    size_t b = hash_str((const char *)k, n) & (m->cap - 1);
    while (m->slots[b]) {
        const char *s = m->keys[m->slots[b] - 1];
        if (strlen(s) == n && memcmp(s, k, n) == 0) return (long)m->slots[b] - 1;
        b = (b + 1) & (m->cap - 1);
    }
    return -1;
}

static void keymap_free(keymap *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->keys[i]);
    free(m->keys);
    free(m->slots);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0) i--;
    if (i >= n) i = n - 1;
    return sorted[i];
}

static cJSON *hits_json(const ivf_index *ix, const ivf_result *r, int want_meta, int want_data,
                        int with_stats)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "vectors");
    uint32_t d = ivf_index_manifest(ix)->dimension;
    for (size_t i = 0; i < r->len; i++) {
        const ivf_hit *h = &r->hits[i];
        cJSON *v = cJSON_CreateObject();
        char *key = strndup((const char *)h->key, h->key_len);
        cJSON_AddStringToObject(v, "key", key ? key : "");
        free(key);
        cJSON_AddNumberToObject(v, "distance", h->distance);
        if (want_data && h->data) {
            cJSON *data = cJSON_AddObjectToObject(v, "data");
            cJSON *f = cJSON_AddArrayToObject(data, "float32");
            for (uint32_t j = 0; j < d; j++) cJSON_AddItemToArray(f, cJSON_CreateNumber(h->data[j]));
        }
        if (want_meta) {
            cJSON *m = cli_meta_json(h->meta, h->meta_len);
            if (m) cJSON_AddItemToObject(v, "metadata", m);
        }
        cJSON_AddItemToArray(arr, v);
    }
    cJSON_AddStringToObject(o, "distanceMetric", ivf_metric_name(ivf_index_manifest(ix)->metric));
    if (with_stats) {
        const ivf_stats *s = &r->stats;
        cJSON *st = cJSON_AddObjectToObject(o, "stats");
        cJSON_AddNumberToObject(st, "nprobe", s->nprobe);
        cJSON_AddNumberToObject(st, "clustersScanned", s->clusters_scanned);
        cJSON_AddNumberToObject(st, "rounds", s->rounds);
        cJSON_AddNumberToObject(st, "vectorsScanned", (double)s->vectors_scanned);
        cJSON_AddNumberToObject(st, "cacheHits", s->cache_hits);
        cJSON_AddNumberToObject(st, "cacheMisses", s->cache_misses);
        cJSON_AddNumberToObject(st, "storageRequests", s->requests);
        cJSON_AddNumberToObject(st, "bytesFetched", (double)s->bytes_fetched);
        cJSON_AddNumberToObject(st, "filterEvaluations", (double)s->filter_evaluations);
        cJSON_AddNumberToObject(st, "msProbe", s->ms_probe);
        cJSON_AddNumberToObject(st, "msFetch", s->ms_fetch);
        cJSON_AddNumberToObject(st, "msScan", s->ms_scan);
        cJSON_AddNumberToObject(st, "msTotal", s->ms_total);
    }
    return o;
}

static void print_hits(const ivf_index *ix, const ivf_result *r, int want_meta, int want_data)
{
    uint32_t d = ivf_index_manifest(ix)->dimension;
    for (size_t i = 0; i < r->len; i++) {
        const ivf_hit *h = &r->hits[i];
        printf("%.*s\t%.6g", (int)h->key_len, (const char *)h->key, h->distance);
        if (want_meta) printf("\t%.*s", (int)h->meta_len, h->meta ? (const char *)h->meta : "");
        if (want_data && h->data) {
            printf("\t[");
            for (uint32_t j = 0; j < d; j++) printf("%s%.9g", j ? "," : "", h->data[j]);
            printf("]");
        }
        printf("\n");
    }
}

int cmd_query(int argc, char **argv)
{
    static const struct option opts[] = {{"vector", required_argument, 0, 'v'},
                                         {"queries", required_argument, 0, 'Q'},
                                         {"top-k", required_argument, 0, 'k'},
                                         {"nprobe", required_argument, 0, 'p'},
                                         {"recall-target", required_argument, 0, 'R'},
                                         {"exact", no_argument, 0, 'x'},
                                         {"filter", required_argument, 0, 'f'},
                                         {"metadata", no_argument, 0, 'M'},
                                         {"data", no_argument, 0, 'D'},
                                         {"truth", required_argument, 0, 'g'},
                                         {"truth-keys", required_argument, 0, 'G'},
                                         {"save-truth", required_argument, 0, 'S'},
                                         {"limit", required_argument, 0, 'l'},
                                         {"cache-mb", required_argument, 0, 'c'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"stats", no_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *vector_text = NULL, *queries_path = NULL, *filter_text = NULL, *truth_path = NULL,
               *truth_keys = NULL, *save_truth = NULL;
    ivf_query q = {.topk = 10, .deadline_ns = S3V_NO_DEADLINE};
    long limit = -1, cache_mb = 1024, repeat = 1;
    int json = 0, stats = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'v': vector_text = optarg; break;
        case 'Q': queries_path = optarg; break;
        case 'k':
            q.topk = (uint32_t)strtoul(optarg, &end, 10);
            if (*end || q.topk < 1 || q.topk > IVF_TOPK_MAX)
                return cli_usage_error("query", "-k must be an integer between 1 and %d", IVF_TOPK_MAX);
            break;
        case 'p':
            q.nprobe = (uint32_t)strtoul(optarg, &end, 10);
            if (*end || q.nprobe < 1) return cli_usage_error("query", "--nprobe must be a positive integer");
            break;
        case 'R':
            q.recall_target = strtof(optarg, &end);
            if (*end || !(q.recall_target > 0 && q.recall_target <= 1))
                return cli_usage_error("query", "--recall-target must be in (0, 1]");
            break;
        case 'x': q.exact = 1; break;
        case 'f': filter_text = optarg; break;
        case 'M': q.want_metadata = 1; break;
        case 'D': q.want_data = 1; break;
        case 'g': truth_path = optarg; break;
        case 'G': truth_keys = optarg; break;
        case 'S': save_truth = optarg; break;
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1) return cli_usage_error("query", "--limit must be a positive integer");
            break;
        case 'c':
            cache_mb = strtol(optarg, &end, 10);
            if (*end || cache_mb < 0) return cli_usage_error("query", "--cache-mb must be >= 0");
            break;
        case 'r':
            repeat = strtol(optarg, &end, 10);
            if (*end || repeat < 1 || repeat > 100)
                return cli_usage_error("query", "--repeat must be 1..100");
            break;
        case 's': stats = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("query", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("query", "expected exactly one index location");
    if (!vector_text == !queries_path)
        return cli_usage_error("query", "give exactly one of --vector and --queries");
    const char *location = argv[optind];

    int rc = CLI_EXIT_OK;
    s3v_status s = S3V_OK;
    float *queries = NULL;
    size_t nq = 0, qd = 0;
    int32_t *truth = NULL;
    size_t nt = 0, tk = 0;
    s3v_filter *flt = NULL;
    keymap km = {0};
    s3v_storage *st = NULL;
    cluster_cache *cache = NULL;
    ivf_index *ix = NULL;
    double *lat = NULL;
    int32_t *saved = NULL;
    cJSON *all = NULL;

    if (vector_text) {
        uint32_t d32;
        s = cli_parse_vector(vector_text, &queries, &d32);
        nq = 1;
        qd = d32;
    } else {
        s = vec_read_fvecs(queries_path, &queries, &nq, &qd);
    }
    if (s != S3V_OK) goto fail;
    if (limit > 0 && (size_t)limit < nq) nq = (size_t)limit;
    if (filter_text) {
        s = filter_compile_text(filter_text, strlen(filter_text), &flt);
        if (s != S3V_OK) goto fail;
        q.filter = flt;
    }
    if (truth_path) {
        s = vec_read_ivecs(truth_path, &truth, &nt, &tk);
        if (s != S3V_OK) goto fail;
        if (nt < nq) {
            s = s3v_errorf(S3V_ERR_INVALID, "%s has %zu rows but there are %zu queries", truth_path, nt, nq);
            goto fail;
        }
        if (tk < q.topk) {
            s = s3v_errorf(S3V_ERR_INVALID, "%s has %zu neighbours per query, fewer than -k %u", truth_path,
                           tk, q.topk);
            goto fail;
        }
    }
    if (truth_keys && (s = keymap_load(truth_keys, &km)) != S3V_OK) goto fail;
    s = cli_open_index(location, (size_t)cache_mb, &st, &cache, &ix);
    if (s != S3V_OK) goto fail;
    lat = calloc(nq, sizeof *lat);
    if (save_truth) saved = calloc(nq * q.topk, sizeof *saved);
    if (!lat || (save_truth && !saved)) {
        s = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (json && !truth_path) all = cJSON_CreateArray();
    double recall_sum = 0;
    uint64_t hits_total = 0, scanned = 0, bytes = 0, requests = 0;
    for (long pass = 0; pass < repeat; pass++) {
        int last = pass == repeat - 1;
        for (size_t i = 0; i < nq; i++) {
            q.vector = queries + i * qd;
            q.dim = (uint32_t)qd;
            ivf_result r;
            uint64_t t0 = s3v_now_ns();
            s = ivf_index_search(ix, &q, &r);
            double ms = (double)(s3v_now_ns() - t0) / 1e6;
            if (s != S3V_OK) goto fail;
            if (!last) {
                ivf_result_free(&r);
                continue;
            }
            lat[i] = ms;
            scanned += r.stats.vectors_scanned;
            bytes += r.stats.bytes_fetched;
            requests += r.stats.requests;
            if (truth) {
                size_t hit = 0;
                for (size_t a = 0; a < r.len && a < q.topk; a++) {
                    long row = keymap_find(&km, r.hits[a].key, r.hits[a].key_len);
                    for (size_t b = 0; b < q.topk; b++)
                        if (row >= 0 && truth[i * tk + b] == row) {
                            hit++;
                            break;
                        }
                }
                recall_sum += (double)hit / q.topk;
                hits_total += hit;
            }
            if (saved)
                for (size_t a = 0; a < q.topk; a++)
                    saved[i * q.topk + a] =
                        a < r.len ? (int32_t)keymap_find(&km, r.hits[a].key, r.hits[a].key_len) : -1;
            if (!truth_path) {
                if (all)
                    cJSON_AddItemToArray(all, hits_json(ix, &r, q.want_metadata, q.want_data, stats));
                else {
                    if (nq > 1) printf("# query %zu\n", i + 1);
                    print_hits(ix, &r, q.want_metadata, q.want_data);
                    if (stats)
                        printf("# nprobe %u, clusters %u (%u rounds), vectors %llu, cache %u hit / %u miss, "
                               "requests %u, "
                               "bytes %llu, ms: probe %.3f fetch %.3f scan %.3f total %.3f\n",
                               r.stats.nprobe, r.stats.clusters_scanned, r.stats.rounds,
                               (unsigned long long)r.stats.vectors_scanned, r.stats.cache_hits,
                               r.stats.cache_misses, r.stats.requests,
                               (unsigned long long)r.stats.bytes_fetched, r.stats.ms_probe, r.stats.ms_fetch,
                               r.stats.ms_scan, r.stats.ms_total);
                }
            }
            ivf_result_free(&r);
        }
    }
    if (all) {
        if (nq == 1) {
            cJSON *one = cJSON_DetachItemFromArray(all, 0);
            cJSON_Delete(all);
            all = NULL;
            cli_print_json(one, 1);
        } else {
            cli_print_json(all, 1);
            all = NULL;
        }
    }
    if (truth || (queries_path && !json)) {
        double total = 0;
        for (size_t i = 0; i < nq; i++) total += lat[i];
        qsort(lat, nq, sizeof *lat, cmp_double);
        const ivf_manifest *m = ivf_index_manifest(ix);
        uint32_t np = q.exact               ? m->nlist
                      : q.nprobe            ? q.nprobe
                      : q.recall_target > 0 ? ivf_index_nprobe_for_recall(ix, q.recall_target)
                                            : m->default_nprobe;
        FILE *out = truth ? stdout : stderr;
        if (truth) fprintf(out, "recall@%u: %.4f\n", q.topk, recall_sum / (double)nq);
        fprintf(out,
                "queries: %zu, nprobe %u of %u, mean vectors scanned %.0f, mean bytes fetched %.0f, mean "
                "requests %.2f\n",
                nq, np > m->nlist ? m->nlist : np, m->nlist, (double)scanned / nq, (double)bytes / nq,
                (double)requests / nq);
        fprintf(
            out,
            "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f  (%.0f queries/s, one thread%s)\n",
            pct(lat, nq, 50), pct(lat, nq, 90), pct(lat, nq, 99), lat[nq - 1], total / nq,
            total > 0 ? 1000.0 * nq / total : 0.0, repeat > 1 ? ", warm cache" : "");
    }
    if (saved) {
        FILE *f = fopen(save_truth, "wb");
        if (!f) {
            s = s3v_errorf(S3V_ERR_IO, "cannot write %s", save_truth);
            goto fail;
        }
        for (size_t i = 0; i < nq; i++) {
            uint8_t b[4];
            le_put_u32(b, q.topk);
            fwrite(b, 1, 4, f);
            for (size_t a = 0; a < q.topk; a++) {
                le_put_u32(b, (uint32_t)saved[i * q.topk + a]);
                fwrite(b, 1, 4, f);
            }
        }
        if (fclose(f) != 0) {
            s = s3v_errorf(S3V_ERR_IO, "cannot write %s", save_truth);
            goto fail;
        }
    }
    goto done;
fail:
    rc = cli_fail("query", s);
done:
    cJSON_Delete(all);
    free(saved);
    free(lat);
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);
    keymap_free(&km);
    filter_free(flt);
    free(truth);
    free(queries);
    return rc;
}
