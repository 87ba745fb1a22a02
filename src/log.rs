//! The log of the engine's process (daemon or foreground): one line per event, with the time
//! (RFC 3339, UTC), a level, and who caused it (uid and pid: a console client for a command,
//! the engine's own process for what it noticed itself), e.g.
//! `2026-12-02T05:42:22.123Z INFO uid 0 pid 4242: eval: 0 tap.rx.enable`.
//!
//! Lines go to stderr, which is the log file for a daemon (`ethertap start -d` points it at
//! `ETHERTAP_LOG`), the journal under systemd (which also takes the `<N>` priority prefix
//! written there), and the terminal otherwise. The last [`KEEP`] lines stay in memory for
//! `ethertap log`. Only the control side logs; the packet path never does.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Lines kept in memory for `ethertap log`.
pub const KEEP: usize = 1000;
/// Longest message logged; longer ones are cut (a script's line can be megabytes).
pub const MAX_MESSAGE: usize = 2000;

/// How serious a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something happened as asked.
    Info,
    /// Something the operator should look at.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix.
    fn priority(self) -> u8 {
        match self {
            Level::Info => 6,
            Level::Warn => 4,
            Level::Error => 3,
        }
    }
}

fn recent_lines() -> &'static Mutex<VecDeque<String>> {
    static RECENT: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RECENT.get_or_init(|| Mutex::new(VecDeque::with_capacity(KEEP)))
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to the device and inode of
/// the stream it connected, and a redirection since would make them differ.
fn stderr_is_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
            return false;
        };
        match nix::sys::stat::fstat(std::io::stderr()) {
            Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
            Err(_) => false,
        }
    })
}

/// Who caused an event: a uid and a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The user.
    pub uid: u32,
    /// The process.
    pub pid: i32,
}

impl Source {
    /// This process.
    pub fn me() -> Source {
        Source {
            uid: nix::unistd::getuid().as_raw(),
            pid: std::process::id() as i32,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} pid {}", self.uid, self.pid)
    }
}

/// One line of the log, without the newline: time, level, source, message (control
/// characters escaped, so that a line of the log is one event).
pub fn format_line(level: Level, at: SystemTime, source: Source, msg: &str) -> String {
    let mut text = String::with_capacity(msg.len().min(MAX_MESSAGE) + 40);
    for c in msg.chars() {
        if text.len() >= MAX_MESSAGE {
            text.push_str(" [...]");
            break;
        }
        match c {
            '\n' => text.push_str("\\n"),
            '\r' => text.push_str("\\r"),
            '\t' => text.push_str("\\t"),
            c if c.is_control() => text.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => text.push(c),
        }
    }
    format!(
        "{} {} {source}: {text}",
        humantime::format_rfc3339_millis(at),
        level.name()
    )
}

/// Logs `msg` at `level`, caused by this process.
pub fn log(level: Level, msg: &str) {
    log_as(level, Source::me(), msg)
}

/// Logs `msg` at `level`, caused by `source` (a console client).
pub fn log_as(level: Level, source: Source, msg: &str) {
    let line = format_line(level, SystemTime::now(), source, msg);
    {
        let mut recent = recent_lines().lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(line.clone());
    }
    let out = if stderr_is_journal() {
        format!("<{}>{line}\n", level.priority())
    } else {
        format!("{line}\n")
    };
    // A log that cannot be written must not stop the engine.
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// Logs an event.
pub fn info(msg: &str) {
    log(Level::Info, msg)
}

/// Logs something the operator should look at.
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

/// Logs a failure.
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// The last `n` lines logged by this process, oldest first.
pub fn recent(n: usize) -> Vec<String> {
    let recent = recent_lines().lock().unwrap_or_else(|p| p.into_inner());
    recent
        .iter()
        .skip(recent.len().saturating_sub(n))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_have_an_rfc3339_time_a_level_and_no_raw_newline() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_654_142_123);
        let who = Source { uid: 7, pid: 42 };
        assert_eq!(
            format_line(Level::Warn, at, who, "a\nb\tc\u{7}"),
            "2025-12-02T05:42:22.123Z WARN uid 7 pid 42: a\\nb\\tc\\u{7}"
        );
        let long = format_line(Level::Info, at, who, &"x".repeat(3 * MAX_MESSAGE));
        assert!(long.len() < MAX_MESSAGE + 64 && long.ends_with(" [...]"));
    }

    #[test]
    fn recent_lines_are_kept_and_bounded() {
        for i in 0..KEEP + 5 {
            log(Level::Info, &format!("recent-test {i}"));
        }
        let last = recent(2);
        assert_eq!(last.len(), 2);
        assert!(
            last[1].ends_with(&format!("recent-test {}", KEEP + 4)),
            "{last:?}"
        );
        assert!(recent(usize::MAX).len() <= KEEP);
    }
}
