/* cli/cmd_inspect.c: `s3vec inspect`: manifest, counts, object sizes, cluster-size histogram, and
 * --verify, which reads every cluster and key-map page and checks its checksum. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "engine/tail.h"

static const char HELP[] =
    "usage: s3vec inspect <index> [--verify] [--json]\n"
    "\n"
    "Prints the manifest, counts, object sizes, the calibration table, a histogram of cluster sizes and the\n"
    "write-ahead log (its start, the next slot, and what the unfolded tail holds).\n"
    "  --verify   read every cluster and key-map page and check every checksum (reads the whole index)\n"
    "  --json     JSON output\n";

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"verify", no_argument, 0, 'v'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int verify = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': verify = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("inspect", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("inspect", "expected exactly one index location");
    s3v_storage *st;
    cluster_cache *cache;
    ivf_index *ix;
    s3v_status s = cli_open_index(argv[optind], 0, &st, &cache, &ix);
    if (s != S3V_OK) return cli_fail("inspect", s);
    const ivf_manifest *m = ivf_index_manifest(ix);
    const ivf_centroids *cs = ivf_index_centroids(ix);
    uint64_t data_bytes = 0;
    for (size_t i = 0; i < m->data_len; i++) data_bytes += m->data[i].size;
    uint32_t minc = UINT32_MAX, maxc = 0;
    uint64_t hist[33] = {0};
    for (uint32_t i = 0; i < cs->nlist; i++) {
        uint32_t n = cs->clusters[i].count;
        if (n < minc) minc = n;
        if (n > maxc) maxc = n;
        int b = 0;
        while (b < 32 && (1ull << (b + 1)) <= n) b++;
        hist[n ? b + 1 : 0]++;
    }
    ivf_tail_counts tc = {0};
    const ivf_tail *tail = ivf_index_tail(ix);
    if (tail) ivf_tail_get_counts(tail, &tc);
    uint64_t next = tail ? ivf_tail_next(tail) : m->wal_start;
    char inc[17];
    ivf_incarnation_format(m->incarnation, inc);
    uint64_t now = s3v_wall_ms();
    uint64_t verified = 0;
    int rc = CLI_EXIT_OK;
    if (verify) {
        ivf_verify_report vr;
        s = ivf_index_verify(ix, S3V_NO_DEADLINE, &vr);
        verified = vr.vectors;
        if (s != S3V_OK) rc = cli_fail("inspect", s);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "generation", m->generation);
        cJSON_AddStringToObject(o, "creationTime", m->creation_time);
        cJSON_AddNumberToObject(o, "dimension", m->dimension);
        cJSON_AddStringToObject(o, "metric", ivf_metric_name(m->metric));
        cJSON_AddStringToObject(o, "encoding", ivf_encoding_name(m->encoding));
        cJSON_AddNumberToObject(o, "count", (double)m->count);
        cJSON_AddNumberToObject(o, "nlist", m->nlist);
        cJSON_AddNumberToObject(o, "defaultNprobe", m->default_nprobe);
        cJSON_AddNumberToObject(o, "centroidsBytes", (double)m->centroids_size);
        cJSON_AddNumberToObject(o, "dataBytes", (double)data_bytes);
        cJSON_AddNumberToObject(o, "keymapBytes", (double)m->keymap_size);
        cJSON_AddNumberToObject(o, "dataObjects", (double)m->data_len);
        cJSON_AddNumberToObject(o, "minClusterSize", minc);
        cJSON_AddNumberToObject(o, "maxClusterSize", maxc);
        cJSON *cal = cJSON_AddArrayToObject(o, "calibration");
        for (size_t i = 0; i < m->calib_len; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "nprobe", m->calib[i].nprobe);
            cJSON_AddNumberToObject(p, "recall", m->calib[i].recall);
            cJSON_AddItemToArray(cal, p);
        }
        cJSON *h = cJSON_AddArrayToObject(o, "clusterSizeHistogram");
        for (int b = 0; b < 33; b++) {
            if (!hist[b]) continue;
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "min", b ? (double)(1ull << (b - 1)) : 0);
            cJSON_AddNumberToObject(p, "max", b ? (double)((1ull << b) - 1) : 0);
            cJSON_AddNumberToObject(p, "clusters", (double)hist[b]);
            cJSON_AddItemToArray(h, p);
        }
        cJSON *w = cJSON_AddObjectToObject(o, "wal");
        cJSON_AddStringToObject(w, "incarnation", inc);
        cJSON_AddNumberToObject(w, "start", (double)m->wal_start);
        cJSON_AddNumberToObject(w, "next", (double)next);
        cJSON_AddNumberToObject(w, "graceSeconds", m->grace_seconds);
        cJSON_AddNumberToObject(w, "tailObjects", (double)tc.objects);
        cJSON_AddNumberToObject(w, "tailRecords", (double)tc.records);
        cJSON_AddNumberToObject(w, "tailKeys", (double)tc.keys);
        cJSON_AddNumberToObject(w, "tailLive", (double)tc.live);
        cJSON_AddNumberToObject(w, "tailTombstones", (double)tc.tombstones);
        cJSON_AddNumberToObject(w, "tailBytes", (double)tc.bytes);
        cJSON *ret = cJSON_AddArrayToObject(o, "retired");
        for (size_t i = 0; i < m->retired_len; i++) {
            const ivf_retired *x = &m->retired[i];
            cJSON *e = cJSON_CreateObject();
            if (x->generation[0])
                cJSON_AddStringToObject(e, "generation", x->generation);
            else {
                cJSON_AddNumberToObject(e, "walFrom", (double)x->wal_from);
                cJSON_AddNumberToObject(e, "walTo", (double)x->wal_to);
            }
            cJSON_AddNumberToObject(e, "ageSeconds", now > x->at_ms ? (double)(now - x->at_ms) / 1000 : 0);
            cJSON_AddItemToArray(ret, e);
        }
        if (verify) cJSON_AddBoolToObject(o, "verified", rc == CLI_EXIT_OK);
        cli_print_json(o, 1);
    } else {
        printf("generation   %s (created %s)\n", m->generation, m->creation_time);
        printf("vectors      %llu x %u, %s, %s\n", (unsigned long long)m->count, m->dimension,
               ivf_metric_name(m->metric), ivf_encoding_name(m->encoding));
        printf("clusters     %u (sizes %u..%u, mean %.1f), default nprobe %u\n", m->nlist, minc, maxc,
               (double)m->count / m->nlist, m->default_nprobe);
        printf("objects      centroids %llu B, keymap %llu B, %zu data object%s %llu B\n",
               (unsigned long long)m->centroids_size, (unsigned long long)m->keymap_size, m->data_len,
               m->data_len == 1 ? "" : "s", (unsigned long long)data_bytes);
        printf("warm memory  %zu B\n", ivf_index_memory(ix));
        printf("log          incarnation %s, start %llu, next %llu: %llu objects, %llu records unfolded "
               "(%llu keys: "
               "%llu live, %llu deleted)\n",
               inc, (unsigned long long)m->wal_start, (unsigned long long)next,
               (unsigned long long)tc.objects, (unsigned long long)tc.records, (unsigned long long)tc.keys,
               (unsigned long long)tc.live, (unsigned long long)tc.tombstones);
        for (size_t i = 0; i < m->retired_len; i++) {
            const ivf_retired *x = &m->retired[i];
            double age = now > x->at_ms ? (double)(now - x->at_ms) / 1000 : 0;
            if (x->generation[0])
                printf("retired      generation %s, %.0f s ago (grace %u s)\n", x->generation, age,
                       m->grace_seconds);
            else
                printf("retired      log %llu..%llu, %.0f s ago (grace %u s)\n",
                       (unsigned long long)x->wal_from, (unsigned long long)x->wal_to, age, m->grace_seconds);
        }
        if (m->non_filterable_len) {
            printf("non-filterable metadata keys:");
            for (size_t i = 0; i < m->non_filterable_len; i++) printf(" %s", m->non_filterable[i]);
            printf("\n");
        }
        printf("calibration  (nprobe: recall@10)");
        for (size_t i = 0; i < m->calib_len; i++)
            printf("%s %u: %.3f", i % 6 ? "," : "\n            ", m->calib[i].nprobe, m->calib[i].recall);
        printf("\ncluster sizes (histogram)\n");
        for (int b = 0; b < 33; b++) {
            if (!hist[b]) continue;
            if (b == 0)
                printf("  %12s  %llu\n", "0", (unsigned long long)hist[b]);
            else
                printf("  %5llu..%-5llu  %llu\n", 1ull << (b - 1), (1ull << b) - 1,
                       (unsigned long long)hist[b]);
        }
        if (verify && rc == CLI_EXIT_OK)
            printf("verify       ok: %llu vectors in %u clusters and the key map; every checksum matches\n",
                   (unsigned long long)verified, m->nlist);
    }
    ivf_index_close(ix);
    cluster_cache_free(cache);
    s3v_storage_close(st);
    return rc;
}
