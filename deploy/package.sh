#!/usr/bin/env bash
# deploy/package.sh: build the Lambda function zip (provided.al2023) for x86_64 or arm64.
#
#   deploy/package.sh [--arch arm64|x86_64] [--deps static|dynamic] [--build-dir DIR] [--deps-dir DIR]
#                     [--bootstrap FILE] [--out ZIP] [--stage DIR] [--task-root DIR] [--no-strip]
#                     [--no-install] [--quiet]
#
# The zip holds `bootstrap` at its root and, under lib/, every shared library it needs (found by
# walking DT_NEEDED from the binary) plus glibc's own loader. The bootstrap's ELF interpreter is
# rewritten to <task-root>/lib/ld-linux-*.so.* (default /var/task, where Lambda unpacks the zip) and
# its DT_RPATH to $ORIGIN/lib, so the program runs where none of the build machine's libraries exist,
# e.g. on Lambda's Amazon Linux 2023 with its older glibc (2.34; this build's is Debian 12's 2.36).
# DT_RPATH, not DT_RUNPATH, on purpose: Lambda sets LD_LIBRARY_PATH=/lib64:/usr/lib64:..., which the
# loader searches BEFORE a DT_RUNPATH but AFTER a DT_RPATH, so with RUNPATH the system's older libc.so.6
# would be paired with our loader. No bundled library keeps an rpath of its own (checked), so the
# executable's DT_RPATH governs every lookup.
# With --deps static (the default) the bootstrap links libcurl, cJSON, OpenSSL and zstd statically, so
# only glibc (libc, libm) and the loader are bundled: libcurl.a is built here from Debian's curl source
# package with HTTP(S) over OpenSSL only, libcjson.a from Debian's cjson source package (Debian ships
# no static cJSON), libssl.a/libcrypto.a/libzstd.a are Debian's own. That saves the dynamic loader's
# work for libcurl's ~30 libraries at every cold start (deploy/README.md has the figures).
#
# Options:
#   --arch A        x86_64 or arm64 (alias aarch64); default arm64 (Graviton, the template's default)
#   --deps M        static (default): link the static libraries described above; dynamic: link Debian's
#                   shared libcurl & co. and bundle them (34 libraries), as development builds do
#   --deps-dir D    cache of the static libcurl/cJSON builds and their Debian sources (default
#                   $S3VEC_DEPS_DIR or build/deps); built once per arch (1-3 min), then reused
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
# -dev packages; for arm64 also gcc-aarch64-linux-gnu and the arm64 multiarch -dev packages. For
# --deps static also dpkg-dev and make, and the source packages curl and cjson (apt-get source); if
# apt has no deb-src entry it adds one for the configured Debian suites
# (/etc/apt/sources.list.d/s3vec-deb-src.sources or .list) and runs apt-get update.
# Output: the zip (reproducible for the same inputs: fixed timestamps, sorted entries, no extra
# attributes) and one summary line "package: <zip> arch=... zip_bytes=... unzipped_bytes=... libs=N".
# Exit status non-zero on any failure, with the reason on stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
arch=arm64 build_dir="" bootstrap="" out="" stage_out="" task_root=/var/task strip=1 install=1 quiet=0
deps=static deps_dir=${S3VEC_DEPS_DIR:-$root/build/deps}

die() { echo "package.sh: $*" >&2; exit 1; }
say() { [ "$quiet" = 1 ] || echo "package.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --deps) deps=${2:?}; shift 2 ;;
    --deps-dir) deps_dir=${2:?}; shift 2 ;;
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
case "$deps" in static|dynamic) ;; *) die "--deps must be static or dynamic, not $deps" ;; esac
mkdir -p "$deps_dir" && deps_dir=$(cd "$deps_dir" && pwd)
host=$(uname -m)
cross=0
[ "$arch" = arm64 ] && [ "$host" != aarch64 ] && cross=1

# ---- tools and packages (idempotent) ----------------------------------------------------------
need=(zip patchelf binutils cmake pkg-config gcc libcurl4-openssl-dev libssl-dev libcjson-dev libzstd-dev)
if [ "$cross" = 1 ]; then
  need+=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross libc6:arm64
         libcurl4-openssl-dev:arm64 libssl-dev:arm64 libcjson-dev:arm64 libzstd-dev:arm64)
fi
[ "$deps" = static ] && need+=(dpkg-dev make)
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

# ---- static dependencies (--deps static) ----------------------------------------------------------
# curl's configure: HTTP and HTTPS over OpenSSL, nothing else. The CA bundle default is Amazon Linux's
# path; s3/s3_config.c chooses the bundle at run time anyway (AWS_CA_BUNDLE, then that path, then
# Debian's). Changing these flags changes the cache key, so the next packaging rebuilds.
curl_flags=(--disable-shared --enable-static --with-openssl --without-zlib --without-brotli --without-zstd
            --without-libpsl --without-libidn2 --without-nghttp2 --without-librtmp --without-libssh2
            --without-libssh --without-gssapi --without-libgsasl --without-hyper --disable-ldap --disable-ldaps
            --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap
            --disable-smtp --disable-gopher --disable-mqtt --disable-smb --disable-ftp --disable-file
            --disable-manual --disable-libcurl-option --disable-ntlm --disable-ntlm-wb --disable-tls-srp
            --disable-dependency-tracking --enable-threaded-resolver
            --with-ca-bundle=/etc/pki/tls/certs/ca-bundle.crt --without-ca-path)
dep_cflags="-O2 -fstack-protector-strong -fPIE"

# Debian's source packages need a deb-src entry; add one for the suites apt already uses.
ensure_deb_src() {
  [ -n "$(apt-cache showsrc curl 2>/dev/null)" ] && return 0
  [ "$install" = 1 ] || die "apt has no deb-src entry for curl's source (run without --no-install, as root)"
  [ "$(id -u)" = 0 ] || die "apt has no deb-src entry; run as root or add one for bookworm"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/s3vec-deb-src.sources
  elif grep -qs '^deb ' /etc/apt/sources.list; then
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/s3vec-deb-src.list
  else
    die "no Debian apt source found to derive a deb-src entry from"
  fi
  say "added a deb-src entry for Debian's source packages"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  [ -n "$(apt-cache showsrc curl 2>/dev/null)" ] || die "apt-cache showsrc curl is still empty after adding deb-src"
}

# fetch_source PKG: unpacks Debian's source package PKG (patches applied) under $deps_dir/src once;
# prints the folder.
fetch_source() {
  local pkg=$1 d="$deps_dir/src" dsc
  mkdir -p "$d"
  dsc=$(cd "$d" && ls "${pkg}"_*.dsc 2>/dev/null | sort -V | tail -1)
  if [ -z "$dsc" ]; then
    ensure_deb_src
    (cd "$d" && apt-get source --download-only -qq "$pkg" >/dev/null 2>&1) || die "apt-get source $pkg failed"
    dsc=$(cd "$d" && ls "${pkg}"_*.dsc | sort -V | tail -1)
  fi
  local ver=${dsc#"${pkg}"_}
  ver=${ver%.dsc}
  if [ ! -f "$d/$pkg-$ver/.unpacked" ]; then
    rm -rf "${d:?}/$pkg-$ver"
    # apt-get verified the files against the signed Sources index; dpkg-source applies Debian's patches
    (cd "$d" && dpkg-source --no-check -x "$dsc" "$pkg-$ver" >/dev/null 2>&1) || die "dpkg-source -x $dsc failed"
    touch "$d/$pkg-$ver/.unpacked"
  fi
  echo "$d/$pkg-$ver"
}

# build_static_deps: libcurl.a and libcjson.a for $arch under $deps_dir/$arch/<key>; sets $deps_prefix.
build_static_deps() {
  local cc=gcc ar=ar hostopt=() pkgdir=""
  if [ "$cross" = 1 ]; then
    cc=aarch64-linux-gnu-gcc ar=aarch64-linux-gnu-ar
    hostopt=(--host=aarch64-linux-gnu --build="$(uname -m)-linux-gnu")
    pkgdir=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
  fi
  mkdir -p "$deps_dir/$arch"
  exec 9>"$deps_dir/$arch.lock"
  flock 9   # one builder per arch at a time; the others wait and reuse its result
  local key
  key=$(printf '%s\n' "${curl_flags[@]}" "$dep_cflags" "$("$cc" -dumpfullversion)" "$arch" | sha256sum | cut -c1-12)
  deps_prefix="$deps_dir/$arch/$key"
  if [ -f "$deps_prefix/BUILT" ]; then
    say "static libcurl and cJSON: cached in $deps_prefix"
    exec 9>&-
    return 0
  fi
  local t0=$SECONDS curl_src cjson_src b="$deps_dir/$arch/build-$key"
  exec 8>"$deps_dir/src.lock"
  flock 8   # the sources are shared by both archs' builds
  curl_src=$(fetch_source curl)
  cjson_src=$(fetch_source cjson)
  exec 8>&-
  rm -rf "$b" "$deps_prefix"
  mkdir -p "$b/curl" "$deps_prefix/lib" "$deps_prefix/include/cjson"
  say "building static libcurl ($(basename "$curl_src"), $arch) in $b"
  (cd "$b/curl" &&
   PKG_CONFIG_LIBDIR=${pkgdir:-${PKG_CONFIG_LIBDIR:-}} CC=$cc CFLAGS="$dep_cflags" CPPFLAGS="-D_FORTIFY_SOURCE=2" \
     "$curl_src/configure" "${hostopt[@]}" --prefix="$deps_prefix" "${curl_flags[@]}" >"$b/curl-configure.log" 2>&1 &&
   make -C lib -j "$(nproc 2>/dev/null || echo 2)" >"$b/curl-make.log" 2>&1 &&
   make -C lib install >/dev/null 2>&1 && make -C include install >/dev/null 2>&1) ||
    die "building libcurl failed; see $b/curl-*.log"
  rm -f "$deps_prefix"/lib/*.la
  rm -rf "$deps_prefix/lib/pkgconfig"
  say "building static cJSON ($(basename "$cjson_src"), $arch)"
  "$cc" $dep_cflags -D_FORTIFY_SOURCE=2 -std=c89 -c "$cjson_src/cJSON.c" -o "$b/cJSON.o" || die "compiling cJSON.c failed"
  rm -f "$deps_prefix/lib/libcjson.a"
  "$ar" rcD "$deps_prefix/lib/libcjson.a" "$b/cJSON.o"
  cp "$cjson_src/cJSON.h" "$deps_prefix/include/cjson/cJSON.h"
  {
    echo "  libcurl.a  built from Debian source package $(basename "$curl_src") (HTTP, HTTPS; OpenSSL; threaded resolver)"
    echo "  libcjson.a  built from Debian source package $(basename "$cjson_src")"
  } > "$deps_prefix/BUILT"
  rm -rf "$b"
  say "static libcurl and cJSON built in $((SECONDS - t0)) s"
  exec 9>&-
}
deps_prefix=""

# ---- the bootstrap ------------------------------------------------------------------------------
if [ -z "$bootstrap" ]; then
  build_dir=${build_dir:-$root/build/package-$arch}
  cfg=(-S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DS3VEC_TESTS=OFF -DS3VEC_BENCH=OFF)
  [ "$cross" = 1 ] && cfg+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake")
  if [ "$deps" = static ]; then
    build_static_deps
    cfg+=(-DS3VEC_STATIC_DEPS=ON -DS3VEC_STATIC_PREFIX="$deps_prefix")
  else
    cfg+=(-DS3VEC_STATIC_DEPS=OFF)
  fi
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
  # Static parts: from the CMake cache of the build that made the bootstrap (when there is one).
  cache="$(dirname "$bootstrap")/../CMakeCache.txt"
  if [ -f "$cache" ] && grep -q '^S3VEC_STATIC_DEPS:BOOL=ON' "$cache"; then
    echo "statically linked (file, from, Debian package and version):"
    prefix=$(sed -n 's/^S3VEC_STATIC_PREFIX:PATH=//p' "$cache")
    sed 's/^ *//; s/^/  /' "$prefix/BUILT" 2>/dev/null || echo "  libcurl.a, libcjson.a  (no record in $prefix)"
    for v in S3VEC_LIBSSL_A S3VEC_LIBCRYPTO_A S3VEC_LIBZSTD_A; do
      a=$(sed -n "s/^$v:FILEPATH=//p" "$cache")
      [ -n "$a" ] || continue
      pkg=$(dpkg -S "$(readlink -f "$a")" 2>/dev/null | sed 's/: .*//' | head -1)
      ver=$([ -n "$pkg" ] && dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
      echo "  $(basename "$a")  $a  ${pkg:-?} $ver"
    done
  fi
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
