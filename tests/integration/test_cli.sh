#!/usr/bin/env bash
# tests/integration/test_cli.sh: the s3vec CLI on good and bad input: every error is one clear line on stderr
# and a non-zero exit; a flipped byte in any index object is reported with the object's name.
set -u
BIN=${S3VEC_BIN:?S3VEC_BIN must point at the s3vec binary}
T=$(mktemp -d /tmp/s3vec-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_fail "what" "stderr pattern" cmd...: exit 1, one line on stderr matching the pattern
expect_fail() {
  local what=$1 pat=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" -ne 1 ]; then bad "$what: exit $rc, expected 1 ($(head -c 300 "$T/err"))"; return; fi
  if ! grep -q -- "$pat" "$T/err"; then bad "$what: stderr lacks '$pat': $(head -c 300 "$T/err")"; return; fi
  if [ "$(grep -c . "$T/err")" -ne 1 ]; then bad "$what: expected one line on stderr, got: $(cat "$T/err")"; return; fi
  ok
}
expect_ok() {
  local what=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$what: exit $? ($(head -c 300 "$T/err"))"; fi
}

python3 - "$T" <<'PY'
import json, math, random, struct, sys
t = sys.argv[1]
random.seed(3)
rows = [[random.gauss(0, 1) for _ in range(8)] for _ in range(400)]
def fvecs(path, rs, dims=None):
    with open(path, "wb") as f:
        for i, r in enumerate(rs):
            d = dims[i] if dims else len(r)
            f.write(struct.pack("<i", d) + struct.pack(f"<{len(r)}f", *r))
fvecs(f"{t}/good.fvecs", rows)
fvecs(f"{t}/q.fvecs", rows[:5])
fvecs(f"{t}/q3.fvecs", [r[:3] for r in rows[:2]])
# row 2 has dimension 17 where 8 is expected: the file size is still a whole number of 8-d rows
fvecs(f"{t}/wrongdim.fvecs", [rows[0], rows[1] + rows[2] + rows[3][:1], rows[4]], dims=[8, 17, 8])
nan = [r[:] for r in rows[:3]]; nan[1][2] = float("nan")
fvecs(f"{t}/nan.fvecs", nan)
inf = [r[:] for r in rows[:3]]; inf[2][0] = float("inf")
fvecs(f"{t}/inf.fvecs", inf)
open(f"{t}/empty.fvecs", "wb").close()
open(f"{t}/empty.jsonl", "w").write("\n\n")
with open(f"{t}/good.jsonl", "w") as f:
    for i, r in enumerate(rows):
        f.write(json.dumps({"key": f"doc-{i}", "data": r, "metadata": {"genre": "ab"[i % 2], "year": 2000 + i % 20}}) + "\n")
with open(f"{t}/wrongdim.jsonl", "w") as f:
    f.write(json.dumps({"key": "a", "data": rows[0]}) + "\n")
    f.write(json.dumps({"key": "b", "data": rows[1][:3]}) + "\n")
with open(f"{t}/badkey.jsonl", "w") as f:
    f.write(json.dumps({"key": "", "data": rows[0]}) + "\n")
with open(f"{t}/longkey.jsonl", "w") as f:
    f.write(json.dumps({"key": "k" * 1025, "data": rows[0]}) + "\n")
with open(f"{t}/badmeta.jsonl", "w") as f:
    f.write(json.dumps({"key": "a", "data": rows[0], "metadata": [1, 2]}) + "\n")
with open(f"{t}/zero.jsonl", "w") as f:
    f.write(json.dumps({"key": "z", "data": [0.0] * 8}) + "\n")
open(f"{t}/keys-short.txt", "w").write("\n".join(f"k{i}" for i in range(399)) + "\n")
# .npy: float32 (3, 8), and a float64 one that must be refused
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 8), }"
hdr += " " * (64 - 10 - len(hdr) - 1) + "\n"
with open(f"{t}/good.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    for r in rows[:3]: f.write(struct.pack("<8f", *r))
with open(f"{t}/f64.npy", "wb") as f:
    h = hdr.replace("<f4", "<f8")
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    for r in rows[:3]: f.write(struct.pack("<8d", *r))
PY

# help for every command
for c in build query get list inspect; do
  if "$BIN" "$c" --help | grep -q "^usage: s3vec $c"; then ok; else bad "$c --help"; fi
done
"$BIN" >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "no command: exit 2"
"$BIN" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown command: exit 2"

# bad build inputs
expect_fail "missing file" "cannot open $T/nope.fvecs" "$BIN" build "$T/i0" --input "$T/nope.fvecs" -q
expect_fail "wrong dimension (fvecs)" "row 2: dimension 17, expected 8" "$BIN" build "$T/i1" --input "$T/wrongdim.fvecs" -q
expect_fail "wrong dimension (jsonl)" "row 2: dimension 3, expected 8" "$BIN" build "$T/i2" --input "$T/wrongdim.jsonl" -q
expect_fail "NaN in input" "row 2: NaN at element 3" "$BIN" build "$T/i3" --input "$T/nan.fvecs" -q
expect_fail "Inf in input" "row 3: infinity at element 1" "$BIN" build "$T/i4" --input "$T/inf.fvecs" -q
expect_fail "unknown metric" "unknown metric 'manhattan'" "$BIN" build "$T/i5" --input "$T/good.fvecs" --metric manhattan -q
expect_fail "unknown encoding" "unknown encoding 'f8'" "$BIN" build "$T/i5" --input "$T/good.fvecs" --encoding f8 -q
expect_fail "empty fvecs" "empty input" "$BIN" build "$T/i6" --input "$T/empty.fvecs" -q
expect_fail "empty jsonl" "empty input" "$BIN" build "$T/i7" --input "$T/empty.jsonl" -q
expect_fail "empty key" "empty key" "$BIN" build "$T/i8" --input "$T/badkey.jsonl" -q
expect_fail "long key" "key longer than 1024 bytes" "$BIN" build "$T/i8" --input "$T/longkey.jsonl" -q
expect_fail "metadata not an object" "\"metadata\" must be an object" "$BIN" build "$T/i8" --input "$T/badmeta.jsonl" -q
expect_fail "zero vector under cosine" "zero vector" "$BIN" build "$T/i9" --input "$T/zero.jsonl" --metric cosine -q
expect_fail "keys file too short" "has 399 keys but the input has more rows" "$BIN" build "$T/i10" --input "$T/good.fvecs" --keys "$T/keys-short.txt" -q
expect_fail "npy float64" "float32" "$BIN" build "$T/i11" --input "$T/f64.npy" -q
expect_fail "unknown extension" "unknown input format" "$BIN" build "$T/i12" --input "$T/keys-short.txt" -q
"$BIN" build "$T/i13" --input "$T/good.fvecs" --nlist 0 -q >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--nlist 0 is a usage error"
[ ! -e "$T/i1/manifest" ] && [ ! -e "$T/i3/manifest" ] && ok || bad "a failed build left a manifest"

# good builds
expect_ok "build fvecs" "$BIN" build "$T/idx" --input "$T/good.fvecs" --nlist 8 -q
expect_ok "build npy" "$BIN" build "$T/npy" --input "$T/good.npy" --nlist 1 -q
expect_ok "build jsonl" "$BIN" build "$T/meta" --input "$T/good.jsonl" --nlist 8 --metric cosine -q --json
python3 -c "import json,sys; r=json.load(open('$T/out')); assert r['count']==400 and r['nlist']>=8, r" && ok || bad "build --json"
expect_fail "build over an existing index" "already exists" "$BIN" build "$T/idx" --input "$T/good.fvecs" -q
expect_ok "overwrite" "$BIN" build "$T/idx" --input "$T/good.fvecs" --nlist 8 -q --overwrite

# queries
expect_ok "query file" "$BIN" query "$T/idx" --queries "$T/q.fvecs" -k 3
[ "$(grep -c '^# query' "$T/out")" -eq 5 ] && ok || bad "five query blocks"
# the first result of query i is row i itself at distance 0
expect_ok "query vector" "$BIN" query "$T/idx" --vector "$(python3 -c "
import struct; d=open('$T/q.fvecs','rb').read(36); print(list(struct.unpack('<8f', d[4:36])))")" -k 1 --exact
awk -F'\t' '$1=="0" && $2+0==0 {f=1} END {exit !f}' "$T/out" && ok || bad "exact query finds row 0 at distance 0: $(cat "$T/out")"
expect_fail "query wrong dimension" "dimension 3, the index has dimension 8" "$BIN" query "$T/idx" --queries "$T/q3.fvecs"
expect_fail "query NaN-ish vector" "JSON array" "$BIN" query "$T/idx" --vector "[1, NaN]"
expect_fail "query no index" "cannot open folder $T/none" "$BIN" query "$T/none" --vector "[1]"
expect_fail "bad filter" "filter" "$BIN" query "$T/meta" --vector "[1,2,3,4,5,6,7,8]" --filter '{"year": {"$gt": "x"}}'
expect_ok "filtered query json" "$BIN" query "$T/meta" --vector "[1,2,3,4,5,6,7,8]" -k 5 --filter '{"genre": "a", "year": {"$gte": 2010}}' --metadata --json
python3 -c "
import json; r=json.load(open('$T/out'))
assert r['distanceMetric']=='cosine' and len(r['vectors'])==5, r
for v in r['vectors']: assert v['metadata']['genre']=='a' and v['metadata']['year']>=2010, v
" && ok || bad "filtered results match the filter: $(head -c 400 "$T/out")"
expect_ok "exact truth" "$BIN" query "$T/idx" --queries "$T/q.fvecs" -k 10 --exact --save-truth "$T/gt.ivecs"
expect_ok "recall vs own truth" "$BIN" query "$T/idx" --queries "$T/q.fvecs" -k 10 --nprobe 8 --truth "$T/gt.ivecs"
grep -q '^recall@10: 1.0000' "$T/out" && ok || bad "probing every cluster gives recall 1: $(cat "$T/out")"

# get / list / inspect
expect_ok "get" "$BIN" get "$T/meta" doc-7 doc-missing doc-9 --metadata --data --json
python3 -c "
import json; r=json.load(open('$T/out'))
assert [v['key'] for v in r['vectors']]==['doc-7','doc-9'], r
assert r['vectors'][0]['metadata']=={'genre':'b','year':2007} and len(r['vectors'][0]['data']['float32'])==8
" && ok || bad "get output: $(head -c 300 "$T/out")"
expect_ok "list all" "$BIN" list "$T/meta" --max 33 --all
[ "$(sort -u "$T/out" | wc -l)" -eq 400 ] && ok || bad "list --all lists 400 keys once"
expect_ok "inspect" "$BIN" inspect "$T/idx" --json
python3 -c "import json; r=json.load(open('$T/out')); assert r['count']==400 and r['generation'].startswith('g00000002-')" && ok || bad "inspect json"
expect_ok "verify" "$BIN" inspect "$T/idx" --verify

# a flipped byte in any object is detected and the object named
gen=$(basename "$(ls -d "$T"/idx/g*)")
for obj in manifest "$gen/centroids" "$gen/keymap" "$gen/data-0000"; do
  rm -rf "$T/c"; cp -r "$T/idx" "$T/c"
  size=$(stat -c %s "$T/c/$obj")
  python3 - "$T/c/$obj" "$size" <<'PY'
import sys
p, n = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[n // 2] ^= 0x20; open(p, "wb").write(bytes(b))
PY
  name=$(basename "$obj")
  expect_fail "corrupt $name" "$name" "$BIN" inspect "$T/c" --verify
  grep -qiE "checksum|corrupt|not valid|mismatch" "$T/err" && ok || bad "corrupt $name: message does not say corruption: $(cat "$T/err")"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
