#!/usr/bin/env bash
# benches/setup.sh — install what the W1 benchmark needs (Debian 12, root), build
# netlab and the C floor.  Idempotent: skips what is already there.
#
#   benches/setup.sh            # netlab + floor + ip -batch + pyroute2 baselines
#   benches/setup.sh --full     # also Mininet (pip package + Debian mnexec, brctl)
#
# The C floor is compiled from ../shared/bench/floor.c (or $BASELINES/floor.c)
# into $BUILD (default: target/bench, not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINES=${BASELINES:-$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd)}
BUILD=${BUILD:-$PWD/target/bench}
FULL=0
[[ ${1:-} == --full ]] && FULL=1
[[ $(id -u) -eq 0 ]] || { echo "setup.sh: run as root" >&2; exit 1; }

need_apt=()
for pair in hyperfine:hyperfine time:/usr/bin/time gcc:gcc iproute2:ip iptables:iptables \
            nftables:nft iputils-ping:ping util-linux:nsenter; do
  pkg=${pair%%:*}; cmd=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if (( FULL )); then
  command -v mnexec >/dev/null 2>&1 || need_apt+=(mininet)
  command -v brctl >/dev/null 2>&1 || need_apt+=(bridge-utils)
fi
if (( ${#need_apt[@]} )); then
  echo "setup.sh: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq
  # --no-install-recommends: Debian's mininet package would pull in Open vSwitch
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

py=$(command -v python3)
if ! "$py" -c 'import pyroute2, sys; sys.exit(pyroute2.__version__ != "0.9.7")' 2>/dev/null; then
  echo "setup.sh: pip install pyroute2==0.9.7 (for $py)" >&2
  "$py" -m pip install -q pyroute2==0.9.7
fi
if (( FULL )) && ! "$py" -c 'import mininet' 2>/dev/null; then
  echo "setup.sh: pip install mininet (the Python part; mnexec comes from apt)" >&2
  "$py" -m pip install -q mininet
fi

mkdir -p "$BUILD"
if [[ ! -x $BUILD/floor || $BASELINES/floor.c -nt $BUILD/floor ]]; then
  echo "setup.sh: gcc -O2 -o $BUILD/floor $BASELINES/floor.c" >&2
  gcc -O2 -Wall -o "$BUILD/floor" "$BASELINES/floor.c"
fi
echo "setup.sh: cargo build --release" >&2
cargo build --release -q
echo "setup.sh: ok (netlab: $PWD/target/release/netlab, floor: $BUILD/floor)" >&2
