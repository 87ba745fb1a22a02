//! The daemon's machine-readable reports: `ethertap stats --json`, `ethertap status --json`
//! and what the Prometheus endpoint serves (field names: docs/operations.md; they are a
//! contract). Everything is read through atomics (the engine's counters, the queue header):
//! building a report never waits for the VM or a worker.

use crate::ixdp::report::{InterfaceId, InterfaceReport};
use crate::ixdp::{mode_name, EngineView};
use crate::pqueue::{Layout, Queue, Status};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// One packet queue, as `tap.queue.status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    /// The queue's name.
    pub name: String,
    /// `head`: the slot a producer writes next.
    pub head: u64,
    /// `tail`: the slot a consumer reads next.
    pub tail: u64,
    /// `inserted`: packets put in since the last reset.
    pub inserted: u64,
    /// `full`: packets refused because the queue was full.
    pub full: u64,
    /// `retrieved`: packets taken out by any consumer.
    pub retrieved: u64,
    /// Packets waiting now.
    pub depth: u64,
    /// Slots per lane.
    pub slots: u32,
    /// Bytes of frame data a slot holds.
    pub slot_size: u32,
    /// Generation of the segment (1 when created, +1 per re-initialisation).
    pub generation: u64,
}

impl From<&Status> for QueueReport {
    fn from(s: &Status) -> QueueReport {
        let slots = u64::from(s.layout.slots.max(1));
        QueueReport {
            name: s.name.clone(),
            head: s.head % slots,
            tail: s.tail % slots,
            inserted: s.inserted,
            full: s.full,
            retrieved: s.retrieved,
            depth: s.waiting(),
            slots: s.layout.slots,
            slot_size: s.layout.slot_size,
            generation: s.generation,
        }
    }
}

/// `ethertap stats --json`: `if.stats.json`'s interfaces and the packet queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Every interface, in index order.
    pub interfaces: Vec<InterfaceReport>,
    /// The packet queues the engine feeds (a queue that cannot be read is left out).
    pub queues: Vec<QueueReport>,
}

/// The packet queue in `ethertap status --json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQueue {
    /// Its name.
    pub name: String,
    /// Slots.
    pub slots: u32,
    /// Bytes per slot.
    pub slot_size: u32,
}

/// `ethertap status --json`: what `ethertap status` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's pid.
    pub pid: u32,
    /// ethertap's version.
    pub version: String,
    /// Seconds since the engine started.
    pub uptime_seconds: u64,
    /// `bridge` or `mirror`.
    pub mode: String,
    /// The interfaces.
    pub interfaces: Vec<InterfaceId>,
    /// The packet queue.
    pub queue: StatusQueue,
    /// Where the Prometheus metrics are served (`ADDR:PORT`), if anywhere.
    pub metrics: Option<String>,
}

/// The mode and the interfaces of `ethertap status --json`, from the engine's view.
pub fn status_interfaces(view: &dyn EngineView) -> (String, Vec<InterfaceId>) {
    let ifs = view.interfaces();
    let list = ifs.iter().map(InterfaceId::from).collect();
    (mode_name(ifs).to_string(), list)
}

/// A packet queue the daemon watches by name: attached on first use (never created), status
/// read from its header, re-initialisations noticed.
pub struct QueueWatch {
    name: String,
    layout: Layout,
    queue: Mutex<Option<Queue>>,
    /// (generation, inserted base) when last looked at, and the changes seen so far.
    seen: Mutex<(Option<(u64, u64)>, u64)>,
}

impl QueueWatch {
    /// Watches queue `name` (of `layout`, for `status`).
    pub fn new(name: &str, layout: Layout) -> QueueWatch {
        QueueWatch {
            name: name.to_string(),
            layout,
            queue: Mutex::new(None),
            seen: Mutex::new((None, 0)),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its layout as configured.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The queue's counters now, `None` when it cannot be read (removed, not a queue).
    pub fn status(&self) -> Option<Status> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_none() {
            *q = Queue::open_existing(&self.name).ok();
        }
        match q.as_mut()?.status() {
            Ok(s) => Some(s),
            Err(_) => {
                *q = None;
                None
            }
        }
    }

    /// How many resets and re-initialisations of the queue were seen so far: a reset moves
    /// the base its `inserted` counts from (lane 0), a re-initialisation its generation.
    /// Logs a re-initialisation.
    pub fn changes(&self) -> u64 {
        let Some(s) = self.status() else {
            return self.seen.lock().unwrap_or_else(|p| p.into_inner()).1;
        };
        // Lanes other than 0 insert behind lane 0's head: there only the generation tells.
        let base = if s.layout.lanes <= 1 {
            s.head.wrapping_sub(s.inserted)
        } else {
            0
        };
        let now = (s.generation, base);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = seen.0 {
            if before != now {
                seen.1 += 1;
                if before.0 != now.0 {
                    crate::log::warn(&format!(
                        "packet queue {} was re-initialised (generation {})",
                        self.name, now.0
                    ));
                }
            }
        }
        seen.0 = Some(now);
        seen.1
    }
}

/// The whole `ethertap stats --json` report.
pub fn stats_report(view: &dyn EngineView, queues: &[&QueueWatch]) -> StatsReport {
    StatsReport {
        interfaces: crate::ixdp::report::interface_reports(view),
        queues: queues
            .iter()
            .filter_map(|q| q.status())
            .map(|s| QueueReport::from(&s))
            .collect(),
    }
}
