//! Fan-out from the real engine on a namespace lab (issue 13; docs/words-engine.md, "Fan-out:
//! several queues, and lanes"), recorded by real `collect` processes and read back with an
//! independent pcap reader and tshark:
//!
//! - two queues fed at once each get every tapped frame, byte for byte, with the same capture
//!   time;
//! - a queue's own snap length cuts its copy only (original length kept), a queue's own filter
//!   takes only the frames that match it, whole;
//! - a queue of 4 lanes with a collect on each: every flow (TCP connections and UDP flows
//!   across the bridge, both directions) is in exactly one file, in the lane of its symmetric
//!   flow hash; the files together are every tapped frame once; the connections are whole;
//! - a lane's collect killed with SIGKILL and restarted with `--lane K` goes on, and the other
//!   lanes' collects never notice;
//! - the same flow affinity for 802.1Q / QinQ tagged flows and for non-IP frames between MAC
//!   pairs, at both tap points.
//!
//! Needs root, tshark and the lab tools. The collects write nanosecond pcap with the capture
//! time (`--capture-time --nano`), so that a frame's copies in different files are recognised
//! by their tap time and bytes.

mod lab;
mod readers;

use ethertap::lab::frames;
use ethertap::wire::lane_of;
use lab::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");

// ---- Queue files -------------------------------------------------------------------------

/// The name of an extra queue of this test run: test, role and our pid, so runs never meet.
fn queue_name(test: &str, role: &str) -> String {
    format!("et-{test}-{role}-{}", std::process::id())
}

/// Removes the shared-memory files of the queues a test added, also when it fails. (The
/// default queue's file is the `LabEngine`'s to remove.) Declared before the engine, so that it
/// drops after it.
struct ShmGuard(Vec<String>);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        }
    }
}

// ---- pcap files --------------------------------------------------------------------------

/// One record of a pcap file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    /// Capture time in nanoseconds (collect `--capture-time --nano`: the engine's tap time).
    ts_ns: u64,
    /// The frame's length on the wire.
    orig_len: u32,
    /// The bytes stored.
    data: Vec<u8>,
}

/// Every record of a classic pcap file (either byte order, micro- or nanosecond), checking
/// the framing: Ethernet link type, every record complete.
fn read_pcap(path: &Path) -> Vec<Rec> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(b.len() >= 24, "{}: no pcap header", path.display());
    let (le, nano) = match u32::from_le_bytes(b[0..4].try_into().unwrap()) {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        m => panic!("{}: not a pcap file (magic {m:#x})", path.display()),
    };
    let u32_at = |at: usize| {
        let v: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    assert_eq!(u32_at(20), 1, "{}: link type Ethernet", path.display());
    let mut out = Vec::new();
    let mut at = 24;
    while at < b.len() {
        assert!(at + 16 <= b.len(), "{}: record header cut", path.display());
        let (sec, frac, incl, orig) = (u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12));
        let end = at + 16 + incl as usize;
        assert!(end <= b.len(), "{}: record data cut", path.display());
        assert!(
            incl <= orig,
            "{}: caplen {incl} > len {orig}",
            path.display()
        );
        out.push(Rec {
            ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nano { 1 } else { 1000 },
            orig_len: orig,
            data: b[at + 16..end].to_vec(),
        });
        at = end;
    }
    out
}

fn sorted(mut r: Vec<Rec>) -> Vec<Rec> {
    r.sort();
    r
}

/// Two lists of records are the same multiset; on failure says how they differ, briefly.
#[track_caller]
fn assert_same_records(got: &[Rec], want: &[Rec], what: &str) {
    let (g, w) = (sorted(got.to_vec()), sorted(want.to_vec()));
    if g == w {
        return;
    }
    let gs: BTreeSet<&Rec> = g.iter().collect();
    let ws: BTreeSet<&Rec> = w.iter().collect();
    let brief = |r: &Rec| {
        format!(
            "ts {} len {} caplen {} {:02x?}",
            r.ts_ns,
            r.orig_len,
            r.data.len(),
            &r.data[..r.data.len().min(40)]
        )
    };
    let extra: Vec<String> = gs.difference(&ws).take(3).map(|r| brief(r)).collect();
    let missing: Vec<String> = ws.difference(&gs).take(3).map(|r| brief(r)).collect();
    panic!(
        "{what}: {} records, expected {} ({} distinct, expected {} distinct); \
         first extra: {extra:#?}; first missing: {missing:#?}",
        g.len(),
        w.len(),
        gs.len(),
        ws.len()
    );
}

// ---- Flows -------------------------------------------------------------------------------

/// A flow as the lanes know it: unordered ends, so both directions are one flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Flow {
    /// IPv4: protocol and the two (address, port) ends, the smaller first (ports 0 unless TCP,
    /// UDP or SCTP).
    Ip(u8, ([u8; 4], u16), ([u8; 4], u16)),
    /// Not IP: the (innermost) Ethertype and the two MACs, the smaller first.
    Mac(u16, [u8; 6], [u8; 6]),
}

impl Flow {
    /// The TCP or UDP port of the end that is not `server`, if it is such a flow.
    fn client_port(&self, proto: u8, server: u16) -> Option<u16> {
        match *self {
            Flow::Ip(p, (_, a), (_, b)) if p == proto && (a == server || b == server) => {
                Some(if a == server { b } else { a })
            }
            _ => None,
        }
    }
}

/// The flow of a frame and the end it comes from (its source), read through up to 4 VLAN
/// tags, independently of the engine's parser.
fn flow_of(f: &[u8]) -> (Flow, Vec<u8>) {
    let be16 = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let mut at = 12;
    let mut et = be16(at);
    let mut tags = 0;
    while (et == 0x8100 || et == 0x88a8) && tags < 4 {
        at += 4;
        et = be16(at);
        tags += 1;
    }
    let l3 = at + 2;
    if et == 0x0800 && f.len() >= l3 + 20 {
        let ip = &f[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let proto = ip[9];
        let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
        let src: [u8; 4] = ip[12..16].try_into().unwrap();
        let dst: [u8; 4] = ip[16..20].try_into().unwrap();
        let (sp, dp) = if matches!(proto, 6 | 17 | 132) && !fragment && ip.len() >= ihl + 4 {
            (
                u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
                u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
            )
        } else {
            (0, 0)
        };
        let (a, b) = ((src, sp), (dst, dp));
        let from = [&src[..], &sp.to_be_bytes()].concat();
        (Flow::Ip(proto, a.min(b), a.max(b)), from)
    } else {
        let dst: [u8; 6] = f[0..6].try_into().unwrap();
        let src: [u8; 6] = f[6..12].try_into().unwrap();
        (Flow::Mac(et, dst.min(src), dst.max(src)), src.to_vec())
    }
}

/// What the lane files of a laned queue hold, checked for flow affinity: every frame is in
/// the lane its symmetric flow hash names (`lane_of`, docs/pqueue.md "Lanes"), every flow is
/// in exactly one lane file and with both directions. Returns each flow's lane and frame
/// count.
fn check_affinity(files: &BTreeMap<u32, Stopped>, lanes: u32) -> BTreeMap<Flow, (u32, usize)> {
    /// Per flow: the lanes it is in, the ends it comes from, its frames.
    #[derive(Default)]
    struct Seen {
        lanes: BTreeSet<u32>,
        ends: BTreeSet<Vec<u8>>,
        frames: usize,
    }
    let mut flows: BTreeMap<Flow, Seen> = BTreeMap::new();
    for (&lane, file) in files {
        for r in &file.recs {
            assert_eq!(
                lane_of(&r.data, lanes),
                lane,
                "a frame of flow {:?} is in lane {lane}, its hash says lane {}",
                flow_of(&r.data).0,
                lane_of(&r.data, lanes)
            );
            let (flow, from) = flow_of(&r.data);
            let e = flows.entry(flow).or_default();
            e.lanes.insert(lane);
            e.ends.insert(from);
            e.frames += 1;
        }
    }
    flows
        .into_iter()
        .map(
            |(
                flow,
                Seen {
                    lanes: in_lanes,
                    ends,
                    frames: n,
                },
            )| {
                assert_eq!(in_lanes.len(), 1, "flow {flow:?} is in lanes {in_lanes:?}");
                assert_eq!(
                    ends.len(),
                    2,
                    "flow {flow:?} has both directions in its lane file ({n} frames)"
                );
                (flow, (*in_lanes.first().unwrap(), n))
            },
        )
        .collect()
}

// ---- collect processes -------------------------------------------------------------------

/// A real `collect` writing one queue (or one lane of it) into a pcap file, with capture
/// times in nanoseconds; ended by pid only.
struct Capture {
    child: Option<Child>,
    file: PathBuf,
    /// The lane it said it consumes (laned queues).
    lane: Option<u32>,
    /// The rest of its stderr, read on a thread so that it never blocks on a full pipe.
    stderr: Option<JoinHandle<String>>,
    /// The queue it consumes.
    queue: String,
}

impl Capture {
    fn spawn(
        queue: &str,
        file: &Path,
        extra: &[String],
    ) -> (Child, mpsc::Receiver<String>, JoinHandle<String>) {
        let mut child = Command::new(COLLECT)
            .args(["--capture-time", "--nano", "-q", queue])
            .args(extra)
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collect");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(err).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first.clone());
            let mut rest = first;
            for l in lines.map_while(Result::ok) {
                rest.push('\n');
                rest.push_str(&l);
            }
            rest
        });
        (child, rx, reader)
    }

    /// A collect of a queue without lanes (the reference: everything the taps feed it),
    /// silent, once it attached and emptied the queue.
    fn whole(queue: &str, file: &Path) -> Capture {
        let (child, _, reader) = Capture::spawn(queue, file, &["-s".to_string()]);
        // A fixed pause was not enough on a loaded machine: a reset after the first frames
        // were tapped would take them from the reference.
        wait_collect_ready(child.id(), queue);
        Capture {
            child: Some(child),
            file: file.to_path_buf(),
            lane: None,
            stderr: Some(reader),
            queue: queue.to_string(),
        }
    }

    /// A collect of a queue of `lanes` lanes, claiming a free lane by itself (`lane` None) or
    /// lane K (`--lane K`); returns once it said which lane it consumes (the lane is then
    /// emptied and its own).
    fn lane(queue: &str, lanes: u32, file: &Path, lane: Option<u32>) -> Capture {
        let extra: Vec<String> = lane
            .map(|k| vec!["--lane".to_string(), k.to_string()])
            .unwrap_or_default();
        let (mut child, rx, reader) = Capture::spawn(queue, file, &extra);
        let line = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("collect -q {queue} {extra:?} said nothing in 10 s");
            }
        };
        let suffix = format!(" of {lanes} of packet queue {queue}");
        let said = line
            .strip_prefix("collect: consuming lane ")
            .and_then(|r| r.strip_suffix(&suffix))
            .and_then(|k| k.parse::<u32>().ok());
        let Some(k) = said else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("collect -q {queue} {extra:?} did not name its lane: {line:?}");
        };
        assert!(k < lanes, "{line}");
        if let Some(want) = lane {
            assert_eq!(
                k, want,
                "collect --lane {want} consumes lane {want}: {line}"
            );
        }
        Capture {
            child: Some(child),
            file: file.to_path_buf(),
            lane: Some(k),
            stderr: Some(reader),
            queue: queue.to_string(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Still running (not exited, not killed).
    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILL, and reaped (so that its lane's claim is seen to be dead).
    fn kill9(mut self) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().expect("running");
        signal(child.id(), nix::sys::signal::Signal::SIGKILL);
        let st = child.wait().expect("wait for collect");
        assert_eq!(st.signal(), Some(9), "collect died of SIGKILL: {st}");
    }
}

impl Drop for Capture {
    /// A test that failed before `stop_all` leaves no collect behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
        .expect("signal a collect of this test");
}

/// A collect that ended well, and what it wrote.
struct Stopped {
    /// The lane it consumed (None: a queue without lanes).
    lane: Option<u32>,
    file: PathBuf,
    recs: Vec<Rec>,
    /// Everything it said on stderr.
    stderr: String,
}

/// Lets the last frames arrive, stops every collect with SIGTERM and checks that each ended
/// well (its file complete); returns what each wrote, in the order given.
fn stop_all(caps: Vec<Capture>) -> Vec<Stopped> {
    std::thread::sleep(Duration::from_millis(600));
    // collect ends at SIGTERM without taking what still waits: one slowed down by a loaded
    // machine would lose the last frames of its lane.
    for c in &caps {
        wait_collect_drained(c.pid(), &c.queue);
    }
    for c in &caps {
        signal(c.pid(), nix::sys::signal::Signal::SIGTERM);
    }
    caps.into_iter()
        .map(|mut c| {
            let st = c.child.take().unwrap().wait().expect("wait for collect");
            let stderr = c.stderr.take().unwrap().join().unwrap_or_default();
            assert!(
                st.success(),
                "collect of lane {:?}: {st}; stderr: {stderr}",
                c.lane
            );
            Stopped {
                lane: c.lane,
                recs: read_pcap(&c.file),
                file: c.file.clone(),
                stderr,
            }
        })
        .collect()
}

/// Laned collects' results by lane (each lane once).
fn by_lane(all: impl IntoIterator<Item = Stopped>) -> BTreeMap<u32, Stopped> {
    let mut out = BTreeMap::new();
    for s in all {
        let lane = s.lane.expect("a laned collect");
        assert!(out.insert(lane, s).is_none(), "two collects on lane {lane}");
    }
    out
}

// ---- Traffic -----------------------------------------------------------------------------

/// `n` TCP connections from h1 to a listener in h2 on `port`, one after the other: each sends
/// `bytes` bytes, gets them echoed back, and both ends close (FIN both ways). Returns the
/// client ports.
fn tcp_connections(lab: &Lab, n: usize, port: u16, bytes: usize) -> Vec<u16> {
    let listener = lab.in_ns(&lab.h2, move || {
        TcpListener::bind((H2_IP, port)).expect("listen in h2")
    });
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("server read");
            assert_eq!(got.len(), bytes, "server got the whole request");
            s.write_all(&got).expect("server echo");
        }
    });
    let to: SocketAddrV4 = format!("{H2_IP}:{port}").parse().unwrap();
    let ports = lab.in_ns(&lab.h1, move || {
        (0..n)
            .map(|i| {
                let mut c = TcpStream::connect_timeout(&to.into(), Duration::from_secs(5))
                    .expect("connect from h1");
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let payload: Vec<u8> = (0..bytes).map(|j| (i * 31 + j * 7) as u8).collect();
                c.write_all(&payload).expect("client send");
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).expect("client read");
                assert!(back == payload, "connection {i}: the echo came back whole");
                c.local_addr().unwrap().port()
            })
            .collect::<Vec<u16>>()
    });
    server.join().expect("TCP server thread");
    ports
}

/// UDP flows from h1 to an echo server in h2 on `port`: one socket per entry of `from` (its
/// source port, 0 for any), each sending `msgs` datagrams of `size` bytes and waiting for each
/// echo. Returns the client ports.
fn udp_flows(lab: &Lab, from: Vec<u16>, port: u16, msgs: usize, size: usize) -> Vec<u16> {
    let server = lab.in_ns(&lab.h2, move || {
        UdpSocket::bind((H2_IP, port)).expect("UDP server in h2")
    });
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !done.load(Ordering::Relaxed) {
            if let Ok((n, peer)) = server.recv_from(&mut buf) {
                server.send_to(&buf[..n], peer).expect("echo");
            }
        }
    });
    let to: SocketAddrV4 = format!("{H2_IP}:{port}").parse().unwrap();
    let ports = lab.in_ns(&lab.h1, move || {
        // Every socket stays open until the last flow is done: a socket bound to port 0 and
        // closed before the next bind can hand its port on, making two flows one.
        let mut open = Vec::new();
        from.iter()
            .map(|&p| {
                let s = UdpSocket::bind((H1_IP, p)).expect("UDP socket in h1");
                s.connect(to).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let me = s.local_addr().unwrap().port();
                for j in 0..msgs {
                    let mut msg = format!("flow {me} message {j} ").into_bytes();
                    msg.resize(size, b'.');
                    s.send(&msg).unwrap();
                    let mut back = [0u8; 2048];
                    let n = s.recv(&mut back).expect("the echo of a UDP message");
                    assert!(back[..n] == msg[..], "UDP flow {me}: echo {j} whole");
                }
                open.push(s);
                me
            })
            .collect::<Vec<u16>>()
    });
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("UDP echo thread");
    ports
}

/// `per_lane` UDP source ports (from 20000 up) for each of `lanes` lanes, for flows from h1
/// to `H2_IP:server`: traffic that reaches every lane, chosen with the documented hash.
fn ports_for_lanes(per_lane: usize, lanes: u32, server: u16) -> Vec<u16> {
    let to: SocketAddrV4 = format!("{H2_IP}:{server}").parse().unwrap();
    let mut got = vec![Vec::new(); lanes as usize];
    for p in 20_000..u16::MAX {
        let from: SocketAddrV4 = format!("{H1_IP}:{p}").parse().unwrap();
        let f = frames::udp4(E1_MAC, E0_MAC, &[], from, to, b"").unwrap();
        let k = lane_of(&f, lanes) as usize;
        if got[k].len() < per_lane {
            got[k].push(p);
        }
        if got.iter().all(|g| g.len() == per_lane) {
            break;
        }
    }
    got.concat()
}

// ---- tshark ------------------------------------------------------------------------------

fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-r", file.to_str().unwrap(), "-Y", filter, "-T", "fields"];
    args.extend(["-E", "occurrence=f"]);
    for f in fields {
        args.extend(["-e", f]);
    }
    readers::clean("tshark", &args)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn flag(s: &str) -> bool {
    matches!(s, "1" | "True" | "true")
}

/// What one TCP connection of a file shows.
#[derive(Debug, Default, PartialEq)]
struct Conn {
    syn: bool,
    syn_ack: bool,
    fin_client: bool,
    fin_server: bool,
    reset: bool,
    /// Payload bytes client to server and back, retransmissions not counted.
    up: u64,
    down: u64,
}

/// Every TCP connection to `server` port in a pcap file, by client port, as tshark reads it.
fn tcp_conns(file: &Path, server: u16) -> BTreeMap<u16, Conn> {
    let rows = tshark_fields(
        file,
        &format!("tcp.port == {server} && !tcp.analysis.retransmission"),
        &[
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.flags.fin",
            "tcp.flags.reset",
            "tcp.len",
        ],
    );
    let mut out: BTreeMap<u16, Conn> = BTreeMap::new();
    for r in rows {
        let (sp, dp): (u16, u16) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        let to_server = dp == server;
        let c = out.entry(if to_server { sp } else { dp }).or_default();
        let (syn, ack, fin) = (flag(&r[2]), flag(&r[3]), flag(&r[4]));
        let len: u64 = r[6].parse().unwrap_or(0);
        c.syn |= syn && !ack && to_server;
        c.syn_ack |= syn && ack && !to_server;
        c.fin_client |= fin && to_server;
        c.fin_server |= fin && !to_server;
        c.reset |= flag(&r[5]);
        if to_server {
            c.up += len;
        } else {
            c.down += len;
        }
    }
    out
}

/// The TCP conversations `tshark -q -z conv,tcp` lists in a file.
fn tshark_conversations(file: &Path) -> usize {
    let text = readers::clean(
        "tshark",
        &["-r", file.to_str().unwrap(), "-q", "-z", "conv,tcp"],
    );
    text.lines().filter(|l| l.contains("<->")).count()
}

// ---- RPCL --------------------------------------------------------------------------------

/// `tap.queue.status`'s block for queue `name`.
fn status_block(eng: &mut LabEngine, name: &str) -> String {
    let text = eng.ok("tap.queue.status");
    let head = format!("packet queue {name}\n");
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("no block for {name} in tap.queue.status:\n{text}"));
    let rest = &text[at + head.len()..];
    let end = rest.find("packet queue ").unwrap_or(rest.len());
    format!("{head}{}", &rest[..end])
}

/// The frames the two ports received (if.stats rx) and queue `queue` took (inserted).
fn tapped_counts(eng: &mut LabEngine, queue: &str) -> (u64, u64) {
    let rx = eng.stat(0, "rx") + eng.stat(1, "rx");
    let st = ethertap::pqueue::Queue::open_existing(queue)
        .and_then(|mut q| q.status())
        .unwrap_or_else(|e| panic!("queue {queue}: {e}"));
    (rx, st.inserted)
}

/// Waits until queue `queue` took every frame the ports received since `from` (counts of
/// [`tapped_counts`]), and returns the counts then: the hosts' traffic being over does not
/// say that the engine is done with it. Read in that order, a frame counted in rx but not
/// yet tapped keeps it waiting.
fn wait_tapped(eng: &mut LabEngine, queue: &str, from: (u64, u64)) -> (u64, u64) {
    let mut now = from;
    let caught_up = wait_for(Duration::from_secs(20), || {
        now = tapped_counts(eng, queue);
        now.1.saturating_sub(from.1) >= now.0.saturating_sub(from.0)
    });
    assert!(
        caught_up,
        "queue {queue} took {} of the {} frames received since",
        now.1.saturating_sub(from.1),
        now.0.saturating_sub(from.0)
    );
    now
}

/// Fails unless the `full` counters of `queues` (summed over their lanes) are all zero.
#[track_caller]
fn assert_nothing_refused(queues: &[&str]) {
    let full: u64 = queues
        .iter()
        .map(|name| {
            ethertap::pqueue::Queue::open_existing(name)
                .and_then(|mut q| q.status())
                .unwrap_or_else(|e| panic!("status of {name}: {e}"))
                .full
        })
        .sum();
    assert_eq!(full, 0, "nothing refused");
}

/// Adds a queue of `lanes` lanes to the engine and starts a collect on each lane, each
/// claiming a free lane by itself; checks that they took every lane, one each, and that
/// `tap.queue.status` names each one's pid on its lane.
fn laned_queue_with_collects(
    eng: &mut LabEngine,
    name: &str,
    lanes: u32,
    dir: &Path,
) -> Vec<Capture> {
    eng.ok(&format!(
        "\"{name}\" tap.queue.add {lanes} \"{name}\" tap.queue.lanes"
    ));
    let caps: Vec<Capture> = (0..lanes)
        .map(|i| Capture::lane(name, lanes, &dir.join(format!("{name}.{i}.pcap")), None))
        .collect();
    let mut claimed: Vec<u32> = caps.iter().map(|c| c.lane.unwrap()).collect();
    claimed.sort();
    assert_eq!(
        claimed,
        (0..lanes).collect::<Vec<_>>(),
        "each collect claimed a lane of its own"
    );
    let block = status_block(eng, name);
    for c in &caps {
        let line = format!("lane {}", c.lane.unwrap());
        let row = block
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{line} ")))
            .unwrap_or_else(|| panic!("no {line} in\n{block}"));
        assert!(
            row.ends_with(&format!("consumer PID {}", c.pid())),
            "{line} is consumed by collect {}: {row}",
            c.pid()
        );
    }
    caps
}

/// What the lane tests start from: the lab bridge (declared last, dropped first: the collects,
/// the engine, the lab, then the queue files and the directory).
struct LanedLab {
    caps: Vec<Capture>,
    reference: Capture,
    eng: LabEngine,
    lab: Lab,
    laned: String,
    _shm: ShmGuard,
    dir: tempfile::TempDir,
}

/// A bridge lab whose engine runs `taps` (counters reset) and feeds a queue of 4 lanes with a
/// collect on each (`caps`) besides the default queue with a collect of its own (`reference`).
fn laned_lab(test: &str, taps: &str) -> LanedLab {
    let dir = tempfile::tempdir().unwrap();
    let laned = queue_name(test, "ids");
    let shm = ShmGuard(vec![laned.clone()]);
    let lab = Lab::bridge(test);
    let mut eng = lab.start_engine(test);
    eng.ok(&format!("{taps} if.stats.reset"));
    let caps = laned_queue_with_collects(&mut eng, &laned, 4, dir.path());
    let reference = Capture::whole(&eng.queue_name, &dir.path().join("all.pcap"));
    LanedLab {
        caps,
        reference,
        eng,
        lab,
        laned,
        _shm: shm,
        dir,
    }
}

// ---- Tests -------------------------------------------------------------------------------

#[test]
fn two_queues_each_get_every_tapped_frame_byte_for_byte() {
    let test = "fan2q";
    let dir = tempfile::tempdir().unwrap();
    let second = queue_name(test, "b");
    let _shm = ShmGuard(vec![second.clone()]);
    let lab = Lab::bridge(test);
    let mut eng = lab.start_engine(test);
    eng.ok(&format!("\"{second}\" tap.queue.add"));
    eng.ok("0 tap.rx.enable 1 tap.rx.enable 0 tap.tx.enable 1 tap.tx.enable if.stats.reset");
    let list = eng.ok("tap.queue.list");
    assert!(
        list.contains(&format!("{} (default)\n", eng.queue_name))
            && list.contains(&format!(
                "\n{second}\n  lanes 1 of 4096 slots, snaplen as tapped, filter none"
            )),
        "{list}"
    );
    let default = Capture::whole(&eng.queue_name, &dir.path().join("default.pcap"));
    let other = Capture::whole(&second, &dir.path().join("second.pcap"));

    let ping = lab.sh(&lab.h1, &format!("ping -c 5 -i 0.05 -W 2 {H2_IP}"));
    assert!(ping.contains("5 received"), "{ping}");
    tcp_transfer(&lab, 200_000, 5201);
    // Raw frames both ways, tagged and not, short and long.
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let there: Vec<Vec<u8>> = (0..100u32)
        .map(|i| {
            let tags: &[Tag] = if i % 3 == 0 { &[Tag::dot1q(7)] } else { &[] };
            frame(E1_MAC, E0_MAC, tags, i, 60 + (i as usize * 14) % 1455)
        })
        .collect();
    let back: Vec<Vec<u8>> = (0..60u32)
        .map(|i| frame(E0_MAC, E1_MAC, &[], 1000 + i, 64 + i as usize))
        .collect();
    s0.send_all(&there);
    s1.send_all(&back);
    assert_eq!(s1.collect(there.len(), QUIET).len(), there.len());
    assert_eq!(s0.collect(back.len(), QUIET).len(), back.len());

    let mut files = stop_all(vec![default, other]).into_iter().map(|f| f.recs);
    let (a, b) = (files.next().unwrap(), files.next().unwrap());
    let tapped: u64 = (0..2).map(|i| eng.stat(i, "rx") + eng.stat(i, "tx")).sum();
    assert!(
        eng.stat(0, "rx") >= 100 + there.len() as u64 && eng.stat(1, "rx") >= 5 + back.len() as u64,
        "ping, TCP and raw frames crossed both ways: {}",
        eng.ok("if.stats")
    );
    assert_eq!(
        a.len() as u64,
        tapped,
        "the default queue's file: every tapped frame"
    );
    assert_eq!(b.len(), a.len(), "the same count in both");
    assert!(
        a.iter()
            .chain(&b)
            .all(|r| r.data.len() == r.orig_len as usize),
        "whole frames"
    );
    // The same frames with the same tap time; each file in the order its queue got them
    // (two workers may interleave differently into two queues, so compare in tap order).
    assert_same_records(&b, &a, "the added queue against the default one");
    let in_order = a == b;
    eprintln!("the two files are in the same order: {in_order}");
    // Every frame sent raw is in both, RX on one port and TX on the other: twice.
    for f in there.iter().chain(&back) {
        for (file, recs) in [("default", &a), ("second", &b)] {
            assert_eq!(
                recs.iter().filter(|r| &r.data == f).count(),
                2,
                "{file}: raw frame {:?} in and out",
                seq_of(f, if f[12] == 0x81 { 1 } else { 0 })
            );
        }
    }
    assert_nothing_refused(&[&eng.queue_name, &second]);
}

#[test]
fn a_queues_own_snap_length_and_filter_narrow_its_copy_only() {
    let test = "fansnap";
    let dir = tempfile::tempdir().unwrap();
    let heads = queue_name(test, "heads");
    let dns = queue_name(test, "dns");
    let _shm = ShmGuard(vec![heads.clone(), dns.clone()]);
    let lab = Lab::bridge(test);
    let mut eng = lab.start_engine(test);
    eng.ok(&format!(
        "\"{heads}\" tap.queue.add \"{dns}\" tap.queue.add 96 \"{heads}\" tap.queue.snaplen"
    ));
    eng.ok(&format!("\"udp port 53\" \"{dns}\" tap.queue.filter"));
    eng.ok("0 tap.rx.enable 1 tap.rx.enable if.stats.reset");
    let list = eng.ok("tap.queue.list");
    assert!(
        list.contains(&format!(
            "{heads}\n  lanes 1 of 4096 slots, snaplen 96 bytes, filter none\n"
        )) && list.contains(&format!(
            "{dns}\n  lanes 1 of 4096 slots, snaplen as tapped, filter udp port 53\n"
        )),
        "{list}"
    );
    let files = [
        dir.path().join("all.pcap"),
        dir.path().join("heads.pcap"),
        dir.path().join("dns.pcap"),
    ];
    let caps = vec![
        Capture::whole(&eng.queue_name, &files[0]),
        Capture::whole(&heads, &files[1]),
        Capture::whole(&dns, &files[2]),
    ];

    // UDP to port 53 (frames of 342 bytes), from port 53, to 5353 and 530 (not port 53),
    // TCP to port 53 (not UDP), ICMP.
    udp_flows(&lab, vec![0; 4], 53, 5, 300);
    udp_flows(&lab, vec![53], 9053, 3, 120);
    udp_flows(&lab, vec![0; 2], 5353, 5, 300);
    udp_flows(&lab, vec![0], 530, 5, 300);
    tcp_transfer(&lab, 50_000, 53);
    let ping = lab.sh(&lab.h1, &format!("ping -c 3 -i 0.05 -s 500 -W 2 {H2_IP}"));
    assert!(ping.contains("3 received"), "{ping}");

    let mut got = stop_all(caps).into_iter().map(|s| s.recs);
    let (all, cut, dns_got) = (
        got.next().unwrap(),
        got.next().unwrap(),
        got.next().unwrap(),
    );
    assert_eq!(
        all.len() as u64,
        eng.stat(0, "rx") + eng.stat(1, "rx"),
        "the default queue: every tapped frame"
    );
    assert!(
        all.iter().all(|r| r.data.len() == r.orig_len as usize),
        "whole"
    );
    let long = all.iter().filter(|r| r.data.len() > 96).count();
    assert!(long >= 60, "frames longer than 96 bytes crossed: {long}");

    // The 96-byte queue: every frame, cut to 96 bytes, its length kept.
    let want: Vec<Rec> = all
        .iter()
        .map(|r| Rec {
            data: r.data[..r.data.len().min(96)].to_vec(),
            ..r.clone()
        })
        .collect();
    assert_same_records(&cut, &want, "the snaplen-96 queue");
    let rows = tshark_fields(&files[1], "frame", &["frame.cap_len", "frame.len"]);
    assert_eq!(rows.len(), all.len(), "tshark reads every frame of it");
    let mut lens_cut: Vec<u32> = Vec::new();
    for r in &rows {
        let (cap, len): (u32, u32) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        assert_eq!(cap, len.min(96), "caplen is min(len, 96): {r:?}");
        lens_cut.push(len);
    }
    let mut lens_all: Vec<u32> = tshark_fields(&files[0], "frame", &["frame.len"])
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    lens_cut.sort();
    lens_all.sort();
    assert_eq!(lens_cut, lens_all, "original lengths kept");

    // The filtered queue: exactly the UDP port 53 frames, whole.
    let numbers: BTreeSet<usize> = tshark_fields(&files[0], "udp.port == 53", &["frame.number"])
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 4 * 5 * 2 + 3 * 2, "UDP port 53 frames sent");
    let want: Vec<Rec> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| numbers.contains(&(i + 1)))
        .map(|(_, r)| r.clone())
        .collect();
    assert_same_records(&dns_got, &want, "the udp-port-53 queue");
    for (what, n) in [
        ("tcp.port == 53", 10),
        ("udp.port == 5353", 20),
        ("udp.port == 530", 10),
        ("icmp", 6),
    ] {
        let in_all = tshark_fields(&files[0], what, &["frame.number"]).len();
        assert!(in_all >= n, "{what}: {in_all} frames crossed");
        assert_eq!(
            tshark_fields(&files[2], what, &["frame.number"]).len(),
            0,
            "{what} is not in the udp-port-53 queue"
        );
    }
    let rows = tshark_fields(
        &files[2],
        "frame",
        &["frame.cap_len", "frame.len", "udp.port"],
    );
    assert_eq!(rows.len(), want.len());
    assert!(
        rows.iter().all(|r| r[0] == r[1]),
        "whole frames in the filtered queue: {rows:?}"
    );
    assert_nothing_refused(&[&eng.queue_name, &heads, &dns]);
}

#[test]
fn four_lanes_four_collects_each_flow_whole_in_exactly_one_lane() {
    // Bindings drop in reverse order: the collects first, the directory last.
    let LanedLab {
        dir: _dir,
        _shm,
        laned,
        lab,
        mut eng,
        reference,
        mut caps,
    } = laned_lab("fanlanes", "0 tap.rx.enable 1 tap.rx.enable");
    caps.push(reference);

    let (tcp_port, udp_port, bytes, msgs) = (6000, 7000, 3000, 6);
    let tcp: BTreeSet<u16> = tcp_connections(&lab, 40, tcp_port, bytes)
        .into_iter()
        .collect();
    let udp: BTreeSet<u16> = udp_flows(&lab, vec![0; 20], udp_port, msgs, 200)
        .into_iter()
        .collect();
    assert_eq!((tcp.len(), udp.len()), (40, 20), "distinct client ports");

    let mut stopped = stop_all(caps);
    let reference = stopped.pop().unwrap().recs;
    let lanes = by_lane(stopped);
    let flows = check_affinity(&lanes, 4);
    let tcp_seen: BTreeSet<u16> = flows
        .keys()
        .filter_map(|f| f.client_port(6, tcp_port))
        .collect();
    let udp_seen: BTreeSet<u16> = flows
        .keys()
        .filter_map(|f| f.client_port(17, udp_port))
        .collect();
    assert_eq!(tcp_seen, tcp, "every TCP connection is in a lane file");
    assert_eq!(udp_seen, udp, "every UDP flow is in a lane file");
    assert_eq!(flows.len(), 60, "nothing else crossed: {:?}", flows.keys());

    // Together the lane files are every tapped frame, once.
    let union: Vec<Rec> = lanes.values().flat_map(|s| s.recs.clone()).collect();
    assert_eq!(
        union.len() as u64,
        eng.stat(0, "rx") + eng.stat(1, "rx"),
        "if.stats rx of both ports"
    );
    assert_same_records(
        &union,
        &reference,
        "the four lane files against the default queue",
    );
    let distinct: BTreeSet<&Rec> = union.iter().collect();
    assert_eq!(distinct.len(), union.len(), "no frame in two lane files");

    // Spread: no lane more than twice the mean, in frames and in flows.
    let mean = union.len() as f64 / 4.0;
    let per_lane: Vec<(usize, usize)> = lanes
        .iter()
        .map(|(k, s)| (s.recs.len(), flows.values().filter(|f| f.0 == *k).count()))
        .collect();
    eprintln!("frames and flows per lane: {per_lane:?}");
    for &(frames, n) in &per_lane {
        assert!(
            frames as f64 <= 2.0 * mean,
            "a lane of {frames} frames, mean {mean}"
        );
        assert!(n <= 2 * 60 / 4, "a lane of {n} flows of 60");
    }

    // Per file: each connection in it complete, SYN to FIN both ways, every byte; each UDP
    // flow all its messages and echoes.
    for (k, s) in &lanes {
        let mine: BTreeSet<u16> = flows
            .iter()
            .filter(|(_, v)| v.0 == *k)
            .filter_map(|(f, _)| f.client_port(6, tcp_port))
            .collect();
        let conns = tcp_conns(&s.file, tcp_port);
        assert_eq!(
            conns.keys().copied().collect::<BTreeSet<_>>(),
            mine,
            "lane {k}: tshark sees its connections"
        );
        for (port, c) in &conns {
            // A RST may follow the closing handshake on a loaded machine (a late segment to a
            // socket that is gone); the file is no less whole for recording it.
            let whole = Conn {
                syn: true,
                syn_ack: true,
                fin_client: true,
                fin_server: true,
                reset: c.reset,
                up: bytes as u64,
                down: bytes as u64,
            };
            assert_eq!(c, &whole, "lane {k}: connection from port {port} complete");
        }
        assert_eq!(
            tshark_conversations(&s.file),
            mine.len(),
            "lane {k}: conv,tcp"
        );
        for (f, v) in flows.iter().filter(|(_, v)| v.0 == *k) {
            if f.client_port(17, udp_port).is_some() {
                assert_eq!(v.1, 2 * msgs, "lane {k}: UDP flow {f:?} whole");
            }
        }
    }
    assert_nothing_refused(&[&laned, &eng.queue_name]);
}

#[test]
fn a_lane_collect_killed_and_restarted_with_lane_k_goes_on_and_the_others_never_notice() {
    // Bindings drop in reverse order: the collects first, the directory last.
    let LanedLab {
        dir,
        _shm,
        laned,
        lab,
        mut eng,
        reference,
        mut caps,
    } = laned_lab("fankill", "0 tap.rx.enable 1 tap.rx.enable");
    // Phases by server port: 6001/7001 before the kill, 6002/7002 while lane K has no
    // consumer, 6003/7003 after the restart. The UDP flows reach every lane in each phase.
    let phase = |n: u16| {
        tcp_connections(&lab, 10, 6000 + n, 2000);
        udp_flows(&lab, ports_for_lanes(2, 4, 7000 + n), 7000 + n, 4, 200);
    };
    let counts = tapped_counts(&mut eng, &laned);
    phase(1);
    let counts = wait_tapped(&mut eng, &laned, counts);
    for c in &caps {
        wait_collect_drained(c.pid(), &laned);
    }
    let victim = caps.remove(0);
    let k = victim.lane.unwrap();
    victim.kill9();

    phase(2);
    // Lane K's frames of this phase are in the queue, and the others' consumed: only then
    // do the counts below say what a missing consumer leaves.
    wait_tapped(&mut eng, &laned, counts);
    for c in &caps {
        wait_collect_drained(c.pid(), &laned);
    }
    let st = ethertap::pqueue::Queue::open_existing(&laned)
        .and_then(|mut q| q.status())
        .unwrap();
    assert!(
        st.lanes[k as usize].waiting > 0,
        "lane {k}'s frames wait for a consumer: {}",
        status_block(&mut eng, &laned)
    );
    for c in &caps {
        assert_eq!(
            st.lanes[c.lane.unwrap() as usize].waiting,
            0,
            "the other lanes are consumed: {}",
            status_block(&mut eng, &laned)
        );
    }

    let again = Capture::lane(&laned, 4, &dir.path().join("again.pcap"), Some(k));
    let row = status_block(&mut eng, &laned)
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("lane {k} ")))
        .map(str::to_string)
        .unwrap();
    assert!(
        row.ends_with(&format!("consumer PID {}", again.pid())),
        "the restarted collect holds lane {k}: {row}"
    );
    phase(3);

    for c in &mut caps {
        assert!(c.running(), "the collect of lane {:?} still runs", c.lane);
    }
    caps.push(again);
    caps.push(reference);
    let mut stopped = stop_all(caps);
    let reference = stopped.pop().unwrap().recs;
    let again = stopped.pop().unwrap();
    let others = by_lane(stopped);
    assert_eq!(
        reference.len() as u64,
        eng.stat(0, "rx") + eng.stat(1, "rx"),
        "the default queue has every tapped frame"
    );
    let in_phase = |r: &Rec, n: u16| {
        let (f, _) = flow_of(&r.data);
        f.client_port(6, 6000 + n).is_some() || f.client_port(17, 7000 + n).is_some()
    };
    for (lane, s) in &others {
        let want: Vec<Rec> = reference
            .iter()
            .filter(|r| lane_of(&r.data, 4) == *lane)
            .cloned()
            .collect();
        assert_same_records(&s.recs, &want, &format!("lane {lane}, all three phases"));
        for n in 1..=3 {
            assert!(
                s.recs.iter().any(|r| in_phase(r, n)),
                "lane {lane} has frames of phase {n}"
            );
        }
        // It named its lane once (no re-attachment, no other lane), then its summary.
        let said: Vec<&str> = s.stderr.lines().collect();
        assert_eq!(said.len(), 2, "lane {lane}'s collect: {}", s.stderr);
        assert!(
            said[0].starts_with("collect: consuming lane "),
            "{}",
            s.stderr
        );
        assert!(
            said[1].starts_with(&format!("{} packets, ", s.recs.len()))
                && said[1].ends_with(", 0 queue drops"),
            "lane {lane}'s collect: {}",
            s.stderr
        );
    }
    let want: Vec<Rec> = reference
        .iter()
        .filter(|r| lane_of(&r.data, 4) == k && in_phase(r, 3))
        .cloned()
        .collect();
    assert!(want.len() >= 2 * 4 * 2, "phase 3 reached lane {k}");
    assert_same_records(
        &again.recs,
        &want,
        &format!("the restarted collect of lane {k}: every frame after its start"),
    );
    assert_nothing_refused(&[&laned, &eng.queue_name]);
}

#[test]
fn tagged_flows_and_non_ip_mac_pairs_each_land_in_one_lane_at_both_tap_points() {
    use frames::{numbered, raw, tcp4, udp4};
    // Bindings drop in reverse order: the collects first, the directory last.
    let LanedLab {
        dir: _dir,
        _shm,
        laned,
        lab,
        mut eng,
        reference,
        mut caps,
    } = laned_lab(
        "fanvlan",
        "0 tap.rx.enable 1 tap.rx.enable 0 tap.tx.enable 1 tap.tx.enable",
    );
    caps.push(reference);

    // Frames h1 sends (`there`) and h2 sends (`back`), each flow both ways.
    let (mut there, mut back) = (Vec::new(), Vec::new());
    let addr = |net: u8, host: u16, port: u16| {
        SocketAddrV4::new([10, 88, net, host as u8 + 1].into(), port)
    };
    for i in 0..16u16 {
        let tags = match i % 4 {
            0 => vec![Tag::dot1q(10 + i)],
            1 => vec![Tag::dot1ad(100), Tag::dot1q(20 + i)],
            2 => vec![Tag::dot1ad(200), Tag::dot1q(30), Tag::dot1q(40 + i)],
            _ => vec![
                Tag::dot1ad(300),
                Tag::dot1ad(301),
                Tag::dot1q(50),
                Tag::dot1q(60 + i),
            ],
        };
        let (a, b) = (addr(1, i, 30_000 + i), addr(2, i % 3, 53 + 1000 * (i % 2)));
        for seq in 0..4u8 {
            there.push(udp4(E1_MAC, E0_MAC, &tags, a, b, &[i as u8, seq, 0, 1]).unwrap());
            back.push(udp4(E0_MAC, E1_MAC, &tags, b, a, &[i as u8, seq, 1, 0]).unwrap());
        }
    }
    for i in 0..8u16 {
        let tags = [Tag::dot1q(500 + i)];
        let (a, b) = (addr(3, i, 40_000 + i), addr(4, 0, 443));
        for seq in 0..4u32 {
            there.push(tcp4(E1_MAC, E0_MAC, &tags, a, b, 1000 + seq, b"request").unwrap());
            back.push(tcp4(E0_MAC, E1_MAC, &tags, b, a, 9000 + seq, b"reply").unwrap());
        }
    }
    for i in 0..8u8 {
        let (ma, mb) = (Mac([0x02, 0xaa, 0, 0, 0, i]), Mac([0x02, 0xbb, 0, 0, 0, i]));
        let tags: &[Tag] = if i % 2 == 0 { &[] } else { &[Tag::dot1q(900)] };
        for seq in 0..4u32 {
            there.push(numbered(mb, ma, tags, u32::from(i) * 100 + seq, 80));
            back.push(numbered(ma, mb, tags, u32::from(i) * 100 + 50 + seq, 80));
        }
        if i < 4 {
            // The same pair under another Ethertype is another flow.
            there.push(raw(mb, ma, tags, 0x88b6, &[i; 46]));
            back.push(raw(ma, mb, tags, 0x88b6, &[i + 1; 46]));
        }
    }
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    s0.send_all(&there);
    s1.send_all(&back);
    assert_eq!(
        s1.collect(there.len(), QUIET).len(),
        there.len(),
        "bridged to h2"
    );
    assert_eq!(
        s0.collect(back.len(), QUIET).len(),
        back.len(),
        "bridged to h1"
    );

    let mut stopped = stop_all(caps);
    let reference = stopped.pop().unwrap().recs;
    let lanes = by_lane(stopped);
    let flows = check_affinity(&lanes, 4);
    let sent: BTreeSet<Flow> = there.iter().chain(&back).map(|f| flow_of(f).0).collect();
    assert_eq!(sent.len(), 16 + 8 + 8 + 4, "the flows sent");
    assert_eq!(
        flows.keys().cloned().collect::<BTreeSet<_>>(),
        sent,
        "the lane files hold these flows, and nothing else"
    );
    // Each frame twice (RX tap where it came in, TX tap where it left), both in its lane.
    for f in there.iter().chain(&back) {
        let k = lane_of(f, 4);
        let n = lanes[&k].recs.iter().filter(|r| &r.data == f).count();
        assert_eq!(n, 2, "{:?}: in and out, in lane {k}", flow_of(f).0);
    }
    let union: Vec<Rec> = lanes.values().flat_map(|s| s.recs.clone()).collect();
    assert_eq!(union.len(), 2 * (there.len() + back.len()));
    assert_eq!(
        union.len() as u64,
        (0..2)
            .map(|i| eng.stat(i, "rx") + eng.stat(i, "tx"))
            .sum::<u64>()
    );
    assert_same_records(
        &union,
        &reference,
        "the lane files against the default queue",
    );
    let used: BTreeSet<u32> = flows.values().map(|v| v.0).collect();
    assert!(used.len() >= 3, "the flows spread over the lanes: {used:?}");
    for kind in ["udp", "tcp", "mac"] {
        let lanes_of_kind: BTreeSet<u32> = flows
            .iter()
            .filter(|(f, _)| match f {
                Flow::Ip(17, ..) => kind == "udp",
                Flow::Ip(6, ..) => kind == "tcp",
                Flow::Mac(..) => kind == "mac",
                _ => false,
            })
            .map(|(_, v)| v.0)
            .collect();
        assert!(
            lanes_of_kind.len() >= 2,
            "{kind} flows in more than one lane: {lanes_of_kind:?}"
        );
    }
    assert_nothing_refused(&[&laned, &eng.queue_name]);
}
