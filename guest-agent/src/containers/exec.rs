//! `docker exec`: a process started inside a running container.
//!
//! The agent is multi-threaded, and forking one to enter a container's namespaces is unsafe;
//! so each exec runs `skiff-agent exec …` (one short-lived helper process, single-threaded)
//! which joins the container through libcontainer's tenant builder, waits for the process
//! and exits with its status. The helper's stdin/stdout/stderr are the process's, unless it
//! has a tty: then libcontainer hands the pty master to the agent over a console socket.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::error::ContainerError;
pub use super::process::ExecConfig;
use super::record::Status;
use super::Container;

#[derive(Default)]
pub struct ExecState {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
    /// The pty master while a tty exec runs (for resize).
    pub master: Option<Arc<OwnedFd>>,
}

pub struct Exec {
    pub id: String,
    pub container: Arc<Container>,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
}

impl Exec {
    pub fn inspect(&self) -> Value {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let cmd = self.config.cmd.clone().unwrap_or_default();
        json!({
            "ID": self.id,
            "Running": st.running,
            "ExitCode": st.exit_code,
            "ProcessConfig": {
                "tty": self.config.tty.unwrap_or(false),
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
                "privileged": self.config.privileged.unwrap_or(false),
                "user": self.config.user.clone().unwrap_or_default(),
            },
            "OpenStdin": self.config.attach_stdin.unwrap_or(false),
            "OpenStderr": self.config.attach_stderr.unwrap_or(false),
            "OpenStdout": self.config.attach_stdout.unwrap_or(false),
            "CanRemove": false,
            "ContainerID": self.container.id,
            "DetachKeys": self.config.detach_keys.clone().unwrap_or_default(),
            "Pid": st.pid,
        })
    }
}

#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub fn create(&self, c: Arc<Container>, config: ExecConfig) -> Result<String, ContainerError> {
        match c.status() {
            Status::Running => super::cgroup_prime::prime(),
            Status::Paused => {
                return Err(ContainerError::conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    c.id
                )))
            }
            _ => {
                return Err(ContainerError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )))
            }
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ContainerError::invalid("No exec command specified"));
        }
        let id = super::engine::new_id()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Old finished execs are of no use to anyone: keep the map from growing forever.
        if map.len() > 1000 {
            map.retain(|_, e| e.state.lock().map(|s| s.running).unwrap_or(false));
        }
        map.insert(
            id.clone(),
            Arc::new(Exec {
                id: id.clone(),
                container: c,
                config,
                state: Mutex::new(ExecState::default()),
            }),
        );
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Exec>, ContainerError> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::not_found(format!("No such exec instance: {id}")))
    }
}

/// The OCI process for the exec, written where the helper reads it.
pub fn process_json(exec: &Exec, rootfs: &Path) -> Result<Value, ContainerError> {
    super::process::process_json(&exec.container.record(), &exec.config, rootfs)
}

/// The helper process: `skiff-agent exec RUNTIME_ROOT ID PROCESS_JSON [CONSOLE_SOCKET]`.
pub fn helper_main(args: &[std::ffi::OsString]) -> i32 {
    // The exec'd process must not inherit Rust's ignored SIGPIPE.
    super::shim::survive_signals();
    match helper(args) {
        Ok(code) => code,
        Err(e) => {
            let msg = super::shim::describe_runtime_error(&format!("{e:#}")).replace(
                "failed to create task for container",
                "OCI runtime exec failed",
            );
            eprintln!("{msg}");
            // docker's codes: 127 the command is not there, 126 it cannot be run.
            if msg.contains("executable file not found") {
                127
            } else {
                126
            }
        }
    }
}

/// Eight bytes from the kernel's generator (the clock, should it fail: better than nothing).
fn kernel_random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most the given length into our buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == bytes.len() as isize {
        return u64::from_ne_bytes(bytes);
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
        .unwrap_or(u64::from(std::process::id()))
}

/// The process the helper runs, once it exists, and whether a SIGTERM came before it did.
static RUNNING: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static TERMINATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGTERM to the helper kills the process it runs (a health check past its timeout); the
/// helper then reaps it and exits as it would.
extern "C" fn kill_running(_: libc::c_int) {
    use std::sync::atomic::Ordering::SeqCst;
    TERMINATED.store(true, SeqCst);
    let pid = RUNNING.load(SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn helper(args: &[std::ffi::OsString]) -> Result<i32> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;
    use nix::sys::wait::{waitpid, WaitStatus};

    let [root, id, process, rest @ ..] = args else {
        return Err(anyhow!(
            "usage: skiff-agent exec RUNTIME_ROOT ID PROCESS_JSON [CONSOLE]"
        ));
    };
    let id = id.to_string_lossy().to_string();
    // libcontainer names its notify socket with fastrand, whose seed is the clock and the
    // thread ID only. Helpers started in the same clock tick (hundreds of `exec`s at once, in
    // a VM under emulation) drew the same name and all but one failed to bind it.
    fastrand::seed(kernel_random_u64());
    // Installed before the process exists, so that an early SIGTERM is not lost (the
    // processes libcontainer forks reset it when they exec).
    // The handler only stores, loads and calls kill, all async-signal-safe.
    let term = nix::sys::signal::SigHandler::Handler(kill_running);
    // SAFETY: as above.
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGTERM, term) };
    let mut b = ContainerBuilder::new(id, SyscallType::default())
        .with_root_path(PathBuf::from(root))
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(console) = rest.first() {
        b = b.with_console_socket(Some(PathBuf::from(console)));
    }
    let built = b
        .as_tenant()
        .with_process(Some(PathBuf::from(process)))
        .with_detach(true)
        .build();
    // The agent wrote it for this one start; nobody reads it again, and a file left behind
    // goes with the container's directory.
    let _ = std::fs::remove_file(process);
    let pid = built.map_err(|e| anyhow!("{e}"))?;
    RUNNING.store(pid.as_raw(), std::sync::atomic::Ordering::SeqCst);
    if TERMINATED.load(std::sync::atomic::Ordering::SeqCst) {
        kill_running(libc::SIGTERM);
    }
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow!("waiting for the exec'd process: {e}")),
        }
    }
}
