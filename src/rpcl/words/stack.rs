//! Stack words: `dup` `drop` `swap` `over` (own instructions), `rot` `pick` `depth` `2drop`,
//! `.cs` `.s`.

use super::io::bracketed;
use crate::rpcl::chunk::Op;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::op("dup", "duplicate the top item ( a - a a )", Op::Dup),
    Builtin::op("drop", "discard the top item ( a - )", Op::Drop),
    Builtin::op("swap", "exchange the top two items ( a b - b a )", Op::Swap),
    Builtin::op(
        "over",
        "copy the second item to the top ( a b - a b a )",
        Op::Over,
    ),
    Builtin::word(
        "rot",
        "rotate the third item to the top ( a b c - b c a )",
        rot,
    ),
    Builtin::word(
        "pick",
        "copy the item u below the top, 0 being the top ( xu ... x0 u - xu ... x0 xu )",
        pick,
    ),
    Builtin::word(
        "depth",
        "push the number of items in the current frame ( - n )",
        depth,
    ),
    Builtin::word("2drop", "discard the top two items ( a b - )", two_drop),
    Builtin::word(
        ".cs",
        "clear the stack (the current frame) ( ... - )",
        clear_stack,
    ),
    Builtin::word(
        ".s",
        "print the stack, bottom first, without changing it ( - )",
        dot_s,
    ),
];

fn rot(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.st.peek(2)?;
    let n = cx.st.stack.len();
    cx.st.stack[n - 3..].rotate_left(1);
    Ok(())
}

fn pick(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let u = cx.st.peek(0)?.as_int()?;
    let avail = cx.st.depth() as i64 - 1;
    if u < 0 || u >= avail {
        return Err(WordError::new(format!("cannot pick item {u} of {avail}")));
    }
    let v = cx.st.peek(u as usize + 1)?.clone();
    cx.pop()?;
    cx.push(v)
}

fn depth(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let d = cx.st.depth() as i64;
    cx.push_int(d)
}

fn two_drop(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.st.peek(1)?;
    cx.pop()?;
    cx.pop()?;
    Ok(())
}

fn clear_stack(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let base = cx.st.base();
    cx.st.stack.truncate(base);
    Ok(())
}

fn dot_s(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let base = cx.st.base();
    let mut s = String::new();
    for (i, v) in cx.st.stack[base..].iter().enumerate() {
        s.push_str(&format!("{i:2} {}\n", bracketed(v)));
    }
    cx.emit(s)
}
