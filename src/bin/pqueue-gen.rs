//! `pqueue-gen`: produce or consume numbered test frames on a packet queue (tests and
//! benchmarks of the queue and of `collect`; see `ethertap::pqueue::testgen`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ethertap::pqueue::{testgen, Consumer, Layout, Producer};

#[derive(Parser, Debug)]
#[command(
    name = "pqueue-gen",
    version,
    about = "Generate or consume numbered test frames on an ethertap packet queue"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Offer numbered frames to the queue; prints "inserted N full F"
    Produce {
        /// Queue name
        #[arg(short, long)]
        queue: String,
        /// Frames to offer
        #[arg(short = 'n', long, default_value_t = 1000)]
        count: u64,
        /// Frame size in bytes (at least 28)
        #[arg(short, long, default_value_t = 64)]
        size: usize,
        /// Frames per second (0: as fast as possible)
        #[arg(short, long, default_value_t = 0)]
        rate: u64,
        /// Producer id written into every frame
        #[arg(long, default_value_t = 0)]
        id: u16,
        /// Offer a refused frame again until the queue takes it
        #[arg(long)]
        retry: bool,
        /// Re-initialise the queue with this many slots first, as the daemon does at start
        #[arg(long, value_name = "SLOTS")]
        open: Option<u32>,
        /// Slot size for --open
        #[arg(long, default_value_t = 2048)]
        slot_size: u32,
    },
    /// Take frames and write one record (u64 little-endian: id << 48 | seq) per frame to a
    /// file, until SIGTERM/SIGINT or --max frames; prints "received N bad B"
    Consume {
        /// Queue name
        #[arg(short, long)]
        queue: String,
        /// Record file
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Frames per batch
        #[arg(short, long, default_value_t = 64)]
        batch: usize,
        /// Stop after this many frames (0: no limit)
        #[arg(long, default_value_t = 0)]
        max: u64,
    },
}

fn main() -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let result = match Args::parse().cmd {
        Cmd::Produce {
            queue,
            count,
            size,
            rate,
            id,
            retry,
            open,
            slot_size,
        } => {
            let producer = match open {
                Some(slots) => Producer::open(
                    &queue,
                    Layout {
                        slots,
                        slot_size,
                        ..Layout::default()
                    },
                ),
                None => Producer::attach(&queue),
            };
            producer.map_err(|e| e.to_string()).map(|p| {
                let cfg = testgen::GenConfig {
                    count,
                    size,
                    rate,
                    producer_id: id,
                    retry_full: retry,
                    first_seq: 0,
                };
                let r = testgen::produce(&p, &cfg, &stop);
                println!("inserted {} full {}", r.inserted, r.full);
            })
        }
        Cmd::Consume {
            queue,
            output,
            batch,
            max,
        } => (|| {
            let mut c = Consumer::attach(&queue).map_err(|e| e.to_string())?;
            let mut f =
                std::fs::File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?;
            let r = testgen::consume(&mut c, &mut f, batch.max(1), max, &stop)
                .map_err(|e| e.to_string())?;
            f.flush().map_err(|e| e.to_string())?;
            println!("received {} bad {}", r.received, r.bad);
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pqueue-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
