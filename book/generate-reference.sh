#!/usr/bin/env bash
# Regenerates book/src/reference.md from a built netlab binary: keeps the
# hand-written header up to the marker line and replaces everything after it
# with the output of `netlab functions --markdown`. tests/book.rs checks that
# the two agree.
#
# Usage: book/generate-reference.sh path/to/netlab
#   e.g. cargo build && book/generate-reference.sh target/debug/netlab
set -euo pipefail

bin=${1:?usage: $0 path/to/netlab}
ref="$(cd "$(dirname "$0")" && pwd)/src/reference.md"
marker='<!-- generated: netlab functions --markdown -->'

if ! grep -qxF -- "$marker" "$ref"; then
    echo "$0: $ref has no line '$marker'" >&2
    exit 1
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# The header, up to and including the marker line.
awk -v m="$marker" '{ print } $0 == m { exit }' "$ref" >"$tmp"
# One blank line, then the generated text byte for byte.
printf '\n' >>"$tmp"
"$bin" functions --markdown >>"$tmp"
cat "$tmp" >"$ref"
