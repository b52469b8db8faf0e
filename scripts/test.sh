#!/usr/bin/env bash
# Runs the test suite (or the test files under the folders/files given) with node:test,
# TypeScript through tsx, and workspace packages resolved to their sources.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("${@:-test}")
mapfile -t files < <(find "${targets[@]}" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files under ${targets[*]}" >&2
  exit 1
fi
# --test-force-exit: a failed test that leaves a socket open must not keep CI waiting;
# --test-timeout: no single test may run longer than three minutes.
exec node --conditions=rms-source --import tsx --test --test-force-exit --test-timeout=180000 --test-reporter=spec "${files[@]}"
