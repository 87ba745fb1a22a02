//! Tokens of RPCL source with line and column (nom 8).

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, take_till, take_while, take_while1};
use nom::character::complete::{anychar, char};
use nom::combinator::{map, value};
use nom::multi::fold_many0;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use super::error::{LexError, LexErrorKind};

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare token: executes a word of that name at run time, else pushes itself.
    Bare,
    /// A `"…"` string: always pushed.
    Str,
}

/// One token and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Bare or string.
    pub kind: TokenKind,
    /// The text: a bare token as written, a string with its escapes resolved.
    pub text: String,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// A string written with escapes: its text is shorter than its source, so positions
    /// inside it do not map to source columns.
    pub escaped: bool,
}

/// One piece of a string body: plain text, an escape, or a bad escape (kept to report it).
#[derive(Clone)]
enum Piece<'a> {
    Text(&'a str),
    Escape(char),
    BadEscape(char),
}

fn string_piece(i: &str) -> IResult<&str, Piece<'_>> {
    alt((
        map(is_not("\"\\"), Piece::Text),
        preceded(
            char('\\'),
            alt((
                value(Piece::Escape('"'), char('"')),
                value(Piece::Escape('\\'), char('\\')),
                value(Piece::Escape('\n'), char('n')),
                value(Piece::Escape('\t'), char('t')),
                map(anychar, Piece::BadEscape),
            )),
        ),
    ))
    .parse(i)
}

/// A string body up to (not including) the closing quote, with the first bad escape if any.
fn located_piece(s: &str, start: usize) -> IResult<&str, (usize, Piece<'_>)> {
    string_piece(s).map(|(rest, p)| (rest, (start - s.len(), p)))
}

/// A string's text and its first bad escape (offset in the body, character).
type StringBody = (String, Option<(usize, char)>);

fn string_body<'a>(i: &'a str) -> IResult<&'a str, StringBody> {
    let start = i.len();
    fold_many0(
        move |s: &'a str| located_piece(s, start),
        || (String::new(), None),
        |(mut s, mut bad): StringBody, (at, p)| {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Escape(c) => s.push(c),
                Piece::BadEscape(c) => {
                    bad = bad.or(Some((at, c)));
                }
            }
            (s, bad)
        },
    )
    .parse(i)
}

fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn skip_space(i: &str) -> IResult<&str, &str> {
    take_while(is_space).parse(i)
}

fn comment(i: &str) -> IResult<&str, &str> {
    preceded(tag("#"), take_till(|c| c == '\n')).parse(i)
}

fn bare(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| !is_space(c)).parse(i)
}

/// Byte offset to 1-based line and (character) column. Tokens come in source order, so the
/// cursor only moves forward: positions cost O(length of the text) in all.
struct Lines<'a> {
    text: &'a str,
    off: usize,
    line: u32,
    col: u32,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            text,
            off: 0,
            line: 1,
            col: 1,
        }
    }
    fn pos(&mut self, off: usize) -> (u32, u32) {
        if off < self.off {
            *self = Lines::new(self.text);
        }
        for c in self.text[self.off..off].chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.off = off;
        (self.line, self.col)
    }
}

/// Split source into tokens. Errors are collected; scanning goes on after a bad escape, and an
/// unterminated string ends the source.
pub fn tokenize(text: &str) -> (Vec<Token>, Vec<LexError>) {
    let mut lines = Lines::new(text);
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    let mut rest = text;
    loop {
        rest = match skip_space(rest) {
            Ok((r, _)) => r,
            Err(_) => rest,
        };
        if rest.is_empty() {
            break;
        }
        let off = text.len() - rest.len();
        let (line, col) = lines.pos(off);
        if let Ok((r, _)) = comment(rest) {
            rest = r;
            continue;
        }
        if let Some(after_quote) = rest.strip_prefix('"') {
            let (r, (body, bad)) = match string_body(after_quote) {
                Ok(x) => x,
                Err(_) => (after_quote, (String::new(), None)),
            };
            if let Some((at, c)) = bad {
                let (l, c0) = lines.pos(off + 1 + at);
                errors.push(LexError {
                    line: l,
                    col: c0,
                    kind: LexErrorKind::BadEscape(c),
                });
            }
            match r.strip_prefix('"') {
                Some(r) => {
                    let escaped = after_quote.len() - r.len() - 1 != body.len();
                    tokens.push(Token {
                        kind: TokenKind::Str,
                        text: body,
                        line,
                        col,
                        escaped,
                    });
                    rest = r;
                }
                None => {
                    errors.push(LexError {
                        line,
                        col,
                        kind: LexErrorKind::Unterminated,
                    });
                    break;
                }
            }
            continue;
        }
        match bare(rest) {
            Ok((r, t)) => {
                tokens.push(Token {
                    kind: TokenKind::Bare,
                    text: t.to_string(),
                    line,
                    col,
                    escaped: false,
                });
                rest = r;
            }
            Err(_) => break,
        }
    }
    (tokens, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(TokenKind, String, u32, u32)> {
        let (t, e) = tokenize(s);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter()
            .map(|t| (t.kind, t.text, t.line, t.col))
            .collect()
    }

    #[test]
    fn tokens_strings_comments_positions() {
        use TokenKind::*;
        assert_eq!(
            texts("#!/usr/bin/env -S ethertap run\n1 \"a b#\" a#b # c\n  \"\" x"),
            vec![
                (Bare, "1".into(), 2, 1),
                (Str, "a b#".into(), 2, 3),
                (Bare, "a#b".into(), 2, 10),
                (Str, "".into(), 3, 3),
                (Bare, "x".into(), 3, 6),
            ]
        );
        assert_eq!(
            texts(
                r#""q\"\\\n\t" "two
lines""#
            ),
            vec![
                (Str, "q\"\\\n\t".into(), 1, 1),
                (Str, "two\nlines".into(), 1, 13)
            ]
        );
    }

    #[test]
    fn errors() {
        let (_, e) = tokenize("1 \"abc");
        assert_eq!(e[0].kind.to_string(), "unterminated string");
        assert!(e[0].opens_string());
        assert_eq!((e[0].line, e[0].col), (1, 3));
        let (t, e) = tokenize("\"a\\qb\" x");
        assert_eq!(e[0].kind.to_string(), "unknown escape \\q in string");
        assert_eq!((e[0].line, e[0].col), (1, 3));
        assert_eq!(t.len(), 2);
        let (_, e) = tokenize("\"abc\\");
        assert_eq!(e[0].kind, LexErrorKind::Unterminated);
    }
}
