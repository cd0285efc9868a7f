#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the study-storage tests and local trials.
#   scripts/postgres.sh install          apt-get install postgresql when no server binaries exist (root + apt)
#   scripts/postgres.sh start DIR [PORT] initdb DIR/data (trust auth, user postgres) and start it on
#                                        127.0.0.1:PORT (default: a free port); prints the SQLAlchemy URL
#   scripts/postgres.sh stop DIR         stop the server of DIR (immediate)
# initdb refuses to run as root: as root the server runs as the `postgres` user (runuser / su).
# Exit code 3: no server binaries (the tests skip with that reason).
set -euo pipefail

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  return 1
}

as_owner() {  # run a server command as the data directory's owner
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"
    else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else "$@"; fi
}

cmd=${1:-}
case "$cmd" in
  install)
    if find_bin >/dev/null; then exit 0; fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "postgres.sh: no PostgreSQL binaries and cannot apt-get install (need root + apt)" >&2; exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
    ;;
  start)
    dir=${2:?usage: postgres.sh start DIR [PORT]}
    bin=$(find_bin) || { echo "postgres.sh: no PostgreSQL server binaries; run scripts/postgres.sh install" >&2; exit 3; }
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || { echo "postgres.sh: running as root needs a 'postgres' user" >&2; exit 3; }
      chown -R postgres "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { echo "postgres.sh: initdb failed, see $dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $port -k $dir -F -c max_connections=50" start >/dev/null \
      || { echo "postgres.sh: server did not start, see $dir/server.log" >&2; exit 1; }
    echo "postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    bin=$(find_bin) || exit 0
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    ;;
  *)
    echo "usage: scripts/postgres.sh install | start DIR [PORT] | stop DIR" >&2; exit 2 ;;
esac
