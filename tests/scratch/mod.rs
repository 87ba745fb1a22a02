//! A uniquely named packet queue and scratch directory for one test, removed when the test
//! ends; child processes still running then are killed (by pid). Shared by the queue and
//! collect tests, which add their own helpers in `impl Lab` blocks.

#![allow(dead_code)]

#[path = "../collectwait/mod.rs"]
mod collectwait;
#[allow(unused_imports)]
pub use collectwait::wait_collect_ready;

use ethertap::pqueue::queue_path;
use std::path::PathBuf;
use std::process::Child;

pub struct Lab {
    pub queue: String,
    pub dir: PathBuf,
    pub children: Vec<Child>,
}

impl Lab {
    /// Queue `pqtest.<test>.<pid>`, directory of the same name in the temp dir, both fresh.
    pub fn new(test: &str) -> Lab {
        let queue = format!("pqtest.{test}.{}", std::process::id());
        let dir = std::env::temp_dir().join(&queue);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(queue_path(&queue));
        Lab {
            queue,
            dir,
            children: vec![],
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_file(queue_path(&self.queue));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
