#!/usr/bin/env bash
# Runs every sample event in events/ through `cargo lambda invoke --data-file`, against
# `cargo lambda watch` serving the functions with devstack's local environment. Fails if any
# invocation fails (an API event answering 4xx is fine: the fixtures name ids this database lacks).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
# shellcheck source=../local.env
source devstack/local.env
export RUST_LOG=warn
./devstack/scripts/services.sh --deploy-tools
cargo run -q -p devstack -- setup
cargo build -q --bins -p api -p processor -p reconciler -p dispatcher   # processor: also the dead-letters binary
# One dispatcher invocation runs its loop this long (45 s by default).
export DISPATCH_RUN_SECONDS=2

log=.devstack/watch.log
cargo-lambda lambda watch -A 127.0.0.1 -P 9000 >"$log" 2>&1 &
watch_pid=$!
trap 'kill $watch_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:9000/ && break; sleep 1; done

invoke() {
  local fn=$1 file=$2 out
  if ! out=$(cargo-lambda lambda invoke --invoke-address 127.0.0.1 --invoke-port 9000 "$fn" --data-file "$file" 2>&1); then
    echo "FAIL $fn $file: $out"; return 1
  fi
  printf 'ok   %-10s %-50s %s\n' "$fn" "$file" "$(printf %s "$out" | head -c 90)"
}
failed=0
for f in events/api/*.json; do invoke api "$f" || failed=1; done
for f in events/sqs/*.json; do
  case "$f" in
    # Batches from the dead-letter queue go to the dead-letters function (it records them).
    events/sqs/dead-letter-*) invoke dead-letters "$f" || failed=1 ;;
    *) invoke processor "$f" || failed=1 ;;
  esac
done
for f in events/scheduler/*.json; do
  case "$f" in
    # The every-minute schedule of the webhook dispatcher.
    events/scheduler/dispatch*) invoke dispatcher "$f" || failed=1 ;;
    *) invoke reconciler "$f" || failed=1 ;;
  esac
done
exit $failed
