//! Going to the background.
//!
//! The parent does not exit as soon as it has forked: it waits until the background process
//! says it is ready (for ethertap: engine started, preset run, socket listening) or why it
//! failed, so that `ethertap start -d` or `collect -d` reports a wrong interface or a bad
//! output file on the terminal, with the right exit status, instead of in a log nobody reads.

use super::metrics::{MetricsError, MetricsServer, MetricsSource};
use super::proto::JsonReport;
use super::report::{self, QueueWatch, StatsReport, StatusQueue, StatusReport};
use super::server::{Host, Server, ServerConfig};
use crate::ixdp::engine::Engine;
use crate::ixdp::words::stat_line;
use crate::ixdp::{mode_name, mode_summary, EngineView, XdpMode};
use crate::pqueue::Layout;
use crate::rpcl::Vm;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
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
    /// The metrics endpoint cannot start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
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

/// What the engine's process serves besides the engine: status and reports for the console
/// server, metrics for the Prometheus endpoint.
struct DaemonHost {
    pid: u32,
    started: Instant,
    view: Arc<dyn EngineView>,
    queue: QueueWatch,
    stop: Arc<AtomicBool>,
    metrics: OnceLock<SocketAddr>,
}

impl DaemonHost {
    /// The default queue and every other queue the taps feed (fan-out).
    fn stats_report(&self) -> StatsReport {
        let others: Vec<QueueWatch> = self
            .view
            .added_queues()
            .iter()
            .map(|q| QueueWatch::new(q.name(), q.producer.layout()))
            .collect();
        let mut watched = vec![&self.queue];
        watched.extend(&others);
        report::stats_report(&*self.view, &watched)
    }

    fn status_report(&self) -> StatusReport {
        let (mode, interfaces) = report::status_interfaces(&*self.view);
        let layout = self.queue.layout();
        StatusReport {
            pid: self.pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            mode,
            interfaces,
            queue: StatusQueue {
                name: self.queue.name().to_string(),
                slots: layout.slots,
                slot_size: layout.slot_size,
            },
            metrics: self.metrics.get().map(|a| a.to_string()),
        }
    }
}

impl MetricsSource for DaemonHost {
    fn stats(&self) -> StatsReport {
        self.stats_report()
    }
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
                    "{} {} queues:{} {} {}{}",
                    i.name,
                    i.driver,
                    i.queues,
                    if i.zerocopy { "ZEROCOPY" } else { "COPY" },
                    if i.attached_mode == XdpMode::Skb {
                        "SKB"
                    } else {
                        "DRV"
                    },
                    // An interface that went away or down says so (the log has when).
                    self.view
                        .link_state(i.index)
                        .token()
                        .map(|t| format!(" {t}"))
                        .unwrap_or_default()
                ),
            );
        }
        let layout = self.queue.layout();
        s += &stat_line(
            2,
            "packet queue",
            format!(
                "{} ({} slots of {} bytes)",
                self.queue.name(),
                layout.slots,
                layout.slot_size
            ),
        );
        if let Some(addr) = self.metrics.get() {
            s += &stat_line(2, "metrics", format!("http://{addr}/metrics"));
        }
        s
    }

    fn json(&self, which: JsonReport) -> String {
        let text = match which {
            JsonReport::Stats => serde_json::to_string(&self.stats_report()),
            JsonReport::Status => serde_json::to_string(&self.status_report()),
        };
        // Plain data of strings and numbers: serialising cannot fail.
        text.unwrap_or_default()
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn state_mark(&self) -> u64 {
        self.view.changes() + self.queue.changes()
    }
}

/// What the engine's process serves besides the engine: its console socket, the packet
/// queue and, if asked, the metrics endpoint.
pub struct DaemonSetup<'a> {
    /// The console socket to listen on (replaced if stale).
    pub socket: &'a Path,
    /// The packet queue the engine feeds.
    pub queue: String,
    /// Its layout, for `status`.
    pub layout: Layout,
    /// Set by SIGTERM/SIGINT (registered by the caller before the engine started) or `stop`.
    pub stop: Arc<AtomicBool>,
    /// Where to serve Prometheus metrics (`--metrics`).
    pub metrics: Option<SocketAddr>,
}

/// Serves the console socket (and the metrics) for a started engine and its VM. Once the
/// socket listens and the ports are bridged it tells `ready` (with a summary) and the service
/// manager (`NOTIFY_SOCKET`), then `run` waits (it returns when the engine should stop); then
/// everything is stopped and the interfaces restored.
pub fn serve(
    engine: Engine,
    vm: Vm,
    setup: DaemonSetup<'_>,
    ready: &mut dyn FnMut(&str),
    run: &mut dyn FnMut(&Engine, &Server),
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
        queue: QueueWatch::new(&setup.queue, setup.layout),
        stop: stop.clone(),
        metrics: OnceLock::new(),
    });
    // Seen once now, so that the first command's check has a baseline.
    host.state_mark();
    let cleanup = |engine: Engine| {
        engine.stop();
        let _ = std::fs::remove_file(socket);
    };
    let metrics = match setup.metrics {
        Some(addr) => match MetricsServer::start(addr, host.clone()) {
            Ok(m) => {
                let _ = host.metrics.set(m.addr());
                Some(m)
            }
            Err(e) => {
                cleanup(engine);
                return Err(e.into());
            }
        },
        None => None,
    };
    let mut server = match Server::start(listener, vm, host.clone(), ServerConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            cleanup(engine);
            return Err(DaemonError::Server(e));
        }
    };
    let summary = mode_summary(view.interfaces());
    for w in engine.warnings() {
        crate::log::warn(w);
    }
    let mut started = format!(
        "ethertap {} started: {summary}; console {}",
        env!("CARGO_PKG_VERSION"),
        socket.display()
    );
    if let Some(m) = &metrics {
        started += &format!("; metrics http://{}/metrics", m.addr());
    }
    crate::log::info(&started);
    ready(&summary);
    super::notify::ready(&summary);
    run(&engine, &server);
    super::notify::stopping();
    server.shutdown();
    drop(metrics);
    cleanup(engine);
    crate::log::info("ethertap stopped, interfaces restored");
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
