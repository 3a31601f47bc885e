//! The containers the agent knows: create, start, stop, kill, remove, wait, and getting them
//! back after an agent restart. Each running container is held by its shim (see `shim.rs`);
//! this side keeps the records and reacts to exits.
//!
//! `Containers` is one type whose methods live in one file per operation; this file holds the
//! index, the lookup and what every operation shares (saving a record, events).

mod commit;
mod config;
mod copy;
mod create;
mod health;
pub mod networking;
mod pause;
mod procfs;
mod remove;
mod rename;
mod restart;
mod signal;
mod staged;
mod start;
mod stop;
mod update;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::error::ContainerError;
use super::record::{Record, Status};
use super::rootfs::{self, Paths};
use super::shim;
use crate::images::store::Store;
use crate::network::Networks;
use crate::volumes::Volumes;

pub use copy::{check_writable, CopyRoot};
pub use create::RUNTIME;
pub use procfs::process_start_time;
pub use signal::Signal;

const RECORD_FILE: &str = "container.json";
pub const LOG_FILE: &str = "container.log";

pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    rec: Mutex<Record>,
    /// Bumped on every change of state; waiters and followers watch it.
    changed: watch::Sender<u64>,
    /// One lifecycle operation at a time per container.
    op: Arc<tokio::sync::Mutex<()>>,
}

impl Container {
    fn new(dir: PathBuf, rec: Record) -> Self {
        Container {
            id: rec.id.clone(),
            dir,
            rec: Mutex::new(rec),
            changed: watch::channel(0).0,
            op: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn record(&self) -> Record {
        self.rec.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn status(&self) -> Status {
        self.rec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state
            .status
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    pub fn paths(&self) -> Paths {
        Paths::new(&self.dir)
    }

    /// Changes the record, saves it and wakes the watchers; they are woken even when the save
    /// fails, since the record in memory has changed.
    fn update(&self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let snapshot = {
            let mut r = self.rec.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut r);
            r.clone()
        };
        let res = save(&self.dir, &snapshot);
        self.changed.send_modify(|g| *g += 1);
        res
    }

    /// `update` where the change matters less than going on: a failed save is logged with
    /// what was being recorded, and the caller carries on.
    fn update_or_warn(&self, what: &str, f: impl FnOnce(&mut Record)) {
        if let Err(e) = self.update(f) {
            tracing::warn!("{what} of {}: {e:#}", self.id);
        }
    }

    fn shim_socket(&self) -> Result<super::sockpath::SocketPath> {
        super::sockpath::socket_path(&self.dir, shim::SOCKET_FILE)
            .context("the supervisor's socket path")
    }

    /// One request to the shim; its one-line answer.
    pub async fn shim_request(&self, line: &str) -> Result<String> {
        let sock = self.shim_socket()?;
        let mut s = tokio::net::UnixStream::connect(&sock.path)
            .await
            .context("connecting to the container's supervisor")?;
        s.write_all(format!("{line}\n").as_bytes()).await?;
        let mut reply = String::new();
        tokio::io::BufReader::new(s).read_line(&mut reply).await?;
        let reply = reply.trim();
        match reply.strip_prefix("error ") {
            Some(e) => Err(anyhow!("{e}")),
            None => Ok(reply.to_string()),
        }
    }

    /// A stream into the container's stdin (the shim forwards it).
    pub async fn stdin_stream(&self) -> Result<tokio::net::UnixStream> {
        let sock = self.shim_socket()?;
        let mut s = tokio::net::UnixStream::connect(&sock.path)
            .await
            .context("connecting to the container's supervisor")?;
        s.write_all(b"stdin\n").await?;
        Ok(s)
    }
}

/// Written aside then renamed, so that a crash leaves the old record or the new one whole.
fn save(dir: &Path, rec: &Record) -> Result<()> {
    let data = serde_json::to_vec_pretty(rec)?;
    let tmp = dir.join(".container.json.tmp");
    if let Err(e) = std::fs::write(&tmp, data) {
        // A partial file, or none: either way the write's error is the one to report.
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, dir.join(RECORD_FILE)).context("saving container record")?;
    Ok(())
}

/// Whether a run ended after a wait began that saw `before` as the last end (a start clears
/// the time to docker's zero time, which is no end).
fn ended_since(before: &str, now: &str) -> bool {
    now != before && now != super::record::ZERO_TIME
}

/// A new container or exec ID: 32 random bytes in hex, as docker's.
pub fn new_id() -> Result<String, ContainerError> {
    skiff_common::ids::random_hex(32)
        .context("making an ID")
        .map_err(ContainerError::Internal)
}

#[derive(Default)]
struct Index {
    by_id: BTreeMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

pub struct Containers {
    pub events: super::events::Events,
    dir: PathBuf,
    runtime_root: PathBuf,
    images: Arc<Store>,
    index: Mutex<Index>,
    agent_exe: PathBuf,
    /// Whether containers need the hook that makes their cgroup v1 mounts read-only.
    cgroup_v1: bool,
    pub networks: Arc<Networks>,
    pub volumes: Arc<Volumes>,
    /// Held from deciding which volumes a container uses, or that a volume is unused, to
    /// acting on it (a create's record saved, a volume removed). Taken before `index`.
    volume_use: Mutex<()>,
    /// In the VM a killed QEMU takes the guest's page cache with it: flush what a container
    /// wrote as it ends, so that a finished container's files survive (set by main).
    flush_on_exit: std::sync::atomic::AtomicBool,
}

pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl Containers {
    pub fn set_flush_on_exit(&self, on: bool) {
        self.flush_on_exit
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn open(
        root: &Path,
        images: Arc<Store>,
        networks: Arc<Networks>,
        volumes: Arc<Volumes>,
    ) -> Result<Arc<Self>> {
        let dir = root.join("containers");
        let runtime_root = root.join("runtime");
        for d in [&dir, &runtime_root] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            // Logs, configs (environment, secrets in it) and the supervisors' sockets are
            // root's business only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", d.display()))?;
        }
        super::spec::prepare_cgroup_parent();
        staged::StagedBinds::sweep(&runtime_root);
        let agent_exe = std::env::current_exe().context("finding the agent's own binary")?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let raw = match std::fs::read(path.join(RECORD_FILE)) {
                Ok(r) => r,
                // A create that died before its record landed, or a removal that died after
                // the record went: nothing to keep, but its mounts must go first (a pinned
                // network namespace would keep the directory, and the namespace, forever).
                Err(_) => {
                    if let Err(e) = rootfs::unmount_rootfs(&Paths::new(&path)) {
                        tracing::warn!("unmounting the leftovers in {}: {e:#}", path.display());
                    }
                    crate::network::link::remove_netns(&path.join("netns"));
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        tracing::warn!("removing the leftover {}: {e}", path.display());
                    }
                    continue;
                }
            };
            let rec: Record = match serde_json::from_slice(&raw) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        "skipping unreadable container record {}: {e}",
                        path.display()
                    );
                    continue;
                }
            };
            index.names.insert(rec.name.clone(), rec.id.clone());
            let c = Arc::new(Container::new(path, rec));
            index.by_id.insert(c.id.clone(), c);
        }
        Ok(Arc::new(Self {
            events: Default::default(),
            dir,
            runtime_root,
            images,
            index: Mutex::new(index),
            agent_exe,
            cgroup_v1: super::cgroup_ro::needed(),
            flush_on_exit: Default::default(),
            networks,
            volumes,
            volume_use: Mutex::new(()),
        }))
    }

    /// A container event with docker's attributes (name, image, labels, and `extra`).
    fn emit(&self, action: &str, c: &Container, extra: &[(&str, String)]) {
        let rec = c.record();
        let mut attrs: HashMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.name.clone());
        attrs.insert("image".into(), rec.config.image.clone().unwrap_or_default());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.emit(action, &c.id, attrs);
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .values()
            .cloned()
            .collect()
    }

    /// docker's lookup: full ID, name, then unique ID prefix.
    pub fn get(&self, name: &str) -> Result<Arc<Container>, ContainerError> {
        let idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = idx.by_id.get(name) {
            return Ok(c.clone());
        }
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(id) = idx.names.get(bare) {
            if let Some(c) = idx.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = idx
                .by_id
                .range(name.to_string()..)
                .take_while(|(k, _)| k.starts_with(name));
            if let Some((_, c)) = found.next() {
                if found.next().is_some() {
                    return Err(ContainerError::not_found(format!(
                        "multiple IDs found with provided prefix: {name}"
                    )));
                }
                return Ok(c.clone());
            }
        }
        Err(ContainerError::not_found(format!(
            "No such container: {name}"
        )))
    }

    pub fn image_in_use(&self, image_id: &str) -> Option<(String, Status)> {
        self.all().into_iter().find_map(|c| {
            let r = c.record();
            (r.image_id == image_id).then(|| (r.id.clone(), r.state.status))
        })
    }

    pub fn is_removed(&self, c: &Container) -> bool {
        !self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .contains_key(&c.id)
    }

    /// docker wait: the exit code once the condition holds.
    pub async fn wait(&self, c: &Arc<Container>, cond: WaitCondition) -> i64 {
        let mut rx = c.subscribe();
        let first = c.record().state;
        let (started_at, first_status) = (first.started_at, first.status);
        loop {
            let rec = c.record();
            let done = match cond {
                // As dockerd: the next exit counts even when a restart policy brings it back.
                WaitCondition::NotRunning => {
                    (!rec.state.status.is_live() && rec.state.status != Status::Restarting)
                        || ended_since(&first.finished_at, &rec.state.finished_at)
                }
                WaitCondition::NextExit => {
                    // An exit after the call (a later start, then its end), or the end of the
                    // run that was going on.
                    rec.state.status == Status::Exited
                        && (first_status.is_live() || rec.state.started_at != started_at)
                }
                WaitCondition::Removed => self.is_removed(c),
            };
            if done {
                return rec.state.exit_code;
            }
            if rx.changed().await.is_err() {
                return rec.state.exit_code;
            }
        }
    }

    /// The layers' unpacked trees, top first (overlayfs's order for lower dirs).
    fn lower_dirs(&self, rec: &Record) -> Result<Vec<PathBuf>> {
        rec.layers
            .iter()
            .rev()
            .map(|d| {
                let p = self.images.layer_dir(d)?;
                if !p.is_dir() {
                    anyhow::bail!("layer {d} of the container's image is missing from the store");
                }
                Ok(p)
            })
            .collect()
    }

    pub fn agent_exe(&self) -> &Path {
        &self.agent_exe
    }

    pub fn runtime_root(&self) -> &Path {
        &self.runtime_root
    }

    pub fn runtime_state_dir(&self, id: &str) -> PathBuf {
        self.runtime_root.join(id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_end_is_a_new_finish_time_not_a_start_clearing_it() {
        use super::ended_since;
        let zero = super::super::record::ZERO_TIME;
        assert!(!ended_since("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"));
        assert!(ended_since("2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"));
        assert!(ended_since(zero, "2026-01-01T00:00:05Z"));
        assert!(!ended_since("2026-01-01T00:00:00Z", zero));
    }
}
