//! Waiting for a `collect` the test started to be ready: shared by the lab and scratch test
//! helpers.

use ethertap::pqueue::queue_path;
use std::time::{Duration, Instant};

/// Waits until `collect` (process `pid`) has mapped queue `queue` and sleeps waiting for
/// frames. It resets the queue (without `-n`) after attaching and before its first wait, so
/// frames pushed from then on are its own. Process start-up has no bound on a loaded machine
/// that a fixed pause could know.
pub fn wait_collect_ready(pid: u32, queue: &str) {
    let path = queue_path(queue);
    let path = path.to_string_lossy();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if maps.contains(path.as_ref()) && state == Some("S") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "collect {pid} did not start waiting on queue {queue}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
