/* cli/cmd_write.c: `s3vec create-index`, `put`, `delete`, `delete-index` and `compact`: the write path
 * (engine/wal.h, engine/compact.h) from the command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "engine/compact.h"
#include "engine/input.h"
#include "engine/wal.h"

#define WRITE_DEADLINE_MS 120000 /* per log object */

static const char CREATE_HELP[] =
    "usage: s3vec create-index <index> --dimension D --metric M [options]\n"
    "\n"
    "Creates an empty index (CreateIndex): vectors are then added with `s3vec put` and folded into\n"
    "clusters by `s3vec compact`.\n"
    "  --dimension D          1..4096 (required)\n"
    "  --metric M             euclidean, cosine or dot (required)\n"
    "  --encoding E           f32 (default), f16 or i8: how compaction stores the vectors\n"
    "  --non-filterable K,..  metadata keys that filters may not use\n"
    "  --grace-seconds N      how long replaced objects are kept for readers and writers still using them\n"
    "                         (default 1200, more than a Lambda invocation can last)\n";

static const char PUT_HELP[] =
    "usage: s3vec put <index> --input FILE [--keys FILE] [--batch N] [--json]\n"
    "\n"
    "Writes vectors (PutVectors): an existing key is overwritten. FILE is .jsonl ({\"key\", \"data\",\n"
    "\"metadata\"} per line), .fvecs or .npy (keys from --keys, else the row numbers). Every batch of N\n"
    "vectors (default and most 500) is one log object, durable and visible to every reader when its line\n"
    "is printed: \"seq <sequence number> <vectors>\".\n";

static const char DELETE_HELP[] =
    "usage: s3vec delete <index> KEY [KEY...] [--keys-file FILE] [--json]\n"
    "\n"
    "Deletes vectors by key (DeleteVectors); keys that do not exist are not an error. --keys-file reads\n"
    "one key per line. Every 500 keys are one log object; its sequence number is printed as for put.\n";

static const char DROP_HELP[] =
    "usage: s3vec delete-index <index>\n"
    "\n"
    "Deletes the index (DeleteIndex): ends its write-ahead log with a drop marker (readers that have it\n"
    "open notice at their next read), then deletes the manifest and every generation object. The log\n"
    "itself is deleted after its grace period by `s3vec compact` of that location.\n";

static const char COMPACT_HELP[] =
    "usage: s3vec compact <index> [options]\n"
    "\n"
    "Folds the write-ahead log into a new generation of the index (assigning the new vectors to the\n"
    "nearest clusters; splitting clusters that grew too large; retraining when the index doubled or its\n"
    "clusters drifted), swaps the manifest with a conditional write, and deletes what older generations\n"
    "and folded log objects left behind once their grace period is over.\n"
    "  --gc-only            only collect garbage\n"
    "  --max-objects N      fold at most N log objects this run (default 100000)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --tmp-dir DIR        spill files (default /tmp)\n"
    "  --json               print the report as JSON\n"
    "  -q, --quiet          no progress on stderr\n";

int cmd_create_index(int argc, char **argv)
{
    static const struct option opts[] = {{"dimension", required_argument, 0, 'd'},
                                         {"metric", required_argument, 0, 'm'},
                                         {"encoding", required_argument, 0, 'e'},
                                         {"non-filterable", required_argument, 0, 'N'},
                                         {"grace-seconds", required_argument, 0, 'g'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    unsigned long dim = 0, grace = 0;
    int have_metric = 0, c;
    ivf_metric metric = IVF_METRIC_EUCLIDEAN;
    ivf_encoding enc = IVF_ENC_F32;
    char **nf = NULL;
    size_t nf_len = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'd':
            dim = strtoul(optarg, &end, 10);
            if (*end || dim < 1 || dim > IVF_DIM_MAX)
                return cli_usage_error("create-index", "--dimension must be an integer between 1 and %d",
                                       IVF_DIM_MAX);
            break;
        case 'm':
            if (ivf_metric_parse(optarg, &metric) != S3V_OK) return cli_fail("create-index", S3V_ERR_INVALID);
            have_metric = 1;
            break;
        case 'e':
            if (ivf_encoding_parse(optarg, &enc) != S3V_OK) return cli_fail("create-index", S3V_ERR_INVALID);
            break;
        case 'N':
            cli_list_free(nf, nf_len);
            nf = cli_list_split(optarg, &nf_len);
            break;
        case 'g':
            grace = strtoul(optarg, &end, 10);
            if (*end || grace < IVF_GRACE_MIN_S || grace > IVF_GRACE_MAX_S)
                return cli_usage_error("create-index", "--grace-seconds must be between %d and %d",
                                       IVF_GRACE_MIN_S, IVF_GRACE_MAX_S);
            break;
        case 'h': fputs(CREATE_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("create-index", "unknown option");
        }
    }
    int rc = CLI_EXIT_OK;
    if (optind != argc - 1)
        rc = cli_usage_error("create-index", "expected exactly one index location");
    else if (!dim)
        rc = cli_usage_error("create-index", "--dimension is required");
    else if (!have_metric)
        rc = cli_usage_error("create-index", "--metric is required");
    if (rc != CLI_EXIT_OK) {
        cli_list_free(nf, nf_len);
        return rc;
    }
    s3v_storage *st = NULL;
    ivf_manifest m;
    s3v_status s = cli_open_storage(argv[optind], 1, &st);
    if (s == S3V_OK)
        s = ivf_create_empty(st, "", (uint32_t)dim, metric, enc, (const char *const *)nf, nf_len,
                             (uint32_t)grace, s3v_deadline_in_ms(WRITE_DEADLINE_MS), &m);
    if (s == S3V_OK) {
        char inc[17];
        ivf_incarnation_format(m.incarnation, inc);
        printf("created %s: dimension %u, %s, %s, incarnation %s\n", argv[optind], m.dimension,
               ivf_metric_name(m.metric), ivf_encoding_name(m.encoding), inc);
        ivf_manifest_free(&m);
    } else {
        rc = cli_fail("create-index", s);
    }
    s3v_storage_close(st);
    cli_list_free(nf, nf_len);
    return rc;
}

/* Writes one batch and reports it. */
static s3v_status flush_batch(const char *cmd, wal_writer *w, wal_batch *b, int json, cJSON *arr,
                              uint64_t *objects, uint64_t *records)
{
    if (!b->count) return S3V_OK;
    wal_append_info info;
    S3V_TRY(wal_writer_append(w, b, s3v_deadline_in_ms(WRITE_DEADLINE_MS), &info));
    (*objects)++;
    *records += b->count;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "seq", (double)info.seq);
        cJSON_AddNumberToObject(o, "records", b->count);
        cJSON_AddNumberToObject(o, "conflicts", info.conflicts);
        cJSON_AddItemToArray(arr, o);
    } else {
        printf("seq %llu %u\n", (unsigned long long)info.seq, b->count);
        fflush(stdout);
    }
    wal_batch_reset(b);
    return S3V_OK;
}

static void print_totals(const char *what, int json, cJSON *root, uint64_t objects, uint64_t records)
{
    if (json) {
        cJSON_AddNumberToObject(root, "objects", (double)objects);
        cJSON_AddNumberToObject(root, what, (double)records);
        cli_print_json(root, 1);
    }
}

int cmd_put(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'}, {"keys", required_argument, 0, 'K'},
        {"batch", required_argument, 0, 'b'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *input = NULL, *keys = NULL;
    unsigned long batch = WAL_MAX_RECORDS;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'i': input = optarg; break;
        case 'K': keys = optarg; break;
        case 'b':
            batch = strtoul(optarg, &end, 10);
            if (*end || batch < 1 || batch > WAL_MAX_RECORDS)
                return cli_usage_error("put", "--batch must be between 1 and %d", WAL_MAX_RECORDS);
            break;
        case 'j': json = 1; break;
        case 'h': fputs(PUT_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("put", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("put", "expected exactly one index location");
    if (!input) return cli_usage_error("put", "--input FILE is required");
    s3v_storage *st = NULL;
    vec_reader *r = NULL;
    wal_writer *w = NULL;
    wal_batch b;
    wal_batch_init(&b, 0);
    ivf_manifest m;
    memset(&m, 0, sizeof m);
    uint64_t objects = 0, records = 0;
    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "written") : NULL;
    s3v_status s = cli_open_storage(argv[optind], 0, &st);
    if (s == S3V_OK) s = ivf_manifest_load(st, "", s3v_deadline_in_ms(WRITE_DEADLINE_MS), &m, NULL);
    if (s == S3V_ERR_NOT_FOUND)
        s = s3v_error_context(s, "no index at %s (create it with s3vec create-index)", argv[optind]);
    if (s == S3V_OK) s = vec_reader_open(input, keys, &r);
    if (s == S3V_OK) {
        vec_reader_set_non_filterable(r, (const char *const *)m.non_filterable, m.non_filterable_len);
        if (vec_reader_dim(r) != m.dimension)
            s = s3v_errorf(S3V_ERR_DIMENSION, "%s has dimension %u, the index has dimension %u", input,
                           vec_reader_dim(r), m.dimension);
    }
    if (s == S3V_OK) s = wal_writer_new(st, "", &w);
    b.dim = m.dimension;
    while (s == S3V_OK) {
        vec_record rec;
        int has = 0;
        s = vec_reader_next(r, &rec, &has);
        if (s != S3V_OK || !has) break;
        s = wal_vector_check(m.metric, m.encoding, rec.data, m.dimension);
        if (s != S3V_OK) {
            s = s3v_error_context(s, "%s: row %llu", input, (unsigned long long)rec.row + 1);
            break;
        }
        s = wal_batch_put(&b, rec.key, rec.key_len, rec.data, rec.meta, rec.meta_len);
        if (s == S3V_OK && b.count >= batch) s = flush_batch("put", w, &b, json, arr, &objects, &records);
    }
    if (s == S3V_OK) s = flush_batch("put", w, &b, json, arr, &objects, &records);
    int rc = CLI_EXIT_OK;
    if (s != S3V_OK) {
        /* what was printed is durable; the rest was not written */
        if (objects)
            fprintf(stderr, "s3vec put: %llu vectors in %llu objects were written before the error\n",
                    (unsigned long long)records, (unsigned long long)objects);
        cJSON_Delete(root);
        rc = cli_fail("put", s);
    } else {
        print_totals("vectors", json, root, objects, records);
        if (!json)
            fprintf(stderr, "s3vec put: %llu vectors in %llu log objects\n", (unsigned long long)records,
                    (unsigned long long)objects);
    }
    wal_batch_free(&b);
    wal_writer_free(w);
    vec_reader_close(r);
    ivf_manifest_free(&m);
    s3v_storage_close(st);
    return rc;
}

int cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {{"keys-file", required_argument, 0, 'K'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *keys_file = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'K': keys_file = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(DELETE_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("delete", "unknown option");
        }
    }
    if (argc - optind < 1) return cli_usage_error("delete", "expected an index location");
    if (argc - optind < 2 && !keys_file) return cli_usage_error("delete", "expected keys (or --keys-file)");
    const char *location = argv[optind];
    s3v_storage *st = NULL;
    wal_writer *w = NULL;
    FILE *kf = NULL;
    wal_batch b;
    ivf_manifest m;
    memset(&m, 0, sizeof m);
    wal_batch_init(&b, 0);
    uint64_t objects = 0, records = 0;
    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "written") : NULL;
    s3v_status s = cli_open_storage(location, 0, &st);
    if (s == S3V_OK) s = ivf_manifest_load(st, "", s3v_deadline_in_ms(WRITE_DEADLINE_MS), &m, NULL);
    if (s == S3V_ERR_NOT_FOUND) s = s3v_error_context(s, "no index at %s", location);
    if (s == S3V_OK) s = wal_writer_new(st, "", &w);
    b.dim = m.dimension;
    for (int i = optind + 1; s == S3V_OK && i < argc; i++) {
        s = wal_batch_delete(&b, (const uint8_t *)argv[i], strlen(argv[i]));
        if (s != S3V_OK) s = s3v_error_context(s, "key %d", i - optind);
        if (s == S3V_OK && b.count >= WAL_MAX_RECORDS)
            s = flush_batch("delete", w, &b, json, arr, &objects, &records);
    }
    if (s == S3V_OK && keys_file) {
        kf = fopen(keys_file, "r");
        if (!kf) s = s3v_errorf(S3V_ERR_NOT_FOUND, "cannot open %s", keys_file);
        char line[4200];
        unsigned long n = 0;
        while (s == S3V_OK && kf && fgets(line, sizeof line, kf)) {
            n++;
            size_t len = strcspn(line, "\r\n");
            if (!len) continue;
            s = wal_batch_delete(&b, (const uint8_t *)line, len);
            if (s != S3V_OK) s = s3v_error_context(s, "%s: line %lu", keys_file, n);
            if (s == S3V_OK && b.count >= WAL_MAX_RECORDS)
                s = flush_batch("delete", w, &b, json, arr, &objects, &records);
        }
    }
    if (s == S3V_OK) s = flush_batch("delete", w, &b, json, arr, &objects, &records);
    int rc = CLI_EXIT_OK;
    if (s != S3V_OK) {
        cJSON_Delete(root);
        rc = cli_fail("delete", s);
    } else {
        print_totals("keys", json, root, objects, records);
    }
    if (kf) fclose(kf);
    wal_batch_free(&b);
    wal_writer_free(w);
    ivf_manifest_free(&m);
    s3v_storage_close(st);
    return rc;
}

int cmd_delete_index(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(DROP_HELP, stdout);
        return CLI_EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error("delete-index", "expected exactly one index location");
    s3v_storage *st = NULL;
    s3v_status s = cli_open_storage(argv[1], 0, &st);
    if (s == S3V_OK) s = ivf_drop(st, "", s3v_deadline_in_ms(600000));
    if (s == S3V_ERR_NOT_FOUND) s = s3v_error_context(s, "no index at %s", argv[1]);
    s3v_storage_close(st);
    if (s != S3V_OK) return cli_fail("delete-index", s);
    printf("deleted %s\n", argv[1]);
    return CLI_EXIT_OK;
}

int cmd_compact(int argc, char **argv)
{
    static const struct option opts[] = {
        {"gc-only", no_argument, 0, 'g'},       {"max-objects", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 't'}, {"tmp-dir", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    ivf_compact_opts o = {0};
    int json = 0, quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'g': o.gc_only = 1; break;
        case 'M':
            o.max_objects = strtoull(optarg, &end, 10);
            if (*end || o.max_objects < 1)
                return cli_usage_error("compact", "--max-objects must be at least 1");
            break;
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 256)
                return cli_usage_error("compact", "--threads must be 1..256");
            break;
        case 'T': o.tmp_dir = optarg; break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(COMPACT_HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("compact", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("compact", "expected exactly one index location");
    if (!quiet) o.progress = cli_progress;
    s3v_storage *st = NULL;
    ivf_compact_report rep = {0};
    s3v_status s = cli_open_storage(argv[optind], 0, &st);
    if (s == S3V_OK) s = ivf_compact(st, "", &o, &rep);
    if (s ==
        S3V_ERR_NOT_FOUND) { /* a deleted index: collect the logs it left once their grace period is over */
        s3v_error_clear();
        s = ivf_collect_dropped(st, "", 0, &rep);
        if (s == S3V_OK) {
            printf("no index at %s: deleted %u logs of deleted indexes (%llu objects); %u still in their "
                   "grace period\n",
                   argv[optind], rep.gc_dead_logs, (unsigned long long)rep.gc_objects, rep.gc_pending);
            s3v_storage_close(st);
            return CLI_EXIT_OK;
        }
    }
    s3v_storage_close(st);
    if (!quiet && rep.folded_objects && s == S3V_OK) fputc('\n', stderr);
    if (s != S3V_OK) return cli_fail("compact", s);
    int folded = rep.wal_to >= rep.wal_from && rep.folded_objects;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "index", argv[optind]);
        cJSON_AddBoolToObject(j, "committed", rep.committed);
        cJSON_AddStringToObject(j, "oldGeneration", rep.old_generation);
        cJSON_AddStringToObject(j, "generation", rep.generation);
        cJSON_AddNumberToObject(j, "foldedObjects", (double)rep.folded_objects);
        cJSON_AddNumberToObject(j, "foldedRecords", (double)rep.folded_records);
        if (folded) {
            cJSON_AddNumberToObject(j, "walFrom", (double)rep.wal_from);
            cJSON_AddNumberToObject(j, "walTo", (double)rep.wal_to);
        }
        cJSON_AddNumberToObject(j, "countBefore", (double)rep.count_before);
        cJSON_AddNumberToObject(j, "countAfter", (double)rep.count_after);
        cJSON_AddNumberToObject(j, "nlistBefore", rep.nlist_before);
        cJSON_AddNumberToObject(j, "nlistAfter", rep.nlist_after);
        cJSON_AddNumberToObject(j, "splitClusters", rep.splits);
        cJSON_AddBoolToObject(j, "retrained", rep.retrained);
        if (rep.retrain_reason) cJSON_AddStringToObject(j, "retrainReason", rep.retrain_reason);
        cJSON_AddNumberToObject(j, "lostRaces", rep.lost_races);
        cJSON *g = cJSON_AddObjectToObject(j, "garbage");
        cJSON_AddNumberToObject(g, "generations", rep.gc_generations);
        cJSON_AddNumberToObject(g, "logRanges", rep.gc_log_ranges);
        cJSON_AddNumberToObject(g, "orphans", rep.gc_orphans);
        cJSON_AddNumberToObject(g, "deadLogs", rep.gc_dead_logs);
        cJSON_AddNumberToObject(g, "objects", (double)rep.gc_objects);
        cJSON_AddNumberToObject(g, "pending", rep.gc_pending);
        cJSON *t = cJSON_AddObjectToObject(j, "seconds");
        cJSON_AddNumberToObject(t, "read", rep.seconds_read);
        cJSON_AddNumberToObject(t, "build", rep.seconds_build);
        cJSON_AddNumberToObject(t, "gc", rep.seconds_gc);
        cJSON_AddNumberToObject(t, "total", rep.seconds_total);
        cli_print_json(j, 1);
    } else if (folded && rep.committed) {
        printf("compacted %s: folded log %llu..%llu (%llu objects, %llu records)\n", argv[optind],
               (unsigned long long)rep.wal_from, (unsigned long long)rep.wal_to,
               (unsigned long long)rep.folded_objects, (unsigned long long)rep.folded_records);
        printf("  generation %s -> %s: %llu -> %llu vectors, %u -> %u clusters (%u split)%s%s%s\n",
               rep.old_generation, rep.generation, (unsigned long long)rep.count_before,
               (unsigned long long)rep.count_after, rep.nlist_before, rep.nlist_after, rep.splits,
               rep.retrained ? ", retrained (" : "", rep.retrained ? rep.retrain_reason : "",
               rep.retrained ? ")" : "");
    } else {
        printf("compacted %s: nothing to fold (generation %s)\n", argv[optind], rep.generation);
    }
    if (!json)
        printf("  garbage: %u generations, %u log ranges, %u orphans deleted (%llu objects); %u still in "
               "their grace "
               "period; %.2f s\n",
               rep.gc_generations, rep.gc_log_ranges, rep.gc_orphans, (unsigned long long)rep.gc_objects,
               rep.gc_pending, rep.seconds_total);
    return CLI_EXIT_OK;
}
