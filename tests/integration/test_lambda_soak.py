#!/usr/bin/env python3
"""Soak: 10,000 invocations through the local Lambda (emulator) into one runtime process, mixing good
requests (QueryVectors, GetVectors, ListVectors, GetIndex; direct and HTTP API shapes) with bad ones
(validation errors, malformed JSON, unknown index, names like ../x), on an index in moto S3.

Every answer is checked (right result or right error), no invocation restarts the runtime, and the
runtime's resident memory (VmRSS, from the emulator's stats) is flat: it may grow by at most
RSS_GROWTH_KB between invocation 1,000 and invocation 10,000. Why that bound: by invocation 1,000 the
warm state is complete (the manifest and centroids are loaded, every cluster of the 3,000-vector
index has been fetched into the cluster cache, whose budget is larger than the index, and every
reusable buffer has reached its working size); each invocation frees everything it allocates
(request trees, results) and buffers that grew past 1 MiB are released. What remains is allocator
noise (glibc free lists, fragmentation), which we allow 1 MiB of (measured: 0 kB). A leak of 120 bytes
per invocation - one trace id string, which is exactly what glibc's setenv() leaked per invocation before
the runtime stopped using it - adds 1.05 MiB over the 9,000 invocations measured and fails the test.

Prints "N passed, N failed"; exits non-zero on failure. Every server is stopped at the end."""
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_lib import (DIM, IX, VB, Emulator, MotoServer, build_index, check, demo_records, lambda_env,  # noqa: E402
                        moto_deployment, run_all, test, write_jsonl)

TOTAL = 10000
CHECKPOINT = 1000
RSS_GROWTH_KB = 1024
CTX = {}


def http_event(operation, body):
    return {"version": "2.0", "routeKey": "POST /{operation}", "rawPath": f"/{operation}", "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": f"/{operation}"},
                               "domainName": "soak.execute-api.us-east-1.amazonaws.com"},
            "body": json.dumps(body), "isBase64Encoded": False}


def make_request(i, rnd, records, queries):
    """(payload, checker(status, headers, body bytes) -> bool, good?)"""
    kind = i % 20
    base = {"vectorBucketName": VB, "indexName": IX}
    if kind in (0, 1, 2, 3, 4, 5, 6, 7):
        q = queries[rnd.randrange(len(queries))]
        body = dict(base, topK=10, queryVector={"float32": q}, returnMetadata=kind % 2 == 0,
                    returnDistance=True)
        if kind in (6, 7):
            def ok(st, h, b):
                r = json.loads(b)
                if r.get("statusCode") != 200:
                    return False
                return len(json.loads(r["body"])["vectors"]) == 10
            return http_event("QueryVectors", body), ok, True
        return dict(body, operation="QueryVectors"), lambda st, h, b: len(json.loads(b).get("vectors", [])) == 10, True
    if kind in (8, 9):
        keys = [f"doc-{rnd.randrange(len(records))}" for _ in range(5)]
        return (dict(base, operation="GetVectors", keys=keys, returnData=True, returnMetadata=True),
                lambda st, h, b: [v["key"] for v in json.loads(b)["vectors"]] == keys, True)
    if kind == 10:
        return (dict(base, operation="ListVectors", maxResults=50, segmentCount=4, segmentIndex=rnd.randrange(4)),
                lambda st, h, b: len(json.loads(b)["vectors"]) == 50, True)
    if kind == 11:
        return (dict(base, operation="GetIndex"), lambda st, h, b: json.loads(b)["index"]["dimension"] == DIM, True)
    if kind == 12:
        return (dict(base, operation="QueryVectors", topK=0, queryVector={"float32": queries[0]}),
                lambda st, h, b: json.loads(b).get("errorType") == "ValidationException", False)
    if kind == 13:
        return ({"body": '{"operation": "QueryVectors", "topK": ' + str(i)},
                lambda st, h, b: json.loads(b).get("errorType") == "ValidationException", False)
    if kind == 14:
        return (dict(base, operation="QueryVectors", topK=3, queryVector={"float32": [0.5] * (DIM + 3)}),
                lambda st, h, b: json.loads(b).get("errorType") == "ValidationException", False)
    if kind == 15:
        return (dict(base, operation="GetIndex", indexName="../x"),
                lambda st, h, b: json.loads(b).get("errorType") == "ValidationException", False)
    if kind == 16:
        body = dict(base, topK="ten", queryVector={"float32": queries[1]})
        return (http_event("QueryVectors", body),
                lambda st, h, b: json.loads(b)["headers"].get("x-amzn-ErrorType") == "ValidationException", False)
    if kind == 17 and i % 100 == 17:  # unknown index: one manifest GET each time, so keep it rare
        return (dict(base, operation="GetIndex", indexName=f"absent-{i}"),
                lambda st, h, b: json.loads(b).get("errorType") == "NotFoundException", False)
    if kind == 18:
        return ({"operation": "Frobnicate"},
                lambda st, h, b: json.loads(b).get("errorType") == "UnknownOperationException", False)
    return (dict(base, operation="ListVectors", maxResults=1000, returnMetadata=True),
            lambda st, h, b: len(json.loads(b)["vectors"]) == 1000, True)


@test
def ten_thousand_invocations_with_flat_memory():
    emu = CTX["emu"]
    rnd = random.Random(1234)
    records = CTX["records"]
    queries = [[x + rnd.gauss(0, 0.2) for x in records[rnd.randrange(len(records))]["data"]] for _ in range(300)]
    pid = None
    bad_answers = []
    good = bad = 0
    rss = {}
    t0 = time.time()
    for i in range(1, TOTAL + 1):
        payload, ok, is_good = make_request(i, rnd, records, queries)
        raw = isinstance(payload, bytes)
        status, headers, body = emu.invoke(payload, raw=raw, keepalive=True)
        try:
            passed = status == 200 and headers.get("X-Amz-Function-Error") is None and ok(status, headers, body)
        except (ValueError, KeyError, TypeError):
            passed = False
        if not passed and len(bad_answers) < 5:
            bad_answers.append((i, status, body[:200]))
        good += passed and is_good
        bad += passed and not is_good
        if i == 1:
            pid = emu.pid()
        if i % 1000 == 0:
            rss[i] = emu.rss_kb()
    took = time.time() - t0
    check(not bad_answers, f"every answer right; first wrong ones: {bad_answers}")
    stats = emu.stats()
    check(emu.pid() == pid and stats["restarts"] == 0,
          f"one runtime process for all {TOTAL} invocations (pid {pid} -> {emu.pid()}, {stats['restarts']} restarts)")
    check(stats["counts"].get("ok", 0) >= TOTAL, f"all invocations completed ok: {stats['counts']}")
    growth = rss[TOTAL] - rss[CHECKPOINT]
    print(f"  {TOTAL} invocations in {took:.1f} s ({good} good, {bad} bad answered as expected); VmRSS "
          f"{rss[CHECKPOINT]} kB at {CHECKPOINT}, {rss[TOTAL]} kB at {TOTAL} (growth {growth} kB, "
          f"bound {RSS_GROWTH_KB} kB); every 1000: {[rss[k] for k in sorted(rss)]}", flush=True)
    check(growth <= RSS_GROWTH_KB, f"resident memory flat: grew {growth} kB between {CHECKPOINT} and {TOTAL}")


def main():
    with tempfile.TemporaryDirectory(prefix="s3vec-lambda-soak-") as tmp, MotoServer() as moto:
        env, root = moto_deployment(moto)
        data = Path(tmp) / "demo.jsonl"
        CTX["records"] = demo_records()
        write_jsonl(data, CTX["records"])
        build_index(f"{root}/{VB}/{IX}", data, env)
        with Emulator(env=lambda_env(env, root, S3VEC_DEFAULT_INDEX=f"{VB}/{IX}", S3VEC_LOG="warn"),
                      args=["--timeout", "30"]) as emu:
            CTX["emu"] = emu
            rc = run_all("test_lambda_soak")
    return rc


if __name__ == "__main__":
    sys.exit(main())
