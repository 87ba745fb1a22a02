//! Going to the background.
//!
//! The parent does not exit as soon as it has forked: it waits until the background process
//! says it is ready (for ethertap: engine started, preset run, socket listening) or why it
//! failed, so that `ethertap start -d` or `collect -d` reports a wrong interface or a bad
//! output file on the terminal, with the right exit status, instead of in a log nobody reads.

use super::pidfile::{self, PidFile};
use super::server::{Host, Server, ServerConfig};
use crate::ixdp::cli::{engine_vm, run_preset, StartArgs};
use crate::ixdp::engine::Engine;
use crate::ixdp::words::stat_line;
use crate::ixdp::{mode_name, mode_summary, EngineView, XdpMode};
use crate::pqueue::Layout;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub fn detach(log: Option<&Path>) -> Result<Detached, String> {
    let output = match log {
        Some(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        None => OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?,
    };
    let (read_end, write_end) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: no other thread runs yet (documented precondition), so the child may go on
    // running arbitrary code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            wait_for_report(read_end)
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: as above, still single-threaded.
    if let ForkResult::Parent { .. } = unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        // SAFETY: leave without running destructors or flushing stdio buffers twice.
        unsafe { libc::_exit(0) };
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let devnull = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    dup2_stdin(&devnull).map_err(|e| format!("stdin: {e}"))?;
    dup2_stdout(&output).map_err(|e| format!("stdout: {e}"))?;
    dup2_stderr(&output).map_err(|e| format!("stderr: {e}"))?;
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

/// `ethertap start -d`: check what can be checked on the terminal, go to the background,
/// start the engine, run the preset, serve the console socket until stopped.
pub fn start_daemon(args: &StartArgs) -> Result<(), String> {
    let preset = args.preset_file()?;
    let (_, pid_path) = pidfile::target("ethertap")?;
    if let Some(pid) = pidfile::running_pid(&pid_path) {
        return Err(format!(
            "ethertap is already running (PID {pid}); `ethertap stop` first"
        ));
    }
    let socket = super::socket_path();
    if UnixStream::connect(&socket).is_ok() {
        return Err(format!(
            "ethertap is already running ({} answers); `ethertap stop` first",
            socket.display()
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the engine needs root (XDP programs, AF_XDP sockets)".into());
    }
    let log = log_path();
    let mut detached = detach(Some(&log))?;
    match serve(
        args,
        preset.as_deref(),
        &pid_path,
        &socket,
        &log,
        &mut detached,
    ) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("ethertap: {e}");
            detached.failed(&format!("ethertap start: {e}"));
            std::process::exit(1)
        }
    }
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

fn serve(
    args: &StartArgs,
    preset: Option<&Path>,
    pid_path: &Path,
    socket: &Path,
    log: &Path,
    detached: &mut Detached,
) -> Result<(), String> {
    let crashed = pidfile::read_pid(pid_path).ok().flatten();
    let _pid_file = PidFile::create(pid_path, "ethertap")?;
    let config = args.engine_config();
    if let Some(pid) = crashed {
        // The pid file was stale (PidFile::create refuses a live holder): that daemon died
        // without cleaning up, e.g. by kill -9.
        eprintln!("ethertap: taking over from PID {pid}, which ended without a clean shutdown");
        await_released_xdp(&config.interfaces, Duration::from_secs(3));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("installing the signal handler: {e}"))?;
    }
    let layout = config.layout;
    let engine = Engine::start(config)?;
    let mut vm = engine_vm(&engine, &args.queue_name);
    if let Some(p) = preset {
        if let Err(e) = run_preset(&mut vm, p, &mut std::io::stdout()) {
            engine.stop();
            return Err(e);
        }
    }
    let listener = match bind_private(socket) {
        Ok(l) => l,
        Err(e) => {
            engine.stop();
            return Err(format!("console socket {}: {e}", socket.display()));
        }
    };
    let pid = std::process::id();
    let view = engine.view();
    let host = Arc::new(DaemonHost {
        pid,
        started: Instant::now(),
        view: view.clone(),
        queue: args.queue_name.clone(),
        layout,
        stop: stop.clone(),
    });
    let mut server = match Server::start(listener, vm, host, ServerConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            engine.stop();
            let _ = std::fs::remove_file(socket);
            return Err(format!("console server: {e}"));
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
        log.display()
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
fn await_released_xdp(interfaces: &[String], limit: Duration) {
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
