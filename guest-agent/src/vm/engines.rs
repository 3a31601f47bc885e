//! More engines in one VM, each with its own state dir and vsock ports, started when the host
//! asks. Most users only ever use the machine's own engine; a separate engine gives each
//! end-to-end test (or an experiment) a store and containers of its own without a VM of its
//! own, whose boot costs seconds under emulation. Engines coexist the way several native
//! agents on one host do: their bridges and NAT rules carry each engine's own tag.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::init::{unmount_under, STATE_DIR};
use skiff_common::vsock;

/// Extra engines take vsock ports from here up, two each (API, forwarded connections), so
/// that they never meet the fixed ports of `skiff_common::vsock`.
const FIRST_PORT: u32 = 10_000;
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
    ports: HashMap<String, u32>,
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
    /// (only keys of `ENGINE_ENV`, whole-number values) is given to a newly started engine.
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
        let api_port = match inner.ports.get(name) {
            Some(p) => *p,
            None => {
                let p = FIRST_PORT + inner.next_port;
                inner.next_port += 2;
                inner.ports.insert(name.to_string(), p);
                p
            }
        };
        let allowed = skiff_common::vsock::engine_env_words(|k| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        });
        let child = Command::new("/proc/self/exe")
            .envs(allowed.iter().filter_map(|w| w.split_once('=')))
            .arg("--root")
            .arg(root_of(name))
            .arg("--socket")
            .arg(format!("/run/skiff/engines/{name}.sock"))
            .arg("--vsock-api")
            .arg(api_port.to_string())
            .arg("--vsock-forward")
            .arg((api_port + 1).to_string())
            .arg("--vsock-egress")
            .arg(vsock::EGRESS_PORT.to_string())
            .spawn()
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
        self.lock().running.retain(|_, r| r.pid != pid);
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
