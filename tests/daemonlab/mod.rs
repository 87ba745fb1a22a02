//! A daemon on a bridge lab, through the real binaries: `ethertap start -d` in the lab's bridge
//! namespace with its own runtime directory (pid file, socket), log and packet queue, so that
//! tests run in parallel without seeing each other. Stopped, killed if it will not stop, and
//! its queue removed on drop, also when the test fails. Used by tests/daemon.rs, tests/ops.rs
//! and tests/soak.rs (each also declares `mod lab;`).
#![allow(dead_code)]

use crate::lab::{drain_queue, parse_stat, Lab};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The ethertap binary under test.
pub const ETHERTAP: &str = env!("CARGO_BIN_EXE_ethertap");

/// The repository's examples/ directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Bytes a program printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bridge lab (`p0`, `p1` in `br`) with a daemon on it.
pub struct Daemon {
    /// The lab the daemon bridges.
    pub lab: Lab,
    /// Its runtime directory: pid file, socket, log.
    pub dir: tempfile::TempDir,
    /// The name of its packet queue in /dev/shm.
    pub queue: String,
    preset: Option<PathBuf>,
    extra: Vec<String>,
}

impl Daemon {
    /// A daemon without preset and with the default options.
    pub fn start(test: &str) -> Daemon {
        Daemon::start_with(test, None, &[])
    }

    /// A daemon that runs `preset` at start (none: `--no-preset`), with `extra` options of
    /// `ethertap start`. The bridge namespace's loopback is up (for `--metrics`) and the end
    /// hosts compute checksums in software (their frames cross the bridge as sent).
    pub fn start_with(test: &str, preset: Option<PathBuf>, extra: &[&str]) -> Daemon {
        let lab = Lab::bridge(test);
        lab.ip(&lab.br, &["link", "set", "lo", "up"]);
        let d = Daemon {
            lab,
            dir: tempfile::tempdir().expect("temp dir"),
            queue: format!("et-{test}-{}", std::process::id()),
            preset,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let out = d.start_cmd().output().expect("ethertap start -d");
        assert!(
            out.status.success() && text(&out.stdout).contains("started in the background"),
            "ethertap start -d failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        d.lab.host_checksums_in_software();
        d
    }

    /// The command that starts this daemon (also for tests that start it a second time).
    pub fn start_cmd(&self) -> Command {
        let mut c = self.env(Command::new("ip"));
        c.args(["netns", "exec", &self.lab.br, ETHERTAP, "start", "-d"]);
        match &self.preset {
            Some(p) => c.arg("--preset").arg(p),
            None => c.arg("--no-preset"),
        };
        c.args(["--queue-name", &self.queue])
            .args(&self.extra)
            .args(["p0", "p1"]);
        c
    }

    /// The runtime directory.
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's log file.
    pub fn log(&self) -> PathBuf {
        self.run_dir().join("ethertap.log")
    }

    /// The console socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("ethertap.sock")
    }

    /// The pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir().join("ethertap.pid")
    }

    /// `c` pointed at this daemon (runtime directory, log, HOME) with stdin closed.
    pub fn env(&self, mut c: Command) -> Command {
        c.env("ETHERTAP_RUN_DIR", self.run_dir())
            .env("ETHERTAP_LOG", self.log())
            .env("HOME", self.run_dir())
            .stdin(Stdio::null());
        c
    }

    /// `ethertap ARGS` pointed at this daemon.
    pub fn ethertap(&self, args: &[&str]) -> Command {
        let mut c = self.env(Command::new(ETHERTAP));
        c.args(args);
        c
    }

    /// What `ethertap ARGS` printed and how it ended.
    pub fn output(&self, args: &[&str]) -> Output {
        self.ethertap(args).output().expect("running ethertap")
    }

    /// `ethertap ARGS` that must succeed and reach the daemon (no local-VM notice); its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ethertap {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `ethertap eval LINE` that must succeed in the daemon.
    pub fn eval(&self, line: &str) -> String {
        self.ok(&["eval", line])
    }

    /// `ethertap run examples/FILE ARGS...` that must succeed in the daemon; its output.
    pub fn example(&self, file: &str, args: &[&str]) -> String {
        let path = examples().join(file);
        let mut all = vec!["run", path.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// One counter of `if.stats`.
    pub fn stat(&self, ifidx: usize, label: &str) -> u64 {
        let stats = self.eval("if.stats");
        parse_stat(&stats, ifidx, label)
            .unwrap_or_else(|| panic!("no `{label}` of interface {ifidx} in\n{stats}"))
    }

    /// The line `label   value` of interface `ifidx` in `if.stats`, as text.
    pub fn stat_text(&self, ifidx: usize, label: &str) -> String {
        let stats = self.eval("if.stats");
        let mut in_block = false;
        for line in stats.lines() {
            if !line.starts_with(' ') {
                in_block = line.split_whitespace().next() == Some(&ifidx.to_string());
            } else if in_block {
                if let Some(rest) = line.trim_start().strip_prefix(label) {
                    if rest.starts_with("  ") {
                        return rest.trim().to_string();
                    }
                }
            }
        }
        panic!("no `{label}` of interface {ifidx} in\n{stats}");
    }

    /// The daemon's pid, from its pid file.
    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.pid_file())
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Whether an XDP program is attached to `port`.
    pub fn xdp_attached(&self, port: &str) -> bool {
        let out = self.lab.ip(&self.lab.br, &["link", "show", port]);
        out.contains("xdp")
    }

    /// Everything tapped into this daemon's queue until `expect` frames came or it stayed quiet.
    pub fn tapped(&self, expect: usize) -> Vec<(u8, Vec<u8>)> {
        drain_queue(&self.queue, expect)
            .into_iter()
            .map(|t| (t.ifindex, t.data))
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = self.output(&["stop", "--timeout", "10"]);
                if ethertap::sys::is_alive(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.queue));
    }
}
