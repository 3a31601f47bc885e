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

/// Whether an agent that is not dying listens on `socket`. A request to an agent still
/// starting waits in the backlog until it serves, and a dead agent's leftover file refuses
/// the connection. But an agent just killed can still accept while its last threads exit
/// (its main thread already a zombie), and would then reset the request: so the listener's
/// process, which the kernel names to the client (`SO_PEERCRED`), must be alive.
fn listening(socket: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives across the call.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    r == 0 && cred.pid > 0 && process_lives(cred.pid)
}

/// A process that exists and is not a zombie.
fn process_lives(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold any byte.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

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
    // socket whose agent lives says as much (`listening`). Otherwise the ping decides.
    if listening(&ep.socket) || answers(&ep.socket) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_agent_is_seen_and_a_leftover_socket_or_a_zombie_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        assert!(!listening(&sock));
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(listening(&sock));
        drop(l);
        assert!(sock.exists());
        // A child another test forks holds the listener open until it execs: give it time.
        let deadline = Instant::now() + Duration::from_secs(5);
        while listening(&sock) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!listening(&sock));

        assert!(process_lives(std::process::id() as i32));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: a zombie once it has exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_lives(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!process_lives(pid));
        child.wait().unwrap();
        assert!(!process_lives(pid));
    }
}
