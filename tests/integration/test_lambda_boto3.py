#!/usr/bin/env python3
"""End to end with the AWS SDK: boto3's own s3vectors client, pointed at the local HTTP front
(API Gateway HTTP API v2 events, and Function URL events) -> the emulator -> our bootstrap -> moto S3.
QueryVectors, GetVectors, ListVectors (pages, paginator, segments), GetIndex and ListIndexes answer
exactly what the engine answers for the same request (the s3vec CLI on the same index), and errors
arrive as the modeled exception classes (ValidationException with fieldList, NotFoundException) with
the service model's HTTP status.

Prints "N passed, N failed"; exits non-zero on failure. Every server is stopped at the end."""
import random
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_lib import (DIM, IX, VB, Emulator, Front, MotoServer, build_index, check, demo_records,  # noqa: E402
                        lambda_env, moto_deployment, run_all, s3vec_json, s3vectors_client, test, write_jsonl)

CTX = {}


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def engine_query(vec, k, flt=None, loc=None):
    import json
    args = ["query", loc or CTX["loc"], "--vector", json.dumps(vec), "-k", str(k), "--metadata"]
    if flt is not None:
        args += ["--filter", json.dumps(flt)]
    return s3vec_json(args, CTX["env"])["vectors"]


def same(ours, engine):
    return len(ours) == len(engine) and all(
        a["key"] == b["key"] and f32(a["distance"]) == f32(b["distance"]) and a.get("metadata") == b.get("metadata")
        for a, b in zip(ours, engine))


@test
def query_vectors_equals_engine():
    c = CTX["client"]
    rnd = random.Random(3)
    recs = CTX["records"]
    for i in range(15):
        base = recs[rnd.randrange(len(recs))]["data"]
        vec = [x + rnd.gauss(0, 0.3) for x in base]
        k = rnd.choice([1, 5, 10, 30, 100])
        r = c.query_vectors(vectorBucketName=VB, indexName=IX, topK=k, queryVector={"float32": vec},
                            returnDistance=True, returnMetadata=True)
        check(r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["distanceMetric"] == "cosine", "200 + metric")
        check(r["ResponseMetadata"].get("RequestId"), "x-amzn-RequestId reaches botocore")
        engine = engine_query(vec, k)
        check(len(r["vectors"]) == k and same(r["vectors"], engine), f"query {i} (topK {k}) equals the engine")
    flt = {"$and": [{"genre": {"$in": ["drama", "news"]}}, {"year": {"$gte": 2005, "$lt": 2020}}]}
    vec = recs[17]["data"]
    r = c.query_vectors(vectorBucketName=VB, indexName=IX, topK=20, queryVector={"float32": vec}, filter=flt,
                        returnDistance=True, returnMetadata=True)
    check(len(r["vectors"]) == 20 and all(v["metadata"]["genre"] in ("drama", "news")
                                          and 2005 <= v["metadata"]["year"] < 2020 for v in r["vectors"]),
          "filtered results match the filter")
    check(same(r["vectors"], engine_query(vec, 20, flt)), "filtered query equals the engine")
    # defaults: keys only
    r = c.query_vectors(indexArn=CTX["arn"], topK=3, queryVector={"float32": vec})
    check(all(set(v) == {"key"} for v in r["vectors"]), f"defaults return keys only: {r['vectors']}")
    # euclidean index through the same deployment
    r = c.query_vectors(vectorBucketName=VB, indexName="second-index", topK=5, queryVector={"float32": vec},
                        returnDistance=True, returnMetadata=True)
    check(r["distanceMetric"] == "euclidean" and same(r["vectors"], engine_query(vec, 5, loc=CTX["loc2"])),
          "second index (euclidean) equals the engine")


@test
def get_and_list_vectors_equal_engine():
    c = CTX["client"]
    keys = ["doc-5", "doc-2999", "absent", "doc-0"]
    r = c.get_vectors(vectorBucketName=VB, indexName=IX, keys=keys, returnData=True, returnMetadata=True)
    engine = s3vec_json(["get", CTX["loc"]] + keys + ["--data", "--metadata"], CTX["env"])["vectors"]
    check([v["key"] for v in r["vectors"]] == ["doc-5", "doc-2999", "doc-0"], "request order, missing skipped")
    check(len(r["vectors"]) == len(engine) and all(
        a["key"] == b["key"] and a["metadata"] == b["metadata"]
        and [f32(x) for x in a["data"]["float32"]] == [f32(x) for x in b["data"]["float32"]]
        for a, b in zip(r["vectors"], engine)), "GetVectors equals the engine (data as float32)")
    recs = {rec["key"]: rec for rec in CTX["records"]}
    check(all([f32(x) for x in v["data"]["float32"]] == [f32(x) for x in recs[v["key"]]["data"]]
              for v in r["vectors"]), "data equals what was indexed (float32)")
    r = c.get_vectors(vectorBucketName=VB, indexName=IX, keys=["doc-5"])
    check(set(r["vectors"][0]) == {"key"}, "GetVectors defaults: key only")

    # ListVectors: the paginator walks every page; the union is every key once
    engine_all = s3vec_json(["list", CTX["loc"], "--all"], CTX["env"])["vectors"]
    pages = list(c.get_paginator("list_vectors").paginate(vectorBucketName=VB, indexName=IX,
                                                           PaginationConfig={"PageSize": 700}))
    got = [v["key"] for p in pages for v in p["vectors"]]
    check(len(pages) == 5 and all(len(p["vectors"]) <= 700 for p in pages), f"{len(pages)} pages of <= 700")
    check(got == [v["key"] for v in engine_all] and len(set(got)) == 3000, "ListVectors pages equal the engine")
    seg = []
    for i in range(4):
        token = None
        while True:
            kw = dict(vectorBucketName=VB, indexName=IX, segmentCount=4, segmentIndex=i, maxResults=1000,
                      returnMetadata=True)
            if token:
                kw["nextToken"] = token
            r = c.list_vectors(**kw)
            seg += [v["key"] for v in r["vectors"]]
            check(all("metadata" in v for v in r["vectors"]), "returnMetadata on list")
            token = r.get("nextToken")
            if not token:
                break
    check(sorted(seg) == sorted(got), "4 segments cover every key exactly once")


@test
def index_operations():
    c = CTX["client"]
    idx = c.get_index(vectorBucketName=VB, indexName=IX)["index"]
    check(idx["indexName"] == IX and idx["vectorBucketName"] == VB and idx["dimension"] == DIM
          and idx["distanceMetric"] == "cosine" and idx["dataType"] == "float32"
          and idx["indexArn"] == CTX["arn"] and idx["creationTime"].year >= 2024,
          f"GetIndex parsed by botocore: {idx}")
    nf = c.get_index(indexArn=CTX["arn"].replace(IX, "nf-index"))["index"]
    check(nf.get("metadataConfiguration", {}).get("nonFilterableMetadataKeys") == ["year"], f"metadataConfiguration {nf}")
    r = c.list_indexes(vectorBucketName=VB)
    check([i["indexName"] for i in r["indexes"]] == [IX, "nf-index", "second-index"], f"ListIndexes {r}")
    pages = list(c.get_paginator("list_indexes").paginate(vectorBucketName=VB, PaginationConfig={"PageSize": 1}))
    check([i["indexName"] for p in pages for i in p["indexes"]] == [IX, "nf-index", "second-index"],
          "ListIndexes paginator, page size 1")
    r = c.list_indexes(vectorBucketName=VB, prefix="se")
    check([i["indexName"] for i in r["indexes"]] == ["second-index"], "prefix")


@test
def modeled_errors():
    c = CTX["raw"]  # no client-side validation: the server must validate
    vec = {"float32": [0.1] * DIM}

    def expect(exc_name, status, fn, path=None, **kw):
        exc = getattr(c.exceptions, exc_name)
        try:
            fn(**kw)
        except exc as e:
            ok = e.response["ResponseMetadata"]["HTTPStatusCode"] == status
            if path:
                fl = e.response.get("fieldList") or []
                ok = ok and fl and fl[0].get("path") == path
            check(ok, f"{exc_name} {status} {path}: {e.response.get('Error')} {e.response.get('fieldList')}")
            return
        except Exception as e:  # noqa: BLE001
            check(False, f"expected {exc_name}, got {type(e).__name__}: {e}")
            return
        check(False, f"expected {exc_name}, got a result for {kw}")

    q = c.query_vectors
    expect("ValidationException", 400, q, "topK", vectorBucketName=VB, indexName=IX, topK=0, queryVector=vec)
    expect("ValidationException", 400, q, "topK", vectorBucketName=VB, indexName=IX, topK=101, queryVector=vec)
    expect("ValidationException", 400, q, "queryVector", vectorBucketName=VB, indexName=IX, topK=3,
           queryVector={"float32": [0.1] * (DIM + 1)})
    expect("ValidationException", 400, q, "indexName", vectorBucketName=VB, indexName="../x", topK=3, queryVector=vec)
    expect("ValidationException", 400, q, "filter", vectorBucketName=VB, indexName="nf-index", topK=3,
           queryVector=vec, filter={"year": {"$gt": 2000}})
    expect("ValidationException", 400, q, "filter", vectorBucketName=VB, indexName=IX, topK=3, queryVector=vec,
           filter={"genre": {"$regex": "x"}})
    expect("NotFoundException", 404, q, vectorBucketName=VB, indexName="no-such-index", topK=3, queryVector=vec)
    expect("NotFoundException", 404, c.get_index, vectorBucketName="other-bucket", indexName=IX)
    expect("ValidationException", 400, c.get_vectors, "keys", vectorBucketName=VB, indexName=IX, keys=[])
    expect("ValidationException", 400, c.list_vectors, "maxResults", vectorBucketName=VB, indexName=IX,
           maxResults=5000)
    expect("ValidationException", 400, c.list_vectors, "nextToken", vectorBucketName=VB, indexName=IX,
           nextToken="forged")
    expect("ValidationException", 400, c.list_indexes, "vectorBucketName", vectorBucketName="Bad_Name")
    try:
        c.put_vectors(vectorBucketName=VB, indexName=IX, vectors=[{"key": "x", "data": vec}])
        check(False, "PutVectors should fail")
    except c.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "AccessDeniedException"
              and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403,
              f"a write to a read-only deployment: {e.response['Error']}")
    # after all these, the same process still serves
    r = CTX["client"].query_vectors(vectorBucketName=VB, indexName=IX, topK=2, queryVector=vec)
    check(len(r["vectors"]) == 2 and CTX["emu"].stats()["restarts"] == 0, "served by the same process afterwards")


@test
def function_url_front():
    with Front(CTX["emu"], function_url=True) as furl:
        c = s3vectors_client(furl.endpoint)
        vec = CTX["records"][9]["data"]
        r = c.query_vectors(vectorBucketName=VB, indexName=IX, topK=7, queryVector={"float32": vec},
                            returnDistance=True, returnMetadata=True)
        check(same(r["vectors"], engine_query(vec, 7)), "Function URL query equals the engine")
        try:
            c.get_index(vectorBucketName=VB, indexName="zzz")
            check(False, "expected NotFoundException")
        except c.exceptions.NotFoundException as e:
            check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, "Function URL NotFoundException 404")


def main():
    with tempfile.TemporaryDirectory(prefix="s3vec-lambda-boto3-") as tmp, MotoServer() as moto:
        env, root = moto_deployment(moto)
        data = Path(tmp) / "demo.jsonl"
        CTX["records"] = demo_records()
        write_jsonl(data, CTX["records"])
        CTX.update(moto=moto, env=env, loc=f"{root}/{VB}/{IX}", loc2=f"{root}/{VB}/second-index",
                   arn=f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{VB}/index/{IX}")
        build_index(CTX["loc"], data, env)
        build_index(CTX["loc2"], data, env, metric="euclidean")
        build_index(f"{root}/{VB}/nf-index", data, env, extra=["--non-filterable", "year"])
        with Emulator(env=lambda_env(env, root, S3VEC_DEFAULT_INDEX=f"{VB}/{IX}")) as emu, Front(emu) as front:
            CTX["emu"] = emu
            CTX["client"] = s3vectors_client(front.endpoint)
            CTX["raw"] = s3vectors_client(front.endpoint, validate=False)
            rc = run_all("test_lambda_boto3")
    return rc


if __name__ == "__main__":
    sys.exit(main())
