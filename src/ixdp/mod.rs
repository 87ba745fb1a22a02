//! The IXDP engine: interfaces, XDP program, AF_XDP sockets, workers, statistics, faults.
//! How the pieces fit: docs/data-path.md; the words: docs/words-engine.md.

pub mod cbpf;
pub mod chain;
pub mod engine;
pub mod fanout;
pub mod fastpath;
pub mod fault;
pub mod kpath;
pub mod ktap;
pub mod machash;
pub mod netdev;
pub mod pacing;
pub mod policy;
pub mod queue_words;
pub mod report;
pub mod select;
pub mod stats;
pub mod view;
pub mod words;
pub mod worker;
pub mod xdp;
pub mod xsk;

/// A mutex's contents even when a thread panicked while holding it: every value the engine keeps
/// behind a mutex stays consistent between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use engine::{Engine, EngineConfig, StartError, MAX_QUEUES};
pub use pacing::Polling;
pub use view::{
    mode_name, mode_summary, EngineView, Freshness, InterfaceInfo, RingDetails, RingError,
    RingFigures, XdpMode,
};
