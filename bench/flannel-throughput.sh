#!/bin/bash
# iperf3 TCP pod to pod across two namespace "nodes": our flanneld (vxlan,
# host-gw, udp) side by side with the same datapath built by hand with
# ip/bridge, all in the same run and on the same underlay (see the header of
# bench/flannel-throughput.ts for the topology).
# Usage (root, after `npm run build`): bench/flannel-throughput.sh [seconds=10] [repeats=3]
#   -> writes bench/results/flannel-throughput-<UTC timestamp>.md and prints it.
set -euo pipefail
SECS=${1:-10}
REPS=${2:-3}
cd "$(dirname "$0")/.."
[ -x /usr/bin/iperf3 ] || { echo "needs iperf3" >&2; exit 1; }
[ -f dist/bin/flanneld ] || { echo "run npm run build first" >&2; exit 1; }
# The bundle sits inside the repo so it resolves node_modules from there.
TMP=$(mktemp -d "$PWD/bench/.run-XXXXXX")
# The flanneld copy sits inside the repo (it requires koffi from node_modules) with a
# commonjs package.json beside it, as dist/ has.
BIN=$(mktemp -d "$PWD/bench/.bin-XXXXXX")
echo '{"type": "commonjs"}' > "$BIN/package.json"
trap 'rm -rf "$TMP" "$BIN"' EXIT
npx --no-install esbuild bench/flannel-throughput.ts --bundle --platform=node --format=esm --packages=external --outfile="$TMP/tp.mjs" --log-level=warning
# A private copy of the executable: dist/ may be rebuilt by others during the run.
cp dist/bin/flanneld "$BIN/flanneld"
export FLANNELD="$BIN/flanneld"
FL_SHA=$(sha256sum "$BIN/flanneld" | cut -c1-16)
FL_TIME=$(date -u -r dist/bin/flanneld +%Y-%m-%dT%H:%M:%SZ)
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="bench/results/flannel-throughput-$STAMP.md"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TABLE=$(node "$TMP/tp.mjs" "$SECS" "$REPS" "$TMP/raw.json")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# flanneld throughput: iperf3 TCP pod to pod, ours vs hand-built, same run"
  echo
  echo "- date: $START (UTC), commit $(git rev-parse --short HEAD)"
  echo "- machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), node $(node --version), $(iperf3 --version | head -1)"
  echo "- flanneld under test: dist/bin/flanneld built $FL_TIME, sha256 $FL_SHA… (copied before the run); working tree: $(git status --porcelain -- flanneld lib | wc -l) modified/untracked files under flanneld/ lib/"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER"
  echo "- command: \`bench/flannel-throughput.sh $SECS $REPS\` (iperf3 -t $SECS, one TCP stream, $REPS rounds; each round runs every case once, order reversed every other round)"
  echo "- topology: underlay bridge br0 in its own namespace (veth, MTU 1500); per case 2 node namespaces and 1 pod namespace per node; pods on cni0 (bridge + veth) with the backend's pod MTU; etcd in the underlay namespace; our flanneld = dist/bin/flanneld with default flags (--iface=eth0, no --ip-masq), one pair per backend under its own etcd prefix"
  echo "- hand-built vxlan: \`ip link add flannel.1 address <mac> mtu 1450 type vxlan id 1 local <eth0 ip> dev eth0 dstport 8472 nolearning\`, address <subnet>.0/32, \`ip neigh replace <peer subnet>.0 dev flannel.1 lladdr <peer mac> nud permanent\`, \`bridge fdb replace <peer mac> dev flannel.1 self dst <peer ip>\`, \`ip route replace <peer subnet> via <peer subnet>.0 dev flannel.1 onlink\`"
  echo "- diagnostic case: hand-built vxlan plus the three FORWARD rules flanneld installs by default (iptables-restore --noflush), to separate their cost from flanneld's"
  echo "- hand-built host-gw: \`ip route replace <peer subnet> via <peer eth0 ip> dev eth0\`"
  echo
  echo "$TABLE"
} > "$OUT"
cat "$OUT"
