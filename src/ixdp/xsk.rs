//! AF_XDP sockets of one queue index: one UMEM shared by the sockets of every interface on
//! that queue, so the worker moves a frame from one port's RX ring to the other's TX ring
//! without copying it.
//!
//! UMEM layout: `ifaces` circuits of `CIRCUIT_FRAMES` frames each, then `SPARE_FRAMES` spares.
//! Frame `i` belongs to circuit `i / CIRCUIT_FRAMES`: a frame of circuit `p` only ever enters
//! the fill ring of port `p`, wherever it was transmitted, so each port keeps its own stock of
//! receive buffers and a busy port cannot starve the other (design-notes §2). Spares carry
//! fault-injection duplicates and return to the spare pool when their transmission completes.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

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
/// The longest frame a UMEM frame holds (the kernel keeps XDP_PACKET_HEADROOM in front).
pub const MAX_FRAME_LEN: u32 = FRAME_SIZE - 256;
/// A frame of a circuit is in its port's fill or RX ring, in the worker's hands, or in the
/// other port's TX or completion ring: enough frames to keep the fill ring full while the
/// TX and completion rings are full too, plus a TX ring's worth for the worker's free list
/// (measured: with fewer than the rings hold together, a transmit backlog parks the circuit and
/// the fill ring runs dry).
pub const CIRCUIT_FRAMES: u32 = RX_RING_SIZE + 3 * TX_RING_SIZE;
pub const SPARE_FRAMES: u32 = 256;

/// Who a frame returns to when the kernel hands it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Circuit(usize),
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
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fill: FillQueue,
    pub comp: CompQueue,
    /// Frames of this port's circuit held by the worker, ready for the fill ring.
    pub free: Vec<FrameDesc>,
    pub fd: RawFd,
    /// The kernel refused to transmit because the interface is down: frames that would go
    /// out here count as `noif` until a transmit kick succeeds again.
    pub down: bool,
}

/// Every socket of one queue index, handed to that queue's worker.
pub struct QueueSockets {
    pub queue: u32,
    pub umem: Umem,
    pub ports: Vec<Port>,
    pub spares: Vec<FrameDesc>,
}

/// Opens the sockets of queue `queue` on every interface, in zero-copy or copy mode. The
/// fill rings are primed, so the sockets can receive as soon as the XSKMAP points at them.
pub fn open_queue(ifnames: &[String], queue: u32, zerocopy: bool) -> Result<QueueSockets, String> {
    let rx_ring = QueueSize::new(RX_RING_SIZE).map_err(|e| format!("ring size: {e}"))?;
    let tx_ring = QueueSize::new(TX_RING_SIZE).map_err(|e| format!("ring size: {e}"))?;
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| format!("frame size: {e}"))?)
        .fill_queue_size(rx_ring)
        .comp_queue_size(tx_ring)
        .build()
        .map_err(|e| format!("UMEM config: {e}"))?;
    let total = CIRCUIT_FRAMES * ifnames.len() as u32 + SPARE_FRAMES;
    let frame_count = NonZeroU32::new(total).ok_or("no frames")?;
    let (umem, mut frames) = Umem::new(umem_config, frame_count, false)
        .map_err(|e| format!("creating the UMEM for queue {queue}: {e} ({e:?})"))?;

    let mode = if zerocopy {
        BindFlags::XDP_ZEROCOPY
    } else {
        BindFlags::XDP_COPY
    };
    let socket_config = SocketConfig::builder()
        .rx_queue_size(rx_ring)
        .tx_queue_size(tx_ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();

    let spares = frames.split_off(CIRCUIT_FRAMES as usize * ifnames.len());
    let mut ports = Vec::with_capacity(ifnames.len());
    for (i, name) in ifnames.iter().enumerate() {
        let iface: Interface = name
            .parse()
            .map_err(|_| format!("\"{name}\" is not a valid interface name"))?;
        // SAFETY: every socket on this UMEM is created with INHIBIT_PROG_LOAD, as xsk-rs
        // requires for shared UMEMs; each (interface, queue) pair is bound once.
        let (tx, rx, rings) =
            unsafe { Socket::new(socket_config, &umem, &iface, queue) }.map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                format!(
                    "{name} queue {queue}: AF_XDP socket in {} mode: {e}{cause}",
                    if zerocopy { "zero-copy" } else { "copy" }
                )
            })?;
        let (mut fill, comp) = rings.ok_or_else(|| {
            format!("{name} queue {queue}: the kernel gave no fill/completion rings")
        })?;
        let fd = rx.fd().as_raw_fd();
        let start = i * CIRCUIT_FRAMES as usize;
        let mut free: Vec<FrameDesc> = frames[start..start + CIRCUIT_FRAMES as usize].to_vec();
        let prime = free.split_off(free.len() - RX_RING_SIZE as usize);
        // SAFETY: the frames belong to this UMEM and to nobody else yet.
        let put = unsafe { fill.produce(&prime) };
        if put != prime.len() {
            return Err(format!(
                "{name} queue {queue}: could not prime the fill ring"
            ));
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
