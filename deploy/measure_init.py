#!/usr/bin/env python3
"""deploy/measure_init.py: the init-time cost of each way to make the bootstrap self-contained.

    python3 deploy/measure_init.py [--bootstrap build/release/bootstrap/bootstrap] [--runs 25]
                                   [--static-bootstrap build/package-x86_64/bootstrap/bootstrap]

Each variant is started cold --runs times under the local emulator (deploy/local/emulator.py, a fresh
emulator per run, --eager-init, a local-folder index with S3VEC_DEFAULT_INDEX so INIT opens it) and the
emulator's init_ms is collected: process start -> the runtime's first GET /next, what Lambda bills as
Init Duration for a custom runtime. Variants, all on this machine:
  floor     a static 30-line C runtime that only connects and asks for /next: process start plus one
            Runtime API round trip, no dynamic loading, no INIT work (the limit for any runtime)
  trivial   the same C program linked dynamically (libc only): what any ordinary C program pays
  host      the bootstrap as built, linked against this machine's libraries (not self-contained)
  bundled   the zip's way: bundled libraries and loader, PT_INTERP and DT_RPATH patched (package.sh
            --task-root pointing at the unpacked folder, so it runs outside a chroot)
  ld-wrap   the aws-lambda-cpp way: the same bundle, started by a /bin/sh bootstrap script that runs
            lib/ld-linux-*.so.* --library-path lib bin/bootstrap
  static    with --static-bootstrap: a bootstrap built by `deploy/package.sh --deps static` (libcurl,
            cJSON, OpenSSL, zstd linked statically; only libc, libm and the loader bundled), packaged
            the zip's way like `bundled` -- what the function zip ships
  emptyroot the zip in the empty root of the deploy tests (chroot + mount namespace; as root only):
            adds the harness's unshare/mount/chroot, which Lambda does not have
The time the dynamic loader spends (LD_DEBUG=statistics) is printed per variant.
Prints a Markdown table (median, p10, p90, ratio of medians to the floor) and the machine's load.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import emptyroot  # noqa: E402

FLOOR_C = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[64] = "127.0.0.1", req[256], buf[4096];
    int port = 9001;
    if (!api || sscanf(api, "%63[^:]:%d", host, &port) != 2) return 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    int n = snprintf(req, sizeof req, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n", api);
    if (write(fd, req, (size_t)n) != n) return 1;
    while (read(fd, buf, sizeof buf) > 0) {}
    return 0;
}
"""


def cold_start(cmd_bootstrap, task_root, env_pairs, extra_args=(), timeout=30):
    """Starts an emulator with --eager-init, waits for the runtime's first /next, returns init_ms."""
    args = [sys.executable, str(ROOT / "deploy" / "local" / "emulator.py"), "--bootstrap", str(cmd_bootstrap),
            "--port", "0", "--eager-init", "--task-root", str(task_root), "--init-timeout", "30"]
    args += list(extra_args)
    for kv in env_pairs:
        args += ["--env", kv]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VEC_", "LD_"))}
    errlog = tempfile.TemporaryFile()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errlog, env=env)
    try:
        line = p.stdout.readline().decode()
        port = int(line.strip().rsplit(":", 1)[1])
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/stats", timeout=5))
            sb = (st.get("sandboxes") or [{}])[0]
            if sb.get("init_ms") is not None and sb.get("state") not in (None, "starting", "init"):
                return sb["init_ms"]
            time.sleep(0.02)
        errlog.seek(0)
        raise RuntimeError("the runtime never reached /next:\n" + errlog.read().decode(errors="replace")[-2000:])
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def loader_cycles(cmd, env=None):
    """'total startup time in dynamic loader' from LD_DEBUG=statistics (TSC cycles), or None."""
    e = {"LD_DEBUG": "statistics", "PATH": "/usr/bin:/bin"}
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=30)
    m = re.search(r"total startup time in dynamic loader:\s+(\d+)", r.stderr)
    return int(m.group(1)) if m else None


def tsc_mhz():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except OSError:
        pass
    return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=str(ROOT / "build" / "release" / "bootstrap" / "bootstrap"))
    ap.add_argument("--cli", help="s3vec CLI (default: next to the bootstrap's build)")
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--static-bootstrap", help="a bootstrap built with S3VEC_STATIC_DEPS (deploy/package.sh)")
    ap.add_argument("--no-emptyroot", action="store_true")
    a = ap.parse_args()
    boot = Path(a.bootstrap).resolve()
    cli = Path(a.cli) if a.cli else boot.parent.parent / "cli" / "s3vec"
    arch = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    work = Path(tempfile.mkdtemp(prefix="s3vec-measure-"))
    os.chmod(work, 0o755)
    try:
        # a small index opened at INIT (S3VEC_DEFAULT_INDEX), the same for every variant
        import random
        rng = random.Random(1)
        with open(work / "d.jsonl", "w") as f:
            for i in range(2000):
                f.write(json.dumps({"key": f"k{i}", "data": [rng.gauss(0, 1) for _ in range(64)]}) + "\n")
        subprocess.run([str(cli), "build", str(work / "idx" / "vbucket" / "index1"), "--input", str(work / "d.jsonl")],
                       check=True, capture_output=True)
        env_local = [f"S3VEC_STORAGE={work / 'idx'}", "S3VEC_DEFAULT_INDEX=vbucket/index1"]

        # floor
        (work / "floor.c").write_text(FLOOR_C)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(work / "floor"), str(work / "floor.c")], check=True)
        subprocess.run(["gcc", "-O2", "-o", str(work / "trivial"), str(work / "floor.c")], check=True)
        # bundled, with the interpreter pointing at this unpacked folder
        task = work / "task"
        subprocess.run(["bash", str(ROOT / "deploy" / "package.sh"), "--arch", arch, "--bootstrap", str(boot),
                        "--stage", str(task), "--task-root", str(task), "--quiet"], check=True, capture_output=True)
        # ld-wrap: lib/ + bin/bootstrap unpatched + a sh bootstrap
        wrap = work / "wrap"
        (wrap / "bin").mkdir(parents=True)
        shutil.copytree(task / "lib", wrap / "lib")
        shutil.copy(boot, wrap / "bin" / "bootstrap")
        loader = next(p.name for p in (wrap / "lib").iterdir() if p.name.startswith("ld-linux"))
        (wrap / "bootstrap").write_text(f"#!/bin/sh\nexec \"$LAMBDA_TASK_ROOT/lib/{loader}\" --library-path "
                                        f"\"$LAMBDA_TASK_ROOT/lib\" \"$LAMBDA_TASK_ROOT/bin/bootstrap\"\n")
        os.chmod(wrap / "bootstrap", 0o755)

        variants = [("floor", work / "floor", work, []),
                    ("trivial", work / "trivial", work, []),
                    ("host", boot, boot.parent, env_local),
                    ("bundled", task / "bootstrap", task, env_local),
                    ("ld-wrap", wrap / "bootstrap", wrap, env_local + [f"LAMBDA_TASK_ROOT={wrap}"])]
        if a.static_bootstrap:
            stask = work / "static"
            subprocess.run(["bash", str(ROOT / "deploy" / "package.sh"), "--arch", arch, "--bootstrap",
                            str(Path(a.static_bootstrap).resolve()), "--stage", str(stask), "--task-root",
                            str(stask), "--quiet"], check=True, capture_output=True)
            variants.append(("static", stask / "bootstrap", stask, env_local))
        if os.geteuid() == 0 and not a.no_emptyroot:
            zpath = work / "function.zip"
            subprocess.run(["bash", str(ROOT / "deploy" / "package.sh"), "--arch", arch, "--bootstrap", str(boot),
                            "--out", str(zpath), "--quiet"], check=True, capture_output=True)
            er = work / "er"
            info = emptyroot.prepare_root(zpath, er / "root", arch)
            shutil.copytree(work / "idx", er / "root" / "var" / "idx")   # the index inside the root
            (er / "launch").mkdir()
            launcher = emptyroot.write_launcher(er / "root", info["command"], er / "launch" / "bootstrap")
            variants.append(("emptyroot", launcher, er / "launch",
                             ["S3VEC_STORAGE=/var/idx", "S3VEC_DEFAULT_INDEX=vbucket/index1", "LAMBDA_TASK_ROOT=/var/task"]))

        results = {}
        for i in range(a.runs):          # interleaved, so load changes hit every variant alike
            for name, cmd, troot, envp in variants:
                try:
                    results.setdefault(name, []).append(cold_start(cmd, troot, envp))
                except RuntimeError as e:
                    raise RuntimeError(f"variant {name}: {e}") from None
        cycles = {"host": loader_cycles([str(boot)]), "bundled": loader_cycles([str(task / "bootstrap")]),
                  "trivial": loader_cycles([str(work / "trivial")])}
        if a.static_bootstrap:
            cycles["static"] = loader_cycles([str(work / "static" / "bootstrap")])
        mhz = tsc_mhz()
        floor = statistics.median(results["floor"])
        load = open("/proc/loadavg").read().split()[:3]
        print(f"init duration, {a.runs} cold starts each, {arch}, {os.cpu_count()} cores, load average "
              f"{' '.join(load)}; emulator init_ms = process start -> first GET /next")
        print()
        print("| variant | init median ms | p10 | p90 | median / floor | time in dynamic loader |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, _, _, _ in variants:
            xs = results[name]
            c = cycles.get(name)
            ct = f"{c / (mhz * 1000):.2f} ms ({c} cycles)" if c and mhz else "-"
            print(f"| {name} | {statistics.median(xs):.2f} | {pct(xs, 10):.2f} | {pct(xs, 90):.2f} | "
                  f"{statistics.median(xs) / floor:.2f} | {ct} |")
        print()
        print(f"time in dynamic loader: LD_DEBUG=statistics, 'total startup time in dynamic loader' (loading, "
              f"relocation), one run, cycles converted at {mhz or 0:.0f} MHz (/proc/cpuinfo)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
