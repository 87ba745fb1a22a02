//! Variables and words: `!` `@` `!!` `forget` `defined?`.

use crate::rpcl::chunk::Origin;
use crate::rpcl::dict::{Builtin, Entry};
use crate::rpcl::error::{DefineError, WordError};
use crate::rpcl::value::{parse_number, Value};
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word("!", "store a value in a variable ( value name - )", store),
    Builtin::word(
        "@",
        "fetch a variable, a built-in's help or a compound word's source ( name - value )",
        fetch,
    ),
    Builtin::word(
        "!!",
        "define a compound word from a line of source ( line name - )",
        define,
    ),
    Builtin::word(
        "forget",
        "remove a variable or compound word ( name - )",
        forget,
    ),
    Builtin::word(
        "defined?",
        "1 if the name is a variable or a word, else 0 ( name - flag )",
        defined,
    ),
];

/// Built-ins, host words and library words stay as they are (except while the library
/// itself loads).
fn check_mutable(cx: &Ctx<'_>, name: &str) -> Result<(), WordError> {
    match cx.st.dict.entry(name) {
        Some(e) if e.immutable() && !cx.st.loading_library => Err(WordError::new(format!(
            "\"{name}\" is a built-in word and cannot be changed"
        ))),
        _ => Ok(()),
    }
}

fn store(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    cx.st.peek(1)?;
    check_mutable(cx, &name)?;
    let sym = cx.st.dict.intern(&name)?;
    let value = cx.st.peek(1)?.clone();
    let user = !cx.st.loading_library;
    cx.st.dict.set_entry(sym, Entry::Var { value, user })?;
    cx.st.pop()?;
    cx.st.pop()?;
    Ok(())
}

fn fetch(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let name = v.text();
    let found = match cx.st.dict.entry(&name) {
        Some(Entry::Var { value, .. }) => value.clone(),
        Some(Entry::Word { source, .. }) => Value::string(source),
        Some(Entry::Builtin(_) | Entry::Host { .. }) => match cx.st.dict.help(&name) {
            Some(help) => Value::string(help),
            None => return Err(WordError::NotDefined(v.describe().into())),
        },
        _ => return Err(WordError::NotDefined(v.describe().into())),
    };
    cx.st.pop()?;
    cx.st.push(found)
}

fn define(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    if parse_number(name.as_bytes()).is_ok() {
        return Err(WordError::new(format!(
            "\"{name}\" is a number and cannot name a word"
        )));
    }
    let source = cx.st.peek(1)?.text();
    check_mutable(cx, &name)?;
    let chunk = cx
        .st
        .compile_source(Origin::Word, &source)
        .map_err(|errs| {
            WordError::DoesNotCompile(Box::new(DefineError {
                name: name.clone(),
                error: errs.first,
            }))
        })?;
    let sym = cx.st.dict.intern(&name)?;
    let library = cx.st.loading_library;
    cx.st.dict.set_entry(
        sym,
        Entry::Word {
            chunk,
            source,
            help: None,
            library,
        },
    )?;
    cx.st.pop()?;
    cx.st.pop()?;
    Ok(())
}

fn forget(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let name = v.text();
    match cx.st.dict.lookup(&name) {
        Some(sym) if !matches!(cx.st.dict.entries[sym as usize], Entry::Free) => {
            if cx.st.dict.entries[sym as usize].immutable() {
                return Err(WordError::new(format!(
                    "\"{name}\" is a built-in word and cannot be forgotten"
                )));
            }
            cx.st.dict.set_entry(sym, Entry::Free)?;
            cx.pop()?;
            Ok(())
        }
        _ => Err(WordError::NotDefined(v.describe().into())),
    }
}

fn defined(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.st.peek(0)?.text();
    let d = matches!(cx.st.dict.entry(&name), Some(e) if !matches!(e, Entry::Free));
    cx.pop()?;
    cx.push_int(d as i64)
}
