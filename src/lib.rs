//! ethertap: AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL.

pub mod capture;
pub mod cli;
pub mod ctl;
pub mod ixdp;
pub mod lab;
pub mod log;
pub mod pqueue;
pub mod rpcl;
pub mod sys;
pub mod wire;
