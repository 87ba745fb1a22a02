//! The control plane: daemonizing, pid files, the unix-socket console server and its client.

pub mod client;
pub mod daemon;
pub mod metrics;
pub mod notify;
pub mod pidfile;
pub mod proto;
pub mod report;
pub mod server;

pub use pidfile::run_dir;

/// The daemon's console socket.
pub fn socket_path() -> std::path::PathBuf {
    run_dir().join("ethertap.sock")
}
