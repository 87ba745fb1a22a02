//! ethertap: AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL.

pub mod capture;
pub mod cli;
pub mod coalesce;
pub mod ctl;
pub mod ixdp;
pub mod lab;
pub mod log;
pub mod pqueue;
pub mod rpcl;
pub mod sys;
pub mod wire;

/// `eprintln!` that never panics: a message for a closed or broken stderr (`2>&-`, a reader
/// that went away) is dropped instead of aborting the program that wanted to say it.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}
