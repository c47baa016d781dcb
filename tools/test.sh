#!/usr/bin/env bash
# The one test command (README "Test"): installs what the tests need, then lint + tests.
# Uses the active virtual environment, else creates ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[test,postgres]'

# The dashboard browser test needs Debian's chromium; install it when we can (root + apt).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "tools/test.sh: could not install chromium; the browser test will be skipped" >&2
  else
    echo "tools/test.sh: chromium not found; the browser test will be skipped" >&2
  fi
fi

# `promtool` (Debian's prometheus package) checks the `tokenmeter metrics` output and the example
# alert rules in tests/test_metrics.py; install it when we can (root + apt).
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
      || echo "tools/test.sh: could not install prometheus (promtool); the promtool tests will be skipped" >&2
  else
    echo "tools/test.sh: promtool not found; the promtool tests will be skipped" >&2
  fi
fi

# The real Qwen Code clients for tests/test_qwen_code_conformance.py (npm; warns and goes on offline).
bash tools/install_qwen_code.sh

# The PostgreSQL (team hub) tests need a real server: the one at $TOKENMETER_TEST_PG (default
# postgresql://postgres@127.0.0.1:5432/test) when it answers, else a throwaway one started here and
# stopped when this script ends (--stop-with covers a kill -9 of this script, which skips the trap).
pg_dir_file="$(mktemp)"
# shellcheck disable=SC2317  # called by the trap
stop_pg() {
  [ -s "$pg_dir_file" ] && bash tools/pg_test_server.sh --stop "$(cat "$pg_dir_file")"
  rm -f "$pg_dir_file"
}
trap stop_pg EXIT
trap 'exit 130' INT  # a signal still runs the EXIT trap
trap 'exit 143' TERM
if pg_url="$(bash tools/pg_test_server.sh --dir-file "$pg_dir_file" --stop-with $$)"; then
  export TOKENMETER_TEST_PG="$pg_url"
else
  echo "tools/test.sh: no PostgreSQL for the hub tests; they will be skipped (fail under CI=true)" >&2
fi

ruff check .
python -m pytest -q "$@"
