//! Readiness for systemd (`Type=notify`): when `NOTIFY_SOCKET` names a socket, datagrams like
//! `READY=1` go there (sd_notify(3); the protocol is one datagram of `KEY=VALUE` lines to a
//! unix socket, a leading `@` meaning the abstract namespace). Without it nothing happens.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (`KEY=VALUE` lines) to the service manager; `Ok(false)` when none listens.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(&path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// `READY=1` with our pid and a status line: the socket listens and the ports are bridged.
pub fn ready(status: &str) {
    let state = format!(
        "READY=1\nMAINPID={}\nSTATUS={}\n",
        std::process::id(),
        status.replace('\n', " ")
    );
    if let Err(e) = notify(&state) {
        crate::log::warn(&format!(
            "cannot tell the service manager we are ready: {e}"
        ));
    }
}

/// `STOPPING=1`: the engine is shutting down.
pub fn stopping() {
    let _ = notify("STOPPING=1\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_notify_socket_nothing_is_sent() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!notify("READY=1\n").unwrap());
        }
    }
}
