#!/usr/bin/env python3
"""bench/bench_s3_cold.py: cold-query latency from S3 under the network model of DESIGN.md (issue 3).

    python3 bench/bench_s3_cold.py [--harness c|relay] [--reps 3] [--queries 200] [--seq-queries 50]
        [--nprobe 8,32,64] [--encodings f32,f16] [--latency-ms 20] [--bandwidth-mbps 80] [--nice -10] [--json OUT]

S3 is modelled as latency_ms added per request and bandwidth_mbps (10^6 bytes/s) per TCP connection (this
kernel has no netem qdisc), by one of two harnesses (--harness):
  c (default)  bench/s3model_origin (C, epoll, one thread) serves the index folders and applies the model
               itself (throttling mode: the answer starts latency_ms after the request, the body leaves in
               chunks paced at bandwidth_mbps per connection, sendfile from the page cache);
  relay        tests/integration/s3lib/throttle.py (a user-space relay, Python) in front of
               tests/integration/s3lib/origin.py serving the folders from memory (Python); it cannot sustain
               32 connections x 80 MB/s on 2 cores (bench/results/s3.md).
Both serve without an auth check (moto reads a whole object per ranged GET). `s3vec query s3://bkt/glove-<enc>
--cache-mb 0 --stats` runs against the model: with --cache-mb 0 nothing is cached between queries while the
centroids stay warm, so every query is cold. Each process (origins, relays, s3vec) is a separate process; the
client is one thread (curl multi). With --harness c, the Python paths (relay + origin, and the Python origin's
own throttling mode) run beside it at --compare-nprobe (default 8) as a check: same bytes and requests,
comparable latency.

Per query, from the index files (manifest, centroids object: FORMAT.md), this script recomputes the
probed clusters (the nprobe nearest centroids, nearest first, ties by id, as engine/index.c) and so the
exact ranges, and checks them against the bytes the client reports. For those ranges, with the client's
concurrency C (S3VEC_S3_MAX_CONCURRENCY, default 64) and the client's order (largest first, the next range on
the first connection to free up):
  bound      = one round trip + the largest per-connection transfer: L + max_conn(bytes on conn) / B
               (the issue's lower bound; with nprobe <= C every range has its own connection)
  http model = the same schedule when each request costs its own round trip (HTTP/1.1, no pipelining):
               max_conn(sum over its ranges of L + bytes / B); equals the bound when nprobe <= C
  sequential = S3VEC_S3_MAX_CONCURRENCY=1, modelled as sum over ranges of (L + bytes / B)
Measured per query: the client's own total (probe + fetch + scan) from --stats. Query 1 of each run is
left out (it opens the connections). Also measured in the same run: the engine alone on the local folder,
the client against the origin directly (and, with the relay harness, through the relay with latency 0 and
no bandwidth cap: the harness's own cost), CPU seconds of client and harness processes per query, what the
harness sustains (N parallel ranges of S bytes, C driver), the pure ranged fetch of the same clusters
(tests/s3_driver `ranges`, no engine) for a few queries, the same model applied by the Python origin
itself (torigin), and the client with glibc malloc tunables that keep freed memory mapped (tuned).
Requests are counted by the client and, as a check (hedged duplicates included), by the origin.

Needs: the s3vec CLI, tests/s3_driver and (for --harness c) bench/s3model_origin in --build-dir (default
$S3VEC_BUILD_DIR or build/release),
GloVe-100 in --data (default ../data; scripts/fetch-data.sh glove100), and builds the indexes into
--work (default <data>/s3bench/glove-<enc>, default build options) when missing. Stdlib only."""
import argparse
import array
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
S3LIB_PARENT = os.path.join(REPO, "tests", "integration")
BUCKET = "bkt"
# glibc keeps freed memory instead of returning it (and re-faulting zeroed pages for the next range buffer)
TUNABLES = ("glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=67108864:"
            "glibc.malloc.top_pad=67108864")


# ---- processes --------------------------------------------------------------------------------------

class Harness:
    """Origins + relays, each in its own process (`python3 -m s3lib.<module>`, or the C origin); all stopped
    on exit."""

    def __init__(self, nice, build_dir=None, work=None):
        self.nice = nice
        self.build_dir = build_dir
        self.work = work
        self.procs = []
        self.pid_of = {}  # port -> pid

    def spawn(self, args, timeout=120, python=True):
        cmd = [sys.executable, "-m", *args] if python else list(args)
        if self.nice:
            cmd = ["nice", "-n", str(self.nice), *cmd]
        p = subprocess.Popen(cmd, cwd=S3LIB_PARENT, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        t0 = time.monotonic()
        line = p.stdout.readline()  # the origin reads and hashes the index files first
        if not line.startswith("listening on") or time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{args[0]} did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        self.pid_of[port] = p.pid
        return port

    def cpu_s(self, port):
        """CPU seconds (user + system) used so far by the process serving port."""
        with open(f"/proc/{self.pid_of[port]}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def c_origin(self, latency_ms, bandwidth_mbps, chunk_kib):
        """bench/s3model_origin serving the index folders, applying the model itself (0 = off)."""
        return self.spawn([os.path.join(self.build_dir, "bench", "s3model_origin"), "--dir", f"{BUCKET}={self.work}",
                           "--latency-ms", str(latency_ms), "--bandwidth-mbps", str(bandwidth_mbps),
                           "--chunk-kib", str(chunk_kib)], python=False)

    def relay(self, origin_port, latency_ms, bandwidth_mbps):
        return self.spawn(["s3lib.throttle", "--upstream", f"127.0.0.1:{origin_port}", "--latency-ms",
                           str(latency_ms), "--bandwidth-mbps", str(bandwidth_mbps)])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def origin_stats(port, reset=False):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_origin/{'reset' if reset else 'stats'}",
                                timeout=10) as r:
        return json.loads(r.read())


def client_env(endpoint, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VEC_S3_"))}
    env.update(AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="benchsecret", AWS_REGION="us-east-1",
               HOME="/nonexistent")
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    env.update(extra or {})
    return env


# ---- the index, read as FORMAT.md says --------------------------------------------------------------

def read_index(folder):
    with open(os.path.join(folder, "manifest"), "rb") as f:
        raw = f.read()
    if raw[:8] != b"S3VMANI\0":
        raise RuntimeError(f"{folder}/manifest: bad magic")
    (body_size,) = struct.unpack_from("<I", raw, 12)
    m = json.loads(raw[24:24 + body_size])
    with open(os.path.join(folder, m["centroids"]["key"]), "rb") as f:
        c = f.read()
    if c[:8] != b"S3VCENT\0":
        raise RuntimeError(f"{folder}: bad centroids magic")
    dim, nlist, enc = struct.unpack_from("<III", c, 12)
    cent = array.array("f")
    cent.frombytes(c[64:64 + 4 * dim * nlist])
    if sys.byteorder != "little":
        cent.byteswap()
    cent = cent.tolist()
    clusters = []
    off = 64 + 4 * dim * nlist
    for i in range(nlist):
        obj, count, offset, size, _crc, _r = struct.unpack_from("<IIQQII", c, off + 32 * i)
        clusters.append((m["data"][obj]["key"], offset, size, count))
    if m["metric"] != "euclidean":
        raise RuntimeError("this benchmark recomputes euclidean probes only")
    return {"manifest": m, "dim": dim, "nlist": nlist, "centroids": [cent[i * dim:(i + 1) * dim]
                                                                      for i in range(nlist)],
            "clusters": clusters}


def read_fvecs(path, limit):
    out = []
    with open(path, "rb") as f:
        while len(out) < limit:
            h = f.read(4)
            if len(h) < 4:
                break
            (d,) = struct.unpack("<i", h)
            v = array.array("f")
            v.frombytes(f.read(4 * d))
            out.append(v.tolist())
    return out


def probe_order(index, queries, nprobe):
    """Per query, the nprobe nearest clusters, nearest first, ties by id (engine/index.c probe_before)."""
    out = []
    cents = index["centroids"]
    for q in queries:
        d = []
        for i, c in enumerate(cents):
            s = 0.0
            for a, b in zip(q, c):
                t = a - b
                s += t * t
            d.append((s, i))
        d.sort()
        out.append([i for _, i in d[:nprobe]])
    return out


def schedule(sizes, conc, lat, rate):
    """(bound, http model) in seconds for ranges of `sizes` over `conc` connections. The client starts ranges
    largest first (s3/s3_storage.c; ties in probe order), each on the first connection to free up (curl multi
    with a cap)."""
    sizes = sorted(sizes, reverse=True)
    n = len(sizes)
    if n == 0:
        return 0.0, 0.0
    conns = [[0.0, 0] for _ in range(min(conc, n))]  # [busy until (http model), bytes]
    for s in sizes:
        c = min(conns, key=lambda x: x[0])
        c[0] += lat + s / rate
        c[1] += s
    return lat + max(b for _, b in conns) / rate, max(t for t, _ in conns)


# ---- running the client -----------------------------------------------------------------------------

def run_query(args, location, nq, nprobe, env, prefix=()):
    cmd = [*prefix, os.path.join(args.build_dir, "cli", "s3vec"), "query", location, "--queries", args.query_file,
           "--limit", str(nq), "--nprobe", str(nprobe), "--cache-mb", "0", "--stats"]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    load = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    rows = []
    for line in p.stdout.splitlines():
        if line.startswith("# nprobe"):
            f = line.replace(",", "").split()
            rows.append({"requests": int(f[f.index("requests") + 1]), "bytes": int(f[f.index("bytes") + 1]),
                         "ms": float(f[f.index("total") + 1]), "fetch_ms": float(f[f.index("fetch") + 1]),
                         "scan_ms": float(f[f.index("scan") + 1])})
    if len(rows) != nq:
        raise RuntimeError(f"expected {nq} stats lines, got {len(rows)}")
    return rows, load, cpu


def pct(v, p):
    v = sorted(v)
    i = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))
    return v[int(i)]


def summarise(rows, models):
    """rows: per-query measurements (query 1 dropped by the caller); models: per-query (bound, http, seq) s."""
    ms = [r["ms"] for r in rows]
    out = {"n": len(rows), "p50": pct(ms, 50), "p90": pct(ms, 90), "mean": statistics.mean(ms),
           "requests": statistics.mean(r["requests"] for r in rows),
           "bytes": statistics.mean(r["bytes"] for r in rows)}
    for k, j in (("bound", 0), ("http", 1), ("seq_model", 2)):
        out[k] = 1e3 * statistics.mean(m[j] for m in models)
    out["ratio_bound"] = out["mean"] / out["bound"]
    out["ratio_bound_p50"] = statistics.median(r["ms"] / (1e3 * m[0]) for r, m in zip(rows, models))
    out["ratio_http"] = out["mean"] / out["http"]
    out["ratio_seq_model"] = out["mean"] / out["seq_model"]
    return out


def fetch_only(args, env, location, ranges_per_query):
    """Pure ranged fetch of the same clusters by the C backend (no engine): per query, the median of
    the warm iterations of `s3_driver ranges` (a fresh process; iteration 1 opens the connections)."""
    drv = os.path.join(args.build_dir, "tests", "s3_driver")
    out = []
    for ranges in ranges_per_query:
        cmd = [drv, location, "ranges", "/dev/null", *ranges, "--repeat", "4"]
        if args.nice:
            cmd = ["nice", "-n", str(args.nice), *cmd]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if not r["ok"]:
            raise RuntimeError(f"s3_driver ranges failed: {r['msg']}")
        out.append(statistics.median(r["iter_ms"][1:]))
    return out


PROFILE_GROUPS = (  # (name, test on the sample's stack, leaf first); the first that matches wins
    ("page faults and returning memory (fresh range buffers)",
     lambda st: any(k in f for f in st for k in ("exc_page_fault", "__do_sys_brk", "munmap", "sys_madvise"))),
    ("kernel: TCP receive (copy to user, ACKs)", lambda st: any("tcp_recvmsg" in f for f in st)),
    ("kernel: sending requests (on loopback this includes the origin's TCP receive)",
     lambda st: any("sendto" in f or "tcp_sendmsg" in f for f in st)),
    ("CRC-32C of the blocks", lambda st: "crc32c" in st[0]),
    ("kernel: other system calls (poll, send, ...)", lambda st: any("entry_SYSCALL" in f for f in st)),
    ("kernel: interrupts and unresolved", lambda st: st[0].startswith("[") or any("irq" in f for f in st)),
    ("request set-up: SigV4 signing, curl handle and headers (xfer_start)",
     lambda st: any(f.startswith("xfer_start") for f in st)),
    ("memcpy (curl's buffer to the range buffer)", lambda st: "memmove" in st[0] or "memcpy" in st[0]),
    ("scan and top-k", lambda st: any(k in st[0] for k in ("l2sq", "scan_entry", "topk", "dot_"))),
    ("malloc/free", lambda st: any(k in st[0] for k in ("malloc", "free", "_int_", "unlink_chunk"))),
    ("other user code (curl, s3 client, engine)", lambda st: True),
)


def profile(args, location, nq, nprobe, env):
    """perf record of the client for one run; returns [(group, share)] of its CPU samples."""
    data = os.path.join(args.work, "runs", "perf.data")
    os.makedirs(os.path.dirname(data), exist_ok=True)
    run_query(args, location, nq, nprobe, env, ("perf", "record", "-q", "-F", "500", "--call-graph", "dwarf,16384",
                                                "-o", data))
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"], capture_output=True, text=True,
                         timeout=600).stdout
    counts = {name: 0 for name, _ in PROFILE_GROUPS}
    stack, comm = [], ""
    for line in out.splitlines() + [""]:
        if line.startswith("\t"):
            if comm == "s3vec":
                parts = line.split()
                stack.append(parts[1] if len(parts) > 1 else "?")
            continue
        if stack:
            counts[next(name for name, test in PROFILE_GROUPS if test(stack))] += 1
        stack, comm = [], line.strip()
    total = sum(counts.values()) or 1
    return [(k, v / total) for k, v in counts.items()], total


def relay_capacity(args, harness, origin_port, location, key, obj_size):
    """What the harness sustains: N parallel ranges of S bytes (C driver, warm connections) at latency 0 and
    the modelled bandwidth (the relay, or the C origin's throttling mode), through the relay without limits
    (relay harness only), and from the origin directly."""
    drv = os.path.join(args.build_dir, "tests", "s3_driver")
    if args.harness == "c":
        capped, free = harness.c_origin(0, args.bandwidth_mbps, args.chunk_kib), None
    else:
        capped = harness.relay(origin_port, 0, args.bandwidth_mbps)
        free = harness.relay(origin_port, 0, 0)
    size = 1 << 20
    rows = []
    for n in (1, 8, 32, 64):
        row = {"n": n, "size": size, "relay": float("nan")}
        for name, port in (("capped", capped), ("relay", free), ("origin", origin_port)):
            if port is None:
                continue
            ranges = [f"{key}:{(i * 7919 * size) % (obj_size - size)}:{size}" for i in range(n)]
            cmd = [drv, location, "ranges", "/dev/null", *ranges, "--repeat", "6"]
            if args.nice:
                cmd = ["nice", "-n", str(args.nice), *cmd]
            p = subprocess.run(cmd, env=client_env(f"http://127.0.0.1:{port}", {"S3VEC_S3_HEDGE": "0"}),
                               capture_output=True, text=True, timeout=600)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            if not r["ok"]:
                raise RuntimeError(f"s3_driver ranges failed: {r['msg']}")
            row[name] = statistics.median(r["iter_ms"][1:])
        row["model"] = 1e3 * size / (args.bandwidth_mbps * 1e6)
        rows.append(row)
    return rows


def ensure_index(args, enc):
    folder = os.path.join(args.work, f"glove-{enc}")
    if not os.path.exists(os.path.join(folder, "manifest")):
        base = os.path.join(args.data, "glove100_base.fvecs")
        if not os.path.exists(base):
            subprocess.run([os.path.join(REPO, "scripts", "fetch-data.sh"), "glove100", args.data], check=True)
        subprocess.run([os.path.join(args.build_dir, "cli", "s3vec"), "build", folder, "--input", base,
                        "--encoding", enc, "-q"], check=True)
    return folder


# ---- main -------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("S3VEC_BUILD_DIR", os.path.join(REPO, "build",
                                                                                          "release")))
    ap.add_argument("--data", default=os.environ.get("S3VEC_DATA", os.path.join(REPO, "..", "data")))
    ap.add_argument("--work", default=None, help="index folders (default <data>/s3bench)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seq-queries", type=int, default=50)
    ap.add_argument("--fetch-queries", type=int, default=20)
    ap.add_argument("--nprobe", default="8,32,64")
    ap.add_argument("--encodings", default="f32,f16")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=80.0)
    ap.add_argument("--concurrency", type=int, default=64, help="S3VEC_S3_MAX_CONCURRENCY (client default 64)")
    ap.add_argument("--harness", choices=("c", "relay"), default="c",
                    help="c: bench/s3model_origin applies the model (default); relay: the Python relay + origin")
    ap.add_argument("--chunk-kib", type=float, default=64, help="C origin: body chunk paced at a time")
    ap.add_argument("--compare-nprobe", default="8",
                    help="with --harness c, also run the Python paths (relay, and the Python origin's throttling "
                         "mode) at these nprobes as a check (comma list; empty for none)")
    ap.add_argument("--wide", action="store_true",
                    help="also run nprobe > concurrency with S3VEC_S3_MAX_CONCURRENCY = nprobe")
    ap.add_argument("--skip", default="",
                    help="comma list of parts to skip: seq,overhead,capacity,fetch,torigin,tuned,compare")
    ap.add_argument("--nice", type=int, default=0, help="run every process of the benchmark at this nice")
    ap.add_argument("--profile", default="", help="ENC/NPROBE: perf record the client once under the model "
                    "(relay) and print where its CPU goes")
    ap.add_argument("--json", help="write all figures here")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.work = os.path.abspath(args.work or os.path.join(args.data, "s3bench"))
    for tool in (("cli", "s3vec"), ("tests", "s3_driver")) + ((("bench", "s3model_origin"),)
                                                               if args.harness == "c" else ()):
        if not os.access(os.path.join(args.build_dir, *tool), os.X_OK):
            ap.error(f"{os.path.join(args.build_dir, *tool)} is missing: build first (cmake --preset release && "
                     "cmake --build build/release), or give --build-dir")
    args.query_file = os.path.join(args.data, "glove100_query.fvecs")
    skip = set(filter(None, args.skip.split(",")))
    nprobes = [int(x) for x in args.nprobe.split(",")]
    encodings = args.encodings.split(",")
    lat, rate = args.latency_ms / 1e3, args.bandwidth_mbps * 1e6
    nq = max(args.queries, args.seq_queries, args.fetch_queries + 1)
    queries = read_fvecs(args.query_file, nq)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()

    indexes, probes, opened = {}, {}, {}
    for enc in encodings:
        folder = ensure_index(args, enc)
        indexes[enc] = read_index(folder)
        order = probe_order(indexes[enc], queries, max(nprobes))
        probes[enc] = order

    def ranges_of(enc, qi, nprobe):
        ix = indexes[enc]
        return [ix["clusters"][c][:3] for c in probes[enc][qi][:nprobe]]  # keys relative to the index

    def models(enc, nprobe, conc, n):
        out = []
        for qi in range(n):
            sizes = [s for _, _, s in ranges_of(enc, qi, nprobe)]
            b, h = schedule(sizes, conc, lat, rate)
            out.append((b, h, sum(lat + s / rate for s in sizes)))
        return out

    results = {"started": started, "args": vars(args), "load_start": load_start, "cpus": os.cpu_count(),
               "runs": [], "overhead": [], "capacity": [], "fetch": [], "mismatch": {}}
    compare = [int(x) for x in args.compare_nprobe.split(",") if x] if args.harness == "c" else []
    if "compare" in skip:
        compare = []
    with Harness(args.nice, args.build_dir, args.work) as h:
        zport = tport = pyo = pyr = None
        if args.harness == "c":
            oport = h.c_origin(0, 0, args.chunk_kib)
            rport = h.c_origin(args.latency_ms, args.bandwidth_mbps, args.chunk_kib)  # the model
            model_served, model_stats = [rport], rport
            if compare:  # the Python harness beside it: relay + origin
                pyo = h.spawn(["s3lib.origin", "--dir", f"{BUCKET}={args.work}"])
                pyr = h.relay(pyo, args.latency_ms, args.bandwidth_mbps)
        else:
            oport = h.spawn(["s3lib.origin", "--dir", f"{BUCKET}={args.work}"])
            rport = h.relay(oport, args.latency_ms, args.bandwidth_mbps)
            zport = h.relay(oport, 0, 0)
            model_served, model_stats = [oport, rport], oport
        if "torigin" not in skip and (args.harness == "relay" or compare):
            # the same model applied by the Python origin itself: no relay hop
            tport = h.spawn(["s3lib.origin", "--dir", f"{BUCKET}={args.work}", "--latency-ms", str(args.latency_ms),
                             "--bandwidth-mbps", str(args.bandwidth_mbps)])
        model_env = client_env(f"http://127.0.0.1:{rport}",
                               {"S3VEC_S3_MAX_CONCURRENCY": str(args.concurrency)})

        # what opening the index costs (manifest, centroids, log listing...): one query of nprobe 1, less
        # that query's own request and bytes
        for enc in encodings:
            before = origin_stats(oport)
            rows, _, _ = run_query(args, f"s3://{BUCKET}/glove-{enc}", 1, 1,
                                   client_env(f"http://127.0.0.1:{oport}", {"S3VEC_S3_HEDGE": "0"}))
            after = origin_stats(oport)
            opened[enc] = (after["requests"] - before["requests"] - rows[0]["requests"],
                           after["bytes"] - before["bytes"] - rows[0]["bytes"])
        results["open"] = opened

        # what the relay sustains
        if "capacity" not in skip:
            enc = encodings[0]
            k0 = indexes[enc]["clusters"][0][0]
            size0 = sum(s for key, _, s, _ in indexes[enc]["clusters"] if key == k0)
            results["capacity"] = relay_capacity(args, h, oport, f"s3://{BUCKET}/glove-{enc}", k0, size0)

        plan = []
        for rep in range(args.reps):
            for enc in encodings:
                for nprobe in nprobes:
                    plan.append((rep, enc, nprobe, "parallel", args.concurrency))
                    if tport and (args.harness == "relay" or nprobe in compare):
                        plan.append((rep, enc, nprobe, "torigin", args.concurrency))
                    if pyr and nprobe in compare:
                        plan.append((rep, enc, nprobe, "pyrelay", args.concurrency))
                    if "tuned" not in skip:
                        plan.append((rep, enc, nprobe, "tuned", args.concurrency))
                    if args.wide and nprobe > args.concurrency:
                        plan.append((rep, enc, nprobe, "wide", nprobe))
                    if "seq" not in skip:
                        plan.append((rep, enc, nprobe, "sequential", 1))
                    if "overhead" not in skip:
                        for mode in ("local", "origin") + (("relay0",) if zport else ()):
                            plan.append((rep, enc, nprobe, mode, args.concurrency))
        for rep, enc, nprobe, mode, conc in plan:
            n = args.seq_queries if mode == "sequential" else args.queries
            loc = f"s3://{BUCKET}/glove-{enc}"
            if mode == "local":
                loc, env = os.path.join(args.work, f"glove-{enc}"), client_env(None)
            elif mode == "origin":
                env = client_env(f"http://127.0.0.1:{oport}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc)})
            elif mode == "relay0":
                env = client_env(f"http://127.0.0.1:{zport}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc)})
            elif mode == "torigin":
                env = client_env(f"http://127.0.0.1:{tport}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc)})
            elif mode == "pyrelay":
                env = client_env(f"http://127.0.0.1:{pyr}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc)})
            elif mode == "tuned":  # the relay, with glibc keeping freed memory (no page faults per range)
                env = client_env(f"http://127.0.0.1:{rport}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc),
                                                               "GLIBC_TUNABLES": TUNABLES})
            else:
                env = client_env(f"http://127.0.0.1:{rport}", {"S3VEC_S3_MAX_CONCURRENCY": str(conc)})
            sport = {"torigin": tport, "pyrelay": pyo, "origin": oport, "relay0": oport, "local": oport}.get(
                mode, model_stats)
            served_by = {"local": [], "origin": [oport], "relay0": [oport, zport], "torigin": [tport],
                         "pyrelay": [pyo, pyr]}.get(mode, model_served)
            before = origin_stats(sport)
            c0 = [h.cpu_s(p) for p in served_by]
            rows, load, cpu = run_query(args, loc, n, nprobe, env)
            c1 = [h.cpu_s(p) for p in served_by]
            after = origin_stats(sport)
            want = [sum(s for _, _, s in ranges_of(enc, qi, nprobe)) for qi in range(n)]
            bad = sum(1 for r, w in zip(rows, want) if r["bytes"] != w)
            results["mismatch"][f"{enc}/{nprobe}"] = max(bad, results["mismatch"].get(f"{enc}/{nprobe}", 0))
            s = summarise(rows[1:], models(enc, nprobe, conc, n)[1:])
            s.update(rep=rep, enc=enc, nprobe=nprobe, mode=mode, conc=conc, load=load,
                     # net of what the origin served to open the index
                     origin_requests=(after["requests"] - before["requests"] - (mode != "local") * opened[enc][0]) / n,
                     origin_bytes=(after["bytes"] - before["bytes"] - (mode != "local") * opened[enc][1]) / n,
                     ms_list=[r["ms"] for r in rows],
                     client_cpu_ms=1e3 * cpu / n, harness_cpu_ms=[1e3 * (b - a) / n for a, b in zip(c0, c1)],
                     fetch_ms=statistics.mean(r["fetch_ms"] for r in rows[1:]),
                     scan_ms=statistics.mean(r["scan_ms"] for r in rows[1:]))
            results["runs"].append(s)
            print(f"rep {rep} {enc} nprobe {nprobe:3} {mode:10} conc {conc:2}: p50 {s['p50']:7.1f} "
                  f"mean {s['mean']:7.1f} bound {s['bound']:6.1f} http {s['http']:6.1f} seq {s['seq_model']:7.1f} "
                  f"ms; req {s['requests']:.1f} (origin {s['origin_requests']:.2f}) bytes {s['bytes']:.0f}; "
                  f"load {load:.1f}; byte mismatches {bad}; CPU ms/query client {s['client_cpu_ms']:.1f} "
                  f"harness {[round(x, 1) for x in s['harness_cpu_ms']]}", flush=True)

        if args.profile:
            enc, nprobe = args.profile.split("/")
            groups, samples = profile(args, f"s3://{BUCKET}/glove-{enc}", args.queries, int(nprobe), model_env)
            results["profile"] = {"what": args.profile, "samples": samples, "groups": groups}

        if "fetch" not in skip:
            for enc in encodings:
                for nprobe in nprobes:
                    qs = range(1, args.fetch_queries + 1)
                    specs = [[f"{k}:{o}:{s}" for k, o, s in ranges_of(enc, qi, nprobe)] for qi in qs]
                    got = fetch_only(args, model_env, f"s3://{BUCKET}/glove-{enc}", specs)
                    mod = models(enc, nprobe, args.concurrency, args.fetch_queries + 1)[1:]
                    results["fetch"].append({"enc": enc, "nprobe": nprobe, "fetch_ms": got,
                                             "bound_ms": [1e3 * m[0] for m in mod]})
    results["load_end"] = os.getloadavg()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def report(res, args):
    runs = res["runs"]
    print()
    how = (f"by bench/s3model_origin itself (C, epoll, one thread; throttling mode, {args.chunk_kib:g} KiB chunks, "
           f"sendfile)" if args.harness == "c" else
           "by s3lib.throttle (user-space relay, Python) in front of s3lib.origin (index in memory, Python)")
    print(f"S3 model: {args.latency_ms:g} ms per request + {args.bandwidth_mbps:g} MB/s per connection, applied "
          f"{how}; client: s3vec query --cache-mb 0, one thread (curl multi), concurrency {args.concurrency}; "
          f"no BLAS; nice {args.nice}")
    print(f"load average 1 min: start {res['load_start'][0]:.1f}, end {res['load_end'][0]:.1f} on "
          f"{res['cpus']} CPUs (shared machine); medians of {args.reps} reps; query 1 of each run left out")
    print()
    print("| enc | nprobe | p50 ms | p90 ms | mean ms | bound ms | mean / bound | http model ms | mean / http "
          "| sequential ms | seq model ms | seq / model | requests/q (origin saw) | MB/q |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted({(r["enc"], r["nprobe"]) for r in runs}, key=lambda k: (args.encodings.index(k[0]), k[1]))
    for enc, nprobe in keys:
        par = [r for r in runs if r["enc"] == enc and r["nprobe"] == nprobe and r["mode"] == "parallel"]
        seq = [r for r in runs if r["enc"] == enc and r["nprobe"] == nprobe and r["mode"] == "sequential"]
        if not par:
            continue
        sq = (f"{med(seq, 'mean'):.1f} | {med(seq, 'seq_model'):.1f} | {med(seq, 'ratio_seq_model'):.2f}"
              if seq else "- | - | -")
        print(f"| {enc} | {nprobe} | {med(par, 'p50'):.1f} | {med(par, 'p90'):.1f} | {med(par, 'mean'):.1f} | "
              f"{med(par, 'bound'):.1f} | **{med(par, 'ratio_bound'):.2f}** | {med(par, 'http'):.1f} | "
              f"{med(par, 'ratio_http'):.2f} | {sq} | {med(par, 'requests'):.1f} ({med(par, 'origin_requests'):.2f}) | "
              f"{med(par, 'bytes') / 1e6:.2f} |")
    for mode, title in (("torigin", "the same model applied by the Python origin itself (s3lib.origin throttling "
                                    "mode, no relay hop)"),
                        ("pyrelay", "the Python harness: s3lib.throttle relay in front of s3lib.origin"),
                        ("tuned", f"relay, client run with GLIBC_TUNABLES={TUNABLES} (freed range buffers stay "
                                  "mapped: no page faults per range)"),
                        ("wide", "relay, nprobe > concurrency, with S3VEC_S3_MAX_CONCURRENCY = nprobe")):
        sel = [r for r in runs if r["mode"] == mode]
        if not sel:
            continue
        print()
        print(f"Cold queries, {title}:")
        print()
        print("| enc | nprobe | concurrency | p50 ms | p90 ms | mean ms | bound ms | mean / bound | http model ms | "
              "mean / http | requests/q (origin saw) | MB/q | CPU ms/q client / harness |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for enc, nprobe in keys:
            w = [r for r in sel if r["enc"] == enc and r["nprobe"] == nprobe]
            if w:
                hc = statistics.median(sum(r["harness_cpu_ms"]) for r in w)
                print(f"| {enc} | {nprobe} | {w[0]['conc']} | {med(w, 'p50'):.1f} | {med(w, 'p90'):.1f} | "
                      f"{med(w, 'mean'):.1f} | {med(w, 'bound'):.1f} | **{med(w, 'ratio_bound'):.2f}** | "
                      f"{med(w, 'http'):.1f} | {med(w, 'ratio_http'):.2f} | {med(w, 'requests'):.1f} "
                      f"({med(w, 'origin_requests'):.2f}) | {med(w, 'bytes') / 1e6:.2f} | "
                      f"{med(w, 'client_cpu_ms'):.1f} / {hc:.1f} |")
    if any(r["mode"] in ("local", "origin", "relay0") for r in runs):
        print()
        print("Harness cost (mean ms per query): engine on the local folder, through the origin directly (no model), "
              "through the relay at latency 0 and no bandwidth cap (relay harness), and under the model")
        print()
        parts = "origin" if args.harness == "c" else "origin / relay"
        print(f"| enc | nprobe | local | origin | relay 0/0 | model | origin - local | relay0 - origin "
              f"| CPU ms/query under the model: client / {parts} | client CPU, local folder |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for enc, nprobe in keys:
            m = {}
            for mode in ("local", "origin", "relay0", "parallel"):
                rr = [r for r in runs if r["enc"] == enc and r["nprobe"] == nprobe and r["mode"] == mode]
                m[mode] = med(rr, "mean") if rr else float("nan")
            par = [r for r in runs if r["enc"] == enc and r["nprobe"] == nprobe and r["mode"] == "parallel"]
            loc = [r for r in runs if r["enc"] == enc and r["nprobe"] == nprobe and r["mode"] == "local"]
            cpu = " / ".join([f"{med(par, 'client_cpu_ms'):.1f}"] +
                             [f"{statistics.median(r['harness_cpu_ms'][i] for r in par):.1f}"
                              for i in range(len(par[0]['harness_cpu_ms']))])
            r0 = "-" if m["relay0"] != m["relay0"] else f"{m['relay0']:.1f}"
            r0d = "-" if m["relay0"] != m["relay0"] else f"{m['relay0'] - m['origin']:.1f}"
            print(f"| {enc} | {nprobe} | {m['local']:.1f} | {m['origin']:.1f} | {r0} | "
                  f"{m['parallel']:.1f} | {m['origin'] - m['local']:.1f} | {r0d} | {cpu} | "
                  f"{med(loc, 'client_cpu_ms') if loc else float('nan'):.1f} |")
    if res["capacity"]:
        print()
        what = "C origin" if args.harness == "c" else "relay"
        print(f"Harness capacity ({what}): N parallel 1 MiB ranges, warm connections, median of 5 batches (C driver); "
              f"model per range at {args.bandwidth_mbps:g} MB/s = {res['capacity'][0]['model']:.1f} ms")
        print()
        print(f"| N | {what} 0 ms + cap, ms | per-connection MB/s | aggregate MB/s | relay no cap, ms (aggregate MB/s) "
              "| origin direct, ms (aggregate MB/s) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for c in res["capacity"]:
            mb = c["size"] / 1e6
            free = "-" if c["relay"] != c["relay"] else f"{c['relay']:.1f} ({c['n'] * mb / c['relay'] * 1e3:.0f})"
            print(f"| {c['n']} | {c['capped']:.1f} | {mb / c['capped'] * 1e3:.0f} | "
                  f"{c['n'] * mb / c['capped'] * 1e3:.0f} | {free} | "
                  f"{c['origin']:.1f} ({c['n'] * mb / c['origin'] * 1e3:.0f}) |")
    if res["fetch"]:
        print()
        print("Pure ranged fetch of the same clusters (s3_driver ranges, no engine), queries 2.."
              f"{args.fetch_queries + 1}, under the model: median ms")
        print()
        print("| enc | nprobe | fetch only | bound | fetch / bound | query, same queries | query / fetch |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for f in res["fetch"]:
            fo, bd = statistics.median(f["fetch_ms"]), statistics.median(f["bound_ms"])
            par = [r for r in runs if r["enc"] == f["enc"] and r["nprobe"] == f["nprobe"] and r["mode"] == "parallel"]
            n = len(f["fetch_ms"])
            qm = statistics.median(statistics.median(r["ms_list"][1:n + 1]) for r in par) if par else float("nan")
            print(f"| {f['enc']} | {f['nprobe']} | {fo:.1f} | {bd:.1f} | {fo / bd:.2f} | {qm:.1f} | {qm / fo:.2f} |")
    if res.get("profile"):
        p = res["profile"]
        print()
        print(f"Where the client's CPU goes, {p['what']} (enc/nprobe) under the model: perf record -F 500 --call-graph "
              f"dwarf of s3vec query, {p['samples']} samples, grouped by the sample's stack")
        print()
        print("| group | share of the client's CPU |")
        print("|---|---:|")
        for name, share in p["groups"]:
            print(f"| {name} | {100 * share:.1f}% |")
    if res.get("open"):
        print()
        print("Opening the index (once per run, not in the per-query figures): " +
              ", ".join(f"{enc} {n} requests, {b / 1e3:.0f} kB" for enc, (n, b) in res["open"].items()))
    bad = {k: v for k, v in res["mismatch"].items() if v}
    print()
    print("probed-cluster check: the recomputed ranges' bytes equal the client's bytes for every query"
          if not bad else f"probed-cluster check: queries whose recomputed bytes differ from the client's: {bad}")


if __name__ == "__main__":
    sys.exit(main())
