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
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ContainerError;
use super::record::Status;
use super::{security, spec, user, Container};

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub tty: Option<bool>,
    #[serde(default)]
    pub attach_stdin: Option<bool>,
    #[serde(default)]
    pub attach_stdout: Option<bool>,
    #[serde(default)]
    pub attach_stderr: Option<bool>,
    #[serde(default)]
    pub detach_keys: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub console_size: Option<Vec<u16>>,
}

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
            Status::Running => {}
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
    let rec = exec.container.record();
    let cfg = &exec.config;
    let user_spec = cfg
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| rec.config.user.clone())
        .unwrap_or_default();
    let group_add = rec.host_config.group_add.clone().unwrap_or_default();
    let u = user::resolve_user(rootfs, &user_spec, &group_add)
        .map_err(|e| ContainerError::invalid(e.to_string()))?;
    let hostname = rec.hostname();
    let mut env = spec::environment(&rec, &hostname);
    for kv in cfg.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let tty = cfg.tty.unwrap_or(false);
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let hc = &rec.host_config;
    let caps = security::resolve_caps(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        hc.privileged.unwrap_or(false) || cfg.privileged.unwrap_or(false),
    )
    .map_err(|e| ContainerError::invalid(e.to_string()))?;
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| rec.config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut p = json!({
        "terminal": tty,
        "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids},
        "args": cfg.cmd.clone().unwrap_or_default(),
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    if let Some(size) = cfg
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
    {
        p["consoleSize"] = json!({"height": size[0], "width": size[1]});
    }
    Ok(p)
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
