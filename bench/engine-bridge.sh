#!/bin/bash
# Side-by-side: the Linux bridge vs ethertap (bridge mode) between two veth hosts, same lab,
# same sender, same run. Prints frames sent/received and rates. Needs root, trafgen
# (netsniff-ng), ethtool, and a release build (cargo build --release).
# trafgen paces itself with a gap between frames (-t), one run per gap: the delivered share at
# each offered rate is the figure to compare (an unpaced trafgen gives up under backpressure).
# Gap 0 = no pacing (trafgen at full speed; it may stop early under backpressure, so the sent
# count is taken from the sender's tx_packets).
# Usage: bench/engine-bridge.sh [FRAMES] [ROUNDS] [GAPS]   e.g. 300000 3 "0 2us"
set -euo pipefail
FRAMES=${1:-300000}
ROUNDS=${2:-1}
GAPS=${3:-0 2us}
BIN=${ETHERTAP_BIN:-$(dirname "$0")/../target/release/ethertap}
P=etb$$
H1=${P}h1 BR=${P}br H2=${P}h2
E0MAC=02:77:00:00:00:01 E1MAC=02:77:00:00:00:02 SINK=02:77:00:00:00:99
ENGINE_PID=
cleanup() {
  [ -n "$ENGINE_PID" ] && kill "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null || true
  for ns in $H1 $BR $H2; do ip netns del $ns 2>/dev/null || true; done
  rm -f /dev/shm/$P.q "/tmp/$P.trafgen"
}
trap cleanup EXIT
for ns in $H1 $BR $H2; do
  ip netns add $ns
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add e0 netns $H1 address $E0MAC numtxqueues 1 numrxqueues 1 type veth peer name p0 netns $BR numtxqueues 1 numrxqueues 1
ip link add e1 netns $H2 address $E1MAC numtxqueues 1 numrxqueues 1 type veth peer name p1 netns $BR numtxqueues 1 numrxqueues 1
ip -n $H1 link set e0 up; ip -n $H2 link set e1 up
ip -n $BR link set p0 up; ip -n $BR link set p1 up
# 64-byte frames to a MAC h2 does not own: h2 counts and drops them cheaply.
printf '{ %s, %s, 0x88, 0xb5, fill(0x00, 46) }\n' \
  "$(echo $SINK | sed 's/^/0x/; s/:/, 0x/g')" "$(echo $E0MAC | sed 's/^/0x/; s/:/, 0x/g')" \
  > /tmp/$P.trafgen

counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

run() {  # $1 = label, $2 = gap
  local s0 r0 s1 r1 t0 t1
  s0=$(counter $H1 e0 tx_packets); r0=$(counter $H2 e1 rx_packets)
  t0=$(date +%s.%N)
  local pace=()
  [ "$2" != 0 ] && pace=(-t "$2")
  ip netns exec $H1 trafgen -i /tmp/$P.trafgen -o e0 -n "$FRAMES" "${pace[@]}" -q >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  sleep 1
  s1=$(counter $H1 e0 tx_packets); r1=$(counter $H2 e1 rx_packets)
  awk -v l="$1 gap $2" -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v t="$(echo "$t1 - $t0" | bc)" \
    'BEGIN { printf "%-18s sent %7d in %.2f s (%.3f Mpps)  received %7d (%5.1f %%)\n", l, s, t, s/t/1e6, r, 100*r/s }'
}

echo "# $FRAMES frames of 64 bytes per round, $(nproc) CPUs, $(uname -r)"
ip -n $BR link add br0 type bridge
ip netns exec $BR sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
ip -n $BR link set p0 master br0; ip -n $BR link set p1 master br0; ip -n $BR link set br0 up
if [ -z "${SKIP_LINUX_BR:-}" ]; then
  for g in $GAPS; do for i in $(seq "$ROUNDS"); do run "linux-br" "$g"; done; done
fi
ip -n $BR link del br0

ip netns exec $BR "$BIN" start --no-preset --queues 1 --cpus 1 ${ENGINE_OPTS:-} --queue-name $P.q p0 p1 </dev/null 2>/dev/null &
ENGINE_PID=$!
for _ in $(seq 50); do ip -n $BR link show p0 | grep -q ethertap_xdp && break; sleep 0.1; done
sleep 0.5
for g in $GAPS; do for i in $(seq "$ROUNDS"); do run "ethertap" "$g"; done; done
