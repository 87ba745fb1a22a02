//! Fault injection decisions: drop, flip one bit, duplicate — per frame, per worker.

use super::policy::{FaultConfig, PROBABILITY_SCALE};

/// Bytes a bit flip never touches: both MACs and the outer Ethertype, so that the corrupted
/// frame still reaches the same peer and is still classified the same way by the switch.
pub const FLIP_PROTECTED_BYTES: usize = 14;

/// A small, fast pseudo-random generator (wyrand), one per worker so that no state is shared
/// between threads. Not cryptographic: it only has to make fault injection look random.
#[derive(Clone, Debug)]
pub struct FaultRng {
    state: u64,
}

impl FaultRng {
    /// A generator starting from `seed` (the same seed gives the same stream).
    pub fn new(seed: u64) -> FaultRng {
        FaultRng { state: seed }
    }

    /// A generator for the worker of one queue: different per queue and per run.
    pub fn for_worker(queue: usize) -> FaultRng {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        FaultRng::new(splitmix64(now ^ splitmix64(queue as u64)))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    }

    /// Uniform in `0..n` (n > 0); the multiply-high mapping's bias is at most n / 2^64.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p` / 100000: exactly never for 0, exactly always from 100000 on.
    #[inline]
    pub fn chance(&mut self, p: u32) -> bool {
        match p {
            0 => false,
            p if p >= PROBABILITY_SCALE => true,
            p => self.below(u64::from(PROBABILITY_SCALE)) < u64::from(p),
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What fault injection does to one selected frame.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct FaultDecision {
    /// Drop the frame (then neither of the others).
    pub drop: bool,
    /// Flip one bit past the Ethernet header.
    pub flip: bool,
    /// Send the frame twice.
    pub dup: bool,
}

/// What to do with one selected frame. A dropped frame is neither flipped nor duplicated, so
/// the `dropped/flipped/duplicated by FI` counters only count what really happened.
#[inline]
pub fn decide(cfg: &FaultConfig, rng: &mut FaultRng) -> FaultDecision {
    if !cfg.enabled {
        return FaultDecision::default();
    }
    if rng.chance(cfg.drop_p) {
        return FaultDecision {
            drop: true,
            ..FaultDecision::default()
        };
    }
    FaultDecision {
        drop: false,
        flip: rng.chance(cfg.flip_p),
        dup: rng.chance(cfg.dup_p),
    }
}

/// Chooses the bit a flip changes in a frame of `len` bytes: uniformly among the bits at byte
/// offset 14 or later, counted from there. A frame of 14 bytes or less has none (`None`).
#[inline]
pub fn flip_position(len: usize, rng: &mut FaultRng) -> Option<usize> {
    let bytes = len.checked_sub(FLIP_PROTECTED_BYTES).filter(|&n| n > 0)?;
    Some(rng.below(bytes as u64 * 8) as usize)
}

/// Where bit `bit` (as [`flip_position`] counts them) is: the byte's offset in the frame and
/// the mask that flips it.
#[inline]
pub fn flip_target(bit: usize) -> (usize, u8) {
    (FLIP_PROTECTED_BYTES + bit / 8, 1 << (bit % 8))
}

/// Flips bit `bit` (as [`flip_position`] counts them) of `frame`; a bit past the end is
/// ignored.
#[inline]
pub fn flip_bit(frame: &mut [u8], bit: usize) {
    let (at, mask) = flip_target(bit);
    if let Some(b) = frame.get_mut(at) {
        *b ^= mask;
    }
}

/// Flips one uniformly chosen bit at byte offset 14 or later. A frame of 14 bytes or less has
/// nothing that may be flipped: it is left alone and `false` says nothing was flipped.
#[inline]
pub fn flip_random_bit(frame: &mut [u8], rng: &mut FaultRng) -> bool {
    match flip_position(frame.len(), rng) {
        Some(bit) => {
            flip_bit(frame, bit);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(drop_p: u32, flip_p: u32, dup_p: u32) -> FaultConfig {
        FaultConfig {
            enabled: true,
            drop_p,
            flip_p,
            dup_p,
        }
    }

    /// Draws `n` decisions and counts (drop, flip, dup).
    fn counts(c: &FaultConfig, n: u32, seed: u64) -> (u32, u32, u32) {
        let mut rng = FaultRng::new(seed);
        let mut k = (0, 0, 0);
        for _ in 0..n {
            let d = decide(c, &mut rng);
            k.0 += u32::from(d.drop);
            k.1 += u32::from(d.flip);
            k.2 += u32::from(d.dup);
        }
        k
    }

    #[test]
    fn zero_is_never_and_full_scale_is_always() {
        assert_eq!(counts(&cfg(0, 0, 0), 100_000, 1), (0, 0, 0));
        assert_eq!(counts(&cfg(100_000, 0, 0), 100_000, 2), (100_000, 0, 0));
        assert_eq!(
            counts(&cfg(0, 100_000, 100_000), 100_000, 3),
            (0, 100_000, 100_000)
        );
        assert_eq!(counts(&cfg(1, 0, 0), 1000, 4).1, 0);
        let mut rng = FaultRng::new(5);
        assert!(rng.chance(u32::MAX), "above the scale still means always");
    }

    #[test]
    fn disabled_config_decides_nothing() {
        let c = FaultConfig {
            enabled: false,
            ..cfg(100_000, 100_000, 100_000)
        };
        assert_eq!(counts(&c, 1000, 6), (0, 0, 0));
    }

    #[test]
    fn half_is_half_within_a_binomial_bound() {
        // n = 100000, p = 0.5: sigma = 158; 6 sigma keeps a false failure below 1e-8.
        for seed in [7, 8, 9] {
            let (d, f, u) = counts(&cfg(0, 50_000, 50_000), 100_000, seed);
            assert_eq!(d, 0);
            for k in [f, u] {
                assert!(
                    (50_000 - 950..=50_000 + 950).contains(&k),
                    "seed {seed}: {k}"
                );
            }
        }
        // p = 0.01: sigma = 31.5 over 100000 draws.
        let (d, _, _) = counts(&cfg(1_000, 0, 0), 100_000, 10);
        assert!((1_000 - 190..=1_000 + 190).contains(&d), "{d}");
    }

    #[test]
    fn a_dropped_frame_is_neither_flipped_nor_duplicated() {
        let mut rng = FaultRng::new(11);
        for _ in 0..10_000 {
            let d = decide(&cfg(50_000, 100_000, 100_000), &mut rng);
            assert!(d.drop != (d.flip && d.dup));
        }
    }

    #[test]
    fn flip_changes_exactly_one_bit_past_the_header() {
        let mut rng = FaultRng::for_worker(3);
        let mut hit = vec![0u32; 64];
        for round in 0..20_000usize {
            let len = 15 + round % 50;
            let original: Vec<u8> = (0..len).map(|i| (i * 37 + round) as u8).collect();
            let mut frame = original.clone();
            assert!(flip_random_bit(&mut frame, &mut rng));
            let diff: Vec<usize> = (0..len).filter(|&i| frame[i] != original[i]).collect();
            assert_eq!(diff.len(), 1, "one byte changed");
            let at = diff[0];
            assert!(at >= 14, "offset {at} is inside the protected header");
            assert_eq!(
                (frame[at] ^ original[at]).count_ones(),
                1,
                "one bit changed"
            );
            hit[at] += 1;
        }
        assert!(
            hit[14] > 0 && hit[15] > 0,
            "the first payload bytes are reachable"
        );
    }

    #[test]
    fn frames_of_header_size_or_less_are_left_alone() {
        let mut rng = FaultRng::new(12);
        for len in 0..=14 {
            let mut frame = vec![0xa5u8; len];
            assert!(!flip_random_bit(&mut frame, &mut rng));
            assert_eq!(frame, vec![0xa5u8; len]);
        }
    }

    #[test]
    fn workers_get_different_streams() {
        let mut a = FaultRng::for_worker(0);
        let mut b = FaultRng::for_worker(1);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_ne!(xs, ys);
    }
}
