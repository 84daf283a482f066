#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (as root),
# then installs npm dependencies and builds dist/bin/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
pkgs=(iproute2 iptables nftables ipset conntrack etcd-server etcd-client iperf3
      containernetworking-plugins hyperfine kmod iputils-ping util-linux strace procps)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server may start a system etcd in the root namespace; the tests
# start their own inside test namespaces and never use it.
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then :; else
  echo "setup: Node.js 20+ is required" >&2; exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund
fi
npm run build
