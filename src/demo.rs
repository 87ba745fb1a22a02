//! `ethertap demo`: the whole job on a throw-away lab, through the same commands a user types.
//!
//! Every step runs the real binaries (`ethertap start -d`, `ethertap run`, `collect`) so that
//! the demo shows — and exercises — exactly the paths a user takes, and prints each command
//! so that the user can repeat it on real ports.

use crate::lab::{run_checked, BridgeLab};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the demo did, for its caller (and the test that checks it).
pub struct DemoReport {
    pub pcap: PathBuf,
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
        let out = run_checked(&mut self.command(&["eval", line]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn stop(&mut self) -> Result<()> {
        if self.running {
            self.running = false;
            run_checked(&mut self.command(&["stop"]))?;
        }
        Ok(())
    }
}

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
    let exe = std::env::current_exe().context("cannot find the ethertap binary")?;
    let bin_dir = exe.parent().context("binary directory")?.to_path_buf();
    let collect = bin_dir.join("collect");
    if !collect.exists() {
        bail!(
            "collect is not built next to {} (cargo build --release)",
            exe.display()
        );
    }
    let mut steps = Steps {
        n: 0,
        total: 8,
        interrupted: interrupted.clone(),
    };

    println!("ethertap demo: a transparent bridge with a tap, on a throw-away lab");
    println!("    h1 (10.77.0.1) ── eth0═port0 [ ethertap ] port1═eth0 ── h2 (10.77.0.2)");

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

    // The demo's daemon must not collide with one that already runs on this machine.
    let run_dir = std::env::temp_dir().join(format!("ethertap-demo-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    let queue = format!("ixdp.pqueue.demo-{}", std::process::id());
    let env = vec![
        (
            "ETHERTAP_RUN_DIR".to_string(),
            run_dir.display().to_string(),
        ),
        (
            "ETHERTAP_LOG".to_string(),
            run_dir.join("ethertap.log").display().to_string(),
        ),
    ];

    steps.next("starting the engine as a daemon on port0 and port1 (bridge mode)")?;
    show("ethertap start -d port0 port1");
    let mut daemon = Daemon {
        ethertap: exe.clone(),
        env: env.clone(),
        running: false,
    };
    let start = run_checked(
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
    )?;
    daemon.running = true;
    print!("{}", indent(&String::from_utf8_lossy(&start.stdout)));
    lab.host_checksums_in_software()?;

    steps.next("tapping every frame received on both ports (the preset-style RPCL)")?;
    let script = run_dir.join("tap-all.rpcl");
    std::fs::write(
        &script,
        "# tap every frame received on both ports\n0 tap.rx.enable\n1 tap.rx.enable\ntap.hash.reset\n",
    )?;
    show("ethertap run examples/tap-all.rpcl     # 0 tap.rx.enable 1 tap.rx.enable");
    run_checked(&mut daemon.command(&["run", &script.display().to_string()]))?;
    daemon.eval("tap.queue.reset")?;

    steps.next("sending real traffic across the bridge")?;
    let sent = send_traffic(&lab, &interrupted)?;
    for (what, n) in &sent {
        println!("    {what}: {n}");
    }

    steps.next("recording the tapped frames with collect")?;
    let status = daemon.eval("tap.queue.status")?;
    print!("{}", indent(&status));
    let waiting = queue_field(&status, "inserted")?;
    let pcap = out_dir.join("ethertap-demo.pcap");
    show(&format!(
        "collect -n -p {waiting} {}     # keep the queued frames, stop after {waiting}",
        pcap.display()
    ));
    let mut child = Command::new(&collect)
        .args(["-n", "-s", "-q", &queue, "-p", &waiting.to_string()])
        .arg(&pcap)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start collect")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline || interrupted.load(Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !exit.success() {
        bail!("collect failed ({exit})");
    }

    steps.next("engine statistics")?;
    for line in ["if.stats", "0 if.mac.show", "0 if.etype.show"] {
        show(&format!("ethertap eval '{line}'"));
        print!("{}", indent(&daemon.eval(line)?));
    }

    steps.next("what the capture holds (read back from the pcap file)")?;
    let summary = summarize(&pcap)?;
    let frames: u64 = summary.values().sum();
    for (proto, n) in &summary {
        println!("    {proto:<32}{n}");
    }
    println!("    {:<32}{frames}", "total");
    show(&format!("tshark -r {}", pcap.display()));

    steps.next("stopping the engine and removing the lab")?;
    show("ethertap stop");
    daemon.stop()?;
    drop(lab);
    let _ = std::fs::remove_dir_all(&run_dir);
    println!(
        "\ndone in {:.1} s: {} frames recorded in {}",
        started.elapsed().as_secs_f64(),
        frames,
        pcap.display()
    );
    Ok(DemoReport {
        pcap,
        frames_recorded: frames,
    })
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

/// Ping, a TCP transfer, and pings over an 802.1Q VLAN and an 802.1ad (QinQ) VLAN pair.
fn send_traffic(lab: &BridgeLab, interrupted: &AtomicBool) -> Result<Vec<(String, String)>> {
    let l = &lab.lab;
    let mut sent = Vec::new();
    show(&format!(
        "ip netns exec {} ping -c 5 -i 0.2 {}",
        lab.h1,
        BridgeLab::H2_ADDR
    ));
    run_checked(&mut l.exec(
        &lab.h1,
        "ping",
        &["-c", "5", "-i", "0.2", "-W", "2", BridgeLab::H2_ADDR],
    ))
    .context("ping across the bridge failed")?;
    sent.push((
        "ICMP echo requests h1 → h2".to_string(),
        "5 (all answered)".to_string(),
    ));

    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    show(&format!(
        "ip netns exec {} iperf3 -c {} -n 256K     (iperf3 -s in {})",
        lab.h1,
        BridgeLab::H2_ADDR,
        lab.h2
    ));
    let mut server = l.exec(&lab.h2, "iperf3", &["-s", "-p", "5201"]);
    server.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = server
        .spawn()
        .context("cannot start iperf3 (apt-get install iperf3)")?;
    let mut result = Err(anyhow::anyhow!("iperf3 server did not come up"));
    for _ in 0..20 {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // Bounded in time: a transfer that stalls must not hang the demo.
        result = run_checked(&mut l.exec(
            &lab.h1,
            "timeout",
            &[
                "20",
                "iperf3",
                "-c",
                BridgeLab::H2_ADDR,
                "-p",
                "5201",
                "-n",
                "256K",
                "--connect-timeout",
                "1000",
            ],
        ));
        if result.is_ok() {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    result.context("TCP transfer across the bridge failed")?;
    sent.push(("TCP transfer h1 → h2".to_string(), "256 KiB".to_string()));

    // Tagged frames straight from h1's wire (this kernel may have no VLAN interfaces):
    // addressed to h2, which drops them; the bridge forwards and taps them like any frame.
    let (src, dst) = (lab.mac(&lab.h1, "eth0")?, lab.mac(&lab.h2, "eth0")?);
    let (src, dst) = (parse_mac(&src)?, parse_mac(&dst)?);
    let dot1q: Vec<Vec<u8>> = (0..3)
        .map(|i| tagged_udp_frame(dst, src, &[(0x8100, 100)], i))
        .collect();
    let qinq: Vec<Vec<u8>> = (0..3)
        .map(|i| tagged_udp_frame(dst, src, &[(0x88a8, 200), (0x8100, 10)], i))
        .collect();
    show("3 UDP frames in 802.1Q VLAN 100, and 3 in QinQ 802.1ad 200 / 802.1Q 10, h1 → h2 (raw socket)");
    let n1 = l.send_raw(&lab.h1, "eth0", dot1q)?;
    let n2 = l.send_raw(&lab.h1, "eth0", qinq)?;
    sent.push(("802.1Q VLAN 100 frames".to_string(), n1.to_string()));
    sent.push(("QinQ 200/10 frames".to_string(), n2.to_string()));
    // Let the last frames cross before the queue is read.
    std::thread::sleep(Duration::from_millis(300));
    Ok(sent)
}

fn parse_mac(text: &str) -> Result<[u8; 6]> {
    crate::tap::parse_mac(text).map_err(|e| anyhow::anyhow!(e))
}

/// An IPv4/UDP frame from 10.77.0.1 to 10.77.0.2 behind the given VLAN tags (TPID, VID).
fn tagged_udp_frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], seq: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let payload = b"ethertap demo";
    let udp_len = 8 + payload.len() as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, seq, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2,
    ];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    // UDP checksum 0: none (allowed for IPv4).
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
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
    let mut offset = 12;
    let mut tags = Vec::new();
    let ethertype = loop {
        let Some(t) = frame.get(offset..offset + 2) else {
            return "truncated".into();
        };
        let t = u16::from_be_bytes([t[0], t[1]]);
        if (t == 0x8100 || t == 0x88a8) && tags.len() < 4 {
            tags.push(if t == 0x8100 { "802.1Q" } else { "802.1ad" });
            offset += 4;
        } else {
            break t;
        }
    };
    let l3 = offset + 2;
    let inner = match ethertype {
        0x0806 => "ARP".to_string(),
        0x86dd => "IPv6".to_string(),
        0x0800 => match frame.get(l3 + 9) {
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
