//! Network-namespace labs for integration tests, on the library's lab builder
//! (`ethertap::lab`, also used by `ethertap demo`): end hosts `h1` and `h2`, the bridge
//! namespace `br` in the middle, veth pairs between them, fixed MACs, two queues per end, IPv6
//! off and static neighbour entries so that the only frames on the wires are the ones a test
//! sends. Everything is removed on drop, also when the test fails. What is here on top of the
//! library panics instead of returning errors, and drives the engine in-process.
//!
//! ```text
//!   h1: e0 10.77.0.1 ──veth── p0 (br) p1 ──veth── e1 10.77.0.2 :h2
//! ```
#![allow(dead_code)]

#[path = "../collectwait/mod.rs"]
mod collectwait;
#[allow(unused_imports)]
pub use collectwait::wait_collect_ready;

use ethertap::lab::{BridgeLab, PacketSocket, Side, Wiring};
pub use ethertap::wire::Mac;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The library's numbered test frame, `frame(dst, src, tags, seq, len)`, and what reads it.
#[allow(unused_imports)]
pub use ethertap::lab::frames::{numbered as frame, seq_of, Tag};
/// A MAC as RPCL words take it and `ip` and tshark print it.
pub fn mac_text(m: impl Into<Mac>) -> String {
    m.into().to_string()
}

pub const H1_IP: &str = BridgeLab::H1_ADDR;
pub const H2_IP: &str = BridgeLab::H2_ADDR;
pub const E0_MAC: Mac = Mac([0x02, 0x77, 0, 0, 0, 0x01]);
pub const E1_MAC: Mac = Mac([0x02, 0x77, 0, 0, 0, 0x02]);
pub const P0_MAC: Mac = Mac([0x02, 0x77, 0, 0, 1, 0x00]);
pub const P1_MAC: Mac = Mac([0x02, 0x77, 0, 0, 1, 0x01]);

/// Fails the test with a clear message when it cannot run (never a silent pass).
pub fn require_root_and_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test builds a network-namespace lab and needs root"
    );
    for tool in ["ip", "ping", "ethtool"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            ok,
            "this test needs `{tool}` (packages iproute2, iputils-ping, ethtool)"
        );
    }
}

/// The tests' wiring: `e0`–`p0` and `e1`–`p1` with the MACs above, two queues each whatever
/// the CPU count (so multi-queue tests are reproducible); only `e0`–`p0` in a mirror lab.
fn wiring(bridge: bool) -> Wiring {
    let mut sides = vec![Side {
        host_if: "e0",
        host_mac: Some(E0_MAC),
        port: "p0",
        port_mac: Some(P0_MAC),
    }];
    if bridge {
        sides.push(Side {
            host_if: "e1",
            host_mac: Some(E1_MAC),
            port: "p1",
            port_mac: Some(P1_MAC),
        });
    }
    Wiring {
        sides,
        queues: Some(2),
        static_neighbours: true,
    }
}

/// A lab of the tests' wiring (see the module docs).
pub struct Lab {
    pub h1: String,
    pub br: String,
    pub h2: String,
    pub bridge: bool,
    /// The namespaces, veths and processes, removed and ended on drop by the library.
    net: BridgeLab,
}

impl Lab {
    /// Two end hosts and the bridge namespace, `br` holding `p0` (to h1) and `p1` (to h2).
    pub fn bridge(test: &str) -> Lab {
        Lab::build(test, true)
    }

    /// One end host `h1` wired to `p0` in `br` (mirror mode); `h2` is named but not created.
    pub fn mirror(test: &str) -> Lab {
        Lab::build(test, false)
    }

    fn build(test: &str, bridge: bool) -> Lab {
        require_root_and_tools();
        let net = BridgeLab::build(test, wiring(bridge)).unwrap_or_else(|e| panic!("lab: {e}"));
        Lab {
            h1: net.h1.clone(),
            br: net.br.clone(),
            h2: net.h2.clone(),
            bridge,
            net,
        }
    }

    /// `ip -n NS ARGS...`; panics with its stderr when it fails.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let out = self
            .net
            .lab
            .ip(ns, args)
            .unwrap_or_else(|e| panic!("ip -n {ns} {args:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// See `BridgeLab::host_checksums_in_software`.
    pub fn host_checksums_in_software(&self) {
        self.net
            .host_checksums_in_software()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn sh_command(&self, ns: &str, cmd: &str) -> Command {
        self.net.lab.exec(ns, "sh", &["-c", cmd])
    }

    /// Runs a shell command inside a namespace; panics with its stderr when it fails.
    pub fn sh(&self, ns: &str, cmd: &str) -> String {
        let out = ethertap::lab::run_checked(&mut self.sh_command(ns, cmd))
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like `sh` but returns the whole output, failing or not.
    pub fn try_sh(&self, ns: &str, cmd: &str) -> Output {
        self.sh_command(ns, cmd)
            .output()
            .expect("running ip netns exec")
    }

    /// Starts a process inside a namespace, its stdout and stderr piped; the lab ends it (by
    /// pid) when it drops.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> u32 {
        let mut cmd = self.net.lab.exec(ns, args[0], &args[1..]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.net
            .lab
            .spawn(&mut cmd)
            .unwrap_or_else(|e| panic!("starting {args:?} in {ns}: {e}"))
    }

    /// Takes back a child started with `spawn` (the caller then owns its fate).
    pub fn take_child(&mut self, pid: u32) -> Option<Child> {
        self.net.lab.take_child(pid)
    }

    /// Hands a child back to the lab, which ends it on drop.
    pub fn adopt(&mut self, child: Child) {
        self.net.lab.adopt(child);
    }

    /// Interface counter from sysfs as the namespace sees it.
    pub fn counter(&self, ns: &str, ifname: &str, which: &str) -> u64 {
        let text = self
            .net
            .lab
            .interface_file(ns, ifname, &format!("statistics/{which}"))
            .unwrap_or_else(|e| panic!("{e}"));
        text.parse()
            .unwrap_or_else(|_| panic!("{ifname} {which}: {text:?} is not a counter"))
    }

    /// Runs `f` on a thread that entered namespace `ns`; threads it spawns stay there.
    pub fn in_ns<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        ethertap::lab::in_namespace(ns, f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A raw packet socket on `ifname` in `ns`, usable from any thread.
    pub fn packet_socket(&self, ns: &str, ifname: &str) -> Wire {
        Wire(PacketSocket::open_in(ns, ifname).unwrap_or_else(|e| panic!("{e}")))
    }
}

/// The library's packet socket for tests: a failure fails the test.
pub struct Wire(pub PacketSocket);

impl Wire {
    /// Sends one frame, waiting while the kernel pushes back.
    pub fn send(&self, frame: &[u8]) {
        self.0.send(frame).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends frames in order, paced so that no queue on the way overflows.
    pub fn send_all(&self, frames: &[Vec<u8>]) {
        self.0.send_all(frames).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Frames received until `expect` arrived or nothing came for `quiet`, and any
    /// duplicates that follow shortly.
    pub fn collect(&self, expect: usize, quiet: Duration) -> Vec<Vec<u8>> {
        self.0
            .collect(expect, quiet)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drops whatever is waiting.
    pub fn drain(&self) {
        self.0.drain().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The engine running in-process inside the lab's bridge namespace, with a VM holding every
/// engine word, as the daemon has it.
pub struct LabEngine {
    pub engine: Option<ethertap::ixdp::Engine>,
    pub vm: ethertap::rpcl::Vm,
    pub queue_name: String,
}

impl Lab {
    /// Starts the engine on `p0` (and `p1` in a bridge lab) with its own packet queue.
    pub fn start_engine(&self, test: &str) -> LabEngine {
        let mut ifs = vec!["p0".to_string()];
        if self.bridge {
            ifs.push("p1".to_string());
        }
        let mut config = ethertap::ixdp::EngineConfig::new(ifs);
        let queue_name = format!("et-{test}-{}", std::process::id());
        config.queue_name = Some(queue_name.clone());
        self.start_engine_with(config)
    }

    pub fn start_engine_with(&self, config: ethertap::ixdp::EngineConfig) -> LabEngine {
        let queue_name = config
            .queue_name
            .clone()
            .unwrap_or_else(|| ethertap::pqueue::DEFAULT_NAME.to_string());
        let engine = self
            .in_ns(&self.br, move || ethertap::ixdp::Engine::start(config))
            .unwrap_or_else(|e| panic!("engine start: {e}"));
        self.host_checksums_in_software();
        let vm = ethertap::cli::engine_vm(&engine, &queue_name);
        LabEngine {
            engine: Some(engine),
            vm,
            queue_name,
        }
    }
}

impl LabEngine {
    /// Runs one line; Ok(output) or Err(error line).
    pub fn eval(&mut self, line: &str) -> Result<String, String> {
        let mut out = Vec::new();
        let r = self.vm.eval_line(line, &mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        match r {
            Ok(()) => Ok(text),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs lines that must succeed.
    pub fn ok(&mut self, line: &str) -> String {
        self.eval(line)
            .unwrap_or_else(|e| panic!("`{line}` failed: {e}"))
    }

    /// One counter of `if.stats` for interface `ifidx` (labels as printed: rx, tx, drop, ...).
    pub fn stat(&mut self, ifidx: usize, label: &str) -> u64 {
        let text = self.ok("if.stats");
        parse_stat(&text, ifidx, label)
            .unwrap_or_else(|| panic!("no `{label}` for interface {ifidx} in:\n{text}"))
    }

    /// A line of `if.qstats` output, by its label.
    pub fn qstat(&mut self, ifidx: usize, queue: usize, label: &str) -> u64 {
        let text = self.ok(&format!("{queue} {ifidx} if.qstats"));
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(label)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"))
    }

    /// Sends `probe` from h1 until port 0 forwards in the kernel: the lab's veths report a
    /// carrier only once the kernel's link watch ran, up to a second after they came up, and
    /// the kernel path waits for it. Returns the kernel-path frames of port 0 so far.
    pub fn wait_for_kernel_path(&mut self, lab: &Lab, probe: &[u8]) -> u64 {
        let tx = lab.packet_socket(&lab.h1, "e0");
        let ready = wait_for(Duration::from_secs(5), || {
            tx.send(probe);
            std::thread::sleep(Duration::from_millis(20));
            self.qstat(0, 0, "xdp kernel path") > 0
        });
        assert!(ready, "port 0 never forwarded in the kernel");
        self.qstat(0, 0, "xdp kernel path")
    }

    pub fn stop(&mut self) {
        if let Some(e) = self.engine.take() {
            e.stop();
        }
    }
}

impl Drop for LabEngine {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.queue_name));
    }
}

/// The value of `label` in interface `ifidx`'s block of `if.stats` output.
pub fn parse_stat(text: &str, ifidx: usize, label: &str) -> Option<u64> {
    let mut in_block = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_block = line.split_whitespace().next() == Some(&ifidx.to_string());
            continue;
        }
        if in_block {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix(label) {
                if rest.starts_with("  ") {
                    return rest.split_whitespace().next()?.parse().ok();
                }
            }
        }
    }
    None
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
/// Sends `bytes` bytes over one TCP connection from h1 to h2 (a test pattern, its digest
/// echoed back) and checks that every byte arrived; returns the bytes h2 received.
pub fn tcp_transfer(lab: &Lab, bytes: u32, port: u16) -> u64 {
    use std::io::{Read, Write};
    let digest = |sum: u64, b: &[u8]| {
        b.iter()
            .fold(sum, |a, &x| a.wrapping_mul(31).wrapping_add(x as u64))
    };
    let listener = lab.in_ns(&lab.h2, move || {
        std::net::TcpListener::bind((H2_IP, port)).expect("listen in h2")
    });
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let (mut total, mut sum) = (0u64, 0u64);
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
            sum = digest(sum, &buf[..n]);
        }
        s.write_all(format!("{total} {sum}").as_bytes())
            .expect("reply");
        (total, sum)
    });
    let payload: Vec<u8> = (0..bytes).map(|i| (i * 7 + i / 255) as u8).collect();
    let expect_sum = digest(0, &payload);
    let mut client = lab.in_ns(&lab.h1, move || {
        std::net::TcpStream::connect_timeout(
            &format!("{H2_IP}:{port}").parse().unwrap(),
            Duration::from_secs(5),
        )
        .expect("connect from h1")
    });
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client.write_all(&payload).expect("send");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).expect("reply");
    drop(client);
    let (total, sum) = server.join().expect("server thread");
    assert_eq!(total, payload.len() as u64);
    assert_eq!(sum, expect_sum);
    assert_eq!(reply, format!("{total} {sum}"));
    total
}

pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Compares frame lists and reports the first difference briefly (frame dumps are huge).
#[track_caller]
pub fn assert_frames(got: &[Vec<u8>], expect: &[Vec<u8>], what: &str) {
    if got == expect {
        return;
    }
    let first = got
        .iter()
        .zip(expect)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expect.len()));
    let show = |l: &[Vec<u8>]| {
        l.get(first)
            .map(|f| {
                format!(
                    "len {} seq {:?} {:02x?}",
                    f.len(),
                    seq_of(f, 0),
                    &f[..f.len().min(24)]
                )
            })
            .unwrap_or_else(|| "-".into())
    };
    panic!(
        "{what}: got {} frames, expected {}; first difference at {first}: got {} / expected {}",
        got.len(),
        expect.len(),
        show(got),
        show(expect)
    );
}

/// The sequence numbers of numbered frames (untagged), sorted.
pub fn seqs(frames: &[Vec<u8>]) -> Vec<u32> {
    let mut s: Vec<u32> = frames.iter().filter_map(|f| seq_of(f, 0)).collect();
    s.sort();
    s
}

/// How long a queue must stay empty before a drain gives up waiting for more.
pub const QUIET: Duration = Duration::from_millis(1500);

/// One tapped packet, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Tapped {
    pub data: Vec<u8>,
    pub ifindex: u8,
    pub dir: ethertap::pqueue::Direction,
    /// Wall-clock time of the capture, ns since the epoch.
    pub ts_ns: u64,
}

/// Everything in the queue until `expect` packets came or it stayed empty for a while.
pub fn drain_queue(name: &str, expect: usize) -> Vec<Tapped> {
    use ethertap::pqueue::{Batch, Consumer};
    let mut c = Consumer::attach(name).expect("attach to the packet queue");
    let mut batch = Batch::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let n = c
            .pop_wait(&mut batch, 256, Duration::from_millis(100))
            .expect("pop");
        for p in batch.iter() {
            assert_eq!(
                p.orig_len as usize,
                p.data.len(),
                "small frames are not truncated"
            );
            out.push(Tapped {
                data: p.data.to_vec(),
                ifindex: p.ifindex,
                dir: p.dir,
                ts_ns: p.ts_ns,
            });
        }
        let enough = out.len() >= expect && quiet_since.elapsed() > Duration::from_millis(300);
        if n > 0 {
            quiet_since = Instant::now();
        } else if enough || quiet_since.elapsed() > QUIET {
            break;
        }
    }
    out
}

/// `collect` (the real binary) writing the engine's queue `queue` into `file` (pcap, or pcapng
/// for a `.pcapng` name) from before the traffic until [`Collect::stop`].
pub struct Collect(Option<Child>, String);

impl Collect {
    /// Starts it and waits until it attached and reset the queue.
    pub fn start(queue: &str, file: &str) -> Collect {
        let child = Command::new(env!("CARGO_BIN_EXE_collect"))
            .args(["-s", "-q", queue, file])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collect");
        // A fixed pause was not enough on a loaded machine: a collect that resets the queue
        // after the test's first frames were tapped throws them away.
        wait_collect_ready(child.id(), queue);
        Collect(Some(child), queue.to_string())
    }

    /// Its process id (to stop and continue it).
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.as_ref().expect("running").id() as i32)
    }

    /// Lets the last frames arrive, stops it with SIGTERM and checks it ended well (the file
    /// complete).
    pub fn stop(mut self) {
        let child = self.0.take().expect("running");
        std::thread::sleep(Duration::from_millis(400));
        // collect ends at SIGTERM without taking what still waits: a collect slowed down by a
        // loaded machine would lose frames the test then misses in the file.
        wait_collect_drained(child.id(), &self.1);
        let out = signal_and_wait(child, nix::sys::signal::Signal::SIGTERM);
        assert!(
            out.status.success(),
            "collect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Collect {
    /// A test that failed before `stop` leaves no collect behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until nothing waits any more in what collect `pid` consumes of `queue` (its lane,
/// or the whole queue when it has no lanes).
pub fn wait_collect_drained(pid: u32, queue: &str) {
    let waiting = || {
        let st = ethertap::pqueue::Queue::open_existing(queue)
            .and_then(|mut q| q.status())
            .unwrap_or_else(|e| panic!("queue {queue}: {e}"));
        if st.lanes.is_empty() {
            st.waiting()
        } else {
            st.lanes
                .iter()
                .filter(|l| l.consumer == Some(pid))
                .map(|l| l.waiting)
                .sum()
        }
    };
    assert!(
        wait_for(Duration::from_secs(20), || waiting() == 0),
        "collect {pid} left {} frames waiting in queue {queue}",
        waiting()
    );
}

/// Sends `signal` to `child` (a process this test started) and waits for its end and output.
pub fn signal_and_wait(child: Child, signal: nix::sys::signal::Signal) -> Output {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .expect("signal a child of this test");
    child
        .wait_with_output()
        .expect("wait for a child of this test")
}

/// The offset of the one bit fault injection flipped in `recv`, a copy of `sent`: fails unless
/// the lengths agree and exactly one bit of one byte differs.
pub fn one_flipped_bit(sent: &[u8], recv: &[u8]) -> usize {
    assert_eq!(sent.len(), recv.len());
    let diffs: Vec<(usize, u32)> = sent
        .iter()
        .zip(recv)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i, (a ^ b).count_ones()))
        .collect();
    assert_eq!(diffs.len(), 1, "one byte differs: {diffs:?}");
    assert_eq!(diffs[0].1, 1, "in one bit");
    diffs[0].0
}

/// `collect -p N -n -s -q QUEUE FILE` (the real binary) run to its end: N packets of the
/// engine's queue, taken without resetting it, in `file`; fails unless it ends well.
pub fn collect_packets(queue: &str, n: usize, file: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_collect"))
        .args(["-p", &n.to_string(), "-n", "-s", "-q", queue])
        .arg(file)
        .output()
        .expect("run collect");
    assert!(
        out.status.success(),
        "collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
