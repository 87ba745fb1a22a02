//! The two parsers that read what another process wrote: the console protocol's decoder (a
//! client's bytes in the daemon) and the packet queue's header parser (a file anybody may have
//! put in /dev/shm). Random and mutated inputs: nothing may panic, and valid messages still
//! decode. The suite runs 1,000,000 inputs of each (about a second); `FUZZ_CASES=N` changes it.

use ethertap::ctl::proto::{ProtoError, Reply, Request};
use ethertap::pqueue::{parse_header, HeaderProblem, Layout, Producer};
use std::io::Cursor;

mod splitmix;

use splitmix::Rng;

fn cases() -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Valid messages as the client writes them, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let requests = [
        Request::Run {
            file: "x.rpcl".into(),
            source: "1 2 + .".into(),
            args: vec!["a".into(), "".into()],
        },
        Request::Eval("if.stats".into()),
        Request::OpenSession,
        Request::Line("0 tap.rx.enable".into()),
        Request::Words,
        Request::Interrupt,
        Request::Status,
        Request::Stop,
        Request::Color(true),
    ];
    requests
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            r.write_to(&mut b).unwrap();
            b
        })
        .collect()
}

#[test]
fn the_console_protocol_decoder_takes_any_bytes_without_a_panic() {
    let seeds = seeds();
    let mut rng = Rng(1);
    let (mut decoded, mut refused) = (0u64, 0u64);
    for case in 0..cases() {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        match case % 4 {
            // Flip bytes.
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            // Cut it short.
            1 => bytes.truncate(rng.below(bytes.len())),
            // Random bytes, sometimes with a plausible header.
            2 => {
                let n = rng.below(64);
                bytes = (0..n).map(|_| rng.next() as u8).collect();
            }
            // Lie about the length.
            _ => {
                if bytes.len() >= 5 {
                    let len = rng.next() as u32;
                    bytes[1..5].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        match Request::read_from(&mut Cursor::new(&bytes)) {
            Ok(_) => decoded += 1,
            Err(ProtoError::Closed | ProtoError::Io(_) | ProtoError::TooLarge(_)) => refused += 1,
            Err(_) => refused += 1,
        }
        let _ = Reply::read_from(&mut Cursor::new(&bytes));
    }
    assert!(
        decoded > 0 && refused > 0,
        "{decoded} decoded, {refused} refused"
    );
    for s in &seeds {
        assert!(
            Request::read_from(&mut Cursor::new(s)).is_ok(),
            "a valid message still decodes"
        );
    }
}

#[test]
fn the_queue_header_parser_takes_any_bytes_without_a_panic() {
    // A real header to mutate, read from a real segment.
    let name = format!("fuzz.header.{}", std::process::id());
    let layout = Layout {
        slots: 64,
        slot_size: 256,
        lanes: 3,
    };
    drop(Producer::open(&name, layout).unwrap());
    let path = ethertap::pqueue::queue_path(&name);
    let file = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let len = file.len() as u64;
    let header = &file[..4096];
    assert_eq!(parse_header(header, len).unwrap().0, layout);
    let mut rng = Rng(2);
    let mut kinds = [0u64; 5];
    for case in 0..cases() {
        let mut bytes = header.to_vec();
        let mut file_len = len;
        match case % 4 {
            0 => {
                // Any field of the first 64 bytes: the layout, sizes and generation.
                let at = rng.below(64);
                bytes[at] = rng.next() as u8;
            }
            1 => {
                let at = 16 + 4 * rng.below(6);
                let v = [0u32, 1, 2, 63, 64, 65, u32::MAX, rng.next() as u32][rng.below(8)];
                bytes[at..at + 4].copy_from_slice(&v.to_ne_bytes());
            }
            2 => file_len = rng.next() % (2 * len + 1),
            _ => {
                let n = rng.below(4200);
                bytes = (0..n).map(|_| rng.next() as u8).collect();
            }
        }
        let kind = match parse_header(&bytes, file_len) {
            Ok((l, _)) => {
                assert!(l.lanes >= 1 && l.slots.is_power_of_two(), "{l:?} accepted");
                0
            }
            Err(HeaderProblem::TooShort(_)) => 1,
            Err(HeaderProblem::BadMagic) => 2,
            Err(HeaderProblem::Version(_)) => 3,
            Err(HeaderProblem::Corrupt(_)) => 4,
        };
        kinds[kind] += 1;
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "every outcome reached: {kinds:?}"
    );
}
