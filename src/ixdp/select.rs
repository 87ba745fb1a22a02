//! What a tap point copies once the tap flag and the TAP machash let a frame through: the
//! pcap-filter expression ([`TapFilter`]), one frame in n ([`Sample`], counted per receive queue by a
//! [`Sampler`]) and how much of it ([`SnapLen`]). Each is a small immutable value that lives in
//! the policy snapshot, so the workers read it without a lock; a queue that narrows the global
//! selection (fan-out) holds its own `TapFilter` and `SnapLen`.

use super::cbpf::{self, Insn, Program};
use super::chain::FrameBytes;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

/// Longest filter expression, in bytes. libpcap's optimiser grows faster than the cube of the
/// expression: measured here, 300 `host` terms (5.5 kB) took 2.4 s to compile and 1500
/// `tcp port` terms (24 kB) 63 s, all on the control thread; 4096 bytes stay around a second.
pub const MAX_EXPRESSION: usize = 4096;

/// Largest snap length: tcpdump's (`MAXIMUM_SNAPLEN`).
pub const MAX_SNAPLEN: u32 = 262_144;

/// An expression that is not a filter, with the reason (libpcap's message when libpcap refused
/// it). The message names the expression, shortened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Over [`MAX_EXPRESSION`] bytes.
    #[error("{} is not a valid filter: it is {len} bytes long, at most {MAX_EXPRESSION} are allowed", quote(.expr))]
    TooLong {
        /// The expression.
        expr: String,
        /// Its length in bytes.
        len: usize,
    },
    /// libpcap could not compile it.
    #[error("{} is not a valid filter: {message}", quote(.expr))]
    Libpcap {
        /// The expression.
        expr: String,
        /// libpcap's message, e.g. `can't parse filter expression: syntax error`.
        message: String,
    },
    /// libpcap compiled it into something the interpreter refuses (never seen with libpcap's
    /// own code generator).
    #[error("{} compiled into a program ethertap cannot run: {source}", quote(.expr))]
    Program {
        /// The expression.
        expr: String,
        /// What the interpreter refused.
        source: cbpf::DecodeError,
    },
}

/// How an error names an expression: quoted, and cut after 64 characters.
fn quote(expr: &str) -> String {
    match expr.char_indices().nth(64) {
        Some((i, _)) => format!("\"{}…\"", &expr[..i]),
        None => format!("\"{expr}\""),
    }
}

/// A compiled pcap-filter(7) expression: exactly tcpdump's syntax, compiled by libpcap for
/// Ethernet frames, run by the crate's cBPF interpreter ([`cbpf`]) over whole frames (tags
/// included). Immutable; clones share the program. Two filters are equal when their
/// expressions are.
#[derive(Clone)]
pub struct TapFilter {
    expr: Arc<str>,
    program: Program,
}

impl TapFilter {
    /// Compiles `expr` (optimised, as tcpdump does). Host and network names in it are looked
    /// up now, once, on the caller's thread. An empty expression compiles into a filter that
    /// takes every frame: [`TapFilter::parse`] turns it into "no filter" instead.
    pub fn compile(expr: &str) -> Result<TapFilter, FilterError> {
        if expr.len() > MAX_EXPRESSION {
            return Err(FilterError::TooLong {
                expr: expr.to_string(),
                len: expr.len(),
            });
        }
        let libpcap = |e: pcap::Error| FilterError::Libpcap {
            expr: expr.to_string(),
            message: match e {
                pcap::Error::PcapError(m) => m,
                pcap::Error::InvalidInputString => "it contains a NUL byte".to_string(),
                other => other.to_string(),
            },
        };
        let compiled = pcap::Capture::dead(pcap::Linktype::ETHERNET)
            .map_err(libpcap)?
            .compile(expr, true)
            .map_err(libpcap)?;
        let insns = compiled
            .get_instructions()
            .iter()
            .map(|i| insn_of(&i.to_string()))
            .collect::<Option<Vec<Insn>>>()
            .ok_or_else(|| FilterError::Libpcap {
                expr: expr.to_string(),
                message: "libpcap returned an instruction ethertap cannot read".to_string(),
            })?;
        let program = Program::decode(&insns).map_err(|source| FilterError::Program {
            expr: expr.to_string(),
            source,
        })?;
        Ok(TapFilter {
            expr: expr.into(),
            program,
        })
    }

    /// What a word's argument means: `None` (no filter) for an empty or blank expression,
    /// else the compiled filter.
    pub fn parse(expr: &str) -> Result<Option<TapFilter>, FilterError> {
        if expr.trim().is_empty() {
            return Ok(None);
        }
        TapFilter::compile(expr).map(Some)
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The number of cBPF instructions libpcap compiled it into.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Whether `frame` (a whole Ethernet frame, in one buffer or several) matches. No
    /// allocation, no lock, no call into libpcap.
    #[inline]
    pub fn matches<F: FrameBytes + ?Sized>(&self, frame: &F) -> bool {
        // libpcap accepts on any non-zero return (its value is a snap length).
        self.program.run(frame) != 0
    }
}

/// `code jt jf k`, the text form `pcap::BpfInstruction` prints: the crate keeps the fields of
/// `struct bpf_insn` private, and this reads them without relying on its memory layout.
fn insn_of(text: &str) -> Option<Insn> {
    let mut f = text.split(' ');
    let insn = Insn {
        code: f.next()?.parse().ok()?,
        jt: f.next()?.parse().ok()?,
        jf: f.next()?.parse().ok()?,
        k: f.next()?.parse().ok()?,
    };
    f.next().is_none().then_some(insn)
}

impl PartialEq for TapFilter {
    fn eq(&self, other: &TapFilter) -> bool {
        self.expr == other.expr
    }
}

impl Eq for TapFilter {}

impl fmt::Debug for TapFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TapFilter({:?}, {:?})", self.expr, self.program)
    }
}

/// How many bytes of a tapped frame go into the queue: at most n, or the whole frame (0, the
/// default). The queue slot keeps the original length.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SnapLen(u32);

impl SnapLen {
    /// Whole frames.
    pub const WHOLE: SnapLen = SnapLen(0);

    /// At most `n` bytes, 0 = whole frames; None above [`MAX_SNAPLEN`] or below 0.
    pub fn new(n: i64) -> Option<SnapLen> {
        u32::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_SNAPLEN)
            .map(SnapLen)
    }

    /// The limit; 0 for whole frames.
    pub fn get(self) -> u32 {
        self.0
    }

    /// How many bytes of a frame of `len` bytes to copy.
    #[inline(always)]
    pub fn cap(self, len: usize) -> usize {
        if self.0 == 0 {
            len
        } else {
            len.min(self.0 as usize)
        }
    }

    /// The part of `frame` to copy.
    #[inline(always)]
    pub fn cut(self, frame: &[u8]) -> &[u8] {
        &frame[..self.cap(frame.len())]
    }
}

impl fmt::Display for SnapLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "0 (whole frames)"),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// Tap one frame in n of those that qualify; 1 (the default) taps all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample(NonZeroU32);

impl Default for Sample {
    fn default() -> Sample {
        Sample::ALL
    }
}

impl Sample {
    /// Every frame.
    pub const ALL: Sample = Sample(NonZeroU32::MIN);

    /// One frame in `n`; None unless 1 <= n <= u32::MAX.
    pub fn new(n: i64) -> Option<Sample> {
        u32::try_from(n).ok().and_then(NonZeroU32::new).map(Sample)
    }

    /// n.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            1 => write!(f, "1 (every frame)"),
            n => write!(f, "1 in {n}"),
        }
    }
}

/// The count of qualifying frames for [`Sample`] of one receive queue: deterministic, no random
/// draw. The first qualifying frame is taken, then every n-th after it.
///
/// A queue's frames are judged by its worker or, while they take the kernel path, by the kernel
/// tap's reader; clones share one count, so that a switch between the two paths neither
/// restarts nor splits the sequence. Each frame is decided by one atomic update: while both
/// paths carry frames of the queue (after a switch, or for good when the two ports take
/// different paths) exactly one in n decisions is a take, in the order the decisions are made.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    /// Qualifying frames to skip before the next one is taken.
    skip: Arc<AtomicU32>,
}

/// Samplers are equal when their counts are (whether or not they share one).
impl PartialEq for Sampler {
    fn eq(&self, other: &Sampler) -> bool {
        self.skip.load(Relaxed) == other.skip.load(Relaxed)
    }
}

impl Sampler {
    /// Whether to take this qualifying frame under `sample`. When n shrinks, the frames still
    /// to skip are cut to the new n, so the next frame taken is at most n away.
    #[inline(always)]
    pub fn take(&self, sample: Sample) -> bool {
        let n = sample.get();
        if n == 1 {
            return true;
        }
        let next = |skip: u32| {
            Some(if skip == 0 {
                n - 1
            } else {
                skip.min(n - 1) - 1
            })
        };
        // The closure always answers, so both arms hold the previous count.
        let (Ok(before) | Err(before)) = self.skip.fetch_update(Relaxed, Relaxed, next);
        before == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::frames::{self, Tag};
    use crate::wire::Mac;
    use std::net::SocketAddrV4;

    const A: Mac = Mac([0x02, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([0x02, 0, 0, 0, 0, 0xb]);

    fn compile(e: &str) -> TapFilter {
        TapFilter::compile(e).unwrap_or_else(|err| panic!("{e}: {err}"))
    }

    #[test]
    fn bad_expressions_are_errors_with_libpcaps_message() {
        let cases = [
            ("tcp port", "can't parse filter expression: syntax error"),
            ("no such", "can't parse filter expression: syntax error"),
            ("h\u{e9}llo", "can't parse filter expression: syntax error"),
            (
                "tcp port \u{664}\u{664}\u{663}",
                "can't parse filter expression: syntax error",
            ),
            ("ether[0] / 0 = 1", "division by zero"),
            ("tcp\0", "it contains a NUL byte"),
        ];
        for (expr, message) in cases {
            let e = TapFilter::compile(expr).unwrap_err();
            assert_eq!(
                e,
                FilterError::Libpcap {
                    expr: expr.into(),
                    message: message.into()
                }
            );
            assert_eq!(
                e.to_string(),
                format!("\"{expr}\" is not a valid filter: {message}")
            );
        }
        let long = "x".repeat(10_000);
        let e = TapFilter::compile(&long).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "\"{}…\" is not a valid filter: it is 10000 bytes long, at most 4096 are allowed",
                "x".repeat(64)
            )
        );
        assert!(TapFilter::compile(&"x".repeat(MAX_EXPRESSION)).is_err());
    }

    #[test]
    fn blank_means_no_filter() {
        assert_eq!(TapFilter::parse(""), Ok(None));
        assert_eq!(TapFilter::parse("  \t"), Ok(None));
        let f = TapFilter::parse(" tcp ").unwrap().unwrap();
        assert_eq!(f.expr(), " tcp ");
        assert!(
            compile("").matches(&[][..]),
            "libpcap's empty filter takes all"
        );
    }

    fn addr(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(ip.into(), port)
    }

    fn udp(tags: &[Tag], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        frames::udp4(
            B,
            A,
            tags,
            addr([10, 0, 0, 1], sport),
            addr([10, 0, 0, 2], dport),
            payload,
        )
        .unwrap()
    }

    fn tcp(tags: &[Tag], src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        frames::tcp4(
            B,
            A,
            tags,
            addr(src, sport),
            addr([192, 168, 0, 1], dport),
            1,
            &[0; 20],
        )
        .unwrap()
    }

    fn icmp(tags: &[Tag], seq: u16) -> Vec<u8> {
        let ips = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        frames::icmp4_echo(Mac::BROADCAST, A, tags, ips, (1, seq), b"ping").unwrap()
    }

    #[test]
    fn filters_select_by_protocol_port_and_vlan() {
        let (v10, v20) = ([Tag::dot1q(10)], [Tag::dot1q(20)]);
        let tcp443 = tcp(&[], [10, 0, 0, 1], 5000, 443);
        let other = frames::raw(A, B, &[], 0x88b5, &[0; 46]);
        let cases = [
            (
                "udp port 1234",
                vec![udp(&[], 9, 1234, b"x")],
                vec![udp(&[], 9, 53, b"x"), tcp443.clone()],
            ),
            (
                "vlan 10",
                vec![udp(&v10, 9, 53, b"")],
                vec![udp(&v20, 9, 53, b""), udp(&[], 9, 53, b"")],
            ),
            (
                "vlan 10 and udp port 1234",
                vec![udp(&v10, 9, 1234, b"")],
                vec![udp(&[], 9, 1234, b""), udp(&v10, 9, 53, b"")],
            ),
            (
                "tcp port 443",
                vec![tcp443.clone()],
                vec![udp(&[], 9, 443, b"")],
            ),
            (
                "icmp",
                vec![icmp(&[], 1)],
                vec![tcp443.clone(), icmp(&v10, 1)],
            ),
            (
                "ether src 02:00:00:00:00:0a",
                vec![tcp443.clone()],
                vec![other],
            ),
        ];
        for (expr, yes, no) in cases {
            let f = compile(expr);
            for fr in &yes {
                assert!(f.matches(fr), "{expr} takes {fr:02x?}");
            }
            for fr in &no {
                assert!(!f.matches(fr), "{expr} refuses {fr:02x?}");
            }
        }
    }

    /// The interpreter against libpcap's own `pcap_offline_filter` over many frames: every
    /// answer the same.
    #[test]
    fn the_interpreter_agrees_with_libpcap() {
        let exprs = [
            "tcp port 443",
            "udp port 1234",
            "vlan 10",
            "vlan and vlan 20",
            "tcp and (port 80 or port 443) and not host 10.0.0.1",
            "ip[0] & 0xf != 5",
            "tcp[tcpflags] & (tcp-syn|tcp-ack) != 0",
            "len > 100 and len <= 200",
            "ether[12:2] = 0x88b5 or ether[0] & 1 = 1",
            "icmp or arp or ip6",
            "ip[2:2] / 3 > 20 and ip[2:2] % 7 = 2",
            "(ip[8] << 2) - (ip[9] >> 1) + 3 * ip[1] > 40",
            "udp[8:4] = 0x01020304 or ip proto 17",
            "net 10.0.0.0/8 and portrange 1000-2000",
            "ether multicast or ether broadcast",
            "ip[ip[0] & 0xf] = 0x45 or ip[0] & 0xf = 5",
        ];
        let mut rng = crate::ixdp::fault::FaultRng::new(0x0bad_cafe);
        let mut pkts: Vec<Vec<u8>> = Vec::new();
        for i in 0..4000u16 {
            let tags: Vec<Tag> = (0..i % 3).map(|t| Tag::dot1q(10 * (t + 1))).collect();
            let port = [80, 443, 1234, 1500, 53][usize::from(i % 5)];
            let mut f = match i % 4 {
                0 => tcp(&tags, [10, 0, 0, (i % 3) as u8], 1000 + i, port),
                1 => udp(&tags, port, 999, &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
                2 => icmp(&tags, i),
                _ => (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
            };
            // Random damage: cut short, one byte changed.
            if rng.chance(30_000) {
                f.truncate(rng.below(f.len() as u64 + 1) as usize);
            }
            if rng.chance(30_000) && !f.is_empty() {
                let at = rng.below(f.len() as u64) as usize;
                f[at] = rng.next_u64() as u8;
            }
            pkts.push(f);
        }
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        for e in exprs {
            let ours = compile(e);
            let theirs = cap.compile(e, true).unwrap();
            let mut matched = 0;
            for p in &pkts {
                let m = ours.matches(p);
                assert_eq!(m, theirs.filter(p), "{e} on {p:02x?}");
                matched += usize::from(m);
            }
            assert!(matched > 0 && matched < pkts.len(), "{e} matched {matched}");
        }
    }

    #[test]
    fn snap_lengths_cut_and_zero_keeps_whole_frames() {
        let f = [7u8; 100];
        assert_eq!(SnapLen::WHOLE.cut(&f).len(), 100);
        assert_eq!(SnapLen::new(96).unwrap().cut(&f).len(), 96);
        assert_eq!(SnapLen::new(200).unwrap().cut(&f).len(), 100);
        assert_eq!(SnapLen::new(1).unwrap().cut(&f), &[7]);
        assert_eq!(
            SnapLen::new(i64::from(MAX_SNAPLEN)).map(SnapLen::get),
            Some(MAX_SNAPLEN)
        );
        for bad in [-1, i64::from(MAX_SNAPLEN) + 1, i64::MAX] {
            assert_eq!(SnapLen::new(bad), None);
        }
    }

    #[test]
    fn clones_of_a_sampler_continue_one_count() {
        let ten = Sample::new(10).unwrap();
        let worker = Sampler::default();
        let reader = worker.clone();
        // Frames alternate between the two holders: still the first and every tenth.
        let taken: Vec<usize> = (0..30)
            .filter(|i| if i % 2 == 0 { &worker } else { &reader }.take(ten))
            .collect();
        assert_eq!(taken, vec![0, 10, 20]);
        let other = Sampler::default();
        assert!(other.take(ten), "a new sampler counts on its own");
        // Threads deciding at once: exactly one in ten of all decisions is a take.
        let shared = Sampler::default();
        let takes: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let mine = shared.clone();
                    s.spawn(move || (0..25_000).filter(|_| mine.take(ten)).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(takes, 10_000);
    }

    #[test]
    fn sampling_takes_exactly_one_in_n_starting_with_the_first() {
        let ten = Sample::new(10).unwrap();
        let s = Sampler::default();
        let taken: Vec<usize> = (0..10_000).filter(|_| s.take(ten)).collect::<Vec<_>>();
        assert_eq!(taken.len(), 1000);
        let s = Sampler::default();
        let first: Vec<usize> = (0..12).filter(|_| s.take(ten)).collect();
        assert_eq!(first, vec![0, 10]);
        let s = Sampler::default();
        assert!((0..100).all(|_| s.take(Sample::ALL)));
        // From 1 in 1000 to 1 in 3: the next frame taken is at most 3 away.
        let s = Sampler::default();
        assert!(s.take(Sample::new(1000).unwrap()));
        let three = Sample::new(3).unwrap();
        let next: Vec<bool> = (0..7).map(|_| s.take(three)).collect();
        assert_eq!(next, [false, false, true, false, false, true, false]);
        assert_eq!(Sample::new(0), None);
        assert_eq!(Sample::new(-5), None);
        assert_eq!(
            Sample::new(i64::from(u32::MAX)).map(Sample::get),
            Some(u32::MAX)
        );
    }
}
