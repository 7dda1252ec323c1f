/* s3/s3_retry.c: retry classification, backoff with full jitter, hedging threshold (see s3_retry.h). */
#include "s3/s3_retry.h"

#include <string.h>

static int code_is(const char *code, const char *want) { return code && strcmp(code, want) == 0; }

s3v_status s3_retry_classify(long http, const char *code, int *retry)
{
    *retry = 0;
    if (code_is(code, "SlowDown") || http == 429 || http == 503) {
        *retry = 1;
        return S3V_ERR_THROTTLED;
    }
    if (code_is(code, "InternalError") || http == 500 || http == 502 || http == 504) {
        *retry = 1;
        return S3V_ERR_REMOTE;
    }
    if (code_is(code, "RequestTimeout")) { /* 400: the socket sat idle too long on S3's side */
        *retry = 1;
        return S3V_ERR_NETWORK;
    }
    if (http == 409 && code_is(code, "ConditionalRequestConflict")) {
        /* A concurrent conditional write or multipart completion on the key: S3 asks for a retry.
         * Retries exhausted, the caller lost the race: S3V_ERR_PRECONDITION. */
        *retry = 1;
        return S3V_ERR_PRECONDITION;
    }
    if (code_is(code, "ExpiredToken") || code_is(code, "InvalidToken") ||
        code_is(code, "InvalidAccessKeyId") || code_is(code, "SignatureDoesNotMatch") ||
        code_is(code, "AccessDenied") || http == 401 || http == 403)
        return S3V_ERR_ACCESS_DENIED;
    if (code_is(code, "NoSuchKey") || code_is(code, "NoSuchBucket") || code_is(code, "NoSuchUpload") ||
        http == 404)
        return S3V_ERR_NOT_FOUND;
    if (http == 412) return S3V_ERR_PRECONDITION;
    if (http == 416) return S3V_ERR_CORRUPT; /* range past the end of the object */
    if (http == 409) return S3V_ERR_CONFLICT;
    if (http == 301 || http == 307 || code_is(code, "PermanentRedirect") ||
        code_is(code, "AuthorizationHeaderMalformed"))
        return S3V_ERR_CONFIG; /* wrong region or endpoint */
    if (http == 501) return S3V_ERR_UNSUPPORTED;
    if (http == 413 || code_is(code, "EntityTooLarge")) return S3V_ERR_TOO_LARGE;
    if (http >= 500) {
        *retry = 1;
        return S3V_ERR_REMOTE;
    }
    if (http >= 400) return S3V_ERR_INVALID;
    return S3V_ERR_REMOTE; /* 1xx/3xx we did not ask for */
}

uint64_t s3_backoff_ceiling_ms(unsigned retry_no, unsigned base_ms, unsigned cap_ms)
{
    if (retry_no == 0) return 0;
    uint64_t c = base_ms;
    for (unsigned i = 1; i < retry_no && c < cap_ms; i++) c *= 2;
    return c < cap_ms ? c : cap_ms;
}

uint64_t s3_backoff_ms(unsigned retry_no, unsigned base_ms, unsigned cap_ms, s3v_rng *rng)
{
    uint64_t ceil = s3_backoff_ceiling_ms(retry_no, base_ms, cap_ms);
    return ceil ? s3v_rng_below(rng, ceil + 1) : 0;
}

void s3_latency_add(s3_latency *l, uint64_t us)
{
    l->us[l->next] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    l->next = (l->next + 1) % S3_LATENCY_WINDOW;
    if (l->n < S3_LATENCY_WINDOW) l->n++;
}

uint64_t s3_latency_quantile(const s3_latency *l, double q)
{
    if (!l->n) return 0;
    uint32_t v[S3_LATENCY_WINDOW];
    memcpy(v, l->us, l->n * sizeof v[0]);
    /* insertion sort: at most 128 values */
    for (size_t i = 1; i < l->n; i++) {
        uint32_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    if (q <= 0) return v[0];
    if (q >= 1) return v[l->n - 1];
    size_t rank = (size_t)(q * (double)l->n + 0.999999); /* nearest rank, 1-based */
    if (rank < 1) rank = 1;
    if (rank > l->n) rank = l->n;
    return v[rank - 1];
}

uint64_t s3_hedge_threshold_us(const s3_latency *l, unsigned min_ms)
{
    uint64_t floor_us = (uint64_t)min_ms * 1000;
    uint64_t t = l->n >= S3_LATENCY_MIN_N ? s3_latency_quantile(l, 0.95) : (uint64_t)S3_HEDGE_COLD_MS * 1000;
    return t > floor_us ? t : floor_us;
}
