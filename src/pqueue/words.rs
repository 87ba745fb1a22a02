//! The RPCL words on the packet queue: `tap.queue.get`, `tap.queue.reset`, `tap.queue.status`.
//! They attach by name on first use (creating the queue if nobody has yet) and need no
//! engine, so they work in a local VM too.

use std::sync::{Arc, Mutex};

use super::consumer::{Batch, Consumer};
use crate::rpcl::{Ctx, Subtype, Vm, WordError};

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

fn write_out(cx: &mut Ctx<'_>, text: &str) -> Result<(), WordError> {
    cx.out()
        .write_all(text.as_bytes())
        .map_err(|e| WordError::new(format!("cannot write output: {e}")))
}

/// Register the three `tap.queue.*` words on the queue `name`.
pub fn register_words(vm: &mut Vm, name: &str) {
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
            let bytes = with_queue(&st, |q| {
                let mut batch = std::mem::take(&mut q.batch);
                let result = q.consumer()?.try_pop(&mut batch, 1);
                let bytes = batch.get(0).map(|p| p.data.to_vec()).unwrap_or_default();
                q.batch = batch;
                result.map_err(|e| WordError::new(e.to_string()))?;
                Ok(bytes)
            })?;
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

    let st = state;
    vm.register(
        "tap.queue.status",
        "show the packet queue: name, head, tail, inserted, full, retrieved ( - )",
        move |cx| {
            let text = with_queue(&st, |q| {
                q.consumer()?
                    .status()
                    .map(|s| s.format())
                    .map_err(|e| WordError::new(e.to_string()))
            })?;
            write_out(cx, &text)
        },
    );
}
