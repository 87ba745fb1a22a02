//! RPCL conformance suite: every `tests/rpcl/*.rpcl` with the `.out` (stdout), `.err`
//! (error line; the run must fail with it) and `.warn` (the compiler's warnings, stderr before
//! any error; none when missing) files next to it.
//!
//! * `NAME.rpcl` runs as a script, in process (in the VM `ethertap run --local` uses) and
//!   through `ethertap run`.
//! * `NAME.lines.rpcl` runs line by line as the console does (`Vm::eval_line`); error lines
//!   (`error: WORD: message`) are part of its `.out`.
//! * `NAME.args` holds the script's arguments, `NAME.budget` an instruction budget.
//! * In `.out` files `@VERSION@` and `@PLATFORM@` stand for the version and platform.
//!
//! `RPCL_BLESS=1 cargo test --test rpcl_conformance` rewrites the expected files from the
//! actual output (review the diff before committing).

use ethertap::rpcl::{Flow, Vm};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ethertap");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("tests/rpcl")
        .expect("tests/rpcl exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rpcl"))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "conformance files missing: {v:?}");
    v
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy();
    let stem = name.strip_suffix(".rpcl").unwrap_or(&name);
    path.with_file_name(format!("{stem}.{ext}"))
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn expand(s: &str) -> String {
    s.replace("@VERSION@", VERSION)
        .replace("@PLATFORM@", &platform())
}

fn unexpand(s: &str) -> String {
    s.replace(&format!("  {VERSION}\n"), "  @VERSION@\n")
        .replace(&platform(), "@PLATFORM@")
}

fn is_lines(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".lines.rpcl")
}

fn args_of(path: &Path) -> Vec<String> {
    read_opt(&sibling(path, "args"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// What one case printed: stdout, the error that stopped it, the warnings.
struct Run {
    out: String,
    err: Option<String>,
    warnings: String,
}

/// Compile, print the warnings, run to the end: as the local front ends do.
fn compile_and_run(
    vm: &mut Vm,
    file: Option<&str>,
    text: &str,
    out: &mut Vec<u8>,
    warnings: &mut String,
) -> Result<Flow, ethertap::rpcl::RpclError> {
    let compiled = match file {
        Some(f) => vm.compile_file(f, text),
        None => vm.compile_line(text),
    };
    let mut note = |vm: &mut Vm| {
        for w in vm.take_warnings() {
            warnings.push_str(&format!("{w}\n"));
        }
    };
    note(vm);
    let step = vm.start(compiled?, out);
    let r = vm.finish(step, out);
    note(vm);
    r
}

/// One case, run in this process.
fn run_in_process(path: &Path) -> Run {
    let text = std::fs::read_to_string(path).expect("readable case");
    let mut vm = ethertap::cli::local_vm();
    vm.set_color(false);
    vm.set_args(args_of(path));
    if let Some(b) = read_opt(&sibling(path, "budget")) {
        vm.set_budget(b.trim().parse().expect("budget is a number"));
    }
    let mut out: Vec<u8> = Vec::new();
    let mut err = None;
    let mut warnings = String::new();
    if is_lines(path) {
        for line in text.lines() {
            match compile_and_run(&mut vm, None, line, &mut out, &mut warnings) {
                Ok(Flow::Bye) => break,
                Ok(_) => {}
                Err(e) => {
                    out.extend_from_slice(e.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
        }
    } else {
        let file = path.to_string_lossy();
        if let Err(e) = compile_and_run(&mut vm, Some(&file), &text, &mut out, &mut warnings) {
            err = Some(e.to_string());
        }
    }
    Run {
        out: String::from_utf8_lossy(&out).into_owned(),
        err,
        warnings,
    }
}

fn bless() -> bool {
    std::env::var_os("RPCL_BLESS").is_some()
}

#[test]
fn conformance_in_process() {
    let mut failures = Vec::new();
    for path in cases() {
        let Run { out, err, warnings } = run_in_process(&path);
        let out_file = sibling(&path, "out");
        let err_file = sibling(&path, "err");
        let warn_file = sibling(&path, "warn");
        if bless() {
            std::fs::write(&out_file, unexpand(&out)).unwrap();
            for (file, text) in [
                (&err_file, err.map(|e| format!("{e}\n"))),
                (&warn_file, Some(warnings)),
            ] {
                match text.filter(|t| !t.is_empty()) {
                    Some(t) => std::fs::write(file, t).unwrap(),
                    None => {
                        let _ = std::fs::remove_file(file);
                    }
                }
            }
            continue;
        }
        let want_out = expand(
            &read_opt(&out_file).unwrap_or_else(|| panic!("{} has no .out file", path.display())),
        );
        let want_err = read_opt(&err_file).map(|s| s.trim_end().to_string());
        let want_warnings = read_opt(&warn_file).unwrap_or_default();
        if out != want_out {
            failures.push(format!(
                "{}: stdout differs\n--- expected\n{want_out}--- actual\n{out}",
                path.display()
            ));
        }
        if err != want_err {
            failures.push(format!(
                "{}: error differs\n  expected {want_err:?}\n  actual   {err:?}",
                path.display()
            ));
        }
        if warnings != want_warnings {
            failures.push(format!(
                "{}: warnings differ\n--- expected\n{want_warnings}--- actual\n{warnings}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn conformance_through_the_binary() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in cases() {
        // Line-mode files need one VM across lines; budgets need an API call.
        if is_lines(&path) || sibling(&path, "budget").exists() {
            continue;
        }
        let out = Command::new(BIN)
            .env("ETHERTAP_RUN_DIR", no_daemon_dir())
            .arg("run")
            .arg(&path)
            .args(args_of(&path))
            .output()
            .expect("ethertap runs");
        ran += 1;
        let want_out = expand(&read_opt(&sibling(&path, "out")).unwrap_or_default());
        let want_err = read_opt(&sibling(&path, "err")).unwrap_or_default();
        let want_stderr = read_opt(&sibling(&path, "warn")).unwrap_or_default() + &want_err;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = stderr_of(&out);
        let want_status = if want_err.is_empty() { 0 } else { 1 };
        if stdout != want_out || stderr != want_stderr || out.status.code() != Some(want_status) {
            failures.push(format!(
                "{}: status {:?} (want {want_status})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                path.display(),
                out.status.code()
            ));
        }
    }
    assert!(ran >= 10);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every word a VM knows at start appears as a token in some conformance file.
#[test]
fn every_word_has_a_conformance_case() {
    let mut tokens = std::collections::HashSet::new();
    for path in cases() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            for t in line.split_whitespace() {
                tokens.insert(t.trim_matches('"').to_string());
            }
        }
    }
    let missing: Vec<String> = Vm::new()
        .word_names()
        .into_iter()
        .filter(|w| !tokens.contains(w))
        .collect();
    assert!(
        missing.is_empty(),
        "words without a conformance case: {missing:?}"
    );
}

/// A runtime directory where no daemon listens: these tests are about the local VM, whatever
/// runs on the machine.
fn no_daemon_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// stderr without the one-line notice that no daemon runs (`ethertap run` falls back to a
/// local VM and says so; the language's own output is what these tests compare).
fn stderr_of(out: &std::process::Output) -> String {
    without_notice(&out.stderr)
}

/// Output without the notice that a local VM is used (its wording is not the case's).
fn without_notice(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.starts_with("ethertap: no daemon running;"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn ethertap(args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(BIN)
        .env("ETHERTAP_RUN_DIR", no_daemon_dir())
        .args(args)
        .output()
        .expect("ethertap runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_of(&out),
        out.status.code(),
    )
}

#[test]
fn eval_prints_and_reports_errors_in_console_form() {
    assert_eq!(
        ethertap(&["eval", "1 2 + ."]),
        ("3\n".into(), "".into(), Some(0))
    );
    assert_eq!(
        ethertap(&["eval", "\"abc\" 1 +"]),
        (
            "".into(),
            "error: +: \"abc\" is not a number\n".into(),
            Some(1)
        )
    );
    assert_eq!(
        ethertap(&["eval", "drop"]),
        ("".into(), "error: pop: stack underflow\n".into(), Some(1))
    );
    assert_eq!(
        ethertap(&["eval", "1 if"]),
        ("".into(), "error: if: missing \"then\"\n".into(), Some(1))
    );
    assert_eq!(
        ethertap(&["eval", "\"bye\" . bye \"no\" ."]),
        ("bye\n".into(), "".into(), Some(0))
    );
    let (out, _, code) = ethertap(&["eval", "\"version.ethertap\" @ . \"rpcl.platform\" @ ."]);
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("{VERSION}\n{}\n", platform()));
}

#[test]
fn check_reports_every_error_and_disassembles() {
    let (out, err, code) = ethertap(&["check", "tests/rpcl/parse_errors.rpcl"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    let want = "\
tests/rpcl/parse_errors.rpcl:4:6: error: then: no matching \"if\"
tests/rpcl/parse_errors.rpcl:5:1: error: begin: missing \"until\" or \"repeat\"
tests/rpcl/parse_errors.rpcl:6:5: error: do: missing \"loop\" or \"+loop\"
tests/rpcl/parse_errors.rpcl:7:6: error: parse: unknown escape \\q in string
tests/rpcl/parse_errors.rpcl:8:1: error: {: missing \"}\"
tests/rpcl/parse_errors.rpcl:10:1: error: parse: unterminated string
";
    assert_eq!(err, want);
    // `run` reports the same before running anything (nothing printed).
    let (out, err2, code) = ethertap(&["run", "tests/rpcl/parse_errors.rpcl"]);
    assert_eq!((out.as_str(), err2.as_str(), code), ("", want, Some(1)));

    let (out, err, code) = ethertap(&["check", "tests/rpcl/ref_errors.rpcl"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("", "", Some(0)));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("loop.rpcl");
    std::fs::write(&f, "3 0 do i 1 + . loop \"x\" foo\n").unwrap();
    let (out, err, code) = ethertap(&["check", "--disasm", f.to_str().unwrap()]);
    assert_eq!((err.as_str(), code), ("", Some(0)));
    let want = "\
0000        1:1  int       3
0001        1:3  int       0
0002        1:5  do        0007
0003        1:8  i
0004       1:12  + int    1
0005       1:14  builtin   .
0006       1:16  loop      0003
0007       1:21  string    \"x\"
0008       1:25  name      foo
";
    assert_eq!(out, want);
    let (_, err, code) = ethertap(&["check", "/nonexistent/x.rpcl"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("ethertap: cannot read /nonexistent/x.rpcl: "),
        "{err}"
    );
}

#[test]
fn shebang_scripts_run_directly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello.rpcl");
    std::fs::write(
        &script,
        "#!/usr/bin/env -S ethertap run\n\"hello from\" 0 arg concat . argc .\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(&script)
        .env("ETHERTAP_RUN_DIR", no_daemon_dir())
        .arg(" a script")
        .env("PATH", path)
        .output()
        .expect("the script runs through its shebang");
    assert_eq!(stderr_of(&out), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from a script\n1\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // A script's own options are its arguments, not ethertap's.
    let out = Command::new(&script)
        .env("ETHERTAP_RUN_DIR", no_daemon_dir())
        .args(["-v", "--local"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .output()
        .unwrap();
    assert_eq!(stderr_of(&out), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from-v\n2\n");

    let failing = dir.path().join("fail.rpcl");
    std::fs::write(&failing, "#!/usr/bin/env -S ethertap run\n1 0 /\n").unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&failing)
        .env("ETHERTAP_RUN_DIR", no_daemon_dir())
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_of(&out),
        format!("{}:2:5: error: /: division by zero\n", failing.display())
    );
}

#[test]
fn run_of_a_missing_file_fails_cleanly() {
    let (out, err, code) = ethertap(&["run", "/nonexistent/x.rpcl"]);
    assert_eq!((out.as_str(), code), ("", Some(1)));
    assert!(
        err.starts_with("ethertap: cannot read /nonexistent/x.rpcl: "),
        "{err}"
    );
}

#[test]
fn ctrl_c_interrupts_a_running_script() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("spin.rpcl");
    std::fs::write(&f, "\"spinning\" . .fflush\nbegin 0 until\n").unwrap();
    let child = Command::new(BIN)
        .env("ETHERTAP_RUN_DIR", no_daemon_dir())
        .arg("run")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT to the child");
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spinning\n");
    assert_eq!(
        stderr_of(&out),
        format!("{}:2:9: error: until: interrupted\n", f.display())
    );
    assert_eq!(out.status.code(), Some(1));
}

/// `ethertap check` knows every word of the engine and the packet queue without a daemon: a
/// script using each of them (from the registered tables, whatever is added to them) has no
/// warning; one typo gives one warning, placed, with the word meant; `--strict` exits 1.
#[test]
fn check_knows_the_engine_words_without_a_daemon() {
    let core = Vm::new().word_names();
    let engine: Vec<String> = ethertap::cli::local_vm()
        .word_names()
        .into_iter()
        .filter(|w| !core.contains(w))
        .collect();
    assert!(
        engine.iter().any(|w| w == "tap.rx.enable") && engine.iter().any(|w| w == "tap.queue.get"),
        "{engine:?}"
    );
    assert!(engine.contains(&"fault.bitflip.probability".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let every = dir.path().join("every-word.rpcl");
    // Each word as a bare token on its own line, as a script would call it (compiling
    // checks names; nothing runs). `if.count @` as the examples use it.
    let mut text = String::from("# every engine and packet-queue word\n0 if.count @ <\n");
    for w in &engine {
        text.push_str(&format!("0 {w}\n"));
    }
    std::fs::write(&every, &text).unwrap();
    let path = every.to_str().unwrap();
    assert_eq!(ethertap(&["check", path]), ("".into(), "".into(), Some(0)));
    assert_eq!(
        ethertap(&["check", "--strict", path]),
        ("".into(), "".into(), Some(0))
    );

    // One typo, on line 7 column 3.
    let typo = text.replace("0 tap.rx.enable\n", "0 tap.rx.enabel\n");
    let line = typo
        .lines()
        .position(|l| l == "0 tap.rx.enabel")
        .expect("the typo is in")
        + 1;
    std::fs::write(&every, &typo).unwrap();
    let want = format!(
        "{path}:{line}:3: warning: unknown word \"tap.rx.enabel\", pushed as a string (did you mean tap.rx.enable?)\n"
    );
    assert_eq!(
        ethertap(&["check", path]),
        ("".into(), want.clone(), Some(0))
    );
    assert_eq!(
        ethertap(&["check", "--strict", path]),
        ("".into(), want.clone(), Some(1))
    );
    // run --strict refuses it before anything runs; run alone warns and runs.
    let refusal = format!("{want}{path}: error: --strict: 1 warning, nothing was run\n");
    assert_eq!(
        ethertap(&["run", "--strict", path]),
        ("".into(), refusal, Some(1))
    );
    std::fs::write(&every, "1 2 + . 0 tap.rx.enabel drop\n").unwrap();
    let (out, err, code) = ethertap(&["run", path]);
    assert_eq!((out.as_str(), code), ("3\n", Some(0)));
    assert!(
        err.contains("1:11: warning: unknown word \"tap.rx.enabel\""),
        "{err}"
    );
    // eval: the console form, without the file.
    assert_eq!(
        ethertap(&["eval", "0 tap.rx.enabel drop"]),
        (
            "".into(),
            "1:3: warning: unknown word \"tap.rx.enabel\", pushed as a string (did you mean tap.rx.enable?)\n".into(),
            Some(0)
        )
    );
    assert_eq!(
        ethertap(&["eval", "--strict", "0 tap.rx.enabel drop"]).2,
        Some(1)
    );
}

/// The example of docs/rpcl.md's section "Warnings and --strict", run as the page shows it:
/// each `$ ` command in a shell in an empty directory, its stdout and stderr (without the
/// local-VM notice) against the lines that follow it.
#[test]
fn the_warnings_example_of_the_docs_prints_what_the_page_shows() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rpcl.md"))
        .expect("docs/rpcl.md");
    let section = doc
        .split("\n## Warnings and --strict\n")
        .nth(1)
        .expect("the section");
    let block = section
        .split("\n```\n")
        .nth(1)
        .expect("the section's example block");
    let mut steps: Vec<(String, String)> = Vec::new();
    for l in block.lines() {
        match l.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), String::new())),
            None => {
                let (_, out) = steps.last_mut().expect("a command first");
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    assert_eq!(steps.len(), 3, "{block}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    for (cmd, expected) in steps {
        let out = Command::new("sh")
            .args(["-c", &format!("{cmd} 2>&1")])
            .current_dir(dir.path())
            .env("ETHERTAP_RUN_DIR", no_daemon_dir())
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .output()
            .expect("sh runs");
        assert_eq!(
            without_notice(&out.stdout),
            expected,
            "docs/rpcl.md: `$ {cmd}`"
        );
    }
}
