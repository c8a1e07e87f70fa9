#!/usr/bin/env bash
# A Debian package of one edgenlu binary: /usr/bin/edgenlu, the systemd units of `serve` and
# the update `agent` (packaging/systemd), their settings /etc/default/edgenlu (a conffile), the
# system user `edgenlu` whose home is the store /var/lib/edgenlu (packaging/debian), and the
# README and docs. Plain dpkg-deb: nothing to install beyond dpkg.
#
# Usage: scripts/package-deb.sh BINARY DEB_ARCH VERSION OUT_DIR   (DEB_ARCH: amd64, arm64)
# EDGENLU_DEB_COMPRESSION (default xz) is dpkg-deb's -Z: `none` for a quick check of the
# layout. Prints the package's path. Used by scripts/release.sh, and by scripts/test.sh on the test
# build to check the package's contents.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ne 4 ]; then
    echo "usage: $0 BINARY DEB_ARCH VERSION OUT_DIR" >&2
    exit 2
fi
binary="$1" arch="$2" version="$3" out="$4"
case "$arch" in amd64 | arm64) ;; *) echo "error: DEB_ARCH must be amd64 or arm64, not $arch" >&2; exit 2 ;; esac
[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 1; }

mkdir -p "$out"
root="$(mktemp -d "$out/.deb-root.XXXXXX")"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -D -m 0755 "$binary" "$root/usr/bin/edgenlu"
install -D -m 0644 "$repo/packaging/systemd/edgenlu-serve.service" "$root/lib/systemd/system/edgenlu-serve.service"
install -D -m 0644 "$repo/packaging/systemd/edgenlu-agent.service" "$root/lib/systemd/system/edgenlu-agent.service"
install -D -m 0644 "$repo/packaging/default.edgenlu" "$root/etc/default/edgenlu"
install -d "$root/usr/share/doc/edgenlu"
install -m 0644 "$repo/README.md" "$root/usr/share/doc/edgenlu/README.md"
cp -r "$repo/docs" "$root/usr/share/doc/edgenlu/docs"
chmod -R u=rwX,go=rX "$root/usr/share/doc/edgenlu/docs"
install -d "$root/DEBIAN"
install -m 0755 "$repo/packaging/debian/postinst" "$repo/packaging/debian/prerm" \
    "$repo/packaging/debian/postrm" "$root/DEBIAN/"
echo /etc/default/edgenlu > "$root/DEBIAN/conffiles"
# The newest glibc symbol version the binary needs (readelf reads any architecture's ELF).
glibc="$(readelf -V "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1 | cut -d_ -f2)"
installed_kb="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: edgenlu
Version: $version
Architecture: $arch
Maintainer: edgenlu developers <edgenlu@localhost>
Section: net
Priority: optional
Installed-Size: $installed_kb
Depends: libc6 (>= ${glibc:-2.17}), adduser | passwd
Description: WebAssembly component runtime for natural-language skills
 Runs signed, sandboxed NLU skills (Wasm components) on native quantized
 transformer kernels: an HTTP server (edgenlu-serve.service) and an update
 agent following a fleet channel in an OCI registry (edgenlu-agent.service).
CONTROL
deb="$out/edgenlu_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${EDGENLU_DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
