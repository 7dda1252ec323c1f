"""Shared HTTP plumbing for the local Lambda tools (emulator.py, http_front.py).

Standard library only. What lives here:

- ``BoundedHandler``: a ``BaseHTTPRequestHandler`` for HTTP/1.1 keep-alive servers that reads request
  bodies with a hard size limit (Content-Length or chunked transfer encoding), answers
  ``Expect: 100-continue`` only once the body is known to fit (so an oversized upload is refused
  before it is sent, as curl expects), disables Nagle on every connection, and sends complete
  responses with a Content-Length.
- ``LocalServer``: a threaded HTTP server bound to 127.0.0.1 (port 0 picks a free port); one thread per
  connection (http_front.py).
- ``LoopServer``: the same HTTP/1.1 rules (bounded bodies, chunked, ``Expect: 100-continue``,
  keep-alive, TCP_NODELAY) served by ONE selector thread for any number of listening ports, with no
  thread per connection or per request (emulator.py). A request is routed as soon as its head is
  parsed (the route picks the body limit or answers at once), its body is read by the loop, and its
  handler runs on the loop thread; a handler may keep the request and answer it later from any thread
  (``Request.respond`` is thread-safe and writes straight to the socket when nothing is queued, so a
  waiting GET is answered without waking the loop).

Invariants: a handler never reads more than ``limit`` bytes of a body into memory; an oversized body
is either drained (up to ``DISCARD_CAP`` bytes, so the connection can be reused) or the connection is
closed; malformed framing closes the connection. LoopServer: a request head is at most
``MAX_HEAD`` bytes and ``MAX_HEADERS`` lines; one request per connection is in progress at a time
(pipelined requests wait in the connection's buffer, at most ``MAX_PENDING_INPUT`` bytes).
"""

import collections
import email.utils
import json
import os
import select
import selectors
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Oversized bodies up to this many bytes are read and thrown away so the client sees the error
# response on a healthy connection; beyond it the connection is closed after the response.
DISCARD_CAP = 64 * 1024 * 1024
# Longest chunk-size or trailer line accepted in a chunked body.
MAX_CHUNK_LINE = 4096
_COPY_BLOCK = 256 * 1024
# LoopServer limits: request line + headers, number of header lines, bytes buffered beyond the
# request in progress (a client that pipelines more than this is disconnected).
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
MAX_PENDING_INPUT = 8 * 1024 * 1024
_RECV_SIZE = 64 * 1024  # below malloc's mmap threshold: no mmap/munmap per read


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



# ----------------------------------------------------------------------------------------------------
# LoopServer: one selector thread, no thread per connection or request.

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_date_cache = [0, ""]


def _http_date():
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0], _date_cache[1] = now, email.utils.formatdate(now, usegmt=True)
    return _date_cache[1]


class Headers:
    """Request headers: case-insensitive ``get`` returning the first value (as http.client's)."""

    __slots__ = ("_items", "_first")

    def __init__(self, items, first=None):
        self._items = items
        if first is None:
            first = {}
            for name, value in items:
                first.setdefault(name.lower(), value)
        self._first = first

    def get(self, name, default=None):
        return self._first.get(name.lower(), default)

    def __contains__(self, name):
        return name.lower() in self._first

    def items(self):
        return list(self._items)


class Request:
    """One HTTP request on a LoopServer connection.

    Set by the server: ``method``, ``target`` (as sent), ``path`` and ``query`` (split at the first
    '?'), ``version``, ``headers`` (Headers), ``context`` (the listener's), ``close_connection`` (the
    connection closes after the response: the client asked for it, or the framing is unusable), and,
    once the body is read, ``body`` (bytes) or instead ``too_large`` (BodyTooLarge) or ``body_error``
    (BodyError). A handler answers exactly once with ``respond``, from any thread; until then the
    connection reads nothing else. ``drop_on_eof``: set by a handler that parks the request (a long
    poll), so that a client which disconnects closes the connection at once (``peer_gone`` then
    turns true) instead of waiting for the answer. Clock stamps (time.perf_counter seconds):
    ``t_received``, when the read that completed the request returned (before any parsing);
    ``t_sent``, set by ``respond`` just before the first byte of the answer is written."""

    __slots__ = ("conn", "method", "target", "path", "query", "version", "headers", "context", "close_connection",
                 "expect_100", "body", "too_large", "body_error", "responded", "drop_on_eof", "t_received", "t_sent")

    def __init__(self, conn, method, target, version, headers, close_connection, expect_100):
        self.conn = conn
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.version = version
        self.headers = headers
        self.context = conn.context
        self.close_connection = close_connection
        self.expect_100 = expect_100
        self.body = None
        self.too_large = None
        self.body_error = None
        self.responded = False
        self.drop_on_eof = False
        self.t_received = conn.t_in
        self.t_sent = None

    @property
    def peer_gone(self):
        """True once the connection is closed (client gone, or a failed write)."""
        return self.conn.closed

    def respond(self, status, body=b"", headers=(), content_type=None, close=False):
        """Send the complete response; thread-safe, later calls are ignored. ``headers`` is an
        iterable of (name, value); Content-Length is added; ``close`` (or ``close_connection``) adds
        ``Connection: close`` and closes the connection once the response is out. A HEAD request gets
        the head only. The bytes go straight to the socket when nothing is queued before them (no
        loop wake-up); the rest is written by the loop. Returns False when the connection is gone."""
        close = close or self.close_connection
        lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, '')}", "Server: s3vec-local", "Date: " + _http_date()]
        if content_type is not None:
            lines.append("Content-Type: " + content_type)
        for name, value in headers:
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
        lines.append("\r\n")
        parts = ["\r\n".join(lines).encode("utf-8")]
        if body and self.method != "HEAD":
            parts.append(body)
        conn = self.conn
        with conn.lock:
            if self.responded:
                return False
            self.responded = True
            if close:
                conn.close_after = True
            self.t_sent = time.perf_counter()
            conn.server._send_locked(conn, parts, True)
            return not conn.closed

    def respond_json(self, status, obj, headers=(), close=False):
        return self.respond(status, json.dumps(obj).encode(), headers, "application/json", close)

    def abort(self):
        """Close the connection without an answer (thread-safe; nothing happens once answered)."""
        conn = self.conn
        with conn.lock:
            if not self.responded:
                self.responded = True
                conn.server._fail_locked(conn)


class _BodyReader:
    """Incremental body reader of one request: a Content-Length body (kept or discarded) or a
    chunked one (kept until it exceeds the limit, then discarded up to DISCARD_CAP)."""

    __slots__ = ("req", "handler", "limit", "chunked", "remaining", "discard", "parts", "total", "state")

    def __init__(self, req, handler, limit, chunked, length=0, discard=False):
        self.req = req
        self.handler = handler
        self.limit = limit
        self.chunked = chunked
        self.remaining = length
        self.discard = discard
        self.parts = []
        self.total = 0
        self.state = "size" if chunked else "data"

    def _take(self, buf):
        take = min(self.remaining, len(buf))
        if take:
            if not self.discard:
                self.parts.append(bytes(buf[:take]))
            del buf[:take]
            self.remaining -= take
        return self.remaining == 0

    def feed(self, buf):
        """Consume what it can of ``buf`` (a bytearray, consumed in place). True when the request is
        ready for its handler: body complete, or req.body_error / req.too_large set."""
        if not self.chunked:
            if not self._take(buf):
                return False
            if not self.discard:
                self.req.body = b"".join(self.parts)
            self.req.t_received = self.req.conn.t_in
            return True
        while True:
            if self.state == "data":
                if not self._take(buf):
                    return False
                self.state = "crlf"
            elif self.state == "crlf":
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    return self._fail("bad chunk terminator")
                del buf[:2]
                self.state = "size"
            else:  # "size" or "trailer": one line of at most MAX_CHUNK_LINE bytes
                end = buf.find(b"\n", 0, MAX_CHUNK_LINE)
                if end < 0:
                    return self._fail("bad chunk framing") if len(buf) >= MAX_CHUNK_LINE else False
                line = bytes(buf[:end + 1])
                del buf[:end + 1]
                if self.state == "trailer":
                    if line in (b"\r\n", b"\n"):
                        self.req.t_received = self.req.conn.t_in
                        if self.discard:
                            self.req.too_large = BodyTooLarge(self.total, True)
                        else:
                            self.req.body = b"".join(self.parts)
                        return True
                    continue  # trailers are ignored
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    size = -1
                if size < 0:
                    return self._fail("bad chunk size")
                if size == 0:
                    self.state = "trailer"
                    continue
                self.total += size
                if self.total > self.limit:
                    if self.total > DISCARD_CAP:
                        self.req.close_connection = True
                        self.req.too_large = BodyTooLarge(self.total, False)
                        return True
                    self.discard = True
                    self.parts = []
                self.remaining = size
                self.state = "data"

    def _fail(self, message):
        self.req.close_connection = True
        self.req.body_error = BodyError(message)
        return True


class _Connection:
    """Server side of one TCP connection. ``lock`` guards what handler threads share with the loop:
    busy, out, pending_end, close_after, closed, want_write and appends to inbuf while busy. The
    rest (reader, eof, events) is the loop thread's."""

    __slots__ = ("server", "sock", "fd", "route", "context", "lock", "inbuf", "out", "pending_end", "busy",
                 "reader", "close_after", "closed", "eof", "want_write", "events", "t_in")

    def __init__(self, server, sock, route, context):
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.route = route
        self.context = context
        self.lock = threading.Lock()
        self.inbuf = bytearray()
        self.out = collections.deque()  # memoryviews not yet written
        self.pending_end = False  # the last of `out` ends a response
        self.busy = None  # the request in progress (head parsed) until its response is written
        self.reader = None  # _BodyReader while its body is read
        self.close_after = False
        self.closed = False
        self.eof = False
        self.want_write = False
        self.events = selectors.EVENT_READ
        self.t_in = 0.0  # perf_counter when the last read returned


class LoopServer:
    """HTTP/1.1 servers on 127.0.0.1 driven by one selector thread.

    ``listen(port, route, context)`` adds a listening socket (port 0 picks a free one) and returns its
    port. ``route(req)`` runs on the loop thread once a request's head is parsed and returns either
    ``(limit, handler)``, to have the body read (at most ``limit`` bytes kept) and then
    ``handler(req)`` called on the loop thread, or None when it has answered the request itself
    (with close=True when a body was announced, since it is not read). Route and handlers must not
    block: they answer at once, or keep the request and answer later from any thread.
    ``call_soon(fn, *args)`` runs fn on the loop thread (thread-safe). ``start()``, ``stop()``.
    Locks: a handler may hold its own locks while calling ``respond``; the server never calls a route
    or handler while holding a connection lock."""

    def __init__(self, name="http-loop"):
        self.name = name
        self.sel = selectors.DefaultSelector()
        self._calls = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._listeners = []
        self._conns = {}
        self._thread = None
        self._ident = None
        self._stopping = False
        self._flush_deadline = 0.0

    # ----- public -----

    def listen(self, port, route, context=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
        self._listeners.append(sock)
        self.sel.register(sock, selectors.EVENT_READ, (route, context))
        return sock.getsockname()[1]

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, flush_s=1.0):
        """Stop accepting, give queued responses up to ``flush_s`` seconds to go out, close all."""
        if self._thread is None:
            return
        self._flush_deadline = time.monotonic() + flush_s
        self._stopping = True
        self._wake()
        self._thread.join(flush_s + 5)
        self._thread = None

    def call_soon(self, fn, *args):
        self._calls.append((fn, args))
        if threading.get_ident() != self._ident:
            self._wake()

    # ----- the loop -----

    def _wake(self):
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    def _run(self):
        self._ident = threading.get_ident()
        sel = self.sel
        calls = self._calls
        while not (self._stopping and self._stop_step()):
            timeout = 0 if calls else (0.05 if self._stopping else None)
            for key, mask in sel.select(timeout):
                data = key.data
                if isinstance(data, _Connection):
                    if mask & selectors.EVENT_WRITE:
                        self._on_write(data)
                    if mask & selectors.EVENT_READ and not data.closed:
                        self._on_read(data)
                elif data is None:
                    self._wake_pending = False
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                else:
                    self._accept(key.fileobj, data)
            while calls:
                fn, args = calls.popleft()
                try:
                    fn(*args)
                except Exception:  # a bug in one callback must not stop the server
                    traceback.print_exc(file=sys.stderr)
        for conn in list(self._conns.values()):
            self._close(conn)
        sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _stop_step(self):
        """On stop: close the listeners; True once queued responses are out or time is up."""
        for sock in self._listeners:
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self._listeners = []
        if time.monotonic() > self._flush_deadline:
            return True
        return not self._calls and not any(c.out for c in self._conns.values())

    def _accept(self, lsock, data):
        route, context = data
        for _ in range(64):
            try:
                sock, _ = lsock.accept()
            except OSError:  # BlockingIOError (nothing left), or a connection reset before accept
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            conn = _Connection(self, sock, route, context)
            self._conns[conn.fd] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _on_read(self, conn):
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.t_in = time.perf_counter()
        if not data:
            self._on_eof(conn)
            return
        with conn.lock:
            conn.inbuf += data
            handled = conn.busy is not None and conn.reader is None
            overflow = handled and len(conn.inbuf) > MAX_PENDING_INPUT
        if overflow:
            self._close(conn)
        elif not handled:
            self._process(conn)

    def _on_eof(self, conn):
        conn.eof = True
        with conn.lock:
            busy = conn.busy
            keep = busy is not None and conn.reader is None and not busy.drop_on_eof
            if keep:  # half-closed client: answer it, then close
                conn.close_after = True
        if keep:
            self._update_events(conn)
        else:
            self._close(conn)

    def _on_write(self, conn):
        with conn.lock:
            out = conn.out
            while out:
                try:
                    n = conn.sock.send(out[0])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._fail_locked(conn)
                    return
                if n < len(out[0]):
                    out[0] = out[0][n:]
                    break
                out.popleft()
            if out:
                return
            conn.want_write = False
            if conn.pending_end:
                conn.pending_end = False
                self._response_done_locked(conn)
        self._update_events(conn)

    def _update_events(self, conn):
        """(loop thread) Register for what the connection waits for: input unless EOF, output when queued."""
        if conn.closed or self._conns.get(conn.fd) is not conn:
            return
        events = (0 if conn.eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if conn.want_write else 0)
        if events == conn.events:
            return
        if conn.events == 0:
            self.sel.register(conn.sock, events, conn)
        elif events == 0:
            self.sel.unregister(conn.sock)
        else:
            self.sel.modify(conn.sock, events, conn)
        conn.events = events

    def _close(self, conn):
        """(loop thread) Close the connection; idempotent."""
        with conn.lock:
            conn.closed = True
            conn.out.clear()
        if self._conns.get(conn.fd) is not conn:
            return
        del self._conns[conn.fd]
        if conn.events:
            try:
                self.sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.sock.close()

    # ----- output (any thread, connection lock held) -----

    def _send_locked(self, conn, parts, end_of_response):
        if conn.closed:
            return
        if not conn.out:
            try:
                n = conn.sock.sendmsg(parts)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._fail_locked(conn)
                return
            rest = []
            for p in parts:
                if n >= len(p):
                    n -= len(p)
                else:
                    rest.append(memoryview(p)[n:])
                    n = 0
            parts = rest
        else:
            parts = [memoryview(p) for p in parts]
        if parts:
            conn.out.extend(parts)
            conn.pending_end = conn.pending_end or end_of_response
            if not conn.want_write:
                conn.want_write = True
                self.call_soon(self._update_events, conn)
        elif end_of_response:
            self._response_done_locked(conn)

    def _response_done_locked(self, conn):
        conn.busy = None
        if conn.close_after:
            self.call_soon(self._close, conn)
        elif conn.inbuf or conn.eof:
            self.call_soon(self._process, conn)

    def _fail_locked(self, conn):
        conn.closed = True
        conn.out.clear()
        self.call_soon(self._close, conn)

    def _continue(self, conn, req):
        if req.expect_100:
            req.expect_100 = False
            with conn.lock:
                self._send_locked(conn, [b"HTTP/1.1 100 Continue\r\n\r\n"], False)

    # ----- input (loop thread) -----

    def _process(self, conn):
        """Parse and dispatch what the connection's buffer holds, one request at a time."""
        while not conn.closed:
            reader = conn.reader
            if reader is not None:
                if not reader.feed(conn.inbuf):
                    return
                conn.reader = None
                self._dispatch(reader.handler, reader.req)
                continue
            with conn.lock:
                if conn.busy is not None:
                    return
                idle = not conn.inbuf
            if idle:
                if conn.eof:
                    self._close(conn)
                return
            req = self._parse_head(conn)
            if req is None:
                return
            try:
                routed = conn.route(req)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                req.respond(500, b"", close=True)
                continue
            if routed is not None:
                self._start_body(conn, req, *routed)

    def _dispatch(self, handler, req):
        try:
            handler(req)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            req.respond(500, b"", close=True)

    def _reject(self, conn, status, message):
        req = Request(conn, "GET", "/", "HTTP/1.1", Headers([]), True, False)
        with conn.lock:
            conn.busy = req
        req.respond(status, message.encode(), (), "text/plain", close=True)

    def _parse_head(self, conn):
        """The next request's head from the buffer (the request becomes busy), or None: incomplete,
        or malformed (answered with 4xx, connection closing)."""
        buf = conn.inbuf
        if buf[0] in (10, 13):  # empty lines before a request are allowed
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                del buf[:2 if buf[:1] == b"\r" else 1]
            if not buf:
                return None
        end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end >= 0:
            lines = buf[:end].decode("latin-1").split("\r\n")
            del buf[:end + 4]
        else:  # bare LF line ends (tolerated, as http.server does)
            ends = [i for i in (buf.find(b"\n\r\n", 0, MAX_HEAD + 3), buf.find(b"\n\n", 0, MAX_HEAD + 2)) if i >= 0]
            if not ends:
                if len(buf) > MAX_HEAD:
                    self._reject(conn, 431, "Request header fields too large")
                return None
            end = min(ends)
            stop = end + (3 if buf[end + 1:end + 2] == b"\r" else 2)
            lines = [line.rstrip("\r") for line in buf[:end].decode("latin-1").split("\n")]
            del buf[:stop]
        words = lines[0].split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self._reject(conn, 400, f"Bad request line {lines[0][:100]!r}")
            return None
        if len(lines) > MAX_HEADERS + 1:
            self._reject(conn, 431, "Too many headers")
            return None
        method, target, version = words
        items = []
        first = {}
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in " \t":  # obsolete line folding
                if not items:
                    self._reject(conn, 400, "Bad header line")
                    return None
                name, value = items[-1]
                items[-1] = (name, value + " " + line.strip())
                if first.get(name.lower()) is value:
                    first[name.lower()] = items[-1][1]
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._reject(conn, 400, "Bad header line")
                return None
            value = value.strip()
            items.append((name, value))
            key = name.lower()
            if key not in first:
                first[key] = value
        headers = Headers(items, first)
        conntype = first.get("connection", "").lower()
        close = conntype == "close" or (version == "HTTP/1.0" and conntype != "keep-alive")
        expect = version != "HTTP/1.0" and first.get("expect", "").lower() == "100-continue"
        req = Request(conn, method, target, version, headers, close, expect)
        with conn.lock:
            conn.busy = req
        return req

    def _start_body(self, conn, req, limit, handler):
        te = req.headers.get("Transfer-Encoding")
        if te is not None and te.strip().lower() != "identity":
            if te.strip().lower() != "chunked":
                req.close_connection = True
                req.body_error = BodyError(f"unsupported Transfer-Encoding: {te}")
                return self._dispatch(handler, req)
            self._continue(conn, req)
            conn.reader = _BodyReader(req, handler, limit, True)
            return None
        cl = req.headers.get("Content-Length")
        if cl is None:
            req.body = b""
            return self._dispatch(handler, req)
        try:
            n = int(cl.strip())
        except ValueError:
            n = -1
        if n < 0 or "," in cl:
            req.close_connection = True
            req.body_error = BodyError(f"invalid Content-Length: {cl!r}")
            return self._dispatch(handler, req)
        if n > limit:
            req.too_large = BodyTooLarge(n, True)
            if req.expect_100 or n > DISCARD_CAP:  # not sent yet (waits for 100), or too big to drain
                req.close_connection = True
                return self._dispatch(handler, req)
            conn.reader = _BodyReader(req, handler, limit, False, n, discard=True)
            return None
        self._continue(conn, req)
        buf = conn.inbuf
        if len(buf) >= n:  # the whole body is here already (the usual case): no reader
            req.body = bytes(buf[:n])
            del buf[:n]
            return self._dispatch(handler, req)
        conn.reader = _BodyReader(req, handler, limit, False, n)
        return None
