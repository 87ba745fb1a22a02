//! Every binary's command line: `--help` and `--version`, shell completions, and usage
//! errors (exit status 2 with a message that names what was wrong).

use std::process::{Command, Output};

const BINARIES: [(&str, &str); 4] = [
    ("ethertap", env!("CARGO_BIN_EXE_ethertap")),
    ("collect", env!("CARGO_BIN_EXE_collect")),
    ("control", env!("CARGO_BIN_EXE_control")),
    ("pqueue-gen", env!("CARGO_BIN_EXE_pqueue-gen")),
];

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_binary_has_help_and_version() {
    for (name, bin) in BINARIES {
        let help = run(bin, &["--help"]);
        assert_eq!(help.status.code(), Some(0), "{name} --help exits 0");
        let out = text(&help.stdout);
        assert!(
            out.contains(&format!("Usage: {name}")),
            "{name} --help shows its usage:\n{out}"
        );
        assert!(out.contains("--help"), "{name} --help lists --help");
        assert!(out.contains("--version"), "{name} --help lists --version");
        let version = run(bin, &["--version"]);
        assert_eq!(version.status.code(), Some(0), "{name} --version exits 0");
        assert_eq!(
            text(&version.stdout),
            format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn every_binary_has_the_same_short_options_and_completions() {
    // The three products; the test and bench tools keep clap's defaults.
    for (name, bin) in &BINARIES[..3] {
        for flag in ["-v", "-V"] {
            let v = run(bin, &[flag]);
            assert_eq!(v.status.code(), Some(0), "{name} {flag}");
            assert_eq!(
                text(&v.stdout),
                format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
            );
        }
        let comp = run(bin, &["--completions", "bash"]);
        assert_eq!(comp.status.code(), Some(0), "{name} --completions bash");
        assert!(text(&comp.stdout).contains(&format!("_{name}()")));
        let c = run(bin, &["-c"]);
        assert_eq!(c.status.code(), Some(0));
        assert!(text(&c.stdout).contains("Copyright"), "{name} -c");
        let h = run(bin, &["-h"]);
        assert_eq!(h.status.code(), Some(0));
        assert!(text(&h.stdout).contains(&format!("Usage: {name}")));
    }
}

#[test]
fn help_documents_the_exit_status() {
    let ethertap = text(&run(env!("CARGO_BIN_EXE_ethertap"), &["--help"]).stdout);
    assert!(
        ethertap.contains("Exit status: 0 success, 1 error, 2 usage error, 3 status/stop"),
        "{ethertap}"
    );
    let collect = text(&run(env!("CARGO_BIN_EXE_collect"), &["--help"]).stdout);
    assert!(collect.contains("Exit status: 0 success"), "{collect}");
    assert!(collect.contains("2 usage error"), "{collect}");
    // Each subcommand of ethertap has its own help too.
    for sub in [
        "start",
        "run",
        "eval",
        "check",
        "console",
        "status",
        "stats",
        "log",
        "stop",
        "demo",
        "completions",
    ] {
        let out = run(env!("CARGO_BIN_EXE_ethertap"), &[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "ethertap {sub} --help");
        assert!(
            text(&out.stdout).contains(&format!("Usage: ethertap {sub}")),
            "ethertap {sub} --help"
        );
    }
}

#[test]
fn shell_completions_come_from_the_argument_definitions() {
    let bash = run(env!("CARGO_BIN_EXE_ethertap"), &["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let script = text(&bash.stdout);
    assert!(script.contains("_ethertap()"), "a bash function:\n{script}");
    assert!(
        script.contains("complete -F _ethertap"),
        "registered with complete"
    );
    for word in ["start", "demo", "--xdp-mode", "--queue-name"] {
        assert!(script.contains(word), "completes {word}");
    }
    let checked = Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .expect("bash");
    assert!(checked.status.success(), "bash parses the ethertap script");

    let collect = run(env!("CARGO_BIN_EXE_collect"), &["--completions", "bash"]);
    assert_eq!(collect.status.code(), Some(0));
    let script = text(&collect.stdout);
    assert!(script.contains("_collect()"), "{script}");
    for word in ["--plimit", "--noreset", "--snaplen"] {
        assert!(script.contains(word), "completes {word}");
    }
    for shell in ["zsh", "fish"] {
        let out = run(env!("CARGO_BIN_EXE_ethertap"), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "ethertap completions {shell}");
        assert!(text(&out.stdout).contains("ethertap"), "{shell} script");
        let out = run(env!("CARGO_BIN_EXE_collect"), &["--completions", shell]);
        assert_eq!(out.status.code(), Some(0), "collect --completions {shell}");
    }
    // A reader that stops early must not make the generator panic.
    let head = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} completions bash | head -1; {} --completions bash | head -1",
            env!("CARGO_BIN_EXE_ethertap"),
            env!("CARGO_BIN_EXE_collect")
        ))
        .output()
        .expect("sh");
    assert!(
        !text(&head.stderr).contains("panicked"),
        "{}",
        text(&head.stderr)
    );
}

#[test]
fn bad_options_exit_2_and_name_the_problem() {
    for (name, bin) in BINARIES {
        let out = run(bin, &["--no-such-option"]);
        assert_eq!(out.status.code(), Some(2), "{name} --no-such-option");
        let err = text(&out.stderr);
        assert!(
            err.contains("unexpected argument '--no-such-option'"),
            "{name}: {err}"
        );
        assert!(err.contains("Usage:"), "{name} shows its usage: {err}");
    }
    let cases: [(&str, &[&str], &str); 5] = [
        (
            env!("CARGO_BIN_EXE_ethertap"),
            &["start", "--xdp-mode", "fast", "eth0"],
            "invalid value 'fast' for '--xdp-mode",
        ),
        (
            env!("CARGO_BIN_EXE_ethertap"),
            &["completions", "tcsh"],
            "invalid value 'tcsh'",
        ),
        (env!("CARGO_BIN_EXE_ethertap"), &[], "a command is needed"),
        (env!("CARGO_BIN_EXE_collect"), &[], "<OUTPUT>"),
        (
            env!("CARGO_BIN_EXE_collect"),
            &["-p", "many", "x.pcap"],
            "invalid value 'many' for '--plimit <N>'",
        ),
    ];
    for (bin, args, message) in cases {
        let out = run(bin, args);
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(message), "{bin} {args:?}: {err}");
    }
}
