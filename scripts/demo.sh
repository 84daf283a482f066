#!/usr/bin/env bash
# Demo: one node namespace, two pod namespaces attached through our bridge +
# host-local + loopback plugins (dist/bin), a ping between the pods, then
# everything removed again. Touches nothing outside the namespaces it makes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh

p="kndemo$$"
node_ns="$p-node"; pods=("$p-pod1" "$p-pod2")
tmp=$(mktemp -d); cni_bin="$tmp/bin"; mkdir -p "$cni_bin"
# The plugins cache their native addons in /run/kube-netstack; remove it
# again afterwards if this demo is what created it.
cache_existed=0; [ -e /run/kube-netstack ] && cache_existed=1
cp dist/bin/bridge dist/bin/host-local dist/bin/loopback "$cni_bin/"

cleanup() {
  set +e
  for i in 0 1; do
    for plugin in bridge loopback; do
      [ -e "/var/run/netns/${pods[$i]}" ] || continue
      ip netns exec "$node_ns" env CNI_COMMAND=DEL CNI_CONTAINERID="demo$i" CNI_NETNS="/var/run/netns/${pods[$i]}" \
        CNI_IFNAME=$([ $plugin = bridge ] && echo eth0 || echo lo) CNI_PATH="$cni_bin" "$cni_bin/$plugin" < "$tmp/$plugin.json" >/dev/null 2>&1
    done
  done
  for n in "${pods[@]}" "$node_ns"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$tmp"
  [ "$cache_existed" = 1 ] || rm -rf /run/kube-netstack
}
trap cleanup EXIT

cat > "$tmp/bridge.json" <<JSON
{"cniVersion":"1.1.0","name":"demo","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"hairpinMode":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$tmp/ipam"}}
JSON
echo '{"cniVersion":"1.1.0","name":"demo-lo","type":"loopback"}' > "$tmp/loopback.json"

ip netns add "$node_ns"
for n in "${pods[@]}"; do ip netns add "$n"; done

declare -a ips
for i in 0 1; do
  echo "== ADD pod$((i+1)) (loopback + bridge/host-local)"
  ip netns exec "$node_ns" env CNI_COMMAND=ADD CNI_CONTAINERID="demo$i" CNI_NETNS="/var/run/netns/${pods[$i]}" \
    CNI_IFNAME=lo CNI_PATH="$cni_bin" "$cni_bin/loopback" < "$tmp/loopback.json" >/dev/null
  out=$(ip netns exec "$node_ns" env CNI_COMMAND=ADD CNI_CONTAINERID="demo$i" CNI_NETNS="/var/run/netns/${pods[$i]}" \
    CNI_IFNAME=eth0 CNI_PATH="$cni_bin" "$cni_bin/bridge" < "$tmp/bridge.json")
  echo "$out"
  ips[$i]=$(node -e 'const r=JSON.parse(process.argv[1]); process.stdout.write(r.ips[0].address.split("/")[0])' "$out")
done

echo "== node: $(ip -n "$node_ns" -br addr show cni0)"
echo "== ping pod1 (${ips[0]}) -> pod2 (${ips[1]})"
ip netns exec "${pods[0]}" ping -c 3 -i 0.2 -W 2 "${ips[1]}"
echo "== demo passed; removing everything"
