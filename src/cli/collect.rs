//! `collect`: record packets from the packet queue to capture files. The binary only parses the arguments.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::capture::collect::{self, CollectOptions, DEFAULT_SNAPLEN};
use crate::ctl::pidfile;
use crate::pqueue::DEFAULT_NAME;
use clap::{CommandFactory, Parser};

#[derive(Parser, Debug)]
#[command(
    name = "collect",
    version,
    disable_version_flag = true,
    about = "Record packets from the ethertap packet queue to a pcap or pcapng file",
    long_about = None,
    after_help = "Rotated files are named as by tcpdump: OUTPUT, OUTPUT1, OUTPUT2 ... with -C/-G; \
OUTPUT0 ... OUTPUT(N-1), reused in a ring, with -W N.\n\
Stop a background collect with `control collect stop` (or `control ID stop` with --id ID).\n\
Exit status: 0 success (a limit reached, or stopped by SIGINT/SIGTERM with the file complete); \
1 error (no queue, cannot write OUTPUT, already running in the background); 2 usage error."
)]
/// The arguments of `collect`.
pub struct Args {
    /// Output file, or - for stdout
    #[arg(required_unless_present_any = ["copyright", "completions"])]
    output: Option<String>,
    /// Stop after N bytes of packet data
    #[arg(short = 'b', long = "blimit", value_name = "N")]
    blimit: Option<u64>,
    /// Stop after N packets (exactly N in the file)
    #[arg(short = 'p', long = "plimit", value_name = "N")]
    plimit: Option<u64>,
    /// Queue name (a file in /dev/shm)
    #[arg(short = 'q', long = "queue", value_name = "Q", default_value = DEFAULT_NAME)]
    queue: String,
    /// On a queue split into lanes, consume lane K (default: a free lane, which collect names)
    #[arg(long = "lane", value_name = "K", value_parser = clap::value_parser!(u32).range(0..64))]
    lane: Option<u32>,
    /// Keep the packets already waiting in the queue (default: empty it at start)
    #[arg(short = 'n', long = "noreset")]
    noreset: bool,
    /// No progress display
    #[arg(short = 's', long = "silent")]
    silent: bool,
    /// Detach into the background (absolute OUTPUT required; implies --silent)
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Name of this background collector: pid file /run/collect.ID.pid, `control ID stop`
    #[arg(long = "id", value_name = "NAME")]
    id: Option<String>,
    /// Timestamp packets with the time they were tapped instead of the time they are written
    #[arg(long = "capture-time")]
    capture_time: bool,
    /// Write pcapng: one interface per engine port, direction, capture time, fault marks and
    /// statistics (also chosen by an OUTPUT ending in .pcapng)
    #[arg(long = "pcapng")]
    pcapng: bool,
    /// Write nanosecond-resolution pcap
    #[arg(long = "nano")]
    nano: bool,
    /// Keep at most N bytes of each packet (1..262144)
    #[arg(long = "snaplen", value_name = "N", default_value_t = DEFAULT_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(DEFAULT_SNAPLEN)))]
    snaplen: u32,
    /// Start a new file when the current one would exceed MB million bytes (1..1000000)
    #[arg(short = 'C', value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rotate_mb: Option<u64>,
    /// Keep at most FILES files, overwriting the oldest (with -C or -G; 1..100000)
    #[arg(short = 'W', value_name = "FILES",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ring_files: Option<u32>,
    /// Start a new file every SECONDS seconds (1..31536000, a year)
    #[arg(short = 'G', value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    rotate_secs: Option<u64>,
    /// Give up (exit 1) when no engine has fed the queue for SECONDS seconds (1..31536000);
    /// without it collect waits for an engine as long as it takes
    #[arg(long = "wait", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    wait: Option<u64>,
    #[command(flatten)]
    flags: crate::cli::ProductFlags,
}

/// Runs the command the parsed arguments describe.
pub fn run(args: Args) -> ExitCode {
    if let Some(code) = args.flags.handle(Args::command()) {
        return code;
    }
    let output = args.output.clone().unwrap_or_default();
    let opts = CollectOptions {
        output: output.clone(),
        queue: args.queue.clone(),
        lane: args.lane,
        byte_limit: args.blimit,
        packet_limit: args.plimit,
        keep_waiting: args.noreset,
        silent: args.silent || args.daemon,
        capture_time: args.capture_time,
        pcapng: args.pcapng,
        nano: args.nano,
        snaplen: args.snaplen,
        rotate_mb: args.rotate_mb,
        rotate_secs: args.rotate_secs,
        ring_files: args.ring_files,
        wait: args.wait,
    };
    if let Err(e) = opts.check() {
        crate::note!("collect: {e}");
        return ExitCode::from(2);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            crate::note!("collect: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.daemon {
        return run_in_background(&args, &opts, &stop);
    }
    match collect::run(&opts, &stop, &mut || {}) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            crate::note!("collect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_in_background(args: &Args, opts: &CollectOptions, stop: &AtomicBool) -> ExitCode {
    if opts.output == "-" || !Path::new(&opts.output).is_absolute() {
        crate::note!("collect: --daemon needs an absolute OUTPUT file name (the background process runs in /)");
        return ExitCode::from(2);
    }
    let id = args.id.as_deref().unwrap_or("collect");
    let (program, pid_path) = match pidfile::target(id) {
        Ok(t) => t,
        Err(e) => {
            crate::note!("collect: --id: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(pid) = pidfile::running_pid(&pid_path) {
        crate::note!(
            "collect: {program} is already running as PID {pid} (pid file {})",
            pid_path.display()
        );
        return ExitCode::FAILURE;
    }
    println!("collect going to background ...");
    let mut detached = match crate::ctl::daemon::detach(None) {
        Ok(d) => d,
        Err(e) => {
            crate::note!("collect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _pid_file = match pidfile::PidFile::create(&pid_path, program) {
        Ok(p) => p,
        Err(e) => {
            detached.failed(&format!("collect: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = collect::run(opts, stop, &mut || detached.started(""));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("collect: {e}");
            // Before start-up completed the waiting parent prints it; after, stderr is
            // /dev/null and only the system log can tell.
            detached.failed(&msg);
            log_error(&msg);
            ExitCode::FAILURE
        }
    }
}

fn log_error(msg: &str) {
    let Ok(text) = std::ffi::CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: constant format string with one C string argument.
    unsafe {
        libc::openlog(c"collect".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
        libc::syslog(libc::LOG_ERR, c"%s".as_ptr(), text.as_ptr());
    }
}
