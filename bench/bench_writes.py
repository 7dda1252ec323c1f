#!/usr/bin/env python3
"""bench/bench_writes.py: runs bench_writes against moto S3 and a local folder and writes
bench/results/writes.md (everything above the notes marker is rewritten; the notes are kept).

    python3 bench/bench_writes.py [--build-dir build/release] [--data /work/data] [--rounds 20]
                                  [--writers 1,2,4,8] [--samples 50] [--repeat 3] [--passes 3] [--skip-tail]
                                  [--out bench/results/writes.md]

Parts (see bench/bench_writes.c):
  ingest      PutVectors throughput on moto S3, batches of 500 GloVe-100 vectors, 1/2/4/8 writer threads,
              beside plain PUTs of the same objects by the same threads (what moto accepts at all);
  visibility  acknowledgement -> visible in another reader, on moto S3, beside one GET of a missing object;
  tail        warm query latency with a 0 / 10K / 100K unindexed tail, then compacted, on a local folder;
              and the compaction's time.
The S3 parts run --repeat times (alternating) and every figure is the median of the runs; the tail part
builds once and times --passes passes over the queries (median). `uptime` is recorded before each part.
moto runs as s3lib.MotoServer(atomic_puts=True): PutObject behind a lock (its conditional puts are not atomic otherwise;
S3's are) and no signature checks; its own cost is in every S3 figure (it is a Python server on this
machine). s3lib.origin's MemoryOrigin (faster) serves GET and HEAD only, so it cannot take log objects.
GloVe comes from shared/data's get-glove100.sh (--data holds glove100_base.fvecs and
glove100_query.fvecs)."""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent
sys.path.insert(0, str(SOURCE / "tests" / "integration"))
from s3lib import MotoServer  # noqa: E402
MARKER = "<!-- notes: kept when the tables above are regenerated -->"


def run(cmd, env=None):
    print("+ " + " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}")
    return p.stdout


NUM = re.compile(r"-?\d+(?:\.\d+)?")


def median_table(outputs):
    """Markdown tables printed by repeated runs of one command -> one table whose numbers are the medians
    of the runs, cell by cell (rows matched by their first cell; non-table lines from the first run)."""
    runs = [[ln for ln in o.splitlines()] for o in outputs]
    out = []
    for i, line in enumerate(runs[0]):
        cells = line.split("|")
        if not line.startswith("|") or set(line) <= set("|-: ") or i == 0 or not runs[0][i - 1].startswith("|"):
            out.append(line)
            continue
        key = cells[1]
        peers = [next((ln for ln in r if ln.startswith("|") and ln.split("|")[1] == key), line) for r in runs]
        merged = []
        for c, cell in enumerate(cells):
            nums = NUM.findall(cell)
            if c <= 1 or not nums:
                merged.append(cell)
                continue
            vals = [[float(x) for x in NUM.findall(p.split("|")[c])] for p in peers]
            vals = [v for v in vals if len(v) == len(nums)]
            pieces = iter(NUM.split(cell))
            text = next(pieces)
            for k, n in enumerate(nums):
                dec = len(n.split(".")[1]) if "." in n else 0
                text += f"{statistics.median(v[k] for v in vals):.{dec}f}" + next(pieces)
            merged.append(text)
        out.append("|".join(merged))
    return "\n".join(out) + "\n"


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} CPUs)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=str(SOURCE / "build" / "release"))
    ap.add_argument("--data", default="/work/data")
    ap.add_argument("--truth", default=str(SOURCE.parent / "shared" / "data" / "glove100_gt100_l2.ivecs"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--writers", default="1,2,4,8")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--skip-tail", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "writes.md"))
    a = ap.parse_args()
    exe = Path(a.build_dir) / "bench" / "bench_writes"
    base = Path(a.data) / "glove100_base.fvecs"
    queries = Path(a.data) / "glove100_query.fvecs"
    for p in (exe, base, queries):
        if not p.exists():
            raise SystemExit(f"missing {p}")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    commit = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    loads = [("start", uptime())]
    ingest_runs, vis_runs = [], []
    # moto_server without signature checks (their cost is moto's, not ours), PutObject atomic as in S3
    with MotoServer(auth=False, atomic_puts=True) as moto:
        moto.client("k", "s").create_bucket(Bucket="s3vec-bench")
        env = moto.env("k", "s")
        for r in range(a.repeat):
            loads.append((f"S3 run {r + 1}", uptime()))
            ingest_runs.append(run([exe, "ingest", "--storage", f"s3://s3vec-bench/ingest{r}", "--input", base,
                                    "--writers", a.writers, "--rounds", a.rounds], env))
            vis_runs.append(run([exe, "visibility", "--storage", f"s3://s3vec-bench/vis{r}", "--input", base,
                                 "--samples", a.samples], env))
    ingest, vis = median_table(ingest_runs), median_table(vis_runs)
    tail = ""
    if not a.skip_tail:
        loads.append(("tail part", uptime()))
        with tempfile.TemporaryDirectory(prefix="s3vec-bench-writes-", dir=a.data) as tmp:
            tail = run([exe, "tail", "--dir", Path(tmp) / "idx", "--input", base, "--queries", queries, "--truth",
                        a.truth, "--passes", a.passes])
    loads.append(("end", uptime()))
    ended = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = Path(a.out)
    notes = ""
    if out.exists() and MARKER in out.read_text():
        notes = out.read_text().split(MARKER, 1)[1]
    cmd = "python3 bench/bench_writes.py " + " ".join(sys.argv[1:])
    text = f"""# Writes benchmark: PutVectors, visibility, the unindexed tail, compaction

<!-- generated by bench/bench_writes.py -->

- run: {started} .. {ended} (UTC), commit {commit}
- machine: {machine()}, shared with other engineers' builds and benchmarks; `uptime`:
{chr(10).join(f"  - {w}: `{u}`" for w, u in loads)}
- command: `{cmd.strip()}`; S3 figures: medians of {a.repeat} runs; query times: medians of {a.passes} passes
- S3 is moto 5.2 on this machine (a Python server; PutObject behind a lock so that conditional puts are atomic as
  in S3; no signature checks): its own cost is in every S3 figure, and the limit beside ours is what it accepts
  at all. s3lib.origin's MemoryOrigin, faster, serves only GET and HEAD (no PUT, no conditional PUT), so it
  cannot stand in for S3 here.

## PutVectors throughput (moto S3, batches of 500 GloVe-100 vectors, one log object per batch, {a.rounds} batches per writer)

One writer = one thread with its own storage handle and log writer (`wal_writer_append`: PUT If-None-Match of
the next slot, then a GET of the manifest to acknowledge). Plain PUTs: the same threads PUT the same encoded
objects to distinct keys with no condition and nothing else.

{ingest}
## Acknowledgement to visibility (moto S3)

A writer appends one vector; a reader that has the index open refreshes its tail (`ivf_index_refresh`: a GET of
the next log slot) until the key is there.

{vis}
## Query latency with an unindexed tail (local folder, warm, GloVe-100)

{tail if tail else "(skipped)"}
{MARKER}{notes}"""
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
