//! AF_XDP sockets of one queue index: one UMEM shared by the sockets of every interface on
//! that queue, so the worker moves a frame from one port's RX ring to the other's TX ring
//! without copying it.
//!
//! UMEM layout: `ifaces` circuits of `CIRCUIT_FRAMES` frames each, then `SPARE_FRAMES` spares.
//! Frame `i` belongs to circuit `i / CIRCUIT_FRAMES`: a frame of circuit `p` only ever enters
//! the fill ring of port `p`, wherever it was transmitted, so each port keeps its own stock of
//! receive buffers and a busy port cannot starve the other (docs/data-path.md, "Frame
//! ownership"). Spares carry
//! fault-injection duplicates and return to the spare pool when their transmission completes.

use super::chain::MAX_CHAIN;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::socket::SocketCreateError;
use xsk_rs::umem::UmemCreateError;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Bytes of one UMEM frame.
pub const FRAME_SIZE: u32 = 2048;
/// Fill and RX rings: deep, because they are what absorbs a burst or a worker that lost its
/// CPU for a few milliseconds (a scheduler slice on a busy machine): the kernel keeps
/// receiving into the fill ring's frames while the worker is away. 8192 frames are 27 ms at
/// 0.3 Mpps. Measured on the veth lab with 2048: most losses were `rx_fill_ring_empty` with
/// thousands of free frames waiting in the worker.
pub const RX_RING_SIZE: u32 = 8192;
/// TX and completion rings: the worker never takes more frames than the output TX ring can
/// hold, so a deeper TX ring only moves the backlog from the RX ring to the TX ring.
pub const TX_RING_SIZE: u32 = 2048;
/// The most bytes one UMEM buffer holds (the kernel keeps XDP_PACKET_HEADROOM in front): a
/// longer frame arrives in several buffers (multi-buffer AF_XDP, `XDP_USE_SG`).
pub const MAX_FRAME_LEN: u32 = FRAME_SIZE - 256;
/// The longest frame the engine forwards: [`MAX_CHAIN`] buffers.
pub const MAX_CHAIN_FRAME_LEN: u32 = MAX_CHAIN as u32 * MAX_FRAME_LEN;
/// A frame of a circuit is in its port's fill or RX ring, in the worker's hands, or in the
/// other port's TX or completion ring: enough frames to keep the fill ring full while the
/// TX and completion rings are full too, plus a TX ring's worth for the worker's free list
/// (measured: with fewer than the rings hold together, a transmit backlog parks the circuit and
/// the fill ring runs dry).
pub const CIRCUIT_FRAMES: u32 = RX_RING_SIZE + 3 * TX_RING_SIZE;
/// Frames of the spare pool that carries fault-injection duplicates.
pub const SPARE_FRAMES: u32 = 256;
/// The spare pool is never empty, so neither is a UMEM.
const SPARES: NonZeroU32 = match NonZeroU32::new(SPARE_FRAMES) {
    Some(n) => n,
    None => panic!("SPARE_FRAMES must not be 0"),
};

/// Who a frame returns to when the kernel hands it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The circuit of this port: the frame goes back to the port's free list.
    Circuit(usize),
    /// The spare pool.
    Spare,
}

/// Maps a descriptor address (anywhere inside its frame) to the frame's owner.
#[inline]
pub fn owner_of(addr: usize, ports: usize) -> Owner {
    let circuit = addr / FRAME_SIZE as usize / CIRCUIT_FRAMES as usize;
    if circuit < ports {
        Owner::Circuit(circuit)
    } else {
        Owner::Spare
    }
}

/// One interface's socket on this queue, with the fill and completion rings of its
/// (interface, queue) pair.
pub struct Port {
    /// The socket's TX ring.
    pub tx: TxQueue,
    /// The socket's RX ring.
    pub rx: RxQueue,
    /// The fill ring of the (interface, queue).
    pub fill: FillQueue,
    /// The completion ring of the (interface, queue).
    pub comp: CompQueue,
    /// Frames of this port's circuit held by the worker, ready for the fill ring.
    pub free: Vec<FrameDesc>,
    /// The socket's descriptor (owned by `rx`/`tx`), for poll() and transmit kicks.
    pub fd: RawFd,
    /// The kernel refused to transmit because the interface is down: frames that would go
    /// out here count as `noif` until a transmit kick succeeds again.
    pub down: bool,
}

/// Every socket of one queue index, handed to that queue's worker.
pub struct QueueSockets {
    /// The queue id.
    pub queue: u32,
    /// The frames of every port of this queue.
    pub umem: Umem,
    /// One per interface, in engine order.
    pub ports: Vec<Port>,
    /// Spare frames held by the worker.
    pub spares: Vec<FrameDesc>,
}

impl QueueSockets {
    /// Gives a frame the kernel handed back to whoever owns it: its circuit's free list or
    /// the spare pool.
    #[inline]
    pub fn give_back(&mut self, d: FrameDesc) {
        match owner_of(d.addr(), self.ports.len()) {
            Owner::Circuit(c) => self.ports[c].free.push(d),
            Owner::Spare => self.spares.push(d),
        }
    }
}

/// Why the sockets of a queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The built-in ring or frame sizes were refused (a bug, not a setting).
    #[error("{what}: {source}")]
    Config {
        /// Which size.
        what: &'static str,
        /// xsk-rs's objection.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The UMEM could not be created (e.g. locked memory limit).
    #[error("creating the UMEM for queue {queue}: {source} ({source:?})")]
    Umem {
        /// The queue.
        queue: u32,
        /// xsk-rs's error.
        source: UmemCreateError,
    },
    /// An interface name with a NUL byte.
    #[error("\"{0}\" is not a valid interface name")]
    BadName(String),
    /// The kernel refused the socket (e.g. no zero-copy support).
    #[error(
        "{name} queue {queue}: AF_XDP socket in {mode} mode: {source}{}",
        cause_text(.source)
    )]
    Socket {
        /// The interface.
        name: String,
        /// The queue.
        queue: u32,
        /// `zero-copy` or `copy`.
        mode: &'static str,
        /// xsk-rs's error.
        source: SocketCreateError,
    },
    /// The first socket of a UMEM came without its fill and completion rings.
    #[error("{name} queue {queue}: the kernel gave no fill/completion rings")]
    NoRings {
        /// The interface.
        name: String,
        /// The queue.
        queue: u32,
    },
    /// The fill ring did not take its first frames.
    #[error("{name} queue {queue}: could not prime the fill ring")]
    Prime {
        /// The interface.
        name: String,
        /// The queue.
        queue: u32,
    },
}

/// `: cause` when an error has a source, for messages that show both.
fn cause_text(e: &dyn std::error::Error) -> String {
    e.source().map(|c| format!(": {c}")).unwrap_or_default()
}

fn config<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl Fn(E) -> XskError {
    move |e| XskError::Config {
        what,
        source: Box::new(e),
    }
}

/// Opens the sockets of queue `queue` on every interface, in zero-copy or copy mode. The
/// fill rings are primed, so the sockets can receive as soon as the XSKMAP points at them.
pub fn open_queue(
    ifnames: &[String],
    queue: u32,
    zerocopy: bool,
) -> Result<QueueSockets, XskError> {
    let rx_ring = QueueSize::new(RX_RING_SIZE).map_err(config("ring size"))?;
    let tx_ring = QueueSize::new(TX_RING_SIZE).map_err(config("ring size"))?;
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(config("frame size"))?)
        .fill_queue_size(rx_ring)
        .comp_queue_size(tx_ring)
        .build()
        .map_err(config("UMEM config"))?;
    let frame_count = SPARES.saturating_add(CIRCUIT_FRAMES * ifnames.len() as u32);
    let (umem, mut frames) = Umem::new(umem_config, frame_count, false)
        .map_err(|source| XskError::Umem { queue, source })?;

    let mode = if zerocopy {
        BindFlags::XDP_ZEROCOPY
    } else {
        BindFlags::XDP_COPY
    };
    let socket_config = SocketConfig::builder()
        .rx_queue_size(rx_ring)
        .tx_queue_size(tx_ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP | BindFlags::XDP_USE_SG)
        .build();

    let spares = frames.split_off(CIRCUIT_FRAMES as usize * ifnames.len());
    let mut ports = Vec::with_capacity(ifnames.len());
    for (i, name) in ifnames.iter().enumerate() {
        let iface: Interface = name.parse().map_err(|_| XskError::BadName(name.clone()))?;
        // SAFETY: every socket on this UMEM is created with INHIBIT_PROG_LOAD, as xsk-rs
        // requires for shared UMEMs; each (interface, queue) pair is bound once.
        let (tx, rx, rings) =
            unsafe { Socket::new(socket_config, &umem, &iface, queue) }.map_err(|source| {
                XskError::Socket {
                    name: name.clone(),
                    queue,
                    mode: if zerocopy { "zero-copy" } else { "copy" },
                    source,
                }
            })?;
        let (mut fill, comp) = rings.ok_or_else(|| XskError::NoRings {
            name: name.clone(),
            queue,
        })?;
        let fd = rx.fd().as_raw_fd();
        let start = i * CIRCUIT_FRAMES as usize;
        let mut free: Vec<FrameDesc> = frames[start..start + CIRCUIT_FRAMES as usize].to_vec();
        let prime = free.split_off(free.len() - RX_RING_SIZE as usize);
        // SAFETY: the frames belong to this UMEM and to nobody else yet.
        let put = unsafe { fill.produce(&prime) };
        if put != prime.len() {
            return Err(XskError::Prime {
                name: name.clone(),
                queue,
            });
        }
        ports.push(Port {
            tx,
            rx,
            fill,
            comp,
            free,
            fd,
            down: false,
        });
    }
    Ok(QueueSockets {
        queue,
        umem,
        ports,
        spares,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_map_to_their_circuit_and_spares_to_the_pool() {
        let c = CIRCUIT_FRAMES as usize * FRAME_SIZE as usize;
        assert_eq!(owner_of(0, 2), Owner::Circuit(0));
        assert_eq!(owner_of(c - 1, 2), Owner::Circuit(0));
        assert_eq!(owner_of(c + 256, 2), Owner::Circuit(1));
        assert_eq!(owner_of(2 * c + 256, 2), Owner::Spare);
        assert_eq!(owner_of(c + 256, 1), Owner::Spare);
    }
}
