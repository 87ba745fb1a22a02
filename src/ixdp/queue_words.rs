//! The engine words on the set of queues the taps feed (fan-out, docs/words-engine.md):
//! `tap.queue.add`, `tap.queue.remove`, `tap.queue.list`, `tap.queue.filter`,
//! `tap.queue.snaplen`, `tap.queue.lanes`. (What is in one queue, `tap.queue.status` and the
//! other `tap.queue.*` words, is the queue's own business: `pqueue::words`.)

use super::fanout::{TapQueue, MAX_TAP_QUEUES};
use super::policy::Policy;
use super::words::{pop_filter, pop_snaplen, EngineWord, NO_TAPS};
use super::EngineView;
use crate::pqueue::{Queue, MAX_LANES};
use crate::rpcl::{Ctx, WordError};

/// The fan-out words, in the order `docs/words-engine.md` lists them.
pub static QUEUE_WORDS: &[EngineWord] = &[
    EngineWord {
        name: "tap.queue.add",
        help: "feed another packet queue (created, or re-initialised, under this name): it gets its own copy of every tapped frame; nothing happens if it is fed already ( name - )",
        run: queue_add,
    },
    EngineWord {
        name: "tap.queue.remove",
        help: "stop feeding a packet queue added with tap.queue.add; its consumers may still drain it ( name - )",
        run: queue_remove,
    },
    EngineWord {
        name: "tap.queue.list",
        help: "print every packet queue the taps feed: lanes, snap length, filter, inserted, full, retrieved ( - )",
        run: queue_list,
    },
    EngineWord {
        name: "tap.queue.filter",
        help: "a packet queue takes only tapped frames that also match this pcap-filter expression; \"\" removes it ( expr name - )",
        run: queue_filter,
    },
    EngineWord {
        name: "tap.queue.snaplen",
        help: "a packet queue stores at most n bytes of each frame (after tap.snaplen), keeping the original length; 0 = as tapped ( n name - )",
        run: queue_snaplen,
    },
    EngineWord {
        name: "tap.queue.lanes",
        help: "split a packet queue into n lanes (1..64), each frame to the lane of its flow, both directions in one; re-initialises the queue ( n name - )",
        run: queue_lanes,
    },
];

/// The queue `name` of `policy`, or an error that lists the queues fed.
fn find<'p>(policy: &'p Policy, name: &str) -> Result<&'p TapQueue, WordError> {
    policy
        .queues
        .iter()
        .find(|q| q.name() == name)
        .ok_or_else(|| {
            let fed: Vec<&str> = policy.queues.iter().map(TapQueue::name).collect();
            let fed = if fed.is_empty() {
                "none".to_string()
            } else {
                fed.join(", ")
            };
            WordError::new(format!(
                "packet queue \"{name}\" is not fed by the taps (fed: {fed})"
            ))
        })
}

fn needs_taps(e: &dyn EngineView) -> Result<(), WordError> {
    match e.queue_layout() {
        Some(_) => Ok(()),
        None => Err(WordError::new(NO_TAPS)),
    }
}

fn queue_add(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let name = cx.pop_str()?;
    needs_taps(e)?;
    let current = e.policy().snapshot();
    if find(&current, &name).is_ok() {
        return Ok(());
    }
    if current.queues.len() >= MAX_TAP_QUEUES {
        return Err(WordError::new(format!(
            "the taps feed {MAX_TAP_QUEUES} packet queues already, the most they may (remove one with tap.queue.remove)"
        )));
    }
    let producer = e
        .open_queue(&name, 1)
        .map_err(|err| WordError::new(err.to_string()))?;
    let queue = TapQueue::new(producer);
    e.policy().update(|p| {
        if find(p, &name).is_err() {
            p.queues.push(queue.clone());
        }
    });
    Ok(())
}

fn queue_remove(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let name = cx.pop_str()?;
    needs_taps(e)?;
    if e.default_queue() == Some(name.as_str()) {
        return Err(WordError::new(format!(
            "\"{name}\" is the engine's default packet queue, which is always fed (tap.rx.disable and tap.tx.disable stop the taps)"
        )));
    }
    find(&e.policy().snapshot(), &name)?;
    e.policy().update(|p| p.queues.retain(|q| q.name() != name));
    Ok(())
}

/// `inserted full retrieved` of queue `name` as its segment says, or what went wrong.
fn counters_text(name: &str) -> String {
    match Queue::open_existing(name).and_then(|mut q| q.status()) {
        Ok(st) => format!(
            "inserted {}, full {}, retrieved {}",
            st.inserted, st.full, st.retrieved
        ),
        Err(err) => format!("({err})"),
    }
}

fn queue_list(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let policy = e.policy().snapshot();
    let mut s = String::new();
    for q in &policy.queues {
        let snaplen = match q.snaplen.get() {
            0 => "as tapped".to_string(),
            n => format!("{n} bytes"),
        };
        let filter = q
            .filter
            .as_ref()
            .map_or("none".to_string(), |f| f.expr().to_string());
        s.push_str(&format!(
            "{}{}\n  lanes {} of {} slots, snaplen {snaplen}, filter {filter}\n  {}\n",
            q.name(),
            if e.default_queue() == Some(q.name()) {
                " (default)"
            } else {
                ""
            },
            q.lanes(),
            q.slots(),
            counters_text(q.name()),
        ));
    }
    if s.is_empty() {
        s.push_str("no packet queue: the engine runs without taps\n");
    }
    cx.emit(s)
}

/// Pops the queue name of a `( … name - )` word and finds it: its name and how it is fed now.
fn pop_fed(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(String, TapQueue), WordError> {
    let name = cx.pop_str()?;
    let queue = find(&e.policy().snapshot(), &name)?.clone();
    Ok((name, queue))
}

/// Changes the queue `name` with `f` (a no-op if it went away meanwhile).
fn change(e: &dyn EngineView, name: &str, f: impl Fn(&mut TapQueue)) {
    e.policy().update(|p| {
        if let Some(q) = p.queues.iter_mut().find(|q| q.name() == name) {
            f(q);
        }
    });
}

fn queue_filter(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (name, _) = pop_fed(cx, e)?;
    let filter = pop_filter(cx)?;
    change(e, &name, |q| q.filter = filter.clone());
    Ok(())
}

fn queue_snaplen(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (name, _) = pop_fed(cx, e)?;
    let snaplen = pop_snaplen(cx, "frames as tapped")?;
    change(e, &name, |q| q.snaplen = snaplen);
    Ok(())
}

fn queue_lanes(cx: &mut Ctx<'_>, e: &dyn EngineView) -> Result<(), WordError> {
    let (name, queue) = pop_fed(cx, e)?;
    let n = cx.pop_int()?;
    let lanes = u32::try_from(n)
        .ok()
        .filter(|l| (1..=MAX_LANES).contains(l))
        .ok_or_else(|| WordError::new(format!("{n} is not a number of lanes (1..{MAX_LANES})")))?;
    if queue.lanes() == lanes {
        return Ok(());
    }
    // A queue's lanes are part of its segment: a new generation replaces it, and its consumers
    // reattach (frames still waiting in the old one are theirs to drain).
    let producer = e
        .open_queue(&name, lanes)
        .map_err(|err| WordError::new(err.to_string()))?;
    change(e, &name, |q| q.producer = producer.clone());
    Ok(())
}
