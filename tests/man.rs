//! The manual pages in man/ are the ones the clap definitions generate, and `man -l` renders
//! each without a warning. `ETHERTAP_UPDATE_MAN=1` rewrites man/ from the definitions.

use std::path::Path;
use std::process::Command;

#[test]
fn man_pages_are_current_and_render() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = ethertap::cli::man::pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["ethertap.1", "ethertap-start.1", "collect.1", "control.1"] {
        assert!(names.contains(&expected), "no page {expected} in {names:?}");
    }
    if std::env::var_os("ETHERTAP_UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, text) in &pages {
        if std::fs::read(dir.join(name)).ok().as_ref() != Some(text) {
            stale.push(name.clone());
        }
    }
    let mut in_tree: Vec<String> = std::fs::read_dir(&dir)
        .expect("man/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_tree.retain(|n| !names.contains(&n.as_str()));
    assert!(
        stale.is_empty() && in_tree.is_empty(),
        "man/ is out of date (stale: {stale:?}, no longer generated: {in_tree:?}); \
         run `ETHERTAP_UPDATE_MAN=1 cargo test --release --test man` and commit man/"
    );
    for (name, _) in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(dir.join(name))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .expect("this test needs `man` (package man-db)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "man -l {name}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let command = name.trim_end_matches(".1");
        assert!(
            text.contains("NAME") && text.contains(command.split('-').next().unwrap()),
            "{name} renders without its name:\n{text}"
        );
    }
}
