#!/usr/bin/env python3
"""A local AWS Lambda for custom runtimes: the Runtime API (2018-06-01) plus the Invoke API.

Behaves like AWS's Runtime Interface Emulator (RIE) on a laptop without Docker: it starts the
function's ``bootstrap`` with the Lambda environment, serves the Runtime API the bootstrap polls, and
exposes ``POST /2015-03-31/functions/<name>/invocations`` for callers (curl, boto3's lambda client,
http_front.py). Standard library only (Python 3.11).

Model. One *sandbox* = one bootstrap process = one invocation at a time. ``--concurrency N`` runs N
sandboxes; invocations wait in one FIFO queue and each sandbox's worker thread takes the next one.
A sandbox is started lazily (on the first invocation, like Lambda's cold start) unless
``--eager-init``. Lambda's limits are enforced: 6 MB request (6291456 bytes) and response
(6291556 bytes) payloads, the function timeout (the process group is killed and the next invocation
gets a new process, as Lambda resets the sandbox), the init timeout (then one "suppressed" init inside
the invocation's own timeout, as Lambda does), a runtime that exits mid-invocation or between
invocations (Runtime.ExitError; restarted on the next invocation).

Observability. A Lambda-style log (START/END/REPORT lines, the bootstrap's stdout/stderr prefixed with
``[bootstrap]``) goes to stderr or --log-file, and ``GET /_emulator/stats`` returns per-invocation
timings (queue wait, init, time from handing the event on /next to receiving the response), restart
counts and the child's memory, for tests and benchmarks. ``POST /_emulator/stats/reset`` clears the
invocation list.

Threading: one HTTP thread (localhttp.LoopServer, a selector loop) serves every port, Invoke API and
Runtime API alike, with no thread per connection or request; a GET /next that has to wait is parked, not
blocked on a thread, and the sandbox's worker answers it straight from its own thread when it hands out
the invocation (no extra wake-up on the way). One worker thread per sandbox; each bootstrap has reader
threads for stdout/stderr and a waiter thread. All sandbox state is guarded by the sandbox's Condition;
the HTTP thread only takes it briefly (it never waits on it).

Spawning: the bootstrap is started with subprocess.Popen without a preexec_fn, so CPython uses vfork
+ exec (about 1 ms) instead of fork (about 6 ms for this process), which the init duration includes.
Without PR_SET_PDEATHSIG the kernel does not kill the bootstrap if the emulator is SIGKILLed; on every
other exit the emulator kills its process group, and a runtime that loses its Runtime API exits.
"""

import argparse
import base64
import binascii
import collections
import datetime
import json
import math
import os
import queue
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from localhttp import LoopServer  # noqa: E402

RUNTIME_PREFIX = "/2018-06-01/runtime/"
INVOKE_PREFIX = "/2015-03-31/functions/"

MAX_RESPONSE_SIZE = 6 * 1024 * 1024 + 100  # what the Runtime API accepts from the runtime
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # Invoke, RequestResponse
MAX_ASYNC_PAYLOAD = 1024 * 1024  # Invoke, Event
MAX_CLIENT_CONTEXT = 3583  # bytes of base64 in X-Amz-Client-Context
MAX_LOG_LINE = 256 * 1024  # longer child output lines are split
MAX_SMALL_BODY = 64 * 1024  # bodies of requests that expect none (GET /next, stats) are read and dropped
LOG_TAIL_SIZE = 4096  # X-Amz-Log-Result carries the last 4 KB
INIT_ERROR_GRACE_MS = 500.0  # after /init/error the runtime should exit; it is killed after this
STATS_KEEP = 10000  # invocations remembered by /_emulator/stats
DEFAULT_ACCOUNT = "123456789012"
LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
PASS_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE")
PASS_THROUGH_PREFIXES = ("AWS_ENDPOINT_URL",)

def _now_ms():
    return time.perf_counter() * 1000.0


def _error_json(error_type, message):
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _exit_reason(returncode):
    """Format a process exit like Lambda does ("exit status 1", "signal: killed")."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal: {name.lower()}"


def _read_proc_status(pid):
    """(VmRSS kB, VmHWM kB) of a live process, or (None, None)."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _trace_id():
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class Invocation:
    """One call of the function. Result fields are written once, under the owning sandbox's lock,
    by whoever finishes it (response/error handler, exit watcher, worker on timeout)."""

    def __init__(self, payload, function_arn, trace_id, client_context, cognito_identity, tenant_id,
                 want_log, kind):
        self.request_id = str(uuid.uuid4())
        self.invocation_id = str(uuid.uuid4())
        self.payload = payload
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.tenant_id = tenant_id
        self.kind = kind  # RequestResponse | Event
        self.log = bytearray() if want_log else None
        self.t_received = _now_ms()
        self.t_dequeued = None
        self.t_dispatched = None
        self.t_handed = None
        self.t_responded = None
        self.epoch_handed = None
        self.epoch_responded = None
        self.deadline = None  # perf_counter ms
        self.deadline_epoch_ms = None
        self.sandbox = None
        self.pid = None
        self.cold = False
        self.init_ms = None
        self.done = False
        self.status = None  # ok | error | timeout | exit | oversize | init_error | shutdown
        self.body = b""
        self.function_error = False
        self.error_type = None
        self.max_memory_kb = None
        self.finished = threading.Event()
        self.reply = None  # called once with the invocation when it completes (RequestResponse callers)

    def complete(self):
        """Release the caller: set ``finished`` and run the reply callback, once."""
        reply, self.reply = self.reply, None
        self.finished.set()
        if reply is not None:
            reply(self)

    def add_log(self, text):
        if self.log is not None:
            self.log += text.encode("utf-8", "replace") + b"\n"
            if len(self.log) > 4 * LOG_TAIL_SIZE:
                del self.log[: len(self.log) - LOG_TAIL_SIZE]


class Sandbox:
    """One bootstrap process and its Runtime API state.

    States: ``stopped`` (no process), ``init`` (process started, has not called /next yet),
    ``ready`` (initialised; an invocation may be pending or current). ``pending`` is an invocation
    assigned to this sandbox but not yet taken by /next; ``current`` one handed out on /next and not
    yet answered.
    """

    def __init__(self, emu, index):
        self.emu = emu
        self.index = index
        self.label = "bootstrap" if emu.concurrency == 1 else f"bootstrap#{index}"
        self.cond = threading.Condition()
        self.state = "stopped"
        self.gen = 0
        self.proc = None
        self.pid = None
        self.t_spawn = None
        self.init_ms = None
        self.init_error = None  # (error type, body) posted to /init/error by the current process
        self.exit_reason = None
        self.pending = None
        self.current = None
        self.parked = collections.deque()  # (Request, gen): GET /next waiting for an invocation
        self.cold = False
        self.starts = 0
        self.exits = 0
        self.timeouts = 0
        self.served = 0
        self.last_hwm_kb = None
        self.runtime_api = None  # "127.0.0.1:port", set by the emulator
        self._pump_busy = 0
        self.log_inv = None  # invocation whose log tail collects output, from dispatch to END
        self.worker = threading.Thread(target=self._run, name=f"sandbox-{index}", daemon=True)

    # ----- process lifecycle (all *_locked methods run with self.cond held) -----

    def _spawn_locked(self):
        emu = self.emu
        env = emu.child_env(self.runtime_api)
        argv = [emu.bootstrap] + emu.bootstrap_args
        self.gen += 1
        gen = self.gen
        self.init_error = None
        self.exit_reason = None
        self.init_ms = None
        self.last_hwm_kb = None
        t0 = _now_ms()
        try:
            proc = subprocess.Popen(argv, cwd=emu.task_root, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            self.state = "stopped"
            self.exit_reason = f"fork/exec {emu.bootstrap}: {e.strerror or e}"
            emu.log(f"[emulator] cannot start {emu.bootstrap}: {e}")
            return False
        self.proc = proc
        self.pid = proc.pid
        self.t_spawn = t0
        self.state = "init"
        self.cold = True
        self.starts += 1
        if self.starts > 1:
            emu.log(f"[emulator] {self.label}: starting a new runtime process (start #{self.starts})")
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            threading.Thread(target=self._pump, args=(stream,), name=f"{self.label}-{name}",
                             daemon=True).start()
        threading.Thread(target=self._watch, args=(proc, gen), name=f"{self.label}-wait",
                         daemon=True).start()
        return True

    def _kill_locked(self, reason, graceful=False):
        """Stop the process group (SIGKILL; SIGTERM first when graceful) and mark the sandbox
        stopped. The exit watcher then ignores this process."""
        proc = self.proc
        self.state = "stopped"
        self.exit_reason = reason
        self._drop_parked_locked()
        if proc is None:
            return
        rss, hwm = _read_proc_status(proc.pid)
        if hwm is not None:
            self.last_hwm_kb = hwm
        if graceful and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.emu.log(f"[emulator] {self.label}: pid {proc.pid} did not die after SIGKILL")
        self.cond.notify_all()

    def _pump(self, stream):
        """Copy one output pipe of the bootstrap, line by line, into the log and the current
        invocation's log tail. Reads raw chunks so ``drain_output`` can tell (select + busy flag)
        whether output written before a response has been logged."""
        fd = stream.fileno()
        pending = b""
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._pump_busy += 1
                try:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_LOG_LINE:
                        lines.append(pending)
                        pending = b""
                    for raw in lines:
                        self._log_line(raw)
                finally:
                    self._pump_busy -= 1
            if pending:
                self._log_line(pending)
        except OSError:
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _log_line(self, raw):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.emu.log(f"[{self.label}] {line}")
        inv = self.log_inv
        if inv is not None:
            inv.add_log(line)

    def drain_output(self, limit_s=0.05):
        """Wait (briefly) until output the bootstrap has already written is logged."""
        proc = self.proc
        if proc is None:
            return
        streams = [s for s in (proc.stdout, proc.stderr) if s is not None and not s.closed]
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                readable, _, _ = select.select(streams, [], [], 0)
            except (OSError, ValueError):
                return
            if not readable and not self._pump_busy:
                return
            time.sleep(0.0005)

    def _watch(self, proc, gen):
        rc = proc.wait()
        with self.cond:
            if gen != self.gen or self.state == "stopped":
                return  # killed on purpose, already handled
            reason = _exit_reason(rc)
            self.state = "stopped"
            self.exit_reason = reason
            self.exits += 1
            self._drop_parked_locked()
            inv = self.current or self.pending
            self.current = self.pending = None
            if inv is not None and not inv.done:
                self._finish_locked(inv, "exit", _error_json(
                    "Runtime.ExitError", f"RequestId: {inv.request_id} Error: Runtime exited with error: {reason}"),
                    "Runtime.ExitError")
            self.cond.notify_all()
        self.emu.log(f"[emulator] {self.label}: runtime process {proc.pid} exited ({reason})")

    def _finish_locked(self, inv, status, body, error_type=None, notify=True, t_ms=None):
        """Set the invocation's result once. notify=False lets a Runtime API handler answer the
        runtime before the worker wakes (the caller then notifies); the deadline check still sees
        ``done``. ``t_ms``: when the result arrived (perf_counter ms; default now)."""
        inv.done = True
        inv.status = status
        inv.body = body
        inv.function_error = status != "ok"
        inv.error_type = error_type
        inv.t_responded = _now_ms() if t_ms is None else t_ms
        inv.epoch_responded = time.time()
        if notify:
            self.cond.notify_all()

    def _wait_locked(self, predicate, deadline):
        while not predicate():
            remaining = (deadline - _now_ms()) / 1000.0
            if remaining <= 0 or self.emu.stopping:
                return predicate()
            self.cond.wait(remaining)
        return True

    # ----- the worker: one invocation at a time -----

    def _run(self):
        if self.emu.eager_init:
            with self.cond:
                self._spawn_locked()
        while True:
            inv = self.emu.queue.get()
            if inv is None:
                return
            try:
                self._serve(inv)
            except Exception:  # keep the sandbox alive; the caller gets a service error
                self.emu.log("[emulator] internal error:\n" + traceback.format_exc())
                with self.cond:
                    if not inv.done:
                        self._finish_locked(inv, "exit", _error_json("ServiceException", "emulator internal error"),
                                            "ServiceException")
                    self._kill_locked("internal error")
            self._complete(inv)

    def _serve(self, inv):
        emu = self.emu
        inv.t_dequeued = _now_ms()
        inv.sandbox = self.index
        with self.cond:
            if emu.stopping:
                self._finish_locked(inv, "shutdown", b"", "Shutdown")
                return
            if self.state == "stopped" and not self._spawn_locked():
                self._finish_locked(inv, "exit", _error_json(
                    "Runtime.InvalidEntrypoint", f"RequestId: {inv.request_id} Error: {self.exit_reason}"),
                    "Runtime.InvalidEntrypoint")
                return
            inv.pid = self.pid
            if self.state == "init":
                self._wait_locked(lambda: self.state != "init" or self.init_error is not None,
                                  self.t_spawn + emu.init_timeout * 1000.0)
                if self.state == "init" and self.init_error is not None:
                    # The runtime reported an init error; it is expected to exit. Reset it if not.
                    self._wait_locked(lambda: self.state != "init", _now_ms() + INIT_ERROR_GRACE_MS)
                    if self.state == "init":
                        self._kill_locked("init error")
                if emu.stopping:
                    self._finish_locked(inv, "shutdown", b"", "Shutdown")
                    return
                if self.state == "init":
                    # Lambda's init phase is over: it logs the timeout, resets the sandbox and runs
                    # init again inside the invocation, within the function timeout.
                    emu.log(f"INIT_REPORT Init Duration: {emu.init_timeout * 1000.0:.2f} ms\tPhase: init\t"
                            f"Status: timeout")
                    self._kill_locked("init timeout")
                    inv.deadline = _now_ms() + emu.timeout * 1000.0
                    if not self._spawn_locked():
                        self._finish_locked(inv, "exit", _error_json(
                            "Runtime.InvalidEntrypoint", f"RequestId: {inv.request_id} Error: {self.exit_reason}"),
                            "Runtime.InvalidEntrypoint")
                        return
                    inv.pid = self.pid
                    self._wait_locked(lambda: self.state != "init" or self.init_error is not None, inv.deadline)
                    if self.state == "init" and self.init_error is not None:
                        self._wait_locked(lambda: self.state != "init", _now_ms() + INIT_ERROR_GRACE_MS)
                        if self.state == "init":
                            self._kill_locked("init error")
                    if emu.stopping:
                        self._finish_locked(inv, "shutdown", b"", "Shutdown")
                        return
                    if self.state == "init":
                        self._timeout_locked(inv)
                        return
            if self.state == "stopped":
                if self.init_error is not None:
                    error_type, body = self.init_error
                    emu.log(f"INIT_REPORT Init Duration: {(_now_ms() - self.t_spawn):.2f} ms\tPhase: init\t"
                            f"Status: error\tError Type: {error_type}")
                    self._finish_locked(inv, "init_error", body, error_type)
                else:
                    emu.log(f"INIT_REPORT Init Duration: {(_now_ms() - self.t_spawn):.2f} ms\tPhase: init\t"
                            f"Status: error\tError Type: Runtime.ExitError")
                    self._finish_locked(inv, "exit", _error_json(
                        "Runtime.ExitError",
                        f"RequestId: {inv.request_id} Error: Runtime exited with error: {self.exit_reason}"),
                        "Runtime.ExitError")
                return
            # Ready: hand the invocation to the runtime's /next.
            inv.cold = self.cold
            if self.cold:
                inv.init_ms = self.init_ms
            self.cold = False
            if inv.deadline is None:
                inv.deadline = _now_ms() + emu.timeout * 1000.0
            inv.deadline_epoch_ms = int(time.time() * 1000 + (inv.deadline - _now_ms()))
            inv.t_dispatched = _now_ms()
            self.served += 1
            start = f"START RequestId: {inv.request_id} Version: $LATEST"
            inv.add_log(start)
            emu.log(start)
            self.log_inv = inv
            self.pending = inv
            self.cond.notify_all()
            self._offer_locked()
            self._wait_locked(lambda: inv.done, inv.deadline)
            if not inv.done:
                if emu.stopping:
                    self.pending = self.current = None
                    self._finish_locked(inv, "shutdown", b"", "Shutdown")
                else:
                    self._timeout_locked(inv)

    def _timeout_locked(self, inv):
        self.timeouts += 1
        msg = f"Task timed out after {self.emu.timeout:.2f} seconds"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{stamp} {inv.request_id} {msg}"
        inv.add_log(line)
        self.emu.log(line)
        self.pending = self.current = None
        self._kill_locked("timeout")
        self._finish_locked(inv, "timeout", _error_json("Sandbox.Timedout", f"RequestId: {inv.request_id} Error: {msg}"),
                            "Sandbox.Timedout")

    def _complete(self, inv):
        """Record the invocation, release the caller, then write END/REPORT."""
        t_end = _now_ms()
        if inv.t_responded is None:
            inv.t_responded = t_end
        if self.pid is not None and self.state != "stopped":
            _, hwm = _read_proc_status(self.pid)
            if hwm is not None:
                self.last_hwm_kb = hwm
        inv.max_memory_kb = self.last_hwm_kb
        if inv.log is not None:
            self.drain_output()
        lines = []
        if inv.t_dispatched is not None:
            start = inv.t_handed if inv.t_handed is not None else inv.t_dispatched
            duration = max(0.0, inv.t_responded - start)
            billed = math.ceil(duration + (inv.init_ms or 0.0) if inv.cold else duration)
            used = math.ceil(inv.max_memory_kb / 1024) if inv.max_memory_kb else 0
            report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration:.2f} ms\tBilled Duration: "
                      f"{max(1, billed)} ms\tMemory Size: {self.emu.memory} MB\tMax Memory Used: {used} MB")
            if inv.cold and inv.init_ms is not None:
                report += f"\tInit Duration: {inv.init_ms:.2f} ms"
            if inv.status not in ("ok", "error"):
                report += f"\tStatus: {inv.status}"
            lines = [f"END RequestId: {inv.request_id}", report]
            for line in lines:
                inv.add_log(line)
        self.log_inv = None
        self.emu.record(inv, t_end)
        inv.complete()
        for line in lines:
            self.emu.log(line)

    # ----- Runtime API handlers (called on the HTTP loop thread; they never wait) -----

    def api_next(self, req):
        t_arrive = _now_ms()
        with self.cond:
            if self.state == "stopped":
                req.respond_json(500, {"errorMessage": "runtime is being reset", "errorType": "InternalServerError"},
                                 close=True)
                return
            if self.current is not None:
                req.respond_json(403, _transition_error("Invoke", "Ready"))
                return
            if self.state == "init":
                self.state = "ready"
                self.init_ms = t_arrive - self.t_spawn
                self.cond.notify_all()
            if self.emu.stopping:
                req.abort()
                return
            req.drop_on_eof = True  # a runtime that goes away while waiting frees the request at once
            self.parked.append((req, self.gen))
            self._offer_locked()

    def _offer_locked(self):
        """Hand the pending invocation to a waiting GET /next of the current process, if any. Runs on
        whichever thread makes the match (the worker, or the HTTP thread for a /next that arrives
        after the invocation) and writes the answer straight to the runtime's socket."""
        while self.pending is not None and self.parked:
            req, gen = self.parked.popleft()
            if gen != self.gen or req.peer_gone:
                req.abort()  # left behind by a process that has died or been replaced
                continue
            inv = self.pending
            self.pending = None
            self.current = inv
            headers = [("Lambda-Runtime-Aws-Request-Id", inv.request_id),
                       ("Lambda-Runtime-Deadline-Ms", str(inv.deadline_epoch_ms)),
                       ("Lambda-Runtime-Invoked-Function-Arn", inv.function_arn),
                       ("Lambda-Runtime-Trace-Id", inv.trace_id),
                       ("Lambda-Runtime-Invocation-Id", inv.invocation_id)]
            if inv.client_context is not None:
                headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
            if inv.cognito_identity is not None:
                headers.append(("Lambda-Runtime-Cognito-Identity", inv.cognito_identity))
            if inv.tenant_id is not None:
                headers.append(("Lambda-Runtime-Aws-Tenant-Id", inv.tenant_id))
            ok = req.respond(200, inv.payload, headers, "application/json")
            # Handed: when the first byte of the answer was written (the runtime's time starts there).
            inv.t_handed = req.t_sent * 1000.0
            inv.epoch_handed = time.time()
            if not ok:
                self.emu.log(f"[emulator] {self.label}: could not hand {inv.request_id} to the runtime "
                             f"(connection closed)")

    def _drop_parked_locked(self):
        while self.parked:
            req, _ = self.parked.popleft()
            req.abort()

    def _check_current_locked(self, req, request_id, transition):
        """Validate a response/error post; send the error reply and return None when invalid."""
        inv = self.current
        if inv is None or self.state != "ready":
            state = "Init" if self.state == "init" else "Ready"
            req.respond_json(403, _transition_error(state, transition))
            return None
        if request_id != inv.request_id:
            req.respond_json(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
            return None
        echoed = req.headers.get("Lambda-Runtime-Invocation-Id")
        if echoed is not None and echoed != inv.invocation_id:
            req.respond_json(410, {"errorMessage": "Invocation ID does not match the current invocation",
                                   "errorType": "ErrorRuntimeInvokeTimeout"})
            return None
        return inv

    def api_post(self, req, request_id, is_error):
        if req.body_error is not None:
            req.respond_json(400, {"errorMessage": str(req.body_error), "errorType": "InvalidRequest"})
            return
        body, too_large = req.body, req.too_large
        t_in = req.t_received * 1000.0  # the read that completed the post returned (before parsing)
        with self.cond:
            inv = self._check_current_locked(req, request_id, "InvocationErrorResponse" if is_error
                                             else "InvocationResponse")
            if inv is None:
                return
            self.current = None
            if too_large is not None:
                size = too_large.size
                self._finish_locked(inv, "oversize", _error_json(
                    "Function.ResponseSizeTooLarge",
                    f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                    f"({MAX_RESPONSE_SIZE} bytes)."), "Function.ResponseSizeTooLarge", notify=False, t_ms=t_in)
                req.respond_json(413, {"errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE_SIZE} "
                                                       f"bytes).", "errorType": "RequestEntityTooLarge"})
            else:
                if is_error:
                    error_type = req.headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.Unknown"
                    if not body:
                        body = _error_json(error_type, "Unknown application error occurred")
                    self._finish_locked(inv, "error", body, error_type, notify=False, t_ms=t_in)
                else:
                    self._finish_locked(inv, "ok", body, notify=False, t_ms=t_in)
                req.respond_json(202, {"status": "OK"})
            # Answered the runtime first: it goes back to /next while the worker does the bookkeeping.
            self.cond.notify_all()

    def api_init_error(self, req):
        body = req.body or b""
        with self.cond:
            if self.state != "init":
                req.respond_json(403, _transition_error("Ready", "InitError"))
                return
            error_type = req.headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.Unknown"
            if not body:
                body = _error_json(error_type, "Unknown application error occurred")
            self.init_error = (error_type, body)
            req.respond_json(202, {"status": "OK"})
        self.emu.log(f"[emulator] {self.label}: runtime reported an init error ({error_type})")

    def snapshot(self):
        with self.cond:
            pid = self.pid if self.state != "stopped" else None
            rss = hwm = None
            if pid is not None:
                rss, hwm = _read_proc_status(pid)
            return {"index": self.index, "runtime_api": self.runtime_api, "state": self.state, "pid": pid,
                    "starts": self.starts, "restarts": max(0, self.starts - 1), "exits": self.exits,
                    "timeouts": self.timeouts, "invocations": self.served, "init_ms": self.init_ms,
                    "rss_kb": rss, "hwm_kb": hwm if hwm is not None else self.last_hwm_kb,
                    "last_exit": self.exit_reason}


def _transition_error(src, dst):
    return {"errorMessage": f"State transition from {src} to {dst} failed for runtime. "
                            f"Error: State transition is not allowed",
            "errorType": "InvalidStateTransition"}


def _lambda_error(req, status, error_type, message, extra=None, close=False):
    body = {"Type": "User", "message": message}
    if extra:
        body.update(extra)
    req.respond_json(status, body, [("x-amzn-ErrorType", error_type)], close=close)


class Emulator:
    """The whole local Lambda: sandboxes, invocation queue, HTTP servers. Use start()/stop()."""

    def __init__(self, args):
        self.bootstrap = os.path.abspath(args.bootstrap)
        self.bootstrap_args = list(args.bootstrap_arg or [])
        self.task_root = os.path.abspath(args.task_root or os.path.dirname(self.bootstrap))
        self.runtime_dir = os.path.abspath(args.runtime_dir or self.task_root)
        self.function_name = args.function_name
        self.handler = args.handler
        self.memory = args.memory
        self.timeout = args.timeout
        self.init_timeout = args.init_timeout
        self.concurrency = max(1, args.concurrency)
        self.eager_init = args.eager_init
        self.region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.account = args.account
        self.execution_env = args.execution_env
        self.extra_env = {}
        for item in args.env or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"--env expects K=V, got {item!r}")
            self.extra_env[key] = value
        self.pass_env = list(args.pass_env or [])
        self.function_arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"
        self.queue = queue.Queue(maxsize=args.max_queue)
        self.stopping = False
        self._log_lock = threading.Lock()
        self._log_file = open(args.log_file, "a", encoding="utf-8") if args.log_file else None
        self._stats_lock = threading.Lock()
        self._stats = collections.deque(maxlen=STATS_KEEP)
        self._counts = collections.Counter()
        self.sandboxes = [Sandbox(self, i) for i in range(self.concurrency)]
        self.server = None
        self.port = args.port

    # ----- environment of the bootstrap -----

    def child_env(self, runtime_api):
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
        task, rt = self.task_root, self.runtime_dir
        env = {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": rt,
            "_HANDLER": self.handler,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": LAMBDA_PATH,
            "LD_LIBRARY_PATH": f"/lib64:/usr/lib64:{rt}:{rt}/lib:{task}:{task}/lib:/opt/lib",
        }
        if self.execution_env:
            env["AWS_EXECUTION_ENV"] = self.execution_env
        for key, value in os.environ.items():
            if key in PASS_THROUGH or key.startswith(PASS_THROUGH_PREFIXES) or key in self.pass_env:
                env[key] = value
        env.update(self.extra_env)
        return env

    # ----- logging and stats -----

    def log(self, line):
        with self._log_lock:
            out = self._log_file or sys.stderr
            try:
                out.write(line + "\n")
                out.flush()
            except (OSError, ValueError):
                pass

    def record(self, inv, t_end):
        def ms(a, b):
            return round(b - a, 3) if a is not None and b is not None else None

        entry = {
            "request_id": inv.request_id, "kind": inv.kind, "status": inv.status, "error_type": inv.error_type,
            "sandbox": inv.sandbox, "pid": inv.pid, "cold": inv.cold,
            "init_ms": round(inv.init_ms, 3) if inv.init_ms is not None else None,
            "queued_ms": ms(inv.t_received, inv.t_dequeued),
            "ready_wait_ms": ms(inv.t_dequeued, inv.t_dispatched),
            "runtime_ms": ms(inv.t_handed, inv.t_responded) if inv.t_handed is not None else None,
            "total_ms": ms(inv.t_received, t_end),
            "handed_epoch": inv.epoch_handed, "responded_epoch": inv.epoch_responded,
            "request_size": len(inv.payload), "response_size": len(inv.body),
            "max_memory_used_kb": inv.max_memory_kb,
        }
        with self._stats_lock:
            self._stats.append(entry)
            self._counts[inv.status] += 1

    def stats(self):
        with self._stats_lock:
            invocations = list(self._stats)
            counts = dict(self._counts)
        sandboxes = [s.snapshot() for s in self.sandboxes]
        return {"function_name": self.function_name, "function_arn": self.function_arn, "memory_mb": self.memory,
                "timeout_s": self.timeout, "init_timeout_s": self.init_timeout, "concurrency": self.concurrency,
                "queued": self.queue.qsize(), "counts": counts,
                "restarts": sum(s["restarts"] for s in sandboxes), "sandboxes": sandboxes,
                "invocations": invocations}

    def reset_stats(self):
        with self._stats_lock:
            self._stats.clear()
            self._counts.clear()

    # ----- Invoke API -----

    def _function_matches(self, name):
        """Accept "function" (the RIE's name), the function's name or ARN, with an optional qualifier."""
        name = unquote(name)
        known = ("function", self.function_name, self.function_arn)
        if name in known:
            return True
        base, sep, _ = name.rpartition(":")
        return bool(sep) and base in known

    def invoke_route(self, req):
        """Checks an invoke request's head; returns (body limit, handler) or None when answered."""
        name = req.path[len(INVOKE_PREFIX):-len("/invocations")]
        if not self._function_matches(name):
            # the body is not read: the connection is not reused
            _lambda_error(req, 404, "ResourceNotFoundException",
                          f"Function not found: arn:aws:lambda:{self.region}:{self.account}:function:{unquote(name)}",
                          close=True)
            return None
        kind = req.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            _lambda_error(req, 400, "InvalidParameterValueException", f"Unsupported invocation type: {kind}",
                          close=True)
            return None
        limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        return limit, lambda r: self.invoke(r, kind, limit)

    def invoke(self, req, kind, limit):
        if req.too_large is not None:
            _lambda_error(req, 413, "RequestEntityTooLargeException",
                          f"Request must be smaller than {limit} bytes for the InvokeFunction operation")
            return
        if req.body_error is not None:
            _lambda_error(req, 400, "InvalidRequestContentException", str(req.body_error))
            return
        payload = req.body
        if not payload.strip():
            payload = b"{}"
        else:
            try:
                json.loads(payload)
            except (ValueError, UnicodeDecodeError) as e:
                _lambda_error(req, 400, "InvalidRequestContentException",
                              f"Could not parse request body into json: Could not parse payload into json: {e}")
                return
        if kind == "DryRun":
            req.respond(204, b"", [("X-Amzn-Requestid", str(uuid.uuid4()))])
            return
        h = req.headers
        client_context = None
        raw_cc = h.get("X-Amz-Client-Context")
        if raw_cc:
            try:
                if len(raw_cc) > MAX_CLIENT_CONTEXT:
                    raise ValueError("too long")
                client_context = base64.b64decode(raw_cc, validate=True).decode()
                json.loads(client_context)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                _lambda_error(req, 400, "InvalidRequestContentException",
                              "Client context must be a valid Base64-encoded JSON object.")
                return
        query = dict(pair.split("=", 1) if "=" in pair else (pair, "") for pair in req.query.split("&") if pair)
        qualifier = unquote(query.get("Qualifier", "")) or None
        arn = self.function_arn + (f":{qualifier}" if qualifier else "")
        inv = Invocation(payload, arn, h.get("X-Amzn-Trace-Id") or _trace_id(), client_context,
                         h.get("X-Emulator-Cognito-Identity"), h.get("X-Amz-Tenant-Id"),
                         h.get("X-Amz-Log-Type") == "Tail", kind)
        if self.stopping:
            _lambda_error(req, 503, "ServiceException", "the emulator is shutting down")
            return
        if kind != "Event":
            inv.reply = lambda done: self._send_result(req, done)  # runs on the worker that completes it
        try:
            self.queue.put_nowait(inv)
        except queue.Full:
            inv.reply = None
            _lambda_error(req, 429, "TooManyRequestsException", "Rate Exceeded.",
                          {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
            return
        if kind == "Event":
            req.respond(202, b"", [("X-Amzn-Requestid", inv.request_id)])

    @staticmethod
    def _send_result(req, inv):
        if inv.status == "shutdown":
            _lambda_error(req, 503, "ServiceException", "the emulator is shutting down")
            return
        headers = [("X-Amzn-Requestid", inv.request_id), ("X-Amz-Executed-Version", "$LATEST")]
        if inv.function_error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        if inv.log is not None:
            headers.append(("X-Amz-Log-Result", base64.b64encode(bytes(inv.log[-LOG_TAIL_SIZE:])).decode()))
        req.respond(200, inv.body, headers, "application/json")

    # ----- HTTP routing (on the loop thread) -----

    def route(self, req):
        """LoopServer route: every port serves the Invoke API, the stats and its sandbox's Runtime API."""
        path, method = req.path, req.method
        if path.startswith(RUNTIME_PREFIX):
            return MAX_RESPONSE_SIZE, self._runtime
        if path.startswith(INVOKE_PREFIX) and path.endswith("/invocations") and method == "POST":
            return self.invoke_route(req)
        if method not in ("GET", "POST", "PUT", "DELETE"):
            req.respond_json(501, {"errorMessage": f"Unsupported method {method}", "errorType": "NotImplemented"},
                             close=True)
            return None
        return MAX_SMALL_BODY, self._service

    def _service(self, req):
        path, method = req.path, req.method
        if path == "/_emulator/stats" and method == "GET":
            req.respond_json(200, self.stats())
        elif path == "/_emulator/stats/reset" and method == "POST":
            self.reset_stats()
            req.respond_json(200, {"status": "OK"})
        elif path == "/_emulator/health" and method == "GET":
            req.respond_json(200, {"status": "OK"})
        else:
            self._not_found(req)

    @staticmethod
    def _not_found(req):
        req.respond_json(404, {"errorMessage": f"Unknown path {req.method} {req.target}", "errorType": "NotFound"},
                         close=True)

    def _runtime(self, req):
        sandbox = req.context
        rest, method = req.path[len(RUNTIME_PREFIX):], req.method
        if rest == "invocation/next" and method == "GET":
            sandbox.api_next(req)
        elif rest == "init/error" and method == "POST":
            sandbox.api_init_error(req)
        elif rest.startswith("invocation/") and method == "POST":
            request_id, _, action = rest[len("invocation/"):].rpartition("/")
            if action in ("response", "error") and request_id and "/" not in request_id:
                sandbox.api_post(req, unquote(request_id), action == "error")
            else:
                self._not_found(req)
        else:
            self._not_found(req)

    def start(self):
        self.server = LoopServer("emulator-http")
        self.port = self.server.listen(self.port, self.route, self.sandboxes[0])
        self.sandboxes[0].runtime_api = f"127.0.0.1:{self.port}"
        for sandbox in self.sandboxes[1:]:
            sandbox.runtime_api = f"127.0.0.1:{self.server.listen(0, self.route, sandbox)}"
        self.server.start()
        for sandbox in self.sandboxes:
            sandbox.worker.start()
        self.log(f"[emulator] function {self.function_name}: bootstrap {self.bootstrap}, timeout {self.timeout:g} s, "
                 f"memory {self.memory} MB, concurrency {self.concurrency}, runtime API "
                 + ", ".join(s.runtime_api for s in self.sandboxes))

    def stop(self):
        self.stopping = True
        while True:  # invocations never dequeued
            try:
                inv = self.queue.get_nowait()
            except queue.Empty:
                break
            if inv is not None:
                inv.status = "shutdown"
                inv.complete()
        for sandbox in self.sandboxes:
            with sandbox.cond:
                for inv in (sandbox.pending, sandbox.current):
                    if inv is not None and not inv.done:
                        sandbox._finish_locked(inv, "shutdown", b"", "Shutdown")
                sandbox.pending = sandbox.current = None
                sandbox._kill_locked("shutdown", graceful=True)
        for _ in self.sandboxes:
            self.queue.put(None)
        for sandbox in self.sandboxes:  # they complete what they were serving (callers get 503), then exit
            if sandbox.worker.is_alive():
                sandbox.worker.join(2)
        if self.server is not None:
            self.server.stop()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Local AWS Lambda (Runtime API + Invoke API) for a custom runtime.")
    p.add_argument("--bootstrap", required=True, help="the runtime executable (the function's bootstrap)")
    p.add_argument("--bootstrap-arg", action="append", help="argument passed to the bootstrap (repeatable)")
    p.add_argument("--port", type=int, default=9000, help="listen port on 127.0.0.1 (0 picks a free one)")
    p.add_argument("--timeout", type=float, default=3.0, help="function timeout in seconds (default 3)")
    p.add_argument("--init-timeout", type=float, default=10.0, help="init phase limit in seconds (default 10)")
    p.add_argument("--memory", type=int, default=128, help="function memory in MB (reported, not enforced)")
    p.add_argument("--function-name", default="function", help="function name (default 'function')")
    p.add_argument("--handler", default="bootstrap", help="value of _HANDLER")
    p.add_argument("--region", help="AWS_REGION (default: $AWS_REGION or us-east-1)")
    p.add_argument("--account", default=DEFAULT_ACCOUNT, help="account id used in ARNs")
    p.add_argument("--env", action="append", metavar="K=V", help="extra environment variable (repeatable)")
    p.add_argument("--pass-env", action="append", metavar="NAME", help="pass a host variable through (repeatable)")
    p.add_argument("--task-root", help="LAMBDA_TASK_ROOT and working directory (default: the bootstrap's folder)")
    p.add_argument("--runtime-dir", help="LAMBDA_RUNTIME_DIR (default: the task root)")
    p.add_argument("--execution-env", default="AWS_Lambda_provided.al2023",
                   help="AWS_EXECUTION_ENV value; '' leaves it unset")
    p.add_argument("--concurrency", type=int, default=1, help="number of sandboxes (default 1)")
    p.add_argument("--max-queue", type=int, default=1000, help="queued invocations before 429 (default 1000)")
    p.add_argument("--eager-init", action="store_true", help="start the runtime at launch, not on first invoke")
    p.add_argument("--log-file", help="append the function log here instead of stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.exists(args.bootstrap):
        print(f"emulator: no such bootstrap: {args.bootstrap}", file=sys.stderr)
        return 2
    emu = Emulator(args)
    emu.start()
    print(f"emulator listening on 127.0.0.1:{emu.port}", flush=True)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not done.wait(0.5):
        pass
    emu.log("[emulator] shutting down")
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
