#!/usr/bin/env bash
# Where the time of one CNI invocation goes, phase by phase (issue 7: "where
# a goal is missed, … measured with a per-phase trace, not guessed").
#   ours: KN_TRACE_PHASES=1 (lib/trace.ts: process start → first line, module
#         evaluation, skel parse, netns open, each netlink phase, IPAM,
#         iptables, result print) and KN_TRACE_EXEC=1 (lib/exec.ts: each child
#         process with its wall time); medians over the runs.
#   reference: strace -f -ttt -e trace=execve,exit_group: the wall time of
#         each process of the invocation (bridge, the host-local it forks,
#         every iptables run), its own time from execve to exit, medians.
# Same node/pod namespace setup and configs as bench/cni.sh; each ADD follows
# the same plugin's DEL and vice versa.
# Usage (root): bench/cni-phases.sh [runs]  -> bench/results/cni-phases-<date>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-20}
REF=/usr/lib/cni
OURS=$ROOT/dist/bin
command -v strace >/dev/null || { echo "strace is required" >&2; exit 1; }
[ "${KN_BENCH_NO_BUILD:-}" = 1 ] || node scripts/build.mjs kube-netstack-cni

P="kncniph$RANDOM"
WORK=$(mktemp -d /tmp/cni-phases.XXXXXX)
NAMESPACES=()
cleanup() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkns() { ip netns add "$1"; NAMESPACES+=("$1"); }
NODE=$P-node
mkns "$NODE"
for who in ref ours; do for c in masq nomasq lo fl; do mkns "$P-$who-$c"; done; done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

bridge_conf() { # who case masq subnet
  printf '{"cniVersion":"1.0.0","name":"b%s%s","type":"bridge","bridge":"b%s%s","isGateway":true,"ipMasq":%s,"ipam":{"type":"host-local","subnet":"%s","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s/data"}}' \
    "$1" "$2" "$1" "$2" "$3" "$4" "$WORK"
}
bridge_conf ref masq true 10.110.0.0/24 > "$WORK/ref-masq.json"
bridge_conf ours masq true 10.111.0.0/24 > "$WORK/ours-masq.json"
bridge_conf ref nomasq false 10.112.0.0/24 > "$WORK/ref-nomasq.json"
bridge_conf ours nomasq false 10.113.0.0/24 > "$WORK/ours-nomasq.json"
for who in ref ours; do
  printf '{"cniVersion":"1.0.0","name":"hl%s","type":"host-local","ipam":{"type":"host-local","subnet":"10.120.0.0/16","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s/data"}}' "$who" "$WORK" > "$WORK/$who-hl.json"
  printf '{"cniVersion":"1.0.0","name":"lo%s","type":"loopback"}' "$who" > "$WORK/$who-lo.json"
done
printf 'FLANNEL_NETWORK=10.114.0.0/16\nFLANNEL_SUBNET=10.114.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n' > "$WORK/subnet.env"
printf '{"cniVersion":"0.3.1","name":"flours","type":"flannel","subnetFile":"%s/subnet.env","dataDir":"%s/flannel","delegate":{"bridge":"bflours","hairpinMode":true,"isDefaultGateway":true},"ipam":{"dataDir":"%s/data"}}' \
  "$WORK" "$WORK" "$WORK" > "$WORK/ours-fl.json"

inv() { # who plugin cmd case [tracer…]: one invocation, stderr to $WORK/err
  local who=$1 plugin=$2 cmd=$3 c=$4 bin=$REF pod=$4; shift 4
  [ "$who" = ours ] && bin=$OURS
  [ "$c" = hl ] && pod=lo
  ip netns exec "$NODE" "$@" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin KN_TRACE_PHASES=1 KN_TRACE_EXEC=1 \
    CNI_COMMAND="$cmd" CNI_CONTAINERID=bench CNI_NETNS="/run/netns/$P-$who-$pod" CNI_IFNAME=eth0 CNI_PATH="$bin" \
    "$bin/$plugin" < "$WORK/$who-$c.json" > /dev/null 2> "$WORK/err"
}
CASES=("bridge ADD masq" "bridge DEL masq" "bridge ADD nomasq" "bridge DEL nomasq" "host-local ADD hl" "host-local DEL hl" "loopback ADD lo" "loopback DEL lo")
mkdir -p "$WORK/ours" "$WORK/ref"
for i in $(seq "$RUNS"); do
  for spec in "${CASES[@]}" "flannel ADD fl" "flannel DEL fl"; do
    set -- $spec
    [ "$1" = flannel ] && [ "$3" = fl ] || true
    key="$1 $2 ($3)"
    # ours: the phase lines, plus the whole wall time as the wrapper sees it
    t0=$(date +%s%N); inv ours "$1" "$2" "$3"; t1=$(date +%s%N)
    { cat "$WORK/err"; echo "kn-phase TOTAL (wall, incl. ip netns exec + env) $(((t1 - t0) / 1000)).0e-3 ms"; } | sed "s|^|$key\t|" >> "$WORK/ours/phases"
    [ "$1" = flannel ] && continue
    # reference: every process of the invocation under strace
    inv ref "$1" "$2" "$3" strace -f -ttt -e trace=execve,exit_group -qq -o "$WORK/st"
    node -e '
      const [file, key] = process.argv.slice(1);
      const start = new Map(), name = new Map(); const out = [];
      let first, lastT;
      for (const l of require("fs").readFileSync(file, "utf8").split("\n")) {
        const m = /^(\d+)\s+(\d+\.\d+) (execve|exit_group)\((?:"([^"]*)")?/.exec(l); if (!m) continue;
        const [, pid, t, call, path] = m; const ts = +t * 1000;
        first ??= ts; lastT = ts;
        if (call === "execve" && !l.includes("= -1")) { if (!start.has(pid)) start.set(pid, ts); name.set(pid, path.split("/").pop()); }
        else if (call === "exit_group" && start.has(pid)) out.push(`${key}\tkn-phase ${name.get(pid)} (execve → exit) ${(ts - start.get(pid)).toFixed(3)} ms`);
      }
      out.push(`${key}\tkn-phase TOTAL (first execve → last exit, under strace) ${(lastT - first).toFixed(3)} ms`);
      console.log(out.join("\n"));' "$WORK/st" "$key" >> "$WORK/ref/phases"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

OUT=bench/results/cni-phases-$(date -u +%Y-%m-%d).md
{
  echo "# CNI plugins: where the time of one invocation goes"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $RUNS runs per case, medians (ms)"
  echo "- machine: nproc $(nproc), kernel $(uname -r), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER (other engineers' test runs share the machine)"
  echo "- ours: dist/bin (Bun-compiled kube-netstack-cni, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- plugins lib || echo ' + uncommitted trace call sites')) with KN_TRACE_PHASES=1 KN_TRACE_EXEC=1; reference: $REF ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)) under strace -f -ttt -e trace=execve,exit_group"
  echo "- command: bench/cni-phases.sh $RUNS"
  echo
  node bench/cni-phases-report.mjs "$WORK/ours/phases" "$WORK/ref/phases"
} > "$OUT"
echo "wrote $OUT" >&2
cat "$OUT"
