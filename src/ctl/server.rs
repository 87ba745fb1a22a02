//! The daemon's console server: one RPCL VM, many clients on a unix socket.
//!
//! Each connection has a reader thread and an executor thread. The reader only decodes
//! frames, so an interrupt (Ctrl-C) or a vanished client is noticed while a script runs; the
//! executor takes the VM for one request at a time. Requests of different clients are
//! serialised on the VM and every client has its own data stack, so no two scripts ever
//! interleave on one stack. A word that waits (`ms`) pauses its text: the executor gives the
//! VM up for the wait and takes it again to resume, so a script sleeping in a loop holds
//! nobody else up. A client that stops reading its output is cut off by the socket's write
//! timeout, which also interrupts its script: nobody can hold the VM by not reading.
//!
//! Limits (docs/operations.md): at most [`ServerConfig::max_connections`] connections (more
//! are refused with a notice and closed), a connection that sends nothing for
//! [`ServerConfig::idle_timeout`] is closed with its threads, each connection queues at most
//! [`QUEUED_REQUESTS`] requests, and all connections together hold at most
//! [`ServerConfig::request_budget`] bytes of large requests not yet done: a reader waits for
//! room before it reads a large payload, so a flood of big requests is slowed down, not
//! buffered.
//!
//! Every request that changed the engine's state ([`Host::state_mark`] moved) is logged once,
//! with the client's uid and pid.

use super::proto::{JsonReport, ProtoError, Reply, Request};
use crate::rpcl::{Compiled, Flow, Paused, RpclError, StackSnapshot, Step, Vm};
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Requests one connection may have waiting behind the one that runs.
pub const QUEUED_REQUESTS: usize = 4;
/// Payloads up to this size are read without a reservation: an interrupt (Ctrl-C) or a
/// console line must never wait behind other clients' large requests, and what small ones
/// can hold is bounded by the connection cap and [`QUEUED_REQUESTS`] already.
const UNRESERVED: usize = 64 << 10;
/// The longest part of a request that goes into the log.
const LOGGED_TEXT: usize = 300;

/// Tunables of the console server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// A connection (or interactive session) that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A client that does not take its output for this long is disconnected.
    pub write_timeout: Duration,
    /// Connections served at once; one more is refused with a notice.
    pub max_connections: usize,
    /// Bytes of requests read but not yet done, over all connections.
    pub request_budget: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
            max_connections: 32,
            request_budget: 32 << 20,
        }
    }
}

/// What the server needs from the process that hosts it.
pub trait Host: Send + Sync {
    /// The text of `ethertap status`.
    fn status(&self) -> String;
    /// A report as JSON (`ethertap stats --json`, `ethertap status --json`).
    fn json(&self, report: JsonReport) -> String;
    /// Begin a clean shutdown of the whole daemon.
    fn request_stop(&self);
    /// A number that changes whenever the engine's state changes (see the module comment).
    fn state_mark(&self) -> u64 {
        0
    }
}

/// The bytes of requests in flight, bounded by the budget; see the module comment.
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

/// Bytes of one request, given back when it is done (or dropped unread).
struct Reservation<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Budget {
    /// Waits until `bytes` fit (a request larger than the whole budget waits until nothing
    /// else is in flight); gives up when `cancelled` says so.
    fn reserve(&self, bytes: usize, cancelled: &dyn Fn() -> bool) -> Option<Reservation<'_>> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + bytes > self.limit {
            if cancelled() {
                return None;
            }
            used = self
                .freed
                .wait_timeout(used, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += bytes;
        Some(Reservation {
            budget: self,
            bytes,
        })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

struct SessionHolder {
    conn: u64,
    pid: i32,
    since: Instant,
}

struct Shared {
    vm: Mutex<Vm>,
    vm_interrupt: Arc<AtomicBool>,
    /// The connection whose request the VM is executing (0: none).
    running: AtomicU64,
    session: Mutex<Option<SessionHolder>>,
    host: Arc<dyn Host>,
    config: ServerConfig,
    next_conn: AtomicU64,
    /// Connections being served.
    connections: AtomicUsize,
    budget: Budget,
    shutdown: Arc<AtomicBool>,
    /// Set at shutdown: texts that wait end as interrupted, none starts.
    stopping: AtomicBool,
    /// Texts started and not yet answered (running, waiting for the VM, or paused).
    texts: AtomicUsize,
}

/// Counts a text in [`Shared::texts`] while it lives.
struct TextGuard<'a>(&'a AtomicUsize);

impl<'a> TextGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        TextGuard(count)
    }
}

impl Drop for TextGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a shutdown waits for the texts it interrupted to answer their clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running console server.
pub struct Server {
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
    accept_thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `vm` on `listener` until [`Server::shutdown`] (or drop).
    pub fn start(
        listener: UnixListener,
        vm: Vm,
        host: Arc<dyn Host>,
        config: ServerConfig,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            vm_interrupt: vm.interrupt_handle(),
            vm: Mutex::new(vm),
            running: AtomicU64::new(0),
            session: Mutex::new(None),
            host,
            next_conn: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            budget: Budget {
                used: Mutex::new(0),
                freed: Condvar::new(),
                limit: config.request_budget,
            },
            config,
            shutdown: shutdown.clone(),
            stopping: AtomicBool::new(false),
            texts: AtomicUsize::new(0),
        });
        let accept_thread = {
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("ctl-accept".into())
                .spawn(move || accept_loop(listener, shared, shutdown))?
        };
        Ok(Server {
            shared,
            shutdown,
            accept_thread: Some(accept_thread),
        })
    }

    /// Run `f` with the VM, e.g. for the preset at start.
    pub fn with_vm<R>(&self, f: impl FnOnce(&mut Vm) -> R) -> R {
        f(&mut lock_vm(&self.shared))
    }

    /// The served VM for the process's own terminal console.
    pub fn served_vm(&self) -> ServedVm {
        ServedVm(self.shared.clone())
    }

    /// Connections being served now (each holds two threads and a socket).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stop accepting clients and interrupt whatever runs or waits; give the interrupted
    /// texts a moment to tell their clients.
    pub fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shutdown.store(true, Ordering::SeqCst);
        self.shared.vm_interrupt.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.shared.texts.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The VM a [`Server`] serves, for the terminal console of a foreground engine
/// (`ethertap start` on a terminal); usable from any thread.
pub struct ServedVm(Arc<Shared>);

impl ServedVm {
    /// Runs one line of the process's own terminal console (`ethertap start` on a terminal)
    /// on the served VM, whose resident stack is the console's (clients swap theirs in and
    /// out). A line that changes the engine is logged like a client's, with our uid and pid.
    /// Its warnings go to `warn` (the terminal's stderr). A wait (`ms`) keeps the VM here: the
    /// terminal's Ctrl-C is the VM's interrupt flag, which must not reach a client's text.
    pub fn eval_console(
        &self,
        line: &str,
        color: bool,
        width: Option<usize>,
        out: &mut dyn Write,
        warn: &mut dyn Write,
    ) -> Result<Flow, crate::rpcl::RpclError> {
        let mut vm = lock_vm(&self.0);
        let mark = self.0.host.state_mark();
        vm.set_color(color);
        vm.set_width(width);
        let compiled = vm.compile_line(line);
        for w in vm.take_warnings() {
            let _ = writeln!(warn, "{w}");
        }
        let step = compiled.and_then(|c| vm.start(c, out));
        let result = vm.finish(step, out);
        for w in vm.take_warnings() {
            let _ = writeln!(warn, "{w}");
        }
        if self.0.host.state_mark() != mark {
            let what = format!("console (terminal): {}", loggable(line));
            crate::log::info(&what);
        }
        result
    }

    /// Word names of the served VM (Tab completion of the terminal console).
    pub fn word_names(&self) -> Vec<String> {
        lock_vm(&self.0).word_names()
    }

    /// The served VM's interrupt flag (Ctrl-C of the terminal console).
    pub fn interrupt_handle(&self) -> Arc<AtomicBool> {
        self.0.vm_interrupt.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A panic inside a word must not take the console down for everybody: the VM stays usable.
fn lock_vm(shared: &Shared) -> MutexGuard<'_, Vm> {
    shared.vm.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a connection while it is served.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, shutdown: Arc<AtomicBool>) {
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let max = shared.config.max_connections;
                if shared.connections.fetch_add(1, Ordering::SeqCst) >= max {
                    shared.connections.fetch_sub(1, Ordering::SeqCst);
                    refuse(&stream, max);
                    continue;
                }
                let slot = Slot(shared.clone());
                let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new()
                    .name(format!("ctl-conn-{id}"))
                    .spawn(move || {
                        serve_connection(stream, &slot.0, id);
                        drop(slot);
                    });
                if let Err(e) = spawned {
                    crate::log::warn(&format!("console connection refused: {e}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Tells a connection over the cap why it is closed, without waiting on a client that does
/// not read.
fn refuse(stream: &UnixStream, max: usize) {
    let _ = stream.set_nonblocking(true);
    let _ = send(
        stream,
        Reply::Failed(format!(
            "refused: the daemon serves at most {max} console connections at once; try again later"
        )),
    );
}

/// Who is at the other end of a connection.
type Peer = crate::log::Source;

/// Root only: the socket is mode 0600 already, and the peer's credentials are checked too so
/// that a socket made reachable by mistake still refuses other users.
fn peer_allowed(stream: &UnixStream) -> (bool, Option<Peer>) {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => (
            cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw(),
            Some(Peer {
                uid: cred.uid(),
                pid: cred.pid(),
            }),
        ),
        Err(_) => (false, None),
    }
}

enum Incoming<'a> {
    /// A request and the budget it holds until it is done (none for a small one).
    Request(Request, Option<Reservation<'a>>),
    Bad(String),
}

fn send(stream: &UnixStream, reply: Reply) -> io::Result<()> {
    let mut w = stream;
    reply.write_to(&mut w)
}

/// Serves one connection: a reader thread decodes requests while this thread executes them.
/// When either side ends, the socket is shut down, which ends the other: no thread or
/// descriptor outlives the connection.
fn serve_connection(stream: UnixStream, shared: &Shared, id: u64) {
    let (allowed, peer) = peer_allowed(&stream);
    let Some(peer) = peer.filter(|_| allowed) else {
        if let Some(p) = peer {
            crate::log::log_as(
                crate::log::Level::Warn,
                p,
                "refused: the console is for root only",
            );
        }
        let _ = send(
            &stream,
            Reply::Failed("permission denied: the ethertap console is for root only".into()),
        );
        return;
    };
    if stream
        .set_write_timeout(Some(shared.config.write_timeout))
        .is_err()
    {
        return;
    }
    let Ok(mut reader) = stream.try_clone() else {
        return;
    };
    let cancel = AtomicBool::new(false);
    let interrupt = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel(QUEUED_REQUESTS);
    std::thread::scope(|scope| {
        let read = std::thread::Builder::new()
            .name(format!("ctl-read-{id}"))
            .spawn_scoped(scope, || {
                let flags = ClientFlags {
                    cancel: &cancel,
                    interrupt: &interrupt,
                };
                read_requests(&mut reader, shared, id, flags, tx)
            });
        if read.is_err() {
            return;
        }
        let mut executor = Executor {
            stream: &stream,
            shared,
            id,
            peer,
            cancel: &cancel,
            interrupt: &interrupt,
            color: false,
            width: None,
            strict: false,
            in_session: false,
            session_stack: StackSnapshot::default(),
        };
        executor.run(rx);
        executor.leave_session();
        cancel.store(true, Ordering::SeqCst);
        // Wakes the reader from its read: the connection is over.
        let _ = stream.shutdown(Shutdown::Both);
    });
}

/// What the reader of a connection tells its executor besides requests.
#[derive(Clone, Copy)]
struct ClientFlags<'a> {
    /// The connection is over.
    cancel: &'a AtomicBool,
    /// Ctrl-C of this client: ends a text of its that waits.
    interrupt: &'a AtomicBool,
}

/// The reader thread of a connection: decodes requests until the client goes, the stream
/// breaks or the executor ends.
fn read_requests<'s>(
    reader: &mut UnixStream,
    shared: &'s Shared,
    id: u64,
    flags: ClientFlags<'_>,
    tx: mpsc::SyncSender<Incoming<'s>>,
) {
    let ClientFlags { cancel, interrupt } = flags;
    let stop = || cancel.load(Ordering::SeqCst) || shared.shutdown.load(Ordering::SeqCst);
    loop {
        let mut reservation = None;
        let read = Request::read_reserving(reader, &mut |len| {
            if len <= UNRESERVED {
                return Ok(());
            }
            reservation = shared.budget.reserve(len, &stop);
            reservation.as_ref().map(|_| ()).ok_or(ProtoError::Closed)
        });
        let incoming = match read {
            Ok(Request::Interrupt) => {
                // Seen by a text of this client that waits, or that runs.
                interrupt.store(true, Ordering::SeqCst);
                interrupt_if_running(shared, id);
                continue;
            }
            Ok(req) => Incoming::Request(req, reservation),
            Err(ProtoError::Closed) => {
                cancel.store(true, Ordering::SeqCst);
                interrupt_if_running(shared, id);
                return;
            }
            Err(e) => Incoming::Bad(e.to_string()),
        };
        let bad = matches!(incoming, Incoming::Bad(_));
        if tx.send(incoming).is_err() || bad {
            // After a malformed frame the stream cannot be resynchronised.
            cancel.store(true, Ordering::SeqCst);
            interrupt_if_running(shared, id);
            return;
        }
    }
}

fn interrupt_if_running(shared: &Shared, id: u64) {
    if shared.running.load(Ordering::SeqCst) == id {
        shared.vm_interrupt.store(true, Ordering::SeqCst);
    }
}

struct Executor<'a> {
    stream: &'a UnixStream,
    shared: &'a Shared,
    id: u64,
    peer: Peer,
    cancel: &'a AtomicBool,
    /// Ctrl-C of this client: ends a text of its that waits.
    interrupt: &'a AtomicBool,
    color: bool,
    /// The client's terminal width, for `.i` and `.d`.
    width: Option<usize>,
    /// `--strict`: texts with warnings are refused.
    strict: bool,
    in_session: bool,
    session_stack: StackSnapshot,
}

/// A request's text for the log: one line, cut at [`LOGGED_TEXT`] characters.
fn loggable(text: &str) -> String {
    let mut cut: String = text.trim().chars().take(LOGGED_TEXT).collect();
    if cut.len() < text.trim().len() {
        cut.push_str(" [...]");
    }
    cut
}

/// What a request asks the VM to run.
enum Text {
    /// A script: its file name (for positions), source and arguments.
    Script {
        file: String,
        source: String,
        args: Vec<String>,
    },
    /// A console line or `eval`.
    Line(String),
}

impl<'a> Executor<'a> {
    fn run(&mut self, rx: mpsc::Receiver<Incoming<'_>>) {
        loop {
            let incoming = match rx.recv_timeout(self.shared.config.idle_timeout) {
                Ok(i) => i,
                Err(RecvTimeoutError::Timeout) => {
                    let what = if self.in_session {
                        "session"
                    } else {
                        "connection"
                    };
                    let _ = send(
                        self.stream,
                        Reply::Notice(format!(
                            "{what} closed after {} s without input",
                            self.shared.config.idle_timeout.as_secs()
                        )),
                    );
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let req = match incoming {
                Incoming::Request(r, reservation) => {
                    let done = self.handle(r);
                    drop(reservation);
                    if done.is_err() {
                        return;
                    }
                    continue;
                }
                Incoming::Bad(msg) => msg,
            };
            let _ = send(self.stream, Reply::Failed(format!("bad request: {req}")));
            return;
        }
    }

    fn handle(&mut self, req: Request) -> io::Result<()> {
        match req {
            Request::Color(on) => {
                self.color = on;
                Ok(())
            }
            Request::Width(cols) => {
                self.width = (cols > 0).then_some(cols as usize);
                Ok(())
            }
            Request::Strict(on) => {
                self.strict = on;
                Ok(())
            }
            Request::Run { file, source, args } => {
                let mut stack = StackSnapshot::default();
                let what = format!(
                    "run {}",
                    loggable(&[std::slice::from_ref(&file), &args[..]].concat().join(" "))
                );
                self.execute(&mut stack, &what, Text::Script { file, source, args })
                    .map(|_| ())
            }
            Request::Eval(line) => {
                let mut stack = StackSnapshot::default();
                let what = format!("eval: {}", loggable(&line));
                self.execute(&mut stack, &what, Text::Line(line))
                    .map(|_| ())
            }
            Request::Json(report) => {
                let mut text = self.shared.host.json(report);
                text.push('\n');
                send(self.stream, Reply::Output(text.into_bytes()))?;
                send(self.stream, Reply::Done)
            }
            Request::Log(n) => {
                let mut text = String::new();
                for line in crate::log::recent(n as usize) {
                    text.push_str(&line);
                    text.push('\n');
                }
                for chunk in text.as_bytes().chunks(super::proto::MAX_FRAME) {
                    send(self.stream, Reply::Output(chunk.to_vec()))?;
                }
                send(self.stream, Reply::Done)
            }
            Request::OpenSession => self.open_session(),
            Request::Line(line) => {
                if !self.in_session {
                    return send(
                        self.stream,
                        Reply::Failed("no console session is open".into()),
                    );
                }
                let mut stack = std::mem::take(&mut self.session_stack);
                let what = format!("console: {}", loggable(&line));
                let result = self.execute(&mut stack, &what, Text::Line(line));
                self.session_stack = stack;
                if result.as_ref().is_ok_and(|flow| *flow == Flow::Bye) {
                    self.leave_session();
                }
                result.map(|_| ())
            }
            Request::Words => {
                let names = lock_vm(self.shared).word_names();
                send(self.stream, Reply::Words(names))
            }
            Request::Status => {
                send(
                    self.stream,
                    Reply::Output(self.shared.host.status().into_bytes()),
                )?;
                send(self.stream, Reply::Done)
            }
            Request::Stop => {
                crate::log::log_as(crate::log::Level::Info, self.peer, "stop");
                send(self.stream, Reply::Done)?;
                self.shared.host.request_stop();
                Ok(())
            }
            Request::Interrupt => Ok(()),
        }
    }

    fn open_session(&mut self) -> io::Result<()> {
        let mut holder = self
            .shared
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &*holder {
            Some(h) if h.conn != self.id => {
                let who = format!("PID {}", h.pid);
                let msg = format!(
                    "the ethertap console is in use by {who} (for {} s); one session at a time",
                    h.since.elapsed().as_secs()
                );
                drop(holder);
                send(self.stream, Reply::Refused(msg))
            }
            _ => {
                *holder = Some(SessionHolder {
                    conn: self.id,
                    pid: self.peer.pid,
                    since: Instant::now(),
                });
                drop(holder);
                self.in_session = true;
                send(self.stream, Reply::Done)
            }
        }
    }

    fn leave_session(&mut self) {
        if self.in_session {
            let mut holder = self
                .shared
                .session
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if holder.as_ref().is_some_and(|h| h.conn == self.id) {
                *holder = None;
            }
            self.in_session = false;
        }
    }

    /// The VM, once nobody else has it; `notice` tells the user once that it is busy. Fails
    /// when the client goes away meanwhile.
    fn take_vm(&self, notice: bool) -> io::Result<MutexGuard<'a, Vm>> {
        match self.shared.vm.try_lock() {
            Ok(vm) => return Ok(vm),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        if notice {
            send(
                self.stream,
                Reply::Notice("waiting: the VM is busy with another client's request".into()),
            )?;
        }
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            match self.shared.vm.try_lock() {
                Ok(vm) => return Ok(vm),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Make the VM this client's: its stack, its terminal, the running mark. Returns the
    /// engine's state mark as this client found it.
    fn enter(&self, vm: &mut Vm, stack: &mut StackSnapshot) -> u64 {
        self.shared.running.store(self.id, Ordering::SeqCst);
        vm.swap_stack(stack);
        vm.set_color(self.color);
        vm.set_width(self.width);
        self.shared.host.state_mark()
    }

    /// Give the VM back: the client's stack leaves with it. True when the engine's state
    /// moved from `mark` while this client had the VM.
    fn leave(&self, vm: MutexGuard<'a, Vm>, stack: &mut StackSnapshot, mark: u64) -> bool {
        let mut vm = vm;
        vm.swap_stack(stack);
        let changed = self.shared.host.state_mark() != mark;
        self.shared.running.store(0, Ordering::SeqCst);
        changed
    }

    /// The warnings of what the VM compiled or loaded, as notices (the client's stderr).
    fn send_warnings(&self, vm: &mut Vm) -> io::Result<usize> {
        let warnings = vm.take_warnings();
        for w in &warnings {
            send(self.stream, Reply::Notice(w.to_string()))?;
        }
        Ok(warnings.len())
    }

    /// Wait out a paused text without the VM: true when its time has come, false when it was
    /// interrupted meanwhile (Ctrl-C, a shutdown: it ends with an error), an error when the
    /// client went away.
    fn wait_out(&self, paused: &Paused) -> io::Result<bool> {
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            if self.interrupt.load(Ordering::SeqCst) || self.shared.stopping.load(Ordering::SeqCst)
            {
                return Ok(false);
            }
            let now = Instant::now();
            if now >= paused.until() {
                return Ok(true);
            }
            std::thread::sleep((paused.until() - now).min(Duration::from_millis(10)));
        }
    }

    /// Wait for the VM (telling the user once if another client has it), compile the text
    /// and send its warnings, run it on this client's own stack, stream its output, and report
    /// how it ended. While a word of the text waits, the VM is given up, so that other
    /// clients are served meanwhile. `what` names the request in the log, if it changed the
    /// engine's state.
    fn execute(&mut self, stack: &mut StackSnapshot, what: &str, text: Text) -> io::Result<Flow> {
        let _counted = TextGuard::new(&self.shared.texts);
        self.interrupt.store(false, Ordering::SeqCst);
        let mut vm = self.take_vm(true)?;
        if self.shared.stopping.load(Ordering::SeqCst) {
            drop(vm);
            return send(
                self.stream,
                Reply::Failed("error: the daemon is stopping".into()),
            )
            .map(|_| Flow::Continue);
        }
        let mut mark = self.enter(&mut vm, stack);
        let mut changed = false;
        let mut out = ReplyWriter {
            stream: self.stream,
            interrupt: &self.shared.vm_interrupt,
            broken: false,
        };
        let (compiled, name): (Result<Compiled, RpclError>, String) = match text {
            Text::Script { file, source, args } => {
                vm.set_args(args);
                (vm.compile_file(&file, &source), file)
            }
            Text::Line(line) => {
                vm.set_args(Vec::new());
                (vm.compile_line(&line), "eval".to_string())
            }
        };
        let warned = match self.send_warnings(&mut vm) {
            Ok(n) => n,
            Err(e) => {
                self.leave(vm, stack, mark);
                return Err(e);
            }
        };
        let mut step = match compiled {
            Ok(_) if self.strict && warned > 0 => Err(crate::rpcl::strict_refusal(&name, warned)),
            Ok(_) if self.cancel.load(Ordering::SeqCst) => Ok(Step::Done(Flow::Continue)),
            Ok(c) => vm.start(c, &mut out).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        loop {
            let sent = self.send_warnings(&mut vm);
            let paused = match step {
                Ok(Step::Wait(p)) if sent.is_ok() && !out.broken => p,
                other => {
                    changed |= self.leave(vm, stack, mark);
                    sent?;
                    step = other;
                    break;
                }
            };
            // The wait: the VM is free for others, the paused text keeps this client's
            // stack, frames and budget.
            changed |= self.leave(vm, stack, mark);
            let go_on = self.wait_out(&paused)?;
            vm = self.take_vm(false)?;
            // Cleared before this client is marked as running, checked after: an interrupt
            // that comes in between is either seen here or set on the VM by the reader.
            self.shared.vm_interrupt.store(false, Ordering::SeqCst);
            mark = self.enter(&mut vm, stack);
            step = if go_on && !self.interrupt.load(Ordering::SeqCst) {
                vm.resume(paused, &mut out).map_err(|e| e.to_string())
            } else {
                Err(vm.interrupt_paused(paused).to_string())
            };
        }
        if changed {
            crate::log::log_as(crate::log::Level::Info, self.peer, what);
        }
        if out.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match step {
            Ok(Step::Done(Flow::Bye)) => send(self.stream, Reply::Bye).map(|_| Flow::Bye),
            Ok(_) => send(self.stream, Reply::Done).map(|_| Flow::Continue),
            Err(msg) => send(self.stream, Reply::Failed(msg)).map(|_| Flow::Continue),
        }
    }
}

/// Streams what the words print to the client, one frame per write.
struct ReplyWriter<'a> {
    stream: &'a UnixStream,
    interrupt: &'a AtomicBool,
    broken: bool,
}

impl Write for ReplyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let chunk = &buf[..buf.len().min(super::proto::MAX_FRAME)];
        if let Err(e) = send(self.stream, Reply::Output(chunk.to_vec())) {
            // The client is gone or does not read: stop its script, free the VM.
            self.broken = true;
            self.interrupt.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(chunk.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
