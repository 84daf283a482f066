#!/usr/bin/env bash
# Lays out the image's own files (everything deploy/Dockerfile adds on top of
# Debian's packages) as a directory tree:
#
#   scripts/image-tree.sh --arch amd64|arm64 --out DIR [--bin DIR]
#
# The Dockerfile runs this script, so the image and test/deploy/image-tree.test.ts
# check the same tree. It takes the build of that architecture (dist/bin for
# the build host's, dist/linux-<arch>/bin for another: `npm run build`,
# `npm run build:arm64`; or --bin, a `scripts/build.mjs --out DIR`) and writes:
#
#   /opt/kube-netstack/bin/   kube-netstack-cni, flanneld, kube-proxy, netpolicy,
#                             netstack and node (the pinned node-linux-<arch>)
#   /opt/bin/flanneld         upstream flannel image's path
#   /opt/bin/install-conf     upstream's `install-conf SRC DEST` (atomic conflist copy)
#   /flannel                  upstream flannel-cni-plugin image's path, which its
#                             init container copies: `cp -f /flannel /opt/cni/bin/flannel`
#   /usr/local/bin/kube-proxy the kube-proxy image's path (kubeadm's DaemonSet runs it)
#   /usr/local/bin/node       the project's Node, first on the image's PATH
#
# The upstream paths are relative symlinks into /opt/kube-netstack/bin (the
# tree works in place, not only as /), and each directory holding a daemon
# link also has a `node` link: the daemons' launcher runs the node beside it.
# The plugin names (bridge, host-local, loopback) are linked on the host by
# `netstack install-cni`, not here.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() { echo "usage: scripts/image-tree.sh --arch amd64|arm64 --out DIR [--bin DIR]" >&2; exit 2; }
arch= out= bin=
while (($#)); do
  case $1 in
    --arch) arch=${2:-}; shift 2 || usage ;;
    --out) out=${2:-}; shift 2 || usage ;;
    --bin) bin=${2:-}; shift 2 || usage ;;
    *) usage ;;
  esac
done
[ -n "$arch" ] && [ -n "$out" ] || usage
case $arch in
  amd64) node_arch=x64 ;;
  arm64) node_arch=arm64 ;;
  *) echo "image-tree: --arch must be amd64 or arm64 (Docker's TARGETARCH), not $arch" >&2; exit 2 ;;
esac

# The build of that architecture: dist/bin when it is the build host's.
host_arch=$(uname -m)
case $host_arch in x86_64) host_arch=x64 ;; aarch64) host_arch=arm64 ;; esac
if [ -z "$bin" ]; then
  if [ "$node_arch" = "$host_arch" ]; then bin=$repo/dist/bin; else bin=$repo/dist/linux-$node_arch/bin; fi
fi
executables=(kube-netstack-cni flanneld kube-proxy netpolicy netstack node)
for e in "${executables[@]}"; do
  if [ ! -f "$bin/$e" ]; then
    build="npm run build"; [ "$bin" = "$repo/dist/bin" ] || build="node scripts/build.mjs --arch $node_arch"
    echo "image-tree: $bin/$e is missing; build it first: $build" >&2
    exit 1
  fi
done
# The build links its Node for the arch beside the daemons; make sure it is that arch's.
case $(od -An -tx1 -j18 -N2 "$bin/node" | tr -d ' \n') in
  3e00) got=x64 ;; b700) got=arm64 ;; *) got=unknown ;;
esac
if [ "$got" != "$node_arch" ]; then
  echo "image-tree: $bin/node is a $got executable, not $node_arch" >&2
  exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
# A fresh tree every time: nothing of an earlier layout survives in the image.
rm -rf "$out/opt/kube-netstack" "$out/opt/bin" "$out/flannel" "$out/usr/local/bin/kube-proxy" "$out/usr/local/bin/node"
install -d -m 0755 "$out/opt/kube-netstack/bin" "$out/opt/bin" "$out/usr/local/bin"
for e in "${executables[@]}"; do
  install -m 0755 "$bin/$e" "$out/opt/kube-netstack/bin/$e"
done

# upstream's install-conf: `install-conf SRC DEST`, through the one implementation.
cat >"$out/opt/bin/install-conf" <<'EOF'
#!/bin/sh
# flannel's /opt/bin/install-conf SRC DEST (upstream kube-flannel.yml's
# install-cni init container): atomically installs the conflist SRC as DEST,
# through `netstack install-cni`.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 <src> <dest>" >&2
  exit 1
fi
here=$(dirname "$(readlink -f "$0")")
exec "$here/../kube-netstack/bin/netstack" install-cni --skip-plugins \
  --conf-source "$1" --conf-dir "$(dirname "$2")" --conf-name "$(basename "$2")"
EOF
chmod 0755 "$out/opt/bin/install-conf"

ln -s ../kube-netstack/bin/flanneld "$out/opt/bin/flanneld"
ln -s ../kube-netstack/bin/node "$out/opt/bin/node"
ln -s opt/kube-netstack/bin/kube-netstack-cni "$out/flannel"
ln -s ../../../opt/kube-netstack/bin/kube-proxy "$out/usr/local/bin/kube-proxy"
ln -s ../../../opt/kube-netstack/bin/node "$out/usr/local/bin/node"

echo "image-tree: $out ($arch): $(du -sh "$out/opt/kube-netstack" | cut -f1) in /opt/kube-netstack" >&2
