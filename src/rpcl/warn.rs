//! Compile-time warnings (docs/rpcl.md, "Warnings and --strict"): a bare token that names no
//! word is pushed as a string, as the language says, but when it looks like a word — a small
//! edit distance from one, or the dotted form of the engine's words — the compiler says so
//! before anything runs. Nothing here runs at run time: the VM's loop never sees a warning.

use super::dict::{valid_name, Dict, Entry};
use super::lexer::{tokenize, Token, TokenKind};
use super::value::{canonical_int, parse_number};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// The families of the engine's words (the spec's dotted form): a bare `tap.…` that names
/// nothing is a mistyped engine word far more often than data.
const ENGINE_PREFIXES: [&str; 4] = ["tap.", "if.", "fault.", "drop."];

/// Warnings one compiled text reports at most; the rest are counted in one last line.
pub(crate) const MAX_WARNINGS: usize = 1000;

/// What a warning is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A bare token that names no word but looks like one; the word it is closest to.
    UnknownWord {
        /// The token as written.
        word: String,
        /// The nearest known word, if one is close enough.
        suggestion: Option<String>,
    },
    /// More warnings than [`MAX_WARNINGS`] in one text: how many were not listed.
    More(usize),
}

/// A warning, placed like an error: `FILE:LINE:COL: warning: …` for a script or a loaded
/// file, `LINE:COL: warning: …` for a console line or `eval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file, `None` for a console line.
    pub file: Option<Arc<str>>,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// What it says.
    pub kind: WarningKind,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}:{}: warning: ", self.line, self.col)?;
        match &self.kind {
            WarningKind::UnknownWord { word, suggestion } => {
                write!(f, "unknown word \"{word}\", pushed as a string")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean {s}?)"),
                    None => Ok(()),
                }
            }
            WarningKind::More(n) => write!(f, "{n} more warnings not shown"),
        }
    }
}

/// What `--strict` says about a text it refuses to run for its warnings (`what` is the file,
/// or `eval`).
pub fn strict_refusal(what: &str, warnings: usize) -> String {
    let s = if warnings == 1 { "" } else { "s" };
    format!("{what}: error: --strict: {warnings} warning{s}, nothing was run")
}

/// A warning found by the compiler, placed in the compiled text.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub line: u32,
    pub col: u32,
    pub kind: WarningKind,
}

/// Whether a bare token is bound late (a name looked up when it runs) rather than a number,
/// a built-in or text that can never name anything. The compiler and [`Lint`] agree on it.
pub(crate) fn is_late_bound(text: &str, dict: &Dict) -> bool {
    !matches!(dict.entry(text), Some(Entry::Builtin(_)))
        && canonical_int(text.as_bytes()).is_none()
        && valid_name(text)
        && parse_number(text.as_bytes()).is_err()
}

/// The warnings of one compiled text: what it defines itself, what the dictionary knows, and
/// the words to suggest (listed only once a token needs them).
pub(crate) struct Lint<'t> {
    defined: HashSet<&'t str>,
    /// The compound words the text defines (`!!`): suggested like the dictionary's words.
    defines_words: Vec<&'t str>,
    words: Option<Vec<String>>,
    seen: HashMap<String, Option<Option<String>>>,
    pub findings: Vec<Finding>,
}

impl<'t> Lint<'t> {
    /// The names `tokens` define: the token before a bare `!` or `!!`, also inside the
    /// literal bodies of compound words (late binding: defined later is still known).
    pub fn new(tokens: &'t [Token], bodies: &'t [(usize, Vec<Token>)]) -> Lint<'t> {
        let mut defined = HashSet::new();
        let mut defines_words = Vec::new();
        let mut note = |tokens: &'t [Token]| {
            for pair in tokens.windows(2) {
                if pair[1].kind == TokenKind::Bare && matches!(pair[1].text.as_str(), "!" | "!!") {
                    defined.insert(pair[0].text.as_str());
                    if pair[1].text == "!!" {
                        defines_words.push(pair[0].text.as_str());
                    }
                }
            }
        };
        note(tokens);
        for (_, body) in bodies {
            note(body);
        }
        Lint {
            defined,
            defines_words,
            words: None,
            seen: HashMap::new(),
            findings: Vec::new(),
        }
    }

    /// A late-bound bare token at (`line`, `col`): a finding if it names nothing known and
    /// looks like a word.
    pub fn bare(&mut self, text: &str, line: u32, col: u32, dict: &Dict) {
        if self.defined.contains(text) || dict.is_known(text) {
            return;
        }
        let verdict = match self.seen.get(text) {
            Some(v) => v.clone(),
            None => {
                let v = self.judge(text, dict);
                self.seen.insert(text.to_string(), v.clone());
                v
            }
        };
        if let Some(suggestion) = verdict {
            self.findings.push(Finding {
                line,
                col,
                kind: WarningKind::UnknownWord {
                    word: text.to_string(),
                    suggestion,
                },
            });
        }
    }

    /// `None`: no warning; `Some(suggestion)`: a warning, with the nearest word if any.
    fn judge(&mut self, text: &str, dict: &Dict) -> Option<Option<String>> {
        let defines = &self.defines_words;
        let words = self.words.get_or_insert_with(|| {
            let mut w = dict.word_names();
            w.extend(defines.iter().map(|d| d.to_string()));
            w.sort();
            w
        });
        let nearest = nearest_word(text, words);
        let dotted = ENGINE_PREFIXES
            .iter()
            .any(|p| text.len() > p.len() && text.starts_with(p));
        (nearest.is_some() || dotted).then_some(nearest)
    }

    /// The late-bound tokens of a compound word's literal body, placed in the enclosing text:
    /// the body starts after the opening quote at (`line`, `col`); a body with escapes is
    /// placed at the quote, since its columns no longer match the source.
    pub fn body(&mut self, string: &Token, body: &[Token], dict: &Dict) {
        for t in body {
            if t.kind != TokenKind::Bare || !is_late_bound(&t.text, dict) {
                continue;
            }
            let (line, col) = match (string.escaped, t.line) {
                (true, _) => (string.line, string.col),
                (false, 1) => (string.line, string.col + t.col),
                (false, l) => (string.line + l - 1, t.col),
            };
            self.bare(&t.text, line, col, dict);
        }
    }
}

/// The literal bodies of compound words in `tokens`: `"BODY" NAME !!`, by the index of the
/// string token, tokenized (a body that does not lex is reported by `!!` when it runs).
pub(crate) fn literal_bodies(tokens: &[Token]) -> Vec<(usize, Vec<Token>)> {
    tokens
        .windows(3)
        .enumerate()
        .filter(|(_, w)| {
            w[0].kind == TokenKind::Str && w[2].kind == TokenKind::Bare && w[2].text == "!!"
        })
        .map(|(i, w)| (i, tokenize(&w[0].text).0))
        .collect()
}

/// The word nearest to `text` within a small edit distance (transpositions count as one
/// edit): 1 for names of 4 to 7 characters, 2 from 8 on; shorter tokens (`x`, `s`, `ab` …)
/// are too often data to guess at. Ties go to the first in byte order.
fn nearest_word(text: &str, words: &[String]) -> Option<String> {
    let len = text.chars().count();
    let max = match len {
        0..=3 => return None,
        4..=7 => 1,
        _ => 2,
    };
    let mut best: Option<(usize, &String)> = None;
    for w in words {
        let wl = w.chars().count();
        if wl < 3 || wl.abs_diff(len) > max {
            continue;
        }
        let d = strsim::osa_distance(text, w);
        if d <= max && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, w));
        }
    }
    best.map(|(_, w)| w.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn near_misses_within_the_distance_for_their_length() {
        let w = words(&["dup", "drop", "swap", "tap.rx.enable", "tap.tx.enable", "i"]);
        assert_eq!(nearest_word("dupp", &w).as_deref(), Some("dup"));
        assert_eq!(nearest_word("swpa", &w).as_deref(), Some("swap"));
        assert_eq!(
            nearest_word("tap.rx.enabel", &w).as_deref(),
            Some("tap.rx.enable")
        );
        assert_eq!(nearest_word("dpu", &w), None, "too short to guess");
        assert_eq!(nearest_word("hosts", &w), None);
        assert_eq!(nearest_word("three", &words(&["then"])), None);
    }

    #[test]
    fn the_format_with_and_without_a_file() {
        let mut w = Warning {
            file: Some("a.rpcl".into()),
            line: 3,
            col: 7,
            kind: WarningKind::UnknownWord {
                word: "tap.rx.enabel".into(),
                suggestion: Some("tap.rx.enable".into()),
            },
        };
        assert_eq!(
            w.to_string(),
            "a.rpcl:3:7: warning: unknown word \"tap.rx.enabel\", pushed as a string (did you mean tap.rx.enable?)"
        );
        w.file = None;
        w.kind = WarningKind::UnknownWord {
            word: "tap.foo".into(),
            suggestion: None,
        };
        assert_eq!(
            w.to_string(),
            "3:7: warning: unknown word \"tap.foo\", pushed as a string"
        );
    }
}
