#!/usr/bin/env bash
# P1: `netlab plan` for every lab, as an ordinary user (nobody, no capabilities):
# wall time of the whole command, RUNS times each. Target (issue 9): <= 20 ms for
# any lab in labs/.
#
#   benches/plan.sh [-r RUNS] [-o OUTDIR]      (builds netlab --release first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=20
out=benches/results/plan
while getopts "r:o:" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: $0 [-r RUNS] [-o OUTDIR]" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet
mkdir -p "$out"
python3 - "$runs" "$out" <<'PY'
import glob, os, statistics, subprocess, sys, time
runs, out = int(sys.argv[1]), sys.argv[2]
nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
labs = sorted(glob.glob("labs/*.rhai")) + ["labs/scale/w1.rhai"]
rows, worst = [], 0.0
for lab in labs:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(nobody + ["target/release/netlab", "plan", lab], check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    med, mx = statistics.median(times), max(times)
    worst = max(worst, med)
    rows.append(f"| `{lab}` | {med:.1f} | {min(times):.1f} | {mx:.1f} |")
report = ["| lab | median ms | min ms | max ms |", "|---|---:|---:|---:|"] + rows
report.append(f"\nslowest median: {worst:.1f} ms (target <= 20 ms) on {os.cpu_count()} CPUs, {runs} runs each")
open(os.path.join(out, "report.md"), "w").write("\n".join(report) + "\n")
print("\n".join(report))
PY
