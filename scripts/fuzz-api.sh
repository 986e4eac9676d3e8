#!/usr/bin/env bash
# Fuzzes the HTTP API against its contract: starts devstack on a fresh database, fresh queues and a
# fresh Redis key prefix (nothing shared with `make run`), waits for /api/v1/ready, and runs
# schemathesis (from the venv) with `openapi.yaml`, every check, and a bounded number of examples
# per operation. Fails on any 5xx, any response that does not match the spec, and any request the
# server accepts or refuses against what the spec says. Prints the number of requests sent.
#
#   FUZZ_MAX_EXAMPLES  examples per operation and phase (default 100)
#   FUZZ_SEED          schemathesis seed (default: random; the run prints it)
#   FUZZ_PORT          where devstack listens (default 3917)
#   FUZZ_DB            database, dropped and created fresh (default ledger_fuzz)
#   FUZZ_WORKERS       concurrent schemathesis workers (default 1)
#   FUZZ_ARGS          extra arguments for `schemathesis run`
#   CARGO_LOCK         if set, builds run under `flock $CARGO_LOCK` (shared build machines)
#   FUZZ_NO_BUILD      if set, run the devstack binary already in target/debug
# Reports (JUnit, HAR with every request) go to target/fuzz/; devstack's log too.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PORT=${FUZZ_PORT:-3917}
DB=${FUZZ_DB:-ledger_fuzz}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
# One worker: with more, hypothesis (describing lambdas through `ast`, on Python 3.11) now and then
# fails a whole operation with "AST constructor recursion depth mismatch" (a tool error, not a
# finding); one worker still sends a few thousand requests in well under a minute.
WORKERS=${FUZZ_WORKERS:-1}
OUT=target/fuzz
RUN_ID=$(date +%s)-$$
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-$AWS_REGION}
export AWS_ENDPOINT_URL_SQS=${AWS_ENDPOINT_URL_SQS:-http://127.0.0.1:4566}

say() { printf 'fuzz: %s\n' "$*" >&2; }
cargo_() { if [[ -n ${CARGO_LOCK:-} ]]; then flock "$CARGO_LOCK" cargo "$@"; else cargo "$@"; fi; }

./devstack/scripts/services.sh
mkdir -p "$OUT"
rm -f "$OUT/junit.xml" "$OUT/requests.har"

if [[ -z ${FUZZ_NO_BUILD:-} ]]; then
  say "building devstack"
  cargo_ build -q -p devstack
fi

# Fresh state: a database of our own, queues named for this run, keys under a prefix of our own.
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$DB\"" >/dev/null
# The schema owner migrates; the functions connect as the least-privilege app login.
export DATABASE_MIGRATION_URL="postgres://postgres@127.0.0.1:5432/$DB"
export DATABASE_URL="postgres://${FUZZ_DB_USER:-ledger_app_local}@127.0.0.1:5432/$DB"
export SQS_QUEUE_NAME="payment-ledger-fuzz-$RUN_ID"
export REDIS_KEY_PREFIX="fuzz-$RUN_ID"
# No scheduled run during the fuzz; queued reconciliations run every 5 s. A low synchronous limit
# so that both answers of POST /accounts/{id}/reconcile are exercised: the fixture account starts
# below it (201), and the transfers the run posts to it push it over (202, then polled).
export PORT BIND=127.0.0.1 RECONCILE_INTERVAL_SECS=0 RECONCILE_QUEUED_INTERVAL_SECS=5
export RECONCILE_SYNC_MAX_ITEMS=${FUZZ_SYNC_MAX_ITEMS:-8} RUST_LOG=${RUST_LOG:-warn}
# Webhooks: fuzzed endpoints receive nothing. No dispatcher runs (DISPATCH_RUN_SECONDS=0), and URLs
# are checked as in AWS (https, public addresses only), so the refusals are exercised too.
export DISPATCH_RUN_SECONDS=0 WEBHOOK_ALLOW_PRIVATE_URLS=false

./target/debug/devstack run >"$OUT/devstack.log" 2>&1 &
DEVSTACK=$!
cleanup() {
  # SIGTERM: nothing of this run's state is worth a graceful stop (its pollers long-poll for 20 s).
  kill -TERM "$DEVSTACK" 2>/dev/null || true
  wait "$DEVSTACK" 2>/dev/null || true
  # Drop this run's queues and keys (moto and Redis are shared with other runs).
  "$VENV/bin/python" - "$SQS_QUEUE_NAME" <<'PY' || true
import sys, boto3
sqs = boto3.client("sqs")
for url in sqs.list_queues(QueueNamePrefix=sys.argv[1]).get("QueueUrls", []):
    sqs.delete_queue(QueueUrl=url)
PY
  redis-cli --scan --pattern "$REDIS_KEY_PREFIX:*" | xargs -r -n 500 redis-cli del >/dev/null || true
}
trap cleanup EXIT

BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "$BASE/api/v1/ready" && break
  kill -0 "$DEVSTACK" 2>/dev/null || { cat "$OUT/devstack.log" >&2; say "devstack exited"; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "$BASE/api/v1/ready" || { say "devstack is not ready on $BASE"; exit 1; }
say "devstack ready on $BASE (database $DB, queue $SQS_QUEUE_NAME, redis prefix $REDIS_KEY_PREFIX)"

# Fixtures, so that generated requests reach real data: the accounts the spec's examples name, a
# posted transfer (ledger entries), a statement and a reconciliation (discrepancies to list, read
# and resolve through the spec's links).
api() { curl -sf -o /dev/null -X "$1" "$BASE/api/v1$2" -H 'Authorization: Bearer demo-token-for-testing' \
  -H "Content-Type: ${4:-application/json}" --data-binary "$3" || { say "fixture $1 $2 failed"; exit 1; }; }
today=$(date -u +%F)
api POST /accounts '{"id":"world-usd","currency":"USD","overdraftLimit":"unlimited"}'
api POST /accounts '{"id":"alice","currency":"USD","overdraftLimit":"0"}'
api POST /accounts '{"id":"suspense-demo","currency":"USD","overdraftLimit":"unlimited"}' # SUSPENSE_ACCOUNT_ID's default
# The accounts the money-movement examples name (README "Moving money").
for id in bob customer merchant platform-fees tax; do
  api POST /accounts "{\"id\":\"$id\",\"currency\":\"USD\",\"overdraftLimit\":\"0\"}"
done
api POST /accounts '{"id":"card-funding","currency":"USD","overdraftLimit":"unlimited"}'
api POST /transactions '{"transaction":{"source_account_id":"world-usd","destination_account_id":"alice","amount":"100.00","reference":"topup-0001"},"idempotencyKey":"fixture-topup"}'
api POST '/statements?accountId=alice' "id,booked_date,amount,currency,reference
b1,$today,100.00,USD,topup-0001
b2,$today,-4.10,USD,fee
b3,$today,12.00,USD,unknown" text/csv
# January 2026 (the spec's example window) holds more lines than RECONCILE_SYNC_MAX_ITEMS: its
# reconciliation is queued (202) and polled.
api POST '/statements?accountId=alice' "$(printf 'id,booked_date,amount,currency\n'
  for d in $(seq 10 19); do printf 'jan-%s,2026-01-%s,%s.00,USD\n' "$d" "$d" "$d"; done)" text/csv
sleep 2 # the poller posts the transfer (and writes its event)
# A webhook endpoint (nothing is sent: no dispatcher runs here) for the endpoint and delivery routes.
api POST /webhook-endpoints '{"url":"https://hooks.example.com/fuzz","eventTypes":["*"],"description":"fuzz"}'
api POST /accounts/alice/reconcile "{\"startDate\":\"$today\",\"endDate\":\"$today\"}"

# The spec's paths start with /api/v1, so the base URL is the bare origin.
status=0
# shellcheck disable=SC2086
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run openapi.yaml \
  --url "$BASE" \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --workers "$WORKERS" \
  --header 'Authorization: Bearer demo-token-for-testing' \
  ${FUZZ_SEED:+--seed "$FUZZ_SEED"} \
  --report junit,har --report-junit-path "$OUT/junit.xml" --report-har-path "$OUT/requests.har" \
  --no-color \
  ${FUZZ_ARGS:-} || status=$?

requests=$("$VENV/bin/python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' \
  "$OUT/requests.har" 2>/dev/null || echo "?")
say "schemathesis sent $requests requests (every one is in $OUT/requests.har); exit status $status"
if grep -q '"level":"ERROR"\|panicked' "$OUT/devstack.log"; then
  say "devstack logged errors or panics (see $OUT/devstack.log):"
  grep '"level":"ERROR"\|panicked' "$OUT/devstack.log" | head -20 >&2
fi
exit "$status"
