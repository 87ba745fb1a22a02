//! The built-in words, one file per family in the order of the word reference
//! (docs/rpcl.md, "Word reference"): help texts, stack effects and output formats there.
//!
//! Each family lists its words in a `WORDS` table next to their code; [`BUILTINS`] joins the
//! tables at compile time, and a word's index in it is its number in the bytecode. A new
//! word goes into the table of its family (and into docs/rpcl.md, which a test checks).

mod arith;
mod control;
mod convert;
mod data;
mod dict;
mod io;
mod logic;
mod scripts;
pub(crate) mod sets;
mod stack;
mod strings;

use super::dict::Builtin;
use super::error::WordError;

const FAMILIES: [&[Builtin]; 11] = [
    stack::WORDS,
    arith::WORDS,
    logic::WORDS,
    io::WORDS,
    dict::WORDS,
    control::WORDS,
    strings::WORDS,
    convert::WORDS,
    data::WORDS,
    sets::WORDS,
    scripts::WORDS,
];

const COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < FAMILIES.len() {
        n += FAMILIES[i].len();
        i += 1;
    }
    n
};

/// Every built-in word, family after family.
pub(crate) static BUILTINS: [Builtin; COUNT] = {
    let mut all = [Builtin::control("", ""); COUNT];
    let mut k = 0;
    let mut i = 0;
    while i < FAMILIES.len() {
        let mut j = 0;
        while j < FAMILIES[i].len() {
            all[k] = FAMILIES[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    all
};

/// Offset and length operands checked against an item of `size` bytes (`substr`,
/// `data.slice` …); `what` names the item in the error.
fn span(start: i64, len: i64, size: usize, what: &str) -> Result<(usize, usize), WordError> {
    if start < 0 || len < 0 || start.saturating_add(len) > size as i64 {
        return Err(WordError::new(format!(
            "offset {start} and length {len} are outside {what} of {size} bytes"
        )));
    }
    Ok((start as usize, len as usize))
}

#[cfg(test)]
mod tests {
    use super::BUILTINS;
    use std::collections::HashSet;

    #[test]
    fn every_builtin_has_one_name_and_a_help_with_a_stack_effect() {
        let mut names = HashSet::new();
        for b in BUILTINS.iter() {
            assert!(names.insert(b.name), "{} is in two families", b.name);
            assert!(b.help.ends_with(')'), "{}: {}", b.name, b.help);
        }
    }
}
