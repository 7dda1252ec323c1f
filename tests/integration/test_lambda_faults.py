#!/usr/bin/env python3
"""Faults around the runtime, end to end.

With the local Lambda (emulator) and moto S3 behind the fault proxy:
  - a runtime that crashes (SIGSEGV) between or during invocations is replaced and the next invocation
    is served; a runtime that hangs (SIGSTOP) is timed out by Lambda and replaced;
  - slow S3 is bounded by the invocation deadline: the answer is a RequestTimeoutException before
    Lambda's own timeout, from the same process; transient S3 errors (503) are retried invisibly.
With a scripted Runtime API (lambda_lib/fake_runtime.py) in place of Lambda:
  - transport failures and 503 on /next are retried; /next waits as long as it takes (no timeout);
  - the invocation id is echoed on the response; errors carry Lambda-Runtime-Function-Error-Type and
    the {errorMessage, errorType, stackTrace} body;
  - a 413 on the response post becomes an error post and the loop goes on;
  - 500 from the Runtime API, or a Runtime API that stays unreachable, ends the process (exit 1);
  - a bad configuration is posted to /runtime/init/error and the process exits.

Prints "N passed, N failed"; exits non-zero on failure. Every server and process is stopped at the end."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_lib import (BOOTSTRAP, DIM, IX, VB, Emulator, Fault, FaultProxy, MotoServer, build_index,  # noqa: E402
                        check, demo_records, lambda_env, moto_deployment, run_all, test, write_jsonl)
from lambda_lib.fake_runtime import FakeRuntimeApi  # noqa: E402

CTX = {}


def query(i):
    """A query whose vector is new (the cache is off, so clusters are fetched from S3 each time)."""
    rec = CTX["records"][i % len(CTX["records"])]
    return {"operation": "QueryVectors", "vectorBucketName": VB, "indexName": IX, "topK": 5,
            "queryVector": {"float32": rec["data"]}}


def answered(resp, i):
    return isinstance(resp, dict) and len(resp.get("vectors", [])) == 5 and \
        resp["vectors"][0]["key"] == CTX["records"][i % len(CTX["records"])]["key"]


def in_thread(fn, *args):
    box = {}

    def run():
        box["value"] = fn(*args)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


@test
def crash_between_invocations():
    with Emulator(env=CTX["lenv"]) as emu:
        status, _, resp = emu.invoke_json(query(1))
        check(status == 200 and answered(resp, 1), "first answer")
        pid = emu.pid()
        os.kill(pid, signal.SIGSEGV)
        end = time.monotonic() + 15  # wait until the crash is complete (slow under sanitizers)
        while emu.sandbox()["state"] != "stopped" and time.monotonic() < end:
            time.sleep(0.05)
        status, headers, resp = emu.invoke_json(query(2))
        check(status == 200 and headers.get("X-Amz-Function-Error") is None and answered(resp, 2),
              f"served after a crash: {resp}")
        check(emu.pid() != pid and emu.stats()["restarts"] == 1, "by a new runtime process")


@test
def crash_and_hang_during_invocations():
    proxy = CTX["proxy"]
    with Emulator(env=dict(CTX["lenv_proxy"]), args=["--timeout", "3"]) as emu:
        status, _, resp = emu.invoke_json(query(3))
        check(status == 200 and answered(resp, 3), "warm-up through the proxy")
        proxy.set_faults([Fault("delay", methods="GET", ranged=True, delay_ms=1500)])
        try:
            t, box = in_thread(emu.invoke_json, query(4))
            time.sleep(0.5)
            os.kill(emu.pid(), signal.SIGSEGV)  # crash while the query waits for S3
            t.join(20)
            status, headers, resp = box.get("value", (None, {}, None))
            check(headers.get("X-Amz-Function-Error") == "Unhandled" and resp.get("errorType") == "Runtime.ExitError",
                  f"the crashed invocation reports Runtime.ExitError: {resp}")
            t, box = in_thread(emu.invoke_json, query(5))
            time.sleep(0.3)
            sb = emu.sandbox()
            os.kill(sb["pid"], signal.SIGSTOP)  # hang: Lambda's timeout must end it
            t.join(20)
            status, headers, resp = box.get("value", (None, {}, None))
            check(resp.get("errorType") == "Sandbox.Timedout", f"the hung invocation times out: {resp}")
        finally:
            proxy.clear_faults()
        status, headers, resp = emu.invoke_json(query(6))
        check(status == 200 and answered(resp, 6), f"served after the crash and the hang: {resp}")
        check(emu.stats()["restarts"] >= 2, f"new processes: {emu.stats()['restarts']} restarts")


@test
def deadline_bounds_s3_work():
    proxy = CTX["proxy"]
    with Emulator(env=dict(CTX["lenv_proxy"]), args=["--timeout", "2"]) as emu:
        status, _, resp = emu.invoke_json(query(7))
        check(status == 200 and answered(resp, 7), "warm-up")
        pid = emu.pid()
        proxy.set_faults([Fault("delay", methods="GET", ranged=True, delay_ms=6000)])
        try:
            t0 = time.monotonic()
            status, headers, resp = emu.invoke_json(query(8))
            took = time.monotonic() - t0
        finally:
            proxy.clear_faults()
        check(headers.get("X-Amz-Function-Error") is None and resp.get("errorType") == "RequestTimeoutException"
              and resp.get("statusCode") == 408, f"a RequestTimeoutException, not a Lambda timeout: {resp}")
        check(took < 2.0, f"answered before the 2 s function timeout ({took:.2f} s)")
        inv = emu.stats()["invocations"][-1]
        check(inv["status"] == "ok", f"the emulator saw a normal response ({inv['status']})")
        # transient S3 errors are retried inside the invocation
        proxy.set_faults([Fault("503", first=2, methods="GET", ranged=True)])
        try:
            status, _, resp = emu.invoke_json(query(9))
        finally:
            proxy.clear_faults()
        check(status == 200 and answered(resp, 9), f"two 503 SlowDown retried: {str(resp)[:200]}")
        check(emu.pid() == pid, "same process throughout")


# ---- scripted Runtime API ----

def start_bootstrap(api, env_extra=None, drop=()):
    env = {"AWS_LAMBDA_RUNTIME_API": api.address, "S3VEC_STORAGE": CTX["local_root"], "S3VEC_LOG": "info",
           "PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
    env.update(env_extra or {})
    for k in drop:
        env.pop(k, None)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(BOOTSTRAP)], env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def stop(proc, log):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.close()
    return text


def event(payload, delay=0.0, headers=None):
    return ("event", payload, headers or {}, delay)


GET_INDEX = {"operation": "GetIndex", "vectorBucketName": VB, "indexName": IX}


@test
def runtime_api_transient_failures_and_echo():
    with FakeRuntimeApi() as api:
        api.next_script = ["drop", "503", event(GET_INDEX), event(GET_INDEX, delay=5.0),
                          event(dict(GET_INDEX, indexName="../x", errorMode="function"))]
        proc, log = start_bootstrap(api)
        ok = api.wait_for(lambda: len(api.posts) >= 3, timeout=30)
        text = stop(proc, log)
        check(ok, f"three posts arrived ({len(api.posts)}): {text[-1500:]}")
        nexts = [r for r in api.requests if r["method"] == "GET"]
        check(len(nexts) >= 5, f"/next retried after a dropped connection and a 503 ({len(nexts)} GETs)")
        p1, p2, p3 = api.posts[:3]
        check(p1["path"].endswith("/invocation/req-1/response") and p1["headers"].get("lambda-runtime-invocation-id")
              == "inv-1", f"response to req-1 with the invocation id echoed: {p1['path']} {p1['headers']}")
        check(json.loads(p1["body"])["index"]["indexName"] == IX, "the answer")
        check(p2["path"].endswith("/invocation/req-2/response"), "an event handed out after 5 s is still served")
        check(p3["path"].endswith("/invocation/req-3/error")
              and p3["headers"].get("lambda-runtime-function-error-type") == "ValidationException"
              and p3["headers"].get("lambda-runtime-invocation-id") == "inv-3", f"error post: {p3['headers']}")
        body = json.loads(p3["body"])
        check(body.get("errorType") == "ValidationException" and "indexName" in body.get("errorMessage", "")
              and body.get("stackTrace") == [], f"error body: {body}")
        check("retrying" in text, "the retries are logged")


@test
def response_too_large_then_continue():
    with FakeRuntimeApi() as api:
        api.next_script = [event(GET_INDEX), event(GET_INDEX)]
        api.post_script = ["413", "202", "202"]
        proc, log = start_bootstrap(api)
        ok = api.wait_for(lambda: len(api.posts) >= 3, timeout=20)
        text = stop(proc, log)
        check(ok, f"three posts ({len(api.posts)}): {text[-1000:]}")
        p = api.posts
        check(p[0]["path"].endswith("/req-1/response") and p[1]["path"].endswith("/req-1/error")
              and p[1]["headers"].get("lambda-runtime-function-error-type") == "Function.ResponseSizeTooLarge",
              f"413 on the response -> an error post: {[x['path'] for x in p]}")
        check(p[2]["path"].endswith("/req-2/response"), "the next invocation is served")


@test
def runtime_api_500_and_unreachable_exit():
    with FakeRuntimeApi() as api:
        api.next_script = [event(GET_INDEX), "500"]
        proc, log = start_bootstrap(api)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        text = stop(proc, log)
        check(rc == 1, f"exit 1 after a 500 from /next (rc {rc}): {text[-800:]}")
        check(len(api.posts) == 1, "the first invocation was answered before")
    with FakeRuntimeApi() as api:
        api.next_script = ["drop"] * 20
        t0 = time.monotonic()
        proc, log = start_bootstrap(api)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        text = stop(proc, log)
        gets = sum(1 for r in api.requests if r["method"] == "GET")
        check(rc == 1 and gets == 6, f"gives up after 1 + 5 retries (rc {rc}, {gets} GETs, {took:.2f} s): {text[-500:]}")
    # no Runtime API at all (port closed)
    with FakeRuntimeApi() as api:
        addr = api.address
    env = {"AWS_LAMBDA_RUNTIME_API": addr, "S3VEC_STORAGE": CTX["local_root"]}
    p = subprocess.run([str(BOOTSTRAP)], env=env, capture_output=True, timeout=20)
    check(p.returncode == 1, f"unreachable Runtime API: exit {p.returncode}")


@test
def init_error_posted():
    with FakeRuntimeApi() as api:
        proc, log = start_bootstrap(api, drop=("S3VEC_STORAGE",))
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        stop(proc, log)
        posts = [p for p in api.posts if p["path"].endswith("/runtime/init/error")]
        check(rc == 1 and len(posts) == 1, f"init error posted and exit 1 (rc {rc}, posts {len(api.posts)})")
        if posts:
            check(posts[0]["headers"].get("lambda-runtime-function-error-type") == "Runtime.ConfigError"
                  and "S3VEC_STORAGE" in json.loads(posts[0]["body"])["errorMessage"], "ConfigError naming the variable")
        check(not any(r["path"].endswith("/invocation/next") for r in api.requests), "no /next after an init error")
    with FakeRuntimeApi() as api:
        proc, log = start_bootstrap(api, {"S3VEC_DEFAULT_INDEX": f"{VB}/absent-index"})
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        stop(proc, log)
        check(rc == 1 and api.posts and api.posts[0]["headers"].get("lambda-runtime-function-error-type")
              == "Runtime.IndexLoadError", "a default index that cannot be opened is an init error")


def main():
    with tempfile.TemporaryDirectory(prefix="s3vec-lambda-faults-") as tmp, MotoServer() as moto:
        env, root = moto_deployment(moto)
        data = Path(tmp) / "demo.jsonl"
        CTX["records"] = demo_records(n=2000)
        write_jsonl(data, CTX["records"])
        build_index(f"{root}/{VB}/{IX}", data, env)
        CTX["local_root"] = str(Path(tmp) / "root")
        build_index(f"{CTX['local_root']}/{VB}/{IX}", data)
        with FaultProxy(upstream_port=moto.port) as proxy:
            CTX["proxy"] = proxy
            CTX["lenv"] = lambda_env(env, root, S3VEC_CACHE_MB=0, S3VEC_DEFAULT_INDEX=f"{VB}/{IX}")
            CTX["lenv_proxy"] = dict(CTX["lenv"], AWS_ENDPOINT_URL_S3=proxy.endpoint)
            rc = run_all("test_lambda_faults")
    return rc


if __name__ == "__main__":
    sys.exit(main())
