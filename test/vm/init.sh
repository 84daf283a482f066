#!/bin/busybox sh
# PID 1 of the test VM (busybox-static, in the initramfs). It loads the
# virtio and 9p modules that are packed beside it, mounts this machine's /
# read-only over 9p (tag "root") and the run's writable share (tag "out") at
# /run/kn-vm inside it, then runs the stage-2 script guest.sh chrooted into
# that root. Whatever happens, it powers the machine off at the end; the
# host reads the results from the share and the markers from the console.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

mark() { echo "kn-vm: $* at $(cut -d' ' -f1 /proc/uptime) s" > /dev/console; }
halt_now() { sync; poweroff -f; sleep 10; echo o > /proc/sysrq-trigger; }
fail() { mark "FAILED: $*"; halt_now; }

while read -r m; do
  insmod "/lib/kn-modules/$m" || fail "insmod $m"
done < /lib/kn-modules/order

OPTS=trans=virtio,version=9p2000.L,msize=512000
# The root: the host's / (read-only 9p) under an overlay whose upper layer
# is a tmpfs, so tools that write beside their files (vite's config
# bundle in node_modules, caches) work; every write stays in the VM's RAM.
mkdir -p /lower /rw
mount -t 9p -o "$OPTS,ro,cache=loose" root /lower || fail "mount of the host root over 9p"
mount -t tmpfs -o mode=0755 rw /rw && mkdir -p /rw/upper /rw/work || fail "tmpfs for the overlay"
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot ||
  fail "overlay of the host root"
mount -t tmpfs -o mode=0755 run /newroot/run || fail "tmpfs on /run"
mkdir -p /newroot/run/kn-vm
mount -t 9p -o "$OPTS" out /newroot/run/kn-vm || fail "mount of the output share"
# The kernel runs its module requests (iptables asking for xt_foo, nft for
# an expression, `ip link add type bar`) with this root, not the chroot's:
# hand them to the chroot's modprobe wrapper, which uses the kernel cache.
printf '#!/bin/sh\nexec chroot /newroot /bin/sh /run/kn-vm/modprobe "$@"\n' > /bin/kn-modprobe
chmod 755 /bin/kn-modprobe
echo /bin/kn-modprobe > /proc/sys/kernel/modprobe
mark "stage1 done"

chroot /newroot /bin/sh /run/kn-vm/guest.sh
echo "$?" > /newroot/run/kn-vm/guest-rc
sync
umount /newroot/run/kn-vm
mark "powering off"
halt_now
