# cmake/aarch64-linux-gnu.cmake: cross build for arm64 (Lambda's Graviton) on a Debian x86_64 host.
#
# Needs (scripts/arm64.sh installs them): gcc-aarch64-linux-gnu, qemu-user, and the arm64 multiarch
# -dev packages of the dependencies (dpkg --add-architecture arm64; libcurl4-openssl-dev:arm64
# libssl-dev:arm64 libcjson-dev:arm64 libzstd-dev:arm64). Debian's cross gcc already searches the
# multiarch directories (/usr/include/aarch64-linux-gnu, /usr/lib/aarch64-linux-gnu), so no sysroot
# is needed; pkg-config is pointed at the arm64 .pc files only, so no x86_64 library can leak in.
# Test programs run under qemu-aarch64 through CMAKE_CROSSCOMPILING_EMULATOR (CTest uses it).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_AR aarch64-linux-gnu-ar CACHE FILEPATH "")
set(CMAKE_RANLIB aarch64-linux-gnu-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP aarch64-linux-gnu-strip CACHE FILEPATH "")

# Programs (pkg-config, python3) come from the host; libraries and headers only from arm64 places.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# Run under qemu with the arm64 multiarch loader and libc (libc6:arm64, pulled in by the -dev packages
# above), i.e. prefix "/". Not "-L /usr/aarch64-linux-gnu": that loads the cross package's ld.so
# (libc6-arm64-cross, 2.36-8cross1 on Debian 12) next to the multiarch libc.so.6 (2.36-9+deb12u*),
# whose private ABI differs: every pthread_create then spins forever in glibc's stack cache.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
