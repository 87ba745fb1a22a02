//! PLACEHOLDER with the interface of INTERFACES.md section 3; the policy branch replaces it.

use crate::tap::MacSet;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub const MAX_IFS: usize = 2;

#[derive(Clone, Copy, Default, Debug)]
pub struct FaultConfig {
    pub enabled: bool,
    pub drop_p: u32,
    pub flip_p: u32,
    pub dup_p: u32,
}

#[derive(Clone, Default, Debug)]
pub struct Policy {
    pub tap_rx: [bool; MAX_IFS],
    pub tap_tx: [bool; MAX_IFS],
    pub tap_hash: MacSet,
    pub drop_hash: MacSet,
    pub fault_hash: MacSet,
    pub fault: [FaultConfig; MAX_IFS],
}

impl Policy {
    pub fn tap_selects(&self, _frame: &[u8]) -> bool {
        true
    }
    pub fn drop_selects(&self, _frame: &[u8]) -> bool {
        false
    }
    pub fn fault_selects(&self, _rx_if: usize, _frame: &[u8]) -> bool {
        false
    }
}

#[derive(Default)]
pub struct PolicyCell(ArcSwap<Policy>);

impl PolicyCell {
    pub fn load(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.0.load()
    }
    pub fn update(&self, f: impl Fn(&mut Policy)) {
        let mut p = (**self.0.load()).clone();
        f(&mut p);
        self.0.store(Arc::new(p));
    }
}
