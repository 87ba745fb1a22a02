//! Going to the background.
//!
//! The parent does not exit as soon as it has forked: it waits until the background process
//! says it is ready (for ethertap: engine started, preset run, socket listening) or why it
//! failed, so that `ethertap start -d` or `collect -d` reports a wrong interface or a bad
//! output file on the terminal, with the right exit status, instead of in a log nobody reads.

use super::server::{Host, Server, ServerConfig};
use crate::ixdp::engine::Engine;
use crate::ixdp::words::stat_line;
use crate::ixdp::{mode_name, mode_summary, EngineView, XdpMode};
use crate::pqueue::Layout;
use crate::rpcl::Vm;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why going to the background or serving the console failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The log file cannot be opened for appending.
    #[error("cannot open log file {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A system call of the detach sequence failed.
    #[error("{what}: {source}")]
    Sys {
        /// The step (`fork`, `setsid`, …).
        what: &'static str,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The console socket cannot be bound.
    #[error("console socket {}: {source}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The console server's threads cannot start.
    #[error("console server: {0}")]
    Server(#[source] std::io::Error),
}

fn sys(what: &'static str, e: nix::Error) -> DaemonError {
    sys_io(what, e.into())
}

fn sys_io(what: &'static str, source: std::io::Error) -> DaemonError {
    DaemonError::Sys { what, source }
}

/// The background process's end of the start-up report; reports once.
pub struct Detached {
    ready: Option<File>,
}

impl Detached {
    /// Start-up succeeded; the waiting parent prints `msg` (if not empty) and exits 0.
    pub fn started(&mut self, msg: &str) {
        self.report(&format!("ok {msg}"));
    }

    /// Start-up failed; the waiting parent prints `msg` and exits 1.
    pub fn failed(&mut self, msg: &str) {
        self.report(&format!("error {msg}"));
    }

    fn report(&mut self, line: &str) {
        if let Some(mut p) = self.ready.take() {
            let _ = p.write_all(line.as_bytes());
        }
    }
}

/// Fork twice, start a new session, change to `/`, stdin from /dev/null and stdout/stderr to
/// `log` (or /dev/null). Returns in the background process only; the original process waits
/// for the [`Detached`] report and exits with it. Must be called before any thread starts.
pub fn detach(log: Option<&Path>) -> Result<Detached, DaemonError> {
    let output = match log {
        Some(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| DaemonError::Log {
                path: path.to_path_buf(),
                source,
            })?,
        None => OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| sys_io("/dev/null", e))?,
    };
    let (read_end, write_end) = pipe().map_err(|e| sys("pipe", e))?;
    // SAFETY: no other thread runs yet (documented precondition), so the child may go on
    // running arbitrary code.
    match unsafe { fork() }.map_err(|e| sys("fork", e))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            wait_for_report(read_end)
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(|e| sys("setsid", e))?;
    // SAFETY: as above, still single-threaded.
    if let ForkResult::Parent { .. } = unsafe { fork() }.map_err(|e| sys("fork", e))? {
        // SAFETY: leave without running destructors or flushing stdio buffers twice.
        unsafe { libc::_exit(0) };
    }
    std::env::set_current_dir("/").map_err(|e| sys_io("chdir /", e))?;
    let devnull = File::open("/dev/null").map_err(|e| sys_io("/dev/null", e))?;
    dup2_stdin(&devnull).map_err(|e| sys("stdin", e))?;
    dup2_stdout(&output).map_err(|e| sys("stdout", e))?;
    dup2_stderr(&output).map_err(|e| sys("stderr", e))?;
    Ok(Detached {
        ready: Some(File::from(write_end)),
    })
}

fn wait_for_report(read_end: OwnedFd) -> ! {
    let mut report = String::new();
    let _ = File::from(read_end).read_to_string(&mut report);
    let (status, msg) = report.split_once(' ').unwrap_or((report.as_str(), ""));
    match status {
        "ok" => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            std::process::exit(0)
        }
        "error" => {
            eprintln!("{msg}");
            std::process::exit(1)
        }
        _ => {
            eprintln!("the background process exited during start-up without a report");
            std::process::exit(1)
        }
    }
}

/// Where the ethertap daemon's output goes: `$ETHERTAP_LOG`, else `/var/log/ethertap.log`.
pub fn log_path() -> PathBuf {
    std::env::var_os("ETHERTAP_LOG")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| "/var/log/ethertap.log".into())
}

/// The status the daemon reports to `ethertap status` / `control ethertap status`.
struct DaemonHost {
    pid: u32,
    started: Instant,
    view: Arc<dyn EngineView>,
    queue: String,
    layout: Layout,
    stop: Arc<AtomicBool>,
}

impl Host for DaemonHost {
    fn status(&self) -> String {
        let up = self.started.elapsed().as_secs();
        let ifs = self.view.interfaces();
        let mut s = format!("ethertap PID {} running\n", self.pid);
        s += &stat_line(
            2,
            "uptime",
            format!("{}h {:02}m {:02}s", up / 3600, up / 60 % 60, up % 60),
        );
        s += &stat_line(2, "mode", mode_name(ifs));
        for i in ifs {
            s += &stat_line(
                2,
                &format!("interface {}", i.index),
                format!(
                    "{} {} queues:{} {} {}",
                    i.name,
                    i.driver,
                    i.queues,
                    if i.zerocopy { "ZEROCOPY" } else { "COPY" },
                    if i.attached_mode == XdpMode::Skb {
                        "SKB"
                    } else {
                        "DRV"
                    }
                ),
            );
        }
        s += &stat_line(
            2,
            "packet queue",
            format!(
                "{} ({} slots of {} bytes)",
                self.queue, self.layout.slots, self.layout.slot_size
            ),
        );
        s
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What the daemon serves besides the engine: its console socket and packet queue.
pub struct DaemonSetup<'a> {
    /// The console socket to listen on (replaced if stale).
    pub socket: &'a Path,
    /// Where the daemon's output goes, named in the start-up report.
    pub log: &'a Path,
    /// The packet queue the engine feeds.
    pub queue: String,
    /// Its layout, for `status`.
    pub layout: Layout,
    /// Set by SIGTERM/SIGINT (registered by the caller before the engine started) or `stop`.
    pub stop: Arc<AtomicBool>,
}

/// Serves the console socket for a started engine and its VM until SIGTERM/SIGINT or `stop`,
/// then stops the engine. Reports readiness through `detached` once the socket listens.
pub fn serve(
    engine: Engine,
    vm: Vm,
    setup: DaemonSetup<'_>,
    detached: &mut Detached,
) -> Result<(), DaemonError> {
    let stop = setup.stop;
    let socket = setup.socket;
    let listener = match bind_private(socket) {
        Ok(l) => l,
        Err(source) => {
            engine.stop();
            return Err(DaemonError::Socket {
                path: socket.to_path_buf(),
                source,
            });
        }
    };
    let pid = std::process::id();
    let view = engine.view();
    let host = Arc::new(DaemonHost {
        pid,
        started: Instant::now(),
        view: view.clone(),
        queue: setup.queue,
        layout: setup.layout,
        stop: stop.clone(),
    });
    let mut server = match Server::start(listener, vm, host, ServerConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            engine.stop();
            let _ = std::fs::remove_file(socket);
            return Err(DaemonError::Server(e));
        }
    };
    let summary = mode_summary(view.interfaces());
    for w in engine.warnings() {
        eprintln!("ethertap: warning: {w}");
    }
    eprintln!(
        "ethertap {} PID {pid}: {summary}",
        env!("CARGO_PKG_VERSION")
    );
    detached.started(&format!(
        "ethertap started in the background (PID {pid}): {summary}; log {}",
        setup.log.display()
    ));
    engine.run_until(|| stop.load(Ordering::SeqCst));
    server.shutdown();
    engine.stop();
    let _ = std::fs::remove_file(socket);
    eprintln!("ethertap PID {pid}: stopped, interfaces restored");
    Ok(())
}

/// The kernel releases a killed process's XDP links a moment after the process is gone;
/// until then its program cannot be detached. Wait (up to `limit`) until the stale programs
/// could be removed; if they cannot, the engine's start reports why.
pub fn await_released_xdp(interfaces: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let released = interfaces.iter().all(|name| {
            nix::net::if_::if_nametoindex(name.as_str()).map_or(true, |idx| {
                crate::ixdp::xdp::remove_stale(name, idx).is_ok()
            })
        });
        if released || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bind the console socket so that it is never reachable by others, not even for an instant:
/// created under a restrictive umask, then set to 0600 explicitly. A stale socket file (no
/// daemon answers it; checked before) is replaced.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
