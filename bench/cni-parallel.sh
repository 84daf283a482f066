#!/usr/bin/env bash
# 100 parallel bridge ADDs on one node, the reference (/usr/lib/cni) against
# ours (dist/bin), same config shape (bridge + host-local IPAM, ipMasq on),
# separate networks, bridges, subnets and stores. Per round and side: start
# 100 ADDs at once (one pod namespace each), wait for all, then 100 DELs at
# once; the wall time of each burst is recorded. Rounds alternate ref/ours.
# After every ADD burst: all 100 succeeded and all addresses are distinct;
# after every DEL burst: no veth, no pod interface, no reservation file and
# no CNI masquerade chain or rule is left.
# Goal (issue 7): all distinct, nothing leaked, wall time ≤ reference.
# With KN_TRACE_PHASES=1 our invocations also trace their phases (lib/trace.ts,
# and KN_TRACE_EXEC for child processes); the results file then has the
# per-phase medians of one of our parallel ADDs and DELs.
# Usage (root): bench/cni-parallel.sh [rounds] [pods]  -> bench/results/cni-parallel-<stamp>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-3}
PODS=${2:-100}
REF=/usr/lib/cni
OURS=$ROOT/dist/bin
[ -x "$REF/bridge" ] || { echo "missing $REF/bridge" >&2; exit 1; }
[ -x "$OURS/bridge" ] || node scripts/build.mjs kube-netstack-cni

P="kncnip$RANDOM"
WORK=$(mktemp -d /tmp/cni-par.XXXXXX)
NAMESPACES=()
cleanup() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkns() { ip netns add "$1"; NAMESPACES+=("$1"); }
NODE=$P-node
mkns "$NODE"
for who in ref ours; do for i in $(seq "$PODS"); do mkns "$P-$who-$i"; done; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
conf() { # who subnet
  printf '{"cniVersion":"1.0.0","name":"par%s","type":"bridge","bridge":"bp%s","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"%s","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s/data"}}' \
    "$1" "$1" "$2" "$WORK"
}
conf ref 10.116.0.0/24 > "$WORK/ref.json"
conf ours 10.117.0.0/24 > "$WORK/ours.json"

one() { # who cmd i
  local bin=$REF trace=(); [ "$1" = ours ] && bin=$OURS
  [ "$1" = ours ] && [ "${KN_TRACE_PHASES:-}" = 1 ] && trace=(KN_TRACE_PHASES=1 KN_TRACE_EXEC=1)
  ip netns exec "$NODE" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${trace[@]}" CNI_COMMAND="$2" CNI_CONTAINERID="par$3" \
    CNI_NETNS="/run/netns/$P-$1-$3" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/bridge" < "$WORK/$1.json" > "$WORK/out/$1-$2-$3.json" 2> "$WORK/out/$1-$2-$3.err"
}
burst() { # who cmd -> prints wall ms; fails if any invocation failed
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"
  local pids=() t0 t1 fail=0
  t0=$(date +%s%N)
  for i in $(seq "$PODS"); do one "$1" "$2" "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
  t1=$(date +%s%N)
  [ "$fail" = 0 ] || { echo "$1 $2: $fail of $PODS invocations failed" >&2; cat "$WORK"/out/"$1-$2"-*.json >&2; return 1; }
  [ "$1" = ours ] && for f in "$WORK"/out/*.err; do sed "s|^|parallel $2 (ours, one of $PODS at once)\t|" "$f"; done >> "$WORK/trace"
  echo $(((t1 - t0) / 1000))
}
check_add() { # who: all succeeded, addresses distinct, each pod has its address on eth0
  local n
  n=$(node -e '
    const fs = require("fs"); const [dir, who, pods] = process.argv.slice(1);
    const ips = [];
    for (let i = 1; i <= +pods; i++) ips.push(JSON.parse(fs.readFileSync(`${dir}/${who}-ADD-${i}.json`, "utf8")).ips[0].address);
    console.log(new Set(ips).size);' "$WORK/out" "$1" "$PODS")
  [ "$n" = "$PODS" ] || { echo "$1: only $n distinct addresses of $PODS" >&2; return 1; }
  for i in $(seq "$PODS"); do
    ip -n "$P-$1-$i" -o -4 addr show dev eth0 | grep -q "inet 10\.11" || { echo "$1: pod $i has no address on eth0" >&2; return 1; }
  done
  echo "$n"
}
check_del() { # who: nothing left behind
  local veths files chains pods=0
  veths=$(ip -n "$NODE" -o link show type veth | grep -c "master bp$1" || true)
  files=$(find "$WORK/data/par$1" -maxdepth 1 -type f -name '10.*' 2>/dev/null | wc -l)
  chains=$(ip netns exec "$NODE" iptables-save -t nat | grep -c "par$1\|CNI-" || true)
  for i in $(seq "$PODS"); do ip -n "$P-$1-$i" link show eth0 >/dev/null 2>&1 && pods=$((pods + 1)); done
  [ "$veths$files$chains$pods" = 0000 ] || { echo "$1 leaked: $veths veths, $files reservations, $chains nat lines, $pods pod interfaces" >&2; return 1; }
  echo "0 veths, 0 reservations, 0 masquerade chains/rules, 0 pod interfaces"
}

: > "$WORK/rows"
for r in $(seq "$ROUNDS"); do
  for who in ref ours; do
    add=$(burst "$who" ADD); distinct=$(check_add "$who")
    del=$(burst "$who" DEL); left=$(check_del "$who")
    echo "| $r | $who | $((add / 1000)) | $distinct of $PODS distinct | $((del / 1000)) | $left |" >> "$WORK/rows"
    echo "$who $add $del" >> "$WORK/walls"
    echo "round $r $who: ADD ${add}µs DEL ${del}µs" >&2
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

OUT=bench/results/cni-parallel-$(date -u +%Y%m%d-%H%M%S).md
{
  echo "# $PODS parallel bridge ADDs and DELs on one node: reference vs ours"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: nproc $(nproc), kernel $(uname -r), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER (other engineers' test runs share the machine)"
  echo "- reference: $REF/bridge ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)); ours: dist/bin/bridge, Bun-compiled (commit $(git rev-parse --short HEAD))"
  echo "- command: bench/cni-parallel.sh $ROUNDS $PODS; config: bridge + host-local, isGateway, ipMasq on, a /24 per side; each burst starts $PODS \`ip netns exec <node> env -i … bridge\` at once and waits for all"
  echo
  echo "| round | side | ADD wall (ms) | addresses | DEL wall (ms) | left after the DELs |"
  echo "|---|---|---|---|---|---|"
  cat "$WORK/rows"
  echo
  node -e '
    const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const m = (who, k) => median(rows.filter((r) => r[0] === who).map((r) => +r[k] / 1000));
    console.log("| burst | reference median (ms) | ours median (ms) | ours / ref | goal (wall ≤ reference) |\n|---|---|---|---|---|");
    for (const [name, k] of [["ADD", 1], ["DEL", 2]]) {
      const [ref, ours] = [m("ref", k), m("ours", k)];
      const goal = name === "ADD" ? (ours <= ref ? "**met**" : `**missed** by ${((ours / ref - 1) * 100).toFixed(0)} %`) : "— (reported)";
      console.log(`| ${name} | ${ref.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / ref).toFixed(2)}× | ${goal} |`);
    }' "$WORK/walls"
  echo
  echo "All addresses distinct and nothing leaked in every round (the script stops with an error otherwise)."
  if [ "${KN_TRACE_PHASES:-}" = 1 ]; then
    echo
    echo "Per-phase medians of our invocations in the bursts (KN_TRACE_PHASES=1; the trace itself is on, so these rounds are not the untraced figures):"
    echo
    node bench/cni-phases-report.mjs "$WORK/trace"
  fi
} > "$OUT"
echo "wrote $OUT" >&2
cat "$OUT"
