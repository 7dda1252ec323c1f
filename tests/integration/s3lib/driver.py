"""Runs tests/integration/drivers/s3_driver.c (the s3v_storage API on the command line) and parses its
one-line JSON answer. Also a minimal check/summary helper for integration scripts.

    d = Driver(env)                                   # env: dict of environment variables
    r = d("s3://bucket/prefix", "get", "key", out_path)
    r["ok"], r["status"], r["msg"], r["etag"], r["stats"]["retries"], r["elapsed_ms"], r["_stderr"]

The binary is $S3VEC_BUILD_DIR/tests/s3_driver (S3VEC_BUILD_DIR is set by CTest)."""
import json
import os
import subprocess
import sys


def driver_path():
    build = os.environ.get("S3VEC_BUILD_DIR")
    if not build:
        raise RuntimeError("S3VEC_BUILD_DIR is not set (run through ctest)")
    path = os.path.join(build, "tests", "s3_driver")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build the s3_driver target")
    return path


class Driver:
    def __init__(self, env, timeout=120):
        self.env = dict(env)
        self.timeout = timeout
        self.path = driver_path()

    def __call__(self, url, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([self.path, url, *map(str, args)], env=e, capture_output=True, text=True,
                           timeout=self.timeout)
        try:
            r = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"s3_driver printed no JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        if (p.returncode == 0) != r.get("ok"):
            raise RuntimeError(f"s3_driver exit {p.returncode} disagrees with {r}")
        r["_stderr"] = p.stderr
        r["_stdout"] = p.stdout
        return r


class Checks:
    """check(cond, what) records results; summary() prints 'N passed, N failed' and returns the exit code."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what, detail=None):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail is not None else ""), file=sys.stderr, flush=True)
        return cond

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0
