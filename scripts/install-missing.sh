#!/usr/bin/env bash
# Installs, from Debian's packages, those of the given programs that are not
# on this machine. Each argument is COMMAND=PACKAGE: the program looked for
# (on PATH or in /usr/sbin) and the package that brings it. The first
# argument names the purpose, for the message.
# Usage: install-missing.sh PURPOSE COMMAND=PACKAGE...
set -euo pipefail

purpose="$1"
shift
missing=()
for pair in "$@"; do
  cmd="${pair%%=*}"
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${pair#*=}")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing $purpose dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
