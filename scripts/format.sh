#!/usr/bin/env bash
# scripts/format.sh: apply the repository's .clang-format to every C file, or with --check list the files that
# differ and exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--check" ]; then
  bad=$(for f in $files; do clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
  if [ -n "$bad" ]; then echo "not formatted:"; echo "$bad"; exit 1; fi
  echo "format: all $(echo "$files" | wc -w) files follow .clang-format"
else
  clang-format -i $files
fi
