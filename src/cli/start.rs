//! `ethertap start`: options, preset, and either the foreground engine (console, clean stop on
//! a signal) or the daemon (detached, pid file, console socket).

use crate::ctl::daemon::{self, DaemonSetup};
use crate::ctl::pidfile::{self, PidFile};
use crate::ctl::server::{ServedVm, Server};
use crate::ixdp::engine::{Engine, EngineConfig};
use crate::ixdp::pacing::{Polling, DEFAULT_MAX_WAIT};
use crate::ixdp::xdp::DEFAULT_KTAP_RING;
use crate::ixdp::XdpMode;
use crate::pqueue::{self, Layout};
use crate::rpcl::{run_console, ConsoleBackend, ConsoleError, Flow, Vm};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The preset run at start when `--preset` does not name another.
pub const DEFAULT_PRESET: &str = "/etc/ethertap.rpcl";

/// `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Native mode where the driver supports it, else generic; generic first on a veth (native
    /// mode only adds a copy there).
    Auto,
    /// Native (driver) mode only.
    Drv,
    /// Generic (skb) mode.
    Skb,
}

impl From<XdpModeArg> for XdpMode {
    fn from(m: XdpModeArg) -> XdpMode {
        match m {
            XdpModeArg::Auto => XdpMode::Auto,
            XdpModeArg::Drv => XdpMode::Drv,
            XdpModeArg::Skb => XdpMode::Skb,
        }
    }
}

/// Options of `ethertap start`.
#[derive(Args, Clone, Debug)]
pub struct StartArgs {
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// Force AF_XDP copy mode even where the driver can do zero-copy.
    #[arg(long)]
    pub copy: bool,
    /// Queues to serve on each interface, one worker thread each (1..8) [default: all the
    /// receive queues the interfaces have].
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,
    /// Spin always instead of sleeping between rounds: the lowest latency, a full core per
    /// worker whatever the traffic (for dedicated cores).
    #[arg(long, conflicts_with = "poll_wait")]
    pub busy_poll: bool,
    /// The longest a worker waits for frames to gather before it handles them, in µs: the
    /// latency the default polling may add to a frame at each pass through the engine, at
    /// rates where waiting saves wake-ups (0: never wait; sleep until the next frame).
    #[arg(long, value_name = "USEC", default_value_t = DEFAULT_MAX_WAIT.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub poll_wait: u64,
    /// In bridge mode, send every frame through the workers, also those nothing in user space
    /// wants (by default the kernel forwards those: docs/kernel-path.md).
    #[arg(long)]
    pub no_kernel_path: bool,
    /// In bridge mode, send tapped frames through the workers (by default the kernel forwards
    /// those too and copies them into a ring for the taps: docs/kernel-path.md, "Tapped
    /// frames").
    #[arg(long)]
    pub no_kernel_tap: bool,
    /// Bytes of the kernel tap's ring per interface (a power of two, at least 4096): how many
    /// tapped frames may wait for the tap there; a frame that finds it full goes through the
    /// workers instead, so none is lost (default 4 MiB, about 47,000 frames of 64 bytes).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_KTAP_RING,
          value_parser = parse_ring_size)]
    pub kernel_tap_ring: u32,
    /// Pin workers to these CPUs, e.g. `1` or `0,2-3` (worker i on the i-th CPU of the list;
    /// the kernel tap's reader on the CPU after the workers' if the list has one, else with
    /// worker 0).
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// Scheduling niceness of the worker threads (-20..19). A negative value keeps a worker on
    /// its CPU against other busy programs, as the kernel's own forwarding is (it runs in
    /// softirq, ahead of every program); without it a worker shares its CPU equally.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: Option<i32>,
    /// Packet queue size in slots.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub slots: u32,
    /// Take the packet queue from another running engine that feeds it (that engine notices
    /// and says so; without this a queue in use is refused).
    #[arg(long)]
    pub take_over: bool,
    /// Packet queue name (a file in /dev/shm).
    #[arg(long, default_value = pqueue::DEFAULT_NAME, value_name = "NAME")]
    pub queue_name: String,
    /// RPCL script to run at start [default: /etc/ethertap.rpcl, skipped if missing].
    #[arg(long, value_name = "FILE", conflicts_with = "no_preset")]
    pub preset: Option<PathBuf>,
    /// Run no preset.
    #[arg(long)]
    pub no_preset: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9101); nothing
    /// listens without it.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// First interface (index 0).
    #[arg(value_name = "IF0")]
    pub if0: String,
    /// Second interface (index 1): bridge mode. Without it: mirror mode.
    #[arg(value_name = "IF1")]
    pub if1: Option<String>,
}

/// Why `ethertap start` did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--preset FILE` names no file.
    #[error("preset {}: no such file", .0.display())]
    NoPreset(PathBuf),
    /// The preset cannot be read (or is too large, or not a regular file).
    #[error("preset: {0}")]
    PresetRead(#[from] super::local::ScriptError),
    /// The preset stopped with an RPCL error.
    #[error(transparent)]
    Preset(#[from] crate::rpcl::RpclError),
    /// A daemon's pid file names a live process.
    #[error("ethertap is already running (PID {0}); `ethertap stop` first")]
    Running(i32),
    /// A daemon answers on the console socket.
    #[error("ethertap is already running ({} answers); `ethertap stop` first", .0.display())]
    Answering(PathBuf),
    /// The engine needs root.
    #[error("the engine needs root (XDP programs, AF_XDP sockets)")]
    NotRoot,
    /// The stop signals cannot be caught.
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The engine refused to start.
    #[error(transparent)]
    Engine(#[from] crate::ixdp::engine::StartError),
    /// The pid file.
    #[error(transparent)]
    PidFile(#[from] pidfile::PidFileError),
    /// Going to the background or serving the console.
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
}

/// A parsed `--cpus` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// A `--cpus` value that is not a CPU list.
#[derive(Debug, thiserror::Error)]
pub enum CpuListError {
    /// One part is neither a number nor a range below 1024.
    #[error("\"{0}\" is not a CPU number or range (e.g. 0,2-3)")]
    BadPart(String),
    /// Nothing was given.
    #[error("empty CPU list")]
    Empty,
}

/// Parses `--cpus`: numbers and ranges, comma separated (`1`, `0,2-3`).
pub fn parse_cpu_list(s: &str) -> Result<CpuList, CpuListError> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let bad = || CpuListError::BadPart(part.to_string());
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if a > b || b >= 1024 {
                return Err(bad());
            }
            cpus.extend(a..=b);
        } else {
            let c: usize = part.parse().map_err(|_| bad())?;
            if c >= 1024 {
                return Err(bad());
            }
            cpus.push(c);
        }
    }
    if cpus.is_empty() {
        return Err(CpuListError::Empty);
    }
    Ok(CpuList(cpus))
}

/// Parses `--kernel-tap-ring`: a power of two of at least 4096 bytes.
fn parse_ring_size(s: &str) -> Result<u32, String> {
    let bytes: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of bytes below 4 GiB"))?;
    if !crate::ixdp::xdp::valid_ring_size(bytes) {
        return Err(format!(
            "{bytes} is not a power of two of at least 4096 (e.g. 4194304 for 4 MiB)"
        ));
    }
    Ok(bytes)
}

impl StartArgs {
    /// The engine configuration these options describe.
    pub fn engine_config(&self) -> EngineConfig {
        let mut interfaces = vec![self.if0.clone()];
        interfaces.extend(self.if1.clone());
        EngineConfig {
            interfaces,
            xdp_mode: self.xdp_mode.into(),
            force_copy: self.copy,
            queues: self.queues,
            polling: if self.busy_poll {
                Polling::Busy
            } else {
                Polling::Proportional {
                    max_wait: Duration::from_micros(self.poll_wait),
                }
            },
            cpus: self.cpus.clone().map(|c| c.0).unwrap_or_default(),
            nice: self.nice,
            queue_name: Some(self.queue_name.clone()),
            layout: Layout {
                slots: self.slots,
                ..Layout::default()
            },
            take_over: self.take_over,
            kernel_path: !self.no_kernel_path,
            kernel_tap: !self.no_kernel_tap,
            kernel_tap_ring: self.kernel_tap_ring,
        }
    }

    /// The preset to run, if any: an explicit one must exist, the default one may be missing.
    pub fn preset_file(&self) -> Result<Option<PathBuf>, StartError> {
        if self.no_preset {
            return Ok(None);
        }
        match &self.preset {
            Some(p) if p.is_file() => Ok(Some(p.clone())),
            Some(p) => Err(StartError::NoPreset(p.clone())),
            None => {
                let p = PathBuf::from(DEFAULT_PRESET);
                Ok(p.is_file().then_some(p))
            }
        }
    }
}

/// Runs a preset file in `vm` (read as every script is, [`super::local::read_script`]); its
/// warnings go to the daemon's log.
pub fn run_preset(
    vm: &mut Vm,
    file: &std::path::Path,
    out: &mut dyn Write,
) -> Result<(), StartError> {
    let name = file.display().to_string();
    let text = super::local::read_script(&name)?;
    let r = vm.run_file(&name, &text, out);
    for w in vm.take_warnings() {
        crate::log::warn(&w.to_string());
    }
    r?;
    crate::log::info(&format!("preset {name} run"));
    Ok(())
}

/// The runtime files of the engine's process: refuses when another engine holds them.
fn check_not_running() -> Result<(PathBuf, PathBuf), StartError> {
    let (_, pid_path) = pidfile::target("ethertap")?;
    if let Some(pid) = pidfile::running_pid(&pid_path) {
        return Err(StartError::Running(pid));
    }
    let socket = crate::ctl::socket_path();
    if UnixStream::connect(&socket).is_ok() {
        return Err(StartError::Answering(socket));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(StartError::NotRoot);
    }
    Ok((pid_path, socket))
}

/// The pid file of this engine; says so when an earlier one died without cleaning up (and
/// waits until the kernel released its XDP programs).
fn claim_pid_file(
    pid_path: &std::path::Path,
    config: &EngineConfig,
) -> Result<PidFile, StartError> {
    let crashed = pidfile::read_pid(pid_path).ok().flatten();
    let pid_file = PidFile::create(pid_path, "ethertap")?;
    if let Some(pid) = crashed {
        // The pid file was stale (PidFile::create refuses a live holder): that engine died
        // without cleaning up, e.g. by kill -9.
        crate::log::warn(&format!(
            "taking over from PID {pid}, which ended without a clean shutdown"
        ));
        daemon::await_released_xdp(&config.interfaces, Duration::from_secs(3));
    }
    Ok(pid_file)
}

/// The engine and its VM with the preset run, for either front end.
fn engine_with_preset(
    args: &StartArgs,
    config: EngineConfig,
    preset: Option<&std::path::Path>,
) -> Result<(Engine, Vm), StartError> {
    let engine = Engine::start(config).map_err(StartError::Engine)?;
    let mut vm = super::engine_vm(&engine, &args.queue_name);
    if let Some(p) = preset {
        if let Err(e) = run_preset(&mut vm, p, &mut std::io::stdout()) {
            engine.stop();
            return Err(e);
        }
    }
    Ok((engine, vm))
}

/// `ethertap start` in the foreground: the engine, the console socket (so that a service
/// manager can run it and `ethertap run` reach it) and, on a terminal, the `ok ` console.
/// Returns when a signal, `ethertap stop` or the end of the console stops it, after the
/// interfaces were restored.
pub fn run_start(args: &StartArgs) -> Result<(), StartError> {
    let preset = args.preset_file()?;
    let (pid_path, socket) = check_not_running()?;
    let stop = Arc::new(AtomicBool::new(false));
    // On a terminal, Ctrl-C belongs to the console (it interrupts the running line, as in
    // every `ok ` console); there `bye`, Ctrl-D or SIGTERM stop the engine.
    let interactive = std::io::stdin().is_terminal();
    let mut stop_signals = vec![signal_hook::consts::SIGTERM];
    if !interactive {
        stop_signals.push(signal_hook::consts::SIGINT);
    }
    for sig in stop_signals {
        signal_hook::flag::register(sig, stop.clone()).map_err(StartError::Signal)?;
    }
    let config = args.engine_config();
    let _pid_file = claim_pid_file(&pid_path, &config)?;
    let layout = config.layout;
    let (engine, vm) = engine_with_preset(args, config, preset.as_deref())?;
    // A stop also interrupts a running line, so a waiting word cannot delay it.
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, vm.interrupt_handle());

    let how = if interactive {
        "bye, Ctrl-D or SIGTERM stops it"
    } else {
        "SIGINT, SIGTERM or `ethertap stop` stops it"
    };
    let setup = DaemonSetup {
        socket: &socket,
        queue: args.queue_name.clone(),
        layout,
        stop: stop.clone(),
        metrics: args.metrics,
    };
    let banner = |engine: &Engine| {
        let view = engine.view();
        let ifs = view.interfaces();
        format!(
            "ethertap {}: {} ({} queue(s), {} {}); {how}",
            env!("CARGO_PKG_VERSION"),
            crate::ixdp::mode_summary(ifs),
            ifs[0].queues,
            if ifs[0].zerocopy { "ZEROCOPY" } else { "COPY" },
            if ifs[0].attached_mode == XdpMode::Skb {
                "SKB"
            } else {
                "DRV"
            },
        )
    };
    daemon::serve(engine, vm, setup, &mut |_| {}, &mut |engine, server| {
        crate::log::info(&banner(engine));
        if interactive {
            console_until_stopped(server, &stop, engine);
        } else {
            engine.run_until(|| stop.load(Ordering::Relaxed));
        }
    })?;
    Ok(())
}

/// The terminal console of a foreground engine, on the VM the console socket serves.
struct ServedBackend {
    vm: ServedVm,
    color: bool,
}

impl ConsoleBackend for ServedBackend {
    fn eval(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, ConsoleError> {
        let width = crate::rpcl::stdout_width();
        let mut warn = std::io::stderr();
        Ok(self
            .vm
            .eval_console(line, self.color, width, out, &mut warn)?)
    }
    fn word_names(&mut self) -> Vec<String> {
        self.vm.word_names()
    }
    fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.vm.interrupt_handle()
    }
}

/// The `ok ` console on the terminal until `bye`, Ctrl-D or a stop. The console runs on its
/// own thread so that a signal stops the engine even while the console waits in line
/// editing (the thread ends with the process); the terminal settings are put back before
/// returning.
fn console_until_stopped(server: &Server, stop: &AtomicBool, engine: &Engine) {
    let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
    let done = Arc::new(AtomicBool::new(false));
    let done_flag = done.clone();
    let mut backend = ServedBackend {
        vm: server.served_vm(),
        color: std::io::stdout().is_terminal(),
    };
    let spawned = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            if let Err(e) = run_console(&mut backend, None) {
                eprintln!("ethertap: console: {e}");
            }
            done_flag.store(true, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        eprintln!("ethertap: cannot start the console ({e}); waiting for a signal");
    }
    engine.run_until(|| stop.load(Ordering::Relaxed) || done.load(Ordering::Relaxed));
    if let Some(t) = saved {
        let _ =
            nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &t);
    }
    if !done.load(Ordering::Relaxed) {
        eprintln!();
    }
}

/// `ethertap start -d`: check what can be checked on the terminal, go to the background,
/// start the engine, run the preset, serve the console socket until stopped.
pub fn start_daemon(args: &StartArgs) -> Result<(), StartError> {
    let preset = args.preset_file()?;
    let (pid_path, socket) = check_not_running()?;
    let log = daemon::log_path();
    let mut detached = daemon::detach(Some(&log))?;
    match start_in_background(
        args,
        preset.as_deref(),
        &pid_path,
        &socket,
        &log,
        &mut detached,
    ) {
        Ok(()) => Ok(()),
        Err(e) => {
            crate::log::error(&format!("ethertap start: {e}"));
            detached.failed(&format!("ethertap start: {e}"));
            std::process::exit(1)
        }
    }
}

/// The background half of `start -d`: pid file, engine, VM and preset, then the console server.
fn start_in_background(
    args: &StartArgs,
    preset: Option<&std::path::Path>,
    pid_path: &std::path::Path,
    socket: &std::path::Path,
    log: &std::path::Path,
    detached: &mut daemon::Detached,
) -> Result<(), StartError> {
    let config = args.engine_config();
    let _pid_file = claim_pid_file(pid_path, &config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(StartError::Signal)?;
    }
    let layout = config.layout;
    let (engine, vm) = engine_with_preset(args, config, preset)?;
    let setup = DaemonSetup {
        socket,
        queue: args.queue_name.clone(),
        layout,
        stop: stop.clone(),
        metrics: args.metrics,
    };
    let pid = std::process::id();
    daemon::serve(
        engine,
        vm,
        setup,
        &mut |summary| {
            detached.started(&format!(
                "ethertap started in the background (PID {pid}): {summary}; log {}",
                log.display()
            ))
        },
        &mut |engine, _| engine.run_until(|| stop.load(Ordering::Relaxed)),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_bad_ones_name_the_part() {
        assert_eq!(parse_cpu_list("1").unwrap().0, vec![1]);
        assert_eq!(parse_cpu_list("0,2-3").unwrap().0, vec![0, 2, 3]);
        let e = parse_cpu_list("0,x").unwrap_err();
        assert!(e.to_string().contains("\"x\""), "{e}");
        assert!(parse_cpu_list("3-1").is_err());
    }

    #[derive(clap::Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        start: StartArgs,
    }

    #[test]
    fn the_kernel_tap_ring_is_a_power_of_two_of_at_least_a_page() {
        use clap::Parser;
        let ring = |v: &str| {
            Cmd::try_parse_from(["start", "--kernel-tap-ring", v, "a", "b"])
                .map(|c| c.start.engine_config().kernel_tap_ring)
        };
        assert_eq!(ring("65536").unwrap(), 65536);
        for bad in ["5000", "2048", "0", "4MiB", "8589934592"] {
            let e = ring(bad).unwrap_err().to_string();
            assert!(e.contains("--kernel-tap-ring"), "{bad}: {e}");
        }
        let e = ring("5000").unwrap_err().to_string();
        assert!(e.contains("5000 is not a power of two"), "{e}");
        let c = Cmd::try_parse_from(["start", "a", "b"]).unwrap();
        let config = c.start.engine_config();
        assert_eq!(config.kernel_tap_ring, DEFAULT_KTAP_RING);
        assert!(config.kernel_tap && config.kernel_path);
        let c = Cmd::try_parse_from(["start", "--no-kernel-tap", "a", "b"]).unwrap();
        assert!(!c.start.engine_config().kernel_tap);
    }

    #[test]
    fn nice_takes_negative_values_and_rejects_out_of_range_ones() {
        use clap::Parser;
        let c = Cmd::try_parse_from(["start", "--nice", "-10", "a", "b"]).unwrap();
        assert_eq!(c.start.nice, Some(-10));
        assert_eq!(c.start.engine_config().nice, Some(-10));
        let c = Cmd::try_parse_from(["start", "a"]).unwrap();
        assert_eq!(c.start.engine_config().nice, None);
        let e = Cmd::try_parse_from(["start", "--nice", "-21", "a"]).unwrap_err();
        assert!(e.to_string().contains("-21"), "{e}");
    }
}
