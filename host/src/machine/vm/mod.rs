//! The vm machine: skiff's microVM, run by a machine daemon on the host. A machine is a
//! directory: its settings, its data disk, its logs and the sockets of a running one.

pub mod config;
pub mod daemon;
mod egress;
pub mod engines;
pub mod guest;
mod net;
mod ports;
pub mod qemu;
mod refusals;
pub mod virtiofs;

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use self::config::MachineConfig;
use super::{answers, native::log_tail, Endpoint};
use crate::SkiffError;

/// How long a starting machine may take to answer; emulation (TCG) is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a separate engine may take to answer in a running machine.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `machine init` has not been run.
    Missing,
    Stopped,
    /// The daemon runs but the engine does not answer yet.
    Starting,
    Running,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Missing => "missing",
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
        }
    }
}

/// Where machines live: `SKIFF_MACHINES` or, for root, /var/lib/skiff/machines, else the
/// user's data dir.
fn machines_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SKIFF_MACHINES") {
        return PathBuf::from(d);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/skiff/machines");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("skiff/machines")
}

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64
}

impl Machine {
    pub fn named(name: &str) -> Result<Machine> {
        if !valid_name(name) {
            return Err(SkiffError::new(format!(
                "invalid machine name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            ))
            .into());
        }
        Ok(Machine {
            name: name.to_string(),
            dir: machines_dir().join(name),
        })
    }

    /// The machine the vm backend uses: `SKIFF_MACHINE` or `default`.
    pub fn current() -> Result<Machine> {
        Machine::named(&std::env::var("SKIFF_MACHINE").unwrap_or_else(|_| "default".into()))
    }

    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }
    pub fn vhost_socket(&self) -> PathBuf {
        self.dir.join("vhost.sock")
    }
    /// The host side of our vsock device (host-initiated connections).
    pub fn device_socket(&self) -> PathBuf {
        self.dir.join("vsock.sock")
    }
    /// Where the device delivers guest connections to the egress port.
    pub fn egress_socket(&self) -> PathBuf {
        self.dir
            .join(format!("vsock.sock_{}", skiff_common::vsock::EGRESS_PORT))
    }
    /// Where the device delivers the agent's connections to the control port.
    pub fn control_socket(&self) -> PathBuf {
        self.dir
            .join(format!("vsock.sock_{}", skiff_common::vsock::CONTROL_PORT))
    }
    /// Where QEMU's virtio-net backend connects (the daemon relays to passt).
    pub fn net_socket(&self) -> PathBuf {
        self.dir.join("net.sock")
    }
    /// Where the daemon takes requests for separate engines (`--engine`).
    pub fn engines_socket(&self) -> PathBuf {
        self.dir.join("engines.sock")
    }
    /// The API socket of a separate engine, unless the client names its own.
    pub fn engine_socket(&self, engine: &str) -> PathBuf {
        self.dir.join("engines").join(format!("{engine}.sock"))
    }
    /// Have the running machine start engine `name` (if needed) and serve its API on
    /// `socket`; returns once it answers there.
    pub fn ensure_engine(&self, name: &str, socket: &Path) -> Result<()> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        engines::request(
            &self.engines_socket(),
            &serde_json::json!({
                "op": "up",
                "name": name,
                "socket": socket,
                "env": super::engine_env()?,
            }),
        )
        .map_err(|e| SkiffError::new(format!("machine {}: engine {name}: {e:#}", self.name)))?;
        let deadline = Instant::now() + ENGINE_TIMEOUT;
        while !answers(socket) {
            if Instant::now() > deadline {
                return Err(self.failed(&format!(
                    "engine {name} did not answer within {} s",
                    ENGINE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.raw")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    pub fn config(&self) -> Result<Option<MachineConfig>> {
        MachineConfig::load(&self.dir)
    }

    /// The daemon holds this lock for its whole life: a free lock means no daemon.
    pub fn lock_daemon(&self) -> Result<std::fs::File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("daemon.lock"))?;
        // SAFETY: flock on a valid fd.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!("machine {} is already running", self.name);
        }
        Ok(f)
    }

    fn daemon_alive(&self) -> bool {
        let Ok(f) = OpenOptions::new()
            .write(true)
            .open(self.dir.join("daemon.lock"))
        else {
            return false;
        };
        // SAFETY: flock on a valid fd; a lock we get is dropped with the file.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn state(&self) -> Result<State> {
        if self.config()?.is_none() {
            return Ok(State::Missing);
        }
        if !self.daemon_alive() {
            return Ok(State::Stopped);
        }
        Ok(if answers(&self.api_socket()) {
            State::Running
        } else {
            State::Starting
        })
    }

    /// Create the machine: its directory, settings and a sparse data disk.
    pub fn init(&self, cfg: &MachineConfig) -> Result<()> {
        cfg.validate()?;
        if self.config()?.is_some() {
            return Err(SkiffError::new(format!(
                "machine {} already exists; remove it first with `skiff machine rm {}`",
                self.name, self.name
            ))
            .into());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        // The sockets inside reach the engine (and so the VM): the user's alone.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let disk = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(self.disk())
            .with_context(|| format!("creating {}", self.disk().display()))?;
        // Sparse: the disk takes host space only as the guest writes.
        disk.set_len(cfg.disk_gib << 30)?;
        cfg.save(&self.dir)
    }

    /// Start the daemon (which starts the VM) and wait until the engine answers.
    pub fn start(&self, progress: bool) -> Result<()> {
        let cfg = self.config()?.ok_or_else(|| {
            SkiffError::new(format!(
                "machine {} does not exist; create it with `skiff machine init`",
                self.name
            ))
        })?;
        cfg.validate()?;
        match self.state()? {
            State::Running => return Ok(()),
            State::Starting => return self.wait_ready(progress, None),
            _ => {}
        }
        if which(&qemu::binary()).is_none() {
            return Err(SkiffError::new(format!(
                "{} is not installed; the vm backend starts its VM with QEMU (Debian: apt-get install qemu-system-x86)",
                qemu::binary().display()
            ))
            .into());
        }
        let accel = qemu::Accel::detect()?;
        // The daemon logs these too; said here so that no share goes missing unseen.
        for problem in virtiofs::preflight(&cfg.shares()) {
            eprintln!("Warning: machine {}: {problem}", self.name);
        }
        if progress {
            eprintln!(
                "Starting machine {} ({} CPUs, {} MiB, qemu with {})...",
                self.name,
                cfg.cpus,
                cfg.memory_mib,
                accel.name()
            );
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.daemon_log())?;
        let exe = std::env::current_exe().context("finding the skiff binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["machine", "daemon", &self.name])
            .env(
                "SKIFF_MACHINES",
                self.dir.parent().unwrap_or(Path::new("/")),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; the daemon outlives this command.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting the machine daemon")?;
        self.wait_ready(progress, Some(child))
    }

    fn wait_ready(&self, progress: bool, mut child: Option<std::process::Child>) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < BOOT_TIMEOUT {
            if answers(&self.api_socket()) {
                if progress {
                    eprintln!(
                        "Machine {} is running (ready in {:.1} s)",
                        self.name,
                        start.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            if let Some(c) = child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    // Another command may have started the machine at the same moment: ours
                    // then exits (the lock is taken) and theirs comes up.
                    if !self.daemon_alive() {
                        return Err(self.failed(&format!("the machine daemon exited ({status})")));
                    }
                    child = None;
                }
            } else if !self.daemon_alive() {
                return Err(self.failed("the machine daemon exited"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.failed(&format!(
            "the VM did not answer within {} s",
            BOOT_TIMEOUT.as_secs()
        )))
    }

    /// An error that shows why a start failed: the last lines of the daemon's log, QEMU's
    /// own messages and the guest console.
    fn failed(&self, what: &str) -> anyhow::Error {
        let mut msg = format!("machine {} failed to start: {what}.", self.name);
        for log in [
            self.daemon_log(),
            self.dir.join("qemu.log"),
            self.serial_log(),
        ] {
            let tail = log_tail(&log);
            if !tail.trim().is_empty() {
                msg.push_str(&format!("\n--- {} (last lines)\n{tail}", log.display()));
            }
        }
        msg.push_str(&format!(
            "\nCheck the kernel and initramfs given to `skiff machine init`, or see `skiff machine logs {}`.",
            self.name
        ));
        SkiffError::new(msg).into()
    }

    /// Ask the daemon to stop the VM (the guest flushes and ends) and wait for it.
    pub fn stop(&self) -> Result<bool> {
        if !self.daemon_alive() {
            return Ok(false);
        }
        if let Some(pid) = self.daemon_pid() {
            // SAFETY: signal delivery; the pid is the daemon's, from its own pid file.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if !self.daemon_alive() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "machine {} did not stop within 45 s; see {}",
            self.name,
            self.daemon_log().display()
        )
    }
}

/// Sockets of the machine are the user's alone: whoever can write to the API socket controls
/// the VM.
fn bind_private(path: &Path) -> Result<tokio::net::UnixListener> {
    // SAFETY: umask only changes this process's file-creation mask.
    let previous = unsafe { libc::umask(0o177) };
    let l = tokio::net::UnixListener::bind(path);
    // SAFETY: restoring the previous mask.
    unsafe { libc::umask(previous) };
    l.with_context(|| format!("binding {}", path.display()))
}

fn which(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.exists().then(|| bin.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.exists())
}

/// The kernel and image a new machine boots: `SKIFF_KERNEL` / `SKIFF_INITRAMFS`, else the
/// files installed beside skiff (`../share/skiff/` or the binary's own directory).
pub fn default_guest_files() -> (PathBuf, PathBuf) {
    let from_env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let find = |file: &str| {
        [
            exe_dir.join("../share/skiff").join(file),
            exe_dir.join(file),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| exe_dir.join(file))
    };
    (
        from_env("SKIFF_KERNEL").unwrap_or_else(|| find("vmlinux")),
        from_env("SKIFF_INITRAMFS").unwrap_or_else(|| find("initramfs.cpio")),
    )
}

pub fn default_config(name: &str) -> MachineConfig {
    let (kernel, initramfs) = default_guest_files();
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    MachineConfig {
        name: name.to_string(),
        cpus: host_cpus.min(2),
        memory_mib: 2048,
        disk_gib: 64,
        kernel,
        initramfs,
        created: chrono::Utc::now().to_rfc3339(),
        shares: Some(config::default_shares()),
    }
}

/// The vm backend on first use: create the default machine if there is none, and start it.
pub fn ensure_running(ep: &Endpoint) -> Result<()> {
    if answers(&ep.socket) {
        return Ok(());
    }
    let m = Machine::current()?;
    if m.config()?.is_none() {
        eprintln!("Creating machine {}...", m.name);
        m.init(&default_config(&m.name))?;
    }
    if m.state()? != State::Running {
        m.start(true)?;
    }
    match &ep.engine {
        Some(e) => m.ensure_engine(e, &ep.socket),
        None => Ok(()),
    }
}
