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

# hyperfine runs one command after the other; on a shared machine the load changes between
# them. So also interleave the two loop commands run by run and compare minima and medians.
echo
echo "interleaved, $runs rounds (ms): min / median"
tmp=$(mktemp -d)
i=0
while [ $i -lt "$runs" ]; do
  for which in rpcl gforth rpcl_nolit gforth_nolit; do
    case $which in
      rpcl) set -- $et eval '0 10000000 0 do 1 + dup 5 < drop loop .' ;;
      gforth) set -- gforth -e ': b 0 10000000 0 do 1 + dup 5 < drop loop . ; b bye' ;;
      rpcl_nolit) set -- $et eval '0 10000000 0 do i + dup dup < drop loop .' ;;
      gforth_nolit) set -- gforth -e ': b 0 10000000 0 do i + dup dup < drop loop . ; b bye' ;;
    esac
    t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) >> "$tmp/$which"
  done
  i=$((i + 1))
done
for which in rpcl gforth rpcl_nolit gforth_nolit; do
  sort -n "$tmp/$which" > "$tmp/$which.s"
  min=$(head -1 "$tmp/$which.s"); med=$(sed -n "$(( (runs + 1) / 2 ))p" "$tmp/$which.s")
  echo "$which $min $med" >> "$tmp/summary"
  printf '  %-13s %8.1f / %8.1f\n' "$which" "$(echo "$min / 1000" | bc -l)" "$(echo "$med / 1000" | bc -l)"
done
awk '{min[$1]=$2; med[$1]=$3} END {
  printf "  ratio rpcl/gforth (1 + dup 5 <):     min %.2f  median %.2f\n", min["rpcl"]/min["gforth"], med["rpcl"]/med["gforth"];
  printf "  ratio rpcl/gforth (i + dup dup <):   min %.2f  median %.2f\n", min["rpcl_nolit"]/min["gforth_nolit"], med["rpcl_nolit"]/med["gforth_nolit"] }' "$tmp/summary"
rm -rf "$tmp"
