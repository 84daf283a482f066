#!/usr/bin/env bash
# kube-proxy nftables mode at scale, with the real nft in namespaces this
# script creates: cold start (render + every transaction applied) at
# 10,000 services × 10 endpoints and 50,000 × 5, and one endpoint change at
# 10,000 → rules in place. Prints each figure against its goal (issue 8) and
# writes bench/results/kube-proxy-nft-<UTC stamp>.md.
# Usage (root): bench/kube-proxy-nft.sh [--naive]
#   KP_NFT_TIMEOUT   seconds one scale may take before it is reported unfinished (default 900)
#   KP_NFT_MAX_LINES lines per transaction (default: the renderer's)
#   --naive          also time the 10k cold start as ONE transaction (upstream's way; minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TIMEOUT=${KP_NFT_TIMEOUT:-900}
NAIVE=0
[ "${1:-}" = "--naive" ] && NAIVE=1
command -v nft >/dev/null || { echo "nft is required" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (it creates network namespaces)" >&2; exit 1; }

P="kn-kp2-$RANDOM"
WORK=$(mktemp -d /tmp/kp-nft-bench.XXXXXX)
NAMESPACES=()
cleanup() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
npx esbuild bench/kube-proxy-nft.ts --bundle --platform=node --format=esm --packages=external --log-level=warning --outfile="$WORK/bench.mjs"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# run NAME SERVICES ENDPOINTS [extra args]: prints the JSON line, or {"unfinished":…} past the timeout.
run() {
  local ns="$P-$1"; shift
  ip netns add "$ns"; NAMESPACES+=("$ns")
  local extra=()
  [ -n "${KP_NFT_MAX_LINES:-}" ] && extra+=(--max-lines "$KP_NFT_MAX_LINES")
  if ! timeout "$TIMEOUT" node "$WORK/bench.mjs" --netns "/run/netns/$ns" --services "$1" --endpoints "$2" "${extra[@]}" "${@:3}" > "$WORK/out" 2> "$WORK/err"; then
    # The last progress line says how far it got; anything else on stderr is the failure.
    local last; last=$(grep '^progress ' "$WORK/err" | tail -1 | sed 's/^progress //; s/"//g' || true)
    local why; why=$(grep -v '^progress ' "$WORK/err" | tr -d '"\n' | cut -c1-300 || true)
    echo "{\"services\":$1,\"endpoints\":$2,\"unfinished\":\"no result within ${TIMEOUT}s${why:+ or failed: $why}; last progress: ${last:-none}\"}"
  else
    cat "$WORK/out"
  fi
  ip netns del "$ns"
}
R10=$(run a 10000 10)
echo "$R10"
R50=$(run b 50000 5)
echo "$R50"
RNAIVE=""
if [ "$NAIVE" = 1 ]; then RNAIVE=$(run c 10000 10 --naive); echo "$RNAIVE"; fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# verdict JSON FIELD GOAL_MS
verdict() {
  node -e '
    const r = JSON.parse(process.argv[1]); const f = process.argv[2].split("."); const goal = Number(process.argv[3]);
    let v = r; for (const k of f) v = v?.[k];
    if (typeof v !== "number") { console.log("not measured (" + (r.unfinished ?? "no value") + ")"); process.exit(0); }
    console.log(`${(v / 1000).toFixed(goal < 1000 ? 3 : 1)} s — goal ≤ ${(goal / 1000).toFixed(goal < 1000 ? 3 : 0)} s: ${v <= goal ? "met" : "NOT met"}`);
  ' "$1" "$2" "$3"
}
C10=$(verdict "$R10" coldStartMs 10000)
C50=$(verdict "$R50" coldStartMs 60000)
EC=$(verdict "$R10" endpointChange.medianMs 50)
echo "cold start 10,000 × 10:       $C10"
echo "cold start 50,000 × 5:        $C50"
echo "one endpoint change at 10k:   $EC"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
OUT=bench/results/kube-proxy-nft-$STAMP.md
{
  echo "# kube-proxy nftables: cold start and one endpoint change"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  echo "- kernel: $(uname -r)"
  echo "- nft: $(nft --version)"
  echo "- node: $(node --version)"
  echo "- command: bench/kube-proxy-nft.sh $*  (KP_NFT_TIMEOUT=$TIMEOUT${KP_NFT_MAX_LINES:+ KP_NFT_MAX_LINES=$KP_NFT_MAX_LINES})"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared)"
  echo
  echo "| figure | measured | "
  echo "|---|---|"
  echo "| cold start, 10,000 services × 10 endpoints (render + all transactions applied) | $C10 |"
  echo "| cold start, 50,000 services × 5 endpoints | $C50 |"
  echo "| one endpoint change at 10,000 services → rules in place (median of 5) | $EC |"
  echo
  echo "Raw results (renderMs: planning; nftMs: sum of nft runs; txMs/txLines: per transaction):"
  echo
  echo '```'
  echo "$R10"
  echo "$R50"
  [ -n "$RNAIVE" ] && echo "$RNAIVE"
  echo '```'
} > "$OUT"
echo "wrote $OUT"
