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
/// Longest source text the VM compiles, in bytes: a script, a console line, a file `load`
/// reads. `ethertap run` refuses a larger file before it compiles anything.
pub const MAX_SOURCE: usize = 1 << 20;
/// Bytes the dictionary may hold: names, variables' values, compound words (source and
/// bytecode) and the named sets. Reaching it is an error of the word that would grow it;
/// `forget` and `set.reset` give the bytes back.
pub const DICT_BUDGET: usize = 64 << 20;
