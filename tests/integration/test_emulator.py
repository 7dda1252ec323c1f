#!/usr/bin/env python3
"""Integration tests for deploy/local/emulator.py (the local Lambda Runtime API + Invoke API).

Each test starts its own emulator on a free 127.0.0.1 port with deploy/local/example_runtime.py as the
bootstrap (or lets the test itself play the runtime), and always stops it. Prints "N passed, N
failed" and exits non-zero on failure. Also provides the small harness test_http_front.py imports.
"""

import base64
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or Path(__file__).resolve().parents[2])
LOCAL_DIR = SOURCE_DIR / "deploy" / "local"
EMULATOR = LOCAL_DIR / "emulator.py"
FRONT = LOCAL_DIR / "http_front.py"
RUNTIME = LOCAL_DIR / "example_runtime.py"
# Interpreter for the servers under test (default: this one); e.g. /usr/bin/python3 to check Debian's.
SERVER_PYTHON = os.environ.get("S3VEC_LOCAL_PYTHON") or sys.executable
MAX_RESPONSE = 6 * 1024 * 1024 + 100
MAX_REQUEST = 6 * 1024 * 1024


# ----------------------------------------------------------------------------------------------------
# Harness


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.current = ""

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL [{self.current}] {what}", flush=True)
        return bool(cond)


R = Results()
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, what):
    return R.check(cond, what)


class Server:
    """A deploy/local server script run as a child process on a free port; stopped on exit."""

    def __init__(self, script, args, banner, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="s3vec-local-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([SERVER_PYTHON, str(script), "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.log, env=full_env)
        self.port = None
        deadline = time.time() + 15
        line = b""
        while time.time() < deadline and self.proc.poll() is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                m = re.match(rb"%s listening on 127\.0\.0\.1:(\d+)" % banner.encode(), line)
                if m:
                    self.port = int(m.group(1))
                    break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{script.name} did not start: {line!r}\n{self.log_text()}")

    def log_text(self):
        try:
            return Path(self.log.name).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()

    def cleanup(self):
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None or R.failed:
            sys.stdout.write(f"--- log of {self.proc.args[1]} (last 3000 chars) ---\n{self.log_text()[-3000:]}\n")
        self.cleanup()
        return False


def http_request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


class Emulator(Server):
    """The emulator with example_runtime.py; ``env`` goes to the function (--env), ``host_env`` to the
    emulator process itself."""

    def __init__(self, *args, env=None, host_env=None, bootstrap=RUNTIME):
        extra = [f"--env={k}={v}" for k, v in (env or {}).items()]
        super().__init__(EMULATOR, ["--bootstrap", str(bootstrap)] + extra + list(args), "emulator", host_env)

    def invoke(self, payload, headers=None, name="function", raw=False):
        body = payload if raw else json.dumps(payload).encode()
        return http_request(self.port, "POST", f"/2015-03-31/functions/{name}/invocations", body, headers)

    def invoke_json(self, payload, headers=None, name="function"):
        status, hdrs, data = self.invoke(payload, headers, name)
        return status, hdrs, json.loads(data) if data else None

    def stats(self):
        status, _, data = http_request(self.port, "GET", "/_emulator/stats")
        assert status == 200, status
        return json.loads(data)

    def runtime(self, method, path, body=None, headers=None, timeout=30):
        return http_request(self.port, method, "/2018-06-01/runtime" + path, body, headers, timeout)


def in_thread(fn, *args):
    """Run fn(*args) in a thread; returns a function that joins and returns its result."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the joiner
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=60):
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError("thread did not finish")
        if "error" in box:
            raise box["error"]
        return box["value"]

    return join


def run_all(title):
    for fn in TESTS:
        R.current = fn.__name__
        t0 = time.time()
        try:
            fn()
        except Exception:
            R.failed += 1
            print(f"FAIL [{fn.__name__}] raised:\n{traceback.format_exc()}", flush=True)
        print(f"  {fn.__name__} ({time.time() - t0:.1f} s)", flush=True)
    print(f"{title}: {R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); look at its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------------
# Tests


@test
def round_trip_and_next_headers():
    cc = {"client": {"app_title": "t"}, "custom": {"k": "v"}, "env": {}}
    cognito = json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"})
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    with Emulator("--timeout", "5", "--function-name", "s3vec") as emu:
        t_before = time.time() * 1000
        status, hdrs, out = emu.invoke_json(
            {"action": "echo", "n": [1, 2, 3], "s": "é"},
            {"X-Amz-Client-Context": base64.b64encode(json.dumps(cc).encode()).decode(),
             "X-Amzn-Trace-Id": trace, "X-Emulator-Cognito-Identity": cognito, "X-Amz-Tenant-Id": "tenant-7"})
        check(status == 200, f"invoke status {status}")
        check(out["event"] == {"action": "echo", "n": [1, 2, 3], "s": "é"}, "event delivered unchanged")
        ctx = out["context"]
        rid = ctx.get("lambda-runtime-aws-request-id", "")
        check(re.fullmatch(r"[0-9a-f-]{36}", rid), f"request id {rid!r}")
        check(hdrs["X-Amzn-Requestid"] == rid, "X-Amzn-Requestid is the runtime's request id")
        check(hdrs["X-Amz-Executed-Version"] == "$LATEST", "X-Amz-Executed-Version")
        check("X-Amz-Function-Error" not in hdrs, "no function error header on success")
        deadline = int(ctx["lambda-runtime-deadline-ms"])
        check(t_before + 4000 < deadline < time.time() * 1000 + 5000 + 50, f"deadline {deadline} ~ now + 5 s")
        check(ctx["lambda-runtime-invoked-function-arn"] == "arn:aws:lambda:us-east-1:123456789012:function:s3vec",
              f"function arn {ctx['lambda-runtime-invoked-function-arn']}")
        check(ctx["lambda-runtime-trace-id"] == trace, "trace id passed through")
        check(json.loads(ctx["lambda-runtime-client-context"]) == cc, "client context decoded")
        check(ctx.get("lambda-runtime-cognito-identity") == cognito, "cognito identity")
        check(ctx.get("lambda-runtime-aws-tenant-id") == "tenant-7", "tenant id")
        inv_id = ctx.get("lambda-runtime-invocation-id", "")
        check(re.fullmatch(r"[0-9a-f-]{36}", inv_id) and inv_id != rid, "invocation id present and distinct")
        check(ctx.get("content-type") == "application/json", "event content type")

        # Without caller context: generated trace id, no client context / cognito headers.
        status, hdrs, out = emu.invoke_json({"action": "echo"}, name="s3vec")
        ctx = out["context"]
        check(status == 200, "invoke by function name")
        check(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0",
                           ctx["lambda-runtime-trace-id"]), f"generated trace id {ctx['lambda-runtime-trace-id']}")
        check("lambda-runtime-client-context" not in ctx and "lambda-runtime-cognito-identity" not in ctx,
              "optional headers absent when not given")
        check(ctx["lambda-runtime-aws-request-id"] != rid, "a new request id per invocation")

        status, _, out = emu.invoke_json({"action": "echo"}, name="function")
        check(status == 200, "the RIE path /functions/function/invocations works too")
        status, hdrs, data = emu.invoke({"action": "echo"}, name="other")
        check(status == 404 and hdrs.get("x-amzn-ErrorType") == "ResourceNotFoundException",
              f"unknown function -> 404 ResourceNotFoundException ({status})")
        status, hdrs, data = emu.invoke(b"{not json", raw=True)
        check(status == 400 and hdrs.get("x-amzn-ErrorType") == "InvalidRequestContentException",
              f"invalid JSON payload -> 400 ({status})")
        status, _, data = emu.invoke({"action": "echo"}, raw=False)
        status, _, data = emu.invoke(b"", raw=True)
        check(status == 200, "empty payload accepted")
        status, hdrs, data = emu.invoke({"action": "echo"}, {"X-Amz-Invocation-Type": "DryRun"})
        check(status == 204, f"DryRun -> 204 ({status})")


@test
def boto3_lambda_client():
    import boto3
    from botocore.config import Config

    with Emulator("--function-name", "s3vec") as emu:
        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{emu.port}", region_name="us-east-1",
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                              config=Config(retries={"max_attempts": 1}))
        r = client.invoke(FunctionName="s3vec", Payload=json.dumps({"action": "print", "lines": ["hello log"]}),
                          LogType="Tail")
        check(r["StatusCode"] == 200, "boto3 invoke status")
        check(json.loads(r["Payload"].read()) == {"printed": 1}, "boto3 payload")
        check(r.get("ExecutedVersion") == "$LATEST", "boto3 ExecutedVersion")
        tail = base64.b64decode(r["LogResult"]).decode()
        check("START RequestId:" in tail and "hello log" in tail and "END RequestId:" in tail
              and "REPORT RequestId:" in tail, f"log tail has START/output/END/REPORT: {tail!r}")
        r = client.invoke(FunctionName="s3vec", Payload=json.dumps({"action": "error", "errorType": "Boom"}))
        check(r.get("FunctionError") == "Unhandled", "boto3 sees FunctionError Unhandled")
        check(json.loads(r["Payload"].read())["errorType"] == "Boom", "boto3 error payload")
        r = client.invoke(FunctionName="s3vec", InvocationType="Event", Payload=json.dumps({"action": "echo"}))
        check(r["StatusCode"] == 202, "boto3 Event invocation -> 202")
        try:
            client.invoke(FunctionName="nope", Payload=b"{}")
            check(False, "unknown function raises")
        except client.exceptions.ResourceNotFoundException:
            check(True, "unknown function raises ResourceNotFoundException")
        deadline = time.time() + 5
        while time.time() < deadline and emu.stats()["counts"].get("ok", 0) < 2:
            time.sleep(0.05)
        check(emu.stats()["counts"].get("ok") == 2, "the Event invocation ran")


@test
def environment():
    env = {"AWS_ACCESS_KEY_ID": "AKIDPASS", "AWS_SECRET_ACCESS_KEY": "passed-secret",
           "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "S3VEC_TEST_NOT_PASSED": "leak", "AWS_REGION": "eu-west-1"}
    with Emulator("--function-name", "s3vec-fn", "--memory", "1769", "--handler", "s3vec.handler",
                  "--env", "S3VEC_BUCKET=b1", "--env", "EMPTY=", host_env=env) as emu:
        status, _, out = emu.invoke_json({"action": "env"})
        e = out["env"]
        check(e.get("AWS_LAMBDA_RUNTIME_API") == f"127.0.0.1:{emu.port}", "AWS_LAMBDA_RUNTIME_API")
        check(e.get("AWS_LAMBDA_FUNCTION_NAME") == "s3vec-fn", "AWS_LAMBDA_FUNCTION_NAME")
        check(e.get("AWS_LAMBDA_FUNCTION_VERSION") == "$LATEST", "AWS_LAMBDA_FUNCTION_VERSION")
        check(e.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") == "1769", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        check(e.get("AWS_LAMBDA_LOG_GROUP_NAME") == "/aws/lambda/s3vec-fn", "AWS_LAMBDA_LOG_GROUP_NAME")
        check(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", e.get("AWS_LAMBDA_LOG_STREAM_NAME", "")),
              f"AWS_LAMBDA_LOG_STREAM_NAME {e.get('AWS_LAMBDA_LOG_STREAM_NAME')}")
        check(e.get("AWS_REGION") == "eu-west-1" and e.get("AWS_DEFAULT_REGION") == "eu-west-1", "region")
        check(e.get("AWS_EXECUTION_ENV") == "AWS_Lambda_provided.al2023", "AWS_EXECUTION_ENV")
        check(e.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand", "AWS_LAMBDA_INITIALIZATION_TYPE")
        check(e.get("LAMBDA_TASK_ROOT") == str(LOCAL_DIR) and out["cwd"] == str(LOCAL_DIR), "task root and cwd")
        check(e.get("LAMBDA_RUNTIME_DIR") == str(LOCAL_DIR), "LAMBDA_RUNTIME_DIR")
        check(e.get("_HANDLER") == "s3vec.handler", "_HANDLER")
        check(e.get("TZ") == ":UTC" and e.get("LANG") == "en_US.UTF-8", "TZ and LANG")
        check(e.get("PATH") == "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "PATH")
        check(f"{LOCAL_DIR}/lib" in e.get("LD_LIBRARY_PATH", "").split(":"), "LD_LIBRARY_PATH has the task root lib")
        check(e.get("S3VEC_BUCKET") == "b1" and e.get("EMPTY") == "", "--env extras")
        check(e.get("AWS_ACCESS_KEY_ID") == "AKIDPASS" and e.get("AWS_SECRET_ACCESS_KEY") == "passed-secret",
              "credentials passed through")
        check(e.get("AWS_ENDPOINT_URL_S3") == "http://127.0.0.1:1", "endpoint variables passed through")
        check("S3VEC_TEST_NOT_PASSED" not in e and "HOME" not in e, "unrelated host variables not passed")


@test
def function_error_keeps_the_process():
    with Emulator() as emu:
        _, _, first = emu.invoke_json({"action": "echo"})
        status, hdrs, err = emu.invoke_json({"action": "error", "errorType": "ValidationException",
                                             "message": "bad topK"})
        check(status == 200, "function error is still HTTP 200")
        check(hdrs.get("X-Amz-Function-Error") == "Unhandled", "X-Amz-Function-Error: Unhandled")
        check(err == {"errorMessage": "bad topK", "errorType": "ValidationException",
                      "stackTrace": ["example_runtime.py: do_action"]}, f"error body passed through: {err}")
        _, _, after = emu.invoke_json({"action": "echo"})
        check(after["pid"] == first["pid"], "the same process serves the next invocation")
        s = emu.stats()
        check(s["restarts"] == 0 and s["counts"] == {"ok": 2, "error": 1}, f"stats counts {s['counts']}")
        check(s["invocations"][1]["error_type"] == "ValidationException", "error type recorded")


@test
def init_error():
    with Emulator(env={"EXAMPLE_INIT_ERROR": "1"}) as emu:
        t0 = time.time()
        status, hdrs, err = emu.invoke_json({"action": "echo"})
        check(status == 200 and hdrs.get("X-Amz-Function-Error") == "Unhandled", "init error is a function error")
        check(err.get("errorType") == "ExampleInitError" and err.get("errorMessage") == "init failed on purpose",
              f"the runtime's init error body: {err}")
        check(time.time() - t0 < 5, "reported promptly")
        status, hdrs, err2 = emu.invoke_json({"action": "echo"})
        check(err2 == err, "the next invocation re-runs init and fails the same way")
        s = emu.stats()
        check(s["sandboxes"][0]["starts"] == 2, f"one init per invocation (starts {s['sandboxes'][0]['starts']})")
        check([i["status"] for i in s["invocations"]] == ["init_error", "init_error"], "stats status init_error")
        check([i["error_type"] for i in s["invocations"]] == ["Runtime.ExampleInit"] * 2,
              "error type from Lambda-Runtime-Function-Error-Type")
        log = emu.log_text()
        check("init/error -> 202" in log, "the runtime got 202 for /init/error")
        check("INIT_REPORT" in log and "Status: error" in log, "INIT_REPORT error line")
    with Emulator(env={"EXAMPLE_INIT_CRASH": "7"}) as emu:
        status, hdrs, err = emu.invoke_json({"action": "echo"})
        check(hdrs.get("X-Amz-Function-Error") == "Unhandled" and err["errorType"] == "Runtime.ExitError"
              and err["errorMessage"].endswith("Runtime exited with error: exit status 7"),
              f"crash during init -> Runtime.ExitError: {err}")


@test
def timeout_kills_and_restarts():
    with Emulator("--timeout", "1") as emu:
        _, _, first = emu.invoke_json({"action": "echo"})
        t0 = time.time()
        status, hdrs, err = emu.invoke_json({"action": "sleep", "seconds": 30})
        elapsed = time.time() - t0
        check(status == 200 and hdrs.get("X-Amz-Function-Error") == "Unhandled", "timeout is a function error")
        check(err.get("errorType") == "Sandbox.Timedout", f"errorType {err.get('errorType')}")
        rid = hdrs["X-Amzn-Requestid"]
        check(err.get("errorMessage") == f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
              f"errorMessage {err.get('errorMessage')}")
        check(0.9 < elapsed < 3.0, f"answered at the deadline ({elapsed:.2f} s)")
        deadline = time.time() + 5
        while time.time() < deadline and pid_alive(first["pid"]):
            time.sleep(0.05)
        check(not pid_alive(first["pid"]), "the timed-out process was killed")
        _, _, after = emu.invoke_json({"action": "echo"})
        check(after.get("pid") and after["pid"] != first["pid"], "the next invocation runs in a new process")
        s = emu.stats()
        check(s["restarts"] == 1 and s["sandboxes"][0]["timeouts"] == 1, "stats: one restart, one timeout")
        check(s["invocations"][2]["cold"] is True, "the invocation after a timeout is a cold start")
        check("Task timed out after 1.00 seconds" in emu.log_text(), "timeout line in the log")


@test
def init_timeout_then_suppressed_init():
    # Init takes 1.5 s > init timeout 1 s: Lambda resets and re-runs init inside the invocation, which
    # succeeds because the function timeout (4 s) covers it.
    with Emulator("--init-timeout", "1", "--timeout", "4", env={"EXAMPLE_INIT_SLEEP": "1.5"}) as emu:
        status, hdrs, out = emu.invoke_json({"action": "echo"})
        check(status == 200 and "X-Amz-Function-Error" not in hdrs, "suppressed init succeeds")
        s = emu.stats()
        check(s["sandboxes"][0]["starts"] == 2, "two init attempts")
        check(s["invocations"][0]["init_ms"] >= 1400, f"init duration of the second attempt ({s['invocations'][0]['init_ms']})")
        check("Phase: init\tStatus: timeout" in emu.log_text(), "INIT_REPORT timeout line")
    with Emulator("--init-timeout", "0.5", "--timeout", "1", env={"EXAMPLE_INIT_SLEEP": "10"}) as emu:
        t0 = time.time()
        status, hdrs, err = emu.invoke_json({"action": "echo"})
        check(err.get("errorType") == "Sandbox.Timedout", f"init never finishing -> timeout ({err})")
        check(time.time() - t0 < 4, "bounded by init timeout + function timeout")


@test
def crash_restarts():
    with Emulator() as emu:
        _, _, first = emu.invoke_json({"action": "echo"})
        status, hdrs, err = emu.invoke_json({"action": "crash", "code": 3})
        rid = hdrs["X-Amzn-Requestid"]
        check(hdrs.get("X-Amz-Function-Error") == "Unhandled", "crash is a function error")
        check(err == {"errorMessage": f"RequestId: {rid} Error: Runtime exited with error: exit status 3",
                      "errorType": "Runtime.ExitError"}, f"crash error body {err}")
        _, _, second = emu.invoke_json({"action": "echo"})
        check(second["pid"] != first["pid"], "new process after a crash")
        status, hdrs, err = emu.invoke_json({"action": "crash", "signal": "SIGSEGV"})
        check(err.get("errorMessage", "").endswith("Runtime exited with error: signal: segmentation fault"),
              f"signal reported like Lambda: {err}")
        # Crash between invocations: answer, then exit.
        _, _, third = emu.invoke_json({"action": "exit_after", "code": 0})
        check("pid" in third, "exit_after answered")
        deadline = time.time() + 5
        while time.time() < deadline and pid_alive(third["pid"]):
            time.sleep(0.05)
        _, hdrs, fourth = emu.invoke_json({"action": "echo"})
        check("X-Amz-Function-Error" not in hdrs and fourth["pid"] != third["pid"],
              "idle exit: the next invocation gets a fresh process")
        s = emu.stats()
        check(s["restarts"] == 3, f"three restarts ({s['restarts']})")
        # echo (cold), crash, echo (new process), SIGSEGV crash (same process), exit_after (new), echo (new)
        check([i["cold"] for i in s["invocations"]] == [True, False, True, False, True, True],
              f"cold flags {[i['cold'] for i in s['invocations']]}")


@test
def payload_limits():
    with Emulator() as emu:
        pad = "x" * (MAX_REQUEST - 40)
        payload = json.dumps({"action": "len", "pad": pad}).encode()
        status, hdrs, out = emu.invoke(payload, raw=True)
        check(status == 200 and json.loads(out)["len"] == len(payload), f"{len(payload)}-byte request accepted")
        big = json.dumps({"action": "len", "pad": "x" * MAX_REQUEST}).encode()
        status, hdrs, out = emu.invoke(big, raw=True)
        check(status == 413 and hdrs.get("x-amzn-ErrorType") == "RequestEntityTooLargeException",
              f"oversized request -> 413 RequestEntityTooLargeException ({status})")
        check(json.loads(out).get("message") ==
              "Request must be smaller than 6291456 bytes for the InvokeFunction operation", "413 message")
        status, hdrs, out = emu.invoke({"action": "big", "size": MAX_RESPONSE})
        check(status == 200 and "X-Amz-Function-Error" not in hdrs and len(out) == MAX_RESPONSE,
              "a response of exactly 6291556 bytes passes")
        _, _, first = emu.invoke_json({"action": "echo"})
        size = 7 * 1024 * 1024
        status, hdrs, err = emu.invoke_json({"action": "big", "size": size})
        check(hdrs.get("X-Amz-Function-Error") == "Unhandled", "oversized response is a function error")
        check(err == {"errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                                      f"(6291556 bytes).", "errorType": "Function.ResponseSizeTooLarge"},
              f"oversized response error {err}")
        status, hdrs, err = emu.invoke_json({"action": "big", "size": MAX_RESPONSE + 1})
        check(err.get("errorType") == "Function.ResponseSizeTooLarge", "one byte over the limit is refused")
        check('posted' in emu.log_text() and '413 {"errorMessage": "Exceeded maximum allowed payload size '
              '(6291556 bytes).", "errorType": "RequestEntityTooLarge"}' in emu.log_text(),
              "the runtime's POST got 413 RequestEntityTooLarge")
        _, _, after = emu.invoke_json({"action": "echo"})
        check(after["pid"] == first["pid"], "the runtime keeps serving after an oversized response")


@test
def concurrent_invokes_are_serialised():
    with Emulator("--timeout", "10") as emu:
        emu.invoke_json({"action": "echo"})
        t0 = time.time()
        joins = [in_thread(emu.invoke_json, {"action": "sleep", "seconds": 0.4}) for _ in range(3)]
        results = [j() for j in joins]
        elapsed = time.time() - t0
        check(all(r[0] == 200 and "slept" in r[2] for r in results), "all three answered")
        check(elapsed >= 1.2, f"one at a time ({elapsed:.2f} s >= 1.2 s)")
        inv = sorted(emu.stats()["invocations"][1:], key=lambda i: i["handed_epoch"])
        check(all(a["responded_epoch"] <= b["handed_epoch"] for a, b in zip(inv, inv[1:])),
              "no two invocations overlap in the runtime")
        check(max(i["queued_ms"] for i in inv) >= 700, "the last one waited in the queue")
    with Emulator("--timeout", "10", "--concurrency", "2") as emu:
        t0 = time.time()
        joins = [in_thread(emu.invoke_json, {"action": "sleep", "seconds": 0.6}) for _ in range(2)]
        results = [j() for j in joins]
        elapsed = time.time() - t0
        pids = {r[2]["pid"] for r in results}
        check(len(pids) == 2, "--concurrency 2 runs two processes")
        check(elapsed < 1.15, f"two sandboxes run in parallel ({elapsed:.2f} s)")
        s = emu.stats()
        apis = {sb["runtime_api"] for sb in s["sandboxes"]}
        check(len(apis) == 2, "each sandbox has its own Runtime API address")


@test
def stats_endpoint():
    with Emulator("--memory", "256", env={"EXAMPLE_INIT_SLEEP": "0.3"}) as emu:
        emu.invoke_json({"action": "echo"})
        emu.invoke_json({"action": "sleep", "seconds": 0.2})
        emu.invoke_json({"action": "alloc", "mb": 64})
        s = emu.stats()
        check(s["memory_mb"] == 256 and s["concurrency"] == 1 and s["restarts"] == 0, "stats header fields")
        a, b, c = s["invocations"]
        check(a["cold"] and a["init_ms"] >= 300, f"first invocation is cold, init >= 300 ms ({a['init_ms']})")
        check(not b["cold"] and b["init_ms"] is None, "second is warm")
        check(200 <= b["runtime_ms"] < 1000, f"runtime_ms covers the handler ({b['runtime_ms']})")
        check(b["total_ms"] >= b["runtime_ms"], "total >= runtime")
        check(all(i["status"] == "ok" and i["queued_ms"] >= 0 for i in s["invocations"]), "status ok, queue time")
        check(c["max_memory_used_kb"] >= 64 * 1024, f"VmHWM reflects a 64 MB allocation ({c['max_memory_used_kb']} kB)")
        sb = s["sandboxes"][0]
        check(sb["pid"] and sb["rss_kb"] > 0 and sb["hwm_kb"] >= 64 * 1024, "sandbox pid and memory")
        check(sb["init_ms"] >= 300 and sb["invocations"] == 3, "sandbox init duration and count")
        log = emu.log_text()
        check(re.search(r"REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB\t"
                        r"Max Memory Used: \d+ MB\tInit Duration: [\d.]+ ms", log), "REPORT line with Init Duration")
        check(re.search(r"Max Memory Used: (6[5-9]|[7-9]\d|\d{3,}) MB", log), "REPORT max memory after alloc")
        status, _, _ = http_request(emu.port, "POST", "/_emulator/stats/reset")
        check(status == 200 and emu.stats()["invocations"] == [], "stats reset")


@test
def runtime_api_status_codes():
    """The test plays the runtime (the bootstrap idles) and checks each Runtime API answer."""
    with Emulator("--timeout", "20", "--eager-init", env={"EXAMPLE_MODE": "idle"}) as emu:
        status, _, data = emu.runtime("POST", "/invocation/nope/response", b"{}")
        check(status == 403 and json.loads(data)["errorType"] == "InvalidStateTransition",
              f"response before any invocation -> 403 ({status})")
        join = in_thread(emu.invoke, {"hello": 1})
        status, hdrs, data = emu.runtime("GET", "/invocation/next")
        check(status == 200 and json.loads(data) == {"hello": 1}, "GET /next returns the event")
        rid = hdrs["Lambda-Runtime-Aws-Request-Id"]
        inv_id = hdrs["Lambda-Runtime-Invocation-Id"]
        for name in ("Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id"):
            check(hdrs.get(name), f"{name} present")
        check(hdrs.get("Content-Type") == "application/json", "event content type")
        status, _, data = emu.runtime("GET", "/invocation/next")
        check(status == 403 and json.loads(data)["errorType"] == "InvalidStateTransition",
              f"/next while an invocation is open -> 403 ({status})")
        status, _, data = emu.runtime("POST", "/init/error", b"{}")
        check(status == 403, f"/init/error after init -> 403 ({status})")
        status, _, data = emu.runtime("POST", "/invocation/not-the-id/response", b'"x"')
        check(status == 400 and json.loads(data) == {"errorMessage": "Invalid request ID",
                                                     "errorType": "InvalidRequestID"}, f"wrong request id -> 400")
        status, _, data = emu.runtime("POST", f"/invocation/{rid}/response", b'"x"',
                                      {"Lambda-Runtime-Invocation-Id": "stale"})
        check(status == 410, f"mismatched Lambda-Runtime-Invocation-Id -> 410 ({status})")
        status, _, data = emu.runtime("POST", f"/invocation/{rid}/response", b'{"answer": 42}',
                                      {"Lambda-Runtime-Invocation-Id": inv_id})
        check(status == 202 and json.loads(data) == {"status": "OK"}, f"response accepted -> 202 ({status})")
        status, hdrs, data = join()
        check(status == 200 and json.loads(data) == {"answer": 42}, "the caller gets the response body")
        status, _, data = emu.runtime("POST", f"/invocation/{rid}/response", b'"again"')
        check(status == 403, f"second response for the same id -> 403 ({status})")

        join = in_thread(emu.invoke, {"second": True})
        status, hdrs, _ = emu.runtime("GET", "/invocation/next")
        rid2 = hdrs["Lambda-Runtime-Aws-Request-Id"]
        status, _, _ = emu.runtime("POST", f"/invocation/{rid}/response", b'"old"')
        check(status == 400, f"response to the previous id while a new one is open -> 400 ({status})")
        error = {"errorMessage": "m", "errorType": "T", "stackTrace": []}
        status, _, _ = emu.runtime("POST", f"/invocation/{rid2}/error", json.dumps(error).encode(),
                                   {"Lambda-Runtime-Function-Error-Type": "T"})
        check(status == 202, f"error accepted -> 202 ({status})")
        status, hdrs, data = join()
        check(hdrs.get("X-Amz-Function-Error") == "Unhandled" and json.loads(data) == error, "caller gets the error")

        # An oversized response announced with Expect: 100-continue (as curl does) is refused before
        # the body is sent.
        join = in_thread(emu.invoke, {"third": True})
        status, hdrs, _ = emu.runtime("GET", "/invocation/next")
        rid3 = hdrs["Lambda-Runtime-Aws-Request-Id"]
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        sock.sendall(f"POST /2018-06-01/runtime/invocation/{rid3}/response HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {8 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        sock.close()
        check(reply.startswith(b"HTTP/1.1 413"), f"413 instead of 100 Continue: {reply[:40]!r}")
        status, hdrs, data = join()
        check(json.loads(data).get("errorType") == "Function.ResponseSizeTooLarge" and
              "(8388608 bytes)" in json.loads(data)["errorMessage"], "the caller gets Function.ResponseSizeTooLarge")

        # An in-limit body announced with Expect: 100-continue gets "100 Continue", then 202.
        join = in_thread(emu.invoke, {"expect": True})
        status, hdrs, _ = emu.runtime("GET", "/invocation/next")
        rid_e = hdrs["Lambda-Runtime-Aws-Request-Id"]
        body = json.dumps({"blob": "y" * (2 * 1024 * 1024)}).encode()
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        sock.sendall(f"POST /2018-06-01/runtime/invocation/{rid_e}/response HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = sock.recv(4096)
        check(interim.startswith(b"HTTP/1.1 100"), f"100 Continue before the body: {interim[:30]!r}")
        sock.sendall(body)
        final = b""
        while b"\r\n\r\n" not in final:
            chunk = sock.recv(4096)
            if not chunk:
                break
            final += chunk
        sock.close()
        check(final.startswith(b"HTTP/1.1 202"), f"202 after the body: {final[:30]!r}")
        status, hdrs, data = join()
        check(data == body, "the caller gets the 2 MB body sent after 100 Continue")

        # Chunked response body.
        join = in_thread(emu.invoke, {"fourth": True})
        status, hdrs, _ = emu.runtime("GET", "/invocation/next")
        rid4 = hdrs["Lambda-Runtime-Aws-Request-Id"]
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid4}/response",
                     body=iter([b'{"chunked"', b": true}"]), encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        check(resp.status == 202, f"chunked response accepted ({resp.status})")
        status, hdrs, data = join()
        check(json.loads(data) == {"chunked": True}, "chunked body reassembled")
        status, _, _ = emu.runtime("GET", "/invocation/bogus")
        check(status == 404, "unknown Runtime API path -> 404")


@test
def shutdown_kills_the_runtime():
    emu = Emulator()
    try:
        emu.invoke_json({"action": "echo"})
        pid = emu.stats()["sandboxes"][0]["pid"]
        check(pid_alive(pid), "runtime running")
        emu.proc.send_signal(signal.SIGTERM)
        rc = emu.proc.wait(10)
        check(rc == 0, f"emulator exits 0 on SIGTERM ({rc})")
        deadline = time.time() + 3
        while time.time() < deadline and pid_alive(pid):
            time.sleep(0.05)
        check(not pid_alive(pid), "the runtime process is gone")
    finally:
        emu.stop()
        emu.cleanup()


@test
def eager_init_and_init_duration():
    with Emulator("--eager-init", env={"EXAMPLE_INIT_SLEEP": "0.2"}) as emu:
        deadline = time.time() + 5
        while time.time() < deadline and emu.stats()["sandboxes"][0]["state"] != "ready":
            time.sleep(0.05)
        s = emu.stats()["sandboxes"][0]
        check(s["state"] == "ready" and s["init_ms"] >= 200, f"eager init ran before any invoke ({s})")
        t0 = time.time()
        emu.invoke_json({"action": "echo"})
        check(time.time() - t0 < 0.2, "first invoke does not wait for init")
        inv = emu.stats()["invocations"][0]
        check(inv["cold"] and inv["init_ms"] >= 200, "first invocation still reports the init duration")


def raw_exchange(port, data, timeout=10, until_close=False):
    """Sends raw bytes on a new connection; returns what comes back (up to EOF when until_close,
    else until a complete response head + Content-Length body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while True:
            if not until_close and b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                if len(body) >= (int(m.group(1)) if m else 0):
                    return out
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return out
            if not chunk:
                return out
            out += chunk
    finally:
        sock.close()


@test
def http_framing_on_one_thread():
    """The emulator's single HTTP thread keeps HTTP/1.1 semantics: pipelined requests answered in
    order, HTTP/1.0 and Connection: close end the connection, malformed or oversized heads get 4xx
    and a closed connection, and a slow client does not hold up anyone else."""
    with Emulator("--eager-init", env={"EXAMPLE_MODE": "idle"}) as emu:
        two = (b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /_emulator/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = raw_exchange(emu.port, two, until_close=True)
        heads = re.findall(rb"HTTP/1\.1 (\d{3})", out)
        check(heads == [b"200", b"200"] and out.index(b'{"status": "OK"}') < out.index(b'"function_name"'),
              f"two pipelined requests answered in order on one connection ({heads})")
        check(b"Connection: close" in out.split(b"\r\n\r\n{\"status\"")[-1], "Connection: close honoured")
        out = raw_exchange(emu.port, b"GET /_emulator/health HTTP/1.0\r\n\r\n", until_close=True)
        check(out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out, "HTTP/1.0 request: answer, then close")
        out = raw_exchange(emu.port, b"NONSENSE\r\n\r\n", until_close=True)
        check(out.startswith(b"HTTP/1.1 400"), f"malformed request line -> 400 ({out[:30]!r})")
        out = raw_exchange(emu.port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (70 * 1024), until_close=True)
        check(out.startswith(b"HTTP/1.1 431"), f"head over 64 KiB -> 431 ({out[:30]!r})")
        # A client that sends half a request and stalls does not block the server.
        slow = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        slow.sendall(b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        t0 = time.time()
        status, _, _ = http_request(emu.port, "GET", "/_emulator/health")
        check(status == 200 and time.time() - t0 < 1, "a stalled client does not hold up other requests")
        slow.close()
        # Chunked invoke body, sent in pieces.
        join = in_thread(emu.invoke, {"x": 1})
        status, hdrs, _ = emu.runtime("GET", "/invocation/next")
        rid = hdrs["Lambda-Runtime-Aws-Request-Id"]
        emu.runtime("POST", f"/invocation/{rid}/response", b'"done"')
        check(join()[0] == 200, "a normal invocation still works afterwards")


@test
def parked_next_of_a_vanished_runtime_is_dropped():
    """A GET /next whose caller disconnects while waiting is not handed an event: the invocation goes
    to the next /next instead of being lost."""
    with Emulator("--eager-init", "--timeout", "10", env={"EXAMPLE_MODE": "idle"}) as emu:
        ghost = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        ghost.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # parked
        ghost.close()
        time.sleep(0.2)  # the server sees the close
        join = in_thread(emu.invoke, {"after": "ghost"})
        status, hdrs, data = emu.runtime("GET", "/invocation/next", timeout=5)
        check(status == 200 and json.loads(data) == {"after": "ghost"}, f"the live /next gets the event ({status})")
        rid = hdrs.get("Lambda-Runtime-Aws-Request-Id", "")
        status, _, _ = emu.runtime("POST", f"/invocation/{rid}/response", b'{"ok": true}')
        check(status == 202, "its response is accepted")
        status, _, data = join()
        check(status == 200 and json.loads(data) == {"ok": True}, "the caller gets it")
        inv = emu.stats()["invocations"][-1]
        check(inv["status"] == "ok" and 0 <= inv["runtime_ms"] < 5000, f"recorded ok with runtime_ms {inv}")


@test
def many_keep_alive_clients():
    """Eight callers on their own keep-alive connections, 25 invocations each, all answered right
    (one invocation at a time in the runtime)."""
    with Emulator("--timeout", "10") as emu:
        def caller(n):
            conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
            got = []
            for i in range(25):
                body = json.dumps({"action": "echo", "who": n, "i": i}).encode()
                conn.request("POST", "/2015-03-31/functions/function/invocations", body=body)
                r = conn.getresponse()
                got.append((r.status, json.loads(r.read())["event"]))
            conn.close()
            return got
        joins = [in_thread(caller, n) for n in range(8)]
        results = [j() for j in joins]
        ok = all(st == 200 and ev == {"action": "echo", "who": n, "i": i}
                 for n, got in enumerate(results) for i, (st, ev) in enumerate(got))
        check(ok, "every caller got its own answers, in order")
        s = emu.stats()
        check(s["counts"] == {"ok": 200} and s["restarts"] == 0, f"200 ok, no restart ({s['counts']})")


if __name__ == "__main__":
    sys.exit(run_all("test_emulator"))
