#!/usr/bin/env bash
# Builds the Linux packages into dist/: packaging/package.sh [deb] [rpm]
# (both when none is named). VERSION (default: packaging/version.sh, from the
# release tag) and ARCH (default: this machine's GOARCH) come from the
# environment. nfpm runs with `go run` at a pinned version, so nothing is
# installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
VERSION=${VERSION:-$(packaging/version.sh)}
ARCH=${ARCH:-$(go env GOARCH)}
packagers=("$@")
[ ${#packagers[@]} -gt 0 ] || packagers=(deb rpm)

# A package version starts with a digit (v1.2.3 → 1.2.3); the binaries say
# the same version as the package.
pkg_version=${VERSION#v}
case "$pkg_version" in
[0-9]*) ;;
*) pkg_version="0.0.0+git${pkg_version//[^A-Za-z0-9.]/.}" ;;
esac
# The man pages' date, and nfpm's mtime: the commit's, so a rebuild of a
# commit gives the same files.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

mkdir -p dist/build
ldflags="-s -w -X main.version=${pkg_version}"
for cmd in chatsync chatsync-server; do
	CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags "$ldflags" -o "dist/build/$cmd" "./cmd/$cmd"
done

# Man pages and shell completions, from the command tree (packaging/mangen,
# run for this machine whatever ARCH is). mangen is a module of its own; it
# runs on a copy pointed at this checkout, so dependencies chatsync gained
# since mangen's go.sum was written are resolved in the copy, not the tree.
rm -rf dist/doc
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
cp packaging/mangen/main.go packaging/mangen/go.mod "$gen/"
sort -u packaging/mangen/go.sum go.sum >"$gen/go.sum"
(
	cd "$gen"
	go mod edit -replace "github.com/chatsync/chatsync=$repo"
	GOWORK=off GOFLAGS=-mod=mod go run . -version "$pkg_version" -out "$repo/dist/doc"
)
gzip -9n dist/doc/man1/*.1

for p in "${packagers[@]}"; do
	VERSION="$pkg_version" ARCH="$ARCH" go run "$NFPM" pkg --config packaging/nfpm.yaml --packager "$p" --target dist/
done
ls -l dist/*.deb dist/*.rpm 2>/dev/null || true
