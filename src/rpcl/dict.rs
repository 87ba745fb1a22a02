//! The dictionary: one name space for variables, compound words, built-ins and host words.
//!
//! Every name the compiler meets is interned once; the bytecode refers to names by index, so
//! late binding at run time is one array access, not a string lookup.

use super::compiler::Chunk;
use super::value::Value;
use super::words::BUILTINS;
use super::{WordError, WordFn};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest name of a word or variable, in bytes.
pub const MAX_NAME: usize = 32;
/// Interned names at most (a runaway script defining variables must not eat the memory).
const MAX_NAMES: usize = 1 << 20;

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
    pub fn is_word(&self) -> bool {
        matches!(
            self,
            Entry::Builtin(_) | Entry::Host { .. } | Entry::Word { .. }
        )
    }
}

pub(crate) struct Dict {
    pub names: Vec<Arc<str>>,
    /// The value a bare token pushes when it names no word (pre-built, cloned per push).
    pub as_value: Vec<Value>,
    pub entries: Vec<Entry>,
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
    pub fn new() -> Dict {
        let mut d = Dict {
            names: Vec::new(),
            as_value: Vec::new(),
            entries: Vec::new(),
            index: HashMap::new(),
        };
        for (i, b) in BUILTINS.iter().enumerate() {
            if let Ok(sym) = d.intern(b.name) {
                d.entries[sym as usize] = Entry::Builtin(i as u16);
            }
        }
        d
    }

    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

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

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.lookup(name).map(|s| &self.entries[s as usize])
    }

    pub fn name(&self, sym: u32) -> &str {
        &self.names[sym as usize]
    }

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

    pub fn help(&self, name: &str) -> Option<&str> {
        match self.entry(name)? {
            Entry::Builtin(i) => Some(BUILTINS[*i as usize].help),
            Entry::Host { help, .. } => Some(help),
            Entry::Word { help, .. } => help.as_deref(),
            _ => None,
        }
    }
}
