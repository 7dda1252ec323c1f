/* bootstrap/config.h: the runtime's configuration, read from the environment once at start-up.
 *
 * Variables (all documented in bootstrap/README.md):
 *   S3VEC_STORAGE          required: the deployment root, "s3://bucket[/prefix]" or a local folder
 *   S3VEC_DEFAULT_INDEX    optional "vectorBucket/index" opened at INIT (init error if it cannot be)
 *   S3VEC_CACHE_MB         cluster cache size; default from AWS_LAMBDA_FUNCTION_MEMORY_SIZE (see below)
 *   S3VEC_FRESH_SECONDS    freshness interval of open indexes, seconds (decimal); default 10, 0 = always
 *   S3VEC_MAX_OPEN_INDEXES indexes kept open at once; default 32
 *   S3VEC_ALLOW_WRITES     "true": serve CreateIndex, DeleteIndex, PutVectors, DeleteVectors and Compact;
 *                          default false (read-only); the template sets it from AllowWrites
 *   S3VEC_TAIL_SECONDS     how often the write-ahead log is read before reads (decimal); default 0 = before
 *                          every read (read-your-writes); more trades staleness for one GET per read
 *   S3VEC_TAIL_MB          memory for an open index's unfolded log, and for compaction's; default half of
 *                          what the function has beyond 96 MiB, at least 64 (512 without a memory size)
 *   S3VEC_TMP_DIR          compaction's spill files; default /tmp
 *   S3VEC_DIRECT_ERRORS    "payload" (default) or "function": how direct invocations receive errors
 *   S3VEC_LOG              error | warn | info (default) | debug
 *   S3VEC_SIMD             "scalar" forces the scalar kernels
 *   S3VEC_ACCOUNT_ID       account id in index ARNs when the invoked function ARN has none
 *   AWS_REGION             region in index ARNs (default us-east-1)
 *   AWS_LAMBDA_RUNTIME_API host:port of the Runtime API (required)
 * Default cache: max(16, (memory_mb - 96) / 2) MiB, i.e. half of what the function has beyond a
 * 96 MiB allowance for the process, warm centroids and one request's buffers; 128 MB -> 16 MiB,
 * 1024 MB -> 464 MiB, 10240 MB -> 5072 MiB. Without AWS_LAMBDA_FUNCTION_MEMORY_SIZE: 64 MiB.
 *
 * A malformed value is an error with a message naming the variable (the runtime reports it to
 * /runtime/init/error). Not thread-safe (start-up only). */
#ifndef S3V_BS_CONFIG_H
#define S3V_BS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "handler/event.h"

typedef struct bs_config {
    char runtime_api[256];
    char storage[1024];
    char default_index[160]; /* "" when none */
    size_t cache_mb;
    uint32_t fresh_ms;
    uint32_t max_open;
    hd_error_mode direct_errors;
    s3v_log_level log_level;
    int force_scalar;
    char region[64];
    char account[16];
    uint32_t memory_mb; /* 0 when unknown */
    int allow_writes;
    uint32_t tail_ms;
    size_t tail_mb;
    char tmp_dir[512];
} bs_config;

/* Reads the environment into *cfg. Returns 0, or -1 with a message in msg (msg_size bytes). */
int bs_config_load(bs_config *cfg, char *msg, size_t msg_size);

#endif
