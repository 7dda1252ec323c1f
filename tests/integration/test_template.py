#!/usr/bin/env python3
"""Integration test: template.yaml (the SAM template) and the Makefile target `sam build` runs.

  1. `cfn-lint template.yaml` passes (cfn-lint runs the SAM translator and the CloudFormation schemas).
  2. The SAM translator turns it into plain CloudFormation: a provided.al2023 function whose handler
     is bootstrap, with the Architecture and MemorySize parameters, arm64 by default, the makefile build.
  3. For every combination of IndexPrefix ("" or two levels), AllowWrites and a KMS key, the template
     is evaluated (Ref, Fn::Sub, Fn::If, Fn::GetAtt, conditions, AWS::NoValue) and the function role's
     policy is checked statement by statement: s3:GetObject exactly on arn:aws:s3:::BUCKET/PREFIX/*,
     s3:ListBucket on the bucket only with an s3:prefix condition of PREFIX/*, write actions only when
     AllowWrites is "true" and only on the prefix, KMS only on the given key, logs only in the stack's
     log group, no wildcard action or resource anywhere.
  4. The HTTP API routes POST /{operation} with AWS_IAM by default; the Function URL is AWS_IAM by
     default and the public permissions exist only when FunctionUrlAuth is NONE; API Gateway may invoke
     only POST routes of this API; the outputs name both URLs and the ARN.
  5. `make build-S3vecFunction ARTIFACTS_DIR=...` (what `sam build` runs) stages bootstrap and lib/ there.
  6. Writes and scheduled compaction: S3VEC_ALLOW_WRITES follows AllowWrites; with a CompactionSchedule
     and AllowWrites "true" (only then) an EventBridge rule invokes the function with {"operation":
     "Compact"} on that schedule, and a permission lets events.amazonaws.com invoke it for that rule only.
Ends with "N passed, N failed".
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[1])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
TEMPLATE = SOURCE_DIR / "template.yaml"
PARTITION, REGION, ACCOUNT, STACK = "aws", "eu-west-1", "123456789012", "teststack"
NO_VALUE = object()


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


class Evaluator:
    """Resolves the intrinsic functions this template uses, for given parameter values. Resource
    references resolve to "<LogicalId>" and "<LogicalId.Attribute>" markers."""

    PSEUDO = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
              "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com"}

    def __init__(self, template, params):
        self.t = template
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            v = params.get(name, spec.get("Default"))
            if v is None:
                raise ValueError(f"parameter {name} has no value")
            self.params[name] = str(v) if spec.get("Type") == "String" else v
        self.conds = {}

    def cond(self, name):
        if name not in self.conds:
            self.conds[name] = bool(self.ev(self.t["Conditions"][name]))
        return self.conds[name]

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.PSEUDO:
            return self.PSEUDO[name]
        if name in self.params:
            return self.params[name]
        if name in self.t["Resources"]:
            return f"<{name}>"
        raise KeyError(name)

    def sub(self, s, extra=None):
        def repl(m):
            var = m.group(1)
            if extra and var in extra:
                return str(self.ev(extra[var]))
            if "." in var:
                return f"<{var}>"
            return str(self.ref(var))
        return re.sub(r"\$\{([^}!]+)\}", repl, s)

    def ev(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (k, v), = node.items()
                if k == "Ref":
                    return self.ref(v)
                if k == "Fn::Sub":
                    return self.sub(v) if isinstance(v, str) else self.sub(v[0], v[1])
                if k == "Fn::If":
                    return self.ev(v[1] if self.cond(v[0]) else v[2])
                if k == "Fn::GetAtt":
                    return f"<{v[0]}.{v[1]}>" if isinstance(v, list) else f"<{v}>"
                if k == "Fn::Equals":
                    return str(self.ev(v[0])) == str(self.ev(v[1]))
                if k == "Fn::Not":
                    return not self.ev(v[0])
                if k == "Fn::And":
                    return all(self.ev(x) for x in v)
                if k == "Fn::Or":
                    return any(self.ev(x) for x in v)
                if k == "Condition":
                    return self.cond(v)
                if k.startswith("Fn::"):
                    raise ValueError(f"unsupported intrinsic {k}")
            out = {}
            for k, v in node.items():
                r = self.ev(v)
                if r is not NO_VALUE:
                    out[k] = r
            return out
        if isinstance(node, list):
            return [r for r in (self.ev(x) for x in node) if r is not NO_VALUE]
        return node

    def resources(self):
        """The resources that exist for these parameters, fully evaluated."""
        out = {}
        for name, res in self.t["Resources"].items():
            if "Condition" in res and not self.cond(res["Condition"]):
                continue
            out[name] = self.ev(res)
        return out


def as_list(x):
    return x if isinstance(x, list) else [x]


def load_template():
    from cfnlint.decode import decode
    tpl, matches = decode(str(TEMPLATE))
    if matches:
        raise RuntimeError(f"template does not parse: {matches}")
    return json.loads(json.dumps(tpl))


def test_lint():
    r = subprocess.run(["cfn-lint", "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True)
    check(r.returncode == 0, f"cfn-lint template.yaml passes:\n{r.stdout}{r.stderr}")


def test_sam_transform(tpl):
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    t = json.loads(json.dumps(tpl))
    fn = t["Resources"]["S3vecFunction"]
    check(fn.get("Metadata", {}).get("BuildMethod") == "makefile", "the function builds with BuildMethod: makefile")
    check(fn["Properties"].get("CodeUri") == ".", "CodeUri is the repository root (where the Makefile is)")
    fn["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    out = transform(t, {"IndexBucket": "my-index-bucket"}, NoManagedPolicies())
    lam = out["Resources"]["S3vecFunction"]
    props = lam["Properties"]
    check(lam["Type"] == "AWS::Lambda::Function", "SAM turns the function into AWS::Lambda::Function")
    check(props.get("Runtime") == "provided.al2023" and props.get("Handler") == "bootstrap",
          "runtime provided.al2023, handler bootstrap")
    check(props.get("Architectures") == [{"Ref": "Architecture"}], "Architectures comes from the parameter")
    check(props.get("MemorySize") == {"Ref": "MemorySize"} and props.get("Timeout") == {"Ref": "FunctionTimeout"},
          "MemorySize and Timeout come from parameters")
    check(props.get("Code") == {"S3Bucket": "artifacts", "S3Key": "function.zip"}, "the zip is the function's code")
    check(not any(r["Type"] == "AWS::IAM::Role" and n != "FunctionRole" for n, r in out["Resources"].items()),
          "SAM adds no role of its own (the function uses FunctionRole)")
    params = tpl["Parameters"]
    check(params["Architecture"]["Default"] == "arm64" and set(params["Architecture"]["AllowedValues"]) ==
          {"arm64", "x86_64"}, "Architecture: arm64 (default) or x86_64")
    check(params["FunctionUrlAuth"]["Default"] == "AWS_IAM" and params["HttpApiAuth"]["Default"] == "AWS_IAM",
          "Function URL and HTTP API default to AWS_IAM")
    check(params["AllowWrites"]["Default"] == "false", "writes are off by default")
    mk = (SOURCE_DIR / "Makefile").read_text()
    check(re.search(r"^build-S3vecFunction:", mk, re.M) is not None, "the Makefile has build-S3vecFunction")


S3_WRITE = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def role_statements(res):
    stmts = []
    for pol in res["FunctionRole"]["Properties"]["Policies"]:
        stmts += pol["PolicyDocument"]["Statement"]
    return stmts


def test_iam(tpl):
    bucket, key_arn = "my-index-bucket", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for prefix, writes, kms in itertools.product(["", "team/vectors"], ["false", "true"], ["", key_arn]):
        case = f"[prefix={prefix!r} writes={writes} kms={'yes' if kms else 'no'}]"
        ev = Evaluator(tpl, {"IndexBucket": bucket, "IndexPrefix": prefix, "AllowWrites": writes,
                             "IndexKmsKeyArn": kms})
        res = ev.resources()
        stmts = role_statements(res)
        objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
        actions = {a: s for s in stmts for a in as_list(s["Action"])}
        check(all(s["Effect"] == "Allow" for s in stmts), f"{case} only Allow statements")
        check(not any("*" in a.split(":", 1)[1] for a in actions), f"{case} no wildcard actions: {sorted(actions)}")
        check(not any(r == "*" or r.endswith(":*:*") for s in stmts for r in as_list(s["Resource"])),
              f"{case} no wildcard resources")
        s3_actions = {a for a in actions if a.startswith("s3:")}
        want = {"s3:GetObject", "s3:ListBucket"} | (S3_WRITE if writes == "true" else set())
        check(s3_actions == want, f"{case} S3 actions are exactly {sorted(want)}: {sorted(s3_actions)}")
        get = actions.get("s3:GetObject", {})
        check(as_list(get.get("Resource")) == [objects], f"{case} GetObject only on {objects}: {get.get('Resource')}")
        lst = actions.get("s3:ListBucket", {})
        check(as_list(lst.get("Resource")) == [f"arn:aws:s3:::{bucket}"], f"{case} ListBucket only on the bucket")
        if prefix:
            check(lst.get("Condition") == {"StringLike": {"s3:prefix": f"{prefix}/*"}},
                  f"{case} ListBucket only under {prefix}/: {lst.get('Condition')}")
        else:
            check("Condition" not in lst, f"{case} no prefix condition for the whole bucket")
        for a in S3_WRITE & s3_actions:
            check(as_list(actions[a]["Resource"]) == [objects], f"{case} {a} only on {objects}")
        kms_actions = {a for a in actions if a.startswith("kms:")}
        want_kms = (({"kms:Decrypt", "kms:GenerateDataKey"} if writes == "true" else {"kms:Decrypt"}) if kms else set())
        check(kms_actions == want_kms, f"{case} KMS actions {sorted(kms_actions)}")
        for a in kms_actions:
            check(as_list(actions[a]["Resource"]) == [kms], f"{case} {a} only on the given key")
        logs = {a for a in actions if a.startswith("logs:")}
        check(logs == {"logs:CreateLogStream", "logs:PutLogEvents"} and
              all(as_list(actions[a]["Resource"]) == ["<FunctionLogGroup.Arn>"] for a in logs),
              f"{case} logs only into the stack's log group")
        check(set(actions) == s3_actions | kms_actions | logs, f"{case} nothing else: {sorted(actions)}")
        env = res["S3vecFunction"]["Properties"]["Environment"]["Variables"]
        storage = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        check(env.get("S3VEC_STORAGE") == storage, f"{case} S3VEC_STORAGE={storage}: {env.get('S3VEC_STORAGE')}")
        check("S3VEC_DEFAULT_INDEX" not in env, f"{case} no default index unless one is given")


def test_endpoints(tpl):
    res = Evaluator(tpl, {"IndexBucket": "b-1-2"}).resources()
    route = res["HttpApiRoute"]["Properties"]
    check(route["RouteKey"] == "POST /{operation}", "the HTTP API routes POST /{operation}")
    check(route["AuthorizationType"] == "AWS_IAM", "the route requires AWS_IAM by default")
    integ = res["HttpApiIntegration"]["Properties"]
    check(integ["IntegrationType"] == "AWS_PROXY" and integ["PayloadFormatVersion"] == "2.0" and
          integ["IntegrationUri"] == "<S3vecFunction.Arn>", "a Lambda proxy integration, payload 2.0")
    perm = res["HttpApiInvokePermission"]["Properties"]
    check(perm["Principal"] == "apigateway.amazonaws.com" and
          perm["SourceArn"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:<HttpApi>/*/POST/*",
          f"API Gateway may invoke only POST routes of this API: {perm.get('SourceArn')}")
    check(res["FunctionUrl"]["Properties"]["AuthType"] == "AWS_IAM", "the Function URL is AWS_IAM by default")
    check("FunctionUrlPublicPermission" not in res and "FunctionUrlPublicInvokePermission" not in res,
          "no public permission by default")
    check(not any(r["Type"] == "AWS::Lambda::Permission" and r["Properties"].get("Principal") == "*"
                  for r in res.values()), "no permission for principal * by default")
    pub = Evaluator(tpl, {"IndexBucket": "b-1-2", "FunctionUrlAuth": "NONE", "HttpApiAuth": "NONE"}).resources()
    check(pub["FunctionUrl"]["Properties"]["AuthType"] == "NONE" and pub["HttpApiRoute"]["Properties"]
          ["AuthorizationType"] == "NONE", "NONE when asked")
    p1 = pub.get("FunctionUrlPublicPermission", {}).get("Properties", {})
    p2 = pub.get("FunctionUrlPublicInvokePermission", {}).get("Properties", {})
    check(p1.get("Action") == "lambda:InvokeFunctionUrl" and p1.get("FunctionUrlAuthType") == "NONE" and
          p2.get("Action") == "lambda:InvokeFunction" and p2.get("InvokedViaFunctionUrl") is True,
          "a public Function URL gets both permissions, the second only via the URL")
    inv = res["InvokePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    check({a for s in inv for a in as_list(s["Action"])} ==
          {"lambda:InvokeFunction", "lambda:InvokeFunctionUrl", "execute-api:Invoke"} and
          all(r != "*" for s in inv for r in as_list(s["Resource"])), "InvokePolicy grants only calling this stack")
    fn = Evaluator(tpl, {"IndexBucket": "b-1-2", "DefaultIndex": "vb/idx1", "Architecture": "x86_64",
                         "MemorySize": 2048}).resources()["S3vecFunction"]["Properties"]
    check(fn["Architectures"] == ["x86_64"] and fn["MemorySize"] == 2048 and
          fn["Environment"]["Variables"].get("S3VEC_DEFAULT_INDEX") == "vb/idx1",
          "Architecture, MemorySize and DefaultIndex reach the function")
    check("ReservedConcurrentExecutions" not in res["S3vecFunction"]["Properties"],
          "no reserved concurrency by default")
    rc = Evaluator(tpl, {"IndexBucket": "b-1-2", "ReservedConcurrency": 5}).resources()
    check(rc["S3vecFunction"]["Properties"].get("ReservedConcurrentExecutions") == 5, "ReservedConcurrency=5 reaches it")
    outputs = tpl.get("Outputs", {})
    check({"HttpApiUrl", "FunctionUrl", "FunctionArn", "InvokePolicyArn"} <= set(outputs),
          f"outputs for the URLs, the ARN and the invoke policy: {sorted(outputs)}")
    text = TEMPLATE.read_text()
    check("Scheduled compaction" in text, "a marked place for the scheduled compaction rule")


def test_compaction(tpl):
    for writes, sched in itertools.product(["false", "true"], ["", "rate(10 minutes)"]):
        case = f"[writes={writes} schedule={sched!r}]"
        res = Evaluator(tpl, {"IndexBucket": "b-1-2", "AllowWrites": writes, "CompactionSchedule": sched}).resources()
        env = res["S3vecFunction"]["Properties"]["Environment"]["Variables"]
        check(env.get("S3VEC_ALLOW_WRITES") == writes, f"{case} S3VEC_ALLOW_WRITES={writes}: {env.get('S3VEC_ALLOW_WRITES')}")
        rules = [n for n, r in res.items() if r["Type"] in ("AWS::Events::Rule", "AWS::Scheduler::Schedule")]
        perms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Permission"
                 and r["Properties"].get("Principal") == "events.amazonaws.com"]
        if writes == "true" and sched:
            if not check(rules == ["CompactionRule"], f"{case} one scheduled rule: {rules}"):
                continue
            rule = res["CompactionRule"]["Properties"]
            check(rule["ScheduleExpression"] == sched and rule.get("State") == "ENABLED",
                  f"{case} the rule runs on the schedule")
            targets = rule["Targets"]
            check(len(targets) == 1 and targets[0]["Arn"] == "<S3vecFunction.Arn>", f"{case} it targets the function")
            check(json.loads(targets[0]["Input"]) == {"operation": "Compact"},
                  f"{case} with the Compact payload: {targets[0].get('Input')}")
            check(len(perms) == 1 and perms[0]["Action"] == "lambda:InvokeFunction" and
                  perms[0]["SourceArn"] == "<CompactionRule.Arn>" and perms[0]["FunctionName"] == "<S3vecFunction>",
                  f"{case} EventBridge may invoke the function for this rule only: {perms}")
        else:
            check(not rules and not perms, f"{case} no schedule, no permission (compaction writes): {rules}")
    p = tpl["Parameters"]["CompactionSchedule"]
    pat = re.compile(p["AllowedPattern"])
    check(p["Default"] == "" and pat.match("") and pat.match("rate(5 minutes)") and pat.match("cron(0 * * * ? *)")
          and not pat.match("every 5 minutes"), "CompactionSchedule: off by default, rate() or cron()")


def test_make_target():
    boot = BUILD_DIR / "bootstrap" / "bootstrap"
    if not check(boot.exists(), f"bootstrap built at {boot}"):
        return
    d = Path(tempfile.mkdtemp(prefix="s3vec-sam-artifacts-"))
    try:
        arch = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
        r = subprocess.run(["make", "-C", str(SOURCE_DIR), "build-S3vecFunction", f"ARTIFACTS_DIR={d}",
                            f"S3VEC_ARCH={arch}", f"S3VEC_BOOTSTRAP={boot}"], capture_output=True, text=True)
        check(r.returncode == 0, f"make build-S3vecFunction exits 0: {r.stderr[-1500:]}")
        check((d / "bootstrap").is_file() and os.access(d / "bootstrap", os.X_OK), "bootstrap staged, executable")
        check((d / "lib" / "libc.so.6").is_file(), "lib/ staged")
        r = subprocess.run(["make", "-C", str(SOURCE_DIR), "build-S3vecFunction"], capture_output=True, text=True)
        check(r.returncode != 0 and "ARTIFACTS_DIR" in r.stderr, "without ARTIFACTS_DIR the target refuses")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    try:
        test_lint()
        tpl = load_template()
        test_sam_transform(tpl)
        test_iam(tpl)
        test_endpoints(tpl)
        test_compaction(tpl)
        test_make_target()
    except Exception:
        check(False, "unexpected exception:\n" + traceback.format_exc())
    print(f"{R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
