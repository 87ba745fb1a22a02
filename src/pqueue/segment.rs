//! The shared-memory segment: its layout, creation, validation and mapping (docs/pqueue.md).
//!
//! Layout (all fields native-endian, little-endian on the only targets, x86_64 / aarch64 Linux):
//! ```text
//! 0                 Header: identity, layout, producer, interface table (HEADER_FIXED bytes)
//! HEADER_FIXED      LaneHeader × lanes (LANE_HEADER bytes each: head, tail, counters, semaphore,
//!                   claim), padded to a page: header_size
//! header_size       lane 0: slots × stride, then lane 1 …
//!                   slot: SlotMeta (32 bytes) + frame bytes, stride = round_up(32 + slot_size, 64)
//! ```
//! A segment only becomes visible under its name once it is complete: it is built in an
//! anonymous file and then linked (first creator wins) or renamed (a producer
//! re-initialising) into place, so nobody can map a half-initialised queue. Names are resolved
//! in `/dev/shm` without following links, and only files that root or we own and nobody else
//! may write are used (docs/reliability.md).

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::{Error, Layout};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"IXDPPQUE");
/// The layout version this program reads and writes; a queue of another version is refused
/// by consumers and replaced by the engine.
pub const LAYOUT_VERSION: u32 = 2;
/// The fixed part of the header: identity, layout, producer and interface table.
pub(crate) const HEADER_FIXED: usize = 4096;
/// One lane's header: seven cache lines.
pub(crate) const LANE_HEADER: usize = 512;
pub(crate) const SLOT_META: usize = 32;
/// Interfaces the segment can describe (the engine has at most two; room to grow).
pub const MAX_INTERFACES: usize = 8;
/// Lanes a queue may be split into.
pub const MAX_LANES: u32 = 64;
const PAGE: usize = 4096;

/// The file behind queue `name`.
pub fn queue_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

#[repr(C, align(64))]
pub(crate) struct Line<T>(pub T);

/// The producer's description of one engine interface, so that a capture file can name the
/// port a frame was tapped on (`if_name`, driver, MAC, speed in pcapng), also when the
/// consumer started before the engine. Written by the engine before its workers start;
/// `valid` is stored last.
#[repr(C)]
pub(crate) struct IfSlot {
    pub valid: AtomicU32,
    pub mtu: u32,
    /// Link speed in Mbit/s, 0 when unknown.
    pub speed_mbps: u64,
    pub name: [u8; 16],
    pub driver: [u8; 24],
    pub mac: [u8; 6],
    _pad: [u8; 2],
}

/// Counters of one interface that a capture's statistics need and only the engine knows.
#[repr(C)]
pub(crate) struct IfCounters {
    /// Frames received on the interface (added per batch by the workers).
    pub rx: Line<AtomicU64>,
    /// Frames tapped on this interface that no lane had room for.
    pub full: Line<AtomicU64>,
}

/// The first part of the segment. Fields that change per packet live in the lane headers.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub version: u32,
    pub header_size: u32,
    /// Slots per lane.
    pub slots: u32,
    pub slot_size: u32,
    pub slot_stride: u32,
    pub lanes: u32,
    pub total_size: u64,
    pub generation: u64,
    /// Set when a newer segment replaced this one under the same name: attached consumers
    /// reattach by name.
    pub retired: AtomicU32,
    /// The engine that opened this segment as its producer (0: none).
    pub producer_pid: AtomicU32,
    /// That process's start time (clock ticks since boot, /proc/PID/stat field 22), so that a
    /// recycled pid is not mistaken for the producer.
    pub producer_start: AtomicU64,
    pub ifs: [IfSlot; MAX_INTERFACES],
    pub if_counters: [IfCounters; MAX_INTERFACES],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_FIXED);

/// One lane: a ring of its own with its own positions, counters, wake-up semaphore and (when
/// the queue has several lanes) the consumer that claimed it.
#[repr(C)]
pub(crate) struct LaneHeader {
    pub head: Line<AtomicU64>,
    pub tail: Line<AtomicU64>,
    pub full: Line<AtomicU64>,
    pub retrieved: Line<AtomicU64>,
    /// `inserted` is derived as head - inserted_base, so producers need no extra atomic.
    pub inserted_base: Line<AtomicU64>,
    pub sleepers: Line<AtomicU32>,
    pub wake: Line<libc::sem_t>,
    pub claim: Line<Claim>,
}

/// Which process consumes a lane of a laned queue: pid and start time (0: nobody).
#[repr(C)]
pub(crate) struct Claim {
    pub pid: AtomicU32,
    pub start: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<LaneHeader>() <= LANE_HEADER);

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
    /// [`super::Marks`] bits: what fault injection did to the frame.
    pub marks: u8,
    _pad: [u8; 5],
}

const _: () = assert!(std::mem::size_of::<SlotMeta>() == SLOT_META);

pub(crate) fn stride(slot_size: u32) -> usize {
    (SLOT_META + slot_size as usize).div_ceil(64) * 64
}

pub(crate) fn header_size(lanes: u32) -> usize {
    (HEADER_FIXED + lanes as usize * LANE_HEADER).div_ceil(PAGE) * PAGE
}

pub(crate) fn total_size(layout: Layout) -> usize {
    header_size(layout.lanes)
        + layout.lanes as usize * layout.slots as usize * stride(layout.slot_size)
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
    if layout.lanes == 0 || layout.lanes > MAX_LANES {
        return bad(format!(
            "{} lanes: a queue has 1 to {MAX_LANES} lanes",
            layout.lanes
        ));
    }
    if total_size(layout) > 4 << 30 {
        return bad(format!(
            "{} lanes of {} slots of {} bytes exceed 4 GiB",
            layout.lanes, layout.slots, layout.slot_size
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

/// What is wrong with bytes that were to be a queue header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer bytes than a header has.
    TooShort(usize),
    /// Not the queue's magic: not a queue at all.
    BadMagic,
    /// A queue of another layout version.
    Version(u32),
    /// A queue header whose fields contradict each other or the file's size.
    Corrupt(String),
}

/// Checks the header at the start of a queue file of `file_len` bytes and returns its layout
/// and generation. Pure: what every consumer runs on a file anybody may have written, so it
/// takes any bytes (tests/fuzz_parsers.rs feeds it a million).
pub fn parse_header(bytes: &[u8], file_len: u64) -> Result<(Layout, u64), HeaderProblem> {
    if bytes.len() < HEADER_FIXED || file_len < HEADER_FIXED as u64 {
        return Err(HeaderProblem::TooShort(bytes.len().min(file_len as usize)));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    if u64_at(0) != MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let version = u32_at(8);
    if version != LAYOUT_VERSION {
        return Err(HeaderProblem::Version(version));
    }
    let layout = Layout {
        slots: u32_at(16),
        slot_size: u32_at(20),
        lanes: u32_at(28),
    };
    check_layout(layout).map_err(|e| HeaderProblem::Corrupt(e.to_string()))?;
    if u32_at(12) as usize != header_size(layout.lanes)
        || u32_at(24) as usize != stride(layout.slot_size)
        || u64_at(32) != total_size(layout) as u64
    {
        return Err(HeaderProblem::Corrupt(
            "sizes do not match the slot layout".into(),
        ));
    }
    if file_len != total_size(layout) as u64 {
        return Err(HeaderProblem::Corrupt(format!(
            "file is {file_len} bytes, the header says {}",
            total_size(layout)
        )));
    }
    Ok((layout, u64_at(40)))
}

/// A mapped, validated segment. Unmapped on drop; the file stays.
pub(crate) struct Segment {
    map: MmapRaw,
    pub name: String,
    pub path: PathBuf,
    pub layout: Layout,
    pub header_size: usize,
    pub stride: usize,
    pub generation: u64,
}

// SAFETY: every access to the mapping goes through atomics or through the slot protocol
// (see SlotMeta::seq), which gives each slot a single writer at a time.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

/// One lane of a segment: where its header and slots are. Cheap to copy.
#[derive(Clone, Copy)]
pub(crate) struct Ring<'a> {
    seg: &'a Segment,
    hdr: &'a LaneHeader,
    base: *mut u8,
    /// Slot count of the lane.
    pub slots: u64,
    mask: u64,
}

impl<'a> Ring<'a> {
    pub fn header(&self) -> &'a LaneHeader {
        self.hdr
    }

    pub fn slot_size(&self) -> u32 {
        self.seg.layout.slot_size
    }

    pub fn slot_ptr(&self, pos: u64) -> *mut u8 {
        let idx = (pos & self.mask) as usize;
        // SAFETY: idx < slots, so the slot lies inside this lane of the validated mapping.
        unsafe { self.base.add(idx * self.seg.stride) }
    }

    pub fn meta(&self, pos: u64) -> *mut SlotMeta {
        self.slot_ptr(pos) as *mut SlotMeta
    }

    pub fn seq(&self, pos: u64) -> &'a AtomicU64 {
        // SAFETY: seq is the first field of an in-bounds, 64-byte aligned SlotMeta that lives
        // as long as the mapping.
        unsafe { &(*self.meta(pos)).seq }
    }

    pub fn sem(&self) -> *mut libc::sem_t {
        &self.hdr.wake.0 as *const libc::sem_t as *mut libc::sem_t
    }
}

impl Segment {
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least header_size long (validated) and page aligned.
        unsafe { &*(self.map.as_mut_ptr() as *const Header) }
    }

    /// Interface table entry `i`, as a raw pointer: the producer writes it, consumers read it
    /// once `valid` says it is complete.
    pub fn if_slot(&self, i: usize) -> Option<*mut IfSlot> {
        if i >= MAX_INTERFACES {
            return None;
        }
        let hdr = self.map.as_mut_ptr() as *mut Header;
        // SAFETY: in bounds of the validated header; only an address is computed.
        Some(unsafe { std::ptr::addr_of_mut!((*hdr).ifs[i]) })
    }

    /// Lane `k` (`k < lanes`).
    pub fn ring(&self, k: u32) -> Ring<'_> {
        assert!(k < self.layout.lanes, "lane {k} of {}", self.layout.lanes);
        let slots = u64::from(self.layout.slots);
        // SAFETY: the lane headers and lanes lie inside the validated mapping.
        unsafe {
            let base = self.map.as_mut_ptr();
            let hdr = &*(base.add(HEADER_FIXED + k as usize * LANE_HEADER) as *const LaneHeader);
            let lane = base.add(self.header_size + k as usize * slots as usize * self.stride);
            Ring {
                seg: self,
                hdr,
                base: lane,
                slots,
                mask: slots - 1,
            }
        }
    }

    /// Every lane, in order.
    pub fn rings(&self) -> impl Iterator<Item = Ring<'_>> {
        (0..self.layout.lanes).map(|k| self.ring(k))
    }

    pub fn is_retired(&self) -> bool {
        self.header().retired.load(Ordering::Acquire) != 0
    }

    /// Wake everybody sleeping on this segment (used when it is retired).
    pub fn wake_all(&self) {
        for ring in self.rings() {
            let n = ring.header().sleepers.0.load(Ordering::SeqCst);
            for _ in 0..n.clamp(1, 1024) {
                // SAFETY: the semaphore was initialised by the creator of the segment.
                unsafe { libc::sem_post(ring.sem()) };
            }
        }
    }

    /// Map an opened queue file and check that it is a complete queue of this layout
    /// version (the file was opened and vetted by [`open_file`]).
    fn from_file(file: &File, name: &str, path: &Path) -> Result<Segment, Error> {
        let io_err = |e: io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let len = file.metadata().map_err(io_err)?.len() as usize;
        if len < HEADER_FIXED {
            return Err(Error::NotAQueue {
                path: path.display().to_string(),
                why: format!("{len} bytes, too short for a queue header"),
            });
        }
        let map = MmapOptions::new().map_raw(file).map_err(io_err)?;
        // SAFETY: len >= HEADER_FIXED, checked above; the fields parsed are written once, when
        // the segment is built, before it gets its name.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), HEADER_FIXED) };
        let path_text = || path.display().to_string();
        let (layout, generation) = parse_header(bytes, len as u64).map_err(|p| match p {
            HeaderProblem::TooShort(n) => Error::NotAQueue {
                path: path_text(),
                why: format!("{n} bytes, too short for a queue header"),
            },
            HeaderProblem::BadMagic => Error::NotAQueue {
                path: path_text(),
                why: "bad magic".into(),
            },
            HeaderProblem::Version(found) => Error::Version {
                path: path_text(),
                found,
                expected: LAYOUT_VERSION,
            },
            HeaderProblem::Corrupt(what) => Error::Corrupt {
                path: path_text(),
                what,
            },
        })?;
        Ok(Segment {
            map,
            name: name.to_string(),
            path: path.to_path_buf(),
            layout,
            header_size: header_size(layout.lanes),
            stride: stride(layout.slot_size),
            generation,
        })
    }

    /// Attach to the queue `name`, creating it with `layout` if it does not exist.
    pub fn open_or_create(name: &str, layout: Layout) -> Result<Segment, Error> {
        check_name(name)?;
        check_layout(layout)?;
        let path = queue_path(name);
        let dir = ShmDir::open()?;
        // Each round either finds the queue or publishes one; losing the race to another
        // creator twice in a row would take a file that appears and vanishes between our calls.
        for _ in 0..8 {
            match dir.open_file(name) {
                Ok(f) => return Segment::from_file(&f, name, &path),
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let file = build_segment(&dir, layout, 1)?;
            match dir.link_new(&file, name) {
                Ok(()) => {}
                // Somebody else created it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(dir.io(name, e)),
            }
        }
        Err(Error::Unsafe {
            path: path.display().to_string(),
            why: "it keeps appearing and vanishing; is another program replacing it?".into(),
        })
    }

    /// Attach to an existing queue only.
    pub fn open_existing(name: &str) -> Result<Segment, Error> {
        check_name(name)?;
        let f = ShmDir::open()?.open_file(name)?;
        Segment::from_file(&f, name, &queue_path(name))
    }

    /// Replace whatever queue is at `name` by a fresh one with `layout` and the next
    /// generation; the old one is marked retired so its consumers reattach. A file that
    /// is not a queue, or not safely ours, is refused and left alone. `busy` decides about an
    /// existing queue that a live engine feeds: its pid, or None to go on.
    pub fn recreate(
        name: &str,
        layout: Layout,
        busy: impl FnOnce(&Segment) -> Result<(), Error>,
    ) -> Result<Segment, Error> {
        check_name(name)?;
        check_layout(layout)?;
        let dir = ShmDir::open()?;
        let old = match dir.open_file(name) {
            Ok(f) => match Segment::from_file(&f, name, &queue_path(name)) {
                Ok(seg) => Some(seg),
                // An older layout version is still our queue: replacing it is the upgrade path.
                Err(Error::Version { .. }) | Err(Error::Corrupt { .. }) => None,
                Err(e) => return Err(e),
            },
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(old) = &old {
            busy(old)?;
        }
        dir.remove_stale_temporaries(name);
        let generation = old.as_ref().map_or(0, |s| s.generation) + 1;
        let file = build_segment(&dir, layout, generation)?;
        dir.replace(&file, name)?;
        if let Some(old) = old {
            old.header().retired.store(1, Ordering::Release);
            old.wake_all();
        }
        Segment::open_existing(name)
    }
}

/// `/dev/shm`, opened once per operation: every name is resolved relative to it, without
/// following symbolic links, so a link planted there by another user is never followed.
struct ShmDir(File);

impl ShmDir {
    fn open() -> Result<ShmDir, Error> {
        let path = queue_path("");
        File::open(&path).map(ShmDir).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    fn io(&self, name: &str, source: io::Error) -> Error {
        Error::Io {
            path: queue_path(name).display().to_string(),
            source,
        }
    }

    /// Opens `name` for reading and writing, refusing a symbolic link, anything that is not
    /// a regular file, a file owned by somebody other than root or us, and a file others may
    /// write: a queue is only used when nobody but its owner can have forged its frames.
    fn open_file(&self, name: &str) -> Result<File, Error> {
        use nix::fcntl::{openat, OFlag};
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let unsafe_file = |why: String| Error::Unsafe {
            path: queue_path(name).display().to_string(),
            why,
        };
        let fd = match openat(&self.0, name, flags, nix::sys::stat::Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ELOOP) => {
                return Err(unsafe_file("it is a symbolic link".into()))
            }
            Err(e) => return Err(self.io(name, e.into())),
        };
        let file = File::from(fd);
        let st = nix::sys::stat::fstat(&file).map_err(|e| self.io(name, e.into()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::NotAQueue {
                path: queue_path(name).display().to_string(),
                why: "not a regular file".into(),
            });
        }
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != 0 && st.st_uid != me {
            return Err(unsafe_file(format!(
                "it belongs to uid {}, not to root or uid {me}",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(unsafe_file(format!(
                "others may write it (mode {:04o})",
                st.st_mode & 0o7777
            )));
        }
        Ok(file)
    }

    /// Gives an anonymous segment (see [`build_segment`]) the name `name`; fails with
    /// `AlreadyExists` when the name is taken.
    fn link_new(&self, file: &File, name: &str) -> io::Result<()> {
        use nix::fcntl::AtFlags;
        // AT_EMPTY_PATH links the file itself (needs CAP_DAC_READ_SEARCH, which root has);
        // /proc/self/fd does the same for everybody else.
        let linked = nix::unistd::linkat(file, "", &self.0, name, AtFlags::AT_EMPTY_PATH);
        match linked {
            Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EPERM) => {
                use std::os::fd::AsRawFd;
                let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
                nix::unistd::linkat(
                    &self.0,
                    proc.as_str(),
                    &self.0,
                    name,
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(io::Error::from)
            }
            other => other.map_err(io::Error::from),
        }
    }

    /// Puts an anonymous segment in place of whatever `name` is: linked under a temporary
    /// name (it exists for microseconds) and renamed over `name` in one step.
    fn replace(&self, file: &File, name: &str) -> Result<(), Error> {
        let tmp = temporary_name(name);
        self.link_new(file, &tmp).map_err(|e| self.io(&tmp, e))?;
        if let Err(e) = nix::fcntl::renameat(&self.0, tmp.as_str(), &self.0, name) {
            let _ = nix::unistd::unlinkat(
                &self.0,
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(self.io(name, e.into()));
        }
        Ok(())
    }

    /// Removes `.NAME.tmp.PID.*` files whose process is gone (a producer killed in the
    /// instant between naming a new segment and renaming it, or an older version of this
    /// program, which built segments under such names).
    fn remove_stale_temporaries(&self, name: &str) {
        let prefix = format!(".{name}.tmp.");
        let Ok(entries) = std::fs::read_dir(queue_path("")) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
                continue;
            };
            let pid = rest.split('.').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|pid| !crate::sys::is_alive(pid)) {
                let _ = nix::unistd::unlinkat(
                    &self.0,
                    entry.file_name().as_os_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
            }
        }
    }
}

/// `.NAME.tmp.PID.NANOS`: a name nobody else picks, that says whose it is.
fn temporary_name(name: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".{name}.tmp.{}.{nanos}", std::process::id())
}

/// Builds a complete segment in an anonymous file of `/dev/shm` (`O_TMPFILE`): it has no
/// name until it is complete, so nobody can map it half-initialised and a producer killed
/// while building it leaves nothing behind.
fn build_segment(dir: &ShmDir, layout: Layout, generation: u64) -> Result<File, Error> {
    use nix::fcntl::{openat, OFlag};
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    let fd = openat(
        &dir.0,
        ".",
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(|e| dir.io("(new queue)", e.into()))?;
    let file = File::from(fd);
    let result = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.set_len(total_size(layout) as u64)?;
        let map = MmapOptions::new().map_raw(&file)?;
        // SAFETY: fresh zero-filled mapping of total_size bytes that only we can see.
        unsafe { init_segment(map.as_mut_ptr(), layout, generation) }
        map.flush()?;
        Ok(())
    })();
    result.map_err(|e| dir.io("(new queue)", e))?;
    Ok(file)
}

/// # Safety
/// `base` must point to a private, zeroed mapping of `total_size(layout)` bytes.
unsafe fn init_segment(base: *mut u8, layout: Layout, generation: u64) {
    // SAFETY: the caller guarantees a private mapping of the full size, so every header,
    // lane header and slot written here is in bounds and seen by nobody else yet.
    unsafe {
        let hdr = &mut *(base as *mut Header);
        hdr.version = LAYOUT_VERSION;
        hdr.header_size = header_size(layout.lanes) as u32;
        hdr.slots = layout.slots;
        hdr.slot_size = layout.slot_size;
        hdr.slot_stride = stride(layout.slot_size) as u32;
        hdr.lanes = layout.lanes;
        hdr.total_size = total_size(layout) as u64;
        hdr.generation = generation;
        let st = stride(layout.slot_size);
        let lane_bytes = layout.slots as usize * st;
        for k in 0..layout.lanes as usize {
            let lane = &mut *(base.add(HEADER_FIXED + k * LANE_HEADER) as *mut LaneHeader);
            libc::sem_init(&mut lane.wake.0, 1, 0);
            let slots = base.add(header_size(layout.lanes) + k * lane_bytes);
            for i in 0..layout.slots as usize {
                let meta = &*(slots.add(i * st) as *const SlotMeta);
                meta.seq.store(i as u64, Ordering::Relaxed);
            }
        }
        hdr.magic.store(MAGIC, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The offsets docs/pqueue.md documents for other readers of the segment.
    #[test]
    fn layout_matches_the_documentation() {
        assert_eq!(offset_of!(Header, version), 8);
        assert_eq!(offset_of!(Header, lanes), 28);
        assert_eq!(offset_of!(Header, generation), 40);
        assert_eq!(offset_of!(Header, producer_pid), 52);
        assert_eq!(offset_of!(Header, producer_start), 56);
        assert_eq!(offset_of!(Header, ifs), 64);
        assert_eq!(size_of::<IfSlot>(), 64);
        assert_eq!(offset_of!(IfSlot, name), 16);
        assert_eq!(offset_of!(IfSlot, driver), 32);
        assert_eq!(offset_of!(IfSlot, mac), 56);
        assert_eq!(offset_of!(Header, if_counters), 576);
        assert_eq!(size_of::<IfCounters>(), 128);
        assert_eq!(offset_of!(LaneHeader, tail), 64);
        assert_eq!(offset_of!(LaneHeader, sleepers), 320);
        assert_eq!(offset_of!(LaneHeader, wake), 384);
        assert_eq!(offset_of!(LaneHeader, claim), 448);
        assert_eq!(offset_of!(SlotMeta, marks), 26);
        assert_eq!(header_size(1), 8192);
        assert_eq!(total_size(Layout::default()), 8_658_944);
    }
}
