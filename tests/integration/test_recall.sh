#!/usr/bin/env bash
# tests/integration/test_recall.sh: recall@10 on real data (Fashion-MNIST, 60,000 x 784) at the default
# settings must be at least 0.95 against the independent exact ground truth in ../shared/data (or, in a clone
# without ../shared, against our own exact mode); exact mode itself must reproduce the independent ground truth.
set -u
BIN=${S3VEC_BIN:?}
SRC=${S3VEC_SOURCE_DIR:?}
DATA=${S3VEC_DATA_DIR:-$SRC/data}
SHARED=${S3VEC_SHARED_DIR:-$SRC/../shared}/data
T=$(mktemp -d /tmp/s3vec-recall-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

"$SRC/scripts/fetch-data.sh" fmnist "$DATA" || { echo "FAIL: cannot fetch Fashion-MNIST"; echo "0 passed, 1 failed"; exit 1; }

recall_of() { sed -n 's/^recall@10: //p' "$1"; }
at_least() { python3 -c "import sys; sys.exit(0 if float('$1') >= float('$2') else 1)"; }

for metric in euclidean cosine; do
  gt=$SHARED/fmnist_gt100_l2.ivecs
  [ "$metric" = cosine ] && gt=$SHARED/fmnist_gt100_cosine.ivecs
  if ! "$BIN" build "$T/$metric" --input "$DATA/fmnist_base.fvecs" --metric "$metric" -q > "$T/build.txt" 2>&1; then
    bad "build $metric: $(cat "$T/build.txt")"; continue
  fi
  if [ ! -f "$gt" ]; then
    # no independent truth beside the repository: make it with exact mode
    "$BIN" query "$T/$metric" --queries "$DATA/fmnist_query.fvecs" -k 100 --exact --save-truth "$T/gt-$metric.ivecs" >/dev/null 2>&1
    gt=$T/gt-$metric.ivecs
  else
    "$BIN" query "$T/$metric" --queries "$DATA/fmnist_query.fvecs" -k 10 --exact --truth "$gt" > "$T/exact.txt" 2>&1
    r=$(recall_of "$T/exact.txt")
    # exact mode must reproduce the independent ground truth (ties between equal distances aside)
    if [ -n "$r" ] && at_least "$r" 0.999; then ok "$metric exact mode recall@10 $r"; else bad "$metric exact mode recall@10 '$r': $(cat "$T/exact.txt")"; fi
  fi
  "$BIN" query "$T/$metric" --queries "$DATA/fmnist_query.fvecs" -k 10 --truth "$gt" > "$T/q.txt" 2>&1
  r=$(recall_of "$T/q.txt")
  if [ -n "$r" ] && at_least "$r" 0.95; then ok "$metric default recall@10 $r"; else bad "$metric default recall@10 '$r' < 0.95: $(cat "$T/q.txt")"; fi
  cat "$T/q.txt"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
