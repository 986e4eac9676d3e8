#!/usr/bin/env bash
# Makes the local services available: the Python venv with moto (and, with --deploy-tools, the
# build/lint/deploy tools), PostgreSQL and Redis (installed with apt-get when missing and we are
# root; otherwise we say what to install), and moto's SQS server. Starts whatever is not running.
# Idempotent: safe to run before every `make run` / `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
SQS_PORT=${SQS_PORT:-4566}
PGHOST=127.0.0.1
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
STATE=.devstack
mkdir -p "$STATE"

say() { printf 'services: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing $* — install them with your package manager (e.g. sudo apt-get install $*) and rerun"
  fi
  say "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Python tools -----------------------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
  say "creating $VENV"
  python3 -m venv "$VENV" || die "python3 with venv is required (apt-get install python3-venv)"
fi
want=(devstack/requirements.txt)
[[ ${1:-} == --deploy-tools ]] && want+=(devstack/requirements-deploy.txt)
for req in "${want[@]}"; do
  stamp="$STATE/$(basename "$req").installed"
  if [[ ! -f $stamp || $req -nt $stamp ]]; then
    say "pip install -r $req"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
done

# --- PostgreSQL -------------------------------------------------------------------------------
pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_ctl >/dev/null; then
    install_packages postgresql postgresql-client
    fresh_pg=1
  fi
  if command -v pg_ctlcluster >/dev/null; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || die "PostgreSQL is not answering on $PGHOST:$PGPORT"
  if [[ -n ${fresh_pg:-} ]]; then
    # A fresh local install: let the postgres user in over 127.0.0.1 without a password, as the
    # machine this project is developed on does. Local development only.
    hba=$(su postgres -c "psql -Atc 'SHOW hba_file'")
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
  fi
fi
psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1 ||
  die "PostgreSQL is up but user postgres cannot connect over $PGHOST without a password; allow trust for 127.0.0.1 in pg_hba.conf or set DATABASE_URL / TEST_DATABASE_ADMIN_URL"

# --- Redis ------------------------------------------------------------------------------------
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  command -v redis-server >/dev/null || install_packages redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$PWD/$STATE" --logfile "$PWD/$STATE/redis.log"
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || die "Redis did not start; see $STATE/redis.log"
fi

# --- SQS (moto server mode) -------------------------------------------------------------------
sqs_up() { curl -sf -o /dev/null "http://127.0.0.1:$SQS_PORT/moto-api/"; }
if ! sqs_up; then
  say "starting moto (SQS) on 127.0.0.1:$SQS_PORT"
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$SQS_PORT" >"$STATE/moto.log" 2>&1 &
  for _ in $(seq 1 60); do sqs_up && break; sleep 0.5; done
  sqs_up || die "moto did not start; see $STATE/moto.log"
fi
say "PostgreSQL $PGHOST:$PGPORT, Redis 127.0.0.1:$REDIS_PORT, SQS http://127.0.0.1:$SQS_PORT: ready"
