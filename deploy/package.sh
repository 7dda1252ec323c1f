#!/usr/bin/env bash
# deploy/package.sh: build the Lambda function zip (provided.al2023) for x86_64 or arm64.
#
#   deploy/package.sh [--arch arm64|x86_64] [--build-dir DIR] [--bootstrap FILE] [--out ZIP]
#                     [--stage DIR] [--task-root DIR] [--no-strip] [--no-install] [--quiet]
#
# The zip holds `bootstrap` at its root and, under lib/, every shared library it needs (found by
# walking DT_NEEDED from the binary) plus glibc's own loader. The bootstrap's ELF interpreter is
# rewritten to <task-root>/lib/ld-linux-*.so.* (default /var/task, where Lambda unpacks the zip) and
# its DT_RPATH to $ORIGIN/lib, so the program runs where none of the build machine's libraries exist,
# e.g. on Lambda's Amazon Linux 2023 with its older glibc (2.34; this build's is Debian 12's 2.36).
# DT_RPATH, not DT_RUNPATH, on purpose: Lambda sets LD_LIBRARY_PATH=/lib64:/usr/lib64:..., which the
# loader searches BEFORE a DT_RUNPATH but AFTER a DT_RPATH, so with RUNPATH the system's older libc.so.6
# would be paired with our loader. No bundled library keeps an rpath of its own (checked), so the
# executable's DT_RPATH governs every lookup. deploy/README.md explains why not static linking.
#
# Options:
#   --arch A        x86_64 or arm64 (alias aarch64); default arm64 (Graviton, the template's default)
#   --build-dir D   CMake build folder for the bootstrap (default build/package-<arch>); arm64 on an
#                   x86_64 host cross-builds with cmake/aarch64-linux-gnu.cmake
#   --bootstrap F   package this already-built bootstrap instead of building one (its arch must match)
#   --out Z         the zip to write (default <build-dir>/function-<arch>.zip)
#   --stage D       write the unzipped layout into D (e.g. sam build's $ARTIFACTS_DIR) and make no zip
#   --task-root D   where the zip is unpacked at run time (default /var/task = LAMBDA_TASK_ROOT)
#   --no-strip      keep the bootstrap's symbols (the libraries are Debian's, already stripped)
#   --no-install    never call apt-get; fail if a tool or package is missing
#   --quiet         print only the final summary line
# Installs what it needs with apt-get the first time (as root): zip, patchelf, binutils, cmake, the
# -dev packages; for arm64 also gcc-aarch64-linux-gnu and the arm64 multiarch -dev packages.
# Output: the zip (reproducible for the same inputs: fixed timestamps, sorted entries, no extra
# attributes) and one summary line "package: <zip> arch=... zip_bytes=... unzipped_bytes=... libs=N".
# Exit status non-zero on any failure, with the reason on stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
arch=arm64 build_dir="" bootstrap="" out="" stage_out="" task_root=/var/task strip=1 install=1 quiet=0

die() { echo "package.sh: $*" >&2; exit 1; }
say() { [ "$quiet" = 1 ] || echo "package.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --bootstrap) bootstrap=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --stage) stage_out=${2:?}; shift 2 ;;
    --task-root) task_root=${2:?}; shift 2 ;;
    --no-strip) strip=0; shift ;;
    --no-install) install=0; shift ;;
    --quiet) quiet=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

case "$arch" in
  arm64|aarch64) arch=arm64 elf_machine=AArch64 triplet=aarch64-linux-gnu ;;
  x86_64|amd64) arch=x86_64 elf_machine="Advanced Micro Devices X86-64" triplet=x86_64-linux-gnu ;;
  *) die "--arch must be x86_64 or arm64, not $arch" ;;
esac
case "$task_root" in /*) ;; *) die "--task-root must be absolute" ;; esac
host=$(uname -m)
cross=0
[ "$arch" = arm64 ] && [ "$host" != aarch64 ] && cross=1

# ---- tools and packages (idempotent) ----------------------------------------------------------
need=(zip patchelf binutils cmake pkg-config gcc libcurl4-openssl-dev libssl-dev libcjson-dev libzstd-dev)
if [ "$cross" = 1 ]; then
  need+=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross libc6:arm64
         libcurl4-openssl-dev:arm64 libssl-dev:arm64 libcjson-dev:arm64 libzstd-dev:arm64)
fi
if [ -n "$bootstrap" ]; then  # packaging only: no compilers needed
  need=(zip patchelf binutils)
  [ "$cross" = 1 ] && need+=(libc6:arm64 libcurl4:arm64 libcjson1:arm64 libzstd1:arm64 libssl3:arm64)
fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$install" = 1 ] || die "missing packages: ${missing[*]} (run without --no-install, as root)"
  [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]}; run as root or install them first"
  say "installing ${missing[*]}"
  if [ "$cross" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  lock=(-o DPkg::Lock::Timeout=300)   # other tests may be installing at the same time
  apt-get "${lock[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$cross" = 1 ]; then
  strip_tool=aarch64-linux-gnu-strip
  libdirs=(/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib)
else
  strip_tool="strip"
  libdirs=("/lib/$triplet" "/usr/lib/$triplet" /lib64 /usr/lib64 /lib /usr/lib)
fi

# ---- the bootstrap ------------------------------------------------------------------------------
if [ -z "$bootstrap" ]; then
  build_dir=${build_dir:-$root/build/package-$arch}
  cfg=(-S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DS3VEC_TESTS=OFF -DS3VEC_BENCH=OFF)
  [ "$cross" = 1 ] && cfg+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake")
  say "building bootstrap ($arch) in $build_dir"
  if [ "$quiet" = 1 ]; then
    cmake "${cfg[@]}" >/dev/null
    cmake --build "$build_dir" --target bootstrap -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  else
    cmake "${cfg[@]}" >&2
    cmake --build "$build_dir" --target bootstrap -j "$(nproc 2>/dev/null || echo 2)" >&2
  fi
  bootstrap=$build_dir/bootstrap/bootstrap
fi
[ -f "$bootstrap" ] || die "no bootstrap at $bootstrap"
machine=$(readelf -h "$bootstrap" | sed -n 's/^ *Machine: *//p')
[ "$machine" = "$elf_machine" ] || die "$bootstrap is built for '$machine', not $arch"
interp=$(readelf -l "$bootstrap" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] || die "$bootstrap has no ELF interpreter (static?); nothing to bundle"
out_default_dir=${build_dir:-$(dirname "$bootstrap")}
out=${out:-$out_default_dir/function-$arch.zip}

# ---- collect the libraries ----------------------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/s3vec-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
cp "$bootstrap" "$stage/bootstrap"
chmod 755 "$stage/bootstrap"
[ "$strip" = 1 ] && "$strip_tool" --strip-unneeded "$stage/bootstrap"

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'; }
find_lib() {
  local d
  for d in "${libdirs[@]}"; do
    if [ -e "$d/$1" ] && [ "$(readelf -h "$d/$1" 2>/dev/null | sed -n 's/^ *Machine: *//p')" = "$elf_machine" ]; then
      echo "$d/$1"; return 0
    fi
  done
  return 1
}

interp_name=$(basename "$interp")
interp_src=$(find_lib "$interp_name") || interp_src=$interp
[ -f "$interp_src" ] || die "the ELF interpreter $interp is not installed"
declare -A seen=()
queue=("$stage/bootstrap")
origin=()
while [ "${#queue[@]}" -gt 0 ]; do
  obj=${queue[0]}; queue=("${queue[@]:1}")
  for n in $(needed "$obj"); do
    [ -n "${seen[$n]:-}" ] && continue
    [ "$n" = "$interp_name" ] && { seen[$n]=1; continue; }
    src=$(find_lib "$n") || die "cannot find $n (needed by $(basename "$obj")) in ${libdirs[*]}"
    seen[$n]=1
    cp -L "$src" "$stage/lib/$n"
    chmod 644 "$stage/lib/$n"
    origin+=("$n $(readlink -f "$src")")
    queue+=("$stage/lib/$n")
  done
done
cp -L "$interp_src" "$stage/lib/$interp_name"
chmod 755 "$stage/lib/$interp_name"
origin+=("$interp_name $(readlink -f "$interp_src")")

# The loader and libc must come from the same glibc build.
libc_dir=$(dirname "$(readlink -f "$(find_lib libc.so.6)")")
[ "$(dirname "$(readlink -f "$interp_src")")" = "$libc_dir" ] ||
  die "loader $(readlink -f "$interp_src") and libc.so.6 ($libc_dir) come from different places"

# ---- patch: interpreter and DT_RPATH ------------------------------------------------------------
# shellcheck disable=SC2016  # $ORIGIN is for the loader, not the shell
patchelf --set-interpreter "$task_root/lib/$interp_name" --force-rpath --set-rpath '$ORIGIN/lib' "$stage/bootstrap"
for f in "$stage"/lib/*; do
  [ "$(basename "$f")" = "$interp_name" ] && continue
  if readelf -d "$f" | grep -qE '\((RPATH|RUNPATH)\)'; then
    patchelf --remove-rpath "$f"
  fi
done

# ---- verify ---------------------------------------------------------------------------------------
got_interp=$(readelf -l "$stage/bootstrap" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ "$got_interp" = "$task_root/lib/$interp_name" ] || die "interpreter patch failed ($got_interp)"
# shellcheck disable=SC2016
readelf -d "$stage/bootstrap" | grep -q '(RPATH).*\[\$ORIGIN/lib\]' || die "rpath patch failed"
readelf -d "$stage/bootstrap" | grep -q '(RUNPATH)' && die "bootstrap still has a RUNPATH"
for f in "$stage/bootstrap" "$stage"/lib/*; do
  for n in $(needed "$f"); do
    [ -f "$stage/lib/$n" ] || die "$(basename "$f") needs $n, which is not in the package"
  done
done

# ---- provenance ---------------------------------------------------------------------------------
# One dpkg -S for every file (it is slow per call); merged /usr means a file may be registered under
# /lib or /usr/lib, so both spellings are asked.
declare -A pkg_of=()
queries=()
for line in "${origin[@]}"; do
  src=${line#* }
  queries+=("$src" "$(echo "$src" | sed -E 's|^/usr/lib/|/lib/|; t; s|^/lib/|/usr/lib/|')")
done
while IFS= read -r l; do
  p=${l%%: /*} f=${l#*: }
  pkg_of[$f]=$p
done < <(dpkg -S "${queries[@]}" 2>/dev/null || true)
{
  echo "s3vec function package"
  echo "arch: $arch"
  echo "source: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD -- 2>/dev/null || echo ' (modified)')"
  echo "interpreter: $task_root/lib/$interp_name"
  echo "rpath: \$ORIGIN/lib (DT_RPATH)"
  echo "libraries (file, from, Debian package and version):"
  for line in "${origin[@]}"; do
    name=${line%% *} src=${line#* }
    alt=$(echo "$src" | sed -E 's|^/usr/lib/|/lib/|; t; s|^/lib/|/usr/lib/|')
    pkg=${pkg_of[$src]:-${pkg_of[$alt]:-?}}
    ver=""
    [ "$pkg" != "?" ] && ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
    echo "  lib/$name  $src  $pkg $ver"
  done | LC_ALL=C sort
} > "$stage/PACKAGE-MANIFEST.txt"

libs=$(find "$stage/lib" -type f | wc -l)
unzipped=$(find "$stage" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

if [ -n "$stage_out" ]; then
  mkdir -p "$stage_out"
  rm -rf "${stage_out:?}/lib" "${stage_out:?}/bootstrap" "${stage_out:?}/PACKAGE-MANIFEST.txt"
  cp -a "$stage/bootstrap" "$stage/lib" "$stage/PACKAGE-MANIFEST.txt" "$stage_out/"
  echo "package: staged in $stage_out arch=$arch unzipped_bytes=$unzipped libs=$libs"
  exit 0
fi

# Reproducible zip: fixed mtimes (the commit time), sorted names, no extra fields (-X); level 6: -9 saves 0.5% at 3x the time.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)}
find "$stage" -exec touch -h -d "@$epoch" {} +
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out"
(cd "$stage" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | zip -q -X -6 "$out" -@)
zip_bytes=$(stat -c %s "$out")
echo "package: $out arch=$arch zip_bytes=$zip_bytes unzipped_bytes=$unzipped libs=$libs"
