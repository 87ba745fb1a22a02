//! ethertap: AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL.

pub mod ctl;
pub mod demo;
pub mod ixdp;
pub mod lab;
pub mod pqueue;
pub mod rpcl;
pub mod tap;
