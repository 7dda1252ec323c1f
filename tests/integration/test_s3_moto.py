#!/usr/bin/env python3
"""The S3 backend against moto_server with SigV4 verification (tests/integration/s3lib).

Checks through the s3v_storage API (tests/integration/drivers/s3_driver.c), every request signed by
our SigV4 code and verified by moto with an IAM user's keys:
  - correct signatures succeed (GET, HEAD, PUT, ranged GETs in parallel, multipart, list, delete),
    with long-term keys and with an STS session token; a wrong secret, an unknown key and a bad
    token get S3V_ERR_ACCESS_DENIED with S3's code and message and never the secret;
  - bytes: whole GET, 64 parallel ranges over two objects, a 20 MB multipart upload (8 MiB parts)
    read back by boto3;
  - conditional writes: If-None-Match create (PUT and multipart), If-Match replace, stale etag,
    missing object;
  - not found: object, bucket; deleting a missing key is OK;
  - HTTPS through a TLS relay with a throwaway CA: accepted with AWS_CA_BUNDLE (connections reused),
    refused without it (S3V_ERR_NETWORK, not retried).
Then, with moto's verification switched off (moto 5.2 recomputes signatures from the decoded URL, so
any percent-encoded byte in a path or query fails verification for every client, boto3 included):
keys with spaces, '+', '=', '&' and UTF-8; listing with delimiter, start-after, max-keys, early stop
and continuation tokens, compared entry for entry with the local-folder backend on the same keys."""
import hashlib
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3lib import Checks, Driver, FaultProxy, MotoServer  # noqa: E402
from s3lib.tls import TlsRelay, make_certs  # noqa: E402

MiB = 1024 * 1024


def main():
    t = Checks()
    tmp = tempfile.mkdtemp(prefix="s3v-moto-")
    rnd = random.Random(1234)
    try:
        with MotoServer() as moto:
            key, secret = moto.create_user()
            s3 = moto.client(key, secret)
            s3.create_bucket(Bucket="bkt")
            d = Driver(moto.env(key, secret))
            run_signed(t, moto, s3, d, key, secret, tmp, rnd)
            run_special_keys(t, moto, s3, d, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.summary()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exists(s3, key):
    try:
        s3.head_object(Bucket="bkt", Key=key)
        return True
    except s3.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def run_signed(t, moto, s3, d, key, secret, tmp, rnd):
    blob_a = rnd.randbytes(3 * MiB + 17)
    blob_b = rnd.randbytes(257 * 1024)
    s3.put_object(Bucket="bkt", Key="idx/a.bin", Body=blob_a)
    s3.put_object(Bucket="bkt", Key="idx/b.bin", Body=blob_b)
    out = os.path.join(tmp, "out.bin")

    # whole GET and HEAD (UNSIGNED-PAYLOAD requests)
    r = d("s3://bkt/idx", "get", "a.bin", out)
    t.check(r["ok"] and read(out) == blob_a, "GET returns the object", r)
    t.check(r["size"] == len(blob_a) and r["etag"].startswith('"'), "GET reports size and quoted etag", r)
    r = d("s3://bkt/idx", "head", "b.bin")
    t.check(r["ok"] and r["size"] == len(blob_b), "HEAD size", r)
    t.check(r["etag"] == s3.head_object(Bucket="bkt", Key="idx/b.bin")["ETag"], "HEAD etag equals S3's", r)

    # 64 ranges over two objects, in parallel, bytes equal
    specs, want = [], b""
    for i in range(64):
        name, blob = (("a.bin", blob_a) if i % 2 else ("b.bin", blob_b))
        size = rnd.randint(1, 40000)
        off = rnd.randint(0, len(blob) - size)
        specs.append(f"{name}:{off}:{size}")
        want += blob[off:off + size]
    specs.append(f"a.bin:{len(blob_a) - 1}:1")  # last byte
    want += blob_a[-1:]
    r = d("s3://bkt/idx", "ranges", out, *specs)
    t.check(r["ok"] and read(out) == want, "65 parallel ranges return the right bytes", r.get("msg"))
    t.check(r["stats"]["requests"] == 65 + r["stats"]["hedges"] and r["stats"]["retries"] == 0,
            "one request per range (plus hedges: moto is slow under 32 parallel requests)",
            r["stats"])
    t.check(sorted(r["order"]) == list(range(65)), "every range reported exactly once", r.get("order"))
    r = d("s3://bkt/idx", "ranges", out, f"a.bin:{len(blob_a) - 10}:20")
    t.check(not r["ok"] and r["status"] == "corrupt" and "past the end" in r["msg"],
            "range past the end is corrupt", r)
    r = d("s3://bkt/idx", "ranges", out, f"a.bin:{len(blob_a) + 10}:5")
    t.check(not r["ok"] and r["status"] == "corrupt", "range beyond the end (416) is corrupt", r)
    r = d("s3://bkt/idx", "ranges", out, "missing.bin:0:10")
    t.check(not r["ok"] and r["status"] == "not_found", "range of a missing object", r)

    # warm connections: ten rounds of 8 ranges on one handle reuse sockets (same answers)
    r = d("s3://bkt/idx", "ranges", out, *specs[:8], "--repeat", 10)
    t.check(r["ok"] and r["stats"]["requests"] == 80 + r["stats"]["hedges"], "repeated range batches on one handle",
            r.get("stats"))

    # PUT (signed SHA-256 payload) and read back with boto3
    small = rnd.randbytes(100_000)
    r = d("s3://bkt/idx", "put", "put/small.bin", write(os.path.join(tmp, "small"), small))
    got = s3.get_object(Bucket="bkt", Key="idx/put/small.bin")
    t.check(r["ok"] and got["Body"].read() == small, "PUT stores the bytes", r)
    t.check(r["etag"] == got["ETag"], "PUT returns S3's etag", (r["etag"], got["ETag"]))
    r = d("s3://bkt/idx", "put", "put/empty.bin", write(os.path.join(tmp, "empty"), b""))
    t.check(r["ok"] and s3.head_object(Bucket="bkt", Key="idx/put/empty.bin")["ContentLength"] == 0,
            "PUT of an empty object", r)

    # multipart: 20 MB in 8 MiB parts (3 parts), uploaded in parallel
    big = rnd.randbytes(20_000_000)
    big_path = write(os.path.join(tmp, "big"), big)
    r = d("s3://bkt/idx", "put-file", "big.bin", big_path)
    head = s3.head_object(Bucket="bkt", Key="idx/big.bin")
    t.check(r["ok"] and head["ContentLength"] == len(big), "multipart upload size", r)
    t.check(head["ETag"].endswith('-3"') and r["etag"] == head["ETag"], "3 parts and the final etag", head["ETag"])
    t.check(hashlib.sha256(s3.get_object(Bucket="bkt", Key="idx/big.bin")["Body"].read()).digest() ==
            hashlib.sha256(big).digest(), "multipart bytes read back by boto3")
    t.check(r["stats"]["requests"] == 5 and r["stats"]["bytes_up"] >= len(big),
            "create + 3 parts + complete", r["stats"])
    r = d("s3://bkt/idx", "get", "big.bin", out)
    t.check(r["ok"] and read(out) == big, "GET of the multipart object", r.get("msg"))
    # put_file below one part: a single PUT
    mid = rnd.randbytes(3 * MiB)
    r = d("s3://bkt/idx", "put-file", "mid.bin", write(os.path.join(tmp, "mid"), mid))
    t.check(r["ok"] and r["stats"]["requests"] == 1 and
            s3.get_object(Bucket="bkt", Key="idx/mid.bin")["Body"].read() == mid, "small put_file is one PUT", r)

    # conditional writes
    v1, v2, v3 = (write(os.path.join(tmp, f"v{i}"), rnd.randbytes(5000)) for i in (1, 2, 3))
    r = d("s3://bkt/idx", "put", "manifest", v1, "--if-none-match")
    t.check(r["ok"], "If-None-Match creates a new key", r)
    etag1 = r["etag"]
    r = d("s3://bkt/idx", "put", "manifest", v2, "--if-none-match")
    t.check(not r["ok"] and r["status"] == "precondition_failed" and "412" in r["msg"],
            "If-None-Match on an existing key fails", r)
    r = d("s3://bkt/idx", "put", "manifest", v2, "--if-match", etag1)
    t.check(r["ok"] and r["etag"] != etag1, "If-Match with the current etag replaces", r)
    r = d("s3://bkt/idx", "put", "manifest", v3, "--if-match", etag1)
    t.check(not r["ok"] and r["status"] == "precondition_failed", "If-Match with a stale etag fails", r)
    t.check(s3.get_object(Bucket="bkt", Key="idx/manifest")["Body"].read() == read(v2),
            "the losing write changed nothing")
    r = d("s3://bkt/idx", "put", "nothing-here", v3, "--if-match", etag1)
    t.check(not r["ok"] and r["status"] == "not_found", "If-Match on a missing key is not found", r)
    r = d("s3://bkt/idx", "put-file", "big.bin", big_path, "--if-none-match")
    t.check(not r["ok"] and r["status"] == "precondition_failed",
            "multipart If-None-Match on an existing key fails at completion", r)
    t.check(not s3.list_multipart_uploads(Bucket="bkt").get("Uploads"), "the failed multipart upload was aborted")
    nine = write(os.path.join(tmp, "nine"), rnd.randbytes(9 * MiB))
    r = d("s3://bkt/idx", "put-file", "big2.bin", nine, "--if-none-match")
    t.check(r["ok"] and s3.head_object(Bucket="bkt", Key="idx/big2.bin")["ContentLength"] == 9 * MiB and
            r["etag"].endswith('-2"'), "multipart If-None-Match creates a new key (2 parts)", r)

    # not found
    r = d("s3://bkt/idx", "get", "missing", out)
    t.check(not r["ok"] and r["status"] == "not_found" and "NoSuchKey" in r["msg"], "GET missing key", r)
    r = d("s3://bkt/idx", "head", "missing")
    t.check(not r["ok"] and r["status"] == "not_found", "HEAD missing key", r)
    r = d("s3://nobucket/idx", "get", "a.bin", out)
    t.check(not r["ok"] and r["status"] == "not_found" and "NoSuchBucket" in r["msg"], "missing bucket", r)

    # delete
    r = d("s3://bkt/idx", "del", "put/small.bin")
    t.check(r["ok"] and not exists(s3, "idx/put/small.bin"), "DELETE removes the key", r)
    r = d("s3://bkt/idx", "del", "put/small.bin")
    t.check(r["ok"], "DELETE of a missing key is OK", r)

    # listing works signed too, as long as prefix and delimiter need no escaping (moto limitation)
    r = d("s3://bkt", "list", "idx")
    keys = [e["key"] for e in r.get("entries", [])]
    t.check(r["ok"] and keys == sorted(keys) and "idx/a.bin" in keys and "idx/big.bin" in keys,
            "signed list at the bucket root", r.get("msg"))

    tls(t, moto, d, tmp, blob_b)

    # session token (STS AssumeRole): signed x-amz-security-token accepted; a wrong token refused
    tk, ts, tt = moto.assume_role(key, secret)
    r = d("s3://bkt/idx", "get", "b.bin", out, env={"AWS_ACCESS_KEY_ID": tk, "AWS_SECRET_ACCESS_KEY": ts,
                                                    "AWS_SESSION_TOKEN": tt})
    t.check(r["ok"] and read(out) == blob_b, "GET with session-token credentials", r)
    r = d("s3://bkt/idx", "put", "sts.bin", v1, env={"AWS_ACCESS_KEY_ID": tk, "AWS_SECRET_ACCESS_KEY": ts,
                                                     "AWS_SESSION_TOKEN": tt})
    t.check(r["ok"], "PUT with session-token credentials", r)
    r = d("s3://bkt/idx", "get", "b.bin", out, env={"AWS_ACCESS_KEY_ID": tk, "AWS_SECRET_ACCESS_KEY": ts,
                                                    "AWS_SESSION_TOKEN": tt[:-8] + "AAAAAAAA"})
    t.check(not r["ok"] and r["status"] == "access_denied" and "InvalidToken" in r["msg"], "wrong session token", r)
    t.check(tt not in r["msg"] and tt[:-8] not in r["msg"] and ts not in r["msg"], "token and secret not in message")

    # wrong secret, unknown key id: 403, clear, no secret anywhere in the output
    wrong = "WRONG" + secret[5:]
    for cmd in (("get", "a.bin", out), ("put", "x.bin", v1), ("ranges", out, "a.bin:0:10"), ("head", "a.bin")):
        r = d("s3://bkt/idx", *cmd, env={"AWS_SECRET_ACCESS_KEY": wrong})
        t.check(not r["ok"] and r["status"] == "access_denied" and "SignatureDoesNotMatch" in r["msg"] or
                (cmd[0] == "head" and not r["ok"] and r["status"] == "access_denied"),
                f"wrong secret on {cmd[0]} is access denied", r)
        t.check(r["stats"]["retries"] == 0, f"403 on {cmd[0]} is not retried", r["stats"])
        everything = r["_stdout"] + r["_stderr"]
        t.check(wrong not in everything and secret not in everything, f"no secret in {cmd[0]} output")
    r = d("s3://bkt/idx", "get", "a.bin", out, env={"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000"})
    t.check(not r["ok"] and r["status"] == "access_denied" and "InvalidAccessKeyId" in r["msg"],
            "unknown access key", r)
    r = d("s3://bkt/idx", "get", "a.bin", out, env={"AWS_SECRET_ACCESS_KEY": "", "AWS_ACCESS_KEY_ID": ""})
    t.check(not r["ok"] and r["status"] == "configuration_error" and "no AWS credentials" in r["msg"],
            "no credentials is a configuration error", r)


def tls(t, moto, d, tmp, blob):
    """HTTPS with the CA bundle override (AWS_CA_BUNDLE) and with an untrusted certificate."""
    certs = make_certs(tmp)
    out = os.path.join(tmp, "tls-out")
    # moto closes its connection after each answer; the FaultProxy keeps the client side alive, so the
    # relay's handshakes count our client's connections
    with FaultProxy(upstream_port=moto.port) as proxy, TlsRelay(proxy.port, certs) as relay:
        r = d("s3://bkt/idx", "ranges", out, "b.bin:0:1000", "b.bin:5000:3000", "--repeat", 3,
              env={"AWS_ENDPOINT_URL_S3": relay.endpoint, "AWS_CA_BUNDLE": certs["ca"]})
        t.check(r["ok"] and read(out) == blob[:1000] + blob[5000:8000], "HTTPS with AWS_CA_BUNDLE", r)
        t.check(relay.handshakes <= 2, "TLS connections reused across calls", relay.handshakes)
        r = d("s3://bkt/idx", "get", "b.bin", out, env={"AWS_ENDPOINT_URL_S3": relay.endpoint})
        t.check(not r["ok"] and r["status"] == "network_error" and "TLS verification failed" in r["msg"] and
                r["stats"]["requests"] == 1, "an untrusted certificate is refused, not retried", r)


def list_entries(d, url, *args, env=None):
    r = d(url, "list", *args, env=env)
    return r, [(e["key"], e["size"], e["prefix"]) for e in r.get("entries", [])]


def run_special_keys(t, moto, s3, d, tmp):
    """Keys and list prefixes that need percent-encoding, with every signature verified."""
    local = os.path.join(tmp, "local")
    keys = ["k/x y+z=1&2.bin", "k/\u00e9t\u00e9/caf\u00e9.bin", "k/a/b/c", "k/a/d", "k/a/b/e/f", "k/b", "k/c~d",
            "k/zz/1", "k/zz/2", "k/a!(x)*'.bin"] + [f"k/many/{i:03d}" for i in range(23)]
    payload = {}
    for i, k in enumerate(keys):
        data = f"object {i} {k}".encode() * (i + 1)
        payload[k] = data
        src = write(os.path.join(tmp, "obj"), data)
        r = d("s3://bkt/lst", "put", k, src)
        t.check(r["ok"], f"PUT key {k!r}", r)
        r2 = d(local, "put", k, src)
        t.check(r2["ok"], f"local PUT key {k!r}", r2)
    out = os.path.join(tmp, "o")
    for k in keys[:3]:
        r = d("s3://bkt/lst", "get", k, out)
        t.check(r["ok"] and read(out) == payload[k], f"GET special key {k!r}", r)
        t.check(s3.get_object(Bucket="bkt", Key="lst/" + k)["Body"].read() == payload[k],
                f"boto3 sees {k!r} under the same name")
    r = d("s3://bkt/lst", "ranges", out, f"{keys[0]}:3:5", f"{keys[1]}:0:4")
    t.check(r["ok"] and read(out) == payload[keys[0]][3:8] + payload[keys[1]][:4], "ranges of special keys", r)

    cases = [
        ("", ()),
        ("", ("--delimiter", "/")),
        ("k/", ("--delimiter", "/")),
        ("k/a/", ("--delimiter", "/")),
        ("k/a", ()),
        ("k/", ("--start-after", "k/a/d")),
        ("k/", ("--delimiter", "/", "--start-after", "k/a/")),
        ("k/", ("--max-keys", "5")),
        ("k/", ("--delimiter", "/", "--max-keys", "3")),
        ("k/", ("--stop-after", "4")),
        ("k/many/", ("--start-after", "k/many/010", "--max-keys", "7")),
        ("nothing/", ()),
    ]
    for prefix, args in cases:
        rl, want = list_entries(d, local, prefix, *args)
        for page in ("1000", "4"):
            r, got = list_entries(d, "s3://bkt/lst", prefix, *args, env={"S3VEC_S3_LIST_PAGE": page})
            t.check(r["ok"] and rl["ok"] and got == want,
                    f"list {prefix!r} {args} page {page} equals the local folder", (got, want, r.get("msg")))
    r = d("s3://bkt/lst", "list", "k/many/", env={"S3VEC_S3_LIST_PAGE": "7"})
    t.check(r["ok"] and len(r["entries"]) == 23 and r["stats"]["requests"] == 4,
            "23 keys in pages of 7: four requests with continuation tokens", r.get("stats"))
    r = d("s3://bkt/lst", "list", "k/../x")
    t.check(not r["ok"] and r["status"] == "invalid", "list prefix with '..' rejected", r)
    r = d("s3://bkt/lst", "get", "k/../../etc", out)
    t.check(not r["ok"] and r["status"] == "invalid" and r["stats"]["requests"] == 0,
            "keys escaping the root are refused before any request", r)
    r = d("s3://bkt/lst", "get", "k/b", os.path.join(tmp, "o"), env={"AWS_SECRET_ACCESS_KEY": "WRONGSECRET"})
    t.check(not r["ok"] and r["status"] == "access_denied", "a wrong secret is still refused after them", r)


if __name__ == "__main__":
    sys.exit(main())
