#!/usr/bin/env python3
"""Bad input end to end: through the HTTP front (API Gateway HTTP API events) and as direct invocations,
through the emulator and our bootstrap, on an index in moto S3. Each bad request gets the right S3 Vectors
error (type, HTTP status, fieldList path) and the next invocation is served normally by the same runtime
process: malformed JSON, NaN, wrong dimension, topK 0 and over the limit, unknown index, names like
"../x", a 7 MB request body, a wrong type for every request member of every operation, and a large but
legal (5 MB) event.

Prints "N passed, N failed"; exits non-zero on failure. Every server is stopped at the end."""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_lib import (DIM, IX, VB, Emulator, Front, MotoServer, build_index, check, demo_records,  # noqa: E402
                        lambda_env, moto_deployment, run_all, test, write_jsonl)

CTX = {}
VEC = {"float32": [0.25] * DIM}
GOOD = {"vectorBucketName": VB, "indexName": IX, "topK": 3, "queryVector": VEC}


def served_after(what):
    """The next request is answered normally, by the same process."""
    status, _, body = CTX["front"].post("QueryVectors", GOOD)
    ok = status == 200 and len(json.loads(body).get("vectors", [])) == 3
    pid = CTX["emu"].pid()
    check(ok and pid == CTX["pid"], f"after {what}: next request served by the same runtime (pid {pid})")


def http_error(operation, body, want_type, want_status, want_path=None, raw=False, what=None):
    status, headers, data = CTX["front"].post(operation, body, raw=raw)
    what = what or f"{operation} {str(body)[:80]}"
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {}
    ok = status == want_status and headers.get("x-amzn-ErrorType") == want_type and "message" in parsed
    if want_path is not None:
        ok = ok and (parsed.get("fieldList") or [{}])[0].get("path") == want_path
    check(ok, f"HTTP {what}: got {status} {headers.get('x-amzn-ErrorType')} {data[:200]!r}, "
              f"want {want_status} {want_type} {want_path}")
    return parsed


def direct_error(operation, body, want_type, want_status, want_path=None, what=None):
    payload = dict(body, operation=operation)
    status, headers, resp = CTX["emu"].invoke_json(payload)
    what = what or f"{operation} {str(body)[:80]}"
    ok = (status == 200 and headers.get("X-Amz-Function-Error") is None and isinstance(resp, dict)
          and resp.get("errorType") == want_type and resp.get("statusCode") == want_status)
    if want_path is not None:
        ok = ok and (resp.get("fieldList") or [{}])[0].get("path") == want_path
    check(ok, f"direct {what}: got {resp}, want {want_status} {want_type} {want_path}")


@test
def malformed_bodies():
    http_error("QueryVectors", b'{"topK": ', "ValidationException", 400, raw=True, what="truncated JSON")
    http_error("QueryVectors", b"[1, 2, 3]", "ValidationException", 400, raw=True, what="array body")
    http_error("QueryVectors", b"not json at all", "ValidationException", 400, raw=True, what="text body")
    p = http_error("QueryVectors", json.dumps(dict(GOOD, queryVector={"float32": [0.1] * 15 + [float("nan")]})).encode(),
                   "ValidationException", 400, raw=True, what="NaN in the vector")
    check("NaN" in p.get("message", ""), f"the NaN message says why: {p}")
    http_error("QueryVectors", json.dumps(dict(GOOD, queryVector={"float32": [1e39] + [0.1] * 15})).encode(),
               "ValidationException", 400, "queryVector.float32[0]", raw=True, what="float overflow")
    served_after("malformed bodies")
    # the same through a direct invocation whose body is JSON text
    status, _, resp = CTX["emu"].invoke_json({"body": '{"operation": "QueryVectors", "topK": '})
    check(status == 200 and resp.get("errorType") == "ValidationException", f"direct malformed body: {resp}")


@test
def query_limits_and_names():
    for body, path in [(dict(GOOD, topK=0), "topK"), (dict(GOOD, topK=101), "topK"), (dict(GOOD, topK=-5), "topK"),
                       (dict(GOOD, queryVector={"float32": [0.1] * (DIM - 1)}), "queryVector"),
                       (dict(GOOD, queryVector={"float32": [0.0] * DIM}), "queryVector"),
                       (dict(GOOD, indexName="../x"), "indexName"), (dict(GOOD, indexName=".."), "indexName"),
                       (dict(GOOD, vectorBucketName="../../etc"), "vectorBucketName"),
                       (dict(GOOD, indexName="a/b"), "indexName"),
                       ({k: v for k, v in GOOD.items() if k != "indexName"}
                        | {"indexArn": f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{VB}/index/../x"}, "indexArn")]:
        http_error("QueryVectors", body, "ValidationException", 400, path)
        direct_error("QueryVectors", body, "ValidationException", 400, path)
    http_error("QueryVectors", dict(GOOD, indexName="unknown-index"), "NotFoundException", 404)
    direct_error("QueryVectors", dict(GOOD, indexName="unknown-index"), "NotFoundException", 404)
    http_error("GetIndex", {"vectorBucketName": "unknown-bucket", "indexName": IX}, "NotFoundException", 404)
    served_after("limits and names")


WRONG_TYPES = {
    "QueryVectors": [("vectorBucketName", 123), ("indexName", []), ("indexArn", 5), ("topK", "10"),
                     ("topK", 2.5), ("queryVector", "1,2,3"), ("queryVector", {"float32": {}}), ("filter", "genre"),
                     ("filter", 3), ("returnMetadata", "true"), ("returnDistance", 1), ("nprobe", "4"),
                     ("recallTarget", "0.9"), ("returnStatistics", "yes")],
    "GetVectors": [("vectorBucketName", True), ("indexName", 1.5), ("indexArn", {}), ("keys", {"a": 1}),
                   ("keys", [1]), ("keys", "doc-1"), ("returnData", "x"), ("returnMetadata", 0)],
    "ListVectors": [("vectorBucketName", []), ("indexName", {}), ("indexArn", True), ("maxResults", "5"),
                    ("nextToken", 5), ("segmentCount", "2"), ("segmentIndex", True), ("returnData", []),
                    ("returnMetadata", "false")],
    "GetIndex": [("vectorBucketName", True), ("indexName", 1.5), ("indexArn", {})],
    "ListIndexes": [("vectorBucketName", 1), ("vectorBucketArn", []), ("maxResults", "1"), ("nextToken", 7),
                    ("prefix", False)],
}
BASE = {
    "QueryVectors": GOOD,
    "GetVectors": {"vectorBucketName": VB, "indexName": IX, "keys": ["doc-1"]},
    "ListVectors": {"vectorBucketName": VB, "indexName": IX},
    "GetIndex": {"vectorBucketName": VB, "indexName": IX},
    "ListIndexes": {"vectorBucketName": VB},
}
SUBPATH = {("queryVector", "{'float32': {}}"): "queryVector.float32", ("keys", "[1]"): "keys[0]"}


@test
def wrong_type_for_every_member():
    for op, cases in WRONG_TYPES.items():
        for field, value in cases:
            body = dict(BASE[op])
            if field == "indexArn":
                body.pop("indexName", None)
            if field == "vectorBucketArn":
                body.pop("vectorBucketName", None)
            body[field] = value
            path = SUBPATH.get((field, str(value)), field)
            http_error(op, body, "ValidationException", 400, path, what=f"{op}.{field} = {value!r}")
            direct_error(op, body, "ValidationException", 400, path, what=f"{op}.{field} = {value!r}")
    served_after("wrong types")


@test
def oversized_requests():
    big = b'{"vectorBucketName": "' + VB.encode() + b'", "indexName": "' + IX.encode() + b'", "topK": 3, ' \
          b'"queryVector": {"float32": [' + b",".join([b"0.25"] * DIM) + b']}, "padding": "' + b"x" * (7 << 20) + b'"}'
    status, _, data = CTX["front"].post("QueryVectors", big, raw=True)
    check(status == 413, f"7 MB body through the HTTP front: {status} {data[:100]!r}")
    served_after("a 7 MB HTTP body")
    payload = json.loads(big)
    payload["operation"] = "QueryVectors"
    status, headers, data = CTX["emu"].invoke(payload)
    check(status == 413 and headers.get("x-amzn-ErrorType") == "RequestEntityTooLargeException",
          f"7 MB direct invocation: {status} {headers.get('x-amzn-ErrorType')}")
    served_after("a 7 MB direct invocation")
    # a large but legal event (5 MB of an unknown member) is parsed and answered
    payload["padding"] = "y" * (5 << 20)
    status, headers, resp = CTX["emu"].invoke_json(payload)
    check(status == 200 and isinstance(resp, dict) and len(resp.get("vectors", [])) == 3,
          f"5 MB event answered: {status} {str(resp)[:200]}")
    # a response that would pass 6 MB: ListVectors of 1000 vectors with metadata is far below; a huge topK
    # is refused by validation; so the 6 MB guard is exercised in the unit tests (test_handler.c)
    served_after("a 5 MB event")


@test
def no_restarts():
    st = CTX["emu"].stats()
    check(st["restarts"] == 0 and st["counts"].get("ok", 0) > 100, f"one runtime process for the whole run: {st['counts']}")


def main():
    with tempfile.TemporaryDirectory(prefix="s3vec-lambda-errors-") as tmp, MotoServer() as moto:
        env, root = moto_deployment(moto)
        data = Path(tmp) / "demo.jsonl"
        write_jsonl(data, demo_records())
        build_index(f"{root}/{VB}/{IX}", data, env)
        with Emulator(env=lambda_env(env, root, S3VEC_DEFAULT_INDEX=f"{VB}/{IX}")) as emu, Front(emu) as front:
            CTX.update(emu=emu, front=front)
            status, _, _ = front.post("QueryVectors", GOOD)
            CTX["pid"] = emu.pid()
            check(status == 200 and CTX["pid"], "warm-up query")
            rc = run_all("test_lambda_errors")
    return rc


if __name__ == "__main__":
    sys.exit(main())
