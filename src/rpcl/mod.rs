//! RPCL: the configuration and control language of ethertap.
//!
//! SCAFFOLD: this file fixes the host API that the engine, the packet queue and the control
//! plane register their words through. The implementation behind it is a placeholder that
//! the RPCL work replaces (parser, compiler, VM), keeping these signatures.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Data subtypes of `rpcl.md` section 3, with their codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Subtype {
    Generic = 0,
    Int8 = 1,
    Uint8 = 2,
    Int16 = 3,
    Uint16 = 4,
    Int32 = 5,
    Uint32 = 6,
    Int64 = 7,
    Uint64 = 8,
    Ip = 9,
    Ip4 = 10,
    IpRange = 11,
    Mac = 12,
    MacRange = 13,
}

/// One stack item.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Data { subtype: Subtype, bytes: Vec<u8> },
}

/// The error a word reports; the VM adds the word's name and the source position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordError(pub String);

impl WordError {
    pub fn new(msg: impl Into<String>) -> Self {
        WordError(msg.into())
    }
}

/// An error that stopped a line or a script, already formatted as the spec prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpclError(pub String);

impl std::fmt::Display for RpclError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type WordFn = Arc<dyn Fn(&mut Ctx<'_>) -> Result<(), WordError> + Send + Sync>;

/// What a built-in word sees: the current frame of the stack and the output.
pub struct Ctx<'a> {
    stack: &'a mut Vec<Value>,
    out: &'a mut dyn Write,
    interrupt: &'a AtomicBool,
}

impl Ctx<'_> {
    pub fn pop(&mut self) -> Result<Value, WordError> {
        self.stack
            .pop()
            .ok_or_else(|| WordError::new("stack underflow"))
    }
    pub fn pop_int(&mut self) -> Result<i64, WordError> {
        match self.pop()? {
            Value::Str(s) => {
                let t = String::from_utf8_lossy(&s).into_owned();
                t.parse::<i64>()
                    .map_err(|_| WordError::new(format!("\"{t}\" is not a number")))
            }
            Value::Data { .. } => Err(WordError::new("data is not a number")),
        }
    }
    pub fn pop_str(&mut self) -> Result<String, WordError> {
        match self.pop()? {
            Value::Str(s) => Ok(String::from_utf8_lossy(&s).into_owned()),
            Value::Data { .. } => Err(WordError::new("expected a string, found data")),
        }
    }
    /// A MAC address given as `aa:bb:cc:dd:ee:ff` text or as `mac_t` data.
    pub fn pop_mac(&mut self) -> Result<[u8; 6], WordError> {
        let text = self.pop_str()?;
        let parts: Vec<&str> = text.split(':').collect();
        let bad = || WordError::new(format!("\"{text}\" is not a MAC address"));
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (m, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(mac)
    }
    pub fn push(&mut self, v: Value) -> Result<(), WordError> {
        self.stack.push(v);
        Ok(())
    }
    pub fn push_int(&mut self, n: i64) -> Result<(), WordError> {
        self.push(Value::Str(n.to_string().into_bytes()))
    }
    pub fn push_str(&mut self, s: &str) -> Result<(), WordError> {
        self.push(Value::Str(s.as_bytes().to_vec()))
    }
    pub fn push_data(&mut self, subtype: Subtype, bytes: Vec<u8>) -> Result<(), WordError> {
        self.push(Value::Data { subtype, bytes })
    }
    /// Where words print; in the daemon this streams to the client.
    pub fn out(&mut self) -> &mut dyn Write {
        &mut *self.out
    }
    /// True once Ctrl-C (or a disconnected client) asked the running line to stop; words
    /// that wait must check it.
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }
}

struct Word {
    help: String,
    f: WordFn,
}

/// A data stack put aside, so that each client of the daemon keeps its own.
#[derive(Default)]
pub struct StackSnapshot(Vec<Value>);

/// An RPCL virtual machine.
pub struct Vm {
    stack: Vec<Value>,
    words: std::collections::BTreeMap<String, Word>,
    vars: std::collections::BTreeMap<String, Value>,
    interrupt: Arc<AtomicBool>,
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

impl Vm {
    /// A VM with the core words and the standard library loaded.
    pub fn new() -> Self {
        let mut vm = Vm {
            stack: Vec::new(),
            words: Default::default(),
            vars: Default::default(),
            interrupt: Arc::new(AtomicBool::new(false)),
        };
        vm.register(".", "print the top item ( x - )", |cx| {
            let v = cx.pop()?;
            if let Value::Str(s) = v {
                cx.out()
                    .write_all(&s)
                    .map_err(|e| WordError::new(e.to_string()))?;
                cx.out()
                    .write_all(b"\n")
                    .map_err(|e| WordError::new(e.to_string()))?;
            }
            Ok(())
        });
        vm
    }

    /// Register a host word. `help` is one line ending in the stack effect.
    pub fn register(
        &mut self,
        name: &str,
        help: &str,
        f: impl Fn(&mut Ctx<'_>) -> Result<(), WordError> + Send + Sync + 'static,
    ) {
        self.words.insert(
            name.to_string(),
            Word {
                help: help.to_string(),
                f: Arc::new(f),
            },
        );
    }

    /// Define (or redefine) a variable, e.g. `version.ethertap`.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars
            .insert(name.to_string(), Value::Str(value.as_bytes().to_vec()));
    }

    /// A flag that interrupts the running line or script when set (Ctrl-C, client gone).
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// Run one console line; errors are formatted `error: WORD: message`.
    pub fn eval_line(&mut self, line: &str, out: &mut dyn Write) -> Result<(), RpclError> {
        self.run_source(None, line, out)
    }

    /// Run a whole script; errors are formatted `FILE:LINE:COL: error: WORD: message`.
    pub fn run_file(
        &mut self,
        file: &str,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<(), RpclError> {
        self.run_source(Some(file), text, out)
    }

    fn run_source(
        &mut self,
        file: Option<&str>,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<(), RpclError> {
        self.interrupt.store(false, Ordering::Relaxed);
        for tok in text.split_whitespace() {
            if let Some(w) = self.words.get(tok) {
                let f = w.f.clone();
                let mut cx = Ctx {
                    stack: &mut self.stack,
                    out: &mut *out,
                    interrupt: &self.interrupt,
                };
                f(&mut cx).map_err(|e| {
                    RpclError(match file {
                        Some(f) => format!("{f}:1:1: error: {tok}: {}", e.0),
                        None => format!("error: {tok}: {}", e.0),
                    })
                })?;
            } else {
                self.stack.push(Value::Str(tok.as_bytes().to_vec()));
            }
        }
        Ok(())
    }

    /// Exchange the data stack with `other` (per-client stacks in the daemon).
    pub fn swap_stack(&mut self, other: &mut StackSnapshot) {
        std::mem::swap(&mut self.stack, &mut other.0);
    }

    pub fn set_args(&mut self, _args: Vec<String>) {}

    pub fn set_color(&mut self, _on: bool) {}

    pub fn set_budget(&mut self, _budget: u64) {}

    /// Names of all words, for Tab completion.
    pub fn word_names(&self) -> Vec<String> {
        self.words.keys().cloned().collect()
    }

    pub fn help(&self, name: &str) -> Option<&str> {
        self.words.get(name).map(|w| w.help.as_str())
    }
}
