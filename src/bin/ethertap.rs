//! `ethertap`: the engine, the RPCL front ends and the demo (argument parsing only).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ethertap",
    version,
    about = "AF_XDP software Ethernet TAP and transparent bridge, driven by RPCL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    let cli = Cli::parse();
    let _ = cli.command;
    eprintln!("ethertap: not built yet");
    ExitCode::FAILURE
}
