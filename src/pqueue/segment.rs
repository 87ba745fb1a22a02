//! The shared-memory segment: its on-disk layout, creation, validation and mapping.
//!
//! Layout (all little-endian, native on the only target, x86_64 / aarch64 Linux):
//! ```text
//! 0      Header (HEADER_SIZE bytes, counters on their own cache lines, the semaphore)
//! 4096   slot 0: SlotMeta (32 bytes: seq, ts_ns, orig_len, cap_len, ifindex, dir) + frame bytes
//!        slot 1 ... (stride = SLOT_META + slot_size rounded up to 64)
//! ```
//! A segment only becomes visible under its name once it is complete: it is built in a
//! temporary file and then `link`ed (first creator wins) or `rename`d (a producer
//! re-initialising) into place, so nobody can map a half-initialised queue.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::{Error, Layout};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"IXDPPQUE");
pub const LAYOUT_VERSION: u32 = 1;
pub(crate) const HEADER_SIZE: usize = 4096;
pub(crate) const SLOT_META: usize = 32;

/// The file behind queue `name`.
pub fn queue_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

#[repr(C, align(64))]
pub(crate) struct Line<T>(pub T);

/// The first page of the segment. Fields that change per packet each own a cache line so
/// that producers (head) and consumers (tail, retrieved) do not slow each other down.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: u32,
    pub header_size: u32,
    pub slots: u32,
    pub slot_size: u32,
    pub slot_stride: u32,
    _reserved: u32,
    pub total_size: u64,
    pub generation: u64,
    /// Set when a newer segment replaced this one under the same name: attached consumers
    /// reattach by name.
    pub retired: AtomicU32,
    /// The daemon that opened this segment as its producer (0: none); `reset` checks it to
    /// tell a slot abandoned by a dead producer from one still being written.
    pub producer_pid: AtomicU32,
    pub head: Line<AtomicU64>,
    pub tail: Line<AtomicU64>,
    pub full: Line<AtomicU64>,
    pub retrieved: Line<AtomicU64>,
    /// `inserted` is derived as head - inserted_base, so producers need no extra atomic.
    pub inserted_base: Line<AtomicU64>,
    pub sleepers: Line<AtomicU32>,
    pub wake: Line<libc::sem_t>,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);

/// Per-slot metadata, written by the producer before it publishes `seq`.
#[repr(C)]
pub(crate) struct SlotMeta {
    /// Vyukov sequence: `pos` = empty, waiting for the producer of position `pos`;
    /// `pos + 1` = full, holding position `pos`. A consumer commits with one CAS from
    /// `pos + 1` to `pos + slots` (empty for the next lap).
    pub seq: AtomicU64,
    pub ts_ns: u64,
    pub orig_len: u32,
    pub cap_len: u32,
    pub ifindex: u8,
    pub dir: u8,
    _pad: [u8; 6],
}

const _: () = assert!(std::mem::size_of::<SlotMeta>() == SLOT_META);

pub(crate) fn stride(slot_size: u32) -> usize {
    (SLOT_META + slot_size as usize).div_ceil(64) * 64
}

pub(crate) fn total_size(layout: Layout) -> usize {
    HEADER_SIZE + layout.slots as usize * stride(layout.slot_size)
}

pub(crate) fn check_layout(layout: Layout) -> Result<(), Error> {
    let bad = |why: String| Err(Error::BadLayout(why));
    if !layout.slots.is_power_of_two() || layout.slots < 2 || layout.slots > 1 << 22 {
        return bad(format!(
            "{} slots: the slot count must be a power of two from 2 to 4194304",
            layout.slots
        ));
    }
    if layout.slot_size < 64 || layout.slot_size > 65536 {
        return bad(format!(
            "slot size {}: must be from 64 to 65536 bytes",
            layout.slot_size
        ));
    }
    if total_size(layout) > 4 << 30 {
        return bad(format!(
            "{} slots of {} bytes exceed 4 GiB",
            layout.slots, layout.slot_size
        ));
    }
    Ok(())
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 200
    {
        return Err(Error::BadName(name.to_string()));
    }
    Ok(())
}

/// A mapped, validated segment. Unmapped on drop; the file stays.
pub(crate) struct Segment {
    map: MmapRaw,
    pub name: String,
    pub path: PathBuf,
    pub mask: u64,
    pub slots: u64,
    pub stride: usize,
    pub slot_size: u32,
    pub generation: u64,
}

// SAFETY: every access to the mapping goes through atomics or through the slot protocol
// (see SlotMeta::seq), which gives each slot a single writer at a time.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

impl Segment {
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE long (validated) and page aligned.
        unsafe { &*(self.map.as_mut_ptr() as *const Header) }
    }

    pub fn slot_ptr(&self, pos: u64) -> *mut u8 {
        let idx = (pos & self.mask) as usize;
        // SAFETY: idx < slots, so the slot lies inside the validated mapping.
        unsafe { self.map.as_mut_ptr().add(HEADER_SIZE + idx * self.stride) }
    }

    pub fn meta(&self, pos: u64) -> *mut SlotMeta {
        self.slot_ptr(pos) as *mut SlotMeta
    }

    pub fn seq(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: seq is the first field of an in-bounds, 64-byte aligned SlotMeta.
        unsafe { &(*self.meta(pos)).seq }
    }

    pub fn layout(&self) -> Layout {
        Layout {
            slots: self.slots as u32,
            slot_size: self.slot_size,
        }
    }

    pub fn sem(&self) -> *mut libc::sem_t {
        &self.header().wake.0 as *const libc::sem_t as *mut libc::sem_t
    }

    pub fn is_retired(&self) -> bool {
        self.header().retired.load(Ordering::Acquire) != 0
    }

    /// Wake everybody sleeping on this segment (used when it is retired).
    pub fn wake_all(&self) {
        let n = self.header().sleepers.0.load(Ordering::SeqCst);
        for _ in 0..n.clamp(1, 1024) {
            // SAFETY: the semaphore was initialised by the creator of the segment.
            unsafe { libc::sem_post(self.sem()) };
        }
    }

    /// Map an existing file and check that it is a complete queue of this layout version.
    fn from_file(file: &File, name: &str, path: &Path) -> Result<Segment, Error> {
        let io_err = |e: io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(Error::NotAQueue {
                path: path.display().to_string(),
                why: "not a regular file".into(),
            });
        }
        let len = meta.len() as usize;
        if len < HEADER_SIZE {
            return Err(Error::NotAQueue {
                path: path.display().to_string(),
                why: format!("{len} bytes, too short for a queue header"),
            });
        }
        let map = MmapOptions::new().map_raw(file).map_err(io_err)?;
        // SAFETY: len >= HEADER_SIZE, checked above.
        let hdr = unsafe { &*(map.as_mut_ptr() as *const Header) };
        if hdr.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::NotAQueue {
                path: path.display().to_string(),
                why: "bad magic".into(),
            });
        }
        if hdr.version != LAYOUT_VERSION {
            return Err(Error::Version {
                path: path.display().to_string(),
                found: hdr.version,
                expected: LAYOUT_VERSION,
            });
        }
        let layout = Layout {
            slots: hdr.slots,
            slot_size: hdr.slot_size,
        };
        let corrupt = |what: String| Error::Corrupt {
            path: path.display().to_string(),
            what,
        };
        check_layout(layout).map_err(|e| corrupt(e.to_string()))?;
        if hdr.header_size as usize != HEADER_SIZE
            || hdr.slot_stride as usize != stride(layout.slot_size)
            || hdr.total_size as usize != total_size(layout)
        {
            return Err(corrupt("sizes do not match the slot layout".into()));
        }
        if len != total_size(layout) {
            return Err(corrupt(format!(
                "file is {len} bytes, the header says {}",
                total_size(layout)
            )));
        }
        Ok(Segment {
            map,
            name: name.to_string(),
            path: path.to_path_buf(),
            mask: layout.slots as u64 - 1,
            slots: layout.slots as u64,
            stride: stride(layout.slot_size),
            slot_size: layout.slot_size,
            generation: hdr.generation,
        })
    }

    /// Attach to the queue `name`, creating it with `layout` if it does not exist.
    pub fn open_or_create(name: &str, layout: Layout) -> Result<Segment, Error> {
        check_name(name)?;
        check_layout(layout)?;
        let path = queue_path(name);
        loop {
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => return Segment::from_file(&f, name, &path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        path: path.display().to_string(),
                        source: e,
                    })
                }
            }
            let tmp = build_segment(&path, layout, 1)?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                // Somebody else created it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(Error::Io {
                        path: path.display().to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Attach to an existing queue only.
    pub fn open_existing(name: &str) -> Result<Segment, Error> {
        check_name(name)?;
        let path = queue_path(name);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        Segment::from_file(&f, name, &path)
    }

    /// Replace whatever queue is at `name` by a fresh one with `layout` and the next
    /// generation; the old one is marked retired so its consumers reattach. A file that
    /// is not a queue is refused and left alone.
    pub fn recreate(name: &str, layout: Layout) -> Result<Segment, Error> {
        check_name(name)?;
        check_layout(layout)?;
        let path = queue_path(name);
        let old = match Segment::open_existing(name) {
            Ok(seg) => Some(seg),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
            // An older layout version is still our queue: replacing it is the upgrade path.
            Err(Error::Version { .. }) | Err(Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let generation = old.as_ref().map_or(0, |s| s.generation) + 1;
        let tmp = build_segment(&path, layout, generation)?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Io {
                path: path.display().to_string(),
                source: e,
            });
        }
        if let Some(old) = old {
            old.header().retired.store(1, Ordering::Release);
            old.wake_all();
        }
        Segment::open_existing(name)
    }
}

/// Build a complete segment in a temporary file next to `path`; returns the temporary path.
fn build_segment(path: &Path, layout: Layout, generation: u64) -> Result<PathBuf, Error> {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = path.parent().unwrap_or(Path::new("/"));
    let base = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{base}.tmp.{}.{nanos}", std::process::id()));
    let io_err = |e: io::Error| Error::Io {
        path: tmp.display().to_string(),
        source: e,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    let result = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.set_len(total_size(layout) as u64)?;
        let map = MmapOptions::new().map_raw(&file)?;
        // SAFETY: fresh zero-filled mapping of total_size bytes that only we can see.
        unsafe { init_segment(map.as_mut_ptr(), layout, generation) }
        map.flush()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(tmp)
}

/// # Safety
/// `base` must point to a private, zeroed mapping of `total_size(layout)` bytes.
unsafe fn init_segment(base: *mut u8, layout: Layout, generation: u64) {
    let hdr = &mut *(base as *mut Header);
    hdr.version = LAYOUT_VERSION;
    hdr.header_size = HEADER_SIZE as u32;
    hdr.slots = layout.slots;
    hdr.slot_size = layout.slot_size;
    hdr.slot_stride = stride(layout.slot_size) as u32;
    hdr.total_size = total_size(layout) as u64;
    hdr.generation = generation;
    libc::sem_init(&mut hdr.wake.0, 1, 0);
    let st = stride(layout.slot_size);
    for i in 0..layout.slots as usize {
        let meta = &*(base.add(HEADER_SIZE + i * st) as *const SlotMeta);
        meta.seq.store(i as u64, Ordering::Relaxed);
    }
    hdr.magic.store(MAGIC, Ordering::Release);
}
