//! The wire format between `ethertap run` / `control ethertap` and the daemon.
//!
//! Every message is a frame: one tag byte, a 4-byte big-endian length, the payload. Frames
//! keep the stream self-delimiting so that output can be streamed while a script runs and an
//! interrupt can arrive at any time; the length limit lets the daemon refuse a huge or garbage
//! request with a clear error instead of buffering it.

use std::io::{self, Read, Write};

/// The largest payload either side accepts (a script, or one chunk of output).
pub const MAX_FRAME: usize = 4 << 20;

/// Requests, from a client to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Run a script: file name (for error positions), source, arguments.
    Run {
        /// The script's file name.
        file: String,
        /// Its text.
        source: String,
        /// Its arguments (`argc`, `arg`).
        args: Vec<String>,
    },
    /// Run one line (`ethertap eval`).
    Eval(String),
    /// Open the interactive session (one at a time).
    OpenSession,
    /// One console line of the open session.
    Line(String),
    /// The names of every word, for Tab completion.
    Words,
    /// Interrupt whatever this client is running (Ctrl-C).
    Interrupt,
    /// Daemon status: pid, uptime, interfaces, mode, queue.
    Status,
    /// Shut the daemon down cleanly.
    Stop,
    /// Whether the client's own output is a terminal (colours, underlining).
    Color(bool),
    /// The columns of the client's terminal, 0 when its output is none: `.i` and `.d` wrap
    /// to it.
    Width(u16),
    /// Refuse to run this client's scripts and lines that have warnings (`--strict`).
    Strict(bool),
    /// A report as JSON (`ethertap stats --json`, `ethertap status --json`).
    Json(JsonReport),
    /// The last lines of the daemon's log (`ethertap log`), at most this many.
    Log(u32),
}

/// The JSON reports the daemon answers without the VM (docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonReport {
    /// Counters of every interface and the packet queue.
    Stats,
    /// Pid, uptime, mode, interfaces, queue.
    Status,
}

/// Replies, from the daemon to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Output printed by the running words, streamed as it is produced.
    Output(Vec<u8>),
    /// The request finished without error.
    Done,
    /// The request stopped on an error (a formatted RPCL error line, or a protocol error).
    Failed(String),
    /// A one-line notice for the user's terminal (waiting, refusal, timeout).
    Notice(String),
    /// Word names, for completion.
    Words(Vec<String>),
    /// The session was refused, with the reason.
    Refused(String),
    /// The line ended with `bye`: the session is over.
    Bye,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The peer closed the connection between messages.
    #[error("connection closed")]
    Closed,
    /// A length above [`MAX_FRAME`].
    #[error("message of {0} bytes is larger than the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    /// A tag byte no message has.
    #[error("unknown message type 0x{0:02x}")]
    UnknownTag(u8),
    /// A payload that does not decode as its message.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// The connection failed (or ended inside a message).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Writing the received output where it should go failed (e.g. `| head` closed early);
    /// not a fault of the connection.
    #[error("writing the output: {0}")]
    Output(io::Error),
}

fn write_frame(w: &mut dyn Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    // Refused here, before anything is sent, so that the sender gets the reason instead of
    // a broken pipe when the other side rejects it.
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            ProtoError::TooLarge(payload.len()).to_string(),
        ));
    }
    let mut head = [0u8; 5];
    head[0] = tag;
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.flush()
}

fn read_frame(r: &mut dyn Read) -> Result<(u8, Vec<u8>), ProtoError> {
    read_frame_with(r, &mut |_| Ok(()))
}

/// Reads one frame; `reserve` is told the payload's length after the header and before the
/// payload is allocated, so that a server can bound what all its clients queue.
fn read_frame_with(
    r: &mut dyn Read,
    reserve: &mut dyn FnMut(usize) -> Result<(), ProtoError>,
) -> Result<(u8, Vec<u8>), ProtoError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ProtoError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge(len));
    }
    reserve(len)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ProtoError::Closed,
        _ => ProtoError::Io(e),
    })?;
    Ok((head[0], payload))
}

/// Fields inside one payload are separated by NUL, which no RPCL text can contain usefully.
fn join(fields: &[&str]) -> Vec<u8> {
    fields.join("\0").into_bytes()
}

fn text(payload: Vec<u8>) -> Result<String, ProtoError> {
    String::from_utf8(payload).map_err(|_| ProtoError::Malformed("text is not UTF-8"))
}

impl Request {
    /// Writes the message as one frame.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        match self {
            Request::Run { file, source, args } => {
                let mut fields = vec![file.as_str(), source.as_str()];
                fields.extend(args.iter().map(String::as_str));
                write_frame(w, b'R', &join(&fields))
            }
            Request::Eval(line) => write_frame(w, b'E', line.as_bytes()),
            Request::OpenSession => write_frame(w, b'S', b""),
            Request::Line(line) => write_frame(w, b'L', line.as_bytes()),
            Request::Words => write_frame(w, b'W', b""),
            Request::Interrupt => write_frame(w, b'I', b""),
            Request::Status => write_frame(w, b'T', b""),
            Request::Stop => write_frame(w, b'Q', b""),
            Request::Color(on) => write_frame(w, b'C', if *on { b"1" } else { b"0" }),
            Request::Width(cols) => write_frame(w, b'Z', &cols.to_be_bytes()),
            Request::Strict(on) => write_frame(w, b'X', if *on { b"1" } else { b"0" }),
            Request::Json(JsonReport::Stats) => write_frame(w, b'J', b"stats"),
            Request::Json(JsonReport::Status) => write_frame(w, b'J', b"status"),
            Request::Log(n) => write_frame(w, b'G', &n.to_be_bytes()),
        }
    }

    /// Reads one message; any bytes give a message or an error, never a panic.
    pub fn read_from(r: &mut dyn Read) -> Result<Request, ProtoError> {
        Self::read_reserving(r, &mut |_| Ok(()))
    }

    /// [`Request::read_from`], calling `reserve` with the payload's length before the
    /// payload is read (see `read_frame_with`).
    pub fn read_reserving(
        r: &mut dyn Read,
        reserve: &mut dyn FnMut(usize) -> Result<(), ProtoError>,
    ) -> Result<Request, ProtoError> {
        let (tag, payload) = read_frame_with(r, reserve)?;
        Ok(match tag {
            b'R' => {
                let all = text(payload)?;
                let mut fields = all.split('\0').map(str::to_string);
                let file = fields
                    .next()
                    .ok_or(ProtoError::Malformed("run without a file"))?;
                let source = fields
                    .next()
                    .ok_or(ProtoError::Malformed("run without a script"))?;
                Request::Run {
                    file,
                    source,
                    args: fields.collect(),
                }
            }
            b'E' => Request::Eval(text(payload)?),
            b'S' => Request::OpenSession,
            b'L' => Request::Line(text(payload)?),
            b'W' => Request::Words,
            b'I' => Request::Interrupt,
            b'T' => Request::Status,
            b'Q' => Request::Stop,
            b'C' => Request::Color(payload == b"1"),
            b'Z' => match payload[..] {
                [hi, lo] => Request::Width(u16::from_be_bytes([hi, lo])),
                _ => return Err(ProtoError::Malformed("a width is two bytes")),
            },
            b'X' => Request::Strict(payload == b"1"),
            b'J' => match payload.as_slice() {
                b"stats" => Request::Json(JsonReport::Stats),
                b"status" => Request::Json(JsonReport::Status),
                _ => return Err(ProtoError::Malformed("unknown report")),
            },
            b'G' => Request::Log(u32::from_be_bytes(
                payload
                    .try_into()
                    .map_err(|_| ProtoError::Malformed("log request without a count"))?,
            )),
            other => return Err(ProtoError::UnknownTag(other)),
        })
    }
}

impl Reply {
    /// Writes the message as one frame.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        match self {
            Reply::Output(bytes) => write_frame(w, b'o', bytes),
            Reply::Done => write_frame(w, b'd', b""),
            Reply::Failed(msg) => write_frame(w, b'f', msg.as_bytes()),
            Reply::Notice(msg) => write_frame(w, b'n', msg.as_bytes()),
            Reply::Words(names) => write_frame(w, b'w', names.join("\n").as_bytes()),
            Reply::Refused(msg) => write_frame(w, b'r', msg.as_bytes()),
            Reply::Bye => write_frame(w, b'b', b""),
        }
    }

    /// Reads one message; any bytes give a message or an error, never a panic.
    pub fn read_from(r: &mut dyn Read) -> Result<Reply, ProtoError> {
        let (tag, payload) = read_frame(r)?;
        Ok(match tag {
            b'o' => Reply::Output(payload),
            b'd' => Reply::Done,
            b'f' => Reply::Failed(text(payload)?),
            b'n' => Reply::Notice(text(payload)?),
            b'w' => Reply::Words(
                text(payload)?
                    .split('\n')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            b'r' => Reply::Refused(text(payload)?),
            b'b' => Reply::Bye,
            other => return Err(ProtoError::UnknownTag(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_request_is_refused_before_anything_is_sent() {
        let mut wire = Vec::new();
        let err = Request::Eval("x".repeat(MAX_FRAME + 1))
            .write_to(&mut wire)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("larger than the limit"), "{err}");
        assert!(wire.is_empty());
    }

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Run {
                file: "a.rpcl".into(),
                source: "1 2 + .\n".into(),
                args: vec!["x".into(), "".into()],
            },
            Request::Eval("1 .".into()),
            Request::OpenSession,
            Request::Line("".into()),
            Request::Words,
            Request::Interrupt,
            Request::Status,
            Request::Stop,
            Request::Color(true),
            Request::Width(80),
            Request::Strict(true),
            Request::Json(JsonReport::Stats),
            Request::Json(JsonReport::Status),
            Request::Log(25),
        ];
        for req in all {
            let mut buf = Vec::new();
            req.write_to(&mut buf).unwrap();
            assert_eq!(Request::read_from(&mut buf.as_slice()).unwrap(), req);
        }
    }

    #[test]
    fn replies_round_trip() {
        let all = [
            Reply::Output(b"x\n".to_vec()),
            Reply::Done,
            Reply::Failed("error: +: stack underflow".into()),
            Reply::Notice("waiting".into()),
            Reply::Words(vec!["dup".into(), "if.stats".into()]),
            Reply::Refused("held".into()),
            Reply::Bye,
        ];
        for rep in all {
            let mut buf = Vec::new();
            rep.write_to(&mut buf).unwrap();
            assert_eq!(Reply::read_from(&mut buf.as_slice()).unwrap(), rep);
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let mut junk: &[u8] = b"\xffgarbage";
        assert!(matches!(
            Request::read_from(&mut junk),
            Err(ProtoError::TooLarge(_)) | Err(ProtoError::UnknownTag(_))
        ));
        let mut huge = vec![b'E'];
        huge.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(matches!(
            Request::read_from(&mut huge.as_slice()),
            Err(ProtoError::TooLarge(_))
        ));
        let mut short: &[u8] = b"E\0\0\0\x05ab";
        assert!(matches!(
            Request::read_from(&mut short),
            Err(ProtoError::Closed)
        ));
    }
}
