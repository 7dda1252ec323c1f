"""ThrottleRelay: the S3 network model as a cheap TCP relay (asyncio, one thread), for benchmarks.

    python3 -m s3lib.throttle --upstream 127.0.0.1:PORT --latency-ms 20 --bandwidth-mbps 80
    # prints "listening on 127.0.0.1:PORT"; run it in its own process

Bytes a client sends after a pause (a new request; not the rest of a streamed body) are forwarded
after latency_ms, so each request's answer starts latency_ms late: the fixed per-request latency of
the model, and each connection's bytes back to the client are
paced to bandwidth_mbps (MB/s, 10^6 bytes) with a token bucket. It does not parse HTTP, so it costs
far less than FaultProxy's throttling mode (which parses and buffers every response in Python); use
FaultProxy when faults are needed, this one to measure."""
import argparse
import asyncio
import time

CHUNK = 64 * 1024


async def _pump_up(reader, writer, latency):
    last = 0.0
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if latency and time.monotonic() - last > 0.002:  # a new request, not the rest of a body
                await asyncio.sleep(latency)
            last = time.monotonic()
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def _pump_down(reader, writer, rate):
    start, sent = time.monotonic(), 0
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if rate:
                now = time.monotonic()
                if now - start > 0.05 and sent / rate < now - start - 0.05:
                    start, sent = now, 0  # idle gap: do not bank credit
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _relay(host, port, latency, rate, creader, cwriter):
    try:
        ureader, uwriter = await asyncio.open_connection(host, port)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(_pump_up(creader, uwriter, latency), _pump_down(ureader, cwriter, rate))


async def serve(upstream, port, latency_ms, bandwidth_mbps, ready=None):
    host, _, uport = upstream.rpartition(":")
    server = await asyncio.start_server(
        lambda r, w: _relay(host or "127.0.0.1", int(uport), latency_ms / 1e3, bandwidth_mbps * 1e6, r, w),
        "127.0.0.1", port, backlog=256)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


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
