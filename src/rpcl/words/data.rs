//! Data: `hex->data` `data.len` `data.byte@` `data.slice` `datacat`, and the random numbers
//! `random32` `random64`.

use super::span;
use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::limits::MAX_DATA;
use crate::rpcl::value::Subtype;
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        "hex->data",
        "convert hex digits to generic data ( \"0a0bff\" - d )",
        hex_to_data,
    ),
    Builtin::word("data.len", "length of an item in bytes ( d - n )", data_len),
    Builtin::word(
        "data.byte@",
        "the byte at an offset, as a number ( d offset - n )",
        data_byte,
    ),
    Builtin::word(
        "data.slice",
        "len bytes from offset, as generic data ( d offset len - d' )",
        data_slice,
    ),
    Builtin::word(
        "datacat",
        "concatenate two items into generic data ( d1 d2 - d )",
        datacat,
    ),
    Builtin::word(
        "random32",
        "push a random uint32_t ( - uint32_t )",
        random32,
    ),
    Builtin::word(
        "random64",
        "push a random uint64_t ( - uint64_t )",
        random64,
    ),
];

fn hex_to_data(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let v = cx.st.peek(0)?;
    let text = v.text();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(&text);
    if v.is_data() || digits.len() % 2 != 0 || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(WordError::new(format!(
            "{} is not an even number of hex digits",
            v.describe()
        )));
    }
    let bytes: Vec<u8> = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or(0))
        .collect();
    if bytes.len() > MAX_DATA {
        return Err(WordError::DataTooLong(bytes.len()));
    }
    cx.pop()?;
    cx.push_data(Subtype::Generic, bytes)
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

fn datacat(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let b = cx.st.peek(0)?.bytes().into_owned();
    let mut a = cx.st.peek(1)?.bytes().into_owned();
    a.extend_from_slice(&b);
    if a.len() > MAX_DATA {
        return Err(WordError::DataTooLong(a.len()));
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
