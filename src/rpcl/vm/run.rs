//! The run loop: one chunk at a time, calls and returns switch chunks; the instructions that
//! the loop runs itself (stack shuffles, integer arithmetic and comparisons, loops and jumps)
//! and the out-of-line rest (calls, loads, frames).
//!
//! The instruction budget is charged at backward jumps (by the length of the loop body) and
//! at calls; the interrupt flag is polled at the same places.

use super::{underflow, CallFrame, LoopFrame, State, Step};
use crate::rpcl::chunk::{Chunk, LoopDir, Op, Origin};
use crate::rpcl::dict::{Entry, Kind};
use crate::rpcl::error::{IntOp, IntOverflow, LoadError, RpclError, WordError};
use crate::rpcl::limits::MAX_DEPTH;
use crate::rpcl::source::read_source;
use crate::rpcl::value::{values_equal, Repr, Value};
use crate::rpcl::Flow;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[cold]
#[inline(never)]
fn interrupted() -> WordError {
    WordError::Interrupted
}

/// How a stretch of one chunk ended.
enum Transfer {
    /// It ended (or `exit`).
    Return,
    /// It calls a compound word or a loaded file; it resumes at the index given.
    Call(Arc<Chunk>, usize),
    /// `bye`.
    Bye,
    /// A word waits; the chunk goes on at the index given once the wait is over.
    Wait(usize),
    /// The instruction at the index failed.
    Fault(usize, WordError),
}

/// What the run loop does after a call.
enum Next {
    /// Go on with the next instruction.
    Go,
    /// Run a compound word or a loaded file.
    Call(Arc<Chunk>),
    /// Pause: the word asked to wait.
    Wait,
}

impl State {
    /// The run loop: one chunk at a time, from `ip` of `entry` with `left` instructions of
    /// the budget; calls and returns switch chunks here. A waiting word pauses the whole
    /// text ([`Step::Wait`]).
    pub(super) fn run(
        &mut self,
        entry: Arc<Chunk>,
        ip: usize,
        mut left: u64,
        out: &mut dyn Write,
    ) -> Result<Step, RpclError> {
        let mut chunk = entry;
        let mut ip = ip;
        loop {
            match self.run_chunk(&chunk, ip, &mut left, out) {
                Transfer::Return => match self.calls.pop() {
                    None => return Ok(Step::Done(Flow::Continue)),
                    Some(c) => {
                        self.truncate_frames(c.frames);
                        self.loops.truncate(c.loops);
                        chunk = c.chunk;
                        ip = c.ip;
                    }
                },
                Transfer::Call(callee, resume) => {
                    let caller = std::mem::replace(&mut chunk, callee);
                    self.calls.push(CallFrame {
                        chunk: caller,
                        ip: resume,
                        frames: self.frames.len(),
                        loops: self.loops.len(),
                    });
                    ip = 0;
                }
                Transfer::Bye => return Ok(Step::Done(Flow::Bye)),
                Transfer::Wait(resume) => return Ok(Step::Wait(self.freeze(chunk, resume, left))),
                Transfer::Fault(at, e) => return Err(self.fault(&chunk, at, e)),
            }
        }
    }

    /// Execute one chunk from `ip` until it ends, calls, or fails. Only the instructions of
    /// loops and arithmetic are handled in the loop itself; calls and the rare instructions
    /// go out of line, so that the loop's state stays in registers.
    ///
    /// An instruction that fails leaves `pc` just after itself (jumps move it only once they
    /// cannot fail), so the loop needs no second register for the failing index.
    fn run_chunk(
        &mut self,
        chunk: &Chunk,
        ip: usize,
        left: &mut u64,
        out: &mut dyn Write,
    ) -> Transfer {
        let ops = &chunk.ops[..];
        let mut pc = ip;
        loop {
            let Some(&op) = ops.get(pc) else {
                return Transfer::Return;
            };
            pc += 1;
            let r: Result<(), WordError> = match op {
                Op::Int(n) => self.push_fast(Value::int(n as i64)),
                Op::Const(k) => match chunk.consts.get(k as usize) {
                    Some(v) => self.push_fast(v.clone()),
                    None => Err(WordError::new("bad constant")),
                },
                Op::Add => self.additive(i64::checked_add, IntOp::Sum),
                Op::Mul => self.additive(i64::checked_mul, IntOp::Product),
                Op::Sub => self.binary(i64::checked_sub, IntOp::Difference),
                Op::Lt => self.compare(|a, b| a < b),
                Op::Gt => self.compare(|a, b| a > b),
                Op::Le => self.compare(|a, b| a <= b),
                Op::Ge => self.compare(|a, b| a >= b),
                Op::Eq => self.equal(false),
                Op::Ne => self.equal(true),
                Op::AddI(n) => self.binary_imm(n as i64, i64::checked_add, IntOp::Sum, true),
                Op::MulI(n) => self.binary_imm(n as i64, i64::checked_mul, IntOp::Product, true),
                Op::SubI(n) => {
                    self.binary_imm(n as i64, i64::checked_sub, IntOp::Difference, false)
                }
                Op::LtI(n) => self.compare_imm(n as i64, |a, b| a < b),
                Op::GtI(n) => self.compare_imm(n as i64, |a, b| a > b),
                Op::LeI(n) => self.compare_imm(n as i64, |a, b| a <= b),
                Op::GeI(n) => self.compare_imm(n as i64, |a, b| a >= b),
                Op::EqI(n) => self.equal_imm(n as i64, false),
                Op::NeI(n) => self.equal_imm(n as i64, true),
                Op::Dup => self.copy(0),
                Op::Over => self.copy(1),
                Op::Drop => self.drop_top(),
                Op::Swap => self.swap_top(),
                Op::Jump(t) => self.jump(&mut pc, t, left),
                Op::JumpFalse(t) => match self.pop_flag() {
                    Ok(true) => Ok(()),
                    Ok(false) => self.jump(&mut pc, t, left),
                    Err(e) => Err(e),
                },
                Op::Do { exit, dir } => self.start_loop(&mut pc, exit, dir),
                Op::Loop(t) => self.next_iteration(&mut pc, t, left),
                Op::PlusLoop(t) => self.next_step(&mut pc, t, left),
                Op::I => self.loop_index(1),
                Op::J => self.loop_index(2),
                Op::Exit => return Transfer::Return,
                Op::Bye => return Transfer::Bye,
                Op::Leave(t) => {
                    self.leave();
                    pc = t as usize;
                    Ok(())
                }
                Op::FrameOpen => {
                    self.open_frame();
                    Ok(())
                }
                Op::FrameClose => {
                    self.close_frame();
                    Ok(())
                }
                Op::Load | Op::LoadIfPresent | Op::Builtin(_) | Op::Bare(_) => {
                    match self.call(op, left, out) {
                        Ok(Next::Go) => Ok(()),
                        Ok(Next::Call(callee)) => return Transfer::Call(callee, pc),
                        Ok(Next::Wait) => return Transfer::Wait(pc),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = r {
                return Transfer::Fault(pc - 1, e);
            }
        }
    }

    /// `dup` (`n` 0) and `over` (`n` 1).
    #[inline(always)]
    fn copy(&mut self, n: usize) -> Result<(), WordError> {
        let v = self.peek(n)?.clone();
        self.push_fast(v)
    }

    #[inline(always)]
    fn drop_top(&mut self) -> Result<(), WordError> {
        if self.depth() == 0 {
            return Err(underflow());
        }
        self.stack.pop();
        Ok(())
    }

    #[inline(always)]
    fn swap_top(&mut self) -> Result<(), WordError> {
        if self.depth() < 2 {
            return Err(underflow());
        }
        let n = self.stack.len();
        self.stack.swap(n - 1, n - 2);
        Ok(())
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
    fn binary(&mut self, f: fn(i64, i64) -> Option<i64>, op: IntOp) -> Result<(), WordError> {
        if self.int_pair_in_place(f) {
            return Ok(());
        }
        let (a, b) = self.two_ints()?;
        let r =
            f(a, b).ok_or_else(|| WordError::IntOverflow(Box::new(IntOverflow { op, a, b })))?;
        self.stack.pop();
        if let Some(top) = self.stack.last_mut() {
            *top = Value::int(r);
        }
        Ok(())
    }

    /// `+` and `*`: alone in its frame, the missing operand is the identity.
    #[inline(always)]
    fn additive(&mut self, f: fn(i64, i64) -> Option<i64>, op: IntOp) -> Result<(), WordError> {
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
        self.binary(f, op)
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
        op: IntOp,
        identity: bool,
    ) -> Result<(), WordError> {
        if identity && self.depth() == 0 {
            return self.push_fast(Value::int(n));
        }
        let r = self.top_int().and_then(|a| {
            f(a, n).ok_or_else(|| WordError::IntOverflow(Box::new(IntOverflow { op, a, b: n })))
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

    /// A fused `n OP` failed: leave the stack as the unfused pair would have (literal pushed).
    #[cold]
    fn fail_imm(&mut self, n: i64, e: WordError) -> WordError {
        match self.push_fast(Value::int(n)) {
            Ok(()) => e,
            Err(overflow) => overflow,
        }
    }

    fn equal(&mut self, negate: bool) -> Result<(), WordError> {
        let a = self.peek(1)?;
        let b = self.peek(0)?;
        let eq = values_equal(a, b);
        self.stack.pop();
        if let Some(top) = self.stack.last_mut() {
            *top = Value::int((eq != negate) as i64);
        }
        Ok(())
    }

    fn equal_imm(&mut self, n: i64, negate: bool) -> Result<(), WordError> {
        if self.depth() == 0 {
            return Err(self.fail_imm(n, underflow()));
        }
        let eq = match self.stack.last() {
            Some(v) => values_equal(v, &Value::int(n)),
            None => false,
        };
        self.set_top(Value::int((eq != negate) as i64));
        Ok(())
    }

    fn pop_flag(&mut self) -> Result<bool, WordError> {
        if self.depth() == 0 {
            return Err(underflow());
        }
        Ok(self.stack.pop().map(|v| v.is_true()).unwrap_or(false))
    }

    /// Go to `target`; a backward jump pays for the instructions it repeats.
    #[inline(always)]
    fn jump(&self, pc: &mut usize, target: u32, left: &mut u64) -> Result<(), WordError> {
        let target = target as usize;
        if target < *pc {
            self.tick(left, *pc - target)?;
        }
        *pc = target;
        Ok(())
    }

    /// Charge the budget for `cost` instructions (at backward jumps and calls: straight-line
    /// code is bounded by its length) and poll the interrupt flag.
    #[inline(always)]
    fn tick(&self, left: &mut u64, cost: usize) -> Result<(), WordError> {
        *left = left.saturating_sub(cost as u64);
        if *left == 0 {
            return Err(self.budget_exhausted());
        }
        self.interrupted()
    }

    #[cold]
    fn budget_exhausted(&self) -> WordError {
        WordError::Budget(self.budget)
    }

    #[inline(always)]
    fn interrupted(&self) -> Result<(), WordError> {
        if self.interrupt.load(Ordering::Relaxed) {
            Err(interrupted())
        } else {
            Ok(())
        }
    }

    /// `do`: `limit start` become a loop frame, or the loop is skipped when the index starts
    /// past the limit in the direction the loop counts.
    #[inline(always)]
    fn start_loop(&mut self, pc: &mut usize, exit: u32, dir: LoopDir) -> Result<(), WordError> {
        let (limit, start) = self.two_ints()?;
        self.stack.truncate(self.stack.len() - 2);
        let enter = match dir {
            LoopDir::Up => start < limit,
            LoopDir::Down => start >= limit,
            LoopDir::Computed => start != limit,
        };
        if enter {
            self.loops.push(LoopFrame {
                index: start,
                limit,
                frames: self.frames.len(),
            });
        } else {
            *pc = exit as usize;
        }
        Ok(())
    }

    /// `loop`: one more, back to the body at `body` while below the limit.
    #[inline(always)]
    fn next_iteration(
        &mut self,
        pc: &mut usize,
        body: u32,
        left: &mut u64,
    ) -> Result<(), WordError> {
        let Some(l) = self.loops.last_mut() else {
            return Err(WordError::new("not inside a loop"));
        };
        match l.index.checked_add(1) {
            Some(i) if i < l.limit => {
                l.index = i;
                self.jump(pc, body, left)
            }
            _ => {
                self.loops.pop();
                Ok(())
            }
        }
    }

    /// `+loop`: the step from the stack, back to `body` until the index crosses the limit.
    fn next_step(&mut self, pc: &mut usize, body: u32, left: &mut u64) -> Result<(), WordError> {
        let step = self.top_int()?;
        self.stack.pop();
        let Some(l) = self.loops.last_mut() else {
            return Err(WordError::new("not inside a loop"));
        };
        let go_on = match l.index.checked_add(step) {
            Some(i) if (step >= 0 && i < l.limit) || (step < 0 && i >= l.limit) => {
                l.index = i;
                true
            }
            _ => false,
        };
        if go_on {
            self.jump(pc, body, left)
        } else {
            self.loops.pop();
            Ok(())
        }
    }

    /// `i` (`back` 1) and `j` (`back` 2).
    #[inline(always)]
    fn loop_index(&mut self, back: usize) -> Result<(), WordError> {
        match self
            .loops
            .len()
            .checked_sub(back)
            .map(|k| self.loops[k].index)
        {
            Some(i) => self.push_fast(Value::int(i)),
            None => Err(WordError::new("not inside a loop")),
        }
    }

    /// `leave`: the innermost loop ends, and the frames opened in it close.
    fn leave(&mut self) {
        if let Some(l) = self.loops.pop() {
            self.truncate_frames(l.frames);
        }
    }

    /// `{`
    fn open_frame(&mut self) {
        self.fbase = self.stack.len();
        self.frames.push(self.fbase);
    }

    /// `}`
    fn close_frame(&mut self) {
        let n = self.frames.len().saturating_sub(1);
        self.truncate_frames(n);
    }

    /// The checks before a call: execution depth, budget, interrupt.
    fn may_call(&self, left: &mut u64) -> Result<(), WordError> {
        if self.calls.len() + 1 >= MAX_DEPTH {
            return Err(WordError::Depth);
        }
        self.tick(left, 1)
    }

    /// Everything that runs a word or a file: a built-in or host function runs here; a
    /// compound word or a loaded file is returned, to be called by [`State::run`].
    #[inline(never)]
    fn call(&mut self, op: Op, left: &mut u64, out: &mut dyn Write) -> Result<Next, WordError> {
        let callee = match op {
            Op::Load | Op::LoadIfPresent => match self.load(op == Op::LoadIfPresent)? {
                Some(callee) => callee,
                None => return Ok(Next::Go),
            },
            Op::Builtin(b) => {
                self.call_builtin(b as usize, out)?;
                return Ok(self.after_word());
            }
            Op::Bare(sym) => match self.dict.entries.get(sym as usize) {
                Some(Entry::Word { chunk, .. }) => chunk.clone(),
                Some(Entry::Host { f, .. }) => {
                    let f = f.clone();
                    self.call_fn(&*f, out)?;
                    return Ok(self.after_word());
                }
                Some(Entry::Builtin(b)) => {
                    self.call_builtin(*b as usize, out)?;
                    return Ok(self.after_word());
                }
                Some(_) => {
                    let v = self.dict.as_value[sym as usize].clone();
                    return self.push_fast(v).map(|_| Next::Go);
                }
                None => return Err(WordError::new("unknown name")),
            },
            _ => return Ok(Next::Go),
        };
        self.may_call(left)?;
        Ok(Next::Call(callee))
    }

    /// A word that asked to wait ([`crate::rpcl::Ctx::wait`]) pauses the text.
    #[inline(always)]
    fn after_word(&self) -> Next {
        if self.wait.is_some() {
            Next::Wait
        } else {
            Next::Go
        }
    }

    fn call_builtin(&mut self, b: usize, out: &mut dyn Write) -> Result<(), WordError> {
        match self.dict.builtin(b).map(|b| b.kind) {
            Some(Kind::Fn(f)) => self.call_fn(&f, out),
            _ => Err(WordError::new("cannot be called here")),
        }
    }

    fn load(&mut self, optional: bool) -> Result<Option<Arc<Chunk>>, WordError> {
        let name = self.peek(0)?.text();
        let text = match read_source(&name) {
            Ok(text) => text,
            Err(e) if optional && e.is_not_found() => {
                self.stack.pop();
                return Ok(None);
            }
            Err(e) => return Err(WordError::new(format!("cannot read \"{name}\": {e}"))),
        };
        let chunk = self
            .compile_source(Origin::File(name.as_str().into()), &text)
            .map_err(|errs| {
                WordError::DoesNotLoad(Box::new(LoadError {
                    file: name.clone(),
                    error: errs.first,
                    more: errs.rest.len(),
                }))
            })?;
        self.stack.pop();
        Ok(Some(chunk))
    }
}
