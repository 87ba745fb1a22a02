//! The project's XDP program (`bpf/ethertap.bpf.c`): one loaded instance per interface, so
//! each interface has its own XSKMAP; attached through a bpf_link (the kernel removes it when
//! the last fd closes, so a killed engine leaves nothing behind), with netlink-attached
//! leftovers of older or foreign runs of ethertap removed before attaching. The same object's TC
//! program forwards the kernel path's frames (docs/kernel-path.md); it is attached through a
//! tcx link, which goes with the process as well.

use super::XdpMode;
use libbpf_rs::libbpf_sys as sys;
use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, ObjectBuilder};
use libbpf_rs::{Xdp, XdpFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

static PROGRAM_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ethertap.bpf.o"));

/// The program's name in the kernel; stale instances are recognised by it.
pub const PROGRAM_NAME: &str = "ethertap_xdp";

/// Keys of the program's per-CPU `counters` array, in [`ProgramCounters`] order.
const CNT_MAX: u32 = 6;

/// The kernel tap's ring per interface by default, bytes (`ethertap start --kernel-tap-ring`).
pub const DEFAULT_KTAP_RING: u32 = 4 << 20;

/// Whether `bytes` can be the size of a BPF ring buffer: a power of two, at least a page.
pub fn valid_ring_size(bytes: u32) -> bool {
    bytes.is_power_of_two() && bytes >= 4096
}

/// The TC program's name in the kernel.
pub const TC_PROGRAM_NAME: &str = "ethertap_tc";

/// The maps of the kernel path, in [`KernelMaps`] order.
const KERNEL_MAP_NAMES: [&str; 6] = [
    "kpath_cfg",
    "kpath_counters",
    "kpath_macs",
    "kpath_etypes",
    "kpath_sketch",
    "ktap_ring",
];

/// The counters of `bpf/ethertap.bpf.c`, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Frames the program saw.
    pub seen: u64,
    /// Frames it redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Frames it passed to the kernel stack (no socket on their queue).
    pub passed: u64,
    /// Frames it left to the kernel path (counted there, forwarded by the TC program).
    pub kernel: u64,
    /// Of those, frames copied into the kernel tap's ring.
    pub kernel_tapped: u64,
    /// Frames the kernel tap wanted while its ring was full: handed to the socket instead.
    pub kernel_tap_full: u64,
}

/// The maps of an interface's kernel path (`bpf/ethertap.bpf.c`). The engine keeps the first
/// instance's for its whole life and every later instance on the interface reuses them, so the
/// kernel path's flag and statistics carry on when an interface is picked up again.
pub struct KernelMaps {
    /// `kpath_cfg`: the flag and the output's ifindex.
    pub cfg: MapHandle,
    /// `kpath_counters`: frames and bytes per queue, the table overflows.
    pub counters: MapHandle,
    /// `kpath_macs`: source MAC -> frames, per CPU.
    pub macs: MapHandle,
    /// `kpath_etypes`: (level, Ethertype) -> frames and last source MAC, per CPU.
    pub etypes: MapHandle,
    /// `kpath_sketch`: the MAC overflow sketch, per CPU.
    pub sketch: MapHandle,
    /// `ktap_ring`: the kernel tap's copies of tapped kernel-path frames.
    pub ring: MapHandle,
}

/// What went wrong with the XDP program of an interface.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The kernel did not say what is attached.
    #[error("{ifname}: querying XDP state: {source}")]
    Query {
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Another program than ethertap's is attached.
    #[error(
        "{ifname} already has another XDP program attached ({} id {id}); \
         remove it first (ip link set dev {ifname} xdp off)",
        if .program.is_empty() { "unnamed" } else { .program }
    )]
    Foreign {
        /// The interface.
        ifname: String,
        /// That program's name (empty if it has none).
        program: String,
        /// That program's id.
        id: u32,
    },
    /// An ethertap program that cannot be detached: a running engine holds its link.
    #[error(
        "{ifname} is in use by a running ethertap (its XDP program {id} could not be \
         detached: {source}); stop that one first"
    )]
    InUse {
        /// The interface.
        ifname: String,
        /// The program's id.
        id: u32,
        /// Why the detach failed.
        source: libbpf_rs::Error,
    },
    /// Building, opening or loading the program object failed.
    #[error("{step}: {source}")]
    Load {
        /// What was being done.
        step: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// The built-in object lacks a part (a build problem).
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    /// `--xdp-mode drv` on a driver without native XDP.
    #[error(
        "{ifname}: the driver ({driver}) has no native XDP support ({source}); \
         use --xdp-mode skb or auto"
    )]
    NoNativeMode {
        /// The interface.
        ifname: String,
        /// Its driver.
        driver: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Attaching in the requested mode failed.
    #[error("{ifname}: attaching XDP in {mode} mode: {source}")]
    Attach {
        /// The interface.
        ifname: String,
        /// `drv` or `skb`.
        mode: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `--xdp-mode auto` found no mode that works.
    #[error("{ifname}: the driver ({driver}) supports XDP in neither drv nor skb mode: {source}")]
    NoMode {
        /// The interface.
        ifname: String,
        /// Its driver.
        driver: String,
        /// The kernel's answer to the skb attempt.
        source: io::Error,
    },
    /// A socket could not be put into the XSKMAP.
    #[error("{ifname}: putting the socket of queue {queue} into the XSKMAP: {source}")]
    XskMap {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// The counters map could not be shared with the control thread.
    #[error("duplicating the counters map fd: {0}")]
    CountersMap(#[source] libbpf_rs::Error),
    /// A fresh instance could not take over the kernel path's maps.
    #[error("reusing the kernel path's map {name}: {source}")]
    ReuseMap {
        /// The map.
        name: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// The kernel tap's ring could not be given its size.
    #[error("sizing the kernel tap's ring to {bytes} bytes: {source}")]
    RingSize {
        /// The size asked for.
        bytes: u32,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
}

/// The program loaded and attached to one interface. Dropping it detaches the program.
pub struct XdpAttachment {
    ifname: String,
    link: Option<OwnedFd>,
    /// The TC program's tcx link; None where the kernel refused it (then there is no kernel
    /// path, see `tc_error`).
    tc_link: Option<OwnedFd>,
    /// Why the TC program could not be attached.
    pub tc_error: Option<io::Error>,
    object: Object,
    xsks: MapHandle,
    counters: MapHandle,
    /// The mode the kernel attached the program in (`Drv` or `Skb`).
    pub mode: XdpMode,
}

/// What `bpf_xdp_query` says about `ifindex`.
fn query(ifindex: u32) -> io::Result<sys::bpf_xdp_query_opts> {
    let mut opts = sys::bpf_xdp_query_opts {
        sz: std::mem::size_of::<sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: opts is a valid, sized bpf_xdp_query_opts for the call. (libbpf-rs has the
    // query only on a loaded program, and here there is none yet.)
    let rc = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(opts)
}

/// The XDP programs attached to `ifindex` now, as (mode flags for detaching, program id).
fn attached_programs(ifindex: u32) -> io::Result<Vec<(XdpFlags, u32)>> {
    let opts = query(ifindex)?;
    Ok([
        (XdpFlags::DRV_MODE, opts.drv_prog_id),
        (XdpFlags::SKB_MODE, opts.skb_prog_id),
        (XdpFlags::HW_MODE, opts.hw_prog_id),
    ]
    .into_iter()
    .filter(|&(_, id)| id != 0)
    .collect())
}

/// The name of the loaded program `fd`.
fn program_name(fd: &OwnedFd) -> Option<String> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info and len are valid for the call; the kernel fills at most len bytes.
    let rc = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 {
        return None;
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Removes ethertap programs a crashed run left on the interface; refuses to touch anyone
/// else's program.
pub fn remove_stale(ifname: &str, ifindex: u32) -> Result<(), XdpError> {
    let attached = attached_programs(ifindex).map_err(|source| XdpError::Query {
        ifname: ifname.to_string(),
        source,
    })?;
    for (mode, id) in attached {
        let fd = libbpf_rs::Program::fd_from_id(id).ok();
        let name = fd.as_ref().and_then(program_name).unwrap_or_default();
        let Some(fd) = fd.filter(|_| name == PROGRAM_NAME) else {
            return Err(XdpError::Foreign {
                ifname: ifname.to_string(),
                program: name,
                id,
            });
        };
        Xdp::new(fd.as_fd())
            .detach(ifindex as i32, mode)
            .map_err(|source| XdpError::InUse {
                ifname: ifname.to_string(),
                id,
                source,
            })?;
    }
    Ok(())
}

/// Attaches `prog_fd` to `ifindex` through a bpf_link in the mode `flags` names. (libbpf-rs
/// attaches XDP links only without flags, which lets the kernel pick the mode.)
fn attach_link(prog_fd: RawFd, ifindex: u32, flags: XdpFlags) -> io::Result<OwnedFd> {
    let opts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as _,
        flags: flags.bits(),
        ..Default::default()
    };
    // SAFETY: opts is valid and sized for the call; prog_fd is a loaded XDP program.
    let fd = unsafe { sys::bpf_link_create(prog_fd, ifindex as i32, sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh link fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn attach_mode_now(ifindex: u32) -> XdpMode {
    match query(ifindex) {
        Ok(opts) if u32::from(opts.attach_mode) == sys::XDP_ATTACHED_SKB => XdpMode::Skb,
        _ => XdpMode::Drv,
    }
}

/// Opens and loads a fresh instance of the program object, on the kernel path's maps of an
/// earlier instance when there was one, else with a kernel tap ring of `ring_bytes`.
fn load_object(reuse: Option<&KernelMaps>, ring_bytes: u32) -> Result<Object, XdpError> {
    let load = |step| move |source| XdpError::Load { step, source };
    let mut open = ObjectBuilder::default()
        .name("ethertap")
        .map_err(load("XDP program"))?
        .open_memory(PROGRAM_OBJECT)
        .map_err(load("opening the XDP program"))?;
    if let Some(maps) = reuse {
        let handles = [
            &maps.cfg,
            &maps.counters,
            &maps.macs,
            &maps.etypes,
            &maps.sketch,
            &maps.ring,
        ];
        for (name, handle) in KERNEL_MAP_NAMES.into_iter().zip(handles) {
            let mut map = open
                .maps_mut()
                .find(|m| m.name() == name)
                .ok_or(XdpError::Missing(name))?;
            map.reuse_fd(handle.as_fd())
                .map_err(|source| XdpError::ReuseMap { name, source })?;
        }
    } else {
        let name = KERNEL_MAP_NAMES[5];
        open.maps_mut()
            .find(|m| m.name() == name)
            .ok_or(XdpError::Missing(name))?
            .set_max_entries(ring_bytes)
            .map_err(|source| XdpError::RingSize {
                bytes: ring_bytes,
                source,
            })?;
    }
    open.load()
        .map_err(load("loading the XDP program into the kernel"))
}

/// Attaches the TC program `prog_fd` to the ingress of `ifindex` through a tcx link (kernel 6.6
/// and later).
fn attach_tcx(prog_fd: RawFd, ifindex: u32) -> io::Result<OwnedFd> {
    let opts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as _,
        ..Default::default()
    };
    // SAFETY: opts is valid and sized for the call; prog_fd is a loaded TC program.
    let fd = unsafe { sys::bpf_link_create(prog_fd, ifindex as i32, sys::BPF_TCX_INGRESS, &opts) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh link fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How many programs are attached to the tcx ingress of `ifindex` (what `kill -9` must not
/// leave behind).
pub fn tcx_ingress_programs(ifindex: u32) -> io::Result<u32> {
    let mut opts = sys::bpf_prog_query_opts {
        sz: std::mem::size_of::<sys::bpf_prog_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: opts is valid and sized for the call; without a prog_ids buffer the kernel only
    // fills in the count.
    let rc = unsafe { sys::bpf_prog_query_opts(ifindex as i32, sys::BPF_TCX_INGRESS, &mut opts) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    // SAFETY: the union member the kernel wrote (count and prog_cnt are the same field).
    Ok(unsafe { opts.__bindgen_anon_1.count })
}

/// The fd of the program `name` of `object`.
fn program_fd(object: &Object, name: &'static str) -> Result<RawFd, XdpError> {
    object
        .progs()
        .find(|p| p.name() == name)
        .map(|p| p.as_fd().as_raw_fd())
        .ok_or(XdpError::Missing(name))
}

/// The map `name` of `object`, as a handle of its own.
fn map_handle(object: &Object, name: &'static str) -> Result<MapHandle, XdpError> {
    let map = object
        .maps()
        .find(|m| m.name() == name)
        .ok_or(XdpError::Missing(name))?;
    MapHandle::try_from(&map).map_err(|source| XdpError::Load {
        step: "opening the XDP program's maps",
        source,
    })
}

/// Attaches in `mode`: `Auto` tries native mode first, then generic.
fn attach_in_mode(
    ifname: &str,
    prog_fd: RawFd,
    ifindex: u32,
    mode: XdpMode,
) -> Result<OwnedFd, XdpError> {
    let name = || ifname.to_string();
    let driver = || super::netdev::driver_name(ifname);
    match mode {
        XdpMode::Drv => attach_link(prog_fd, ifindex, XdpFlags::DRV_MODE).map_err(|source| {
            match source.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::EINVAL) => XdpError::NoNativeMode {
                    ifname: name(),
                    driver: driver(),
                    source,
                },
                _ => XdpError::Attach {
                    ifname: name(),
                    mode: "drv",
                    source,
                },
            }
        }),
        XdpMode::Skb => {
            attach_link(prog_fd, ifindex, XdpFlags::SKB_MODE).map_err(|source| XdpError::Attach {
                ifname: name(),
                mode: "skb",
                source,
            })
        }
        // On a veth, native mode only adds a copy of every frame into an xdp_buff: the
        // kernel path costs 1.2x the Linux bridge's CPU there against 0.97x in generic mode,
        // and the workers' path the same in both (BENCHMARKS.md, "The kernel path").
        XdpMode::Auto if driver() == "veth" => attach_link(prog_fd, ifindex, XdpFlags::SKB_MODE)
            .or_else(|_| {
                attach_link(prog_fd, ifindex, XdpFlags::DRV_MODE).map_err(|source| {
                    XdpError::NoMode {
                        ifname: name(),
                        driver: driver(),
                        source,
                    }
                })
            }),
        XdpMode::Auto => attach_link(prog_fd, ifindex, XdpFlags::DRV_MODE).or_else(|_| {
            attach_link(prog_fd, ifindex, XdpFlags::SKB_MODE).map_err(|source| XdpError::NoMode {
                ifname: name(),
                driver: driver(),
                source,
            })
        }),
    }
}

impl XdpAttachment {
    /// Loads a fresh instance of the programs, on the kernel path's maps `reuse` when given
    /// (else with a kernel tap ring of `ring_bytes`), and attaches the XDP program to the
    /// interface in `mode` and the TC program (`kernel`: the kernel path is wanted) to its
    /// ingress.
    pub fn attach(
        ifname: &str,
        ifindex: u32,
        mode: XdpMode,
        kernel: bool,
        ring_bytes: u32,
        reuse: Option<&KernelMaps>,
    ) -> Result<XdpAttachment, XdpError> {
        let object = load_object(reuse, ring_bytes)?;
        let prog_fd = program_fd(&object, PROGRAM_NAME)?;
        let tc_fd = program_fd(&object, TC_PROGRAM_NAME)?;
        let xsks = map_handle(&object, "xsks")?;
        let counters = map_handle(&object, "counters")?;
        let link = attach_in_mode(ifname, prog_fd, ifindex, mode)?;
        let (tc_link, tc_error) = if kernel {
            match attach_tcx(tc_fd, ifindex) {
                Ok(l) => (Some(l), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        Ok(XdpAttachment {
            ifname: ifname.to_string(),
            link: Some(link),
            tc_link,
            tc_error,
            object,
            xsks,
            counters,
            mode: attach_mode_now(ifindex),
        })
    }

    /// Sends frames of `queue` to the AF_XDP socket `sock_fd`.
    pub fn bind_queue(&self, queue: u32, sock_fd: RawFd) -> Result<(), XdpError> {
        self.xsks
            .update(
                &queue.to_ne_bytes(),
                &(sock_fd as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|source| XdpError::XskMap {
                ifname: self.ifname.clone(),
                queue,
                source,
            })
    }

    /// A handle of the counters map for a reader on another thread (the control words); it
    /// stays valid after the attachment is gone.
    pub fn counters_map(&self) -> Result<MapHandle, XdpError> {
        MapHandle::try_from(&self.counters).map_err(XdpError::CountersMap)
    }

    /// Handles of the kernel path's maps for the control side (valid after the attachment is
    /// gone, and what a later instance reuses).
    pub fn kernel_maps(&self) -> Result<KernelMaps, XdpError> {
        let h = |name| map_handle(&self.object, name);
        Ok(KernelMaps {
            cfg: h(KERNEL_MAP_NAMES[0])?,
            counters: h(KERNEL_MAP_NAMES[1])?,
            macs: h(KERNEL_MAP_NAMES[2])?,
            etypes: h(KERNEL_MAP_NAMES[3])?,
            sketch: h(KERNEL_MAP_NAMES[4])?,
            ring: h(KERNEL_MAP_NAMES[5])?,
        })
    }

    /// Detaches the programs now (also done on drop).
    pub fn detach(&mut self) {
        self.link = None;
        self.tc_link = None;
    }
}

/// The counters of the program behind `counters_map`, summed over CPUs (zero where the kernel
/// does not answer).
pub fn read_counters(counters_map: &MapHandle) -> ProgramCounters {
    let sum = |key: u32| -> u64 {
        per_cpu(counters_map, &key.to_ne_bytes(), |v| u64_at(v, 0))
            .into_iter()
            .sum()
    };
    let [seen, redirected, passed, kernel, kernel_tapped, kernel_tap_full]: [u64; CNT_MAX
        as usize] = std::array::from_fn(|k| sum(k as u32));
    ProgramCounters {
        seen,
        redirected,
        passed,
        kernel,
        kernel_tapped,
        kernel_tap_full,
    }
}

/// The per-CPU values of `key` in `map`, each read as `T` from its bytes (none where the
/// kernel does not answer).
pub fn per_cpu<T>(map: &MapHandle, key: &[u8], read: impl Fn(&[u8]) -> Option<T>) -> Vec<T> {
    match map.lookup_percpu(key, MapFlags::ANY) {
        Ok(Some(values)) => values.iter().filter_map(|v| read(v)).collect(),
        _ => Vec::new(),
    }
}

/// The native-endian u64 at byte `at` of a map value, key or ring record.
pub fn u64_at(v: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

/// The native-endian u32 at byte `at` of a map value, key or ring record.
pub fn u32_at(v: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

// SAFETY: the libbpf object is only touched by the thread owning the attachment (load, drop);
// libbpf objects have no thread affinity, and the map handles are plain descriptors.
unsafe impl Send for XdpAttachment {}

impl Drop for XdpAttachment {
    fn drop(&mut self) {
        // The link goes first; the object (program and maps) after it.
        self.detach();
        let _ = &self.object;
    }
}
