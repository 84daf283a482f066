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

# Platform packages of the other build targets. The CNI plugins are compiled
# with the Bun runtime of each target (baseline x86-64, aarch64) and the
# daemons embed koffi's addon for theirs. npm installs only the host's
# platform packages (the others' os/cpu fields differ), so the rest are
# fetched with `npm pack` at the version and integrity package-lock.json
# records, and unpacked where scripts/build.mjs looks:
# node_modules/.cache/targets/<package>/. Offline once npm's cache has them.
# fetch_target <package> <file it must hold>: the file is what the build uses
# (bun's postinstall may have moved an installed package's binary away).
fetch_target() {
  local pkg=$1 file=$2 dest=node_modules/.cache/targets/$1
  [ -f "node_modules/$pkg/$file" ] && return 0
  [ -f "$dest/$file" ] && return 0
  local version integrity tmp tgz got
  read -r version integrity < <(node -e '
    const e = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
    if (!e || !e.integrity) { console.error(`setup: ${process.argv[1]} is not in package-lock.json`); process.exit(1); }
    console.log(e.version, e.integrity);' "$pkg")
  tmp=$(mktemp -d)
  tgz=$(npm pack --silent --pack-destination "$tmp" "$pkg@$version")
  got=$(node -e 'const h = require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1]));
    console.log("sha512-" + h.digest("base64"))' "$tmp/$tgz")
  if [ "$got" != "$integrity" ]; then
    echo "setup: $pkg@$version: integrity $got does not match package-lock.json ($integrity)" >&2
    rm -rf "$tmp"; exit 1
  fi
  mkdir -p "$tmp/x" "$(dirname "$dest")"
  tar -xzf "$tmp/$tgz" -C "$tmp/x"
  rm -rf "$dest" && mv "$tmp/x/package" "$dest"
  rm -rf "$tmp"
  echo "setup: $pkg@$version unpacked to $dest" >&2
}
fetch_target @oven/bun-linux-x64-baseline bin/bun
fetch_target @oven/bun-linux-aarch64 bin/bun
fetch_target @koromix/koffi-linux-x64 linux_x64/koffi.node
fetch_target @koromix/koffi-linux-arm64 linux_arm64/koffi.node
npm run build
