#!/usr/bin/env bash
# Side-by-side timing of the CNI plugins: the reference (/usr/lib/cni, Debian
# containernetworking-plugins) and ours (dist/bin), in ONE hyperfine run:
#   bridge ADD / DEL with ipMasq true and false (bridge + host-local IPAM),
#   host-local ADD / DEL on an empty store, loopback ADD / DEL,
#   and the floors: the invocation wrapper alone (/bin/true) and `node -e 0`
#   through the same wrapper (Node start-up).
# Every plugin runs as a runtime would start it: `ip netns exec <node> env -i
# PATH=… CNI_*=… <plugin> < config` inside a node namespace this script
# creates (pods too); each ADD is prepared by the same plugin's DEL and each
# DEL by its ADD, so every timed run starts from the same state.
# Usage (root): bench/cni.sh [runs]   -> writes bench/results/cni-<date>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-30}
REF=/usr/lib/cni
OURS=$ROOT/dist/bin
for p in bridge host-local loopback; do
  [ -x "$REF/$p" ] || { echo "missing $REF/$p" >&2; exit 1; }
done
node scripts/build.mjs bridge host-local loopback
command -v hyperfine >/dev/null || { echo "hyperfine is required" >&2; exit 1; }

P="kncnib$RANDOM"
WORK=$(mktemp -d /tmp/cni-bench.XXXXXX)
NAMESPACES=()
cleanup() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkns() { ip netns add "$1"; NAMESPACES+=("$1"); }

NODE=$P-node
mkns "$NODE"
for who in ref ours; do for c in masq nomasq lo; do mkns "$P-$who-$c"; done; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Configs: separate bridge, subnet, network name and store per (who, case).
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

# One invocation: run.sh <ref|ours> <plugin> <command> <case>; run.sh floor true|node.
cat > "$WORK/run.sh" <<EOF
#!/bin/bash
W='ip netns exec $NODE env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin'
case \$1 in
  reset) # back to the initial state: every attachment of every case deleted
    for who in ref ours; do
      for spec in 'bridge masq' 'bridge nomasq' 'host-local hl' 'loopback lo'; do
        set -- \$spec; bash "\$BASH_SOURCE" \$who \$1 DEL \$2 >/dev/null 2>&1 || true
      done
    done
    exit 0 ;;
  floor) [ "\$2" = node ] && exec \$W node -e 0 || exec \$W /bin/true ;;
  ref) BIN=$REF ;;
  ours) BIN=$OURS ;;
esac
pod=\$4; [ "\$4" = hl ] && pod=lo
exec \$W CNI_COMMAND=\$3 CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$P-\$1-\$pod CNI_IFNAME=eth0 CNI_PATH=\$BIN \$BIN/\$2 < $WORK/\$1-\$4.json > /dev/null
EOF
R="bash $WORK/run.sh"

# Sanity: every ADD succeeds and every DEL after it succeeds (no timing of error paths).
for who in ref ours; do
  for spec in "bridge masq" "bridge nomasq" "host-local hl" "loopback lo"; do
    set -- $spec
    $R "$who" "$1" ADD "$2" || { echo "sanity: $who $1 ADD ($2) failed" >&2; exit 1; }
    $R "$who" "$1" DEL "$2" || { echo "sanity: $who $1 DEL ($2) failed" >&2; exit 1; }
  done
done

# --cleanup (one for all commands in hyperfine 1.15) resets every case after each command's runs.
ARGS=(--warmup 3 --runs "$RUNS" --shell=none --cleanup "$R reset" --export-json "$WORK/hf.json" --export-markdown "$WORK/hf.md")
row() { # label who plugin case
  ARGS+=(--command-name "$1 ADD ($2)" --prepare "$R $2 $3 DEL $4" "$R $2 $3 ADD $4")
  ARGS+=(--command-name "$1 DEL ($2)" --prepare "$R $2 $3 ADD $4" "$R $2 $3 DEL $4")
}
# Floors first, so they are measured in the same conditions as the first rows.
ARGS+=(--command-name "wrapper only (/bin/true)" --prepare true "$R floor true")
ARGS+=(--command-name "node -e 0 (Node start-up floor)" --prepare true "$R floor node")
for who in ref ours; do row "bridge ipMasq=true" "$who" bridge masq; done
for who in ref ours; do row "bridge ipMasq=false" "$who" bridge nomasq; done
for who in ref ours; do row "host-local (empty store)" "$who" host-local hl; done
for who in ref ours; do row "loopback" "$who" loopback lo; done
hyperfine "${ARGS[@]}" >&2

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
STAMP=$(date -u +%Y-%m-%d)
OUT=bench/results/cni-$STAMP.md
{
  echo "# CNI plugins: reference vs ours"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: nproc $(nproc), kernel $(uname -r), node $(node --version), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), hyperfine $(hyperfine --version | cut -d' ' -f2)"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER (other engineers' test runs share the machine)"
  echo "- reference: $REF ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)); ours: dist/bin (commit $(git rev-parse --short HEAD))"
  echo "- command: bench/cni.sh $RUNS  (hyperfine --warmup 3 --runs $RUNS -N; --prepare = the opposite command of the same plugin; --cleanup = DEL of every case)"
  echo "- each command: \`ip netns exec <node> env -i PATH=… CNI_*=… <plugin> < conf.json\` via \`bash run.sh\`; bridge uses its host-local IPAM (ours runs our host-local in-process)"
  echo
  node bench/cni-report.mjs "$WORK/hf.json"
} > "$OUT"
echo "wrote $OUT" >&2
cat "$OUT"
