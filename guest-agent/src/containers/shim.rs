//! The per-container supervisor ("shim"): `skiff-agent shim <container dir>`.
//!
//! Why a process of its own: the agent may die (a crash, SIGKILL, an upgrade) and no container
//! may die with it. The shim is started in its own session, creates the container through
//! libcontainer (so the container's init is the shim's child), holds the container's stdio,
//! appends every byte of output to the container's log, takes stdin / resize / signal requests
//! on a unix socket, reaps the init, and writes the exit status to `exit.json` before it exits.
//! The agent watches the shim through a pidfd and reads `exit.json`; a restarted agent finds
//! both again, so nothing is lost while it is away.
//!
//! The shim is plain threads, no async runtime: it has few fds and must stay small.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::logs::{LogWriter, Stream};
use super::record::now_rfc3339;

pub const CONFIG_FILE: &str = "shim.json";
pub const EXIT_FILE: &str = "exit.json";
pub const SOCKET_FILE: &str = "shim.sock";

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ShimConfig {
    pub id: String,
    pub bundle: PathBuf,
    /// libcontainer's state root (one per agent root).
    pub runtime_root: PathBuf,
    pub log: PathBuf,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// Rows, columns.
    pub console_size: Option<(u16, u16)>,
    /// The container's cgroup, relative to the hierarchy roots (for the OOM count).
    pub cgroup: String,
    /// Remount the container's cgroup v1 hierarchies read-only before it starts (`cgroup_ro`).
    #[serde(default)]
    pub cgroup_ro: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ExitInfo {
    pub exit_code: i64,
    pub oom_killed: bool,
    pub finished_at: String,
}

/// The first line the shim writes to its stdout, read by the agent.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Started {
    Running { pid: i32 },
    Failed { error: String },
}

pub fn main(dir: &Path) -> i32 {
    // The shim must outlive `pkill skiff-agent` aimed at the agent, and show as what it is.
    let _ = prctl_name("skiff-shim");
    survive_signals();
    // SAFETY: prctl with an integer flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    // fd 1 is the pipe to the agent: one line, then it is closed.
    // SAFETY: fd 1 is ours; we take ownership to close it after the report.
    let mut report = unsafe { File::from_raw_fd(1) };
    let cfg = match read_config(dir) {
        Ok(c) => c,
        Err(e) => {
            send(
                &mut report,
                &Started::Failed {
                    error: format!("{e:#}"),
                },
            );
            return 1;
        }
    };
    reserve_exit(dir);
    let setup = match create_and_start(dir, &cfg) {
        Ok(s) => s,
        Err(e) => {
            cleanup_runtime(&cfg);
            send(
                &mut report,
                &Started::Failed {
                    error: format!("{e:#}"),
                },
            );
            return 1;
        }
    };
    send(
        &mut report,
        &Started::Running {
            pid: setup.pid.as_raw(),
        },
    );
    drop(report);
    redirect_stdout_to_null();
    supervise(dir, &cfg, setup);
    0
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Catch, rather than ignore, the signals a shim must live through: an ignored disposition
/// would be inherited by the container's process across exec (and a shell cannot trap a
/// signal ignored at entry, so `docker stop` would never reach it), a caught one is reset to
/// the default there. SIGPIPE too, which Rust's runtime set to ignored.
pub fn survive_signals() {
    // Whatever we inherited (a shell's background job ignores SIGINT and SIGQUIT) must not
    // reach the container: everything back to default, nothing blocked.
    for n in 1..=64 {
        if let Ok(sig) = Signal::try_from(n) {
            if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
                // SAFETY: restoring the default disposition runs no code.
                let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
            }
        }
    }
    let _ = signal::sigprocmask(
        signal::SigmaskHow::SIG_SETMASK,
        Some(&signal::SigSet::empty()),
        None,
    );
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        let _ = unsafe { signal::signal(s, SigHandler::Handler(ignore_signal)) };
    }
}

fn prctl_name(name: &str) -> std::io::Result<()> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    if unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn redirect_stdout_to_null() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which we no longer use as a File.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn send(report: &mut File, msg: &Started) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = report.write_all(&line);
    }
}

fn read_config(dir: &Path) -> Result<ShimConfig> {
    let raw = std::fs::read(dir.join(CONFIG_FILE)).context("reading shim.json")?;
    serde_json::from_slice(&raw).context("parsing shim.json")
}

struct Setup {
    pid: Pid,
    /// Where stdin requests write (the pty master or the pipe), if stdin is open.
    stdin: Option<File>,
    /// The pty master (for resize), when there is a tty.
    master: Option<Arc<File>>,
    /// Output sources and the stream each feeds.
    outputs: Vec<(File, Stream)>,
    listener: UnixListener,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")
}

fn create_and_start(dir: &Path, cfg: &ShimConfig) -> Result<Setup> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;

    let _ = std::fs::remove_file(dir.join(SOCKET_FILE));
    let sock = super::sockpath::socket_path(dir, SOCKET_FILE).context("shim socket path")?;
    let listener = UnixListener::bind(&sock.path).context("binding the shim socket")?;

    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&cfg.runtime_root)
        .context("runtime root")?;
    let mut stdin = None;
    let mut outputs = Vec::new();
    let console = dir.join("console.sock");
    let console_short =
        super::sockpath::socket_path(dir, "console.sock").context("console path")?;
    let console_listener;
    if cfg.tty {
        let _ = std::fs::remove_file(&console);
        console_listener =
            Some(UnixListener::bind(&console_short.path).context("binding console socket")?);
        builder = builder.with_console_socket(Some(&console_short.path));
    } else {
        console_listener = None;
        if cfg.open_stdin {
            let (r, w) = pipe()?;
            builder = builder.with_stdin(r);
            stdin = Some(File::from(w));
        } else {
            let null = File::open("/dev/null").context("opening /dev/null")?;
            builder = builder.with_stdin(OwnedFd::from(null));
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        outputs.push((File::from(out_r), Stream::Stdout));
        outputs.push((File::from(err_r), Stream::Stderr));
    }

    let mut container = builder
        .as_init(&cfg.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| anyhow!(describe_runtime_error(&e.to_string())))?;

    let mut master = None;
    if let Some(l) = console_listener {
        let fd = super::tty::receive_master(&l).context("receiving the container's terminal")?;
        let m = File::from(fd);
        if let Some((rows, cols)) = cfg.console_size {
            super::tty::set_winsize(m.as_raw_fd(), rows, cols);
        }
        let reader = m.try_clone().context("duplicating the terminal")?;
        outputs.push((reader, Stream::Stdout));
        stdin = Some(m.try_clone().context("duplicating the terminal")?);
        master = Some(Arc::new(m));
        let _ = std::fs::remove_file(&console);
    }

    if let Some(pid) = container.pid() {
        bring_up_loopback(pid.as_raw()).context("bringing up the container's loopback")?;
        if cfg.cgroup_ro {
            super::cgroup_ro::make_read_only(pid.as_raw())
                .context("making the container's cgroups read-only")?;
        }
    }
    container
        .start()
        .map_err(|e| anyhow!(describe_runtime_error(&e.to_string())))?;
    let pid = container
        .pid()
        .ok_or_else(|| anyhow!("the runtime did not report the container's pid"))?;
    Ok(Setup {
        pid,
        stdin,
        master,
        outputs,
        listener,
    })
}

/// A new network namespace has `lo` down; docker's containers (even `--network none`) have it
/// up. Done from a thread that joins the container's namespace, so the shim stays where it is.
fn bring_up_loopback(pid: i32) -> Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net")).context("opening the network namespace")?;
    std::thread::spawn(move || -> Result<()> {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        // SAFETY: a plain datagram socket, closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(std::io::Error::last_os_error()).context("socket");
        }
        // SAFETY: sock is ours; ifreq is plain data, zeroed, with the name "lo".
        let res = unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
            if r == 0 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
            }
            let err = std::io::Error::last_os_error();
            libc::close(sock);
            if r == 0 {
                Ok(())
            } else {
                Err(err)
            }
        };
        res.context("setting lo up")
    })
    .join()
    .map_err(|_| anyhow!("the loopback thread panicked"))?
}

/// Turn libcontainer's wording into docker's, which the docker CLI matches to pick 126/127.
pub fn describe_runtime_error(msg: &str) -> String {
    if let Some(rest) = msg.split("executable '").nth(1) {
        let name = rest.split('\'').next().unwrap_or(rest);
        if msg.contains("not found in $PATH") {
            return format!(
                "failed to create task for container: exec: \"{name}\": executable file not found in $PATH: unknown"
            );
        }
        if msg.contains("does not have correct permissions") {
            return format!(
                "failed to create task for container: exec: \"{name}\": permission denied: unknown"
            );
        }
    }
    format!("failed to create task for container: {msg}")
}

fn supervise(dir: &Path, cfg: &ShimConfig, setup: Setup) {
    let log = match LogWriter::open(&cfg.log) {
        Ok(l) => Arc::new(Mutex::new(l)),
        Err(e) => {
            eprintln!("shim: opening log: {e}");
            return;
        }
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let n_outputs = setup.outputs.len();
    for (src, stream) in setup.outputs {
        let log = log.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            pump_output(src, stream, &log);
            let _ = done.send(());
        });
    }
    let init = setup.pid;
    let exited = Arc::new(AtomicBool::new(false));
    let stdin = Arc::new(Mutex::new(setup.stdin));
    let control = Control {
        init,
        exited: exited.clone(),
        stdin,
        master: setup.master,
        stdin_once: cfg.stdin_once && !cfg.tty,
        stdin_clients: Arc::new(AtomicI32::new(0)),
    };
    let listener = setup.listener;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let control = control.clone();
            std::thread::spawn(move || control.serve(conn));
        }
    });

    let status = reap_until(init);
    exited.store(true, Ordering::SeqCst);
    // Output ends when the last writer is gone; the pid namespace died with its init, so that
    // is now. The deadline only guards against a writer we do not know of.
    for _ in 0..n_outputs {
        if done_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            break;
        }
    }
    let oom = oom_kills(&cfg.cgroup) > 0;
    cleanup_runtime(cfg);
    let info = ExitInfo {
        exit_code: status,
        oom_killed: oom && status == 137,
        finished_at: now_rfc3339(),
    };
    if let Err(e) = write_exit(dir, &info) {
        eprintln!("shim: writing exit status: {e:#}");
    }
}

fn pump_output(mut src: File, stream: Stream, log: &Mutex<LogWriter>) {
    let mut buf = vec![0u8; super::logs::MAX_CHUNK];
    loop {
        match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let mut w = log.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = w.write(stream, &buf[..n]) {
                    eprintln!("shim: writing log: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A pty master reports EIO once the last slave holder is gone: the normal end.
            Err(_) => return,
        }
    }
}

/// Reap every child (we are a subreaper) until the container's init is gone; its status in
/// docker's terms (128 + signal when killed).
fn reap_until(init: Pid) -> i64 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => return code as i64,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return 128 + sig as i64,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return 255,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// How many times the kernel's OOM killer struck in the container's cgroup (v2 or v1).
pub fn oom_kills(cgroup: &str) -> u64 {
    let rel = cgroup.trim_start_matches('/');
    let candidates = [
        (format!("/sys/fs/cgroup/{rel}/memory.events"), "oom_kill "),
        (
            format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
            "oom_kill ",
        ),
    ];
    for (path, key) in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix(key) {
                    return v.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    0
}

fn cleanup_runtime(cfg: &ShimConfig) {
    let state = cfg.runtime_root.join(&cfg.id);
    if let Ok(mut c) = libcontainer::container::Container::load(state.clone()) {
        if let Err(e) = c.delete(true) {
            eprintln!("shim: removing runtime state: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&state);
}

const EXIT_TMP: &str = ".exit.json.tmp";

/// Takes the disk space the exit status will need before the container starts, so that a
/// container which fills the disk still has its exit code recorded when it ends. (ext4 keeps
/// accepting a file this small when it refuses large writes, so the test on a full ext4 disk
/// passes with or without this; other filesystems are less forgiving.)
fn reserve_exit(dir: &Path) {
    let reserved = File::create(dir.join(EXIT_TMP)).and_then(|mut f| f.write_all(&[b' '; 4096]));
    if let Err(e) = reserved {
        eprintln!("shim: reserving space for the exit status: {e}");
    }
}

fn write_exit(dir: &Path, info: &ExitInfo) -> Result<()> {
    let tmp = dir.join(EXIT_TMP);
    let data = serde_json::to_vec(info)?;
    // Written over the reserved blocks (no truncation first: that would give them back).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&tmp)?;
    f.write_all(&data)?;
    f.set_len(data.len() as u64)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(EXIT_FILE))?;
    Ok(())
}

#[derive(Clone)]
struct Control {
    init: Pid,
    exited: Arc<AtomicBool>,
    stdin: Arc<Mutex<Option<File>>>,
    master: Option<Arc<File>>,
    stdin_once: bool,
    stdin_clients: Arc<AtomicI32>,
}

impl Control {
    /// One request per connection: a command line, then (for `stdin`) the raw bytes.
    fn serve(&self, conn: UnixStream) {
        let mut reader = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => return,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut words = line.split_whitespace();
        let reply = match words.next() {
            Some("stdin") => {
                self.forward_stdin(reader);
                return;
            }
            Some("resize") => {
                let rows = words.next().and_then(|v| v.parse().ok());
                let cols = words.next().and_then(|v| v.parse().ok());
                match (&self.master, rows, cols) {
                    (Some(m), Some(r), Some(c)) => {
                        super::tty::set_winsize(m.as_raw_fd(), r, c);
                        "ok".to_string()
                    }
                    (None, _, _) => "error the container has no terminal".into(),
                    _ => "error bad size".into(),
                }
            }
            Some("kill") => {
                let sig = words.next().and_then(|v| v.parse::<i32>().ok());
                match sig.map(Signal::try_from) {
                    Some(Ok(sig)) if !self.exited.load(Ordering::SeqCst) => {
                        match signal::kill(self.init, sig) {
                            Ok(()) => "ok".into(),
                            Err(e) => format!("error {e}"),
                        }
                    }
                    Some(Ok(_)) => "error not running".into(),
                    _ => "error bad signal".into(),
                }
            }
            _ => "error unknown request".into(),
        };
        let mut conn = conn;
        let _ = conn.write_all(format!("{reply}\n").as_bytes());
    }

    fn forward_stdin(&self, mut from: BufReader<UnixStream>) {
        let Some(mut to) = self
            .stdin
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(|f| f.try_clone().ok()))
        else {
            return;
        };
        self.stdin_clients.fetch_add(1, Ordering::SeqCst);
        let _ = std::io::copy(&mut from, &mut to);
        drop(to);
        // docker's StdinOnce: the container sees EOF when its attached client's stdin ends.
        if self.stdin_clients.fetch_sub(1, Ordering::SeqCst) == 1 && self.stdin_once {
            if let Ok(mut g) = self.stdin.lock() {
                g.take();
            }
        }
    }
}
