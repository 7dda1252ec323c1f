"""MotoServer: moto_server on 127.0.0.1 with SigV4 verification, for tests (started through
moto_fixed.py, which makes moto verify percent-encoded URLs as AWS does).

    with MotoServer() as moto:                      # starts, waits until it answers
        key, secret = moto.create_user()            # IAM user + access key + s3:* policy
        s3 = moto.client(key, secret)               # boto3 S3 client, signed with those keys
        s3.create_bucket(Bucket="b")
        env = moto.env(key, secret)                 # AWS_* variables for s3vec programs
    # stopped (also on exceptions)

MotoServer(atomic_puts=True): PutObject's condition check and write are one step, as in S3
(moto_fixed.atomic_puts); the write-ahead log's tests and benchmark need it.

Signature verification: moto serves the first `no_auth_actions` requests unauthenticated (the
user, policy and key creation need them, 3 by default) and verifies every later request's
signature against the IAM keys it knows. create_user() (5 IAM calls: user, policy, key, role, role
policy) must therefore be the first thing called. assume_role() then gives temporary credentials with a
session token (STS AssumeRole, signed with the user's keys), which moto also verifies.
A moto_server that does not start within `start_timeout` raises RuntimeError with its output."""
import os
import socket
import subprocess
import sys
import tempfile
import time

REGION = "us-east-1"
S3_ALL_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","sts:AssumeRole"],"Resource":"*"}]}'
TRUST_POLICY = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},'
                '"Action":"sts:AssumeRole"}]}')
ROLE_NAME = "s3vec-test-role"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self, auth=True, no_auth_actions=5, start_timeout=30.0, atomic_puts=False):
        self.auth = auth
        self.atomic_puts = atomic_puts
        self.no_auth_actions = no_auth_actions
        self.start_timeout = start_timeout
        self.port = None
        self.proc = None
        self._log = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_fixed.py")
        env = dict(os.environ)
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.no_auth_actions)
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        self._log = tempfile.TemporaryFile()
        for _ in range(5):  # a port picked free can be taken by someone else meanwhile
            self.port = free_port()
            self.proc = subprocess.Popen([sys.executable, launcher] + (["--atomic-puts"] if self.atomic_puts else []) +
                                         ["-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError("moto_server did not start: " + self.output())

    def _wait_ready(self):
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def output(self):
        if not self._log:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._log:
            self._log.close()
            self._log = None

    def _boto(self, service, key="unused", secret="unused", endpoint=None):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=endpoint or self.endpoint, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def set_auth(self, verify):
        """Turns signature verification on (every later request is checked) or off, at run time,
        through moto's /moto-api/reset-auth."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset-auth", body=b"0" if verify else b"inf")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"moto reset-auth answered {r.status}")
        finally:
            conn.close()

    def create_user(self, name="s3vec-test"):
        """Creates an IAM user allowed s3:* and returns (access_key_id, secret_access_key).
        Uses the unauthenticated requests, so call it first."""
        iam = self._boto("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="s3-all", PolicyDocument=S3_ALL_POLICY)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
        iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="s3-all", PolicyDocument=S3_ALL_POLICY)
        self.role_arn = role["Arn"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def assume_role(self, key, secret):
        """Temporary credentials (access key id, secret, session token) for the test role."""
        sts = self._boto("sts", key, secret)
        c = sts.assume_role(RoleArn=self.role_arn, RoleSessionName="s3vec")["Credentials"]
        return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]

    def client(self, key, secret, endpoint=None):
        """A boto3 S3 client (path-style) signed with these keys, to moto or to endpoint."""
        return self._boto("s3", key, secret, endpoint)

    def env(self, key, secret, endpoint=None, extra=None):
        """Environment for s3vec programs: only the AWS_* variables they need (HOME points nowhere
        so no shared files are read), plus extra."""
        e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VEC_S3_"))}
        e.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": REGION,
                  "AWS_ENDPOINT_URL_S3": endpoint or self.endpoint, "HOME": "/nonexistent"})
        e.update(extra or {})
        return e
