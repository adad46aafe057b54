#!/usr/bin/env bash
# Builds Traefik, the ForwardAuth proxy of the e2e test, from its Go module
# into .cache/bin/traefik (the e2e test looks there when traefik is not on
# PATH). Debian has no traefik package, and `go install ...@version` does not
# work for Traefik (its go.mod has replace directives), so this downloads
# the module, copies it somewhere writable and builds it there.
#
# Does nothing when traefik is on PATH or the cached binary is the wanted
# version. A cold build takes several minutes (it compiles a few thousand
# packages); the Go build cache makes later ones quick.
#
# Usage: scripts/traefik.sh          (TRAEFIK_VERSION overrides the version)
set -euo pipefail

version="${TRAEFIK_VERSION:-v3.6.12}"
module="github.com/traefik/traefik/v3"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.cache/bin/traefik"

works() { "$1" version 2>/dev/null | grep -q '^Version:'; }

if command -v traefik >/dev/null 2>&1 && works traefik; then
  exit 0
fi
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "^Version: *$version\$"; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "traefik.sh: go is needed to build Traefik" >&2; exit 1; }

echo "building traefik $version into ${bin#"$root"/} (takes a few minutes on a cold Go cache)"
start=$SECONDS
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# Outside this module, so that its go.mod and go.work play no part.
dir="$(cd "$work" && GO111MODULE=on GOWORK=off \
  go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  echo "traefik.sh: go mod download did not give the module directory of $module@$version" >&2
  exit 1
fi
# The module cache is read-only; the build wants a writable directory.
cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"

mkdir -p "$(dirname "$bin")"
(
  cd "$work/src"
  GOWORK=off CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X $module/pkg/version.Version=$version" \
    -o "$work/traefik" ./cmd/traefik
)
"$work/traefik" version >/dev/null
mv -f "$work/traefik" "$bin"
echo "built traefik $version in $((SECONDS - start))s"
