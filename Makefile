# make package: .deb and .rpm in dist/ (with man pages and shell completions),
#               version stamped into the binaries.
# make build:   the two binaries in dist/build/ for this machine.
# make bench:   end-to-end figures of the real binaries on loopback (BENCHFLAGS=-quick for a smoke run).
# The version of the packages and of `chatsync version`: from the release tag
# vX.Y.Z, 0.0.0+git<commit> before the first one (packaging/version.sh).
VERSION ?= $(shell packaging/version.sh)
ARCH    ?= $(shell go env GOARCH)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build package deb rpm test bench clean

build:
	mkdir -p dist/build
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o dist/build/ ./cmd/chatsync ./cmd/chatsync-server

package:
	VERSION=$(VERSION) ARCH=$(ARCH) packaging/package.sh deb rpm

deb:
	VERSION=$(VERSION) ARCH=$(ARCH) packaging/package.sh deb

rpm:
	VERSION=$(VERSION) ARCH=$(ARCH) packaging/package.sh rpm

test:
	go test ./...

bench:
	go run ./cmd/chatsync-bench $(BENCHFLAGS)

clean:
	rm -rf dist
