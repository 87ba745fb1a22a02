//! Output: `.` `.x` `.d` `.i` `.fflush`, and `->str` (the text `.` prints, as a string).

use crate::rpcl::dict::{Builtin, Entry};
use crate::rpcl::error::WordError;
use crate::rpcl::limits::MAX_STRING;
use crate::rpcl::value::{hex_string, hexdump, Subtype, Value};
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        ".",
        "print an item: a string, typed data as text, generic data as a hexdump ( x - )",
        dot,
    ),
    Builtin::word(".x", "print an item as a hexdump ( x - )", dot_x),
    Builtin::word(".d", "print variables and compound words ( - )", dot_d),
    Builtin::word(
        ".i",
        "print words and their help, those containing the substring if given ( [substring] - )",
        dot_i,
    ),
    Builtin::word(".fflush", "flush the output ( - )", fflush),
    Builtin::word(
        "->str",
        "the text of an item: typed data as . prints it, generic data in hex ( item - string )",
        to_str,
    ),
];

/// Typed data is underlined when the output is a terminal.
fn underline(cx: &Ctx<'_>, s: &str) -> String {
    if cx.st.color {
        format!("\x1b[4m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn dot(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    let mut bytes = match v.data_parts() {
        Some((Subtype::Generic, b)) => hexdump(b).into_bytes(),
        Some(_) => underline(cx, &v.text()).into_bytes(),
        // A string prints its exact bytes, valid UTF-8 or not.
        None => v.bytes().into_owned(),
    };
    // A hexdump ends its own lines.
    if v.subtype() != Some(Subtype::Generic) {
        bytes.push(b'\n');
    }
    cx.emit(bytes)
}

fn dot_x(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    cx.emit(hexdump(&v.bytes()))
}

/// The `.s` form of one item (also used by `.d` for generic data).
pub(super) fn bracketed(v: &Value) -> String {
    match v.data_parts() {
        Some((Subtype::Generic, b)) => format!("[data length {}]", b.len()),
        Some((t, _)) => format!("[{} {}]", t.name(), v.text()),
        None => format!("[{}]", v.text()),
    }
}

/// Where the text of a `.d` or `.i` entry starts: after the name's 32 columns and a space.
const TEXT_COLUMN: usize = 33;

/// One entry of `.d` and `.i`: the name padded to 32 columns (blue when `new` and the output
/// is a terminal), then the text; on a terminal of known width the text is wrapped to it,
/// continuation lines indented to where the text starts.
fn listing_line(cx: &Ctx<'_>, name: &str, text: &str, new: bool) -> String {
    let padded = format!("{name:<32}");
    let shown = if new && cx.st.color {
        format!("\x1b[34m{padded}\x1b[0m")
    } else {
        padded
    };
    let text = match cx.st.width {
        Some(width) => wrap(text, width.saturating_sub(TEXT_COLUMN)),
        None => text.to_string(),
    };
    format!("{shown} {text}\n")
}

/// `text` in lines of at most `room` characters, broken at spaces (a word longer than a line
/// is cut, a help's stack effect `( … )` kept whole when it fits), joined by a newline and the
/// indent of [`TEXT_COLUMN`]. Too little room (a very narrow terminal) leaves the text as it
/// is.
fn wrap(text: &str, room: usize) -> String {
    if room < 16 || text.chars().count() <= room && !text.contains('\n') {
        return text.to_string();
    }
    let mut lines: Vec<String> = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for unit in units(paragraph, room) {
            let mut unit: Vec<char> = unit.chars().collect();
            if len > 0 && len + 1 + unit.len() > room {
                lines.push(std::mem::take(&mut line));
                len = 0;
            }
            while unit.len() > room {
                let rest = unit.split_off(room);
                if len > 0 {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(unit.into_iter().collect());
                unit = rest;
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.extend(unit.iter());
            len += unit.len();
        }
        lines.push(line);
    }
    lines.join(&format!("\n{:TEXT_COLUMN$}", ""))
}

/// The words of a line, the trailing stack effect (`( a b - c )`) as one when it fits `room`.
fn units(paragraph: &str, room: usize) -> Vec<&str> {
    let effect = paragraph
        .rfind(" ( ")
        .filter(|_| paragraph.ends_with(" )"))
        .map(|at| at + 1)
        .filter(|&at| paragraph.len() - at <= room);
    let (words, effect) = match effect {
        Some(at) => (&paragraph[..at - 1], Some(&paragraph[at..])),
        None => (paragraph, None),
    };
    words.split(' ').chain(effect).collect()
}

/// The names in use, sorted, with their symbols.
fn sorted_entries(cx: &Ctx<'_>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = cx
        .st
        .dict
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Entry::Free))
        .map(|(i, _)| (cx.st.dict.names[i].to_string(), i))
        .collect();
    v.sort();
    v
}

fn dot_d(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let mut s = String::new();
    for (name, i) in sorted_entries(cx) {
        match &cx.st.dict.entries[i] {
            Entry::Var { value, user } => {
                let text = if value.is_data() && value.subtype() == Some(Subtype::Generic) {
                    bracketed(value)
                } else {
                    value.text()
                };
                s.push_str(&listing_line(cx, &name, &text, *user));
            }
            Entry::Word {
                source,
                library: false,
                ..
            } => s.push_str(&listing_line(cx, &name, source, true)),
            _ => {}
        }
    }
    cx.emit(s)
}

fn dot_i(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let filter = if cx.st.depth() > 0 {
        Some(cx.pop()?.text())
    } else {
        None
    };
    let mut s = String::new();
    for (name, i) in sorted_entries(cx) {
        if let Some(f) = &filter {
            if !name.contains(f.as_str()) {
                continue;
            }
        }
        let (text, new) = match &cx.st.dict.entries[i] {
            Entry::Builtin(b) => match cx.st.dict.builtin(*b as usize) {
                Some(b) => (b.help.to_string(), false),
                None => continue,
            },
            Entry::Host { help, .. } => (help.clone(), false),
            Entry::Word {
                help,
                source,
                library,
                ..
            } => (help.clone().unwrap_or_else(|| source.clone()), !library),
            _ => continue,
        };
        s.push_str(&listing_line(cx, &name, &text, new));
    }
    cx.emit(s)
}

fn fflush(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    Ok(cx.out.flush()?)
}

fn to_str(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let s = match v.data_parts() {
        Some((Subtype::Generic, b)) => hex_string(b),
        _ => v.text(),
    };
    if s.len() > MAX_STRING {
        return Err(WordError::StringTooLong(s.len()));
    }
    cx.pop()?;
    cx.push_str(&s)
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_keeps_every_line_within_the_room() {
        let help = "add a MAC to the TAP machash; when it is not empty only frames from or to a listed MAC are tapped ( mac - )";
        let wrapped = wrap(help, 80 - 33);
        for (i, l) in wrapped.lines().enumerate() {
            let width = if i == 0 { 33 + l.len() } else { l.len() };
            assert!(width <= 80, "{l:?}");
            if i > 0 {
                assert!(l.starts_with(&" ".repeat(33)) && !l[33..].starts_with(' '));
            }
        }
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>().join(" "),
            help
        );
        assert_eq!(wrap("short ( - )", 47), "short ( - )");
        let long = "x".repeat(100);
        assert!(wrap(&long, 47).lines().all(|l| l.trim_start().len() <= 47));
    }
}
