//! `collect`: record packets from the packet queue to capture files.
//! Argument parsing only: the command is `ethertap::cli::collect`.

fn main() -> std::process::ExitCode {
    let args = <ethertap::cli::collect::Args as clap::Parser>::parse();
    ethertap::cli::collect::run(args)
}
