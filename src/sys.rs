//! Small facts about the operating system that several layers need (the queue, the control
//! plane): a leaf module, so that the queue does not depend on the control plane for them.

use std::io;

/// True when a process with this pid exists (a zombie counts as gone).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    // A killed multi-threaded process shows its main thread as a zombie while the other
    // threads are still being torn down, holding its files (sockets, XDP links): it is gone
    // only when every thread is.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return task_alive(&format!("/proc/{pid}/stat"));
    };
    let mut any = false;
    for task in tasks.flatten() {
        any = true;
        if task_alive(&task.path().join("stat").to_string_lossy()) {
            return true;
        }
    }
    // An empty task list: the process is already being reaped.
    !any && task_alive(&format!("/proc/{pid}/stat"))
}

/// Whether the task whose `stat` file is at `path` is neither a zombie nor dead.
fn task_alive(path: &str) -> bool {
    match std::fs::read_to_string(path) {
        // State is the field after the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        // Vanished between the two reads: gone.
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`):
/// together with the pid it names one process, even after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is alive and is the process that started at `start` (as [`start_time`]
/// reported it); a `start` of 0 accepts any live process with that pid.
pub fn is_same_process(pid: i32, start: u64) -> bool {
    is_alive(pid) && (start == 0 || start_time(pid) == Some(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_stable_start_time() {
        let me = std::process::id() as i32;
        assert!(is_alive(me));
        let t = start_time(me).expect("our own /proc entry");
        assert!(t > 0);
        assert_eq!(start_time(me), Some(t));
        assert!(is_same_process(me, t));
        assert!(
            !is_same_process(me, t + 1),
            "another start time is another process"
        );
        assert!(!is_alive(0) && !is_alive(-1));
    }
}
