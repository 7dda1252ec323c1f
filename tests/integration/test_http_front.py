#!/usr/bin/env python3
"""Integration tests for deploy/local/http_front.py (HTTP -> API Gateway v2 / Function URL events).

Each test starts the emulator (deploy/local/emulator.py with example_runtime.py) and a front on free
127.0.0.1 ports and always stops both. The example runtime echoes the event it received on path
/_event, runs a direct-invoke action from the body on /_action, and answers any other path with a
canned S3 Vectors-shaped reply (this tests the plumbing, not s3vec). Prints "N passed, N failed".
"""

import base64
import http.client
import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_emulator  # noqa: E402
from test_emulator import FRONT, Emulator, Server, check, http_request, run_all, test  # noqa: E402

test_emulator.TESTS.clear()  # only this file's tests run here


class Front(Server):
    def __init__(self, invoke_port, *args):
        super().__init__(FRONT, ["--invoke-url", f"http://127.0.0.1:{invoke_port}"] + list(args), "http front")


@contextmanager
def stack(emu_args=(), front_args=(), env=None):
    with Emulator(*emu_args, env=env) as emu:
        with Front(emu.port, *front_args) as front:
            yield emu, front


def get_event(front, method="GET", path="/_event", body=None, headers=None):
    status, hdrs, data = http_request(front.port, method, path, body, headers)
    assert status == 200, (status, data[:300])
    return json.loads(data), hdrs


def action(front, payload, path="/_action"):
    return http_request(front.port, "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


@test
def http_api_event_shape():
    with stack() as (emu, front):
        t0 = int(time.time() * 1000)
        # http.client cannot repeat a header via a dict; send the request by hand.
        sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
        body = b'{"q": "caf\xc3\xa9"}'
        sock.sendall(b"POST /_event?a=1&a=2&b=x%20y&empty= HTTP/1.1\r\nHost: api.local\r\n"
                     b"User-Agent: test-agent/1.0\r\nX-Dup: one\r\nX-Dup: two\r\nCookie: c1=v1; c2=v2\r\n"
                     b"Cookie: c3=v3\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        raw = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        sock.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), f"status line {head[:20]!r}")
        check(re.search(rb"(?i)\r\napigw-requestid: \S+", head), "apigw-requestid response header")
        ev = json.loads(payload)
        check(ev["version"] == "2.0", "version 2.0")
        check(ev["routeKey"] == "POST /{operation}", f"routeKey {ev['routeKey']}")
        check(ev.get("pathParameters") == {"operation": "_event"}, f"pathParameters {ev.get('pathParameters')}")
        check(ev["rawPath"] == "/_event", "rawPath")
        check(ev["rawQueryString"] == "a=1&a=2&b=x%20y&empty=", f"rawQueryString {ev['rawQueryString']}")
        check(ev["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""},
              f"queryStringParameters {ev['queryStringParameters']}")
        check(ev["cookies"] == ["c1=v1", "c2=v2", "c3=v3"], f"cookies {ev.get('cookies')}")
        h = ev["headers"]
        check(all(k == k.lower() for k in h), "header names lower-cased")
        check(h.get("x-dup") == "one,two", f"duplicate headers joined with commas ({h.get('x-dup')})")
        check("cookie" not in h, "cookie header moved to cookies")
        check(h.get("host") == "api.local" and h.get("content-type") == "application/json", "headers passed")
        check(h.get("content-length") == str(len(body)), "content-length passed through")
        check(h.get("x-forwarded-for") == "127.0.0.1" and h.get("x-forwarded-proto") == "http"
              and h.get("x-forwarded-port") == str(front.port), "x-forwarded-* added")
        check(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", h.get("x-amzn-trace-id", "")), "x-amzn-trace-id")
        check(ev["body"] == '{"q": "café"}' and ev["isBase64Encoded"] is False, "JSON body as text")
        rc = ev["requestContext"]
        check(rc["accountId"] == "123456789012", "accountId")
        check(re.fullmatch(r"[a-z0-9]{10}", rc["apiId"]), f"apiId {rc['apiId']}")
        check(rc["domainName"] == f"{rc['apiId']}.execute-api.us-east-1.amazonaws.com", "domainName")
        check(rc["domainPrefix"] == rc["apiId"], "domainPrefix")
        check(rc["http"] == {"method": "POST", "path": "/_event", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                             "userAgent": "test-agent/1.0"}, f"http {rc['http']}")
        check(re.fullmatch(r"[A-Za-z0-9]{14}=", rc["requestId"]), f"requestId {rc['requestId']}")
        check(rc["routeKey"] == ev["routeKey"] and rc["stage"] == "$default", "routeKey and stage")
        check(re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", rc["time"]), f"time {rc['time']}")
        check(t0 - 1000 <= rc["timeEpoch"] <= time.time() * 1000 + 1000, "timeEpoch is now")
        ev, _ = get_event(front, "GET", "/_event")
        check(ev["routeKey"] == "$default" and "pathParameters" not in ev, "GET falls to $default, no pathParameters")
        check(ev["rawQueryString"] == "" and "queryStringParameters" not in ev, "no query string")
        check("body" not in ev and ev["isBase64Encoded"] is False and "cookies" not in ev, "no body, no cookies")


@test
def routes_and_path_parameters():
    with stack() as (emu, front):
        status, hdrs, data = http_request(front.port, "POST", "/QueryVectors", b'{"indexName": "idx"}',
                                          {"Content-Type": "application/json"})
        md = json.loads(data)["vectors"][0]["metadata"]
        check(status == 200 and md["routeKey"] == "POST /{operation}", f"POST /QueryVectors routeKey {md['routeKey']}")
        check(md["operation"] == "QueryVectors" and md["body"] == {"indexName": "idx"}, "operation and body seen")
    with stack(front_args=["--route", "GET /items/{id}", "--route", "ANY /files/{path+}",
                           "--route", "GET /items/special"]) as (emu, front):
        # /_event is not routed here; the canned reply reports the routeKey the function saw.
        status, _, data = http_request(front.port, "GET", "/items/a%20b")
        md = json.loads(data)["vectors"][0]["metadata"]
        check(md["routeKey"] == "GET /items/{id}", "GET /items/{id}")
        status, _, data = http_request(front.port, "GET", "/items/special")
        check(json.loads(data)["vectors"][0]["metadata"]["routeKey"] == "GET /items/special", "literal route wins")
        status, _, data = http_request(front.port, "DELETE", "/files/x/y%2Fz")
        check(json.loads(data)["vectors"][0]["metadata"]["routeKey"] == "ANY /files/{path+}", "greedy ANY route")
        status, _, data = http_request(front.port, "POST", "/items/1")
        check(status == 404 and json.loads(data) == {"message": "Not Found"}, f"no route, no $default -> 404 ({status})")
    with stack(front_args=["--route", "ANY /{proxy+}"]) as (emu, front):
        ev, _ = get_event(front, "GET", "/_event")
        check(ev["routeKey"] == "ANY /{proxy+}" and ev["pathParameters"] == {"proxy": "_event"},
              f"pathParameters {ev.get('pathParameters')}")


@test
def binary_bodies_are_base64():
    with stack() as (emu, front):
        blob = bytes(range(256)) * 4
        ev, _ = get_event(front, "POST", "/_event", blob, {"Content-Type": "application/octet-stream"})
        check(ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == blob, "octet-stream -> base64")
        ev, _ = get_event(front, "POST", "/_event", b"\xff\xfe not utf-8", {"Content-Type": "text/plain"})
        check(ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == b"\xff\xfe not utf-8",
              "invalid UTF-8 text -> base64")
        ev, _ = get_event(front, "POST", "/_event", b"hello", {"Content-Type": "text/plain; charset=utf-8"})
        check(ev["isBase64Encoded"] is False and ev["body"] == "hello", "text/plain stays text")
        ev, _ = get_event(front, "POST", "/_event", b"<a/>", {"Content-Type": "application/soap+xml"})
        check(ev["isBase64Encoded"] is False, "+xml stays text")
        ev, _ = get_event(front, "POST", "/_event", b"abc")
        check(ev["isBase64Encoded"] is True, "no content type -> base64")
        # Chunked request body.
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        conn.request("POST", "/_event", body=iter([b'{"a":', b' 1}']), headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        resp = conn.getresponse()
        ev = json.loads(resp.read())
        conn.close()
        check(resp.status == 200 and ev["body"] == '{"a": 1}', "chunked request body reassembled")


@test
def response_mapping():
    with stack() as (emu, front):
        proxy = {"statusCode": 201, "headers": {"x-a": "1", "content-type": "text/plain", "Connection": "bogus"},
                 "multiValueHeaders": {"x-m": ["1", "2"]}, "cookies": ["c1=v1", "c2=v2; Path=/"], "body": "hello"}
        status, hdrs, data = action(front, {"action": "proxy", "response": proxy})
        check(status == 201 and data == b"hello", f"statusCode and body ({status}, {data!r})")
        check(hdrs.get("x-a") == "1" and hdrs.get("content-type") == "text/plain", "headers")
        check(hdrs.get_all("x-m") == ["1", "2"], f"multiValueHeaders {hdrs.get_all('x-m')}")
        check(hdrs.get_all("set-cookie") == ["c1=v1", "c2=v2; Path=/"], "cookies -> Set-Cookie")
        check(hdrs.get("connection") != "bogus", "hop-by-hop header from the function dropped")
        blob = bytes(range(256))
        status, hdrs, data = action(front, {"action": "proxy", "response": {
            "statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(blob).decode(),
            "headers": {"content-type": "application/octet-stream"}}})
        check(status == 200 and data == blob, "isBase64Encoded response decoded")
        status, hdrs, data = action(front, {"action": "proxy", "response": {"vectors": [], "n": 1}})
        check(status == 200 and hdrs.get("content-type") == "application/json" and
              json.loads(data) == {"vectors": [], "n": 1}, "no statusCode -> 200 JSON body")
        status, hdrs, data = action(front, {"action": "proxy", "response": "Hello from Lambda!"})
        check(status == 200 and data == b"Hello from Lambda!", f"string result -> body text ({data!r})")
        status, _, data = action(front, {"action": "proxy", "response": {"statusCode": 204}})
        check(status == 204 and data == b"", "statusCode without body")
        for bad in ({"statusCode": "abc"}, {"statusCode": 700}, {"statusCode": 200, "body": {"x": 1}},
                    {"statusCode": 200, "isBase64Encoded": True, "body": "***"}):
            status, _, data = action(front, {"action": "proxy", "response": bad})
            check(status == 500 and json.loads(data) == {"message": "Internal Server Error"},
                  f"invalid proxy response {bad} -> 500 ({status})")
        status, _, data = action(front, {"action": "error"})
        check(status == 500 and json.loads(data) == {"message": "Internal Server Error"},
              f"function error -> 500 Internal Server Error ({status})")
        status, hdrs, data = http_request(front.port, "HEAD", "/QueryVectors")
        check(status == 200 and data == b"" and int(hdrs["content-length"]) > 0, "HEAD: headers only")


@test
def timeouts_and_limits():
    with stack(emu_args=["--timeout", "1"], front_args=["--integration-timeout", "3"]) as (emu, front):
        t0 = time.time()
        status, _, data = action(front, {"action": "sleep", "seconds": 10})
        check(status == 500 and json.loads(data) == {"message": "Internal Server Error"} and time.time() - t0 < 3,
              f"Lambda timeout -> 500 ({status})")
    with stack(emu_args=["--timeout", "5"], front_args=["--integration-timeout", "0.5"]) as (emu, front):
        t0 = time.time()
        status, _, data = action(front, {"action": "sleep", "seconds": 1.5})
        check(status == 503 and json.loads(data) == {"message": "Service Unavailable"},
              f"integration timeout -> 503 Service Unavailable ({status})")
        check(time.time() - t0 < 1.4, "answered at the integration timeout")
        time.sleep(1.5)
        status, _, _ = action(front, {"action": "echo"})
        check(status == 200, "the front recovers after an integration timeout")
    with stack() as (emu, front):
        status, _, data = http_request(front.port, "POST", "/_event", b"x" * (10 * 1024 * 1024 + 1),
                                       {"Content-Type": "text/plain"})
        check(status == 413 and json.loads(data) == {"message": "Request Entity Too Large"},
              f"> 10 MB request -> 413 at the front ({status})")
        status, _, data = http_request(front.port, "POST", "/_event", b"x" * (7 * 1024 * 1024),
                                       {"Content-Type": "text/plain"})
        check(status == 413, f"7 MB request passes the front but not Lambda's 6 MB -> 413 ({status})")
        check(emu.stats()["counts"] == {}, "the function was not invoked for oversized requests")
        status, _, data = action(front, {"action": "big", "size": 7 * 1024 * 1024})
        check(status == 500, f"oversized function response -> 500 ({status})")


@test
def function_url_mode():
    with stack(front_args=["--function-url"]) as (emu, front):
        ev, hdrs = get_event(front, "POST", "/_event", b'{"a": 1}',
                             {"Content-Type": "application/json", "Cookie": "k=v"})
        rc = ev["requestContext"]
        check(ev["routeKey"] == "$default" and rc["routeKey"] == "$default" and rc["stage"] == "$default",
              "function URL route key and stage")
        check(re.fullmatch(r"[a-z0-9]{32}", rc["apiId"]), f"url id {rc['apiId']}")
        check(rc["domainName"] == f"{rc['apiId']}.lambda-url.us-east-1.on.aws", f"domainName {rc['domainName']}")
        check(re.fullmatch(r"[0-9a-f-]{36}", rc["requestId"]), "uuid request id")
        check("pathParameters" not in ev and ev["cookies"] == ["k=v"], "no pathParameters; cookies")
        check(re.fullmatch(r"[0-9a-f-]{36}", hdrs.get("x-amzn-RequestId", "")), "x-amzn-RequestId header")
        status, hdrs, data = action(front, {"action": "error"})
        check(status == 502 and data == b"Internal Server Error", f"function error -> 502 ({status})")
        status, _, data = http_request(front.port, "POST", "/_event", b"x" * (6 * 1024 * 1024 + 1),
                                       {"Content-Type": "text/plain"})
        check(status == 413, f"function URL 6 MB request limit ({status})")


@test
def boto3_s3vectors_through_the_front():
    import boto3
    from botocore.config import Config

    with stack() as (emu, front):
        client = boto3.client("s3vectors", endpoint_url=f"http://127.0.0.1:{front.port}", region_name="us-east-1",
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                              config=Config(retries={"max_attempts": 1}))
        r = client.query_vectors(vectorBucketName="bucket-1", indexName="index-1",
                                 queryVector={"float32": [0.25, -1.5]}, topK=7, returnMetadata=True)
        check(r["ResponseMetadata"]["HTTPStatusCode"] == 200, "boto3 call succeeded")
        check(r["distanceMetric"] == "cosine" and r["vectors"][0]["key"] == "seen", "canned reply parsed by boto3")
        md = r["vectors"][0]["metadata"]
        check(md["method"] == "POST" and md["rawPath"] == "/QueryVectors" and md["routeKey"] == "POST /{operation}",
              f"the function saw POST /QueryVectors ({md['method']} {md['rawPath']})")
        check(md["body"] == {"vectorBucketName": "bucket-1", "indexName": "index-1",
                             "queryVector": {"float32": [0.25, -1.5]}, "topK": 7, "returnMetadata": True},
              f"the function saw the request body ({md['body']})")
        check(md["isBase64Encoded"] is False, "JSON body not base64-encoded")
        check(md["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
              and "/us-east-1/s3vectors/aws4_request" in md["authorization"], "SigV4 header passed through")
        r = client.put_vectors(vectorBucketName="bucket-1", indexName="index-1",
                               vectors=[{"key": "k1", "data": {"float32": [1.0, 2.0]}, "metadata": {"genre": "x"}}])
        check(r["ResponseMetadata"]["HTTPStatusCode"] == 200, "PutVectors plumbed")
        invs = emu.stats()["invocations"]
        check(len(invs) == 2 and all(i["status"] == "ok" for i in invs), "two invocations, both ok")


@test
def keep_alive_connections():
    with stack() as (emu, front):
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        socks = set()
        for i in range(3):
            conn.request("POST", "/QueryVectors", body=json.dumps({"i": i}), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read())
            check(resp.status == 200 and data["vectors"][0]["metadata"]["body"] == {"i": i}, f"request {i}")
            socks.add(id(conn.sock))
        conn.close()
        check(len(socks) == 1, "three requests on one keep-alive connection")


if __name__ == "__main__":
    sys.exit(run_all("test_http_front"))
