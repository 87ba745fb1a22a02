//! Reading RPCL source files: `load`, `load-if-present`, `ethertap run` and `check` all read
//! through [`read_source`], so every file the language reads is a regular file of at most
//! [`MAX_SOURCE`] bytes, and nothing it opens can block (a FIFO without a writer, a device).

use super::limits::MAX_SOURCE;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a source file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading failed (no such file, permission …).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file: a FIFO, a device, a directory, a socket.
    #[error("not a regular file (it is {0})")]
    NotRegular(&'static str),
    /// Larger than [`MAX_SOURCE`]; the size found.
    #[error("{0} bytes is more than the limit of {MAX_SOURCE} bytes for a source file")]
    TooLarge(u64),
}

impl SourceError {
    /// The file does not exist (what `load-if-present` skips silently).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What kind of file that is not a regular one is, for the message.
fn kind_of(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

fn check(m: &Metadata) -> Result<(), SourceError> {
    if let Some(kind) = kind_of(m) {
        return Err(SourceError::NotRegular(kind));
    }
    if m.len() > MAX_SOURCE as u64 {
        return Err(SourceError::TooLarge(m.len()));
    }
    Ok(())
}

/// The text of a source file (invalid UTF-8 replaced). The path is looked at before it is
/// opened, so that a device is never opened at all; it is opened non-blocking and looked at
/// again (it may have been replaced in between), and read to at most [`MAX_SOURCE`] bytes
/// whatever its size claims (files in /proc say 0).
pub fn read_source(path: impl AsRef<Path>) -> Result<String, SourceError> {
    let path = path.as_ref();
    check(&std::fs::metadata(path)?)?;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    check(&file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_SOURCE {
        return Err(SourceError::TooLarge(bytes.len() as u64));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_large_files_are_refused() {
        let e = read_source("/dev/zero").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a regular file (it is a character device)"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_source(dir.path()),
            Err(SourceError::NotRegular("a directory"))
        ));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_source(&fifo),
            Err(SourceError::NotRegular("a FIFO"))
        ));
        let big = dir.path().join("big.rpcl");
        std::fs::write(&big, vec![b' '; MAX_SOURCE + 1]).unwrap();
        assert!(matches!(read_source(&big), Err(SourceError::TooLarge(_))));
        let ok = dir.path().join("ok.rpcl");
        std::fs::write(&ok, b"1 2 + .\n").unwrap();
        assert_eq!(read_source(&ok).unwrap(), "1 2 + .\n");
        let missing = read_source(dir.path().join("missing")).unwrap_err();
        assert!(missing.is_not_found());
    }
}
