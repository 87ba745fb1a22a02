//! Comparison and logic: `=` `<>` `<` `>` `<=` `>=` (own instructions, see the VM), `0=`,
//! `and` `or` `xor`, `not`.

use super::arith::{binary, unary};
use crate::rpcl::chunk::Op;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::op(
        "=",
        "equal: numerically when both are numbers, else byte-wise ( a b - flag )",
        Op::Eq,
    ),
    Builtin::op("<>", "not equal, as = compares ( a b - flag )", Op::Ne),
    Builtin::op("<", "less than ( n1 n2 - flag )", Op::Lt),
    Builtin::op(">", "greater than ( n1 n2 - flag )", Op::Gt),
    Builtin::op("<=", "less than or equal ( n1 n2 - flag )", Op::Le),
    Builtin::op(">=", "greater than or equal ( n1 n2 - flag )", Op::Ge),
    Builtin::word("0=", "1 if the number is zero, else 0 ( n - flag )", |cx| {
        unary(cx, |n| Some((n == 0) as i64))
    }),
    Builtin::word(
        "and",
        "bitwise and of two numbers; of two flags 1 if both are true ( n1 n2 - n )",
        |cx| numbers_or_flags(cx, |a, b| a & b, |a, b| a && b),
    ),
    Builtin::word(
        "or",
        "bitwise or of two numbers; of two flags 1 if either is true ( n1 n2 - n )",
        |cx| numbers_or_flags(cx, |a, b| a | b, |a, b| a || b),
    ),
    Builtin::word("xor", "bitwise exclusive or ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a ^ b))
    }),
    Builtin::word(
        "not",
        "logical not: 1 for a false flag (the empty string or a number equal to zero), else 0 ( flag - flag' )",
        not,
    ),
];

/// `and` and `or`: bitwise on two numbers (`12 10 and` is 8); when either operand is not a
/// number (the empty string, a word's name …) both are taken as flags and the result is 1 or
/// 0, so that `"" 1 and` is false like `"" if`.
fn numbers_or_flags(
    cx: &mut Ctx<'_>,
    bits: fn(i64, i64) -> i64,
    flags: fn(bool, bool) -> bool,
) -> Result<(), WordError> {
    let (a, b) = (cx.peek(1)?, cx.peek(0)?);
    let r = match (a.as_int(), b.as_int()) {
        (Ok(x), Ok(y)) => bits(x, y),
        _ => flags(a.is_true(), b.is_true()) as i64,
    };
    cx.pop()?;
    cx.pop()?;
    cx.push_int(r)
}

fn not(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    cx.push_int(!v.is_true() as i64)
}
