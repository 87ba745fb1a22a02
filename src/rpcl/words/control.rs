//! Control structures and frames: `if` … `leave` (resolved by the compiler), `exit` `bye`
//! (own instructions), `abort`; `{` `}` and `.exec-sp`.

use crate::rpcl::chunk::Op;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::control(
        "if",
        "run what follows up to else/then when the flag is true (false: the empty string or a number equal to zero) ( flag - )",
    ),
    Builtin::control(
        "else",
        "start the part of an if that runs when the flag is false ( - )",
    ),
    Builtin::control("then", "end an if ( - )"),
    Builtin::control(
        "begin",
        "start a loop: begin ... until, begin ... while ... repeat ( - )",
    ),
    Builtin::control(
        "until",
        "loop back to begin while the flag is false ( flag - )",
    ),
    Builtin::control(
        "while",
        "leave a begin ... repeat loop when the flag is false ( flag - )",
    ),
    Builtin::control("repeat", "loop back to begin ( - )"),
    Builtin::control(
        "do",
        "start a counted loop from start up to limit - 1; zero times when start >= limit ( limit start - )",
    ),
    Builtin::control(
        "loop",
        "add one to the loop index and loop while it is below the limit ( - )",
    ),
    Builtin::control(
        "+loop",
        "add n to the loop index and loop until it crosses the limit; zero times when n points away from it ( n - )",
    ),
    Builtin::control("i", "push the index of the innermost do loop ( - n )"),
    Builtin::control("j", "push the index of the next outer do loop ( - n )"),
    Builtin::control("leave", "leave the innermost do loop at once ( - )"),
    Builtin::op(
        "exit",
        "return from the current compound word or script ( - )",
        Op::Exit,
    ),
    Builtin::word(
        "abort",
        "stop with an error carrying the message ( msg - )",
        abort,
    ),
    Builtin::op(
        "bye",
        "end the console session or the script ( - )",
        Op::Bye,
    ),
    Builtin::control(
        "{",
        "open a stack frame: words see only the items pushed after it ( - )",
    ),
    Builtin::control(
        "}",
        "close a stack frame, merging its items into the enclosing frame ( - )",
    ),
    Builtin::word(
        ".exec-sp",
        "push the execution depth: 1 at top level, 2 in a compound word ( - n )",
        exec_sp,
    ),
];

fn abort(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let msg = cx.pop()?.text();
    Err(WordError::new(msg))
}

fn exec_sp(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.calls.len() as i64 + 1;
    cx.push_int(n)
}
