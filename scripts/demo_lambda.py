#!/usr/bin/env python3
"""The real path, locally: GloVe-100 indexed into local S3 (moto, verifying SigV4 signatures), the s3vec
bootstrap running under the local Lambda (deploy/local/emulator.py), and queries sent by boto3's own
`s3vectors` client through the HTTP front (API Gateway v2 events), printing results, recall@10 and latency.

    scripts/demo_lambda.py [--data DIR] [--queries N]

Every server listens on 127.0.0.1 and is stopped at the end (also on failure)."""
import argparse
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from lambda_lib import (BUILD_DIR, Emulator, Front, MotoServer, lambda_env, moto_deployment,  # noqa: E402
                        run_s3vec, s3vectors_client)

VB, IX = "demo", "glove"


def read_fvecs(path, limit=None):
    data = Path(path).read_bytes()
    (dim,) = struct.unpack_from("<i", data, 0)
    row = 4 + 4 * dim
    n = len(data) // row if limit is None else min(limit, len(data) // row)
    return [list(struct.unpack_from(f"<{dim}f", data, i * row + 4)) for i in range(n)]


def read_ivecs(path):
    data = Path(path).read_bytes()
    (k,) = struct.unpack_from("<i", data, 0)
    row = 4 + 4 * k
    return [list(struct.unpack_from(f"<{k}i", data, i * row + 4)) for i in range(len(data) // row)]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("S3VEC_DATA_DIR", str(ROOT / "data")))
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    data = Path(args.data)
    words = (data / "glove100_base.keys").read_text().split("\n")
    row_of = {w: i for i, w in enumerate(words) if w}
    queries = read_fvecs(data / "glove100_query.fvecs", args.queries)
    query_words = (data / "glove100_query.keys").read_text().split("\n")

    with MotoServer() as moto, tempfile.TemporaryDirectory() as tmp:
        env, storage = moto_deployment(moto, bucket="s3vec-demo", prefix="indexes")
        location = f"{storage}/{VB}/{IX}"
        print(f"== local S3 (moto, SigV4 verified) at {moto.endpoint}; building the index at {location}", flush=True)
        t0 = time.time()
        run_s3vec(["build", location, "--input", str(data / "glove100_base.fvecs"), "--keys",
                   str(data / "glove100_base.keys"), "-q"], env, timeout=1800)
        print(f"   built in {time.time() - t0:.1f} s", flush=True)

        gt_path = ROOT.parent / "shared" / "data" / "glove100_gt100_l2.ivecs"
        if gt_path.exists():
            truth = read_ivecs(gt_path)
            print(f"== ground truth: {gt_path} (independent exact top-100)")
        else:
            gt_path = Path(tmp) / "gt.ivecs"
            run_s3vec(["query", location, "--queries", str(data / "glove100_query.fvecs"), "-k", "10", "--exact",
                       "--limit", str(len(queries)), "--save-truth", str(gt_path), "--truth-keys",
                       str(data / "glove100_base.keys")], env, timeout=1800)
            truth = read_ivecs(gt_path)
            print("== ground truth: our exact mode (no ../shared/data here)")

        fenv = lambda_env(env, storage, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048")
        with Emulator(env=fenv, args=["--memory", "2048", "--timeout", "60"]) as emu, Front(emu) as front:
            print(f"== local Lambda (bootstrap {BUILD_DIR / 'bootstrap' / 'bootstrap'}) behind the HTTP front "
                  f"{front.endpoint}", flush=True)
            client = s3vectors_client(front.endpoint)
            index = client.get_index(vectorBucketName=VB, indexName=IX)["index"]
            print(f"   GetIndex: {index['indexName']} dimension {index['dimension']}, {index['distanceMetric']}")

            print("== examples (QueryVectors through boto3)")
            for w in ("king", "paris", "computer"):
                got = client.get_vectors(vectorBucketName=VB, indexName=IX, keys=[w], returnData=True)["vectors"]
                if not got:
                    continue
                res = client.query_vectors(vectorBucketName=VB, indexName=IX, topK=6, returnDistance=True,
                                           queryVector={"float32": got[0]["data"]["float32"]})["vectors"]
                print(f"   {w}: " + ", ".join(f"{v['key']} ({v['distance']:.2f})" for v in res[1:]))

            for label in ("cold cluster cache (first pass: clusters read from S3)", "warm cluster cache"):
                lat, hits = [], 0
                for i, q in enumerate(queries):
                    t = time.perf_counter()
                    res = client.query_vectors(vectorBucketName=VB, indexName=IX, topK=10,
                                               queryVector={"float32": q})["vectors"]
                    lat.append((time.perf_counter() - t) * 1000)
                    got = {row_of.get(v["key"], -1) for v in res}
                    hits += len(got & set(truth[i][:10]))
                print(f"== {len(queries)} queries, {label}")
                print(f"   recall@10: {hits / (10.0 * len(queries)):.4f}")
                print(f"   latency ms (boto3 -> HTTP front -> local Lambda -> bootstrap -> S3): p50 {pct(lat, 50):.2f}"
                      f"  p90 {pct(lat, 90):.2f}  p99 {pct(lat, 99):.2f}  mean {statistics.mean(lat):.2f}", flush=True)
            st = emu.stats()
            runtime = [inv["runtime_ms"] for inv in st.get("invocations", []) if inv.get("runtime_ms") is not None]
            if runtime:
                print(f"   inside the function (the emulator's runtime_ms, last {min(len(runtime), len(queries))}): "
                      f"p50 {pct(runtime[-len(queries):], 50):.2f} ms; the rest is boto3, the front and the emulator")
            init = st["sandboxes"][0].get("init_ms")
            print(f"   init (process start to the first /next, index loaded on first use): "
                  f"{init:.1f} ms; function RSS {emu.rss_kb() / 1024:.1f} MiB" if init is not None else "")
            print("   (moto serves a ranged GET by reading the whole data object, so the cold pass includes moto's "
                  "own cost; see bench/results/s3.md for cold latency under a modelled S3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
