"""s3lib: reusable helpers for tests and benchmarks that need S3 on loopback.

    from s3lib import MotoServer, FaultProxy, Fault, free_port

MotoServer  launches `moto_server` on 127.0.0.1 (a free port) with SigV4 verification on
            (INITIAL_NO_AUTH_ACTION_COUNT), creates an IAM user and access key through moto's IAM
            API, and hands out boto3 clients and the environment the s3vec binaries need.
FaultProxy  an HTTP/1.1 proxy between a client and an upstream (moto) that injects faults per rule
            (503 SlowDown, 500, connection reset mid-body, truncated body, first-byte delay, flipped
            byte, dropped connection) and/or throttles like S3 (fixed added latency per request and a
            per-connection bandwidth cap). Also runnable: python3 -m s3lib.proxy --help.

ThrottleRelay-style model for benchmarks: s3lib.throttle (asyncio TCP relay: latency per request,
            bandwidth per connection; far cheaper than FaultProxy's throttling) and s3lib.origin (an
            in-memory S3-like origin); s3lib.bench_ranges measures parallel ranged GETs, ours beside
            boto3 and the model's limit.
s3lib.tls   make_certs (a throwaway CA, openssl CLI) and TlsRelay (HTTPS in front of a loopback port).
Driver      runs the C driver tests/integration/drivers/s3_driver.c and parses its JSON answer.
Checks      check()/summary() with the closing line "N passed, N failed".

Everything binds 127.0.0.1 on free ports and stops cleanly (use them as context managers)."""
from .driver import Checks, Driver
from .motoserver import MotoServer, free_port
from .proxy import Fault, FaultProxy

__all__ = ["MotoServer", "FaultProxy", "Fault", "free_port", "Driver", "Checks"]
