//! The front ends: what the `ethertap`, `collect` and `control` commands do once their
//! arguments are parsed. They talk to the daemon through the control plane ([`crate::ctl`]),
//! or run the engine, the queue and the language directly; nothing below imports them.

pub mod collect;
pub mod control;
pub mod demo;
pub mod ethertap;
pub mod front;
pub mod local;
pub mod man;
pub mod start;

use crate::ixdp::Engine;
use crate::rpcl::Vm;
use std::io::IsTerminal;
use std::process::ExitCode;

/// The options every product (`ethertap`, `collect`, `control`) has alike: `-V`/`-v`/`--version`,
/// `-c`/`--copyright`, `--completions SHELL`.
#[derive(clap::Args, Clone, Debug)]
pub struct ProductFlags {
    /// Print the version
    #[arg(short = 'V', long = "version", short_alias = 'v', action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Print the copyright
    #[arg(short = 'c', long = "copyright")]
    copyright: bool,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[arg(long = "completions", value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,
}

/// The copyright line of a product.
fn copyright(name: &str) -> String {
    let what = if name == "ethertap" {
        name.to_string()
    } else {
        format!("{name}, part of ethertap")
    };
    format!(
        "{what} — Copyright (c) 2026 the ethertap developers.\n\
Licensed under the MIT license or the Apache License 2.0, at your option."
    )
}

impl ProductFlags {
    /// Prints the copyright or the completion script of `cmd` when asked; the exit status
    /// then, `None` when the command has work to do.
    pub fn handle(&self, cmd: clap::Command) -> Option<ExitCode> {
        let name = cmd.get_name().to_string();
        if self.copyright {
            front::say(&copyright(&name));
            return Some(ExitCode::SUCCESS);
        }
        let shell = self.completions?;
        print_completions(shell, cmd, &name);
        Some(ExitCode::SUCCESS)
    }
}

/// Prints the completion script of `cmd` for `shell`. Generated into memory first:
/// clap_complete panics when a pipe reader (`| head`) goes away.
pub fn print_completions(shell: clap_complete::Shell, mut cmd: clap::Command, name: &str) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}

/// The variable holding the number of the engine's interfaces.
const IF_COUNT: &str = "if.count";

/// Where a VM's engine words go: to a running engine, or nowhere (a local VM, whose engine
/// words fail with a hint to start the daemon).
pub enum VmHost<'a> {
    /// `ethertap run/eval/console` without a daemon.
    Local,
    /// The daemon or the foreground engine, feeding the named packet queue.
    Engine(&'a Engine, &'a str),
}

/// The one place a front end gets a VM: the standard library, `version.ethertap`, the
/// packet-queue words and the engine's words (live or unavailable).
pub fn new_vm(host: VmHost<'_>) -> Vm {
    let mut vm = Vm::new();
    vm.set_var("version.ethertap", env!("CARGO_PKG_VERSION"));
    match host {
        VmHost::Local => {
            let terminal = std::io::stdout().is_terminal();
            vm.set_color(terminal);
            vm.set_width(crate::rpcl::stdout_width());
            crate::ixdp::words::register_unavailable_words(&mut vm);
            crate::pqueue::register_words(&mut vm, crate::pqueue::DEFAULT_NAME);
            // Scripts checked or run here are meant for the engine, which defines it.
            vm.declare(IF_COUNT);
        }
        VmHost::Engine(engine, queue_name) => {
            // Lets scripts loop over the interfaces whatever the mode (examples/tap-all.rpcl).
            vm.set_var(IF_COUNT, &engine.view().interfaces().len().to_string());
            crate::ixdp::words::register_engine_words(&mut vm, engine.view());
            let view = engine.view();
            crate::pqueue::register_words_fed(&mut vm, queue_name, move || {
                let added = view.added_queues();
                added.iter().map(|q| q.name().to_string()).collect()
            });
        }
    }
    vm
}

/// A VM for the local front ends.
pub fn local_vm() -> Vm {
    new_vm(VmHost::Local)
}

/// A VM with every word of the running engine, as the console and the daemon use it.
pub fn engine_vm(engine: &Engine, queue_name: &str) -> Vm {
    new_vm(VmHost::Engine(engine, queue_name))
}
