#!/usr/bin/env bash
# Runs both README commands on a stock Debian 12 (bookworm) with Debian's own
# Node 18 as the only Node: a debootstrapped tree (cached), chrooted in a
# private mount namespace with /proc, /sys and /dev mounted, holding a clean
# clone of this repository's HEAD. Nothing of the tree is mounted after it
# exits (the mount namespace goes with it). As root.
#
#   bash scripts/check-debian12.sh [--cache DIR] [--only setup|demo|test]
#
# The chroot shares this machine's network namespace, as a fresh machine
# would have its own: what the README commands do there is what they do on
# a user's machine (their tests and the demo create namespaces of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=$repo/.cache/debian12
only=all
while (($#)); do
  case $1 in
    --cache) cache=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--cache DIR] [--only setup|demo|test]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "check-debian12: run as root" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
base=$cache/base
if [ ! -x "$base/bin/bash" ]; then
  echo "check-debian12: debootstrap bookworm into $base (once)" >&2
  rm -rf "$base.tmp" && mkdir -p "$cache"
  debootstrap --variant=minbase --include=ca-certificates,git bookworm "$base.tmp" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  mv "$base.tmp" "$base"
fi
# A fresh copy of the base per run: set-up must start from nothing.
root=$cache/run
rm -rf "$root" && cp -a "$base" "$root"
trap 'rm -rf "$root"' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's own trust anchors (a TLS-inspecting egress proxy's CA, say)
# go into the tree, as a machine on the same network would have them; Debian's
# Node trusts the system store when told to, as the README's set-up does not
# need on an ordinary network.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
git clone -q "$repo" "$root/root/kube-netstack"
[ -d "$repo/../shared" ] && cp -a "$repo/../shared" "$root/root/shared"

case $only in
  all) steps='setup demo test' ;;
  *) steps=$only ;;
esac
inner=$(cat <<'EOS'
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
cd /root/kube-netstack
command -v node >/dev/null && { echo "check-debian12: a Node is already on PATH: $(command -v node)" >&2; exit 1; }
# Debian's own Node as the only Node: what a user installs first.
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
echo "check-debian12: Debian's Node is $(node --version), npm $(npm --version)"
for step in $STEPS; do
  start=$(date +%s)
  case $step in
    setup) bash scripts/setup.sh ;;
    demo) sed -n '/^```sh/,/^```/p' README.md | sed -n 2p | sed 's/#.*//' | bash ;;
    test) npm test ;;
  esac
  echo "check-debian12: $step passed in $(( $(date +%s) - start )) s"
done
EOS
)
unshare --mount --propagation private bash -c '
  set -e
  root=$1
  # The tree must be a mount point: `ip netns exec` remounts / (--make-rslave).
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/run"
  mount -t tmpfs tmpfs "$root/tmp"
  exec chroot "$root" /usr/bin/env -i STEPS="$3" CI=true bash -c "$2"
' check-debian12 "$root" "$inner" "$steps"
