//! The RPCL words of the engine (docs/words-engine.md; `tap.queue.*` are the packet queue's).
//!
//! [`ENGINE_WORDS`] is the one list of names, help texts and implementations: the daemon
//! registers it against the running engine, a VM without a daemon registers the same names with
//! a failure that says how to start the engine, and `docs/words-engine.md` is checked against it.

use super::machash::MacSet;
use super::policy::{Policy, MAX_IFS, PROBABILITY_SCALE};
use super::queue_words::QUEUE_WORDS;
use super::select::{Sample, SnapLen, TapFilter, MAX_SNAPLEN};
use super::stats::{Counters, OverflowEstimate, ETYPE_TABLE_CAPACITY, MAC_TABLE_CAPACITY};
use super::{EngineView, Freshness, InterfaceInfo, RingDetails, XdpMode};
use crate::rpcl::{Ctx, Subtype, Vm, WordError};
use crate::wire::{ethertype, Mac, MacRange};
use std::fmt::Write as _;
use std::sync::Arc;

/// What every engine word says when no engine runs.
pub const NEEDS_ENGINE: &str = "needs the engine: start it with `ethertap start -d IF0 [IF1]`";

/// Most entries (MACs and ranges) one machash may hold: far more than any tap needs, and it
/// keeps the copy that each change makes (and a script inserting in a runaway loop) small.
pub const MACHASH_MAX: usize = 65_536;

/// Column where `if.stats` values start (0-based), as in the original tool's output.
pub const VALUE_COLUMN: usize = 24;

/// What a word that needs packet queues says when the engine runs without them.
pub const NO_TAPS: &str = "the engine runs without a packet queue, so nothing is tapped";

pub(super) type Run = fn(&mut Ctx<'_>, &dyn EngineView) -> Result<(), WordError>;

/// One engine word.
pub struct EngineWord {
    /// The word's name.
    pub name: &'static str,
    /// `description ( stack effect )`
    pub help: &'static str,
    pub(super) run: Run,
}

#[derive(Clone, Copy)]
enum Hash {
    Tap,
    Drop,
    Fault,
}
const TAP: u8 = 0;
const DROP: u8 = 1;
const FAULT: u8 = 2;

impl Hash {
    const fn of(h: u8) -> Hash {
        match h {
            TAP => Hash::Tap,
            DROP => Hash::Drop,
            _ => Hash::Fault,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Hash::Tap => "TAP machash",
            Hash::Drop => "drop machash",
            Hash::Fault => "fault machash",
        }
    }
    fn set(self, p: &Policy) -> &MacSet {
        match self {
            Hash::Tap => &p.tap_hash,
            Hash::Drop => &p.drop_hash,
            Hash::Fault => &p.fault_hash,
        }
    }
    fn set_mut(self, p: &mut Policy) -> &mut MacSet {
        match self {
            Hash::Tap => &mut p.tap_hash,
            Hash::Drop => &mut p.drop_hash,
            Hash::Fault => &mut p.fault_hash,
        }
    }
}

const RX: u8 = 0;
const TX: u8 = 1;
const P_DROP: u8 = 0;
const P_FLIP: u8 = 1;
const P_DUP: u8 = 2;

/// Every engine word, in the order `docs/words-engine.md` lists them.
pub static ENGINE_WORDS: &[EngineWord] = &[
    EngineWord {
        name: "if.stats",
        help: "print the counters, tap and fault settings of every interface ( - )",
        run: if_stats,
    },
    EngineWord {
        name: "if.stats.json",
        help: "print the figures of if.stats, plus byte counters, as one line of JSON ( - )",
        run: if_stats_json,
    },
    EngineWord {
        name: "if.qstats",
        help: "print the counters of one queue of an interface and its ring details ( queue interface - )",
        run: if_qstats,
    },
    EngineWord {
        name: "if.mac.show",
        help: "print the source MACs received on an interface with frame counts and vendors ( interface - )",
        run: if_mac_show,
    },
    EngineWord {
        name: "if.etype.show",
        help: "print the Ethertypes received on an interface per VLAN level with frame counts and the last source MAC ( interface - )",
        run: if_etype_show,
    },
    EngineWord {
        name: "if.stats.reset",
        help: "zero all counters and the MAC and Ethertype tables of every interface ( - )",
        run: if_stats_reset,
    },
    EngineWord {
        name: "tap.rx.enable",
        help: "tap frames received on an interface into the packet queue ( interface - )",
        run: tap_flag::<RX, true>,
    },
    EngineWord {
        name: "tap.rx.disable",
        help: "stop tapping frames received on an interface ( interface - )",
        run: tap_flag::<RX, false>,
    },
    EngineWord {
        name: "tap.tx.enable",
        help: "tap frames transmitted on an interface into the packet queue ( interface - )",
        run: tap_flag::<TX, true>,
    },
    EngineWord {
        name: "tap.tx.disable",
        help: "stop tapping frames transmitted on an interface ( interface - )",
        run: tap_flag::<TX, false>,
    },
    EngineWord {
        name: "tap.hash.insert",
        help: "add a MAC or a MAC range to the TAP machash; when it is not empty only frames from or to a listed MAC are tapped ( mac|macrange - )",
        run: hash_insert::<TAP>,
    },
    EngineWord {
        name: "tap.hash.delete",
        help: "remove a MAC or a MAC range from the TAP machash ( mac|macrange - )",
        run: hash_delete::<TAP>,
    },
    EngineWord {
        name: "tap.hash.reset",
        help: "empty the TAP machash, so that every frame is tapped ( - )",
        run: hash_reset::<TAP>,
    },
    EngineWord {
        name: "tap.hash.show",
        help: "list the TAP machash, one MAC or range FROM-TO and its vendor per line ( - )",
        run: hash_show::<TAP>,
    },
    EngineWord {
        name: "tap.filter",
        help: "tap only frames that also match this pcap-filter expression, as tcpdump takes it; \"\" removes the filter ( expr - )",
        run: tap_filter,
    },
    EngineWord {
        name: "tap.filter.reset",
        help: "remove the tap filter, so that the TAP machash alone selects ( - )",
        run: tap_filter_reset,
    },
    EngineWord {
        name: "tap.filter.show",
        help: "print the tap filter's expression, nothing when there is none ( - )",
        run: tap_filter_show,
    },
    EngineWord {
        name: "tap.snaplen",
        help: "copy at most n bytes of each tapped frame into the packet queue, keeping its original length; 0 = whole frames ( n - )",
        run: tap_snaplen,
    },
    EngineWord {
        name: "tap.sample",
        help: "tap one frame in n of those that qualify, counted per receive queue; 1 = every frame ( n - )",
        run: tap_sample,
    },
    EngineWord {
        name: "tap.status",
        help: "print what the taps copy: tap flags, TAP machash, filter, snap length, sampling ( - )",
        run: tap_status,
    },
    EngineWord {
        name: "drop.hash.insert",
        help: "drop every frame whose source is this MAC or in this MAC range ( mac|macrange - )",
        run: hash_insert::<DROP>,
    },
    EngineWord {
        name: "drop.hash.delete",
        help: "stop dropping frames from this source MAC or MAC range ( mac|macrange - )",
        run: hash_delete::<DROP>,
    },
    EngineWord {
        name: "drop.hash.reset",
        help: "empty the drop machash, so that no frame is dropped by source MAC ( - )",
        run: hash_reset::<DROP>,
    },
    EngineWord {
        name: "drop.hash.show",
        help: "list the drop machash, one MAC or range FROM-TO and its vendor per line ( - )",
        run: hash_show::<DROP>,
    },
    EngineWord {
        name: "fault.enable",
        help: "inject faults into frames received on an interface ( interface - )",
        run: fault_flag::<true>,
    },
    EngineWord {
        name: "fault.disable",
        help: "stop injecting faults into frames received on an interface ( interface - )",
        run: fault_flag::<false>,
    },
    EngineWord {
        name: "fault.drop.probability",
        help: "set the chance in 1/100000 that fault injection drops a frame received on an interface ( p interface - )",
        run: fault_probability::<P_DROP>,
    },
    EngineWord {
        name: "fault.flip.probability",
        help: "set the chance in 1/100000 that fault injection flips one random bit at byte offset 14 or later ( p interface - )",
        run: fault_probability::<P_FLIP>,
    },
    EngineWord {
        name: "fault.dup.probability",
        help: "set the chance in 1/100000 that fault injection sends a frame received on an interface twice ( p interface - )",
        run: fault_probability::<P_DUP>,
    },
    EngineWord {
        name: "fault.hash.insert",
        help: "add a source MAC or MAC range to the fault machash; when it is not empty only frames from listed MACs get faults ( mac|macrange - )",
        run: hash_insert::<FAULT>,
    },
    EngineWord {
        name: "fault.hash.delete",
        help: "remove a source MAC or MAC range from the fault machash ( mac|macrange - )",
        run: hash_delete::<FAULT>,
    },
    EngineWord {
        name: "fault.hash.reset",
        help: "empty the fault machash, so that faults apply to every frame ( - )",
        run: hash_reset::<FAULT>,
    },
    EngineWord {
        name: "fault.hash.show",
        help: "list the fault machash, one MAC or range FROM-TO and its vendor per line ( - )",
        run: hash_show::<FAULT>,
    },
];

// ---- Counters as values (issue 15): words that push what the statistics words print, so
// that scripts can watch the wire without scraping text.

/// Engine words that push a value instead of printing.
pub static VALUE_WORDS: &[EngineWord] = &[EngineWord {
    name: "if.counter",
    help: "push one counter of an interface as if.stats names it: rx tx drop noif err, dropped/flipped/duplicated by FI ( name interface - n )",
    run: if_counter,
}];

/// Other spellings of counter names found in the public xdptap material, and the names they
/// stand for.
const COUNTER_SYNONYMS: [(&str, &str); 1] = [("bitflipped by FI", "flipped by FI")];

fn if_counter(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let i = pop_interface(cx, e)?.0;
    let name = cx.pop_str()?;
    let wanted = COUNTER_SYNONYMS
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name.as_str(), |(_, n)| n);
    let c = e.stats().totals(i);
    let values: Vec<(&str, u64)> = COUNTERS.iter().map(|(l, get)| (*l, get(&c))).collect();
    let n = crate::rpcl::named_counter(&values, wanted, "if.stats")?;
    cx.push_int(n)
}

// ---- Published names (issue 15): spellings of the public xdptap and ixdp material that
// scripts written for it use, accepted beside this project's names where they do not clash.

/// Synonyms of engine words under their published names.
pub static PUBLISHED_NAMES: &[EngineWord] = &[EngineWord {
    name: "fault.bitflip.probability",
    help: "fault.flip.probability under its xdptap name: set the chance in 1/100000 that fault injection flips one random bit at byte offset 14 or later ( p interface - )",
    run: fault_probability::<P_FLIP>,
}];

/// Every engine word: the main table and the blocks kept apart from it.
pub fn all_words() -> impl Iterator<Item = &'static EngineWord> {
    ENGINE_WORDS
        .iter()
        .chain(QUEUE_WORDS)
        .chain(VALUE_WORDS)
        .chain(PUBLISHED_NAMES)
}

/// Registers every engine word against the running engine.
pub fn register_engine_words(vm: &mut Vm, engine: Arc<dyn EngineView>) {
    for w in all_words() {
        let engine = engine.clone();
        let run = w.run;
        vm.register(w.name, w.help, move |cx| run(cx, &*engine));
    }
}

/// Registers the engine words for a VM that has no engine: same names and help, each failing
/// with [`NEEDS_ENGINE`].
pub fn register_unavailable_words(vm: &mut Vm) {
    for w in all_words() {
        vm.register(w.name, w.help, |_| Err(WordError::new(NEEDS_ENGINE)));
    }
}

/// One `label value` line of the statistics words: `indent` spaces, the label, padding so that
/// the value starts in [`VALUE_COLUMN`].
pub fn stat_line(indent: usize, label: &str, value: impl std::fmt::Display) -> String {
    let width = VALUE_COLUMN.saturating_sub(indent).max(label.len() + 1);
    format!("{:indent$}{label:<width$}{value}\n", "")
}

/// A probability in 1/100000 as `N (P.PPP%)`, with exact integer arithmetic.
pub fn format_probability(p: u32) -> String {
    format!("{p} ({}.{:03}%)", p / 1000, p % 1000)
}

/// The valid indices for an error message: `0..N-1`, `only 0`, or `none` when there are none.
fn index_range(count: usize, none: &str) -> String {
    match count {
        0 => none.to_string(),
        1 => "only 0".to_string(),
        n => format!("0..{}", n - 1),
    }
}

/// Pops an interface index and checks it against the running engine.
fn pop_interface<'e>(
    cx: &mut Ctx<'_>,
    e: &'e dyn EngineView,
) -> Result<(usize, &'e InterfaceInfo), WordError> {
    let n = cx.pop_int()?;
    let ifs = e.interfaces();
    let count = ifs.len().min(MAX_IFS);
    usize::try_from(n)
        .ok()
        .filter(|&i| i < count)
        .and_then(|i| Some((i, ifs.get(i)?)))
        .ok_or_else(|| {
            WordError::new(format!(
                "{n} is not an interface ({})",
                index_range(count, "the engine has none")
            ))
        })
}

fn mode_token(info: &InterfaceInfo) -> String {
    let copy = if info.zerocopy { "ZEROCOPY" } else { "COPY" };
    let attach = match info.attached_mode {
        XdpMode::Drv => "DRV",
        XdpMode::Skb => "SKB",
        XdpMode::Auto => "AUTO",
    };
    format!("{copy} {attach}")
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

/// Reads one counter.
type Counter = fn(&Counters) -> u64;

/// The counters of `if.stats` and `if.qstats` by their labels, in the order printed: the
/// frame counters, then those of fault injection. `if.counter` reads them by these names.
const COUNTERS: [(&str, Counter); 8] = [
    ("rx", |c| c.rx),
    ("tx", |c| c.tx),
    ("drop", |c| c.drop),
    ("noif", |c| c.noif),
    ("err", |c| c.err),
    ("dropped by FI", |c| c.fi_dropped),
    ("flipped by FI", |c| c.fi_flipped),
    ("duplicated by FI", |c| c.fi_duplicated),
];

/// Where the fault-injection counters start in [`COUNTERS`].
const FI_COUNTERS: usize = 5;

fn counter_lines(s: &mut String, c: &Counters) {
    for (label, get) in &COUNTERS[..FI_COUNTERS] {
        s.push_str(&stat_line(2, label, get(c)));
    }
}

/// The fault-injection counters, indented `indent`.
fn fi_counter_lines(s: &mut String, indent: usize, c: &Counters) {
    for (label, get) in &COUNTERS[FI_COUNTERS..] {
        s.push_str(&stat_line(indent, label, get(c)));
    }
}

fn if_stats(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let policy = e.policy().snapshot();
    let mut s = String::new();
    for (i, info) in e.interfaces().iter().enumerate() {
        let c = e.stats().totals(i);
        let fault = policy.fault.get(i).copied().unwrap_or_default();
        let link = e
            .link_state(i)
            .token()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{i} {} {} queues:{} {}{link}",
            info.name,
            info.driver,
            info.queues,
            mode_token(info)
        );
        counter_lines(&mut s, &c);
        s.push_str(&stat_line(
            2,
            "RX tap",
            on_off(policy.tap_rx.get(i) == Some(&true)),
        ));
        s.push_str(&stat_line(
            2,
            "TX tap",
            on_off(policy.tap_tx.get(i) == Some(&true)),
        ));
        s.push_str(&stat_line(2, "fault injection", on_off(fault.enabled)));
        s.push_str(&stat_line(
            4,
            "drop probability",
            format_probability(fault.drop_p),
        ));
        s.push_str(&stat_line(
            4,
            "flip probability",
            format_probability(fault.flip_p),
        ));
        s.push_str(&stat_line(
            4,
            "dup probability",
            format_probability(fault.dup_p),
        ));
        fi_counter_lines(&mut s, 4, &c);
    }
    cx.emit(s)
}

/// `{"interfaces":[…]}`: the fields of [`super::report::InterfaceReport`].
fn if_stats_json(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let mut text = stats_json(e);
    text.push('\n');
    cx.emit(text)
}

/// The JSON object `if.stats.json` prints (fields in the order of the report's structs).
pub fn stats_json(e: &dyn EngineView) -> String {
    #[derive(serde::Serialize)]
    struct Interfaces {
        interfaces: Vec<super::report::InterfaceReport>,
    }
    let report = Interfaces {
        interfaces: super::report::interface_reports(e),
    };
    // Plain data of strings, numbers and booleans: serialising cannot fail.
    serde_json::to_string(&report).unwrap_or_default()
}

fn if_qstats(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (i, info) = pop_interface(cx, e)?;
    let q = cx.pop_int()?;
    let queues = info.queues as usize;
    let Some(c) = usize::try_from(q)
        .ok()
        .filter(|&q| q < queues)
        .and_then(|q| e.stats().queue_counters(i, q))
    else {
        return Err(WordError::new(format!(
            "{q} is not a queue of interface {i} ({})",
            index_range(queues, "it has none")
        )));
    };
    let q = q as usize;
    let mut s = format!("{i} {} queue {q}\n", info.name);
    counter_lines(&mut s, &c);
    fi_counter_lines(&mut s, 2, &c);
    match e.ring_details(i, q) {
        Ok(details) => ring_lines(&mut s, &details),
        Err(why) => s.push_str(&stat_line(2, "rings", format!("unavailable: {why}"))),
    }
    cx.emit(s)
}

/// The `if.qstats` lines of [`RingDetails`].
fn ring_lines(s: &mut String, d: &RingDetails) {
    let (r, p) = (&d.rings, &d.program);
    for (label, value) in [
        ("fill ring", r.fill),
        ("rx ring", r.rx),
        ("tx ring", r.tx),
        ("completion ring", r.comp),
        ("free frames", r.free_frames),
        ("spare frames", r.spare_frames),
        ("rx_dropped", r.rx_dropped),
        ("rx_invalid_descs", r.rx_invalid_descs),
        ("tx_invalid_descs", r.tx_invalid_descs),
        ("rx_ring_full", r.rx_ring_full),
        ("rx_fill_ring_empty", r.rx_fill_ring_empty_descs),
        ("tx_ring_empty_descs", r.tx_ring_empty_descs),
        ("xdp seen", p.seen),
        ("xdp redirected", p.redirected),
        ("xdp passed", p.passed),
        ("xdp kernel path", p.kernel),
        ("xdp kernel tap", p.kernel_tapped),
        ("xdp kernel tap full", p.kernel_tap_full),
    ] {
        s.push_str(&stat_line(2, label, value));
    }
    match d.freshness {
        Freshness::Fresh => {}
        Freshness::Stopped => s.push_str("  (engine stopped: last values)\n"),
        Freshness::NoAnswer => s.push_str("  (worker did not answer: values may be old)\n"),
    }
}

fn if_mac_show(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (i, info) = pop_interface(cx, e)?;
    let r = e.stats().macs(i);
    let mut s = format!("{i} {} source MACs: {}\n", info.name, r.macs.len());
    if !r.macs.is_empty() {
        let w = r
            .macs
            .iter()
            .map(|m| m.frames.to_string().len())
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = writeln!(s, "  {:<17}  {:>w$}  vendor", "MAC", "frames");
        for m in &r.macs {
            let _ = writeln!(s, "  {}  {:>w$}  {}", m.mac, m.frames, m.mac.describe());
        }
    }
    if r.overflow > 0 {
        let macs = match r.overflow_macs {
            OverflowEstimate::About(n) => format!("about {n}"),
            OverflowEstimate::AtLeast(n) => format!("at least {n}"),
            OverflowEstimate::None => "unknown".to_string(),
        };
        let _ = writeln!(
            s,
            "  not listed: {} frames from {macs} further MACs (the table holds {MAC_TABLE_CAPACITY} per queue)",
            r.overflow
        );
    }
    cx.emit(s)
}

fn ethertype_label(t: u16) -> String {
    match (t, ethertype::name(t)) {
        (ethertype::LENGTH_8023, Some(n)) => format!("<0x{:04x} {n}", ethertype::MIN),
        (t, Some(n)) => format!("0x{t:04x} {n}"),
        (t, None) => format!("0x{t:04x}"),
    }
}

fn if_etype_show(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (i, info) = pop_interface(cx, e)?;
    let r = e.stats().etypes(i);
    let mut s = format!("{i} {} ethertypes: {}\n", info.name, r.types.len());
    if !r.types.is_empty() {
        let labels: Vec<String> = r
            .types
            .iter()
            .map(|t| ethertype_label(t.ethertype))
            .collect();
        let lw = labels
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("ethertype".len());
        let fw = r
            .types
            .iter()
            .map(|t| t.frames.to_string().len())
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = writeln!(
            s,
            "  level  {:<lw$}  {:>fw$}  last source",
            "ethertype", "frames"
        );
        for (t, label) in r.types.iter().zip(&labels) {
            let _ = writeln!(
                s,
                "  {:<5}  {label:<lw$}  {:>fw$}  {}",
                t.level, t.frames, t.last_src
            );
        }
    }
    if r.overflow > 0 {
        let _ = writeln!(
            s,
            "  not listed: {} frames of further types (the table holds {ETYPE_TABLE_CAPACITY} per queue)",
            r.overflow
        );
    }
    cx.emit(s)
}

fn if_stats_reset(_cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    e.stats().reset();
    Ok(())
}

fn tap_flag<const DIR: u8, const ON: bool>(
    cx: &mut Ctx<'_>,
    e: &dyn EngineView,
) -> Result<(), WordError> {
    let i = pop_interface(cx, e)?.0;
    e.policy().update(|p| {
        let flags = if DIR == RX {
            &mut p.tap_rx
        } else {
            &mut p.tap_tx
        };
        flags[i] = ON;
    });
    Ok(())
}

fn fault_flag<const ON: bool>(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let i = pop_interface(cx, e)?.0;
    e.policy().update(|p| p.fault[i].enabled = ON);
    Ok(())
}

fn fault_probability<const WHICH: u8>(
    cx: &mut Ctx<'_>,
    e: &dyn EngineView,
) -> Result<(), WordError> {
    let i = pop_interface(cx, e)?.0;
    let p = cx.pop_int()?;
    let p = u32::try_from(p)
        .ok()
        .filter(|&p| p <= PROBABILITY_SCALE)
        .ok_or_else(|| {
            WordError::new(format!(
                "{p} is not a probability (0..{PROBABILITY_SCALE} in 1/100000, {PROBABILITY_SCALE} = always)"
            ))
        })?;
    e.policy().update(|pol| {
        let f = &mut pol.fault[i];
        match WHICH {
            P_DROP => f.drop_p = p,
            P_FLIP => f.flip_p = p,
            _ => f.dup_p = p,
        }
    });
    Ok(())
}

/// Pops a machash entry: a MAC (text or `mac_t`) or a range (`macrange_t`, or `FROM-TO` text
/// as `str->macrange_t` takes it).
fn pop_mac_entry(cx: &mut Ctx<'_>) -> Result<MacRange, WordError> {
    let v = cx.pop()?;
    let bytes = v.bytes();
    let entry = match v.subtype() {
        Some(Subtype::Mac) => Mac::try_from(bytes.as_ref()).ok().map(MacRange::from),
        Some(Subtype::MacRange) => MacRange::from_bytes(&bytes),
        Some(_) => None,
        None => {
            let text = v.text();
            match (text.parse::<Mac>(), text.parse::<MacRange>()) {
                (Ok(m), _) => Some(m.into()),
                (_, Ok(r)) => Some(r),
                (_, Err(crate::wire::MacRangeParseError::Reversed(e))) => {
                    return Err(WordError::new(e.to_string()))
                }
                _ => None,
            }
        }
    };
    entry.ok_or_else(|| {
        WordError::new(format!(
            "{} is not a MAC address or a MAC range FROM-TO",
            v.describe()
        ))
    })
}

fn hash_insert<const H: u8>(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let h = Hash::of(H);
    let entry = pop_mac_entry(cx)?;
    let current = e.policy().snapshot();
    let set = h.set(&current);
    if !set.lists(entry) && set.len() >= MACHASH_MAX {
        return Err(WordError::new(format!(
            "the {} is full ({MACHASH_MAX} entries): {entry} not added",
            h.title(),
        )));
    }
    e.policy()
        .update(|p| *h.set_mut(p) = h.set(p).inserted(entry));
    Ok(())
}

/// Deleting an entry that is not listed is not an error: scripts can clean up without checking.
fn hash_delete<const H: u8>(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let h = Hash::of(H);
    let entry = pop_mac_entry(cx)?;
    e.policy()
        .update(|p| *h.set_mut(p) = h.set(p).removed(entry));
    Ok(())
}

fn hash_reset<const H: u8>(_cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let h = Hash::of(H);
    e.policy().update(|p| *h.set_mut(p) = MacSet::new());
    Ok(())
}

fn hash_show<const H: u8>(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let h = Hash::of(H);
    let policy = e.policy().snapshot();
    let mut s = String::new();
    for entry in h.set(&policy).iter() {
        let _ = writeln!(s, "{entry} {}", entry.first().describe());
    }
    cx.emit(s)
}

/// Compiles on the calling (control) thread; the workers only ever see the finished program.
/// A bad expression leaves the filter in force as it was.
/// Pops a pcap-filter expression and compiles it; a blank one is no filter.
pub(super) fn pop_filter(cx: &mut Ctx<'_>) -> Result<Option<TapFilter>, WordError> {
    let expr = cx.pop_str()?;
    TapFilter::parse(&expr).map_err(|err| WordError::new(err.to_string()))
}

/// Pops a snap length; `zero` says what 0 means where it is set.
pub(super) fn pop_snaplen(cx: &mut Ctx<'_>, zero: &str) -> Result<SnapLen, WordError> {
    let n = cx.pop_int()?;
    SnapLen::new(n).ok_or_else(|| {
        WordError::new(format!(
            "{n} is not a snap length (0 = {zero}, else 1..{MAX_SNAPLEN} bytes)"
        ))
    })
}

fn tap_filter(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let filter = pop_filter(cx)?;
    e.policy().update(|p| p.tap_filter = filter.clone());
    Ok(())
}

fn tap_filter_reset(_cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    e.policy().update(|p| p.tap_filter = None);
    Ok(())
}

fn tap_filter_show(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let policy = e.policy().snapshot();
    match &policy.tap_filter {
        Some(f) => cx.emit(format!("{}\n", f.expr())),
        None => Ok(()),
    }
}

fn tap_snaplen(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let snaplen = pop_snaplen(cx, "whole frames")?;
    e.policy().update(|p| p.snaplen = snaplen);
    Ok(())
}

fn tap_sample(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let n = cx.pop_int()?;
    let sample = Sample::new(n).ok_or_else(|| {
        WordError::new(format!(
            "{n} is not a sampling rate (1 = every frame, n = one frame in n, up to {})",
            u32::MAX
        ))
    })?;
    e.policy().update(|p| p.sample = sample);
    Ok(())
}

/// `N thing` or `N things`.
fn count(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

fn tap_status(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let policy = e.policy().snapshot();
    let ifs = e.interfaces();
    let tapped = |flags: &[bool; MAX_IFS]| {
        let on: Vec<String> = ifs
            .iter()
            .enumerate()
            .filter(|(i, _)| flags.get(*i) == Some(&true))
            .map(|(i, info)| format!("{i} {}", info.name))
            .collect();
        if on.is_empty() {
            "none".to_string()
        } else {
            on.join(", ")
        }
    };
    let hash = &policy.tap_hash;
    let hash_text = match (hash.len(), hash.ranges()) {
        (0, _) => "empty (every frame)".to_string(),
        (n, 0) => count(n, "MAC"),
        (n, r) => format!("{}, {}", count(n - r, "MAC"), count(r, "range")),
    };
    let filter = policy
        .tap_filter
        .as_ref()
        .map_or("none (every frame)".to_string(), |f| f.expr().to_string());
    let mut s = String::new();
    s.push_str(&stat_line(0, "RX tap", tapped(&policy.tap_rx)));
    s.push_str(&stat_line(0, "TX tap", tapped(&policy.tap_tx)));
    s.push_str(&stat_line(0, "TAP machash", hash_text));
    s.push_str(&stat_line(0, "filter", filter));
    s.push_str(&stat_line(0, "sample", policy.sample));
    s.push_str(&stat_line(0, "snaplen", policy.snaplen));
    cx.emit(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_help_ends_in_a_stack_effect() {
        let mut names: Vec<&str> = all_words().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all_words().count());
        for w in all_words() {
            assert!(
                w.help.ends_with(" )") && w.help.contains(" ( "),
                "{}: {}",
                w.name,
                w.help
            );
            // What is in one queue belongs to the pqueue part; the engine has the set of them.
            assert!(
                ![
                    "tap.queue.get",
                    "tap.queue.reset",
                    "tap.queue.status",
                    "tap.queue.counter"
                ]
                .contains(&w.name),
                "{} belongs to the pqueue part",
                w.name
            );
        }
    }

    #[test]
    fn stat_lines_put_values_in_column_24() {
        assert_eq!(
            stat_line(2, "rx", 64183713),
            "  rx                    64183713\n"
        );
        assert_eq!(
            stat_line(4, "drop probability", format_probability(0)),
            "    drop probability    0 (0.000%)\n"
        );
        assert_eq!(
            stat_line(2, "a label longer than the column", 1),
            "  a label longer than the column 1\n"
        );
    }

    #[test]
    fn probabilities_print_exactly() {
        assert_eq!(format_probability(0), "0 (0.000%)");
        assert_eq!(format_probability(1), "1 (0.001%)");
        assert_eq!(format_probability(12_345), "12345 (12.345%)");
        assert_eq!(format_probability(100_000), "100000 (100.000%)");
    }

    #[test]
    fn ethertype_labels() {
        assert_eq!(ethertype_label(0x0800), "0x0800 IPv4");
        assert_eq!(ethertype_label(0x88a8), "0x88a8 802.1ad QinQ");
        assert_eq!(ethertype_label(0x1234), "0x1234");
        assert_eq!(
            ethertype_label(ethertype::LENGTH_8023),
            "<0x0600 802.3 length (LLC)"
        );
    }
}
