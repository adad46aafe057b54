# Tollgate. `make run` starts the enforcer on the quickstart config;
# `make test` installs the test dependencies and runs every test.

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

IMAGE ?= ghcr.io/tollgate/enforcer:$(VERSION)

.PHONY: all build run test test-deps unit fuzz bench vet image

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/enforcer ./cmd/enforcer

run:
	$(GO) run ./cmd/enforcer serve --config examples/quickstart.yaml

test: test-deps vet unit fuzz

test-deps:
	scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	scripts/fuzz-smoke.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# The container image (Dockerfile: static binary on distroless, non-root).
image:
	@command -v docker >/dev/null || { echo "make image needs docker"; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .
