#!/usr/bin/env bash
# Installs what `make bench` drives besides Tollgate, from Debian's packages:
#   redis-server, redis-tools  the Redis rate-limit scenario (and its round-trip count)
#   nginx, wrk                 the HTTP front end behind nginx auth_request
# Safe to run again: it installs only what is missing.
set -euo pipefail
exec "$(dirname "$0")/install-missing.sh" benchmark \
  redis-server=redis-server redis-cli=redis-tools nginx=nginx wrk=wrk
