//! The systemd units in `dist/` are valid for systemd and start, stop and control the real
//! binaries with options those binaries accept (needs `systemd-analyze`, package systemd).

use std::path::Path;
use std::process::Command;

const ETHERTAP: &str = env!("CARGO_BIN_EXE_ethertap");

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn systemd_units_verify_against_the_built_binaries() {
    let bin_dir = Path::new(ETHERTAP).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["ethertap.service", "collect.service"] {
        // Installed binaries live in /usr/local/bin; here, the ones just built.
        let text = unit(name).replace("/usr/local/bin/", &format!("{}/", bin_dir.display()));
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .expect("this test needs `systemd-analyze` (apt-get install systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `Exec*` command of our binaries parses: `--help` appended must succeed, so a
/// misspelt option or subcommand in a unit fails here instead of at boot.
#[test]
fn unit_commands_are_accepted_by_the_binaries() {
    let bin_dir = Path::new(ETHERTAP).parent().unwrap();
    let mut checked = 0;
    for name in ["ethertap.service", "collect.service"] {
        for line in unit(name).lines() {
            let Some((key, cmd)) = line.split_once('=') else {
                continue;
            };
            if !key.starts_with("Exec") || !cmd.starts_with("/usr/local/bin/") {
                continue;
            }
            let mut words = cmd.split_whitespace();
            let program = bin_dir.join(words.next().unwrap().trim_start_matches("/usr/local/bin/"));
            let args: Vec<&str> = words.collect();
            // Options and subcommands come first; `--help` then stops before anything runs.
            let out = Command::new(&program)
                .args(&args)
                .arg("--help")
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
            assert!(
                out.status.success(),
                "{name}: `{cmd} --help` was refused: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "ExecStart and ExecStop of both units");
}
