//! The native machine: the agent runs on this Linux host as a daemon. `skiff` starts it on
//! first use, detached, logging to `ROOT/agent.log`.

use std::fs::OpenOptions;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{answers, Endpoint};
use crate::SkiffError;

fn agent_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SKIFF_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("skiff-agent");
        if sibling.exists() {
            return Ok(sibling);
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("skiff-agent"))
                .find(|p| p.exists())
        })
        .ok_or_else(|| {
            anyhow!(
                "cannot find the skiff-agent binary next to skiff or on PATH; set SKIFF_AGENT_BIN"
            )
        })
}

/// Make sure an agent answers on the endpoint's socket, starting one if needed.
pub fn ensure_running(ep: &Endpoint) -> Result<()> {
    // A `/_ping` here cost every command a round trip through the engine; a listening
    // socket whose agent lives says as much. Otherwise the ping decides.
    if skiff_common::listener::live_listener(&ep.socket) || answers(&ep.socket) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SkiffError::new(format!(
            "the skiff agent is not running at unix://{} and starting it needs root \
             (it creates namespaces, mounts and cgroups); run skiff with sudo",
            ep.socket.display()
        ))
        .into());
    }
    // Private from the start (the agent checks it again): it will hold every image's files.
    if let Some(parent) = ep.root.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o710).create(&ep.root) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("creating {}", ep.root.display()))
        }
        _ => {}
    }
    let log_path = ep.root.join("agent.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let bin = agent_binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--root")
        .arg(&ep.root)
        .arg("--socket")
        .arg(&ep.socket);
    // The engine's settings from the user's settings file (the environment's own pass on as
    // they are).
    cmd.envs(
        super::engine_env()?
            .iter()
            .filter_map(|w| w.split_once('=')),
    );
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the agent leaves our session so that it outlives us.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if answers(&ep.socket) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            // Another skiff may have started an agent at the same moment: ours then exits
            // because the state dir is taken, and theirs answers shortly.
            let grace = Instant::now() + Duration::from_secs(3);
            while Instant::now() < grace {
                if answers(&ep.socket) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            bail!(
                "the skiff agent exited ({status}) right after starting; its log ({}) ends with:\n{}",
                log_path.display(),
                log_tail(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!(
        "the skiff agent did not answer on {} within 20 s; its log ({}) ends with:\n{}",
        ep.socket.display(),
        log_path.display(),
        log_tail(&log_path)
    )
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
