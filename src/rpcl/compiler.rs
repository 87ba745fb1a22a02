//! Tokens → bytecode. Control structures become jumps here; bare tokens that name built-ins
//! (which never change) are bound now, every other name is bound when it runs.

use super::dict::{valid_name, Dict, Entry};
use super::lexer::{Token, TokenKind};
use super::value::{canonical_int, parse_number, Value, MAX_STRING};
use super::words::{Kind, BUILTINS};
use std::fmt::Write as _;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Push a canonical decimal number that fits 32 bits (wider ones are constants): an op
    /// stays 8 bytes, one register.
    Int(i32),
    /// Push a constant of the chunk.
    Const(u32),
    /// Late-bound name: run the word it names now, or push the name.
    Bare(u32),
    /// A built-in implemented as a function.
    Builtin(u32),
    Jump(u32),
    JumpFalse(u32),
    Do,
    Loop(u32),
    PlusLoop(u32),
    Leave(u32),
    I,
    J,
    Exit,
    Bye,
    FrameOpen,
    FrameClose,
    Load,
    LoadIfPresent,
    // The hot words get their own instruction (no call, no journal).
    Add,
    Sub,
    Mul,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Dup,
    Drop,
    Swap,
    Over,
    // A number literal fused with the operator after it (`1 +`, `5 <`).
    AddI(i32),
    SubI(i32),
    MulI(i32),
    LtI(i32),
    GtI(i32),
    LeI(i32),
    GeI(i32),
    EqI(i32),
    NeI(i32),
}

#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A console line or `eval`: errors carry no position.
    Line,
    File(Arc<str>),
    /// A compound word body: errors are placed at the caller.
    Word,
}

pub(crate) struct Chunk {
    pub ops: Vec<Op>,
    /// Line and column of each op's token.
    pub pos: Vec<(u32, u32)>,
    /// The token of each op, for error messages.
    pub toks: Vec<Box<str>>,
    pub consts: Vec<Value>,
    pub origin: Origin,
}

#[derive(Clone, Debug)]
pub(crate) struct CompileError {
    pub line: u32,
    pub col: u32,
    pub word: String,
    pub msg: String,
}

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
            Op::Jump(t) | Op::JumpFalse(t) | Op::Leave(t) => *t = target,
            _ => {}
        }
    }

    fn error(&mut self, tok: &Token, msg: String) {
        self.errors.push(CompileError {
            line: tok.line,
            col: tok.col,
            word: super::value::shorten(&tok.text, 40),
            msg,
        });
    }

    fn push_const(&mut self, v: Value, tok: &Token) {
        let op = match v.0 {
            super::value::Repr::Int(n) if i32::try_from(n).is_ok() => Op::Int(n as i32),
            _ => {
                self.chunk.consts.push(v);
                Op::Const(self.chunk.consts.len() as u32 - 1)
            }
        };
        self.emit(op, tok);
    }

    fn loops_open(&self) -> usize {
        self.do_at.len()
    }

    fn control(&mut self, tok: &'t Token) {
        let name = tok.text.as_str();
        let top = self.open.last().map(|o| &o.ctl);
        match name {
            "if" => {
                let at = self.emit(Op::JumpFalse(0), tok);
                self.open.push(Open {
                    ctl: Ctl::If(at),
                    tok,
                });
            }
            "else" => {
                if let Some(Ctl::If(at)) = top {
                    let at = *at;
                    let jump = self.emit(Op::Jump(0), tok);
                    let here = self.here();
                    self.patch(at, here);
                    self.open.pop();
                    self.open.push(Open {
                        ctl: Ctl::Else(jump),
                        tok,
                    });
                } else {
                    self.error(tok, "no matching \"if\"".into());
                }
            }
            "then" => {
                if let Some(Ctl::If(at) | Ctl::Else(at)) = top {
                    let at = *at;
                    let here = self.here();
                    self.patch(at, here);
                    self.open.pop();
                } else {
                    self.error(tok, "no matching \"if\"".into());
                }
            }
            "begin" => {
                let here = self.chunk.ops.len();
                self.label = here;
                self.open.push(Open {
                    ctl: Ctl::Begin(here),
                    tok,
                });
            }
            "until" => {
                if let Some(Ctl::Begin(b)) = top {
                    let b = *b as u32;
                    self.emit(Op::JumpFalse(b), tok);
                    self.open.pop();
                } else {
                    self.error(tok, "no matching \"begin\"".into());
                }
            }
            "while" => {
                if let Some(Ctl::Begin(b)) = top {
                    let begin = *b;
                    let at = self.emit(Op::JumpFalse(0), tok);
                    self.open.pop();
                    self.open.push(Open {
                        ctl: Ctl::While { begin, at },
                        tok,
                    });
                } else {
                    self.error(tok, "no matching \"begin\"".into());
                }
            }
            "repeat" => {
                if let Some(Ctl::While { begin, at }) = top {
                    let (begin, at) = (*begin as u32, *at);
                    self.emit(Op::Jump(begin), tok);
                    let here = self.here();
                    self.patch(at, here);
                    self.open.pop();
                } else {
                    self.error(tok, "no matching \"begin\" … \"while\"".into());
                }
            }
            "do" => {
                self.emit(Op::Do, tok);
                let body = self.chunk.ops.len();
                self.label = body;
                self.do_at.push(self.open.len());
                self.open.push(Open {
                    ctl: Ctl::Do {
                        body,
                        leaves: Vec::new(),
                    },
                    tok,
                });
            }
            "loop" | "+loop" => {
                if let Some(Ctl::Do { body, .. }) = top {
                    let body = *body as u32;
                    let op = if name == "loop" {
                        Op::Loop(body)
                    } else {
                        Op::PlusLoop(body)
                    };
                    self.emit(op, tok);
                    let here = self.here();
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
                } else {
                    self.error(tok, "no matching \"do\"".into());
                }
            }
            "leave" => {
                if self.loops_open() == 0 {
                    self.error(tok, "not inside \"do\" … \"loop\"".into());
                    return;
                }
                let at = self.emit(Op::Leave(0), tok);
                let innermost = self.do_at.last().copied().unwrap_or(0);
                if let Some(Open {
                    ctl: Ctl::Do { leaves, .. },
                    ..
                }) = self.open.get_mut(innermost)
                {
                    leaves.push(at);
                }
            }
            "i" | "j" => {
                let need = if name == "i" { 1 } else { 2 };
                if self.loops_open() < need {
                    let msg = if need == 1 {
                        "not inside \"do\" … \"loop\""
                    } else {
                        "not inside two nested \"do\" … \"loop\""
                    };
                    self.error(tok, msg.into());
                } else {
                    self.emit(if need == 1 { Op::I } else { Op::J }, tok);
                }
            }
            "{" => {
                self.emit(Op::FrameOpen, tok);
                self.open.push(Open {
                    ctl: Ctl::Frame,
                    tok,
                });
            }
            "}" => {
                if let Some(Ctl::Frame) = top {
                    self.emit(Op::FrameClose, tok);
                    self.open.pop();
                } else {
                    self.error(tok, "no matching \"{\"".into());
                }
            }
            _ => self.error(tok, "unknown control word".into()),
        }
    }

    fn token(&mut self, tok: &'t Token, dict: &mut Dict) {
        if tok.kind == TokenKind::Str {
            if tok.text.len() > MAX_STRING {
                let msg = format!(
                    "string of {} bytes is longer than {MAX_STRING}",
                    tok.text.len()
                );
                self.error(tok, msg);
            }
            self.push_const(Value::string(&tok.text), tok);
            return;
        }
        let text = tok.text.as_str();
        if let Some(Entry::Builtin(i)) = dict.entry(text) {
            let i = *i;
            match BUILTINS[i as usize].kind {
                Kind::Fn(_) => {
                    self.emit(Op::Builtin(i as u32), tok);
                }
                Kind::Op(op) => {
                    self.emit(op, tok);
                }
                Kind::Control => self.control(tok),
            }
            return;
        }
        if let Some(n) = canonical_int(text.as_bytes()) {
            self.push_const(Value::int(n), tok);
            return;
        }
        if text.len() > MAX_STRING {
            let msg = format!("token of {} bytes is longer than {MAX_STRING}", text.len());
            self.error(tok, msg);
        }
        // Numbers and names that cannot be defined never execute: push them as they are.
        if !valid_name(text) || parse_number(text.as_bytes()).is_ok() {
            self.push_const(Value::string(text), tok);
            return;
        }
        match dict.intern(text) {
            Ok(sym) => {
                self.emit(Op::Bare(sym), tok);
            }
            Err(_) => self.push_const(Value::string(text), tok),
        }
    }
}

/// Compile a token list. Every error of the unit is returned.
pub(crate) fn compile(
    tokens: &[Token],
    origin: Origin,
    dict: &mut Dict,
) -> Result<Chunk, Vec<CompileError>> {
    let mut c = Compiler {
        chunk: Chunk {
            ops: Vec::with_capacity(tokens.len()),
            pos: Vec::with_capacity(tokens.len()),
            toks: Vec::with_capacity(tokens.len()),
            consts: Vec::new(),
            origin,
        },
        open: Vec::new(),
        errors: Vec::new(),
        label: 0,
        do_at: Vec::new(),
    };
    for tok in tokens {
        c.token(tok, dict);
    }
    for o in std::mem::take(&mut c.open) {
        let msg = match o.ctl {
            Ctl::If(_) | Ctl::Else(_) => "missing \"then\"",
            Ctl::Begin(_) => "missing \"until\" or \"repeat\"",
            Ctl::While { .. } => "missing \"repeat\"",
            Ctl::Do { .. } => "missing \"loop\" or \"+loop\"",
            Ctl::Frame => "missing \"}\"",
        };
        c.error(o.tok, msg.into());
    }
    if c.errors.is_empty() {
        Ok(c.chunk)
    } else {
        c.errors.sort_by_key(|e| (e.line, e.col));
        Err(c.errors)
    }
}

/// One instruction a line: index, source position, mnemonic and operand.
pub(crate) fn disasm(chunk: &Chunk, dict: &Dict) -> String {
    let mut s = String::new();
    for (i, op) in chunk.ops.iter().enumerate() {
        let (line, col) = chunk.pos[i];
        let text = match op {
            Op::Int(n) => format!("int       {n}"),
            Op::Const(k) => match chunk.consts.get(*k as usize) {
                Some(v) if v.is_data() => format!("const     {}", v.describe()),
                Some(v) => format!("string    {:?}", v.text()),
                None => "const     ?".into(),
            },
            Op::Bare(sym) => format!("name      {}", dict.name(*sym)),
            Op::Builtin(b) => format!("builtin   {}", BUILTINS[*b as usize].name),
            Op::Jump(t) => format!("jump      {t:04}"),
            Op::JumpFalse(t) => format!("jump-if-0 {t:04}"),
            Op::Loop(t) => format!("loop      {t:04}"),
            Op::PlusLoop(t) => format!("+loop     {t:04}"),
            Op::Leave(t) => format!("leave     {t:04}"),
            Op::Load => "load".into(),
            Op::LoadIfPresent => "load-if-present".into(),
            Op::AddI(n) => format!("+ int    {n}"),
            Op::SubI(n) => format!("- int    {n}"),
            Op::MulI(n) => format!("* int    {n}"),
            Op::LtI(n) => format!("< int    {n}"),
            Op::GtI(n) => format!("> int    {n}"),
            Op::LeI(n) => format!("<= int   {n}"),
            Op::GeI(n) => format!(">= int   {n}"),
            Op::EqI(n) => format!("= int    {n}"),
            Op::NeI(n) => format!("<> int   {n}"),
            other => op_name(*other).to_string(),
        };
        let _ = writeln!(s, "{i:04}  {:>9}  {text}", format!("{line}:{col}"));
    }
    s
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Do => "do",
        Op::I => "i",
        Op::J => "j",
        Op::Exit => "exit",
        Op::Bye => "bye",
        Op::FrameOpen => "{",
        Op::FrameClose => "}",
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::Lt => "<",
        Op::Gt => ">",
        Op::Le => "<=",
        Op::Ge => ">=",
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Dup => "dup",
        Op::Drop => "drop",
        Op::Swap => "swap",
        Op::Over => "over",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::Op;

    #[test]
    fn an_op_is_one_register() {
        assert_eq!(std::mem::size_of::<Op>(), 8);
    }
}
