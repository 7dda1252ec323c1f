#!/usr/bin/env python3
"""A local HTTP front for a Lambda function: plain HTTP in, API Gateway HTTP API events out.

Like ``sam local start-api`` but without Docker: every HTTP request is turned into an API Gateway
HTTP API payload format 2.0 event (or, with ``--function-url``, a Lambda Function URL event), sent to a
Lambda Invoke endpoint (emulator.py, or anything that speaks ``POST /2015-03-31/functions/<name>/
invocations``), and the function's result is mapped back to HTTP with API Gateway's v2 rules:

- a result object with ``statusCode`` is a proxy response: statusCode, headers, multiValueHeaders,
  cookies (each becomes a Set-Cookie header), body, isBase64Encoded;
- any other valid JSON result is inferred as 200, content-type application/json, the JSON as the body
  (a JSON string result becomes the body text);
- a function error (X-Amz-Function-Error), an unparseable result or an invalid proxy response gives
  500 {"message":"Internal Server Error"} (HTTP API) or 502 "Internal Server Error" (Function URL);
- the integration timeout (``--integration-timeout``, 30 s like HTTP APIs) gives
  503 {"message":"Service Unavailable"};
- request bodies over 10 MB (HTTP API limit; Function URLs: 6 MB) get 413 before the function is
  called; Lambda's own 6 MB invoke limit (which includes the event envelope and base64) gives 413 too.

Routes (``--route``, repeatable, default ``POST /{operation}`` and ``$default``) select routeKey and
pathParameters; ``{name}`` matches one path segment, ``{name+}`` the rest of the path, method ANY
matches all. Request bodies are base64-encoded unless their content type is textual (text/*, JSON,
XML, JavaScript, form-urlencoded) and valid UTF-8. Standard library only.

Threading: one HTTP thread per client connection; each thread keeps its own keep-alive connection
to the invoke endpoint.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import secrets
import string
import sys
import threading
import time
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from localhttp import BodyError, BodyTooLarge, BoundedHandler, LocalServer  # noqa: E402

HTTP_API_MAX_REQUEST = 10 * 1024 * 1024
FUNCTION_URL_MAX_REQUEST = 6 * 1024 * 1024
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Response headers that describe the connection, not the content; never copied from the function.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
              "proxy-connection"}
TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/x-www-form-urlencoded",
              "application/x-javascript", "application/ecmascript", "application/yaml", "application/graphql")


def is_text_content(content_type):
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if not ct:
        return False
    return ct.startswith("text/") or ct in TEXT_TYPES or ct.endswith("+json") or ct.endswith("+xml")


class Route:
    """A route key such as "POST /{operation}", "ANY /items/{id}", "GET /files/{path+}" or "$default"."""

    def __init__(self, key):
        self.key = key
        if key == "$default":
            self.method, self.segments = None, None
            return
        method, sep, path = key.partition(" ")
        if not sep or not path.startswith("/"):
            raise ValueError(f"bad route {key!r}: expected 'METHOD /path' or '$default'")
        self.method = method.upper()
        self.segments = [s for s in path.split("/")[1:]] if path != "/" else []
        for i, seg in enumerate(self.segments):
            if seg.endswith("+}") and i != len(self.segments) - 1:
                raise ValueError(f"bad route {key!r}: a greedy variable must be last")

    def sort_key(self):
        if self.segments is None:
            return (2, 0, 0)
        greedy = bool(self.segments) and self.segments[-1].endswith("+}")
        literals = sum(1 for s in self.segments if not s.startswith("{"))
        return (1 if greedy else 0, -literals, -len(self.segments))

    def match(self, method, raw_path):
        """Path parameters (dict of decoded values, possibly empty) when this route matches the
        percent-encoded path, else None."""
        if self.segments is None or self.method not in ("ANY", method):
            return None
        parts = raw_path.split("/")[1:] if raw_path != "/" else []
        params = {}
        for i, seg in enumerate(self.segments):
            if seg.startswith("{") and seg.endswith("+}"):
                rest = parts[i:]
                if not rest or not "".join(rest):
                    return None
                params[seg[1:-2]] = unquote("/".join(rest))
                return params
            if i >= len(parts):
                return None
            if seg.startswith("{") and seg.endswith("}"):
                if not parts[i]:
                    return None
                params[seg[1:-1]] = unquote(parts[i])
            elif seg != unquote(parts[i]):
                return None
        return params if len(parts) == len(self.segments) else None


def _apigw_request_id():
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(14)) + "="


def _trace_id():
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


class Front:
    """The front: parses requests, builds events, invokes, maps results. Use start()/stop()."""

    def __init__(self, args):
        url = urlsplit(args.invoke_url)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme != "http" or not url.hostname or not port:
            raise ValueError(f"--invoke-url must look like http://127.0.0.1:PORT, got {args.invoke_url!r}")
        self.invoke_host = url.hostname
        self.invoke_port = port
        self.invoke_path = f"/2015-03-31/functions/{args.function_name}/invocations"
        self.function_url = args.function_url
        self.region = args.region or os.environ.get("AWS_REGION") or "us-east-1"
        self.account = args.account
        if self.function_url:
            self.api_id = args.api_id or "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                                 for _ in range(32))
            self.domain = f"{self.api_id}.lambda-url.{self.region}.on.aws"
            self.max_request = FUNCTION_URL_MAX_REQUEST
            self.timeout = args.integration_timeout or 900.0
            self.routes = [Route("$default")]
        else:
            self.api_id = args.api_id or "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                                 for _ in range(10))
            self.domain = f"{self.api_id}.execute-api.{self.region}.amazonaws.com"
            self.max_request = HTTP_API_MAX_REQUEST
            self.timeout = args.integration_timeout or 30.0
            self.routes = sorted((Route(k) for k in (args.route or ["POST /{operation}", "$default"])),
                                 key=Route.sort_key)
        self.port = args.port
        self.server = None
        self._local = threading.local()
        self.log_requests = args.verbose

    def log(self, line):
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    # ----- event -----

    def match_route(self, method, raw_path):
        for route in self.routes:
            if route.segments is None:
                return route.key, None
            params = route.match(method, raw_path)
            if params is not None:
                return route.key, params
        return None, None

    def build_event(self, h, raw_path, raw_query, body, route_key, params):
        headers = {}
        cookies = []
        for name, value in h.headers.items():
            lname = name.lower()
            if lname == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
        client_ip = h.client_address[0]
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']}, {client_ip}" if "x-forwarded-for" in headers \
            else client_ip
        headers.setdefault("x-forwarded-port", str(self.port))
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-amzn-trace-id", _trace_id())
        now = datetime.datetime.now(datetime.timezone.utc)
        request_id = str(uuid.uuid4()) if self.function_url else _apigw_request_id()
        context = {
            "accountId": "anonymous" if self.function_url else self.account,
            "apiId": self.api_id,
            "domainName": self.domain,
            "domainPrefix": self.api_id,
            "http": {"method": h.command, "path": raw_path, "protocol": h.request_version,
                     "sourceIp": client_ip, "userAgent": headers.get("user-agent", "")},
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": f"{now.day:02d}/{MONTHS[now.month - 1]}/{now.year}:{now:%H:%M:%S} +0000",
            "timeEpoch": int(now.timestamp() * 1000),
        }
        event = {"version": "2.0", "routeKey": route_key, "rawPath": raw_path, "rawQueryString": raw_query}
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if raw_query:
            qs = {}
            for key, value in parse_qsl(raw_query, keep_blank_values=True):
                qs[key] = f"{qs[key]},{value}" if key in qs else value
            event["queryStringParameters"] = qs
        event["requestContext"] = context
        if body:
            text = None
            if is_text_content(headers.get("content-type")):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            event["body"] = text if text is not None else base64.b64encode(body).decode()
            event["isBase64Encoded"] = text is None
        else:
            event["isBase64Encoded"] = False
        if params:
            event["pathParameters"] = params
        return event, request_id, headers["x-amzn-trace-id"]

    # ----- invoke -----

    def invoke(self, payload, trace_id):
        """(status, headers dict lower-cased, body) from the invoke endpoint; raises TimeoutError,
        OSError or HTTPException. A kept-alive connection the endpoint has closed is retried once
        on a new connection (the request never reached it); nothing else is retried."""
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(self.invoke_host, self.invoke_port, timeout=self.timeout)
                self._local.conn = conn
            try:
                conn.request("POST", self.invoke_path, body=payload,
                             headers={"Content-Type": "application/json", "X-Amzn-Trace-Id": trace_id})
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self._local.conn = None
                stale = isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if reused and stale and attempt == 0:
                    continue
                raise
            if resp.will_close:
                conn.close()
                self._local.conn = None
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    # ----- response mapping -----

    def error_response(self, status, message):
        if self.function_url:
            return status, [("Content-Type", "text/plain; charset=utf-8")], message.encode()
        return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()

    def internal_error(self):
        return self.error_response(502, "Internal Server Error") if self.function_url \
            else self.error_response(500, "Internal Server Error")

    def map_result(self, status, headers, data):
        if status == 413:
            return self.error_response(413, "Request Entity Too Large")
        if status == 429:
            return self.error_response(429, "Too Many Requests")
        if status != 200 or "x-amz-function-error" in headers:
            return self.internal_error()
        try:
            result = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return self.internal_error()
        if not (isinstance(result, dict) and "statusCode" in result):
            body = result.encode() if isinstance(result, str) else data
            return 200, [("Content-Type", "application/json")], body
        try:
            return self.map_proxy(result)
        except (TypeError, ValueError):
            return self.internal_error()

    @staticmethod
    def map_proxy(result):
        code = result["statusCode"]
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
            raise ValueError("bad statusCode")
        out = []
        names = set()
        for name, value in (result.get("headers") or {}).items():
            if isinstance(value, (dict, list)) or value is None:
                raise ValueError("bad header value")
            if name.lower() in HOP_BY_HOP:
                continue
            names.add(name.lower())
            out.append((name, value if isinstance(value, str) else json.dumps(value)))
        for name, values in (result.get("multiValueHeaders") or {}).items():
            if not isinstance(values, list) or name.lower() in HOP_BY_HOP or name.lower() in names:
                continue
            out.extend((name, v if isinstance(v, str) else json.dumps(v)) for v in values)
        cookies = result.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise ValueError("bad cookies")
        out.extend(("Set-Cookie", c) for c in cookies)
        body = result.get("body")
        if body is None:
            raw = b""
        elif isinstance(body, str):
            raw = base64.b64decode(body, validate=True) if result.get("isBase64Encoded") else body.encode()
        else:
            raise ValueError("body must be a string")
        for name, value in out:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError("bad header")
        return code, out, raw

    # ----- server -----

    def handle(self, h):
        t0 = time.perf_counter()
        target = h.path
        if not target.startswith("/"):
            parts = urlsplit(target)  # absolute-form request target
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        try:
            body = h.read_body(self.max_request)
        except BodyTooLarge:
            status, headers, data = self.error_response(413, "Request Entity Too Large")
            self.reply(h, status, headers, data, None)
            return
        except BodyError:
            status, headers, data = self.error_response(400, "Bad Request")
            self.reply(h, status, headers, data, None)
            return
        route_key, params = self.match_route(h.command, raw_path)
        if route_key is None:
            status, headers, data = self.error_response(404, "Not Found")
            self.reply(h, status, headers, data, None)
            return
        event, request_id, trace_id = self.build_event(h, raw_path, raw_query, body, route_key, params)
        payload = json.dumps(event).encode()
        try:
            status, inv_headers, data = self.invoke(payload, trace_id)
            status, headers, data = self.map_result(status, inv_headers, data)
        except TimeoutError:
            status, headers, data = self.error_response(503, "Service Unavailable")
        except (http.client.HTTPException, OSError) as e:
            self.log(f"[front] invoke failed: {e!r}")
            status, headers, data = self.internal_error()
        self.reply(h, status, headers, data, request_id)
        if self.log_requests:
            self.log(f"[front] {h.command} {h.path} -> {status} ({(time.perf_counter() - t0) * 1000:.1f} ms)")

    def reply(self, h, status, headers, data, request_id):
        extra = list(headers)
        if request_id is not None:
            extra.append(("x-amzn-RequestId", request_id) if self.function_url else ("Apigw-Requestid", request_id))
        try:
            h.send_bytes(status, data, extra)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def start(self):
        front = self

        class Handler(BoundedHandler):
            def _any(self):
                front.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

        self.server = LocalServer(self.port, Handler)
        self.port = self.server.port
        self.server.start()

    def stop(self):
        if self.server is not None:
            self.server.stop()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="HTTP front: API Gateway HTTP API (v2) or Function URL events for a "
                                            "local Lambda.")
    p.add_argument("--invoke-url", required=True, help="the Lambda endpoint, e.g. http://127.0.0.1:9000")
    p.add_argument("--port", type=int, default=3000, help="listen port on 127.0.0.1 (0 picks a free one)")
    p.add_argument("--function-name", default="function", help="function name in the invoke path")
    p.add_argument("--function-url", action="store_true", help="build Lambda Function URL events")
    p.add_argument("--route", action="append", help="route key, e.g. 'POST /{operation}' or '$default' (repeatable)")
    p.add_argument("--integration-timeout", type=float,
                   help="seconds before 503 (default 30; Function URL mode: 900)")
    p.add_argument("--region", help="region in domain names (default $AWS_REGION or us-east-1)")
    p.add_argument("--account", default="123456789012", help="requestContext.accountId (HTTP API)")
    p.add_argument("--api-id", help="apiId / url-id (default random)")
    p.add_argument("--verbose", action="store_true", help="log one line per request on stderr")
    return p.parse_args(argv)


def main(argv=None):
    import signal

    args = parse_args(argv)
    try:
        front = Front(args)
    except ValueError as e:
        print(f"http_front: {e}", file=sys.stderr)
        return 2
    front.start()
    kind = "function url" if args.function_url else "http api"
    print(f"http front listening on 127.0.0.1:{front.port}", flush=True)
    front.log(f"[front] {kind} front on 127.0.0.1:{front.port} -> {args.invoke_url}{front.invoke_path}; "
              f"routes {', '.join(r.key for r in front.routes)}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    front.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
