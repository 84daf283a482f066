#!/usr/bin/env bash
# `netstack check` on the sample app: wall time of the whole command (start
# of dist/bin/netstack to exit) and the time check reports for planning +
# probing, over ROUNDS runs against one cluster, single-stack and then
# dual-stack. Goal (issue 11): a few seconds for the sample app on 3 nodes;
# here: 5 s per check. Each cluster is made by `netstack up` in a state
# directory of its own and removed by `netstack down` (also on failure).
# Build first: npm run build. NETSTACK=path runs another build of netstack
# (then NETSTACK_BIN_DIR=dist/bin tells it where the daemons and plugins are).
# Usage (root): bench/netstack-check.sh [rounds] [backend]  -> bench/results/netstack-check-<UTC stamp>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
BACKEND=${2:-vxlan}
GOAL_MS=5000
NETSTACK=${NETSTACK:-$PWD/dist/bin/netstack}
[ "$(id -u)" = 0 ] || { echo "run as root (netstack up creates network namespaces)" >&2; exit 1; }
[ -x "$NETSTACK" ] || { echo "$NETSTACK is missing: npm run build" >&2; exit 1; }

WORK=$(mktemp -d /tmp/netstack-check-bench.XXXXXX)
STATE=""
cleanup() {
  if [ -n "$STATE" ]; then "$NETSTACK" down --state-dir "$STATE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

OUT="bench/results/netstack-check-$(date -u +%Y%m%d-%H%M%S).md"
ms() { echo $(( $(date +%s%N) / 1000000 )); }

run_mode() { # $1: label, $2...: extra up flags
  local label=$1; shift
  STATE="$WORK/state-$label"
  local t0 t1
  t0=$(ms)
  "$NETSTACK" up --state-dir "$STATE" --backend "$BACKEND" --manifests netstack/sample "$@" >"$WORK/up-$label.log" 2>&1 || { echo "netstack up failed:" >&2; tail -20 "$WORK/up-$label.log" >&2; exit 1; }
  t1=$(ms)
  echo "### $label (\`netstack up --backend $BACKEND $*\`: $(( t1 - t0 )) ms)"
  echo
  echo "| round | wall ms | check's own ms | probes | mismatches | goal ≤ ${GOAL_MS} ms |"
  echo "|---|---|---|---|---|---|"
  local i
  for i in $(seq 1 "$ROUNDS"); do
    t0=$(ms)
    "$NETSTACK" check --state-dir "$STATE" >"$WORK/check.txt" 2>/dev/null || true
    t1=$(ms)
    local last own probes bad
    last=$(grep -E '^(OK|FAILED):' "$WORK/check.txt" | tail -1)
    own=$(echo "$last" | sed -nE 's/.* in ([0-9.]+) s$/\1/p' | awk '{printf "%d", $1 * 1000}')
    probes=$(echo "$last" | sed -nE 's/^OK: all ([0-9]+) probes.*/\1/p; s/^FAILED: [0-9]+ of ([0-9]+) probes.*/\1/p')
    bad=$(echo "$last" | sed -nE 's/^FAILED: ([0-9]+) of.*/\1/p')
    local verdict=met
    [ $(( t1 - t0 )) -le $GOAL_MS ] || verdict=missed
    echo "| $i | $(( t1 - t0 )) | ${own:-?} | ${probes:-?} | ${bad:-0} | $verdict |"
  done
  echo
  if grep -q '^Mismatches' "$WORK/check.txt"; then
    echo "Mismatches of the last round (each costs a retry: 1 s + 2 s):"
    echo
    echo '```'
    sed -n '/^Mismatches/,/^$/p' "$WORK/check.txt"
    echo '```'
    echo
  fi
  "$NETSTACK" down --state-dir "$STATE" >/dev/null 2>&1
  STATE=""
}

{
  echo "# netstack check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  t0=$(ms); "$NETSTACK" --help >/dev/null 2>&1; t1=$(ms)
  echo "Start-up of the executable alone (\`netstack --help\`): $(( t1 - t0 )) ms"
  echo
  echo "Command: bench/netstack-check.sh $ROUNDS $BACKEND (sample app, 3 nodes, kube-proxy iptables, netpolicy nftables; probe timeout 1 s, 128 in flight)"
  echo
  run_mode single-stack
  run_mode dual-stack --dual-stack
  echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
echo "wrote $OUT" >&2
