/* tests/unit/test_s3_retry.c: which S3 answers are retried and what they become, the backoff with
 * full jitter, and the hedging threshold learned from first-byte latencies. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/rng.h"
#include "s3/s3_retry.h"
#include "tests/unit/testutil.h"

static void test_classify(void)
{
    struct {
        long http;
        const char *code;
        s3v_status want;
        int retry;
    } cases[] = {
        {503, "SlowDown", S3V_ERR_THROTTLED, 1},
        {503, "", S3V_ERR_THROTTLED, 1},
        {429, NULL, S3V_ERR_THROTTLED, 1},
        {500, "InternalError", S3V_ERR_REMOTE, 1},
        {502, NULL, S3V_ERR_REMOTE, 1},
        {504, NULL, S3V_ERR_REMOTE, 1},
        {599, NULL, S3V_ERR_REMOTE, 1},
        {400, "RequestTimeout", S3V_ERR_NETWORK, 1},
        {409, "ConditionalRequestConflict", S3V_ERR_PRECONDITION, 1},
        {409, "BucketAlreadyExists", S3V_ERR_CONFLICT, 0},
        {403, "AccessDenied", S3V_ERR_ACCESS_DENIED, 0},
        {403, "SignatureDoesNotMatch", S3V_ERR_ACCESS_DENIED, 0},
        {403, NULL, S3V_ERR_ACCESS_DENIED, 0},
        {400, "ExpiredToken", S3V_ERR_ACCESS_DENIED, 0},
        {404, "NoSuchKey", S3V_ERR_NOT_FOUND, 0},
        {404, "NoSuchBucket", S3V_ERR_NOT_FOUND, 0},
        {404, NULL, S3V_ERR_NOT_FOUND, 0},
        {412, "PreconditionFailed", S3V_ERR_PRECONDITION, 0},
        {416, "InvalidRange", S3V_ERR_CORRUPT, 0},
        {301, "PermanentRedirect", S3V_ERR_CONFIG, 0},
        {400, "AuthorizationHeaderMalformed", S3V_ERR_CONFIG, 0},
        {400, "InvalidArgument", S3V_ERR_INVALID, 0},
        {413, NULL, S3V_ERR_TOO_LARGE, 0},
        {501, "NotImplemented", S3V_ERR_UNSUPPORTED, 0},
        {200, "InternalError", S3V_ERR_REMOTE, 1}, /* an <Error> inside a 200 (CompleteMultipartUpload) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int retry = -1;
        s3v_status st = s3_retry_classify(cases[i].http, cases[i].code, &retry);
        CHECK(st == cases[i].want && retry == cases[i].retry, "%ld %s -> %s retry %d (want %s retry %d)",
              cases[i].http, cases[i].code ? cases[i].code : "(null)", s3v_status_name(st), retry,
              s3v_status_name(cases[i].want), cases[i].retry);
    }
}

static void test_backoff(void)
{
    CHECK(s3_backoff_ceiling_ms(0, 25, 2000) == 0, "no delay before the first try");
    uint64_t want[] = {25, 50, 100, 200, 400, 800, 1600, 2000, 2000};
    for (unsigned i = 0; i < 9; i++)
        CHECK(s3_backoff_ceiling_ms(i + 1, 25, 2000) == want[i], "ceiling %u = %llu", i + 1,
              (unsigned long long)s3_backoff_ceiling_ms(i + 1, 25, 2000));
    CHECK(s3_backoff_ceiling_ms(1000, 25, 2000) == 2000, "huge retry numbers stay at the cap (no overflow)");
    CHECK(s3_backoff_ceiling_ms(3, 100, 100) == 100, "cap equal to base");

    /* full jitter: uniform on [0, ceiling], so the mean is ceiling/2 and small values happen */
    s3v_rng rng;
    s3v_rng_seed(&rng, 7);
    const int n = 20000;
    uint64_t sum = 0, max = 0, min = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        uint64_t d = s3_backoff_ms(4, 25, 2000, &rng); /* ceiling 200 */
        sum += d;
        if (d > max) max = d;
        if (d < min) min = d;
    }
    double mean = (double)sum / n;
    CHECK(max <= 200, "never above the ceiling (max %llu)", (unsigned long long)max);
    CHECK(min <= 2, "jitter reaches near zero (min %llu)", (unsigned long long)min);
    CHECK(max >= 198, "jitter reaches near the ceiling (max %llu)", (unsigned long long)max);
    CHECK(mean > 95 && mean < 105, "mean %.1f close to 100", mean);
}

static void test_latency_and_hedge(void)
{
    s3_latency l;
    memset(&l, 0, sizeof l);
    CHECK(s3_latency_quantile(&l, 0.95) == 0, "empty quantile is 0");
    CHECK(s3_hedge_threshold_us(&l, 50) == S3_HEDGE_COLD_MS * 1000ull, "cold threshold");
    CHECK(s3_hedge_threshold_us(&l, 400) == 400000, "floor above the cold threshold");
    for (int i = 1; i <= 100; i++) s3_latency_add(&l, (uint64_t)i * 1000); /* 1..100 ms */
    CHECK(s3_latency_quantile(&l, 0.5) == 50000, "p50 %llu",
          (unsigned long long)s3_latency_quantile(&l, 0.5));
    CHECK(s3_latency_quantile(&l, 0.95) == 95000, "p95 %llu",
          (unsigned long long)s3_latency_quantile(&l, 0.95));
    CHECK(s3_latency_quantile(&l, 1.0) == 100000, "max");
    CHECK(s3_latency_quantile(&l, 0.0) == 1000, "min");
    CHECK(s3_hedge_threshold_us(&l, 50) == 95000, "threshold = p95 above the floor");
    CHECK(s3_hedge_threshold_us(&l, 200) == 200000, "threshold = floor above p95");
    /* the window forgets old samples */
    for (int i = 0; i < S3_LATENCY_WINDOW; i++) s3_latency_add(&l, 5000);
    CHECK(l.n == S3_LATENCY_WINDOW && s3_latency_quantile(&l, 0.95) == 5000, "window of recent samples");
    CHECK(s3_hedge_threshold_us(&l, 50) == 50000, "fast store: the floor holds");
    s3_latency_add(&l, UINT64_MAX);
    CHECK(s3_latency_quantile(&l, 1.0) == UINT32_MAX, "huge sample saturates");
    /* few samples: still the cold threshold */
    s3_latency few;
    memset(&few, 0, sizeof few);
    for (int i = 0; i < S3_LATENCY_MIN_N - 1; i++) s3_latency_add(&few, 1000);
    CHECK(s3_hedge_threshold_us(&few, 10) == S3_HEDGE_COLD_MS * 1000ull, "too few samples");
    s3_latency_add(&few, 1000);
    CHECK(s3_hedge_threshold_us(&few, 10) == 10000, "enough samples: learned");
}

int main(void)
{
    test_classify();
    test_backoff();
    test_latency_and_hedge();
    return TEST_SUMMARY();
}
