#!/usr/bin/env bash
# A PostgreSQL server for the journal's tests, on a fresh Debian machine, as root:
# installs PostgreSQL from the distribution when it is missing, starts its cluster
# as the `postgres` user (the server refuses root) listening on 127.0.0.1 only,
# creates the role and the database the tests use, waits (bounded) until the server
# accepts connections, and tells the URL of that database.
#
#   bash .ci/postgres.sh        prints the URL: LARACOPILOT_TEST_POSTGRES=$(bash .ci/postgres.sh | tail -n 1)
#   source .ci/postgres.sh      exports LARACOPILOT_TEST_POSTGRES in the calling shell
#
# Idempotent: a second run finds the server, the role and the database in place and
# only prints the URL again. Each test run makes schemas of its own in the database,
# and drops them when it passes.
#
# Settings (environment): LARACOPILOT_PG_PORT (5432, or the next free port when
# another cluster has 5432; the URL says which), LARACOPILOT_PG_USER
# (laracopilot), LARACOPILOT_PG_PASSWORD (laracopilot), LARACOPILOT_PG_DATABASE
# (laracopilot). Nothing is reachable from outside this machine.

laracopilot_postgres() (
  set -euo pipefail
  local port="${LARACOPILOT_PG_PORT:-5432}"
  local user="${LARACOPILOT_PG_USER:-laracopilot}"
  local password="${LARACOPILOT_PG_PASSWORD:-laracopilot}"
  local database="${LARACOPILOT_PG_DATABASE:-laracopilot}"
  local cluster=laracopilot
  say() { printf 'postgres.sh: %s\n' "$*" >&2; }

  if [ "$(id -u)" != 0 ]; then
    say "run me as root (I install packages and start the server as the postgres user)"
    return 1
  fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
    say "installing PostgreSQL from the distribution"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

  # A cluster of our own (not the distribution's `main`, whatever that serves),
  # owned by the postgres user, listening on 127.0.0.1 only.
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
    # The port asked for; without one, 5432 unless another cluster (the
    # distribution's `main`, say) has it: then the next free one.
    local port_option=(--port "$port")
    if [ -z "${LARACOPILOT_PG_PORT:-}" ] \
        && pg_lsclusters -h | awk -v p="$port" '$3 == p { taken = 1 } END { exit !taken }'; then
      port_option=()
    fi
    say "creating the cluster $version/$cluster"
    pg_createcluster "$version" "$cluster" "${port_option[@]}" \
      -- --auth-local=peer --auth-host=scram-sha-256 >&2
  fi
  # The distribution's postgresql.conf includes conf.d/: only 127.0.0.1.
  printf "listen_addresses = '127.0.0.1'\n" \
    >"/etc/postgresql/$version/$cluster/conf.d/laracopilot.conf"
  port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $3 }')
  if pg_lsclusters -h | awk -v v="$version" -v c="$cluster" -v p="$port" \
      '$2 != c && $3 == p && $4 == "online" { busy = 1 } END { exit !busy }'; then
    say "another cluster is online on port $port: set LARACOPILOT_PG_PORT to another port"
    return 1
  fi
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c && $4 == "online" { found = 1 } END { exit !found }'; then
    say "starting the cluster $version/$cluster"
    pg_ctlcluster "$version" "$cluster" start >&2
  fi
  port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $3 }')

  local ready=0
  for _ in $(seq 1 120); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then ready=1; break; fi
    sleep 0.5
  done
  if [ "$ready" != 1 ]; then
    say "the server on 127.0.0.1:$port did not accept connections within 60 s"
    tail -n 20 "/var/log/postgresql/postgresql-$version-$cluster.log" >&2 || true
    return 1
  fi

  as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
  as_postgres -d postgres -v user="$user" -v password="$password" >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'user', :'password') \gexec
SQL
  # (psql -c does not read :'variables': here-documents do.)
  as_postgres -d postgres -v user="$user" -v database="$database" >&2 <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
SQL

  local url="postgres://$user:$password@127.0.0.1:$port/$database"
  local probe=0
  for _ in $(seq 1 20); do
    if PGPASSWORD="$password" psql -X -q -h 127.0.0.1 -p "$port" -U "$user" -d "$database" -tA -c 'SELECT 1' >/dev/null 2>&1; then
      probe=1; break
    fi
    sleep 0.5
  done
  if [ "$probe" != 1 ]; then
    say "cannot log in as $user at 127.0.0.1:$port/$database"
    return 1
  fi
  say "ready: $url"
  printf '%s\n' "$url"
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: run as a process of its own (in the condition of an `if`, `set -e`
  # would be off in a function), then export the URL into the caller's shell.
  unset -f laracopilot_postgres
  if LARACOPILOT_TEST_POSTGRES=$(bash "${BASH_SOURCE[0]}"); then
    export LARACOPILOT_TEST_POSTGRES
  else
    return 1
  fi
else
  laracopilot_postgres
fi
