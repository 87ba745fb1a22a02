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

/// The variable holding the number of the engine's interfaces.
const IF_COUNT: &str = "if.count";

/// Columns of the terminal on stdout, if it is one.
pub fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0 as usize)
}

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
            vm.set_width(terminal.then(terminal_width).flatten());
            crate::ixdp::words::register_unavailable_words(&mut vm);
            crate::pqueue::register_words(&mut vm, crate::pqueue::DEFAULT_NAME);
            // Scripts checked or run here are meant for the engine, which defines it.
            vm.declare(IF_COUNT);
        }
        VmHost::Engine(engine, queue_name) => {
            // Lets scripts loop over the interfaces whatever the mode (examples/tap-all.rpcl).
            vm.set_var(IF_COUNT, &engine.view().interfaces().len().to_string());
            crate::ixdp::words::register_engine_words(&mut vm, engine.view());
            crate::pqueue::register_words(&mut vm, queue_name);
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
