//! The control plane: daemonizing, pid files, the unix-socket console server and its client.

pub mod client;
pub mod daemon;
pub mod proto;
pub mod server;

use std::path::PathBuf;

/// Where pid files and sockets live: `/run`, or `$ETHERTAP_RUN_DIR` (tests, unprivileged use).
pub fn run_dir() -> PathBuf {
    std::env::var_os("ETHERTAP_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run"))
}

/// The daemon's console socket.
pub fn socket_path() -> PathBuf {
    run_dir().join("ethertap.sock")
}
