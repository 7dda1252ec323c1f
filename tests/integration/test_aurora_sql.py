#!/usr/bin/env python3
"""Integration test: deploy/sql/s3vec.sql in a real PostgreSQL 15, calling the function through a
stand-in aws_lambda.invoke (deploy/sql/aws_lambda_local.sql: Aurora's signatures, PL/Python, HTTP to the
local Lambda emulator running the real bootstrap on a local-folder index).

  - s3vec.query_vectors joined with a relational table returns exactly the function's own answer (a
    direct Invoke of the same request) restricted to the rows of the table, in distance order; a
    stored vector finds itself first; filters, numeric literals, get_vectors and call work;
  - bad requests raise SQL errors carrying the function's message and the documented SQLSTATE
    (22023 validation, 42704 not found), argument errors are caught before any call, a function that
    fails to start surfaces as aws_lambda.invoke's "lambda invocation failed";
  - the pgvector overload (pgvector itself when its extension is available, else a stand-in type named
    vector: Debian 12 does not package pgvector);
  - a role granted as deploy/README.md says can query; one without the grants cannot;
  - nothing else in the database is touched: installing adds only schema s3vec and its functions,
    queries run inside READ ONLY transactions and leave the user's tables unchanged, uninstalling
    restores the catalog exactly; installing twice works.
PostgreSQL runs from a throwaway cluster on 127.0.0.1 and a free port (as user postgres when run as
root); it and the emulators are stopped at the end, also on failure. Ends with "N passed, N failed".
"""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("S3VEC_SOURCE_DIR") or HERE.parents[1])
BUILD_DIR = Path(os.environ.get("S3VEC_BUILD_DIR") or SOURCE_DIR / "build" / "release")
CLI = os.environ.get("S3VEC_BIN") or str(BUILD_DIR / "cli" / "s3vec")
BOOTSTRAP = BUILD_DIR / "bootstrap" / "bootstrap"
SQL_DIR = SOURCE_DIR / "deploy" / "sql"
EMULATOR = SOURCE_DIR / "deploy" / "local" / "emulator.py"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DIM, ROWS, SEED = 16, 1500, 5
VB, INDEX = "demo-bucket", "demo-index"


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
    missing = [p for p in pkgs if "install ok installed" not in subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, work, name, env_pairs):
        self.log = open(work / f"emulator-{name}.log", "ab")
        args = [sys.executable, str(EMULATOR), "--bootstrap", str(BOOTSTRAP), "--port", "0", "--function-name",
                "s3vec", "--timeout", "30"]
        for kv in env_pairs:
            args += ["--env", kv]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VEC_"))}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def invoke(self, event):
        req = urllib.request.Request(f"{self.url}/2015-03-31/functions/s3vec/invocations",
                                     data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Postgres:
    """A throwaway cluster under `work`, listening on 127.0.0.1:<free port> only."""

    def __init__(self, work):
        self.dir = work / "pg"
        self.dir.mkdir()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(self.dir, "postgres")
            os.chmod(work, 0o755)
        self.port = free_port()
        self._as(["initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-instructions"])
        self._as(["pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off", "start"])
        self.started = True

    def _as(self, argv):
        cmd = [str(PG_BIN / argv[0])] + argv[1:]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {r.stdout}{r.stderr}")
        return r

    def stop(self):
        if getattr(self, "started", False):
            try:
                self._as(["pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"])
            except RuntimeError as e:
                log(str(e))
            self.started = False

    def psql(self, sql, db="app", user="postgres", options=None, file=None):
        """Runs sql (or a file) with ON_ERROR_STOP; returns (ok, stdout, stderr). Errors are verbose:
        'ERROR:  <SQLSTATE>: <message>'."""
        env = dict(os.environ, PGOPTIONS=" ".join(f"-c {k}={v}" for k, v in (options or {}).items()))
        cmd = ["psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db,
               "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"]
        cmd += ["-f", str(file)] if file else ["-c", sql]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return r.returncode == 0, r.stdout.strip(), r.stderr

    def value(self, sql, **kw):
        ok, out, err = self.psql(sql, **kw)
        if not ok:
            raise RuntimeError(f"query failed: {sql}\n{err}")
        return out


def sql_error(stderr):
    """(sqlstate, message, detail) of the first ERROR in verbose psql output."""
    state = msg = detail = None
    for line in stderr.splitlines():
        if line.startswith("ERROR:") and state is None:
            rest = line[len("ERROR:"):].strip()
            state, _, msg = rest.partition(": ")
        elif line.startswith("DETAIL:") and detail is None:
            detail = line[len("DETAIL:"):].strip()
    return state, msg, detail


def vec_sql(v):
    return "'{" + ",".join(repr(x) for x in v) + "}'::real[]"


CATALOG = """
SELECT json_agg(x ORDER BY x) FROM (
  SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'fn ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
  UNION ALL SELECT 'ext ' || extname FROM pg_extension
  UNION ALL SELECT 'setting ' || COALESCE(setdatabase::text, '') || ' ' || array_to_string(setconfig, ',')
    FROM pg_db_role_setting
) s
"""
DATA = "SELECT md5(string_agg(d::text, '|' ORDER BY doc_key)) FROM documents d"


def main():
    work = Path(tempfile.mkdtemp(prefix="s3vec-aurora-"))
    emus, pg = [], None
    try:
        if not check(apt_install("postgresql-15", "postgresql-plpython3-15"),
                     "PostgreSQL 15 and PL/Python installed (apt, as root)"):
            return
        if not check(BOOTSTRAP.exists(), f"bootstrap built at {BOOTSTRAP}"):
            return
        # the index: a local folder, served by the real bootstrap under the emulator
        rng = random.Random(SEED)
        rows = [{"key": f"doc-{i}", "data": [round(rng.gauss(0, 1), 5) for _ in range(DIM)],
                 "metadata": {"genre": rng.choice(["drama", "comedy", "news"]), "year": 1990 + i % 35}}
                for i in range(ROWS)]
        (work / "demo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        root = work / "root"
        r = subprocess.run([CLI, "build", str(root / VB / INDEX), "--input", str(work / "demo.jsonl"),
                            "--metric", "cosine", "--seed", "1"], capture_output=True, text=True)
        if not check(r.returncode == 0, f"s3vec build: {r.stderr[-1000:]}"):
            return
        emu = Emulator(work, "ok", [f"S3VEC_STORAGE={root}"])
        emus.append(emu)
        broken = Emulator(work, "broken", [f"S3VEC_STORAGE={root}", f"S3VEC_DEFAULT_INDEX={VB}/missing-index"])
        emus.append(broken)

        pg = Postgres(work)
        pg.value("CREATE DATABASE app", db="postgres")
        pg.value("CREATE TABLE documents (doc_key text PRIMARY KEY, title text NOT NULL, year int)")
        values = ",".join(f"('doc-{i}', 'Title {i}', {1990 + i % 35})" for i in range(0, ROWS, 2))
        pg.value(f"INSERT INTO documents VALUES {values}")
        ok, _, err = pg.psql("", file=SQL_DIR / "s3vec.sql")
        check(not ok and "aws_lambda.invoke" in err and "CREATE EXTENSION" in err,
              f"without aws_lambda the install stops with a hint: {err.strip()[:300]}")
        ok, _, err = pg.psql("", file=SQL_DIR / "aws_lambda_local.sql")
        if not check(ok, f"the aws_lambda stand-in installs: {err[-1500:]}"):
            return
        before = pg.value(CATALOG)
        data_before = pg.value(DATA)
        ok, _, err = pg.psql("", file=SQL_DIR / "s3vec.sql")
        check(ok, f"s3vec.sql installs: {err[-1500:]}")
        ok, _, err = pg.psql("", file=SQL_DIR / "s3vec.sql")
        check(ok, f"s3vec.sql installs again (idempotent): {err[-800:]}")
        installed = pg.value(CATALOG)
        added = sorted(set(json.loads(installed)) - set(json.loads(before)))
        removed = sorted(set(json.loads(before)) - set(json.loads(installed)))
        check(not removed and added and all(a == "schema s3vec" or a.startswith("fn s3vec.") for a in added),
              f"installing adds only schema s3vec and its functions: {added} {removed}")

        opts = {"aws_lambda.endpoint_override": emu.url, "s3vec.function_name": "s3vec"}
        probe = rows[17]["data"]

        # the join
        direct = emu.invoke({"operation": "QueryVectors", "vectorBucketName": VB, "indexName": INDEX, "topK": 20,
                             "queryVector": {"float32": probe}, "returnDistance": True, "returnMetadata": True})
        want = [v for v in direct["vectors"] if int(v["key"].split("-")[1]) % 2 == 0]
        got = json.loads(pg.value(f"""
            SELECT json_agg(json_build_object('key', q.key, 'title', d.title, 'distance', q.distance,
                                              'year', d.year, 'meta', q.metadata) ORDER BY q.distance, q.key)
            FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 20) AS q
            JOIN documents AS d ON d.doc_key = q.key""", options=opts) or "[]")
        check(len(want) >= 5 and [g["key"] for g in got] == [w["key"] for w in want],
              f"the join returns the function's top 20 that are in the table, nearest first: "
              f"{[g['key'] for g in got]} vs {[w['key'] for w in want]}")
        check(all(abs(g["distance"] - w["distance"]) < 1e-6 and g["meta"] == w["metadata"] for g, w in zip(got, want)),
              "with the function's distances and metadata")
        check(all(g["title"] == f"Title {g['key'].split('-')[1]}" and g["year"] == g["meta"]["year"] for g in got),
              "and the table's columns for each key")
        check(direct["vectors"][0]["key"] == "doc-17" and "doc-17" not in [g["key"] for g in got],
              "doc-17, the function's first answer but not in the table, is not joined")
        first = pg.value(f"SELECT key || ' ' || distance FROM s3vec.query_vectors('{VB}/{INDEX}', "
                         f"{vec_sql(probe)}, 1)", options=opts)
        check(first.split()[0] == "doc-17" and abs(float(first.split()[1])) < 1e-5,
              f"a stored vector finds itself first at distance 0: {first}")
        lit = "ARRAY[" + ",".join(str(x) for x in probe) + "]"
        check(pg.value(f"SELECT key FROM s3vec.query_vectors('{VB}/{INDEX}', {lit}, 1)", options=opts) == "doc-17",
              "a numeric ARRAY[...] literal works (coerced to real[])")
        check(pg.value(f"SELECT key FROM s3vec.query_vectors('{INDEX}', {vec_sql(probe)}, 1)",
                       options=dict(opts, **{"s3vec.vector_bucket": VB})) == "doc-17",
              "an index name alone works with s3vec.vector_bucket")

        # filter
        fdirect = emu.invoke({"operation": "QueryVectors", "vectorBucketName": VB, "indexName": INDEX, "topK": 7,
                              "queryVector": {"float32": rows[3]["data"]}, "filter": {"genre": "news"},
                              "returnMetadata": True})
        fgot = json.loads(pg.value(f"""SELECT json_agg(json_build_object('key', key, 'meta', metadata))
            FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(rows[3]['data'])}, 7, '{{"genre": "news"}}')""",
                                   options=opts))
        check([g["key"] for g in fgot] == [v["key"] for v in fdirect["vectors"]] and len(fgot) == 7 and
              all(g["meta"]["genre"] == "news" for g in fgot), "a filtered query: the function's 7 news rows")

        # get_vectors and call
        gv = json.loads(pg.value(f"""SELECT json_agg(json_build_object('key', key, 'data', data, 'meta', metadata)
            ORDER BY key) FROM s3vec.get_vectors('{VB}/{INDEX}', ARRAY['doc-5', 'no-such-key', 'doc-6'], true)""",
                                 options=opts))
        check([g["key"] for g in gv] == ["doc-5", "doc-6"], f"get_vectors leaves out a missing key: {gv}")
        check(all(len(g["data"]) == DIM and all(abs(a - b) < 1e-5 for a, b in zip(g["data"], rows[int(g["key"][4:])]["data"]))
                  and g["meta"] == rows[int(g["key"][4:])]["metadata"] for g in gv), "get_vectors returns stored data")
        li = json.loads(pg.value(f"SELECT s3vec.call('ListIndexes', '{{\"vectorBucketName\": \"{VB}\"}}')", options=opts))
        check([i["indexName"] for i in li.get("indexes", [])] == [INDEX], f"s3vec.call('ListIndexes'): {li}")

        # errors
        def err_case(sql, state, what, options=opts, message=None, detail_has=None):
            ok, _, err = pg.psql(sql, options=options)
            st, msg, det = sql_error(err)
            good = not ok and st == state and (message is None or msg == message) and \
                (detail_has is None or (det or "").find(detail_has) >= 0)
            check(good, f"{what}: SQLSTATE {state}, message {message!r}; got {st} {msg!r} {det!r}")

        short = emu.invoke({"operation": "QueryVectors", "vectorBucketName": VB, "indexName": INDEX, "topK": 3,
                            "queryVector": {"float32": [1.0, 2.0]}})
        check(short.get("errorType") == "ValidationException", f"(the function rejects a 2-d vector: {short})")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', ARRAY[1, 2], 3)", "22023",
                 "a vector of the wrong dimension", message=short.get("errorMessage"),
                 detail_has="ValidationException (HTTP 400)")
        missing = emu.invoke({"operation": "QueryVectors", "vectorBucketName": VB, "indexName": "no-such-index",
                              "topK": 3, "queryVector": {"float32": probe}})
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/no-such-index', {vec_sql(probe)}, 3)", "42704",
                 "an unknown index", message=missing.get("errorMessage"), detail_has="NotFoundException")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/../x', {vec_sql(probe)}, 3)", "22023",
                 "a 3-part index name (rejected before the call)")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/Bad_Name', {vec_sql(probe)}, 3)", "22023",
                 "an invalid index name (the function's validation)", detail_has="ValidationException")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 0)", "22023",
                 "topK 0", detail_has="ValidationException")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 3, '{{\"year\": {{\"$nope\": 1}}}}')",
                 "22023", "a malformed filter", detail_has="ValidationException")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', NULL, 3)", "22004", "a NULL vector")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', ARRAY[1, NULL]::real[], 3)", "22004",
                 "a NULL element")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', '{{{{1,2}},{{3,4}}}}'::real[], 3)", "22023",
                 "a two-dimensional array")
        err_case(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 3)", "22023",
                 "no function configured", options={"aws_lambda.endpoint_override": emu.url})
        ok, _, err = pg.psql(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 3)",
                             options={"aws_lambda.endpoint_override": broken.url, "s3vec.function_name": "s3vec"})
        st, msg, det = sql_error(err)
        check(not ok and msg == "lambda invocation failed" and "missing-index" in (det or ""),
              f"a function that cannot start: aws_lambda.invoke's error with the function's message: {msg} {det}")
        ok, out, err = pg.psql(f"BEGIN; SELECT * FROM s3vec.query_vectors('{VB}/no-such-index', {vec_sql(probe)}, 3);",
                               options=opts)
        ok2, out2, _ = pg.psql(f"SELECT count(*) FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 4)",
                               options=opts)
        check(not ok and ok2 and out2 == "4", "after an error the next query is served")

        # pgvector overload
        have_pgvector = (Path(pg.value("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'", db="postgres")) /
                         "extension" / "vector.control").exists()
        if have_pgvector:
            pg.value("CREATE EXTENSION vector")
            vec_lit = "'[" + ",".join(str(x) for x in probe) + "]'::vector"
            log("  pgvector is installed: testing the overload with it")
        else:
            pg.value("CREATE DOMAIN public.vector AS real[]")
            vec_lit = vec_sql(probe).replace("::real[]", "::public.vector")
            log("  pgvector is not packaged for Debian 12: testing the overload with a stand-in type named vector")
        ok, _, err = pg.psql("", file=SQL_DIR / "s3vec.sql")
        check(ok and "also takes" in err, f"re-running s3vec.sql adds the vector overload: {err[-400:]}")
        check(pg.value(f"SELECT key FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_lit}, 1)", options=opts) == "doc-17",
              "query_vectors takes a vector")
        if have_pgvector:
            pg.value("DROP EXTENSION vector CASCADE")
        else:
            pg.value("DROP DOMAIN public.vector CASCADE")

        # privileges, as deploy/README.md grants them
        pg.value("CREATE ROLE reader LOGIN; CREATE ROLE outsider LOGIN")
        pg.value("GRANT USAGE ON SCHEMA aws_lambda, aws_commons, s3vec TO reader; "
                 "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_lambda, aws_commons, s3vec TO reader; "
                 "GRANT SELECT ON documents TO reader")
        # the stand-in's PL/Python helper runs as its owner like the real extension's C code
        pg.value("ALTER FUNCTION aws_lambda._invoke_py(text,text,text,text,text,text,text) SECURITY DEFINER")
        ok, out, err = pg.psql(f"SELECT count(*) FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 5) q "
                               f"JOIN documents d ON d.doc_key = q.key", user="reader", options=opts)
        check(ok and out.isdigit(), f"a role with the README's grants can query and join: {err[-300:]}")
        ok, _, err = pg.psql(f"SELECT * FROM s3vec.query_vectors('{VB}/{INDEX}', {vec_sql(probe)}, 5)",
                             user="outsider", options=opts)
        check(not ok and "permission denied" in err, f"a role without them cannot: {err.strip()[:200]}")
        pg.value("ALTER FUNCTION aws_lambda._invoke_py(text,text,text,text,text,text,text) SECURITY INVOKER")
        pg.value("REVOKE ALL ON documents FROM reader; REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aws_lambda, aws_commons, "
                 "s3vec FROM reader; REVOKE ALL ON SCHEMA aws_lambda, aws_commons, s3vec FROM reader; "
                 "DROP ROLE reader; DROP ROLE outsider")

        # nothing else touched
        ok, out, err = pg.psql(f"BEGIN READ ONLY; SELECT count(*) FROM s3vec.query_vectors('{VB}/{INDEX}', "
                               f"{vec_sql(probe)}, 10) q JOIN documents d ON d.doc_key = q.key; "
                               f"SELECT count(*) FROM s3vec.get_vectors('{VB}/{INDEX}', ARRAY['doc-1']); COMMIT;",
                               options=opts)
        check(ok, f"queries run inside a READ ONLY transaction (they write nothing): {err[-300:]}")
        check(pg.value(DATA) == data_before, "the user's table is unchanged")
        after = pg.value(CATALOG)
        check(after == installed, f"the catalog is as installed: "
                                  f"{sorted(set(json.loads(after)) ^ set(json.loads(installed)))}")
        ok, _, err = pg.psql("", file=SQL_DIR / "s3vec_uninstall.sql")
        check(ok and pg.value(CATALOG) == before, f"uninstalling restores the catalog exactly: {err[-300:]}")
    except Exception:
        check(False, "unexpected exception:\n" + traceback.format_exc())
    finally:
        if pg:
            pg.stop()
        for e in emus:
            e.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
