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
# allows. SPIRE is built only by `make spire` and as a prerequisite (test, run-spire), so
# that it is done before `go test -race` starts: the two must never run together (memory).
# Not in a sub-make, which shares its parent's job slots; no output sync, which would hold
# back the logs of `make run` until it stops.
ifeq ($(MAKELEVEL),0)
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += --jobs=$(shell nproc 2>/dev/null || echo 2)
endif
endif

GO_PKGS := ./...
BINARIES := accounts payments bankctl certgen devpg
# How long make chaos loads the bank (TestChaos; make test runs it for 20s).
CHAOS_DURATION ?= 90s

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

# SPIRE (spire-server, spire-agent) is pinned in its own module, tools/spire/go.mod, so that
# its dependencies stay out of go.mod. The first build takes 10+ minutes; it is kept in a
# cache outside the clone keyed by version (scripts/spire-build.sh), so later clones copy.
.PHONY: spire
spire: ## build spire-server and spire-agent (tools/spire/go.mod) into bin/tools, via a cache outside the clone
	scripts/spire-build.sh

# ---------------------------------------------------------------- code generation
.PHONY: generate
generate: $(PROTO_TOOLS) ## regenerate gen/ from proto/ with buf
	$(BUF) generate

# proto/buf/validate/validate.proto is vendored (no BSR here); its Go code is not generated
# but comes from this module, which buf.build/go/protovalidate is built against. gen-check
# generates the vendored file as that module was generated and requires the same bytes, so
# the two can never drift apart (bump both together: proto/buf/validate/README.md).
PROTOVALIDATE_GO := buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go

.PHONY: gen-check
gen-check: $(PROTO_TOOLS) ## fail if regenerating gen/ would change it, or the vendored validate.proto is not the Go module's
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BUF) generate -o "$$tmp"; \
	if ! diff -r gen "$$tmp/gen" >/dev/null; then \
		diff -ru gen "$$tmp/gen" | head -40; \
		echo "gen/ is stale: run 'make generate' and commit the result"; exit 1; \
	fi; echo "gen/ is up to date"; \
	go mod download $(PROTOVALIDATE_GO); \
	mod=$$(go list -m -f '{{.Dir}}' $(PROTOVALIDATE_GO)); \
	$(BUF) generate --path proto/buf/validate/validate.proto --template \
		'{"version":"v2","plugins":[{"local":"protoc-gen-go","out":"'"$$tmp/pv"'","opt":["paths=source_relative","default_api_level=API_HYBRID"]}]}'; \
	for f in validate.pb.go validate_protoopaque.pb.go; do \
		if ! cmp -s "$$tmp/pv/buf/validate/$$f" "$$mod/buf/validate/$$f"; then \
			echo "proto/buf/validate/validate.proto is not the file $(PROTOVALIDATE_GO) was generated from ($$f differs): vendor the matching version"; exit 1; \
		fi; \
	done; echo "proto/buf/validate/validate.proto matches $$(go list -m -f '{{.Path}}@{{.Version}}' $(PROTOVALIDATE_GO))"

# ---------------------------------------------------------------- quality
.PHONY: lint
lint: $(PROTO_TOOLS) ## buf lint, gofmt and go vet
	$(BUF) lint
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi
	go vet $(GO_PKGS)

# ---------------------------------------------------------------- build
.PHONY: build
build: ## build bin/accounts bin/payments bin/bankctl bin/certgen bin/devpg
	@mkdir -p bin
	go build -o bin/ ./services/accounts ./services/payments ./client/bankctl ./cmd/certgen ./cmd/devpg

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
test: lint gen-check $(TOOLS)/.grpcurl-$(GRPCURL_VERSION) spire ## everything CI runs: lint, gen check, vet, gofmt, go test -race (the demo and the SPIRE end-to-end test included)
	@if [ -z "$${BANK_TEST_POSTGRES:-}" ] && [ ! -x "$${BANK_PG_BINDIR:-/usr/lib/postgresql/15/bin}/initdb" ]; then \
		echo "make test: no PostgreSQL server binaries and BANK_TEST_POSTGRES unset: the PostgreSQL tests will SKIP"; fi
	@ok=; for p in $${BANK_PYTHON:-/usr/bin/python3 python3}; do "$$p" -c 'import grpc, grpc_tools' 2>/dev/null && ok=1 && break; done; \
	if [ -z "$$ok" ]; then echo "make test: no python3 with grpcio and grpc_tools (scripts/example-deps.sh): the Python example test will SKIP"; fi
	@if ! command -v node >/dev/null || [ ! -f examples/node/node_modules/@grpc/grpc-js/package.json ]; then \
		echo "make test: no node or no examples/node/node_modules (scripts/example-deps.sh): the Node example test will SKIP"; fi
	go test -race -count=1 -timeout 20m $(GO_PKGS)

.PHONY: chaos
chaos: ## the PostgreSQL fault test, longer: 2+2 replicas and 50 clients for $(CHAOS_DURATION), replicas and the database killed with SIGKILL (make test runs 20s)
	BANK_REQUIRE_POSTGRES=1 BANK_CHAOS_DURATION=$(CHAOS_DURATION) go test -count=1 -timeout 20m -run '^TestChaos$$' -v ./services/payments

.PHONY: bench
bench: ## measure the cost of security against a bare server: Go benchmarks, then the harness, then durable writes on SQLite and PostgreSQL (docs/benchmarks.md)
	go test -run '^$$' -bench . -benchmem -count 1 ./internal/authz ./internal/identity ./internal/tlsconfig ./internal/ledger ./internal/tracing ./internal/validation ./internal/grpcserver ./internal/telemetry ./internal/whoami ./internal/auditlog
	go run ./cmd/benchharness
	go run ./cmd/benchpg

# ---------------------------------------------------------------- run
.PHONY: run
run: build ## start both services in the foreground on the embedded default (and keep the CRLs fresh)
	@$(MAKE) --no-print-directory certs >/dev/null
	scripts/run.sh

.PHONY: run-spire
run-spire: build certs spire ## start a SPIRE server and agent, register the bank's identities, run both services on SVIDs
	scripts/run-spire.sh

.PHONY: run-pg
run-pg: build ## start a throwaway PostgreSQL cluster and both services on it, two replicas each, in the foreground
	@$(MAKE) --no-print-directory certs >/dev/null
	scripts/run.sh pg

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
