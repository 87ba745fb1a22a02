//! Sets: named, typed, ordered sets of items (`set.insert` `set.delete` `set.member`
//! `set.count` `set.show` `set.reset`). A set holds items of one subtype (or strings);
//! numbers are ordered numerically whatever their spelling, everything else byte-wise.

use crate::rpcl::dict::Builtin;
use crate::rpcl::error::WordError;
use crate::rpcl::value::{hex_string, Subtype, Value};
use crate::rpcl::Ctx;
use std::collections::BTreeMap;

/// This family's rows of [`super::BUILTINS`].
pub(super) const WORDS: &[Builtin] = &[
    Builtin::word(
        "set.insert",
        "insert an item into a named set; a set holds one subtype ( item name - )",
        set_insert,
    ),
    Builtin::word(
        "set.delete",
        "remove an item from a named set ( item name - )",
        set_delete,
    ),
    Builtin::word(
        "set.member",
        "1 if the item is in the named set, else 0 ( item name - flag )",
        set_member,
    ),
    Builtin::word(
        "set.count",
        "number of items in the named set ( name - n )",
        set_count,
    ),
    Builtin::word(
        "set.show",
        "print the items of the named set, one a line, in order ( name - )",
        set_show,
    ),
    Builtin::word("set.reset", "empty the named set ( name - )", set_reset),
];

/// Items in one set at most.
const MAX_SET: usize = 1 << 20;

/// The sets of one VM, by name.
#[derive(Default)]
pub(crate) struct Sets(BTreeMap<String, Set>);

/// One set: its subtype and its items in key order.
struct Set {
    /// `None` holds strings.
    kind: Option<Subtype>,
    items: BTreeMap<SetKey, Value>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SetKey {
    Num(i128),
    Bytes(Vec<u8>),
}

impl SetKey {
    fn of(v: &Value) -> SetKey {
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
}

/// Bytes one item of a set holds besides the item's own: its key and the tree's node.
const ITEM_OVERHEAD: usize = 64;

/// The bytes an item costs in a set, as the dictionary's budget counts them.
fn item_cost(key: &SetKey, item: &Value) -> usize {
    let key_bytes = match key {
        SetKey::Num(_) => 0,
        SetKey::Bytes(b) => b.len(),
    };
    ITEM_OVERHEAD + key_bytes + item.heap_size()
}

impl Set {
    /// What the set holds, as the budget counts it.
    fn cost(&self) -> usize {
        self.items.iter().map(|(k, v)| item_cost(k, v)).sum()
    }

    /// An item of another subtype is never a member of a set that holds items.
    fn accepts(&self, kind: Option<Subtype>) -> bool {
        self.items.is_empty() || self.kind == kind
    }
}

fn kind_name(k: Option<Subtype>) -> &'static str {
    k.map(|t| t.name()).unwrap_or("string")
}

/// The named set and the item (`item name`), checked against the set's subtype; nothing
/// popped yet.
fn operands(cx: &mut Ctx<'_>) -> Result<(String, Value), WordError> {
    let name = cx.peek_name(0)?;
    let item = cx.peek(1)?.clone();
    if let Some(set) = cx.sets().0.get(&name) {
        if !set.accepts(item.subtype()) {
            return Err(WordError::new(format!(
                "set \"{name}\" holds {} items, not {}",
                kind_name(set.kind),
                kind_name(item.subtype())
            )));
        }
    }
    Ok((name, item))
}

/// Drop the two operands `item name`.
fn pop2(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    cx.pop()?;
    cx.pop()?;
    Ok(())
}

fn set_insert(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let (name, item) = operands(cx)?;
    let set = cx.sets().0.entry(name.clone()).or_insert(Set {
        kind: item.subtype(),
        items: BTreeMap::new(),
    });
    if set.items.len() >= MAX_SET {
        return Err(WordError::new(format!(
            "set \"{name}\" is full ({MAX_SET} items)"
        )));
    }
    let key = SetKey::of(&item);
    let old = set.items.get(&key).map_or(0, |v| item_cost(&key, v));
    let new = item_cost(&key, &item);
    let was_empty = set.items.is_empty();
    if let Err(e) = cx.st.dict.budget.charge(new, old) {
        if was_empty {
            cx.sets().0.remove(&name);
        }
        return Err(e);
    }
    let set = cx.sets().0.get_mut(&name).expect("the set made above");
    set.kind = item.subtype();
    set.items.insert(key, item);
    pop2(cx)
}

fn set_delete(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let (name, item) = operands(cx)?;
    let key = SetKey::of(&item);
    if let Some(old) = cx
        .sets()
        .0
        .get_mut(&name)
        .and_then(|s| s.items.remove(&key))
    {
        cx.st.dict.budget.release_charge(item_cost(&key, &old));
    }
    pop2(cx)
}

fn set_member(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    let item = cx.peek(1)?;
    let (kind, key) = (item.subtype(), SetKey::of(item));
    let found = cx
        .sets()
        .0
        .get(&name)
        .is_some_and(|s| s.accepts(kind) && s.items.contains_key(&key));
    pop2(cx)?;
    cx.push_int(found as i64)
}

fn set_count(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    let n = cx.sets().0.get(&name).map_or(0, |s| s.items.len()) as i64;
    cx.pop()?;
    cx.push_int(n)
}

fn set_show(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    let mut s = String::new();
    if let Some(set) = cx.sets().0.get(&name) {
        for v in set.items.values() {
            match v.data_parts() {
                Some((Subtype::Generic, b)) => s.push_str(&hex_string(b)),
                _ => s.push_str(&v.text()),
            }
            s.push('\n');
        }
    }
    cx.pop()?;
    cx.emit(s)
}

fn set_reset(cx: &mut Ctx<'_>) -> Result<(), WordError> {
    let name = cx.peek_name(0)?;
    if let Some(set) = cx.sets().0.remove(&name) {
        cx.st.dict.budget.release_charge(set.cost());
    }
    cx.pop()?;
    Ok(())
}
