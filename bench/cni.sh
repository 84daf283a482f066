#!/usr/bin/env bash
# Side-by-side timing of the CNI plugins: the reference (/usr/lib/cni, Debian
# containernetworking-plugins, Go) and ours (dist/bin: one Bun-compiled
# multi-call executable, kube-netstack-cni, with bridge/host-local/loopback/
# flannel as hard links), in ONE hyperfine run, ref and ours alternating:
#   bridge ADD / DEL with ipMasq true and false (bridge + host-local IPAM),
#   host-local ADD / DEL on an empty store, loopback ADD / DEL,
#   our flannel ADD / DEL (delegating to our bridge + host-local in-process)
#   against the reference bridge + host-local ADD / DEL of the same shape,
#   and the floors: the invocation wrapper alone (/bin/true) and a compiled
#   Bun hello-world (same `bun build --compile` options and baseline runtime
#   binary as scripts/build.mjs) through the same wrapper (Bun start-up).
# Then the peak RSS of one bridge ADD (ipMasq on) for each side, from
# /usr/bin/time -f %M (max RSS of the plugin and its waited-for children).
# Every plugin runs as a runtime would start it: `ip netns exec <node> env -i
# PATH=… CNI_*=… <plugin> < config` inside a node namespace this script
# creates (pods too); each ADD is prepared by the same plugin's DEL and each
# DEL by its ADD, so every timed run starts from the same state.
# The goals are issue 7's; each row says met or missed.
# Usage (root): bench/cni.sh [runs]   -> writes bench/results/cni-<date>.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-30}
RSS_RUNS=${RSS_RUNS:-15}
REF=/usr/lib/cni
OURS=$ROOT/dist/bin
for p in bridge host-local loopback; do
  [ -x "$REF/$p" ] || { echo "missing $REF/$p" >&2; exit 1; }
done
node scripts/build.mjs kube-netstack-cni
command -v hyperfine >/dev/null || { echo "hyperfine is required" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is required (Debian package time)" >&2; exit 1; }

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
for who in ref ours; do for c in masq nomasq lo fl; do mkns "$P-$who-$c"; done; done

# The Bun start-up floor: a hello-world compiled like the plugins (scripts/build.mjs
# compilePlugins: baseline x86-64 runtime, minify, bytecode, CommonJS).
BUN_RUNTIME=""
for d in node_modules/@oven/bun-linux-x64-baseline node_modules/.cache/targets/@oven/bun-linux-x64-baseline; do
  [ -x "$d/bin/bun" ] && { BUN_RUNTIME=$d/bin/bun; break; }
done
[ -n "$BUN_RUNTIME" ] || { echo "no @oven/bun-linux-x64-baseline runtime (run scripts/setup.sh)" >&2; exit 1; }
# fs.writeSync, as the plugins write (lib/skel): Bun's process.stdout stream alone
# costs ~30 ms of start-up on this machine, which no plugin pays.
echo 'require("node:fs").writeSync(1, "hello\n");' > "$WORK/hello.ts"
(cd "$WORK" && "$ROOT/node_modules/.bin/bun" build --compile --target=bun-linux-x64-baseline \
  --compile-executable-path "$ROOT/$BUN_RUNTIME" --minify --bytecode --format=cjs \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig hello.ts --outfile "$WORK/hello" >/dev/null)
"$WORK/hello" >/dev/null

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
# Our flannel (as in test/netns/flannel-cni.test.ts): subnet.env of the node;
# FLANNEL_IPMASQ=true makes the delegate bridge's ipMasq false, so its
# reference is "bridge ipMasq=false (ref)" plus a flannel-shaped reference
# bridge ADD (the delegate config flannel writes: cbr-like bridge, MTU,
# hairpin, default gateway, routes to FLANNEL_NETWORK).
printf 'FLANNEL_NETWORK=10.114.0.0/16\nFLANNEL_SUBNET=10.114.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n' > "$WORK/subnet.env"
printf '{"cniVersion":"0.3.1","name":"flours","type":"flannel","subnetFile":"%s/subnet.env","dataDir":"%s/flannel","delegate":{"bridge":"bflours","hairpinMode":true,"isDefaultGateway":true},"ipam":{"dataDir":"%s/data"}}' \
  "$WORK" "$WORK" "$WORK" > "$WORK/ours-fl.json"
printf '{"cniVersion":"0.3.1","name":"flref","type":"bridge","bridge":"bflref","mtu":1400,"hairpinMode":true,"isGateway":true,"isDefaultGateway":true,"ipMasq":false,"ipam":{"type":"host-local","subnet":"10.115.7.0/24","routes":[{"dst":"10.115.0.0/16"}],"dataDir":"%s/data"}}' \
  "$WORK" > "$WORK/ref-fl.json"

# One invocation: run.sh <ref|ours> <plugin> <command> <case>; run.sh floor true|bun;
# run.sh rss <ref|ours> (one bridge ADD ipMasq=true under /usr/bin/time, prints KiB).
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
    bash "\$BASH_SOURCE" ours flannel DEL fl >/dev/null 2>&1 || true
    bash "\$BASH_SOURCE" ref bridge DEL fl >/dev/null 2>&1 || true
    exit 0 ;;
  floor) [ "\$2" = bun ] && exec \$W $WORK/hello || exec \$W /bin/true ;;
  rss) BIN=$REF; [ "\$2" = ours ] && BIN=$OURS
    exec ip netns exec $NODE /usr/bin/time -f %M -o $WORK/rss.one env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=ADD CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$P-\$2-masq CNI_IFNAME=eth0 CNI_PATH=\$BIN \$BIN/bridge < $WORK/\$2-masq.json > /dev/null ;;
  ref) BIN=$REF ;;
  ours) BIN=$OURS ;;
esac
pod=\$4; [ "\$4" = hl ] && pod=lo
exec \$W CNI_COMMAND=\$3 CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$P-\$1-\$pod CNI_IFNAME=eth0 CNI_PATH=\$BIN \$BIN/\$2 < $WORK/\$1-\$4.json > /dev/null
EOF
R="bash $WORK/run.sh"

# Sanity: every ADD succeeds and every DEL after it succeeds (no timing of error paths).
SPECS=("ref bridge masq" "ours bridge masq" "ref bridge nomasq" "ours bridge nomasq" "ref host-local hl" "ours host-local hl" "ref loopback lo" "ours loopback lo" "ref bridge fl" "ours flannel fl")
for spec in "${SPECS[@]}"; do
  set -- $spec
  $R "$1" "$2" ADD "$3" || { echo "sanity: $1 $2 ADD ($3) failed" >&2; exit 1; }
  $R "$1" "$2" DEL "$3" || { echo "sanity: $1 $2 DEL ($3) failed" >&2; exit 1; }
done

# --cleanup (one for all commands in hyperfine 1.15) resets every case after each command's runs.
ARGS=(--warmup 3 --runs "$RUNS" --shell=none --cleanup "$R reset" --export-json "$WORK/hf.json" --export-markdown "$WORK/hf.md")
row() { # label who plugin case
  ARGS+=(--command-name "$1 ADD ($2)" --prepare "$R $2 $3 DEL $4" "$R $2 $3 ADD $4")
  ARGS+=(--command-name "$1 DEL ($2)" --prepare "$R $2 $3 ADD $4" "$R $2 $3 DEL $4")
}
# Floors first, so they are measured in the same conditions as the first rows.
ARGS+=(--command-name "wrapper only (/bin/true)" --prepare true "$R floor true")
ARGS+=(--command-name "compiled Bun hello-world (Bun start-up floor)" --prepare true "$R floor bun")
for who in ref ours; do row "bridge ipMasq=true" "$who" bridge masq; done
for who in ref ours; do row "bridge ipMasq=false" "$who" bridge nomasq; done
for who in ref ours; do row "host-local (empty store)" "$who" host-local hl; done
for who in ref ours; do row "loopback" "$who" loopback lo; done
row "flannel-shaped bridge" ref bridge fl
row "flannel → bridge + host-local" ours flannel fl
hyperfine "${ARGS[@]}" >&2

# Peak RSS of one ADD, alternating ref and ours (each run after a DEL).
$R reset
: > "$WORK/rss.txt"
for i in $(seq "$RSS_RUNS"); do
  for who in ref ours; do
    $R rss "$who"
    echo "$who $(tail -n1 "$WORK/rss.one")" >> "$WORK/rss.txt"
    $R "$who" bridge DEL masq
  done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
STAMP=$(date -u +%Y-%m-%d)
OUT=bench/results/cni-$STAMP.md
{
  echo "# CNI plugins: reference vs ours"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: nproc $(nproc), kernel $(uname -r), bun $("$ROOT/node_modules/.bin/bun" --version) (runtime $BUN_RUNTIME), CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), hyperfine $(hyperfine --version | cut -d' ' -f2)"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $LOAD_AFTER (other engineers' test runs share the machine)"
  echo "- reference: $REF ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)); ours: dist/bin/kube-netstack-cni, Bun-compiled (commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- plugins lib || echo ', with uncommitted changes'))"
  echo "- command: bench/cni.sh $RUNS  (hyperfine --warmup 3 --runs $RUNS -N; --prepare = the opposite command of the same plugin; --cleanup = DEL of every case); peak RSS: $RSS_RUNS alternating ADDs each"
  echo "- each command: \`ip netns exec <node> env -i PATH=… CNI_*=… <plugin> < conf.json\` via \`bash run.sh\`; bridge uses its host-local IPAM (ours runs our host-local in-process; the reference forks it)"
  echo
  node bench/cni-report.mjs "$WORK/hf.json" "$WORK/rss.txt"
} > "$OUT"
echo "wrote $OUT" >&2
cat "$OUT"
