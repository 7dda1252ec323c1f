/* bootstrap/main.c: the Lambda custom runtime: configuration, INIT, and the invocation loop.
 *
 * INIT: read the environment (bootstrap/config.h), choose the kernels, open the storage, create the
 * handler and, when S3VEC_DEFAULT_INDEX is set, open that index. Any failure is posted to
 * /runtime/init/error and the process exits with status 1 (Lambda then starts a new sandbox on the next
 * invocation). Then the loop: /next, hd_handler_invoke, /response or /error, one log line, forever.
 * The process exits only when INIT fails or the Runtime API is gone or reports a non-recoverable state
 * (RT_FATAL); see bootstrap/README.md. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap/config.h"
#include "bootstrap/runtime.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "engine/kernels.h"
#include "handler/handler.h"
#include "s3/s3_storage.h"

#define INIT_INDEX_BUDGET_MS 9000 /* Lambda's init phase lasts at most 10 s */

static const char *env_lookup(const char *name) { return getenv(name); }

static void init_fail(rt_client *rt, const char *type, const char *msg)
{
    s3v_log(S3V_LOG_ERROR, "init failed: %s: %s", type, msg);
    if (rt) {
        rt_post_init_error(rt, type, msg);
        rt_client_close(rt);
    }
    exit(1);
}

/* Absolute monotonic deadline of an invocation from its wall-clock deadline. */
static uint64_t deadline_ns(uint64_t epoch_ms)
{
    if (!epoch_ms) return S3V_NO_DEADLINE;
    uint64_t now_ms = s3v_wall_ms();
    uint64_t left = epoch_ms > now_ms ? epoch_ms - now_ms : 0;
    return s3v_now_ns() + left * 1000000u;
}

/* _X_AMZN_TRACE_ID for the invocation. setenv() cannot be used: glibc keeps every distinct string
 * ever passed to it (so that old getenv() pointers stay valid), which with a new trace id per invocation
 * grows the heap by ~120 bytes per invocation forever. Instead one static buffer is installed with
 * putenv() (which does not copy) and rewritten in place. */
#define TRACE_VAR "_X_AMZN_TRACE_ID="
static char trace_env[sizeof TRACE_VAR + RT_TRACE_MAX];
static int trace_installed;

static void set_trace(const rt_invocation *inv)
{
    if (inv->has_trace_id && inv->trace_id[0]) {
        snprintf(trace_env, sizeof trace_env, "%s%s", TRACE_VAR, inv->trace_id);
        if (!trace_installed && putenv(trace_env) == 0) trace_installed = 1;
    } else if (trace_installed) {
        unsetenv("_X_AMZN_TRACE_ID");
        trace_installed = 0;
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t t_start = s3v_now_ns();
    s3v_alloc_tune();
    signal(SIGPIPE, SIG_IGN);
    char msg[1024];
    bs_config cfg;
    int cfg_rc = bs_config_load(&cfg, msg, sizeof msg);
    s3v_log_set_level(cfg_rc == 0 ? cfg.log_level : S3V_LOG_INFO);
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        s3v_log(S3V_LOG_ERROR,
                "AWS_LAMBDA_RUNTIME_API is not set: this program runs as a Lambda custom runtime");
        return 1;
    }
    rt_client *rt = rt_client_open(api);
    if (!rt) {
        s3v_log(S3V_LOG_ERROR, "cannot set up the Runtime API client for %s", api);
        return 1;
    }
    if (cfg_rc != 0) init_fail(rt, "Runtime.ConfigError", msg);

    const kern_table *kt = kern_init(cfg.force_scalar);
    s3v_storage *st = NULL;
    s3v_status rc = s3_storage_open_any(cfg.storage, 0, env_lookup, &st);
    if (rc != S3V_OK) {
        snprintf(msg, sizeof msg, "cannot open S3VEC_STORAGE %.300s: %s", cfg.storage, s3v_errmsg(rc));
        init_fail(rt, "Runtime.ConfigError", msg);
    }
    /* a second handle (its own connections) for reading the log while a query searches */
    s3v_storage *probe_st = NULL;
    s3v_status prc = s3_storage_open_any(cfg.storage, 0, env_lookup, &probe_st);
    if (prc != S3V_OK) {
        s3v_log(S3V_LOG_WARN, "cannot open a second storage handle (%s); queries read the log first",
                s3v_errmsg(prc));
        probe_st = NULL;
    }
    hd_config hc = {.cache_bytes = cfg.cache_mb << 20,
                    .fresh_ms = cfg.fresh_ms,
                    .max_open_indexes = cfg.max_open,
                    .region = cfg.region,
                    .account = cfg.account,
                    .direct_errors = cfg.direct_errors,
                    .allow_writes = cfg.allow_writes,
                    .tail_ms = cfg.tail_ms,
                    .tail_max_bytes = cfg.tail_mb << 20,
                    .tmp_dir = cfg.tmp_dir,
                    .compact_max_bytes = cfg.tail_mb << 20,
                    .probe_storage = probe_st};
    hd_handler *h = NULL;
    rc = hd_handler_new(&hc, st, &h);
    if (rc != S3V_OK) init_fail(rt, "Runtime.InitError", s3v_errmsg(rc));
    double ms_ready = (double)(s3v_now_ns() - t_start) / 1e6;
    double ms_index = 0;
    if (cfg.default_index[0]) {
        uint64_t t0 = s3v_now_ns();
        rc = hd_handler_preload(h, cfg.default_index, s3v_deadline_in_ms(INIT_INDEX_BUDGET_MS));
        ms_index = (double)(s3v_now_ns() - t0) / 1e6;
        if (rc != S3V_OK) {
            snprintf(msg, sizeof msg, "cannot open the default index %s: %s", cfg.default_index,
                     s3v_errmsg(rc));
            init_fail(rt, rc == S3V_ERR_INVALID ? "Runtime.ConfigError" : "Runtime.IndexLoadError", msg);
        }
    }
    s3v_log(S3V_LOG_INFO,
            "init: ready in %.2f ms (+ %.2f ms default index %s); storage %s, kernels %s, cache %zu MiB, "
            "freshness %u ms, log read every %u ms, direct errors as %s, %s",
            ms_ready, ms_index, cfg.default_index[0] ? cfg.default_index : "(none)", cfg.storage, kt->name,
            cfg.cache_mb, cfg.fresh_ms, cfg.tail_ms,
            cfg.direct_errors == HD_ERROR_MODE_FUNCTION ? "function errors" : "payloads",
            cfg.allow_writes ? "writes allowed" : "read-only");

    static rt_invocation inv;
    for (;;) {
        if (rt_next(rt, &inv) != RT_OK) {
            s3v_log(S3V_LOG_ERROR, "runtime api unavailable; exiting");
            break;
        }
        uint64_t t0 = s3v_now_ns();
        set_trace(&inv);
        if (S3V_LOG_ENABLED(S3V_LOG_DEBUG))
            s3v_log(S3V_LOG_DEBUG,
                    "event req=%s bytes=%zu deadline_in_ms=%lld client_context=%zu cognito_identity=%zu "
                    "tenant=%s invocation_id=%s trace=%s",
                    inv.request_id, inv.event.len,
                    inv.deadline_epoch_ms ? (long long)inv.deadline_epoch_ms - (long long)s3v_wall_ms()
                                          : -1LL,
                    inv.has_client_context ? strlen(inv.client_context) : 0,
                    inv.has_cognito_identity ? strlen(inv.cognito_identity) : 0,
                    inv.has_tenant_id ? inv.tenant_id : "-", inv.invocation_id[0] ? inv.invocation_id : "-",
                    inv.has_trace_id ? inv.trace_id : "-");
        rt_result rr;
        if (inv.event_too_large) {
            rr = rt_post_error(rt, &inv, "Runtime.RequestTooLarge",
                               "the event is larger than the runtime accepts");
            s3v_log(S3V_LOG_WARN, "invoke req=%s event over %u bytes rejected", inv.request_id, RT_EVENT_MAX);
            if (rr == RT_FATAL) break;
            continue;
        }
        hd_invocation hi = {inv.request_id, inv.function_arn[0] ? inv.function_arn : NULL,
                            deadline_ns(inv.deadline_epoch_ms)};
        hd_response resp;
        rc = hd_handler_invoke(h, &hi, inv.event.ptr ? inv.event.ptr : (const uint8_t *)"", inv.event.len,
                               &resp);
        double ms_handler = (double)(s3v_now_ns() - t0) / 1e6;
        if (rc != S3V_OK) {
            rr = rt_post_error(rt, &inv, "Runtime.HandlerError", s3v_errmsg(rc));
            s3v_log(S3V_LOG_ERROR, "invoke req=%s handler failed: %s", inv.request_id, s3v_errmsg(rc));
            if (rr == RT_FATAL) break;
            continue;
        }
        const char *outcome = "response";
        if (resp.function_error) {
            rr = rt_post_error(rt, &inv, resp.error_type, resp.error_message);
            outcome = "function-error";
        } else {
            rr = rt_post_response(rt, &inv, resp.payload, resp.payload_size);
            if (rr == RT_TOO_LARGE) {
                snprintf(msg, sizeof msg,
                         "the response of %zu bytes was refused as too large by the Runtime API",
                         resp.payload_size);
                rr = rt_post_error(rt, &inv, "Function.ResponseSizeTooLarge", msg);
                outcome = "too-large";
            }
        }
        double ms = (double)(s3v_now_ns() - t0) / 1e6;
        if (resp.error_type)
            s3v_log(S3V_LOG_INFO,
                    "invoke req=%s kind=%s op=%s index=%s status=%d error=%s %s=%s engine_ms=%.3f "
                    "handler_ms=%.3f "
                    "total_ms=%.3f in=%zu out=%zu msg=\"%s\"",
                    inv.request_id, hd_event_kind_name(resp.kind), resp.operation[0] ? resp.operation : "-",
                    resp.index[0] ? resp.index : "-", resp.http_status, resp.error_type, "sent", outcome,
                    resp.ms_engine, ms_handler, ms, inv.event.len, resp.payload_size, resp.error_message);
        else
            s3v_log(S3V_LOG_INFO,
                    "invoke req=%s kind=%s op=%s index=%s status=%d results=%u sent=%s engine_ms=%.3f "
                    "handler_ms=%.3f total_ms=%.3f in=%zu out=%zu",
                    inv.request_id, hd_event_kind_name(resp.kind), resp.operation,
                    resp.index[0] ? resp.index : "-", resp.http_status, resp.results, outcome, resp.ms_engine,
                    ms_handler, ms, inv.event.len, resp.payload_size);
        if (rr == RT_FATAL) break;
    }
    hd_handler_free(h);
    s3v_storage_close(probe_st);
    s3v_storage_close(st);
    s3v_buf_free(&inv.event);
    rt_client_close(rt);
    return 1;
}
