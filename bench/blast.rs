//! `ethertap-blast`: the benchmark's frame sender. Sends fixed Ethernet frames from an
//! AF_PACKET socket in `sendmmsg` batches, bypassing the qdisc, optionally paced to a rate,
//! and never gives up under backpressure: a batch the device refuses (ENOBUFS/EAGAIN, e.g. a
//! veth whose peer's ring is full) is offered again until it goes out or the time limit ends.
//! The frames that really left are counted by the interface (`tx_packets`); the benchmark
//! reads those, and this program only reports what it offered and its own CPU time.
//!
//! Usage: ethertap-blast IFACE COUNT [--rate PPS] [--dst MAC] [--src MAC] [--size BYTES]
//!                       [--limit SECONDS]

use ethertap::wire::Mac;
use std::time::{Duration, Instant};

const MAX_BATCH: usize = 64;

struct Options {
    iface: String,
    count: u64,
    rate: u64,
    dst: [u8; 6],
    src: [u8; 6],
    size: usize,
    limit: Duration,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    s.parse::<Mac>().map(|m| m.0).map_err(|e| e.to_string())
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ethertap-blast IFACE COUNT [--rate PPS (0 = unpaced)] [--dst MAC] \
                 [--src MAC] [--size BYTES (60..1514)] [--limit SECONDS]";
    if args.len() < 2 || args.iter().any(|a| a == "--help" || a == "-h") {
        return Err(usage.into());
    }
    let mut o = Options {
        iface: args[0].clone(),
        count: args[1]
            .parse()
            .map_err(|_| format!("COUNT \"{}\" is not a number", args[1]))?,
        rate: 0,
        dst: [0x02, 0x77, 0, 0, 0, 0x99],
        src: [0x02, 0x77, 0, 0, 0, 0x01],
        size: 60,
        limit: Duration::from_secs(60),
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
            _ => return Err(format!("unknown option {flag}\n{usage}")),
        }
    }
    if !(60..=1514).contains(&o.size) {
        return Err(format!("--size {}: must be 60..1514 (without FCS)", o.size));
    }
    Ok(o)
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn open_socket(iface: &str) -> Result<i32, String> {
    let name = std::ffi::CString::new(iface).map_err(|_| "bad interface name".to_string())?;
    // SAFETY: plain libc calls on values we own; every result is checked.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            return Err(format!(
                "interface \"{iface}\": {}",
                std::io::Error::last_os_error()
            ));
        }
        // Protocol 0: this socket only sends, it never receives a copy of anything.
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(os_err("AF_PACKET socket (needs root)"));
        }
        let one: libc::c_int = 1;
        // Straight to the driver: the qdisc would queue and drop on its own.
        if libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        ) < 0
        {
            return Err(os_err("PACKET_QDISC_BYPASS"));
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(os_err("binding the packet socket"));
        }
        Ok(fd)
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn run(o: &Options) -> Result<(), String> {
    let fd = open_socket(&o.iface)?;
    // Ethertype 0x88b5 (local experimental), payload zeros: nothing on the path parses it.
    let mut frame = vec![0u8; o.size];
    frame[..6].copy_from_slice(&o.dst);
    frame[6..12].copy_from_slice(&o.src);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    let mut iov = libc::iovec {
        iov_base: frame.as_mut_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    };
    // SAFETY: an all-zero mmsghdr is valid; each one points at the same iovec.
    let mut msgs: Vec<libc::mmsghdr> = (0..MAX_BATCH)
        .map(|_| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // Paced: a batch every ~200 µs, smooth at the time scale of the rings (2k descriptors
    // at 0.3 Mpps = 7 ms) and long enough to sleep between batches instead of spinning.
    let batch = if o.rate == 0 {
        MAX_BATCH
    } else {
        ((o.rate / 5_000) as usize).clamp(1, MAX_BATCH)
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
        // SAFETY: msgs[..n] are valid mmsghdrs pointing at `frame`.
        let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
        if sent < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                    // Backpressure: give the consumer a moment and offer the same frames again.
                    refused += 1;
                    std::thread::yield_now();
                    continue;
                }
                _ => return Err(format!("sendmmsg on {}: {e}", o.iface)),
            }
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
