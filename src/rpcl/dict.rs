//! The dictionary: one name space for variables, compound words, built-ins and host words.
//!
//! Every name the compiler meets is interned once; the bytecode refers to names by index, so
//! late binding at run time is one array access, not a string lookup. The built-ins come in
//! as a table ([`Builtin`]) that the dictionary is created with.

use super::chunk::{Chunk, Op};
use super::error::WordError;
use super::limits::MAX_NAME;
use super::value::Value;
use super::{Ctx, WordFn};
use std::collections::HashMap;
use std::sync::Arc;

/// Interned names at most (a runaway script defining variables must not eat the memory).
const MAX_NAMES: usize = 1 << 20;

/// A built-in word implemented in Rust.
pub(crate) type BuiltinFn = fn(&mut Ctx<'_>) -> Result<(), WordError>;

/// How a built-in is compiled.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A call of the function.
    Fn(BuiltinFn),
    /// Its own instruction.
    Op(Op),
    /// Jumps or checked structure (`if`, `do`, `{` …), resolved by the compiler.
    Control,
}

/// One row of the built-in table: name, help line (ending in the stack effect), kind.
#[derive(Clone, Copy)]
pub(crate) struct Builtin {
    /// The word.
    pub name: &'static str,
    /// What `.i` and `@` show.
    pub help: &'static str,
    /// How it compiles.
    pub kind: Kind,
}

impl Builtin {
    /// A word implemented as a function.
    pub const fn word(name: &'static str, help: &'static str, f: BuiltinFn) -> Builtin {
        Builtin {
            name,
            help,
            kind: Kind::Fn(f),
        }
    }
    /// A word compiled to its own instruction.
    pub const fn op(name: &'static str, help: &'static str, op: Op) -> Builtin {
        Builtin {
            name,
            help,
            kind: Kind::Op(op),
        }
    }
    /// A control word, resolved by the compiler.
    pub const fn control(name: &'static str, help: &'static str) -> Builtin {
        Builtin {
            name,
            help,
            kind: Kind::Control,
        }
    }
}

/// What a name stands for.
pub(crate) enum Entry {
    Free,
    Var {
        value: Value,
        user: bool,
    },
    Word {
        chunk: Arc<Chunk>,
        source: String,
        help: Option<String>,
        library: bool,
    },
    /// An index into [`Dict::builtins`].
    Builtin(u16),
    Host {
        f: WordFn,
        help: String,
    },
}

impl Entry {
    /// Built-ins, host words and library words cannot be changed by scripts.
    pub fn immutable(&self) -> bool {
        matches!(
            self,
            Entry::Builtin(_) | Entry::Host { .. } | Entry::Word { library: true, .. }
        )
    }
    /// Everything but a variable (or a free name) is a word.
    pub fn is_word(&self) -> bool {
        matches!(
            self,
            Entry::Builtin(_) | Entry::Host { .. } | Entry::Word { .. }
        )
    }
}

/// Names, their entries, and the built-in table.
pub(crate) struct Dict {
    /// Every interned name; its index is its symbol.
    pub names: Vec<Arc<str>>,
    /// The value a bare token pushes when it names no word (pre-built, cloned per push).
    pub as_value: Vec<Value>,
    /// What each symbol stands for.
    pub entries: Vec<Entry>,
    builtins: &'static [Builtin],
    index: HashMap<Arc<str>, u32>,
}

/// Printable ASCII without `"`, `\` and white space, at most 32 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\')
}

impl Dict {
    /// A dictionary holding the built-ins of `builtins`.
    pub fn new(builtins: &'static [Builtin]) -> Dict {
        let mut d = Dict {
            names: Vec::new(),
            as_value: Vec::new(),
            entries: Vec::new(),
            builtins,
            index: HashMap::new(),
        };
        for (i, b) in builtins.iter().enumerate() {
            if let Ok(sym) = d.intern(b.name) {
                d.entries[sym as usize] = Entry::Builtin(i as u16);
            }
        }
        d
    }

    /// The built-in of an [`Entry::Builtin`] or an [`Op::Builtin`].
    #[inline]
    pub fn builtin(&self, i: usize) -> Option<&'static Builtin> {
        self.builtins.get(i)
    }

    /// The symbol of a name met before.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The symbol of a name, interned (as a free entry) if new.
    pub fn intern(&mut self, name: &str) -> Result<u32, WordError> {
        if let Some(&sym) = self.index.get(name) {
            return Ok(sym);
        }
        if self.names.len() >= MAX_NAMES {
            return Err(WordError::new(format!(
                "dictionary full ({MAX_NAMES} names)"
            )));
        }
        let sym = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.as_value.push(Value::string(&name));
        self.entries.push(Entry::Free);
        self.index.insert(name, sym);
        Ok(sym)
    }

    /// What a name stands for, if it was ever interned.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.lookup(name).map(|s| &self.entries[s as usize])
    }

    /// The name of a symbol.
    pub fn name(&self, sym: u32) -> &str {
        &self.names[sym as usize]
    }

    /// The names of all words, sorted.
    pub fn word_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_word())
            .map(|(i, _)| self.names[i].to_string())
            .collect();
        v.sort();
        v
    }

    /// The help of a built-in, host or library word (a compound word has none).
    pub fn help(&self, name: &str) -> Option<&str> {
        match self.entry(name)? {
            Entry::Builtin(i) => Some(self.builtin(*i as usize)?.help),
            Entry::Host { help, .. } => Some(help),
            Entry::Word { help, .. } => help.as_deref(),
            _ => None,
        }
    }
}
