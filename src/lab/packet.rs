//! An AF_PACKET socket bound to one interface: raw Ethernet frames in and out, for the demo's
//! tagged frames, the tests' numbered frames and the benchmark's paced sender.
//!
//! Sending never gives up under backpressure: a veth whose peer runs a native XDP program
//! refuses frames (ENOBUFS/EAGAIN) while the peer's ring is full, and the frames are offered
//! again instead of being lost or ending the run.

use super::{in_namespace, LabError};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, AddressFamily, LinkAddr, MsgFlags, MultiHeaders, SockFlag, SockProtocol, SockType,
    SockaddrLike,
};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The most frames one `sendmmsg` call takes from [`PacketSocket::offer`].
pub const MAX_BATCH: usize = 64;

/// Frames [`PacketSocket::send_all`] sends in a burst before it pauses, and the pause: small
/// enough bursts that no queue on a lab's path overflows.
const BURST: usize = 32;
const BURST_PAUSE: Duration = Duration::from_micros(500);
/// How long a refused send waits before it offers the frames again.
const BACKOFF: Duration = Duration::from_micros(200);
/// A receiving socket's buffer: tests read only after sending everything, and the default
/// holds only a few hundred small frames.
const RECV_BUFFER: usize = 32 << 20;
/// How long [`PacketSocket::collect`] waits for frames beyond those it expects.
const EXTRA_WAIT: Duration = Duration::from_millis(200);
/// Room for any frame a lab carries (jumbo frames included).
const RECV_LEN: usize = 65536;

/// What a socket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Sends, and receives every frame that arrives on the interface.
    SendReceive,
    /// Only sends, straight to the driver (qdisc bypassed); receives nothing.
    SendOnly,
}

/// An AF_PACKET socket bound to one interface. It may be used from any thread once open, also
/// one outside the namespace the interface lives in.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    ifname: String,
}

/// Reusable `sendmmsg` headers for [`PacketSocket::offer`], kept by the thread that sends.
pub struct Outbox {
    headers: MultiHeaders<()>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            headers: MultiHeaders::preallocate(MAX_BATCH, None),
        }
    }
}

impl Outbox {
    /// Headers for up to [`MAX_BATCH`] frames a call.
    pub fn new() -> Outbox {
        Outbox::default()
    }
}

/// Whether an error only says "not now": the device's queue is full.
fn backpressure(e: Errno) -> bool {
    matches!(e, Errno::ENOBUFS | Errno::EAGAIN | Errno::EBUSY)
}

impl PacketSocket {
    /// A socket on `ifname` in the current network namespace that sends and receives every
    /// frame arriving there (not the ones it sends itself). Whatever was already waiting is
    /// dropped, so that a test sees only the frames that arrive from now on.
    pub fn open(ifname: &str) -> Result<PacketSocket, LabError> {
        let s = PacketSocket::bind(ifname, Role::SendReceive)?;
        s.drain()?;
        Ok(s)
    }

    /// [`PacketSocket::open`] on `ifname` inside network namespace `ns`.
    pub fn open_in(ns: &str, ifname: &str) -> Result<PacketSocket, LabError> {
        let ifname = ifname.to_string();
        in_namespace(ns, move || PacketSocket::open(&ifname))?
    }

    /// A send-only socket on `ifname` in the current namespace that hands frames straight to
    /// the driver (`PACKET_QDISC_BYPASS`): the qdisc would queue and drop on its own, which a
    /// benchmark's sender must not hide.
    pub fn sender(ifname: &str) -> Result<PacketSocket, LabError> {
        PacketSocket::bind(ifname, Role::SendOnly)
    }

    fn bind(ifname: &str, role: Role) -> Result<PacketSocket, LabError> {
        let ifindex =
            nix::net::if_::if_nametoindex(ifname).map_err(|source| LabError::NoInterface {
                ifname: ifname.to_string(),
                source,
            })?;
        let err = |call| {
            move |source| LabError::Socket {
                call,
                ifname: ifname.to_string(),
                source,
            }
        };
        // Protocol 0 receives nothing, not even a copy of what the socket sends.
        let protocol = (role == Role::SendReceive).then_some(SockProtocol::EthAll);
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )
        .map_err(err("AF_PACKET socket (needs root)"))?;
        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: protocol.map_or(0, |p| p as i32 as u16),
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `sll` is a complete, initialised sockaddr_ll and the length given is its
        // size, which is all `from_raw` reads.
        let addr = unsafe {
            LinkAddr::from_raw(
                (&sll as *const libc::sockaddr_ll).cast(),
                Some(std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t),
            )
        }
        .ok_or(LabError::Socket {
            call: "sockaddr_ll",
            ifname: ifname.to_string(),
            source: Errno::EINVAL,
        })?;
        match role {
            Role::SendReceive => {
                socket::setsockopt(&fd, socket::sockopt::RcvBufForce, &RECV_BUFFER)
                    .map_err(err("SO_RCVBUFFORCE"))?;
                packet_auxdata(&fd).map_err(err("PACKET_AUXDATA"))?;
            }
            Role::SendOnly => qdisc_bypass(&fd).map_err(err("PACKET_QDISC_BYPASS"))?,
        }
        socket::bind(fd.as_raw_fd(), &addr).map_err(err("bind"))?;
        Ok(PacketSocket {
            fd,
            ifindex: ifindex as i32,
            ifname: ifname.to_string(),
        })
    }

    fn error(&self, call: &'static str, source: Errno) -> LabError {
        LabError::Socket {
            call,
            ifname: self.ifname.clone(),
            source,
        }
    }

    /// Offers `frames` (at most [`MAX_BATCH`] of them) to the device in one `sendmmsg` call and
    /// returns how many it took: all, the first few, or none (0) when it pushes back. The
    /// caller decides when to offer the rest again.
    pub fn offer(&self, outbox: &mut Outbox, frames: &[&[u8]]) -> Result<usize, LabError> {
        let n = frames.len().min(MAX_BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut iovs = [[IoSlice::new(&[])]; MAX_BATCH];
        for (iov, f) in iovs.iter_mut().zip(frames) {
            *iov = [IoSlice::new(f)];
        }
        // The socket is bound: no destination address per message.
        let to = [None; MAX_BATCH];
        match socket::sendmmsg(
            self.fd.as_raw_fd(),
            &mut outbox.headers,
            &iovs[..n],
            &to[..n],
            [],
            MsgFlags::empty(),
        ) {
            Ok(sent) => Ok(sent.count()),
            Err(e) if backpressure(e) => Ok(0),
            Err(e) => Err(self.error("sendmmsg", e)),
        }
    }

    /// Sends one frame, waiting while the device pushes back.
    pub fn send(&self, frame: &[u8]) -> Result<(), LabError> {
        loop {
            match socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(e) if backpressure(e) => std::thread::sleep(BACKOFF),
                Err(e) => return Err(self.error("send", e)),
            }
        }
    }

    /// Sends every frame in order, in short bursts with a pause between them so that no
    /// queue on the way overflows, waiting while the device pushes back. Returns how many
    /// were sent: all of them, or an error.
    pub fn send_all<F: AsRef<[u8]>>(&self, frames: &[F]) -> Result<usize, LabError> {
        let mut outbox = Outbox::new();
        for (i, burst) in frames.chunks(BURST).enumerate() {
            if i > 0 {
                std::thread::sleep(BURST_PAUSE);
            }
            let mut left: Vec<&[u8]> = burst.iter().map(AsRef::as_ref).collect();
            while !left.is_empty() {
                match self.offer(&mut outbox, &left)? {
                    0 => std::thread::sleep(BACKOFF),
                    n => drop(left.drain(..n)),
                }
            }
        }
        Ok(frames.len())
    }

    /// The next frame that arrives within `timeout`, or None.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Vec<u8>>, LabError> {
        let mut buf = vec![0u8; RECV_LEN];
        Ok(self
            .recv_into(&mut buf, timeout)?
            .map(|n| buf[..n].to_vec()))
    }

    /// Waits up to `timeout` for a frame that arrived on the interface, into `buf`.
    fn recv_into(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut pfd, left) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.error("poll", e)),
            }
            let (n, from, tag) = match self.recv_with_tag(buf) {
                Ok(got) => got,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(self.error("recvmsg", e)),
            };
            // An ETH_P_ALL socket also sees what this host sends, and frames of other
            // interfaces that came before `bind` took effect.
            let arrived =
                from.sll_pkttype != libc::PACKET_OUTGOING && from.sll_ifindex == self.ifindex;
            if arrived {
                return Ok(Some(reinsert_tag(buf, n, tag)));
            }
        }
    }

    /// One frame into `buf`: its length, where it came from, and the outer VLAN tag (TPID,
    /// TCI) the kernel keeps beside the frame instead of in it, as libpcap reads it.
    fn recv_with_tag(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, libc::sockaddr_ll, Option<VlanTag>), Errno> {
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len() - VLAN_TAG_LEN,
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in msg points at a live buffer of the length given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(Errno::last());
        }
        let mut tag = None;
        // SAFETY: the kernel filled msg's control buffer; the CMSG macros walk it within
        // msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                    let aux: libc::tpacket_auxdata =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        tag = Some((tpid, aux.tp_vlan_tci));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, from, tag))
    }

    /// The frames that arrive until `expect` came or nothing came for `quiet`, and then any
    /// more (duplicates) that come within a short extra wait.
    pub fn collect(&self, expect: usize, quiet: Duration) -> Result<Vec<Vec<u8>>, LabError> {
        let mut buf = vec![0u8; RECV_LEN];
        let mut got = Vec::new();
        while got.len() < expect {
            match self.recv_into(&mut buf, quiet)? {
                Some(n) => got.push(buf[..n].to_vec()),
                None => break,
            }
        }
        while let Some(n) = self.recv_into(&mut buf, EXTRA_WAIT)? {
            got.push(buf[..n].to_vec());
        }
        Ok(got)
    }

    /// Drops whatever is waiting.
    pub fn drain(&self) -> Result<(), LabError> {
        let mut buf = vec![0u8; RECV_LEN];
        while self.recv_into(&mut buf, Duration::ZERO)?.is_some() {}
        Ok(())
    }
}

/// An outer VLAN tag as (TPID, TCI).
type VlanTag = (u16, u16);

/// The length of an 802.1Q/802.1ad tag.
const VLAN_TAG_LEN: usize = 4;

/// Puts `tag` back after the MACs of the `n`-byte frame in `buf` (which has room for it), as it
/// was on the wire; returns the frame's length.
fn reinsert_tag(buf: &mut [u8], n: usize, tag: Option<VlanTag>) -> usize {
    let Some((tpid, tci)) = tag.filter(|_| n >= 12) else {
        return n;
    };
    buf.copy_within(12..n, 12 + VLAN_TAG_LEN);
    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
    buf[14..16].copy_from_slice(&tci.to_be_bytes());
    n + VLAN_TAG_LEN
}

/// A packet-socket option that takes the integer 1 (nix has no wrapper for these).
fn packet_option_on(fd: &OwnedFd, option: libc::c_int) -> Result<(), Errno> {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is an open socket, and the option value points at a c_int that lives for
    // the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}

/// `PACKET_QDISC_BYPASS` on: a sender straight to the driver.
fn qdisc_bypass(fd: &OwnedFd) -> Result<(), Errno> {
    packet_option_on(fd, libc::PACKET_QDISC_BYPASS)
}

/// `PACKET_AUXDATA` on: the kernel says which VLAN tag it took out of a received frame.
fn packet_auxdata(fd: &OwnedFd) -> Result<(), Errno> {
    packet_option_on(fd, libc::PACKET_AUXDATA)
}
