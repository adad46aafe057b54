# Tollgate. `make run` starts the enforcer on the quickstart config;
# `make test` installs the test dependencies and runs every test.

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

IMAGE ?= ghcr.io/tollgate/enforcer:$(VERSION)

.PHONY: all build run run-controlplane run-store test test-deps unit fuzz bench microbench vet image proto portal-screenshots

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/enforcer ./cmd/enforcer

run:
	$(GO) run ./cmd/enforcer serve --config examples/quickstart.yaml

# A control plane serving the quickstart's resources and one enforcer
# wired to it (README, "Control plane"); Ctrl-C stops both.
run-controlplane: build
	bin/enforcer controlplane --config examples/controlplane/cp.yaml & cp=$$!; \
	trap 'kill $$cp 2>/dev/null' EXIT INT TERM; \
	bin/enforcer serve --config examples/controlplane/replica.yaml

# A control plane on SQLite with its admin API, and one enforcer wired to
# it (README, "API management"); Ctrl-C stops both.
run-store: build
	bin/enforcer controlplane --config examples/store/cp.yaml & cp=$$!; \
	trap 'kill $$cp 2>/dev/null' EXIT INT TERM; \
	bin/enforcer serve --config examples/store/replica.yaml

test: test-deps vet unit fuzz

test-deps:
	scripts/test-deps.sh

vet:
	scripts/proto.sh --check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	scripts/fuzz-smoke.sh

# Regenerates proto/'s Go code with the pinned protoc and protoc-gen-go.
proto:
	scripts/proto.sh

# Tollgate against a do-nothing ext_authz server, interleaved rounds, one
# load client; writes BENCHMARKS.md. Takes about ten minutes (5 min soak).
# With two or more CPUs the load client runs on CPU 0 and the servers on the
# rest, so the client does not steal the CPU being measured.
NPROC := $(shell nproc 2>/dev/null || echo 1)
PIN := $(shell [ $(NPROC) -ge 2 ] && command -v taskset >/dev/null && echo yes)
bench: build
	scripts/bench-deps.sh
	$(GO) build -o bin/noop ./bench/noop
	$(GO) build -o bin/bench ./bench/run
	$(if $(PIN),taskset -c 0 )bin/bench -enforcer bin/enforcer -noop bin/noop $(if $(PIN),-server-cpus 1-$(shell expr $(NPROC) - 1) )$(BENCHFLAGS)

# go test benchmarks of each stage of the decision.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# The README's pictures of the developer portal (docs/portal), taken in
# Chromium against the real binaries.
portal-screenshots: test-deps
	TOLLGATE_DOC_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestPortalScreenshots$$' ./e2e/

# The container image (Dockerfile: static binary on distroless, non-root).
image:
	@command -v docker >/dev/null || { echo "make image needs docker"; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .
