//! Pid files of background processes (`/run/collect.pid`, `/run/ethertap.pid`, ...) and the
//! `control ID status|stop` logic built on them.
//!
//! A pid file proves who it names: its process holds an exclusive `flock` on it for as long as
//! it lives (the kernel drops the lock when the process ends, however it ends). A file whose
//! lock nobody holds is stale whatever pid it names, even a live one: the pid may have been
//! reused by an unrelated process, which is then never reported as running nor signalled.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys::is_alive;

/// Directory of runtime files: `/run`, or `$ETHERTAP_RUN_DIR` (tests point it elsewhere).
pub fn run_dir() -> PathBuf {
    std::env::var_os("ETHERTAP_RUN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run"))
}

/// The program name and pid file of a control id: `ethertap`, `collect`, or the `--id` of
/// a background `collect` (`/run/collect.ID.pid`).
pub fn target(id: &str) -> Result<(&'static str, PathBuf), PidFileError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(PidFileError::BadId(id.to_string()));
    }
    Ok(match id {
        "ethertap" => ("ethertap", run_dir().join("ethertap.pid")),
        "collect" => ("collect", run_dir().join("collect.pid")),
        other => ("collect", run_dir().join(format!("collect.{other}.pid"))),
    })
}

/// Opens a pid file for reading: not through a link, never blocking (a FIFO planted there
/// must not hang us), and only a regular file of at most a line.
fn open_pid_file(path: &Path) -> io::Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a pid file", path.display()),
        ));
    }
    Ok(Some(file))
}

fn parse_pid(path: &Path, file: &mut File) -> io::Result<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    text.trim().parse::<i32>().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: does not hold a pid: {:?}", path.display(), text.trim()),
        )
    })
}

/// The pid recorded in a pid file, proven or not; `Ok(None)` when there is no file.
pub fn read_pid(path: &Path) -> io::Result<Option<i32>> {
    match open_pid_file(path)? {
        Some(mut f) => parse_pid(path, &mut f).map(Some),
        None => Ok(None),
    }
}

/// The live process a pid file names, if its lock proves it (see the module comment); a
/// stale, unlocked or garbled file names none.
pub fn running_pid(path: &Path) -> Option<i32> {
    let mut file = open_pid_file(path).ok().flatten()?;
    let pid = parse_pid(path, &mut file).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We got the lock: nobody holds it, the file is stale.
        Ok(_unlocked_on_drop) => None,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => is_alive(pid).then_some(pid),
        Err(_) => None,
    }
}

/// Why a pid file could not be named or created.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// An `--id` or `control ID` that is not a plain name.
    #[error("invalid id {0:?}: use a plain name without '/'")]
    BadId(String),
    /// A live process holds the pid file.
    #[error("{program} is already running as PID {pid} (pid file {})", path.display())]
    Running {
        /// The program the pid file is for.
        program: String,
        /// The live holder.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// Something else keeps creating the file while we replace a stale one.
    #[error("{}: another process keeps creating it; is {program} starting twice?", path.display())]
    Contended {
        /// The program the pid file is for.
        program: String,
        /// The pid file.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// A pid file owned by this process, locked while it lives; removed on drop (only while it
/// still names us).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: i32,
    /// The open file whose lock proves the pid file (see the module comment).
    _lock: Flock<File>,
}

impl PidFile {
    /// Record this process in `path`. Refuses when a live process holds it; a stale file
    /// (its process gone) is taken over. `program` names the process in messages.
    pub fn create(path: &Path, program: &str) -> Result<PidFile, PidFileError> {
        let pid = std::process::id() as i32;
        // Written in full under a temporary name, then linked into place: a competitor never
        // reads a pid file that is still empty, and the link fails if one exists.
        let tmp = path.with_file_name(format!(
            ".{}.{pid}.tmp",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        // Locked before it is linked into place: nobody sees the file unlocked. The link is
        // the same inode, so the lock holds for the pid file's name too.
        let write_tmp = || -> io::Result<Flock<File>> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(format!("{pid}\n").as_bytes())?;
            Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e.into())
        };
        let mut lock = Some(write_tmp().map_err(|source| PidFileError::Io {
            path: tmp.clone(),
            source,
        })?);
        let result = (|| {
            for _ in 0..3 {
                match std::fs::hard_link(&tmp, path) {
                    Ok(()) => {
                        return Ok(PidFile {
                            path: path.to_path_buf(),
                            pid,
                            _lock: lock.take().expect("taken once, on success"),
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if let Some(other) = running_pid(path) {
                            if other != pid {
                                return Err(PidFileError::Running {
                                    program: program.to_string(),
                                    pid: other,
                                    path: path.to_path_buf(),
                                });
                            }
                        }
                        // Stale (its process is gone), garbled, or naming us: take it over.
                        let _ = std::fs::remove_file(path);
                    }
                    Err(source) => {
                        return Err(PidFileError::Io {
                            path: path.to_path_buf(),
                            source,
                        })
                    }
                }
            }
            Err(PidFileError::Contended {
                program: program.to_string(),
                path: path.to_path_buf(),
            })
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// Where the pid file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path).ok().flatten() == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Outcome of `control ID status|stop`: the message to print and the exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct ControlReply {
    /// The line to print (stdout on success, stderr otherwise).
    pub message: String,
    /// The exit status: 0, 1, or [`NOT_RUNNING`].
    pub code: i32,
}

/// Exit status of `status` for a process that is not running (LSB init-script convention).
pub const NOT_RUNNING: i32 = 3;

fn not_running(program: &str, path: &Path) -> ControlReply {
    let message = match read_pid(path) {
        Ok(None) => format!("{program} is not running (no {})", path.display()),
        Ok(Some(pid)) => format!(
            "{program} is not running (stale pid file {} names PID {pid})",
            path.display()
        ),
        Err(e) => format!("{program} is not running ({e})"),
    };
    ControlReply {
        message,
        code: NOT_RUNNING,
    }
}

/// `control ID status`: `collect PID 22880 running`, exit 0; otherwise a not-running
/// message and exit 3.
pub fn control_status(program: &str, path: &Path) -> ControlReply {
    match running_pid(path) {
        Some(pid) => ControlReply {
            message: format!("{program} PID {pid} running"),
            code: 0,
        },
        None => not_running(program, path),
    }
}

/// `control ID stop`: SIGTERM, then wait up to `timeout` for the process to exit:
/// `shutdown of collect PID 22880 complete`, exit 0. Not running: exit 3. Still alive
/// after the timeout: exit 1.
pub fn control_stop(program: &str, path: &Path, timeout: Duration) -> ControlReply {
    let Some(pid) = running_pid(path) else {
        return not_running(program, path);
    };
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return ControlReply {
            message: format!(
                "cannot stop {program} PID {pid}: {}",
                io::Error::last_os_error()
            ),
            code: 1,
        };
    }
    let start = Instant::now();
    while is_alive(pid) {
        if start.elapsed() > timeout {
            return ControlReply {
                message: format!(
                    "{program} PID {pid} did not exit within {} s after SIGTERM",
                    timeout.as_secs()
                ),
                code: 1,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ControlReply {
        message: format!("shutdown of {program} PID {pid} complete"),
        code: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pidfile-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn create_refuses_a_live_holder_and_takes_over_a_stale_one() {
        let dir = scratch("live");
        let path = dir.join("x.pid");
        // A live holder: a child that keeps the lock as a background process does.
        let (mut holder, pid) = locked_by_child(&path);
        let err = PidFile::create(&path, "collect").unwrap_err();
        assert!(err.to_string().contains(&format!("PID {pid}")), "{err}");
        holder.kill().unwrap();
        holder.wait().unwrap();
        // A live process that holds no lock on it: our parent. Stale, taken over.
        std::fs::remove_file(&path).ok();
        let parent = nix::unistd::getppid().as_raw();
        std::fs::write(&path, format!("{parent}\n")).unwrap();
        assert_eq!(
            running_pid(&path),
            None,
            "an unlocked pid file proves nothing"
        );
        let pf = PidFile::create(&path, "collect").unwrap();
        assert_eq!(read_pid(&path).unwrap(), Some(std::process::id() as i32));
        assert_eq!(running_pid(&path), Some(std::process::id() as i32));
        drop(pf);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pid_file_naming_an_unrelated_process_is_neither_running_nor_killed() {
        let dir = scratch("unrelated");
        let path = dir.join("collect.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        assert_eq!(control_status("collect", &path).code, NOT_RUNNING);
        let r = control_stop("collect", &path, Duration::from_secs(1));
        assert_eq!(r.code, NOT_RUNNING, "{}", r.message);
        assert!(r.message.contains("stale pid file"), "{}", r.message);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the unrelated process lives"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_and_stop_of_missing_and_stale_processes() {
        let dir = scratch("status");
        let path = dir.join("collect.pid");
        let r = control_status("collect", &path);
        assert_eq!(r.code, NOT_RUNNING);
        assert!(
            r.message.starts_with("collect is not running (no "),
            "{}",
            r.message
        );
        std::fs::write(&path, "2147483000\n").unwrap();
        let r = control_stop("collect", &path, Duration::from_secs(1));
        assert_eq!(r.code, NOT_RUNNING);
        assert!(r.message.contains("stale pid file"), "{}", r.message);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A child holding the lock of the pid file at `path` that names it, as a background
    /// process does: flock(1) keeps it while its command runs (-o: the command itself does
    /// not hold it).
    fn locked_by_child(path: &Path) -> (std::process::Child, i32) {
        std::fs::write(path, "0\n").unwrap();
        let child = std::process::Command::new("flock")
            .args(["-o", "-x"])
            .arg(path)
            .args(["sleep", "30"])
            .spawn()
            .expect("flock(1), package util-linux");
        let pid = child.id() as i32;
        std::fs::write(path, format!("{pid}\n")).unwrap();
        while running_pid(path).is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        (child, pid)
    }

    #[test]
    fn stop_terminates_and_waits() {
        let dir = scratch("stop");
        let path = dir.join("collect.pid");
        let (mut child, pid) = locked_by_child(&path);
        assert_eq!(
            control_status("collect", &path).message,
            format!("collect PID {pid} running")
        );
        // Reap the child concurrently so it does not linger as a zombie.
        let reaper = std::thread::spawn(move || child.wait());
        let r = control_stop("collect", &path, Duration::from_secs(5));
        assert_eq!(r.message, format!("shutdown of collect PID {pid} complete"));
        assert_eq!(r.code, 0);
        reaper.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_map_to_pid_files() {
        let (prog, path) = target("night").unwrap();
        assert_eq!(prog, "collect");
        assert!(path.ends_with("collect.night.pid"));
        assert!(target("../x").is_err());
    }
}
