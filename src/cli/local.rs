//! Local front ends of `ethertap run`, `eval`, `check` and `console` (no daemon involved).

use crate::rpcl::{self, run_console, Flow, LocalBackend, Vm};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Ctrl-C sets the VM's interrupt flag; a second Ctrl-C while it is still set (a word that
/// does not poll it) ends the process the default way.
fn interrupt_on_sigint(flag: &Arc<AtomicBool>) {
    use signal_hook::consts::SIGINT;
    let _ = signal_hook::flag::register_conditional_default(SIGINT, flag.clone());
    let _ = signal_hook::flag::register(SIGINT, flag.clone());
}

fn finish(r: Result<Flow, rpcl::RpclError>, out: &mut dyn Write) -> ExitCode {
    let _ = out.flush();
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `ethertap run FILE [ARG…]` in a local VM.
pub fn run_local(mut vm: Vm, file: &str, args: Vec<String>) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("ethertap: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    vm.set_args(args);
    interrupt_on_sigint(&vm.interrupt_handle());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = vm.run_file_flow(file, &text, &mut out);
    finish(r, &mut out)
}

/// `ethertap eval 'LINE'` in a local VM.
pub fn eval_local(mut vm: Vm, line: &str) -> ExitCode {
    interrupt_on_sigint(&vm.interrupt_handle());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = vm.eval_line_flow(line, &mut out);
    finish(r, &mut out)
}

/// `ethertap check FILE [--disasm]`: compile only, every error reported.
pub fn check(file: &str, disasm: bool) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("ethertap: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = if disasm {
        Vm::new().disasm(file, &text).map(|d| print!("{d}"))
    } else {
        rpcl::check(file, &text)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".ethertap_history"))
}

/// `ethertap console` without a daemon: the REPL on a local VM.
pub fn console_local(vm: Vm) -> ExitCode {
    let mut backend = LocalBackend { vm };
    match run_console(&mut backend, history_file()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ethertap: console: {e}");
            ExitCode::FAILURE
        }
    }
}
