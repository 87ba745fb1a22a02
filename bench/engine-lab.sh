#!/bin/bash
# The data-path benchmark: every system side by side, in one run, on one veth lab.
#
#   h1 (e0) ──veth── (p0) br (p1) ──veth── (e1) h2
#
# h1 sends 60-byte frames (64 on a wire) from ethertap-blast (bench/blast.rs: AF_PACKET,
# sendmmsg, qdisc bypass, paced, retries under backpressure) pinned to CPU $SENDER_CPU, to a MAC
# h2 does not own, so h2 counts them (rx_packets) and drops them cheaply. Sent = e0's
# tx_packets, delivered = e1's rx_packets. br_netfilter is off inside the lab. GRO is on for e1
# (for every system) because a veth only accepts XDP-redirected frames when its peer has NAPI.
#
# Systems in the middle (br): the Linux bridge, an in-kernel XDP redirect p0 → p1 (the ceiling
# for anything XDP-based here; xdp-redirect-stats: the same redirect keeping ethertap's per-frame
# statistics in BPF maps, bpf/bench_redirect_stats.bpf.c, the floor of a kernel path;
# xdp-redirect-stats-skb: that program in generic mode; tc-redirect: a TC ingress redirect,
# bpf/bench_tc_redirect.bpf.c, which needs no NAPI on the output veth's peer; kpath-drv and
# kpath-skb: the statistics program passing every frame to that TC redirect, in native and in
# generic mode: what a kernel path that works on every veth would cost), ethertap in native and generic (skb) XDP mode with the default
# (proportional) and busy polling (worker pinned to CPU $WORKER_CPU). For each: a ladder of
# paced rates (loss per step; the highest achieved rate with at most 0.1 % loss), unpaced runs
# (frames delivered per second at full offered load; FULL_ROUNDS rounds with the systems
# interleaved, median) and CPU seconds per million delivered frames (sender + the system's
# process + the capture process, if any + ksoftirqd, from /proc: the kernel charges softirq
# time to the task it interrupted, and every softirq here runs in one of those).
# Then the tap: ethertap with the RX tap on p0 and `collect` writing pcap to /dev/shm (et-tap-collect:
# native mode; et-tap-skb: generic mode, the default on a veth; both with the kernel tap, and
# et-tap-workers and et-tap-skb-workers the same with --no-kernel-tap), against
# `tcpdump -w` and `netsniff-ng` on p0 of the Linux bridge, same rates: captured / sent
# (et-tap-deep: the same ethertap tap with a packet queue of 32768 slots; et-tap-pcapng: et-tap-deep
# with collect writing pcapng (capture time, interface and direction per frame); et-tap-filter: the
# et-tap-deep tap with the pcap-filter expression $TAP_FILTER, which every frame of the sender
# matches, so that each frame runs the whole filter and is still tapped).
# tapfull: the tap systems at full load only, FULL_ROUNDS interleaved rounds with capture (the
# summary's median), for a side-by-side of the tap with and without a filter.
# The latency: ping RTT through each system while the sender offers 1 and 100 kpps.
# And the idle cost of ethertap in the default polling, alone and with the tap and a collect.
# The summary has CPU per delivered frame at every step of every system (ratios to linux-br,
# and to tcpdump for the capturing systems) and the RTTs against linux-br's.
# System et-drv-scrape is et-drv serving --metrics on the bridge namespace's loopback with a
# Prometheus-style scrape of /metrics every 100 ms for as long as it runs (one curl process,
# one python3 process; the scrapes answered are counted): against et-drv in the same run
# (issue 17). Run it as SYSTEMS="et-drv et-drv-scrape" RATES=" " FULL_ROUNDS=N
# bench/engine-lab.sh forward (RATES=" ": full load only).
#
# Fan-out (issue 13): et-tap-2q is et-tap-deep feeding a second queue, a collect on each (captured
# = the fewer of the two copies: each must hold every frame); et-tap-lanes is one queue split into
# FANOUT_LANES (default 4) lanes with a collect per lane (captured = the sum). Run them with
# BLAST_FLOWS=N, which makes the sender cycle through N UDP flows (default 0: one non-IP frame, all
# in one lane): TAP_SYSTEMS="et-tap-deep et-tap-2q et-tap-lanes" BLAST_FLOWS=64 RATES="100 300"
# bench/engine-lab.sh tap.
#
# BLAST_BATCH_US=N paces the sender with a batch every N µs instead of 200 (smoother arrivals,
# closer to a wire; below about 60 µs the sender spins between batches).
#
# SIZE=BYTES sends frames of that length instead of 60 (without FCS) and MTU=N sets the MTU of
# the four veths (default 1500; SIZE=9014 MTU=9000 for jumbo frames: xdp-redirect cannot run
# there, its program is not frags-aware).
#
# Usage: bench/engine-lab.sh [forward] [tap] [tapfull] [latency] [idle] [callgrind]
#        (default: forward tap latency idle)
# Environment: RATES (kpps ladder), STEP_FRAMES, FULL_FRAMES, FULL_ROUNDS, SYSTEMS, TAP_SYSTEMS,
# ENGINE_OPTS (added to every ethertap start), SENDER_CPU, WORKER_CPU, SENDER_NICE (the
# sender's scheduling niceness, default 0; the sender stands in for a wire and a NIC, which no
# program can take the CPU from),
# BUSY=N (N busy loops competing for the CPUs during the whole run),
# ENGINE_PRESET (an RPCL file ethertap runs at start), KEEP=1 (keep the last engine and capture logs in /tmp),
# BASE_BIN (another ethertap build, run as systems et-drv-base and, with the collect beside it
# or BASE_COLLECT, et-tap-base, and et-tap-skb-base in generic mode: before/after in one run; both are then in the default systems),
# TAP_FILTER (the expression of et-tap-filter; default: four tests the sender's frames pass),
# LAT_RATES, LAT_PINGS, LAT_INTERVAL, LAT_SYSTEMS (the latency part; default: SYSTEMS).
# System et-drv-workers is et-drv with --no-kernel-path: every frame through the workers, as
# before the kernel path (docs/kernel-path.md).
# Systems et-drv-wN run the default polling with --poll-wait N (its curve).
# Needs root, a release build (cargo build --release), clang, ethtool, tcpdump, netsniff-ng,
# capinfos (tshark); valgrind for the callgrind part.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ETHERTAP_BIN:-$ROOT/target/release/ethertap}
BLAST=${BLAST_BIN:-$ROOT/target/release/ethertap-blast}
COLLECT=${COLLECT_BIN:-$ROOT/target/release/collect}
RATES=${RATES:-100 150 200 250 300 350 400 500 600 800}
STEP_FRAMES=${STEP_FRAMES:-150000}
FULL_FRAMES=${FULL_FRAMES:-300000}
SIZE=${SIZE:-60}
MTU=${MTU:-1500}
SYSTEMS=${SYSTEMS:-linux-br xdp-redirect et-drv ${BASE_BIN:+et-drv-base }et-drv-busy et-skb et-skb-busy}
TAP_SYSTEMS=${TAP_SYSTEMS:-et-tap-collect ${BASE_BIN:+et-tap-base }et-tap-deep tcpdump netsniff-ng}
FULL_ROUNDS=${FULL_ROUNDS:-3}
SENDER_NICE=${SENDER_NICE:-0}
BLAST_FLOWS=${BLAST_FLOWS:-0}
BLAST_BATCH_US=${BLAST_BATCH_US:-200}
FANOUT_LANES=${FANOUT_LANES:-4}
SENDER_CPU=${SENDER_CPU:-0}
WORKER_CPU=${WORKER_CPU:-1}
PARTS=${*:-forward tap latency idle}
for f in "$BIN" "$BLAST" "$COLLECT"; do
  [ -x "$f" ] || { echo "missing $f: run cargo build --release first" >&2; exit 1; }
done
for t in clang ethtool tcpdump netsniff-ng capinfos taskset python3; do
  command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

P=etl$$
H1=${P}h1 BR=${P}br H2=${P}h2
E0MAC=02:77:00:00:00:01 SINK=02:77:00:00:00:99
WORK=/dev/shm/$P
SUT_PID= CAP_PID= HOG_PIDS= SCRAPE_PID= CAP_MORE=()
cleanup() {
  for p in $SCRAPE_PID $CAP_PID "${CAP_MORE[@]}" $SUT_PID $HOG_PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  for ns in $H1 $BR $H2; do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && cp "$WORK/engine.log" "/tmp/$P.engine.log" 2>/dev/null
  rm -rf "$WORK" "/dev/shm/$P.q" "/dev/shm/$P.q2"
}
trap cleanup EXIT
mkdir -p "$WORK"
# BUSY=N: N busy loops (ordinary priority, not pinned) for the whole run, a reproducible
# stand-in for other programs competing for the CPUs.
for _ in $(seq "${BUSY:-0}"); do
  sh -c 'while :; do :; done' &
  HOG_PIDS="$HOG_PIDS $!"
done

for ns in $H1 $BR $H2; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip netns exec "$BR" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
  net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
ip link add e0 netns "$H1" address $E0MAC numtxqueues 1 numrxqueues 1 type veth \
  peer name p0 netns "$BR" numtxqueues 1 numrxqueues 1
ip link add e1 netns "$H2" numtxqueues 1 numrxqueues 1 type veth \
  peer name p1 netns "$BR" numtxqueues 1 numrxqueues 1
ip netns exec "$H2" ethtool -K e1 gro on >/dev/null
for l in "$H1 e0" "$H2 e1" "$BR p0" "$BR p1"; do set -- $l; ip -n "$1" link set "$2" mtu "$MTU" up; done
P1_IFINDEX=$(ip netns exec "$BR" cat /sys/class/net/p1/ifindex)
clang -O2 -target bpf -I/usr/include/x86_64-linux-gnu -DOUT_IFINDEX="$P1_IFINDEX" \
  -c "$ROOT/bpf/bench_redirect.bpf.c" -o "$WORK/redirect.o"
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -DOUT_IFINDEX="$P1_IFINDEX" \
  -c "$ROOT/bpf/bench_redirect_stats.bpf.c" -o "$WORK/redirect-stats.o"
clang -O2 -target bpf -I/usr/include/x86_64-linux-gnu -DOUT_IFINDEX="$P1_IFINDEX" \
  -c "$ROOT/bpf/bench_tc_redirect.bpf.c" -o "$WORK/tc-redirect.o"
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -DOUT_IFINDEX="$P1_IFINDEX" -DPASS_TO_TC \
  -c "$ROOT/bpf/bench_redirect_stats.bpf.c" -o "$WORK/pass-stats.o"
printf '0 tap.rx.enable\n' > "$WORK/tap.rpcl"
printf '0 tap.rx.enable "%s" tap.queue.add\n' "$P.q2" > "$WORK/tap-2q.rpcl"
printf '0 tap.rx.enable %s "%s" tap.queue.lanes\n' "$FANOUT_LANES" "$P.q" > "$WORK/tap-lanes.rpcl"
TAP_FILTER=${TAP_FILTER:-ether proto 0x88b5 and not vlan and ether[14:4] = 0 and len <= 1514}
printf '0 tap.rx.enable "%s" tap.filter\n' "$TAP_FILTER" > "$WORK/tap-filter.rpcl"

counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
TCK=$(getconf CLK_TCK)
ticks_of() {  # utime + stime of a process (all threads), 0 when there is none
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo 0
}
ksoftirqd_ticks() {
  local t=0 p
  for p in $(pgrep -x 'ksoftirqd/[0-9]+' 2>/dev/null || ps -eo pid=,comm= | awk '$2 ~ /^ksoftirqd/ { print $1 }'); do
    t=$((t + $(ticks_of "$p")))
  done
  echo $t
}

# ---- systems --------------------------------------------------------------------------------
start_engine() {  # extra ethertap options... (PRESET=FILE runs a script at start)
  local preset=(--no-preset)
  PRESET=${PRESET:-${ENGINE_PRESET:-}}
  [ -n "$PRESET" ] && preset=(--preset "$PRESET")
  # Its own runtime directory: the foreground engine serves a console socket too.
  ETHERTAP_RUN_DIR=$WORK ip netns exec "$BR" ${ENGINE_BIN:-$BIN} start "${preset[@]}" --queues 1 --cpus "$WORKER_CPU" \
    --queue-name "$P.q" ${ENGINE_OPTS:-} "$@" p0 p1 </dev/null >"$WORK/engine.log" 2>&1 &
  SUT_PID=$!
  for _ in $(seq 100); do
    ip -n "$BR" link show p1 | grep -q 'xdp' && break
    sleep 0.05
  done
  sleep 0.5
}
system_up() {
  case $1 in
    linux-br|tcpdump|netsniff-ng)
      ip -n "$BR" link add br0 type bridge
      ip -n "$BR" link set p0 master br0; ip -n "$BR" link set p1 master br0
      ip -n "$BR" link set br0 up ;;
    xdp-redirect) ip -n "$BR" link set dev p0 xdpdrv obj "$WORK/redirect.o" sec xdp ;;
    xdp-redirect-stats) ip -n "$BR" link set dev p0 xdpdrv obj "$WORK/redirect-stats.o" sec xdp ;;
    xdp-redirect-stats-skb) ip -n "$BR" link set dev p0 xdpgeneric obj "$WORK/redirect-stats.o" sec xdp ;;
    tc-redirect|kpath-drv|kpath-skb)
      case $1 in
        kpath-drv) ip -n "$BR" link set dev p0 xdpdrv obj "$WORK/pass-stats.o" sec xdp ;;
        kpath-skb) ip -n "$BR" link set dev p0 xdpgeneric obj "$WORK/pass-stats.o" sec xdp ;;
      esac
      ip netns exec "$BR" tc qdisc add dev p0 clsact
      ip netns exec "$BR" tc filter add dev p0 ingress bpf direct-action obj "$WORK/tc-redirect.o" sec tc ;;
    et-drv) start_engine --xdp-mode drv ;;
    et-drv-busy) start_engine --xdp-mode drv --busy-poll ;;
    et-drv-workers) start_engine --xdp-mode drv --no-kernel-path ;;
    et-skb) start_engine --xdp-mode skb ;;
    et-skb-busy) start_engine --xdp-mode skb --busy-poll ;;
    et-drv-base) ENGINE_BIN=$BASE_BIN start_engine --xdp-mode drv ;;
    et-drv-nice) start_engine --xdp-mode drv --nice -10 ;;
    et-drv-scrape)
      ip -n "$BR" link set lo up
      start_engine --xdp-mode drv --metrics 127.0.0.1:9101
      # One process for all the scrapes (a fork per scrape would load the CPUs more than
      # the scrape itself); it records how many were answered. exec: the subshell must not
      # run this script's EXIT trap when the scraper is killed.
      (trap - EXIT; exec ip netns exec "$BR" python3 -c '
import sys, time, urllib.request
n, out = 0, sys.argv[1]
while True:
    t = time.time()
    try:
        urllib.request.urlopen("http://127.0.0.1:9101/metrics", timeout=1).read()
        n += 1
        open(out, "w").write(str(n))
    except OSError:
        pass
    time.sleep(max(0.0, 0.1 - (time.time() - t)))' "$WORK/scrapes") &
      SCRAPE_PID=$!
      # Scraping before anything is measured (and the subshell has become the scraper).
      for _ in $(seq 100); do [ -s "$WORK/scrapes" ] && break; sleep 0.05; done ;;
    et-drv-w[0-9]*)  # et-drv-wN: the default polling with --poll-wait N (µs), for its curve
      start_engine --xdp-mode drv --poll-wait "${1#et-drv-w}" ;;
    et-tap-collect)
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv ;;
    et-tap-skb)  # et-tap-collect in generic mode (the default on a veth)
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode skb ;;
    et-tap-workers)  # et-tap-collect with --no-kernel-tap: tapped frames through the workers
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv --no-kernel-tap ;;
    et-tap-skb-workers)  # et-tap-skb with --no-kernel-tap
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode skb --no-kernel-tap ;;
    et-tap-pcapng)  # et-tap-deep with collect writing pcapng (issue 11)
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv --slots 32768 ;;
    et-tap-deep)  # the same with a packet queue of 32768 slots (64 MiB) instead of 4096
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv --slots 32768 ;;
    et-tap-filter)  # et-tap-deep with the filter $TAP_FILTER
      PRESET=$WORK/tap-filter.rpcl start_engine --xdp-mode drv --slots 32768 ;;
    et-tap-skb-base)  # et-tap-skb with BASE_BIN and the collect beside it (before/after)
      ENGINE_BIN=$BASE_BIN PRESET=$WORK/tap.rpcl start_engine --xdp-mode skb ;;
    et-tap-base)  # et-tap-collect with BASE_BIN and the collect beside it (before/after)
      ENGINE_BIN=$BASE_BIN PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv ;;
    et-tap-2q)  # et-tap-deep feeding a second queue of its own, a collect on each (issue 13)
      PRESET=$WORK/tap-2q.rpcl start_engine --xdp-mode drv --slots 32768 ;;
    et-tap-lanes)  # one queue of 32768 slots in $FANOUT_LANES lanes (they share the slots), a collect per lane
      PRESET=$WORK/tap-lanes.rpcl start_engine --xdp-mode drv --slots 32768 ;;
    et-tap-busy)  # et-tap-collect with --busy-poll
      PRESET=$WORK/tap.rpcl start_engine --xdp-mode drv --busy-poll ;;
    *) echo "unknown system $1" >&2; exit 1 ;;
  esac
}
system_down() {
  case $1 in
    linux-br|tcpdump|netsniff-ng) ip -n "$BR" link del br0 ;;
    xdp-redirect|xdp-redirect-stats) ip -n "$BR" link set dev p0 xdpdrv off ;;
    xdp-redirect-stats-skb) ip -n "$BR" link set dev p0 xdpgeneric off ;;
    tc-redirect|kpath-drv|kpath-skb)
      ip netns exec "$BR" tc qdisc del dev p0 clsact
      ip -n "$BR" link set dev p0 xdpdrv off; ip -n "$BR" link set dev p0 xdpgeneric off ;;
    et-drv-scrape)
      kill "$SCRAPE_PID"; wait "$SCRAPE_PID" 2>/dev/null || true; SCRAPE_PID=
      echo "#   (et-drv-scrape: $(cat "$WORK/scrapes" 2>/dev/null || echo 0) scrapes answered)"
      kill "$SUT_PID"; wait "$SUT_PID" 2>/dev/null || true; SUT_PID= ;;
    *) kill "$SUT_PID"; wait "$SUT_PID" 2>/dev/null || true; SUT_PID= ;;
  esac
}

# ---- capture (tap part) ---------------------------------------------------------------------
capture_start() {
  rm -f "$WORK/cap.pcap"
  case $1 in
    tcpdump) ip netns exec "$BR" tcpdump -i p0 -n -q -w "$WORK/cap.pcap" 2>"$WORK/cap.log" & ;;
    netsniff-ng) ip netns exec "$BR" netsniff-ng --in p0 --out "$WORK/cap.pcap" --silent \
                   >"$WORK/cap.log" 2>&1 & ;;
    et-tap-base|et-tap-skb-base) "${BASE_COLLECT:-$(dirname "$BASE_BIN")/collect}" -s -q "$P.q" "$WORK/cap.pcap" \
                   2>"$WORK/cap.log" & ;;
    et-tap-pcapng) "$COLLECT" -s --pcapng -q "$P.q" "$WORK/cap.pcap" 2>"$WORK/cap.log" & ;;
    et-tap-2q)
      "$COLLECT" -s -q "$P.q2" "$WORK/cap.2.pcap" 2>"$WORK/cap.2.log" &
      CAP_MORE=($!)
      "$COLLECT" -s -q "$P.q" "$WORK/cap.pcap" 2>"$WORK/cap.log" & ;;
    et-tap-lanes)
      CAP_MORE=()
      for k in $(seq 1 $((FANOUT_LANES - 1))); do
        "$COLLECT" -s -q "$P.q" --lane "$k" "$WORK/cap.$k.pcap" 2>"$WORK/cap.$k.log" &
        CAP_MORE+=($!)
      done
      "$COLLECT" -s -q "$P.q" --lane 0 "$WORK/cap.pcap" 2>"$WORK/cap.log" & ;;
    et-tap-*) "$COLLECT" -s -q "$P.q" "$WORK/cap.pcap" 2>"$WORK/cap.log" & ;;
  esac
  CAP_PID=$!
  # netsniff-ng needs a few seconds before it captures anything (measured: nothing in the
  # first ~2 s); the others are ready well inside a second.
  if [ "$1" = netsniff-ng ]; then sleep 4; else sleep 1.5; fi
}
count_frames() {  # frames in a capture file, 0 when there is none
  if [ -s "$1" ]; then
    capinfos -M -c -T "$1" 2>/dev/null | awk -F'\t' 'NR == 2 { print $2 }'
  else
    echo 0
  fi
}
capture_stop() {  # prints the frames captured: the fewest of the copies (et-tap-2q), the sum of the lanes
  local sys=${1:-} p n total f
  kill -INT "$CAP_PID" "${CAP_MORE[@]}" 2>/dev/null || true
  for p in "$CAP_PID" "${CAP_MORE[@]}"; do wait "$p" 2>/dev/null || true; done
  CAP_PID= CAP_MORE=()
  [ -n "${KEEP:-}" ] && cp "$WORK/cap.log" "/tmp/$P.cap.log" 2>/dev/null
  total=$(count_frames "$WORK/cap.pcap")
  case $sys in
    et-tap-2q) n=$(count_frames "$WORK/cap.2.pcap"); [ "$n" -lt "$total" ] && total=$n ;;
    et-tap-lanes)
      for f in "$WORK"/cap.[0-9]*.pcap; do [ -e "$f" ] && total=$((total + $(count_frames "$f"))); done ;;
  esac
  rm -f "$WORK"/cap.[0-9]*.pcap
  echo "$total"
}
cap_ticks() {  # CPU ticks of every capture process of the step
  local t=0 p
  for p in "$CAP_PID" "${CAP_MORE[@]}"; do t=$((t + $(ticks_of "$p"))); done
  echo "$t"
}

# ---- one step -------------------------------------------------------------------------------
# step SYSTEM KPPS FRAMES [capture]: prints one result line (also appended to $WORK/results).
step() {
  local sys=$1 kpps=$2 frames=$3 cap=${4:-}
  local s0 r0 s1 r1 k0 k1 p0 p1 c0 c1 out secs scpu captured=-
  [ -n "$cap" ] && capture_start "$sys"
  s0=$(counter "$H1" e0 tx_packets); r0=$(counter "$H2" e1 rx_packets)
  k0=$(ksoftirqd_ticks); c0=$(cap_ticks); p0=$(( $(ticks_of "$SUT_PID") + c0 ))
  out=$(ip netns exec "$H1" nice -n "$SENDER_NICE" taskset -c "$SENDER_CPU" "$BLAST" e0 "$frames" --rate $((kpps * 1000)) --flows "$BLAST_FLOWS" --batch-us "$BLAST_BATCH_US" \
        --dst $SINK --src $E0MAC --size "$SIZE" --limit 30)
  sleep 0.3
  s1=$(counter "$H1" e0 tx_packets); r1=$(counter "$H2" e1 rx_packets)
  k1=$(ksoftirqd_ticks); c1=$(cap_ticks); p1=$(( $(ticks_of "$SUT_PID") + c1 ))
  [ -n "$cap" ] && captured=$(capture_stop "$sys")
  # A tap of ours that missed frames: say where they went (queue full, kernel tap full).
  if [ -n "$cap" ] && [[ $sys == et-* ]] && [ "$captured" -lt $((s1 - s0)) ]; then
    ETHERTAP_RUN_DIR=$WORK ip netns exec "$BR" "${ENGINE_BIN:-$BIN}" eval "tap.queue.status 0 0 if.qstats" 2>&1 |
      grep -E '^ *(inserted|full|rx|xdp [a-z ]+) +[0-9]+$' | sed 's/^/#   missed frames: /' >&2
  fi
  secs=$(sed -E 's/.* in ([0-9.]+) s.*/\1/' <<<"$out")
  scpu=$(sed -E 's/.*cpu ([0-9.]+) s.*/\1/' <<<"$out")
  awk -v sys="$sys" -v kpps="$kpps" -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v t="$secs" \
      -v cpu="$scpu" -v kt=$((k1 - k0)) -v pt=$((p1 - p0)) -v ct=$((c1 - c0)) -v tck="$TCK" -v cap="$captured" 'BEGIN {
    c = cpu + (kt + pt) / tck
    loss = (s > r && s > 0) ? 100 * (s - r) / s : 0
    m = r > 0 ? 1e6 / r : 0
    capt = (cap == "-") ? "" : sprintf("  captured %7d (%6.2f %% of sent; process: system %.2f, capture %.2f)", cap, (s > 0 ? 100 * cap / s : 0), (pt - ct) / tck * m, ct / tck * m)
    printf "%-15s %-5s sent %7d in %6.3f s (%.3f Mpps)  delivered %7d (%.3f Mpps)  loss %6.2f %%  cpu %5.2f s/Mframe (sender %.2f, process %.2f, ksoftirqd %.2f)%s\n",
      sys, (kpps == 0 ? "full" : kpps "k"), s, t, s / t / 1e6, r, r / t / 1e6, loss, c * m, cpu * m, pt / tck * m, kt / tck * m, capt
  }' | tee -a "$WORK/results"
}

ladder() {  # SYSTEM [capture]: the rate ladder (stops after two lossy steps in a row) + full load
  local sys=$1 cap=${2:-} lossy=0 k line
  for k in $RATES; do
    line=$(step "$sys" "$k" "$STEP_FRAMES" "$cap")
    echo "$line"
    if awk '{ for (i = 1; i <= NF; i++) if ($i == "loss") exit !($(i + 1) > 0.1) }' <<<"$line"; then
      lossy=$((lossy + 1))
      [ $lossy -ge 2 ] && [ -z "$cap" ] && break
    else
      lossy=0
    fi
  done
  [ -n "$cap" ] || [ "$FULL_ROUNDS" = 0 ] && step "$sys" 0 "$FULL_FRAMES" "$cap"
  return 0
}

summary() {  # from $WORK/results: per system, highest lossless rate, full-load rate, cpu
  # "Highest lossless" is strict: the highest achieved rate such that it and every lower step
  # of the ladder lost at most 0.1 %.
  awk '
    function median(a, s, k,    i, j, t, v) {
      for (i = 1; i <= k; i++) v[i] = a[s, i] + 0
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return k == 0 ? 0 : (k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2)
    }
    { sys = $1; rate = $2; sent_mpps = $8; sub(/\(/, "", sent_mpps); capt = ""
      for (i = 1; i <= NF; i++) { if ($i == "loss") loss = $(i + 1); if ($i == "delivered") { del_mpps = $(i + 2); sub(/\(/, "", del_mpps) }
                                  if ($i == "cpu") cpu = $(i + 1)
                                  if ($i == "captured") { capt = $(i + 2); if (capt == "(") capt = $(i + 3); sub(/\(/, "", capt) } }
      if (!(sys in seen)) { seen[sys] = 1; order[++n] = sys; best[sys] = 0 }
      if (rate == "full") { k = ++nf[sys]; fd[sys, k] = del_mpps; fc[sys, k] = cpu; fl[sys, k] = loss
                            if (capt != "") { nc[sys]++; fcap[sys, nc[sys]] = capt } }
      else if (loss > 0.1) broken[sys] = 1
      else if (!(sys in broken) && sent_mpps + 0 > best[sys] + 0) best[sys] = sent_mpps }
    END {
      for (i = 1; i <= n; i++) { s = order[i]; full[s] = median(fd, s, nf[s]); fcpu[s] = median(fc, s, nf[s]); floss[s] = median(fl, s, nf[s]) }
      printf "\n%-15s %21s %26s %15s %18s\n", "system", "highest lossless Mpps", "delivered Mpps, full load", "loss, full load", "cpu s/Mframe full"
      for (i = 1; i <= n; i++) { s = order[i]
        printf "%-15s %21.3f %26.3f %13.2f %% %18.2f%s\n", s, best[s], full[s], floss[s], fcpu[s],
          (nc[s] ? sprintf("   captured %.2f %% (median of %d)", median(fcap, s, nc[s]), nc[s]) : "") }
      if (("linux-br" in full) && full["linux-br"] > 0) {
        printf "\nratios to linux-br (highest lossless rate, full-load delivery, cpu per frame):\n"
        for (i = 1; i <= n; i++) { s = order[i]
          printf "  %-15s %5.2fx %5.2fx %5.2fx\n", s, (best["linux-br"] > 0 ? best[s] / best["linux-br"] : 0), full[s] / full["linux-br"], (fcpu["linux-br"] > 0 ? fcpu[s] / fcpu["linux-br"] : 0) } }
    }' "$WORK/results"
}

# ---- idle -------------------------------------------------------------------------------------
# The cost of an idle ethertap in the default polling (no traffic for 10 s), and of an idle
# ethertap with the RX tap on and a `collect` attached (issue 18: both under 1 % of a core).
idle_part() {
  local e0 e1 c0 c1
  system_up et-drv
  e0=$(ticks_of "$SUT_PID"); sleep 10; e1=$(ticks_of "$SUT_PID")
  system_down et-drv
  system_up et-tap-collect
  capture_start et-tap-collect
  e0=$e0,$(ticks_of "$SUT_PID"); c0=$(ticks_of "$CAP_PID"); sleep 10
  e1=$e1,$(ticks_of "$SUT_PID"); c1=$(ticks_of "$CAP_PID")
  capture_stop et-tap-collect >/dev/null
  system_down et-tap-collect
  awk -v e0="$e0" -v e1="$e1" -v c=$((c1 - c0)) -v tck="$TCK" 'BEGIN {
    split(e0, a, ","); split(e1, b, ",")
    printf "idle          ethertap (default polling, no traffic): %d ticks in 10 s = %.2f %% of a core\n", b[1] - a[1], 100 * (b[1] - a[1]) / tck / 10
    printf "idle          ethertap, RX tap on: %.2f %% of a core; collect attached: %.2f %% of a core\n", 100 * (b[2] - a[2]) / tck / 10, 100 * c / tck / 10 }'
}

# ---- latency (issue 18) ---------------------------------------------------------------------
# Ping RTT h1 → h2 → h1 through the system while the sender offers KPPS frames/s (LAT_RATES):
# LAT_PINGS pings every LAT_INTERVAL s, ping and sender on CPU $SENDER_CPU (h1's CPU).
# The sender's frames decide whether a polling worker is awake or asleep; the pings measure
# what a frame waits for on the way (both directions). Median, 99th percentile, mean.
LAT_RATES=${LAT_RATES:-1 100}
LAT_PINGS=${LAT_PINGS:-1000}
LAT_INTERVAL=${LAT_INTERVAL:-0.001}
H1_IP=10.77.0.1 H2_IP=10.77.0.2
latency_addresses() {
  ip -n "$H1" addr replace $H1_IP/24 dev e0
  ip -n "$H2" addr replace $H2_IP/24 dev e1
}
rtt_probe() {  # SYSTEM KPPS: prints one line, also appended to $WORK/latency
  local sys=$1 kpps=$2 secs bpid
  secs=$(awk -v n="$LAT_PINGS" -v i="$LAT_INTERVAL" 'BEGIN { print n * i + 1 }')
  ip netns exec "$H1" ping -n -q -c 3 -i 0.05 -W 1 $H2_IP >/dev/null 2>&1 || true  # ARP
  ip netns exec "$H1" taskset -c "$SENDER_CPU" "$BLAST" e0 \
    "$(awk -v k="$kpps" -v s="$secs" 'BEGIN { printf "%d", k * 1000 * s }')" \
    --rate $((kpps * 1000)) --batch-us "$BLAST_BATCH_US" --dst $SINK --src $E0MAC --limit 30 >/dev/null &
  bpid=$!
  sleep 0.2
  ip netns exec "$H1" taskset -c "$SENDER_CPU" ping -n -i "$LAT_INTERVAL" -c "$LAT_PINGS" -W 1 \
      $H2_IP 2>/dev/null | sed -nE 's/.*time=([0-9.]+) ms.*/\1/p' | sort -n |
    awk -v sys="$sys" -v kpps="$kpps" -v n="$LAT_PINGS" '
      { t[++k] = $1 * 1000; sum += $1 * 1000 }
      END {
        if (k == 0) { printf "rtt %-15s %5sk  no replies (of %d)\n", sys, kpps, n; exit }
        p99 = int(k * 0.99); if (p99 < 1) p99 = 1
        printf "rtt %-15s %5sk  median %7.1f us  p99 %7.1f us  mean %7.1f us  replies %d/%d\n",
          sys, kpps, (k % 2 ? t[(k + 1) / 2] : (t[k / 2] + t[k / 2 + 1]) / 2), t[p99], sum / k, k, n
      }' | tee -a "$WORK/latency"
  wait "$bpid" || true
}
latency_part() {  # every system of SYSTEMS that forwards both ways (not the one-way redirects)
  local sys k
  latency_addresses
  for sys in ${LAT_SYSTEMS:-$SYSTEMS}; do
    case $sys in xdp-redirect*|tc-redirect|kpath-*) continue ;; esac
    system_up "$sys"
    for k in $LAT_RATES; do rtt_probe "$sys" "$k"; done
    system_down "$sys"
  done
}
latency_table() {  # from $WORK/latency: median RTT per system and rate, and against linux-br
  awk '
    { sys = $2; r = $3; if (!(sys in seen)) { seen[sys] = 1; order[++n] = sys }
      if (!(r in rs)) { rs[r] = 1; rate[++m] = r }
      med[sys, r] = ($4 == "median") ? $5 : -1; p99[sys, r] = ($4 == "median") ? $8 : -1 }
    END {
      printf "\nping RTT through the system (median / p99 us; ratio of the medians to linux-br):\n%-15s", "system"
      for (j = 1; j <= m; j++) printf " %30s", "at " rate[j] "pps"
      printf "\n"
      for (i = 1; i <= n; i++) { s = order[i]; printf "%-15s", s
        for (j = 1; j <= m; j++) { r = rate[j]
          if (med[s, r] < 0 || med[s, r] == "") { printf " %30s", "no replies"; continue }
          ref = med["linux-br", r] + 0
          printf " %12.1f / %7.1f %6s", med[s, r], p99[s, r], (ref > 0 ? sprintf("%.2fx", med[s, r] / ref) : "") }
        printf "\n" }
    }' "$WORK/latency"
}

# ---- cpu per frame at every step (issue 18) ---------------------------------------------------
# From $WORK/results: cpu s per million delivered frames of every system at every ladder step
# (full load: the median of its rounds), with the ratio to the reference: linux-br for the
# forwarding systems, tcpdump for the capturing ones (et-tap-*, netsniff-ng).
cpu_table() {
  awk '
    function median(list,    v, k, i, j, t) {
      k = split(list, v, " ")
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      return k == 0 ? -1 : (k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2)
    }
    { sys = $1; r = $2; for (i = 1; i <= NF; i++) if ($i == "cpu") c = $(i + 1)
      if (!(sys in seen)) { seen[sys] = 1; order[++n] = sys }
      if (!(r in rs)) { rs[r] = 1; rate[++m] = r }
      cpus[sys, r] = cpus[sys, r] " " c }
    END {
      printf "\ncpu s per million delivered frames at each step (ratio to linux-br, or to tcpdump for capturing systems):\n%-6s", "rate"
      for (i = 1; i <= n; i++) printf " %18s", order[i]
      printf "\n"
      for (j = 1; j <= m; j++) { r = rate[j]; printf "%-6s", r
        for (i = 1; i <= n; i++) { s = order[i]
          v = median(cpus[s, r])
          ref = (s ~ /^et-tap-/ || s == "netsniff-ng") ? "tcpdump" : "linux-br"
          rv = median(cpus[ref, r])
          if (v < 0) printf " %18s", "-"
          else printf " %10.2f %7s", v, (rv > 0 && s != ref ? sprintf("%.2fx", v / rv) : "") }
        printf "\n" }
    }' "$WORK/results"
}

echo "# $(date -u '+%F %T UTC') $(uname -r), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# frames: $SIZE B ($((SIZE + 4)) B with FCS), MTU $MTU, $STEP_FRAMES per ladder step, $FULL_FRAMES at full load; sender on CPU $SENDER_CPU, ethertap worker on CPU $WORKER_CPU"
for part in $PARTS; do
  case $part in
    forward)
      for sys in $SYSTEMS; do
        system_up "$sys"; ladder "$sys"; system_down "$sys"
        echo "#   (load average $(cut -d' ' -f1-3 /proc/loadavg))"
      done
      # Full load: one shot per system per round, the systems interleaved, so a burst of
      # load on the machine hits them all alike; the summary takes the median.
      for round in $(seq "$FULL_ROUNDS"); do
        for sys in $SYSTEMS; do system_up "$sys"; step "$sys" 0 "$FULL_FRAMES"; system_down "$sys"; done
        echo "#   (full-load round $round, load average $(cut -d' ' -f1-3 /proc/loadavg))"
      done ;;
    tap)
      for sys in $TAP_SYSTEMS; do
        system_up "$sys"; ladder "$sys" capture; system_down "$sys"
        echo "#   (load average $(cut -d' ' -f1-3 /proc/loadavg))"
      done ;;
    tapfull)
      for round in $(seq "$FULL_ROUNDS"); do
        for sys in $TAP_SYSTEMS; do system_up "$sys"; step "$sys" 0 "$FULL_FRAMES" capture; system_down "$sys"; done
        echo "#   (tap full-load round $round, load average $(cut -d' ' -f1-3 /proc/loadavg))"
      done ;;
    callgrind)
      # The worker's user-space instructions per frame: the engine runs under callgrind (one
      # output per thread), an unpaced flood keeps its RX ring full, so nearly every round
      # handles a full batch and the spin of empty rounds hardly counts.
      command -v valgrind >/dev/null || { echo "callgrind: valgrind is missing" >&2; exit 1; }
      ENGINE_BIN="valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=$WORK/cg.out $BIN"
      ENGINE_BIN=$ENGINE_BIN start_engine --xdp-mode drv
      for _ in $(seq 100); do ip -n "$BR" link show p1 | grep -q xdp && break; sleep 0.2; done
      sleep 2
      r0=$(counter "$H2" e1 rx_packets)
      ip netns exec "$H1" taskset -c "$SENDER_CPU" "$BLAST" e0 "$FULL_FRAMES" --dst $SINK --src $E0MAC >/dev/null
      sleep 1
      r1=$(counter "$H2" e1 rx_packets)
      kill "$SUT_PID"; wait "$SUT_PID" 2>/dev/null || true; SUT_PID=
      worker=$(ls "$WORK"/cg.out-* 2>/dev/null | while read -r f; do
                 echo "$(awk '/^summary:/ { print $2 }' "$f") $f"; done | sort -n | tail -1)
      set -- $worker
      echo "callgrind     worker thread: $1 instructions (user space) for $((r1 - r0)) frames forwarded = $(( $1 / (r1 - r0) )) per frame"
      callgrind_annotate --inclusive=yes "$2" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -25 ;;
    latency) latency_part ;;
    idle) idle_part ;;
  esac
done
[ -s "$WORK/results" ] && summary
[ -s "$WORK/results" ] && cpu_table
[ -s "$WORK/latency" ] && latency_table
echo "# done $(date -u '+%T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
