"""FaultProxy: an HTTP/1.1 proxy that injects S3 faults and models S3 latency and bandwidth.

    proxy = FaultProxy(upstream_port=moto.port).start()       # listens on 127.0.0.1:proxy.port
    proxy.set_faults([Fault("503", first=2, methods="GET")])   # the first 2 GETs get 503 SlowDown
    ...point the client at proxy.endpoint...
    proxy.log        # one dict per request: method, path, range, fault, status
    proxy.connections  # client connections accepted so far
    proxy.stop()     # or use it as a context manager

Fault kinds (the request is forwarded to the upstream unless the kind says otherwise):
    "503"       answer 503 SlowDown (XML body) without forwarding
    "500"       answer 500 InternalError without forwarding
    "reset"     send the headers and half the body, then reset the connection (RST); a response
                without a body is not sent at all (the request took effect, its answer is lost)
    "truncate"  send the headers (full Content-Length) and half the body, then close (FIN); same rule
    "delay"     hold the response's first byte for delay_ms
    "flip"      flip one bit of the body's middle byte (2xx with a body only)
    "drop"      close the connection without answering
    "error"     answer `status` with S3 error `code` (e.g. 409 ConditionalRequestConflict) without forwarding
    "badrange"  forward, but shift the Content-Range of a 206 answer by one byte (a wrong range)
Which requests a rule hits: of the requests that pass its filters (methods, ranged, path_contains,
query_contains), `first=N` hits the first N, `every=N` hits every Nth (N, 2N, ...), `nth=[...]` hits
those 1-based positions, none of them hits all. Rules are tried in order; the first hit wins.

Throttling (the S3 model for benchmarks): latency_ms is added before each response's first byte;
bandwidth_mbps caps each connection's response body rate (MB/s, 10^6 bytes). Both apply to every
request, faults or not. Upstream time (moto's own) is included in what clients see.

Command line: python3 -m s3lib.proxy --upstream 127.0.0.1:PORT [--port N] [--latency-ms 20]
[--bandwidth-mbps 80]  prints "listening on 127.0.0.1:PORT" and serves until interrupted."""
import argparse
import http.client
import socket
import socketserver
import struct
import threading
import time

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
KINDS = {"503", "500", "reset", "truncate", "delay", "flip", "drop", "error", "badrange"}
MAX_HEADER_BYTES = 64 * 1024

ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{msg}</Message>'
             "<RequestId>fault-proxy</RequestId></Error>")


class Fault:
    """One fault rule (see the module comment)."""

    def __init__(self, kind, first=None, every=None, nth=None, methods=None, ranged=None, path_contains=None,
                 query_contains=None, delay_ms=2000, status=409, code="ConditionalRequestConflict"):
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.kind = kind
        self.first, self.every, self.nth = first, every, set(nth or ())
        self.methods = (methods,) if isinstance(methods, str) else methods
        self.ranged, self.path_contains, self.query_contains = ranged, path_contains, query_contains
        self.delay_ms = delay_ms
        self.status, self.code = status, code
        self.seen = 0  # matching requests so far
        self.hits = 0  # times applied

    def matches(self, method, path, query, headers):
        if self.methods and method not in self.methods:
            return False
        if self.ranged is not None and (("range" in headers) != self.ranged):
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        if self.query_contains and self.query_contains not in query:
            return False
        return True

    def decide(self):
        """Counts one matching request; True when this one gets the fault."""
        self.seen += 1
        n = self.seen
        if self.first is not None:
            hit = n <= self.first
        elif self.every is not None:
            hit = n % self.every == 0
        elif self.nth:
            hit = n in self.nth
        else:
            hit = True
        self.hits += hit
        return hit


class _Closed(Exception):
    pass


class _Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.proxy = self.server.proxy
        self.proxy._track(self.request, True)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.request.makefile("rb")
        self.upstream = None

    def finish(self):
        self.proxy._track(self.request, False)
        try:
            self.rfile.close()
        except OSError:
            pass
        if self.upstream:
            self.upstream.close()

    def handle(self):
        try:
            while not self.proxy._stopping:
                if not self._one_request():
                    break
        except (_Closed, OSError, http.client.HTTPException):
            pass

    def _read_request(self):
        line = self.rfile.readline(MAX_HEADER_BYTES)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise _Closed()
        headers, total = [], 0
        while True:
            h = self.rfile.readline(MAX_HEADER_BYTES)
            total += len(h)
            if not h or total > MAX_HEADER_BYTES:
                raise _Closed()
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {k.lower(): v for k, v in headers}
        if lower.get("expect", "").lower() == "100-continue":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        n = int(lower.get("content-length", "0") or 0)
        if n:
            body = self.rfile.read(n)
            if len(body) != n:
                raise _Closed()
        return parts[0], parts[1], headers, lower, body

    def _forward(self, method, target, headers, body):
        for attempt in range(2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port,
                                                           timeout=120)
            try:
                self.upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    if k.lower() not in HOP_BY_HOP and k.lower() != "expect":
                        self.upstream.putheader(k, v)
                self.upstream.endheaders(body if body else None)
                resp = self.upstream.getresponse()
                data = resp.read()
                out_headers = resp.getheaders()
                if resp.will_close:
                    self.upstream.close()
                    self.upstream = None
                return resp.status, resp.reason, out_headers, data
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    raise
        raise _Closed()

    def _send(self, data):
        """Sends data paced to the bandwidth cap."""
        rate = self.proxy.bandwidth_bps
        if not rate:
            self.request.sendall(data)
            return
        chunk = 64 * 1024
        start = time.monotonic()
        sent = 0
        view = memoryview(data)
        while sent < len(data):
            piece = view[sent:sent + chunk]
            self.request.sendall(piece)
            sent += len(piece)
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def _one_request(self):
        req = self._read_request()
        if req is None:
            return False
        method, target, headers, lower, body = req
        path, _, query = target.partition("?")
        fault = self.proxy._pick(method, path, query, lower)
        kind = fault.kind if fault else None
        entry = {"method": method, "path": path, "query": query, "range": lower.get("range"), "fault": kind}
        if kind == "drop":
            self.proxy._record(entry, None)
            self._hard_close(reset=False)
            return False
        if kind in ("503", "500", "error"):
            if kind == "503":
                code, reason, ecode, msg = 503, "Slow Down", "SlowDown", "Please reduce your request rate."
            elif kind == "500":
                code, reason, ecode, msg = (500, "Internal Server Error", "InternalError",
                                            "We encountered an internal error. Please try again.")
            else:
                code, reason, ecode, msg = fault.status, "Injected", fault.code, "Injected by the fault proxy."
            status, out_headers, data = code, [("Content-Type", "application/xml")], \
                ERROR_XML.format(code=ecode, msg=msg).encode()
        else:
            status, reason, out_headers, data = self._forward(method, target, headers, body)
        is_head = method == "HEAD"
        flipped = None
        if kind == "flip" and 200 <= status < 300 and data:
            data = bytearray(data)
            flipped = len(data) // 2
            data[flipped] ^= 0x01
            data = bytes(data)
        entry["status"] = status
        entry["flipped_at"] = flipped
        self.proxy._record(entry, fault)
        head = [f"HTTP/1.1 {status} {reason}\r\n"]
        have_cl = False
        for k, v in out_headers:
            kl = k.lower()
            if kl in HOP_BY_HOP:
                continue
            if kl == "content-range" and kind == "badrange" and status == 206:
                unit, _, rest = v.partition(" ")
                span, _, total = rest.partition("/")
                a, _, b = span.partition("-")
                v = f"{unit} {int(a) + 1}-{int(b) + 1}/{total}"
            if kl == "content-length":
                have_cl = True
                if not is_head:
                    v = str(len(data))
            head.append(f"{k}: {v}\r\n")
        if not have_cl and not is_head:
            head.append(f"Content-Length: {len(data)}\r\n")
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        if self.proxy.latency_ms:
            time.sleep(self.proxy.latency_ms / 1000.0)
        if kind == "delay":
            time.sleep(fault.delay_ms / 1000.0)
        if is_head:
            data = b""
        if kind in ("reset", "truncate"):
            if data:  # half the body, then the connection ends; with no body, the answer is lost
                self.request.sendall(head_bytes)
                self._send(data[: len(data) // 2])
            self._hard_close(reset=kind == "reset")
            return False
        self._send(head_bytes + data if not self.proxy.bandwidth_bps else head_bytes)
        if self.proxy.bandwidth_bps and data:
            self._send(data)
        return True

    def _hard_close(self, reset):
        try:
            if reset:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.request.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", port=0, latency_ms=0, bandwidth_mbps=0):
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.latency_ms = latency_ms
        self.bandwidth_bps = bandwidth_mbps * 1e6 if bandwidth_mbps else 0
        self._port = port
        self._faults = []
        self._lock = threading.Lock()
        self._conns = set()
        self._stopping = False
        self.log = []
        self.connections = 0  # client connections accepted since start (for connection-reuse checks)
        self.server = None
        self.thread = None

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.server = _Server(("127.0.0.1", self._port), _Handler)
        self.server.proxy = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def set_faults(self, faults):
        """Replaces the rules (and clears the log)."""
        with self._lock:
            self._faults = list(faults)
            self.log = []

    def clear_faults(self):
        self.set_faults([])

    def hits(self):
        with self._lock:
            return sum(f.hits for f in self._faults)

    def _pick(self, method, path, query, headers):
        with self._lock:
            for f in self._faults:
                if f.matches(method, path, query, headers) and f.decide():
                    return f
        return None

    def _record(self, entry, fault):
        with self._lock:
            self.log.append(entry)

    def _track(self, sock, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)
            self.connections += add

    def stop(self):
        if not self.server:
            return
        self._stopping = True
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)
        self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description="S3 fault-injecting / throttling proxy")
    ap.add_argument("--upstream", required=True, help="host:port of the S3 endpoint (e.g. moto)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--bandwidth-mbps", type=float, default=0, help="per-connection cap, MB/s")
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    p = FaultProxy(int(port), host or "127.0.0.1", a.port, a.latency_ms, a.bandwidth_mbps).start()
    print(f"listening on 127.0.0.1:{p.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        p.stop()


if __name__ == "__main__":
    main()
