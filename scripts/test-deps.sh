#!/usr/bin/env bash
# Installs the real peers the test suite starts, from Debian's packages:
#   nginx         auth_request front end of the HTTP e2e tests
#   caddy         forward_auth front end of the HTTP e2e tests
#   redis-server  the rate-limit store (standalone and a 3-master cluster;
#   redis-tools   redis-cli creates the cluster)
#   prometheus    for promtool, which lints the /metrics output
#   postgresql    the control plane's PostgreSQL store (tests run their own
#                 server on a free port; Debian keeps its programs off PATH)
#   chromium      the headless browser of the web page tests (internal/testbrowser)
# builds Traefik (ForwardAuth front end), which Debian does not package,
# into .cache/bin (scripts/traefik.sh), and installs the npm packages of the
# tests' OpenID provider (internal/testoidc/provider: oidc-provider, pinned
# by its package-lock.json) into its node_modules with `npm ci`. That needs
# Node.js 20.18 or later and npm, which Debian 12's nodejs is too old for:
# they are not installed here.
# Safe to run again: it installs and builds only what is missing, and
# reinstalls the npm packages when package-lock.json changed.
set -euo pipefail
here="$(dirname "$0")"
"$here/install-missing.sh" test \
  nginx=nginx caddy=caddy redis-server=redis-server redis-cli=redis-tools promtool=prometheus \
  chromium=chromium
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  "$here/install-missing.sh" test initdb-for-tests=postgresql
fi
"$here/traefik.sh"

provider="$here/../internal/testoidc/provider"
stamp="$provider/node_modules/.installed-package-lock.json"
if ! cmp -s "$provider/package-lock.json" "$stamp" 2>/dev/null; then
  command -v npm >/dev/null 2>&1 || {
    echo "test-deps.sh: npm not found: the tests' OpenID provider needs Node.js 20.18 or later with npm" >&2
    exit 1
  }
  echo "installing the npm packages of the tests' OpenID provider (npm ci in internal/testoidc/provider)"
  npm ci --prefix "$provider" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  cp "$provider/package-lock.json" "$stamp"
fi
