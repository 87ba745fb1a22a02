//! `ethertap`: the engine, the RPCL front ends and the demo (argument parsing only).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ethertap", version, about = "AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the engine on IF0 (mirror mode) or IF0 and IF1 (bridge mode), in the foreground.
    Start(ethertap::ixdp::cli::StartArgs),
    /// Run an RPCL script (in the daemon's VM when one runs, else locally).
    Run {
        /// The script to run.
        file: String,
        /// Arguments for the script (`argc`, `arg`).
        args: Vec<String>,
        /// Run in a local VM even when a daemon is running.
        #[arg(long)]
        local: bool,
    },
    /// Run one line of RPCL.
    Eval {
        /// The words to run.
        line: String,
        /// Run in a local VM even when a daemon is running.
        #[arg(long)]
        local: bool,
    },
    /// Compile a script without running it and report every error.
    Check {
        file: String,
        /// Print the bytecode.
        #[arg(long)]
        disasm: bool,
    },
    /// Interactive `ok ` console (the daemon's VM when one runs, else a local one).
    Console,
}

fn main() -> ExitCode {
    use ethertap::rpcl::cli;
    let local_vm = || {
        let mut vm = cli::local_vm();
        vm.set_var("version.ethertap", env!("CARGO_PKG_VERSION"));
        vm
    };
    match Cli::parse().command {
        Command::Start(args) => match ethertap::ixdp::cli::run_start(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ethertap start: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            file,
            args,
            local: _,
        } => cli::run_local(local_vm(), &file, args),
        Command::Eval { line, local: _ } => cli::eval_local(local_vm(), &line),
        Command::Check { file, disasm } => cli::check(&file, disasm),
        Command::Console => cli::console_local(local_vm()),
    }
}
