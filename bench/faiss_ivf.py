#!/usr/bin/python3
"""bench/faiss_ivf.py: the FAISS peer of bench/bench_build.sh and bench/bench_query.sh (IndexIVFFlat, L2).

Run with Debian's /usr/bin/python3, which sees python3-faiss. Two commands:

  faiss_ivf.py build BASE.fvecs NLIST NITER THREADS OUT.index [SEED]
      Reads the base vectors, trains IndexIVFFlat (FAISS's k-means on at most 256 x NLIST sampled points,
      as FAISS does by default) with NITER iterations, adds every vector (assignment = quantizer search,
      BLAS sgemm), writes the index with faiss.write_index. Prints one JSON object: seconds per phase,
      peak RSS (VmHWM), list sizes, the threads and the BLAS actually loaded.

  faiss_ivf.py query INDEX QUERIES.fvecs TRUTH.ivecs NPROBES [K] [--batch] [--limit N]
      Loads the index, forces one OpenMP thread (faiss.omp_set_num_threads(1)), warms it with one pass
      at the largest probe count, then for each probe count in NPROBES (comma-separated) searches the
      queries ONE AT A TIME in a loop (the serverless access pattern). The loop calls the SWIG method
      search_c with pointers prepared before timing, so Python adds as little as it can (about a
      microsecond per call); each call is timed with the monotonic clock (wall) and this thread's CPU
      clock. FAISS's own per-call time (faiss.cvar.indexIVF_stats.search_time, which covers the quantizer
      and the list scan inside IndexIVF::search) is reported too: that is FAISS with no Python at all.
      With --batch, also one search call over all queries at once (still one thread): FAISS's batched
      throughput, for context only. Prints one JSON object per line, one per probe count.

Ids are the base row numbers (vectors are added in file order), as in the ground truth.
"""
import ctypes
import json
import os
import re
import sys
import time

import numpy as np
import faiss


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise SystemExit("faiss_ivf: empty file: " + path)
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1):
        raise SystemExit("faiss_ivf: not an fvecs/ivecs file: " + path)
    rows = raw.reshape(-1, dim + 1)
    if not (rows[:, 0] == dim).all():
        raise SystemExit("faiss_ivf: mixed dimensions in " + path)
    return np.ascontiguousarray(rows[:, 1:].view(dtype))


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def runtime_info():
    """The BLAS / OpenMP libraries really mapped into this process, and their thread counts."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and re.search(r"blas|lapack|gomp|omp|mkl", os.path.basename(parts[-1])):
                libs.add(os.path.realpath(parts[-1]))
    info = {"libraries": sorted(libs), "faiss_version": faiss.__version__,
            "faiss_compile_options": faiss.get_compile_options().strip(),
            "omp_max_threads": faiss.omp_get_max_threads()}
    for path in sorted(libs):
        if "openblas" in os.path.basename(path):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.openblas_get_corename.restype = ctypes.c_char_p
                info["openblas"] = {"config": lib.openblas_get_config().decode(),
                                    "core": lib.openblas_get_corename().decode(),
                                    "threads": lib.openblas_get_num_threads()}
            except (OSError, AttributeError):
                pass
    return info


def cmd_build(args):
    if len(args) not in (5, 6):
        raise SystemExit("usage: faiss_ivf.py build BASE.fvecs NLIST NITER THREADS OUT.index [SEED]")
    base, nlist, niter, threads, out = args[0], int(args[1]), int(args[2]), int(args[3]), args[4]
    seed = int(args[5]) if len(args) == 6 else 1234
    faiss.omp_set_num_threads(threads)
    t = {}
    t0 = time.perf_counter()
    x = read_vecs(base, np.float32)
    t["read"] = time.perf_counter() - t0
    n, d = x.shape
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    index.cp.niter = niter
    index.cp.seed = seed
    t0 = time.perf_counter()
    index.train(x)
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.add(x)
    t["add"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    faiss.write_index(index, out)
    t["write"] = time.perf_counter() - t0
    t["train_add"] = t["train"] + t["add"]
    sizes = np.array([index.invlists.list_size(i) for i in range(nlist)])
    cpu = os.times()
    print(json.dumps({
        "peer": "faiss.IndexIVFFlat", "count": n, "dim": d, "nlist": nlist, "niter": index.cp.niter,
        "train_points": min(n, nlist * index.cp.max_points_per_centroid), "seed": seed,
        "threads": threads, "seconds": t, "cpu_seconds": cpu.user + cpu.system,
        "peak_rss_kb": status_kb("VmHWM"), "index_bytes": os.path.getsize(out),
        "min_list": int(sizes.min()), "max_list": int(sizes.max()), "empty_lists": int((sizes == 0).sum()),
        "runtime": runtime_info()}))


def recall_at(ids, truth, k):
    hit = 0
    for row, gt in zip(ids, truth):
        hit += len(set(row[:k].tolist()) & set(gt[:k].tolist()))
    return hit / (len(ids) * k)


def cmd_query(args):
    batch = "--batch" in args
    args = [a for a in args if a != "--batch"]
    limit = 0
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i:i + 2]
    if len(args) not in (4, 5):
        raise SystemExit("usage: faiss_ivf.py query INDEX QUERIES.fvecs TRUTH.ivecs NPROBES [K] [--batch] "
                         "[--limit N]")
    index = faiss.read_index(args[0])
    xq = read_vecs(args[1], np.float32)
    gt = read_vecs(args[2], np.int32)
    probes = [int(p) for p in args[3].split(",")]
    k = int(args[4]) if len(args) == 5 else 10
    if limit:
        xq = xq[:limit]
    nq = xq.shape[0]
    if gt.shape[0] < nq or gt.shape[1] < k:
        raise SystemExit("faiss_ivf: ground truth too small")
    faiss.omp_set_num_threads(1)
    ivf = faiss.extract_index_ivf(index)
    stats = faiss.cvar.indexIVF_stats
    D = np.empty((nq, k), dtype=np.float32)
    I = np.empty((nq, k), dtype=np.int64)
    qp = [faiss.swig_ptr(xq[i]) for i in range(nq)]
    dp = [faiss.swig_ptr(D[i]) for i in range(nq)]
    ip = [faiss.swig_ptr(I[i]) for i in range(nq)]
    search_c = index.search_c

    def loop():
        wall = np.empty(nq)
        cpu_total = 0
        for i in range(nq):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            search_c(1, qp[i], k, dp[i], ip[i])
            t1 = time.perf_counter_ns()
            cpu_total += time.thread_time_ns() - c0
            wall[i] = t1 - t0
        return wall, cpu_total

    ivf.nprobe = max(probes)
    loop()  # warm-up pass
    info = runtime_info()
    for p in probes:
        ivf.nprobe = p
        stats.reset()
        wall, cpu_total = loop()
        rec = recall_at(I, gt, k)
        lib_ms = stats.search_time
        ndis = stats.ndis
        row = {"nprobe": p, "nlist": ivf.nlist, "queries": nq, "recall": rec,
               "qps_wall": nq * 1e9 / wall.sum(), "qps_cpu": nq * 1e9 / cpu_total if cpu_total else 0,
               "qps_inlib": nq * 1e3 / lib_ms if lib_ms > 0 else 0,
               "p50_ms": float(np.percentile(wall, 50, method="inverted_cdf")) / 1e6,
               "p99_ms": float(np.percentile(wall, 99, method="inverted_cdf")) / 1e6,
               "vectors_scanned": ndis / nq, "threads": 1, "runtime": info}
        if batch:
            stats.reset()
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            Db, Ib = index.search(xq, k)
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
            row["batch_qps_wall"] = nq * 1e9 / (t1 - t0)
            row["batch_qps_cpu"] = nq * 1e9 / (c1 - c0) if c1 > c0 else 0
            row["batch_recall"] = recall_at(Ib, gt, k)
        print(json.dumps(row), flush=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("build", "query"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "build":
        cmd_build(sys.argv[2:])
    else:
        cmd_query(sys.argv[2:])


if __name__ == "__main__":
    main()
