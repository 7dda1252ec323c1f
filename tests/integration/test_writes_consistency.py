#!/usr/bin/env python3
"""Consistency of writes against moto S3: several writer processes, a compactor and readers at once.

    python3 tests/integration/test_writes_consistency.py [--seconds 40] [--writers 3] [--seed N]

An index is created on moto S3 (with a 4 s grace period, so garbage collection happens during the run).
For --seconds, at the same time:
  - each writer process puts batches of 3..40 vectors (overwriting keys of a shared key space of 300,
    so writers overwrite each other) and deletes batches of 1..20 keys, through `s3vec put` / `s3vec
    delete`; every vector carries its operation id in data[0] and in its metadata. An operation is
    acknowledged when the CLI printed its log slot ("seq N"). Now and then a writer's s3vec process is
    killed (SIGKILL) a few milliseconds in, mid-operation: that operation is unacknowledged and may or may
    not have landed;
  - a compactor runs `s3vec compact` in a loop and is itself killed mid-run a few times;
  - a reader runs `s3vec query` and `s3vec get` in a loop: none of them may fail.
Then, with nothing running, a fresh reader lists the whole index (`s3vec list --all`) and the result is
checked key by key against the acknowledged operations: the key's state is the acknowledged operation with
the highest log slot (its vector and metadata, or absent after a delete), or that of an unacknowledged
operation on the key (which may have landed after it); every key is listed exactly once; no deleted key
is back. The same check is repeated after a last compaction, and after the grace period the garbage is
gone: only the current generation's folder remains and the log holds no folded objects.

moto 5.2 checks If-None-Match / If-Match on PutObject but not atomically (two simultaneous conditional
puts of one key can both succeed: measured 1 in 300 with 12 racers); S3 is atomic. The test therefore runs
moto with PutObject behind a lock (s3lib MotoServer(atomic_puts=True)), which is how S3 behaves, and with
every request's SigV4 signature verified.

Prints "N passed, N failed"; exits non-zero on failure. Every process it starts is stopped at the end."""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from s3lib import MotoServer  # noqa: E402
SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[1])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
S3VEC_BIN = Path(os.environ.get("S3VEC_BIN") or BUILD_DIR / "cli" / "s3vec")
BUCKET = "s3vec-writes"
DIM = 8
KEYS = 300


# ---------------------------------------------------------------------------------------------------
# harness

class Results:
    passed = 0
    failed = 0


def check(cond, what):
    if cond:
        Results.passed += 1
    else:
        Results.failed += 1
        print(f"FAIL {what}", flush=True)
    return bool(cond)


CHILDREN = set()
CHILD_LOCK = threading.Lock()


def run(args, env, timeout=120, kill_after=None):
    """Runs s3vec; with kill_after (seconds) it is killed with SIGKILL then. Returns (rc, stdout, stderr,
    killed)."""
    p = subprocess.Popen([str(S3VEC_BIN)] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    with CHILD_LOCK:
        CHILDREN.add(p)
    killed = False
    try:
        if kill_after is not None:
            try:
                out, err = p.communicate(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.kill()
                killed = True
                out, err = p.communicate()
        else:
            out, err = p.communicate(timeout=timeout)
    finally:
        with CHILD_LOCK:
            CHILDREN.discard(p)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), killed


# ---------------------------------------------------------------------------------------------------
# the actors

class Writer(threading.Thread):
    """Puts and deletes through the CLI; records every operation and whether it was acknowledged."""

    def __init__(self, wid, loc, env, tmp, stop_at, seed, kills):
        super().__init__(daemon=True)
        self.wid, self.loc, self.env, self.tmp, self.stop_at = wid, loc, env, tmp, stop_at
        self.rng = random.Random(seed)
        self.kills_left = kills
        self.ops = []  # dicts: id, kind, keys, acked, seq, killed, error
        self.error = None

    def run(self):
        try:
            n = 0
            while time.time() < self.stop_at:
                n += 1
                op_id = self.wid * 100000 + n
                keys = self.rng.sample(range(KEYS), self.rng.randint(3, 40) if self.rng.random() < 0.65
                                       else self.rng.randint(1, 20))
                kind = "put" if len(keys) >= 3 and self.rng.random() < 0.9 else "delete"
                op = {"id": op_id, "kind": kind, "keys": keys, "acked": False, "seq": None, "killed": False}
                self.ops.append(op)
                kill_after = None
                if self.kills_left and self.rng.random() < 0.08:
                    kill_after = self.rng.uniform(0.001, 0.03)
                    self.kills_left -= 1
                if kind == "put":
                    path = Path(self.tmp) / f"w{self.wid}.jsonl"
                    with open(path, "w") as f:
                        for k in keys:
                            vec = [float(op_id)] + [self.rng.uniform(-1, 1) for _ in range(DIM - 1)]
                            f.write(json.dumps({"key": f"k{k}", "data": vec,
                                                "metadata": {"op": op_id, "w": self.wid}}) + "\n")
                    rc, out, err, killed = run(["put", self.loc, "--input", path], self.env, kill_after=kill_after)
                else:
                    rc, out, err, killed = run(["delete", self.loc] + [f"k{k}" for k in keys], self.env,
                                               kill_after=kill_after)
                op["killed"] = killed
                seqs = [int(line.split()[1]) for line in out.splitlines() if line.startswith("seq ")]
                if rc == 0 and len(seqs) == 1:
                    op["acked"], op["seq"] = True, seqs[0]
                elif not killed:
                    op["error"] = err.strip()[-300:]
        except Exception:
            self.error = traceback.format_exc()


class Compactor(threading.Thread):
    def __init__(self, loc, env, tmp, stop_at, seed, kills):
        super().__init__(daemon=True)
        self.loc, self.env, self.tmp, self.stop_at = loc, env, tmp, stop_at
        self.rng = random.Random(seed)
        self.kills_left = kills
        self.runs = self.committed = self.killed = 0
        self.failures = []

    def run(self):
        while time.time() < self.stop_at:
            time.sleep(self.rng.uniform(0.5, 2.0))
            kill_after = None
            if self.kills_left and self.rng.random() < 0.3:
                kill_after = self.rng.uniform(0.02, 0.6)
                self.kills_left -= 1
            rc, out, err, killed = run(["compact", self.loc, "-q", "--json", "--threads", "1", "--tmp-dir", self.tmp],
                                       self.env, kill_after=kill_after)
            self.runs += 1
            if killed:
                self.killed += 1
            elif rc == 0:
                self.committed += bool(json.loads(out).get("committed"))
            elif "changed" not in err:  # losing a race to another compactor is fine; nothing else is
                self.failures.append(err.strip()[-400:])


class Reader(threading.Thread):
    def __init__(self, loc, env, stop_at, seed):
        super().__init__(daemon=True)
        self.loc, self.env, self.stop_at = loc, env, stop_at
        self.rng = random.Random(seed)
        self.queries = 0
        self.failures = []

    def run(self):
        while time.time() < self.stop_at:
            vec = json.dumps([self.rng.uniform(-1, 1) for _ in range(DIM)])
            if self.rng.random() < 0.5:
                args = ["query", self.loc, "--vector", vec, "-k", "10"]
            else:
                args = ["get", self.loc] + [f"k{self.rng.randrange(KEYS)}" for _ in range(5)]
            rc, out, err, _ = run(args, self.env)
            self.queries += 1
            if rc != 0:
                self.failures.append(" ".join(args[:1]) + ": " + err.strip()[-300:])


# ---------------------------------------------------------------------------------------------------
# the check

def expected_states(writers):
    """key -> (acked op with the highest slot or None, unacked ops)"""
    best = {}
    maybe = {}
    for w in writers:
        for op in w.ops:
            for k in op["keys"]:
                if op["acked"]:
                    if k not in best or op["seq"] > best[k]["seq"]:
                        best[k] = op
                else:
                    maybe.setdefault(k, []).append(op)
    return best, maybe


def check_contents(loc, env, writers, what):
    rc, out, err, _ = run(["list", loc, "--all", "--data", "--metadata", "--json"], env)
    if not check(rc == 0, f"{what}: list: {err[-300:]}"):
        return
    vectors = json.loads(out)["vectors"]
    seen = {}
    dup = 0
    for v in vectors:
        k = int(v["key"][1:])
        dup += k in seen
        seen[k] = v
    check(dup == 0, f"{what}: every key listed once ({dup} listed twice)")
    best, maybe = expected_states(writers)
    wrong = []
    for k in range(KEYS):
        got = seen.get(k)
        got_op = None
        if got is not None:
            got_op = got["metadata"]["op"]
            if got["data"]["float32"][0] != float(got_op):
                wrong.append(f"k{k}: data[0] {got['data']['float32'][0]} does not match metadata op {got_op}")
                continue
        a = best.get(k)
        ok = False
        if a is not None:
            ok = (a["kind"] == "put" and got_op == a["id"]) or (a["kind"] == "delete" and got is None)
        elif got is None:
            ok = True  # never acknowledged: absent is right
        for u in maybe.get(k, []):  # an unacknowledged operation may have landed after the acked one
            ok = ok or (u["kind"] == "put" and got_op == u["id"]) or (u["kind"] == "delete" and got is None)
        if not ok:
            wrong.append(f"k{k}: got {'absent' if got is None else 'op ' + str(got_op)}, acknowledged "
                         f"{a['kind'] + ' op ' + str(a['id']) + ' at slot ' + str(a['seq']) if a else 'nothing'}")
    check(not wrong, f"{what}: every key holds its latest acknowledged write ({len(wrong)} wrong: {wrong[:5]})")
    resurrected = [k for k, a in best.items() if a["kind"] == "delete" and k in seen
                   and not any(u["kind"] == "put" for u in maybe.get(k, []))]
    check(not resurrected, f"{what}: no deleted key came back ({resurrected[:5]})")
    return len(vectors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    args = ap.parse_args()
    if not S3VEC_BIN.exists():
        print(f"s3vec not built at {S3VEC_BIN}\n0 passed, 1 failed")
        return 1
    print(f"seed {args.seed}", flush=True)
    moto = MotoServer(atomic_puts=True).start()  # every request's SigV4 signature verified
    threads = []
    try:
        with tempfile.TemporaryDirectory(prefix="s3vec-writes-") as tmp:
            key, secret = moto.create_user()
            s3 = moto.client(key, secret)
            s3.create_bucket(Bucket=BUCKET)
            env = moto.env(key, secret, extra={"S3VEC_LOG": "warn"})
            loc = f"s3://{BUCKET}/vb/consistency"
            rc, out, err, _ = run(["create-index", loc, "--dimension", DIM, "--metric", "euclidean",
                                   "--grace-seconds", "4"], env)
            if not check(rc == 0, f"create-index: {err}"):
                return 1
            stop_at = time.time() + args.seconds
            writers = [Writer(i + 1, loc, env, tmp, stop_at, args.seed * 10 + i, kills=2)
                       for i in range(args.writers)]
            comp = Compactor(loc, env, tmp, stop_at, args.seed + 77, kills=3)
            reader = Reader(loc, env, stop_at, args.seed + 99)
            threads = writers + [comp, reader]
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.seconds + 300)
            for w in writers:
                check(w.error is None, f"writer {w.wid} crashed: {w.error}")
            ops = [op for w in writers for op in w.ops]
            acked = [op for op in ops if op["acked"]]
            killed = [op for op in ops if op["killed"]]
            errors = [op for op in ops if not op["acked"] and not op["killed"]]
            slots = sorted(op["seq"] for op in acked)
            print(f"writers: {len(ops)} operations, {len(acked)} acknowledged, {len(killed)} killed mid-way, "
                  f"{len(errors)} failed; compactor: {comp.runs} runs, {comp.committed} committed, "
                  f"{comp.killed} killed; reader: {reader.queries} queries", flush=True)
            check(len(acked) >= 30, f"enough acknowledged writes to mean something ({len(acked)})")
            check(not errors, f"no write failed without being killed: {[e.get('error') for e in errors[:3]]}")
            check(len(set(slots)) == len(slots), "no two acknowledged writes share a log slot")
            check(comp.committed >= 2 and comp.killed >= 1,
                  f"compactions committed ({comp.committed}) and were killed ({comp.killed}) during the run")
            check(not comp.failures, f"compactions failed: {comp.failures[:3]}")
            check(reader.queries >= 20 and not reader.failures,
                  f"{reader.queries} reads, none failed: {reader.failures[:3]}")
            n = check_contents(loc, env, writers, "after the run")
            rc, out, err, _ = run(["compact", loc, "-q", "--json", "--tmp-dir", tmp], env)
            check(rc == 0, f"a last compaction after the kills works: {err[-300:]}")
            n2 = check_contents(loc, env, writers, "after a last compaction")
            check(n == n2, f"compaction keeps the count ({n} -> {n2})")
            rc, out, err, _ = run(["inspect", loc, "--json"], env)
            info = json.loads(out) if rc == 0 else {}
            check(info.get("wal", {}).get("tailRecords") == 0, "nothing left unfolded")
            time.sleep(4.5)  # past the grace period: everything retired or orphaned goes
            for _ in range(2):
                rc, out, err, _ = run(["compact", loc, "-q", "--json", "--tmp-dir", tmp], env)
                check(rc == 0, f"garbage collection: {err[-300:]}")
            rc, out, err, _ = run(["inspect", loc, "--json"], env)
            info = json.loads(out) if rc == 0 else {}
            keys = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="vb/consistency/"):
                keys += [o["Key"] for o in page.get("Contents", [])]
            gens = {k.split("/")[2] for k in keys if k.split("/")[2].startswith("g")}
            wal = [k for k in keys if "/wal/" in k]
            check(gens == {info.get("generation")}, f"only the current generation is left ({sorted(gens)})")
            check(not wal, f"no folded log object is left ({len(wal)})")
            check(not info.get("retired"), f"nothing is waiting in the retired list ({info.get('retired')})")
            check_contents(loc, env, writers, "after garbage collection")
            for w in writers:  # and the index still takes writes
                pass
            path = Path(tmp) / "last.jsonl"
            path.write_text(json.dumps({"key": "k0", "data": [1.0] * DIM, "metadata": {"op": 1}}) + "\n")
            rc, out, err, _ = run(["put", loc, "--input", path], env)
            check(rc == 0 and out.startswith("seq "), f"the index takes writes after everything: {err[-200:]}")
    except Exception:
        Results.failed += 1
        print(f"FAIL raised:\n{traceback.format_exc()}", flush=True)
    finally:
        with CHILD_LOCK:
            for p in list(CHILDREN):
                p.kill()
        moto.stop()
    print(f"{Results.passed} passed, {Results.failed} failed", flush=True)
    return 1 if Results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
