# maestro-sync — build, test, demo and benchmarks.
#
#   make demo   deploy examples/ to a local Docker engine and show the result
#   make test   install what the tests need, then run every test
#   make bench  run the benchmarks and write bench/results.txt

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
BIN := bin/maestro-sync
FUZZTIME ?= 30s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test setup kube-setup unit fuzz lint demo bench clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/maestro-sync

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./internal/manifest/

test: setup kube-setup lint unit fuzz

setup:
	./scripts/docker-setup.sh

# The Kubernetes control plane of the kube driver's tests (test/kube), and
# the kubelet of its real node: built from the Go module proxy into
# ~/.cache/maestro-sync/kube-bin once (about 14 minutes cold), then skipped in
# 0.1 s; the real node's Debian packages (containerd, runc, CNI plugins) are
# installed when missing.
kube-setup:
	./test/kube/build.sh >/dev/null

demo: build
	./scripts/demo.sh

bench:
	./bench/bench.sh

clean:
	rm -rf bin
