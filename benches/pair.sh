#!/usr/bin/env bash
# benches/pair.sh — W1 setup, netlab against the C floor, run alternately so both see
# the same machine state (issue 9's target: setup without the readiness wait
# ≤ 1.0× the floor's at N = 500 and 1000).
#
#   benches/pair.sh [-r RUNS] [-n "100 500 1000"]      (root; benches/setup.sh first)
#   NETLAB=/path/to/older/netlab W1=/path/to/its/w1.rhai benches/pair.sh   (another build)
#
# Each round: ./settle.sh, the floor (`FLOOR_NO_IPV6=1 ./sandbox.sh ./floor w1 N group`,
# IPv6 off in the containers as in netlab's lab), ./settle.sh, netlab
# (`netlab run labs/scale/w1.rhai --set n=N`, from the machine's namespace: it
# sandboxes itself). Prints each run's setup − ready wait, verify, total and pings,
# then per N the medians and netlab/floor.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
FARM=${BUILD:-$ROOT/target/bench}
NETLAB=${NETLAB:-$ROOT/target/release/netlab}
W1=${W1:-$ROOT/labs/scale/w1.rhai}
RUNS=3
SIZES="100 500 1000"
while getopts "r:n:" o; do
    case $o in
        r) RUNS=$OPTARG ;;
        n) SIZES=$OPTARG ;;
        *) echo "usage: $0 [-r RUNS] [-n \"N ...\"]" >&2; exit 2 ;;
    esac
done
BASELINES=${BASELINES:-$(cd "$HERE/../../shared/bench" 2>/dev/null && pwd)}
[ -d "$BASELINES" ] || { echo "no ../shared/bench (the baselines' harness)" >&2; exit 3; }
mkdir -p "$FARM"
for f in "$BASELINES"/*; do ln -sfn "$f" "$FARM/$(basename "$f")"; done
if [[ ! -x $FARM/floor || $BASELINES/floor.c -nt $FARM/floor ]]; then
    rm -f "$FARM/floor"
    gcc -O2 -Wall -o "$FARM/floor" "$BASELINES/floor.c"
fi
[ -x "$NETLAB" ] || { echo "no $NETLAB: cargo build --release" >&2; exit 3; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fields() { # line -> "setup-wait verify total gw wan"
    tr ' ' '\n' | awk -F= '{v[$1]=$2} END {printf "%.3f %.3f %.3f %s %s\n", v["setup_s"]-v["ready_wait_s"], v["verify_s"], v["total_s"], v["ping_gw_ok"], v["ping_wan_ok"]}'
}
for n in $SIZES; do
    for r in $(seq "$RUNS"); do
        (cd "$FARM" && ./settle.sh >/dev/null)
        f=$(cd "$FARM" && FLOOR_NO_IPV6=1 ./sandbox.sh ./floor w1 "$n" group 2>/dev/null | grep '^impl=' | fields)
        echo "$f" >>"$out/floor-$n"
        (cd "$FARM" && ./settle.sh >/dev/null)
        rm -f "$out/line"
        NETLAB_RESULTS="$out/line" "$NETLAB" run "$W1" --set n="$n" >/dev/null 2>&1 || true
        l=$(fields <"$out/line")
        echo "$l" >>"$out/netlab-$n"
        printf 'N=%-5s run %s  floor: setup %s verify %s total %s pings %s+%s | netlab: setup %s verify %s total %s pings %s+%s\n' \
            "$n" "$r" $f $l
    done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "| N | runs | floor setup (median) | netlab setup (median) | netlab / floor |"
echo "|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    fm=$(cut -d' ' -f1 "$out/floor-$n" | median)
    nm=$(cut -d' ' -f1 "$out/netlab-$n" | median)
    echo "| $n | $RUNS | $fm | $nm | $(awk -v a="$nm" -v b="$fm" 'BEGIN {printf "%.2f", a/b}') |"
done
