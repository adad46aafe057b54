#!/usr/bin/env bash
# Installs the real peers the test suite starts, from Debian's packages:
#   nginx         the auth_request front end of the HTTP e2e test
#   redis-server  the rate-limit store (standalone and a 3-master cluster;
#   redis-tools   redis-cli creates the cluster)
#   prometheus    for promtool, which lints the /metrics output
# Safe to run again: it installs only what is missing.
set -euo pipefail
exec "$(dirname "$0")/install-missing.sh" test \
  nginx=nginx redis-server=redis-server redis-cli=redis-tools promtool=prometheus
