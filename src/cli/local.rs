//! Local front ends of `ethertap run`, `eval`, `check` and `console` (no daemon involved).

use crate::rpcl::{self, run_console, Flow, LocalBackend, RpclError, Vm, Warning};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Why a script file (`ethertap run`, `check`, a preset) was not read: the file as given and
/// what [`rpcl::read_source`] found (a system error, not a regular file, larger than
/// [`rpcl::MAX_SOURCE`]). Checked before anything is read, so a FIFO is refused, not waited on.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {file}: {source}")]
pub struct ScriptError {
    /// The file as given.
    pub file: String,
    /// Why it was not read.
    #[source]
    pub source: rpcl::SourceError,
}

/// Reads a script through [`rpcl::read_source`], the one reader of every source text.
pub fn read_script(file: &str) -> Result<String, ScriptError> {
    rpcl::read_source(file).map_err(|source| ScriptError {
        file: file.to_string(),
        source,
    })
}

/// Ctrl-C sets the VM's interrupt flag; a second Ctrl-C while it is still set (a word that
/// does not poll it) ends the process the default way.
fn interrupt_on_sigint(flag: &Arc<AtomicBool>) {
    use signal_hook::consts::SIGINT;
    let _ = signal_hook::flag::register_conditional_default(SIGINT, flag.clone());
    let _ = signal_hook::flag::register(SIGINT, flag.clone());
}

/// The warnings on stderr, one a line.
fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

/// Compile, print the warnings, refuse with `strict` if there are any, run to the end.
fn compile_and_run(
    vm: &mut Vm,
    compiled: Result<rpcl::Compiled, RpclError>,
    what: &str,
    strict: bool,
) -> ExitCode {
    let warnings = vm.take_warnings();
    print_warnings(&warnings);
    let compiled = match compiled {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if strict && !warnings.is_empty() {
        eprintln!("{}", rpcl::strict_refusal(what, warnings.len()));
        return ExitCode::FAILURE;
    }
    interrupt_on_sigint(&vm.interrupt_handle());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let step = vm.start(compiled, &mut out);
    let r: Result<Flow, RpclError> = vm.finish(step, &mut out);
    let _ = out.flush();
    // A file the script loaded may have had warnings of its own.
    print_warnings(&vm.take_warnings());
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `ethertap run FILE [ARG…]` in a local VM, with the script read already.
pub fn run_local(mut vm: Vm, file: &str, text: &str, args: Vec<String>, strict: bool) -> ExitCode {
    vm.set_args(args);
    let compiled = vm.compile_file(file, text);
    compile_and_run(&mut vm, compiled, file, strict)
}

/// `ethertap eval 'LINE'` in a local VM.
pub fn eval_local(mut vm: Vm, line: &str, strict: bool) -> ExitCode {
    let compiled = vm.compile_line(line);
    compile_and_run(&mut vm, compiled, "eval", strict)
}

/// `ethertap check FILE [--disasm] [--strict]`: compile only, in a VM that knows every word
/// of the engine and the packet queue (no daemon needed), and report every error and warning;
/// `--strict` fails on a warning too.
pub fn check(file: &str, disasm: bool, strict: bool) -> ExitCode {
    let text = match read_script(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ethertap: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut vm = super::local_vm();
    let r = if disasm {
        vm.disasm(file, &text).map(|d| print!("{d}"))
    } else {
        vm.compile_file(file, &text)
            .map(|_| ())
            .map_err(RpclError::into_each)
    };
    let warnings = vm.take_warnings();
    let errors = r.err().unwrap_or_default();
    // One report in source order, warnings and errors together.
    let mut lines: Vec<((u32, u32), String)> = warnings
        .iter()
        .map(|w| ((w.line, w.col), w.to_string()))
        .chain(errors.iter().map(|e| {
            let at = e.at.as_ref().map_or((0, 0), |p| (p.line, p.col));
            (at, e.to_string())
        }))
        .collect();
    lines.sort_by_key(|(at, _)| *at);
    for (_, line) in lines {
        eprintln!("{line}");
    }
    if errors.is_empty() && (warnings.is_empty() || !strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
