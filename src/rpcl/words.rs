//! The built-in words (help texts, stack effects, output formats of `rpcl.md` §4–5) and the
//! loader of the standard library written in RPCL (`rpcl/*.rpcl`).

use super::compiler::{Op, Origin};
use super::dict::{valid_name, Entry};
use super::value::{self, hex_string, hexdump, Repr, Subtype, Value};
use super::vm::{Set, SetKey, State};
use super::{Ctx, WordError};

pub(crate) type BuiltinFn = fn(&mut Ctx<'_>) -> Result<(), WordError>;

pub(crate) enum Kind {
    Fn(BuiltinFn),
    /// Compiled to its own instruction.
    Op(Op),
    /// Compiled into jumps or checked structure (`if`, `do`, `{` …).
    Control,
}

pub(crate) struct Builtin {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

const fn f(name: &'static str, help: &'static str, func: BuiltinFn) -> Builtin {
    Builtin {
        name,
        help,
        kind: Kind::Fn(func),
    }
}
const fn op(name: &'static str, help: &'static str, op: Op) -> Builtin {
    Builtin {
        name,
        help,
        kind: Kind::Op(op),
    }
}
const fn ctl(name: &'static str, help: &'static str) -> Builtin {
    Builtin {
        name,
        help,
        kind: Kind::Control,
    }
}

/// The standard library, compiled into the binary and run when a VM starts.
const LIBRARY: &[(&str, &str)] = &[("rpcl/stack.rpcl", include_str!("../../rpcl/stack.rpcl"))];

pub(crate) static BUILTINS: &[Builtin] = &[
    // core
    f("!", "store a value in a variable ( value name - )", store),
    f(
        "@",
        "fetch a variable, a built-in's help or a compound word's source ( name - value )",
        fetch,
    ),
    f(
        "!!",
        "define a compound word from a line of source ( line name - )",
        define,
    ),
    op(
        "+",
        "add; alone in its frame the missing operand is 0 ( [n1] n2 - sum )",
        Op::Add,
    ),
    op(
        "*",
        "multiply; alone in its frame the missing operand is 1 ( [n1] n2 - product )",
        Op::Mul,
    ),
    op("-", "subtract ( n1 n2 - difference )", Op::Sub),
    f(
        ".",
        "print an item: a string, typed data as text, generic data as a hexdump ( x - )",
        dot,
    ),
    f(
        ".s",
        "print the stack, bottom first, without changing it ( - )",
        dot_s,
    ),
    f(".x", "print an item as a hexdump ( x - )", dot_x),
    f(
        ".cs",
        "clear the stack (the current frame) ( ... - )",
        clear_stack,
    ),
    f(".d", "print variables and compound words ( - )", dot_d),
    f(
        ".i",
        "print words and their help, those containing the substring if given ( [substring] - )",
        dot_i,
    ),
    f(
        ".exec-sp",
        "push the execution depth: 1 at top level, 2 in a compound word ( - n )",
        exec_sp,
    ),
    f(".fflush", "flush the output ( - )", fflush),
    ctl(
        "{",
        "open a stack frame: words see only the items pushed after it ( - )",
    ),
    ctl(
        "}",
        "close a stack frame, merging its items into the enclosing frame ( - )",
    ),
    f(
        "datacat",
        "concatenate two items into generic data ( d1 d2 - d )",
        datacat,
    ),
    f(
        "random32",
        "push a random uint32_t ( - uint32_t )",
        random32,
    ),
    f(
        "random64",
        "push a random uint64_t ( - uint64_t )",
        random64,
    ),
    f(
        "str->ip_t",
        "convert IPv4 or IPv6 text to ip_t ( string - ip_t )",
        |cx| conv(cx, Subtype::Ip),
    ),
    op(
        "load",
        "run an RPCL file; a missing file is an error ( filename - )",
        Op::Load,
    ),
    op(
        "load-if-present",
        "run an RPCL file if it exists ( filename - )",
        Op::LoadIfPresent,
    ),
    // stack
    op("dup", "duplicate the top item ( a - a a )", Op::Dup),
    op("drop", "discard the top item ( a - )", Op::Drop),
    op("swap", "exchange the top two items ( a b - b a )", Op::Swap),
    op(
        "over",
        "copy the second item to the top ( a b - a b a )",
        Op::Over,
    ),
    f(
        "rot",
        "rotate the third item to the top ( a b c - b c a )",
        rot,
    ),
    f(
        "pick",
        "copy the item u below the top, 0 being the top ( xu ... x0 u - xu ... x0 xu )",
        pick,
    ),
    f(
        "depth",
        "push the number of items in the current frame ( - n )",
        depth,
    ),
    f("2drop", "discard the top two items ( a b - )", two_drop),
    // arithmetic and logic
    f(
        "/",
        "divide, truncating toward zero ( n1 n2 - quotient )",
        |cx| arith(cx, "/"),
    ),
    f(
        "mod",
        "remainder of the division, with the sign of n1 ( n1 n2 - remainder )",
        |cx| arith(cx, "mod"),
    ),
    f("negate", "change the sign ( n - -n )", |cx| {
        unary(cx, i64::checked_neg)
    }),
    f("abs", "absolute value ( n - |n| )", |cx| {
        unary(cx, i64::checked_abs)
    }),
    f("min", "the smaller of two numbers ( n1 n2 - n )", |cx| {
        arith(cx, "min")
    }),
    f("max", "the larger of two numbers ( n1 n2 - n )", |cx| {
        arith(cx, "max")
    }),
    f("1+", "add one ( n - n+1 )", |cx| {
        unary(cx, |n| n.checked_add(1))
    }),
    f("1-", "subtract one ( n - n-1 )", |cx| {
        unary(cx, |n| n.checked_sub(1))
    }),
    op(
        "=",
        "equal: numerically when both are numbers, else byte-wise ( a b - flag )",
        Op::Eq,
    ),
    op("<>", "not equal, as = compares ( a b - flag )", Op::Ne),
    op("<", "less than ( n1 n2 - flag )", Op::Lt),
    op(">", "greater than ( n1 n2 - flag )", Op::Gt),
    op("<=", "less than or equal ( n1 n2 - flag )", Op::Le),
    op(">=", "greater than or equal ( n1 n2 - flag )", Op::Ge),
    f("0=", "1 if the number is zero, else 0 ( n - flag )", |cx| {
        unary(cx, |n| Some((n == 0) as i64))
    }),
    f("and", "bitwise and ( n1 n2 - n )", |cx| arith(cx, "and")),
    f("or", "bitwise or ( n1 n2 - n )", |cx| arith(cx, "or")),
    f("xor", "bitwise exclusive or ( n1 n2 - n )", |cx| {
        arith(cx, "xor")
    }),
    f(
        "not",
        "logical not: 1 for 0 or the empty string, else 0 ( flag - flag' )",
        not,
    ),
    // control
    ctl(
        "if",
        "run what follows up to else/then when the flag is true ( flag - )",
    ),
    ctl(
        "else",
        "start the part of an if that runs when the flag is false ( - )",
    ),
    ctl("then", "end an if ( - )"),
    ctl(
        "begin",
        "start a loop: begin ... until, begin ... while ... repeat ( - )",
    ),
    ctl(
        "until",
        "loop back to begin while the flag is false ( flag - )",
    ),
    ctl(
        "while",
        "leave a begin ... repeat loop when the flag is false ( flag - )",
    ),
    ctl("repeat", "loop back to begin ( - )"),
    ctl(
        "do",
        "start a counted loop from start up to limit - 1 ( limit start - )",
    ),
    ctl(
        "loop",
        "add one to the loop index and loop while it is below the limit ( - )",
    ),
    ctl(
        "+loop",
        "add n to the loop index and loop until it crosses the limit ( n - )",
    ),
    ctl("i", "push the index of the innermost do loop ( - n )"),
    ctl("j", "push the index of the next outer do loop ( - n )"),
    ctl("leave", "leave the innermost do loop at once ( - )"),
    op(
        "exit",
        "return from the current compound word or script ( - )",
        Op::Exit,
    ),
    f(
        "abort",
        "stop with an error carrying the message ( msg - )",
        abort,
    ),
    op(
        "bye",
        "end the console session or the script ( - )",
        Op::Bye,
    ),
    // strings
    f(
        "concat",
        "concatenate the text of two items ( a b - ab )",
        concat,
    ),
    f("strlen", "length of the text in bytes ( s - n )", strlen),
    f(
        "substr",
        "the len bytes of the text starting at byte start ( s start len - s' )",
        substr,
    ),
    f(
        "->str",
        "the text of an item: typed data as . prints it, generic data in hex ( item - string )",
        to_str,
    ),
    // conversions
    f(
        "str->mac_t",
        "convert aa:bb:cc:dd:ee:ff to mac_t ( string - mac_t )",
        |cx| conv(cx, Subtype::Mac),
    ),
    f(
        "str->ip4_t",
        "convert a.b.c.d to ip4_t ( string - ip4_t )",
        |cx| conv(cx, Subtype::Ip4),
    ),
    f(
        "str->iprange_t",
        "convert FROM-TO IP addresses to iprange_t ( string - iprange_t )",
        |cx| conv(cx, Subtype::IpRange),
    ),
    f(
        "str->macrange_t",
        "convert FROM-TO MAC addresses to macrange_t ( string - macrange_t )",
        |cx| conv(cx, Subtype::MacRange),
    ),
    f(
        "str->int8_t",
        "convert a number to int8_t, range-checked ( n - int8_t )",
        |cx| conv(cx, Subtype::Int8),
    ),
    f(
        "str->uint8_t",
        "convert a number to uint8_t, range-checked ( n - uint8_t )",
        |cx| conv(cx, Subtype::Uint8),
    ),
    f(
        "str->int16_t",
        "convert a number to int16_t, range-checked ( n - int16_t )",
        |cx| conv(cx, Subtype::Int16),
    ),
    f(
        "str->uint16_t",
        "convert a number to uint16_t, range-checked ( n - uint16_t )",
        |cx| conv(cx, Subtype::Uint16),
    ),
    f(
        "str->int32_t",
        "convert a number to int32_t, range-checked ( n - int32_t )",
        |cx| conv(cx, Subtype::Int32),
    ),
    f(
        "str->uint32_t",
        "convert a number to uint32_t, range-checked ( n - uint32_t )",
        |cx| conv(cx, Subtype::Uint32),
    ),
    f(
        "str->int64_t",
        "convert a number to int64_t, range-checked ( n - int64_t )",
        |cx| conv(cx, Subtype::Int64),
    ),
    f(
        "str->uint64_t",
        "convert a number to uint64_t, range-checked ( n - uint64_t )",
        |cx| conv(cx, Subtype::Uint64),
    ),
    // data
    f("data.len", "length of an item in bytes ( d - n )", data_len),
    f(
        "data.byte@",
        "the byte at an offset, as a number ( d offset - n )",
        data_byte,
    ),
    f(
        "data.slice",
        "len bytes from offset, as generic data ( d offset len - d' )",
        data_slice,
    ),
    f(
        "hex->data",
        "convert hex digits to generic data ( \"0a0bff\" - d )",
        hex_to_data,
    ),
    // sets
    f(
        "set.insert",
        "insert an item into a named set; a set holds one subtype ( item name - )",
        set_insert,
    ),
    f(
        "set.delete",
        "remove an item from a named set ( item name - )",
        set_delete,
    ),
    f(
        "set.member",
        "1 if the item is in the named set, else 0 ( item name - flag )",
        set_member,
    ),
    f(
        "set.count",
        "number of items in the named set ( name - n )",
        set_count,
    ),
    f(
        "set.show",
        "print the items of the named set, one a line, in order ( name - )",
        set_show,
    ),
    f("set.reset", "empty the named set ( name - )", set_reset),
    // dictionary
    f(
        "forget",
        "remove a variable or compound word ( name - )",
        forget,
    ),
    f(
        "defined?",
        "1 if the name is a variable or a word, else 0 ( name - flag )",
        defined,
    ),
    // scripts
    f(
        "argc",
        "number of arguments after the script's file name ( - n )",
        argc,
    ),
    f(
        "arg",
        "the script argument n, counting from 0 ( n - string )",
        arg,
    ),
    f("time", "seconds since 1970-01-01 UTC ( - seconds )", time),
    f("ms", "sleep n milliseconds; Ctrl-C interrupts ( n - )", ms),
];

fn io(e: std::io::Error) -> WordError {
    WordError::new(format!("output: {e}"))
}

fn emit(cx: &mut Ctx<'_>, s: &str) -> Result<(), WordError> {
    cx.out.write_all(s.as_bytes()).map_err(io)
}

fn err<T>(msg: String) -> Result<T, WordError> {
    Err(WordError::new(msg))
}

/// A name operand of `!`, `!!`, sets…: the top item, checked, not yet popped.
fn peek_name(cx: &Ctx<'_>, n: usize) -> Result<String, WordError> {
    let v = cx.st.peek(n)?;
    let name = v.text();
    if v.is_data() || !valid_name(&name) {
        return err(format!(
            "{} is not a valid name (printable ASCII without quotes, backslash or spaces, at most 32 bytes)",
            v.describe()
        ));
    }
    Ok(name)
}

fn check_mutable(cx: &Ctx<'_>, name: &str) -> Result<(), WordError> {
    match cx.st.dict.entry(name) {
        Some(e) if e.immutable() && !cx.st.loading_library => err(format!(
            "\"{name}\" is a built-in word and cannot be changed"
        )),
        _ => Ok(()),
    }
}

fn store(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    cx.st.peek(1)?;
    check_mutable(cx, &name)?;
    let sym = cx.st.dict.intern(&name)?;
    cx.st.pop()?;
    let value = cx.st.pop()?;
    let user = !cx.st.loading_library;
    cx.st.dict.entries[sym as usize] = Entry::Var { value, user };
    Ok(())
}

fn fetch(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let name = v.text();
    let found = match cx.st.dict.entry(&name) {
        Some(Entry::Var { value, .. }) => value.clone(),
        Some(Entry::Builtin(i)) => Value::string(BUILTINS[*i as usize].help),
        Some(Entry::Host { help, .. }) => Value::string(help),
        Some(Entry::Word { source, .. }) => Value::string(source),
        _ => return err(format!("{} is not defined", v.describe())),
    };
    cx.st.pop()?;
    cx.st.push(found)
}

fn define(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    if value::parse_number(name.as_bytes()).is_ok() {
        return err(format!("\"{name}\" is a number and cannot name a word"));
    }
    let source = cx.st.peek(1)?.text();
    check_mutable(cx, &name)?;
    let chunk = cx
        .st
        .compile_source(Origin::Word, &source)
        .map_err(|errs| {
            let e = &errs[0];
            WordError::new(format!(
                "\"{name}\" does not compile: {}:{}: {}: {}",
                e.line, e.col, e.word, e.msg
            ))
        })?;
    let sym = cx.st.dict.intern(&name)?;
    cx.st.pop()?;
    cx.st.pop()?;
    cx.st.dict.entries[sym as usize] = Entry::Word {
        chunk,
        source,
        help: None,
        library: cx.st.loading_library,
    };
    Ok(())
}

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
    cx.out.write_all(&bytes).map_err(io)
}

fn dot_x(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    let text = hexdump(&v.bytes());
    emit(cx, &text)
}

/// The `.s` form of one item (also used by `.d` for data).
fn bracketed(v: &Value) -> String {
    match v.data_parts() {
        Some((Subtype::Generic, b)) => format!("[data length {}]", b.len()),
        Some((t, _)) => format!("[{} {}]", t.name(), v.text()),
        None => format!("[{}]", v.text()),
    }
}

fn dot_s(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let base = cx.st.base();
    let mut s = String::new();
    for (i, v) in cx.st.stack[base..].iter().enumerate() {
        s.push_str(&format!("{i:2} {}\n", bracketed(v)));
    }
    emit(cx, &s)
}

fn clear_stack(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let base = cx.st.base();
    cx.st.stack.truncate(base);
    Ok(())
}

fn listing_line(cx: &Ctx<'_>, name: &str, text: &str, new: bool) -> String {
    let padded = format!("{name:<32}");
    let shown = if new && cx.st.color {
        format!("\x1b[34m{padded}\x1b[0m")
    } else {
        padded
    };
    format!("{shown} {text}\n")
}

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
    emit(cx, &s)
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
            Entry::Builtin(b) => (BUILTINS[*b as usize].help.to_string(), false),
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
    emit(cx, &s)
}

fn exec_sp(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.calls.len() as i64 + 1;
    cx.push_int(n)
}

fn fflush(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.out.flush().map_err(io)
}

fn datacat(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let b = cx.st.peek(0)?.bytes().into_owned();
    let mut a = cx.st.peek(1)?.bytes().into_owned();
    a.extend_from_slice(&b);
    if a.len() > value::MAX_DATA {
        return err(format!(
            "data of {} bytes is longer than {}",
            a.len(),
            value::MAX_DATA
        ));
    }
    cx.pop()?;
    cx.pop()?;
    cx.push_data(Subtype::Generic, a)
}

fn random32(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let r = (cx.st.next_random() >> 32) as u32;
    cx.push_data(Subtype::Uint32, r.to_ne_bytes().to_vec())
}

fn random64(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let r = cx.st.next_random();
    cx.push_data(Subtype::Uint64, r.to_ne_bytes().to_vec())
}

fn conv(cx: &mut Ctx<'_>, t: Subtype) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    if v.subtype() == Some(t) {
        return Ok(());
    }
    let text = v.text();
    let what = match t {
        Subtype::Ip => "an IP address",
        Subtype::Ip4 => "an IPv4 address",
        Subtype::Mac => "a MAC address",
        Subtype::IpRange => "an IP address range FROM-TO",
        Subtype::MacRange => "a MAC address range FROM-TO",
        _ => "",
    };
    let bad = || WordError::new(format!("{} is not {what}", v.describe()));
    let range = |parse: &dyn Fn(&str) -> Option<Vec<u8>>| -> Result<Vec<u8>, WordError> {
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let (mut from, to) = (parse(a).ok_or_else(bad)?, parse(b).ok_or_else(bad)?);
        if from > to {
            return err(format!("{} is not a range: FROM is above TO", v.describe()));
        }
        from.extend(to);
        Ok(from)
    };
    let out = match t {
        Subtype::Ip => Value::data(t, value::parse_ip(&text).ok_or_else(bad)?.to_vec()),
        Subtype::Ip4 => Value::data(t, value::parse_ip4(&text).ok_or_else(bad)?.to_vec()),
        Subtype::Mac => Value::data(t, value::parse_mac(&text).ok_or_else(bad)?.to_vec()),
        Subtype::IpRange => Value::data(t, range(&|s| value::parse_ip(s).map(|a| a.to_vec()))?),
        Subtype::MacRange => Value::data(t, range(&|s| value::parse_mac(s).map(|a| a.to_vec()))?),
        _ => {
            if v.is_data() && v.as_int().is_err() {
                return err(format!("{} is not a number", v.describe()));
            }
            value::int_data(t, text.as_bytes())?
        }
    };
    cx.pop()?;
    cx.push(out)
}

fn rot(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.st.peek(2)?;
    let n = cx.st.stack.len();
    cx.st.stack[n - 3..].rotate_left(1);
    Ok(())
}

fn pick(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let u = cx.st.peek(0)?.as_int()?;
    let avail = cx.st.depth() as i64 - 1;
    if u < 0 || u >= avail {
        return err(format!("cannot pick item {u} of {avail}"));
    }
    let v = cx.st.peek(u as usize + 1)?.clone();
    cx.pop()?;
    cx.push(v)
}

fn depth(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let d = cx.st.depth() as i64;
    cx.push_int(d)
}

fn two_drop(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.st.peek(1)?;
    cx.pop()?;
    cx.pop()?;
    Ok(())
}

fn arith(cx: &mut Ctx<'_>, what: &str) -> Result<(), WordError> {
    let b = cx.st.peek(0)?.as_int()?;
    let a = cx.st.peek(1)?.as_int()?;
    let r = match what {
        "/" | "mod" if b == 0 => return err("division by zero".into()),
        "/" => a.checked_div(b),
        "mod" => a.checked_rem(b),
        "min" => Some(a.min(b)),
        "max" => Some(a.max(b)),
        "and" => Some(a & b),
        "or" => Some(a | b),
        "xor" => Some(a ^ b),
        _ => None,
    }
    .ok_or_else(|| WordError::new(format!("{a} {what} {b} overflows")))?;
    cx.pop()?;
    cx.pop()?;
    cx.push_int(r)
}

fn unary(cx: &mut Ctx<'_>, f: fn(i64) -> Option<i64>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    let r = f(n).ok_or_else(|| WordError::new(format!("result for {n} overflows")))?;
    cx.pop()?;
    cx.push_int(r)
}

fn not(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.pop()?;
    cx.push_int(!v.is_true() as i64)
}

fn abort(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let msg = cx.pop()?.text();
    err(msg)
}

fn concat(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let mut s = text_bytes(cx.st.peek(1)?);
    s.extend_from_slice(&text_bytes(cx.st.peek(0)?));
    if s.len() > value::MAX_STRING {
        return err(format!(
            "string of {} bytes is longer than {}",
            s.len(),
            value::MAX_STRING
        ));
    }
    cx.pop()?;
    cx.pop()?;
    cx.push(Value::from_bytes(&s))
}

/// The bytes of a string, or the text form of data (what `concat` and `strlen` work on).
fn text_bytes(v: &Value) -> Vec<u8> {
    if v.is_data() {
        v.text().into_bytes()
    } else {
        v.bytes().into_owned()
    }
}

fn strlen(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = text_bytes(cx.st.peek(0)?).len() as i64;
    cx.pop()?;
    cx.push_int(n)
}

/// Offset and length operands checked against an item of `size` bytes.
fn span(start: i64, len: i64, size: usize, what: &str) -> Result<(usize, usize), WordError> {
    if start < 0 || len < 0 || start.saturating_add(len) > size as i64 {
        return err(format!(
            "offset {start} and length {len} are outside {what} of {size} bytes"
        ));
    }
    Ok((start as usize, len as usize))
}

fn substr(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let len = cx.st.peek(0)?.as_int()?;
    let start = cx.st.peek(1)?.as_int()?;
    let s = text_bytes(cx.st.peek(2)?);
    let (a, n) = span(start, len, s.len(), "the string")?;
    let r = Value::from_bytes(&s[a..a + n]);
    for _ in 0..3 {
        cx.pop()?;
    }
    cx.push(r)
}

fn to_str(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let s = match v.data_parts() {
        Some((Subtype::Generic, b)) => hex_string(b),
        _ => v.text(),
    };
    if s.len() > value::MAX_STRING {
        return err(format!(
            "string of {} bytes is longer than {}",
            s.len(),
            value::MAX_STRING
        ));
    }
    cx.pop()?;
    cx.push_str(&s)
}

fn data_len(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.len() as i64;
    cx.pop()?;
    cx.push_int(n)
}

fn data_byte(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let off = cx.st.peek(0)?.as_int()?;
    let d = cx.st.peek(1)?.bytes();
    let (a, _) = span(off, 1, d.len(), "data")?;
    let b = d[a] as i64;
    cx.pop()?;
    cx.pop()?;
    cx.push_int(b)
}

fn data_slice(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let len = cx.st.peek(0)?.as_int()?;
    let off = cx.st.peek(1)?.as_int()?;
    let d = cx.st.peek(2)?.bytes();
    let (a, n) = span(off, len, d.len(), "data")?;
    let r = d[a..a + n].to_vec();
    for _ in 0..3 {
        cx.pop()?;
    }
    cx.push_data(Subtype::Generic, r)
}

fn hex_to_data(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let text = v.text();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(&text);
    if v.is_data() || digits.len() % 2 != 0 || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return err(format!(
            "{} is not an even number of hex digits",
            v.describe()
        ));
    }
    let bytes: Vec<u8> = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or(0))
        .collect();
    if bytes.len() > value::MAX_DATA {
        return err(format!(
            "data of {} bytes is longer than {}",
            bytes.len(),
            value::MAX_DATA
        ));
    }
    cx.pop()?;
    cx.push_data(Subtype::Generic, bytes)
}

pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (&a.0, &b.0) {
        (Repr::Int(x), Repr::Int(y)) => x == y,
        _ => match (a.as_int(), b.as_int()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Sets keep numbers in numeric order (whatever their spelling), everything else byte-wise.
fn set_key(v: &Value) -> SetKey {
    match v.data_parts() {
        Some((Subtype::Uint64, b)) if b.len() == 8 => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(b);
            SetKey::Num(u64::from_ne_bytes(buf) as i128)
        }
        Some((Subtype::Generic | Subtype::Ip | Subtype::Ip4, b))
        | Some((Subtype::IpRange | Subtype::Mac | Subtype::MacRange, b)) => {
            SetKey::Bytes(b.to_vec())
        }
        _ => match v.as_int() {
            Ok(n) => SetKey::Num(n as i128),
            Err(_) => SetKey::Bytes(v.bytes().into_owned()),
        },
    }
}

fn kind_name(k: Option<Subtype>) -> &'static str {
    k.map(|t| t.name()).unwrap_or("string")
}

const MAX_SET: usize = 1 << 20;

/// The named set and the item, checked against the set's subtype (nothing popped yet).
fn set_operands(cx: &Ctx<'_>) -> Result<(String, Value), WordError> {
    let name = peek_name(cx, 0)?;
    let item = cx.st.peek(1)?.clone();
    if let Some(set) = cx.st.sets.get(&name) {
        if !set.items.is_empty() && set.kind != item.subtype() {
            return err(format!(
                "set \"{name}\" holds {} items, not {}",
                kind_name(set.kind),
                kind_name(item.subtype())
            ));
        }
    }
    Ok((name, item))
}

fn set_insert(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let (name, item) = set_operands(cx)?;
    let set = cx.st.sets.entry(name.clone()).or_insert(Set {
        kind: item.subtype(),
        items: Default::default(),
    });
    if set.items.len() >= MAX_SET {
        return err(format!("set \"{name}\" is full ({MAX_SET} items)"));
    }
    set.kind = item.subtype();
    set.items.insert(set_key(&item), item);
    cx.pop()?;
    cx.pop()?;
    Ok(())
}

fn set_delete(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let (name, item) = set_operands(cx)?;
    if let Some(set) = cx.st.sets.get_mut(&name) {
        set.items.remove(&set_key(&item));
    }
    cx.pop()?;
    cx.pop()?;
    Ok(())
}

fn set_member(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    let item = cx.st.peek(1)?;
    let found = cx.st.sets.get(&name).is_some_and(|s| {
        (s.items.is_empty() || s.kind == item.subtype()) && s.items.contains_key(&set_key(item))
    });
    cx.pop()?;
    cx.pop()?;
    cx.push_int(found as i64)
}

fn set_count(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    let n = cx.st.sets.get(&name).map_or(0, |s| s.items.len()) as i64;
    cx.pop()?;
    cx.push_int(n)
}

fn set_show(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    let mut s = String::new();
    if let Some(set) = cx.st.sets.get(&name) {
        for v in set.items.values() {
            match v.data_parts() {
                Some((Subtype::Generic, b)) => s.push_str(&hex_string(b)),
                _ => s.push_str(&v.text()),
            }
            s.push('\n');
        }
    }
    cx.pop()?;
    emit(cx, &s)
}

fn set_reset(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = peek_name(cx, 0)?;
    cx.st.sets.remove(&name);
    cx.pop()?;
    Ok(())
}

fn forget(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let name = v.text();
    match cx.st.dict.lookup(&name) {
        Some(sym) if !matches!(cx.st.dict.entries[sym as usize], Entry::Free) => {
            if cx.st.dict.entries[sym as usize].immutable() {
                return err(format!(
                    "\"{name}\" is a built-in word and cannot be forgotten"
                ));
            }
            cx.st.dict.entries[sym as usize] = Entry::Free;
            cx.pop()?;
            Ok(())
        }
        _ => err(format!("{} is not defined", v.describe())),
    }
}

fn defined(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.st.peek(0)?.text();
    let d = matches!(cx.st.dict.entry(&name), Some(e) if !matches!(e, Entry::Free));
    cx.pop()?;
    cx.push_int(d as i64)
}

fn argc(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.args.len() as i64;
    cx.push_int(n)
}

fn arg(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    let argc = cx.st.args.len();
    let a = usize::try_from(n)
        .ok()
        .and_then(|i| cx.st.args.get(i))
        .cloned()
        .ok_or_else(|| WordError::new(format!("no argument {n} (argc is {argc})")))?;
    cx.pop()?;
    cx.push_str(&a)
}

fn time(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    cx.push_int(s)
}

fn ms(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let n = cx.st.peek(0)?.as_int()?;
    if n < 0 {
        return err(format!("{n} is not a duration"));
    }
    cx.pop()?;
    let _ = cx.out.flush();
    let end = std::time::Instant::now() + std::time::Duration::from_millis(n as u64);
    loop {
        if cx.interrupted() {
            return err("interrupted".into());
        }
        let now = std::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(10)));
    }
}

/// Run the standard library into a fresh VM; `#: NAME HELP` lines give its words' help.
pub(crate) fn load_library(st: &mut State) {
    st.loading_library = true;
    for (file, text) in LIBRARY {
        let r = st.run_source(Some(file), text, &mut std::io::sink());
        debug_assert!(r.is_ok(), "standard library: {r:?}");
        for line in text.lines() {
            let Some(doc) = line.strip_prefix("#:") else {
                continue;
            };
            let doc = doc.trim_start();
            let (name, help) = doc.split_once(' ').unwrap_or((doc, ""));
            if let Some(sym) = st.dict.lookup(name) {
                if let Entry::Word { help: h, .. } = &mut st.dict.entries[sym as usize] {
                    *h = Some(help.trim().to_string());
                }
            }
        }
    }
    st.stack.clear();
    st.loading_library = false;
}
