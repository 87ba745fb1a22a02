//! Reading capture files back in tests: run a reader and insist it is quiet, and the
//! independent pcapng reader (tests/tools/pcapng_dump.py) as a list of blocks.
#![allow(dead_code)]

use std::process::{Command, Output};

const DUMP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/pcapng_dump.py");

pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("this test needs `{name}` (packages tshark, tcpdump, python3): {e}")
    })
}

/// Runs a reader and fails on a non-zero exit or anything that smells of a warning.
pub fn clean(name: &str, args: &[&str]) -> String {
    let out = tool(name, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let err: String = err
        .lines()
        .filter(|l| !l.starts_with("Running as user") && !l.starts_with("reading from file"))
        .collect();
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{name} {args:?}: status {}, stderr: {err}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn dump(file: &str) -> Vec<serde_json_lite::Obj> {
    clean("python3", &[DUMP, file])
        .lines()
        .map(serde_json_lite::parse)
        .collect()
}

/// A tiny reader for the flat JSON objects pcapng_dump.py prints (no dependency needed).
pub mod serde_json_lite {
    use std::collections::BTreeMap;
    pub type Obj = BTreeMap<String, String>;
    pub fn parse(line: &str) -> Obj {
        let mut m = Obj::new();
        let body = line.trim().trim_start_matches('{').trim_end_matches('}');
        let mut rest = body;
        while let Some(k0) = rest.find('"') {
            let k1 = k0 + 1 + rest[k0 + 1..].find('"').unwrap();
            let key = rest[k0 + 1..k1].to_string();
            let after = rest[k1 + 1..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start();
            let (value, next) = if let Some(stripped) = after.strip_prefix('"') {
                let end = stripped.find('"').unwrap();
                (stripped[..end].to_string(), &stripped[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            m.insert(key, value);
            rest = next.trim_start_matches(',');
        }
        m
    }
}

pub fn blocks<'a>(all: &'a [serde_json_lite::Obj], kind: &str) -> Vec<&'a serde_json_lite::Obj> {
    all.iter().filter(|b| b["block"] == kind).collect()
}

pub fn num(o: &serde_json_lite::Obj, k: &str) -> u64 {
    o.get(k)
        .unwrap_or_else(|| panic!("no {k} in {o:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{k} in {o:?}"))
}
