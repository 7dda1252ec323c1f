#!/usr/bin/env bash
# scripts/demo.sh: set up, fetch GloVe-100 (340,479 word vectors, 1,000 query words) and run the real path
# locally: the index is built into local S3 (moto, verifying signatures), the bootstrap serves it under the
# local Lambda, and boto3's s3vectors client sends the 1,000 queries through the HTTP front, printing example
# results, recall@10 and latency (scripts/demo_lambda.py).
#   scripts/demo.sh --folder   the same queries on an index in a local folder with the s3vec CLI
# Ground truth: ../shared/data's independent exact top-100 when it is beside the repository, else our own
# exact mode (scans every cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
data=${S3VEC_DATA_DIR:-$root/data}
scripts/fetch-data.sh glove100 "$data"
if [ "${1:-}" != "--folder" ]; then
  exec python3 scripts/demo_lambda.py --data "$data"
fi
bin=build/release/cli/s3vec
index=$data/glove-index

echo
echo "== build: $index"
$bin build "$index" --input "$data/glove100_base.fvecs" --keys "$data/glove100_base.keys" --overwrite

gt=$root/../shared/data/glove100_gt100_l2.ivecs
if [ ! -f "$gt" ]; then
  echo
  echo "== ground truth with exact mode (no ../shared/data/glove100_gt100_l2.ivecs here)"
  gt=$data/glove100_gt10_exact.ivecs
  $bin query "$index" --queries "$data/glove100_query.fvecs" -k 10 --exact --save-truth "$gt" \
    --truth-keys "$data/glove100_base.keys" >/dev/null
fi

echo
echo "== an example: the 5 nearest words to 'king', 'paris' and 'computer'"
for w in king paris computer; do
  row=$(grep -n -x -m1 "$w" "$data/glove100_base.keys" | cut -d: -f1 || true)
  [ -n "$row" ] || continue
  vec=$($bin get "$index" "$w" --data --json | python3 -c "import json,sys; print(json.load(sys.stdin)['vectors'][0]['data']['float32'])")
  printf '%s: ' "$w"
  $bin query "$index" --vector "$vec" -k 6 | tail -n +2 | cut -f1 | paste -sd' '
done

echo
echo "== 1,000 queries, default nprobe, cold cache (clusters read from the folder)"
$bin query "$index" --queries "$data/glove100_query.fvecs" -k 10 --truth "$gt" --truth-keys "$data/glove100_base.keys"
echo
echo "== the same queries with a warm cache"
$bin query "$index" --queries "$data/glove100_query.fvecs" -k 10 --truth "$gt" --truth-keys "$data/glove100_base.keys" --repeat 2
echo
echo "== recall target 0.99"
$bin query "$index" --queries "$data/glove100_query.fvecs" -k 10 --truth "$gt" --truth-keys "$data/glove100_base.keys" --recall-target 0.99 --repeat 2
