"""FakeRuntimeApi: a scripted Lambda Runtime API (2018-06-01) for the bootstrap's fault tests.

    with FakeRuntimeApi() as api:                      # 127.0.0.1, free port, in-process threads
        api.next_script = ["drop", "503", ("event", {"operation": "GetIndex"}, {}, 0.0)]
        api.post_script = ["413", "202"]             # answers to response/error posts, in order
        proc = subprocess.Popen([bootstrap], env={"AWS_LAMBDA_RUNTIME_API": api.address, ...})
        api.wait_for(lambda: len(api.posts) >= 2)
    api.requests   every request: dict(method, path, headers, body, t)
    api.posts      the response / error / init-error posts only

next_script items (one per GET /next; when the script is exhausted /next blocks until stop):
    "drop"                        close the connection without answering (a transport failure)
    "500" / "503" / "403"         answer that status with a JSON error body
    ("event", payload, headers, delay_s)
                                  after delay_s seconds, answer 200 with the payload and the standard headers
                                  (request id "req-<n>", deadline now+30 s, invoked function ARN, trace id,
                                  invocation id "inv-<n>"), updated by `headers`
post_script items (one per POST; when exhausted: "202"): "202", "413", "500", "400", "drop".
"""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class FakeRuntimeApi:
    def __init__(self):
        self.next_script = []
        self.post_script = []
        self.requests = []
        self.posts = []
        self.lock = threading.Condition()
        self.events_sent = 0
        self.stopping = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self, body):
                entry = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in
                                                                               self.headers.items()},
                         "body": body, "t": time.monotonic()}
                with api.lock:
                    api.requests.append(entry)
                    if self.command == "POST":
                        api.posts.append(entry)
                    api.lock.notify_all()
                return entry

            def _send(self, status, obj, headers=None):
                data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # the runtime was stopped by the test meanwhile
                    self.close_connection = True

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_GET(self):
                self._record(b"")
                if self.path != PREFIX + "/invocation/next":
                    self._send(404, {"errorType": "NotFound"})
                    return
                with api.lock:
                    item = api.next_script.pop(0) if api.next_script else None
                if item is None:
                    while not api.stopping:  # nothing more to hand out: block like a frozen sandbox
                        time.sleep(0.05)
                    self._drop()
                    return
                if item == "drop":
                    self._drop()
                    return
                if isinstance(item, str):
                    self._send(int(item), {"errorMessage": "scripted", "errorType": "Scripted"})
                    return
                _, payload, extra, delay = item
                if delay:
                    time.sleep(delay)
                with api.lock:
                    api.events_sent += 1
                    n = api.events_sent
                headers = {"Lambda-Runtime-Aws-Request-Id": f"req-{n}",
                           "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30000),
                           "Lambda-Runtime-Invoked-Function-Arn":
                               "arn:aws:lambda:us-east-1:123456789012:function:fake",
                           "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{n:024x};Parent=0000000000000001;Sampled=0",
                           "Lambda-Runtime-Invocation-Id": f"inv-{n}"}
                headers.update(extra or {})
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self._send(200, body, headers)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                self._record(body)
                with api.lock:
                    item = api.post_script.pop(0) if api.post_script else "202"
                if item == "drop":
                    self._drop()
                    return
                status = int(item)
                self._send(status, {"status": "OK"} if status == 202 else {"errorMessage": "scripted",
                                                                             "errorType": "Scripted"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, predicate, timeout=20.0):
        end = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()
        return False
