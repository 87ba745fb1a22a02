//! Waiting so that work arrives in batches: an arrival-rate meter and the wait it suggests.
//! Shared by the engine's workers (`ixdp::pacing`) and the packet queue's consumers
//! (`pqueue::Consumer::pop_wait`), which face the same trade: a thread that spins costs a core
//! whatever the traffic, one that sleeps pays a wake-up each time. Waiting for a few items to
//! gather before handling them makes the wake-ups rarer than the items, at the price of the
//! wait in latency, and only when the rate is high enough for a wait to gather anything.
//! Pure over the clock readings it is given, so it is tested without threads or timing.

use std::time::{Duration, Instant};

/// The arrival rate is measured over windows at least this long.
pub const RATE_WINDOW: Duration = Duration::from_millis(1);
/// A wait expected to gather fewer items than this is not worth its wake-up.
pub const MIN_GATHERED: f64 = 2.0;
/// Waits shorter than this are not worth a sleep.
pub const MIN_WAIT: Duration = Duration::from_micros(10);

/// Measures how fast items arrive and how long to wait for `gather` of them.
#[derive(Clone, Debug)]
pub struct Coalescer {
    max_wait: Duration,
    gather: f64,
    window_start: Instant,
    window_items: u64,
    rate: f64,
}

impl Coalescer {
    /// Waits of at most `max_wait` for `gather` items; measuring from `now`.
    pub fn new(max_wait: Duration, gather: usize, now: Instant) -> Coalescer {
        Coalescer {
            max_wait,
            gather: gather as f64,
            window_start: now,
            window_items: 0,
            rate: 0.0,
        }
    }

    /// `items` arrived (were handled) by `now`.
    pub fn count(&mut self, items: usize, now: Instant) {
        self.window_items += items as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            self.rate = self.window_items as f64 / elapsed.as_secs_f64();
            self.window_items = 0;
            self.window_start = now;
        }
    }

    /// Items per second over the last complete window (a window spanning an idle spell
    /// counts that spell, so the first items after it are not waited for).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How long `items` take to arrive at the measured rate (`Duration::MAX` before any rate is
    /// measured): the bound that keeps a wait from filling a buffer of that many.
    pub fn time_for(&self, items: f64) -> Duration {
        if self.rate > 0.0 {
            Duration::from_secs_f64(items / self.rate)
        } else {
            Duration::MAX
        }
    }

    /// How long to wait for `gather` items at the measured rate, at most `max_wait`; `None`
    /// when even `max_wait` would gather fewer than [`MIN_GATHERED`] (a wait would cost a
    /// wake-up and gather nothing), or when the wait is shorter than [`MIN_WAIT`].
    pub fn wait(&self) -> Option<Duration> {
        if self.rate * self.max_wait.as_secs_f64() < MIN_GATHERED {
            return None;
        }
        let wait = Duration::from_secs_f64(self.gather / self.rate).min(self.max_wait);
        (wait >= MIN_WAIT).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coalescer that counted `per_second` items for 5 ms, `per_step` at a time.
    fn fed(max_wait_us: u64, gather: usize, per_second: u64, per_step: usize) -> Coalescer {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::from_micros(max_wait_us), gather, t0);
        let step = Duration::from_secs_f64(per_step as f64 / per_second as f64);
        let mut t = t0;
        while t < t0 + Duration::from_millis(5) {
            t += step;
            c.count(per_step, t);
        }
        c
    }

    #[test]
    fn the_rate_is_measured_over_windows() {
        let c = fed(200, 32, 100_000, 8);
        assert!((c.rate() - 100_000.0).abs() < 5_000.0, "{}", c.rate());
    }

    #[test]
    fn the_wait_gathers_a_batch_within_the_bound() {
        // 400 kpps: 32 items in 80 µs.
        let w = fed(200, 32, 400_000, 16).wait().unwrap();
        assert!((70..=90).contains(&w.as_micros()), "{w:?}");
        // 100 kpps: 320 µs, cut to the bound.
        assert_eq!(
            fed(200, 32, 100_000, 8).wait(),
            Some(Duration::from_micros(200))
        );
    }

    #[test]
    fn no_wait_when_it_would_gather_nothing_or_be_too_short() {
        // 5 kpps: 200 µs gather one item.
        assert_eq!(fed(200, 32, 5_000, 1).wait(), None);
        // 8 M/s: 32 items in 4 µs.
        assert_eq!(fed(200, 32, 8_000_000, 32).wait(), None);
        // A zero bound never waits.
        assert_eq!(fed(0, 32, 300_000, 16).wait(), None);
    }

    #[test]
    fn an_idle_spell_brings_the_rate_down_at_once() {
        let mut c = fed(200, 32, 300_000, 16);
        let later = Instant::now() + Duration::from_secs(1);
        c.count(1, later);
        // The items of the last, unfinished window over a second.
        assert!(c.rate() < 1_000.0, "{}", c.rate());
        assert_eq!(c.wait(), None);
    }
}
