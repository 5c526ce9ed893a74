# ecommerce-platform: deploy and test.
#
#   make up       deploy the dev stack (the Pulumi CLI, the provider and, unless KUBECONFIG
#                 is given, a local cluster; local state, generated dev secrets on first
#                 run), then print its outputs
#   make test     every test: mocked unit tests, engine tests, browser test, integration
#                 (builds every tool first, the test-only ones included)
#   make down     destroy the stack and stop the local cluster
#   make docs     regenerate Pulumi.yaml, docs/configuration.md and the stacks' pictures
#
# Other targets: integration, test-failover, bench, bench-durability, bench-orders, render STACK=prod, deps, switch COLOR=green,
# preview, tools, cluster-up, cluster-down.
#
# `make -n` of any target runs nothing: no recipe line of up, test or their prerequisites
# holds $(MAKE) (which make runs even under -n).

SHELL := /bin/bash
STACK ?= dev
COLOR ?= green
RENDER_DIR ?= rendered/$(STACK)
ROOT := $(abspath .)
LOCAL_KUBECONFIG := $(ROOT)/.cluster/kubeconfig
# A given KUBECONFIG targets that cluster; otherwise the local one is started.
TARGET_KUBECONFIG := $(if $(KUBECONFIG),$(KUBECONFIG),$(LOCAL_KUBECONFIG))
PLATFORM := go run ./cmd/platform -stack $(STACK) -tools $(ROOT)/.tools -kubeconfig $(TARGET_KUBECONFIG)

include make/tools.mk

.PHONY: pulumi-yaml docs up up-tools deploy-tools down preview switch rollback outputs render test test-go test-mocked test-failover integration bench bench-durability bench-orders bench-products deps vet kube-score clean-secrets

# Prerequisites are made one at a time, in the order written (test: the suites, then
# kube-score, then the integration tests).
.NOTPARALLEL:

# What a deploy runs: the Pulumi CLI and the Kubernetes provider. `make up` adds the local
# control plane unless KUBECONFIG names a cluster; the tools only tests use (kube-score, the
# S3 server, promtool and postgres_exporter, controller-gen, migrate, Patroni) are built by `make test`
# (`make tools`: every tool).
DEPLOY_TOOLS := pulumi provider
UP_TOOLS := $(DEPLOY_TOOLS) $(if $(KUBECONFIG),,cluster)

up: deps up-tools $(if $(KUBECONFIG),,cluster-up)
	$(PLATFORM) $(if $(filter dev,$(STACK)),-generate-secrets,) up

up-tools:
	bash scripts/tools.sh $(UP_TOOLS)

deploy-tools:
	bash scripts/tools.sh $(DEPLOY_TOOLS)

preview: deploy-tools
	$(PLATFORM) preview

switch: deploy-tools
	$(PLATFORM) switch $(COLOR)

# Switch production traffic back to the other color (the promotion check runs for it too;
# in an emergency: pulumi config set promotionCheck false first).
rollback: deploy-tools
	$(PLATFORM) rollback

outputs:
	$(PLATFORM) outputs

# Pulumi.yaml and docs/configuration.md from the config key table (components/config), the one
# place a key is declared, and the stacks' pictures (docs/architecture-*.md, README.md) from the
# mocked run; `make test-mocked` fails when a committed copy is stale.
pulumi-yaml docs:
	go generate ./...

# `make up` stores the dev stack's generated secrets in Pulumi.dev.yaml (encrypted, as
# `pulumi config set --secret` does); this puts the tracked file back as committed. The
# secrets are lost: the next `make up` generates new ones for a fresh stack.
clean-secrets:
	git checkout -- Pulumi.dev.yaml

down: deploy-tools
	@if [ -n "$(KUBECONFIG)" ] || [ -f $(LOCAL_KUBECONFIG) ]; then $(PLATFORM) destroy; fi
	$(if $(KUBECONFIG),,bash scripts/cluster-down.sh)

# Every object as YAML, for review or GitOps. Secrets are written in plain text.
render: deploy-tools
	go run ./cmd/platform -stack $(STACK) -tools $(ROOT)/.tools render $(RENDER_DIR)

# Debian packages the engine and browser tests run (one dpkg query when already installed);
# `make up` and `make test` run it first.
deps:
	bash scripts/deps.sh

vet:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above" && false)
	go vet ./...
	go vet -tags integration ./tests/...

# The real Pulumi engine and Kubernetes provider against a fresh local control plane of its
# own (.cluster-integration/), so a dev cluster that `make up` started keeps running.
INTEGRATION_CLUSTER := $(ROOT)/.cluster-integration
integration: tools
	CLUSTER_DIR=$(INTEGRATION_CLUSTER) bash scripts/cluster-down.sh >/dev/null 2>&1 || true
	CLUSTER_DIR=$(INTEGRATION_CLUSTER) bash scripts/cluster-up.sh
	ECOMMERCE_TOOLS=$(ROOT)/.tools ECOMMERCE_KUBECONFIG=$(INTEGRATION_CLUSTER)/kubeconfig \
		go test -tags integration ./tests/integration -count=1 -timeout 40m -v 2>&1 | tee .integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+integration_test)' ; \
		status=$${PIPESTATUS[0]}; CLUSTER_DIR=$(INTEGRATION_CLUSTER) bash scripts/cluster-down.sh; exit $$status

# Skipped engine tests are listed at the end (scripts/test-summary.sh), never silently.
# One package at a time (-p 1): the engine packages measure timings and share the CPU.
# -timeout 30m: tests/failover alone takes 4-5 minutes on 2 shared cores (go test's default
# bound is 10 minutes a package).
test: test-go kube-score integration

test-go: deps tools vet
	@rm -f .test-report
	@ECOMMERCE_TEST_REPORT=$(ROOT)/.test-report go test -p 1 ./... -count=1 -timeout 30m; status=$$?; \
		bash scripts/test-summary.sh .test-report; exit $$status

# The failover engine tests alone (tests/failover, also part of test-go): three real Patroni
# members under load, killed, switched over and cut from the API server; each run's figures
# are its "failover figure:" lines. Built tools: Patroni, etcd, kube-apiserver, migrate.
test-failover: deps tools
	@set -o pipefail; go test ./tests/failover -count=1 -v -timeout 20m 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|failover figure|Error'

# kube-score over the rendered manifests of both stacks: no CRITICAL finding allowed.
kube-score: tools
	bash scripts/kube-score.sh

# The mocked suite only: no engine, no cluster, under a second.
test-mocked:
	go test ./tests/mocked -count=1

# The README's durability figures (minutes of load on real PostgreSQL): async vs quorum
# commit, archive lag, recovery of 1 GB plus a minute of WAL.
bench-durability:
	ECOMMERCE_DURABILITY_FIGURES=1 go test ./tests/postgres -run TestDurabilityFigures -count=1 -v -timeout 30m | grep -E 'durability figure|^(--- |ok|FAIL)'

# Orders per second of the order path (tests/postgres/bench_orders_test.go): the real pgbench
# through PgBouncer to PostgreSQL 15, both on the deployed files (fsync on), a generated
# catalogue; PostgREST's request transaction for POST /rpc/place_order side by side with a
# hand-written minimal order, random, hot-product and single-client mixes, and GET /products.
# CLIENTS pgbench clients, DURATION seconds per path and mix; PROFILE=1 adds a
# pg_stat_statements profile. The last line is the summary.
CLIENTS ?= 16
DURATION ?= 20
PROFILE ?=
bench-orders: deps
	@set -o pipefail; ECOMMERCE_BENCH_ORDERS=1 ECOMMERCE_BENCH_CLIENTS=$(CLIENTS) ECOMMERCE_BENCH_SECONDS=$(DURATION) \
		ECOMMERCE_BENCH_PROFILE=$(PROFILE) go test ./tests/postgres -run '^TestBenchOrders$$' -count=1 -v -timeout 60m > .bench-orders.log 2>&1; \
		status=$$?; \
		if [ $$status -ne 0 ]; then tail -80 .bench-orders.log; exit $$status; fi; \
		sed -n -E '/bench-orders:/,$$p' .bench-orders.log | grep -vE '^(--- |PASS|ok |=== )' | sed -E 's/^ {4}bench_orders_test.go:[0-9]+: //; s/^ {8}//'

# One API list page against the whole catalogue (tests/postgres/bench_products_test.go):
# PostgREST's GET /products?order=id for a visitor through PgBouncer over 10,000 products, a
# page as deployed (db-max-rows), by key, at offset 9,900, and the whole list; ns/op and
# PostgreSQL's CPU per request (db-cpu-ms/op).
bench-products:
	go test ./tests/postgres -run '^$$' -bench BenchmarkProductsPage -benchtime=3s -count=3 -timeout 20m

bench:
	go test ./tests/mocked -run '^$$' -bench BenchmarkProgram -benchmem -count=3
