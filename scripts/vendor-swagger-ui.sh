#!/usr/bin/env bash
# Replaces the portal's vendored Swagger UI with a release from the npm
# registry (swagger-ui-dist), and records its version and checksums.
#   scripts/vendor-swagger-ui.sh 5.35.0
# Only the files the portal serves are kept: the bundle, its stylesheet,
# and the licence and notices that go with them.
set -euo pipefail
version="${1:?usage: $0 VERSION (of the npm package swagger-ui-dist)}"
cd "$(dirname "$0")/.."
dest=internal/portal/assets/vendor/swagger-ui
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
rm -rf "$dest"
mkdir -p "$dest"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "$work/package/$f" "$dest/$f"
done
echo "$version" >"$dest/VERSION"
(cd "$dest" && sha256sum swagger-ui-bundle.js swagger-ui.css >SHA256SUMS)
echo "vendored swagger-ui-dist $version into $dest"
