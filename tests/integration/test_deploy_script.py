#!/usr/bin/env python3
"""Integration test: deploy/deploy.sh, without an AWS account.

  1. --dry-run prints the exact commands (package.sh, aws cloudformation package / deploy /
     describe-stacks) with the stack, bucket, prefix, capabilities and every parameter override, and runs
     nothing: stand-ins for aws, sam, cmake and package.sh on PATH record any call, and none is made;
     nothing is written to the work folder.
  2. Bad arguments (unknown parameter, bad bucket name, missing --index-bucket, a zip of the wrong
     architecture) exit 2 before any command.
  3. A real run with `aws` replaced by a recorder that hands `cloudformation package` and `s3` to the
     real AWS CLI pointed at moto (local S3): the zip is uploaded under s3://ARTIFACTS/s3vec/STACK/, the
     packaged template's CodeUri names that object, and `cloudformation deploy` receives the same
     arguments the dry run printed. Teardown deletes the stack (recorded) and, with
     --delete-artifacts, the uploaded zip (really, in moto).
Ends with "N passed, N failed".
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[1])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
DEPLOY = SOURCE_DIR / "deploy" / "deploy.sh"
sys.path.insert(0, str(HERE))
from s3lib.motoserver import MotoServer  # noqa: E402


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


def recorder(bin_dir, name, log, passthrough=None):
    """An executable `name` in bin_dir that appends its argv (JSON) to log; with passthrough (a shell
    `case` body over "$1 $2"), some calls are handed to the real program."""
    body = passthrough or ""
    script = f"""#!/bin/sh
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" >> {shlex.quote(str(log))}
case "$1 $2" in
{body}
esac
exit 0
"""
    p = bin_dir / name
    p.write_text(script)
    p.chmod(0o755)


def calls(log):
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def run_deploy(args, env):
    return subprocess.run(["bash", str(DEPLOY)] + args, capture_output=True, text=True, env=env)


def printed(stdout):
    """The commands a run printed ("+ ..." lines, shell-split); "+ # ..." notes are skipped."""
    return [shlex.split(l[2:]) for l in stdout.splitlines() if l.startswith("+ ") and not l.startswith("+ #")]


def opt(cmd, name):
    return cmd[cmd.index(name) + 1] if name in cmd else None


def overrides(cmd):
    i = cmd.index("--parameter-overrides")
    out = []
    for a in cmd[i + 1:]:
        if a.startswith("--"):
            break
        out.append(a)
    return out


def make_zip(path, bootstrap):
    with zipfile.ZipFile(path, "w") as z:
        z.write(bootstrap, "bootstrap")


def main():
    work = Path(tempfile.mkdtemp(prefix="s3vec-deploy-script-"))
    moto = None
    try:
        bin_dir = work / "bin"
        bin_dir.mkdir()
        log = work / "calls.jsonl"
        for name in ("aws", "sam", "cmake", "zip", "patchelf"):
            recorder(bin_dir, name, log)
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        wd = work / "wd"

        # 1. dry run
        args = ["deploy", "--dry-run", "--stack", "vecs-prod", "--artifact-bucket", "my-artifacts",
                "--index-bucket", "my-index", "--index-prefix", "team/v1", "--default-index", "docs/main",
                "--memory", "2048", "--timeout", "20", "--allow-writes", "--region", "eu-west-1",
                "--work-dir", str(wd)]
        r = run_deploy(args, env)
        check(r.returncode == 0, f"deploy --dry-run exits 0: {r.stderr}")
        cmds = printed(r.stdout)
        check(calls(log) == [], f"the dry run executes nothing: {calls(log)}")
        check(not wd.exists(), "the dry run writes nothing")
        check(len(cmds) == 4, f"four commands printed: {r.stdout}")
        if len(cmds) == 4:
            pk, cp, cd, ds = cmds
            check(pk[0] == str(SOURCE_DIR / "deploy" / "package.sh") and opt(pk, "--arch") == "arm64" and
                  opt(pk, "--out") == str(wd / "package-arm64" / "function-arm64.zip"),
                  f"1: package.sh for arm64 (the default) into the work folder: {pk}")
            check(cp[:3] == ["aws", "cloudformation", "package"] and opt(cp, "--s3-bucket") == "my-artifacts" and
                  opt(cp, "--s3-prefix") == "s3vec/vecs-prod" and opt(cp, "--region") == "eu-west-1" and
                  opt(cp, "--output-template-file") == str(wd / "deploy" / "vecs-prod.packaged.yaml"),
                  f"2: cloudformation package to s3://my-artifacts/s3vec/vecs-prod: {cp}")
            check(cd[:3] == ["aws", "cloudformation", "deploy"] and opt(cd, "--stack-name") == "vecs-prod" and
                  opt(cd, "--template-file") == opt(cp, "--output-template-file") and
                  "CAPABILITY_IAM" in cd and "--no-fail-on-empty-changeset" in cd,
                  f"3: cloudformation deploy of the packaged template: {cd}")
            check(overrides(cd) == ["Architecture=arm64", "IndexBucket=my-index", "IndexPrefix=team/v1",
                                    "DefaultIndex=docs/main", "MemorySize=2048", "FunctionTimeout=20",
                                    "AllowWrites=true"], f"   with every parameter: {overrides(cd)}")
            check(ds[:3] == ["aws", "cloudformation", "describe-stacks"] and opt(ds, "--stack-name") == "vecs-prod",
                  "4: describe-stacks prints the outputs")
        r = run_deploy(["deploy", "--dry-run", "--tool", "sam", "--arch", "x86_64", "--index-bucket", "my-index",
                        "--public", "--work-dir", str(wd)], env)
        cmds = printed(r.stdout)
        check(r.returncode == 0 and len(cmds) == 3 and cmds[0][:2] == ["env", "S3VEC_ARCH=x86_64"] and
              cmds[0][2:4] == ["sam", "build"] and "--build-in-source" in cmds[0] and cmds[1][:2] == ["sam", "deploy"]
              and overrides(cmds[1]) == ["Architecture=x86_64", "IndexBucket=my-index", "HttpApiAuth=NONE",
                                         "FunctionUrlAuth=NONE"],
              f"--tool sam: sam build for x86_64, then sam deploy with the parameters: {r.stdout}")
        r = run_deploy(["teardown", "--dry-run", "--stack", "vecs-prod", "--artifact-bucket", "my-artifacts",
                        "--delete-artifacts"], env)
        cmds = printed(r.stdout)
        check(r.returncode == 0 and [c[:3] for c in cmds] == [["aws", "cloudformation", "delete-stack"],
                                                              ["aws", "cloudformation", "wait"],
                                                              ["aws", "s3", "rm"]] and
              cmds[2][3] == "s3://my-artifacts/s3vec/vecs-prod/", f"teardown --dry-run: {r.stdout}")
        check("index bucket" in r.stdout and "kept" in r.stdout, "teardown says the index data is kept")
        check(calls(log) == [], "no dry run executed anything")

        # 2. bad arguments
        boot = BUILD_DIR / "bootstrap" / "bootstrap"
        wrong_zip = work / "x86.zip"
        make_zip(wrong_zip, boot)
        host_arch = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
        other = "x86_64" if host_arch == "arm64" else "arm64"
        for bad, why in [(["deploy", "--index-bucket", "ok-bucket", "--artifact-bucket", "a-b-c", "--param", "Nope=1"],
                          "unknown template parameter"),
                         (["deploy", "--index-bucket", "Bad_Bucket", "--artifact-bucket", "a-b-c"], "bad bucket name"),
                         (["deploy", "--artifact-bucket", "a-b-c"], "no --index-bucket"),
                         (["deploy", "--index-bucket", "ok-bucket"], "no --artifact-bucket with the aws tool"),
                         (["deploy", "--index-bucket", "ok-bucket", "--artifact-bucket", "a-b-c", "--arch", "sparc"],
                          "unknown arch"),
                         (["deploy", "--index-bucket", "ok-bucket", "--artifact-bucket", "a-b-c", "--arch", other,
                           "--zip", str(wrong_zip)], "a zip of the other architecture"),
                         (["deploy", "--stack", "1bad", "--index-bucket", "ok-bucket", "--artifact-bucket", "a-b-c"],
                          "bad stack name"),
                         (["launch"], "unknown action")]:
            r = run_deploy(bad + ["--work-dir", str(wd)] if bad[0] != "launch" else bad, env)
            check(r.returncode == 2 and not printed(r.stdout), f"{why}: exit 2, nothing run ({r.returncode}, {r.stderr})")
        check(calls(log) == [], "bad arguments executed nothing")

        # 3. a real run: aws cloudformation package and aws s3 go to moto, the rest is recorded
        moto = MotoServer(auth=False).start()
        real_aws = shutil.which("aws", path=os.environ["PATH"])
        if not check(real_aws is not None, "the AWS CLI is installed"):
            return
        log.unlink(missing_ok=True)
        recorder(bin_dir, "aws", log, passthrough=f'"cloudformation package"|"s3 rm"|"s3api head-object") '
                                                   f'exec {shlex.quote(real_aws)} "$@" ;;')
        env_real = dict(env, AWS_ENDPOINT_URL=moto.endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                        AWS_DEFAULT_REGION="us-east-1")
        s3 = moto.client("test", "test")
        s3.create_bucket(Bucket="my-artifacts")
        good_zip = work / "function.zip"
        make_zip(good_zip, boot)
        args = ["deploy", "--stack", "vecs-test", "--artifact-bucket", "my-artifacts", "--index-bucket", "my-index",
                "--arch", host_arch, "--zip", str(good_zip), "--work-dir", str(wd)]
        dry = printed(run_deploy(args + ["--dry-run"], env_real).stdout)
        r = run_deploy(args, env_real)
        check(r.returncode == 0, f"deploy (recorded) exits 0: {r.stdout[-800:]} {r.stderr[-1500:]}")
        real = [c for c in calls(log)]
        check([c[:2] for c in real] == [["cloudformation", "package"], ["cloudformation", "deploy"],
                                        ["cloudformation", "describe-stacks"]], f"the aws calls made: {real}")
        check([["aws"] + c for c in real] == dry, "the real run made exactly the calls the dry run printed")
        objs = s3.list_objects_v2(Bucket="my-artifacts", Prefix="s3vec/vecs-test/").get("Contents", [])
        check(len(objs) == 1, f"one object uploaded under s3vec/vecs-test/: {[o['Key'] for o in objs]}")
        packaged = wd / "deploy" / "vecs-test.packaged.yaml"
        if objs and check(packaged.exists(), "the packaged template was written"):
            body = s3.get_object(Bucket="my-artifacts", Key=objs[0]["Key"])["Body"].read()
            check(body == good_zip.read_bytes(), "the uploaded object is the zip, byte for byte")
            from cfnlint.decode import decode
            tpl, _ = decode(str(packaged))
            uri = tpl["Resources"]["S3vecFunction"]["Properties"]["CodeUri"]
            check(uri == f"s3://my-artifacts/{objs[0]['Key']}", f"the packaged CodeUri names it: {uri}")
            check(tpl["Resources"]["S3vecFunction"]["Metadata"]["BuildMethod"] == "makefile" and
                  tpl["Parameters"]["Architecture"]["Default"] == "arm64", "the rest of the template is unchanged")
        log.unlink(missing_ok=True)
        r = run_deploy(["teardown", "--stack", "vecs-test", "--artifact-bucket", "my-artifacts", "--delete-artifacts"],
                       env_real)
        check(r.returncode == 0, f"teardown exits 0: {r.stderr[-800:]}")
        check([c[:2] for c in calls(log)] == [["cloudformation", "delete-stack"], ["cloudformation", "wait"],
                                              ["s3", "rm"]], f"teardown calls: {calls(log)}")
        check(not s3.list_objects_v2(Bucket="my-artifacts", Prefix="s3vec/vecs-test/").get("Contents"),
              "the uploaded zip is gone")
    except Exception:
        check(False, "unexpected exception:\n" + traceback.format_exc())
    finally:
        if moto:
            moto.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
