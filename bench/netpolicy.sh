#!/bin/bash
# netpolicy at 1,000 pods / 500 policies against the real tools, inside a
# throwaway netns: full render + apply and one label change per backend, and
# rule/element counts as the cluster doubles (bench/netpolicy.ts).
# Usage (root): bench/netpolicy.sh [rounds]  -> bench/results/netpolicy-<date>.md
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
ROUNDS=${1:-5}
cd "$(dirname "$0")/.."
NS="npbench-$RANDOM$RANDOM"
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
npx --no-install esbuild bench/netpolicy.ts --bundle --platform=node --format=esm --packages=external --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$TMP/bench.mjs" --log-level=warning
cp "$TMP/bench.mjs" ./.netpolicy-bench.mjs
trap 'rm -f ./.netpolicy-bench.mjs; cleanup' EXIT
OUT="bench/results/netpolicy-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "# netpolicy benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(nft --version), $(iptables --version), $(ipset --version | head -1)"
  echo
  node ./.netpolicy-bench.mjs "/var/run/netns/$NS" "$ROUNDS"
} | tee "$OUT"
echo "wrote $OUT" >&2
