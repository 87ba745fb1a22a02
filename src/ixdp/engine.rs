//! The running engine: interfaces in promiscuous mode with the XDP program attached, one
//! worker thread per queue, and the view the control words read.

use super::chain;
use super::fanout::TapQueue;
use super::kpath::{KernelPath, KernelStats};
use super::ktap::ReaderConfig;
use super::lock;
use super::netdev::{self, NetdevError, OffloadGuard, PromiscGuard};
use super::pacing::Polling;
use super::policy::{Policy, PolicyCell};
use super::select::Sampler;
use super::stats::{KernelTally, StatsBoard};
pub use super::view::LinkState;
use super::worker::{Refresh, RingSnapshot, Worker};
use super::xdp::{self, KernelMaps, XdpAttachment, XdpError};
use super::xsk::{self, QueueSockets, XskError};
use super::{EngineView, Freshness, InterfaceInfo, RingDetails, RingError, XdpMode};
use crate::pqueue::{self, InterfaceDesc, Layout, Producer};
use libbpf_rs::MapHandle;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most this many queues (and worker threads).
pub const MAX_QUEUES: u32 = 8;

/// How to start the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Interface names in command-line order: one = mirror mode, two = bridge mode.
    pub interfaces: Vec<String>,
    /// How to attach the XDP program.
    pub xdp_mode: XdpMode,
    /// Force AF_XDP copy mode even where the driver can do zero-copy.
    pub force_copy: bool,
    /// Queues served on each interface (queue ids 0..queues), one worker each; `None`: every
    /// receive queue the interfaces have.
    pub queues: Option<u32>,
    /// How the workers wait for frames.
    pub polling: Polling,
    /// CPUs to pin workers to, worker `i` on `cpus[i % len]`; empty = no pinning.
    pub cpus: Vec<usize>,
    /// Niceness of the worker threads; `None` leaves them at the caller's.
    pub nice: Option<i32>,
    /// Packet queue for the taps; `None` runs without taps (frames are still counted).
    pub queue_name: Option<String>,
    /// Slots and slot size of that queue.
    pub layout: Layout,
    /// Take the queue from another live engine that feeds it (`--take-over`).
    pub take_over: bool,
    /// In bridge mode, forward the frames nothing in user space wants in the kernel
    /// (docs/kernel-path.md); false: every frame goes through the workers.
    pub kernel_path: bool,
    /// With the kernel path, forward tapped frames in the kernel too, each copied into a ring
    /// for the taps (the kernel tap, docs/kernel-path.md); false: tapped frames go through the
    /// workers.
    pub kernel_tap: bool,
    /// Bytes of the kernel tap's ring per interface: a power of two, at least 4096.
    pub kernel_tap_ring: u32,
}

impl EngineConfig {
    /// Defaults for everything but the interfaces.
    pub fn new(interfaces: Vec<String>) -> EngineConfig {
        EngineConfig {
            interfaces,
            xdp_mode: XdpMode::Auto,
            force_copy: false,
            queues: None,
            polling: Polling::default(),
            cpus: Vec::new(),
            nice: None,
            queue_name: Some(pqueue::DEFAULT_NAME.to_string()),
            layout: Layout::default(),
            take_over: false,
            kernel_path: true,
            kernel_tap: true,
            kernel_tap_ring: xdp::DEFAULT_KTAP_RING,
        }
    }

    /// Whether the kernel path is wanted: bridge mode and `kernel_path`.
    fn wants_kernel_path(&self) -> bool {
        self.kernel_path && self.interfaces.len() == 2
    }
}

/// Why the engine did not start. The texts name the option or the interface at fault and, where
/// there is one, the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Neither one nor two interfaces.
    #[error("give one interface (mirror mode) or two (bridge mode), not {0}")]
    InterfaceCount(usize),
    /// `--queues` outside 1..MAX_QUEUES.
    #[error("--queues {0}: must be 1..{MAX_QUEUES}")]
    QueueCount(u32),
    /// The process's CPU affinity could not be read.
    #[error("reading the CPUs this process may use: {0}")]
    Affinity(#[source] nix::Error),
    /// `--cpus` names a CPU the process may not use.
    #[error("--cpus: CPU {0} is not available to this process")]
    Cpu(usize),
    /// `--nice` outside -20..19.
    #[error("--nice {0}: must be -20..19")]
    Nice(i32),
    /// `--kernel-tap-ring` not a power of two of at least 4096 bytes.
    #[error("--kernel-tap-ring {0}: must be a power of two, at least 4096 (bytes)")]
    RingSize(u32),
    /// Not running as root.
    #[error("ethertap start needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW): run it with sudo")]
    NotRoot,
    /// An interface name that names no interface.
    #[error(transparent)]
    Interface(#[from] NetdevError),
    /// The same interface twice.
    #[error("interface \"{0}\" is given twice")]
    Twice(String),
    /// `--queues` above what an interface has.
    #[error(
        "{name} has {have} receive queue(s); --queues {want} is too many \
         (ethtool -l {name} shows them, ethtool -L changes them)"
    )]
    TooManyQueues {
        /// The interface.
        name: String,
        /// Its receive queues.
        have: u32,
        /// `--queues`.
        want: u32,
    },
    /// More receive queues than workers, and no `--queues`.
    #[error(
        "the interfaces have {0} receive queues, more than the {MAX_QUEUES} workers ethertap \
         runs: reduce them (ethtool -L IF combined {MAX_QUEUES}) or choose with --queues"
    )]
    UnservedQueues(u32),
    /// The interface's state could not be read.
    #[error("{name}: {source}")]
    State {
        /// The interface.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The interface is down.
    #[error("{0} is down; bring it up first (ip link set dev {0} up)")]
    Down(String),
    /// Not an Ethernet port (loopback, a tunnel, …): there is nothing to bridge or tap.
    #[error("{name} is not an Ethernet interface ({kind}); ethertap bridges and taps Ethernet ports only")]
    NotEthernet {
        /// The interface.
        name: String,
        /// What it is instead.
        kind: String,
    },
    /// The XDP program could not be set up.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// The AF_XDP sockets could not be opened.
    #[error(transparent)]
    Sockets(#[from] XskError),
    /// The packet queue could not be opened.
    #[error("packet queue \"{name}\": {source}")]
    Queue {
        /// The queue's name.
        name: String,
        /// Why.
        source: pqueue::Error,
    },
    /// Promiscuous mode could not be turned on.
    #[error("{name}: promiscuous mode: {source}")]
    Promiscuous {
        /// The interface.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// GRO or LRO is on and could not be turned off.
    #[error("{name}: turning off GRO/LRO (frames would be merged before the engine sees them): {source}")]
    Offload {
        /// The interface.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A worker thread could not be started.
    #[error("starting the worker of queue {queue}: {source}")]
    Worker {
        /// Its queue.
        queue: usize,
        /// The OS's answer.
        source: io::Error,
    },
}

/// What the control side shares with the workers.
struct Shared {
    infos: Vec<InterfaceInfo>,
    /// The default packet queue's name and the layout every queue of the taps gets; None:
    /// the engine runs without taps.
    queue: Option<(String, Layout)>,
    policy: Arc<PolicyCell>,
    stats: StatsBoard,
    /// [interface][queue]
    snapshots: Vec<Vec<Arc<RingSnapshot>>>,
    /// [queue]
    refresh: Vec<Arc<Refresh>>,
    /// [queue]: the tap sampling count, shared by its worker and the kernel tap's reader.
    samplers: Vec<Sampler>,
    /// [interface]: the XDP program's counters map (replaced when an interface is picked up
    /// again).
    program_counters: Mutex<Vec<MapHandle>>,
    running: Arc<AtomicBool>,
    /// [interface]: the [`LinkState`] the control thread saw last.
    links: Vec<AtomicU8>,
    /// [interface]: the kernel path's maps, which every later program instance reuses.
    kernel_maps: Vec<KernelMaps>,
    /// The kernel path (bridge mode with `kernel_path`).
    kpath: Option<Arc<KernelPath>>,
}

impl EngineView for Shared {
    fn interfaces(&self) -> &[InterfaceInfo] {
        &self.infos
    }
    fn link_state(&self, ifidx: usize) -> LinkState {
        self.links.get(ifidx).map_or(LinkState::Up, |l| {
            LinkState::from_byte(l.load(Ordering::Relaxed))
        })
    }
    fn policy(&self) -> &PolicyCell {
        &self.policy
    }
    fn stats(&self) -> &StatsBoard {
        &self.stats
    }
    fn default_queue(&self) -> Option<&str> {
        self.queue.as_ref().map(|(name, _)| name.as_str())
    }
    fn queue_layout(&self) -> Option<Layout> {
        self.queue.as_ref().map(|&(_, layout)| layout)
    }
    fn open_queue(&self, name: &str, lanes: u32) -> Result<Arc<Producer>, pqueue::Error> {
        // The words ask only an engine with taps (queue_layout is Some).
        let layout = self.queue_layout().unwrap_or_default();
        let producer = Producer::open(name, super::fanout::lane_layout(layout, lanes))?;
        describe_interfaces(&producer, self.infos.iter().map(|i| i.name.as_str()));
        Ok(Arc::new(producer))
    }
    fn ring_details(&self, ifidx: usize, queue: usize) -> Result<RingDetails, RingError> {
        if ifidx >= self.infos.len() {
            return Err(RingError::NoInterface {
                ifidx,
                last: self.infos.len().saturating_sub(1),
            });
        }
        let Some(refresh) = self.refresh.get(queue) else {
            return Err(RingError::NoQueue {
                queue,
                last: self.refresh.len().saturating_sub(1),
            });
        };
        let freshness = self.ask_worker(refresh);
        Ok(RingDetails {
            rings: self.snapshots[ifidx][queue].load(),
            program: xdp::read_counters(&lock(&self.program_counters)[ifidx]),
            freshness,
        })
    }
}

impl Shared {
    /// Asks a worker to publish its ring snapshots and waits a little for the answer.
    fn ask_worker(&self, refresh: &Refresh) -> Freshness {
        if !self.running.load(Ordering::Relaxed) {
            return Freshness::Stopped;
        }
        let ticket = refresh.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if refresh.done.load(Ordering::Acquire) >= ticket {
                return Freshness::Fresh;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Freshness::NoAnswer
    }
}

/// A running engine. Stops (and restores the interfaces) on `stop()` or drop.
pub struct Engine {
    shared: Arc<Shared>,
    /// What an interface that is picked up again replaces (only the control thread locks it).
    run: Mutex<Running>,
    warnings: Vec<String>,
    /// The configuration it started with, to set up an interface again.
    config: EngineConfig,
    /// Queues served on each interface.
    queues: u32,
}

/// The engine's hold on the interfaces, and the workers serving them.
struct Running {
    /// Raised to stop this generation of workers.
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    attachments: Vec<XdpAttachment>,
    promisc: Vec<PromiscGuard>,
    /// GRO/LRO turned off on the interfaces, restored when dropped.
    offloads: Vec<OffloadGuard>,
    /// The kernel's index of each interface, to notice one that goes away.
    ifindexes: Vec<u32>,
}

/// The checks that need nothing but the configuration and the process.
fn check_config(config: &EngineConfig) -> Result<(), StartError> {
    let n = config.interfaces.len();
    if n == 0 || n > super::policy::MAX_IFS {
        return Err(StartError::InterfaceCount(n));
    }
    if let Some(q) = config.queues.filter(|q| !(1..=MAX_QUEUES).contains(q)) {
        return Err(StartError::QueueCount(q));
    }
    if !config.cpus.is_empty() {
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .map_err(StartError::Affinity)?;
        if let Some(&c) = config
            .cpus
            .iter()
            .find(|&&c| !allowed.is_set(c).unwrap_or(false))
        {
            return Err(StartError::Cpu(c));
        }
    }
    if let Some(nice) = config.nice.filter(|n| !(-20..=19).contains(n)) {
        return Err(StartError::Nice(nice));
    }
    if !xdp::valid_ring_size(config.kernel_tap_ring) {
        return Err(StartError::RingSize(config.kernel_tap_ring));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(StartError::NotRoot);
    }
    Ok(())
}

/// The kernel's index of every interface, each given once.
fn interface_indexes(names: &[String]) -> Result<Vec<u32>, StartError> {
    let mut indexes = Vec::with_capacity(names.len());
    for name in names {
        let idx = netdev::if_index(name)?;
        if indexes.contains(&idx) {
            return Err(StartError::Twice(name.clone()));
        }
        indexes.push(idx);
    }
    Ok(indexes)
}

/// The queues to serve: `--queues`, or every receive queue the interfaces have. Warns about
/// receive queues left to the kernel.
fn served_queues(config: &EngineConfig, warnings: &mut Vec<String>) -> Result<u32, StartError> {
    let have: Vec<u32> = config
        .interfaces
        .iter()
        .map(|n| netdev::rx_queue_count(n))
        .collect();
    let fewest = have.iter().copied().min().unwrap_or(1);
    let queues = match config.queues {
        Some(want) => {
            if let Some((name, &have)) =
                config.interfaces.iter().zip(&have).find(|(_, &h)| want > h)
            {
                let name = name.clone();
                return Err(StartError::TooManyQueues { name, have, want });
            }
            want
        }
        None if fewest > MAX_QUEUES => return Err(StartError::UnservedQueues(fewest)),
        None => fewest,
    };
    for (name, &h) in config.interfaces.iter().zip(&have) {
        if h > queues {
            warnings.push(format!(
                "{name} has {h} receive queues but only 0..{} are served: frames arriving \
                 on the others go to the kernel stack (align them with \
                 ethtool -L {name} combined {queues})",
                queues - 1
            ));
        }
    }
    Ok(queues)
}

/// The longest frame `name` can carry: its MTU plus the Ethernet header and two VLAN tags.
fn longest_frame(name: &str) -> u32 {
    netdev::mtu(name).unwrap_or(1500).saturating_add(14 + 8)
}

/// Warnings for interfaces whose MTU allows frames longer than a chain of UMEM buffers holds
/// (docs/data-path.md, "Long frames").
fn mtu_warnings(names: &[String]) -> impl Iterator<Item = String> + '_ {
    let limit = xsk::MAX_CHAIN_FRAME_LEN;
    names.iter().filter_map(move |name| {
        let longest = longest_frame(name);
        (longest > limit).then(|| {
            format!(
                "{name} has an MTU for frames of up to {longest} bytes; frames longer than \
                 {limit} bytes ({} buffers of {}, what the kernel transmits as one frame) are \
                 dropped and counted as err in if.stats",
                chain::MAX_CHAIN,
                xsk::MAX_FRAME_LEN
            )
        })
    })
}

/// The queue's layout for these interfaces: slots large enough for the longest frame any of
/// them carries (a tapped frame is stored whole), the configured layout otherwise. The default
/// layout stays as it is for a 1500-byte MTU.
fn queue_layout(config: &EngineConfig) -> Layout {
    let longest = config
        .interfaces
        .iter()
        .map(|name| longest_frame(name))
        .max()
        .unwrap_or(0)
        .min(xsk::MAX_CHAIN_FRAME_LEN);
    let mut layout = config.layout;
    if longest > layout.slot_size {
        layout.slot_size = longest.div_ceil(64) * 64;
    }
    layout
}

fn check_up(names: &[String]) -> Result<(), StartError> {
    for name in names {
        let (kind, _) = netdev::hardware_address(name).map_err(|source| StartError::State {
            name: name.clone(),
            source,
        })?;
        if kind != libc::ARPHRD_ETHER {
            return Err(StartError::NotEthernet {
                name: name.clone(),
                kind: link_kind(kind),
            });
        }
        let up = netdev::is_up(name).map_err(|source| StartError::State {
            name: name.clone(),
            source,
        })?;
        if !up {
            return Err(StartError::Down(name.clone()));
        }
    }
    Ok(())
}

/// A name for a non-Ethernet link type (`ARPHRD_*`).
fn link_kind(kind: u16) -> String {
    match kind {
        libc::ARPHRD_LOOPBACK => "loopback".into(),
        libc::ARPHRD_NONE => "no link layer: a tun device or similar".into(),
        libc::ARPHRD_TUNNEL | libc::ARPHRD_TUNNEL6 | libc::ARPHRD_SIT | libc::ARPHRD_IPGRE => {
            "an IP tunnel".into()
        }
        libc::ARPHRD_IEEE80211 | libc::ARPHRD_IEEE80211_RADIOTAP => "Wi-Fi monitor".into(),
        other => format!("link type {other}"),
    }
}

/// Removes stale programs from every interface, then attaches a fresh one to each.
fn attach_programs(
    config: &EngineConfig,
    ifindexes: &[u32],
) -> Result<Vec<XdpAttachment>, XdpError> {
    // libbpf would also print its own copy of errors we report with more context.
    libbpf_rs::set_print(None);
    let ifs = || config.interfaces.iter().zip(ifindexes);
    for (name, &idx) in ifs() {
        xdp::remove_stale(name, idx)?;
    }
    ifs()
        .map(|(name, &idx)| {
            XdpAttachment::attach(
                name,
                idx,
                config.xdp_mode,
                config.wants_kernel_path(),
                config.kernel_tap_ring,
                None,
            )
        })
        .collect()
}

/// The kernel path of a bridge, when wanted; a kernel that refuses the TC program leaves every
/// frame to the workers, with a warning.
fn start_kernel_path(
    config: &EngineConfig,
    ifindexes: &[u32],
    attachments: &[XdpAttachment],
    shared: &Shared,
    warnings: &mut Vec<String>,
) -> Option<Arc<KernelPath>> {
    if !config.wants_kernel_path() {
        return None;
    }
    let mut usable = true;
    for (name, a) in config.interfaces.iter().zip(attachments) {
        if let Some(e) = &a.tc_error {
            usable = false;
            warnings.push(format!(
                "{name}: no kernel path (attaching the TC program: {e}; tcx needs Linux 6.6): \
                 every frame goes through the workers"
            ));
        }
    }
    let ports = config
        .interfaces
        .iter()
        .zip(ifindexes)
        .zip(attachments)
        .zip(&shared.kernel_maps)
        .map(|(((name, &idx), a), maps)| (name.clone(), idx, a.mode == super::XdpMode::Skb, maps))
        .collect();
    // The CPU after the workers' when the list has one, else the first worker's.
    let queues = shared.samplers.len();
    let tap = config.kernel_tap.then(|| {
        let reader = ReaderConfig {
            cpu: config.cpus.get(queues).or(config.cpus.first()).copied(),
            nice: config.nice,
        };
        (reader, shared.samplers.clone())
    });
    match KernelPath::start(ports, shared.policy.clone(), usable, tap) {
        Ok((kp, warning)) => {
            warnings.extend(warning);
            Some(kp)
        }
        Err(e) => {
            warnings.push(format!(
                "no kernel path ({e}): every frame goes through the workers"
            ));
            None
        }
    }
}

/// Puts every socket into its interface's XSKMAP at its queue id.
fn bind_sockets(attachments: &[XdpAttachment], sockets: &[QueueSockets]) -> Result<(), XdpError> {
    for qs in sockets {
        for (att, port) in attachments.iter().zip(&qs.ports) {
            att.bind_queue(qs.queue, port.fd)?;
        }
    }
    Ok(())
}

/// Opens (and re-initialises) the packet queue of the taps. Done only once the interfaces are
/// set up, so a start that fails before leaves the queue and its consumers alone.
fn open_packet_queue(config: &EngineConfig) -> Result<Option<Arc<Producer>>, StartError> {
    let Some(name) = &config.queue_name else {
        return Ok(None);
    };
    let producer =
        Producer::open_with(name, queue_layout(config), config.take_over).map_err(|source| {
            StartError::Queue {
                name: name.clone(),
                source,
            }
        })?;
    describe_interfaces(&producer, config.interfaces.iter().map(String::as_str));
    Ok(Some(Arc::new(producer)))
}

/// What the engine says when another engine took its queue.
pub fn taken_over_text(name: &str, pid: u32) -> String {
    format!(
        "packet queue {name} was taken over by the engine PID {pid} (--take-over); this engine's taps no longer reach any consumer"
    )
}

/// Tells a queue's consumers what each of the engine's interfaces (`names`, in index order) is:
/// what a capture file names each port after (pcapng interface descriptions).
fn describe_interfaces<'n>(producer: &Producer, names: impl Iterator<Item = &'n str>) {
    for (i, name) in names.enumerate() {
        producer.describe_interface(i, &describe(name));
    }
}

/// The queue's description of one of the engine's interfaces.
fn describe(ifname: &str) -> InterfaceDesc {
    InterfaceDesc {
        name: ifname.to_string(),
        driver: netdev::driver_name(ifname),
        mac: netdev::hardware_address(ifname)
            .ok()
            .filter(|(kind, _)| *kind == libc::ARPHRD_ETHER)
            .map(|(_, mac)| mac),
        mtu: netdev::mtu(ifname).unwrap_or(0),
        speed_mbps: netdev::speed_mbps(ifname).unwrap_or(0),
    }
}

/// GRO and LRO off on every interface (restored on stop); what was turned off is reported as
/// a notice in `warnings`.
fn merging_offloads_off(
    names: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<OffloadGuard>, StartError> {
    let mut guards = Vec::with_capacity(names.len());
    for name in names {
        let g = OffloadGuard::disable(name).map_err(|source| StartError::Offload {
            name: name.clone(),
            source,
        })?;
        let off = g.turned_off();
        if !off.is_empty() {
            warnings.push(format!(
                "{name}: {} turned off while the engine runs (frames are forwarded as they \
                 were on the wire, not merged), restored on stop",
                off.join(" and ")
            ));
        }
        guards.push(g);
    }
    Ok(guards)
}

fn promiscuous(names: &[String], ifindexes: &[u32]) -> Result<Vec<PromiscGuard>, StartError> {
    names
        .iter()
        .zip(ifindexes)
        .map(|(name, &idx)| {
            PromiscGuard::enable(idx).map_err(|source| StartError::Promiscuous {
                name: name.clone(),
                source,
            })
        })
        .collect()
}

impl Shared {
    /// The control side of an engine serving `queues` queues on the attached interfaces.
    /// `producer` is the default packet queue, the first the taps feed.
    fn new(
        config: &EngineConfig,
        queues: u32,
        zerocopy: bool,
        attachments: &[XdpAttachment],
        producer: Option<Arc<Producer>>,
    ) -> Result<Shared, XdpError> {
        let infos: Vec<InterfaceInfo> = config
            .interfaces
            .iter()
            .zip(attachments)
            .enumerate()
            .map(|(index, (name, att))| InterfaceInfo {
                index,
                name: name.clone(),
                driver: netdev::driver_name(name),
                queues,
                zerocopy,
                attached_mode: att.mode,
            })
            .collect();
        let (n, nqueues) = (infos.len(), queues as usize);
        let queue = producer.as_ref().map(|p| {
            (
                p.name().to_string(),
                Layout {
                    lanes: 1,
                    ..p.layout()
                },
            )
        });
        let policy = Policy {
            queues: producer.into_iter().map(TapQueue::new).collect(),
            ..Policy::default()
        };
        let kernel_maps = attachments
            .iter()
            .map(XdpAttachment::kernel_maps)
            .collect::<Result<Vec<_>, _>>()?;
        let kernel: Vec<Option<Arc<dyn KernelTally>>> = if config.wants_kernel_path() {
            kernel_maps
                .iter()
                .map(|m| {
                    KernelStats::new(m)
                        .ok()
                        .map(|k| Arc::new(k) as Arc<dyn KernelTally>)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Shared {
            queue,
            policy: Arc::new(PolicyCell::new(policy)),
            stats: StatsBoard::new(n, nqueues).with_kernel(kernel),
            kernel_maps,
            kpath: None,
            snapshots: (0..n)
                .map(|_| (0..nqueues).map(|_| Arc::default()).collect())
                .collect(),
            refresh: (0..nqueues).map(|_| Arc::default()).collect(),
            samplers: (0..nqueues).map(|_| Sampler::default()).collect(),
            program_counters: Mutex::new(
                attachments
                    .iter()
                    .map(XdpAttachment::counters_map)
                    .collect::<Result<_, _>>()?,
            ),
            running: Arc::new(AtomicBool::new(true)),
            links: (0..n)
                .map(|_| AtomicU8::new(LinkState::Up.to_byte()))
                .collect(),
            infos,
        })
    }
}

impl Engine {
    /// Checks the configuration, takes the interfaces and starts the workers. Runs in the
    /// caller's network namespace; the workers inherit it.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        check_config(&config)?;
        let ifindexes = interface_indexes(&config.interfaces)?;
        let mut warnings = Vec::new();
        let queues = served_queues(&config, &mut warnings)?;
        warnings.extend(mtu_warnings(&config.interfaces));
        check_up(&config.interfaces)?;
        // Before attaching: native XDP on veth turns GRO on by itself, which must not be
        // mistaken for the state to restore.
        let offloads = merging_offloads_off(&config.interfaces, &mut warnings)?;
        let attachments = attach_programs(&config, &ifindexes)?;
        let (sockets, zerocopy) = open_all_queues(&config.interfaces, queues, config.force_copy)?;
        bind_sockets(&attachments, &sockets)?;
        let producer = open_packet_queue(&config)?;
        let promisc = promiscuous(&config.interfaces, &ifindexes)?;
        let mut shared = Shared::new(&config, queues, zerocopy, &attachments, producer)?;
        shared.kpath = start_kernel_path(&config, &ifindexes, &attachments, &shared, &mut warnings);
        let shared = Arc::new(shared);
        let engine = Engine {
            shared,
            run: Mutex::new(Running {
                stop: Arc::new(AtomicBool::new(false)),
                workers: Vec::with_capacity(sockets.len()),
                attachments,
                promisc,
                offloads,
                ifindexes,
            }),
            warnings,
            config,
            queues,
        };
        engine.spawn_workers(&mut lock(&engine.run), sockets)?;
        Ok(engine)
    }

    /// One worker thread per queue. On an error the workers started so far stop with the
    /// engine when the caller drops it.
    fn spawn_workers(
        &self,
        run: &mut Running,
        sockets: Vec<QueueSockets>,
    ) -> Result<(), StartError> {
        let (shared, config) = (&self.shared, &self.config);
        let n = shared.infos.len();
        for (q, qs) in sockets.into_iter().enumerate() {
            let worker = Worker {
                sockets: qs,
                bridge: n == 2,
                polling: config.polling,
                cpu: (!config.cpus.is_empty()).then(|| config.cpus[q % config.cpus.len()]),
                nice: config.nice,
                policy: shared.policy.clone(),
                stats: (0..n).map(|i| shared.stats.queue(i, q)).collect(),
                snapshots: (0..n).map(|i| shared.snapshots[i][q].clone()).collect(),
                refresh: shared.refresh[q].clone(),
                sampler: shared.samplers[q].clone(),
                stop: run.stop.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("ixdp-q{q}"))
                .spawn(move || worker.run())
                .map_err(|source| StartError::Worker { queue: q, source })?;
            run.workers.push(handle);
        }
        Ok(())
    }

    /// The view the engine words read and change.
    pub fn view(&self) -> Arc<dyn EngineView> {
        self.shared.clone()
    }

    /// Things the operator should know about the configuration (e.g. unserved queues).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether every worker is still running (a worker that died is a bug; the engine keeps
    /// the interfaces restored either way on stop).
    pub fn healthy(&self) -> bool {
        lock(&self.run).workers.iter().all(|w| !w.is_finished())
    }

    /// Block until `stop_requested` says so or a worker dies (logged). Every front end
    /// (foreground, console, daemon) waits on the engine this way; once a second it looks
    /// whether the queue was taken over and whether an interface went down, away or came
    /// back, and logs what changed.
    pub fn run_until(&self, stop_requested: impl Fn() -> bool) {
        let mut rounds = 0u64;
        let mut told: Vec<String> = Vec::new();
        let mut links = vec![LinkState::Up; self.shared.infos.len()];
        while !stop_requested() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if !self.healthy() {
                crate::log::error("a worker thread ended unexpectedly; stopping");
                return;
            }
            rounds += 1;
            if rounds % 20 != 0 {
                continue;
            }
            for (name, pid) in self.queues_taken_over() {
                if !told.contains(&name) {
                    crate::log::warn(&taken_over_text(&name, pid));
                    told.push(name);
                }
            }
            self.watch_links(&mut links);
        }
    }

    /// Logs every interface whose [`LinkState`] differs from `seen`, records it (for `status`
    /// and `if.stats`), and picks up an interface that is back under its name (deleted and
    /// created again) once it is up.
    fn watch_links(&self, seen: &mut [LinkState]) {
        let ifindexes = lock(&self.run).ifindexes.clone();
        for (i, (info, &idx)) in self.shared.infos.iter().zip(&ifindexes).enumerate() {
            let mut now = LinkState::of(&info.name, idx);
            if now == LinkState::Gone && seen[i] == LinkState::Gone {
                if let Some(new_index) = back_and_up(&info.name) {
                    match self.pick_up_again(i, new_index) {
                        Ok(()) => now = LinkState::Up,
                        Err(e) => {
                            crate::log::error(&format!(
                                "interface {i} {} is back but could not be bridged again \
                                 (retried every second): {e}",
                                info.name
                            ));
                        }
                    }
                }
            }
            if now != seen[i] {
                let text = now.change_text(seen[i], i, &info.name);
                if now == LinkState::Up {
                    crate::log::info(&text);
                } else {
                    crate::log::warn(&text);
                }
                seen[i] = now;
                self.shared.links[i].store(now.to_byte(), Ordering::Relaxed);
            }
        }
    }

    /// Sets interface `i` up again under its new index: its GRO/LRO, XDP program and
    /// promiscuous mode, then every queue's sockets anew (the workers are restarted on fresh
    /// UMEMs: a socket of the other interface must be closed before its queue can be bound
    /// again). Counters, policy and the packet queue carry on.
    fn pick_up_again(&self, i: usize, ifindex: u32) -> Result<(), StartError> {
        let name = &self.config.interfaces[i];
        let have = netdev::rx_queue_count(name);
        if have < self.queues {
            return Err(StartError::TooManyQueues {
                name: name.clone(),
                have,
                want: self.queues,
            });
        }
        let mut run = lock(&self.run);
        let offload = OffloadGuard::disable(name).map_err(|source| StartError::Offload {
            name: name.clone(),
            source,
        })?;
        let attachment = XdpAttachment::attach(
            name,
            ifindex,
            self.config.xdp_mode,
            self.config.wants_kernel_path(),
            self.config.kernel_tap_ring,
            Some(&self.shared.kernel_maps[i]),
        )?;
        let generic = attachment.mode == super::XdpMode::Skb;
        if let Some(e) = &attachment.tc_error {
            crate::log::warn(&format!(
                "{name}: no kernel path after picking it up again (attaching the TC program: {e})"
            ));
        }
        let counters = attachment.counters_map()?;
        let promisc = PromiscGuard::enable(ifindex).map_err(|source| StartError::Promiscuous {
            name: name.clone(),
            source,
        })?;
        run.stop.store(true, Ordering::Relaxed);
        for w in run.workers.drain(..) {
            let _ = w.join();
        }
        run.stop = Arc::new(AtomicBool::new(false));
        run.attachments[i] = attachment;
        run.promisc[i] = promisc;
        run.offloads[i] = offload;
        run.ifindexes[i] = ifindex;
        lock(&self.shared.program_counters)[i] = counters;
        for q in &self.shared.policy.snapshot().queues {
            q.producer.describe_interface(i, &describe(name));
        }
        let (sockets, _) =
            open_all_queues(&self.config.interfaces, self.queues, self.config.force_copy)?;
        bind_sockets(&run.attachments, &sockets)?;
        self.spawn_workers(&mut run, sockets)?;
        if let Some(kp) = &self.shared.kpath {
            kp.set_ifindex(i, ifindex, generic);
        }
        Ok(())
    }

    /// The queues of the taps another engine took over (`--take-over`), each with that
    /// engine's pid: nobody reads what our taps put in them any more. (A queue this engine
    /// re-created itself, for `tap.queue.lanes`, is not among them.)
    pub fn queues_taken_over(&self) -> Vec<(String, u32)> {
        let me = std::process::id();
        self.shared
            .policy
            .snapshot()
            .queues
            .iter()
            .filter_map(|q| {
                let pid = q.producer.replaced_by()?;
                (pid != me).then(|| (q.name().to_string(), pid))
            })
            .collect()
    }

    /// Stops the workers, detaches the XDP programs and restores promiscuous mode.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let run = self
            .run
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Detach first, so no frame is redirected to a socket that is closing.
        for a in &mut run.attachments {
            a.detach();
        }
        if let Some(kp) = &self.shared.kpath {
            kp.shutdown();
        }
        run.stop.store(true, Ordering::Relaxed);
        for w in run.workers.drain(..) {
            let _ = w.join();
        }
        self.shared.running.store(false, Ordering::Relaxed);
        run.attachments.clear();
        run.promisc.clear();
        run.offloads.clear();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("interfaces", &self.shared.infos)
            .field("workers", &lock(&self.run).workers.len())
            .finish()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The new index of `name` when an interface of that name exists and is up.
fn back_and_up(name: &str) -> Option<u32> {
    let idx = netdev::if_index(name).ok()?;
    netdev::is_up(name).ok()?.then_some(idx)
}

/// All queues' sockets, zero-copy when every interface allows it (a shared UMEM binds all
/// its sockets in the mode of the first), else copy mode. Returns the sockets and whether
/// they are zero-copy.
fn open_all_queues(
    interfaces: &[String],
    queues: u32,
    force_copy: bool,
) -> Result<(Vec<QueueSockets>, bool), XskError> {
    if !force_copy {
        let zc: Result<Vec<_>, XskError> = (0..queues)
            .map(|q| xsk::open_queue(interfaces, q, true))
            .collect();
        if let Ok(s) = zc {
            return Ok((s, true));
        }
    }
    let copy: Result<Vec<_>, XskError> = (0..queues)
        .map(|q| xsk::open_queue(interfaces, q, false))
        .collect();
    Ok((copy?, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}

    #[test]
    fn the_engine_can_move_to_the_daemons_control_thread() {
        send::<Engine>();
        send::<Arc<dyn EngineView>>();
    }

    #[test]
    fn a_config_is_checked_before_anything_is_touched() {
        let start = |c: &EngineConfig| Engine::start(c.clone()).unwrap_err();
        let mut c = EngineConfig::new(vec![]);
        assert!(matches!(start(&c), StartError::InterfaceCount(0)));
        c.interfaces = vec!["a".into(), "b".into(), "c".into()];
        assert!(start(&c).to_string().contains("not 3"));
        c.interfaces = vec!["lo".into()];
        c.queues = Some(9);
        assert_eq!(start(&c).to_string(), "--queues 9: must be 1..8");
        c.queues = Some(0);
        assert!(matches!(start(&c), StartError::QueueCount(0)));
        c.queues = None;
        c.nice = Some(20);
        assert_eq!(start(&c).to_string(), "--nice 20: must be -20..19");
    }
}
