#!/usr/bin/env python3
"""The S3 backend through the fault-injecting proxy (tests/integration/s3lib/proxy.py) in front of
moto_server with SigV4 verification.

For each fault the storage API either returns exactly the bytes it returns without faults (after
retries or hedges) or a clear error status; a flipped byte is passed through unchanged (the storage
layer has no checksum of its own: the index checksums in the engine catch it), so the test asserts the
returned bytes differ from the truth exactly at the byte the proxy flipped.

Faults: 503 SlowDown, 500, 409 ConditionalRequestConflict, connection reset mid-body, truncated body,
dropped connection, first-byte delay (hedged reads and deadlines), flipped byte; on GET, ranged GET,
PUT and multipart upload (with abort on failure). Finally the proxy's throttling mode (added latency
and per-connection bandwidth) is checked to apply."""
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3lib import Checks, Driver, Fault, FaultProxy, MotoServer  # noqa: E402

MiB = 1024 * 1024
# every-Nth faults hit a retry again with probability 1/N; 12 attempts keep "fails for good by bad luck"
# below 1e-5 per range, so the recoverable cases test recovery, not luck (persistent cases set fewer)
FAST_RETRY = {"S3VEC_S3_BACKOFF_BASE_MS": "5", "S3VEC_S3_BACKOFF_CAP_MS": "50", "S3VEC_S3_MAX_ATTEMPTS": "12"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def main():
    t = Checks()
    tmp = tempfile.mkdtemp(prefix="s3v-faults-")
    rnd = random.Random(99)
    try:
        with MotoServer() as moto:
            key, secret = moto.create_user()
            s3 = moto.client(key, secret)
            s3.create_bucket(Bucket="bkt")
            blob = rnd.randbytes(2 * MiB + 333)
            s3.put_object(Bucket="bkt", Key="f/obj.bin", Body=blob)
            with FaultProxy(upstream_port=moto.port) as proxy:
                d = Driver(moto.env(key, secret, endpoint=proxy.endpoint, extra=FAST_RETRY))
                ctx = dict(t=t, d=d, proxy=proxy, s3=s3, blob=blob, tmp=tmp, rnd=rnd)
                reads(**ctx)
                hedging(**ctx)
                flips(**ctx)
                writes(**ctx)
            throttling(t, moto, key, secret, tmp, blob)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.summary()


def exists(s3, key):
    try:
        s3.head_object(Bucket="bkt", Key=key)
        return True
    except s3.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def range_specs(rnd, blob, n):
    specs, want = [], b""
    for _ in range(n):
        size = rnd.randint(1000, 120_000)
        off = rnd.randint(0, len(blob) - size)
        specs.append(f"obj.bin:{off}:{size}")
        want += blob[off:off + size]
    return specs, want


def reads(t, d, proxy, s3, blob, tmp, rnd):
    out = os.path.join(tmp, "out")
    specs, want = range_specs(rnd, blob, 24)
    # connections stay warm: 10 batches of 8 ranges on one handle open about 8 connections, not 80
    proxy.clear_faults()
    before = proxy.connections
    r = d("s3://bkt/f", "ranges", out, *specs[:8], "--repeat", 10, env={"S3VEC_S3_HEDGE": "0"})
    opened = proxy.connections - before
    t.check(r["ok"] and r["stats"]["requests"] == 80 and opened <= 8, "connections reused across calls",
            (opened, r.get("stats")))
    recoverable = [
        ("503 SlowDown on the first 2 GETs", Fault("503", first=2, methods="GET")),
        ("500 on every 3rd GET", Fault("500", every=3, methods="GET")),
        ("connection reset mid-body on the first 3 GETs", Fault("reset", first=3, methods="GET")),
        ("truncated body on every 4th GET", Fault("truncate", every=4, methods="GET")),
        ("dropped connection on the first 2 GETs", Fault("drop", first=2, methods="GET")),
        ("a wrong Content-Range on the first 2 GETs", Fault("badrange", first=2, methods="GET")),
    ]
    for what, fault in recoverable:
        if fault.kind != "badrange":  # a whole GET has no Content-Range
            proxy.set_faults([fault])
            r = d("s3://bkt/f", "get", "obj.bin", out)
            t.check(r["ok"] and read(out) == blob, f"GET survives {what}", r.get("msg"))
            t.check(r["stats"]["retries"] == proxy.hits(), f"GET retried once per {what}",
                    (r.get("stats"), proxy.hits()))
        proxy.set_faults([Fault(fault.kind, first=fault.first, every=fault.every, methods="GET")])
        r = d("s3://bkt/f", "ranges", out, *specs)
        t.check(r["ok"] and read(out) == want, f"24 ranges survive {what}", r.get("msg"))
        t.check(r["stats"]["retries"] >= proxy.hits() - r["stats"]["hedges"] and proxy.hits() >= 1,
                f"ranges retried after {what}", (r.get("stats"), proxy.hits()))
        if fault.kind == "503":
            t.check(r["stats"]["throttled"] >= 2, "503s counted as throttling", r.get("stats"))

    # persistent faults: clear errors after max attempts, never wrong bytes
    persistent = [
        ("503", "throttled", "SlowDown"),
        ("500", "remote_error", "InternalError"),
        ("reset", "network_error", "GET failed"),
        ("truncate", "network_error", "GET failed"),
    ]
    for kind, status, text in persistent:
        proxy.set_faults([Fault(kind, methods="GET")])
        r = d("s3://bkt/f", "get", "obj.bin", out, env={"S3VEC_S3_MAX_ATTEMPTS": "3"})
        t.check(not r["ok"] and r["status"] == status and text in r["msg"] and "after 3 attempts" in r["msg"],
                f"persistent {kind} on GET -> {status}", r)
        t.check(r["stats"]["requests"] == 3, f"persistent {kind}: exactly 3 attempts", r.get("stats"))
        r = d("s3://bkt/f", "ranges", out, *specs[:4], env={"S3VEC_S3_MAX_ATTEMPTS": "2", "S3VEC_S3_HEDGE": "0"})
        t.check(not r["ok"] and r["status"] == status and all(x["status"] == status for x in r["ranges"]),
                f"persistent {kind} on ranges -> every range {status}", r)
    # the deadline bounds retries: a 503 storm with a long backoff stops at the deadline
    proxy.set_faults([Fault("503", methods="GET")])
    t0 = time.monotonic()
    r = d("s3://bkt/f", "get", "obj.bin", out, "--deadline-ms", 300,
          env={"S3VEC_S3_MAX_ATTEMPTS": "20", "S3VEC_S3_BACKOFF_BASE_MS": "100", "S3VEC_S3_BACKOFF_CAP_MS": "400"})
    took = time.monotonic() - t0
    t.check(not r["ok"] and r["status"] in ("throttled", "timeout") and took < 5,
            "retries stop within the deadline", (r, took))
    # 4xx are not retried
    proxy.set_faults([Fault("error", status=403, code="AccessDenied", methods="GET")])
    r = d("s3://bkt/f", "get", "obj.bin", out)
    t.check(not r["ok"] and r["status"] == "access_denied" and "AccessDenied" in r["msg"] and
            r["stats"]["requests"] == 1, "403 is not retried", r)
    proxy.clear_faults()


def hedging(t, d, proxy, s3, blob, tmp, rnd):
    out = os.path.join(tmp, "out")
    specs, want = range_specs(rnd, blob, 8)
    # one slow range: its first byte is held 3 s; a duplicate request after the hedge threshold wins
    proxy.set_faults([Fault("delay", nth=[3], methods="GET", ranged=True, delay_ms=3000)])
    t0 = time.monotonic()
    r = d("s3://bkt/f", "ranges", out, *specs, env={"S3VEC_S3_HEDGE_MIN_MS": "100"})
    took = time.monotonic() - t0
    t.check(r["ok"] and read(out) == want, "hedged ranges return the right bytes", r.get("msg"))
    t.check(r["stats"]["hedges"] >= 1 and r["stats"]["hedge_wins"] >= 1, "the slow range was hedged and the "
            "duplicate won", r.get("stats"))
    t.check(took < 2.5, "hedging did not wait for the 3 s straggler", took)
    # without hedging the same fault costs the full delay (same bytes)
    proxy.set_faults([Fault("delay", nth=[3], methods="GET", ranged=True, delay_ms=3000)])
    t0 = time.monotonic()
    r = d("s3://bkt/f", "ranges", out, *specs, env={"S3VEC_S3_HEDGE": "0"})
    took_unhedged = time.monotonic() - t0
    t.check(r["ok"] and read(out) == want and r["stats"]["hedges"] == 0, "unhedged ranges, same bytes", r.get("msg"))
    t.check(took_unhedged >= 2.9, "without hedging the straggler costs its delay", took_unhedged)
    # deadline shorter than the delay: timeout, promptly
    proxy.set_faults([Fault("delay", methods="GET", delay_ms=3000)])
    t0 = time.monotonic()
    r = d("s3://bkt/f", "get", "obj.bin", out, "--deadline-ms", 500, env={"S3VEC_S3_HEDGE": "0"})
    took = time.monotonic() - t0
    t.check(not r["ok"] and r["status"] == "timeout" and "deadline" in r["msg"], "deadline gives timeout", r)
    t.check(took < 2.0, "timeout returned near the deadline, not after the delay", took)
    proxy.clear_faults()


def flips(t, d, proxy, s3, blob, tmp, rnd):
    out = os.path.join(tmp, "out")
    proxy.set_faults([Fault("flip", first=1, methods="GET")])
    r = d("s3://bkt/f", "get", "obj.bin", out)
    got = read(out)
    flipped = [e for e in proxy.log if e.get("flipped_at") is not None]
    t.check(r["ok"] and len(got) == len(blob) and len(flipped) == 1, "flipped GET is delivered", r.get("msg"))
    diff = [i for i in range(len(blob)) if got[i] != blob[i]] if len(got) == len(blob) else None
    t.check(flipped and diff == [flipped[0]["flipped_at"]],
            "bytes differ exactly where the proxy flipped (the engine's checksums catch it)", diff)
    specs, want = range_specs(rnd, blob, 6)
    proxy.set_faults([Fault("flip", nth=[2], methods="GET", ranged=True)])
    r = d("s3://bkt/f", "ranges", out, *specs, env={"S3VEC_S3_HEDGE": "0"})
    got = read(out)
    flipped = [e for e in proxy.log if e.get("flipped_at") is not None]
    t.check(r["ok"] and len(got) == len(want) and len(flipped) == 1, "flipped range is delivered", r.get("msg"))
    if flipped and len(got) == len(want):
        rng = flipped[0]["range"]  # "bytes=a-b": find which range it was and where in the output
        a = int(rng.split("=")[1].split("-")[0])
        base = 0
        for s in specs:
            off, size = map(int, s.split(":")[1:])
            if off == a:
                break
            base += size
        diff = [i for i in range(len(want)) if got[i] != want[i]]
        t.check(diff == [base + flipped[0]["flipped_at"]], "range bytes differ only at the flipped byte", diff)
    proxy.clear_faults()


def writes(t, d, proxy, s3, blob, tmp, rnd):
    small = write(os.path.join(tmp, "small"), rnd.randbytes(300_000))
    proxy.set_faults([Fault("503", first=2, methods="PUT")])
    r = d("s3://bkt/f", "put", "w/small.bin", small)
    t.check(r["ok"] and s3.get_object(Bucket="bkt", Key="f/w/small.bin")["Body"].read() == read(small),
            "PUT survives 503s", r)
    t.check(r["stats"]["retries"] == 2, "PUT retried twice", r.get("stats"))
    proxy.set_faults([Fault("reset", first=1, methods="PUT")])  # the reset hits the response after the write
    r = d("s3://bkt/f", "put", "w/small2.bin", small)
    t.check(r["ok"] and s3.get_object(Bucket="bkt", Key="f/w/small2.bin")["Body"].read() == read(small),
            "PUT survives a reset answer", r)

    # conditional create racing another writer: 409 ConditionalRequestConflict is retried...
    proxy.set_faults([Fault("error", status=409, code="ConditionalRequestConflict", first=1, methods="PUT")])
    r = d("s3://bkt/f", "put", "w/cond.bin", small, "--if-none-match")
    t.check(r["ok"] and r["stats"]["retries"] == 1, "409 ConditionalRequestConflict retried, then created", r)
    # ...and when it persists the write lost: precondition failed
    proxy.set_faults([Fault("error", status=409, code="ConditionalRequestConflict", methods="PUT")])
    r = d("s3://bkt/f", "put", "w/cond2.bin", small, "--if-none-match", env={"S3VEC_S3_MAX_ATTEMPTS": "3"})
    t.check(not r["ok"] and r["status"] == "precondition_failed" and "ConditionalRequestConflict" in r["msg"],
            "persistent 409 conflict is a lost precondition", r)
    # a retried create that already happened: the retry sees 412 (S3 semantics), reported as lost
    proxy.set_faults([Fault("reset", first=1, methods="PUT")])
    r = d("s3://bkt/f", "put", "w/cond3.bin", small, "--if-none-match")
    t.check(r["ok"] and r["stats"]["retries"] == 1 and r["etag"] == s3.head_object(Bucket="bkt",
                                                                                   Key="f/w/cond3.bin")["ETag"],
            "a create whose answer was lost: the retry's 412 is resolved as ours (ETag = MD5 of our bytes)", r)
    other = write(os.path.join(tmp, "other"), rnd.randbytes(1000))
    proxy.set_faults([Fault("503", first=1, methods="PUT")])
    r = d("s3://bkt/f", "put", "w/cond3.bin", other, "--if-none-match")
    t.check(not r["ok"] and r["status"] == "precondition_failed",
            "a retried create that meets someone else's object still fails", r)
    proxy.set_faults([Fault("reset", first=1, methods="PUT")])
    etag_now = s3.head_object(Bucket="bkt", Key="f/w/cond3.bin")["ETag"]
    r = d("s3://bkt/f", "put", "w/cond3.bin", other, "--if-match", etag_now)
    t.check(r["ok"] and s3.get_object(Bucket="bkt", Key="f/w/cond3.bin")["Body"].read() == read(other),
            "an If-Match replace whose answer was lost is resolved as ours", r)

    # multipart: a failing part is retried; a part failing for good aborts the upload
    big = write(os.path.join(tmp, "big"), rnd.randbytes(18 * MiB))
    proxy.set_faults([Fault("500", nth=[2], methods="PUT", query_contains="partNumber"),
                      Fault("reset", nth=[1], methods="PUT", query_contains="partNumber=3")])
    r = d("s3://bkt/f", "put-file", "w/big.bin", big)
    t.check(r["ok"] and s3.get_object(Bucket="bkt", Key="f/w/big.bin")["Body"].read() == read(big),
            "multipart survives a 500 and a reset on parts", r)
    t.check(r["stats"]["retries"] == 2, "two part retries", r.get("stats"))
    proxy.set_faults([Fault("500", first=1, methods="POST", query_contains="uploadId")])
    r = d("s3://bkt/f", "put-file", "w/big2.bin", big)
    t.check(r["ok"] and s3.head_object(Bucket="bkt", Key="f/w/big2.bin")["ContentLength"] == 18 * MiB,
            "CompleteMultipartUpload retried after a 500", r)
    proxy.set_faults([Fault("503", methods="PUT", query_contains="partNumber=2")])
    r = d("s3://bkt/f", "put-file", "w/big3.bin", big, env={"S3VEC_S3_MAX_ATTEMPTS": "2"})
    aborted = [e for e in proxy.log if e["method"] == "DELETE" and "uploadId" in e["query"]]
    t.check(not r["ok"] and r["status"] == "throttled" and "part 2" in r["msg"], "part failing for good", r)
    t.check(len(aborted) == 1, "the multipart upload was aborted", [e["method"] for e in proxy.log])
    t.check(not s3.list_multipart_uploads(Bucket="bkt").get("Uploads"), "no upload left behind")
    t.check(not exists(s3, "f/w/big3.bin"), "no object created")
    proxy.clear_faults()


def throttling(t, moto, key, secret, tmp, blob):
    out = os.path.join(tmp, "out")
    with FaultProxy(upstream_port=moto.port, latency_ms=100, bandwidth_mbps=4) as slow:
        d = Driver(moto.env(key, secret, endpoint=slow.endpoint))
        t0 = time.monotonic()
        r = d("s3://bkt/f", "get", "obj.bin", out, env={"S3VEC_S3_HEDGE": "0"})
        took = time.monotonic() - t0
        # 2 MiB at 4 MB/s is >= 0.52 s, plus 0.1 s of added latency
        t.check(r["ok"] and read(out) == blob and took >= 0.6, "throttled proxy applies latency and bandwidth",
                (r.get("msg"), took))


if __name__ == "__main__":
    sys.exit(main())
