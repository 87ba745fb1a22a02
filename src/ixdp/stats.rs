//! PLACEHOLDER with the interface of INTERFACES.md section 3; the policy branch replaces it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[repr(align(64))]
#[derive(Default)]
pub struct QueueStats {
    rx: AtomicU64,
}

impl QueueStats {
    pub fn on_rx(&self, _frame: &[u8]) {
        self.rx.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_tx(&self, _n: u64) {}
    pub fn add_drop(&self, _n: u64) {}
    pub fn add_noif(&self, _n: u64) {}
    pub fn add_err(&self, _n: u64) {}
    pub fn add_fi_dropped(&self, _n: u64) {}
    pub fn add_fi_flipped(&self, _n: u64) {}
    pub fn add_fi_duplicated(&self, _n: u64) {}
}

pub struct StatsBoard {
    queues: Vec<Vec<Arc<QueueStats>>>,
}

impl StatsBoard {
    pub fn new(ifaces: usize, queues: usize) -> StatsBoard {
        StatsBoard {
            queues: (0..ifaces)
                .map(|_| (0..queues).map(|_| Arc::default()).collect())
                .collect(),
        }
    }
    pub fn queue(&self, ifidx: usize, q: usize) -> Arc<QueueStats> {
        self.queues[ifidx][q].clone()
    }
}
