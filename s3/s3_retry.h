/* s3/s3_retry.h: retry policy, backoff and hedging math. Internal to s3/.
 *
 * Pure functions over plain data, so the policy is unit-tested without a network:
 *  - s3_retry_classify maps an HTTP status and S3 error code to an s3v_status and says whether the
 *    request may be retried;
 *  - s3_backoff_ms draws the delay before retry n with exponential backoff and full jitter
 *    (uniform in [0, min(cap, base * 2^(n-1))], the AWS "full jitter" scheme);
 *  - s3_latency keeps recent first-byte latencies; s3_hedge_threshold_us turns them into the delay
 *    after which a range that has not started arriving gets a duplicate request.
 * Not thread-safe: each s3_latency belongs to one storage handle. */
#ifndef S3_RETRY_H
#define S3_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"

/* Maps a non-2xx response to a status; *retry = 1 when sending the request again may succeed
 * (500, 502, 503, 504, 429, 400 RequestTimeout, 409 ConditionalRequestConflict, 500-class codes
 * InternalError/SlowDown in a 200 body). code may be NULL or "". */
s3v_status s3_retry_classify(long http_status, const char *code, int *retry);

/* Upper bound of the jittered delay before retry `retry_no` (1 = first retry), in ms. */
uint64_t s3_backoff_ceiling_ms(unsigned retry_no, unsigned base_ms, unsigned cap_ms);
/* A delay drawn uniformly from [0, ceiling] with rng. */
uint64_t s3_backoff_ms(unsigned retry_no, unsigned base_ms, unsigned cap_ms, s3v_rng *rng);

#define S3_LATENCY_WINDOW 128 /* recent samples kept */
#define S3_LATENCY_MIN_N  8   /* fewer samples: the threshold is S3_HEDGE_COLD_MS */
#define S3_HEDGE_COLD_MS  250 /* threshold before enough samples (cold container) */

typedef struct s3_latency {
    uint32_t us[S3_LATENCY_WINDOW];
    size_t n;    /* valid samples (<= window) */
    size_t next; /* ring position */
} s3_latency;

void s3_latency_add(s3_latency *l, uint64_t us);
/* The q-quantile (0..1, nearest rank) of the samples, 0 when there are none. */
uint64_t s3_latency_quantile(const s3_latency *l, double q);
/* max(min_ms, p95) once S3_LATENCY_MIN_N samples exist, else max(min_ms, S3_HEDGE_COLD_MS); in us. */
uint64_t s3_hedge_threshold_us(const s3_latency *l, unsigned min_ms);

#endif
