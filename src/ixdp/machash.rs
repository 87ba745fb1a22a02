//! The MAC sets of the policy (TAP, drop and fault machashes): immutable, sorted, cheap to probe.

use crate::wire::Mac;
use std::sync::Arc;

/// An immutable, sorted set of MAC addresses.
///
/// Workers call `contains` for every frame, so it must not allocate and must stay cheap for the
/// handful of MACs a machash usually holds; changes build a new set (`inserted`, `removed`) that
/// the control thread publishes in a new policy snapshot. Cloning shares the storage.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MacSet {
    sorted: Arc<[Mac]>,
    /// The same MACs as big-endian integers (same order): one compare per probe instead of a
    /// six-byte `memcmp`, which made binary search slower than a `HashSet` at 1000 MACs.
    keys: Arc<[u64]>,
}

/// Below this size a straight scan beats binary search (no unpredictable branches).
const LINEAR_SCAN_MAX: usize = 8;

impl MacSet {
    /// The empty set.
    pub fn new() -> MacSet {
        MacSet::default()
    }

    /// Whether `m` is in the set: no allocation, a scan or a binary search over integers.
    #[inline]
    pub fn contains(&self, m: &Mac) -> bool {
        let k = m.to_u64();
        if self.keys.len() <= LINEAR_SCAN_MAX {
            self.keys.contains(&k)
        } else {
            self.keys.binary_search(&k).is_ok()
        }
    }

    fn from_sorted(v: Vec<Mac>) -> MacSet {
        MacSet {
            keys: v.iter().map(|m| m.to_u64()).collect(),
            sorted: v.into(),
        }
    }

    /// True when the set holds no MAC.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The number of MACs in the set.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// This set plus `m` (the same set if `m` is already in it).
    pub fn inserted(&self, m: Mac) -> MacSet {
        match self.sorted.binary_search(&m) {
            Ok(_) => self.clone(),
            Err(at) => {
                let mut v = Vec::with_capacity(self.sorted.len() + 1);
                v.extend_from_slice(&self.sorted[..at]);
                v.push(m);
                v.extend_from_slice(&self.sorted[at..]);
                MacSet::from_sorted(v)
            }
        }
    }

    /// This set without `m` (the same set if `m` is not in it).
    pub fn removed(&self, m: &Mac) -> MacSet {
        match self.sorted.binary_search(m) {
            Err(_) => self.clone(),
            Ok(at) => {
                let mut v = self.sorted.to_vec();
                v.remove(at);
                MacSet::from_sorted(v)
            }
        }
    }

    /// The MACs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &Mac> {
        self.sorted.iter()
    }
}

impl FromIterator<Mac> for MacSet {
    fn from_iter<I: IntoIterator<Item = Mac>>(iter: I) -> MacSet {
        let mut v: Vec<Mac> = iter.into_iter().collect();
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

    #[test]
    fn set_stays_sorted_and_deduplicated() {
        let a = Mac([2, 0, 0, 0, 0, 1]);
        let b = Mac([0, 0, 0, 0, 0, 9]);
        let s = MacSet::new().inserted(a).inserted(b).inserted(a);
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![b, a]);
        assert!(s.contains(&a) && s.contains(&b) && !s.contains(&Mac([0; 6])));
        let s2 = s.removed(&a);
        assert!(!s2.contains(&a) && s2.contains(&b));
        assert!(s.contains(&a), "the old set is unchanged");
        assert_eq!(s2.removed(&a), s2);
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
}
