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
