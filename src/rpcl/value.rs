//! Stack items: strings and typed data, their number conversion and their text forms.

use super::error::WordError;
use crate::wire::Mac;
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Data subtypes (docs/rpcl.md, "Values"), with their codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Subtype {
    /// `generic_t`: bytes of any length, printed as a hexdump.
    Generic = 0,
    /// `int8_t`
    Int8 = 1,
    /// `uint8_t`
    Uint8 = 2,
    /// `int16_t`
    Int16 = 3,
    /// `uint16_t`
    Uint16 = 4,
    /// `int32_t`
    Int32 = 5,
    /// `uint32_t`
    Uint32 = 6,
    /// `int64_t`
    Int64 = 7,
    /// `uint64_t`
    Uint64 = 8,
    /// `ip_t`: 16 bytes, IPv4 stored as `::ffff:a.b.c.d`.
    Ip = 9,
    /// `ip4_t`: 4 bytes.
    Ip4 = 10,
    /// `iprange_t`: two `ip_t`, FROM and TO.
    IpRange = 11,
    /// `mac_t`: 6 bytes.
    Mac = 12,
    /// `macrange_t`: two `mac_t`, FROM and TO.
    MacRange = 13,
}

impl Subtype {
    /// The name as the language writes it: `mac_t`, `uint32_t` …
    pub fn name(self) -> &'static str {
        match self {
            Subtype::Generic => "generic_t",
            Subtype::Int8 => "int8_t",
            Subtype::Uint8 => "uint8_t",
            Subtype::Int16 => "int16_t",
            Subtype::Uint16 => "uint16_t",
            Subtype::Int32 => "int32_t",
            Subtype::Uint32 => "uint32_t",
            Subtype::Int64 => "int64_t",
            Subtype::Uint64 => "uint64_t",
            Subtype::Ip => "ip_t",
            Subtype::Ip4 => "ip4_t",
            Subtype::IpRange => "iprange_t",
            Subtype::Mac => "mac_t",
            Subtype::MacRange => "macrange_t",
        }
    }

    /// Byte size of the subtype; `None` for generic data (any length).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            Subtype::Generic => return None,
            Subtype::Int8 | Subtype::Uint8 => 1,
            Subtype::Int16 | Subtype::Uint16 => 2,
            Subtype::Int32 | Subtype::Uint32 => 4,
            Subtype::Int64 | Subtype::Uint64 => 8,
            Subtype::Ip => 16,
            Subtype::Ip4 => 4,
            Subtype::IpRange => 32,
            Subtype::Mac => 6,
            Subtype::MacRange => 12,
        })
    }

    fn int_kind(self) -> Option<(usize, bool)> {
        match self {
            Subtype::Int8 => Some((1, true)),
            Subtype::Uint8 => Some((1, false)),
            Subtype::Int16 => Some((2, true)),
            Subtype::Uint16 => Some((2, false)),
            Subtype::Int32 => Some((4, true)),
            Subtype::Uint32 => Some((4, false)),
            Subtype::Int64 => Some((8, true)),
            Subtype::Uint64 => Some((8, false)),
            _ => None,
        }
    }
}

/// One stack item. Host code treats it as opaque and goes through `Ctx`.
///
/// A number produced by arithmetic is kept as an integer: its text is by construction the
/// canonical decimal form, so printing it needs no stored string and arithmetic on it needs
/// no parsing. Any other text (including `0x10` or `007`) keeps its exact bytes.
#[derive(Clone, Debug)]
pub struct Value(pub(crate) Repr);

/// Every variant is one machine word, so a `Value` is a register pair: pushes and copies in
/// the run loop stay in registers instead of being assembled in memory.
#[derive(Clone, Debug)]
pub(crate) enum Repr {
    Int(i64),
    Str(Arc<Vec<u8>>),
    Data(Arc<DataItem>),
}

#[derive(Debug)]
/// A data item: its subtype and its content.
pub(crate) struct DataItem {
    /// What the bytes are.
    pub subtype: Subtype,
    /// The content, in host byte order for numbers.
    pub bytes: Vec<u8>,
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (&self.0, &other.0) {
            (Repr::Data(a), Repr::Data(b)) => a.subtype == b.subtype && a.bytes == b.bytes,
            (Repr::Data(..), _) | (_, Repr::Data(..)) => false,
            (Repr::Int(a), Repr::Int(b)) => a == b,
            _ => self.bytes() == other.bytes(),
        }
    }
}

impl Value {
    /// An integer item.
    pub fn int(n: i64) -> Value {
        Value(Repr::Int(n))
    }

    /// A string item (bytes kept exactly; canonical decimals become cached integers).
    pub fn string(s: &str) -> Value {
        Value::from_bytes(s.as_bytes())
    }

    /// A string item of any bytes (not necessarily UTF-8).
    pub fn from_bytes(b: &[u8]) -> Value {
        match canonical_int(b) {
            Some(n) => Value(Repr::Int(n)),
            None => Value(Repr::Str(Arc::new(b.to_vec()))),
        }
    }

    /// A data item of a subtype.
    pub fn data(subtype: Subtype, bytes: Vec<u8>) -> Value {
        Value(Repr::Data(Arc::new(DataItem { subtype, bytes })))
    }

    /// True for data, false for a string.
    pub fn is_data(&self) -> bool {
        matches!(self.0, Repr::Data(..))
    }

    /// The subtype of a data item, `None` for a string.
    pub fn subtype(&self) -> Option<Subtype> {
        self.data_parts().map(|(t, _)| t)
    }

    /// Subtype and content of a data item.
    pub(crate) fn data_parts(&self) -> Option<(Subtype, &[u8])> {
        match &self.0 {
            Repr::Data(d) => Some((d.subtype, &d.bytes)),
            _ => None,
        }
    }

    /// The raw bytes: a string's text or a data item's content.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match &self.0 {
            Repr::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            Repr::Str(s) => Cow::Borrowed(s),
            Repr::Data(d) => Cow::Borrowed(&d.bytes),
        }
    }

    /// Length in bytes: of the text of a string, of the content of data.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Int(n) => int_len(*n),
            Repr::Str(s) => s.len(),
            Repr::Data(d) => d.bytes.len(),
        }
    }

    /// The bytes the item holds besides itself, as the dictionary's budget counts them.
    pub(crate) fn heap_size(&self) -> usize {
        const ARC_VEC: usize = 16 + std::mem::size_of::<Vec<u8>>();
        match &self.0 {
            Repr::Int(_) => 0,
            Repr::Str(s) => ARC_VEC + s.capacity(),
            Repr::Data(d) => ARC_VEC + 8 + d.bytes.capacity(),
        }
    }

    /// True for the empty string and empty data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A flag: false for the empty string and for a number equal to zero in any spelling
    /// (`0`, `00`, `-0`, `0x0`, integer-typed data holding 0); everything else is true. One
    /// rule for `if`, `until`, `while`, `not` and `and`/`or` on flags.
    pub fn is_true(&self) -> bool {
        match &self.0 {
            Repr::Int(n) => *n != 0,
            Repr::Str(s) => !s.is_empty() && !spells_zero(s),
            Repr::Data(_) => !matches!(self.as_int(), Ok(0)),
        }
    }

    /// The item as a number: a numeric string or integer-typed data.
    pub fn as_int(&self) -> Result<i64, WordError> {
        match &self.0 {
            Repr::Int(n) => Ok(*n),
            Repr::Str(s) => parse_number(s),
            Repr::Data(d) => match d.subtype.int_kind() {
                Some((w, signed)) if d.bytes.len() == w => {
                    let mut buf = [0u8; 8];
                    buf[..w].copy_from_slice(&d.bytes);
                    let raw = u64::from_ne_bytes(buf);
                    if signed {
                        let shift = 64 - 8 * w as u32;
                        Ok(((raw << shift) as i64) >> shift)
                    } else {
                        i64::try_from(raw).map_err(|_| WordError::OutOfRange(self.text().into()))
                    }
                }
                _ => Err(WordError::NotANumber(self.describe().into())),
            },
        }
    }

    /// Text form: a string's own text, typed data as `.` prints it, generic data as hex.
    pub fn text(&self) -> String {
        match &self.0 {
            Repr::Int(n) => n.to_string(),
            Repr::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Repr::Data(d) => data_text(d.subtype, &d.bytes),
        }
    }

    /// How an error message names the item: a string quoted, data by subtype and text.
    pub fn describe(&self) -> String {
        match self.data_parts() {
            Some((Subtype::Generic, b)) => format!("data of length {}", b.len()),
            Some((t, b)) => format!("{} {}", t.name(), data_text(t, b)),
            None => format!("\"{}\"", shorten(&self.text(), 64)),
        }
    }
}

/// `=`: numerically when both items are numbers, else byte-wise.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (&a.0, &b.0) {
        (Repr::Int(x), Repr::Int(y)) => x == y,
        _ => match (a.as_int(), b.as_int()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
    }
}

/// At most `max` characters of `s`, with "…" when cut (error messages stay one short line).
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn int_len(n: i64) -> usize {
    let mut len = if n < 0 { 2 } else { 1 };
    let mut m = n.unsigned_abs();
    while m >= 10 {
        m /= 10;
        len += 1;
    }
    len
}

/// The integer whose canonical decimal text is exactly `b`, if any.
pub(crate) fn canonical_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || digits.len() != b.len()) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A number equal to zero in RPCL syntax (`0`, `-0`, `+00`, `0x0`), checked without
/// allocating: flags are tested in loops.
fn spells_zero(b: &[u8]) -> bool {
    let rest = b
        .strip_prefix(b"-")
        .or_else(|| b.strip_prefix(b"+"))
        .unwrap_or(b);
    let digits = match rest {
        [b'0', b'x' | b'X', d @ ..] => d,
        d => d,
    };
    !digits.is_empty() && digits.iter().all(|&c| c == b'0')
}

/// RPCL number syntax: optional sign, decimal or `0x` hex, 64-bit signed.
pub(crate) fn parse_number(b: &[u8]) -> Result<i64, WordError> {
    let text = || format!("\"{}\"", shorten(&String::from_utf8_lossy(b), 64));
    let bad = || WordError::NotANumber(text().into());
    let (neg, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d @ ..] => (16, d),
        d => (10, d),
    };
    if digits.is_empty() || !digits.iter().all(|c| (*c as char).is_digit(radix)) {
        return Err(bad());
    }
    let mut mag: u128 = 0;
    for c in digits {
        mag = mag * radix as u128 + (*c as char).to_digit(radix).unwrap_or(0) as u128;
        if mag > 1 << 64 {
            break;
        }
    }
    let v: i128 = if neg { -(mag as i128) } else { mag as i128 };
    i64::try_from(v).map_err(|_| WordError::OutOfRange(text().into()))
}

fn data_text(t: Subtype, b: &[u8]) -> String {
    if let Some(size) = t.size() {
        if b.len() != size {
            return hex_string(b);
        }
    }
    match t {
        Subtype::Generic => hex_string(b),
        Subtype::Ip => ip_text(b),
        Subtype::Ip4 => Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        Subtype::IpRange => format!("{}-{}", ip_text(&b[..16]), ip_text(&b[16..])),
        Subtype::Mac => mac_text(b),
        Subtype::MacRange => format!("{}-{}", mac_text(&b[..6]), mac_text(&b[6..])),
        _ => {
            let (w, signed) = t.int_kind().unwrap_or((b.len(), false));
            let mut buf = [0u8; 8];
            buf[..w].copy_from_slice(b);
            let raw = u64::from_ne_bytes(buf);
            if signed {
                let shift = 64 - 8 * w as u32;
                (((raw << shift) as i64) >> shift).to_string()
            } else {
                format!("0x{:0width$x}", raw, width = 2 * w)
            }
        }
    }
}

/// Two lower-case hex digits a byte.
pub(crate) fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `mac_t` as text: the crate's one MAC format (`wire::Mac`); the caller checked the size.
fn mac_text(b: &[u8]) -> String {
    Mac::try_from(b).map_or_else(|_| hex_string(b), |m| m.to_string())
}

/// `inet_ntop(AF_INET6)` as glibc writes it, including its IPv4-embedded forms.
pub(crate) fn ip_text(b: &[u8]) -> String {
    let mut w = [0u16; 8];
    for (i, x) in w.iter_mut().enumerate() {
        *x = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    }
    // Longest run of zero words (first one wins a tie), at least two long.
    let (mut best, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let mut s = String::new();
    for i in 0..8 {
        if best != usize::MAX && i >= best && i < best + best_len {
            if i == best {
                s.push(':');
            }
            continue;
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            s.push_str(&Ipv4Addr::new(b[12], b[13], b[14], b[15]).to_string());
            return s;
        }
        s.push_str(&format!("{:x}", w[i]));
    }
    if best != usize::MAX && best + best_len == 8 {
        s.push(':');
    }
    s
}

/// A `mac_t` from text, through the crate's one MAC parser (`wire::Mac`).
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    text.parse::<Mac>().ok().map(|m| m.0)
}

/// An `ip_t` (16 bytes) from IPv4 or IPv6 text; IPv4 is stored as `::ffff:a.b.c.d`.
pub(crate) fn parse_ip(text: &str) -> Option<[u8; 16]> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(v4.to_ipv6_mapped().octets());
    }
    text.parse::<Ipv6Addr>().ok().map(|v6| v6.octets())
}

/// An `ip4_t` from `a.b.c.d`.
pub(crate) fn parse_ip4(text: &str) -> Option<[u8; 4]> {
    text.parse::<Ipv4Addr>().ok().map(|a| a.octets())
}

/// `hexdump -C` layout with a 4-digit offset; the ASCII column is always 16 wide.
pub(crate) fn hexdump(b: &[u8]) -> String {
    let mut s = String::new();
    let mut line = |off: usize, chunk: &[u8]| {
        s.push_str(&format!("{off:04x}  "));
        for i in 0..16 {
            match chunk.get(i) {
                Some(x) => s.push_str(&format!("{x:02x} ")),
                None => s.push_str("   "),
            }
            if i == 7 {
                s.push(' ');
            }
        }
        s.push_str(" |");
        for i in 0..16 {
            s.push(match chunk.get(i) {
                Some(&c) if (0x20..0x7f).contains(&c) => c as char,
                Some(_) => '.',
                None => ' ',
            });
        }
        s.push_str("|\n");
    };
    if b.is_empty() {
        line(0, &[]);
    }
    for (i, chunk) in b.chunks(16).enumerate() {
        line(i * 16, chunk);
    }
    s
}

/// Integer conversions of `str->int8_t` … `str->uint64_t`, range-checked, host byte order.
pub(crate) fn int_data(t: Subtype, text: &[u8]) -> Result<Value, WordError> {
    let (w, signed) = t.int_kind().unwrap_or((8, true));
    let name = shorten(&String::from_utf8_lossy(text), 64);
    let out_of_range = || WordError::new(format!("\"{name}\" is out of range for {}", t.name()));
    // uint64_t needs the full unsigned range, beyond the 64-bit signed numbers.
    let v: i128 = if !signed && w == 8 {
        let (radix, digits) = match text {
            [b'0', b'x' | b'X', d @ ..] => (16, d),
            d => (10, d),
        };
        match std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_digit(radix)))
        {
            Some(d) => u64::from_str_radix(d, radix).map_err(|_| out_of_range())? as i128,
            None => parse_number(text)? as i128,
        }
    } else {
        parse_number(text)? as i128
    };
    let bits = 8 * w as u32;
    let (lo, hi): (i128, i128) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if v < lo || v > hi {
        return Err(out_of_range());
    }
    let bytes = (v as u64).to_ne_bytes()[..w].to_vec();
    Ok(Value::data(t, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers_are_cached_and_others_kept() {
        assert!(matches!(Value::string("12").0, Repr::Int(12)));
        assert!(matches!(Value::string("-3").0, Repr::Int(-3)));
        for s in ["0x10", "007", "-0", "+1", "", "1a", "99999999999999999999"] {
            assert!(matches!(Value::string(s).0, Repr::Str(_)), "{s}");
        }
        assert_eq!(Value::string("0x10").text(), "0x10");
        assert_eq!(Value::string("0x10").as_int().unwrap(), 16);
        assert_eq!(Value::string("-0x10").as_int().unwrap(), -16);
        assert_eq!(Value::int(i64::MIN).len(), 20);
        assert!(Value::string("9223372036854775808").as_int().is_err());
        assert_eq!(
            Value::string("-9223372036854775808").as_int().unwrap(),
            i64::MIN
        );
    }

    #[test]
    fn ip_text_matches_inet_ntop() {
        let t = |s: &str| ip_text(&parse_ip(s).unwrap());
        assert_eq!(t("10.1.1.1"), "::ffff:10.1.1.1");
        assert_eq!(t("::"), "::");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(t("2001:db8::1"), "2001:db8::1");
        assert_eq!(t("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
        assert_eq!(t("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(t("fe80::"), "fe80::");
        assert_eq!(t("::ffff:0.0.0.0"), "::ffff:0.0.0.0");
    }
}
