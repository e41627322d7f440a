#!/usr/bin/env bash
# Builds the Linux packages into dist/: packaging/package.sh [deb] [rpm]
# (both when none is named). VERSION (default: from git describe) and ARCH
# (default: this machine's GOARCH) come from the environment. nfpm runs with
# `go run` at a pinned version, so nothing is installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
ARCH=${ARCH:-$(go env GOARCH)}
packagers=("$@")
[ ${#packagers[@]} -gt 0 ] || packagers=(deb rpm)

# Package versions must start with a digit: v1.2.3 → 1.2.3; a bare commit
# (no tag yet) → 0.0.0~git<commit>, which sorts before any release.
pkg_version=${VERSION#v}
case "$pkg_version" in
	[0-9]*) ;;
	*) pkg_version="0.0.0~git${pkg_version//[^A-Za-z0-9.]/.}" ;;
esac

mkdir -p dist/build
ldflags="-s -w -X main.version=${VERSION}"
for cmd in chatsync chatsync-server; do
	CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags "$ldflags" -o "dist/build/$cmd" "./cmd/$cmd"
done
for p in "${packagers[@]}"; do
	VERSION="$pkg_version" ARCH="$ARCH" go run "$NFPM" pkg --config packaging/nfpm.yaml --packager "$p" --target dist/
done
ls -l dist/*.deb dist/*.rpm 2>/dev/null || true
