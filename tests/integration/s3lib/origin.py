"""MemoryOrigin: a minimal, fast S3-compatible origin for benchmarks (not a test of S3 semantics).

    with MemoryOrigin({"bkt/idx/data": b"..."}) as o:   # path-style "bucket/key" -> bytes
        o.endpoint                                     # http://127.0.0.1:PORT
    MemoryOrigin(files=folder_files("bkt", "/data/idx-root"))   # "bkt/<relative path>" -> that file
    python3 -m s3lib.origin --key bkt/idx/data --size-mib 64 --seed 1   # own process; prints the port
    python3 -m s3lib.origin --dir bkt=/data/idx-root [--dir b2=/other]  # serve folders' files as buckets

Serves GET (whole object or one "Range: bytes=a-b") and HEAD of in-memory objects over HTTP/1.1
keep-alive with asyncio (one thread), ignoring authentication, so that a benchmark measures the client
and the modelled network (put a ThrottleRelay in front) rather than moto's own cost (moto reads a whole
object to serve a range). 404 for unknown keys, 416 for unsatisfiable ranges. The command-line form
fills the object with random.Random(seed).randbytes(size), so a benchmark can rebuild the bytes.

Files (`files=` or --dir) are read into memory at start. Bodies are written in 256 KiB pieces, each
after the previous one drained: asyncio's transport (3.11) keeps what the socket does not take in one
buffer that it shifts after every send, so one big write costs time quadratic in its size.

Throttling mode (latency_ms / bandwidth_mbps, --latency-ms / --bandwidth-mbps; 0 = off): the S3 model of
ThrottleRelay without the relay's extra hop and copy. Each answer starts latency_ms after its request
arrived, and each connection's body leaves through a modelled link of bandwidth_mbps (10^6 bytes/s): a
piece is written when its last byte would have crossed the link, which never banks idle time.

`GET /_origin/stats` (no S3 bucket name starts with '_') answers
{"requests": N, "bytes": N} (object requests and body bytes sent so far) and `GET /_origin/reset` zeroes
them, so a benchmark can check the client's own request and byte counts."""
import argparse
import asyncio
import hashlib
import json
import os
import random
import threading
import urllib.parse
import xml.sax.saxutils

CHUNK = 256 * 1024


def folder_files(bucket, folder):
    """{"bucket/<path relative to folder>": absolute path} for every regular file under folder."""
    out = {}
    root = os.path.abspath(folder)
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p):
                out[f"{bucket}/{os.path.relpath(p, root)}"] = p
    return out


def _list_objects(objects, bucket, q):
    """ListObjectsV2 of bucket: prefix, delimiter, start-after, continuation-token (the last key of the
    previous page), max-keys (default 1000); keys in byte order."""
    arg = lambda name, default="": q.get(name, [default])[0]  # noqa: E731
    prefix, delim, after = arg("prefix"), arg("delimiter"), arg("continuation-token") or arg("start-after")
    max_keys = int(arg("max-keys", "1000"))
    keys = sorted((k[len(bucket) + 1:] for k in objects if k.startswith(bucket + "/")), key=lambda k: k.encode())
    entries = []  # (name, is_prefix)
    for k in keys:
        if not k.startswith(prefix) or k.encode() <= after.encode():
            continue
        cut = k.find(delim, len(prefix)) if delim else -1
        name, is_prefix = (k[:cut + len(delim)], True) if cut >= 0 else (k, False)
        if entries and entries[-1] == (name, is_prefix):
            continue
        if is_prefix and name.encode() <= after.encode():
            continue
        entries.append((name, is_prefix))
    page, truncated = entries[:max_keys], len(entries) > max_keys
    out = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>",
           f"<Name>{xml.sax.saxutils.escape(bucket)}</Name><Prefix>{xml.sax.saxutils.escape(prefix)}</Prefix>",
           f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
           f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
    if truncated:  # the last name: keys after it, and prefixes past it (a prefix <= it was listed)
        out.append(f"<NextContinuationToken>{xml.sax.saxutils.escape(page[-1][0])}</NextContinuationToken>")
    for name, is_prefix in page:
        if is_prefix:
            out.append(f"<CommonPrefixes><Prefix>{xml.sax.saxutils.escape(name)}</Prefix></CommonPrefixes>")
        else:
            out.append(f"<Contents><Key>{xml.sax.saxutils.escape(name)}</Key>"
                       f"<Size>{len(objects[bucket + '/' + name])}</Size></Contents>")
    out.append("</ListBucketResult>")
    return "".join(out).encode()


async def _serve_conn(origin, reader, writer):
    objects, etags = origin.objects, origin.etags
    loop = asyncio.get_running_loop()
    latency, rate = origin.latency_ms / 1e3, origin.bandwidth_mbps * 1e6
    link_free = 0.0  # the modelled link of this connection is busy until then (loop.time())

    async def at(t):
        if t > loop.time():
            await asyncio.sleep(t - loop.time())

    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            start = loop.time() + latency  # the answer starts latency after the request arrived
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            if n:
                await reader.readexactly(n)
            path, _, query = target.partition("?")
            key = urllib.parse.unquote(path).lstrip("/")
            if "list-type=2" in query.split("&") and "/" not in key.rstrip("/"):
                body = _list_objects(objects, key.rstrip("/"), urllib.parse.parse_qs(query))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                origin.requests += 1
                await writer.drain()
                continue
            if key in ("_origin/stats", "_origin/reset"):
                if key == "_origin/reset":
                    origin.requests = origin.bytes_sent = 0
                body = json.dumps({"requests": origin.requests, "bytes": origin.bytes_sent}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
                continue
            obj = objects.get(key)
            size = len(obj) if obj is not None else 0
            status, extra, body, span = 200, [], b"", None
            if obj is None:
                status, body = 404, b"<Error><Code>NoSuchKey</Code><Message>not found</Message></Error>"
            else:
                extra.append(("ETag", etags[key]))
                span = (0, size)
                rng = headers.get("range")
                if rng:
                    a, _, b = rng.partition("=")[2].partition("-")
                    a, b = int(a), min(int(b), size - 1)
                    if a >= size:
                        status, span = 416, None
                        body = b"<Error><Code>InvalidRange</Code><Message>bad</Message></Error>"
                    else:
                        status, span = 206, (a, b + 1 - a)
                        extra.append(("Content-Range", f"bytes {a}-{b}/{size}"))
            length = span[1] if span else len(body)
            reason = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}[status]
            out = [f"HTTP/1.1 {status} {reason}\r\n"] + [f"{k}: {v}\r\n" for k, v in extra]
            out.append(f"Content-Length: {length}\r\n\r\n")
            if latency:
                await at(start)
            writer.write("".join(out).encode("latin-1"))
            origin.requests += 1
            if method != "HEAD" and length:
                view = memoryview(body) if span is None else memoryview(obj)[span[0]:span[0] + span[1]]
                for i in range(0, length, CHUNK):  # small writes: asyncio buffers what the socket does
                    piece = view[i:i + CHUNK]  # not take and shifts that buffer per send
                    if rate:  # a chunk leaves when its last byte has crossed the link
                        link_free = max(link_free, start) + len(piece) / rate
                        await at(link_free)
                    writer.write(piece)
                    await writer.drain()
                origin.bytes_sent += length
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


class MemoryOrigin:
    """objects: {"bucket/key": bytes}; files: {"bucket/key": path}, read at once (see the module comment)."""

    def __init__(self, objects=None, files=None, latency_ms=0.0, bandwidth_mbps=0.0):
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.objects = dict(objects or {})
        for k, p in (files or {}).items():
            with open(p, "rb") as f:
                self.objects[k] = f.read()
        self.etags = {k: '"' + hashlib.md5(v).hexdigest() + '"' for k, v in self.objects.items()}
        self.requests = 0
        self.bytes_sent = 0
        self.port = None
        self._loop = None
        self._thread = None
        self._server = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    async def _boot(self, ready):
        self._server = await asyncio.start_server(lambda r, w: _serve_conn(self, r, w), "127.0.0.1", 0,
                                                  backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]
        ready()

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._boot(ready.set))
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self):
        if self._loop:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description="in-memory S3-like origin for benchmarks")
    ap.add_argument("--key", default="bkt/idx/data")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", action="append", default=[], metavar="BUCKET=FOLDER",
                    help="serve every file under FOLDER as BUCKET/<relative path> (instead of --key)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="throttling mode: see the module comment")
    ap.add_argument("--bandwidth-mbps", type=float, default=0.0, help="throttling mode: MB/s per connection")
    a = ap.parse_args()
    if a.dir:
        files = {}
        for spec in a.dir:
            bucket, sep, folder = spec.partition("=")
            if not sep or not bucket or not os.path.isdir(folder):
                ap.error(f"--dir wants BUCKET=FOLDER with an existing folder, got {spec!r}")
            files.update(folder_files(bucket, folder))
        o = MemoryOrigin(files=files, latency_ms=a.latency_ms, bandwidth_mbps=a.bandwidth_mbps)
    else:
        o = MemoryOrigin({a.key: random.Random(a.seed).randbytes(a.size_mib * 1024 * 1024)},
                         latency_ms=a.latency_ms, bandwidth_mbps=a.bandwidth_mbps)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(o._boot(lambda: print(f"listening on 127.0.0.1:{o.port}", flush=True)))
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
