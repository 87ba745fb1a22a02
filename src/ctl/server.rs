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

use super::proto::{ProtoError, Reply, Request};
use crate::rpcl::{Compiled, Flow, Paused, RpclError, StackSnapshot, Step, Vm};
use std::io::{self, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Tunables of the console server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// An interactive session that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A client that does not take its output for this long is disconnected.
    pub write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server needs from the process that hosts it.
pub trait Host: Send + Sync {
    /// The text of `ethertap status`.
    fn status(&self) -> String;
    /// Begin a clean shutdown of the whole daemon.
    fn request_stop(&self);
}

struct SessionHolder {
    conn: u64,
    pid: Option<i32>,
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
        let shared = Arc::new(Shared {
            vm_interrupt: vm.interrupt_handle(),
            vm: Mutex::new(vm),
            running: AtomicU64::new(0),
            session: Mutex::new(None),
            host,
            config,
            next_conn: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            texts: AtomicUsize::new(0),
        });
        let shutdown = Arc::new(AtomicBool::new(false));
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

    /// Stop accepting clients and interrupt whatever runs or waits; give the interrupted
    /// texts a moment to tell their clients.
    pub fn shutdown(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.shared.stopping.store(true, Ordering::SeqCst);
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

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A panic inside a word must not take the console down for everybody: the VM stays usable.
fn lock_vm(shared: &Shared) -> MutexGuard<'_, Vm> {
    shared.vm.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, shutdown: Arc<AtomicBool>) {
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                let _ = std::thread::Builder::new()
                    .name(format!("ctl-conn-{id}"))
                    .spawn(move || serve_connection(stream, shared, id));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Root only: the socket is mode 0600 already, and the peer's credentials are checked too so
/// that a socket made reachable by mistake still refuses other users.
fn peer_allowed(stream: &UnixStream) -> (bool, Option<i32>) {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => (
            cred.uid() == 0 || cred.uid() == nix::unistd::geteuid().as_raw(),
            Some(cred.pid()),
        ),
        Err(_) => (false, None),
    }
}

enum Incoming {
    Request(Request),
    Bad(String),
}

fn send(stream: &UnixStream, reply: Reply) -> io::Result<()> {
    let mut w = stream;
    reply.write_to(&mut w)
}

fn serve_connection(stream: UnixStream, shared: Arc<Shared>, id: u64) {
    let (allowed, pid) = peer_allowed(&stream);
    if !allowed {
        let _ = send(
            &stream,
            Reply::Failed("permission denied: the ethertap console is for root only".into()),
        );
        return;
    }
    if stream
        .set_write_timeout(Some(shared.config.write_timeout))
        .is_err()
    {
        return;
    }
    let Ok(mut reader) = stream.try_clone() else {
        return;
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let interrupt = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let shared = shared.clone();
        let cancel = cancel.clone();
        let interrupt = interrupt.clone();
        let _ = std::thread::Builder::new()
            .name(format!("ctl-read-{id}"))
            .spawn(move || loop {
                let incoming = match Request::read_from(&mut reader) {
                    Ok(Request::Interrupt) => {
                        // Seen by a text of this client that waits, or that runs.
                        interrupt.store(true, Ordering::SeqCst);
                        interrupt_if_running(&shared, id);
                        continue;
                    }
                    Ok(req) => Incoming::Request(req),
                    Err(ProtoError::Closed) => {
                        cancel.store(true, Ordering::SeqCst);
                        interrupt_if_running(&shared, id);
                        break;
                    }
                    Err(e) => Incoming::Bad(e.to_string()),
                };
                let bad = matches!(incoming, Incoming::Bad(_));
                if tx.send(incoming).is_err() || bad {
                    // After a malformed frame the stream cannot be resynchronised.
                    cancel.store(true, Ordering::SeqCst);
                    interrupt_if_running(&shared, id);
                    break;
                }
            });
    }
    let mut executor = Executor {
        stream: &stream,
        shared: &shared,
        id,
        pid,
        cancel,
        interrupt,
        color: false,
        width: None,
        strict: false,
        in_session: false,
        session_stack: StackSnapshot::default(),
    };
    executor.run(rx);
    executor.leave_session();
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
    pid: Option<i32>,
    cancel: Arc<AtomicBool>,
    /// Ctrl-C of this client: ends a text of its that waits.
    interrupt: Arc<AtomicBool>,
    color: bool,
    /// The client's terminal width, for `.i` and `.d`.
    width: Option<usize>,
    /// `--strict`: texts with warnings are refused.
    strict: bool,
    in_session: bool,
    session_stack: StackSnapshot,
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
    fn run(&mut self, rx: mpsc::Receiver<Incoming>) {
        loop {
            let incoming = match rx.recv_timeout(self.shared.config.idle_timeout) {
                Ok(i) => i,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = send(
                        self.stream,
                        Reply::Notice(format!(
                            "session closed after {} s without input",
                            self.shared.config.idle_timeout.as_secs()
                        )),
                    );
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let req = match incoming {
                Incoming::Request(r) => r,
                Incoming::Bad(msg) => {
                    let _ = send(self.stream, Reply::Failed(format!("bad request: {msg}")));
                    return;
                }
            };
            if self.handle(req).is_err() {
                return;
            }
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
                self.execute(&mut stack, Text::Script { file, source, args })
                    .map(|_| ())
            }
            Request::Eval(line) => {
                let mut stack = StackSnapshot::default();
                self.execute(&mut stack, Text::Line(line)).map(|_| ())
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
                let result = self.execute(&mut stack, Text::Line(line));
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
                let who = h
                    .pid
                    .map_or("another client".to_string(), |p| format!("PID {p}"));
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
                    pid: self.pid,
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

    /// Make the VM this client's: its stack, its terminal, the running mark.
    fn enter(&self, vm: &mut Vm, stack: &mut StackSnapshot) {
        self.shared.running.store(self.id, Ordering::SeqCst);
        vm.swap_stack(stack);
        vm.set_color(self.color);
        vm.set_width(self.width);
    }

    /// Give the VM back: the client's stack leaves with it.
    fn leave(&self, vm: MutexGuard<'a, Vm>, stack: &mut StackSnapshot) {
        let mut vm = vm;
        vm.swap_stack(stack);
        self.shared.running.store(0, Ordering::SeqCst);
    }

    /// The warnings of what the VM compiled or loaded, as notices (the client's stderr).
    fn send_warnings(&self, vm: &mut Vm) -> io::Result<usize> {
        let warnings = vm.take_warnings();
        for w in &warnings {
            send(self.stream, Reply::Notice(w.to_string()))?;
        }
        Ok(warnings.len())
    }

    /// Wait out a paused text without the VM, then take the VM again; `None` when the text
    /// was interrupted meanwhile (Ctrl-C: it ends with an error), an error when the client
    /// went away.
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
    /// clients are served meanwhile.
    fn execute(&mut self, stack: &mut StackSnapshot, text: Text) -> io::Result<Flow> {
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
        self.enter(&mut vm, stack);
        let mut out = ReplyWriter {
            stream: self.stream,
            interrupt: &self.shared.vm_interrupt,
            broken: false,
        };
        let (compiled, what): (Result<Compiled, RpclError>, String) = match text {
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
                self.leave(vm, stack);
                return Err(e);
            }
        };
        let mut step = match compiled {
            Ok(_) if self.strict && warned > 0 => Err(crate::rpcl::strict_refusal(&what, warned)),
            Ok(_) if self.cancel.load(Ordering::SeqCst) => Ok(Step::Done(Flow::Continue)),
            Ok(c) => vm.start(c, &mut out).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        loop {
            let sent = self.send_warnings(&mut vm);
            let paused = match step {
                Ok(Step::Wait(p)) if sent.is_ok() && !out.broken => p,
                other => {
                    self.leave(vm, stack);
                    sent?;
                    step = other;
                    break;
                }
            };
            // The wait: the VM is free for others, the paused text keeps this client's
            // stack, frames and budget.
            self.leave(vm, stack);
            let go_on = self.wait_out(&paused)?;
            vm = self.take_vm(false)?;
            // Cleared before this client is marked as running, checked after: an interrupt
            // that comes in between is either seen here or set on the VM by the reader.
            self.shared.vm_interrupt.store(false, Ordering::SeqCst);
            self.enter(&mut vm, stack);
            step = if go_on && !self.interrupt.load(Ordering::SeqCst) {
                vm.resume(paused, &mut out).map_err(|e| e.to_string())
            } else {
                Err(vm.interrupt_paused(paused).to_string())
            };
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
