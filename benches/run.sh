#!/usr/bin/env bash
# benches/run.sh — W1 "bridge_nat": netlab side by side with the baselines of
# ../shared/bench, in the same run, every run in a fresh sandbox.
#
#   benches/run.sh --quick          N = 2 10 100, 3 runs, default tools -> benches/results/quick (~2 min)
#   benches/run.sh                  N = 2 10 100 500 1000, 3 runs -> benches/results/full (~30 min)
#   benches/run.sh --full           same N, default tools + bash tutorial + Mininet
#   options: -r RUNS  -n "2 10 100"  -o OUTDIR  [TOOL...]
#
# Default tools (names as in the shared run_bench.sh, plus netlab's):
#   netlab           netlab run labs/scale/w1.rhai --set n=N (IPv6 off in the containers,
#                    verify: all containers ping at once)
#   netlab-seq       same, verify container by container (--set seq=true), like the baselines
#   netlab-direct    netlab started from the machine's namespace, not inside ./sandbox.sh
#                    (netlab sandboxes itself; only there it sees the neighbour-table
#                    counters it needs to avoid overflow at N=1000); also netlab-seq-direct
#   floor-w1         C floor: the whole W1 with raw netlink + raw ICMP, group delete
#   floor-w1-noipv6  same with IPv6 disabled in the containers (like netlab)
#   batch            ip -batch + ip -n -batch, group delete            (w1_batch.sh)
#   pyroute2-group   pyroute2 0.9.7 in-process, group delete           (w1_pyroute2.py)
# --full adds: bash (w1_bash.sh, ip netns exec), mininet (w1_mininet.py).
# Any name run_bench.sh knows (batch-noipv6, pyroute2, ...) can be given instead.
#
# How: the shared scripts are used unchanged.  target/bench/ holds symlinks to every
# file of $BASELINES plus the floor binary built there (benches/setup.sh), so the
# shared run_bench.sh (which cd's to its own directory and wants ./floor) runs from
# there without writing into ../shared.  run_bench.sh is called once per N with
# all tools, so the tools alternate at each size.  Each (tool, N) is hyperfine with
# --runs RUNS (+1 warmup for N <= 100), ./settle.sh before every run, every run in a
# fresh ./sandbox.sh; netlab additionally sandboxes itself (new net/mount/UTS/PID
# namespaces), which makes the outer sandbox harmless.
#
# Afterwards: $OUT/tables.md (shared summarize.py), $OUT/report.md (benches/report.py:
# netlab vs the floor), $OUT/w1.svg (benches/plot.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BASELINES=${BASELINES:-$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd)}
FARM=${BUILD:-$ROOT/target/bench}
NETLAB=${NETLAB:-$ROOT/target/release/netlab}
LAB=$ROOT/labs/scale/w1.rhai

RUNS=3
NS="2 10 100 500 1000"
OUT=
QUICK=0
TOOLS=(netlab netlab-seq netlab-direct floor-w1 floor-w1-noipv6 batch pyroute2-group)
EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) NS="2 10 100"; QUICK=1; shift ;;
    --full) EXTRA=(bash mininet); shift ;;
    -r) RUNS=$2; shift 2 ;;
    -n) NS=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] && TOOLS=("$@")
TOOLS+=("${EXTRA[@]}")
[[ -n $OUT ]] || { (( QUICK )) && OUT=$HERE/results/quick || OUT=$HERE/results/full; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

[[ $(id -u) -eq 0 ]] || { echo "run.sh: run as root (the sandboxes need it)" >&2; exit 1; }
for c in hyperfine /usr/bin/time gcc; do
  command -v "$c" >/dev/null || { echo "run.sh: $c missing: run benches/setup.sh" >&2; exit 1; }
done
[[ -x $NETLAB ]] || { echo "run.sh: $NETLAB missing: run benches/setup.sh (cargo build --release)" >&2; exit 1; }

# The symlink farm: every baseline file, and floor built from floor.c.
mkdir -p "$FARM"
for f in "$BASELINES"/*; do
  [[ $(basename "$f") == floor ]] && continue
  ln -sfn "$f" "$FARM/$(basename "$f")"
done
if [[ ! -x $FARM/floor || $BASELINES/floor.c -nt $FARM/floor ]]; then
  gcc -O2 -Wall -o "$FARM/floor" "$BASELINES/floor.c"
fi

# Others may rebuild target/release/netlab while this runs: time a private copy.
cp -p "$NETLAB" "$FARM/netlab.bench"
NETLAB=$FARM/netlab.bench

# Tools run without the wrapper sandbox: netlab started from the machine's own network
# namespace, as users run it (it sandboxes itself before touching anything).  Only
# there can it see the host-wide neighbour-table counters (/proc/net/stat/arp_cache
# exists only in the initial namespace), which its batch ping uses to avoid
# "neighbour table overflow".  Same hyperfine invocation as run_bench.sh, minus
# ./sandbox.sh; same output files.
direct_cmd() {  # tool name N -> command, or nothing if the tool is not a direct one
  case $1 in
    netlab-direct)     echo "$NETLAB run $LAB --set n=$2" ;;
    netlab-seq-direct) echo "$NETLAB run $LAB --set n=$2 --set seq=true" ;;
  esac
}
run_direct() {  # NAME N COMMAND
  local name=$1 n=$2 cmd=$3 base="$OUT/raw/$1-$2" warm=()
  rm -f "$base.log" "$base.rss" "$base.json"
  (( n <= 100 )) && warm=(--warmup 1)
  echo "=== $name N=$n: $cmd" >&2
  if ! timeout 900 hyperfine -i "${warm[@]}" --runs "$RUNS" --prepare "$FARM/settle.sh" \
      --export-json "$base.json" --command-name "$name-$n" --style basic \
      "env NETLAB_RESULTS=$base.log /usr/bin/time -a -o $base.rss -f maxrss_kb=%M $cmd" >&2; then
    echo "!!! $name N=$n FAILED (see $base.log)" >&2
  fi
  "$FARM/settle.sh"
}

impl_arg() {  # tool name -> argument for run_bench.sh
  case $1 in
    netlab)     echo "custom:netlab=$NETLAB run $LAB --set n={N}" ;;
    netlab-seq) echo "custom:netlab-seq=$NETLAB run $LAB --set n={N} --set seq=true" ;;
    netlab-v6)  echo "custom:netlab-v6=$NETLAB run $LAB --set n={N} --set ipv6=true" ;;
    *)          echo "$1" ;;
  esac
}
ARGS=()
DIRECT=()
for t in "${TOOLS[@]}"; do
  if [[ -n $(direct_cmd "$t" 1) ]]; then DIRECT+=("$t"); else ARGS+=("$(impl_arg "$t")"); fi
done

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "netlab binary: sha256 $(sha256sum "$NETLAB" | cut -c1-16), built $(date -u -r "$NETLAB" +%FT%TZ)"
  echo "netlab: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src runtime labs/scale 2>/dev/null || echo ' (+local changes)')"
  echo "tools: $(ip -V 2>&1 | head -1); $(iptables -V); $(hyperfine --version); python $(python3 -c 'import sys; print(sys.version.split()[0])'); pyroute2 $(python3 -c 'import pyroute2; print(pyroute2.__version__)' 2>/dev/null || echo -)"
  echo "sysctls: gc_thresh3=$(cat /proc/sys/net/ipv4/neigh/default/gc_thresh3) netdev_max_backlog=$(cat /proc/sys/net/core/netdev_max_backlog)"
  echo "runs: $RUNS; N: $NS; tools: ${TOOLS[*]}"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

for n in $NS; do
  echo "N=$n start $(date -u +%T) load $(cut -d" " -f1-3 /proc/loadavg)" >> "$OUT/load.log"
  (( ${#ARGS[@]} )) && "$FARM/run_bench.sh" -r "$RUNS" -n "$n" -o "$OUT" "${ARGS[@]}"
  for t in "${DIRECT[@]}"; do run_direct "$t" "$n" "$(direct_cmd "$t" "$n")"; done
done

python3 "$FARM/summarize.py" "$OUT" > "$OUT/tables.md"
python3 "$HERE/report.py" "$OUT" > "$OUT/report.md"
python3 "$HERE/plot.py" "$OUT" "$OUT/w1.svg"
echo "run.sh: done: $OUT/report.md $OUT/tables.md $OUT/w1.svg" >&2
