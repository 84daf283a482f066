#!/bin/bash
# Checks the renderers' golden files against the real kernel and tools, in
# a network namespace made for the purpose (never the machine's own):
#   *.full.nft     nft -c -f (check mode) on an empty namespace;
#   <case>.update.nft  apply <case>.prev.nft, check and apply the update, and
#                  compare the resulting table with <case>.next.nft applied
#                  from scratch (element order normalised);
#   *.full.ipt     ipset restore, then iptables-restore / ip6tables-restore --test;
#   <case>.update.ipt  as for nft: prev + update must equal next (iptables-save, ipset save).
# Usage (root): netpolicy/render/check-syntax.sh
set -euo pipefail
cd "$(dirname "$0")/testdata"
NS="kn-np-$RANDOM$RANDOM"
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
in_ns() { ip netns exec "$NS" "$@"; }
# One element per line, sorted: hash sets list in no fixed order.
listing() { in_ns nft list table inet netpolicy | sed 's/[{},]/\n/g' | sed 's/^[[:space:]]*//' | grep -v '^$' | sort; }
fail=0
n=0
for f in *.full.nft; do
  in_ns nft flush ruleset
  if in_ns nft -c -f "$f"; then n=$((n + 1)); else echo "FAIL (check): $f"; fail=1; fi
done
for u in *.update.nft; do
  c=${u%.update.nft}
  in_ns nft flush ruleset
  in_ns nft -f "$c.next.nft"
  want=$(listing)
  in_ns nft flush ruleset
  in_ns nft -f "$c.prev.nft"
  if [ -s "$u" ]; then
    if ! in_ns nft -c -f "$u"; then echo "FAIL (check): $u"; fail=1; continue; fi
    in_ns nft -f "$u"
  fi
  got=$(listing)
  if [ "$want" != "$got" ]; then
    echo "FAIL (prev + update != next): $c"
    diff <(echo "$want") <(echo "$got") || true
    fail=1
  else n=$((n + 1)); fi
done
# iptables + ipset: one .ipt file per sync, a section per tool.
section() { awk -v want="$2" '/^### /{on = index($0, want) == 5; next} on' "$1"; }
ipt_apply() { # file [--test]: ipset before, iptables, ip6tables, ipset after
  local test=${2:-}
  section "$1" 'ipset restore (before' | in_ns ipset restore
  section "$1" 'iptables-restore' | in_ns iptables-restore --noflush $test
  section "$1" 'ip6tables-restore' | in_ns ip6tables-restore --noflush $test
  [ -n "$test" ] || section "$1" 'ipset restore (after' | in_ns ipset restore
}
ipt_clean() { for t in iptables ip6tables; do in_ns $t -F; in_ns $t -X; done; in_ns ipset destroy; }
# Chains sorted, rules kept in order within each chain; sets' entries sorted.
ipt_listing() {
  for t in iptables-save ip6tables-save; do
    in_ns $t -t filter | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]//' | grep '^:' | sort
    in_ns $t -t filter | grep '^-A' | sort -s -k2,2
  done
  in_ns ipset save | sed 's/ initval 0x[0-9a-f]*//' | sort
}
for f in *.full.ipt; do
  ipt_clean
  if ipt_apply "$f" --test; then n=$((n + 1)); else echo "FAIL (ipset/iptables-restore --test): $f"; fail=1; fi
done
for u in *.update.ipt; do
  c=${u%.update.ipt}
  ipt_clean; ipt_apply "$c.next.ipt"; want=$(ipt_listing)
  ipt_clean; ipt_apply "$c.prev.ipt"
  # Check the rules first (with the new sets in place), then apply for real.
  section "$u" 'ipset restore (before' | in_ns ipset restore
  for t in iptables ip6tables; do
    if ! section "$u" "$t-restore" | in_ns $t-restore --noflush --test; then echo "FAIL ($t-restore --test): $u"; fail=1; fi
    section "$u" "$t-restore" | in_ns $t-restore --noflush
  done
  section "$u" 'ipset restore (after' | in_ns ipset restore
  got=$(ipt_listing)
  if [ "$want" != "$got" ]; then
    echo "FAIL (prev + update != next): $c (iptables)"
    diff <(echo "$want") <(echo "$got") || true
    fail=1
  else n=$((n + 1)); fi
done
ipt_clean
echo "checked $n files in netns $NS: $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
