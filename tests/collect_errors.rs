//! collect and bad outputs (issue classes 10 and 11 of the hardening list, docs/reliability.md):
//! a closed stdout, an output that cannot be opened and a full disk are errors that name the
//! output, exit 1 and lose nothing that is still in the queue; no file ends with a partial
//! record; numeric options are range-checked.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod scratch;
use scratch::Lab;

use ethertap::pqueue::{testgen, Direction, Layout, Producer, Queue};

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");

fn fill(lab: &Lab, n: u64, size: usize) -> Producer {
    let p = Producer::open(
        &lab.queue,
        Layout {
            slots: 8192,
            ..Layout::default()
        },
    )
    .unwrap();
    for seq in 0..n {
        let mut f = testgen::frame(size, 1);
        testgen::set_seq(&mut f, seq);
        assert!(p.push(&f, 0, Direction::Rx, 0), "room for {n} frames");
    }
    p
}

fn waiting(lab: &Lab) -> u64 {
    Queue::attach(&lab.queue)
        .unwrap()
        .status()
        .unwrap()
        .waiting()
}

#[test]
fn a_closed_stdout_is_an_error_and_takes_no_frame() {
    let lab = Lab::new("err-stdout");
    let _p = fill(&lab, 100, 100);
    let mut cmd = Command::new(COLLECT);
    cmd.args(["-q", &lab.queue, "-s", "-n", "-p", "100", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only close(2) between fork and exec: `collect ... >&-`.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stdout") && err.contains("closed"), "{err}");
    assert_eq!(waiting(&lab), 100, "every frame still waits for a consumer");
}

#[test]
fn an_output_that_cannot_be_opened_fails_at_start_and_keeps_the_queue() {
    let lab = Lab::new("err-open");
    let _p = fill(&lab, 50, 100);
    let bad = lab.dir.join("no/such/dir/cap.pcap");
    let out = Command::new(COLLECT)
        .args(["-q", &lab.queue, "-s", "-p", "10"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(bad.to_str().unwrap()), "names the file: {err}");
    // Without -n collect resets the queue at start; it must not when it cannot write.
    assert_eq!(waiting(&lab), 50);
}

/// A tmpfs of a few pages, mounted for one test and unmounted when it ends.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(lab: &Lab, bytes: u64) -> SmallDisk {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a small tmpfs to fill it and needs root"
        );
        let dir = lab.dir.join("disk");
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount (util-linux)");
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_exits_1_naming_the_file_and_leaves_only_whole_records() {
    let lab = Lab::new("err-full");
    let _p = fill(&lab, 4000, 1400);
    let disk = SmallDisk::mount(&lab, 1 << 20);
    for format in ["cap.pcap", "cap.pcapng"] {
        let file = disk.0.join(format);
        let started = Instant::now();
        let out = Command::new(COLLECT)
            .args(["-q", &lab.queue, "-s", "-n", "-p", "1500"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {err}");
        assert!(
            err.contains(file.to_str().unwrap()) && err.contains("No space left"),
            "{format}: {err}"
        );
        // Readers see a file that ends on a record boundary.
        let r = Command::new("capinfos")
            .arg("-c")
            .arg(&file)
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&r.stdout).into_owned() + &String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{format}: {text}");
        assert!(
            !text.contains("cut short") && !text.contains("appears to be damaged"),
            "{format}: {text}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn numeric_options_out_of_range_are_usage_errors_that_name_the_value() {
    for (opt, value) in [
        ("-C", "18446744073710"),
        ("-C", "0"),
        ("-G", "0"),
        ("-W", "0"),
        ("--snaplen", "0"),
        ("--snaplen", "262145"),
        ("-p", "-1"),
    ] {
        let out = Command::new(COLLECT)
            .args([opt, value, "/tmp/never-written.pcap"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opt} {value}: {err}");
        assert!(err.contains(value), "{opt} {value}: {err}");
    }
}
