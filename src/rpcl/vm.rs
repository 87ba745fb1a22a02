//! The virtual machine: data stack with frames, return stack (loops and calls), the run loop.

use super::compiler::{compile, Chunk, CompileError, Op, Origin};
use super::dict::{Dict, Entry};
use super::lexer::tokenize;
use super::value::{Repr, Value, MAX_DATA, MAX_STRING};
use super::words::{Kind, BUILTINS};
use super::{Ctx, Flow, RpclError, WordError, WordFn, DEFAULT_BUDGET, MAX_DEPTH, MAX_STACK};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) const UNDERFLOW: &str = "stack underflow";
pub(crate) const OVERFLOW: &str = "stack overflow (1024 items)";

#[cold]
fn overflow() -> WordError {
    WordError::new(OVERFLOW)
}

#[cold]
fn underflow() -> WordError {
    WordError::new(UNDERFLOW)
}

pub(crate) struct LoopFrame {
    index: i64,
    limit: i64,
    frames: usize,
}

pub(crate) struct CallFrame {
    chunk: Arc<Chunk>,
    ip: usize,
    frames: usize,
    loops: usize,
}

/// How a stretch of one chunk ended.
enum Transfer {
    Return,
    Call(Arc<Chunk>),
    Bye,
    Fault(usize, WordError),
}

/// A typed, ordered set of `set.*` words.
pub(crate) struct Set {
    /// `None` holds strings.
    pub kind: Option<super::Subtype>,
    pub items: BTreeMap<SetKey, Value>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SetKey {
    Num(i128),
    Bytes(Vec<u8>),
}

pub(crate) struct State {
    pub stack: Vec<Value>,
    /// Base index of each open `{` frame.
    frames: Vec<usize>,
    /// The innermost frame's base (0 without frames), kept next to the stack for speed.
    fbase: usize,
    pub loops: Vec<LoopFrame>,
    pub calls: Vec<CallFrame>,
    pub dict: Dict,
    pub sets: BTreeMap<String, Set>,
    pub args: Vec<String>,
    pub color: bool,
    pub interrupt: Arc<AtomicBool>,
    pub budget: u64,
    pub rng: u64,
    /// Items a failing word had popped, restored so that an error loses nothing.
    journal: Vec<Value>,
    low_water: usize,
    /// Set while the standard library loads: its words become immutable.
    pub loading_library: bool,
}

/// An error on its way out of the run loop.
pub(crate) struct Fault {
    word: String,
    msg: String,
    at: Option<(Arc<str>, u32, u32)>,
}

impl Fault {
    fn format(&self) -> RpclError {
        let word = match self.msg.as_str() {
            UNDERFLOW => "pop",
            OVERFLOW => "push",
            _ => &self.word,
        };
        RpclError(match &self.at {
            Some((file, line, col)) => format!("{file}:{line}:{col}: error: {word}: {}", self.msg),
            None => format!("error: {word}: {}", self.msg),
        })
    }
}

pub(crate) fn format_compile_error(file: Option<&str>, e: &CompileError) -> RpclError {
    RpclError(match file {
        Some(f) => format!("{f}:{}:{}: error: {}: {}", e.line, e.col, e.word, e.msg),
        None => format!("error: {}: {}", e.word, e.msg),
    })
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
    pub fn new() -> State {
        State {
            stack: Vec::with_capacity(MAX_STACK),
            frames: Vec::new(),
            fbase: 0,
            loops: Vec::new(),
            calls: Vec::new(),
            dict: Dict::new(),
            sets: BTreeMap::new(),
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

    pub fn pop(&mut self) -> Result<Value, WordError> {
        if self.depth() == 0 {
            return Err(WordError::new(UNDERFLOW));
        }
        let v = self.stack.pop().ok_or_else(|| WordError::new(UNDERFLOW))?;
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
            return Err(WordError::new(UNDERFLOW));
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

    pub fn push(&mut self, v: Value) -> Result<(), WordError> {
        if self.stack.len() >= MAX_STACK {
            return Err(overflow());
        }
        match &v.0 {
            Repr::Str(s) if s.len() > MAX_STRING => Err(WordError::new(format!(
                "string of {} bytes is longer than {MAX_STRING}",
                s.len()
            ))),
            Repr::Data(d) if d.bytes.len() > MAX_DATA => Err(WordError::new(format!(
                "data of {} bytes is longer than {MAX_DATA}",
                d.bytes.len()
            ))),
            _ => {
                self.stack.push(v);
                Ok(())
            }
        }
    }

    pub fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for test traffic and probabilities; not for secrets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

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

    pub fn set_var_startup(&mut self, name: &str, value: Value) {
        if let Ok(sym) = self.dict.intern(name) {
            let e = &mut self.dict.entries[sym as usize];
            if !e.immutable() {
                *e = Entry::Var { value, user: false };
            }
        }
    }

    pub fn compile_file(&mut self, file: &str, text: &str) -> Result<Arc<Chunk>, Vec<RpclError>> {
        self.compile_source(Origin::File(file.into()), text)
            .map_err(|errs| {
                errs.iter()
                    .map(|e| format_compile_error(Some(file), e))
                    .collect()
            })
    }

    /// Tokenize and compile; lexical and structural errors together, in source order.
    pub fn compile_source(
        &mut self,
        origin: Origin,
        text: &str,
    ) -> Result<Arc<Chunk>, Vec<CompileError>> {
        let (tokens, lex_errors) = tokenize(text);
        let mut errors: Vec<CompileError> = lex_errors
            .into_iter()
            .map(|e| CompileError {
                line: e.line,
                col: e.col,
                word: "parse".into(),
                msg: e.msg,
            })
            .collect();
        match compile(&tokens, origin, &mut self.dict) {
            Ok(chunk) if errors.is_empty() => return Ok(Arc::new(chunk)),
            Ok(_) => {}
            Err(e) => errors.extend(e),
        }
        errors.sort_by_key(|e| (e.line, e.col));
        Err(errors)
    }

    /// Compile and run a console line (`file` None) or a script.
    pub fn run_source(
        &mut self,
        file: Option<&str>,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<Flow, RpclError> {
        let origin = match file {
            Some(f) => Origin::File(f.into()),
            None => Origin::Line,
        };
        let chunk = self.compile_source(origin, text).map_err(|errs| {
            RpclError(
                errs.iter()
                    .map(|e| format_compile_error(file, e).0)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        self.interrupt.store(false, Ordering::Relaxed);
        let r = self.run(chunk, out);
        self.truncate_frames(0);
        self.loops.clear();
        self.calls.clear();
        r.map_err(|f| f.format())
    }

    fn interrupted(&self) -> Result<(), WordError> {
        if self.interrupt.load(Ordering::Relaxed) {
            Err(WordError::new("interrupted"))
        } else {
            Ok(())
        }
    }

    fn fault(&self, chunk: &Chunk, ip: usize, e: WordError) -> Fault {
        let word = chunk
            .toks
            .get(ip)
            .map(|t| super::value::shorten(t, 40))
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
                    at = Some((f.clone(), line, col));
                    break;
                }
            }
        }
        Fault { word, msg: e.0, at }
    }

    fn restore_journal(&mut self) {
        let low = self.low_water.min(self.stack.len());
        self.stack.truncate(low);
        while let Some(v) = self.journal.pop() {
            self.stack.push(v);
        }
    }

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

    /// The checks before a call: execution depth, budget, interrupt.
    fn may_call(&self, left: &mut u64) -> Result<(), WordError> {
        if self.calls.len() + 1 >= MAX_DEPTH {
            return Err(WordError::new(format!(
                "execution depth limit ({MAX_DEPTH}) exceeded"
            )));
        }
        self.tick(left, 1)
    }

    /// Two numbers of the current frame (second, top), left on the stack.
    #[inline(always)]
    fn two_ints(&self) -> Result<(i64, i64), WordError> {
        let len = self.stack.len();
        if self.depth() < 2 {
            return Err(underflow());
        }
        match (&self.stack[len - 2].0, &self.stack[len - 1].0) {
            (Repr::Int(a), Repr::Int(b)) => Ok((*a, *b)),
            (a, b) => {
                let a = Value(a.clone()).as_int()?;
                let b = Value(b.clone()).as_int()?;
                Ok((a, b))
            }
        }
    }

    /// Integer fast path of the binary operators: both operands are cached integers, so the
    /// result overwrites the second one in place and nothing needs dropping.
    #[inline(always)]
    fn int_pair_in_place(&mut self, f: impl Fn(i64, i64) -> Option<i64>) -> bool {
        let len = self.stack.len();
        if len < self.fbase + 2 {
            return false;
        }
        let r = match (&self.stack[len - 2].0, &self.stack[len - 1].0) {
            (Repr::Int(a), Repr::Int(b)) => f(*a, *b),
            _ => None,
        };
        let Some(r) = r else {
            return false;
        };
        if let Some(top) = self.stack.pop() {
            // An integer owns nothing: skip the drop glue.
            std::mem::forget(top);
        }
        if let Some(Value(Repr::Int(x))) = self.stack.last_mut() {
            *x = r;
        }
        true
    }

    #[inline(always)]
    fn binary(&mut self, f: fn(i64, i64) -> Option<i64>, what: &str) -> Result<(), WordError> {
        if self.int_pair_in_place(f) {
            return Ok(());
        }
        let (a, b) = self.two_ints()?;
        let r =
            f(a, b).ok_or_else(|| WordError::new(format!("{what} of {a} and {b} overflows")))?;
        self.stack.pop();
        if let Some(top) = self.stack.last_mut() {
            *top = Value::int(r);
        }
        Ok(())
    }

    /// `+` and `*`: alone in its frame, the missing operand is the identity.
    #[inline(always)]
    fn additive(&mut self, f: fn(i64, i64) -> Option<i64>, what: &str) -> Result<(), WordError> {
        if self.int_pair_in_place(f) {
            return Ok(());
        }
        if self.depth() == 1 {
            let n = self.peek(0)?.as_int()?;
            if let Some(top) = self.stack.last_mut() {
                *top = Value::int(n);
            }
            return Ok(());
        }
        self.binary(f, what)
    }

    #[inline(always)]
    fn compare(&mut self, f: fn(i64, i64) -> bool) -> Result<(), WordError> {
        if self.int_pair_in_place(|a, b| Some(f(a, b) as i64)) {
            return Ok(());
        }
        let (a, b) = self.two_ints()?;
        self.stack.pop();
        if let Some(top) = self.stack.last_mut() {
            *top = Value::int(f(a, b) as i64);
        }
        Ok(())
    }

    /// A fused `n OP` failed: leave the stack as the unfused pair would have (literal pushed).
    #[cold]
    fn fail_imm(&mut self, n: i64, e: WordError) -> WordError {
        match self.push_fast(Value::int(n)) {
            Ok(()) => e,
            Err(overflow) => overflow,
        }
    }

    #[inline(always)]
    fn top_int(&self) -> Result<i64, WordError> {
        if self.depth() == 0 {
            return Err(underflow());
        }
        match self.stack.last() {
            Some(Value(Repr::Int(a))) => Ok(*a),
            Some(v) => v.as_int(),
            None => Err(underflow()),
        }
    }

    #[inline(always)]
    fn set_top(&mut self, v: Value) {
        if let Some(top) = self.stack.last_mut() {
            *top = v;
        }
    }

    #[inline(always)]
    fn binary_imm(
        &mut self,
        n: i64,
        f: fn(i64, i64) -> Option<i64>,
        what: &str,
        identity: bool,
    ) -> Result<(), WordError> {
        if identity && self.depth() == 0 {
            return self.push_fast(Value::int(n));
        }
        let r = self.top_int().and_then(|a| {
            f(a, n).ok_or_else(|| WordError::new(format!("{what} of {a} and {n} overflows")))
        });
        match r {
            Ok(r) => {
                self.set_top(Value::int(r));
                Ok(())
            }
            Err(e) => Err(self.fail_imm(n, e)),
        }
    }

    #[inline(always)]
    fn compare_imm(&mut self, n: i64, f: fn(i64, i64) -> bool) -> Result<(), WordError> {
        match self.top_int() {
            Ok(a) => {
                self.set_top(Value::int(f(a, n) as i64));
                Ok(())
            }
            Err(e) => Err(self.fail_imm(n, e)),
        }
    }

    fn equal_imm(&mut self, n: i64, negate: bool) -> Result<(), WordError> {
        if self.depth() == 0 {
            return Err(self.fail_imm(n, underflow()));
        }
        let eq = match self.stack.last() {
            Some(v) => super::words::values_equal(v, &Value::int(n)),
            None => false,
        };
        self.set_top(Value::int((eq != negate) as i64));
        Ok(())
    }

    /// Charge the budget for `cost` instructions (at backward jumps and calls: straight-line
    /// code is bounded by its length) and poll the interrupt flag.
    #[inline(always)]
    fn tick(&self, left: &mut u64, cost: usize) -> Result<(), WordError> {
        *left = left.saturating_sub(cost as u64);
        if *left == 0 {
            return Err(WordError::new(format!(
                "instruction budget exhausted ({} instructions)",
                self.budget
            )));
        }
        self.interrupted()
    }

    fn equal(&mut self, negate: bool) -> Result<(), WordError> {
        let a = self.peek(1)?;
        let b = self.peek(0)?;
        let eq = super::words::values_equal(a, b);
        self.stack.pop();
        if let Some(top) = self.stack.last_mut() {
            *top = Value::int((eq != negate) as i64);
        }
        Ok(())
    }

    fn pop_flag(&mut self) -> Result<bool, WordError> {
        if self.depth() == 0 {
            return Err(WordError::new(UNDERFLOW));
        }
        Ok(self.stack.pop().map(|v| v.is_true()).unwrap_or(false))
    }

    fn load(&mut self, optional: bool) -> Result<Option<Arc<Chunk>>, WordError> {
        let name = self.peek(0)?.text();
        let text = match std::fs::read(&name) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                self.stack.pop();
                return Ok(None);
            }
            Err(e) => return Err(WordError::new(format!("cannot read \"{name}\": {e}"))),
        };
        let chunk = self
            .compile_source(Origin::File(name.as_str().into()), &text)
            .map_err(|errs| {
                let first = format_compile_error(Some(&name), &errs[0]).0;
                let first = first.replacen(" error:", "", 1);
                if errs.len() > 1 {
                    WordError::new(format!("{first} (and {} more errors)", errs.len() - 1))
                } else {
                    WordError::new(first)
                }
            })?;
        self.stack.pop();
        Ok(Some(chunk))
    }

    /// The run loop: one chunk at a time; calls and returns switch chunks here.
    fn run(&mut self, entry: Arc<Chunk>, out: &mut dyn Write) -> Result<Flow, Fault> {
        let mut chunk = entry;
        let mut ip = 0usize;
        let mut left = self.budget;
        loop {
            match self.run_chunk(&chunk, &mut ip, &mut left, out) {
                Transfer::Return => match self.calls.pop() {
                    None => return Ok(Flow::Continue),
                    Some(c) => {
                        self.truncate_frames(c.frames);
                        self.loops.truncate(c.loops);
                        chunk = c.chunk;
                        ip = c.ip;
                    }
                },
                Transfer::Call(callee) => {
                    let caller = std::mem::replace(&mut chunk, callee);
                    self.calls.push(CallFrame {
                        chunk: caller,
                        ip,
                        frames: self.frames.len(),
                        loops: self.loops.len(),
                    });
                    ip = 0;
                }
                Transfer::Bye => return Ok(Flow::Bye),
                Transfer::Fault(at, e) => return Err(self.fault(&chunk, at, e)),
            }
        }
    }

    /// Execute one chunk from `ip` until it ends, calls, or fails. The op slice stays in
    /// registers for the whole stretch.
    fn run_chunk(
        &mut self,
        chunk: &Chunk,
        ip: &mut usize,
        left: &mut u64,
        out: &mut dyn Write,
    ) -> Transfer {
        let ops = &chunk.ops[..];
        let mut pc = *ip;
        loop {
            let Some(&op) = ops.get(pc) else {
                return Transfer::Return;
            };
            let at = pc;
            pc += 1;
            let r: Result<(), WordError> = match op {
                Op::Int(n) => self.push_fast(Value::int(n as i64)),
                Op::Const(k) => match chunk.consts.get(k as usize) {
                    Some(v) => self.push_fast(v.clone()),
                    None => Err(WordError::new("bad constant")),
                },
                Op::Add => self.additive(i64::checked_add, "sum"),
                Op::Mul => self.additive(i64::checked_mul, "product"),
                Op::Sub => self.binary(i64::checked_sub, "difference"),
                Op::Lt => self.compare(|a, b| a < b),
                Op::Gt => self.compare(|a, b| a > b),
                Op::Le => self.compare(|a, b| a <= b),
                Op::Ge => self.compare(|a, b| a >= b),
                Op::Eq => self.equal(false),
                Op::AddI(n) => self.binary_imm(n as i64, i64::checked_add, "sum", true),
                Op::MulI(n) => self.binary_imm(n as i64, i64::checked_mul, "product", true),
                Op::SubI(n) => self.binary_imm(n as i64, i64::checked_sub, "difference", false),
                Op::LtI(n) => self.compare_imm(n as i64, |a, b| a < b),
                Op::GtI(n) => self.compare_imm(n as i64, |a, b| a > b),
                Op::LeI(n) => self.compare_imm(n as i64, |a, b| a <= b),
                Op::GeI(n) => self.compare_imm(n as i64, |a, b| a >= b),
                Op::EqI(n) => self.equal_imm(n as i64, false),
                Op::NeI(n) => self.equal_imm(n as i64, true),
                Op::Ne => self.equal(true),
                Op::Dup => match self.peek(0) {
                    Ok(v) => {
                        let v = v.clone();
                        self.push_fast(v)
                    }
                    Err(e) => Err(e),
                },
                Op::Drop => {
                    if self.depth() == 0 {
                        Err(underflow())
                    } else {
                        self.stack.pop();
                        Ok(())
                    }
                }
                Op::Swap => {
                    if self.depth() < 2 {
                        Err(underflow())
                    } else {
                        let n = self.stack.len();
                        self.stack.swap(n - 1, n - 2);
                        Ok(())
                    }
                }
                Op::Over => match self.peek(1) {
                    Ok(v) => {
                        let v = v.clone();
                        self.push_fast(v)
                    }
                    Err(e) => Err(e),
                },
                Op::Jump(t) => {
                    let from = pc;
                    pc = t as usize;
                    if pc < from {
                        self.tick(left, from - pc)
                    } else {
                        Ok(())
                    }
                }
                Op::JumpFalse(t) => match self.pop_flag() {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        let from = pc;
                        pc = t as usize;
                        if pc < from {
                            self.tick(left, from - pc)
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => Err(e),
                },
                Op::Do => match self.two_ints() {
                    Ok((limit, start)) => {
                        self.stack.truncate(self.stack.len() - 2);
                        self.loops.push(LoopFrame {
                            index: start,
                            limit,
                            frames: self.frames.len(),
                        });
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Op::Loop(t) => match self.loops.last_mut() {
                    Some(l) => match l.index.checked_add(1) {
                        Some(i) if i < l.limit => {
                            l.index = i;
                            let from = pc;
                            pc = t as usize;
                            self.tick(left, from.saturating_sub(pc))
                        }
                        _ => {
                            self.loops.pop();
                            Ok(())
                        }
                    },
                    None => Err(WordError::new("not inside a loop")),
                },
                Op::PlusLoop(t) => match self.peek(0).and_then(|v| v.as_int()) {
                    Ok(step) => {
                        self.stack.pop();
                        match self.loops.last_mut() {
                            Some(l) => {
                                let next = l.index.checked_add(step);
                                let go_on = match next {
                                    Some(i) if step >= 0 => i < l.limit,
                                    Some(i) => i >= l.limit,
                                    None => false,
                                };
                                if go_on {
                                    l.index = next.unwrap_or(0);
                                    let from = pc;
                                    pc = t as usize;
                                    self.tick(left, from.saturating_sub(pc))
                                } else {
                                    self.loops.pop();
                                    Ok(())
                                }
                            }
                            None => Err(WordError::new("not inside a loop")),
                        }
                    }
                    Err(e) => Err(e),
                },
                Op::Leave(t) => {
                    if let Some(l) = self.loops.pop() {
                        self.truncate_frames(l.frames);
                    }
                    pc = t as usize;
                    Ok(())
                }
                Op::I | Op::J => {
                    let back = if op == Op::I { 1 } else { 2 };
                    let n = self.loops.len();
                    match n.checked_sub(back).map(|k| self.loops[k].index) {
                        Some(i) => self.push_fast(Value::int(i)),
                        None => Err(WordError::new("not inside a loop")),
                    }
                }
                Op::Exit => return Transfer::Return,
                Op::Bye => return Transfer::Bye,
                Op::FrameOpen => {
                    self.fbase = self.stack.len();
                    self.frames.push(self.fbase);
                    Ok(())
                }
                Op::FrameClose => {
                    let n = self.frames.len().saturating_sub(1);
                    self.truncate_frames(n);
                    Ok(())
                }
                Op::Load | Op::LoadIfPresent => match self.load(op == Op::LoadIfPresent) {
                    Ok(Some(callee)) => match self.may_call(left) {
                        Ok(()) => {
                            *ip = pc;
                            return Transfer::Call(callee);
                        }
                        Err(e) => Err(e),
                    },
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                Op::Builtin(b) => match BUILTINS.get(b as usize).map(|b| &b.kind) {
                    Some(Kind::Fn(f)) => self.call_fn(f, out),
                    _ => Err(WordError::new("not callable")),
                },
                Op::Bare(sym) => match self.dict.entries.get(sym as usize) {
                    Some(Entry::Word { chunk: c, .. }) => {
                        let c = c.clone();
                        match self.may_call(left) {
                            Ok(()) => {
                                *ip = pc;
                                return Transfer::Call(c);
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Some(Entry::Host { f, .. }) => {
                        let f = f.clone();
                        self.call_fn(&*f, out)
                    }
                    Some(Entry::Builtin(b)) => match BUILTINS.get(*b as usize).map(|b| &b.kind) {
                        Some(Kind::Fn(f)) => self.call_fn(f, out),
                        _ => Err(WordError::new("cannot be called here")),
                    },
                    Some(_) => {
                        let v = self.dict.as_value[sym as usize].clone();
                        self.push_fast(v)
                    }
                    None => Err(WordError::new("unknown name")),
                },
            };
            if let Err(e) = r {
                return Transfer::Fault(at, e);
            }
        }
    }
}
