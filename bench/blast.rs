//! `ethertap-blast`: the benchmark's frame sender. Sends fixed Ethernet frames from an
//! AF_PACKET socket in `sendmmsg` batches, bypassing the qdisc, optionally paced to a rate,
//! and never gives up under backpressure: a batch the device refuses (ENOBUFS/EAGAIN, e.g. a
//! veth whose peer's ring is full) is offered again until it goes out or the time limit ends.
//! The frames that really left are counted by the interface (`tx_packets`); the benchmark
//! reads those, and this program only reports what it offered and its own CPU time.
//!
//! Usage: ethertap-blast IFACE COUNT [--rate PPS] [--dst MAC] [--src MAC] [--size BYTES]
//!                       [--limit SECONDS] [--flows N]
//!
//! `--flows N` sends UDP/IPv4 frames of N flows (source ports 10000.., round robin) instead of
//! one non-IP frame: traffic that a queue split into lanes spreads over its lanes.

use ethertap::lab::{frames, Outbox, PacketSocket, MAX_BATCH};
use ethertap::wire::Mac;
use std::time::{Duration, Instant};

struct Options {
    iface: String,
    count: u64,
    rate: u64,
    dst: Mac,
    src: Mac,
    size: usize,
    limit: Duration,
    flows: u64,
    batch_us: u64,
}

fn parse_mac(s: &str) -> Result<Mac, String> {
    s.parse::<Mac>().map_err(|e| e.to_string())
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ethertap-blast IFACE COUNT [--rate PPS (0 = unpaced)] [--dst MAC] \
                 [--src MAC] [--size BYTES (60..65535)] [--limit SECONDS] [--flows N (UDP flows)] \
                 [--batch-us N (paced: a batch every N µs, default 200)]";
    if args.len() < 2 || args.iter().any(|a| a == "--help" || a == "-h") {
        return Err(usage.into());
    }
    let mut o = Options {
        iface: args[0].clone(),
        count: args[1]
            .parse()
            .map_err(|_| format!("COUNT \"{}\" is not a number", args[1]))?,
        rate: 0,
        dst: Mac([0x02, 0x77, 0, 0, 0, 0x99]),
        src: Mac([0x02, 0x77, 0, 0, 0, 0x01]),
        size: 60,
        limit: Duration::from_secs(60),
        flows: 0,
        batch_us: 200,
    };
    let mut it = args[2..].iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        let number = || -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("{flag}: \"{value}\" is not a number"))
        };
        match flag.as_str() {
            "--rate" => o.rate = number()?,
            "--dst" => o.dst = parse_mac(value)?,
            "--src" => o.src = parse_mac(value)?,
            "--size" => o.size = number()? as usize,
            "--limit" => o.limit = Duration::from_secs_f64(number()? as f64),
            "--flows" => o.flows = number()?.min(60_000),
            "--batch-us" => o.batch_us = number()?.clamp(1, 1_000_000),
            _ => return Err(format!("unknown option {flag}\n{usage}")),
        }
    }
    // The interface's MTU is the real limit: the kernel refuses a longer frame (EMSGSIZE).
    if !(60..=65535).contains(&o.size) {
        return Err(format!(
            "--size {}: must be 60..65535 (without FCS)",
            o.size
        ));
    }
    Ok(o)
}

fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |ru| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(ru.user_time()) + t(ru.system_time())
    })
}

/// The frames to send in turn: one non-IP frame (Ethertype 0x88b5, local experimental,
/// payload zeros: nothing on the path parses it), or one UDP frame per flow.
fn flow_frames(o: &Options) -> Result<Vec<Vec<u8>>, String> {
    if o.flows == 0 {
        let mut frame = frames::header(o.dst, o.src, &[], frames::EXPERIMENTAL);
        frame.resize(o.size, 0);
        return Ok(vec![frame]);
    }
    let payload = vec![0; o.size.saturating_sub(42)];
    (0..o.flows)
        .map(|i| {
            let a = std::net::SocketAddrV4::new([10, 99, 0, 1].into(), 10_000 + i as u16);
            let b = std::net::SocketAddrV4::new([10, 99, 0, 2].into(), 9);
            frames::udp4(o.dst, o.src, &[], a, b, &payload).map_err(|e| e.to_string())
        })
        .collect()
}

fn run(o: &Options) -> Result<(), String> {
    let socket = PacketSocket::sender(&o.iface).map_err(|e| e.to_string())?;
    let flows = flow_frames(o)?;
    // Messages cycle through the flows; a batch starts where the one before ended.
    let ring: Vec<&[u8]> = (0..MAX_BATCH + flows.len())
        .map(|i| &flows[i % flows.len()][..])
        .collect();
    let mut outbox = Outbox::new();
    // Paced: a batch every ~200 µs by default, smooth at the time scale of the rings (2k
    // descriptors at 0.3 Mpps = 7 ms) and long enough to sleep between batches instead of
    // spinning. Shorter intervals come closer to a wire's arrivals; below about 60 µs the
    // sender spins between batches, and its CPU shows it.
    let batch = if o.rate == 0 {
        MAX_BATCH
    } else {
        ((o.rate * o.batch_us / 1_000_000) as usize).clamp(1, MAX_BATCH)
    };
    let start = Instant::now();
    let mut offered: u64 = 0;
    let mut refused: u64 = 0;
    while offered < o.count {
        let elapsed = start.elapsed();
        if elapsed > o.limit {
            break;
        }
        let mut n = batch.min((o.count - offered) as usize);
        if o.rate > 0 {
            let due = (elapsed.as_secs_f64() * o.rate as f64) as u64;
            if due <= offered {
                let wait = (offered + n as u64) as f64 / o.rate as f64 - elapsed.as_secs_f64();
                if wait > 0.000_06 {
                    std::thread::sleep(Duration::from_secs_f64(wait - 0.000_05));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            n = n.min((due - offered) as usize).max(1);
        }
        let first = (offered % flows.len() as u64) as usize;
        let sent = socket
            .offer(&mut outbox, &ring[first..first + n])
            .map_err(|e| e.to_string())?;
        if sent == 0 {
            // Backpressure: give the consumer a moment and offer the same frames again.
            refused += 1;
            std::thread::yield_now();
            continue;
        }
        offered += sent as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "offered {offered} in {secs:.3} s ({:.3} Mpps), refused batches {refused}, cpu {:.3} s",
        offered as f64 / secs / 1e6,
        cpu_seconds()
    );
    Ok(())
}

fn main() {
    match parse_args().and_then(|o| run(&o)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ethertap-blast: {e}");
            std::process::exit(2);
        }
    }
}
