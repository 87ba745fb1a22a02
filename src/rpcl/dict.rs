//! The dictionary: one name space for variables, compound words, built-ins and host words.
//!
//! Every name the compiler meets is interned once; the bytecode refers to names by index, so
//! late binding at run time is one array access, not a string lookup. The built-ins come in
//! as a table ([`Builtin`]) that the dictionary is created with.

use super::chunk::{Chunk, Op};
use super::error::WordError;
use super::limits::{DICT_BUDGET, MAX_NAME};
use super::value::Value;
use super::{Ctx, WordFn};
use std::collections::{HashMap, HashSet};
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
    /// The bytes the entry holds, as the budget counts them.
    pub fn cost(&self) -> usize {
        match self {
            Entry::Var { value, .. } => value.heap_size(),
            Entry::Word {
                chunk,
                source,
                help,
                ..
            } => chunk.heap_size() + source.len() + help.as_ref().map_or(0, String::len),
            Entry::Host { help, .. } => help.len(),
            Entry::Free | Entry::Builtin(_) => 0,
        }
    }

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
    /// Names a host promises exist where its scripts run, though not in this VM (a local
    /// VM's `if.count`): known to the warnings, nothing else.
    declared: HashSet<String>,
    /// What the dictionary's entries and the sets hold, against [`DICT_BUDGET`].
    pub budget: Budget,
}

/// Bytes a name costs beyond its text: its slots in the tables and the hash map.
const NAME_OVERHEAD: usize = 96;

/// Bytes a freed dictionary gives back to the allocator before the process trims its heap:
/// freed blocks in the middle of the heap stay resident until then.
const TRIM_AFTER: usize = 8 << 20;

/// The dictionary's memory budget: what its names, variables, compound words and sets hold,
/// estimated from their sizes. Every word that grows them asks first, so a runaway script
/// fails with an error instead of eating the memory, and `forget` gives the bytes back.
pub(crate) struct Budget {
    used: usize,
    freed: usize,
}

impl Budget {
    /// Replace `old` bytes by `new` ones, if the result stays within the budget.
    pub fn charge(&mut self, new: usize, old: usize) -> Result<(), WordError> {
        let after = self.used.saturating_sub(old).saturating_add(new);
        if new > old && after > DICT_BUDGET {
            return Err(WordError::new(format!(
                "the dictionary's memory budget of {} MiB is used up ({} bytes in use): forget variables, words or sets to free it",
                DICT_BUDGET >> 20,
                self.used
            )));
        }
        self.used = after;
        self.release(old.saturating_sub(new));
        Ok(())
    }

    /// `n` bytes no longer held.
    pub fn release_charge(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
        self.release(n);
    }

    /// Bytes given back (an entry forgotten, a set emptied); once enough came back, the
    /// allocator returns the free pages to the system.
    fn release(&mut self, n: usize) {
        self.freed += n;
        if self.freed >= TRIM_AFTER {
            self.freed = 0;
            trim_heap();
        }
    }
}

/// Give the free pages of the heap back to the system (glibc keeps them otherwise).
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe and
    // has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
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
            declared: HashSet::new(),
            budget: Budget { used: 0, freed: 0 },
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
        self.budget.charge(name.len() + NAME_OVERHEAD, 0)?;
        let sym = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.as_value.push(Value::string(&name));
        self.entries.push(Entry::Free);
        self.index.insert(name, sym);
        Ok(sym)
    }

    /// Give a name an entry, within the budget: what the old entry held is given back.
    pub fn set_entry(&mut self, sym: u32, entry: Entry) -> Result<(), WordError> {
        let old = &self.entries[sym as usize];
        self.budget.charge(entry.cost(), old.cost())?;
        self.entries[sym as usize] = entry;
        Ok(())
    }

    /// A name the warnings take as known: an entry in use, or declared by the host.
    pub fn is_known(&self, name: &str) -> bool {
        matches!(self.entry(name), Some(e) if !matches!(e, Entry::Free))
            || self.declared.contains(name)
    }

    /// Declare a name that exists where the host's scripts run (see [`Dict::is_known`]).
    pub fn declare(&mut self, name: &str) {
        self.declared.insert(name.to_string());
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
