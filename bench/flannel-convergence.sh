#!/bin/bash
# flanneld (vxlan) control-plane convergence: time from a new lease written
# into etcd to its route on the node, with simulated peers (upstream key
# layout and value JSON, one etcd lease per key), and the time to program
# 1,000 peers written in one etcd transaction; the floor is the same kernel
# objects by hand with ip -batch / bridge -batch (see the header of
# bench/flannel-convergence.ts).
# Usage (root, after `npm run build`): bench/flannel-convergence.sh [series=100] [gap_ms=20] [slow=100] [batch=1000]
#   -> writes bench/results/flannel-convergence-<UTC timestamp>.md and prints it.
set -euo pipefail
SERIES=${1:-100}
GAP=${2:-20}
SLOW=${3:-100}
BATCH=${4:-1000}
cd "$(dirname "$0")/.."
[ -f dist/bin/flanneld ] || { echo "run npm run build first" >&2; exit 1; }
TMP=$(mktemp -d "$PWD/bench/.run-XXXXXX")
# The flanneld copy sits inside the repo (it requires koffi from node_modules) with a
# commonjs package.json beside it, as dist/ has.
BIN=$(mktemp -d "$PWD/bench/.bin-XXXXXX")
echo '{"type": "commonjs"}' > "$BIN/package.json"
trap 'rm -rf "$TMP" "$BIN"' EXIT
npx --no-install esbuild bench/flannel-convergence.ts --bundle --platform=node --format=esm --packages=external --outfile="$TMP/cv.mjs" --log-level=warning
# A private copy of the executable: dist/ may be rebuilt by others during the run.
cp dist/bin/flanneld "$BIN/flanneld"
export FLANNELD="$BIN/flanneld"
FL_SHA=$(sha256sum "$BIN/flanneld" | cut -c1-16)
FL_TIME=$(date -u -r dist/bin/flanneld +%Y-%m-%dT%H:%M:%SZ)
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="bench/results/flannel-convergence-$STAMP.md"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
node "$TMP/cv.mjs" "$TMP/raw.json" "$SERIES" "$GAP" "$SLOW" "$BATCH" > /dev/null
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
TABLE=$(node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const f = (x) => x.toFixed(1);
const row = (name, s) => `| ${name} | ${s.n} | ${f(s.min)} | ${f(s.p50)} | ${f(s.p90)} | ${f(s.p99)} | ${f(s.max)} |`;
const out = [];
out.push("| per-lease latency (ms), from the etcd put | n | min | p50 | p90 | p99 | max |");
out.push("|---|---|---|---|---|---|---|");
out.push(row(`route on the node, puts ${r.gap} ms apart`, r.fast.route));
out.push(row(`etcd watch event in the driver (same puts)`, r.fast.watch));
out.push(row("route on the node, puts 250 ms apart", r.slow.route));
out.push(row("etcd watch event in the driver (same puts)", r.slow.watch));
out.push(row(`route on the node, puts 250 ms apart, after the batch (${r.counts.expected - r.after.route.n} peers present)`, r.after.route));
out.push(row("etcd watch event in the driver (same puts)", r.after.watch));
out.push("");
const b = r.batch;
out.push(`| ${b.n} leases in one etcd transaction (ms from sending the txn) | value |`);
out.push("|---|---|");
out.push(`| txn committed (client saw the response) | ${f(b.txnCommitMs)} |`);
out.push(`| last watch event in the driver | ${f(b.watchAllMs)} |`);
out.push(`| first route on the node | ${f(b.firstRouteMs)} |`);
out.push(`| all ${b.n} neighbours | ${f(b.allNeighMs)} |`);
out.push(`| all ${b.n} FDB entries | ${f(b.allFdbMs)} |`);
out.push(`| **all ${b.n} routes** | **${f(b.allRoutesMs)}** |`);
out.push(`| kernel counts at the end (expected ${r.counts.expected}): routes / neighbours / FDB on flannel.1 | ${r.counts.routes} / ${r.counts.neighs} / ${r.counts.fdb} |`);
out.push("");
const fl = r.floor;
out.push(`| floor: same ${b.n} peers by hand (ms, including process start; the median of ${fl.totals.length} runs on a fresh device: ${fl.totals.map(f).join(", ")}) | value |`);
out.push("|---|---|");
out.push(`| ip -batch: ${b.n} neigh replace | ${f(fl.neighMs)} |`);
out.push(`| bridge -batch: ${b.n} fdb replace | ${f(fl.fdbMs)} |`);
out.push(`| ip -batch: ${b.n} route replace onlink | ${f(fl.routeMs)} |`);
out.push(`| **total (neigh, fdb, route in sequence)** | **${f(fl.totalMs)}** |`);
out.push(`| counts (routes / neighbours / FDB) | ${fl.counts.routes} / ${fl.counts.neighs} / ${fl.counts.fdb} |`);
out.push(`| one peer as 3 separate ip/bridge processes | ${f(fl.onePeerThreeExecsMs)} |`);
out.push("");
out.push(`flanneld /metrics at the end (peers, programming errors, reconcile duration sum/count):`);
out.push("");
out.push("```");
out.push(r.metrics || "(none matched)");
out.push("```");
console.log(out.join("\n"));
' "$TMP/raw.json")
{
  echo "# flanneld convergence: new lease in etcd → route on the node (vxlan, simulated peers)"
  echo
  echo "- date: $START (UTC), commit $(git rev-parse --short HEAD)"
  echo "- machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), node $(node --version), $(etcd --version | head -1)"
  echo "- flanneld under test: dist/bin/flanneld built $FL_TIME, sha256 $FL_SHA… (copied before the run)"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER"
  echo "- command: \`bench/flannel-convergence.sh $SERIES $GAP $SLOW $BATCH\`"
  echo "- setup: etcd (single member, --max-txn-ops 5000) in an underlay namespace; ONE dist/bin/flanneld (vxlan, Network 10.0.0.0/8, default flags + --healthz-port) in a node namespace; simulated peers written by the driver as \`/bench/cv/subnets/10.A.B.0-24\` → \`{\"PublicIP\":\"198.51.100.N\"|\"203.0.113.N\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\",\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"0a:58:…\"}}\`, each key on its own etcd lease (TTL 3600 s, granted before the clock starts)"
  echo "- timing: t0 = just before the put/txn is sent (driver, performance.now()); route time = the driver reads RTM_NEWROUTE for that subnet from a netlink socket in the node namespace (lib/netlink Handle.subscribe); series: $SERIES peers one by one ${GAP} ms apart, then $SLOW more 250 ms apart; batch: $BATCH peers in one txn on top of those; then 20 more one by one 250 ms apart"
  echo "- upstream flannel: not installable here, so not measured; the floor below is the kernel work itself done by iproute2"
  echo
  echo "$TABLE"
} > "$OUT"
cat "$OUT"
