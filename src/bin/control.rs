//! `control`: interactive session, status and stop of background processes.
//! Argument parsing only: the command is `ethertap::cli::control`.

fn main() -> std::process::ExitCode {
    let args = <ethertap::cli::control::Args as clap::Parser>::parse();
    ethertap::cli::control::run(args)
}
