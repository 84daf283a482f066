#!/bin/bash
# netpolicy at 1,000 pods / 500 policies against the real tools, inside a
# throwaway netns: full render + apply and one label change per backend, and
# rule/element counts as the cluster doubles (bench/netpolicy.ts); then
# connect() latency through an isolated pod at 500 policies vs none, both
# backends (bench/netpolicy.connect.ts: its own namespaces, dist/bin/netpolicy
# and our loopback/bridge/host-local plugins, so build them first:
# `node scripts/build.mjs netpolicy bridge host-local loopback`).
# Usage (root): bench/netpolicy.sh [rounds] [connects]  -> bench/results/netpolicy-<date>.md
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
ROUNDS=${1:-5}
CONNECTS=${2:-500}
cd "$(dirname "$0")/.."
NS="npbench-$RANDOM$RANDOM"
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
npx --no-install esbuild bench/netpolicy.ts --bundle --platform=node --format=esm --packages=external --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$TMP/bench.mjs" --log-level=warning
npx --no-install esbuild bench/netpolicy.connect.ts --bundle --platform=node --format=esm --packages=external --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$TMP/connect.mjs" --log-level=warning
for b in netpolicy bridge host-local loopback; do [ -x "dist/bin/$b" ] || { echo "dist/bin/$b missing: node scripts/build.mjs netpolicy bridge host-local loopback" >&2; exit 1; }; done
cp "$TMP/bench.mjs" ./.netpolicy-bench.mjs
cp "$TMP/connect.mjs" ./.netpolicy-connect.mjs
trap 'rm -f ./.netpolicy-bench.mjs ./.netpolicy-connect.mjs; cleanup' EXIT
OUT="bench/results/netpolicy-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "# netpolicy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(nft --version), $(iptables --version), $(ipset --version | head -1)"
  echo
  node ./.netpolicy-bench.mjs "/var/run/netns/$NS" "$ROUNDS"
  echo
  node ./.netpolicy-connect.mjs "$ROUNDS" "$CONNECTS"
} | tee "$OUT"
echo "wrote $OUT" >&2
