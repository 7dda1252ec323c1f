"""MemoryOrigin: a minimal, fast S3-compatible origin for benchmarks (not a test of S3 semantics).

    with MemoryOrigin({"bkt/idx/data": b"..."}) as o:   # path-style "bucket/key" -> bytes
        o.endpoint                                     # http://127.0.0.1:PORT
    python3 -m s3lib.origin --key bkt/idx/data --size-mib 64 --seed 1   # own process; prints the port

Serves GET (whole object or one "Range: bytes=a-b") and HEAD of in-memory objects over HTTP/1.1
keep-alive with asyncio (one thread), ignoring authentication, so that a benchmark measures the client
and the modelled network (put a ThrottleRelay in front) rather than moto's own cost (moto reads a whole
object to serve a range). 404 for unknown keys, 416 for unsatisfiable ranges. The command-line form
fills the object with random.Random(seed).randbytes(size), so a benchmark can rebuild the bytes."""
import argparse
import asyncio
import hashlib
import random
import threading


async def _serve_conn(objects, etags, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
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
            key = target.split("?", 1)[0].lstrip("/")
            obj = objects.get(key)
            status, extra, body = 200, [], b""
            if obj is None:
                status, body = 404, b"<Error><Code>NoSuchKey</Code><Message>not found</Message></Error>"
            else:
                extra.append(("ETag", etags[key]))
                rng = headers.get("range")
                if rng:
                    a, _, b = rng.partition("=")[2].partition("-")
                    a, b = int(a), min(int(b), len(obj) - 1)
                    if a >= len(obj):
                        status, body = 416, b"<Error><Code>InvalidRange</Code><Message>bad</Message></Error>"
                    else:
                        status, body = 206, memoryview(obj)[a:b + 1]
                        extra.append(("Content-Range", f"bytes {a}-{b}/{len(obj)}"))
                else:
                    body = memoryview(obj)
            reason = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}[status]
            out = [f"HTTP/1.1 {status} {reason}\r\n"] + [f"{k}: {v}\r\n" for k, v in extra]
            out.append(f"Content-Length: {len(body)}\r\n\r\n")
            writer.write("".join(out).encode("latin-1"))
            if method != "HEAD" and len(body):
                writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


class MemoryOrigin:
    def __init__(self, objects):
        self.objects = dict(objects)
        self.etags = {k: '"' + hashlib.md5(v).hexdigest() + '"' for k, v in self.objects.items()}
        self.port = None
        self._loop = None
        self._thread = None
        self._server = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()

            async def boot():
                self._server = await asyncio.start_server(
                    lambda r, w: _serve_conn(self.objects, self.etags, r, w), "127.0.0.1", 0, backlog=256)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            self._loop.run_until_complete(boot())
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
    a = ap.parse_args()
    o = MemoryOrigin({a.key: random.Random(a.seed).randbytes(a.size_mib * 1024 * 1024)}).start()
    print(f"listening on 127.0.0.1:{o.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
