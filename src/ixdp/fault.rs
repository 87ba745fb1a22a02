//! PLACEHOLDER with the interface of INTERFACES.md section 3; the policy branch replaces it.

use super::policy::FaultConfig;

pub struct FaultRng(u64);

impl FaultRng {
    pub fn new(seed: u64) -> Self {
        FaultRng(seed | 1)
    }
}

#[derive(Default, Debug)]
pub struct FaultDecision {
    pub drop: bool,
    pub flip: bool,
    pub dup: bool,
}

pub fn decide(_cfg: &FaultConfig, _rng: &mut FaultRng) -> FaultDecision {
    FaultDecision::default()
}

pub fn flip_random_bit(_frame: &mut [u8], _rng: &mut FaultRng) {}
