# Everything a newcomer needs: `make run` and `make test`. Each target starts what it needs first.
SHELL := /bin/bash
VENV ?= .venv
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED ?= true
export AWS_ENDPOINT_URL_SQS ?= http://127.0.0.1:4566
export SAM_CLI_TELEMETRY ?= 0

.PHONY: run setup services test fmt clippy unit clean-test-data

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
