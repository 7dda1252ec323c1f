#!/usr/bin/env python3
"""Integration test: the function zip (deploy/package.sh) runs where none of this machine's libraries
exist, and serves queries from S3 over TLS.

For one architecture (x86_64 here; test_deploy_zip_arm64.py runs the same steps for arm64 under
qemu-aarch64):
  1. package the bootstrap; check the zip's layout, its size against Lambda's limits, the patched ELF
     interpreter and DT_RPATH, and (x86_64) that packaging twice gives the same bytes. The zip is built
     the way it ships, `package.sh --deps static` (libcurl, cJSON, OpenSSL, zstd linked in; only glibc
     bundled), for the archs in STATIC_ARCHS; the others package Debian's shared libcurl (--deps
     dynamic), which keeps CI within its time budget (deploy/README.md, "CI");
  2. build a small index with the s3vec CLI in moto (local S3, SigV4 verified), reached by the function
     only through a TLS relay whose certificate is signed by a throwaway CA;
  3. unzip into an empty root (deploy/emptyroot.py: the package, /tmp, /proc, that CA at Amazon Linux's
     CA-bundle path, and decoy libraries where Lambda's LD_LIBRARY_PATH looks first), run the emulator
     outside and the bootstrap chrooted inside as an unprivileged user on a read-only root;
  4. query it directly and through the HTTP front with boto3's s3vectors client; compare with the CLI
     on the same S3 index; check a bad request is answered and the next one served;
  5. prove from the loader's own trace (LD_DEBUG=libs) that every library came from /var/task/lib.
Prints the zip size and the cold start's init duration. Needs root (mount namespaces, chroot).
Every server listens on 127.0.0.1 on a free port and is stopped at the end, also on failure.
Ends with "N passed, N failed"; exit status 1 on any failure.
"""

import hashlib
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[1])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
CLI = os.environ.get("S3VEC_BIN") or str(BUILD_DIR / "cli" / "s3vec")
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SOURCE_DIR / "deploy"))

import emptyroot  # noqa: E402  (deploy/emptyroot.py)
from s3lib.motoserver import MotoServer  # noqa: E402

PACKAGE = SOURCE_DIR / "deploy" / "package.sh"
EMULATOR = SOURCE_DIR / "deploy" / "local" / "emulator.py"
FRONT = SOURCE_DIR / "deploy" / "local" / "http_front.py"
DIM, ROWS, SEED = 16, 2000, 11
BUCKET, PREFIX, VB, INDEX = "s3vec-idx", "vectors", "demo-bucket", "demo-index"
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
LOADER = {"x86_64": "ld-linux-x86-64.so.2", "arm64": "ld-linux-aarch64.so.1"}
# Archs whose zip is built with static dependencies here (the static libcurl build costs 1-3 min per
# arch the first time; see deploy/README.md, "CI"). S3VEC_TEST_STATIC_ARCHS="x86_64" (comma-separated,
# "" for none) narrows it; the others package Debian's shared libraries (--deps dynamic).
STATIC_ARCHS = {a for a in os.environ.get("S3VEC_TEST_STATIC_ARCHS", "x86_64,arm64").split(",") if a}


class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
        return bool(cond)


R = Results()
check = R.check


def log(msg):
    print(msg, flush=True)


def apt_install(*pkgs):
    """Installs Debian packages that are missing (as root); returns True when all are present."""
    missing = [p for p in pkgs if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                                 text=True).stdout.find("install ok installed") < 0]
    if not missing:
        return True
    if os.geteuid() != 0:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # other tests may be installing at the same time
    cmd = ["apt-get"] + lock + ["install", "-y", "-q", "--no-install-recommends"] + missing
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get"] + lock + ["update", "-q"], env=env, capture_output=True)
        return subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    return True


# ------------------------------------------------------------------------------------------------
# data


def make_rows():
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        rows.append({"key": f"doc-{i}", "data": [round(rng.gauss(0, 1), 6) for _ in range(DIM)],
                     "metadata": {"genre": rng.choice(["drama", "comedy", "news"]), "year": 1990 + i % 35}})
    return rows


# ------------------------------------------------------------------------------------------------
# TLS in front of moto


def make_certs(d):
    """A throwaway CA and a server certificate for IP 127.0.0.1 signed by it (openssl CLI, EC keys)."""
    d = Path(d)

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)

    ext = d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    ossl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=s3vec test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    ossl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return d / "ca.pem", d / "server.pem", d / "server.key"


class TlsRelay:
    """Terminates TLS on 127.0.0.1:<free port> and relays the bytes to 127.0.0.1:target_port."""

    def __init__(self, target_port, cert, key):
        self.target = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw):
        try:
            raw.settimeout(30)
            tls = self.ctx.wrap_socket(raw, server_side=True)
            self.handshakes += 1
            up = socket.create_connection(("127.0.0.1", self.target), timeout=30)
        except (OSError, ssl.SSLError):
            raw.close()
            return

        def pump(src, dst):
            try:
                while True:
                    b = src.recv(65536)
                    if not b:
                        break
                    dst.sendall(b)
            except (OSError, ssl.SSLError):
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, tls), daemon=True)
        t.start()
        pump(tls, up)
        t.join(5)
        tls.close()
        up.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


# ------------------------------------------------------------------------------------------------
# servers


class Server:
    """A deploy/local server started on a free port; stop() terminates it."""

    def __init__(self, args, env, log_path):
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable] + [str(a) for a in args] + ["--port", "0"], env=env,
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}; see {log_path}")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def invoke(port, event, timeout=120):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/s3vec/invocations",
                                 data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read()), r.headers.get("X-Amz-Function-Error")


def query_event(vector, k=5, **extra):
    e = {"operation": "QueryVectors", "vectorBucketName": VB, "indexName": INDEX, "topK": k,
         "queryVector": {"float32": vector}, "returnDistance": True, "returnMetadata": True}
    e.update(extra)
    return e


# ------------------------------------------------------------------------------------------------


def package(arch, work, bootstrap=None):
    out = work / f"function-{arch}.zip"
    cmd = ["bash", str(PACKAGE), "--arch", arch, "--out", str(out), "--quiet"]
    if bootstrap:
        cmd += ["--bootstrap", str(bootstrap)]
    else:
        cmd += ["--build-dir", str(BUILD_DIR / f"package-{arch}"),
                "--deps", "static" if arch in STATIC_ARCHS else "dynamic"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SOURCE_DATE_EPOCH="1767225600"))
    if not check(r.returncode == 0, f"package.sh --arch {arch} exits 0 ({r.stderr[-2000:]})"):
        return None, {}
    line = r.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=", 1) for kv in line.split()[2:])
    log(f"  {line}  ({time.monotonic() - t0:.1f} s)")
    return out, fields


def zip_digest(path):
    """Digest of a zip's entries (name, mode, timestamp, bytes). The manifest's "source:" line is left
    out: it names the git commit, which other work may move between two packagings."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for i in z.infolist():
            b = z.read(i)
            if i.filename == "PACKAGE-MANIFEST.txt":
                b = b"\n".join(l for l in b.split(b"\n") if not l.startswith(b"source:"))
            h.update(f"{i.filename} {i.external_attr} {i.date_time}\n".encode() + b)
    return h.hexdigest()


def check_zip(arch, zpath, fields, work):
    size = zpath.stat().st_size
    check(int(fields.get("zip_bytes", -1)) == size, "summary line states the zip's size")
    check(size < emptyroot.ZIP_MAX_BYTES, f"zip ({size} bytes) is under Lambda's 50 MB direct-upload limit")
    with zipfile.ZipFile(zpath) as z:
        infos = {i.filename: i for i in z.infolist()}
        unzipped = sum(i.file_size for i in infos.values())
        check(unzipped < emptyroot.UNZIPPED_MAX_BYTES, f"unzipped ({unzipped} bytes) is under Lambda's 250 MB")
        check("bootstrap" in infos, "bootstrap is at the zip's root")
        mode = (infos["bootstrap"].external_attr >> 16) if "bootstrap" in infos else 0
        check(mode & 0o777 == 0o755 and (mode >> 12) == 0o10, f"bootstrap is a regular 0755 file ({oct(mode)})")
        check(f"lib/{LOADER[arch]}" in infos, f"the loader lib/{LOADER[arch]} is packaged")
        check("lib/libc.so.6" in infos, "libc is packaged")
        if arch in STATIC_ARCHS:
            shared = [n for n in infos if n.startswith("lib/") and not n.startswith(
                ("lib/libc.so", "lib/libm.so", "lib/ld-linux"))]
            check(not shared, f"static dependencies: only glibc and its loader are bundled ({shared})")
        else:
            check("lib/libcurl.so.4" in infos, "libcurl is packaged")
        stray = [n for n in infos if not (n == "bootstrap" or n == "PACKAGE-MANIFEST.txt" or
                                          (n.startswith("lib/") and "/" not in n[4:] and len(n) > 4))]
        check(not stray, f"nothing but bootstrap, lib/*.so* and the manifest ({stray})")
        head = z.read("bootstrap")[:20] if "bootstrap" in infos else b""
        check(int.from_bytes(head[18:20], "little") == ELF_MACHINE[arch], f"bootstrap is an {arch} ELF")
        manifest = z.read("PACKAGE-MANIFEST.txt").decode() if "PACKAGE-MANIFEST.txt" in infos else ""
        check(f"arch: {arch}" in manifest and "libc6" in manifest, "manifest names the arch and Debian packages")
        if arch in STATIC_ARCHS:
            check("Debian source package curl-" in manifest and "libssl-dev" in manifest,
                  "manifest names the Debian sources of the static libcurl and OpenSSL")
        (work / "x").mkdir(exist_ok=True)
        z.extract("bootstrap", work / "x")
    elf = subprocess.run(["readelf", "-l", "-d", str(work / "x" / "bootstrap")], capture_output=True, text=True).stdout
    check(f"[Requesting program interpreter: /var/task/lib/{LOADER[arch]}]" in elf,
          "ELF interpreter is /var/task/lib/<loader>")
    check("(RPATH)" in elf and "[$ORIGIN/lib]" in elf, "DT_RPATH is $ORIGIN/lib")
    check("(RUNPATH)" not in elf, "no DT_RUNPATH (it would lose to Lambda's LD_LIBRARY_PATH)")


def prepare_root(zpath, root, arch, ca):
    """emptyroot.prepare_root with the decoys planted here: the package's libm.so.6 (a real library of
    the right arch, present in static and dynamic packages alike, but the wrong one) as /lib64/libc.so.6
    and /usr/lib64/libcurl.so.4, the first places Lambda's LD_LIBRARY_PATH names. emptyroot's own decoy
    is the package's libz.so.1, which a static package does not have."""
    info = emptyroot.prepare_root(zpath, root, arch, ca_bundle=ca, decoys=False)
    wrong = Path(root) / "var" / "task" / "lib" / "libm.so.6"
    for d, name in (("lib64", "libc.so.6"), ("usr/lib64", "libcurl.so.4")):
        (Path(root) / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(wrong, Path(root) / d / name)
    return info


def runpath_control(zpath, work, ca, env, key, secret, s3_port, vector, servers):
    """Control for the decoys: the same package with DT_RUNPATH instead of DT_RPATH must fail in the
    same kind of root, because Lambda's LD_LIBRARY_PATH (/lib64 first) then wins. Shows the root would
    catch a packaging that only works where the host's libraries happen to match."""
    d = work / "control"
    d.mkdir()
    emptyroot.extract_zip(zpath, d / "pkg")
    subprocess.run(["patchelf", "--remove-rpath", str(d / "pkg" / "bootstrap")], check=True)
    subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/lib", str(d / "pkg" / "bootstrap")], check=True)
    bad_zip = d / "runpath.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        for p in sorted((d / "pkg").rglob("*")):
            if p.is_file():
                z.write(p, str(p.relative_to(d / "pkg")))
    info = prepare_root(bad_zip, d / "root", "x86_64", ca)
    (d / "launch").mkdir()
    launcher = emptyroot.write_launcher(d / "root", info["command"], d / "launch" / "bootstrap")
    emu = Server([EMULATOR, "--bootstrap", launcher, "--task-root", d / "launch", "--function-name", "s3vec",
                  "--timeout", "30", "--log-file", d / "emulator.log", "--env", "LAMBDA_TASK_ROOT=/var/task",
                  "--env", f"S3VEC_STORAGE=s3://{BUCKET}/{PREFIX}", "--env", f"AWS_ACCESS_KEY_ID={key}",
                  "--env", f"AWS_SECRET_ACCESS_KEY={secret}",
                  "--env", f"AWS_ENDPOINT_URL_S3=https://127.0.0.1:{s3_port}"], env, work / "servers.log")
    servers.append(emu)
    got, ferr = invoke(emu.port, query_event(vector))
    check(ferr and got.get("errorType") == "Runtime.ExitError",
          f"control: with DT_RUNPATH the bootstrap takes the decoy libc from /lib64 and cannot start ({got})")


def run(arch):
    log(f"=== deploy zip, {arch}")
    if os.geteuid() != 0:
        log("note: not root; the launcher tries an unprivileged user namespace")
    tools = ["zip", "patchelf", "binutils", "openssl"] + (["qemu-user"] if arch == "arm64" else [])
    check(apt_install(*tools), f"tools installed: {tools}")
    work = Path(tempfile.mkdtemp(prefix=f"s3vec-deploy-{arch}-"))
    servers, relay, moto = [], None, None
    saved_env = dict(os.environ)
    try:
        # 1. package
        bootstrap = BUILD_DIR / "bootstrap" / "bootstrap" if arch == "x86_64" else None
        if arch in STATIC_ARCHS:
            bootstrap = None   # package.sh builds it against the static dependencies
        elif arch == "x86_64" and not check(bootstrap.exists(), f"bootstrap built at {bootstrap}"):
            return
        zpath, fields = package(arch, work, bootstrap)
        if not zpath:
            return
        check_zip(arch, zpath, fields, work)
        if arch == "x86_64":
            again, _ = package(arch, work / "again", bootstrap)
            check(again and zip_digest(again) == zip_digest(zpath),
                  "packaging twice gives the same entries, bytes, modes and timestamps")

        # 2. data and S3 (moto behind TLS); no AWS_* of this machine may leak into anything
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        rows = make_rows()
        data = work / "demo.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        moto = MotoServer().start()
        key, secret = moto.create_user()
        moto.client(key, secret).create_bucket(Bucket=BUCKET)
        host_env = moto.env(key, secret)
        location = f"s3://{BUCKET}/{PREFIX}/{VB}/{INDEX}"
        r = subprocess.run([CLI, "build", location, "--input", str(data), "--metric", "cosine", "--seed", "3"],
                           env=host_env, capture_output=True, text=True)
        if not check(r.returncode == 0, f"s3vec build {location} ({r.stderr[-1500:]})"):
            return
        ca, cert, ckey = make_certs(work)
        relay = TlsRelay(moto.port, cert, ckey)

        # 3. the empty root and the emulator
        root = work / "root"
        info = prepare_root(zpath, root, arch, ca)
        tmp = emptyroot.make_tmp_dir(work / "tmp")
        (work / "launch").mkdir()
        launcher = emptyroot.write_launcher(root, info["command"], work / "launch" / "bootstrap", tmp_dir=tmp)
        emu_log = work / "emulator.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VEC_", "LD_"))}
        emu = Server([EMULATOR, "--bootstrap", launcher, "--task-root", work / "launch", "--function-name", "s3vec",
                      "--timeout", "120", "--init-timeout", "60", "--memory", "512", "--log-file", emu_log,
                      "--env", "LAMBDA_TASK_ROOT=/var/task", "--env", "LAMBDA_RUNTIME_DIR=/var/runtime",
                      "--env", f"S3VEC_STORAGE=s3://{BUCKET}/{PREFIX}", "--env", f"S3VEC_DEFAULT_INDEX={VB}/{INDEX}",
                      "--env", f"AWS_ACCESS_KEY_ID={key}", "--env", f"AWS_SECRET_ACCESS_KEY={secret}",
                      "--env", "AWS_REGION=us-east-1", "--env", f"AWS_ENDPOINT_URL_S3=https://127.0.0.1:{relay.port}",
                      "--env", "S3VEC_ROOT_LD_DEBUG=libs"], env, work / "servers.log")
        servers.append(emu)

        # 4. queries
        probe = rows[17]
        got, ferr = invoke(emu.port, query_event(probe["data"]))
        vecs = got.get("vectors") or []
        if not check(ferr is None and len(vecs) == 5, f"QueryVectors answers 5 vectors ({str(got)[:400]})"):
            log(emu_log.read_text()[-3000:])
            return
        check(vecs[0]["key"] == "doc-17" and abs(vecs[0]["distance"]) < 1e-5,
              f"a stored vector finds itself first at distance 0 ({vecs[0]})")
        check(vecs[0].get("metadata") == probe["metadata"], "its metadata comes back as stored")
        check(relay.handshakes > 0, f"S3 was reached over TLS ({relay.handshakes} handshakes)")
        cli = subprocess.run([CLI, "query", location, "--vector", json.dumps(probe["data"]), "-k", "5", "--json"],
                             env=host_env, capture_output=True, text=True)
        want = json.loads(cli.stdout)["vectors"] if cli.returncode == 0 else []
        check([v["key"] for v in vecs] == [w["key"] for w in want] and
              all(abs(v["distance"] - w["distance"]) < 1e-5 for v, w in zip(vecs, want)),
              f"same keys and distances as the CLI on the same S3 index ({want})")

        got, _ = invoke(emu.port, query_event(rows[5]["data"], k=10, filter={"genre": "news"}))
        fv = got.get("vectors") or []
        check(len(fv) == 10 and all(v["metadata"]["genre"] == "news" for v in fv),
              f"a filtered query returns 10 matches, all news ({str(got)[:300]})")

        got, _ = invoke(emu.port, {"operation": "GetVectors", "vectorBucketName": VB, "indexName": INDEX,
                                   "keys": ["doc-42"], "returnData": True})
        gv = (got.get("vectors") or [{}])[0]
        check(gv.get("key") == "doc-42" and
              all(abs(a - b) < 1e-6 for a, b in zip(gv.get("data", {}).get("float32", []), rows[42]["data"])) and
              len(gv.get("data", {}).get("float32", [])) == DIM, "GetVectors returns the stored data")

        bad, _ = invoke(emu.port, query_event(probe["data"], indexName="../escape"))
        check(bad.get("errorType") == "ValidationException", f"a bad index name is a ValidationException ({bad})")
        again, _ = invoke(emu.port, query_event(probe["data"], k=1))
        check((again.get("vectors") or [{}])[0].get("key") == "doc-17", "the next request is served normally")

        front = Server([FRONT, "--invoke-url", f"http://127.0.0.1:{emu.port}", "--function-name", "s3vec"], env,
                       work / "servers.log")
        servers.append(front)
        import boto3
        from botocore.config import Config
        sv = boto3.client("s3vectors", endpoint_url=f"http://127.0.0.1:{front.port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 1}))
        out = sv.query_vectors(vectorBucketName=VB, indexName=INDEX, topK=5, queryVector={"float32": probe["data"]},
                               returnDistance=True)
        check([v["key"] for v in out["vectors"]] == [v["key"] for v in vecs],
              "boto3's s3vectors client through the HTTP front gets the same answer")
        try:
            sv.query_vectors(vectorBucketName=VB, indexName="no-such-index", topK=1,
                             queryVector={"float32": probe["data"]})
            check(False, "an unknown index raises NotFoundException in boto3")
        except sv.exceptions.NotFoundException:
            check(True, "")

        stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{emu.port}/_emulator/stats", timeout=10))
        inv = stats.get("invocations") or []
        cold = [i for i in inv if i.get("cold")]
        check(len(cold) == 1 and stats.get("restarts") == 0, "one cold start; the runtime never restarted")
        init_ms = cold[0]["init_ms"] if cold else None

        # 5. the loader's own account of what it loaded
        trace = emptyroot.loader_trace(emptyroot.loader_trace_files(tmp))
        allowed = ["/var/task/lib/"] + (["/.qemu/"] if arch == "arm64" else [])
        check(len(trace.tried) >= (2 if arch in STATIC_ARCHS else 10),
              f"LD_DEBUG=libs trace was written ({len(trace.tried)} files tried)")
        check(not trace.outside(allowed), f"every library tried or initialised is under {allowed}: "
                                          f"{trace.outside(allowed)}")
        check("/var/task/lib/libc.so.6" in trace.inits, "the bootstrap initialised /var/task/lib/libc.so.6")
        if arch not in STATIC_ARCHS:
            check("/var/task/lib/libcurl.so.4" in trace.inits, "the bootstrap initialised /var/task/lib/libcurl.so.4")
        check(not any(p.startswith(("/lib64", "/usr/lib64")) for p in trace.tried),
              "the decoys in /lib64 and /usr/lib64 (first on LD_LIBRARY_PATH) were never tried")
        present = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        foreign = [p for p in present if not p.startswith(("var/task/", "etc/pki/tls/certs/", "lib64/libc.so.6",
                                                            "usr/lib64/libcurl.so.4", ".qemu/"))]
        check(not foreign, f"the root holds only the package, the CA bundle, decoys (and qemu): {foreign}")
        if arch == "arm64":
            qemu_libs = [p for p in present if p.startswith(".qemu/")]
            heads = {p: (root / p).read_bytes()[:20] for p in qemu_libs}
            check(all(int.from_bytes(h[18:20], "little") != 183 for h in heads.values()),
                  "nothing under /.qemu is aarch64 code the guest could load")
        if arch == "x86_64":
            runpath_control(zpath, work, ca, env, key, secret, relay.port, probe["data"], servers)
        log(f"  zip {zpath.stat().st_size} bytes ({int(fields.get('unzipped_bytes', 0))} unzipped, "
            f"{fields.get('libs')} libraries); cold start init {init_ms} ms in the empty root"
            + (" under qemu-aarch64" if arch == "arm64" else ""))
    except Exception:
        check(False, "unexpected exception:\n" + traceback.format_exc())
    finally:
        for s in reversed(servers):
            s.stop()
        if relay:
            relay.stop()
        if moto:
            moto.stop()
        os.environ.clear()
        os.environ.update(saved_env)
        if R.failed and os.environ.get("S3VEC_KEEP_TMP"):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(arch="x86_64"):
    run(arch)
    print(f"{R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
