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
    Builtin::word("and", "bitwise and ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a & b))
    }),
    Builtin::word("or", "bitwise or ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a | b))
    }),
    Builtin::word("xor", "bitwise exclusive or ( n1 n2 - n )", |cx| {
        binary(cx, |a, b| Ok(a ^ b))
    }),
    Builtin::word(
        "not",
        "logical not: 1 for 0 or the empty string, else 0 ( flag - flag' )",
        not,
    ),
];

fn not(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    cx.push_int(!v.is_true() as i64)
}
