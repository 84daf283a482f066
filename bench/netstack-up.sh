#!/usr/bin/env bash
# `netstack up` and `netstack down` on the sample app, 3 nodes: wall time of
# each command (start of dist/bin/netstack to exit), per backend, ROUNDS
# times. Goals (ours; issue 11 names none): up ≤ 30 s, down ≤ 5 s on the
# 2-core CI machine. Each round's cluster lives in a state directory of its
# own and is removed by `netstack down` (also on failure).
# Usage (root, after npm run build): bench/netstack-up.sh [rounds] [backends...]
#   -> bench/results/netstack-up-<UTC stamp>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
shift || true
if [ $# -gt 0 ]; then BACKENDS=("$@"); else BACKENDS=(vxlan host-gw udp); fi
UP_GOAL_MS=30000
DOWN_GOAL_MS=5000
NETSTACK=${NETSTACK:-$PWD/dist/bin/netstack}
[ "$(id -u)" = 0 ] || { echo "run as root (netstack up creates network namespaces)" >&2; exit 1; }
[ -x "$NETSTACK" ] || { echo "$NETSTACK is missing: npm run build" >&2; exit 1; }
export NODE_NO_WARNINGS=1

WORK=$(mktemp -d /tmp/netstack-up-bench.XXXXXX)
STATE=""
cleanup() {
  if [ -n "$STATE" ] && [ -e "$STATE/state.json" ]; then "$NETSTACK" down --state-dir "$STATE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

OUT="bench/results/netstack-up-$(date -u +%Y%m%d-%H%M%S).md"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
verdict() { [ "$1" -le "$2" ] && echo met || echo missed; }

{
  echo "# netstack up / down: sample app, 3 nodes"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- kernel: $(uname -r)"
  echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- command: bench/netstack-up.sh $ROUNDS ${BACKENDS[*]} ($NETSTACK up --state-dir DIR --backend B; $NETSTACK down --state-dir DIR)"
  echo "- goals: up ≤ ${UP_GOAL_MS} ms, down ≤ ${DOWN_GOAL_MS} ms"
  echo
  echo "| backend | round | up ms | goal | down ms | goal | load (1 min) |"
  echo "|---|---|---|---|---|---|---|"
  for b in "${BACKENDS[@]}"; do
    for i in $(seq 1 "$ROUNDS"); do
      STATE="$WORK/state-$b-$i"
      t0=$(ms)
      "$NETSTACK" up --state-dir "$STATE" --backend "$b" >"$WORK/up.log" 2>&1 || { echo "netstack up failed:" >&2; tail -20 "$WORK/up.log" >&2; exit 1; }
      t1=$(ms)
      "$NETSTACK" down --state-dir "$STATE" >"$WORK/down.log" 2>&1 || { echo "netstack down failed:" >&2; cat "$WORK/down.log" >&2; exit 1; }
      t2=$(ms)
      STATE=""
      up=$(( t1 - t0 )); down=$(( t2 - t1 ))
      echo "| $b | $i | $up | $(verdict $up $UP_GOAL_MS) | $down | $(verdict $down $DOWN_GOAL_MS) | $(cut -d' ' -f1 /proc/loadavg) |"
    done
  done
  echo
  echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
echo "wrote $OUT" >&2
