//! Tokens → bytecode. Control structures become jumps here; bare tokens that name built-ins
//! (which never change) are bound now, every other name is bound when it runs.

use super::chunk::{Chunk, LoopDir, Op, Origin};
use super::dict::{valid_name, Dict, Entry, Kind};
use super::error::{CompileError, CompileErrorKind};
use super::lexer::{Token, TokenKind};
use super::limits::MAX_STRING;
use super::value::{canonical_int, parse_number, Repr, Value};
use super::warn::{literal_bodies, Finding, Lint};

use CompileErrorKind::{
    DictFull, LongString, LongToken, Missing, NoMatching, NotInside, UnknownControl,
};

const ONE_LOOP: &str = "\"do\" … \"loop\"";
const TWO_LOOPS: &str = "two nested \"do\" … \"loop\"";

/// An open control structure and where its jumps are to be patched.
enum Ctl {
    If(usize),
    Else(usize),
    Begin(usize),
    While { begin: usize, at: usize },
    Do { body: usize, leaves: Vec<usize> },
    Frame,
}

struct Open<'t> {
    ctl: Ctl,
    tok: &'t Token,
}

struct Compiler<'t> {
    chunk: Chunk,
    /// The warnings' bookkeeping; `None` when this text is not linted (a compound word's
    /// body compiled by `!!` at run time was linted with the text that defined it).
    lint: Option<Lint<'t>>,
    /// The latest jump target: a literal before it cannot fuse with an operator at it.
    label: usize,
    /// Where the open `do` structures are in `open` (`i`, `j` and `leave` look for them).
    do_at: Vec<usize>,
    open: Vec<Open<'t>>,
    errors: Vec<CompileError>,
}

impl<'t> Compiler<'t> {
    fn emit(&mut self, op: Op, tok: &Token) -> usize {
        let at = self.chunk.ops.len();
        if let (Some(&Op::Int(n)), true) = (self.chunk.ops.last(), self.label != at) {
            let fused = match op {
                Op::Add => Some(Op::AddI(n)),
                Op::Sub => Some(Op::SubI(n)),
                Op::Mul => Some(Op::MulI(n)),
                Op::Lt => Some(Op::LtI(n)),
                Op::Gt => Some(Op::GtI(n)),
                Op::Le => Some(Op::LeI(n)),
                Op::Ge => Some(Op::GeI(n)),
                Op::Eq => Some(Op::EqI(n)),
                Op::Ne => Some(Op::NeI(n)),
                _ => None,
            };
            if let Some(f) = fused {
                self.chunk.ops[at - 1] = f;
                self.chunk.pos[at - 1] = (tok.line, tok.col);
                self.chunk.toks[at - 1] = tok.text.as_str().into();
                return at - 1;
            }
        }
        self.chunk.ops.push(op);
        self.chunk.pos.push((tok.line, tok.col));
        self.chunk.toks.push(tok.text.as_str().into());
        self.chunk.ops.len() - 1
    }

    fn here(&self) -> u32 {
        self.chunk.ops.len() as u32
    }

    fn patch(&mut self, at: usize, target: u32) {
        self.label = target as usize;
        match &mut self.chunk.ops[at] {
            Op::Jump(t) | Op::JumpFalse(t) | Op::Leave(t) | Op::Do { exit: t, .. } => *t = target,
            _ => {}
        }
    }

    fn error(&mut self, tok: &Token, kind: CompileErrorKind) {
        self.errors.push(CompileError {
            line: tok.line,
            col: tok.col,
            word: super::value::shorten(&tok.text, 40),
            kind,
        });
    }

    fn push_const(&mut self, v: Value, tok: &Token) {
        let op = match v.0 {
            Repr::Int(n) if i32::try_from(n).is_ok() => Op::Int(n as i32),
            _ => {
                self.chunk.consts.push(v);
                Op::Const(self.chunk.consts.len() as u32 - 1)
            }
        };
        self.emit(op, tok);
    }

    /// A control word: structures open and close here, and their jumps are patched.
    fn control(&mut self, tok: &'t Token) {
        match tok.text.as_str() {
            "if" | "else" | "then" => self.conditional(tok),
            "begin" | "until" | "while" | "repeat" => self.indefinite_loop(tok),
            "do" | "loop" | "+loop" => self.counted_loop(tok),
            "leave" => self.leave(tok),
            "i" | "j" => self.loop_index(tok),
            "{" | "}" => self.frame(tok),
            _ => self.error(tok, UnknownControl),
        }
    }

    fn push_open(&mut self, ctl: Ctl, tok: &'t Token) {
        self.open.push(Open { ctl, tok });
    }

    /// The innermost open structure.
    fn top(&self) -> Option<&Ctl> {
        self.open.last().map(|o| &o.ctl)
    }

    /// Point the jump at `at` to the next instruction.
    fn patch_here(&mut self, at: usize) {
        let here = self.here();
        self.patch(at, here);
    }

    /// `if` … [`else` …] `then`
    fn conditional(&mut self, tok: &'t Token) {
        match (tok.text.as_str(), self.top()) {
            ("if", _) => {
                let at = self.emit(Op::JumpFalse(0), tok);
                self.push_open(Ctl::If(at), tok);
            }
            ("else", Some(&Ctl::If(at))) => {
                let jump = self.emit(Op::Jump(0), tok);
                self.patch_here(at);
                self.open.pop();
                self.push_open(Ctl::Else(jump), tok);
            }
            ("then", Some(&(Ctl::If(at) | Ctl::Else(at)))) => {
                self.patch_here(at);
                self.open.pop();
            }
            _ => self.error(tok, NoMatching("\"if\"")),
        }
    }

    /// `begin` … `until`, `begin` … `while` … `repeat`
    fn indefinite_loop(&mut self, tok: &'t Token) {
        match (tok.text.as_str(), self.top()) {
            ("begin", _) => {
                let here = self.chunk.ops.len();
                self.label = here;
                self.push_open(Ctl::Begin(here), tok);
            }
            ("until", Some(&Ctl::Begin(begin))) => {
                self.emit(Op::JumpFalse(begin as u32), tok);
                self.open.pop();
            }
            ("while", Some(&Ctl::Begin(begin))) => {
                let at = self.emit(Op::JumpFalse(0), tok);
                self.open.pop();
                self.push_open(Ctl::While { begin, at }, tok);
            }
            ("repeat", Some(&Ctl::While { begin, at })) => {
                self.emit(Op::Jump(begin as u32), tok);
                self.patch_here(at);
                self.open.pop();
            }
            ("repeat", _) => self.error(tok, NoMatching("\"begin\" … \"while\"")),
            _ => self.error(tok, NoMatching("\"begin\"")),
        }
    }

    /// `do` … `loop` / `+loop`; the `leave`s inside jump past the end.
    fn counted_loop(&mut self, tok: &'t Token) {
        match (tok.text.as_str(), self.top()) {
            ("do", _) => {
                self.emit(
                    Op::Do {
                        exit: 0,
                        dir: LoopDir::Up,
                    },
                    tok,
                );
                let body = self.chunk.ops.len();
                self.label = body;
                self.do_at.push(self.open.len());
                self.push_open(
                    Ctl::Do {
                        body,
                        leaves: Vec::new(),
                    },
                    tok,
                );
            }
            (name, Some(&Ctl::Do { body, .. })) => {
                let dir = if name == "loop" {
                    LoopDir::Up
                } else {
                    self.step_direction()
                };
                let op = if name == "loop" {
                    Op::Loop(body as u32)
                } else {
                    Op::PlusLoop(body as u32)
                };
                self.emit(op, tok);
                let here = self.here();
                if let Some(Op::Do { dir: d, .. }) = self.chunk.ops.get_mut(body - 1) {
                    *d = dir;
                }
                self.patch(body - 1, here);
                self.do_at.pop();
                if let Some(Open {
                    ctl: Ctl::Do { leaves, .. },
                    ..
                }) = self.open.pop()
                {
                    for at in leaves {
                        self.patch(at, here);
                    }
                }
            }
            _ => self.error(tok, NoMatching("\"do\"")),
        }
    }

    /// The direction of a `+loop` about to be emitted: known when a number literal right
    /// before it is its step on every path (no jump lands between the two).
    fn step_direction(&self) -> LoopDir {
        match self.chunk.ops.last() {
            Some(&Op::Int(n)) if self.label != self.chunk.ops.len() => {
                if n < 0 {
                    LoopDir::Down
                } else {
                    LoopDir::Up
                }
            }
            _ => LoopDir::Computed,
        }
    }

    fn leave(&mut self, tok: &'t Token) {
        let Some(&innermost) = self.do_at.last() else {
            return self.error(tok, NotInside(ONE_LOOP));
        };
        let at = self.emit(Op::Leave(0), tok);
        if let Some(Open {
            ctl: Ctl::Do { leaves, .. },
            ..
        }) = self.open.get_mut(innermost)
        {
            leaves.push(at);
        }
    }

    /// `i` and `j`: the index of the innermost and the next outer loop.
    fn loop_index(&mut self, tok: &'t Token) {
        let (need, op, loops) = if tok.text == "i" {
            (1, Op::I, ONE_LOOP)
        } else {
            (2, Op::J, TWO_LOOPS)
        };
        if self.do_at.len() < need {
            self.error(tok, NotInside(loops));
        } else {
            self.emit(op, tok);
        }
    }

    /// `{` … `}`
    fn frame(&mut self, tok: &'t Token) {
        match (tok.text.as_str(), self.top()) {
            ("{", _) => {
                self.emit(Op::FrameOpen, tok);
                self.push_open(Ctl::Frame, tok);
            }
            ("}", Some(Ctl::Frame)) => {
                self.emit(Op::FrameClose, tok);
                self.open.pop();
            }
            _ => self.error(tok, NoMatching("\"{\"")),
        }
    }

    fn token(&mut self, tok: &'t Token, dict: &mut Dict) {
        let text = tok.text.as_str();
        if tok.kind == TokenKind::Str {
            if tok.text.len() > MAX_STRING {
                self.error(tok, LongString(tok.text.len()));
            }
            self.push_const(Value::string(&tok.text), tok);
            return;
        }
        if let Some(Entry::Builtin(i)) = dict.entry(text) {
            let i = *i;
            match dict.builtin(i as usize).map(|b| b.kind) {
                Some(Kind::Fn(_)) => {
                    self.emit(Op::Builtin(i as u32), tok);
                }
                Some(Kind::Op(op)) => {
                    self.emit(op, tok);
                }
                Some(Kind::Control) => self.control(tok),
                None => self.error(tok, UnknownControl),
            }
            return;
        }
        if let Some(n) = canonical_int(text.as_bytes()) {
            self.push_const(Value::int(n), tok);
            return;
        }
        if text.len() > MAX_STRING {
            self.error(tok, LongToken(text.len()));
        }
        // Numbers and names that cannot be defined never execute: push them as they are.
        if !valid_name(text) || parse_number(text.as_bytes()).is_ok() {
            self.push_const(Value::string(text), tok);
            return;
        }
        if let Some(lint) = &mut self.lint {
            lint.bare(text, tok.line, tok.col, dict);
        }
        match dict.intern(text) {
            Ok(sym) => {
                self.emit(Op::Bare(sym), tok);
            }
            Err(e) => self.error(tok, DictFull(e.to_string())),
        }
    }
}

/// What compiling a text gives: the chunk, every error (a chunk with errors is never run) and
/// the warnings.
pub(crate) struct Compiled {
    pub chunk: Chunk,
    pub errors: Vec<CompileError>,
    pub warnings: Vec<Finding>,
}

/// Compile a token list; `lint` asks for the warnings too.
pub(crate) fn compile(tokens: &[Token], origin: Origin, dict: &mut Dict, lint: bool) -> Compiled {
    let bodies = if lint {
        literal_bodies(tokens)
    } else {
        Vec::new()
    };
    let mut c = Compiler {
        chunk: Chunk {
            ops: Vec::with_capacity(tokens.len()),
            pos: Vec::with_capacity(tokens.len()),
            toks: Vec::with_capacity(tokens.len()),
            consts: Vec::new(),
            origin,
        },
        lint: lint.then(|| Lint::new(tokens, &bodies)),
        open: Vec::new(),
        errors: Vec::new(),
        label: 0,
        do_at: Vec::new(),
    };
    let mut next_body = bodies.iter().peekable();
    for (i, tok) in tokens.iter().enumerate() {
        if let (Some((at, body)), Some(lint)) = (next_body.peek(), &mut c.lint) {
            if *at == i {
                lint.body(tok, body, dict);
                next_body.next();
            }
        }
        c.token(tok, dict);
    }
    for o in std::mem::take(&mut c.open) {
        let closer = match o.ctl {
            Ctl::If(_) | Ctl::Else(_) => "\"then\"",
            Ctl::Begin(_) => "\"until\" or \"repeat\"",
            Ctl::While { .. } => "\"repeat\"",
            Ctl::Do { .. } => "\"loop\" or \"+loop\"",
            Ctl::Frame => "\"}\"",
        };
        c.error(o.tok, Missing(closer));
    }
    let mut warnings = c.lint.map(|l| l.findings).unwrap_or_default();
    warnings.sort_by_key(|w| (w.line, w.col));
    Compiled {
        chunk: c.chunk,
        errors: c.errors,
        warnings,
    }
}
