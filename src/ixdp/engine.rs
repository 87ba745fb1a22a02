//! The running engine: interfaces in promiscuous mode with the XDP program attached, one
//! worker thread per queue, and the view the control words read.

use super::netdev::{self, PromiscGuard};
use super::policy::PolicyCell;
use super::stats::StatsBoard;
use super::worker::{Polling, Refresh, RingSnapshot, Worker};
use super::xdp::{self, XdpAttachment};
use super::xsk::{self, QueueSockets};
use super::{EngineView, InterfaceInfo, XdpMode};
use crate::pqueue::{self, Layout, Producer};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most this many queues (and worker threads).
pub const MAX_QUEUES: u32 = 8;

/// How to start the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Interface names in command-line order: one = mirror mode, two = bridge mode.
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    /// Force AF_XDP copy mode even where the driver can do zero-copy.
    pub force_copy: bool,
    /// Queues served on each interface (queue ids 0..queues), one worker each; `None`: every
    /// receive queue the interfaces have.
    pub queues: Option<u32>,
    pub polling: Polling,
    /// CPUs to pin workers to, worker `i` on `cpus[i % len]`; empty = no pinning.
    pub cpus: Vec<usize>,
    /// Niceness of the worker threads; `None` leaves them at the caller's.
    pub nice: Option<i32>,
    /// Packet queue for the taps; `None` runs without taps (frames are still counted).
    pub queue_name: Option<String>,
    pub layout: Layout,
}

impl EngineConfig {
    /// Defaults for everything but the interfaces.
    pub fn new(interfaces: Vec<String>) -> EngineConfig {
        EngineConfig {
            interfaces,
            xdp_mode: XdpMode::Auto,
            force_copy: false,
            queues: None,
            polling: Polling::Adaptive,
            cpus: Vec::new(),
            nice: None,
            queue_name: Some(pqueue::DEFAULT_NAME.to_string()),
            layout: Layout::default(),
        }
    }
}

/// What the control side shares with the workers.
struct Shared {
    infos: Vec<InterfaceInfo>,
    policy: Arc<PolicyCell>,
    stats: StatsBoard,
    /// [interface][queue]
    snapshots: Vec<Vec<Arc<RingSnapshot>>>,
    /// [queue]
    refresh: Vec<Arc<Refresh>>,
    /// [interface]: the XDP program's counters map.
    program_counters: Vec<OwnedFd>,
    running: Arc<AtomicBool>,
}

impl EngineView for Shared {
    fn interfaces(&self) -> &[InterfaceInfo] {
        &self.infos
    }
    fn policy(&self) -> &PolicyCell {
        &self.policy
    }
    fn stats(&self) -> &StatsBoard {
        &self.stats
    }
    fn ring_details(&self, ifidx: usize, queue: usize) -> Result<String, String> {
        if ifidx >= self.infos.len() {
            return Err(format!(
                "{ifidx} is not an interface (0..{})",
                self.infos.len() - 1
            ));
        }
        let Some(refresh) = self.refresh.get(queue) else {
            return Err(format!(
                "{queue} is not a queue of the engine (0..{})",
                self.refresh.len().saturating_sub(1)
            ));
        };
        let running = self.running.load(Ordering::Relaxed);
        let mut fresh = false;
        if running {
            let ticket = refresh.requested.fetch_add(1, Ordering::AcqRel) + 1;
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                if refresh.done.load(Ordering::Acquire) >= ticket {
                    fresh = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let s = &self.snapshots[ifidx][queue];
        let r = Ordering::Relaxed;
        let mut out = String::new();
        let mut line = |label: &str, v: u64| out.push_str(&super::words::stat_line(2, label, v));
        line("fill ring", s.fill.load(r));
        line("rx ring", s.rx.load(r));
        line("tx ring", s.tx.load(r));
        line("completion ring", s.comp.load(r));
        line("free frames", s.free_frames.load(r));
        line("spare frames", s.spare_frames.load(r));
        line("rx_dropped", s.rx_dropped.load(r));
        line("rx_invalid_descs", s.rx_invalid_descs.load(r));
        line("tx_invalid_descs", s.tx_invalid_descs.load(r));
        line("rx_ring_full", s.rx_ring_full.load(r));
        line("rx_fill_ring_empty", s.rx_fill_ring_empty_descs.load(r));
        line("tx_ring_empty_descs", s.tx_ring_empty_descs.load(r));
        let c = xdp::read_counters(&self.program_counters[ifidx]);
        line("xdp seen", c.seen);
        line("xdp redirected", c.redirected);
        line("xdp passed", c.passed);
        if !running {
            out.push_str("  (engine stopped: last values)\n");
        } else if !fresh {
            out.push_str("  (worker did not answer: values may be old)\n");
        }
        Ok(out)
    }
}

/// A running engine. Stops (and restores the interfaces) on `stop()` or drop.
pub struct Engine {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    attachments: Vec<XdpAttachment>,
    promisc: Vec<PromiscGuard>,
    warnings: Vec<String>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Engine {
    /// Checks the configuration, takes the interfaces and starts the workers. Runs in the
    /// caller's network namespace; the workers inherit it.
    pub fn start(config: EngineConfig) -> Result<Engine, String> {
        let n = config.interfaces.len();
        if n == 0 || n > super::policy::MAX_IFS {
            return Err(format!(
                "give one interface (mirror mode) or two (bridge mode), not {n}"
            ));
        }
        if let Some(q) = config.queues {
            if q == 0 || q > MAX_QUEUES {
                return Err(format!("--queues {q}: must be 1..{MAX_QUEUES}"));
            }
        }
        if !config.cpus.is_empty() {
            let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
                .map_err(|e| format!("reading the CPUs this process may use: {e}"))?;
            if let Some(c) = config
                .cpus
                .iter()
                .find(|&&c| !allowed.is_set(c).unwrap_or(false))
            {
                return Err(format!("--cpus: CPU {c} is not available to this process"));
            }
        }
        if let Some(nice) = config.nice {
            if !(-20..=19).contains(&nice) {
                return Err(format!("--nice {nice}: must be -20..19"));
            }
        }
        if !is_root() {
            return Err(
                "ethertap start needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW): run it with sudo"
                    .into(),
            );
        }
        let mut ifindexes = Vec::with_capacity(n);
        for name in &config.interfaces {
            let idx = netdev::if_index(name)?;
            if ifindexes.contains(&idx) {
                return Err(format!("interface \"{name}\" is given twice"));
            }
            ifindexes.push(idx);
        }
        let mut warnings = Vec::new();
        let have: Vec<u32> = config
            .interfaces
            .iter()
            .map(|n| netdev::rx_queue_count(n))
            .collect();
        let fewest = have.iter().copied().min().unwrap_or(1);
        let queues = match config.queues {
            Some(q) => {
                if let Some((name, h)) = config.interfaces.iter().zip(&have).find(|(_, &h)| q > h) {
                    return Err(format!(
                        "{name} has {h} receive queue(s); --queues {q} is too many \
                         (ethtool -l {name} shows them, ethtool -L changes them)"
                    ));
                }
                q
            }
            None if fewest > MAX_QUEUES => {
                return Err(format!(
                    "the interfaces have {fewest} receive queues, more than the {MAX_QUEUES} \
                     workers ethertap runs: reduce them (ethtool -L IF combined {MAX_QUEUES}) \
                     or choose with --queues"
                ));
            }
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
        for name in &config.interfaces {
            // Ethernet header and two VLAN tags on top of the MTU.
            let longest = netdev::mtu(name).unwrap_or(1500) + 14 + 8;
            if longest > xsk::MAX_FRAME_LEN {
                warnings.push(format!(
                    "{name} has an MTU for frames of up to {longest} bytes; frames longer than \
                     {} bytes are dropped (rx_dropped in if.qstats): jumbo frames are not \
                     supported",
                    xsk::MAX_FRAME_LEN
                ));
            }
        }
        for name in &config.interfaces {
            if !netdev::is_up(name).map_err(|e| format!("{name}: {e}"))? {
                return Err(format!(
                    "{name} is down; bring it up first (ip link set dev {name} up)"
                ));
            }
        }
        // libbpf would also print its own copy of errors we report with more context.
        libbpf_rs::set_print(None);
        for (name, &idx) in config.interfaces.iter().zip(&ifindexes) {
            xdp::remove_stale(name, idx)?;
        }

        let mut attachments = Vec::with_capacity(n);
        for (name, &idx) in config.interfaces.iter().zip(&ifindexes) {
            attachments.push(XdpAttachment::attach(name, idx, config.xdp_mode)?);
        }

        let sockets = open_all_queues(&config.interfaces, queues, config.force_copy)?;
        let zerocopy = sockets.1;
        let sockets = sockets.0;
        for qs in &sockets {
            for (att, port) in attachments.iter().zip(&qs.ports) {
                att.bind_queue(qs.queue, port.fd)?;
            }
        }

        // Opened (and re-initialised) only once the interfaces are set up, so a start that
        // fails before leaves the queue and its consumers alone.
        let producer = match &config.queue_name {
            Some(q) => Some(Arc::new(
                Producer::open(q, config.layout)
                    .map_err(|e| format!("packet queue \"{q}\": {e}"))?,
            )),
            None => None,
        };

        let mut promisc = Vec::with_capacity(n);
        for (name, &idx) in config.interfaces.iter().zip(&ifindexes) {
            promisc.push(
                PromiscGuard::enable(idx).map_err(|e| format!("{name}: promiscuous mode: {e}"))?,
            );
        }

        let infos: Vec<InterfaceInfo> = config
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, name)| InterfaceInfo {
                index: i,
                name: name.clone(),
                driver: netdev::driver_name(name),
                queues,
                zerocopy,
                attached_mode: attachments[i].mode,
            })
            .collect();
        let nqueues = queues as usize;
        let snapshots: Vec<Vec<Arc<RingSnapshot>>> = (0..n)
            .map(|_| (0..nqueues).map(|_| Arc::default()).collect())
            .collect();
        let refresh: Vec<Arc<Refresh>> = (0..nqueues).map(|_| Arc::default()).collect();
        let program_counters = attachments
            .iter()
            .map(|a| a.counters_map())
            .collect::<Result<Vec<_>, _>>()?;
        let running = Arc::new(AtomicBool::new(true));
        let shared = Arc::new(Shared {
            infos,
            policy: Arc::new(PolicyCell::default()),
            stats: StatsBoard::new(n, nqueues),
            snapshots,
            refresh,
            program_counters,
            running,
        });

        let stop = Arc::new(AtomicBool::new(false));
        let mut engine = Engine {
            shared: shared.clone(),
            stop: stop.clone(),
            workers: Vec::with_capacity(nqueues),
            warnings,
            attachments,
            promisc,
        };
        for (q, qs) in sockets.into_iter().enumerate() {
            let worker = Worker {
                sockets: qs,
                bridge: n == 2,
                polling: config.polling,
                cpu: if config.cpus.is_empty() {
                    None
                } else {
                    Some(config.cpus[q % config.cpus.len()])
                },
                nice: config.nice,
                policy: shared.policy.clone(),
                stats: (0..n).map(|i| shared.stats.queue(i, q)).collect(),
                snapshots: (0..n).map(|i| shared.snapshots[i][q].clone()).collect(),
                refresh: shared.refresh[q].clone(),
                producer: producer.clone(),
                stop: stop.clone(),
                seed: 0x9e37_79b9_7f4a_7c15u64 ^ ((q as u64 + 1) * 0x1000_0001) ^ now_seed(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("ixdp-q{q}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("starting the worker of queue {q}: {e}"))?;
            engine.workers.push(handle);
        }
        Ok(engine)
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
        self.workers.iter().all(|w| !w.is_finished())
    }

    /// Block until `stop_requested` says so or a worker dies (reported on stderr). Every
    /// front end (foreground, console, daemon) waits on the engine this way.
    pub fn run_until(&self, stop_requested: impl Fn() -> bool) {
        while !stop_requested() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if !self.healthy() {
                eprintln!("ethertap: a worker thread ended unexpectedly; stopping");
                return;
            }
        }
    }

    /// Stops the workers, detaches the XDP programs and restores promiscuous mode.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Detach first, so no frame is redirected to a socket that is closing.
        for a in &mut self.attachments {
            a.detach();
        }
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.shared.running.store(false, Ordering::Relaxed);
        self.attachments.clear();
        self.promisc.clear();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("interfaces", &self.shared.infos)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn now_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// All queues' sockets, zero-copy when every interface allows it (a shared UMEM binds all
/// its sockets in the mode of the first), else copy mode. Returns the sockets and whether
/// they are zero-copy.
fn open_all_queues(
    interfaces: &[String],
    queues: u32,
    force_copy: bool,
) -> Result<(Vec<QueueSockets>, bool), String> {
    if !force_copy {
        let zc: Result<Vec<_>, String> = (0..queues)
            .map(|q| xsk::open_queue(interfaces, q, true))
            .collect();
        if let Ok(s) = zc {
            return Ok((s, true));
        }
    }
    let copy: Result<Vec<_>, String> = (0..queues)
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
        let mut c = EngineConfig::new(vec![]);
        assert!(Engine::start(c.clone()).unwrap_err().contains("not 0"));
        c.interfaces = vec!["a".into(), "b".into(), "c".into()];
        assert!(Engine::start(c.clone()).unwrap_err().contains("not 3"));
        c.interfaces = vec!["lo".into()];
        c.queues = Some(9);
        assert!(Engine::start(c.clone()).unwrap_err().contains("--queues 9"));
        c.queues = Some(0);
        assert!(Engine::start(c.clone()).unwrap_err().contains("--queues 0"));
        c.queues = None;
        c.nice = Some(20);
        assert!(Engine::start(c).unwrap_err().contains("--nice 20"));
    }
}
