//! The `ok ` console through a real pseudo-terminal (`expect`, a system package).

use std::process::Command;

#[test]
fn console_session_through_a_pty() {
    let bin = env!("CARGO_BIN_EXE_ethertap");
    let have_expect = Command::new("expect").arg("-v").output().is_ok();
    assert!(
        have_expect,
        "this test needs `expect` (Debian package expect) to drive the console through a pty"
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", "expect", "-f", "tests/rpcl/console/session.exp", bin])
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .output()
        .expect("expect runs");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && transcript.contains("SESSION OK"),
        "console session failed (status {:?}):\n{transcript}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // History is kept across sessions.
    let history = std::fs::read_to_string(home.path().join(".ethertap_history")).unwrap();
    assert!(history.contains("1 2 + ."), "history: {history}");
}

/// Tab with several candidates lists them; `.i` on an 80-column terminal wraps every help
/// text so that no line is wider than the terminal, continuation lines under column 34.
#[test]
fn tab_lists_candidates_and_dot_i_wraps_at_the_terminal_width() {
    let bin = env!("CARGO_BIN_EXE_ethertap");
    assert!(
        Command::new("expect").arg("-v").output().is_ok(),
        "this test needs `expect` (Debian package expect) to drive the console through a pty"
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", "expect", "-f", "tests/rpcl/console/listing.exp", bin])
        .env("HOME", home.path())
        .env("ETHERTAP_RUN_DIR", home.path())
        .env("TERM", "xterm")
        .output()
        .expect("expect runs");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && transcript.contains("LISTING OK"),
        "console session failed (status {:?}):\n{transcript}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The output of `"hash" .i`, between the markers it printed (the echoed input line
    // holds them too: start after the printed one).
    let start = transcript.rfind("MARK-START\r\n").expect("start marker") + "MARK-START\r\n".len();
    let end = transcript[start..].find("MARK-END").expect("end marker") + start;
    let listing: Vec<String> = transcript[start..end]
        .split("\r\n")
        .map(strip_escapes)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        listing.iter().any(|l| l.starts_with("tap.hash.insert ")),
        "{listing:?}"
    );
    for l in &listing {
        assert!(l.chars().count() <= 80, "wider than the terminal: {l:?}");
    }
    let continued: Vec<&String> = listing.iter().filter(|l| l.starts_with(' ')).collect();
    assert!(!continued.is_empty(), "long help texts wrap: {listing:?}");
    for l in continued {
        assert!(
            l.starts_with(&" ".repeat(33)) && !l[33..].starts_with(' '),
            "continuation under column 34: {l:?}"
        );
    }
}

/// Terminal escape sequences (colours) out of a transcript line.
fn strip_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}
