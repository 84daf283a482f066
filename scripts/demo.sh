#!/usr/bin/env bash
# Demo: one node namespace, two pod namespaces attached through our bridge +
# host-local + loopback plugins, a ping between the pods, then everything
# removed again. Touches nothing outside the namespaces and the temp
# directory it makes.
#
# The plugins are installed as on a node: deploy/install-cni.sh puts
# dist/bin/kube-netstack-cni into a CNI bin directory once and links each
# plugin name to it. bridge then finds host-local in CNI_PATH as the same
# file it runs from and does the IPAM in its own process; a copy would be
# another file, run as a second process.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh

p="kndemo$$"
node_ns="$p-node"; pods=("$p-pod1" "$p-pod2")
tmp=$(mktemp -d); cni_bin="$tmp/bin"

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
}
trap cleanup EXIT

echo "== install the plugins into $cni_bin"
SRC_DIR=dist/bin CNI_BIN_DIR="$cni_bin" PLUGINS="bridge host-local loopback" sh deploy/install-cni.sh plugins

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
