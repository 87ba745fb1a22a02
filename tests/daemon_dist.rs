//! What a machine that keeps ethertap gets: the systemd units in `dist/` (valid for systemd,
//! commands the binaries accept, the capabilities they grant enough for the engine, readiness
//! through `NOTIFY_SOCKET`) and `./run install` / `./run uninstall` from a clean clone (needs
//! root, `systemd-analyze` (package systemd), `setpriv`, `git`, `man`, `bash`, `ip`).

mod lab;

use lab::*;
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ETHERTAP: &str = env!("CARGO_BIN_EXE_ethertap");
const UNITS: [&str; 2] = ["ethertap@.service", "collect@.service"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin_dir() -> &'static Path {
    Path::new(ETHERTAP).parent().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The variables of an EnvironmentFile (`VAR="value"` lines).
fn environment(conf: &str) -> BTreeMap<String, String> {
    conf.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// `Key=value` settings of a unit (the last of each key).
fn settings(unit: &str) -> BTreeMap<String, String> {
    unit.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `systemd-analyze verify` of unit files; the man pages they document are looked up in
/// `man_dir` (a `man1` inside).
fn verify(units: &[PathBuf], man_dir: &Path) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .env("MANPATH", man_dir)
        .output()
        .expect("this test needs `systemd-analyze` (apt-get install systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn systemd_units_verify_against_the_built_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    for page in std::fs::read_dir(repo().join("man")).unwrap() {
        let page = page.unwrap().path();
        std::fs::copy(&page, man1.join(page.file_name().unwrap())).unwrap();
    }
    let mut files = Vec::new();
    for name in UNITS {
        // Installed binaries live in /usr/local/bin; here, the ones just built.
        let unit = read(&repo().join("dist").join(name))
            .replace("/usr/local/bin/", &format!("{}/", bin_dir().display()));
        let path = dir.path().join(name);
        std::fs::write(&path, unit).unwrap();
        files.push(path);
    }
    verify(&files, &dir.path().join("man"));
}

/// Every `Exec*` command of our binaries, with the example configuration's variables, parses:
/// `--help` appended must succeed, so a misspelt option in a unit or the example fails here
/// instead of at boot.
#[test]
fn unit_commands_with_the_example_config_are_accepted_by_the_binaries() {
    let env = environment(&read(&repo().join("dist/example.conf")));
    let mut checked = 0;
    for name in UNITS {
        for (key, cmd) in settings(&read(&repo().join("dist").join(name))) {
            if !key.starts_with("Exec") {
                continue;
            }
            let cmd = cmd
                .strip_prefix("/usr/local/bin/")
                .unwrap_or_else(|| panic!("{name}: {key} runs an installed binary: {cmd}"));
            let mut words = cmd
                .split_whitespace()
                .flat_map(|w| match w.strip_prefix('$') {
                    Some(var) => env
                        .get(var)
                        .unwrap_or_else(|| panic!("{name}: ${var} is not in example.conf"))
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                    None => vec![w.to_string()],
                });
            let program = bin_dir().join(words.next().unwrap());
            let args: Vec<String> = words.collect();
            // Options and subcommands come first; `--help` then stops before anything runs.
            let out = Command::new(&program)
                .args(&args)
                .arg("--help")
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
            assert!(
                out.status.success(),
                "{name}: `{cmd}` with {args:?} was refused: {}",
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "ExecStart of both units");
}

/// The capabilities `CapabilityBoundingSet=` of a unit grants, as `setpriv` spells them.
fn capabilities(unit: &str) -> String {
    let set = settings(unit)
        .get("CapabilityBoundingSet")
        .cloned()
        .expect("a CapabilityBoundingSet");
    let mut arg = "-all".to_string();
    for cap in set.split_whitespace() {
        arg += &format!(",+{}", cap.trim_start_matches("CAP_").to_lowercase());
    }
    arg
}

/// The engine as `ethertap@.service` runs it: in the foreground, with no more capabilities
/// than the unit's bounding set, started by a service manager that listens on
/// `NOTIFY_SOCKET`. It must report ready (with its pid) once it bridges and its console
/// socket answers, and `ethertap run` must reach it.
#[test]
fn the_foreground_engine_with_the_units_capabilities_notifies_ready_and_answers_run() {
    let mut lab = Lab::bridge("fgcap");
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let queue = format!("et-fgcap-{}", std::process::id());
    let caps = capabilities(&read(&repo().join("dist/ethertap@.service")));
    let run_dir = format!("ETHERTAP_RUN_DIR={}", dir.path().display());
    let notify_env = format!("NOTIFY_SOCKET={}", notify_path.display());
    let bounding = format!("--bounding-set={caps}");
    let br = lab.br.clone();
    let pid = lab.spawn(
        &br,
        &[
            "env",
            &run_dir,
            &notify_env,
            "setpriv",
            &bounding,
            "--inh-caps=-all",
            ETHERTAP,
            "start",
            "--no-preset",
            "--queue-name",
            &queue,
            "p0",
            "p1",
        ],
    );
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        let mut child = lab.take_child(pid).unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("no readiness from the engine ({e}): {}", text(&out.stderr))
    });
    let state = text(&buf[..n]);
    assert!(state.contains("READY=1\n"), "{state}");
    // `env` and `setpriv` exec: the engine is the process the manager started.
    assert!(state.contains(&format!("MAINPID={pid}\n")), "{state}");
    assert!(
        state.contains("STATUS=bridge mode on 0 p0, 1 p1"),
        "{state}"
    );

    lab.host_checksums_in_software();
    lab.sh(&lab.h1, &format!("ping -c 3 -i 0.2 -W 2 {H2_IP}"));
    let script = dir.path().join("s.rpcl");
    std::fs::write(&script, "0 tap.rx.enable if.stats\n").unwrap();
    let out = Command::new(ETHERTAP)
        .args(["run", script.to_str().unwrap()])
        .env("ETHERTAP_RUN_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ethertap run: {}",
        text(&out.stderr)
    );
    let stats = text(&out.stdout);
    assert!(parse_stat(&stats, 0, "rx").unwrap() >= 3, "{stats}");
    assert!(stats.contains("  RX tap                enabled"), "{stats}");

    let out = Command::new(ETHERTAP)
        .args(["stop", "--timeout", "10"])
        .env("ETHERTAP_RUN_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(text(&buf[..n]), "STOPPING=1\n");
    let _ = std::fs::remove_file(format!("/dev/shm/{queue}"));
}

/// `collect@.service` grants no capability at all: collect must record frames without one.
#[test]
fn collect_records_without_any_capability() {
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("collect-nocap-{}", std::process::id());
    let caps = capabilities(&read(&repo().join("dist/collect@.service")));
    assert_eq!(caps, "-all");
    let gen = bin_dir().join("pqueue-gen");
    let out = Command::new(&gen)
        .args(["produce", "-q", &queue, "-n", "0", "--open", "256"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pcap = dir.path().join("c.pcap");
    let collect = Command::new("setpriv")
        .arg(format!("--bounding-set={caps}"))
        .args(["--inh-caps=-all", "--"])
        .arg(bin_dir().join("collect"))
        .args(["--silent", "-n", "-p", "5", "-q", &queue])
        .arg(&pcap)
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(&gen)
        .args(["produce", "-q", &queue, "-n", "5", "--retry"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = collect.wait_with_output().unwrap();
    let _ = std::fs::remove_file(format!("/dev/shm/{queue}"));
    assert!(out.status.success(), "collect: {}", text(&out.stderr));
    // 24 bytes of header, 5 records of 16 + 64.
    assert_eq!(std::fs::metadata(&pcap).unwrap().len(), 24 + 5 * (16 + 64));
}

/// Every path under `dir`, with its kind and contents, to compare a tree before and after.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                all.insert(p.clone(), None);
                todo.push(p);
            } else {
                all.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    all
}

#[test]
fn install_from_a_clean_clone_renders_man_pages_loads_completions_and_uninstalls_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let out = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(repo())
        .arg(&clone)
        .output()
        .expect("this test needs git");
    assert!(out.status.success(), "git clone: {}", text(&out.stderr));
    // What the prefix holds before: a file of someone else, and a site's configuration.
    let prefix = dir.path().join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::write(prefix.join("bin/other-tool"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(prefix.join("etc/ethertap")).unwrap();
    std::fs::write(
        prefix.join("etc/ethertap/site.conf"),
        "ETHERTAP_INTERFACES=\"a b\"\n",
    )
    .unwrap();
    std::fs::write(prefix.join("etc/ethertap.rpcl"), "\\ the site's preset\n").unwrap();
    let before = tree(&prefix);

    let install = |action: &str| {
        let out = Command::new(clone.join("run"))
            .args([action, "--prefix"])
            .arg(&prefix)
            // The binaries this test run built; the rest comes from the clone.
            .env("ETHERTAP_BINARIES", bin_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "./run {action}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    install("install");
    for b in ["ethertap", "collect", "control"] {
        let out = Command::new(prefix.join("bin").join(b))
            .arg("-V")
            .output()
            .unwrap();
        assert_eq!(
            text(&out.stdout),
            format!("{b} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    for tool in ["pqueue-gen", "ethertap-blast"] {
        assert!(
            !prefix.join("bin").join(tool).exists(),
            "{tool} is not installed"
        );
    }
    let man1 = prefix.join("share/man/man1");
    let pages: Vec<PathBuf> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(pages.len() >= 12, "{pages:?}");
    for page in &pages {
        let out = Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("this test needs man (package man-db)");
        assert!(
            out.status.success() && out.stdout.len() > 200 && out.stderr.is_empty(),
            "man -l {}: {}",
            page.display(),
            text(&out.stderr)
        );
    }
    for b in ["ethertap", "collect", "control"] {
        let file = prefix.join("share/bash-completion/completions").join(b);
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && complete -p {b}", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains(&format!(" {b}")),
            "bash completion of {b}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(prefix
            .join(format!("share/zsh/site-functions/_{b}"))
            .is_file());
        assert!(prefix
            .join(format!("share/fish/vendor_completions.d/{b}.fish"))
            .is_file());
    }
    let units: Vec<PathBuf> = UNITS
        .iter()
        .map(|u| prefix.join("lib/systemd/system").join(u))
        .collect();
    for u in &units {
        let unit = read(u);
        assert!(
            unit.contains(&format!("{}/bin/", prefix.display())),
            "{unit}"
        );
        assert!(unit.contains(&format!("{}/etc/ethertap/%i.conf", prefix.display())));
    }
    verify(&units, &prefix.join("share/man"));
    assert_eq!(
        read(&prefix.join("etc/ethertap/example.conf")),
        read(&clone.join("dist/example.conf"))
    );
    assert_eq!(
        read(&prefix.join("etc/ethertap/site.conf")),
        "ETHERTAP_INTERFACES=\"a b\"\n",
        "a site's configuration is never overwritten"
    );
    assert_eq!(
        read(&prefix.join("etc/ethertap.rpcl")),
        "\\ the site's preset\n"
    );

    // Installing again replaces the first install; uninstalling leaves the prefix as it was.
    install("install");
    install("uninstall");
    assert_eq!(tree(&prefix), before, "the prefix is as it was");
}
