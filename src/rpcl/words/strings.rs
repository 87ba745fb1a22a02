//! Strings: `concat` `strlen` `substr`. They work on the text of an item, so data counts as
//! the text `.` prints.

use super::span;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::limits::MAX_STRING;
use crate::rpcl::value::Value;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        "concat",
        "concatenate the text of two items ( a b - ab )",
        concat,
    ),
    Builtin::word("strlen", "length of the text in bytes ( s - n )", strlen),
    Builtin::word(
        "substr",
        "the len bytes of the text starting at byte start ( s start len - s' )",
        substr,
    ),
];

/// The bytes of a string, or the text form of data.
fn text_bytes(v: &Value) -> Vec<u8> {
    if v.is_data() {
        v.text().into_bytes()
    } else {
        v.bytes().into_owned()
    }
}

fn concat(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let mut s = text_bytes(cx.st.peek(1)?);
    s.extend_from_slice(&text_bytes(cx.st.peek(0)?));
    if s.len() > MAX_STRING {
        return Err(WordError::StringTooLong(s.len()));
    }
    cx.pop()?;
    cx.pop()?;
    cx.push(Value::from_bytes(&s))
}

fn strlen(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = text_bytes(cx.st.peek(0)?).len() as i64;
    cx.pop()?;
    cx.push_int(n)
}

fn substr(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let len = cx.st.peek(0)?.as_int()?;
    let start = cx.st.peek(1)?.as_int()?;
    let s = text_bytes(cx.st.peek(2)?);
    let (a, n) = span(start, len, s.len(), "the string")?;
    let r = Value::from_bytes(&s[a..a + n]);
    for _ in 0..3 {
        cx.pop()?;
    }
    cx.push(r)
}
