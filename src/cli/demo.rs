//! `ethertap demo`: the whole job on a throw-away lab, through the same commands a user types.
//!
//! Every step runs the real binaries (`ethertap start -d`, `ethertap run`, `collect`) so that
//! the demo shows — and exercises — exactly the paths a user takes, and prints each command
//! so that the user can repeat it on real ports.

use crate::lab::frames::{self, Tag};
use crate::lab::{spawn_in_namespace, BridgeLab, PacketSocket};
use crate::wire::{self, ethertype, EtherLayer, Mac, MAX_VLAN_TAGS};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the demo did, for its caller (and the test that checks it).
pub struct DemoReport {
    /// The capture file written.
    pub pcap: PathBuf,
    /// How many frames it holds.
    pub frames_recorded: u64,
}

struct Steps {
    n: usize,
    total: usize,
    interrupted: Arc<AtomicBool>,
}

impl Steps {
    fn next(&mut self, what: &str) -> Result<()> {
        if self.interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        self.n += 1;
        println!("\n[{}/{}] {what}", self.n, self.total);
        Ok(())
    }
}

fn show(cmd: &str) {
    println!("    $ {cmd}");
}

/// The script of step 3, the same as `examples/tap-all.rpcl`.
const TAP_ALL: &str = include_str!("../../examples/tap-all.rpcl");

/// Run a step's command to its end and fail with its stderr when it fails.
///
/// The child gets a process group of its own, so that Ctrl-C on the terminal reaches only
/// the demo, which then ends the child itself (by pid) and cleans up in order. With
/// `interrupted`, the wait polls the flag, so that no step outlives a Ctrl-C by more than a
/// moment; `limit` bounds every step in time.
fn run_step(
    cmd: &mut Command,
    interrupted: Option<&AtomicBool>,
    limit: Duration,
) -> Result<Output> {
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let mut cut_short = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if interrupted.is_some_and(|f| f.load(Ordering::SeqCst)) {
            cut_short = Some("interrupted");
        } else if Instant::now() > deadline {
            cut_short = Some("took too long");
        }
        if cut_short.is_some() {
            end_child(&mut child);
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if let Some(why) = cut_short {
        bail!("{why}: {cmd:?}");
    }
    if !output.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// SIGTERM, then SIGKILL after two seconds: a child of ours, by its pid.
fn end_child(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(None) = child.try_wait() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The demo's private files: the daemon's run directory (pid file, socket, log, script) and
/// its packet queue in /dev/shm. Removed on drop, after the daemon stopped.
struct Scratch {
    run_dir: PathBuf,
    queue: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.run_dir);
        let _ = std::fs::remove_file(crate::pqueue::queue_path(&self.queue));
    }
}

/// The daemon started by the demo; stopped on drop, so Ctrl-C or a failure never leaves it.
struct Daemon {
    ethertap: PathBuf,
    env: Vec<(String, String)>,
    running: bool,
}

impl Daemon {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.ethertap);
        c.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn eval(&self, line: &str) -> Result<String> {
        let out = run_step(&mut self.command(&["eval", line]), None, CLIENT_LIMIT)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Not interruptible: this is the cleanup. `ethertap stop` exits 3 when no daemon runs
    /// (a start that failed half-way), which is fine here.
    fn stop(&mut self) -> Result<()> {
        if self.running {
            self.running = false;
            let out = self
                .command(&["stop", "--timeout", "20"])
                .process_group(0)
                .stdin(Stdio::null())
                .output()
                .context("cannot run ethertap stop")?;
            if !out.status.success() && out.status.code() != Some(3) {
                bail!(
                    "ethertap stop failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }
}

/// How long a call of the daemon's client (`eval`, `run`) may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(20);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Run the demo, writing the capture into `out_dir`.
pub fn run(out_dir: &Path) -> Result<DemoReport> {
    let started = Instant::now();
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone()).context("signal handler")?;
    }
    let result = run_steps(out_dir, &interrupted);
    // Everything the steps built is gone by now (their guards dropped), except a namespace
    // whose `ip netns add` was cut short by Ctrl-C before the lab could record it.
    remove_stray_namespaces(&format!("et-demo-{}-", std::process::id()));
    let outcome = match result {
        Ok(report) => {
            println!(
                "\ndone in {:.1} s: {} frames recorded in {}",
                started.elapsed().as_secs_f64(),
                report.frames_recorded,
                report.pcap.display()
            );
            next_steps(&report.pcap);
            Ok(report)
        }
        Err(_) if interrupted.load(Ordering::SeqCst) => {
            println!("\ninterrupted: the engine is stopped and the lab removed");
            Err(anyhow::anyhow!("interrupted"))
        }
        Err(e) => {
            println!("\nfailed: the engine is stopped and the lab removed");
            Err(e)
        }
    };
    if outcome.is_err() {
        // The placeholder created to check that the directory is writable.
        let pcap = out_dir.join("ethertap-demo.pcap");
        if std::fs::metadata(&pcap).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&pcap);
        }
    }
    outcome
}

fn run_steps(out_dir: &Path, interrupted: &Arc<AtomicBool>) -> Result<DemoReport> {
    let exe = std::env::current_exe().context("cannot find the ethertap binary")?;
    let bin_dir = exe.parent().context("binary directory")?.to_path_buf();
    let collect = bin_dir.join("collect");
    if !collect.exists() {
        bail!(
            "collect is not built next to {} (cargo build --release)",
            exe.display()
        );
    }
    let pcap = out_dir.join("ethertap-demo.pcap");
    // Fail before building anything when the capture cannot be written.
    std::fs::File::create(&pcap).with_context(|| format!("cannot write {}", pcap.display()))?;
    let mut steps = Steps {
        n: 0,
        total: 8,
        interrupted: interrupted.clone(),
    };

    println!("ethertap demo: a transparent bridge with a tap, on a throw-away lab");
    println!("    h1 (10.77.0.1) ── eth0═port0 [ ethertap ] port1═eth0 ── h2 (10.77.0.2)");
    println!("Each step shows the commands that do the same by hand (`$ ...`).");

    steps.next("building the lab: three network namespaces joined by two veth pairs")?;
    let lab = BridgeLab::new("demo")?;
    show(&format!(
        "ip netns add {}   (and {}, {})",
        lab.h1, lab.br, lab.h2
    ));
    show(&format!(
        "ip link add eth0 netns {} type veth peer name port0 netns {}",
        lab.h1, lab.br
    ));
    show(&format!(
        "ip link add port1 netns {} type veth peer name eth0 netns {}",
        lab.br, lab.h2
    ));
    show(&format!(
        "ip -n {} addr add {}/24 dev eth0   (and {}/24 in {}; every link up)",
        lab.h1,
        BridgeLab::H1_ADDR,
        BridgeLab::H2_ADDR,
        lab.h2
    ));

    // The demo's daemon must not collide with one that already runs on this machine: it gets
    // its own run directory (pid file, socket, log) and its own packet queue.
    let pid = std::process::id();
    let scratch = Scratch {
        run_dir: std::env::temp_dir().join(format!("ethertap-demo-{pid}")),
        queue: format!("ixdp.pqueue.demo-{pid}"),
    };
    std::fs::create_dir_all(&scratch.run_dir)?;
    let queue = scratch.queue.clone();
    let env = vec![
        (
            "ETHERTAP_RUN_DIR".to_string(),
            scratch.run_dir.display().to_string(),
        ),
        (
            "ETHERTAP_LOG".to_string(),
            scratch.run_dir.join("ethertap.log").display().to_string(),
        ),
    ];

    steps.next("starting the engine as a daemon on port0 and port1 (bridge mode)")?;
    // Said once, so that the commands shown stay the ones a user types.
    println!(
        "    (its pid file and socket are in {}, its packet queue is {queue}:",
        scratch.run_dir.display()
    );
    println!("    an ethertap already running on this machine is not disturbed)");
    show("ethertap start -d port0 port1");
    let mut daemon = Daemon {
        ethertap: exe.clone(),
        env: env.clone(),
        // Set before the start: a start cut short may still leave a daemon to stop.
        running: true,
    };
    let start = run_step(
        lab.lab
            .exec(
                &lab.br,
                &exe.display().to_string(),
                &[
                    "start",
                    "-d",
                    "--no-preset",
                    "--queue-name",
                    &queue,
                    BridgeLab::PORTS[0],
                    BridgeLab::PORTS[1],
                ],
            )
            .envs(env.iter().map(|(k, v)| (k, v))),
        None,
        Duration::from_secs(30),
    )?;
    print!("{}", indent(&String::from_utf8_lossy(&start.stdout)));
    show(&format!(
        "ip -n {} link show port0     # the XDP program",
        lab.br
    ));
    let link = lab
        .lab
        .ip(&lab.br, &["link", "show", BridgeLab::PORTS[0]])?;
    for l in String::from_utf8_lossy(&link.stdout)
        .lines()
        .filter(|l| l.contains("xdp id"))
    {
        println!("    {}", l.trim());
    }
    lab.host_checksums_in_software()?;

    steps.next("tapping every frame received on both ports (the preset-style RPCL)")?;
    let script = scratch.run_dir.join("tap-all.rpcl");
    std::fs::write(&script, TAP_ALL)?;
    show("ethertap run examples/tap-all.rpcl");
    let tapped = run_step(
        &mut daemon.command(&["run", &script.display().to_string()]),
        Some(interrupted),
        CLIENT_LIMIT,
    )?;
    print!("{}", indent(&String::from_utf8_lossy(&tapped.stdout)));
    daemon.eval("tap.queue.reset")?;

    steps.next("sending real traffic across the bridge")?;
    let sent = send_traffic(&lab, interrupted)?;
    for (what, n) in &sent {
        println!("    {what:<32}{n}");
    }

    steps.next("recording the tapped frames with collect")?;
    show("ethertap eval 'tap.queue.status'");
    let status = daemon.eval("tap.queue.status")?;
    print!("{}", indent(&status));
    let waiting = queue_field(&status, "inserted")?;
    show(&format!(
        "collect -n -p {waiting} {}     # keep the queued frames, stop after {waiting}",
        pcap.display()
    ));
    let mut record = Command::new(&collect);
    record
        .args(["-n", "-s", "-q", &queue, "-p", &waiting.to_string()])
        .arg(&pcap)
        .envs(env.iter().map(|(k, v)| (k, v)));
    run_step(&mut record, Some(interrupted), Duration::from_secs(15))?;

    steps.next("engine statistics")?;
    for line in [
        "if.stats",
        "0 if.mac.show",
        "1 if.mac.show",
        "0 if.etype.show",
    ] {
        show(&format!("ethertap eval '{line}'"));
        print!("{}", indent(&daemon.eval(line)?));
    }

    steps.next("what the capture holds (read back from the pcap file)")?;
    show(&format!("tshark -r {}", pcap.display()));
    let summary = summarize(&pcap)?;
    let frames: u64 = summary.values().sum();
    for (proto, n) in &summary {
        println!("    {proto:<32}{n}");
    }
    println!("    {:<32}{frames}", "total");

    steps.next("stopping the engine and removing the lab")?;
    show("ethertap stop");
    daemon.stop()?;
    show(&format!(
        "ip netns del {}   (and {}, {})",
        lab.h1, lab.br, lab.h2
    ));
    drop(daemon);
    drop(scratch);
    drop(lab);
    Ok(DemoReport {
        pcap,
        frames_recorded: frames,
    })
}

/// `ip netns del` every namespace whose name starts with `prefix` (this demo's own).
fn remove_stray_namespaces(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .process_group(0)
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn next_steps(pcap: &Path) {
    println!("\nNext:");
    for (cmd, what) in [
        (
            format!("tshark -r {}", pcap.display()),
            "the frames, decoded",
        ),
        (
            "ethertap start -d IF0 IF1".to_string(),
            "the same on two real ports: README.md, \"A five-minute tour\"",
        ),
        (
            "ethertap eval '.i'".to_string(),
            "every word: docs/rpcl.md, docs/words-engine.md",
        ),
    ] {
        println!("    {cmd:<36}# {what}");
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn queue_field(status: &str, label: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(label)).then(|| words.next()?.parse().ok())?
        })
        .with_context(|| format!("no `{label}` in tap.queue.status output"))
}

/// Ping, a TCP transfer, and UDP frames in an 802.1Q VLAN and in a QinQ VLAN pair.
fn send_traffic(lab: &BridgeLab, interrupted: &AtomicBool) -> Result<Vec<(String, String)>> {
    let l = &lab.lab;
    let mut sent = Vec::new();
    show(&format!(
        "ip netns exec {} ping -c 5 -i 0.2 {}",
        lab.h1,
        BridgeLab::H2_ADDR
    ));
    run_step(
        &mut l.exec(
            &lab.h1,
            "ping",
            &["-c", "5", "-i", "0.2", "-W", "2", BridgeLab::H2_ADDR],
        ),
        Some(interrupted),
        Duration::from_secs(15),
    )
    .context("ping across the bridge failed")?;
    sent.push((
        "ICMP echo requests h1 → h2".to_string(),
        "5 (all answered)".to_string(),
    ));

    show(&format!(
        "ip netns exec {} iperf3 -s   and   ip netns exec {} iperf3 -c {} -n 256K",
        lab.h2,
        lab.h1,
        BridgeLab::H2_ADDR
    ));
    println!("    (the demo sends exactly {TCP_BYTES} bytes over one TCP connection and counts them at h2)");
    let received = tcp_transfer(lab, interrupted)?;
    sent.push((
        "TCP transfer h1 → h2".to_string(),
        format!("{received} bytes, all received"),
    ));

    // Tagged frames straight from h1's wire (this kernel may have no VLAN interfaces):
    // addressed to h2, which drops them; the bridge forwards and taps them like any frame.
    let (src, dst) = (
        lab.mac(&lab.h1, BridgeLab::HOST_IF)?,
        lab.mac(&lab.h2, BridgeLab::HOST_IF)?,
    );
    let (src, dst) = (parse_mac(&src)?, parse_mac(&dst)?);
    let from = SocketAddrV4::new(BridgeLab::H1_ADDR.parse()?, DEMO_UDP_PORT);
    let to = SocketAddrV4::new(BridgeLab::H2_ADDR.parse()?, DEMO_UDP_PORT);
    let tagged = |tags: &[Tag]| -> Result<Vec<Vec<u8>>> {
        (0..3)
            .map(|i| {
                let payload = format!("{DEMO_PAYLOAD} {i}");
                Ok(frames::udp4(dst, src, tags, from, to, payload.as_bytes())?)
            })
            .collect()
    };
    let dot1q = tagged(&[Tag::dot1q(100)])?;
    let qinq = tagged(&[Tag::dot1ad(200), Tag::dot1q(10)])?;
    println!(
        "    (3 UDP frames in 802.1Q VLAN 100 and 3 in QinQ 802.1ad 200 / 802.1Q 10, h1 → h2,"
    );
    println!("    written to h1's eth0 through a raw socket: no VLAN interfaces needed)");
    let raw = PacketSocket::open_in(&lab.h1, BridgeLab::HOST_IF)?;
    let n1 = raw.send_all(&dot1q)?;
    let n2 = raw.send_all(&qinq)?;
    sent.push(("802.1Q VLAN 100 frames".to_string(), n1.to_string()));
    sent.push(("QinQ 200/10 frames".to_string(), n2.to_string()));
    // Let the last frames cross before the queue is read.
    std::thread::sleep(Duration::from_millis(300));
    Ok(sent)
}

/// The UDP port of the demo's tagged frames, at both ends.
const DEMO_UDP_PORT: u16 = 9999;
/// Their payload, numbered: "ethertap demo 0", "… 1", …
const DEMO_PAYLOAD: &str = "ethertap demo";

/// Bytes of the demo's TCP transfer.
const TCP_BYTES: usize = 256 * 1024;
const TCP_PORT: u16 = 5201;

/// One TCP connection from h1 to h2 carrying exactly [`TCP_BYTES`]; returns what h2 counted.
/// Done in-process rather than with iperf3, whose server resets the connection as soon as
/// the client reports that it has written its bytes, so that part of them never cross.
fn tcp_transfer(lab: &BridgeLab, interrupted: &AtomicBool) -> Result<usize> {
    use std::io::Write;
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    let addr: SocketAddr = format!("{}:{TCP_PORT}", BridgeLab::H2_ADDR).parse()?;
    let limit = Duration::from_secs(10);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = spawn_in_namespace(&lab.h2, move || -> Result<usize> {
        let listener = TcpListener::bind(addr).context("TCP server on h2")?;
        let _ = ready_tx.send(());
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + limit;
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        bail!("no TCP connection from h1");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(limit))?;
        let mut received = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match conn.read(&mut buf).context("TCP server on h2")? {
                0 => break,
                n => received += n,
            }
        }
        conn.write_all(received.to_string().as_bytes())?;
        Ok(received)
    });
    ready_rx
        .recv_timeout(limit)
        .map_err(|_| anyhow::anyhow!("the TCP server on h2 did not start"))?;
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    let client = spawn_in_namespace(&lab.h1, move || -> Result<String> {
        let mut conn = TcpStream::connect_timeout(&addr, limit).context("TCP client on h1")?;
        conn.set_write_timeout(Some(limit))?;
        conn.set_read_timeout(Some(limit))?;
        let data: Vec<u8> = (0..TCP_BYTES).map(|i| (i % 251) as u8).collect();
        conn.write_all(&data).context("TCP client on h1")?;
        conn.shutdown(Shutdown::Write)?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer)
    });
    let answer = client.join().context("TCP client on h1")??;
    let received = server.join().context("TCP server on h2")??;
    if received != TCP_BYTES || answer != TCP_BYTES.to_string() {
        bail!("TCP transfer: h2 received {received} of {TCP_BYTES} bytes");
    }
    Ok(received)
}

fn parse_mac(text: &str) -> Result<Mac> {
    Ok(text.parse::<Mac>()?)
}

/// Frames of a pcap file by protocol, through up to four VLAN tags.
pub fn summarize(pcap: &Path) -> Result<BTreeMap<String, u64>> {
    let file =
        std::fs::File::open(pcap).with_context(|| format!("cannot open {}", pcap.display()))?;
    let mut reader = pcap_file::pcap::PcapReader::new(file)
        .with_context(|| format!("{} is not a pcap file", pcap.display()))?;
    let mut counts = BTreeMap::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.with_context(|| format!("corrupt record in {}", pcap.display()))?;
        *counts.entry(classify(&packet.data)).or_insert(0) += 1;
    }
    Ok(counts)
}

fn classify(frame: &[u8]) -> String {
    let mut tags = Vec::new();
    let mut inner = None;
    for layer in wire::vlan_walk(frame) {
        if ethertype::is_vlan_tag(layer.ethertype) && usize::from(layer.level) < MAX_VLAN_TAGS {
            tags.push(if layer.ethertype == ethertype::VLAN {
                "802.1Q"
            } else {
                "802.1ad"
            });
        } else {
            inner = Some(layer);
        }
    }
    // A walk that ends on a tag ran out of frame.
    let Some(EtherLayer {
        ethertype, offset, ..
    }) = inner
    else {
        return "truncated".into();
    };
    let inner = match ethertype {
        ethertype::ARP => "ARP".to_string(),
        ethertype::IPV6 => "IPv6".to_string(),
        ethertype::IPV4 => match frame.get(offset + 9) {
            Some(1) => "IPv4 ICMP".into(),
            Some(6) => "IPv4 TCP".into(),
            Some(17) => "IPv4 UDP".into(),
            Some(p) => format!("IPv4 proto {p}"),
            None => "IPv4 (truncated)".into(),
        },
        t => format!("ethertype 0x{t:04x}"),
    };
    if tags.is_empty() {
        inner
    } else {
        format!("{} / {inner}", tags.join(" / "))
    }
}
