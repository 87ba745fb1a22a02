//! The lab builder itself: namespaces and veth pairs appear, and are gone after drop.

use ethertap::lab::BridgeLab;
use std::process::Command;

fn namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bridge_lab_is_built_and_removed() {
    let lab = BridgeLab::new("labtest").expect("lab (needs root and iproute2)");
    let listed = namespaces();
    for ns in [&lab.h1, &lab.br, &lab.h2] {
        assert!(listed.contains(ns.as_str()), "{ns} missing in {listed}");
    }
    let mac = lab.mac(&lab.br, "port0").unwrap();
    assert_eq!(mac.len(), 17, "{mac}");
    let names = [lab.h1.clone(), lab.br.clone(), lab.h2.clone()];
    drop(lab);
    let listed = namespaces();
    for ns in names {
        assert!(!listed.contains(ns.as_str()), "{ns} left behind");
    }
}
