"""ThrottleRelay: the S3 network model as a cheap TCP relay (asyncio protocols, one thread), for benchmarks.

    python3 -m s3lib.throttle --upstream 127.0.0.1:PORT --latency-ms 20 --bandwidth-mbps 80
    # prints "listening on 127.0.0.1:PORT"; run it in its own process

    with ThrottleRelay("127.0.0.1:PORT", latency_ms=20, bandwidth_mbps=80) as r:   # in a thread instead
        r.endpoint                                                                # http://127.0.0.1:PORT

The model, per TCP connection (HTTP/1.1 keep-alive, one request at a time, as S3 clients use it):
- latency: bytes the client sends after a pause of more than 2 ms (a new request; not the rest of a
  streamed body) are forwarded latency_ms after they arrived, so each request's answer starts latency_ms
  late. Connection set-up is not delayed.
- bandwidth: bytes back to the client leave through a modelled link of bandwidth_mbps (MB/s, 10^6
  bytes): a chunk that arrives from upstream at time a is handed to the client when its last byte would
  have crossed the link, f = max(a, f_previous) + len / rate. The link never banks credit while idle (a
  response that follows a pause starts from its own arrival time), and timer lateness does not
  accumulate (f comes from the model, not from when the previous chunk was actually written). So a
  response of B bytes completes latency + B / rate after the request at the earliest, like the model.
- 0 disables either part.
It does not parse HTTP, so it costs far less than FaultProxy's throttling mode (which parses and buffers
every response in Python); use FaultProxy when faults are needed, this one to measure. Its own cost
(Python) is visible by running it with --latency-ms 0 --bandwidth-mbps 0.

Memory: at most about HIGH_WATER bytes are queued per direction per connection; beyond that the relay
stops reading from the sender (TCP back-pressure)."""
import argparse
import asyncio
import collections
import threading

NEW_REQUEST_GAP = 0.002  # seconds of client silence that make the next bytes a new request
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024


class _Queue:
    """Ordered (release time, bytes) items written to a transport when due; one timer at a time."""

    def __init__(self, loop, on_low):
        self.loop = loop
        self.items = collections.deque()
        self.size = 0
        self.timer = None
        self.dst = None  # transport, None until connected
        self.on_low = on_low  # called when the queue drains below LOW_WATER after being above HIGH_WATER
        self.high = False
        self.eof = False  # close dst once drained

    def push(self, when, data):
        self.items.append((when, data))
        self.size += len(data)
        if self.size > HIGH_WATER:
            self.high = True
        self.flush()

    def flush(self):
        self.timer = None
        if self.dst is None or self.dst.is_closing():
            return
        now = self.loop.time()
        while self.items and self.items[0][0] <= now + 0.0002:
            _, data = self.items.popleft()
            self.size -= len(data)
            self.dst.write(data)
        if self.high and self.size < LOW_WATER:
            self.high = False
            self.on_low()
        if self.items:
            self.timer = self.loop.call_at(self.items[0][0], self.flush)
        elif self.eof:
            self.dst.close()

    def close_when_drained(self):
        self.eof = True
        if not self.items and self.dst is not None:
            self.dst.close()

    def cancel(self):
        if self.timer:
            self.timer.cancel()
            self.timer = None
        self.items.clear()
        self.size = 0


class _Upstream(asyncio.Protocol):
    def __init__(self, conn):
        self.conn = conn

    def connection_made(self, transport):
        self.conn.upstream_made(transport)

    def data_received(self, data):
        self.conn.from_upstream(data)

    def eof_received(self):
        self.conn.down.close_when_drained()
        return True

    def connection_lost(self, exc):
        self.conn.down.close_when_drained()

    def pause_writing(self):
        self.conn.client.pause_reading()

    def resume_writing(self):
        if not self.conn.up.high:
            self.conn.client.resume_reading()


class _Client(asyncio.Protocol):
    """One accepted client connection and its upstream connection."""

    def __init__(self, upstream, latency, rate):
        self.upstream_addr = upstream
        self.latency = latency
        self.rate = rate
        self.client = None
        self.upstream = None
        self.last_in = -1.0
        self.up_release = 0.0
        self.down_free = 0.0
        self.closed = False

    def connection_made(self, transport):
        self.client = transport
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.up = _Queue(loop, lambda: self.client.resume_reading())
        self.down = _Queue(loop, lambda: self.upstream and self.upstream.resume_reading())
        self.down.dst = transport
        host, port = self.upstream_addr
        self.connecting = loop.create_task(loop.create_connection(lambda: _Upstream(self), host, port))
        self.connecting.add_done_callback(self._connected)

    def _connected(self, task):
        if task.cancelled() or task.exception() is not None:
            self.client.close()

    def upstream_made(self, transport):
        self.upstream = transport
        if self.closed:
            transport.close()
            return
        self.up.dst = transport
        self.up.flush()

    def data_received(self, data):
        now = self.loop.time()
        if self.latency and now - self.last_in > NEW_REQUEST_GAP:
            self.up_release = max(self.up_release, now + self.latency)
        else:
            self.up_release = max(self.up_release, now)
        self.last_in = now
        self.up.push(self.up_release, data)
        if self.up.high:
            self.client.pause_reading()

    def from_upstream(self, data):
        now = self.loop.time()
        if self.rate:
            self.down_free = max(self.down_free, now) + len(data) / self.rate
        else:
            self.down_free = now
        self.down.push(self.down_free, data)
        if self.down.high and self.upstream:
            self.upstream.pause_reading()

    def eof_received(self):
        self.up.close_when_drained()
        return True

    def connection_lost(self, exc):
        self.closed = True
        self.down.cancel()
        if self.upstream is not None:
            self.up.close_when_drained()
        else:
            self.connecting.cancel()

    def pause_writing(self):
        if self.upstream:
            self.upstream.pause_reading()

    def resume_writing(self):
        if self.upstream and not self.down.high:
            self.upstream.resume_reading()


async def serve(upstream, port, latency_ms, bandwidth_mbps, ready=None):
    """Runs the relay until cancelled. upstream "host:port"; port 0 = a free port. Prints "listening on
    127.0.0.1:PORT" (flushed) once accepting; when ready (a callable) is given it is called with the port
    instead."""
    host, _, uport = upstream.rpartition(":")
    addr = (host or "127.0.0.1", int(uport))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(addr, latency_ms / 1e3, bandwidth_mbps * 1e6),
                                      "127.0.0.1", port, backlog=256)
    bound = server.sockets[0].getsockname()[1]
    if ready:
        ready(bound)
    else:
        print(f"listening on 127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


class ThrottleRelay:
    """The relay on a thread of this process (for tests; a benchmark should prefer its own process so the
    relay does not share the GIL with the caller). Context manager; endpoint is its http:// URL."""

    def __init__(self, upstream, latency_ms=20.0, bandwidth_mbps=80.0):
        self.upstream = upstream
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.port = None
        self._loop = None
        self._thread = None
        self._task = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        ready = threading.Event()

        def on_ready(port):
            self.port = port
            ready.set()

        def run():
            self._loop = asyncio.new_event_loop()
            self._task = self._loop.create_task(
                serve(self.upstream, 0, self.latency_ms, self.bandwidth_mbps, on_ready))
            try:
                self._loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("throttle relay did not start")
        return self

    def stop(self):
        if self._loop and self._task:
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(5)
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description="latency + per-connection bandwidth TCP relay")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--bandwidth-mbps", type=float, default=80)
    a = ap.parse_args()
    try:
        asyncio.run(serve(a.upstream, a.port, a.latency_ms, a.bandwidth_mbps))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
