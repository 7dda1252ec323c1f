"""lambda_lib: helpers for the s3vec Lambda integration tests (tests/integration/test_lambda_*.py).

    from lambda_lib import *          # after sys.path has tests/integration

Results / @test / run_all   a tiny harness: check(cond, what) counts, run_all prints "N passed, N failed"
Emulator                    deploy/local/emulator.py running build/bootstrap/bootstrap (our runtime) on a
                            free port: invoke(), invoke_json(), stats(), pid(), rss_kb(); always stopped
Front                       deploy/local/http_front.py (HTTP API v2, or Function URL events) in front of it
FakeRuntimeApi              lambda_lib/fake_runtime.py: a scripted Runtime API for fault tests
demo_jsonl / build_index    the demo data of events/README.md and `s3vec build`
s3vec_json                  runs the s3vec CLI (the engine's own answer) and parses its JSON
MotoServer                  re-exported from s3lib (moto_server with SigV4 verification)

Every server binds 127.0.0.1 on a free port and is stopped on exit, also when a test fails.
Paths come from the CTest environment (S3VEC_SOURCE_DIR, S3VEC_BUILD_DIR, S3VEC_BIN) or default to the
source tree and build/release."""
import http.client
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from s3lib import MotoServer, FaultProxy, Fault, free_port  # noqa: E402,F401

SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[2])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
S3VEC_BIN = Path(os.environ.get("S3VEC_BIN") or BUILD_DIR / "cli" / "s3vec")
BOOTSTRAP = Path(os.environ.get("S3VEC_BOOTSTRAP") or BUILD_DIR / "bootstrap" / "bootstrap")
EVENTS_DIR = SOURCE_DIR / "events"
LOCAL_DIR = SOURCE_DIR / "deploy" / "local"
DIM = 16
VB, IX = "demo-bucket", "demo-index"

# ---------------------------------------------------------------------------------------------------
# harness


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.current = ""


R = Results()
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, what):
    if cond:
        R.passed += 1
    else:
        R.failed += 1
        print(f"FAIL [{R.current}] {what}", flush=True)
    return bool(cond)


def run_all(title, only=None):
    if not BOOTSTRAP.exists():
        print(f"{title}: bootstrap not built at {BOOTSTRAP}\n0 passed, 1 failed", flush=True)
        return 1
    for fn in TESTS:
        if only and fn.__name__ not in only:
            continue
        R.current = fn.__name__
        t0 = time.time()
        try:
            fn()
        except Exception:
            R.failed += 1
            print(f"FAIL [{fn.__name__}] raised:\n{traceback.format_exc()}", flush=True)
        print(f"  {fn.__name__} ({time.time() - t0:.1f} s)", flush=True)
    print(f"{title}: {R.passed} passed, {R.failed} failed", flush=True)
    print(f"{R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


# ---------------------------------------------------------------------------------------------------
# processes


def http_request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


class _Server:
    """A deploy/local script on a free port (it prints '<banner> listening on 127.0.0.1:PORT')."""

    def __init__(self, script, args, banner, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="s3vec-lambda-", suffix=".log", delete=False)
        full = dict(os.environ)
        full.update(env or {})
        self.proc = subprocess.Popen([sys.executable, str(script), "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.log, env=full)
        self.port = None
        deadline = time.time() + 20
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
            raise RuntimeError(f"{script.name} did not start: {line!r}\n{self.log_text()[-2000:]}")

    def log_text(self):
        try:
            return Path(self.log.name).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None or R.failed:
            sys.stdout.write(f"--- log of {Path(self.proc.args[1]).name} (last 4000 chars) ---\n"
                             f"{self.log_text()[-4000:]}\n")
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
        return False


class Emulator(_Server):
    """The local Lambda running our bootstrap. ``env`` is the function's environment (--env K=V)."""

    def __init__(self, env=None, args=(), host_env=None, bootstrap=None):
        extra = [f"--env={k}={v}" for k, v in (env or {}).items()]
        super().__init__(LOCAL_DIR / "emulator.py", ["--bootstrap", str(bootstrap or BOOTSTRAP)] + extra + list(args),
                         "emulator", host_env)
        self._conn = None

    def invoke(self, payload, headers=None, raw=False, keepalive=False):
        body = payload if raw else json.dumps(payload).encode()
        path = "/2015-03-31/functions/function/invocations"
        if not keepalive:
            return http_request(self.port, "POST", path, body, headers)
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._conn.request("POST", path, body=body, headers=headers or {})
                resp = self._conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.HTTPException, OSError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def invoke_json(self, payload, headers=None, raw=False, keepalive=False):
        status, hdrs, data = self.invoke(payload, headers, raw, keepalive)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed

    def stats(self):
        status, _, data = http_request(self.port, "GET", "/_emulator/stats")
        assert status == 200, status
        return json.loads(data)

    def reset_stats(self):
        http_request(self.port, "POST", "/_emulator/stats/reset")

    def sandbox(self):
        return self.stats()["sandboxes"][0]

    def pid(self):
        return self.sandbox()["pid"]

    def rss_kb(self):
        return self.sandbox()["rss_kb"]

    def stop(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        super().stop()


class Front(_Server):
    """deploy/local/http_front.py before an emulator: HTTP in, API Gateway v2 (or Function URL) events out."""

    def __init__(self, emulator, function_url=False, args=()):
        extra = ["--invoke-url", f"http://127.0.0.1:{emulator.port}"] + (["--function-url"] if function_url else [])
        super().__init__(LOCAL_DIR / "http_front.py", extra + list(args), "http front")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def post(self, operation, body, headers=None, raw=False):
        data = body if raw else json.dumps(body).encode()
        return http_request(self.port, "POST", f"/{operation}", data,
                            {"Content-Type": "application/json", **(headers or {})})


def s3vectors_client(endpoint, validate=True):
    import boto3
    from botocore.config import Config
    return boto3.client("s3vectors", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret", config=Config(parameter_validation=validate,
                                                                       retries={"max_attempts": 1},
                                                                       read_timeout=60, connect_timeout=10))


# ---------------------------------------------------------------------------------------------------
# data and indexes


def demo_records(n=3000, dim=DIM, seed=7):
    """The demo data of events/README.md: keys doc-<i>, metadata genre/year."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        out.append({"key": f"doc-{i}", "data": [r.gauss(0, 1) for _ in range(dim)],
                    "metadata": {"genre": r.choice(["drama", "comedy", "news"]), "year": 1990 + i % 35}})
    return out


def write_jsonl(path, records):
    with open(path, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


def run_s3vec(args, env=None, check_rc=True, timeout=600):
    full = dict(os.environ)
    full.update(env or {})
    p = subprocess.run([str(S3VEC_BIN)] + list(args), capture_output=True, env=full, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"s3vec {' '.join(map(str, args[:3]))} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')[-2000:]}")
    return p


def build_index(location, jsonl, env=None, metric="cosine", extra=()):
    run_s3vec(["build", location, "--input", str(jsonl), "--metric", metric, "-q", "--seed", "5"] + list(extra), env)


def s3vec_json(args, env=None):
    """The engine's own answer through the CLI (--json output)."""
    p = run_s3vec(list(args) + ["--json"], env)
    return json.loads(p.stdout)


def moto_deployment(moto, bucket="s3vec-test", prefix="deploy"):
    """Creates the bucket and returns (env for s3vec programs, storage root URL). moto verifies the
    SigV4 signature of every request (s3lib/moto_fixed.py)."""
    key, secret = moto.create_user()
    moto.client(key, secret).create_bucket(Bucket=bucket)
    env = moto.env(key, secret)
    return env, f"s3://{bucket}/{prefix}"


def lambda_env(base_env, storage, **extra):
    """Function environment for the emulator: the AWS_* variables the S3 backend needs plus ours."""
    env = {k: v for k, v in base_env.items() if k.startswith("AWS_") and k not in ("AWS_REGION",)}
    env["S3VEC_STORAGE"] = storage
    env["HOME"] = "/nonexistent"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def load_event(name):
    with open(EVENTS_DIR / name) as f:
        return json.load(f)


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
