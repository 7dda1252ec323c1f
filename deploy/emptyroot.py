#!/usr/bin/env python3
"""deploy/emptyroot.py: run a packaged function zip in an otherwise empty root, under the local Lambda.

    sudo python3 deploy/emptyroot.py build/package-x86_64/function-x86_64.zip -- \\
        --port 9000 --timeout 30 --env S3VEC_STORAGE=s3://my-bucket/vectors

The root holds only what a Lambda sandbox would give a provided.al2023 function and nothing of this
machine's libraries:
  /var/task/...                          the unzipped package (read-only at run time)
  /tmp                                   a fresh tmpfs (512 MB, like Lambda's default /tmp)
  /proc                                  this machine's /proc
  /etc/pki/tls/certs/ca-bundle.crt       a CA bundle where Amazon Linux keeps it (--ca-bundle)
  /lib64/libc.so.6, /usr/lib64/libcurl.so.4
                                         decoys: a *different* library (the package's own libz or libm) under
                                         the names the bootstrap needs, in the folders Lambda puts first
                                         on LD_LIBRARY_PATH. If the loader ever took a library from there
                                         (as it would with DT_RUNPATH), the bootstrap would fail to start.
  /.qemu/...                             arm64 zip on an x86_64 machine only: qemu-aarch64 with its own
                                         x86_64 libraries and loader (no aarch64 code: the guest cannot
                                         load any of it)
The emulator (deploy/local/emulator.py) runs outside; its --bootstrap is a launcher script that, in a
new mount namespace, makes the root read-only, mounts /proc and /tmp, and chroots into it as user
993:990 (Lambda's sandbox user ids), running /var/task/bootstrap (or qemu-aarch64 /var/task/bootstrap).
Root is needed (mount, chroot); without it the launcher uses an unprivileged user namespace (unshare -r)
where the kernel allows it, keeping uid 0 inside.

Everything after "--" goes to emulator.py; LAMBDA_TASK_ROOT=/var/task and LAMBDA_RUNTIME_DIR=/var/runtime
are added. The root is removed on exit unless --keep DIR names where to build it.

As a module (the tests use it): prepare_root(), write_launcher(), loader_trace() and LoaderTrace.
"""

import argparse
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMULATOR = HERE / "local" / "emulator.py"
TASK_ROOT = "/var/task"
SANDBOX_USER = "993:990"
LD_DEBUG_DIR = "s3vec-ld-debug-%d" % (os.getpid() % 100000)  # absent from the host's /tmp
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
ZIP_MAX_BYTES = 50 * 1024 * 1024         # Lambda: zipped deployment package, direct upload
UNZIPPED_MAX_BYTES = 250 * 1024 * 1024   # Lambda: unzipped, including layers


def host_arch():
    m = os.uname().machine
    return "arm64" if m in ("aarch64", "arm64") else m


def extract_zip(zip_path, dest):
    """Unzips into dest with the modes stored in the zip; refuses absolute or '..' names and links.
    Returns (files, unzipped_bytes)."""
    files, total = 0, 0
    dest = Path(dest)
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            name = info.filename
            parts = Path(name).parts
            if name.startswith("/") or ".." in parts or not parts:
                raise ValueError(f"unsafe name in zip: {name!r}")
            mode = (info.external_attr >> 16) & 0o177777
            if stat.S_ISLNK(mode):
                raise ValueError(f"symbolic link in zip: {name!r}")
            target = dest / name
            if name.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(target, (mode & 0o7777) or 0o644)
            files += 1
            total += info.file_size
    return files, total


def _bundle_host_program(program, dest):
    """Copies a host program, its shared libraries (per ldd) and the loader into dest; returns the
    argv prefix that runs it there: [loader, --library-path, dest, program]."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    loader = None
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            shutil.copy(os.path.realpath(m.group(2)), dest / m.group(1))
            continue
        m = re.match(r"\s*(/\S+ld-linux\S*) \(", line)
        if m:
            loader = m.group(1)
    if not loader:
        raise RuntimeError(f"no loader found for {program}")
    shutil.copy(os.path.realpath(loader), dest / os.path.basename(loader))
    shutil.copy(os.path.realpath(program), dest / os.path.basename(program))
    inside = "/" + dest.name
    return [f"{inside}/{os.path.basename(loader)}", "--library-path", inside, f"{inside}/{os.path.basename(program)}"]


def prepare_root(zip_path, root, arch, ca_bundle=None, decoys=True):
    """Builds the empty root in `root` (created; must be empty or absent). Returns a dict:
    command (argv inside the root), files, unzipped_bytes, ca_bundle (path inside)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    os.chmod(root, 0o755)
    task = root / TASK_ROOT.lstrip("/")
    task.mkdir(parents=True)
    files, unzipped = extract_zip(zip_path, task)
    if not (task / "bootstrap").is_file() or not os.access(task / "bootstrap", os.X_OK):
        raise ValueError("the zip has no executable bootstrap at its root")
    for d in ("tmp", "proc", "etc/pki/tls/certs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    ca = ca_bundle or next((p for p in HOST_CA_BUNDLES if os.path.exists(p)), None)
    if ca:
        shutil.copy(ca, root / "etc/pki/tls/certs/ca-bundle.crt")
    if decoys:
        # any bundled library that is not libc serves as the wrong file (static zips bundle only glibc)
        wrong = next((task / "lib" / n for n in ("libz.so.1", "libm.so.6") if (task / "lib" / n).exists()), None)
        if wrong is None:
            raise ValueError("the zip bundles neither lib/libz.so.1 nor lib/libm.so.6 to plant as a decoy")
        for d, name in (("lib64", "libc.so.6"), ("usr/lib64", "libcurl.so.4")):
            (root / d).mkdir(parents=True, exist_ok=True)
            shutil.copy(wrong, root / d / name)
    command = [f"{TASK_ROOT}/bootstrap"]
    if arch == "arm64" and host_arch() != "arm64":
        qemu = shutil.which("qemu-aarch64")
        if not qemu:
            raise RuntimeError("qemu-aarch64 is not installed (Debian package qemu-user)")
        command = _bundle_host_program(qemu, root / ".qemu") + command
    return {"command": command, "files": files, "unzipped_bytes": unzipped,
            "ca_bundle": "/etc/pki/tls/certs/ca-bundle.crt" if ca else None}


def _tool(name):
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")
    if not path:
        raise RuntimeError(f"{name} is not installed")
    return path


def write_launcher(root, command, path, user=SANDBOX_USER, tmp_dir=None):
    """Writes an executable sh script at `path` that runs `command` chrooted into `root` (see the
    module doc). /tmp inside is a fresh tmpfs, or the host folder tmp_dir (bind-mounted) so that what
    the function leaves there can be read afterwards. When the launcher's environment has
    S3VEC_ROOT_LD_DEBUG=libs (or any LD_DEBUG value), only the chrooted program gets LD_DEBUG, and its
    loader writes to /tmp/<LD_DEBUG_DIR>/trace.<pid> inside the root (read them with
    loader_trace_files(tmp_dir)). That folder exists in tmp_dir only (make_tmp_dir), so chroot's own
    loader, which runs before the chroot and would write to the host's /tmp, finds no such folder
    and falls back to stderr. Returns path."""
    root = os.path.abspath(root)
    privileged = os.geteuid() == 0
    unshare = _tool("unshare") + (" -m" if privileged else " -r -m") + " --propagation private"
    mount, chroot = _tool("mount"), _tool("chroot")
    proc_mount = f'{mount} --bind /proc "$r/proc"' if privileged else f'{mount} --rbind /proc "$r/proc"'
    if tmp_dir:
        tmp_mount = f'{mount} --bind {shlex.quote(os.path.abspath(tmp_dir))} "$r/tmp"'
    else:
        tmp_mount = f'{mount} -t tmpfs -o size=512m,mode=1777 tmpfs "$r/tmp"'
    userspec = f"--userspec={user} " if privileged and user else ""
    inner = "\n".join([
        "set -e",
        "r=$0 dbg=$1 dbgdir=$2",
        f'{mount} --bind "$r" "$r"',
        f'{mount} -o remount,bind,ro "$r"',
        proc_mount,
        tmp_mount,
        'if [ -n "$dbg" ]; then export LD_DEBUG="$dbg" LD_DEBUG_OUTPUT="/tmp/$dbgdir/trace"; fi',
        f'exec {chroot} {userspec}"$r" {" ".join(shlex.quote(c) for c in command)}',
    ])
    script = "\n".join([
        "#!/bin/sh",
        "# generated by deploy/emptyroot.py: run the packaged bootstrap chrooted into an empty root",
        'dbg=${S3VEC_ROOT_LD_DEBUG-}',
        "unset S3VEC_ROOT_LD_DEBUG LD_DEBUG LD_DEBUG_OUTPUT",
        f'exec {unshare} -- /bin/sh -c {shlex.quote(inner)} {shlex.quote(root)} "$dbg" {LD_DEBUG_DIR}',
        "",
    ])
    Path(path).write_text(script)
    os.chmod(path, 0o755)
    return path


def loader_trace_files(tmp_dir):
    """The text of every LD_DEBUG trace the chrooted program wrote under tmp_dir."""
    d = Path(tmp_dir) / LD_DEBUG_DIR
    return "".join(p.read_text(errors="replace") for p in sorted(d.glob("trace.*"))) if d.is_dir() else ""


def make_tmp_dir(path):
    """A host folder to bind as the root's /tmp (mode 1777, with the LD_DEBUG folder in it)."""
    p = Path(path)
    (p / LD_DEBUG_DIR).mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o1777)
    os.chmod(p / LD_DEBUG_DIR, 0o1777)
    return p


class LoaderTrace:
    """What LD_DEBUG=libs printed: every file the loaders tried and initialised."""

    def __init__(self, tried, inits):
        self.tried = tried    # paths from "trying file=..."
        self.inits = inits    # paths from "calling init: ..."

    def outside(self, allowed_prefixes):
        """Paths tried or initialised that are not under one of allowed_prefixes."""
        return sorted({p for p in self.tried + self.inits
                       if not any(p.startswith(a) for a in allowed_prefixes)})


def loader_trace(log_text):
    """Parses LD_DEBUG=libs output (as the emulator logs it, prefixed or not)."""
    tried = re.findall(r"trying file=(\S+)", log_text)
    inits = re.findall(r"calling init: (\S+)", log_text)
    return LoaderTrace(tried, inits)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    emu_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, emu_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zip")
    ap.add_argument("--arch", choices=("x86_64", "arm64"), help="default: read from the zip's bootstrap")
    ap.add_argument("--ca-bundle", help="CA bundle to place at /etc/pki/tls/certs/ca-bundle.crt")
    ap.add_argument("--keep", help="build the root here and keep it")
    ap.add_argument("--no-decoys", action="store_true", help="leave /lib64 and /usr/lib64 out")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the emulator")
    a = ap.parse_args(argv)
    arch = a.arch
    if not arch:
        with zipfile.ZipFile(a.zip) as z, z.open("bootstrap") as f:
            head = f.read(20)
        arch = "arm64" if int.from_bytes(head[18:20], "little") == 183 else "x86_64"
    work = Path(tempfile.mkdtemp(prefix="s3vec-emptyroot-"))
    root = Path(a.keep) if a.keep else work / "root"
    try:
        info = prepare_root(a.zip, root, arch, a.ca_bundle, decoys=not a.no_decoys)
        launcher = write_launcher(root, info["command"], work / "bootstrap")
        print(f"emptyroot: {root} ({info['files']} files, {info['unzipped_bytes']} bytes), arch {arch}",
              file=sys.stderr, flush=True)
        cmd = [a.python, str(EMULATOR), "--bootstrap", str(launcher), "--task-root", str(work),
               "--env", f"LAMBDA_TASK_ROOT={TASK_ROOT}", "--env", "LAMBDA_RUNTIME_DIR=/var/runtime"] + emu_args
        proc = subprocess.Popen(cmd)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
