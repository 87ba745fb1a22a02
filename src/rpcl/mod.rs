//! RPCL: the configuration and control language of ethertap (docs/rpcl.md).
//!
//! Source text → `lexer` (nom, tokens with line/column) → `compiler` (bytecode, control
//! structures resolved to jumps) → `vm` (data stack, frames, return stack, dictionary).
//! The bytecode types are in `chunk` (`disasm` prints them), the dictionary in `dict`, the
//! built-in words by family in `words`, the library written in RPCL in `library`, the errors
//! in [`error`]. Hosts (the engine, the packet queue) add their own words through
//! [`Vm::register`] and see the stack only through [`Ctx`].
//!
//! Design points:
//! * Late binding: a bare token that names a built-in is bound when compiled (built-ins never
//!   change); any other name is an index into the dictionary, looked up when it runs: a
//!   compound word runs, anything else pushes the token. Numbers are never names.
//! * Numbers stay strings in the language, but an integer whose text is canonical is kept as
//!   an `i64` ([`Value`]); other spellings (`0x10`) keep their exact text. Literals are
//!   classified at compile time, and a literal followed by an arithmetic or comparison word
//!   becomes one instruction.
//! * A failing word leaves the stack as it was before that word (items it popped come back);
//!   frames, loops and calls are reset. Errors are one line, `FILE:LINE:COL: error: WORD: msg`
//!   ([`RpclError`]).
//! * The instruction budget is charged at backward jumps (by the length of the loop body)
//!   and at calls, so every unbounded execution pays for itself; straight-line code is
//!   bounded by its length. The interrupt flag is polled at the same places and by waiting
//!   words.

mod chunk;
mod compiler;
pub mod console;
mod dict;
mod disasm;
pub mod error;
mod lexer;
mod library;
mod limits;
mod source;
mod value;
mod vm;
mod warn;
mod words;

pub use console::{run_console, stdout_width, ConsoleBackend, ConsoleError, LocalBackend};
pub use error::{Cause, Pos, RpclError, WordError};
pub use limits::{
    DEFAULT_BUDGET, DICT_BUDGET, MAX_DATA, MAX_DEPTH, MAX_SOURCE, MAX_STACK, MAX_STRING,
};
pub use source::{read_source, SourceError};
pub use value::{Subtype, Value};
pub use vm::{Paused, Step};
pub use warn::{strict_refusal, Warning, WarningKind};

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The language version, stored in `rpcl.version`.
pub const RPCL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a line or script ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The text ran to its end (or `exit`).
    Continue,
    /// `bye`: leave the console session / end the script.
    Bye,
}

/// A host word, as [`Vm::register`] keeps it.
pub type WordFn = Arc<dyn Fn(&mut Ctx<'_>) -> Result<(), WordError> + Send + Sync>;

/// What a word sees: the current frame of the stack and the output.
pub struct Ctx<'a> {
    /// The VM (core words reach past the stack; host words cannot).
    pub(crate) st: &'a mut vm::State,
    /// Where words print.
    pub(crate) out: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// The top item, removed.
    pub fn pop(&mut self) -> Result<Value, WordError> {
        self.st.pop()
    }
    /// The item `n` below the top (0 is the top), left on the stack.
    pub(crate) fn peek(&self, n: usize) -> Result<&Value, WordError> {
        self.st.peek(n)
    }
    /// A name operand (of `!`, `!!`, the sets …): the item `n` below the top, checked, not
    /// popped.
    pub(crate) fn peek_name(&self, n: usize) -> Result<String, WordError> {
        let v = self.st.peek(n)?;
        let name = v.text();
        if v.is_data() || !dict::valid_name(&name) {
            return Err(WordError::BadName(v.describe().into()));
        }
        Ok(name)
    }
    /// The named sets of this VM.
    pub(crate) fn sets(&mut self) -> &mut words::sets::Sets {
        &mut self.st.sets
    }
    /// A number: `12`, `-3`, `0x1f` (or integer-typed data); the error names the token.
    pub fn pop_int(&mut self) -> Result<i64, WordError> {
        let n = self.st.peek(0)?.as_int()?;
        self.st.pop()?;
        Ok(n)
    }
    /// A string (the text of a number too); data is refused.
    pub fn pop_str(&mut self) -> Result<String, WordError> {
        let v = self.st.peek(0)?;
        if v.is_data() {
            return Err(WordError::new(format!(
                "expected a string, found {}",
                v.describe()
            )));
        }
        Ok(self.st.pop()?.text())
    }
    /// A MAC address given as text (`aa:bb:cc:dd:ee:ff`, any case, see `wire::Mac`) or as
    /// `mac_t` data.
    pub fn pop_mac(&mut self) -> Result<crate::wire::Mac, WordError> {
        let v = self.st.peek(0)?;
        let mac = match v.subtype() {
            Some(Subtype::Mac) => crate::wire::Mac::try_from(v.bytes().as_ref()).ok(),
            Some(_) => None,
            None => v.text().parse().ok(),
        };
        let mac =
            mac.ok_or_else(|| WordError::new(format!("{} is not a MAC address", v.describe())))?;
        self.st.pop()?;
        Ok(mac)
    }
    /// Push an item (size limits checked).
    pub fn push(&mut self, v: Value) -> Result<(), WordError> {
        self.st.push(v)
    }
    /// Push a number.
    pub fn push_int(&mut self, n: i64) -> Result<(), WordError> {
        self.st.push(Value::int(n))
    }
    /// Push a string.
    pub fn push_str(&mut self, s: &str) -> Result<(), WordError> {
        self.st.push(Value::string(s))
    }
    /// Push a data item of a subtype.
    pub fn push_data(&mut self, subtype: Subtype, bytes: Vec<u8>) -> Result<(), WordError> {
        self.st.push(Value::data(subtype, bytes))
    }
    /// Where words print; in the daemon this streams to the client.
    pub fn out(&mut self) -> &mut dyn Write {
        &mut *self.out
    }
    /// Print text (or any bytes) whole; the words of every family print through this.
    pub fn emit(&mut self, text: impl AsRef<[u8]>) -> Result<(), WordError> {
        Ok(self.out.write_all(text.as_ref())?)
    }
    /// True once Ctrl-C (or a disconnected client) asked the running line to stop; words
    /// that work for long must poll it.
    pub fn interrupted(&self) -> bool {
        self.st.interrupt.load(Ordering::Relaxed)
    }
    /// Wait `d` once the word returns: the running text pauses and the VM is free for
    /// others meanwhile (in the daemon, other clients' requests run). Words that wait do
    /// this instead of sleeping, so that a wait never holds the VM.
    pub fn wait(&mut self, d: std::time::Duration) {
        self.st.wait = Some(std::time::Instant::now() + d);
    }
}

/// A script or console line compiled and ready to start ([`Vm::start`]); its warnings are in
/// [`Vm::take_warnings`].
pub struct Compiled(Arc<chunk::Chunk>);

/// The number named `name` in `table` (a host's figures by the labels it prints them with), or
/// an error that names the table (`of`) and lists the labels: what words like `if.counter`
/// push. Values beyond `i64` saturate.
pub fn named_counter(table: &[(&str, u64)], name: &str, of: &str) -> Result<i64, WordError> {
    match table.iter().find(|(label, _)| *label == name) {
        Some((_, n)) => Ok(i64::try_from(*n).unwrap_or(i64::MAX)),
        None => {
            let labels: Vec<&str> = table.iter().map(|(l, _)| *l).collect();
            Err(WordError::new(format!(
                "\"{}\" is not a counter of {of} ({})",
                value::shorten(name, 40),
                labels.join(", ")
            )))
        }
    }
}

/// A data stack put aside, so that each client of the daemon keeps its own.
#[derive(Default)]
pub struct StackSnapshot(Vec<Value>);

/// An RPCL virtual machine.
pub struct Vm {
    st: vm::State,
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

impl Vm {
    /// A VM with the core words and the standard library loaded.
    pub fn new() -> Self {
        let mut vm = Vm {
            st: vm::State::new(&words::BUILTINS),
        };
        vm.set_var("rpcl.version", RPCL_VERSION);
        vm.set_var(
            "rpcl.platform",
            &format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        );
        library::load(&mut vm.st);
        vm
    }

    /// Register a host word. `help` is one line ending in the stack effect. A host word is
    /// immutable for scripts, like a built-in; registering a built-in's name is ignored.
    pub fn register(
        &mut self,
        name: &str,
        help: &str,
        f: impl Fn(&mut Ctx<'_>) -> Result<(), WordError> + Send + Sync + 'static,
    ) {
        self.st.register_host(name, help, Arc::new(f));
    }

    /// Define (or redefine) a variable, e.g. `version.ethertap`.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.st.set_var_startup(name, Value::string(value));
    }

    /// Arguments of `ethertap run FILE [ARG…]`, read by `argc` and `arg`.
    pub fn set_args(&mut self, args: Vec<String>) {
        self.st.args = args;
    }

    /// Underline typed data and colour new dictionary entries: only when the client's output
    /// is a terminal.
    pub fn set_color(&mut self, on: bool) {
        self.st.color = on;
    }

    /// Instructions allowed per console line or script.
    pub fn set_budget(&mut self, budget: u64) {
        self.st.budget = budget;
    }

    /// A flag that interrupts the running line or script when set (Ctrl-C, client gone).
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.st.interrupt.clone()
    }

    /// Output width for `.i` and `.d`: when the output is a terminal of that many columns,
    /// their text is wrapped to it (continuation lines indented under the text); `None`
    /// prints each entry on one line, as the spec's format is.
    pub fn set_width(&mut self, width: Option<usize>) {
        self.st.width = width;
    }

    /// Declare a name that exists wherever this VM's scripts will run, though not in this VM
    /// (a local VM knows that the engine defines `if.count`): the warnings take it as known.
    pub fn declare(&mut self, name: &str) {
        self.st.dict.declare(name);
    }

    /// Compile a script without running it; errors are `FILE:LINE:COL: error: …`, and its
    /// warnings are in [`Vm::take_warnings`] until the next compile.
    pub fn compile_file(&mut self, file: &str, text: &str) -> Result<Compiled, RpclError> {
        self.st.compile_unit(Some(file), text).map(Compiled)
    }

    /// Compile a console line without running it (errors and warnings without the file).
    pub fn compile_line(&mut self, line: &str) -> Result<Compiled, RpclError> {
        self.st.compile_unit(None, line).map(Compiled)
    }

    /// The warnings of what was compiled last, and of the files it loaded since: a host
    /// prints them (stderr, the client's notices) after compiling and after each step.
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.st.warnings)
    }

    /// Start a compiled text. It runs until it ends or fails, or until a word waits
    /// ([`Step::Wait`]): then the VM is free, and [`Vm::resume`] goes on with the text once
    /// [`Paused::until`] has come. Resets the interrupt flag.
    pub fn start(&mut self, compiled: Compiled, out: &mut dyn Write) -> Result<Step, RpclError> {
        self.st.start(compiled.0, out)
    }

    /// Go on with a paused text (its stack, frames, loops, arguments and budget come back).
    /// Resumed before its time, it stays paused. The interrupt flag is left as it is.
    pub fn resume(&mut self, paused: Paused, out: &mut dyn Write) -> Result<Step, RpclError> {
        self.st.resume(paused, out)
    }

    /// End a paused text as interrupted: the error is placed at the word that waited.
    pub fn interrupt_paused(&mut self, paused: Paused) -> RpclError {
        self.st.interrupt_paused(paused)
    }

    /// Run a started text to its end, sleeping through its waits in this thread (a VM nobody
    /// else uses meanwhile); the interrupt flag ends a wait.
    pub fn finish(
        &mut self,
        step: Result<Step, RpclError>,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        self.st.finish(step, out)
    }

    /// Run one console line to its end; errors are formatted `error: WORD: message`.
    pub fn eval_line(&mut self, line: &str, out: &mut dyn Write) -> Result<(), RpclError> {
        self.eval_line_flow(line, out).map(|_| ())
    }

    /// [`Vm::eval_line`], telling whether the line ended with `bye`.
    pub fn eval_line_flow(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, RpclError> {
        self.st.run_source(None, line, out)
    }

    /// Run a whole script to its end; errors are formatted `FILE:LINE:COL: error: WORD:
    /// message`. Parse errors of the whole file are reported (one per line of the error)
    /// before anything runs.
    pub fn run_file(
        &mut self,
        file: &str,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<(), RpclError> {
        self.run_file_flow(file, text, out).map(|_| ())
    }

    /// [`Vm::run_file`], telling whether the script ended with `bye`.
    pub fn run_file_flow(
        &mut self,
        file: &str,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        self.st.run_source(Some(file), text, out)
    }

    /// Exchange the data stack with `other`: the daemon gives every client its own stack while
    /// they share one dictionary. Call only between steps (a paused text keeps its own).
    pub fn swap_stack(&mut self, other: &mut StackSnapshot) {
        std::mem::swap(&mut self.st.stack, &mut other.0);
    }

    /// Names of all words (built-in, library, host, compound), for Tab completion.
    pub fn word_names(&self) -> Vec<String> {
        self.st.dict.word_names()
    }

    /// The help text of a built-in, library or host word.
    pub fn help(&self, name: &str) -> Option<&str> {
        self.st.dict.help(name)
    }

    /// The bytecode of a source text, as `ethertap check --disasm` prints it.
    pub fn disasm(&mut self, file: &str, text: &str) -> Result<String, Vec<RpclError>> {
        let chunk = self
            .st
            .compile_unit(Some(file), text)
            .map_err(RpclError::into_each)?;
        Ok(disasm::disasm(&chunk, &self.st.dict))
    }
}

/// Compile a file without running it; every parse and compile error, each placed
/// (`FILE:LINE:COL: error: WORD: message`).
pub fn check(file: &str, text: &str) -> Result<(), Vec<RpclError>> {
    compile_only(Some(file), text)
}

/// Compile a console line without running it; every error, as the console reports them
/// (`error: WORD: message`, no position).
pub fn check_line(line: &str) -> Result<(), Vec<RpclError>> {
    compile_only(None, line)
}

fn compile_only(file: Option<&str>, text: &str) -> Result<(), Vec<RpclError>> {
    let mut st = vm::State::new(&words::BUILTINS);
    st.compile_unit(file, text)
        .map(|_| ())
        .map_err(RpclError::into_each)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>() {}

    #[test]
    fn vm_is_send() {
        is_send::<Vm>();
    }
}
