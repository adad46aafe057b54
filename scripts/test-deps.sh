#!/usr/bin/env bash
# Installs the real peers the test suite starts, from Debian's packages:
#   nginx         auth_request front end of the HTTP e2e tests
#   caddy         forward_auth front end of the HTTP e2e tests
#   redis-server  the rate-limit store (standalone and a 3-master cluster;
#   redis-tools   redis-cli creates the cluster)
#   prometheus    for promtool, which lints the /metrics output
#   postgresql    the control plane's PostgreSQL store (tests run their own
#                 server on a free port; Debian keeps its programs off PATH)
# and builds Traefik (ForwardAuth front end), which Debian does not package,
# into .cache/bin (scripts/traefik.sh).
# Safe to run again: it installs and builds only what is missing.
set -euo pipefail
here="$(dirname "$0")"
"$here/install-missing.sh" test \
  nginx=nginx caddy=caddy redis-server=redis-server redis-cli=redis-tools promtool=prometheus
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  "$here/install-missing.sh" test initdb-for-tests=postgresql
fi
"$here/traefik.sh"
