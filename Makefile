# mtlsbank — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Pinned tool versions: a fresh machine with Go and the module proxy needs nothing else.
BUF_VERSION            := v1.75.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2
GRPCURL_VERSION        := v1.9.4

TOOLS := $(CURDIR)/bin/tools
export PATH := $(TOOLS):$(PATH)
BUF     := $(TOOLS)/buf
GRPCURL := $(TOOLS)/grpcurl

# Independent prerequisites (the pinned tools, the binaries, lint and the generated-code
# check) run in parallel, so a first `make demo` or `make test` is as short as the machine
# allows. (No target builds SPIRE, which must never run alongside `go test -race`.) Not in a
# sub-make, which shares its parent's job slots; no output sync, which would hold back the
# logs of `make run` until it stops.
ifeq ($(MAKELEVEL),0)
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += --jobs=$(shell nproc 2>/dev/null || echo 2)
endif
endif

GO_PKGS := ./...
BINARIES := accounts payments bankctl certgen

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- tools
$(TOOLS)/.buf-$(BUF_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@
$(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@
$(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GRPC_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	@touch $@
$(TOOLS)/.grpcurl-$(GRPCURL_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@touch $@

PROTO_TOOLS := $(TOOLS)/.buf-$(BUF_VERSION) $(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) $(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GRPC_VERSION)
ALL_TOOLS := $(PROTO_TOOLS) $(TOOLS)/.grpcurl-$(GRPCURL_VERSION)

.PHONY: tools
tools: $(ALL_TOOLS) ## install the pinned tools into bin/tools

# ---------------------------------------------------------------- code generation
.PHONY: generate
generate: $(PROTO_TOOLS) ## regenerate gen/ from proto/ with buf
	$(BUF) generate

.PHONY: gen-check
gen-check: $(PROTO_TOOLS) ## fail if regenerating gen/ would change it
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BUF) generate -o "$$tmp"; \
	if ! diff -r gen "$$tmp/gen" >/dev/null; then \
		diff -ru gen "$$tmp/gen" | head -40; \
		echo "gen/ is stale: run 'make generate' and commit the result"; exit 1; \
	fi; echo "gen/ is up to date"

# ---------------------------------------------------------------- quality
.PHONY: lint
lint: $(PROTO_TOOLS) ## buf lint, gofmt and go vet
	$(BUF) lint
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi
	go vet $(GO_PKGS)

# ---------------------------------------------------------------- build
.PHONY: build
build: ## build bin/accounts bin/payments bin/bankctl bin/certgen
	@mkdir -p bin
	go build -o bin/ ./services/accounts ./services/payments ./client/bankctl ./cmd/certgen

bin/certgen: $(shell find cmd/certgen internal/pki internal/devpki -name '*.go' 2>/dev/null) go.mod
	@mkdir -p bin
	go build -o bin/certgen ./cmd/certgen

.PHONY: certs
certs: bin/certgen ## create the dev PKI in certs/dev/ (keeps an existing valid one)
	bin/certgen --dir certs/dev

.PHONY: crl
crl: bin/certgen ## re-sign the dev CRLs in certs/dev/crl.pem if due (make run does it every minute)
	bin/certgen --dir certs/dev crl

.PHONY: certs-clean
certs-clean: bin/certgen ## start the dev PKI over: new CAs, new everything
	bin/certgen --dir certs/dev --force

# ---------------------------------------------------------------- test
.PHONY: test
test: lint gen-check $(TOOLS)/.grpcurl-$(GRPCURL_VERSION) ## everything CI runs: lint, gen check, vet, gofmt, go test -race (the demo included)
	@if [ -z "$${BANK_TEST_POSTGRES:-}" ] && [ ! -x "$${BANK_PG_BINDIR:-/usr/lib/postgresql/15/bin}/initdb" ]; then \
		echo "make test: no PostgreSQL server binaries and BANK_TEST_POSTGRES unset: the PostgreSQL tests will SKIP"; fi
	@ok=; for p in $${BANK_PYTHON:-/usr/bin/python3 python3}; do "$$p" -c 'import grpc, grpc_tools' 2>/dev/null && ok=1 && break; done; \
	if [ -z "$$ok" ]; then echo "make test: no python3 with grpcio and grpc_tools (scripts/example-deps.sh): the Python example test will SKIP"; fi
	@if ! command -v node >/dev/null || [ ! -f examples/node/node_modules/@grpc/grpc-js/package.json ]; then \
		echo "make test: no node or no examples/node/node_modules (scripts/example-deps.sh): the Node example test will SKIP"; fi
	go test -race -count=1 -timeout 20m $(GO_PKGS)

.PHONY: bench
bench: ## measure the cost of security against a bare server: Go benchmarks, then the harness (docs/benchmarks.md)
	go test -run '^$$' -bench . -benchmem -count 1 ./internal/authz ./internal/identity ./internal/tlsconfig ./internal/ledger ./internal/tracing ./internal/grpcserver ./internal/telemetry ./internal/whoami
	go run ./cmd/benchharness

# ---------------------------------------------------------------- run
.PHONY: run
run: build ## start both services in the foreground on the embedded default (and keep the CRLs fresh)
	@$(MAKE) --no-print-directory certs >/dev/null
	scripts/run.sh

.PHONY: demo
demo: build $(TOOLS)/.grpcurl-$(GRPCURL_VERSION) ## start both services and show every success and rejection path
	@$(MAKE) --no-print-directory certs
	scripts/demo.sh

.PHONY: examples
examples: ## run the Python and Node example clients against `make run` (scripts/example-deps.sh installs what they need)
	/usr/bin/python3 examples/python/generate.py
	/usr/bin/python3 examples/python/client.py
	cd examples/node && node client.js

.PHONY: clean
clean: ## remove built binaries and data/ (keeps bin/tools and the dev PKI)
	rm -rf $(addprefix bin/,$(BINARIES)) data
