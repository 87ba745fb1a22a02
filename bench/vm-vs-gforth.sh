#!/bin/sh
# RPCL VM against gforth, side by side in one run (hyperfine):
#  1. a counted loop of 10 million iterations doing an addition and a comparison
#     (with literal operands, and without: "i + dup dup <");
#  2. start-up: `ethertap eval '1 2 + .'` against `gforth -e bye`.
# Usage: bench/vm-vs-gforth.sh [RUNS]   (builds the release binary first)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release --quiet --bin ethertap
et=target/release/ethertap
command -v gforth >/dev/null || { echo "needs gforth (Debian package gforth)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 1; }
out=${BENCH_OUT:-target/bench-vm}
mkdir -p "$out"

# Both must print 10000000 (and the same for the second loop).
[ "$($et eval '0 10000000 0 do 1 + dup 5 < drop loop .')" = 10000000 ]
[ "$(gforth -e ': b 0 10000000 0 do 1 + dup 5 < drop loop . ; b bye')" = "10000000 " ]

hyperfine -N --warmup 2 --runs "$runs" --export-markdown "$out/loop.md" \
  -n "rpcl 1 + dup 5 <" "$et eval '0 10000000 0 do 1 + dup 5 < drop loop .'" \
  -n "gforth 1 + dup 5 <" "gforth -e ': b 0 10000000 0 do 1 + dup 5 < drop loop . ; b bye'" \
  -n "gforth-fast 1 + dup 5 <" "gforth-fast -e ': b 0 10000000 0 do 1 + dup 5 < drop loop . ; b bye'" \
  -n "rpcl i + dup dup <" "$et eval '0 10000000 0 do i + dup dup < drop loop .'" \
  -n "gforth i + dup dup <" "gforth -e ': b 0 10000000 0 do i + dup dup < drop loop . ; b bye'"

hyperfine -N --warmup 10 --runs $((runs * 10)) --export-markdown "$out/startup.md" \
  -n "ethertap eval '1 2 + .'" "$et eval '1 2 + .'" \
  -n "gforth -e bye" "gforth -e bye"

cat "$out/loop.md" "$out/startup.md"
