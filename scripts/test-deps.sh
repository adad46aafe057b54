#!/usr/bin/env bash
# Installs the real peers the test suite starts, from Debian's packages:
#   nginx         the auth_request front end of the HTTP e2e test
#   redis-server  the rate-limit store (standalone and a 3-master cluster;
#                 brings redis-cli, which creates the cluster)
#   prometheus    for promtool, which lints the /metrics output
# Safe to run again: it installs only what is missing.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
