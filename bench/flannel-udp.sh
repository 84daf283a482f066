#!/bin/bash
# flanneld udp backend (our TUN + worker-thread datapath) vs vxlan (kernel):
# iperf3 TCP pod to pod across two namespace "nodes", same run, same machine;
# the udp datapath with all offloads, with each alone and with none.
# Namespaces are created and removed by the program (World, per-run prefix).
# Usage (root): bench/flannel-udp.sh [seconds=10] [repeats=3]
#   BENCH_VARIANTS="vxlan,udp" limits the rows (names as in the table).
#   -> writes bench/results/flannel-udp-<date>-<time>.md and prints it. Needs iperf3, ping.
set -euo pipefail
SECS=${1:-10}
REPS=${2:-3}
cd "$(dirname "$0")/.."
# The bundle sits inside the repo so it resolves node_modules (koffi) from there.
TMP=$(mktemp -d "$PWD/bench/.run-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
npx --no-install esbuild bench/flannel-udp.ts --bundle --platform=node --format=esm --packages=external --outfile="$TMP/flannel-udp.mjs" --log-level=warning
OUT="bench/results/flannel-udp-$(date -u +%Y-%m-%d-%H%M).md"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TABLE=$(node "$TMP/flannel-udp.mjs" "$SECS" "$REPS")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# flanneld udp backend vs vxlan: iperf3 TCP pod to pod"
  echo
  echo "- date: $START"
  echo "- machine: $(uname -srm), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), node $(node --version), $(iperf3 --version | head -1)"
  echo "- command: bench/flannel-udp.sh $SECS $REPS (iperf3 -t $SECS, $REPS runs per row, one TCP stream)${BENCH_VARIANTS:+, BENCH_VARIANTS=$BENCH_VARIANTS}"
  echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
  echo "- topology: 2 node namespaces on a veth/bridge underlay (MTU 1500), pod namespace per node behind cni0; pod MTU from the backend (vxlan 1450, udp 1472); all backends driven by our flanneld/backend code in one process"
  echo
  echo "$TABLE"
} > "$OUT"
cat "$OUT"
