//! Network-namespace labs for integration tests: end hosts `h1` and `h2`, the bridge
//! namespace `br` in the middle, veth pairs between them, fixed MACs, IPv6 off and static
//! neighbour entries so that the only frames on the wires are the ones a test sends.
//! Everything is removed on drop, also when the test fails.
//!
//! ```text
//!   h1: e0 10.77.0.1 ──veth── p0 (br) p1 ──veth── e1 10.77.0.2 :h2
//! ```
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const H1_IP: &str = "10.77.0.1";
pub const H2_IP: &str = "10.77.0.2";
pub const E0_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x01];
pub const E1_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x02];
pub const P0_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 1, 0x00];
pub const P1_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 1, 0x01];

pub fn mac_text(m: &[u8; 6]) -> String {
    ethertap::wire::Mac(*m).to_string()
}

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

pub struct Lab {
    pub h1: String,
    pub br: String,
    pub h2: String,
    pub bridge: bool,
    children: Vec<Child>,
    /// The namespaces and veths, built and removed by the library's lab builder (also used by
    /// `ethertap demo`); dropped after `children` are killed.
    net: ethertap::lab::Lab,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    /// Two end hosts and the bridge namespace, `br` holding `p0` (to h1) and `p1` (to h2).
    pub fn bridge(test: &str) -> Lab {
        Lab::build(test, true)
    }

    /// One end host `h1` wired to `p0` in `br` (mirror mode).
    pub fn mirror(test: &str) -> Lab {
        Lab::build(test, false)
    }

    fn build(test: &str, bridge: bool) -> Lab {
        require_root_and_tools();
        // From here on, dropping `net` removes whatever exists.
        let mut net = ethertap::lab::Lab::new(test).unwrap_or_else(|e| panic!("lab: {e:#}"));
        let mut add = |name: &str| {
            net.add_namespace(name)
                .unwrap_or_else(|e| panic!("namespace {name}: {e:#}"))
        };
        let h1 = add("h1");
        let br = add("br");
        let h2 = if bridge {
            add("h2")
        } else {
            // Not created in a mirror lab; named all the same.
            format!("{}-h2", br.trim_end_matches("-br"))
        };
        let lab = Lab {
            h1,
            br,
            h2,
            bridge,
            children: Vec::new(),
            net,
        };
        let mut pairs = vec![(&lab.h1, "e0", E0_MAC, "p0", P0_MAC, H1_IP)];
        if bridge {
            pairs.push((&lab.h2, "e1", E1_MAC, "p1", P1_MAC, H2_IP));
        }
        for (host, e, emac, p, pmac, addr) in pairs {
            use ethertap::lab::VethEnd;
            // Two queues each, whatever the CPU count, so multi-queue tests are reproducible.
            lab.net
                .veth_pair(
                    &VethEnd::new(host, e).mac(&mac_text(&emac)).queues(2),
                    &VethEnd::new(&lab.br, p).mac(&mac_text(&pmac)).queues(2),
                )
                .unwrap_or_else(|err| panic!("veth {e} - {p}: {err:#}"));
            lab.ip(host, &["addr", "add", &format!("{addr}/24"), "dev", e]);
        }
        if bridge {
            lab.ip(
                &lab.h1,
                &[
                    "neigh",
                    "add",
                    H2_IP,
                    "lladdr",
                    &mac_text(&E1_MAC),
                    "dev",
                    "e0",
                    "nud",
                    "permanent",
                ],
            );
            lab.ip(
                &lab.h2,
                &[
                    "neigh",
                    "add",
                    H1_IP,
                    "lladdr",
                    &mac_text(&E0_MAC),
                    "dev",
                    "e1",
                    "nud",
                    "permanent",
                ],
            );
        }
        lab
    }

    /// `ip -n NS ARGS...`; panics with its stderr when it fails.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        let out = self
            .net
            .ip(ns, args)
            .unwrap_or_else(|e| panic!("ip -n {ns} {args:?}: {e:#}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Makes the end hosts compute checksums themselves: with veth's checksum offload a TCP
    /// segment leaves with only a partial checksum, which nothing completes once the frame
    /// went through AF_XDP (as on a real wire).
    pub fn host_checksums_in_software(&self) {
        self.sh(&self.h1, "ethtool -K e0 tx off >/dev/null");
        if self.bridge {
            self.sh(&self.h2, "ethtool -K e1 tx off >/dev/null");
        }
    }

    /// Runs a shell command inside a namespace; panics with its stderr when it fails.
    pub fn sh(&self, ns: &str, cmd: &str) -> String {
        let out = run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", cmd]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like `sh` but returns the whole output, failing or not.
    pub fn try_sh(&self, ns: &str, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", cmd])
            .output()
            .expect("running ip netns exec")
    }

    /// Starts a process inside a namespace; it is killed (by pid) when the lab drops.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?} in {ns}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Takes back a child started with `spawn` (the caller then owns its fate).
    pub fn take_child(&mut self, pid: u32) -> Option<Child> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        Some(self.children.remove(i))
    }

    /// Hands a child back to the lab, which kills it on drop.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }

    /// Interface counter from sysfs as the namespace sees it.
    pub fn counter(&self, ns: &str, ifname: &str, which: &str) -> u64 {
        self.sh(
            ns,
            &format!("cat /sys/class/net/{ifname}/statistics/{which}"),
        )
        .trim()
        .parse()
        .expect("a counter")
    }

    /// Runs `f` on a thread that entered namespace `ns`; threads it spawns stay there.
    pub fn in_ns<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// A raw packet socket on `ifname` in `ns`, usable from any thread.
    pub fn packet_socket(&self, ns: &str, ifname: &str) -> PacketSocket {
        let ifname = ifname.to_string();
        self.in_ns(ns, move || PacketSocket::open(&ifname))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The namespaces go when `net` drops, after this.
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

/// An AF_PACKET socket bound to one interface: sends raw frames, receives the frames that
/// arrive (not the ones this host sends).
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    fn open(ifname: &str) -> PacketSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2).
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cname = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        assert!(ifindex > 0, "no interface {ifname}");
        // SAFETY: zeroed sockaddr_ll is valid; we fill the fields bind needs.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert!(
            rc == 0,
            "bind {ifname}: {}",
            std::io::Error::last_os_error()
        );
        // Tests read after sending everything: the default buffer holds only a few hundred
        // small frames.
        let size: libc::c_int = 32 << 20;
        // SAFETY: size is a valid c_int for the call.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        let s = PacketSocket { fd, ifindex };
        s.drain();
        s
    }

    /// Sends one frame, retrying while the kernel pushes back.
    pub fn send(&self, frame: &[u8]) {
        loop {
            // SAFETY: frame is valid for the call.
            let rc = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                )
            };
            if rc >= 0 {
                return;
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                _ => panic!("send: {e}"),
            }
        }
    }

    /// Sends frames paced in small bursts so no queue on the way overflows.
    pub fn send_all(&self, frames: &[Vec<u8>]) {
        for (i, f) in frames.iter().enumerate() {
            self.send(f);
            if i % 32 == 31 {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }

    fn recv_one(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: pfd valid for the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if rc <= 0 {
                return None;
            }
            let mut buf = vec![0u8; 65536];
            // SAFETY: zeroed sockaddr_ll; recvfrom fills it.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sll valid for the call.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n < 0 {
                continue;
            }
            if sll.sll_pkttype == libc::PACKET_OUTGOING || sll.sll_ifindex != self.ifindex {
                continue;
            }
            buf.truncate(n as usize);
            return Some(buf);
        }
    }

    /// Frames received until `expect` arrived or nothing came for `quiet`.
    pub fn collect(&self, expect: usize, quiet: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while got.len() < expect {
            match self.recv_one(quiet) {
                Some(f) => got.push(f),
                None => break,
            }
        }
        // Anything beyond `expect` (duplicates) shows up within a short extra wait.
        while let Some(f) = self.recv_one(Duration::from_millis(200)) {
            got.push(f);
        }
        got
    }

    /// Drops whatever is waiting.
    pub fn drain(&self) {
        while self.recv_one(Duration::from_millis(0)).is_some() {}
    }
}

/// A test frame: `dst`, `src`, optional VLAN tags (TPID, VID), Ethertype 0x88b5 (local
/// experimental), then the sequence number and padding to `len` bytes.
pub fn frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(64));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut i = 0u8;
    while f.len() < len.max(60) {
        f.push(i);
        i = i.wrapping_add(1);
    }
    f
}

/// The sequence number `frame` put after the Ethertype (after `tags` VLAN tags).
pub fn seq_of(f: &[u8], tags: usize) -> Option<u32> {
    let at = 14 + 4 * tags;
    f.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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

/// How long a queue must stay empty before a drain gives up waiting for more.
pub const QUIET: Duration = Duration::from_millis(1500);

/// One tapped packet, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Tapped {
    pub data: Vec<u8>,
    pub ifindex: u8,
    pub dir: ethertap::pqueue::Direction,
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
