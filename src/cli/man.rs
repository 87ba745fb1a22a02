//! Manual pages, generated from the same clap definitions the commands parse with, so that a
//! page never disagrees with `--help`. `man/` holds them; `tests/man.rs` keeps them current
//! (`ETHERTAP_UPDATE_MAN=1 cargo test --release --test man` rewrites them) and renders each
//! with `man -l`.

use clap::CommandFactory;

/// Every page: (`NAME.1`, roff text) for `ethertap`, each `ethertap` subcommand, `collect`
/// and `control`.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    for cmd in [
        super::ethertap::Cli::command(),
        super::collect::Args::command(),
        super::control::Args::command(),
    ] {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        add(cmd, &mut pages);
    }
    pages
}

fn add(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        add(sub.clone(), pages);
    }
    let man = clap_mangen::Man::new(cmd)
        .manual("ethertap manual")
        .source(concat!("ethertap ", env!("CARGO_PKG_VERSION")));
    let mut text = Vec::new();
    man.render(&mut text)
        .expect("rendering into memory cannot fail");
    pages.push((man.get_filename(), text));
}
