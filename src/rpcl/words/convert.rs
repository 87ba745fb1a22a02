//! Conversions: `str->ip_t` `str->ip4_t` `str->iprange_t` `str->mac_t` `str->macrange_t` and
//! the range-checked integers `str->int8_t` … `str->uint64_t`. An item that already has the
//! subtype is left as it is.

use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::value::{self, Subtype, Value};
use crate::rpcl::Ctx;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        "str->ip_t",
        "convert IPv4 or IPv6 text to ip_t ( string - ip_t )",
        |cx| conv(cx, Subtype::Ip),
    ),
    Builtin::word(
        "str->ip4_t",
        "convert a.b.c.d to ip4_t ( string - ip4_t )",
        |cx| conv(cx, Subtype::Ip4),
    ),
    Builtin::word(
        "str->iprange_t",
        "convert FROM-TO IP addresses to iprange_t ( string - iprange_t )",
        |cx| conv(cx, Subtype::IpRange),
    ),
    Builtin::word(
        "str->mac_t",
        "convert aa:bb:cc:dd:ee:ff to mac_t ( string - mac_t )",
        |cx| conv(cx, Subtype::Mac),
    ),
    Builtin::word(
        "str->macrange_t",
        "convert FROM-TO MAC addresses to macrange_t ( string - macrange_t )",
        |cx| conv(cx, Subtype::MacRange),
    ),
    Builtin::word(
        "str->int8_t",
        "convert a number to int8_t, range-checked ( n - int8_t )",
        |cx| conv(cx, Subtype::Int8),
    ),
    Builtin::word(
        "str->uint8_t",
        "convert a number to uint8_t, range-checked ( n - uint8_t )",
        |cx| conv(cx, Subtype::Uint8),
    ),
    Builtin::word(
        "str->int16_t",
        "convert a number to int16_t, range-checked ( n - int16_t )",
        |cx| conv(cx, Subtype::Int16),
    ),
    Builtin::word(
        "str->uint16_t",
        "convert a number to uint16_t, range-checked ( n - uint16_t )",
        |cx| conv(cx, Subtype::Uint16),
    ),
    Builtin::word(
        "str->int32_t",
        "convert a number to int32_t, range-checked ( n - int32_t )",
        |cx| conv(cx, Subtype::Int32),
    ),
    Builtin::word(
        "str->uint32_t",
        "convert a number to uint32_t, range-checked ( n - uint32_t )",
        |cx| conv(cx, Subtype::Uint32),
    ),
    Builtin::word(
        "str->int64_t",
        "convert a number to int64_t, range-checked ( n - int64_t )",
        |cx| conv(cx, Subtype::Int64),
    ),
    Builtin::word(
        "str->uint64_t",
        "convert a number to uint64_t, range-checked ( n - uint64_t )",
        |cx| conv(cx, Subtype::Uint64),
    ),
];

/// The top item converted to `t`.
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
            return Err(WordError::new(format!(
                "{} is not a range: FROM is above TO",
                v.describe()
            )));
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
                return Err(WordError::NotANumber(v.describe().into()));
            }
            value::int_data(t, text.as_bytes())?
        }
    };
    cx.pop()?;
    cx.push(out)
}
