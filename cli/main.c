/* cli/main.c: `s3vec`, the command-line tool: dispatch and the environment read once at start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/log.h"
#include "engine/kernels.h"
#include "engine/version.h"

static const char USAGE[] =
    "usage: s3vec <command> [options]\n"
    "\n"
    "An index lives in a folder or at s3://bucket/prefix.\n"
    "\n"
    "commands:\n"
    "  build     build an index from .fvecs, .npy or JSON Lines\n"
    "  query     nearest neighbours of one vector or a query file (recall and latency with --truth)\n"
    "  get       vectors by key\n"
    "  list      keys (and data, metadata) page by page\n"
    "  inspect   manifest, counts, sizes, cluster-size histogram, the log; --verify checks every checksum\n"
    "  create-index  an empty index to write to (CreateIndex)\n"
    "  put       write vectors from .jsonl, .fvecs or .npy (PutVectors; visible at once)\n"
    "  delete    delete vectors by key (DeleteVectors)\n"
    "  compact   fold the write-ahead log into the clusters; collect old objects\n"
    "  delete-index  delete an index and everything in it (DeleteIndex)\n"
    "\n"
    "Run 's3vec <command> --help' for the options of a command.\n"
    "Environment: S3VEC_SIMD=scalar forces the scalar kernels; S3VEC_LOG=error|warn|info|debug;\n"
    "AWS_* variables (credentials, region, AWS_ENDPOINT_URL_S3) for s3:// locations.\n";

int main(int argc, char **argv)
{
    s3v_alloc_tune();
    const char *lvl = getenv("S3VEC_LOG");
    s3v_log_level level;
    if (lvl && s3v_log_parse_level(lvl, &level) == 0) s3v_log_set_level(level);
    const char *simd = getenv("S3VEC_SIMD");
    kern_init(simd && strcmp(simd, "scalar") == 0);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("s3vec %s (kernels: %s)\n", s3v_version(), kern_get()->name);
        return CLI_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"build", cmd_build},    {"query", cmd_query},     {"get", cmd_get},
                {"list", cmd_list},      {"inspect", cmd_inspect}, {"create-index", cmd_create_index},
                {"put", cmd_put},        {"delete", cmd_delete},   {"delete-index", cmd_delete_index},
                {"compact", cmd_compact}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "s3vec: unknown command '%s'\n%s", argv[1], USAGE);
    return CLI_EXIT_USAGE;
}
