#!/usr/bin/env bash
# scripts/test.sh: set up (Debian packages, release and debug builds, test data) and run every test:
#   1. the whole CTest suite on the release build (unit, integration, fuzz-corpus labels)
#   2. the unit tests on the debug build (AddressSanitizer + UndefinedBehaviorSanitizer)
#   3. the unit tests with the SIMD kernels forced off (S3VEC_SIMD=scalar)
#   4. the unit tests under valgrind (memcheck: errors and definite leaks fail)
#   5. the arm64 build and its unit tests under qemu-user (scripts/arm64.sh), when present
#   6. every C file follows .clang-format (scripts/format.sh --check)
# The last line is the total: "N passed, N failed". Exit status 0 only when everything passed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

scripts/setup.sh --tests || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export S3VEC_DATA_DIR=${S3VEC_DATA_DIR:-$root/data}
scripts/fetch-data.sh fmnist "$S3VEC_DATA_DIR" || { echo "data fetch failed"; echo "0 passed, 1 failed"; exit 1; }

total_pass=0 total_fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# ctest_stage NAME ARGS...: runs ctest, adds its counts to the totals
ctest_stage() {
  local name=$1; shift
  echo "=== $name"
  local start=$SECONDS
  ctest "$@" 2>&1 | tee "$log"
  local line; line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "=== $name: no CTest summary"; total_fail=$((total_fail + 1)); return
  fi
  local failed total
  failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
  total=$(echo "$line" | sed -E 's/.* failed out of ([0-9]+).*/\1/')
  total_pass=$((total_pass + total - failed)); total_fail=$((total_fail + failed))
  echo "=== $name: $((total - failed)) passed, $failed failed ($((SECONDS - start)) s)"
}

ctest_stage "release: all tests" --test-dir build/release --output-on-failure -j "$jobs"
ctest_stage "debug (ASan+UBSan): unit tests" --test-dir build/debug -L unit --output-on-failure -j "$jobs"
S3VEC_SIMD=scalar ctest_stage "release, SIMD forced off: unit tests" --test-dir build/release -L unit --output-on-failure -j "$jobs"

echo "=== valgrind: unit tests ($jobs at a time)"
start=$SECONDS
vdir=$(mktemp -d)
# valgrind_one TEST: runs one unit test under memcheck; its output and status land in $vdir
valgrind_one() {
  local t=$1 name; name=$(basename "$1")
  if S3VEC_SOURCE_DIR="$root" S3VEC_SHARED_DIR="$root/../shared" S3VEC_BUILD_DIR="$root/build/release" \
     valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$t" >"$vdir/$name.log" 2>&1; then
    echo pass >"$vdir/$name.rc"
  else
    echo fail >"$vdir/$name.rc"
  fi
}
export -f valgrind_one
export root vdir
find build/release/tests -maxdepth 1 -name 'test_*' -type f -executable -print0 | sort -z |
  xargs -0 -n 1 -P "$jobs" bash -c 'valgrind_one "$0"'
vpass=0 vfail=0
for rc in "$vdir"/*.rc; do
  [ -e "$rc" ] || continue
  name=$(basename "$rc" .rc)
  if [ "$(cat "$rc")" = pass ]; then
    vpass=$((vpass + 1))
  else
    vfail=$((vfail + 1)); echo "valgrind FAIL: $name"; tail -30 "$vdir/$name.log"
  fi
done
rm -rf "$vdir"
total_pass=$((total_pass + vpass)); total_fail=$((total_fail + vfail))
echo "=== valgrind: $vpass passed, $vfail failed ($((SECONDS - start)) s)"

if [ -x scripts/arm64.sh ]; then
  echo "=== arm64 (cross build, unit tests under qemu-user)"
  start=$SECONDS
  scripts/arm64.sh 2>&1 | tee "$log"
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  if [ -n "$line" ]; then
    failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
    total=$(echo "$line" | sed -E 's/.* failed out of ([0-9]+).*/\1/')
    total_pass=$((total_pass + total - failed)); total_fail=$((total_fail + failed))
  else
    total_fail=$((total_fail + 1))
  fi
  echo "=== arm64 done ($((SECONDS - start)) s)"
fi

echo "=== format"
if scripts/format.sh --check; then total_pass=$((total_pass + 1)); else total_fail=$((total_fail + 1)); fi

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
