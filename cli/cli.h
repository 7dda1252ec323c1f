/* cli/cli.h: what the `s3vec` subcommands share: opening an index location (folder or s3://),
 * reporting errors (one line on stderr, non-zero exit), progress on stderr, JSON output helpers.
 * cli/ is thin: every behaviour lives in engine/ and s3/; this layer parses arguments and prints. */
#ifndef S3V_CLI_H
#define S3V_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/status.h"
#include "common/storage.h"
#include "engine/build.h"
#include "engine/cache.h"
#include "engine/index.h"

#define CLI_EXIT_OK    0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

/* Prints "s3vec <cmd>: error: <message of st>" and returns CLI_EXIT_ERROR. */
int cli_fail(const char *cmd, s3v_status st);
/* Prints "s3vec <cmd>: <formatted>" and returns CLI_EXIT_USAGE (a usage mistake). */
int cli_usage_error(const char *cmd, const char *fmt, ...) S3V_PRINTF(2, 3);

/* Opens the storage of an index location: "s3://bucket/prefix" or a folder path. The index lives at
 * the root of the returned storage. create = 1 creates a missing folder. */
S3V_MUST_USE s3v_status cli_open_storage(const char *location, int create, s3v_storage **out);

/* Opens the index at a location with a cluster cache of cache_mb MiB (the cache is returned so it can
 * be freed after the index). */
S3V_MUST_USE s3v_status cli_open_index(const char *location, size_t cache_mb, s3v_storage **st,
                                       cluster_cache **cache, ivf_index **ix);

/* Progress reporter for ivf_build: a bar when stderr is a terminal, plain lines otherwise. */
void cli_progress(void *arg, const char *phase, uint64_t done, uint64_t total);

/* Prints a cJSON tree (formatted or one line) on stdout, then frees it. */
void cli_print_json(cJSON *j, int pretty);

/* Metadata text of a hit as a cJSON value (parsed, so the output is always valid JSON); NULL if none. */
cJSON *cli_meta_json(const uint8_t *meta, size_t len);

/* Splits "a,b,c" into a malloc'd array of malloc'd strings (empty items skipped); *n is the count.
 * NULL when out of memory. Free with cli_list_free (which accepts NULL). */
char **cli_list_split(const char *s, size_t *n);
void cli_list_free(char **v, size_t n);

/* Parses a JSON array of numbers into a malloc'd float vector. */
S3V_MUST_USE s3v_status cli_parse_vector(const char *text, float **out, uint32_t *dim);

/* The subcommands: argc/argv start at the subcommand name. */
int cmd_build(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_create_index(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_delete_index(int argc, char **argv);
int cmd_compact(int argc, char **argv);

#endif
