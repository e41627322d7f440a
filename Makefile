# make package: .deb and .rpm in dist/, version stamped into the binaries.
# make build:   the two binaries in dist/build/ for this machine.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ARCH    ?= $(shell go env GOARCH)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build package deb rpm test clean

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

clean:
	rm -rf dist
