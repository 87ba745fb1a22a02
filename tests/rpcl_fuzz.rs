//! Random and mutated token streams through lexer, compiler and VM: nothing may panic or hang,
//! and the VM stays usable after every error.
//!
//! The normal suite runs a bounded number of streams; the full run is
//! `RPCL_FUZZ_CASES=1000000 cargo test --release --test rpcl_fuzz -- --nocapture`
//! (`RPCL_FUZZ_SEED=N` picks another deterministic sequence).

use ethertap::rpcl::{check, Vm};

mod splitmix;

use splitmix::Rng;

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "5",
    "7",
    "10",
    "16",
    "31",
    "32",
    "255",
    "256",
    "1023",
    "1024",
    "65535",
    "65536",
    "4294967295",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "0x10",
    "0xff",
    "0xffffffffffffffff",
    "-0",
    "007",
    "+3",
    "1.5",
    "99999999999999999999",
    "0x",
    "-",
    "",
];

const CONTROL: &[&str] = &[
    "if", "else", "then", "begin", "until", "while", "repeat", "do", "loop", "+loop", "i", "j",
    "leave", "exit", "{", "}",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\"x\"",
    "\"3 +\"",
    "\"dup\"",
    "\"aa:bb:cc:dd:ee:ff\"",
    "\"10.1.1.1\"",
    "\"10.0.0.1-10.0.0.9\"",
    "\"::1\"",
    "\"0a0bff\"",
    "\"00:00:00:00:00:01-00:00:00:00:00:02\"",
    "\"if\"",
    "\"begin 0 until\"",
    "\"x x\"",
    "\"1 if\"",
    "\"{ 2 + }\"",
    "\"a\\\"b\"",
    "\"\\q\"",
    "\"#\"",
    "\"unterminated",
    "\"multi\nline\"",
    "\"set\"",
    "\"nip\"",
    "\"i\"",
];

const NAMES: &[&str] = &["x", "y", "w", "macs", "three", "testvar", "f", "g", "rec"];

/// Word names of a fresh VM, without the one that sleeps (`ms` would make the run slow, not
/// wrong; it is tested with interrupts elsewhere).
fn vocabulary() -> Vec<String> {
    Vm::new()
        .word_names()
        .into_iter()
        .filter(|w| w != "ms")
        .collect()
}

fn garbage(rng: &mut Rng) -> String {
    let len = 1 + rng.below(12);
    (0..len)
        .map(|_| match rng.below(6) {
            0 => char::from_u32(rng.below(0x80) as u32).unwrap_or('?'),
            1 => char::from_u32(0x80 + rng.below(0x2000) as u32).unwrap_or('¿'),
            2 => *rng.pick(&['"', '\\', '#', '{', '}', '\n', '\t', '\0', ' ']),
            3 => char::from_u32(0x1F300 + rng.below(200) as u32).unwrap_or('!'),
            _ => (b'a' + rng.below(26) as u8) as char,
        })
        .collect()
}

fn token(rng: &mut Rng, vocab: &[String]) -> String {
    match rng.below(20) {
        0..=7 => rng.pick(vocab).clone(),
        8..=10 => rng.pick(NUMBERS).to_string(),
        11..=13 => rng.pick(CONTROL).to_string(),
        14..=15 => rng.pick(STRINGS).to_string(),
        16..=17 => rng.pick(NAMES).to_string(),
        18 => format!("\"{}\"", garbage(rng).replace('"', "")),
        _ => garbage(rng),
    }
}

fn random_stream(rng: &mut Rng, vocab: &[String]) -> String {
    let n = 1 + rng.below(40);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(&token(rng, vocab));
        s.push(if rng.chance(10) { '\n' } else { ' ' });
    }
    s
}

/// A well-formed structure with random words inside, so loops and definitions really run.
fn structured_stream(rng: &mut Rng, vocab: &[String]) -> String {
    let body: Vec<String> = (0..1 + rng.below(6)).map(|_| token(rng, vocab)).collect();
    let body = body.join(" ").replace('"', "");
    match rng.below(6) {
        0 => format!("{} 0 do {body} loop", rng.below(50)),
        1 => format!("begin {body} {} until", rng.pick(NUMBERS)),
        2 => format!("\"{body}\" {} !! {}", rng.pick(NAMES), rng.pick(NAMES)),
        3 => format!("{} if {body} else {body} then", rng.pick(NUMBERS)),
        4 => format!("{{ {body} }} .s"),
        _ => format!("begin {body} while {body} repeat"),
    }
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut Rng, seed: &str, vocab: &[String]) -> String {
    let mut s = seed.to_string();
    for _ in 0..1 + rng.below(4) {
        if s.is_empty() {
            s = token(rng, vocab);
        }
        let at = char_boundary(&s, rng.below(s.len() + 1));
        match rng.below(6) {
            0 => s.insert_str(at, &format!(" {} ", token(rng, vocab))),
            1 => {
                let end = char_boundary(&s, at + rng.below(8));
                s.replace_range(at..end, "");
            }
            2 => s.truncate(at),
            3 => {
                let end = char_boundary(&s, at + rng.below(30));
                let piece = s[at..end].to_string();
                s.insert_str(at, &piece);
            }
            4 => s.insert(at, *rng.pick(&['"', '{', '}', '#', '\\', '\n'])),
            _ => {
                let word: &&str = rng.pick(CONTROL);
                s.insert_str(at, word)
            }
        }
    }
    s
}

fn seeds() -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("tests/rpcl") {
        for e in dir.flatten() {
            if e.path().extension().is_some_and(|x| x == "rpcl") {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    v.extend(t.lines().map(String::from));
                    v.push(t);
                }
            }
        }
    }
    assert!(!v.is_empty(), "no seed files in tests/rpcl");
    v
}

fn sleeps(s: &str) -> bool {
    s.split_whitespace().any(|t| t == "ms")
}

#[test]
fn random_and_mutated_streams_never_panic() {
    let cases: u64 = std::env::var("RPCL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            50_000
        } else {
            200_000
        });
    let seed: u64 = std::env::var("RPCL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed);
    let vocab = vocabulary();
    let seeds = seeds();
    let mut vm = Vm::new();
    vm.set_budget(3_000);
    let (mut errors, mut ok, mut skipped) = (0u64, 0u64, 0u64);
    let start = std::time::Instant::now();
    for case in 0..cases {
        if case % 2_000 == 0 {
            // A fresh VM now and then keeps the dictionary of random names small.
            vm = Vm::new();
            vm.set_budget(3_000);
        }
        let stream = match rng.below(10) {
            0..=3 => random_stream(&mut rng, &vocab),
            4..=5 => structured_stream(&mut rng, &vocab),
            _ => {
                let seed_text = rng.pick(&seeds).clone();
                mutate(&mut rng, &seed_text, &vocab)
            }
        };
        if sleeps(&stream) {
            skipped += 1;
            continue;
        }
        let mut out = std::io::sink();
        let r = match rng.below(8) {
            0 => check("fuzz.rpcl", &stream).map_err(|e| {
                assert!(!e.is_empty());
                e[0].clone()
            }),
            1 => vm
                .disasm("fuzz.rpcl", &stream)
                .map(|_| ())
                .map_err(|e| e[0].clone()),
            2..=4 => vm.run_file("fuzz.rpcl", &stream, &mut out),
            _ => vm.eval_line(&stream, &mut out),
        };
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                errors += 1;
                assert!(
                    e.to_string().contains("error: "),
                    "badly formatted error {e:?} for {stream:?}"
                );
            }
        }
        // Still usable: the top level is reset, and a line runs normally.
        let mut probe = Vec::new();
        vm.eval_line(".cs 1 1 + .", &mut probe)
            .unwrap_or_else(|e| panic!("VM unusable after {stream:?}: {e}"));
        assert_eq!(probe, b"2\n", "after {stream:?}");
    }
    eprintln!(
        "rpcl fuzz: {cases} streams (seed {seed}) in {:.1?}: {ok} ran, {errors} errors, {skipped} skipped (ms)",
        start.elapsed()
    );
    assert!(
        ok > cases / 20 && errors > cases / 20,
        "the generator lost its variety"
    );
}

/// Sources shaped to find quadratic corners (one huge line, deep nesting) run to the end.
#[test]
fn pathological_sources_complete() {
    // Just under the source limit of 1 MiB.
    let long_line = ["1 drop"; 140_000].join(" ") + " 7 .";
    let deep_loops = format!(
        "0 {} {} {} .",
        ["1 0 do"; 20_000].join(" "),
        ["i drop leave"; 20_000].join(" "),
        ["loop"; 20_000].join(" ")
    );
    let deep_frames = format!(
        "{} 1 {} .",
        ["{"; 50_000].join(" "),
        ["}"; 50_000].join(" ")
    );
    let deep_ifs = format!(
        "{} 5 . {}",
        ["1 if"; 50_000].join(" "),
        ["then"; 50_000].join(" ")
    );
    for (src, want) in [
        (long_line, "7\n"),
        (deep_loops, "0\n"),
        (deep_frames, "1\n"),
        (deep_ifs, "5\n"),
    ] {
        let mut vm = Vm::new();
        let mut out = Vec::new();
        vm.run_file("big.rpcl", &src, &mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), want);
    }
    let unbalanced = ["do"; 100_000].join("\n");
    assert_eq!(check("u.rpcl", &unbalanced).unwrap_err().len(), 100_000);
    // Over the limit: one clear error, nothing compiled.
    let over = ["1 drop"; 200_000].join(" ");
    let errs = check("over.rpcl", &over).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "over.rpcl:1:1: error: parse: source of 1399999 bytes is longer than the limit of 1048576 bytes"
    );
}
