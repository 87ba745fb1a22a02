//! `ethertap`: the engine, the RPCL front ends and the demo. The binary only parses the arguments.

use crate::cli::start::StartArgs;
use crate::cli::{self, front};
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ethertap",
    version,
    disable_version_flag = true,
    about = "AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL",
    long_about = None,
    after_help = "Exit status: 0 success, 1 error, 2 usage error, 3 status/stop without a running daemon.\n\
Runtime files: /run/ethertap.pid, /run/ethertap.sock (ETHERTAP_RUN_DIR overrides /run); \
daemon log /var/log/ethertap.log (ETHERTAP_LOG)."
)]
/// The arguments of `ethertap`.
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: crate::cli::ProductFlags,
}

/// The subcommands of `ethertap`.
#[derive(Subcommand)]
pub enum Command {
    /// Start the engine on IF0 (mirror mode) or IF0 and IF1 (bridge mode): with an `ok `
    /// console on a terminal, or in the background with -d.
    Start {
        /// Detach and run as a daemon (pid file, console socket, log file).
        #[arg(short = 'd', long)]
        daemon: bool,
        #[allow(missing_docs)] // clap would take a doc comment here for help text
        #[command(flatten)]
        args: StartArgs,
    },
    /// Run an RPCL script in the daemon's VM (a local VM when no daemon runs).
    Run {
        /// Run in a local VM even when a daemon is running.
        #[arg(long)]
        local: bool,
        /// Refuse to run the script if it has warnings (unknown words that look like words).
        #[arg(long)]
        strict: bool,
        /// The script to run.
        file: String,
        /// Arguments for the script (`argc`, `arg`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run one line of RPCL in the daemon's VM (a local VM when no daemon runs).
    Eval {
        /// Run in a local VM even when a daemon is running.
        #[arg(long)]
        local: bool,
        /// Refuse to run the line if it has warnings (unknown words that look like words).
        #[arg(long)]
        strict: bool,
        /// The words to run.
        #[arg(allow_hyphen_values = true)]
        line: String,
    },
    /// Compile a script without running it and report every error and warning; it knows the
    /// engine's words without a daemon.
    Check {
        /// The script to compile.
        file: String,
        /// Print the bytecode.
        #[arg(long)]
        disasm: bool,
        /// Exit with status 1 on a warning too.
        #[arg(long)]
        strict: bool,
    },
    /// Interactive `ok ` console in the daemon's VM (a local VM when no daemon runs).
    Console {
        /// Use a local VM even when a daemon is running.
        #[arg(long)]
        local: bool,
    },
    /// Show the daemon's pid, uptime, interfaces, mode and packet queue.
    Status {
        /// As JSON (field names: docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Show the daemon's counters: if.stats and tap.queue.status, or JSON with bytes.
    Stats {
        /// As JSON (field names: docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Show the last lines of the daemon's log.
    Log {
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
        lines: u32,
    },
    /// Stop the daemon cleanly (XDP detached, interfaces restored).
    Stop {
        /// Seconds to wait for the daemon to exit.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Build a throw-away lab, bridge it, send traffic, tap and record it, remove the lab.
    Demo {
        /// Directory for the pcap file.
        #[arg(long, default_value = ".")]
        out_dir: std::path::PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
}

/// Runs the command the parsed arguments describe.
pub fn run(cli: Cli) -> ExitCode {
    if let Some(code) = cli.flags.handle(Cli::command()) {
        return code;
    }
    let Some(command) = cli.command else {
        let e = Cli::command().error(
            clap::error::ErrorKind::MissingSubcommand,
            "a command is needed (`ethertap --help` lists them)",
        );
        let _ = e.print();
        return ExitCode::from(2);
    };
    match command {
        Command::Start { daemon: true, args } => match cli::start::start_daemon(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ethertap start: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Start {
            daemon: false,
            args,
        } => match cli::start::run_start(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ethertap start: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            file,
            args,
            local,
            strict,
        } => front::run(&file, args, local, strict),
        Command::Eval {
            line,
            local,
            strict,
        } => front::eval(&line, local, strict),
        Command::Check {
            file,
            disasm,
            strict,
        } => cli::local::check(&file, disasm, strict),
        Command::Console { local } => front::console(local),
        Command::Status { json } => front::status(json),
        Command::Stats { json } => front::stats(json),
        Command::Log { lines } => front::log(lines),
        Command::Stop { timeout } => front::stop(Duration::from_secs(timeout)),
        Command::Demo { out_dir } => match cli::demo::run(&out_dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ethertap demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            cli::print_completions(shell, Cli::command(), "ethertap");
            ExitCode::SUCCESS
        }
    }
}
