"""Shared HTTP plumbing for the local Lambda tools (emulator.py, http_front.py).

Standard library only. What lives here:

- ``BoundedHandler``: a ``BaseHTTPRequestHandler`` for HTTP/1.1 keep-alive servers that reads request
  bodies with a hard size limit (Content-Length or chunked transfer encoding), answers
  ``Expect: 100-continue`` only once the body is known to fit (so an oversized upload is refused
  before it is sent, as curl expects), disables Nagle on every connection, and sends complete
  responses with a Content-Length.
- ``LocalServer``: a threaded HTTP server bound to 127.0.0.1 (port 0 picks a free port).

Invariants: a handler never reads more than ``limit`` bytes of a body into memory; an oversized body
is either drained (up to ``DISCARD_CAP`` bytes, so the connection can be reused) or the connection is
closed; malformed framing closes the connection.
"""

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Oversized bodies up to this many bytes are read and thrown away so the client sees the error
# response on a healthy connection; beyond it the connection is closed after the response.
DISCARD_CAP = 64 * 1024 * 1024
# Longest chunk-size or trailer line accepted in a chunked body.
MAX_CHUNK_LINE = 4096
_COPY_BLOCK = 256 * 1024


class BodyTooLarge(Exception):
    """The request body exceeds the limit. ``size`` is the declared or counted size in bytes (exact
    when ``exact`` is true, otherwise a lower bound)."""

    def __init__(self, size, exact):
        super().__init__(f"body of {size} bytes exceeds the limit")
        self.size = size
        self.exact = exact


class BodyError(Exception):
    """The request body is malformed (bad Content-Length, bad chunk framing, truncated)."""


class BoundedHandler(BaseHTTPRequestHandler):
    """Base request handler: HTTP/1.1, bounded body reads, JSON helpers. Subclasses implement
    ``do_<METHOD>``. Not thread-shared: one instance per connection, as in http.server."""

    protocol_version = "HTTP/1.1"
    server_version = "s3vec-local"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def parse_request(self):
        self._expect_100 = False
        return super().parse_request()

    def handle_expect_100(self):
        # Defer the interim response until read_body() knows the body fits.
        self._expect_100 = True
        return True

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # access logging is off; servers log what matters
        pass

    def _send_continue(self):
        if self._expect_100:
            self._expect_100 = False
            self.send_response_only(100)
            self.end_headers()

    def _discard(self, count):
        while count > 0:
            block = self.rfile.read(min(count, _COPY_BLOCK))
            if not block:
                raise BodyError("truncated body")
            count -= len(block)

    def read_body(self, limit):
        """Return the request body (bytes, b"" when there is none). Raises BodyTooLarge when it
        exceeds ``limit`` bytes, BodyError when the framing is invalid (the connection is then
        marked for closing)."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None and te.strip().lower() != "identity":
            if te.strip().lower() != "chunked":
                self.close_connection = True
                raise BodyError(f"unsupported Transfer-Encoding: {te}")
            self._send_continue()
            return self._read_chunked(limit)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl.strip())
        except ValueError:
            n = -1
        if n < 0 or "," in cl:
            self.close_connection = True
            raise BodyError(f"invalid Content-Length: {cl!r}")
        if n > limit:
            if self._expect_100 or n > DISCARD_CAP:
                # The client has not sent the body (it waits for 100) or it is too big to drain.
                self.close_connection = True
            else:
                try:
                    self._discard(n)
                except BodyError:
                    self.close_connection = True
            raise BodyTooLarge(n, True)
        self._send_continue()
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            self.close_connection = True
            raise BodyError("truncated body")
        return data

    def _read_line(self):
        line = self.rfile.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
            self.close_connection = True
            raise BodyError("bad chunk framing")
        return line

    def _read_chunked(self, limit):
        parts = []
        total = 0
        while True:
            line = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                size = -1
            if size < 0:
                self.close_connection = True
                raise BodyError("bad chunk size")
            if size == 0:
                break
            if total + size > limit:
                total += size
                if total > DISCARD_CAP:
                    self.close_connection = True
                    raise BodyTooLarge(total, False)
                self._discard(size)
                parts = None
            else:
                total += size
                if parts is not None:
                    chunk = self.rfile.read(size)
                    if len(chunk) != size:
                        self.close_connection = True
                        raise BodyError("truncated chunk")
                    parts.append(chunk)
                else:
                    self._discard(size)
            if self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise BodyError("bad chunk terminator")
        while self._read_line() not in (b"\r\n", b"\n"):  # trailers, ignored
            pass
        if parts is None:
            raise BodyTooLarge(total, True)
        return b"".join(parts)

    def send_bytes(self, status, body, headers=(), content_type=None):
        """Send a complete response. ``headers`` is an iterable of (name, value); a HEAD request
        gets the headers only."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send_bytes(status, json.dumps(obj).encode(), headers, "application/json")

    def peer_closed(self):
        """True when the client has closed its end (readable with no data). Only meaningful while
        the client is waiting for our response and has nothing more to send."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


class LocalServer(ThreadingHTTPServer):
    """Threaded HTTP server on 127.0.0.1; one daemon thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, handler_class):
        super().__init__(("127.0.0.1", port), handler_class)
        self.port = self.server_address[1]
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"http-{self.port}", daemon=True)
        self._thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()
