//! `control`: interactive session, status and stop of background processes. The binary only parses the arguments.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::front;
use crate::ctl::pidfile;
use clap::{CommandFactory, Parser, ValueEnum};

/// What `control ID ACTION` does.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Action {
    /// Show whether the process runs, e.g. "collect PID 22880 running" (exit 0; 3 if not running)
    Status,
    /// Terminate it and wait for it to exit (exit 0; 3 if not running)
    Stop,
}

#[derive(Parser, Debug)]
#[command(
    name = "control",
    version,
    disable_version_flag = true,
    about = "Control background ethertap processes",
    long_about = None,
    after_help = "IDs: ethertap, collect, or the --id given to a background collect.\n\
`control ethertap` opens the interactive `ok ` console in the daemon (one session at a time; \
Ctrl-D leaves it, the daemon keeps running).\n\
Exit status: 0 success, 1 error, 2 usage error, 3 not running.\n\
Runtime files live in /run (ETHERTAP_RUN_DIR overrides it)."
)]
/// The arguments of `control`.
pub struct Args {
    /// Background process: ethertap, collect, or a collect --id
    #[arg(required_unless_present_any = ["copyright", "completions"])]
    id: Option<String>,
    /// What to do; without it, attach an interactive session (ethertap only)
    action: Option<Action>,
    /// Seconds `stop` waits for the process to exit
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    flags: crate::cli::ProductFlags,
}

/// A running collect's status, with the lanes it consumes (`lane 2 of 4 of packet queue Q`).
fn with_lanes(
    mut reply: pidfile::ControlReply,
    pid_file: &std::path::Path,
) -> pidfile::ControlReply {
    if reply.code != 0 {
        return reply;
    }
    if let Some(pid) = pidfile::running_pid(pid_file) {
        for (queue, lane, lanes) in crate::pqueue::lanes_consumed_by(pid as u32) {
            reply.message += &format!(", lane {lane} of {lanes} of packet queue {queue}");
        }
    }
    reply
}

/// Runs the command the parsed arguments describe.
pub fn run(args: Args) -> ExitCode {
    if let Some(code) = args.flags.handle(Args::command()) {
        return code;
    }
    let id = args.id.unwrap_or_default();
    let (program, path) = match pidfile::target(&id) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("control: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    if program == "ethertap" {
        // The daemon answers on its console socket: richer status, and a stop that restores
        // the interfaces before the process exits.
        return match args.action {
            None => front::attach(),
            Some(Action::Status) => front::status(false),
            Some(Action::Stop) => front::stop(timeout),
        };
    }
    let reply = match args.action {
        Some(Action::Status) => with_lanes(pidfile::control_status(program, &path), &path),
        Some(Action::Stop) => pidfile::control_stop(program, &path, timeout),
        None => {
            eprintln!("control: collect has no interactive session; use `control {id} status` or `control {id} stop`");
            return ExitCode::from(2);
        }
    };
    if reply.code == 0 {
        front::say(&reply.message);
    } else {
        eprintln!("{}", reply.message);
    }
    ExitCode::from(reply.code as u8)
}
