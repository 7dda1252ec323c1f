#!/usr/bin/env python3
"""End to end: every sample event in events/ through the local Lambda (deploy/local/emulator.py), our
bootstrap, and moto S3 (SigV4 verified). Each answer is compared with the engine's own answer for the
same request (the s3vec CLI on the same index). Also: the runtime's log (one line per event, no
request bodies), the Runtime API headers it reads (client context, invocation id, trace id), and
start-up failures reported through /runtime/init/error.

Prints "N passed, N failed"; exits non-zero on failure. Every server is stopped at the end."""
import base64
import json
import os
import re
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_lib import (IX, VB, Emulator, MotoServer, R, build_index, check, demo_records, lambda_env,  # noqa: E402
                        load_event, moto_deployment, run_all, s3vec_json, test, write_jsonl, EVENTS_DIR)

CTX = {}


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def f32s(xs):
    return [f32(x) for x in xs]


def same_hits(ours, engine, with_distance=True, with_metadata=True):
    """Keys in the same order, distances equal as float32, metadata equal."""

    if len(ours) != len(engine):
        return False
    for a, b in zip(ours, engine):
        if a["key"] != b["key"]:
            return False
        if with_distance and f32(a["distance"]) != f32(b["distance"]):
            return False
        if with_metadata and a.get("metadata") != b.get("metadata"):
            return False
    return True


def engine_query(event_body, k):
    vec = json.dumps(event_body["queryVector"]["float32"])
    args = ["query", CTX["loc"], "--vector", vec, "-k", str(k), "--metadata"]
    if "filter" in event_body:
        args += ["--filter", json.dumps(event_body["filter"])]
    return s3vec_json(args, CTX["env"])["vectors"]


def invoke_event(name):
    emu = CTX["emu"]
    status, headers, body = emu.invoke(load_event(name))
    check(status == 200, f"{name}: invoke status {status}")
    return headers, json.loads(body)


def proxy_body(name, resp):
    check(isinstance(resp, dict) and resp.get("statusCode") == 200, f"{name}: statusCode 200: {str(resp)[:300]}")
    check(resp.get("headers", {}).get("Content-Type") == "application/json", f"{name}: content type")
    check(resp.get("isBase64Encoded") is False, f"{name}: isBase64Encoded false")
    return json.loads(resp["body"])


@test
def every_event_shape_answers_like_the_engine():
    seen = set()
    for name in ["direct-query-vectors.json", "direct-body-only.json", "aurora-query-vectors.json",
                 "apigw-rest-v1-query-vectors.json", "http-api-v2-query-vectors.json",
                 "http-api-v2-base64-query-vectors.json", "function-url-query-vectors.json",
                 "direct-query-vectors-filter.json"]:
        seen.add(name)
        headers, resp = invoke_event(name)
        check(headers.get("X-Amz-Function-Error") is None, f"{name}: no function error")
        event = load_event(name)
        if "body" in event:
            raw = event["body"]
            if event.get("isBase64Encoded"):
                raw = base64.b64decode(raw).decode()
            request = json.loads(raw)
        else:
            request = event
        out = resp if "vectors" in resp else proxy_body(name, resp)
        engine = engine_query(request, request["topK"])
        check(out.get("distanceMetric") == "cosine", f"{name}: distanceMetric")
        check(len(out["vectors"]) == request["topK"], f"{name}: topK results")
        check(same_hits(out["vectors"], engine), f"{name}: equals the engine's answer\n ours {out['vectors'][:2]}"
                                                 f"\n engine {engine[:2]}")
        if request.get("returnStatistics"):
            st = out.get("statistics", {})
            check(st.get("clustersScanned", 0) >= 1 and "storageRequests" in st and "bytesFetched" in st
                  and "msFetch" in st and "cacheHits" in st, f"{name}: statistics {st}")
        else:
            check("statistics" not in out, f"{name}: no statistics unless asked")

    # GetVectors by ARN: missing key skipped, data and metadata as the engine has them
    name = "direct-get-vectors.json"
    seen.add(name)
    _, resp = invoke_event(name)
    engine = s3vec_json(["get", CTX["loc"], "doc-1", "doc-2", "no-such-doc", "--data", "--metadata"], CTX["env"])
    check([v["key"] for v in resp["vectors"]] == ["doc-1", "doc-2"], f"{name}: keys {resp}")
    check(len(resp["vectors"]) == len(engine["vectors"]) and all(
        a["key"] == b["key"] and a["metadata"] == b["metadata"]
        and f32s(a["data"]["float32"]) == f32s(b["data"]["float32"]) for a, b in zip(resp["vectors"], engine["vectors"])),
        f"{name}: equals the engine's data (as float32) and metadata")

    name = "direct-list-vectors.json"
    seen.add(name)
    _, resp = invoke_event(name)
    engine = s3vec_json(["list", CTX["loc"], "--segment", "0/2", "--max", "10", "--metadata"], CTX["env"])
    check([v["key"] for v in resp["vectors"]] == [v["key"] for v in engine["vectors"]], f"{name}: same page")
    check(resp.get("nextToken") and resp["nextToken"] == engine.get("nextToken"), f"{name}: next token")

    for name in ["function-url-base64-list-vectors.json"]:
        seen.add(name)
        _, resp = invoke_event(name)
        out = proxy_body(name, resp)
        check(len(out["vectors"]) == 5 and "nextToken" in out, f"{name}: 5 vectors and a token")

    for name in ["direct-get-index.json", "http-api-v2-get-index.json"]:
        seen.add(name)
        _, resp = invoke_event(name)
        out = resp if "index" in resp else proxy_body(name, resp)
        idx = out["index"]
        check(idx["dimension"] == 16 and idx["distanceMetric"] == "cosine" and idx["dataType"] == "float32"
              and idx["indexArn"] == f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{VB}/index/{IX}"
              and isinstance(idx["creationTime"], (int, float)), f"{name}: {idx}")

    name = "direct-list-indexes.json"
    seen.add(name)
    _, resp = invoke_event(name)
    check([i["indexName"] for i in resp.get("indexes", [])] == [IX, "second-index"], f"{name}: {resp}")

    name = "direct-error-function-mode.json"
    seen.add(name)
    headers, resp = invoke_event(name)
    check(headers.get("X-Amz-Function-Error") == "Unhandled", f"{name}: function error header")
    check(resp.get("errorType") == "ValidationException" and "indexName" in resp.get("errorMessage", "")
          and resp.get("stackTrace") == [], f"{name}: {resp}")

    all_files = {p.name for p in EVENTS_DIR.glob("*.json")}
    check(all_files == seen, f"every sample event is exercised (missing: {sorted(all_files - seen)})")


@test
def aurora_payload_errors_are_branchable():
    """Direct invocations get errors as payloads by default (what SQL callers branch on)."""
    emu = CTX["emu"]
    event = load_event("aurora-query-vectors.json")
    event["topK"] = 0
    status, headers, body = emu.invoke(event)
    resp = json.loads(body)
    check(status == 200 and headers.get("X-Amz-Function-Error") is None, "payload mode: a normal response")
    check(resp.get("errorType") == "ValidationException" and resp.get("statusCode") == 400
          and resp.get("fieldList", [{}])[0].get("path") == "topK", f"payload error {resp}")
    event = load_event("aurora-query-vectors.json")
    event["indexName"] = "no-such-index"
    _, _, body = emu.invoke(event)
    resp = json.loads(body)
    check(resp.get("errorType") == "NotFoundException" and resp.get("statusCode") == 404, f"not found {resp}")


@test
def runtime_log_and_headers():
    emu = CTX["emu"]
    cc = base64.b64encode(json.dumps({"client": {"app_title": "t"}, "custom": {"k": "v"}}).encode()).decode()
    status, headers, _ = emu.invoke(load_event("direct-get-index.json"),
                                    headers={"X-Amz-Client-Context": cc, "X-Amz-Log-Type": "Tail",
                                             "X-Amzn-Trace-Id": "Root=1-5f000000-0123456789abcdef01234567;Sampled=1"})
    check(status == 200, "invoke with client context")
    rid = headers.get("X-Amzn-Requestid")
    time.sleep(0.3)
    log = emu.log_text()
    check(re.search(rf"event req={rid} .*client_context=[1-9]\d* .*invocation_id=[0-9a-f-]{{36}} "
                    rf"trace=Root=1-5f000000-0123456789abcdef01234567", log) is not None,
          f"debug line shows the headers read: {log[-1500:]}")
    lines = [l for l in log.splitlines() if "[bootstrap]" in l and " invoke req=" in l]
    ids = [re.search(r"invoke req=(\S+)", l).group(1) for l in lines]
    served = [i["request_id"] for i in emu.stats()["invocations"]]
    check(len(ids) == len(set(ids)) and sorted(ids) == sorted(served) and len(ids) >= 10,
          f"exactly one invoke line per event ({len(ids)} lines, {len(served)} invocations)")
    check(all(re.search(r"op=\S+ index=\S+ status=\d+", l) for l in lines), "lines carry op, index, status")
    body_bits = ["queryVector", "float32", "no-such-doc", "genre", "comedy", "$gte",
                 CTX["env"]["AWS_ACCESS_KEY_ID"], CTX["env"]["AWS_SECRET_ACCESS_KEY"]]
    leaked = [b for b in body_bits for l in log.splitlines() if "[bootstrap]" in l and b in l]
    check(not leaked, f"no request bodies or credentials in the log: {leaked[:3]}")
    check(emu.stats()["restarts"] == 0, "one runtime process served everything")


@test
def init_errors_are_reported():
    env = CTX["lenv"]
    with Emulator(env=dict(env, S3VEC_DEFAULT_INDEX=f"{VB}/missing-index")) as emu:
        status, headers, body = emu.invoke(load_event("direct-get-index.json"))
        resp = json.loads(body)
        check(headers.get("X-Amz-Function-Error") == "Unhandled" and resp.get("errorType") == "Runtime.IndexLoadError"
              and "missing-index" in resp.get("errorMessage", ""), f"index load error at init: {resp}")
        check("runtime reported an init error (Runtime.IndexLoadError)" in emu.log_text(), "init/error posted")
        time.sleep(0.6)
        sb = emu.sandbox()
        check(sb["state"] == "stopped", f"the runtime exited after its init error ({sb['state']})")
    with Emulator(env=dict(env, S3VEC_CACHE_MB="lots")) as emu:
        _, headers, body = emu.invoke(load_event("direct-get-index.json"))
        resp = json.loads(body)
        check(resp.get("errorType") == "Runtime.ConfigError" and "S3VEC_CACHE_MB" in resp.get("errorMessage", ""),
              f"config error: {resp}")
    bad = {k: v for k, v in env.items() if k != "S3VEC_STORAGE"}
    with Emulator(env=bad) as emu:
        _, _, body = emu.invoke(load_event("direct-get-index.json"))
        resp = json.loads(body)
        check(resp.get("errorType") == "Runtime.ConfigError" and "S3VEC_STORAGE" in resp.get("errorMessage", ""),
              f"missing storage: {resp}")


def main():
    with tempfile.TemporaryDirectory(prefix="s3vec-lambda-events-") as tmp, MotoServer() as moto:
        env, root = moto_deployment(moto)
        data = Path(tmp) / "demo.jsonl"
        write_jsonl(data, demo_records())
        CTX["moto"] = moto
        CTX["env"] = env
        CTX["loc"] = f"{root}/{VB}/{IX}"
        build_index(CTX["loc"], data, env)
        build_index(f"{root}/{VB}/second-index", data, env, metric="euclidean")
        CTX["lenv"] = lambda_env(env, root, S3VEC_LOG="debug")
        with Emulator(env=dict(CTX["lenv"], S3VEC_DEFAULT_INDEX=f"{VB}/{IX}")) as emu:
            CTX["emu"] = emu
            rc = run_all("test_lambda_events")
    return rc


if __name__ == "__main__":
    sys.exit(main())
