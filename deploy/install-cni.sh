#!/bin/sh
# Installs kube-netstack's CNI plugins and the CNI network config on the node.
# Run by the DaemonSet's init containers with the host directories mounted
# under /host.
#
#   install-cni.sh plugins   kube-netstack-cni + flannel, bridge, host-local, loopback
#   install-cni.sh conf      the conflist (from the ConfigMap)
#
# The four plugins are one self-contained executable (compiled by Bun; the
# host needs nothing else) that runs the plugin it is started as. It is
# copied once into the CNI bin directory and each plugin name is a hard link
# to it. Every step is atomic: the executable is written to a temp name in
# the target directory and fsynced before any name points at it, and each
# name is switched by renaming a temp link over it, so the container runtime
# never sees a missing or half-written plugin, and a running plugin keeps
# its old inode. Nothing is rewritten when the installed copy is identical.
set -eu

SRC_DIR=${SRC_DIR:-/opt/kube-netstack/bin}
EXE=${EXE:-kube-netstack-cni}
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
CNI_CONF_DIR=${CNI_CONF_DIR:-/host/etc/cni/net.d}
CNI_CONF_SRC=${CNI_CONF_SRC:-/etc/kube-flannel/cni-conf.json}
CNI_CONF_NAME=${CNI_CONF_NAME:-10-flannel.conflist}
PLUGINS=${PLUGINS:-flannel bridge host-local loopback}

TMPFILES=
trap 'rm -f $TMPFILES' EXIT

# tmp_for <target>: sets TMP to a temp name beside the target (same
# directory, so the rename is atomic), removed on exit unless renamed into
# place. Not called in a subshell: TMPFILES must keep the name.
tmp_for() {
  TMP="$(dirname "$1")/.$(basename "$1").install.$$"
  TMPFILES="$TMPFILES $TMP"
}

# Temp files of an earlier run that was killed (SIGKILL skips the trap).
# By age, not pid: an install in another container has another pid namespace.
remove_stale_temps() {
  find "$1" -maxdepth 1 -name '.*.install.*' -mmin +10 -exec rm -f {} +
}

# write_temp <src> <dst> <mode>: copies src to TMP, a temp name beside dst,
# and fsyncs it.
write_temp() {
  tmp_for "$2"
  cat "$1" >"$TMP"
  chmod "$3" "$TMP"
  sync "$TMP"
}

# install_file <content-file> <target> <mode>: atomic replace unless identical.
install_file() {
  src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    echo "unchanged: $dst"
    return 0
  fi
  write_temp "$src" "$dst" "$mode"
  mv -f "$TMP" "$dst"
  echo "installed: $dst"
}

# same_file <a> <b>: both names are one inode (hard links).
same_file() {
  [ -e "$1" ] && [ -e "$2" ] && [ "$(stat -c '%d:%i' "$1")" = "$(stat -c '%d:%i' "$2")" ]
}

# link_name <file> <name>: make <name> a hard link to <file>, atomically.
link_name() {
  file=$1 name=$2
  if same_file "$file" "$name"; then
    echo "unchanged: $name"
    return 0
  fi
  tmp_for "$name"
  ln -f "$file" "$TMP"
  mv -f "$TMP" "$name"
  echo "installed: $name -> $EXE"
}

install_plugins() {
  if [ ! -f "$SRC_DIR/$EXE" ]; then
    echo "install-cni: $SRC_DIR/$EXE does not exist" >&2
    exit 1
  fi
  mkdir -p "$CNI_BIN_DIR"
  remove_stale_temps "$CNI_BIN_DIR"
  dst="$CNI_BIN_DIR/$EXE"
  if [ -f "$dst" ] && cmp -s "$SRC_DIR/$EXE" "$dst"; then
    exe=$dst
  else
    # The new executable is complete and on disk under its temp name before
    # any plugin name points at it; $EXE itself is renamed last.
    write_temp "$SRC_DIR/$EXE" "$dst" 0755
    exe=$TMP
  fi
  for p in $PLUGINS; do
    link_name "$exe" "$CNI_BIN_DIR/$p"
  done
  if [ "$exe" != "$dst" ]; then
    mv -f "$exe" "$dst"
    echo "installed: $dst"
  else
    echo "unchanged: $dst"
  fi
  sync "$CNI_BIN_DIR"
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
