//! The virtual machine's state: the data stack with its frames, the return stack (loops and
//! calls), the journal that undoes a failing word, and the ways in: compiling, running,
//! reporting an error. The run loop itself is in [`run`].

mod run;

use super::chunk::{Chunk, Origin};
use super::compiler::compile;
use super::dict::{Builtin, Dict, Entry};
use super::error::{CompileError, CompileErrors, Pos, RpclError, WordError};
use super::lexer::tokenize;
use super::limits::{DEFAULT_BUDGET, MAX_DATA, MAX_STACK, MAX_STRING};
use super::value::{shorten, Repr, Value};
use super::words::sets::Sets;
use super::{Ctx, Flow, WordFn};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

// The stack's errors are made in functions that are cold and never inlined: the calls mark the
// failing paths, and the compiler keeps the run loop's state in registers for the paths that
// succeed. Made inline, the same errors cost the counted-loop benchmark 10-30 %.
#[cold]
#[inline(never)]
fn underflow() -> WordError {
    WordError::Underflow
}

#[cold]
#[inline(never)]
fn overflow() -> WordError {
    WordError::Overflow
}

/// A running `do` loop.
pub(crate) struct LoopFrame {
    index: i64,
    limit: i64,
    frames: usize,
}

/// Where a call returns to, and what it had open.
pub(crate) struct CallFrame {
    chunk: Arc<Chunk>,
    ip: usize,
    frames: usize,
    loops: usize,
}

/// Everything a VM holds: stacks, dictionary, sets, settings.
pub(crate) struct State {
    /// The data stack, all frames together.
    pub stack: Vec<Value>,
    /// Base index of each open `{` frame.
    frames: Vec<usize>,
    /// The innermost frame's base (0 without frames), kept next to the stack for speed.
    fbase: usize,
    /// The running `do` loops.
    pub loops: Vec<LoopFrame>,
    /// The return stack: compound words and loaded files being run.
    pub calls: Vec<CallFrame>,
    /// Every name.
    pub dict: Dict,
    /// The `set.*` sets.
    pub sets: Sets,
    /// `argc` and `arg`.
    pub args: Vec<String>,
    /// The output is a terminal: underline data, colour new names.
    pub color: bool,
    /// Set to stop the running line.
    pub interrupt: Arc<AtomicBool>,
    /// Instructions allowed per line or script.
    pub budget: u64,
    /// State of `random32` and `random64`.
    pub rng: u64,
    /// Items a failing word had popped, restored so that an error loses nothing.
    journal: Vec<Value>,
    low_water: usize,
    /// Set while the standard library loads: its words become immutable.
    pub loading_library: bool,
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() | 1
}

impl State {
    /// A VM with the built-ins of `builtins` (the standard library is not loaded yet).
    pub fn new(builtins: &'static [Builtin]) -> State {
        State {
            stack: Vec::with_capacity(MAX_STACK),
            frames: Vec::new(),
            fbase: 0,
            loops: Vec::new(),
            calls: Vec::new(),
            dict: Dict::new(builtins),
            sets: Sets::default(),
            args: Vec::new(),
            color: false,
            interrupt: Arc::new(AtomicBool::new(false)),
            budget: DEFAULT_BUDGET,
            rng: seed(),
            journal: Vec::new(),
            low_water: 0,
            loading_library: false,
        }
    }

    /// Where the current frame starts on the stack.
    #[inline]
    pub fn base(&self) -> usize {
        self.fbase
    }

    fn truncate_frames(&mut self, n: usize) {
        self.frames.truncate(n);
        self.fbase = self.frames.last().copied().unwrap_or(0);
    }

    /// Items in the current frame.
    #[inline]
    pub fn depth(&self) -> usize {
        self.stack.len().saturating_sub(self.base())
    }

    /// The top item of the current frame, removed (and journalled while a word runs).
    pub fn pop(&mut self) -> Result<Value, WordError> {
        if self.depth() == 0 {
            return Err(underflow());
        }
        let v = self.stack.pop().ok_or_else(underflow)?;
        let idx = self.stack.len();
        if idx < self.low_water {
            self.low_water = idx;
            self.journal.push(v.clone());
        }
        Ok(v)
    }

    /// The item `n` below the top of the current frame.
    pub fn peek(&self, n: usize) -> Result<&Value, WordError> {
        if self.depth() <= n {
            return Err(underflow());
        }
        Ok(&self.stack[self.stack.len() - 1 - n])
    }

    /// Push an item known to be within the size limits (a constant or a copy of an item).
    #[inline(always)]
    fn push_fast(&mut self, v: Value) -> Result<(), WordError> {
        if self.stack.len() >= MAX_STACK {
            return Err(overflow());
        }
        self.stack.push(v);
        Ok(())
    }

    /// Push an item of any origin: stack and size limits checked.
    pub fn push(&mut self, v: Value) -> Result<(), WordError> {
        if self.stack.len() >= MAX_STACK {
            return Err(overflow());
        }
        match &v.0 {
            Repr::Str(s) if s.len() > MAX_STRING => Err(WordError::StringTooLong(s.len())),
            Repr::Data(d) if d.bytes.len() > MAX_DATA => Err(WordError::DataTooLong(d.bytes.len())),
            _ => {
                self.stack.push(v);
                Ok(())
            }
        }
    }

    /// The next pseudo-random number.
    pub fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for test traffic and probabilities; not for secrets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Add a host word; a built-in's name is left alone.
    pub fn register_host(&mut self, name: &str, help: &str, f: WordFn) {
        let Ok(sym) = self.dict.intern(name) else {
            return;
        };
        let e = &mut self.dict.entries[sym as usize];
        if !matches!(e, Entry::Builtin(_)) {
            *e = Entry::Host {
                f,
                help: help.to_string(),
            };
        }
    }

    /// Define a variable before any script runs (not a user's, for `.d`).
    pub fn set_var_startup(&mut self, name: &str, value: Value) {
        if let Ok(sym) = self.dict.intern(name) {
            let e = &mut self.dict.entries[sym as usize];
            if !e.immutable() {
                *e = Entry::Var { value, user: false };
            }
        }
    }

    /// Compile a script (`file` Some) or a console line without running it. A text that does
    /// not compile gives its first error, with the others in [`RpclError::also`].
    pub fn compile_unit(
        &mut self,
        file: Option<&str>,
        text: &str,
    ) -> Result<Arc<Chunk>, RpclError> {
        let file: Option<Arc<str>> = file.map(Into::into);
        let origin = match &file {
            Some(f) => Origin::File(f.clone()),
            None => Origin::Line,
        };
        self.compile_source(origin, text).map_err(|errs| {
            let mut first = RpclError::compile(file.as_ref(), errs.first);
            first.also = errs
                .rest
                .into_iter()
                .map(|e| RpclError::compile(file.as_ref(), e))
                .collect();
            first
        })
    }

    /// Tokenize and compile; lexical and structural errors together, in source order.
    pub fn compile_source(
        &mut self,
        origin: Origin,
        text: &str,
    ) -> Result<Arc<Chunk>, CompileErrors> {
        let (tokens, lex_errors) = tokenize(text);
        let (chunk, compile_errors) = compile(&tokens, origin, &mut self.dict);
        let mut errors: Vec<CompileError> = lex_errors.into_iter().map(CompileError::lex).collect();
        errors.extend(compile_errors);
        errors.sort_by_key(|e| (e.line, e.col));
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(Arc::new(chunk)),
            Some(first) => Err(CompileErrors {
                first,
                rest: errors.collect(),
            }),
        }
    }

    /// Compile and run a console line (`file` None) or a script.
    pub fn run_source(
        &mut self,
        file: Option<&str>,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        let chunk = self.compile_unit(file, text)?;
        self.interrupt.store(false, Ordering::Relaxed);
        let r = self.run(chunk, out);
        self.truncate_frames(0);
        self.loops.clear();
        self.calls.clear();
        r
    }

    /// The error of a word that failed at `ip` of `chunk`, placed and named for the user.
    fn fault(&self, chunk: &Chunk, ip: usize, e: WordError) -> RpclError {
        let word = chunk
            .toks
            .get(ip)
            .map(|t| e.reported_word(&shorten(t, 40)).to_string())
            .unwrap_or_default();
        // The position is where the error happened in a file or line; inside compound words
        // it is the place that called them.
        let mut at = None;
        let frames = std::iter::once((chunk, ip)).chain(
            self.calls
                .iter()
                .rev()
                .map(|c| (&*c.chunk, c.ip.saturating_sub(1))),
        );
        for (c, i) in frames {
            match &c.origin {
                Origin::Word => continue,
                Origin::Line => break,
                Origin::File(f) => {
                    let (line, col) = c.pos.get(i).copied().unwrap_or((0, 0));
                    at = Some(Pos {
                        file: f.clone(),
                        line,
                        col,
                    });
                    break;
                }
            }
        }
        RpclError {
            at,
            word,
            cause: e.into(),
            also: Vec::new(),
        }
    }

    /// Put back what a failing word had popped.
    fn restore_journal(&mut self) {
        let low = self.low_water.min(self.stack.len());
        self.stack.truncate(low);
        while let Some(v) = self.journal.pop() {
            self.stack.push(v);
        }
    }

    /// Run a built-in or host word; if it fails, the stack is as it was before.
    fn call_fn(
        &mut self,
        f: &dyn Fn(&mut Ctx<'_>) -> Result<(), WordError>,
        out: &mut dyn Write,
    ) -> Result<(), WordError> {
        self.journal.clear();
        self.low_water = self.stack.len();
        let r = f(&mut Ctx { st: self, out });
        if r.is_err() {
            self.restore_journal();
        }
        self.journal.clear();
        // Outside a word's call nothing is journalled.
        self.low_water = 0;
        r
    }
}
