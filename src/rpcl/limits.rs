//! The limits of the language (docs/rpcl.md, "Errors and limits"): each one is an error when
//! reached, never a crash.

/// Items on the data stack, all frames together.
pub const MAX_STACK: usize = 1024;
/// Nesting of compound words (and loaded files); the top level is 1.
pub const MAX_DEPTH: usize = 256;
/// Instructions per console line or script unless [`super::Vm::set_budget`] says otherwise.
pub const DEFAULT_BUDGET: u64 = 1_000_000_000;
/// Longest string item, in bytes.
pub const MAX_STRING: usize = 16383;
/// Longest data item, in bytes.
pub const MAX_DATA: usize = 16380;
/// Longest name of a word or variable, in bytes.
pub const MAX_NAME: usize = 32;
