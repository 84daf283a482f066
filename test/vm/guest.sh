# Stage 2 of the test VM, run by init.sh chrooted into this machine's / (a
# read-only 9p mount; /run is already a tmpfs and /run/kn-vm the run's
# writable share). It makes the writable places a test needs, loads the
# kernel modules from the kernel cache, runs the command the host wrote to
# cmd.sh, and leaves stdout, stderr and the exit code in the share.
set -u
OUT=/run/kn-vm
. "$OUT/vm.env"

mark() { echo "$1 $(cut -d' ' -f1 /proc/uptime)" >> "$OUT/times"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=1777 tmp /tmp
[ -d /var/tmp ] && mount -t tmpfs -o mode=1777 vartmp /var/tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /run/netns /run/lock /tmp/home
mark mounts

# Modules come from the cache, never from this machine's /lib/modules (the
# kernel's own requests too: init.sh points them at $OUT/modprobe).
# shellcheck disable=SC2086
/usr/sbin/modprobe -a -d "$KN_VM_MODDIR" -S "$KN_VM_KVER" $KN_VM_MODULES 2> "$OUT/modprobe.err" ||
  echo "modprobe failed: $(cat "$OUT/modprobe.err")" > /dev/console
ip link set lo up
mark modules

# The host kills qemu at its timeout; this one also ends a VM whose host
# process died, so no orphaned qemu runs on.
timeout -k 10 "${KN_VM_TIMEOUT_S:-86400}" /bin/sh "$OUT/cmd.sh" > "$OUT/stdout" 2> "$OUT/stderr" < /dev/null
echo "$?" > "$OUT/rc"
mark command
sync
