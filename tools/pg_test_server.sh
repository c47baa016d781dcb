#!/usr/bin/env bash
# A PostgreSQL for the tests: the one at $TOKENMETER_TEST_PG when it answers, else a throwaway one.
#
#   export TOKENMETER_TEST_PG="$(bash tools/pg_test_server.sh [--dir-file FILE] [--stop-with PID])"
#   bash tools/pg_test_server.sh --stop DIR
#
# Prints the server's URL on stdout and nothing else. A throwaway server (initdb into a mktemp -d
# folder, trust auth, superuser `postgres`, database `test`, a free port on 127.0.0.1) names its
# folder on stderr and in FILE (--dir-file; left empty when nothing was started); `--stop DIR`
# stops it and removes the folder. --stop-with PID also stops it once process PID has ended, for
# when the caller dies before its own cleanup (kill -9). Needs PostgreSQL's server binaries;
# installs Debian's `postgresql` package when they are missing and we are root with apt-get.
set -euo pipefail

DEFAULT_URL="postgresql://postgres@127.0.0.1:5432/test"
MARKER="tokenmeter-pg-test-server"  # only folders holding this file are ever removed by --stop

say() { echo "tools/pg_test_server.sh: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  sed -n '2,12s/^# \{0,1\}//p' "$0" >&2
  exit "${1:-2}"
}

# The folder holding initdb, pg_ctl and postgres of one version: PATH's first, else the newest of
# Debian's /usr/lib/postgresql/N/bin (Debian keeps them off PATH).
find_bindir() {
  local dir candidates=()
  if command -v initdb >/dev/null 2>&1; then
    candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
    candidates+=("$dir")
  done
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

# Whether a PostgreSQL accepts connections at URL (the database itself may still be missing).
answers() {
  local url="$1" isready="" bindir
  if command -v pg_isready >/dev/null 2>&1; then
    isready=pg_isready
  elif bindir="$(find_bindir)" && [ -x "$bindir/pg_isready" ]; then
    isready="$bindir/pg_isready"
  fi
  if [ -n "$isready" ]; then
    "$isready" -q -t 3 -d "$url" </dev/null >/dev/null 2>&1
  else
    # no client tools (a hub in a container, say): psycopg from the test environment can tell
    python3 -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' "$url" \
      </dev/null >/dev/null 2>&1
  fi
}

# Run a command as USER: initdb and pg_ctl refuse to run as root.
as_user() {
  local user="$1"
  shift
  if [ "$(id -un)" = "$user" ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$user" -- "$@"
  else
    su -s /bin/sh -c 'exec "$0" "$@"' "$user" "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The throwaway folder from DIR, which may be that folder or its data/ inside.
resolve_root() {
  local dir="${1%/}"
  [ -f "$dir/$MARKER" ] && { echo "$dir"; return 0; }
  [ -f "$dir/../$MARKER" ] && { (cd "$dir/.." && pwd); return 0; }
  return 1
}

stop_server() {
  local root bindir owner
  [ -n "${1:-}" ] || die "--stop needs the folder printed when the server was started"
  [ -d "$1" ] || { say "$1 is gone: nothing to stop"; return 0; }
  root="$(resolve_root "$1")" || die "$1 is not a folder made by this script: not touching it"
  if [ -f "$root/data/postmaster.pid" ]; then
    bindir="$(cat "$root/bindir")"
    owner="$(stat -c %U "$root/data")"
    # immediate: the data is thrown away, so no checkpoint is worth waiting for
    as_user "$owner" "$bindir/pg_ctl" -D "$root/data" -m immediate -w stop </dev/null >/dev/null 2>&1 \
      || say "pg_ctl stop failed (see $root/log); removing $root anyway"
  fi
  rm -rf -- "$root"
}

install_postgres() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL server binaries not found; installing Debian's postgresql package"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) \
      </dev/null >/dev/null 2>&1 || die "apt-get install postgresql failed"
  else
    die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install PostgreSQL \
(Debian: apt-get install postgresql) or point TOKENMETER_TEST_PG at a server that answers"
  fi
}

# The user the server runs as: ourselves, unless we are root (postgres refuses to run as root).
server_user() {
  if [ "$(id -u)" != 0 ]; then
    id -un
  elif id postgres >/dev/null 2>&1; then
    echo postgres
  else
    # a root container without Debian's package user: any unprivileged account will do
    echo nobody
  fi
}

start_server() {
  local dir_file="$1" watch_pid="$2" bindir user root port url psql attempt started=""
  bindir="$(find_bindir)" || { install_postgres; bindir="$(find_bindir)" || die "no initdb after installing postgresql"; }
  user="$(server_user)"
  root="$(mktemp -d "${TMPDIR:-/tmp}/tokenmeter-pg.XXXXXX")"
  touch "$root/$MARKER"
  echo "$bindir" >"$root/bindir"
  mkdir "$root/sock"
  chown -R "$user" "$root"
  if ! as_user "$user" test -w "$root"; then
    # TMPDIR is private to root (/root/tmp, say): the server user cannot reach it there
    rm -rf -- "$root"
    root="$(mktemp -d /tmp/tokenmeter-pg.XXXXXX)"
    touch "$root/$MARKER"
    echo "$bindir" >"$root/bindir"
    mkdir "$root/sock"
    chown -R "$user" "$root"
  fi
  # the caller's folder may be closed to the server user, and postgres complains from there
  cd "$root"
  # C locale: a minimal container may lack the caller's locale, and initdb fails on it
  as_user "$user" "$bindir/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    </dev/null >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log" >&2; rm -rf -- "$root"; die "initdb failed"; }
  # another process may take the free port between the pick and the start: try a few
  for attempt in 1 2 3; do
    port="$(free_port)"
    # durability off: the data is thrown away, and fsync only slows the tests down
    if as_user "$user" "$bindir/pg_ctl" -D "$root/data" -l "$root/log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $root/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start </dev/null >/dev/null 2>&1; then
      started=1
      break
    fi
    say "start on port $port failed (attempt $attempt)"
  done
  if [ -z "$started" ]; then
    tail -n 20 "$root/log" >&2 || true
    rm -rf -- "$root"
    die "could not start PostgreSQL"
  fi
  url="postgresql://postgres@127.0.0.1:$port/test"
  psql="$bindir/psql"
  [ -x "$psql" ] || psql=psql
  if ! "$psql" -X -q -d "postgresql://postgres@127.0.0.1:$port/postgres" -c "CREATE DATABASE test" \
    </dev/null >/dev/null 2>>"$root/log"; then
    stop_server "$root"
    die "CREATE DATABASE test failed"
  fi
  if [ -n "$dir_file" ]; then
    echo "$root" >"$dir_file"
  fi
  if [ -n "$watch_pid" ]; then
    # detached and off our stdout, or $(...) in the caller would wait for it
    (
      while kill -0 "$watch_pid" 2>/dev/null && [ -d "$root" ]; do sleep 2; done
      [ -d "$root" ] && bash "$script" --stop "$root"
    ) </dev/null >/dev/null 2>&1 &
    disown
  fi
  say "started PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $url (data in $root; stop it with: bash tools/pg_test_server.sh --stop $root)"
  echo "$url"
}

script="$(readlink -f "$0")"
mode=start dir_file="" watch_pid="" stop_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stop | stop) mode=stop; stop_dir="${2:-}"; shift $(($# > 1 ? 2 : 1)) ;;
    --dir-file) dir_file="${2:?--dir-file needs a FILE}"; shift 2 ;;
    --stop-with) watch_pid="${2:?--stop-with needs a PID}"; shift 2 ;;
    -h | --help) usage 0 ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done

if [ "$mode" = stop ]; then
  stop_server "$stop_dir"
  exit 0
fi

if [ -n "$dir_file" ]; then
  dir_file="$(readlink -f "$dir_file")"
  : >"$dir_file"
fi
url="${TOKENMETER_TEST_PG:-$DEFAULT_URL}"
if answers "$url"; then
  echo "$url"
  exit 0
fi
start_server "$dir_file" "$watch_pid"
