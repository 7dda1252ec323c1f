#!/usr/bin/python3
"""bench/kmeans_faiss.py: the FAISS peer of bench_kmeans (IndexIVFFlat train + add on an fvecs file).

Run with Debian's /usr/bin/python3, which sees python3-faiss (bench_kmeans starts it that way, with
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to its thread count). Prints one JSON object on stdout:
timings (train = IndexIVFFlat.train, add = IndexIVFFlat.add, search = quantizer.search(x, 1), the
assignment alone; wall and CPU seconds of all threads), the k-means objective of FAISS's last iteration (parsed from its verbose output,
divided by the sample size it reports), the mean squared distance of every point to its nearest
centroid, peak RSS above the RSS before each phase (VmHWM, reset through /proc/self/clear_refs),
and which BLAS and how many threads were actually in use (from /proc/self/maps and OpenBLAS itself).

usage: kmeans_faiss.py FVECS K THREADS [NITER]   (NITER 0 or absent = FAISS's IVF default)
"""
import ctypes
import json
import os
import re
import resource
import sys
import tempfile
import time

import numpy as np
import faiss


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise SystemExit("empty file: " + path)
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1):
        raise SystemExit("not an fvecs file: " + path)
    rows = raw.reshape(-1, dim + 1)
    if not (rows[:, 0] == dim).all():
        raise SystemExit("mixed dimensions in " + path)
    return np.ascontiguousarray(rows[:, 1:].view(np.float32))


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def cpu_s():
    """User + system CPU seconds of this process (all its threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hwm_reset():
    """Resets VmHWM to the current RSS (Linux >= 4.0); returns the RSS in KiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status_kb("VmRSS")


def blas_libraries():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if re.search(r"blas|lapack|gomp|omp|mkl", os.path.basename(path)):
                libs.add(path)
    return sorted(libs)


def openblas_info(libs):
    for path in libs:
        if "openblas" in os.path.basename(path):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return {
                    "config": lib.openblas_get_config().decode(),
                    "corename": lib.openblas_get_corename().decode(),
                    "threads": lib.openblas_get_num_threads(),
                }
            except (OSError, AttributeError):
                pass
    return None


class CaptureStdout:
    """Captures what C++ code prints on file descriptor 1."""

    def __enter__(self):
        sys.stdout.flush()
        self.tmp = tempfile.TemporaryFile(mode="w+")
        self.saved = os.dup(1)
        os.dup2(self.tmp.fileno(), 1)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)
        self.tmp.seek(0)
        self.text = self.tmp.read()
        self.tmp.close()


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    path, k, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    niter = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    faiss.omp_set_num_threads(threads)
    x = read_fvecs(path)
    n, dim = x.shape

    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, k)
    default_niter = index.cp.niter
    if niter > 0:
        index.cp.niter = niter
    index.cp.verbose = True  # ten lines of text; gives the per-iteration objective

    rss0 = hwm_reset()
    c0, t0 = cpu_s(), time.perf_counter()
    with CaptureStdout() as cap:
        index.train(x)
    train_s = time.perf_counter() - t0
    train_cpu_s = cpu_s() - c0
    peak_kb = status_kb("VmHWM")
    train_extra_kb = peak_kb - rss0

    objs = [float(v) for v in re.findall(r"objective=([-+0-9.eE]+)", cap.text)]
    m = re.search(r"Sampling a subset of (\d+) / (\d+)", cap.text)
    sample = int(m.group(1)) if m else n
    last_obj = objs[-1] / sample if objs else float("nan")

    rss0 = hwm_reset()
    c0, t0 = cpu_s(), time.perf_counter()
    index.add(x)
    add_s = time.perf_counter() - t0
    add_cpu_s = cpu_s() - c0
    peak_kb = max(peak_kb, status_kb("VmHWM"))
    add_extra_kb = status_kb("VmHWM") - rss0

    rss0 = hwm_reset()
    t0 = time.perf_counter()
    dist, _ = quantizer.search(x, 1)
    search_s = time.perf_counter() - t0
    peak_kb = max(peak_kb, status_kb("VmHWM"))
    search_extra_kb = status_kb("VmHWM") - rss0

    libs = blas_libraries()
    print(json.dumps({
        "faiss_version": faiss.__version__,
        "n": n, "dim": dim, "k": k, "sample": sample,
        "niter": index.cp.niter, "niter_default": default_niter,
        "max_points_per_centroid": index.cp.max_points_per_centroid,
        "omp_threads": faiss.omp_get_max_threads(),
        "train_s": train_s, "add_s": add_s, "search_s": search_s,
        "train_cpu_s": train_cpu_s, "add_cpu_s": add_cpu_s,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "objective_last_iter": last_obj,
        "objective_all": float(np.mean(dist, dtype=np.float64)),
        "train_extra_kb": train_extra_kb, "add_extra_kb": add_extra_kb, "search_extra_kb": search_extra_kb,
        "peak_rss_kb": peak_kb,
        "blas_libs": libs,
        "openblas": openblas_info(libs),
    }))


if __name__ == "__main__":
    main()
