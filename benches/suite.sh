#!/usr/bin/env bash
# S1: the seed suite. Wall time of `netlab test labs/` (every lab in labs/, run in
# parallel, each in its own sandbox) on this machine, RUNS times, plus each lab's own
# time from its results line. Target (issue 8): median <= 1.0 s on 2 cores.
#
#   benches/suite.sh [-r RUNS] [-o OUTDIR]      (root; builds netlab --release first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10
out=benches/results/suite
while getopts "r:o:" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: $0 [-r RUNS] [-o OUTDIR]" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet
bin=target/release/netlab
mkdir -p "$out"
: > "$out/runs.txt"
results=$(mktemp)
for i in $(seq "$runs"); do
  start=$(date +%s%N)
  NETLAB_RESULTS=$results "$bin" test labs/ > "$out/last.log" || { cat "$out/last.log"; exit 1; }
  end=$(date +%s%N)
  printf '%d.%09d\n' $(((end - start) / 1000000000)) $(((end - start) % 1000000000)) >> "$out/runs.txt"
done
# Each lab alone too (3 runs), to tell a lab's own time from the contention of
# running them all at once.
alone=$(mktemp)
trap 'rm -f "$results" "$alone"' EXIT
for i in 1 2 3; do
  for lab in $(find labs -name '*.rhai' | sort); do
    NETLAB_RESULTS=$alone "$bin" run "$lab" > /dev/null
  done
done
python3 - "$out" "$results" "$runs" "$alone" <<'PY'
import statistics, sys, collections, os
out, results, runs, alone_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
walls = [float(l) for l in open(os.path.join(out, "runs.txt")) if l.strip()]
def totals(path):
    per = collections.defaultdict(list)
    for line in open(path):
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if "lab" in kv and "total_s" in kv:
            per[kv["lab"]].append(float(kv["total_s"]))
    return per
per_lab, alone = totals(results), totals(alone_file)
rows = [f"# S1: `netlab test labs/` ({runs} runs, {os.cpu_count()} CPUs)", "",
        f"wall: median {statistics.median(walls):.3f} s, min {min(walls):.3f} s, max {max(walls):.3f} s (target <= 1.0 s)", "",
        "| lab | median total_s, all at once | max | median total_s, alone |", "|---|---:|---:|---:|"]
for lab, ts in sorted(per_lab.items()):
    a = statistics.median(alone[lab]) if alone.get(lab) else float("nan")
    rows.append(f"| {lab} | {statistics.median(ts):.3f} | {max(ts):.3f} | {a:.3f} |")
rows.append(f"| sum of medians | {sum(statistics.median(t) for t in per_lab.values()):.3f} | | {sum(statistics.median(t) for t in alone.values()):.3f} |")
open(os.path.join(out, "report.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
