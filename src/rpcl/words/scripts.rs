//! Scripts and time: `argc` `arg`, `load` `load-if-present` (own instructions: a loaded file
//! runs as a call), `time` `ms`.

use crate::rpcl::chunk::Op;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::Ctx;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        "argc",
        "number of arguments after the script's file name ( - n )",
        argc,
    ),
    Builtin::word(
        "arg",
        "the script argument n, counting from 0 ( n - string )",
        arg,
    ),
    Builtin::op(
        "load",
        "run an RPCL file; a missing file is an error ( filename - )",
        Op::Load,
    ),
    Builtin::op(
        "load-if-present",
        "run an RPCL file if it exists ( filename - )",
        Op::LoadIfPresent,
    ),
    Builtin::word("time", "seconds since 1970-01-01 UTC ( - seconds )", time),
    Builtin::word(
        "ms",
        "wait n milliseconds; the VM serves others meanwhile and Ctrl-C ends the wait ( n - )",
        ms,
    ),
];

fn argc(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.args.len() as i64;
    cx.push_int(n)
}

fn arg(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    let argc = cx.st.args.len();
    let a = usize::try_from(n)
        .ok()
        .and_then(|i| cx.st.args.get(i))
        .cloned()
        .ok_or_else(|| WordError::new(format!("no argument {n} (argc is {argc})")))?;
    cx.pop()?;
    cx.push_str(&a)
}

fn time(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    cx.push_int(s)
}

/// `ms` does not sleep: it asks the VM to pause the text (see [`Ctx::wait`]), so that in the
/// daemon other clients are served while it waits; Ctrl-C ends the wait.
fn ms(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    if n < 0 {
        return Err(WordError::new(format!("{n} is not a duration")));
    }
    cx.pop()?;
    // What was printed before the pause is seen during it.
    let _ = cx.out.flush();
    if n > 0 {
        cx.wait(Duration::from_millis(n as u64));
    }
    Ok(())
}
