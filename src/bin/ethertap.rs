//! `ethertap`: the engine, the RPCL front ends and the demo.
//! Argument parsing only: the command is `ethertap::cli::ethertap`.

fn main() -> std::process::ExitCode {
    let args = <ethertap::cli::ethertap::Cli as clap::Parser>::parse();
    ethertap::cli::ethertap::run(args)
}
