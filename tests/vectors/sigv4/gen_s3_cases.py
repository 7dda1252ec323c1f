#!/usr/bin/env python3
"""Generates the S3-specific SigV4 cases in this folder with botocore's S3SigV4Auth (an independent
signer: the one boto3 and moto use), in the layout of the AWS signing test suite (context.json,
request.txt, header-canonical-request.txt, header-string-to-sign.txt, header-signature.txt).

The AWS suite covers generic SigV4; these cases cover what S3 adds: no path normalization, the path
encoded once, the x-amz-content-sha256 header (UNSIGNED-PAYLOAD and a signed body), session tokens,
and S3's list query. `aws-doc-get-range` reproduces the GET example of the S3 SigV4 documentation
("Example: GET Object", signature f0e8bdb8...), which also checks botocore itself.

Run from anywhere: python3 gen_s3_cases.py   (rewrites the case folders next to this file)."""
import hashlib
import json
import os
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
TEST_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE+token/with=special&chars=="

CASES = [
    # name, creds, token, region, timestamp, method, raw path, query (wire), headers, body, payload
    ("aws-doc-get-range", DOC_KEY, None, "us-east-1", "20130524T000000Z", "GET", "/test.txt", "",
     [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")], b"", None),
    ("s3-get-range-unsigned-payload", TEST_KEY, None, "eu-west-1", "20240229T235959Z", "GET",
     "/my-bucket/idx/clusters/000001.bin", "",
     [("Host", "127.0.0.1:5000"), ("Range", "bytes=1048576-1114111")], b"", "UNSIGNED-PAYLOAD"),
    ("s3-get-session-token", TEST_KEY, TOKEN, "us-west-2", "20250101T000000Z", "GET",
     "/idx/manifest", "", [("Host", "bucket.s3.us-west-2.amazonaws.com")], b"", "UNSIGNED-PAYLOAD"),
    ("s3-get-key-special-chars", TEST_KEY, None, "us-east-1", "20250101T000000Z", "GET",
     "/b/dir with space/a+b=c&d~e_f(1)/\u00e9t\u00e9.bin", "", [("Host", "127.0.0.1:5000")], b"",
     "UNSIGNED-PAYLOAD"),
    ("s3-put-signed-payload", TEST_KEY, TOKEN, "us-east-1", "20250101T120000Z", "PUT", "/b/idx/manifest",
     "", [("Host", "127.0.0.1:5000"), ("If-None-Match", "*"), ("Content-Type", "application/octet-stream")],
     b"manifest bytes \x00\x01\x02", None),
    ("s3-list-objects-v2", TEST_KEY, None, "us-east-1", "20250101T120000Z", "GET", "/b",
     "list-type=2&prefix=idx%2Fclusters%2F&delimiter=%2F&start-after=idx%2Fa%20b&continuation-token=1%2Bab%3D%3D",
     [("Host", "127.0.0.1:5000")], b"", None),
    ("s3-upload-part", TEST_KEY, None, "us-east-1", "20250101T120000Z", "PUT", "/b/big.bin",
     "partNumber=3&uploadId=VXBsb2FkIElE-x.y_z", [("Host", "127.0.0.1:5000")], bytes(range(256)) * 64, None),
]


def main():
    for name, (akid, secret), token, region, ts, method, path, query, headers, body, payload in CASES:
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        payload_hash = payload or hashlib.sha256(body).hexdigest()
        url = "http://" + dict(headers)["Host"] + quote(path.encode(), safe="/~")
        if query:
            url += "?" + query
        all_headers = list(headers) + [("X-Amz-Date", ts), ("X-Amz-Content-SHA256", payload_hash)]
        if token:
            all_headers.append(("X-Amz-Security-Token", token))
        req = AWSRequest(method=method, url=url, headers=dict(all_headers), data=body)
        req.context["timestamp"] = ts
        auth = S3SigV4Auth(Credentials(akid, secret, token), "s3", region)
        creq = auth.canonical_request(req)
        sts = auth.string_to_sign(req, creq)
        sig = auth.signature(sts, req)
        iso = f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:11]}:{ts[11:13]}:{ts[13:15]}Z"
        ctx = {"credentials": {"access_key_id": akid, "secret_access_key": secret}, "normalize": False,
               "region": region, "service": "s3", "sign_body": True, "timestamp": iso,
               "payload_hash": payload_hash}
        if token:
            ctx["credentials"]["token"] = token
        with open(os.path.join(d, "context.json"), "w") as f:
            json.dump(ctx, f, indent=4)
        line = f"{method} {path}{'?' + query if query else ''} HTTP/1.1\n"
        with open(os.path.join(d, "request.txt"), "wb") as f:
            f.write(line.encode() + "".join(f"{k}:{v}\n" for k, v in headers).encode() + b"\n" + body)
        for fname, text in (("header-canonical-request.txt", creq), ("header-string-to-sign.txt", sts),
                            ("header-signature.txt", sig)):
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)
        print(name, sig)


if __name__ == "__main__":
    main()
