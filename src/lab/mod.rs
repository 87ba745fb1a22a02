//! Throw-away network labs: network namespaces joined by veth pairs, with unique names, and
//! removed again when the [`Lab`] is dropped (also after a failed test or an interrupted demo).
//!
//! Used by `ethertap demo` and by the integration tests, so that both exercise the engine the
//! same way a user's two-port box would: two end hosts and the bridge between them
//! ([`BridgeLab`]), raw frames ([`frames`]) sent and received through packet sockets
//! ([`PacketSocket`]).

mod error;
pub mod frames;
mod packet;

pub use error::LabError;
pub use packet::{Outbox, PacketSocket, MAX_BATCH};

use crate::wire::Mac;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a process started in a lab gets to end after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(3);

/// Run `ip` (or any command) and fail with its stderr when it fails.
pub fn run_checked(cmd: &mut Command) -> Result<Output, LabError> {
    let out = cmd.output().map_err(|source| LabError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(LabError::Failed {
            command: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// [`run_checked`], saying which package to install when the program is missing.
fn run_tool(
    cmd: &mut Command,
    tool: &'static str,
    package: &'static str,
) -> Result<Output, LabError> {
    run_checked(cmd).map_err(|e| match e {
        LabError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            LabError::MissingTool { tool, package }
        }
        e => e,
    })
}

/// A thread that entered a network namespace (see [`spawn_in_namespace`]).
pub struct NsThread<T> {
    ns: String,
    handle: JoinHandle<Result<T, LabError>>,
}

impl<T> NsThread<T> {
    /// Waits for the thread: its result, or why it could not enter the namespace or failed.
    pub fn join(self) -> Result<T, LabError> {
        self.handle.join().map_err(|panic| LabError::Thread {
            ns: self.ns,
            msg: panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".to_string()),
        })?
    }
}

/// Runs `f` on a new thread that entered network namespace `ns` first (`setns` changes only
/// the calling thread); threads it spawns stay there, sockets it opens stay bound there.
pub fn spawn_in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> NsThread<T> {
    let name = ns.to_string();
    let handle = std::thread::spawn(move || {
        let path = format!("/run/netns/{name}");
        let fail = |source| LabError::Namespace {
            ns: name.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(fail)?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| fail(e.into()))?;
        Ok(f())
    });
    NsThread {
        ns: ns.to_string(),
        handle,
    }
}

/// [`spawn_in_namespace`] and wait for it.
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    spawn_in_namespace(ns, f).join()
}

/// A set of namespaces and the processes started in them.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    /// A lab whose names start with `et-<tag>-<pid>`; fails clearly when not root or `ip` is missing.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        run_tool(Command::new("ip").arg("-V"), "ip", "iproute2")?;
        Ok(Lab {
            prefix: format!("et-{tag}-{}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        })
    }

    /// The name namespace `name` gets (or would get) in this lab.
    pub fn namespace_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Create namespace `<prefix>-<name>` with its loopback up and IPv6 off, so that only the
    /// traffic a test or the demo sends crosses the lab (no router or neighbour solicitations).
    pub fn add_namespace(&mut self, name: &str) -> Result<String, LabError> {
        let ns = self.namespace_name(name);
        run_checked(Command::new("ip").args(["netns", "add", &ns]))?;
        self.namespaces.push(ns.clone());
        self.ip(&ns, &["link", "set", "lo", "up"])?;
        for knob in ["all", "default"] {
            run_checked(&mut self.exec(
                &ns,
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{knob}.disable_ipv6=1")],
            ))?;
        }
        Ok(ns)
    }

    /// A veth pair from `a` (in namespace `ns_a`) to `b` (in `ns_b`), both up.
    pub fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) -> Result<(), LabError> {
        self.veth_pair(&VethEnd::new(ns_a, a), &VethEnd::new(ns_b, b))
    }

    /// A veth pair between two ends described in full (MAC, queue count), both up.
    pub fn veth_pair(&self, a: &VethEnd, b: &VethEnd) -> Result<(), LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["link", "add"]);
        a.add_args(&mut cmd);
        cmd.args(["type", "veth", "peer"]);
        b.add_args(&mut cmd);
        run_checked(&mut cmd)?;
        self.ip(&a.ns, &["link", "set", &a.name, "up"])?;
        self.ip(&b.ns, &["link", "set", &b.name, "up"])?;
        Ok(())
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        run_checked(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// A command that runs `prog args...` inside namespace `ns`.
    pub fn exec(&self, ns: &str, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]).args(args);
        c
    }

    /// The text of `/sys/class/net/IFNAME/FILE` as namespace `ns` sees it, trimmed (e.g.
    /// `address`, `statistics/rx_packets`).
    pub fn interface_file(&self, ns: &str, ifname: &str, file: &str) -> Result<String, LabError> {
        let out =
            run_checked(&mut self.exec(ns, "cat", &[&format!("/sys/class/net/{ifname}/{file}")]))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Start `cmd` and keep it, so that dropping the lab ends it (by its pid).
    pub fn spawn(&mut self, cmd: &mut Command) -> Result<u32, LabError> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| LabError::Spawn {
                program: cmd.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Takes back a process started with [`Lab::spawn`]: the caller then owns its fate.
    pub fn take_child(&mut self, pid: u32) -> Option<Child> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        Some(self.children.remove(i))
    }

    /// Hands a process (back) to the lab, which ends it on drop.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }

    /// The namespaces created so far, oldest first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

/// SIGTERM, then SIGKILL once [`GRACE`] passed: a child of ours, by its pid.
fn end_child(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + GRACE;
    while let Ok(None) = child.try_wait() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            end_child(child);
        }
        // Deleting a namespace removes its veth ends, and with them their peers.
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One end of a veth pair: its namespace and name, and optionally a fixed MAC address and a
/// queue count (for reproducible multi-queue tests whatever the CPU count).
#[derive(Clone, Debug)]
pub struct VethEnd {
    /// The namespace it lives in.
    pub ns: String,
    /// Its interface name there.
    pub name: String,
    /// A fixed MAC address, or the kernel's random one.
    pub mac: Option<Mac>,
    /// Its number of receive and transmit queues, or the kernel's default.
    pub queues: Option<u32>,
}

impl VethEnd {
    /// End `name` in namespace `ns`, with the kernel's MAC and queue count.
    pub fn new(ns: &str, name: &str) -> VethEnd {
        VethEnd {
            ns: ns.to_string(),
            name: name.to_string(),
            mac: None,
            queues: None,
        }
    }

    /// The same end with a fixed MAC address.
    pub fn mac(mut self, mac: Mac) -> VethEnd {
        self.mac = Some(mac);
        self
    }

    /// The same end with `n` receive and `n` transmit queues.
    pub fn queues(mut self, n: u32) -> VethEnd {
        self.queues = Some(n);
        self
    }

    fn add_args(&self, cmd: &mut Command) {
        cmd.args(["name", &self.name, "netns", &self.ns]);
        if let Some(mac) = &self.mac {
            cmd.args(["address", &mac.to_string()]);
        }
        if let Some(n) = self.queues {
            let n = n.to_string();
            cmd.args(["numtxqueues", &n, "numrxqueues", &n]);
        }
    }
}

/// One side of a [`BridgeLab`]: an end host's interface and the bridge's port it is wired to.
#[derive(Clone, Debug)]
pub struct Side {
    /// The end host's interface name.
    pub host_if: &'static str,
    /// The end host's MAC, or the kernel's random one.
    pub host_mac: Option<Mac>,
    /// The bridge port's interface name.
    pub port: &'static str,
    /// The bridge port's MAC, or the kernel's random one.
    pub port_mac: Option<Mac>,
}

impl Side {
    /// `host_if` wired to `port`, with the kernel's MACs.
    pub const fn new(host_if: &'static str, port: &'static str) -> Side {
        Side {
            host_if,
            host_mac: None,
            port,
            port_mac: None,
        }
    }
}

/// How a [`BridgeLab`] is wired.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// h1's side, and h2's: a mirror lab has only h1's (h2 is then named but not created).
    pub sides: Vec<Side>,
    /// Receive and transmit queues of every veth end, or the kernel's default.
    pub queues: Option<u32>,
    /// Permanent neighbour entries between h1 and h2, so that no ARP crosses the lab.
    pub static_neighbours: bool,
}

impl Default for Wiring {
    /// The demo's: `h1:eth0 — br:port0 | br:port1 — h2:eth0`, kernel MACs and queues, ARP.
    fn default() -> Wiring {
        Wiring {
            sides: BridgeLab::PORTS
                .iter()
                .map(|port| Side::new(BridgeLab::HOST_IF, port))
                .collect(),
            queues: None,
            static_neighbours: false,
        }
    }
}

/// Two end hosts and the box in the middle: `h1:eth0 — br:port0 | br:port1 — h2:eth0` by
/// default ([`Wiring`] changes names, MACs and queues), with `10.77.0.1/24` on h1 and
/// `10.77.0.2/24` on h2 (addresses exist only in the lab).
pub struct BridgeLab {
    /// The namespaces and the processes started there.
    pub lab: Lab,
    /// End host 1's namespace.
    pub h1: String,
    /// The bridge's namespace, holding the ports.
    pub br: String,
    /// End host 2's namespace (not created in a one-sided lab).
    pub h2: String,
    /// How it is wired.
    pub wiring: Wiring,
}

impl BridgeLab {
    /// h1's address.
    pub const H1_ADDR: &'static str = "10.77.0.1";
    /// h2's address.
    pub const H2_ADDR: &'static str = "10.77.0.2";
    /// The bridge's ports in the default wiring.
    pub const PORTS: [&'static str; 2] = ["port0", "port1"];
    /// The end hosts' interface in the default wiring.
    pub const HOST_IF: &'static str = "eth0";

    /// The default lab, as the demo shows it.
    pub fn new(tag: &str) -> Result<BridgeLab, LabError> {
        BridgeLab::build(tag, Wiring::default())
    }

    /// A lab wired as `wiring` says.
    pub fn build(tag: &str, wiring: Wiring) -> Result<BridgeLab, LabError> {
        // From here on, dropping `lab` removes whatever exists.
        let mut lab = Lab::new(tag)?;
        let h1 = lab.add_namespace("h1")?;
        let br = lab.add_namespace("br")?;
        let h2 = if wiring.sides.len() > 1 {
            lab.add_namespace("h2")?
        } else {
            lab.namespace_name("h2")
        };
        let hosts = [(&h1, Self::H1_ADDR), (&h2, Self::H2_ADDR)];
        for (side, (host, addr)) in wiring.sides.iter().zip(hosts) {
            let mut host_end = VethEnd::new(host, side.host_if);
            let mut port_end = VethEnd::new(&br, side.port);
            host_end.mac = side.host_mac;
            port_end.mac = side.port_mac;
            host_end.queues = wiring.queues;
            port_end.queues = wiring.queues;
            lab.veth_pair(&host_end, &port_end)?;
            lab.ip(
                host,
                &["addr", "add", &format!("{addr}/24"), "dev", side.host_if],
            )?;
        }
        let lab = BridgeLab {
            lab,
            h1,
            br,
            h2,
            wiring,
        };
        if lab.wiring.static_neighbours {
            lab.add_static_neighbours()?;
        }
        Ok(lab)
    }

    /// The end hosts that exist, with their side of the wiring.
    fn hosts(&self) -> impl Iterator<Item = (&String, &Side)> {
        [&self.h1, &self.h2].into_iter().zip(&self.wiring.sides)
    }

    fn add_static_neighbours(&self) -> Result<(), LabError> {
        let [a, b] = &self.wiring.sides[..] else {
            return Ok(());
        };
        let mac_a = self.host_mac(&self.h1, a)?;
        let mac_b = self.host_mac(&self.h2, b)?;
        for (host, side, peer_addr, peer_mac) in [
            (&self.h1, a, Self::H2_ADDR, mac_b),
            (&self.h2, b, Self::H1_ADDR, mac_a),
        ] {
            self.lab.ip(
                host,
                &[
                    "neigh",
                    "add",
                    peer_addr,
                    "lladdr",
                    &peer_mac,
                    "dev",
                    side.host_if,
                    "nud",
                    "permanent",
                ],
            )?;
        }
        Ok(())
    }

    fn host_mac(&self, host: &str, side: &Side) -> Result<String, LabError> {
        match &side.host_mac {
            Some(m) => Ok(m.to_string()),
            None => self.mac(host, side.host_if),
        }
    }

    /// Make the end hosts compute checksums themselves. veth hands TCP and UDP segments over
    /// with a partial checksum that the receiving kernel would complete; once a frame crossed
    /// AF_XDP (as on a real wire) nobody does. Call it after the engine attached: attaching
    /// XDP to a veth end updates its peer's offload features.
    pub fn host_checksums_in_software(&self) -> Result<(), LabError> {
        for (host, side) in self.hosts() {
            run_tool(
                &mut self
                    .lab
                    .exec(host, "ethtool", &["-K", side.host_if, "tx", "off"]),
                "ethtool",
                "ethtool",
            )?;
        }
        Ok(())
    }

    /// The MAC address of `ifname` in namespace `ns`, as the kernel prints it.
    pub fn mac(&self, ns: &str, ifname: &str) -> Result<String, LabError> {
        self.lab.interface_file(ns, ifname, "address")
    }
}
