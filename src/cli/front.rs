//! What `ethertap run / eval / console / status / stop` and `control ethertap` do: talk to the
//! daemon when one runs, fall back to a local VM when none does.

use super::local;
use crate::ctl::client::{Client, Outcome};
use crate::ctl::proto::{JsonReport, ProtoError, Request};
use crate::ctl::{pidfile, socket_path};
use crate::rpcl::{self, ConsoleBackend, ConsoleError, Flow};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Exit status when the daemon is not running (`status`, `stop`), as `control` uses it.
pub const NOT_RUNNING: u8 = 3;

/// The daemon's console, or `None` (with a one-line notice) when no daemon runs.
fn daemon_or_notice(local: bool) -> Result<Option<Client>, ExitCode> {
    if local {
        return Ok(None);
    }
    let path = socket_path();
    match Client::connect(&path) {
        Ok(Some(c)) => Ok(Some(c)),
        Ok(None) => {
            eprintln!(
                "ethertap: no daemon running; using a local VM (engine words need `ethertap start -d IF0 [IF1]`)"
            );
            Ok(None)
        }
        Err(e) => {
            eprintln!(
                "ethertap: cannot reach the daemon at {}: {e}",
                path.display()
            );
            Err(ExitCode::FAILURE)
        }
    }
}

fn sigint_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
    flag
}

/// Tell the daemon what this client's output is: a terminal (colours, its width) or not.
fn describe_terminal(client: &mut Client) {
    let terminal = std::io::stdout().is_terminal();
    let _ = client.set_color(terminal);
    let _ = client.set_width(crate::rpcl::stdout_width());
}

/// Send one request, stream its output (warnings and notices on stderr), and turn the
/// outcome into an exit status; `strict` refuses a text with warnings.
fn remote(mut client: Client, req: Request, strict: bool) -> ExitCode {
    describe_terminal(&mut client);
    if strict {
        let _ = client.set_strict(true);
    }
    let interrupt = sigint_flag();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match client.call(&req, &mut out, &mut err, &interrupt) {
        Ok(Outcome::Done | Outcome::Bye) => ExitCode::SUCCESS,
        Ok(Outcome::Failed(msg) | Outcome::Refused(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
        // The reader of our output went away (`| head`): stop quietly; dropping the
        // connection interrupts the script in the daemon.
        Err(ProtoError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::FAILURE
        }
        Err(ProtoError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("ethertap: not sent to the daemon: {e} (`--local` runs it here)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ethertap: lost the daemon: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ethertap run FILE [ARG…]`: compile here (parse errors never reach the daemon), run there;
/// the warnings are the daemon's, whose dictionary the script meets. The file is checked
/// (regular, size) before it is read or compiled.
pub fn run(file: &str, args: Vec<String>, local: bool, strict: bool) -> ExitCode {
    let source = match local::read_script(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ethertap: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(errors) = rpcl::check(file, &source) {
        for e in errors {
            eprintln!("{e}");
        }
        return ExitCode::FAILURE;
    }
    match daemon_or_notice(local) {
        Ok(Some(client)) => remote(
            client,
            Request::Run {
                file: file.to_string(),
                source,
                args,
            },
            strict,
        ),
        Ok(None) => local::run_local(super::local_vm(), file, &source, args, strict),
        Err(code) => code,
    }
}

/// `ethertap eval 'LINE'`.
pub fn eval(line: &str, local: bool, strict: bool) -> ExitCode {
    if let Err(errors) = rpcl::check_line(line) {
        for e in errors {
            eprintln!("{e}");
        }
        return ExitCode::FAILURE;
    }
    match daemon_or_notice(local) {
        Ok(Some(client)) => remote(client, Request::Eval(line.to_string()), strict),
        Ok(None) => local::eval_local(super::local_vm(), line, strict),
        Err(code) => code,
    }
}

/// The console backend that runs each line in the daemon's VM.
struct RemoteBackend {
    client: Client,
    interrupt: Arc<AtomicBool>,
}

impl ConsoleBackend for RemoteBackend {
    fn eval(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, ConsoleError> {
        let mut notices = std::io::stderr();
        // The window may have been resized since the last line.
        let _ = self.client.set_width(crate::rpcl::stdout_width());
        match self.client.call(
            &Request::Line(line.to_string()),
            out,
            &mut notices,
            &self.interrupt,
        ) {
            Ok(Outcome::Done) => Ok(Flow::Continue),
            Ok(Outcome::Bye) => Ok(Flow::Bye),
            Ok(Outcome::Failed(msg) | Outcome::Refused(msg)) => Err(ConsoleError::Remote(msg)),
            Err(ProtoError::Closed) => {
                // The daemon stopped, or closed an idle session: nothing more to send it.
                eprintln!("ethertap: the daemon closed the session");
                Ok(Flow::Bye)
            }
            Err(e) => Err(ConsoleError::Remote(format!("lost the daemon: {e}"))),
        }
    }

    fn word_names(&mut self) -> Vec<String> {
        self.client.words().unwrap_or_default()
    }

    fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".ethertap_history"))
}

/// `ethertap console` / `control ethertap`: the `ok ` console in the daemon's VM (one session
/// at a time), or a local REPL when no daemon runs.
pub fn console(local: bool) -> ExitCode {
    match daemon_or_notice(local) {
        Ok(Some(c)) => session(c),
        Ok(None) => local::console_local(super::local_vm()),
        Err(code) => code,
    }
}

/// `control ethertap`: the `ok ` console in the daemon's VM, never a local one (the user asked
/// for the daemon); exit 3 when none runs.
pub fn attach() -> ExitCode {
    match Client::connect(&socket_path()) {
        Ok(Some(c)) => session(c),
        Ok(None) => {
            eprintln!(
                "ethertap is not running (no console socket {}); start it with `ethertap start -d IF0 [IF1]`",
                socket_path().display()
            );
            ExitCode::from(NOT_RUNNING)
        }
        Err(e) => {
            eprintln!(
                "ethertap: cannot reach the daemon at {}: {e}",
                socket_path().display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The interactive session on an open connection: claim the one session, then the console.
fn session(mut client: Client) -> ExitCode {
    describe_terminal(&mut client);
    let never = AtomicBool::new(false);
    match client.call(
        &Request::OpenSession,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        &never,
    ) {
        Ok(Outcome::Done) => {}
        Ok(Outcome::Refused(msg) | Outcome::Failed(msg)) => {
            eprintln!("ethertap: {msg}");
            return ExitCode::FAILURE;
        }
        Ok(Outcome::Bye) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ethertap: cannot open a session: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut backend = RemoteBackend {
        client,
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    match rpcl::run_console(&mut backend, history_file()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ethertap: console: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line on stdout; a closed stdout (`| head`) is not worth a panic.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn not_running() -> ExitCode {
    eprintln!("ethertap is not running");
    ExitCode::from(NOT_RUNNING)
}

/// Sends `req` to the daemon; exit 3 when none runs.
fn to_daemon(req: Request) -> ExitCode {
    match Client::connect(&socket_path()) {
        Ok(Some(client)) => remote(client, req, false),
        Ok(None) => not_running(),
        Err(e) => {
            eprintln!("ethertap: cannot reach the daemon: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ethertap status [--json]`: pid, uptime, interfaces, mode, queue.
pub fn status(json: bool) -> ExitCode {
    to_daemon(if json {
        Request::Json(JsonReport::Status)
    } else {
        Request::Status
    })
}

/// `ethertap stats [--json]`: `if.stats` and `tap.queue.status`, or the JSON report.
pub fn stats(json: bool) -> ExitCode {
    to_daemon(if json {
        Request::Json(JsonReport::Stats)
    } else {
        Request::Eval("if.stats tap.queue.status".into())
    })
}

/// `ethertap log [-n N]`: the daemon's last log lines.
pub fn log(lines: u32) -> ExitCode {
    to_daemon(Request::Log(lines))
}

/// `ethertap stop`: a clean shutdown through the console socket (interfaces restored), then
/// wait for the process to be gone. A daemon whose socket no longer answers gets SIGTERM.
pub fn stop(timeout: Duration) -> ExitCode {
    let (_, pid_path) = pidfile::target("ethertap").expect("fixed id");
    let pid = pidfile::running_pid(&pid_path);
    match Client::connect(&socket_path()) {
        Ok(Some(mut client)) => {
            let never = AtomicBool::new(false);
            let r = client.call(
                &Request::Stop,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
                &never,
            );
            match r {
                Ok(Outcome::Done | Outcome::Bye) => {}
                // Refused (e.g. not root): nothing will stop, so there is nothing to wait for.
                Ok(Outcome::Failed(msg) | Outcome::Refused(msg)) => {
                    eprintln!("ethertap: stop: {msg}");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("ethertap: stop: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let Some(pid) = pid else {
                say("shutdown of ethertap complete");
                return ExitCode::SUCCESS;
            };
            let deadline = std::time::Instant::now() + timeout;
            while crate::sys::is_alive(pid) {
                if std::time::Instant::now() > deadline {
                    eprintln!(
                        "ethertap PID {pid} did not exit within {} s",
                        timeout.as_secs()
                    );
                    return ExitCode::FAILURE;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            say(&format!("shutdown of ethertap PID {pid} complete"));
            ExitCode::SUCCESS
        }
        Ok(None) if pid.is_some() => {
            let reply = pidfile::control_stop("ethertap", &pid_path, timeout);
            if reply.code == 0 {
                say(&reply.message);
            } else {
                eprintln!("{}", reply.message);
            }
            ExitCode::from(reply.code as u8)
        }
        Ok(None) => not_running(),
        Err(e) => {
            eprintln!("ethertap: cannot reach the daemon: {e}");
            ExitCode::FAILURE
        }
    }
}
