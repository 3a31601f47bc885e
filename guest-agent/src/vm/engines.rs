//! More engines in one VM, each with its own state dir and vsock ports, started when the host
//! asks. Most users only ever use the machine's own engine; a separate engine gives each
//! end-to-end test (or an experiment) a store and containers of its own without a VM of its
//! own, whose boot costs seconds under emulation. Engines coexist the way several native
//! agents on one host do: their bridges and NAT rules carry each engine's own tag.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::layout::{unmount_under, STATE_DIR, TOKEN_FILE};
use skiff_common::vsock;

/// Extra engines take vsock ports from here up, two each (API, forwarded connections), so
/// that they never meet the fixed ports of `skiff_common::vsock`.
const FIRST_PORT: u32 = 10_000;
/// Port pairs tried past ones something else in the VM holds already.
const PORT_ATTEMPTS: u32 = 1000;

/// An engine's two vsock listeners, bound by PID 1 and kept by it for as long as the engine
/// exists, restarts included: the host connects to these ports believing it reaches the
/// engine, so no container may ever hold one (a `--privileged` one can open vsock sockets).
///
/// While the engine is down, a connection would wait in the listener's queue for an engine
/// that may never come (an extra engine starts again only when the host asks): a client
/// caught by a crash would hang where it used to see its connection refused. So while no
/// engine runs, PID 1 answers each such connection by closing it.
pub struct EnginePorts {
    api: Arc<OwnedFd>,
    forward: Arc<OwnedFd>,
    pub api_port: u32,
    state: Arc<Serving>,
}

#[derive(Default)]
struct Serving {
    flags: Mutex<Flags>,
    changed: Condvar,
}

#[derive(Default)]
struct Flags {
    /// An engine has the listeners.
    serving: bool,
    /// The ports are gone (the engine was removed).
    dropped: bool,
}

impl Serving {
    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long PID 1 waits on the listeners of a stopped engine before it looks at the flags
/// again (an engine started meanwhile must find its connections queued, not closed).
const REFUSE_TICK_MS: libc::c_int = 100;

/// Close every connection queued on `fds` while `state` says no engine runs.
fn refuse_while_down(fds: [Arc<OwnedFd>; 2], state: Arc<Serving>) {
    loop {
        {
            let mut flags = state.flags();
            while flags.serving && !flags.dropped {
                flags = state.changed.wait(flags).unwrap_or_else(|e| e.into_inner());
            }
            if flags.dropped {
                return;
            }
        }
        let mut polled = fds.clone().map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: poll reads and writes only the array we pass, of the length we pass.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), 2, REFUSE_TICK_MS) };
        if n <= 0 || state.flags().serving {
            continue;
        }
        for p in polled.iter().filter(|p| p.revents & libc::POLLIN != 0) {
            // SAFETY: accept4 on a listener we hold; null address pointers are allowed. The
            // listener is non-blocking, so a connection the engine took first costs nothing.
            let c = unsafe {
                libc::accept4(
                    p.fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            if c >= 0 {
                // SAFETY: c is the connection just accepted, ours alone.
                drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(c) });
            }
        }
    }
}

impl Drop for EnginePorts {
    fn drop(&mut self) {
        self.state.flags().dropped = true;
        self.state.changed.notify_all();
    }
}

impl EnginePorts {
    pub fn bind(api_port: u32, forward_port: u32) -> Result<EnginePorts> {
        let backlog = super::vsock::BACKLOG;
        let api = Arc::new(super::vsock::listen_blocking(api_port, backlog)?);
        let forward = Arc::new(super::vsock::listen_blocking(forward_port, backlog)?);
        for fd in [&api, &forward] {
            super::vsock::set_nonblocking(fd.as_raw_fd())?;
        }
        let state = Arc::new(Serving::default());
        let fds = [api.clone(), forward.clone()];
        let st = state.clone();
        std::thread::Builder::new()
            .name(format!("refuse-{api_port}"))
            .spawn(move || refuse_while_down(fds, st))
            .context("starting the thread that answers for a stopped engine")?;
        Ok(EnginePorts {
            api,
            forward,
            api_port,
            state,
        })
    }

    /// Whether an engine holds the listeners now (PID 1 stops closing their connections).
    pub fn set_serving(&self, serving: bool) {
        self.state.flags().serving = serving;
        self.state.changed.notify_all();
    }

    /// The first free pair from `*next` on (a container may have taken some); `*next` moves
    /// past it.
    fn bind_free(next: &mut u32) -> Result<EnginePorts> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let p = *next;
            *next += 2;
            match EnginePorts::bind(p, p + 1) {
                Ok(ports) => return Ok(ports),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no port tried")))
            .context("no free vsock ports for another engine")
    }

    /// Start the engine `cmd` describes with the listeners, the token file and the way out;
    /// PID 1 stops answering for it from here on (again, if the start fails).
    pub fn spawn(&self, mut cmd: Command) -> std::io::Result<std::process::Child> {
        self.hand_to(&mut cmd);
        self.set_serving(true);
        let child = cmd.spawn();
        if child.is_err() {
            self.set_serving(false);
        }
        child
    }

    /// The engine `cmd` starts gets the listeners as descriptors 3 and 4, the token file and
    /// the way out, as its arguments say.
    fn hand_to(&self, cmd: &mut Command) {
        let (api, forward) = (self.api.as_raw_fd(), self.forward.as_raw_fd());
        cmd.args(["--vsock-api-fd", "3", "--vsock-forward-fd", "4"])
            .arg("--vsock-token-file")
            .arg(TOKEN_FILE)
            .arg("--vsock-egress")
            .arg(vsock::EGRESS_PORT.to_string());
        // SAFETY: only fcntl, dup2 and close between fork and exec, all async-signal-safe.
        // Both are first copied above the targets, as either may sit on 3 or 4 already.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(api, libc::F_DUPFD, 10);
                let f = libc::fcntl(forward, libc::F_DUPFD, 10);
                if a < 0 || f < 0 || libc::dup2(a, 3) < 0 || libc::dup2(f, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                libc::close(f);
                Ok(())
            });
        }
    }
}
/// Each engine costs some memory in the VM; a leak of engines must not eat all of it.
const MAX_ENGINES: usize = 32;

struct Running {
    pid: i32,
    api_port: u32,
}

#[derive(Default)]
pub struct Engines {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Running>,
    /// An engine started again keeps its ports, so the host's relay to it stays valid.
    ports: HashMap<String, EnginePorts>,
    next_port: u32,
}

/// Names become directory and socket names: keep them plain.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// VmRSS of `pid`, in KiB.
fn resident_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn root_of(name: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join("engines").join(name)
}

impl Engines {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start the engine `name` unless it runs; returns the vsock port of its API. `env`
    /// (only keys of `ENGINE_ENV`, with values that fit them) is given to a newly started engine.
    pub fn up(&self, name: &str, env: &[(String, String)]) -> Result<u32> {
        if !valid_name(name) {
            bail!("invalid engine name {name:?}: use 1-64 letters, digits, '_', '.' or '-'");
        }
        let mut inner = self.lock();
        if let Some(r) = inner.running.get(name) {
            return Ok(r.api_port);
        }
        if inner.running.len() >= MAX_ENGINES {
            bail!("{MAX_ENGINES} engines run already; remove one first");
        }
        if !inner.ports.contains_key(name) {
            let mut next = FIRST_PORT + inner.next_port;
            let ports = EnginePorts::bind_free(&mut next)?;
            inner.next_port = next - FIRST_PORT;
            inner.ports.insert(name.to_string(), ports);
        }
        let Some(ports) = inner.ports.get(name) else {
            bail!("engine {name} has no ports");
        };
        let api_port = ports.api_port;
        let allowed = skiff_common::vsock::engine_env_words(|k| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        });
        let mut cmd = Command::new("/proc/self/exe");
        cmd.envs(allowed.iter().filter_map(|w| w.split_once('=')))
            .arg("--root")
            .arg(root_of(name))
            .arg("--socket")
            .arg(format!("/run/skiff/engines/{name}.sock"));
        let child = ports
            .spawn(cmd)
            .with_context(|| format!("starting engine {name}"))?;
        inner.running.insert(
            name.to_string(),
            Running {
                pid: child.id() as i32,
                api_port,
            },
        );
        Ok(api_port)
    }

    /// PID 1 reaped `pid`; if it was an engine, that engine is gone (the next `up` starts it
    /// again on the same state).
    pub fn reaped(&self, pid: i32) {
        let mut inner = self.lock();
        let gone: Vec<String> = inner
            .running
            .iter()
            .filter(|(_, r)| r.pid == pid)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            inner.running.remove(&name);
            if let Some(ports) = inner.ports.get(&name) {
                ports.set_serving(false);
            }
        }
    }

    /// The running engines, by name, each with its resident memory in KiB (`None` when its
    /// /proc entry could not be read, as in the moment it ends).
    pub fn list(&self) -> Vec<(String, Option<u64>)> {
        let mut v: Vec<(String, Option<u64>)> = self
            .lock()
            .running
            .iter()
            .map(|(name, r)| (name.clone(), resident_kib(r.pid)))
            .collect();
        v.sort();
        v
    }

    /// End the engine's process with `signal` (SIGKILL after 10 s) and wait until PID 1
    /// reaped it. Its containers keep running, as natively when an agent dies.
    pub fn stop(&self, name: &str, signal: i32) -> Result<()> {
        if !valid_name(name) {
            bail!("invalid engine name {name:?}");
        }
        let Some(pid) = self.lock().running.get(name).map(|r| r.pid) else {
            return Ok(());
        };
        // SAFETY: signal delivery to our own child.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Wait for this process only: a client may start the engine again meanwhile.
        while self.lock().running.get(name).is_some_and(|r| r.pid == pid) {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stop the engine and delete its state. Containers it still runs lose their mounts
    /// (the host-side command removes them through the API first).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.stop(name, libc::SIGTERM)?;
        self.lock().ports.remove(name);
        let root = root_of(name);
        unmount_under(&root.to_string_lossy());
        match std::fs::remove_dir_all(&root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", root.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_plain() {
        assert!(valid_name("skiff-e2e-Ab12_x.y"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
