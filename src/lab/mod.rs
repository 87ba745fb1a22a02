//! Throw-away network labs: network namespaces joined by veth pairs, with unique names, and
//! removed again when the [`Lab`] is dropped (also after a failed test or an interrupted demo).
//!
//! Used by `ethertap demo` and by the integration tests, so that both exercise the engine the
//! same way a user's two-port box would: two end hosts and the bridge between them.

use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Output, Stdio};

/// A set of namespaces and the processes started in them.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

/// Run `ip` (or any command) and fail with its stderr when it fails.
pub fn run_checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

impl Lab {
    /// A lab whose names start with `et-<tag>-<pid>`; fails clearly when not root or `ip` is missing.
    pub fn new(tag: &str) -> Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!("network labs need root (namespaces and veth pairs)");
        }
        run_checked(Command::new("ip").arg("-V")).context("iproute2 (`ip`) is required")?;
        Ok(Lab {
            prefix: format!("et-{tag}-{}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        })
    }

    /// Create namespace `<prefix>-<name>` with its loopback up and IPv6 off, so that only the
    /// traffic a test or the demo sends crosses the lab (no router or neighbour solicitations).
    pub fn add_namespace(&mut self, name: &str) -> Result<String> {
        let ns = format!("{}-{name}", self.prefix);
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
    pub fn veth(&self, ns_a: &str, a: &str, ns_b: &str, b: &str) -> Result<()> {
        self.veth_pair(&VethEnd::new(ns_a, a), &VethEnd::new(ns_b, b))
    }

    /// A veth pair between two ends described in full (MAC, queue count), both up.
    pub fn veth_pair(&self, a: &VethEnd, b: &VethEnd) -> Result<()> {
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
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<Output> {
        run_checked(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// A command that runs `prog args...` inside namespace `ns`.
    pub fn exec(&self, ns: &str, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]).args(args);
        c
    }

    /// Start `cmd` and keep it, so that dropping the lab ends it (by its pid).
    pub fn spawn(&mut self, cmd: &mut Command) -> Result<u32> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Send raw Ethernet frames out of `ifname` in namespace `ns` (AF_PACKET), e.g. VLAN
    /// tagged frames on a kernel without VLAN interfaces. Returns how many were sent.
    pub fn send_raw(&self, ns: &str, ifname: &str, frames: Vec<Vec<u8>>) -> Result<usize> {
        let ns_path = format!("/var/run/netns/{ns}");
        let ifname = std::ffi::CString::new(ifname)?;
        // Entering a namespace changes only the calling thread: use a thread of its own.
        std::thread::spawn(move || -> Result<usize> {
            let ns_file =
                std::fs::File::open(&ns_path).with_context(|| format!("namespace {ns_path}"))?;
            nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            // SAFETY: plain socket calls on a descriptor owned by this function.
            unsafe {
                let ifindex = libc::if_nametoindex(ifname.as_ptr());
                if ifindex == 0 {
                    bail!("no interface {ifname:?} in {ns_path}");
                }
                let fd = libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                );
                if fd < 0 {
                    bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
                }
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = ifindex as i32;
                addr.sll_halen = 6;
                let mut sent = 0;
                for f in &frames {
                    let n = libc::sendto(
                        fd,
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                    if n == f.len() as isize {
                        sent += 1;
                    }
                }
                libc::close(fd);
                Ok(sent)
            }
        })
        .join()
        .map_err(|_| anyhow::anyhow!("raw sender thread failed"))?
    }

    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

/// One end of a veth pair: its namespace and name, and optionally a fixed MAC address and a
/// queue count (for reproducible multi-queue tests whatever the CPU count).
#[derive(Clone, Debug)]
pub struct VethEnd {
    pub ns: String,
    pub name: String,
    pub mac: Option<String>,
    pub queues: Option<u32>,
}

impl VethEnd {
    pub fn new(ns: &str, name: &str) -> VethEnd {
        VethEnd {
            ns: ns.to_string(),
            name: name.to_string(),
            mac: None,
            queues: None,
        }
    }

    pub fn mac(mut self, mac: &str) -> VethEnd {
        self.mac = Some(mac.to_string());
        self
    }

    pub fn queues(mut self, n: u32) -> VethEnd {
        self.queues = Some(n);
        self
    }

    fn add_args(&self, cmd: &mut Command) {
        cmd.args(["name", &self.name, "netns", &self.ns]);
        if let Some(mac) = &self.mac {
            cmd.args(["address", mac]);
        }
        if let Some(n) = self.queues {
            let n = n.to_string();
            cmd.args(["numtxqueues", &n, "numrxqueues", &n]);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
                while let Ok(None) = child.try_wait() {
                    if std::time::Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
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

/// Two end hosts and the box in the middle: `h1:eth0 — br:port0 | br:port1 — h2:eth0`,
/// with `10.77.0.1/24` on h1 and `10.77.0.2/24` on h2 (addresses exist only in the lab).
pub struct BridgeLab {
    pub lab: Lab,
    pub h1: String,
    pub br: String,
    pub h2: String,
}

impl BridgeLab {
    pub const H1_ADDR: &'static str = "10.77.0.1";
    pub const H2_ADDR: &'static str = "10.77.0.2";
    pub const PORTS: [&'static str; 2] = ["port0", "port1"];

    pub fn new(tag: &str) -> Result<BridgeLab> {
        let mut lab = Lab::new(tag)?;
        let h1 = lab.add_namespace("h1")?;
        let br = lab.add_namespace("br")?;
        let h2 = lab.add_namespace("h2")?;
        lab.veth(&h1, "eth0", &br, Self::PORTS[0])?;
        lab.veth(&br, Self::PORTS[1], &h2, "eth0")?;
        lab.ip(
            &h1,
            &[
                "addr",
                "add",
                &format!("{}/24", Self::H1_ADDR),
                "dev",
                "eth0",
            ],
        )?;
        lab.ip(
            &h2,
            &[
                "addr",
                "add",
                &format!("{}/24", Self::H2_ADDR),
                "dev",
                "eth0",
            ],
        )?;
        Ok(BridgeLab { lab, h1, br, h2 })
    }

    /// Make the end hosts compute checksums themselves. veth hands TCP and UDP segments over
    /// with a partial checksum that the receiving kernel would complete; once a frame crossed
    /// AF_XDP (as on a real wire) nobody does. Call it after the engine attached: attaching
    /// XDP to a veth end updates its peer's offload features.
    pub fn host_checksums_in_software(&self) -> Result<()> {
        for host in [&self.h1, &self.h2] {
            run_checked(&mut self.lab.exec(host, "ethtool", &["-K", "eth0", "tx", "off"]))
                .context("ethtool is required (apt-get install ethtool)")?;
        }
        Ok(())
    }

    /// The MAC address of `ifname` in namespace `ns`.
    pub fn mac(&self, ns: &str, ifname: &str) -> Result<String> {
        let out = run_checked(&mut self.lab.exec(
            ns,
            "cat",
            &[&format!("/sys/class/net/{ifname}/address")],
        ))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
