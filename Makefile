# Every command a developer needs; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STACK := $(BIN)/commerce-stack

.DEFAULT_GOAL := help
.PHONY: help venv protos install bench-node bench-flash-sale bench-saga bench-search bench-catalog bench-catalog-baseline bench-operator bench-orders chaos catalog-dataset stack shop up demo status down reset env test test-unit test-stack lint typecheck format

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

PROTOS := $(wildcard protos/commerce/v1/*.proto)
GENERATED := services/commerce_services/rpc/commerce

# Stubs land inside commerce_services (protoc's virtual include path), typed by mypy-protobuf.
$(GENERATED)/.stamp: $(PROTOS) $(VENV)/.installed
	rm -rf $(GENERATED)
	$(BIN)/python -m grpc_tools.protoc -Icommerce_services/rpc=protos \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--python_out=services --grpc_python_out=services \
		--mypy_out=services --mypy_grpc_out=services $(PROTOS)
	touch $@

protos: $(GENERATED)/.stamp ## generate the gRPC stubs from protos/

venv: $(VENV)/.installed $(GENERATED)/.stamp ## create .venv with the project, its dev tools and gRPC stubs

install: venv ## download and build every server into the cache (~/.cache/commerce-stack)
	$(STACK) install

up: venv ## the whole shop on the node: stack, image, operator (Helm), samples/ Ready, demo data
	$(STACK) up
	$(BIN)/commerce-kube-shop up

demo: venv ## place an order that completes and one that is declined; show their sagas
	$(BIN)/commerce-kube-shop demo

stack: venv ## only the servers (installs on first run), then show where everything listens
	$(STACK) up

shop: venv ## without the operator: the four services as plain processes, in the foreground
	$(STACK) up
	$(BIN)/commerce-shop

status: venv ## probe every component; exit 0 only if all are healthy
	$(STACK) status

down: venv ## stop everything (the shop's pods go with the node) and restore the host
	$(STACK) down

reset: venv ## stop everything and delete .stack/ (data, logs, generated credentials)
	$(STACK) reset

env: venv ## print exports for kubectl (eval "$$(make -s env)")
	@$(STACK) env

lint: venv ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict
	$(BIN)/mypy

format: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-unit: venv ## tests of pure logic, no servers needed
	$(BIN)/pytest tests/unit

test-stack: venv ## tests against the running stack
	$(STACK) up
	$(BIN)/pytest tests/stack

test: lint typecheck ## the whole suite: lint, types, then every test against the real stack
	$(STACK) up
	$(BIN)/pytest

bench-node: venv ## the node at rest: memory and CPU of each of its components (docs/benchmarks/node-idle.md)
	$(STACK) up
	$(BIN)/python bench/node_idle.py

bench-flash-sale: venv ## flash-sale benchmark: conditional UPDATE vs SELECT FOR UPDATE (docs/benchmarks)
	$(STACK) up --only mariadb
	$(BIN)/python bench/flash_sale.py

bench-saga: venv ## saga latency, order accepted -> COMPLETED through Debezium and Kafka (docs/benchmarks)
	$(STACK) up
	$(BIN)/python bench/saga_latency.py

# CATALOG_MONGO_URI=mongodb://...: the data sets in another MongoDB than the stack's FerretDB.
CATALOG_MONGO := $(if $(CATALOG_MONGO_URI),--mongo-uri $(CATALOG_MONGO_URI))

catalog-dataset: venv ## load the deterministic 1,000,000-product catalog (target bench; resumable)
	$(STACK) up
	$(BIN)/commerce-dataset load --products 1000000 --target bench --report bench/results/search_dataset.json $(CATALOG_MONGO)

bench-search: venv ## search at 1M products: the API vs Elasticsearch directly, the degraded search (docs/benchmarks)
	$(STACK) up
	$(BIN)/python bench/search_latency.py --resume $(CATALOG_MONGO)

bench-catalog: catalog-dataset ## the catalog at 1M vs 100 products: reads, prices, pages, orders, index lag, search (docs/benchmarks)
	$(BIN)/commerce-dataset load --products 100 --target bench_small $(CATALOG_MONGO)
	$(BIN)/python bench/catalog_latency.py --resume $(CATALOG_MONGO)
	$(BIN)/python bench/search_latency.py --resume $(CATALOG_MONGO)

bench-catalog-baseline: catalog-dataset ## the catalog's hot reads at 1M, this checkout against an earlier commit (BASELINE=...) in one run (docs/benchmarks)
	$(BIN)/python bench/catalog_reads_baseline.py $(if $(BASELINE),--baseline $(BASELINE))

bench-operator: venv ## operator load: 500 resources to Ready, CPU, memory, API requests (docs/benchmarks)
	$(STACK) up
	$(BIN)/python bench/operator_load.py --count 500

chaos: venv ## order load while each component is killed and restarted; invariants per fault (docs/benchmarks/chaos.md)
	$(STACK) up
	$(BIN)/python bench/chaos.py

bench-orders: venv ## order throughput: closed-loop clients, accepted/s, p50/p99, completed/s, CPU per order (docs/benchmarks); PUBLIC=http://127.0.0.1:8080 loads make up's Ingress
	$(STACK) up
	$(BIN)/python bench/order_throughput.py $(if $(PUBLIC),--public $(PUBLIC))
