//! Arithmetic: `+` `-` `*` (own instructions, see the VM), `/` `mod` `negate` `abs` `min`
//! `max` `1+` `1-`.

use crate::rpcl::chunk::Op;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::op(
        "+",
        "add; alone in its frame the missing operand is 0 ( [n1] n2 - sum )",
        Op::Add,
    ),
    Builtin::op("-", "subtract ( n1 n2 - difference )", Op::Sub),
    Builtin::op(
        "*",
        "multiply; alone in its frame the missing operand is 1 ( [n1] n2 - product )",
        Op::Mul,
    ),
    Builtin::word(
        "/",
        "divide, truncating toward zero ( n1 n2 - quotient )",
        |cx| divide(cx, "/", i64::checked_div),
    ),
    Builtin::word(
        "mod",
        "remainder of the division, with the sign of n1 ( n1 n2 - remainder )",
        |cx| divide(cx, "mod", i64::checked_rem),
    ),
    Builtin::word("negate", "change the sign ( n - -n )", |cx| {
        unary(cx, i64::checked_neg)
    }),
    Builtin::word("abs", "absolute value ( n - |n| )", |cx| {
        unary(cx, i64::checked_abs)
    }),
    Builtin::word("min", "the smaller of two numbers ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a.min(b)))
    }),
    Builtin::word("max", "the larger of two numbers ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a.max(b)))
    }),
    Builtin::word("1+", "add one ( n - n+1 )", |cx| {
        unary(cx, |n| n.checked_add(1))
    }),
    Builtin::word("1-", "subtract one ( n - n-1 )", |cx| {
        unary(cx, |n| n.checked_sub(1))
    }),
];

/// Two numbers (second, top) replaced by `f` of them; nothing is popped when `f` fails.
pub(super) fn binary(
    cx: &mut Ctx<'_>,
    f: impl FnOnce(i64, i64) -> Result<i64, WordError>,
) -> Result<(), WordError> {
    let b = cx.st.peek(0)?.as_int()?;
    let a = cx.st.peek(1)?.as_int()?;
    let r = f(a, b)?;
    cx.pop()?;
    cx.pop()?;
    cx.push_int(r)
}

/// The top number replaced by `f` of it; `None` is an overflow.
pub(super) fn unary(cx: &mut Ctx<'_>, f: fn(i64) -> Option<i64>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    let r = f(n).ok_or_else(|| WordError::new(format!("result for {n} overflows")))?;
    cx.pop()?;
    cx.push_int(r)
}

/// `/` and `mod`: zero is refused, and `i64::MIN / -1` overflows.
fn divide(cx: &mut Ctx<'_>, what: &str, f: fn(i64, i64) -> Option<i64>) -> Result<(), WordError> {
    binary(cx, |a, b| {
        if b == 0 {
            return Err(WordError::DivisionByZero);
        }
        f(a, b).ok_or_else(|| WordError::new(format!("{a} {what} {b} overflows")))
    })
}
