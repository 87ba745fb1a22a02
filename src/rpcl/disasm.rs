//! The disassembler behind `ethertap check --disasm`: one instruction a line.

use super::chunk::{Chunk, LoopDir, Op};
use super::dict::Dict;
use std::fmt::Write as _;

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
            Op::Builtin(b) => format!(
                "builtin   {}",
                dict.builtin(*b as usize).map_or("?", |b| b.name)
            ),
            Op::Jump(t) => format!("jump      {t:04}"),
            Op::JumpFalse(t) => format!("jump-if-0 {t:04}"),
            Op::Do { exit, dir } => match dir {
                LoopDir::Up => format!("do        {exit:04}"),
                LoopDir::Down => format!("do down   {exit:04}"),
                LoopDir::Computed => format!("do step?  {exit:04}"),
            },
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

/// The mnemonic of an instruction without operand: the word it was compiled from.
fn op_name(op: Op) -> &'static str {
    match op {
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
