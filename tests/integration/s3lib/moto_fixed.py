"""moto_server with its SigV4 verification fixed for percent-encoded URLs.

moto 5.2 recomputes a request's signature from the URL Werkzeug hands it, which is already
percent-decoded: a ListObjectsV2 prefix holding '/' (sent as %2F, as SigV4 requires) or a key holding
a space is canonicalised as '/' or ' ', so every correctly signed request of that kind fails with
SignatureDoesNotMatch, boto3's included. Opening an index lists its log ("<index>/log/"), so without
the fix no index could be opened against a verifying moto.

patch() makes the check use the request line exactly as it arrived (Werkzeug's RAW_URI), which is what
AWS signs and verifies. Nothing else in moto changes.

atomic_puts() makes PutObject one step, as in S3: moto 5.2 checks If-None-Match / If-Match and then
writes, so two concurrent conditional puts of one key can both succeed. The write-ahead log's tests and
benchmark need S3's behaviour (exactly one of them wins).

Run as a program it is moto_server, with --atomic-puts as an extra option:

    python3 moto_fixed.py [--atomic-puts] -H 127.0.0.1 -p PORT
"""
import sys
from urllib.parse import urlparse, urlunparse


def patch():
    from moto.core import authorization

    mixin = authorization.ActionAuthenticatorMixin
    if getattr(mixin, "_s3vec_raw_uri", False):
        return
    original = mixin._authenticate_and_authorize_action

    def authenticate_raw(self, iam_request_cls, resource="*"):
        environ = getattr(getattr(self, "request", None), "environ", None) or {}
        raw = environ.get("RAW_URI")
        if not raw:
            return original(self, iam_request_cls, resource)
        raw_url = urlparse(raw)
        decoded = self.uri
        self.uri = urlunparse(urlparse(decoded)._replace(path=raw_url.path, query=raw_url.query))
        try:
            return original(self, iam_request_cls, resource)
        finally:
            self.uri = decoded

    mixin._authenticate_and_authorize_action = authenticate_raw
    mixin._s3vec_raw_uri = True


def atomic_puts():
    import threading

    from moto.s3.responses import S3Response

    if getattr(S3Response, "_s3vec_atomic_puts", False):
        return
    lock = threading.Lock()
    put_object = S3Response.put_object

    def atomic_put_object(self, *a, **k):
        with lock:  # the condition check and the write happen as one step
            return put_object(self, *a, **k)

    S3Response.put_object = atomic_put_object
    S3Response._s3vec_atomic_puts = True


def main(argv):
    patch()
    if "--atomic-puts" in argv:
        argv = [a for a in argv if a != "--atomic-puts"]
        atomic_puts()
    from moto.server import main as moto_main

    return moto_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
