"""Parallel ranged GETs under the S3 model: ours (the C backend, one thread, curl multi) beside boto3
(the peer: a thread pool of the same width) and the model's limit, measured in one run.

    S3VEC_BUILD_DIR=build python3 -m s3lib.bench_ranges [--ranges 16] [--range-kib 256]
        [--latency-ms 20] [--bandwidth-mbps 80] [--rounds 20]

Setup, each in its own process: s3lib.origin (an in-memory object, no auth check) behind s3lib.throttle
(adds latency_ms before each request's answer, caps each connection at bandwidth_mbps). Every batch fetches `ranges` random
ranges of `range_kib` KiB of a 64 MiB object, all in parallel. Limit per batch = latency + range size /
bandwidth (every range on its own connection, one round trip). Reported: the cold batch (new
connections) and the mean of the warm batches; the relay's and origin's own costs (Python) are
included for both clients alike. Bytes are checked for both."""
import argparse
import concurrent.futures
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s3lib import Driver  # noqa: E402


def spawn(args):
    """Starts `python3 -m s3lib.<args>` in its own process; returns (process, port)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.Popen([sys.executable, "-m", *args], cwd=here, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        p.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranges", type=int, default=16)
    ap.add_argument("--range-kib", type=int, default=256)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--bandwidth-mbps", type=float, default=80)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    obj = random.Random(1).randbytes(64 * 1024 * 1024)  # what s3lib.origin --seed 1 --size-mib 64 serves
    rnd = random.Random(2)
    size = a.range_kib * 1024
    offsets = [rnd.randrange(0, len(obj) - size) for _ in range(a.ranges)]
    limit_ms = a.latency_ms + (size / (a.bandwidth_mbps * 1e6) * 1e3 if a.bandwidth_mbps else 0.0)
    procs = []
    try:
        origin, oport = spawn(["s3lib.origin", "--key", "bkt/idx/data", "--size-mib", "64", "--seed", "1"])
        procs.append(origin)
        relay, rport = spawn(["s3lib.throttle", "--upstream", f"127.0.0.1:{oport}", "--latency-ms",
                              str(a.latency_ms), "--bandwidth-mbps", str(a.bandwidth_mbps)])
        procs.append(relay)
        endpoint = f"http://127.0.0.1:{rport}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="benchsecret", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL_S3=endpoint, HOME="/nonexistent", S3VEC_S3_HEDGE="0")
        # ours: one process, one storage handle, rounds+1 batches on warm connections (the first is cold)
        out = tempfile.NamedTemporaryFile(delete=False)
        out.close()
        r = Driver(env)("s3://bkt/idx", "ranges", out.name, *[f"data:{o}:{size}" for o in offsets],
                        "--repeat", a.rounds + 1)
        with open(out.name, "rb") as f:
            got = f.read()
        os.unlink(out.name)
        if not r["ok"] or got != b"".join(obj[o:o + size] for o in offsets):
            print("our client failed or returned wrong bytes:", r["msg"])
            return 1
        ours = r["iter_ms"]

        # peer: boto3 with a thread pool as wide as the batch
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDBENCH",
                          aws_secret_access_key="benchsecret",
                          config=Config(s3={"addressing_style": "path"}, max_pool_connections=a.ranges,
                                        retries={"max_attempts": 1}))

        def fetch(off):
            body = s3.get_object(Bucket="bkt", Key="idx/data", Range=f"bytes={off}-{off + size - 1}")["Body"].read()
            if body != obj[off:off + size]:
                raise RuntimeError("boto3 got wrong bytes")
            return len(body)

        peer = []
        with concurrent.futures.ThreadPoolExecutor(a.ranges) as pool:
            for _ in range(a.rounds + 1):
                t0 = time.perf_counter()
                if sum(pool.map(fetch, offsets)) != size * a.ranges:
                    raise RuntimeError("short read")
                peer.append((time.perf_counter() - t0) * 1e3)
    finally:
        for p in procs:
            p.terminate()
            p.wait(5)

    warm_ours, warm_peer = statistics.mean(ours[1:]), statistics.mean(peer[1:])
    print(f"S3 model: {a.latency_ms:g} ms per request, {a.bandwidth_mbps:g} MB/s per connection "
          f"(s3lib.throttle relay); {a.ranges} ranges x {a.range_kib} KiB per batch; cold = first batch, "
          f"warm = mean of {a.rounds}")
    print("threads: ours 1 (curl multi), boto3 %d (thread pool); no BLAS" % a.ranges)
    print(f"{'':18}{'cold ms':>10}{'warm ms':>10}{'limit/warm':>12}")
    print(f"{'limit (model)':18}{'':>10}{limit_ms:10.1f}{1.0:12.2f}")
    print(f"{'s3vec (C)':18}{ours[0]:10.1f}{warm_ours:10.1f}{limit_ms / warm_ours:12.2f}")
    print(f"{'boto3':18}{peer[0]:10.1f}{warm_peer:10.1f}{limit_ms / warm_peer:12.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"s3vec / boto3 warm time: {warm_ours / warm_peer:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
