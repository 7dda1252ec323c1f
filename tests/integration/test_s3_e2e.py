#!/usr/bin/env python3
"""End to end: `s3vec build s3://bkt/idx` through moto_server (SigV4 verified), then `s3vec query`
gives exactly the results of the same index built in a local folder; `inspect --verify` reads every
object back; `--overwrite` swaps the manifest; and queries through the fault proxy (503, 500, resets,
truncations, delays) return the same results, while a flipped byte gives a clear error or (a cluster
range, which the engine fetches again after a checksum mismatch) the same results, never a different
answer."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3lib import Checks, Fault, FaultProxy, MotoServer  # noqa: E402

DIM, COUNT = 16, 3000


def run(bin_, args, env, timeout=300):
    p = subprocess.run([bin_, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def results(stdout):
    """Per query: the (key, distance) list of the QueryVectors JSON answer(s) printed on stdout."""
    out, dec, i = [], json.JSONDecoder(), 0
    while True:
        while i < len(stdout) and stdout[i].isspace():
            i += 1
        if i >= len(stdout):
            return out
        doc, i = dec.raw_decode(stdout, i)
        out.append([(v["key"], round(v.get("distance", 0.0), 5)) for v in doc.get("vectors", [])])


def main():
    t = Checks()
    bin_ = os.environ.get("S3VEC_BIN")
    if not bin_ or not os.access(bin_, os.X_OK):
        print("S3VEC_BIN must point at the s3vec binary", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="s3v-e2e-")
    rnd = random.Random(5)
    try:
        rows = [[rnd.gauss(0, 1) for _ in range(DIM)] for _ in range(COUNT)]
        data = os.path.join(tmp, "in.jsonl")
        with open(data, "w") as f:
            for i, r in enumerate(rows):
                f.write(json.dumps({"key": f"doc-{i}", "data": r, "metadata": {"genre": "abc"[i % 3], "n": i}}) + "\n")
        queries = [[rnd.gauss(0, 1) for _ in range(DIM)] for _ in range(4)]
        local = os.path.join(tmp, "local-idx")

        with MotoServer() as moto:
            key, secret = moto.create_user()
            s3 = moto.client(key, secret)
            s3.create_bucket(Bucket="bkt")
            env = moto.env(key, secret)
            env["S3VEC_LOG"] = "error"

            build = ["--input", data, "--metric", "cosine", "--seed", "7", "--threads", "2", "-q"]
            rc, out, err = run(bin_, ["build", local, *build], env)
            t.check(rc == 0, "local build", err)
            rc, out, err = run(bin_, ["build", "s3://bkt/idx", *build], env)
            t.check(rc == 0 and "s3://bkt/idx" in out, "build into s3://bkt/idx through moto", err)
            names = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt").get("Contents", [])]
            t.check("idx/manifest" in names and len(names) >= 3, "index objects in the bucket", names)

            def query_all(where, qenv, extra=()):
                got = []
                for q in queries:
                    rc, out, err = run(bin_, ["query", where, "--vector", json.dumps(q), "-k", "10", "--json",
                                              *extra], qenv)
                    if rc != 0:
                        return None, err
                    got += results(out)
                return got, ""

            want, err = query_all(local, env)
            t.check(want and all(len(r) == 10 for r in want), "local queries", err)
            got, err = query_all("s3://bkt/idx", env)
            t.check(got == want, "S3 index answers exactly as the local index", (err, got and got[0], want[0]))
            filt = ("--filter", '{"genre": {"$eq": "b"}}', "--nprobe", "8")
            want_f, _ = query_all(local, env, filt)
            got_f, err = query_all("s3://bkt/idx", env, filt)
            t.check(want_f and got_f == want_f, "filtered queries match", err)
            rc, out, err = run(bin_, ["inspect", "s3://bkt/idx", "--verify"], env)
            t.check(rc == 0, "inspect --verify reads and checks every S3 object", err)

            # through the fault proxy: same answers, or (flip) a clear error
            with FaultProxy(upstream_port=moto.port) as proxy:
                # every-Nth faults hit a retry again with probability 1/N: 12 attempts make a range failing
                # for good about 1e-7 likely, so the test checks recovery, not luck
                penv = dict(env, AWS_ENDPOINT_URL_S3=proxy.endpoint, S3VEC_S3_BACKOFF_BASE_MS="5",
                            S3VEC_S3_BACKOFF_CAP_MS="50", S3VEC_S3_MAX_ATTEMPTS="12")
                for what, faults in [
                    ("503 on every 4th GET", [Fault("503", every=4, methods="GET")]),
                    ("500 on every 5th GET", [Fault("500", every=5, methods="GET")]),
                    ("resets and truncations", [Fault("reset", every=5, methods="GET"),
                                                Fault("truncate", every=7, methods="GET")]),
                    ("a 0.6 s first-byte delay on every 6th GET", [Fault("delay", every=6, methods="GET",
                                                                         delay_ms=600)]),
                ]:
                    proxy.set_faults(faults)
                    got, err = query_all("s3://bkt/idx", penv)
                    t.check(got == want and proxy.hits() > 0, f"queries under {what} give the same results",
                            (err, proxy.hits()))
                # debug logging of retries never prints a credential
                proxy.set_faults([Fault("503", every=3, methods="GET")])
                rc, out, err = run(bin_, ["query", "s3://bkt/idx", "--vector", json.dumps(queries[0]), "--json"],
                                   dict(penv, S3VEC_LOG="debug"))
                t.check(rc == 0 and "retrying" in err, "retries are logged at debug level", err[-500:])
                t.check(secret not in err and secret not in out and "Signature=" not in err and
                        "Authorization" not in err, "no credential or signature in the debug log")
                flipped_wrong = flipped_caught = 0
                for n in range(1, 4):
                    proxy.set_faults([Fault("flip", nth=[n], methods="GET")])
                    for q in queries[:2]:
                        rc, out, err = run(bin_, ["query", "s3://bkt/idx", "--vector", json.dumps(q), "-k", "10",
                                                  "--json"], penv)
                        if rc == 0:
                            flipped_wrong += results(out)[0] != want[queries.index(q)]
                        else:
                            flipped_caught += 1
                            t.check("corrupt" in err.lower() or "checksum" in err.lower(),
                                    "a flipped byte is reported as corruption", err)
                t.check(flipped_wrong == 0, "a flipped byte never gives a different answer", flipped_wrong)
                # flips in the manifest and the centroids are reported; a flipped cluster range fails its
                # checksum and the engine fetches it again (then answers correctly)
                t.check(flipped_caught >= 2, "flips in the manifest and centroids are reported", flipped_caught)
                proxy.clear_faults()

            # overwrite: a new generation, the manifest swapped with a conditional write
            rnd2 = random.Random(9)
            data2 = os.path.join(tmp, "in2.jsonl")
            with open(data2, "w") as f:
                for i in range(500):
                    f.write(json.dumps({"key": f"new-{i}", "data": [rnd2.gauss(0, 1) for _ in range(DIM)]}) + "\n")
            rc, out, err = run(bin_, ["build", "s3://bkt/idx", "--input", data2, "--overwrite", "-q"], env)
            t.check(rc == 0, "overwrite build on S3", err)
            rc, out, err = run(bin_, ["build", "s3://bkt/idx", "--input", data2, "-q"], env)
            t.check(rc != 0, "building over an existing S3 index without --overwrite is refused", out)
            rc, out, err = run(bin_, ["query", "s3://bkt/idx", "--vector", json.dumps(queries[0]), "-k", "3",
                                      "--json"], env)
            keys = [k for k, _ in results(out)[0]] if rc == 0 else []
            t.check(rc == 0 and keys and all(k.startswith("new-") for k in keys), "queries see the new generation",
                    (err, keys))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
