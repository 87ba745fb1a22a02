//! What can go wrong while building a lab, entering it or sending frames through it.

use nix::errno::Errno;

/// A lab failure, naming the command, namespace or interface involved.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces, veth pairs and packet sockets need root.
    #[error("network labs need root (namespaces and veth pairs)")]
    NotRoot,
    /// A tool the lab drives is not installed.
    #[error("`{tool}` is required (apt-get install {package})")]
    MissingTool {
        /// The program that was not found.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A command could not be started at all.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program, as given to [`std::process::Command`].
        program: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The whole command line, as `Debug` prints a [`std::process::Command`].
        command: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A namespace could not be entered.
    #[error("namespace {ns}: {source}")]
    Namespace {
        /// The namespace's name.
        ns: String,
        /// Opening its file or `setns(2)` failed with this.
        source: std::io::Error,
    },
    /// A thread running inside a namespace panicked.
    #[error("the thread in namespace {ns} failed: {msg}")]
    Thread {
        /// The namespace the thread had entered.
        ns: String,
        /// The panic message, when it was text.
        msg: String,
    },
    /// No interface of that name where the packet socket was opened.
    #[error("no interface {ifname:?}: {source}")]
    NoInterface {
        /// The interface name looked up.
        ifname: String,
        /// What `if_nametoindex(3)` said.
        source: Errno,
    },
    /// A packet-socket call failed.
    #[error("{call} on {ifname}: {source}")]
    Socket {
        /// The call or socket option, e.g. `sendmmsg`.
        call: &'static str,
        /// The interface the socket is bound to.
        ifname: String,
        /// The error the kernel returned.
        source: Errno,
    },
    /// etherparse could not write a frame (a payload too long for its length fields).
    #[error("cannot build the frame: {0}")]
    Frame(#[from] etherparse::err::packet::BuildWriteError),
}
