//! A small in-test engine for the engine words: a real PolicyCell and StatsBoard, a fixed
//! interface list and canned ring details, behind the same `EngineView` the daemon's engine
//! implements. Used by tests/policy_words.rs and by the checked examples of
//! docs/words-engine.md (tests/docs_words.rs).
#![allow(dead_code)]

use ethertap::ixdp::policy::PolicyCell;
use ethertap::ixdp::stats::StatsBoard;
use ethertap::ixdp::words::register_engine_words;
use ethertap::ixdp::xdp::ProgramCounters;
use ethertap::ixdp::{
    EngineView, Freshness, InterfaceInfo, RingDetails, RingError, RingFigures, XdpMode,
};
use ethertap::rpcl::Vm;
use std::sync::Arc;

pub struct TestEngine {
    pub interfaces: Vec<InterfaceInfo>,
    pub policy: PolicyCell,
    pub stats: StatsBoard,
    /// The packet queues `tap.queue.add` and `tap.queue.lanes` created, removed on drop.
    pub created: std::sync::Mutex<Vec<String>>,
}

impl EngineView for TestEngine {
    fn interfaces(&self) -> &[InterfaceInfo] {
        &self.interfaces
    }
    fn policy(&self) -> &PolicyCell {
        &self.policy
    }
    fn stats(&self) -> &StatsBoard {
        &self.stats
    }
    fn open_queue(
        &self,
        name: &str,
        lanes: u32,
    ) -> Result<Arc<ethertap::pqueue::Producer>, ethertap::pqueue::Error> {
        let layout =
            ethertap::ixdp::fanout::lane_layout(ethertap::pqueue::Layout::default(), lanes);
        let producer = ethertap::pqueue::Producer::open(name, layout)?;
        self.created.lock().unwrap().push(name.to_string());
        Ok(Arc::new(producer))
    }
    fn ring_details(&self, ifidx: usize, queue: usize) -> Result<RingDetails, RingError> {
        if ifidx == 1 {
            return Err(RingError::NoQueue { queue: 5, last: 1 });
        }
        let rings = RingFigures {
            fill: 100 + queue as u64,
            rx: 2,
            tx: 3,
            comp: 4,
            free_frames: 5,
            spare_frames: 6,
            rx_dropped: 7,
            rx_invalid_descs: 8,
            tx_invalid_descs: 9,
            rx_ring_full: 10,
            rx_fill_ring_empty_descs: 11,
            tx_ring_empty_descs: 12,
        };
        let program = ProgramCounters {
            seen: 13,
            redirected: 14,
            passed: 15,
            kernel: 16,
            kernel_tapped: 17,
            kernel_tap_full: 18,
        };
        // Queue 0 answers, queue 1 does not.
        let freshness = [Freshness::Fresh, Freshness::NoAnswer][queue.min(1)];
        Ok(RingDetails {
            rings,
            program,
            freshness,
        })
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        let created = self.created.get_mut().unwrap_or_else(|p| p.into_inner());
        for name in created.iter() {
            let _ = std::fs::remove_file(ethertap::pqueue::queue_path(name));
        }
    }
}

/// The interfaces of the policy tests: an ixgbe port and a veth in generic mode.
pub const MIXED: [(&str, &str, bool, XdpMode); 2] = [
    ("enp1s0f0", "ixgbe", true, XdpMode::Drv),
    ("veth-b", "veth", false, XdpMode::Skb),
];

/// The interfaces of the examples in docs/words-engine.md: two ports of one ixgbe card.
pub const DOCS: [(&str, &str, bool, XdpMode); 2] = [
    ("enp1s0f0", "ixgbe", true, XdpMode::Drv),
    ("enp1s0f1", "ixgbe", true, XdpMode::Drv),
];

/// An engine with the first `n_ifs` interfaces of [`MIXED`], `queues` queues each.
pub fn engine(n_ifs: usize, queues: u32) -> Arc<TestEngine> {
    engine_with(&MIXED[..n_ifs], queues)
}

/// An engine with these interfaces (name, driver, zero-copy, attach mode).
pub fn engine_with(names: &[(&str, &str, bool, XdpMode)], queues: u32) -> Arc<TestEngine> {
    let n_ifs = names.len();
    Arc::new(TestEngine {
        interfaces: names
            .iter()
            .enumerate()
            .map(
                |(index, &(name, driver, zerocopy, attached_mode))| InterfaceInfo {
                    index,
                    name: name.to_string(),
                    driver: driver.to_string(),
                    queues,
                    zerocopy,
                    attached_mode,
                },
            )
            .collect(),
        policy: PolicyCell::default(),
        stats: StatsBoard::new(n_ifs, queues as usize),
        created: Default::default(),
    })
}

/// A VM holding every engine word, bound to `e`.
pub fn vm_for(e: &Arc<TestEngine>) -> Vm {
    let mut vm = Vm::new();
    register_engine_words(&mut vm, e.clone());
    vm
}
