//! The errors of the language: what a word reports ([`WordError`]), what the lexer and the
//! compiler find ([`LexError`], [`CompileError`]), and the one error that stops a line or a
//! script ([`RpclError`]), formatted as docs/rpcl.md ("Errors and limits") prints it.

use super::limits::{MAX_DATA, MAX_DEPTH, MAX_NAME, MAX_SOURCE, MAX_STACK, MAX_STRING};
use std::fmt;
use std::sync::Arc;

/// A place in a script: file, 1-based line and (character) column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The file name as the script was started or loaded with.
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// The error a word reports; the VM adds the word's name and the source position.
///
/// Host words mostly report free text through [`WordError::new`]; the core reports the
/// frequent kinds as their own variants. Every instruction of the run loop returns a
/// `Result<(), WordError>`, so the type stays three machine words: [`WordError::Msg`] holds
/// the one `String` (whose spare capacity values the other variants use as their tag), the
/// other texts are `Box<str>`, anything larger is boxed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WordError {
    /// A word needed more items than its frame holds.
    #[error("stack underflow")]
    Underflow,
    /// The data stack is full.
    #[error("stack overflow ({MAX_STACK} items)")]
    Overflow,
    /// An operand is not a number; the item as [`super::Value::describe`] names it.
    #[error("{0} is not a number")]
    NotANumber(Box<str>),
    /// A number does not fit 64 bits; the item as the message shows it.
    #[error("{0} is out of range")]
    OutOfRange(Box<str>),
    /// Ctrl-C, or a client gone, stopped the line.
    #[error("interrupted")]
    Interrupted,
    /// The line or script ran out of instructions; the budget it had.
    #[error("instruction budget exhausted ({0} instructions)")]
    Budget(u64),
    /// Compound words (or loaded files) nested too deep.
    #[error("execution depth limit ({MAX_DEPTH}) exceeded")]
    Depth,
    /// `+`, `-` or `*` left the 64-bit range.
    #[error("{0}")]
    IntOverflow(Box<IntOverflow>),
    /// `/` or `mod` by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// A string item would be longer than the limit; its length.
    #[error("string of {0} bytes is longer than {MAX_STRING}")]
    StringTooLong(usize),
    /// A data item would be longer than the limit; its length.
    #[error("data of {0} bytes is longer than {MAX_DATA}")]
    DataTooLong(usize),
    /// An operand that should name a variable, word or set cannot; the item described.
    #[error(
        "{0} is not a valid name (printable ASCII without quotes, backslash or spaces, at most {MAX_NAME} bytes)"
    )]
    BadName(Box<str>),
    /// A name that is neither a variable nor a word; the item described.
    #[error("{0} is not defined")]
    NotDefined(Box<str>),
    /// `!!` was given source that does not compile.
    #[error("{0}")]
    DoesNotCompile(Box<DefineError>),
    /// `load` was given a file that does not compile.
    #[error("{0}")]
    DoesNotLoad(Box<LoadError>),
    /// Writing to the output failed (the reader went away, a full disk …).
    #[error("cannot write the output: {0}")]
    Output(Arc<std::io::Error>),
    /// Any other failure, in the words of the word that reports it.
    #[error("{0}")]
    Msg(String),
}

impl WordError {
    /// A failure described in free text (what host words report).
    pub fn new(msg: impl Into<String>) -> Self {
        WordError::Msg(msg.into())
    }

    /// The name an error message gives the failing word: the stack's own limits are
    /// reported as `pop` and `push`, whatever word ran into them.
    pub(crate) fn reported_word<'a>(&self, word: &'a str) -> &'a str {
        match self {
            WordError::Underflow => "pop",
            WordError::Overflow => "push",
            _ => word,
        }
    }
}

impl From<std::io::Error> for WordError {
    fn from(e: std::io::Error) -> Self {
        WordError::Output(Arc::new(e))
    }
}

/// The operation and operands of [`WordError::IntOverflow`].
#[derive(Clone, Debug, thiserror::Error)]
#[error("{op} of {a} and {b} overflows")]
pub struct IntOverflow {
    /// What was computed.
    pub op: IntOp,
    /// The first operand.
    pub a: i64,
    /// The second operand.
    pub b: i64,
}

/// The arithmetic of [`IntOverflow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOp {
    /// `+`
    Sum,
    /// `-`
    Difference,
    /// `*`
    Product,
}

impl fmt::Display for IntOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IntOp::Sum => "sum",
            IntOp::Difference => "difference",
            IntOp::Product => "product",
        })
    }
}

/// The first error of the source that `!!` could not compile.
#[derive(Clone, Debug, thiserror::Error)]
#[error("\"{name}\" does not compile: {error}")]
pub struct DefineError {
    /// The word being defined.
    pub name: String,
    /// The first error of its source (positions within that source).
    pub error: CompileError,
}

/// The first error of a file that `load` could not compile.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{file}:{error}{}", AndMore(*more))]
pub struct LoadError {
    /// The file as `load` was given it.
    pub file: String,
    /// Its first error.
    pub error: CompileError,
    /// How many errors follow the first.
    pub more: usize,
}

/// " (and N more errors)" when there are more.
struct AndMore(usize);

impl fmt::Display for AndMore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " (and {n} more errors)"),
        }
    }
}

/// What the lexer rejects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LexErrorKind {
    /// A backslash followed by a character that is no escape.
    #[error("unknown escape \\{0} in string")]
    BadEscape(char),
    /// The source ended inside a string.
    #[error("unterminated string")]
    Unterminated,
}

/// A lexical error and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
    /// What is wrong.
    pub kind: LexErrorKind,
}

impl LexError {
    /// The source ended inside a string (the console asks for a continuation line).
    pub fn opens_string(&self) -> bool {
        self.kind == LexErrorKind::Unterminated
    }
}

/// What the compiler rejects (the lexer's findings included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileErrorKind {
    /// A closing word without its opening one; the opening word(s), quoted.
    #[error("no matching {0}")]
    NoMatching(&'static str),
    /// `i`, `j` or `leave` outside the loops they need; the structure, quoted.
    #[error("not inside {0}")]
    NotInside(&'static str),
    /// An opened structure is never closed; the closing word(s), quoted.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A string literal longer than the limit; its length.
    #[error("string of {0} bytes is longer than {MAX_STRING}")]
    LongString(usize),
    /// A bare token longer than the limit; its length.
    #[error("token of {0} bytes is longer than {MAX_STRING}")]
    LongToken(usize),
    /// A new name while the dictionary is full; why.
    #[error("{0}")]
    DictFull(String),
    /// A source text longer than the limit; its length.
    #[error("source of {0} bytes is longer than the limit of {MAX_SOURCE} bytes")]
    LongSource(usize),
    /// A control word the compiler does not know (a table out of step with the compiler).
    #[error("unknown control word")]
    UnknownControl,
    /// A lexical error.
    #[error(transparent)]
    Lex(#[from] LexErrorKind),
}

/// A compile (or lexical) error, placed in the compiled text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {word}: {kind}")]
pub struct CompileError {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
    /// The token at fault (shortened), or `parse` for a lexical error.
    pub word: String,
    /// What is wrong.
    pub kind: CompileErrorKind,
}

impl CompileError {
    /// A lexical error, reported as the word `parse`.
    pub(crate) fn lex(e: LexError) -> Self {
        CompileError {
            line: e.line,
            col: e.col,
            word: "parse".into(),
            kind: e.kind.into(),
        }
    }
}

/// Every error of a text that does not compile, in source order; never empty.
#[derive(Debug)]
pub(crate) struct CompileErrors {
    /// The first error in the text.
    pub first: CompileError,
    /// The others, in order.
    pub rest: Vec<CompileError>,
}

/// Why a line or a script stopped.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Cause {
    /// A word failed while it ran.
    #[error(transparent)]
    Word(#[from] WordError),
    /// The text did not compile; nothing ran.
    #[error(transparent)]
    Compile(#[from] CompileErrorKind),
}

/// An error that stopped a line or a script: `FILE:LINE:COL: error: WORD: message` for
/// scripts, `error: WORD: message` for console lines and `eval`.
#[derive(Clone, Debug)]
pub struct RpclError {
    /// Where it happened in a script (inside compound words: where the script called them);
    /// `None` for a console line or `eval`.
    pub at: Option<Pos>,
    /// The word as the message names it: the failing token, `pop`/`push` for the stack's
    /// limits, `parse` for lexical errors.
    pub word: String,
    /// What went wrong.
    pub cause: Cause,
    /// Further errors of the same text, in source order: a text that does not compile is
    /// reported whole, one error a line.
    pub also: Vec<RpclError>,
}

impl RpclError {
    /// The error of a text that did not compile; `file` is `None` for a console line.
    pub(crate) fn compile(file: Option<&Arc<str>>, e: CompileError) -> Self {
        RpclError {
            at: file.map(|file| Pos {
                file: file.clone(),
                line: e.line,
                col: e.col,
            }),
            word: e.word,
            cause: e.kind.into(),
            also: Vec::new(),
        }
    }

    /// This error and the ones it holds in [`RpclError::also`], each on its own.
    pub fn into_each(mut self) -> Vec<RpclError> {
        let also = std::mem::take(&mut self.also);
        std::iter::once(self).chain(also).collect()
    }
}

impl fmt::Display for RpclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        write!(f, "error: {}: {}", self.word, self.cause)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpclError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_error_stays_small() {
        // Every instruction of the run loop returns a `Result<(), WordError>`.
        assert_eq!(std::mem::size_of::<WordError>(), 24);
        assert_eq!(std::mem::size_of::<Result<(), WordError>>(), 24);
    }

    #[test]
    fn one_format_for_scripts_and_lines() {
        let e = RpclError {
            at: Some(Pos {
                file: "a.rpcl".into(),
                line: 2,
                col: 7,
            }),
            word: "+".into(),
            cause: WordError::NotANumber("\"x\"".into()).into(),
            also: Vec::new(),
        };
        assert_eq!(e.to_string(), "a.rpcl:2:7: error: +: \"x\" is not a number");
        let line = RpclError { at: None, ..e };
        assert_eq!(line.to_string(), "error: +: \"x\" is not a number");
    }
}
