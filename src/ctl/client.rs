//! The client side of the console socket: `ethertap run/eval/console/status/stop` and
//! `control ethertap` talk to the daemon through this.

use super::proto::{ProtoError, Reply, Request};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a request ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to the end.
    Done,
    /// The formatted error line (RPCL error, or the daemon's refusal of a bad request).
    Failed(String),
    /// An interactive session was refused (someone else holds it).
    Refused(String),
    /// The console line ended with `bye`.
    Bye,
}

/// A connection to the daemon's console socket.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the daemon; `Ok(None)` when none is running (no socket, or a stale one).
    pub fn connect(path: &Path) -> io::Result<Option<Client>> {
        match UnixStream::connect(path) {
            Ok(stream) => Ok(Some(Client { stream })),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Send one request and stream its replies: output to `out`, notices to `notices`.
    /// While waiting, a set `interrupt` flag is forwarded to the daemon once (Ctrl-C).
    pub fn call(
        &mut self,
        req: &Request,
        out: &mut dyn Write,
        notices: &mut dyn Write,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, ProtoError> {
        req.write_to(&mut &self.stream)?;
        loop {
            if interrupt.swap(false, Ordering::SeqCst) {
                Request::Interrupt.write_to(&mut &self.stream)?;
            }
            if !self.readable_within(100)? {
                continue;
            }
            match Reply::read_from(&mut &self.stream)? {
                Reply::Output(bytes) => {
                    out.write_all(&bytes)
                        .and_then(|()| out.flush())
                        .map_err(ProtoError::Output)?;
                }
                Reply::Notice(msg) => {
                    let _ = writeln!(notices, "{msg}");
                }
                Reply::Words(_) => {}
                Reply::Done => return Ok(Outcome::Done),
                Reply::Failed(msg) => return Ok(Outcome::Failed(msg)),
                Reply::Refused(msg) => return Ok(Outcome::Refused(msg)),
                Reply::Bye => return Ok(Outcome::Bye),
            }
        }
    }

    /// Every word name of the daemon's VM (Tab completion).
    pub fn words(&mut self) -> Result<Vec<String>, ProtoError> {
        Request::Words.write_to(&mut &self.stream)?;
        loop {
            match Reply::read_from(&mut &self.stream)? {
                Reply::Words(names) => return Ok(names),
                Reply::Failed(msg) => return Err(ProtoError::Io(io::Error::other(msg))),
                _ => continue,
            }
        }
    }

    /// Tell the daemon whether this client's output is a terminal.
    pub fn set_color(&mut self, on: bool) -> Result<(), ProtoError> {
        Ok(Request::Color(on).write_to(&mut &self.stream)?)
    }

    /// Tell the daemon how wide this client's terminal is (`None`: output is no terminal).
    pub fn set_width(&mut self, cols: Option<usize>) -> Result<(), ProtoError> {
        let cols = cols.map_or(0, |c| c.min(u16::MAX as usize) as u16);
        Ok(Request::Width(cols).write_to(&mut &self.stream)?)
    }

    /// Ask the daemon to refuse this client's texts that have warnings (`--strict`).
    pub fn set_strict(&mut self, on: bool) -> Result<(), ProtoError> {
        Ok(Request::Strict(on).write_to(&mut &self.stream)?)
    }

    fn readable_within(&self, ms: u16) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
