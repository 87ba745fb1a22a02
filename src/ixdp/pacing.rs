//! When a worker looks at its rings again: the polling policy (docs/data-path.md, "Polling
//! modes"). A pure state machine over what each round did and the clock, so that it is tested
//! without sockets or root; the worker only carries out the [`Next`] it returns.
//!
//! The cost it manages: a worker that spins costs a core whatever the traffic, and one that
//! sleeps pays a wake-up (a few µs of CPU) each time it sleeps. Proportional polling makes the
//! wake-ups rarer than the frames: it spins only while the rings keep filling (a round took a
//! full batch), waits a little between rounds at medium rates so that frames arrive in batches,
//! and sleeps in poll() until the next frame when the rate is too low for a wait to gather
//! anything (or there is no traffic).

use crate::coalesce::Coalescer;
use std::time::{Duration, Instant};

/// How a worker waits for frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polling {
    /// CPU in proportion to the traffic (the default): go on at once while rounds take full
    /// batches; after a round that emptied the rings, wait for frames to gather (at most
    /// `max_wait`, the latency this adds to a frame at each pass) when the measured rate makes
    /// such a wait worth it, else sleep in poll() until the next frame.
    Proportional {
        /// The longest coalescing wait; zero: never wait, sleep in poll() whenever the rings
        /// are empty (lowest latency, a wake-up per burst of frames).
        max_wait: Duration,
    },
    /// Spin always (a dedicated core): the lowest latency, a full core per worker.
    Busy,
}

/// `max_wait` of the default policy (`ethertap start --poll-wait`).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_micros(200);

impl Default for Polling {
    fn default() -> Polling {
        Polling::Proportional {
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// Frames a coalescing wait tries to gather: enough that its wake-up costs well under the
/// frames' own work, few enough that the wait stays short at medium rates. Below the rate at
/// which `max_wait` gathers two frames (10 kpps with the default) the worker does not wait:
/// it sleeps until the next frame, a wake-up per frame but no added latency.
pub const GATHER: usize = 32;
/// The longest sleep in poll(), so that the worker sees stop and refresh requests.
pub const POLL_MS: u8 = 100;
/// The longest sleep in poll() while frames wait in a TX ring for the kernel.
pub const POLL_TX_MS: u8 = 1;

/// What one round of a worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Frames received on every port.
    pub received: usize,
    /// Frames received plus transmitted frames taken back.
    pub work: usize,
    /// Some port filled its batch: its RX ring may hold more.
    pub more: bool,
    /// Frames wait in a TX ring for the kernel to take them.
    pub tx_waiting: bool,
}

/// What the worker does before its next round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Start it at once.
    Go,
    /// Spin (one `spin_loop` hint), then start it.
    Spin,
    /// Sleep this long (frames gather in the rings), then start it.
    Wait(Duration),
    /// Sleep in poll() on the RX sockets until a frame comes, at most this many ms.
    Poll(u8),
}

/// The policy's state for one worker: the arrival rate it measured.
#[derive(Clone, Debug)]
pub struct Pacer {
    busy: bool,
    coalescer: Coalescer,
}

impl Pacer {
    /// A pacer for `polling`, measuring from `now`.
    pub fn new(polling: Polling, now: Instant) -> Pacer {
        Pacer::gathering(polling, GATHER, now)
    }

    /// A pacer for `polling` whose waits try to gather `gather` frames (the workers: [`GATHER`]).
    pub fn gathering(polling: Polling, gather: usize, now: Instant) -> Pacer {
        let (busy, max_wait) = match polling {
            Polling::Busy => (true, Duration::ZERO),
            Polling::Proportional { max_wait } => (false, max_wait),
        };
        Pacer {
            busy,
            coalescer: Coalescer::new(max_wait, gather, now),
        }
    }

    /// The arrival rate measured last, in frames per second.
    pub fn rate(&self) -> f64 {
        self.coalescer.rate()
    }

    /// How long `items` frames take to arrive at the measured rate ([`Coalescer::time_for`]).
    pub fn time_for(&self, items: f64) -> Duration {
        self.coalescer.time_for(items)
    }

    /// After `round`: what to do before the next one. `now` is read only by the proportional
    /// policy (busy polling spins without looking at the clock).
    pub fn next(&mut self, round: &Round, now: impl FnOnce() -> Instant) -> Next {
        if self.busy {
            return if round.work > 0 { Next::Go } else { Next::Spin };
        }
        self.coalescer.count(round.received, now());
        if round.more {
            return Next::Go;
        }
        // The rings are empty now: frames come slower than the worker handles them. While
        // the rate makes it worth it, let the next ones gather; an empty round at such a rate
        // is the gap between two gathered batches (and when the traffic stops, the rate falls
        // within a window or two and the worker sleeps until the next frame).
        match (self.coalescer.wait(), round.work) {
            (Some(wait), _) => Next::Wait(wait),
            (None, 0) => Next::Poll(if round.tx_waiting {
                POLL_TX_MS
            } else {
                POLL_MS
            }),
            // One more round, which takes what came meanwhile or finds nothing and polls.
            (None, _) => Next::Go,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(received: usize, more: bool) -> Round {
        Round {
            received,
            work: received,
            more,
            tx_waiting: false,
        }
    }

    /// A pacer that saw `fps` frames per second for a few windows, in rounds of `per_round`.
    fn warmed(polling: Polling, fps: u64, per_round: usize) -> (Pacer, Instant) {
        let t0 = Instant::now();
        let mut p = Pacer::new(polling, t0);
        let step = Duration::from_secs_f64(per_round as f64 / fps as f64);
        let mut t = t0;
        for _ in 0..(3 * fps as usize / 1000 / per_round + 3) {
            t += step;
            p.next(&round(per_round, false), || t);
        }
        (p, t)
    }

    #[test]
    fn busy_polling_spins_and_never_reads_the_clock() {
        let mut p = Pacer::new(Polling::Busy, Instant::now());
        let never = || -> Instant { panic!("busy polling read the clock") };
        assert_eq!(p.next(&round(0, false), never), Next::Spin);
        assert_eq!(p.next(&round(5, false), never), Next::Go);
    }

    #[test]
    fn full_batches_go_on_at_once_and_empty_rounds_sleep_until_a_frame() {
        let (mut p, t) = warmed(Polling::default(), 300_000, 16);
        assert_eq!(p.next(&round(64, true), || t), Next::Go);
        // At 300 kpps an empty round is the gap between two batches: wait for the next.
        assert!(matches!(p.next(&round(0, false), || t), Next::Wait(_)));
        // Without traffic for a window, the rate is zero: sleep until a frame comes.
        let (mut p, t) = warmed(Polling::default(), 5_000, 1);
        assert_eq!(p.next(&round(0, false), || t), Next::Poll(POLL_MS));
        let waiting = Round {
            tx_waiting: true,
            ..round(0, false)
        };
        assert_eq!(p.next(&waiting, || t), Next::Poll(POLL_TX_MS));
    }

    #[test]
    fn medium_rates_wait_for_a_batch_to_gather_within_the_bound() {
        // 100 kpps: 32 frames take 320 µs, more than the bound.
        let (mut p, t) = warmed(Polling::default(), 100_000, 8);
        assert!((p.rate() - 100_000.0).abs() < 5_000.0, "{}", p.rate());
        assert_eq!(p.next(&round(8, false), || t), Next::Wait(DEFAULT_MAX_WAIT));
        // 400 kpps: 80 µs gather 32 frames.
        let (mut p, t) = warmed(Polling::default(), 400_000, 16);
        match p.next(&round(16, false), || t) {
            Next::Wait(w) => assert!(
                (70..=90).contains(&w.as_micros()),
                "{w:?} for 32 frames at 400 kpps"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn low_rates_do_not_wait_they_sleep_until_the_next_frame() {
        // 5 kpps: 200 µs would gather one frame, not worth a wake-up.
        let (mut p, t) = warmed(Polling::default(), 5_000, 1);
        assert_eq!(p.next(&round(1, false), || t), Next::Go);
        assert_eq!(p.next(&round(0, false), || t), Next::Poll(POLL_MS));
    }

    #[test]
    fn very_high_rates_and_a_zero_bound_never_sleep_between_rounds() {
        // 8 Mpps: 32 frames in 4 µs, too short to sleep.
        let (mut p, t) = warmed(Polling::default(), 8_000_000, 32);
        assert_eq!(p.next(&round(32, false), || t), Next::Go);
        let never_wait = Polling::Proportional {
            max_wait: Duration::ZERO,
        };
        let (mut p, t) = warmed(never_wait, 300_000, 16);
        assert_eq!(p.next(&round(16, false), || t), Next::Go);
    }

    #[test]
    fn the_rate_follows_the_traffic_after_an_idle_spell() {
        let (mut p, t) = warmed(Polling::default(), 300_000, 16);
        // A second without traffic, then one frame: the window spans the gap.
        let later = t + Duration::from_secs(1);
        assert_eq!(p.next(&round(0, false), || later), Next::Poll(POLL_MS));
        assert!(p.rate() < 1_000.0, "{}", p.rate());
        // The next window holds one frame: 1 kpps, too slow to wait for.
        let t = later + crate::coalesce::RATE_WINDOW;
        assert_eq!(p.next(&round(1, false), || t), Next::Go, "{}", p.rate());
        assert!(p.rate() <= 1_000.0, "{}", p.rate());
    }
}
