//! The MAC sets of the policy (TAP, drop and fault machashes): immutable, sorted, cheap to probe.

use crate::wire::{Mac, MacRange};
use std::sync::Arc;

/// An immutable set of MAC addresses and MAC ranges.
///
/// Workers call `contains` for every frame, so it must not allocate and must stay cheap for the
/// handful of MACs a machash usually holds; changes build a new set (`inserted`, `removed`) that
/// the control thread publishes in a new policy snapshot. Cloning shares the storage.
///
/// The entries are kept as they were inserted (a MAC inside a listed range is still its own
/// entry, and deleting it leaves the range whole); lookups use two derived tables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MacSet {
    /// Every entry, sorted by first MAC, then last; single MACs are ranges of one.
    entries: Arc<[MacRange]>,
    /// The single MACs as big-endian integers, sorted: one compare per probe instead of a
    /// six-byte `memcmp`, which made binary search slower than a `HashSet` at 1000 MACs.
    keys: Arc<[u64]>,
    /// The ranges of more than one MAC, merged where they overlap or touch, sorted, as
    /// `(first, last)` integers. Empty in the common case, which then costs one test.
    spans: Arc<[(u64, u64)]>,
}

/// Below this size a straight scan beats binary search (no unpredictable branches).
const LINEAR_SCAN_MAX: usize = 8;

impl MacSet {
    /// The empty set.
    pub fn new() -> MacSet {
        MacSet::default()
    }

    /// Whether `m` is listed or in a listed range: no allocation, a scan or a binary search
    /// over integers.
    #[inline]
    pub fn contains(&self, m: &Mac) -> bool {
        let k = m.to_u64();
        let listed = if self.keys.len() <= LINEAR_SCAN_MAX {
            self.keys.contains(&k)
        } else {
            self.keys.binary_search(&k).is_ok()
        };
        listed || (!self.spans.is_empty() && self.in_spans(k))
    }

    /// Whether `k` falls in one of the merged ranges.
    #[inline(never)]
    fn in_spans(&self, k: u64) -> bool {
        let after = if self.spans.len() <= LINEAR_SCAN_MAX {
            self.spans.iter().take_while(|s| s.0 <= k).count()
        } else {
            self.spans.partition_point(|s| s.0 <= k)
        };
        after > 0 && self.spans[after - 1].1 >= k
    }

    fn from_sorted(v: Vec<MacRange>) -> MacSet {
        let keys = v
            .iter()
            .filter(|r| r.is_single())
            .map(|r| r.first().to_u64())
            .collect();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for r in v.iter().filter(|r| !r.is_single()) {
            let (a, b) = (r.first().to_u64(), r.last().to_u64());
            match spans.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => spans.push((a, b)),
            }
        }
        MacSet {
            entries: v.into(),
            keys,
            spans: spans.into(),
        }
    }

    /// True when the set holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entries (MACs and ranges) in the set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The number of entries that are ranges of more than one MAC.
    pub fn ranges(&self) -> usize {
        self.entries.iter().filter(|r| !r.is_single()).count()
    }

    /// This set plus the entry `e`, a MAC or a range (the same set if it is already listed).
    pub fn inserted(&self, e: impl Into<MacRange>) -> MacSet {
        let e = e.into();
        match self.entries.binary_search(&e) {
            Ok(_) => self.clone(),
            Err(at) => {
                let mut v = Vec::with_capacity(self.entries.len() + 1);
                v.extend_from_slice(&self.entries[..at]);
                v.push(e);
                v.extend_from_slice(&self.entries[at..]);
                MacSet::from_sorted(v)
            }
        }
    }

    /// This set without the entry `e` (the same set if it is not listed). Only that exact
    /// entry goes: a range is not split, and a MAC inside a listed range stays selected.
    pub fn removed(&self, e: impl Into<MacRange>) -> MacSet {
        let e = e.into();
        match self.entries.binary_search(&e) {
            Err(_) => self.clone(),
            Ok(at) => {
                let mut v = self.entries.to_vec();
                v.remove(at);
                MacSet::from_sorted(v)
            }
        }
    }

    /// True when `e` is an entry of the set (not merely covered by one).
    pub fn lists(&self, e: impl Into<MacRange>) -> bool {
        self.entries.binary_search(&e.into()).is_ok()
    }

    /// The entries in ascending order of their first MAC.
    pub fn iter(&self) -> impl Iterator<Item = &MacRange> {
        self.entries.iter()
    }
}

impl<T: Into<MacRange>> FromIterator<T> for MacSet {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> MacSet {
        let mut v: Vec<MacRange> = iter.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        MacSet::from_sorted(v)
    }
}

impl std::fmt::Debug for MacSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: Mac, b: Mac) -> MacRange {
        MacRange::new(a, b).unwrap()
    }

    #[test]
    fn set_stays_sorted_and_deduplicated() {
        let a = Mac([2, 0, 0, 0, 0, 1]);
        let b = Mac([0, 0, 0, 0, 0, 9]);
        let s = MacSet::new().inserted(a).inserted(b).inserted(a);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            vec![MacRange::from(b), MacRange::from(a)]
        );
        assert!(s.contains(&a) && s.contains(&b) && !s.contains(&Mac([0; 6])));
        let s2 = s.removed(a);
        assert!(!s2.contains(&a) && s2.contains(&b));
        assert!(s.contains(&a), "the old set is unchanged");
        assert_eq!(s2.removed(a), s2);
    }

    #[test]
    fn large_set_uses_search_and_agrees_with_a_scan() {
        let macs: Vec<Mac> = (0..500u32)
            .map(|i| Mac([0, 0x50, 0x56, (i >> 8) as u8, i as u8, 7]))
            .collect();
        let set: MacSet = macs.iter().copied().step_by(2).collect();
        assert_eq!(set.len(), 250);
        for (i, m) in macs.iter().enumerate() {
            assert_eq!(set.contains(m), i % 2 == 0);
        }
    }

    #[test]
    fn ranges_select_every_mac_between_their_ends() {
        let lo = Mac([0, 0, 0x0c, 0, 0, 0]);
        let hi = Mac([0, 0, 0x0c, 0xff, 0xff, 0xff]);
        let single = Mac([2, 0, 0, 0, 0, 1]);
        let s = MacSet::new().inserted(range(lo, hi)).inserted(single);
        assert_eq!((s.len(), s.ranges()), (2, 1));
        for m in [lo, hi, Mac([0, 0, 0x0c, 0x12, 0x34, 0x56]), single] {
            assert!(s.contains(&m), "{m}");
        }
        for m in [
            Mac([0, 0, 0x0b, 0xff, 0xff, 0xff]),
            Mac([0, 0, 0x0d, 0, 0, 0]),
            Mac([2, 0, 0, 0, 0, 2]),
        ] {
            assert!(!s.contains(&m), "{m}");
        }
        assert!(
            s.lists(range(lo, hi)) && !s.lists(lo),
            "covered is not listed"
        );
        // A MAC inside a range is its own entry; deleting it leaves the range whole.
        let inner = Mac([0, 0, 0x0c, 1, 1, 1]);
        let s2 = s.inserted(inner);
        assert_eq!(s2.len(), 3);
        assert!(s2.removed(inner).contains(&inner));
        assert!(!s.removed(range(lo, hi)).contains(&inner));
        assert_eq!(s.removed(range(lo, hi)).removed(single), MacSet::new());
    }

    #[test]
    fn overlapping_touching_and_many_ranges_agree_with_a_plain_check() {
        let m = |k: u64| Mac::from_u64(k);
        let entries = [
            range(m(10), m(20)),
            range(m(15), m(30)),
            range(m(31), m(31)),
            range(m(32), m(40)),
            range(m(100), m(200)),
            range(m(150), m(160)),
            range(m(0xffff_ffff_fff0), m(0xffff_ffff_ffff)),
        ];
        let mut all: Vec<MacRange> = entries.to_vec();
        for i in 0..40u64 {
            all.push(range(m(1000 + 10 * i), m(1003 + 10 * i)));
        }
        for set_entries in [&entries[..], &all[..]] {
            let s: MacSet = set_entries.iter().copied().collect();
            for k in (0..1500).chain(0xffff_ffff_ffe0..=0xffff_ffff_ffff) {
                let expect = set_entries.iter().any(|r| r.contains(m(k)));
                assert_eq!(s.contains(&m(k)), expect, "{k}");
            }
        }
    }
}
