# Everything a newcomer needs: `make run` and `make test`. Each target starts what it needs first.
SHELL := /bin/bash
VENV ?= .venv
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED ?= true
export AWS_ENDPOINT_URL_SQS ?= http://127.0.0.1:4566
export SAM_CLI_TELEMETRY ?= 0

.PHONY: run setup services test clean-test-data ci-extra lint-iac sam-build invoke-events bench fuzz

## Start services, create the database and queues, migrate, serve the API on 127.0.0.1:3000.
run: services
	cargo run -p devstack -- run

## Create the database and queues and migrate, without serving.
setup: services
	cargo run -p devstack -- setup

services:
	./devstack/scripts/services.sh

## What CI runs: set-up, formatting, clippy with warnings as errors, every test.
test: services clean-test-data
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## Drop the databases earlier test runs left behind.
clean-test-data:
	@psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
	  "SELECT datname FROM pg_database WHERE datname LIKE 'ledger_test_%'" | \
	  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE \"$$db\"" >/dev/null; done

## schemathesis against openapi.yaml on a devstack of its own (fresh database `ledger_fuzz`, fresh
## queues and Redis prefix, port 3917): every check, FUZZ_MAX_EXAMPLES per operation (default 100).
## Fails on any 5xx or response the spec does not allow; prints the request count.
fuzz: services
	./scripts/fuzz-api.sh

## Deployment checks CI runs after the tests: template lints and security scan, every event through
## `cargo lambda invoke`, and `sam build` when its inputs changed since the last verified build.
ci-extra: lint-iac invoke-events
	./scripts/sam-build-if-changed.sh

## cfn-lint, sam validate --lint and checkov on template.yaml (offline).
lint-iac:
	./devstack/scripts/services.sh --deploy-tools
	./scripts/check-iac.sh

## sam build: cargo lambda build --release --arm64 for every function, through zig. Slow when cold.
sam-build:
	./devstack/scripts/services.sh --deploy-tools
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build
	@for f in .aws-sam/build/*/bootstrap; do printf '%-45s %s bytes\n' "$$f" "$$(stat -c %s "$$f")"; done

## Every sample event through `cargo lambda invoke --data-file`.
invoke-events:
	./devstack/scripts/invoke-events.sh

## Benchmarks (release build): posting, intake, money movement (legs, holds, refunds, bulk intake),
## binary size and start-up, reconciliation at 1M lines.
## BENCH=posting|intake|movement|startup|reconcile|all, BENCH_ARGS="--scale 0.1 --json bench.json"
BENCH ?= all
bench: services
	cargo build --release --bins -p api -p processor -p reconciler -p dispatcher -p migrator -p bench
	./target/release/bench $(BENCH) $(BENCH_ARGS)
