#!/usr/bin/env bash
# README command 1: set up the machine and build (scripts/setup.sh), then the
# whole stack as a cluster in network namespaces: `netstack up` (3 nodes,
# etcd, flanneld, kube-proxy, netpolicy, the sample app through the CNI
# plugins), `netstack check` (the reachability matrix against the model),
# and `netstack down`, which runs whatever happens (also on Ctrl-C or a
# failure) and removes every namespace, process and file the run made.
# Touches nothing outside the namespaces it creates.
#
#   bash scripts/demo.sh [netstack up options]     e.g. --backend host-gw --proxy-mode nftables
#   SKIP_SETUP=1 bash scripts/demo.sh              skip setup.sh (already set up and built)
#   KEEP=1 bash scripts/demo.sh                    leave the cluster up (netstack down --state-dir … later)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh

netstack=dist/bin/netstack
state=${STATE_DIR:-$(mktemp -d /tmp/netstack-demo.XXXXXX)/state}

cleanup() {
  rc=$?
  set +e
  if [ "${KEEP:-}" = 1 ] && [ $rc = 0 ]; then
    echo "== left running; remove with: $netstack down --state-dir $state"
    return
  fi
  echo "== netstack down"
  "$netstack" down --state-dir "$state"
  rmdir "$(dirname "$state")" 2>/dev/null
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== netstack up $*"
"$netstack" up --state-dir "$state" "$@"
echo "== netstack status"
"$netstack" status --state-dir "$state"
echo "== netstack check"
"$netstack" check --state-dir "$state"
echo "== demo passed"
