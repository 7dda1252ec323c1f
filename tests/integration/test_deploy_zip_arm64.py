#!/usr/bin/env python3
"""Integration test: the arm64 function zip (Graviton, the template's default) runs in an empty root.

The same steps as test_deploy_zip.py (see its docstring), for arm64: deploy/package.sh cross-builds the
bootstrap with gcc-aarch64-linux-gnu and Debian's arm64 multiarch libraries (in
$S3VEC_BUILD_DIR/package-arm64, installing the toolchain with apt the first time), bundles the arm64
libraries and loader, and the bootstrap runs chrooted under qemu-aarch64 (itself kept in /.qemu with
its own x86_64 libraries, which the aarch64 guest cannot load). On an arm64 machine it runs natively.
Ends with "N passed, N failed".
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_deploy_zip  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_deploy_zip.main("arm64"))
