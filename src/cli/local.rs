//! Local front ends of `ethertap run`, `eval`, `check` and `console` (no daemon involved).

use crate::rpcl::{self, run_console, Flow, LocalBackend, Vm};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The largest script `ethertap run`, `check` and a preset read: what one request to the
/// daemon can carry, less room for the file name and the arguments.
pub const MAX_SCRIPT: u64 = (crate::ctl::proto::MAX_FRAME - (64 << 10)) as u64;

/// Why a script file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// It cannot be opened or read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A directory, FIFO, device or socket.
    #[error("{file} is not a regular file")]
    NotRegular {
        /// The file as given.
        file: String,
    },
    /// Larger than [`MAX_SCRIPT`].
    #[error("{file} is {size} bytes, more than the limit of {MAX_SCRIPT} bytes for a script")]
    TooLarge {
        /// The file as given.
        file: String,
        /// Its size (at least; it may still grow).
        size: u64,
    },
}

/// Reads a script: a regular file of at most [`MAX_SCRIPT`] bytes, opened without blocking
/// (a FIFO is refused, not waited on), checked before anything is read.
pub fn read_script(file: &str) -> Result<String, ScriptError> {
    let read_err = |source| ScriptError::Read {
        file: file.to_string(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(ScriptError::NotRegular {
            file: file.to_string(),
        });
    }
    let too_large = |size| ScriptError::TooLarge {
        file: file.to_string(),
        size,
    };
    if meta.len() > MAX_SCRIPT {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while we read stops at the limit too.
    f.take(MAX_SCRIPT + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SCRIPT {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

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

/// `ethertap run FILE [ARG…]` in a local VM, with the script read already.
pub fn run_local(mut vm: Vm, file: &str, text: &str, args: Vec<String>) -> ExitCode {
    vm.set_args(args);
    interrupt_on_sigint(&vm.interrupt_handle());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let r = vm.run_file_flow(file, text, &mut out);
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
    let text = match read_script(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ethertap: {e}");
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
