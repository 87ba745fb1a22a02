//! The interactive `ok ` console, shared by the local REPL and the daemon's client.

use super::error::RpclError;
use super::{lexer, Flow, Vm};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The prompt before every input line.
pub const PROMPT: &str = "ok ";
/// Shown while a string opened on an earlier line is still open.
pub const CONTINUATION_PROMPT: &str = ".. ";

/// Why a console line failed, as the console prints it.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The line failed in a VM of this process.
    #[error(transparent)]
    Rpcl(#[from] RpclError),
    /// The line failed elsewhere (the daemon's VM, or the way to it): the text arrives
    /// formatted.
    #[error("{0}")]
    Remote(String),
}

/// What the console drives: a local VM, or the daemon's VM through its socket.
pub trait ConsoleBackend {
    /// Run one complete line (it may span several physical lines inside a string).
    fn eval(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, ConsoleError>;
    /// Word names for Tab completion (asked again after every line).
    fn word_names(&mut self) -> Vec<String>;
    /// The flag Ctrl-C sets while a line runs; the backend stops the line when it is set
    /// (a local VM polls it; a remote backend forwards it to the daemon).
    fn interrupt_flag(&self) -> Arc<AtomicBool>;
}

/// A console on a VM in this process.
pub struct LocalBackend {
    /// The VM the lines run in.
    pub vm: Vm,
}

impl ConsoleBackend for LocalBackend {
    fn eval(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, ConsoleError> {
        // The window may have been resized since the last line.
        self.vm.set_width(stdout_width());
        let compiled = self.vm.compile_line(line);
        warn(&self.vm.take_warnings());
        let step = self.vm.start(compiled?, out);
        let r = self.vm.finish(step, out);
        warn(&self.vm.take_warnings());
        Ok(r?)
    }
    fn word_names(&mut self) -> Vec<String> {
        self.vm.word_names()
    }
    fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.vm.interrupt_handle()
    }
}

/// The columns of the terminal on stdout, asked anew each time (the window may have been
/// resized); `None` when stdout is not a terminal, so that pipes get the unwrapped format.
pub fn stdout_width() -> Option<usize> {
    std::io::stdout()
        .is_terminal()
        .then(|| terminal_size::terminal_size_of(std::io::stdout()))
        .flatten()
        .map(|(w, _)| w.0 as usize)
}

/// Warnings go to stderr, beside the line's output.
fn warn(warnings: &[super::Warning]) {
    let mut err = std::io::stderr();
    for w in warnings {
        let _ = writeln!(err, "{w}");
    }
}

/// True when the text ends inside a string: the console reads a continuation line.
pub fn ends_in_open_string(text: &str) -> bool {
    lexer::tokenize(text).1.iter().any(|e| e.opens_string())
}

struct WordCompleter {
    names: Vec<String>,
}

impl Completer for WordCompleter {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let prefix = &line[start..pos];
        let found = self
            .names
            .iter()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        Ok((start, found))
    }
}

impl Hinter for WordCompleter {
    type Hint = String;
}
impl Highlighter for WordCompleter {}
impl Validator for WordCompleter {}
impl Helper for WordCompleter {}

/// Read lines with editing, history and completion until Ctrl-D or `bye`. Ctrl-C at the
/// prompt clears the line; while a line runs it interrupts that line.
pub fn run_console(
    backend: &mut dyn ConsoleBackend,
    history_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let flag = backend.interrupt_flag();
    let sig = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    let result = console_loop(backend, history_file.as_ref());
    signal_hook::low_level::unregister(sig);
    result
}

fn console_loop(
    backend: &mut dyn ConsoleBackend,
    history_file: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let flag = backend.interrupt_flag();
    // Tab completes as far as the candidates agree; a second Tab lists them all, as bash
    // does, instead of cycling through them one by one.
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut ed: Editor<WordCompleter, DefaultHistory> = Editor::with_config(config)?;
    ed.set_helper(Some(WordCompleter {
        names: backend.word_names(),
    }));
    if let Some(h) = history_file {
        let _ = ed.load_history(h);
    }
    let mut pending = String::new();
    let stdout = std::io::stdout();
    loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        match ed.readline(prompt) {
            Ok(line) => {
                let text = if pending.is_empty() {
                    line
                } else {
                    format!("{pending}\n{line}")
                };
                pending.clear();
                if ends_in_open_string(&text) {
                    pending = text;
                    continue;
                }
                if !text.trim().is_empty() {
                    let _ = ed.add_history_entry(text.as_str());
                }
                let mut out = stdout.lock();
                let r = backend.eval(&text, &mut out);
                if let Err(e) = &r {
                    // After Ctrl-C the terminal has echoed "^C": start a fresh line.
                    if flag.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = writeln!(out);
                    }
                    let _ = writeln!(out, "{e}");
                }
                let _ = out.flush();
                drop(out);
                if let Ok(Flow::Bye) = r {
                    break;
                }
                if let Some(h) = ed.helper_mut() {
                    h.names = backend.word_names();
                }
            }
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = history_file {
        let _ = ed.save_history(h);
    }
    Ok(())
}
