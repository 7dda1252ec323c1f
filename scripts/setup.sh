#!/usr/bin/env bash
# scripts/setup.sh: install what s3vec needs from Debian (idempotent; fast when everything is there)
# and build it. Usage: scripts/setup.sh [--tests] [--bench] [--debug]
#   --tests   also what the test suite needs (valgrind, Fashion-MNIST, PostgreSQL, qemu, ...), and the
#             debug (ASan+UBSan) build
#   --bench   also the benchmark peers (FAISS with OpenBLAS, gnuplot)
#   --debug   also build the debug preset
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0 want_bench=0 want_debug=0
for a in "$@"; do
  case "$a" in
    --tests) want_tests=1; want_debug=1 ;;
    --bench) want_bench=1 ;;
    --debug) want_debug=1 ;;
    *) echo "usage: scripts/setup.sh [--tests] [--bench] [--debug]" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake pkg-config ca-certificates libcurl4-openssl-dev libssl-dev libcjson-dev libzstd-dev
      zip unzip)
if [ "$want_tests" = 1 ]; then
  pkgs+=(valgrind python3 dataset-fashion-mnist clang clang-format libclang-rt-14-dev iproute2 patchelf qemu-user
        postgresql-15 postgresql-plpython3-15)
fi
if [ "$want_bench" = 1 ]; then
  pkgs+=(python3-faiss libopenblas0-pthread gnuplot-nox python3-numpy)
fi
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
if [ "$want_debug" = 1 ]; then
  cmake --preset debug >/dev/null
  cmake --build --preset debug -j "$jobs"
fi
echo "setup: built build/release/cli/s3vec"
