#!/usr/bin/env bash
# Draws every lab's network for the book: book/src/graphs/<lab>.svg (labs/more/'s in
# graphs/more/) from
# `netlab graph --format dot` (the model of the lab, no root needed) and graphviz.
# Run before `mdbook build` (CI does); the SVGs are generated, not kept in git.
#
# Usage: book/generate-graphs.sh path/to/netlab
set -euo pipefail

bin=${1:?usage: $0 path/to/netlab}
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/book/src/graphs"
command -v dot >/dev/null || { echo "$0: graphviz (dot) is not installed" >&2; exit 3; }
mkdir -p "$out"
mkdir -p "$out/more"
for lab in "$root"/labs/*.rhai "$root"/labs/more/*.rhai; do
    name=${lab#"$root"/labs/}
    name=${name%.rhai}
    "$bin" graph --format dot "$lab" | dot -Tsvg -o "$out/$name.svg"
done
