//! The kernel path (docs/kernel-path.md): in bridge mode, the frames of a port that nothing in
//! user space wants are counted by the XDP program and forwarded by the TC program, without a
//! copy into user space or a wake-up of a worker.
//!
//! Which port forwards in the kernel is a pure function of the policy snapshot and the link
//! states ([`kernel_route`]). The control side writes it into each port's `kpath_cfg` map
//! after every policy update and every link change ([`KernelPath::refresh`]); a thread of its
//! own listens for the kernel's link notifications so that a port going down is noticed at once,
//! also where nothing polls the engine. The workers are not involved.
//!
//! [`KernelStats`] reads the program's statistics back for the [`StatsBoard`], which merges
//! them with the workers' own.
//!
//! [`StatsBoard`]: super::stats::StatsBoard

use super::ktap::{self, ReaderConfig};
use super::lock;
use super::netdev;
use super::policy::{Policy, PolicyCell};
use super::select::Sampler;
use super::stats::{
    sort_macs, Counters, EtypeCount, EtypeReport, KernelTally, MacCount, MacReport, OverflowSketch,
    SKETCH_WORDS,
};
use super::view::LinkState;
use super::xdp::{per_cpu, u64_at, KernelMaps};
use crate::wire::Mac;
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

/// Queues the program keeps counters for (`ETHERTAP_MAX_QUEUES`).
const PROGRAM_QUEUES: usize = 64;
const MAC_OVERFLOW: u32 = 2 * PROGRAM_QUEUES as u32;
const ETYPE_OVERFLOW: u32 = MAC_OVERFLOW + 1;
const N_COUNTERS: usize = ETYPE_OVERFLOW as usize + 1;

/// Where the frames received on a port go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelRoute {
    /// Through the workers (AF_XDP).
    Workers,
    /// Forwarded in the kernel; `tap`: each copied into the kernel tap's ring on the way.
    Kernel {
        /// A tap wants the frames (the kernel tap, ktap.rs).
        tap: bool,
    },
}

/// Where frames received on port `i` go under `policy`. They may take the kernel path in bridge
/// mode when fault injection is off on `i`, the drop machash is empty and both ports are up.
/// A tap that wants them (RX tap on `i`, TX tap on the other port) keeps them in user space,
/// unless `kernel_tap`: then the kernel path copies them into the kernel tap's ring.
pub fn kernel_route(
    policy: &Policy,
    links: &[LinkState],
    i: usize,
    kernel_tap: bool,
) -> KernelRoute {
    if links.len() != 2 || i > 1 {
        return KernelRoute::Workers;
    }
    let o = 1 - i;
    let tapped = !policy.queues.is_empty() && (policy.tap_rx[i] || policy.tap_tx[o]);
    let kernel = (!tapped || kernel_tap)
        && !policy.fault[i].enabled
        && policy.drop_hash.is_empty()
        && links.iter().all(|&l| l == LinkState::Up);
    if kernel {
        KernelRoute::Kernel { tap: tapped }
    } else {
        KernelRoute::Workers
    }
}

/// A handle of its own on the map behind `m`.
fn dup(m: &MapHandle) -> std::io::Result<MapHandle> {
    MapHandle::try_from(m).map_err(|e| std::io::Error::other(e.to_string()))
}

/// The kernel path's statistics of one interface, read from its maps.
pub struct KernelStats {
    counters: MapHandle,
    macs: MapHandle,
    etypes: MapHandle,
    sketch: MapHandle,
    /// Counter values at the last reset.
    baseline: Mutex<Vec<u64>>,
}

impl KernelStats {
    /// A reader of the maps `maps` (handles of its own).
    pub fn new(maps: &KernelMaps) -> std::io::Result<KernelStats> {
        Ok(KernelStats {
            counters: dup(&maps.counters)?,
            macs: dup(&maps.macs)?,
            etypes: dup(&maps.etypes)?,
            sketch: dup(&maps.sketch)?,
            baseline: Mutex::new(vec![0; N_COUNTERS]),
        })
    }

    fn raw(&self, key: u32) -> u64 {
        per_cpu(&self.counters, &key.to_ne_bytes(), |v| u64_at(v, 0))
            .into_iter()
            .sum()
    }

    /// Counter `key` since the last reset.
    fn counter(&self, key: u32) -> u64 {
        let base = lock(&self.baseline)[key as usize];
        self.raw(key).saturating_sub(base)
    }

    fn queue_counts(&self, q: usize) -> Counters {
        if q >= PROGRAM_QUEUES {
            return Counters::default();
        }
        let k = 2 * q as u32;
        Counters {
            rx: self.counter(k),
            rx_bytes: self.counter(k + 1),
            ..Counters::default()
        }
    }

    fn keys(map: &MapHandle) -> Vec<Vec<u8>> {
        map.keys().collect()
    }
}

impl KernelTally for KernelStats {
    fn queue(&self, q: usize) -> Counters {
        self.queue_counts(q)
    }

    fn total(&self) -> Counters {
        let mut sum = Counters::default();
        for q in 0..PROGRAM_QUEUES {
            sum += self.queue_counts(q);
        }
        sum
    }

    fn macs(&self) -> (MacReport, OverflowSketch) {
        let mut macs: Vec<MacCount> = Self::keys(&self.macs)
            .into_iter()
            .filter_map(|key| {
                let mac = u64_at(&key, 0)?;
                let frames: u64 = per_cpu(&self.macs, &key, |v| u64_at(v, 0)).iter().sum();
                (frames > 0).then(|| MacCount {
                    mac: Mac::from_u64(mac),
                    frames,
                })
            })
            .collect();
        sort_macs(&mut macs);
        let words = std::array::from_fn(|w| {
            per_cpu(&self.sketch, &(w as u32).to_ne_bytes(), |v| u64_at(v, 0))
                .into_iter()
                .fold(0, |a, b| a | b)
        });
        let sketch = OverflowSketch::from_words(words);
        let report = MacReport {
            macs,
            overflow: self.counter(MAC_OVERFLOW),
            overflow_macs: sketch.estimate(),
        };
        (report, sketch)
    }

    fn etypes(&self) -> EtypeReport {
        let mut types: Vec<EtypeCount> = Self::keys(&self.etypes)
            .into_iter()
            .filter_map(|key| {
                let k = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
                let rows = per_cpu(&self.etypes, &key, |v| Some((u64_at(v, 0)?, u64_at(v, 8)?)));
                let frames: u64 = rows.iter().map(|r| r.0).sum();
                let last_src = rows.iter().max_by_key(|r| r.0).map_or(0, |r| r.1);
                (frames > 0).then(|| EtypeCount {
                    level: (k >> 16) as u8,
                    ethertype: k as u16,
                    frames,
                    last_src: Mac::from_u64(last_src),
                })
            })
            .collect();
        types.sort_by_key(|t| (t.level, t.ethertype));
        EtypeReport {
            types,
            overflow: self.counter(ETYPE_OVERFLOW),
        }
    }

    fn reset(&self) {
        let now: Vec<u64> = (0..N_COUNTERS as u32).map(|k| self.raw(k)).collect();
        *lock(&self.baseline) = now;
        // Frames counted while this runs may land before or after it, as with the workers.
        for map in [&self.macs, &self.etypes] {
            for key in Self::keys(map) {
                let _ = map.delete(&key);
            }
        }
        let zeros = vec![vec![0u8; 8]; libbpf_rs::num_possible_cpus().unwrap_or(1)];
        for w in 0..SKETCH_WORDS as u32 {
            let _ = self
                .sketch
                .update_percpu(&w.to_ne_bytes(), &zeros, MapFlags::ANY);
        }
    }
}

/// `struct kpath_cfg` of bpf/ethertap.bpf.c.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CfgValue {
    forward: bool,
    out_ifindex: u32,
    generic: bool,
    tap: bool,
}

impl CfgValue {
    fn of(route: KernelRoute, out_ifindex: u32, generic: bool) -> CfgValue {
        let (forward, tap) = match route {
            KernelRoute::Workers => (false, false),
            KernelRoute::Kernel { tap } => (true, tap),
        };
        CfgValue {
            forward,
            out_ifindex,
            generic,
            tap,
        }
    }

    fn bytes(&self) -> [u8; 16] {
        let fields = [
            u32::from(self.forward),
            self.out_ifindex,
            u32::from(self.generic),
            u32::from(self.tap),
        ];
        let mut b = [0u8; 16];
        for (chunk, f) in b.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&f.to_ne_bytes());
        }
        b
    }
}

/// The values to write, in order, to change a port's `kpath_cfg` from `old` to `new`. The
/// program reads the fields one by one, and a map update is a plain copy, so a frame may see
/// some fields old and some new. The tap flag goes up before the forward flag may change, and
/// down only after: no frame is then forwarded in the kernel without its copy while a tap wants
/// it (at worst one is copied that nobody wants, which the reader drops).
fn cfg_writes(old: Option<CfgValue>, new: CfgValue) -> Vec<CfgValue> {
    let step = old.and_then(|old| match (old.tap, new.tap) {
        (false, true) => Some(CfgValue { tap: true, ..old }),
        (true, false) => Some(CfgValue { tap: true, ..new }),
        _ => None,
    });
    step.into_iter().chain([new]).collect()
}

/// One port's side: its name, its current ifindex and its flag map.
struct Port {
    name: String,
    ifindex: u32,
    /// Its XDP program runs in generic (skb) mode: the TC program learns the XDP program's
    /// decision per CPU instead of from the frame's metadata.
    generic: bool,
    cfg: MapHandle,
    /// Its state when the engine's threads last looked.
    link: LinkState,
    /// The value last written to `cfg`, to write only changes.
    written: Option<CfgValue>,
}

/// The kernel path of a bridge: decides which port forwards in the kernel.
pub struct KernelPath {
    ports: Mutex<Vec<Port>>,
    policy: Arc<PolicyCell>,
    /// False where the TC program could not be attached on every port (`--kernel-path off`
    /// never makes one): the flags stay off.
    usable: bool,
    /// The kernel tap's reader runs: tapped frames may take the kernel path.
    tap: bool,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl KernelPath {
    /// The kernel path of the two ports `(name, ifindex, generic mode, maps)` under `policy`;
    /// `usable`: the TC program is attached on both; `tap`: start the kernel tap's reader this
    /// way, with the queues' sampling counts (None: tapped frames go through the workers).
    /// Starts the link watcher and sets the flags. The warning says why the kernel tap could
    /// not start, if it could not. Everything that can fail comes before any thread starts
    /// and any flag is written, so an error leaves every frame to the workers.
    pub fn start(
        ports: Vec<(String, u32, bool, &KernelMaps)>,
        policy: Arc<PolicyCell>,
        usable: bool,
        tap: Option<(ReaderConfig, Vec<Sampler>)>,
    ) -> std::io::Result<(Arc<KernelPath>, Option<String>)> {
        let rings = ports
            .iter()
            .map(|(_, _, _, maps)| dup(&maps.ring))
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = ports
            .into_iter()
            .map(|(name, ifindex, generic, maps)| {
                Ok(Port {
                    name,
                    ifindex,
                    generic,
                    cfg: dup(&maps.cfg)?,
                    link: LinkState::Down,
                    written: None,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let sock = usable.then(link_notifications).transpose()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut warning = None;
        let reader = match tap.filter(|_| usable && ports.len() == 2) {
            Some((config, samplers)) => {
                match ktap::spawn(rings, policy.clone(), samplers, config, stop.clone()) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        warning = Some(format!(
                            "no kernel tap ({e}): tapped frames go through the workers"
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let kp = Arc::new(KernelPath {
            ports: Mutex::new(ports),
            policy: policy.clone(),
            usable,
            tap: reader.is_some(),
            stop,
            watcher: Mutex::new(None),
            reader: Mutex::new(reader),
        });
        if let Some(sock) = sock {
            let weak = Arc::downgrade(&kp);
            let spawned = std::thread::Builder::new()
                .name("ixdp-links".into())
                .spawn(move || watch(sock, weak));
            match spawned {
                Ok(h) => *lock(&kp.watcher) = Some(h),
                Err(e) => {
                    kp.shutdown();
                    return Err(e);
                }
            }
        }
        let weak: Weak<KernelPath> = Arc::downgrade(&kp);
        policy.observe(Box::new(move || {
            if let Some(kp) = weak.upgrade() {
                kp.refresh();
            }
        }));
        kp.relink();
        Ok((kp, warning))
    }

    /// Port `i` is now `ifindex`, attached in generic mode or not (picked up again under a new
    /// index); called in the ports' namespace.
    pub fn set_ifindex(&self, i: usize, ifindex: u32, generic: bool) {
        if let Some(p) = lock(&self.ports).get_mut(i) {
            p.ifindex = ifindex;
            p.generic = generic;
            p.written = None;
        }
        self.relink();
    }

    /// Reads the ports' link states again. Only the engine's own threads call it (start and
    /// the watcher): they are in the ports' network namespace, which a caller of the words need
    /// not be.
    fn relink(&self) {
        {
            let mut ports = lock(&self.ports);
            for p in ports.iter_mut() {
                // Up and with a carrier: a veth whose peer is down is up but drops what it is
                // given.
                p.link = match LinkState::of(&p.name, p.ifindex) {
                    LinkState::Up if !netdev::is_running(&p.name).unwrap_or(true) => {
                        LinkState::Down
                    }
                    state => state,
                };
            }
        }
        self.refresh();
    }

    /// Writes each port's flag for the current policy and the link states last read.
    /// Serialised, and it reads the policy itself, so that the last call writes the newest
    /// state.
    pub fn refresh(&self) {
        let mut ports = lock(&self.ports);
        let policy = self.policy.snapshot();
        let links: Vec<LinkState> = ports.iter().map(|p| p.link).collect();
        let n = ports.len();
        for i in 0..n {
            let route = if self.usable {
                kernel_route(&policy, &links, i, self.tap)
            } else {
                KernelRoute::Workers
            };
            let out = if n == 2 { ports[1 - i].ifindex } else { 0 };
            let p = &mut ports[i];
            let new = CfgValue::of(route, out, p.generic);
            if p.written == Some(new) {
                continue;
            }
            let written = cfg_writes(p.written, new).iter().all(|v| {
                p.cfg
                    .update(&0u32.to_ne_bytes(), &v.bytes(), MapFlags::ANY)
                    .is_ok()
            });
            if written {
                p.written = Some(new);
            }
        }
    }

    /// Stops the watcher and the kernel tap's reader.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in [&self.watcher, &self.reader] {
            if let Some(h) = lock(thread).take() {
                let _ = h.join();
            }
        }
    }
}

/// A netlink socket subscribed to link changes (RTMGRP_LINK), woken at least every 250 ms.
fn link_notifications() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; the fields are set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: addr is a valid sockaddr_nl of the given size.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 250_000,
    };
    // SAFETY: timeout is a valid timeval for SO_RCVTIMEO.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &timeout as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// The watcher thread: refreshes the flags on every link notification, and every 250 ms (a
/// carrier change may reach netlink late, and a notification may be lost to a full socket).
fn watch(sock: OwnedFd, kp: Weak<KernelPath>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match kp.upgrade() {
            Some(kp) if !kp.stop.load(Ordering::Relaxed) => kp.relink(),
            _ => return,
        }
        // SAFETY: buf is valid for its length; the result is only a wake-up.
        let _ = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ixdp::fanout::TapQueue;
    use crate::ixdp::machash::MacSet;
    use crate::ixdp::policy::FaultConfig;
    use crate::pqueue::{queue_path, Layout, Producer};

    const UP: [LinkState; 2] = [LinkState::Up, LinkState::Up];

    /// Whether port `i` forwards in the kernel without the kernel tap.
    fn forwards(p: &Policy, links: &[LinkState], i: usize) -> bool {
        kernel_route(p, links, i, false) != KernelRoute::Workers
    }

    fn with_queue() -> (Policy, String) {
        let name = format!("et-kpath-unit-{}", std::process::id());
        let producer = Producer::open(
            &name,
            Layout {
                slots: 16,
                ..Layout::default()
            },
        )
        .expect("queue");
        let policy = Policy {
            queues: vec![TapQueue::new(Arc::new(producer))],
            ..Policy::default()
        };
        (policy, name)
    }

    #[test]
    fn an_untouched_bridge_forwards_both_ways_in_the_kernel() {
        let p = Policy::default();
        assert!(forwards(&p, &UP, 0) && forwards(&p, &UP, 1));
    }

    #[test]
    fn mirror_mode_and_unknown_ports_never_do() {
        let p = Policy::default();
        assert!(!forwards(&p, &[LinkState::Up], 0));
        assert!(!forwards(&p, &UP, 2));
    }

    #[test]
    fn a_tap_keeps_the_frames_it_wants_in_user_space() {
        let (mut p, name) = with_queue();
        p.tap_rx[0] = true;
        assert!(!forwards(&p, &UP, 0), "RX tap on 0 wants 0's frames");
        assert!(forwards(&p, &UP, 1), "1's frames are not tapped anywhere");
        p.tap_rx[0] = false;
        p.tap_tx[1] = true;
        assert!(!forwards(&p, &UP, 0), "TX tap on 1 wants what 0 forwards");
        assert!(forwards(&p, &UP, 1));
        p.queues.clear();
        assert!(forwards(&p, &UP, 0), "an engine without taps taps nothing");
        let _ = std::fs::remove_file(queue_path(&name));
    }

    #[test]
    fn faults_drops_and_links_keep_frames_in_user_space() {
        let mut p = Policy::default();
        p.fault[1] = FaultConfig {
            enabled: true,
            ..FaultConfig::default()
        };
        assert!(forwards(&p, &UP, 0) && !forwards(&p, &UP, 1));
        let mut p = Policy {
            drop_hash: MacSet::new().inserted(Mac([2, 0, 0, 0, 0, 1])),
            ..Policy::default()
        };
        assert!(!forwards(&p, &UP, 0) && !forwards(&p, &UP, 1));
        p.drop_hash = MacSet::new();
        for down in [LinkState::Down, LinkState::Gone] {
            let links = [LinkState::Up, down];
            assert!(!forwards(&p, &links, 0), "output {down:?}");
            assert!(!forwards(&p, &links, 1), "input {down:?}");
        }
    }

    #[test]
    fn with_the_kernel_tap_tapped_frames_stay_in_the_kernel_and_are_copied() {
        let (mut p, name) = with_queue();
        let route = |p: &Policy, i| kernel_route(p, &UP, i, true);
        assert_eq!(route(&p, 0), KernelRoute::Kernel { tap: false });
        p.tap_rx[0] = true;
        assert_eq!(route(&p, 0), KernelRoute::Kernel { tap: true });
        assert_eq!(route(&p, 1), KernelRoute::Kernel { tap: false });
        p.tap_tx[0] = true;
        assert_eq!(
            route(&p, 1),
            KernelRoute::Kernel { tap: true },
            "TX tap on 0 wants what 1 forwards"
        );
        p.fault[0] = FaultConfig {
            enabled: true,
            ..FaultConfig::default()
        };
        assert_eq!(route(&p, 0), KernelRoute::Workers, "faults need a worker");
        assert_eq!(
            kernel_route(&p, &[LinkState::Up, LinkState::Down], 1, true),
            KernelRoute::Workers
        );
        p.queues.clear();
        assert_eq!(route(&p, 1), KernelRoute::Kernel { tap: false });
        let _ = std::fs::remove_file(queue_path(&name));
    }

    #[test]
    fn the_tap_flag_goes_up_before_and_down_after_the_forward_flag() {
        let v = |route, out| CfgValue::of(route, out, true);
        let (workers, kernel, tapped) = (
            KernelRoute::Workers,
            KernelRoute::Kernel { tap: false },
            KernelRoute::Kernel { tap: true },
        );
        let both = |forward| CfgValue {
            forward,
            out_ifindex: 7,
            generic: true,
            tap: true,
        };
        // Fault injection turned off under a tap: the tap flag first, then forwarding.
        assert_eq!(
            cfg_writes(Some(v(workers, 7)), v(tapped, 7)),
            [both(false), v(tapped, 7)]
        );
        // Turned on again: forwarding stops while the tap flag is still up.
        assert_eq!(
            cfg_writes(Some(v(tapped, 7)), v(workers, 7)),
            [both(false), v(workers, 7)]
        );
        assert_eq!(
            cfg_writes(Some(v(workers, 7)), v(kernel, 7)),
            [v(kernel, 7)]
        );
        assert_eq!(
            cfg_writes(None, v(tapped, 7)),
            [v(tapped, 7)],
            "the first write"
        );
        let bytes = v(tapped, 7).bytes();
        let fields: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(fields, [1, 7, 1, 1], "forward, out_ifindex, generic, tap");
    }
}
