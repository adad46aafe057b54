#!/usr/bin/env bash
# Installs what `make bench` drives besides Tollgate, from Debian's packages:
#   redis-server, redis-tools  the Redis rate-limit scenario (and its round-trip count)
#   nginx, wrk                 the HTTP front end behind nginx auth_request
#   postgresql                 the admin API's PostgreSQL store (started on a free
#                              port by the benchmark; Debian keeps it off PATH)
#   valgrind                   instruction counts of a Check with and without
#                              policies (callgrind), which load on the machine
#                              does not change
# Safe to run again: it installs only what is missing.
set -euo pipefail
here="$(dirname "$0")"
"$here/install-missing.sh" benchmark \
  redis-server=redis-server redis-cli=redis-tools nginx=nginx wrk=wrk valgrind=valgrind
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  "$here/install-missing.sh" benchmark initdb-for-benchmarks=postgresql
fi
