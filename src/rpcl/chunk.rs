//! Bytecode: the instructions ([`Op`]), a compiled unit ([`Chunk`]) and where it came from
//! ([`Origin`]). Data only: the compiler writes chunks, the VM runs them, the disassembler
//! prints them.

use super::value::Value;
use std::sync::Arc;

/// One instruction. Jump targets are op indices in the same chunk.
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
    /// `do`: enter the body if the index starts on the running side of the limit (the
    /// direction the loop counts in), else jump to `exit`, past `loop` / `+loop`.
    Do {
        exit: u32,
        dir: LoopDir,
    },
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

/// Which way a counted loop runs, as far as the compiler can tell: it decides whether `do`
/// enters the body at all (docs/rpcl.md, "Control structures").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoopDir {
    /// `loop`, or `+loop` after a literal step ≥ 0: runs while index < limit.
    Up,
    /// `+loop` after a literal negative step: runs while index ≥ limit.
    Down,
    /// `+loop` with a step computed in the body, unknown before the first pass: enters
    /// unless start and limit are equal.
    Computed,
}

/// Where a chunk's source came from: decides how its errors are placed.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A console line or `eval`: errors carry no position.
    Line,
    /// A script or a loaded file.
    File(Arc<str>),
    /// A compound word body: errors are placed at the caller.
    Word,
}

/// A compiled unit: a script, a console line, a loaded file or a compound word's body.
pub(crate) struct Chunk {
    /// The instructions.
    pub ops: Vec<Op>,
    /// Line and column of each op's token.
    pub pos: Vec<(u32, u32)>,
    /// The token of each op, for error messages.
    pub toks: Vec<Box<str>>,
    /// The constants that [`Op::Const`] pushes.
    pub consts: Vec<Value>,
    /// Where the source came from.
    pub origin: Origin,
}

impl Chunk {
    /// The bytes the chunk holds, as the dictionary's budget counts a compound word.
    pub fn heap_size(&self) -> usize {
        let per_op = std::mem::size_of::<Op>() + std::mem::size_of::<(u32, u32)>() + 16;
        self.ops.len() * per_op
            + self.toks.iter().map(|t| t.len()).sum::<usize>()
            + self.consts.iter().map(Value::heap_size).sum::<usize>()
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
