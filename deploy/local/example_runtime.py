#!/usr/bin/env python3
"""A tiny Lambda custom runtime in Python (standard library only) for exercising emulator.py and
http_front.py. It implements the Runtime API loop (next -> response | error, init/error) the way a
real bootstrap does: one keep-alive connection, the Lambda-Runtime-Invocation-Id header echoed back.

Behaviour is chosen by the event (direct invoke):
  {"action": "echo"}                      -> {"event": ..., "context": {Runtime API headers}, "pid": ...}
  {"action": "sleep", "seconds": S}       -> sleeps, then {"slept": S, "pid": ...}
  {"action": "crash", "code": N}          -> exits with status N mid-invocation
  {"action": "crash", "signal": "SIGSEGV"}-> kills itself with that signal mid-invocation
  {"action": "exit_after", "code": N}     -> answers {"pid": ...}, then exits (crash between invocations)
  {"action": "big", "size": N}            -> a JSON string response of exactly N bytes
  {"action": "len"}                       -> {"len": <bytes of the event as received>}
  {"action": "error"}                     -> reports a function error (Lambda-Runtime-Function-Error-Type)
  {"action": "env"}                       -> {"env": os.environ, "pid": ..., "cwd": ...}
  {"action": "proxy", "response": V}      -> returns V as the function's result (any JSON)
  {"action": "print", "lines": [...]}     -> prints the lines on stdout, then {"printed": n}
  {"action": "alloc", "mb": M}            -> touches M MB of memory, then {"allocated_mb": M}
An API Gateway v2 / Function URL event (version "2.0" with requestContext.http) is handled as HTTP:
  path /_event      -> the event itself as the result (no statusCode: the front infers 200 JSON)
  path /_action     -> the (decoded) body is parsed as one of the direct-invoke actions above
  any other path    -> a canned S3 Vectors-shaped reply: {"vectors": [{"key": "seen", "metadata":
                       {operation, method, rawPath, routeKey, body, isBase64Encoded, authorization}}],
                       "distanceMetric": "cosine"} inside a proxy response (plumbing tests only).
Start-up knobs (environment): EXAMPLE_INIT_SLEEP=S (slow init), EXAMPLE_INIT_ERROR=1 (report an
init error and exit), EXAMPLE_INIT_CRASH=N (exit with status N during init), EXAMPLE_MODE=idle
(never poll: lets a test drive the Runtime API itself).
"""

import base64
import http.client
import json
import os
import signal
import sys
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = "/2018-06-01/runtime"
_host, _port = API.rsplit(":", 1)
_conn = http.client.HTTPConnection(_host, int(_port))


def call(method, path, body=None, headers=None):
    """One Runtime API request on the keep-alive connection; reconnects once if it went stale."""
    global _conn
    for attempt in (0, 1):
        try:
            _conn.request(method, BASE + path, body=body, headers=headers or {})
            resp = _conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except (http.client.HTTPException, OSError):
            _conn.close()
            _conn = http.client.HTTPConnection(_host, int(_port))
            if attempt:
                raise
    raise AssertionError("unreachable")


class FunctionError(Exception):
    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


def do_action(event, raw, ctx):
    """Run a direct-invoke action; return the result bytes (raises FunctionError)."""
    action = event.get("action") if isinstance(event, dict) else None
    if action == "echo":
        return json.dumps({"event": event, "context": ctx, "pid": os.getpid()}).encode()
    if action == "sleep":
        time.sleep(float(event.get("seconds", 1)))
        return json.dumps({"slept": event.get("seconds", 1), "pid": os.getpid()}).encode()
    if action == "crash":
        sys.stdout.flush()
        if "signal" in event:
            os.kill(os.getpid(), getattr(signal, event["signal"]))
            time.sleep(5)
        os._exit(int(event.get("code", 1)))
    if action == "big":
        size = int(event["size"])
        return b'"' + b"x" * (size - 2) + b'"'
    if action == "len":
        return json.dumps({"len": len(raw)}).encode()
    if action == "error":
        raise FunctionError(event.get("errorType", "ExampleError"), event.get("message", "failed on purpose"))
    if action == "env":
        return json.dumps({"env": dict(os.environ), "pid": os.getpid(), "cwd": os.getcwd()}).encode()
    if action == "proxy":
        return json.dumps(event.get("response")).encode()
    if action == "print":
        for line in event.get("lines", []):
            print(line, flush=True)
        return json.dumps({"printed": len(event.get("lines", []))}).encode()
    if action == "alloc":
        mb = int(event.get("mb", 1))
        block = bytearray(mb * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return json.dumps({"allocated_mb": mb, "pid": os.getpid()}).encode()
    if action == "exit_after":
        return json.dumps({"pid": os.getpid()}).encode()
    raise FunctionError("UnknownAction", f"unknown action {action!r}")


def do_http(event, ctx):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    path = event.get("rawPath", "")
    if path == "/_event":
        return json.dumps(event).encode()
    if path == "/_action":
        return do_action(json.loads(raw or b"{}"), raw, ctx)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    metadata = {"operation": path.lstrip("/"), "method": event["requestContext"]["http"]["method"],
                "rawPath": path, "routeKey": event.get("routeKey"), "body": parsed,
                "isBase64Encoded": event.get("isBase64Encoded"),
                "authorization": event.get("headers", {}).get("authorization", "")}
    reply = {"vectors": [{"key": "seen", "distance": 0.0, "metadata": metadata}], "distanceMetric": "cosine"}
    return json.dumps({"statusCode": 200, "headers": {"content-type": "application/json"},
                       "body": json.dumps(reply)}).encode()


def init():
    if os.environ.get("EXAMPLE_INIT_SLEEP"):
        time.sleep(float(os.environ["EXAMPLE_INIT_SLEEP"]))
    if os.environ.get("EXAMPLE_INIT_CRASH"):
        os._exit(int(os.environ["EXAMPLE_INIT_CRASH"]))
    if os.environ.get("EXAMPLE_INIT_ERROR"):
        body = json.dumps({"errorMessage": "init failed on purpose", "errorType": "ExampleInitError",
                           "stackTrace": ["example_runtime.py: init"]})
        status, _, _ = call("POST", "/init/error", body, {"Lambda-Runtime-Function-Error-Type": "Runtime.ExampleInit"})
        print(f"init/error -> {status}", file=sys.stderr, flush=True)
        sys.exit(1)
    if os.environ.get("EXAMPLE_MODE") == "idle":
        while True:
            time.sleep(3600)


def main():
    init()
    print(f"example runtime ready, pid {os.getpid()}", file=sys.stderr, flush=True)
    while True:
        status, headers, raw = call("GET", "/invocation/next")
        if status != 200:
            print(f"/next returned {status}: {raw[:200]!r}", file=sys.stderr, flush=True)
            sys.exit(1)
        request_id = headers["lambda-runtime-aws-request-id"]
        echo = {}
        if "lambda-runtime-invocation-id" in headers:
            echo["Lambda-Runtime-Invocation-Id"] = headers["lambda-runtime-invocation-id"]
        ctx = {k: v for k, v in headers.items() if k.startswith("lambda-runtime-")}
        ctx["content-type"] = headers.get("content-type")
        exit_after = None
        try:
            event = json.loads(raw)
            if isinstance(event, dict) and event.get("version") == "2.0" and "http" in event.get("requestContext", {}):
                result = do_http(event, ctx)
            else:
                result = do_action(event, raw, ctx)
                if isinstance(event, dict) and event.get("action") == "exit_after":
                    exit_after = int(event.get("code", 0))
            status, _, reply = call("POST", f"/invocation/{request_id}/response", result, echo)
        except FunctionError as e:
            body = json.dumps({"errorMessage": str(e), "errorType": e.error_type,
                               "stackTrace": ["example_runtime.py: do_action"]})
            status, _, reply = call("POST", f"/invocation/{request_id}/error", body,
                                    dict(echo, **{"Lambda-Runtime-Function-Error-Type": e.error_type}))
        print(f"posted {request_id}: {status} {reply[:200].decode('utf-8', 'replace')}", file=sys.stderr, flush=True)
        if exit_after is not None:
            os._exit(exit_after)


if __name__ == "__main__":
    main()
