//! PLACEHOLDER with the producer interface of INTERFACES.md section 2; the pqueue branch
//! replaces it.

use crate::rpcl::Vm;

pub const DEFAULT_NAME: &str = "ixdp.pqueue.tap";

#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub slots: u32,
    pub slot_size: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            slots: 4096,
            slot_size: 2048,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Rx,
    Tx,
}

#[derive(Debug)]
pub struct Error(pub String);

pub struct Producer;

impl Producer {
    pub fn open(_name: &str, _layout: Layout) -> Result<Producer, Error> {
        Ok(Producer)
    }
    pub fn push(&self, _frame: &[u8], _ifindex: u8, _dir: Direction, _ts_ns: u64) -> bool {
        false
    }
}

pub fn register_words(_vm: &mut Vm, _name: &str) {}
