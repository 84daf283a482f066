#!/usr/bin/env bash
# Side-by-side timing of the reference host-local (/usr/lib/cni/host-local)
# and ours (dist/bin/host-local): ADD and DEL on an empty store and on a
# store holding 5,000 reservations (written directly in the reference format).
# Each ADD is prepared by the same plugin's DEL and vice versa, so every run
# starts from the same state. One extra row times our ADD right after the
# reference changed the store (our index is then re-validated by a full scan).
# Usage: bench/host-local.sh [runs]   (needs hyperfine; no root, no netns)
# Time the plugins in the environment a container runtime gives them, with
# no inherited variables (NODE_EXTRA_CA_CERTS, for one, makes every Node
# start read a CA bundle: ~40 ms here).
if [ -z "${KN_BENCH_CLEAN_ENV:-}" ]; then
  exec env -i KN_BENCH_CLEAN_ENV=1 PATH="$PATH" HOME="${HOME:-/root}" bash "$0" "$@"
fi
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
REF=/usr/lib/cni/host-local
OURS="dist/bin/host-local"
node scripts/build.mjs kube-netstack-cni
WORK=$(mktemp -d /tmp/hl-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
OUT=bench/results/host-local-$(date -u +%Y%m%d-%H%M%S).md

conf() { # name dataDir
  printf '{"cniVersion":"1.0.0","name":"%s","type":"host-local","ipam":{"type":"host-local","subnet":"10.128.0.0/16","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s"}}' "$1" "$2"
}
populate() { # dir count
  mkdir -p "$1"
  node -e '
    const fs = require("fs"); const [dir, n] = [process.argv[1], +process.argv[2]];
    for (let i = 0; i < n; i++) {
      const ip = `10.128.${100 + (i >> 8)}.${i & 255}`;
      fs.writeFileSync(`${dir}/${ip}`, `pre${i}\r\neth0`, { mode: 0o600 });
    }' "$1" "$2"
}
for size in 0 5000; do
  for who in ref ours; do
    mkdir -p "$WORK/$who-$size"
    conf "n$size" "$WORK/$who-$size" > "$WORK/$who-$size.json"
    [ "$size" = 0 ] || populate "$WORK/$who-$size/n$size" "$size"
  done
done
# Mixed store: ours and the reference share one store.
mkdir -p "$WORK/mix"; conf mix "$WORK/mix" > "$WORK/mix.json"; populate "$WORK/mix/mix" 5000

cmd() { # command plugin json [containerID]
  echo "env CNI_CONTAINERID=${4:-bench} CNI_NETNS=/run/netns/hl-bench-none CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_COMMAND=$1 $2 < $3 > /dev/null"
}
prep() { # a preparation step: its outcome does not matter (ADD may find the attachment present)
  echo "$(cmd "$@") || true"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ARGS=(--warmup 3 --runs "$RUNS" --shell bash --export-json "$WORK/table.json")
for size in 0 5000; do
  for who in ref ours; do
    p=$REF; [ "$who" = ours ] && p=$OURS
    j="$WORK/$who-$size.json"
    ARGS+=(--command-name "$who ADD, $size allocations" --prepare "$(prep DEL "$p" "$j")" "$(cmd ADD "$p" "$j")")
    ARGS+=(--command-name "$who DEL, $size allocations" --prepare "$(prep ADD "$p" "$j")" "$(cmd DEL "$p" "$j")")
  done
done
ARGS+=(--command-name "ours ADD, 5000 allocations, after a reference DEL" --prepare "$(prep DEL "$OURS" "$WORK/mix.json"); $(prep ADD "$REF" "$WORK/mix.json" other); $(prep DEL "$REF" "$WORK/mix.json" other)" "$(cmd ADD "$OURS" "$WORK/mix.json")")
hyperfine "${ARGS[@]}" >&2
# In-process loop: our per-operation cost without any process start (under Node).
mkdir -p node_modules/.cache
npx --no-install esbuild bench/host-local.loop.ts --bundle --platform=node --format=esm \
  --outfile=node_modules/.cache/host-local.loop.mjs --log-level=warning \
  "--banner:js=import{createRequire as __cr}from'module';const require=__cr(import.meta.url);"
node node_modules/.cache/host-local.loop.mjs "$WORK" 200 > "$WORK/loop.md"
node bench/host-local.interleave.mjs "$WORK" "$RUNS" "$REF" dist/bin/host-local "$WORK/interleave.json" > "$WORK/interleave.md"

{
  echo "# host-local: reference vs ours"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: nproc $(nproc), kernel $(uname -r), node $(node --version), hyperfine $(hyperfine --version | cut -d' ' -f2)"
  echo "- reference: $REF ($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown))"
  echo "- ours: $OURS, Bun-compiled kube-netstack-cni (commit $(git rev-parse --short HEAD))"
  echo "- load average (1/5/15 min): before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg) (other engineers' test runs share the machine)"
  echo "- store filesystem: $(df -T "$WORK" | awk 'NR==2{print $2}')"
  echo "- command: bench/host-local.sh $RUNS"
  echo
  node bench/host-local.goal.mjs "$WORK/table.json" "$WORK/interleave.json"
  echo
  echo "Process per invocation (hyperfine, $RUNS runs; each ADD prepared by the same plugin's DEL and vice versa):"
  echo
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
    const ms = (x) => (x * 1000).toFixed(1);
    console.log("| command | mean ± σ [ms] | median [ms] | min [ms] | max [ms] |\n|:---|---:|---:|---:|---:|");
    for (const x of r) console.log(`| ${x.command} | ${ms(x.mean)} ± ${ms(x.stddev)} | ${ms(x.median)} | ${ms(x.min)} | ${ms(x.max)} |`);
' "$WORK/table.json"
  echo
  cat "$WORK/interleave.md"
  echo
  cat "$WORK/loop.md"
} > "$OUT"
echo "wrote $OUT" >&2
cat "$OUT"
