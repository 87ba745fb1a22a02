//! What the engine needs to know about and do to a network interface, through ioctls on
//! sockets of the caller's network namespace (never sysfs: `/sys` may show another namespace
//! when the engine is started from a thread that entered one with setns).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned by the returned value.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifname_bytes(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let mut out = [0u8; libc::IFNAMSIZ];
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("\"{name}\" is not a valid interface name"),
        ));
    }
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

fn ethtool(name: &str, data: *mut libc::c_void) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = IfreqData {
        name: ifname_bytes(name)?,
        data,
    };
    // SAFETY: SIOCETHTOOL reads the ifreq and writes through `data`, which points to a
    // command struct of the size the command implies, alive for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's index of `name` in the current network namespace.
pub fn if_index(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("\"{name}\" is not a valid interface name"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(format!("no interface named \"{name}\""))
    } else {
        Ok(idx)
    }
}

/// The driver name ethtool reports (`veth`, `ixgbe`, ...), or `unknown`.
pub fn driver_name(name: &str) -> String {
    // SAFETY: all-zero is a valid EthtoolDrvinfo.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    match ethtool(name, &mut info as *mut _ as *mut libc::c_void) {
        Ok(()) => {
            let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
            let s = String::from_utf8_lossy(&info.driver[..end]).into_owned();
            if s.is_empty() {
                "unknown".into()
            } else {
                s
            }
        }
        Err(_) => "unknown".into(),
    }
}

/// Receive queues the interface has now (1 when the driver cannot tell).
pub fn rx_queue_count(name: &str) -> u32 {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    match ethtool(name, &mut ch as *mut _ as *mut libc::c_void) {
        Ok(()) => (ch.rx_count + ch.combined_count).max(1),
        Err(_) => 1,
    }
}

/// Whether the interface is administratively up.
pub fn is_up(name: &str) -> io::Result<bool> {
    let sock = control_socket()?;
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname_bytes(name)?) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of the ifreq we own.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel set the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(flags as i32 & libc::IFF_UP != 0)
}

/// Promiscuous mode held through a packet-socket membership: the kernel counts it, so the
/// interface returns to exactly its previous state when this is dropped, and even when the
/// process dies (the socket closes with it), with no flag to restore by hand.
pub struct PromiscGuard {
    _sock: OwnedFd,
}

impl PromiscGuard {
    pub fn enable(ifindex: u32) -> io::Result<PromiscGuard> {
        // Protocol 0: the socket is bound to no protocol, so it never receives frames and
        // costs nothing on the data path.
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor owned from here on.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // SAFETY: mreq is a valid packet_mreq for the call's duration.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PromiscGuard { _sock: sock })
    }
}
