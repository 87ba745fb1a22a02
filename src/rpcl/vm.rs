//! The virtual machine's state: the data stack with its frames, the return stack (loops and
//! calls), the journal that undoes a failing word, and the ways in: compiling, running,
//! reporting an error. The run loop itself is in [`run`].

mod run;

use super::chunk::{Chunk, Origin};
use super::compiler::{compile, Compiled};
use super::dict::{Builtin, Dict, Entry};
use super::error::{CompileError, CompileErrorKind, CompileErrors, Pos, RpclError, WordError};
use super::lexer::tokenize;
use super::limits::{DEFAULT_BUDGET, MAX_DATA, MAX_SOURCE, MAX_STACK, MAX_STRING};
use super::value::{shorten, Repr, Value};
use super::warn::{Warning, WarningKind, MAX_WARNINGS};
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

/// How a stretch of running a text ended without an error.
pub enum Step {
    /// It ran to its end (or `exit`, `bye`).
    Done(Flow),
    /// A word waits (`ms`): the text is paused, the VM free for others until
    /// [`Paused::until`]; [`super::Vm::resume`] goes on with it.
    Wait(Paused),
}

/// A script or console line paused by a waiting word: everything it had running, put aside.
pub struct Paused {
    until: std::time::Instant,
    frozen: Box<Frozen>,
}

impl Paused {
    /// When the wait is over.
    pub fn until(&self) -> std::time::Instant {
        self.until
    }
}

/// The running state of a paused text.
pub(crate) struct Frozen {
    /// The chunk it was running and where it goes on (just after the word that waited).
    chunk: Arc<Chunk>,
    ip: usize,
    /// Instructions left of its budget.
    left: u64,
    stack: Vec<Value>,
    frames: Vec<usize>,
    loops: Vec<LoopFrame>,
    calls: Vec<CallFrame>,
    args: Vec<String>,
}

/// Sleep until `until` in short steps; false when `interrupt` was set first.
fn sleep_until(until: std::time::Instant, interrupt: &AtomicBool) -> bool {
    loop {
        if interrupt.load(Ordering::Relaxed) {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(std::time::Duration::from_millis(10)));
    }
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
    /// The warnings of what was compiled since the host last took them.
    pub warnings: Vec<Warning>,
    /// Set by a word that waits (`ms`): the run loop pauses until then.
    pub wait: Option<std::time::Instant>,
    /// The output is a terminal this wide: `.i` and `.d` wrap to it.
    pub width: Option<usize>,
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
            warnings: Vec::new(),
            wait: None,
            width: None,
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
        if !matches!(self.dict.entries[sym as usize], Entry::Builtin(_)) {
            // A VM being built is far below its budget.
            let _ = self.dict.set_entry(
                sym,
                Entry::Host {
                    f,
                    help: help.to_string(),
                },
            );
        }
    }

    /// Define a variable before any script runs (not a user's, for `.d`).
    pub fn set_var_startup(&mut self, name: &str, value: Value) {
        if let Ok(sym) = self.dict.intern(name) {
            if !self.dict.entries[sym as usize].immutable() {
                // A VM being built is far below its budget.
                let _ = self.dict.set_entry(sym, Entry::Var { value, user: false });
            }
        }
    }

    /// Compile a script (`file` Some) or a console line without running it; its warnings
    /// replace those in [`State::warnings`]. A text that does not compile gives its first
    /// error, with the others in [`RpclError::also`].
    pub fn compile_unit(
        &mut self,
        file: Option<&str>,
        text: &str,
    ) -> Result<Arc<Chunk>, RpclError> {
        self.warnings.clear();
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

    /// Tokenize and compile; lexical and structural errors together, in source order. The
    /// warnings of a script, a loaded file or a console line go to [`State::warnings`]; a
    /// compound word's body was linted with the text that defined it.
    pub fn compile_source(
        &mut self,
        origin: Origin,
        text: &str,
    ) -> Result<Arc<Chunk>, CompileErrors> {
        if text.len() > MAX_SOURCE {
            return Err(CompileErrors {
                first: CompileError {
                    line: 1,
                    col: 1,
                    word: "parse".into(),
                    kind: CompileErrorKind::LongSource(text.len()),
                },
                rest: Vec::new(),
            });
        }
        let (tokens, lex_errors) = tokenize(text);
        let lint = !matches!(origin, Origin::Word);
        let file = match &origin {
            Origin::File(f) => Some(f.clone()),
            _ => None,
        };
        let Compiled {
            chunk,
            errors: compile_errors,
            warnings,
        } = compile(&tokens, origin, &mut self.dict, lint);
        let mut errors: Vec<CompileError> = lex_errors.into_iter().map(CompileError::lex).collect();
        errors.extend(compile_errors);
        errors.sort_by_key(|e| (e.line, e.col));
        self.note_warnings(file, warnings);
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(Arc::new(chunk)),
            Some(first) => Err(CompileErrors {
                first,
                rest: errors.collect(),
            }),
        }
    }

    /// Keep the warnings of a compiled text for the host, at most [`MAX_WARNINGS`] of them
    /// and a count of the rest.
    fn note_warnings(&mut self, file: Option<Arc<str>>, found: Vec<super::warn::Finding>) {
        let extra = found.len().saturating_sub(MAX_WARNINGS);
        let last = found.last().map(|f| (f.line, f.col));
        for f in found.into_iter().take(MAX_WARNINGS) {
            self.warnings.push(Warning {
                file: file.clone(),
                line: f.line,
                col: f.col,
                kind: f.kind,
            });
        }
        if let (true, Some((line, col))) = (extra > 0, last) {
            self.warnings.push(Warning {
                file,
                line,
                col,
                kind: WarningKind::More(extra),
            });
        }
    }

    /// Start a compiled script or line; it runs until it ends, fails or waits.
    pub fn start(&mut self, chunk: Arc<Chunk>, out: &mut dyn Write) -> Result<Step, RpclError> {
        self.interrupt.store(false, Ordering::Relaxed);
        let left = self.budget;
        let r = self.run(chunk, 0, left, out);
        self.settle(&r);
        r
    }

    /// Go on with a paused script or line where it waited. A paused text resumed before its
    /// time waits again; the interrupt flag is the caller's (it is not reset here).
    pub fn resume(&mut self, p: Paused, out: &mut dyn Write) -> Result<Step, RpclError> {
        if std::time::Instant::now() < p.until {
            return Ok(Step::Wait(p));
        }
        let Frozen {
            chunk, ip, left, ..
        } = *self.thaw(p);
        let r = self.run(chunk, ip, left, out);
        self.settle(&r);
        r
    }

    /// End a paused script or line with [`WordError::Interrupted`], placed at the word that
    /// waited.
    pub fn interrupt_paused(&mut self, p: Paused) -> RpclError {
        let frozen = self.thaw(p);
        let e = self.fault(&frozen.chunk, frozen.ip - 1, WordError::Interrupted);
        self.settle(&Err(e.clone()));
        e
    }

    /// Run a started text to its end, sleeping through its waits here (a local VM: nobody
    /// else needs this VM meanwhile). The interrupt flag ends a wait at once.
    pub fn finish(
        &mut self,
        mut step: Result<Step, RpclError>,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        loop {
            match step? {
                Step::Done(flow) => return Ok(flow),
                Step::Wait(p) => {
                    let _ = out.flush();
                    step = if sleep_until(p.until, &self.interrupt) {
                        Ok(self.resume(p, out)?)
                    } else {
                        Err(self.interrupt_paused(p))
                    };
                }
            }
        }
    }

    /// Compile and run a console line (`file` None) or a script to its end.
    pub fn run_source(
        &mut self,
        file: Option<&str>,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        let chunk = self.compile_unit(file, text)?;
        let step = self.start(chunk, out);
        self.finish(step, out)
    }

    /// After a stretch of running: a text that ended (or failed) leaves no frames, loops or
    /// calls behind; a paused one took them along.
    fn settle(&mut self, r: &Result<Step, RpclError>) {
        if !matches!(r, Ok(Step::Wait(_))) {
            self.truncate_frames(0);
            self.loops.clear();
            self.calls.clear();
            self.wait = None;
        }
    }

    /// Everything of a running text that is not the dictionary, put aside while it waits.
    fn freeze(&mut self, chunk: Arc<Chunk>, ip: usize, left: u64) -> Paused {
        let until = self.wait.take().unwrap_or_else(std::time::Instant::now);
        let frozen = Frozen {
            chunk,
            ip,
            left,
            stack: std::mem::take(&mut self.stack),
            frames: std::mem::take(&mut self.frames),
            loops: std::mem::take(&mut self.loops),
            calls: std::mem::take(&mut self.calls),
            args: std::mem::take(&mut self.args),
        };
        self.truncate_frames(0);
        Paused {
            until,
            frozen: Box::new(frozen),
        }
    }

    /// Put a paused text back in place: its stack, frames, loops, calls and arguments.
    fn thaw(&mut self, p: Paused) -> Box<Frozen> {
        let mut f = p.frozen;
        self.stack = std::mem::take(&mut f.stack);
        self.frames = std::mem::take(&mut f.frames);
        self.fbase = self.frames.last().copied().unwrap_or(0);
        self.loops = std::mem::take(&mut f.loops);
        self.calls = std::mem::take(&mut f.calls);
        self.args = std::mem::take(&mut f.args);
        f
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
