#!/bin/sh
# Installs kube-netstack's CNI plugins and the CNI network config on the node.
# Run by the DaemonSet's init containers with the host directories mounted
# under /host.
#
#   install-cni.sh plugins   node runtime + flannel, bridge, host-local, loopback
#   install-cni.sh conf      the conflist (from the ConfigMap)
#
# Every file is written to a temp file beside its target and renamed over it,
# so the container runtime never sees (or executes) a half-written file, and a
# running plugin keeps its old inode. Files whose content is unchanged are left
# alone. Our plugins are single-file Node.js programs: their shebang is rewritten
# to a node binary installed on the host, because the runtime executes them on
# the host, where `node` is usually not on PATH.
set -eu

SRC_DIR=${SRC_DIR:-/opt/kube-netstack/bin}
NODE_SRC=${NODE_SRC:-$(command -v node)}
# Where the host's /opt/kube-netstack is mounted here, and the node binary's path as the host sees it.
HOST_NODE_DIR=${HOST_NODE_DIR:-/host/opt/kube-netstack}
HOST_NODE_PATH=${HOST_NODE_PATH:-/opt/kube-netstack/node}
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
CNI_CONF_DIR=${CNI_CONF_DIR:-/host/etc/cni/net.d}
CNI_CONF_SRC=${CNI_CONF_SRC:-/etc/kube-flannel/cni-conf.json}
CNI_CONF_NAME=${CNI_CONF_NAME:-10-flannel.conflist}
PLUGINS=${PLUGINS:-flannel bridge host-local loopback}

TMPFILES=
trap 'rm -f $TMPFILES' EXIT

# install <content-file> <target> <mode>: atomic replace unless identical.
install_file() {
  src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    echo "unchanged: $dst"
    return 0
  fi
  tmp="$(dirname "$dst")/.$(basename "$dst").install.$$"
  TMPFILES="$TMPFILES $tmp"
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  sync "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$dst"
  echo "installed: $dst"
}

install_plugins() {
  mkdir -p "$HOST_NODE_DIR" "$CNI_BIN_DIR"
  install_file "$NODE_SRC" "$HOST_NODE_DIR/$(basename "$HOST_NODE_PATH")" 0755
  staged=$(mktemp)
  TMPFILES="$TMPFILES $staged"
  for p in $PLUGINS; do
    if [ ! -f "$SRC_DIR/$p" ]; then
      echo "install-cni: $SRC_DIR/$p does not exist" >&2
      exit 1
    fi
    # Line 1 is the shebang; line 2 the plugin marker, which must stay in the first 256 bytes.
    { echo "#!$HOST_NODE_PATH"; tail -n +2 "$SRC_DIR/$p"; } >"$staged"
    install_file "$staged" "$CNI_BIN_DIR/$p" 0755
  done
}

install_conf() {
  mkdir -p "$CNI_CONF_DIR"
  install_file "$CNI_CONF_SRC" "$CNI_CONF_DIR/$CNI_CONF_NAME" 0644
}

case "${1:-}" in
  plugins) install_plugins ;;
  conf) install_conf ;;
  *)
    echo "usage: install-cni.sh plugins|conf" >&2
    exit 2
    ;;
esac
