#!/bin/bash
# Masquerade setup+teardown: our iptables-restore transactions vs the
# reference plugin's sequence of single iptables commands (go-iptables:
# -S, -N, -C/-A x3 on ADD; -D x2, -N/-F, -X on DEL), inside a throwaway netns.
# Usage (root): bench/ipmasq.sh [runs]   -> prints markdown; hyperfine required.
# Time the plugins in the environment a container runtime gives them, with
# no inherited variables (NODE_EXTRA_CA_CERTS, for one, makes every Node
# start read a CA bundle: ~40 ms here).
if [ -z "${KN_BENCH_CLEAN_ENV:-}" ]; then
  exec env -i KN_BENCH_CLEAN_ENV=1 PATH="$PATH" HOME="${HOME:-/root}" bash "$0" "$@"
fi
set -euo pipefail
RUNS=${1:-50}
cd "$(dirname "$0")/.."
NS="ipmbench-$RANDOM$RANDOM"
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
NSP=/var/run/netns/$NS
npx --no-install esbuild bench/ipmasq.loop.ts --bundle --platform=node --format=esm --outfile="$TMP/loop.mjs" --log-level=warning
node "$TMP/loop.mjs" texts "$NSP" "$TMP"

CHAIN=CNI-54702c499765f12e03e54a3e
C='name: "rcninet" id: "ctr1"'
cat > "$TMP/reference.sh" <<REF
ipt() { iptables -t nat "\$@" --wait; }
ipt -S >/dev/null
ipt -N $CHAIN
ipt -C $CHAIN -d 10.99.0.2/24 -j ACCEPT -m comment --comment '$C' 2>/dev/null || ipt -A $CHAIN -d 10.99.0.2/24 -j ACCEPT -m comment --comment '$C'
ipt -C $CHAIN ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment '$C' 2>/dev/null || ipt -A $CHAIN ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment '$C'
ipt -C POSTROUTING -s 10.99.0.2 -j $CHAIN -m comment --comment '$C' 2>/dev/null || ipt -A POSTROUTING -s 10.99.0.2 -j $CHAIN -m comment --comment '$C'
ipt -D POSTROUTING -s 10.99.0.2 -j $CHAIN -m comment --comment '$C'
ipt -D POSTROUTING -s 10.99.0.2/24 -j $CHAIN -m comment --comment '$C' 2>/dev/null || true
ipt -N $CHAIN 2>/dev/null || ipt -F $CHAIN
ipt -X $CHAIN
REF
cat > "$TMP/ours-iptables.sh" <<OURS
iptables-save -t nat >/dev/null
iptables-restore --wait --noflush < $TMP/ipt-setup.txt
iptables-save -t nat >/dev/null
iptables-restore --wait --noflush < $TMP/ipt-teardown.txt
ip6tables-save -t nat >/dev/null
nft -j list table inet cni_plugins_masquerade >/dev/null 2>&1 || nft -j list tables inet >/dev/null
OURS
cat > "$TMP/ours-nft.sh" <<OURS
nft -j list table inet cni_plugins_masquerade >/dev/null 2>&1 || nft -j list tables inet >/dev/null
nft -f $TMP/nft-setup.txt
iptables-save -t nat >/dev/null
ip6tables-save -t nat >/dev/null
h=\$(nft -a list chain inet cni_plugins_masquerade masq_checks | sed -n 's/.*masquerade comment.* # handle \\([0-9]*\\)\$/\\1/p')
echo "delete rule inet cni_plugins_masquerade masq_checks handle \$h" | nft -f -
OURS

echo "## ipMasq setup+teardown, one IPv4 address ($(date -u +%F))"
echo
echo "- machine: $(uname -srm), $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- tools: $(iptables --version), $(nft --version | cut -d' ' -f1-2), hyperfine $(hyperfine --version | cut -d' ' -f2), node $(node --version)"
echo "- command: \`bench/ipmasq.sh $RUNS\` (all commands inside netns $NS via \`ip netns exec\`)"
echo
echo "### Process sequences (hyperfine, $RUNS runs)"
echo
echo "Our input texts:"
echo; echo '```'; cat "$TMP/ipt-setup.txt" "$TMP/ipt-teardown.txt"; echo '```'; echo
hyperfine --style none --warmup 3 --runs "$RUNS" --export-markdown "$TMP/h.md" -N \
  -n 'reference: 13 iptables processes' "ip netns exec $NS bash $TMP/reference.sh" \
  -n 'ours iptables: save+restore x2 (+ip6 save, nft list for DEL of both backends)' "ip netns exec $NS bash $TMP/ours-iptables.sh" \
  -n 'ours nftables: list+nft -f x2 (+iptables-save x2 for DEL of both backends; teardown handle via nft -a list + sed)' "ip netns exec $NS bash $TMP/ours-nft.sh" \
  -n 'baseline: ip netns exec bash (empty script)' "ip netns exec $NS bash -c :" >/dev/null
cat "$TMP/h.md"
echo
echo "### Our code in-process (RealIptables/RealNft, one nsenter+tool child per call)"
echo
echo '```'
node "$TMP/loop.mjs" loop "$NSP" "$RUNS" iptables
node "$TMP/loop.mjs" loop "$NSP" "$RUNS" nftables
echo '```'
echo
echo "Leftover state check (must be empty):"
echo '```'
ip netns exec "$NS" iptables-save -t nat | grep -E '^-A' || true
ip netns exec "$NS" nft list table inet cni_plugins_masquerade | grep 'masquerade comment' || true
echo '```'
