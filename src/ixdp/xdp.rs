//! The project's XDP program (`bpf/ethertap.bpf.c`): one loaded instance per interface, so
//! each interface has its own XSKMAP; attached through a bpf_link (the kernel removes it when
//! the last fd closes, so a killed engine leaves nothing behind), with netlink-attached
//! leftovers of older or foreign runs of ethertap removed before attaching.

use super::XdpMode;
use libbpf_rs::libbpf_sys as sys;
use libbpf_rs::{MapCore, Object, ObjectBuilder};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

static PROGRAM_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ethertap.bpf.o"));

/// The program's name in the kernel; stale instances are recognised by it.
pub const PROGRAM_NAME: &str = "ethertap_xdp";

const CNT_MAX: u32 = 3;

/// The counters of `bpf/ethertap.bpf.c`, summed over CPUs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramCounters {
    pub seen: u64,
    pub redirected: u64,
    pub passed: u64,
}

/// The program loaded and attached to one interface. Dropping it detaches the program.
pub struct XdpAttachment {
    ifname: String,
    link: Option<OwnedFd>,
    object: Object,
    xsks_fd: RawFd,
    counters_fd: RawFd,
    pub mode: XdpMode,
}

fn errno_text(rc: i32) -> String {
    std::io::Error::from_raw_os_error(-rc).to_string()
}

/// The XDP program attached to `ifindex` now, as (mode flags for detaching, program id).
fn attached_programs(ifindex: u32) -> Result<Vec<(u32, u32)>, String> {
    // SAFETY: zeroed is a valid bpf_xdp_query_opts; sz is set as libbpf requires.
    let mut opts: sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_xdp_query_opts>() as _;
    // SAFETY: opts is valid for the call.
    let rc = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(format!("querying XDP state: {}", errno_text(rc)));
    }
    let mut out = Vec::new();
    if opts.drv_prog_id != 0 {
        out.push((sys::XDP_FLAGS_DRV_MODE, opts.drv_prog_id));
    }
    if opts.skb_prog_id != 0 {
        out.push((sys::XDP_FLAGS_SKB_MODE, opts.skb_prog_id));
    }
    if opts.hw_prog_id != 0 {
        out.push((sys::XDP_FLAGS_HW_MODE, opts.hw_prog_id));
    }
    Ok(out)
}

fn program_name(id: u32) -> Option<String> {
    // SAFETY: plain bpf syscall wrapper.
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed bpf_prog_info is valid; the kernel fills up to len.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info and len are valid for the call.
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
pub fn remove_stale(ifname: &str, ifindex: u32) -> Result<(), String> {
    for (mode, id) in attached_programs(ifindex).map_err(|e| format!("{ifname}: {e}"))? {
        let name = program_name(id).unwrap_or_default();
        if name != PROGRAM_NAME {
            return Err(format!(
                "{ifname} already has another XDP program attached ({} id {id}); \
                 remove it first (ip link set dev {ifname} xdp off)",
                if name.is_empty() { "unnamed" } else { &name }
            ));
        }
        // SAFETY: plain libbpf call; a null opts is allowed.
        let rc = unsafe { sys::bpf_xdp_detach(ifindex as i32, mode, std::ptr::null()) };
        if rc < 0 {
            return Err(format!(
                "{ifname} is in use by a running ethertap (its XDP program {id} could not be \
                 detached: {}); stop that one first",
                errno_text(rc)
            ));
        }
    }
    Ok(())
}

fn attach_link(prog_fd: RawFd, ifindex: u32, flags: u32) -> Result<OwnedFd, i32> {
    // SAFETY: zeroed opts are valid; sz set as libbpf requires.
    let mut opts: sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: opts valid for the call; prog_fd is a loaded XDP program.
    let fd = unsafe { sys::bpf_link_create(prog_fd, ifindex as i32, sys::BPF_XDP, &opts) };
    if fd < 0 {
        return Err(fd);
    }
    // SAFETY: fresh link fd, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn attach_mode_now(ifindex: u32) -> XdpMode {
    // SAFETY: as in attached_programs.
    let mut opts: sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_xdp_query_opts>() as _;
    // SAFETY: opts valid for the call.
    let rc = unsafe { sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc == 0 && opts.attach_mode as u32 == sys::XDP_ATTACHED_SKB {
        XdpMode::Skb
    } else {
        XdpMode::Drv
    }
}

impl XdpAttachment {
    /// Loads a fresh instance of the program and attaches it to the interface in `mode`.
    pub fn attach(ifname: &str, ifindex: u32, mode: XdpMode) -> Result<XdpAttachment, String> {
        let open = ObjectBuilder::default()
            .name("ethertap")
            .map_err(|e| format!("XDP program: {e}"))?
            .open_memory(PROGRAM_OBJECT)
            .map_err(|e| format!("opening the XDP program: {e}"))?;
        let object = open
            .load()
            .map_err(|e| format!("loading the XDP program into the kernel: {e}"))?;
        let mut prog_fd = None;
        for p in object.progs() {
            if p.name() == PROGRAM_NAME {
                prog_fd = Some(p.as_fd().as_raw_fd());
            }
        }
        let prog_fd = prog_fd.ok_or("the XDP object has no ethertap_xdp program")?;
        let mut xsks_fd = None;
        let mut counters_fd = None;
        for m in object.maps() {
            if m.name() == "xsks" {
                xsks_fd = Some(m.as_fd().as_raw_fd());
            } else if m.name() == "counters" {
                counters_fd = Some(m.as_fd().as_raw_fd());
            }
        }
        let xsks_fd = xsks_fd.ok_or("the XDP object has no xsks map")?;
        let counters_fd = counters_fd.ok_or("the XDP object has no counters map")?;

        let link = match mode {
            XdpMode::Drv => {
                attach_link(prog_fd, ifindex, sys::XDP_FLAGS_DRV_MODE).map_err(|rc| {
                    if -rc == libc::EOPNOTSUPP || -rc == libc::EINVAL {
                        format!(
                            "{ifname}: the driver ({}) has no native XDP support ({}); \
                         use --xdp-mode skb or auto",
                            super::netdev::driver_name(ifname),
                            errno_text(rc)
                        )
                    } else {
                        format!("{ifname}: attaching XDP in drv mode: {}", errno_text(rc))
                    }
                })?
            }
            XdpMode::Skb => attach_link(prog_fd, ifindex, sys::XDP_FLAGS_SKB_MODE)
                .map_err(|rc| format!("{ifname}: attaching XDP in skb mode: {}", errno_text(rc)))?,
            XdpMode::Auto => match attach_link(prog_fd, ifindex, sys::XDP_FLAGS_DRV_MODE) {
                Ok(l) => l,
                Err(_) => attach_link(prog_fd, ifindex, sys::XDP_FLAGS_SKB_MODE).map_err(|rc| {
                    format!(
                        "{ifname}: the driver ({}) supports XDP in neither drv nor skb mode: {}",
                        super::netdev::driver_name(ifname),
                        errno_text(rc)
                    )
                })?,
            },
        };
        Ok(XdpAttachment {
            ifname: ifname.to_string(),
            link: Some(link),
            object,
            xsks_fd,
            counters_fd,
            mode: attach_mode_now(ifindex),
        })
    }

    /// Sends frames of `queue` to the AF_XDP socket `sock_fd`.
    pub fn bind_queue(&self, queue: u32, sock_fd: RawFd) -> Result<(), String> {
        let key = queue;
        let val = sock_fd as u32;
        // SAFETY: key and value point to u32s, the sizes of the map's key and value; the map
        // fd belongs to self.object, alive here.
        let rc = unsafe {
            sys::bpf_map_update_elem(
                self.xsks_fd,
                &key as *const u32 as *const libc::c_void,
                &val as *const u32 as *const libc::c_void,
                0,
            )
        };
        if rc < 0 {
            return Err(format!(
                "{}: putting the socket of queue {queue} into the XSKMAP: {}",
                self.ifname,
                errno_text(rc)
            ));
        }
        Ok(())
    }

    /// A descriptor of the counters map for readers that outlive no attachment but run on
    /// another thread (the control words).
    pub fn counters_map(&self) -> Result<OwnedFd, String> {
        // SAFETY: counters_fd is open while self lives; the duplicate is owned by the caller.
        let fd = unsafe { libc::fcntl(self.counters_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!(
                "duplicating the counters map fd: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: fresh descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The counters of the program behind `counters_map`, summed over CPUs.
pub fn read_counters(counters_map: &OwnedFd) -> ProgramCounters {
    {
        let counters_fd = counters_map.as_raw_fd();
        // SAFETY: plain libbpf query.
        let ncpus = unsafe { sys::libbpf_num_possible_cpus() };
        let mut sums = [0u64; CNT_MAX as usize];
        if ncpus <= 0 {
            return ProgramCounters::default();
        }
        let mut vals = vec![0u64; ncpus as usize];
        for (key, sum) in (0u32..CNT_MAX).zip(sums.iter_mut()) {
            // SAFETY: a per-CPU array lookup writes one u64 per possible CPU into vals.
            let rc = unsafe {
                sys::bpf_map_lookup_elem(
                    counters_fd,
                    &key as *const u32 as *const libc::c_void,
                    vals.as_mut_ptr() as *mut libc::c_void,
                )
            };
            if rc == 0 {
                *sum = vals.iter().sum();
            }
        }
        ProgramCounters {
            seen: sums[0],
            redirected: sums[1],
            passed: sums[2],
        }
    }
}

impl XdpAttachment {
    /// Detaches the program now (also done on drop).
    pub fn detach(&mut self) {
        self.link = None;
    }
}

// SAFETY: the libbpf object is only touched by the thread owning the attachment (load, map
// updates through fds, drop); libbpf objects have no thread affinity.
unsafe impl Send for XdpAttachment {}

impl Drop for XdpAttachment {
    fn drop(&mut self) {
        self.detach();
        let _ = &self.object;
    }
}
