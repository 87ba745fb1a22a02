//! The RPCL words on the packet queue: `tap.queue.get`, `tap.queue.reset`, `tap.queue.status`,
//! `tap.queue.counter`.
//! They attach by name on first use (creating the queue if nobody has yet) and need no
//! engine, so they work in a local VM too.

use std::sync::{Arc, Mutex};

use super::consumer::{Batch, Consumer, Queue};
use crate::rpcl::{Subtype, Vm, WordError};

struct WordQueue {
    name: String,
    consumer: Option<Consumer>,
    batch: Batch,
}

impl WordQueue {
    fn consumer(&mut self) -> Result<&mut Consumer, WordError> {
        if self.consumer.is_none() {
            self.consumer =
                Some(Consumer::attach(&self.name).map_err(|e| WordError::new(e.to_string()))?);
        }
        Ok(self.consumer.as_mut().expect("attached just above"))
    }
}

fn with_queue<T>(
    state: &Mutex<WordQueue>,
    f: impl FnOnce(&mut WordQueue) -> Result<T, WordError>,
) -> Result<T, WordError> {
    // A panic elsewhere while holding the lock leaves nothing half-done that matters here.
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// The next packet's bytes, empty when the queue is empty.
fn take_one(state: &Mutex<WordQueue>) -> Result<Vec<u8>, WordError> {
    with_queue(state, |q| {
        let mut batch = std::mem::take(&mut q.batch);
        let result = q.consumer()?.try_pop(&mut batch, 1);
        let bytes = batch.get(0).map(|p| p.data.to_vec()).unwrap_or_default();
        q.batch = batch;
        result.map_err(|e| WordError::new(e.to_string()))?;
        Ok(bytes)
    })
}

/// Register the `tap.queue.*` words on the queue `name`.
pub fn register_words(vm: &mut Vm, name: &str) {
    register_words_fed(vm, name, Vec::new);
}

/// [`register_words`] for an engine that feeds more queues than `name` (fan-out): `others`
/// names them when asked, and `tap.queue.status` shows each after `name`. The other words act
/// on `name`.
pub fn register_words_fed(
    vm: &mut Vm,
    name: &str,
    others: impl Fn() -> Vec<String> + Send + Sync + 'static,
) {
    let state = Arc::new(Mutex::new(WordQueue {
        name: name.to_string(),
        consumer: None,
        batch: Batch::new(),
    }));

    let st = state.clone();
    vm.register(
        "tap.queue.get",
        "take the next packet from the packet queue as data; data of length 0 when the queue is empty ( - packet )",
        move |cx| {
            let bytes = take_one(&st)?;
            cx.push_data(Subtype::Generic, bytes)
        },
    );

    let st = state.clone();
    vm.register(
        "tap.queue.reset",
        "empty the packet queue and zero its counters ( - )",
        move |_cx| {
            with_queue(&st, |q| {
                q.consumer()?
                    .reset()
                    .map(|_| ())
                    .map_err(|e| WordError::new(e.to_string()))
            })
        },
    );

    register_value_words(vm, &state);

    let st = state;
    vm.register(
        "tap.queue.status",
        "show each packet queue: name, head, tail, inserted, full, retrieved, a line per lane ( - )",
        move |cx| {
            let mut text = with_queue(&st, |q| {
                q.consumer()?
                    .status()
                    .map(|s| s.format())
                    .map_err(|e| WordError::new(e.to_string()))
            })?;
            for other in others() {
                let status = Queue::open_existing(&other).and_then(|mut q| q.status());
                match status {
                    Ok(s) => text.push_str(&s.format()),
                    Err(e) => text.push_str(&format!("packet queue {other}
  ({e})
")),
                }
            }
            cx.emit(text)
        },
    );
}

// ---- Counters as values (issue 15): what `tap.queue.status` prints, pushed as a number.

/// `tap.queue.counter` on the queue of `state`.
fn register_value_words(vm: &mut Vm, state: &Arc<Mutex<WordQueue>>) {
    let st = state.clone();
    vm.register(
        "tap.queue.counter",
        "push one figure of tap.queue.status by its name: head tail inserted full retrieved ( name - n )",
        move |cx| {
            let name = cx.pop_str()?;
            let status = with_queue(&st, |q| {
                q.consumer()?
                    .status()
                    .map_err(|e| WordError::new(e.to_string()))
            })?;
            let n = crate::rpcl::named_counter(&status.counters(), &name, "the packet queue")?;
            cx.push_int(n)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pqueue::{queue_path, Direction, Layout, Producer};

    struct Named(String);
    impl Drop for Named {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(queue_path(&self.0));
        }
    }

    fn eval(vm: &mut Vm, line: &str) -> String {
        let mut out = Vec::new();
        vm.eval_line(line, &mut out)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn status_creates_the_queue_when_missing_and_prints_the_spec_format() {
        let q = Named(format!("pqtest.words-status.{}", std::process::id()));
        let _ = std::fs::remove_file(queue_path(&q.0));
        let mut vm = Vm::new();
        register_words(&mut vm, &q.0);
        let text = eval(&mut vm, "tap.queue.status");
        assert!(queue_path(&q.0).exists(), "created by the first word");
        assert_eq!(
            text,
            format!(
                "packet queue {}\n  head                  0\n  tail                  0\n  inserted              0\n  full                  0\n  retrieved             0\n",
                q.0
            )
        );
        for name in ["tap.queue.get", "tap.queue.reset", "tap.queue.status"] {
            let help = vm.help(name).unwrap();
            assert!(help.ends_with(')'), "{name}: {help}");
        }
    }

    #[test]
    fn get_takes_one_packet_and_reset_empties() {
        let q = Named(format!("pqtest.words-get.{}", std::process::id()));
        let p = Producer::open(&q.0, Layout::default()).unwrap();
        let mut vm = Vm::new();
        register_words(&mut vm, &q.0);
        for i in 0..5u8 {
            assert!(p.push(&[i; 70], 0, Direction::Rx, 0));
        }
        eval(&mut vm, "tap.queue.get");
        let status = eval(&mut vm, "tap.queue.status");
        assert!(status.contains("  retrieved             1\n"), "{status}");
        assert!(status.contains("  inserted              5\n"), "{status}");
        eval(&mut vm, "tap.queue.reset");
        let status = eval(&mut vm, "tap.queue.status");
        assert!(status.contains("  inserted              0\n"), "{status}");
        assert!(status.contains("  tail                  5\n"), "{status}");
        // The bytes `tap.queue.get` pushes, through the same path the word uses.
        assert!(p.push(&[9; 80], 0, Direction::Tx, 0));
        let state = Mutex::new(WordQueue {
            name: q.0.clone(),
            consumer: None,
            batch: Batch::new(),
        });
        assert_eq!(take_one(&state).unwrap(), vec![9; 80]);
        assert_eq!(
            take_one(&state).unwrap(),
            Vec::<u8>::new(),
            "empty: length 0"
        );
    }

    /// The example of `tap.queue.counter` in docs/pqueue.md, on a queue as the page has it:
    /// three packets in, two taken out.
    #[test]
    fn tap_queue_counter_prints_what_the_doc_shows() {
        let q = Named(format!("pqtest.words-counter.{}", std::process::id()));
        let p = Producer::open(&q.0, Layout::default()).unwrap();
        let mut vm = Vm::new();
        register_words(&mut vm, &q.0);
        for i in 0..3u8 {
            assert!(p.push(&[i; 64], 0, Direction::Rx, 0));
        }
        eval(&mut vm, "tap.queue.get drop tap.queue.get drop");
        let status = eval(&mut vm, "tap.queue.status");
        for (label, value) in [("head", 3), ("tail", 2), ("inserted", 3), ("retrieved", 2)] {
            assert!(
                status.contains(&format!("  {label:<22}{value}\n")),
                "{status}"
            );
            let line = format!("\"{label}\" tap.queue.counter .");
            assert_eq!(eval(&mut vm, &line), format!("{value}\n"));
        }
        let doc = include_str!("../../docs/pqueue.md");
        let block = doc
            .split("### `tap.queue.counter`")
            .nth(1)
            .and_then(|s| s.split("```rpcl\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("docs/pqueue.md has the checked example");
        let mut expected = String::new();
        let mut got = String::new();
        for l in block.lines() {
            match l.strip_prefix("ok ") {
                Some(input) => {
                    let mut out = Vec::new();
                    if let Err(e) = vm.eval_line(input, &mut out) {
                        out.extend_from_slice(format!("{e}\n").as_bytes());
                    }
                    got.push_str(&String::from_utf8(out).unwrap());
                }
                None => {
                    expected.push_str(l);
                    expected.push('\n');
                }
            }
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_file_that_is_not_a_queue_is_a_word_error() {
        let q = Named(format!("pqtest.words-junk.{}", std::process::id()));
        std::fs::write(queue_path(&q.0), vec![0u8; 5000]).unwrap();
        let mut vm = Vm::new();
        register_words(&mut vm, &q.0);
        let err = vm
            .eval_line("tap.queue.status", &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("is not a packet queue"), "{err}");
    }
}
