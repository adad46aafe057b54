#!/usr/bin/env bash
# Runs every fuzz target in the module briefly, so that the seed corpus and a
# little exploration run on every test run. Crashers are written to the
# package's testdata/fuzz directory.
#
# The budget is a count of executions (FUZZTIME, default 50000x), not a
# duration: Go 1.26's fuzz coordinator can report a spurious "context
# deadline exceeded" when a duration runs out (golang/go#75804).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-50000x}"

grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -timeout 5m
  done
done
