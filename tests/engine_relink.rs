//! An interface deleted under the running engine (issue 16, item 9): the engine notices it
//! (log, `if.stats` header), and bridges it again once an interface of that name is back and
//! up (needs root).

mod lab;

use lab::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

/// Creates the h2 side again as the lab had it: `p1` in br, `e1` in h2 with its MAC, address
/// and a static neighbour entry for h1, both up.
fn recreate_p1(lab: &Lab) {
    lab.ip(
        &lab.br,
        &[
            "link",
            "add",
            "p1",
            "address",
            &mac_text(P1_MAC),
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            "e1",
            "netns",
            &lab.h2,
            "address",
            &mac_text(E1_MAC),
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
        ],
    );
    lab.ip(&lab.br, &["link", "set", "p1", "up"]);
    lab.ip(
        &lab.h2,
        &["addr", "add", &format!("{H2_IP}/24"), "dev", "e1"],
    );
    lab.ip(&lab.h2, &["link", "set", "e1", "up"]);
    lab.ip(
        &lab.h2,
        &[
            "neigh",
            "replace",
            H1_IP,
            "lladdr",
            &mac_text(E0_MAC),
            "dev",
            "e1",
            "nud",
            "permanent",
        ],
    );
    lab.sh(&lab.h2, "ethtool -K e1 tx off");
}

#[test]
fn a_deleted_interface_is_reported_and_bridged_again_when_it_is_back() {
    let lab = Lab::bridge("relink");
    let mut eng = lab.start_engine("relink");
    let engine = eng.engine.take().expect("the engine");
    let stop = AtomicBool::new(false);
    /// Ends the watch however the test body ends (a failed assertion too).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // The control thread's watch, as every front end runs it.
        // In the bridge namespace, where the engine looks its interfaces up.
        let watcher = s.spawn(|| {
            let ns = std::fs::File::open(format!("/run/netns/{}", lab.br)).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            engine.run_until(|| stop.load(Ordering::Relaxed))
        });
        let s0 = lab.packet_socket(&lab.h1, "e0");
        let before: Vec<Vec<u8>> = (0..50)
            .map(|i| frame(E1_MAC, E0_MAC, &[], i, 200))
            .collect();
        let s1 = lab.packet_socket(&lab.h2, "e1");
        s0.send_all(&before);
        assert_eq!(s1.collect(before.len(), QUIET).len(), before.len());
        drop(s1);

        lab.ip(&lab.br, &["link", "del", "p1"]);
        let header = |eng: &mut LabEngine| {
            eng.ok("if.stats")
                .lines()
                .find(|l| l.starts_with("1 "))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            wait_for(Duration::from_secs(5), || header(&mut eng)
                .ends_with(" GONE")),
            "if.stats says p1 is gone: {}",
            header(&mut eng)
        );
        // Frames for the missing port are counted, not lost silently.
        s0.send_all(&before);
        // Polled, not paused for: the worker may take longer than any pause on a loaded machine.
        wait_for(Duration::from_secs(5), || eng.stat(0, "rx") == 100);
        assert_eq!(eng.stat(0, "rx"), 100);

        recreate_p1(&lab);
        assert!(
            wait_for(Duration::from_secs(5), || !header(&mut eng)
                .contains("GONE")),
            "p1 is bridged again: {}",
            header(&mut eng)
        );
        let s1 = lab.packet_socket(&lab.h2, "e1");
        let after: Vec<Vec<u8>> = (0..200)
            .map(|i| frame(E1_MAC, E0_MAC, &[], 1000 + i, 300))
            .collect();
        s0.send_all(&after);
        assert_frames(
            &s1.collect(after.len(), QUIET),
            &after,
            "h1 -> new p1 -> h2",
        );
        let back: Vec<Vec<u8>> = (0..200)
            .map(|i| frame(E0_MAC, E1_MAC, &[], 2000 + i, 300))
            .collect();
        s1.send_all(&back);
        assert_frames(&s0.collect(back.len(), QUIET), &back, "h2 -> new p1 -> h1");
        let ping = lab.sh(&lab.h1, &format!("ping -c 3 -i 0.05 -W 2 {H2_IP}"));
        assert!(ping.contains("3 received"), "{ping}");
        assert!(eng.stat(1, "tx") >= 250, "the counters carried on");
        // A second time, to be sure nothing was used up.
        lab.ip(&lab.br, &["link", "del", "p1"]);
        assert!(wait_for(Duration::from_secs(5), || header(&mut eng)
            .ends_with(" GONE")));
        recreate_p1(&lab);
        assert!(wait_for(Duration::from_secs(5), || !header(&mut eng)
            .contains("GONE")));
        let s1 = lab.packet_socket(&lab.h2, "e1");
        s0.send_all(&after);
        assert_eq!(
            s1.collect(after.len(), QUIET).len(),
            after.len(),
            "and again"
        );
        drop(_stop);
        watcher.join().unwrap();
    });
    engine.stop();
    assert!(
        !lab.sh(&lab.br, "ip link show p1").contains("xdp"),
        "the new p1 is left without a program"
    );
}
