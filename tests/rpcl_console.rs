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
