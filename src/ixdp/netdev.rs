//! What the engine needs to know about and do to a network interface, through ioctls on
//! sockets of the caller's network namespace (never sysfs: `/sys` may show another namespace
//! when the engine is started from a thread that entered one with setns).

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;
const ETHTOOL_GSET: u32 = 0x0000_0001;
const ETHTOOL_GFLAGS: u32 = 0x0000_0025;
const ETHTOOL_SFLAGS: u32 = 0x0000_0026;
const ETHTOOL_GGRO: u32 = 0x0000_002b;
const ETHTOOL_SGRO: u32 = 0x0000_002c;
/// `ETH_FLAG_LRO` of `ETHTOOL_GFLAGS`.
const ETH_FLAG_LRO: u32 = 1 << 15;
/// What `ETHTOOL_GSET` says when the link has no speed (veth, a link that is down).
const SPEED_UNKNOWN: u32 = 0xffff;

/// `struct ethtool_cmd`: only the speed fields are read.
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

#[repr(C)]
#[derive(Default)]
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

/// `struct ethtool_value`: the argument of the single-value ethtool commands.
#[repr(C)]
#[derive(Default)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
}

/// Why an interface name does not lead to an interface.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetdevError {
    /// Empty, too long for the kernel, or with a NUL byte.
    #[error("\"{0}\" is not a valid interface name")]
    BadName(String),
    /// No interface of that name in the current network namespace.
    #[error("no interface named \"{0}\"")]
    NoSuchInterface(String),
}

/// The ioctls, through nix's wrappers (they return `Errno` instead of -1 and errno).
mod ioctl {
    use super::IfreqData;
    nix::ioctl_readwrite_bad!(
        /// `SIOCETHTOOL`: an ethtool command through an `ifreq` pointing at its struct.
        ethtool,
        libc::SIOCETHTOOL,
        IfreqData
    );
    nix::ioctl_read_bad!(
        /// `SIOCGIFMTU`: the MTU into `ifr_mtu`.
        get_mtu,
        libc::SIOCGIFMTU,
        libc::ifreq
    );
    nix::ioctl_read_bad!(
        /// `SIOCGIFHWADDR`: the link-layer type and address into `ifr_hwaddr`.
        get_hwaddr,
        libc::SIOCGIFHWADDR,
        libc::ifreq
    );
    nix::ioctl_read_bad!(
        /// `SIOCGIFFLAGS`: the interface flags into `ifr_flags`.
        get_flags,
        libc::SIOCGIFFLAGS,
        libc::ifreq
    );
}

fn control_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn ifname_bytes(name: &str) -> Result<[u8; libc::IFNAMSIZ], NetdevError> {
    let mut out = [0u8; libc::IFNAMSIZ];
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(NetdevError::BadName(name.to_string()));
    }
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

/// An `ifreq` naming the interface, everything else zero.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = ifname_bytes(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all-zero is a valid ifreq (a name and a union of plain integers).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

fn ethtool(name: &str, data: *mut libc::c_void) -> io::Result<()> {
    ethtool_on(&control_socket()?, name, data)
}

/// An ethtool command through `sock`, in the network namespace the socket was made in.
fn ethtool_on(sock: &OwnedFd, name: &str, data: *mut libc::c_void) -> io::Result<()> {
    let mut req = IfreqData {
        name: ifname_bytes(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        data,
    };
    // SAFETY: SIOCETHTOOL reads the ifreq and writes through `data`, which points to a
    // command struct of the size the command implies, alive for the call.
    unsafe { ioctl::ethtool(sock.as_raw_fd(), &mut req) }?;
    Ok(())
}

/// The kernel's index of `name` in the current network namespace.
pub fn if_index(name: &str) -> Result<u32, NetdevError> {
    if name.contains('\0') {
        return Err(NetdevError::BadName(name.to_string()));
    }
    nix::net::if_::if_nametoindex(name).map_err(|_| NetdevError::NoSuchInterface(name.to_string()))
}

/// The driver name ethtool reports (`veth`, `ixgbe`, ...), or `unknown`.
pub fn driver_name(name: &str) -> String {
    let mut info = EthtoolDrvinfo {
        cmd: ETHTOOL_GDRVINFO,
        ..Default::default()
    };
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

/// The interface's MTU.
pub fn mtu(name: &str) -> io::Result<u32> {
    let sock = control_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFMTU fills ifr_mtu of the ifreq we own.
    unsafe { ioctl::get_mtu(sock.as_raw_fd(), &mut req) }?;
    // SAFETY: the kernel set the mtu member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// The link-layer type (`ARPHRD_*`) and the first six bytes of the hardware address: an
/// Ethernet interface is `ARPHRD_ETHER` with its MAC.
pub fn hardware_address(name: &str) -> io::Result<(u16, [u8; 6])> {
    let sock = control_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of the ifreq we own.
    unsafe { ioctl::get_hwaddr(sock.as_raw_fd(), &mut req) }?;
    // SAFETY: the kernel set the hwaddr member of the union.
    let addr = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(addr.sa_data) {
        *m = b as u8;
    }
    Ok((addr.sa_family, mac))
}

/// The link speed in Mbit/s, when the driver reports one (veth does not).
pub fn speed_mbps(name: &str) -> Option<u64> {
    let mut cmd = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..Default::default()
    };
    ethtool(name, &mut cmd as *mut _ as *mut libc::c_void).ok()?;
    let speed = u32::from(cmd.speed_hi) << 16 | u32::from(cmd.speed);
    (speed != 0 && speed != SPEED_UNKNOWN && speed != u32::MAX).then_some(u64::from(speed))
}

/// Whether the interface is administratively up.
pub fn is_up(name: &str) -> io::Result<bool> {
    Ok(flags(name)? & libc::IFF_UP != 0)
}

/// The interface flags of `name` (`SIOCGIFFLAGS`).
fn flags(name: &str) -> io::Result<i32> {
    let sock = control_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of the ifreq we own.
    unsafe { ioctl::get_flags(sock.as_raw_fd(), &mut req) }?;
    // SAFETY: the kernel set the flags member of the union.
    Ok(i32::from(unsafe { req.ifr_ifru.ifru_flags }))
}

/// Whether the interface `name` is up and operational (IFF_RUNNING: it has a carrier, as the
/// kernel's link watch last saw it).
pub fn is_running(name: &str) -> io::Result<bool> {
    let running = libc::IFF_UP | libc::IFF_RUNNING;
    Ok(flags(name)? & running == running)
}

/// Promiscuous mode held through a packet-socket membership: the kernel counts it, so the
/// interface returns to exactly its previous state when this is dropped, and even when the
/// process dies (the socket closes with it), with no flag to restore by hand.
pub struct PromiscGuard {
    _sock: OwnedFd,
}

impl PromiscGuard {
    /// Turns promiscuous mode on for the interface with index `ifindex`, for as long as the
    /// guard lives.
    pub fn enable(ifindex: u32) -> io::Result<PromiscGuard> {
        // Protocol 0: the socket is bound to no protocol, so it never receives frames and
        // costs nothing on the data path.
        let sock = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // nix has no PACKET_ADD_MEMBERSHIP option.
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

/// One single-value ethtool command (`ETHTOOL_G*` reads, `ETHTOOL_S*` writes `data`).
fn ethtool_value(sock: &OwnedFd, name: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    ethtool_on(sock, name, &mut v as *mut _ as *mut libc::c_void)?;
    Ok(v.data)
}

/// Receive offloads that merge frames (GRO, LRO) turned off for as long as the guard lives,
/// and turned back on when it is dropped: a bump in the wire must hand on frames as they were
/// on the wire, and generic XDP runs after GRO, so it would see merged super-frames. Only what
/// was on is touched; a driver that cannot say or change it is left alone (veth has no LRO).
pub struct OffloadGuard {
    /// Made at start: the restore runs in the interface's namespace whatever thread drops
    /// the guard.
    sock: OwnedFd,
    name: String,
    /// GRO was on and is now off.
    gro: bool,
    /// The ethtool flags when LRO was on and is now off.
    lro_flags: Option<u32>,
}

impl OffloadGuard {
    /// Turns GRO and LRO off on `name`. Errors only when an offload that is on cannot be
    /// turned off.
    pub fn disable(name: &str) -> io::Result<OffloadGuard> {
        let mut guard = OffloadGuard {
            sock: control_socket()?,
            name: name.to_string(),
            gro: false,
            lro_flags: None,
        };
        if ethtool_value(&guard.sock, name, ETHTOOL_GGRO, 0).is_ok_and(|on| on != 0) {
            ethtool_value(&guard.sock, name, ETHTOOL_SGRO, 0)?;
            guard.gro = true;
        }
        if let Ok(flags) = ethtool_value(&guard.sock, name, ETHTOOL_GFLAGS, 0) {
            if flags & ETH_FLAG_LRO != 0 {
                ethtool_value(&guard.sock, name, ETHTOOL_SFLAGS, flags & !ETH_FLAG_LRO)?;
                guard.lro_flags = Some(flags);
            }
        }
        Ok(guard)
    }

    /// What the guard turned off, for the start report: `GRO`, `LRO`, both, or nothing.
    pub fn turned_off(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.gro {
            v.push("GRO");
        }
        if self.lro_flags.is_some() {
            v.push("LRO");
        }
        v
    }
}

impl Drop for OffloadGuard {
    fn drop(&mut self) {
        // Best effort: the interface may be gone.
        if self.gro {
            let _ = ethtool_value(&self.sock, &self.name, ETHTOOL_SGRO, 1);
        }
        if let Some(flags) = self.lro_flags {
            let _ = ethtool_value(&self.sock, &self.name, ETHTOOL_SFLAGS, flags);
        }
    }
}
