/* cli/cmd_build.c: `s3vec build`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/input.h"

static const char HELP[] =
    "usage: s3vec build <index> --input FILE [options]\n"
    "\n"
    "Builds an IVF index at <index> (a folder, or s3://bucket/prefix) from FILE:\n"
    "  .fvecs          float32 rows (int32 dimension before each row)\n"
    "  .npy            a 2-D little-endian float32 array (C order)\n"
    "  .jsonl          one {\"key\": ..., \"data\": [...], \"metadata\": {...}} per line\n"
    "                  (the S3 Vectors PutVectors vector shape; data may also be {\"float32\": [...]})\n"
    "\n"
    "options:\n"
    "  --input FILE          vectors to index (required)\n"
    "  --keys FILE           keys for .fvecs/.npy, one per line (default: the row number)\n"
    "  --metric M            euclidean (default), cosine or dot\n"
    "  --encoding E          f32 (default), f16 or i8\n"
    "  --nlist N             number of clusters (default: round(sqrt(count)), at most count/39)\n"
    "  --niter N             k-means iterations (default 10)\n"
    "  --seed N              random seed; the same seed and input give the same index (default 1)\n"
    "  --threads N           worker threads (default: all cores)\n"
    "  --max-cluster-factor F  split clusters larger than F x the mean size (default 4)\n"
    "  --non-filterable K,.. metadata keys that filters may not use\n"
    "  --no-compress         store keys and metadata without zstd\n"
    "  --tmp-dir DIR         spill files (default /tmp; needs about the size of the input)\n"
    "  --overwrite           replace an existing index (a new generation; the old one is deleted)\n"
    "  --json                print the build report as JSON\n"
    "  -q, --quiet           no progress on stderr\n";

int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"keys", required_argument, 0, 'K'},
                                         {"metric", required_argument, 0, 'm'},
                                         {"encoding", required_argument, 0, 'e'},
                                         {"nlist", required_argument, 0, 'n'},
                                         {"niter", required_argument, 0, 'I'},
                                         {"seed", required_argument, 0, 's'},
                                         {"threads", required_argument, 0, 't'},
                                         {"max-cluster-factor", required_argument, 0, 'F'},
                                         {"non-filterable", required_argument, 0, 'N'},
                                         {"no-compress", no_argument, 0, 'Z'},
                                         {"tmp-dir", required_argument, 0, 'T'},
                                         {"overwrite", no_argument, 0, 'O'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *input = NULL, *keys = NULL;
    ivf_build_opts o = {.metric = IVF_METRIC_EUCLIDEAN, .encoding = IVF_ENC_F32, .seed = 1};
    int json = 0, quiet = 0, c;
    char **nf = NULL;
    size_t nf_len = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'i': input = optarg; break;
        case 'K': keys = optarg; break;
        case 'm':
            if (ivf_metric_parse(optarg, &o.metric) != S3V_OK) return cli_fail("build", S3V_ERR_INVALID);
            break;
        case 'e':
            if (ivf_encoding_parse(optarg, &o.encoding) != S3V_OK) return cli_fail("build", S3V_ERR_INVALID);
            break;
        case 'n':
            o.nlist = (uint32_t)strtoul(optarg, &end, 10);
            if (*end || o.nlist < 1 || o.nlist > IVF_NLIST_MAX)
                return cli_usage_error("build", "--nlist must be an integer between 1 and %u", IVF_NLIST_MAX);
            break;
        case 'I':
            o.niter = (int)strtol(optarg, &end, 10);
            if (*end || o.niter < 1 || o.niter > 1000)
                return cli_usage_error("build", "--niter must be 1..1000");
            break;
        case 's':
            o.seed = strtoull(optarg, &end, 10);
            if (*end) return cli_usage_error("build", "--seed must be an integer");
            break;
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 256)
                return cli_usage_error("build", "--threads must be 1..256");
            break;
        case 'F':
            o.max_cluster_factor = strtod(optarg, &end);
            if (*end || !(o.max_cluster_factor >= 1.5))
                return cli_usage_error("build", "--max-cluster-factor must be a number >= 1.5");
            break;
        case 'N':
            cli_list_free(nf, nf_len);
            nf = cli_list_split(optarg, &nf_len);
            break;
        case 'Z': o.zstd_level = -1; break;
        case 'T': o.tmp_dir = optarg; break;
        case 'O': o.overwrite = 1; break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(HELP, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("build", "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error("build", "expected exactly one index location");
    if (!input) return cli_usage_error("build", "--input FILE is required");
    const char *location = argv[optind];
    o.non_filterable = (const char *const *)nf;
    o.non_filterable_len = nf_len;
    if (!quiet) o.progress = cli_progress;

    vec_reader *r = NULL;
    s3v_storage *st = NULL;
    ivf_build_report rep;
    int rc = CLI_EXIT_OK;
    s3v_status s = vec_reader_open(input, keys, &r);
    if (s == S3V_OK) vec_reader_set_non_filterable(r, (const char *const *)nf, nf_len);
    if (s == S3V_OK) s = cli_open_storage(location, 1, &st);
    if (s == S3V_OK) s = ivf_build(st, "", r, &o, &rep);
    if (!quiet && o.progress) fputc('\n', stderr);
    if (s != S3V_OK) {
        rc = cli_fail("build", s);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "index", location);
        cJSON_AddStringToObject(j, "generation", rep.generation);
        cJSON_AddNumberToObject(j, "count", (double)rep.count);
        cJSON_AddNumberToObject(j, "dimension", rep.dim);
        cJSON_AddNumberToObject(j, "nlist", rep.nlist);
        cJSON_AddNumberToObject(j, "splitClusters", rep.splits);
        cJSON_AddNumberToObject(j, "minClusterSize", rep.min_cluster);
        cJSON_AddNumberToObject(j, "maxClusterSize", rep.max_cluster);
        cJSON_AddNumberToObject(j, "trainPoints", (double)rep.train_points);
        cJSON_AddNumberToObject(j, "defaultNprobe", rep.default_nprobe);
        cJSON_AddNumberToObject(j, "calibratedRecall", rep.default_recall);
        cJSON_AddNumberToObject(j, "vectorBytes", (double)rep.vector_bytes);
        cJSON_AddNumberToObject(j, "keysMetadataRawBytes", (double)rep.rest_raw_bytes);
        cJSON_AddNumberToObject(j, "keysMetadataStoredBytes", (double)rep.rest_stored_bytes);
        cJSON_AddNumberToObject(j, "totalBytes", (double)rep.total_bytes);
        cJSON *t = cJSON_AddObjectToObject(j, "seconds");
        cJSON_AddNumberToObject(t, "read", rep.seconds_read);
        cJSON_AddNumberToObject(t, "train", rep.seconds_train);
        cJSON_AddNumberToObject(t, "assign", rep.seconds_assign);
        cJSON_AddNumberToObject(t, "write", rep.seconds_write);
        cJSON_AddNumberToObject(t, "calibrate", rep.seconds_calibrate);
        cJSON_AddNumberToObject(t, "upload", rep.seconds_upload);
        cJSON_AddNumberToObject(t, "total", rep.seconds_total);
        cli_print_json(j, 1);
    } else {
        printf("built %s: %llu vectors x %u, %s, %s\n", location, (unsigned long long)rep.count, rep.dim,
               ivf_metric_name(o.metric), ivf_encoding_name(o.encoding));
        printf("  generation %s, %u clusters (%u split for size; sizes %u..%u), trained on %llu vectors\n",
               rep.generation, rep.nlist, rep.splits, rep.min_cluster, rep.max_cluster,
               (unsigned long long)rep.train_points);
        printf("  default nprobe %u (calibrated recall@10 %.3f)\n", rep.default_nprobe, rep.default_recall);
        printf("  bytes: vectors %llu, keys+metadata %llu -> %llu stored, %llu in all\n",
               (unsigned long long)rep.vector_bytes, (unsigned long long)rep.rest_raw_bytes,
               (unsigned long long)rep.rest_stored_bytes, (unsigned long long)rep.total_bytes);
        printf("  seconds: read %.2f, train %.2f, assign %.2f, write %.2f, calibrate %.2f, upload %.2f, "
               "total %.2f\n",
               rep.seconds_read, rep.seconds_train, rep.seconds_assign, rep.seconds_write,
               rep.seconds_calibrate, rep.seconds_upload, rep.seconds_total);
    }
    vec_reader_close(r);
    s3v_storage_close(st);
    cli_list_free(nf, nf_len);
    return rc;
}
