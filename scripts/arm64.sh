#!/usr/bin/env bash
# scripts/arm64.sh: cross-build s3vec for arm64 and run the unit tests under qemu-aarch64.
#
# Usage: scripts/arm64.sh [build-dir]      (default: build/arm64, the "arm64" CMake preset's folder)
# Installs what it needs with apt the first time (as root: arm64 multiarch, gcc-aarch64-linux-gnu,
# qemu-user, the arm64 -dev packages of libcurl/OpenSSL/cJSON/zstd); later runs skip apt entirely.
# Then configures with cmake/aarch64-linux-gnu.cmake (benchmarks off), builds everything, and runs
# CTest's "unit" label, each program under qemu-aarch64 via CMAKE_CROSSCOMPILING_EMULATOR.
# On an arm64 host it builds natively instead. Exit status: non-zero if any step or test fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/arm64}
jobs=$(nproc 2>/dev/null || echo 2)

host=$(uname -m)
if [[ $host == aarch64 || $host == arm64 ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DS3VEC_BENCH=OFF
    cmake --build "$build" -j "$jobs"
    exec ctest --test-dir "$build" -L unit --output-on-failure -j "$jobs"
fi

# libc6:arm64 provides the loader and libc the tests run with under qemu (see the toolchain file).
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user pkg-config libc6:arm64
      libcurl4-openssl-dev:arm64 libssl-dev:arm64 libcjson-dev:arm64 libzstd-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "arm64.sh: installing ${missing[*]}" >&2
    if ((EUID != 0)); then
        echo "arm64.sh: run as root (or install the packages above) first" >&2
        exit 1
    fi
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DS3VEC_BENCH=OFF
cmake --build "$build" -j "$jobs"
# e_machine of the ELF header: 0xb7 = AArch64
[[ $(od -An -tx1 -j18 -N2 "$build/tests/test_kernels" 2>/dev/null | tr -d ' \n') == b700 ]] || {
    echo "arm64.sh: $build/tests/test_kernels is not an arm64 program" >&2
    exit 1
}
exec ctest --test-dir "$build" -L unit --output-on-failure -j "$jobs"
