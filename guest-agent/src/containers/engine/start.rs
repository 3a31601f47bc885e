//! Starting a container (root filesystem, network, spec, then its shim) and following the
//! shim until it ends, when `--rm` and `--restart` apply.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::AsyncBufReadExt;

use super::procfs::{process_start_time, wait_for_process};
use super::restart::should_restart;
use super::staged::StagedBinds;
use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::record::{now_rfc3339, Status, ZERO_TIME};
use crate::containers::rootfs;
use crate::containers::shim::{self, ExitInfo, ShimConfig, Started};
use crate::containers::{health, spec, user};

/// Flush the filesystem holding `dir` (the whole data disk, in the VM).
fn syncfs(dir: &Path) {
    use std::os::fd::AsRawFd;
    match std::fs::File::open(dir) {
        Ok(f) => {
            // SAFETY: syncfs on a descriptor we own.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                let e = std::io::Error::last_os_error();
                tracing::warn!("flushing {}: {e}", dir.display());
            }
        }
        Err(e) => tracing::warn!("flushing {}: {e}", dir.display()),
    }
}

impl Containers {
    /// Start a created or exited container. Ok(false) when it was already running.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<bool, ContainerError> {
        let _op = c.op.lock().await;
        let status = c.status();
        if status.is_live() {
            return Ok(false);
        }
        if status == Status::Removing || status == Status::Dead {
            return Err(ContainerError::conflict(format!(
                "cannot start container {}: it is being removed",
                c.id
            )));
        }
        match self.launch(c).await {
            Ok(()) => Ok(true),
            Err(e) => {
                let msg = format!("{e:#}");
                let code = if msg.contains("executable file not found") {
                    127
                } else if msg.contains("permission denied") {
                    126
                } else {
                    128
                };
                if let Err(e) = rootfs::unmount_rootfs(&c.paths()) {
                    tracing::warn!("unmounting {} after a failed start: {e:#}", c.id);
                }
                self.release_network(c).await;
                self.release_volumes(c);
                let auto_remove = c.record().host_config.auto_remove.unwrap_or(false);
                c.update_or_warn("recording the failed start", |r| {
                    r.state.exit_code = code;
                    r.state.error = msg.clone();
                    if r.state.status != Status::Created {
                        r.state.status = Status::Exited;
                    }
                });
                if auto_remove {
                    drop(_op);
                    if let Err(e) = self.remove(c, true, true).await {
                        tracing::warn!("auto-removing {} after a failed start: {e}", c.id);
                    }
                }
                Err(ContainerError::invalid(msg))
            }
        }
    }

    async fn launch(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        crate::containers::cgroup_prime::prime();
        let rec = c.record();
        let paths = c.paths();
        let lowers = self.lower_dirs(&rec)?;
        rootfs::mount_rootfs(&paths, &lowers)?;
        let user_spec = rec.config.user.clone().unwrap_or_default();
        let group_add = rec.host_config.group_add.clone().unwrap_or_default();
        let resolved = user::resolve_user(&paths.rootfs(), &user_spec, &group_add)
            .map_err(|e| anyhow!("{e}"))?;
        let hostname = rec.hostname();
        let (netns, net) = self.join_network(c, &rec, &hostname).await?;
        let (mut hosts, resolv) =
            self.networks
                .etc_files(net.as_ref(), &hostname, &rec.host_config);
        let (link_hosts, link_env) = self.resolve_links(&rec, net.as_ref())?;
        hosts.push_str(&link_hosts);
        let rec = if rec.link_env != link_env {
            c.update(|r| r.link_env = link_env)?;
            c.record()
        } else {
            rec
        };
        rootfs::write_etc_files(&c.dir, &hostname, &hosts, &resolv)?;
        // Held until the container's process exists and has its own copy of each.
        let _volumes = self.hold_volumes(&rec);
        let mut staged = StagedBinds::new(&self.runtime_root, &rec.id);
        let mounts = self
            .prepare_mounts(&rec, &paths.rootfs(), &mut staged)
            .map_err(|e| anyhow!("{e}"))?;
        let bundle = c.dir.join("bundle");
        std::fs::create_dir_all(&bundle)?;
        let spec = spec::build(&spec::SpecInput {
            rec: &rec,
            rootfs: &paths.rootfs(),
            dir: &c.dir,
            user: &resolved,
            hostname: &hostname,
            netns: netns.as_deref(),
            mounts,
        })?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec)?)?;
        let console_size = rec
            .host_config
            .console_size
            .as_ref()
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
            .map(|s| (s[0] as u16, s[1] as u16));
        let cfg = ShimConfig {
            id: rec.id.clone(),
            bundle,
            runtime_root: self.runtime_root.clone(),
            log: c.log_path(),
            tty: rec.tty(),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            console_size,
            cgroup: spec::cgroup_path(&rec.id),
            // docker leaves a privileged container's cgroups writable.
            cgroup_ro: self.cgroup_v1 && !rec.host_config.privileged.unwrap_or(false),
        };
        std::fs::write(c.dir.join(shim::CONFIG_FILE), serde_json::to_vec(&cfg)?)?;
        // The last run's exit report, if any: the shim of this run writes its own.
        let exit_file = c.dir.join(shim::EXIT_FILE);
        warn_unless_missing(&exit_file, std::fs::remove_file(&exit_file));
        // A stale runtime state (a shim killed mid-way) would make the create fail.
        let state = self.runtime_root.join(&rec.id);
        warn_unless_missing(&state, std::fs::remove_dir_all(&state));

        let (shim_pid, started) = self.spawn_shim(&c.dir).await?;
        drop(staged);
        match started {
            Started::Running { pid } => {
                let shim_start = process_start_time(shim_pid).unwrap_or(0);
                c.update(|r| {
                    r.state.status = Status::Running;
                    r.state.pid = pid as i64;
                    r.state.exit_code = 0;
                    r.state.error.clear();
                    r.state.oom_killed = false;
                    r.state.started_at = now_rfc3339();
                    r.state.finished_at = ZERO_TIME.into();
                    r.state.shim_pid = shim_pid as i64;
                    r.state.shim_start = shim_start;
                    r.state.stopped_by_user = false;
                    r.state.health = health::on_start(r.state.health.take(), &r.config);
                })?;
                self.watch_shim(c.clone(), shim_pid);
                self.emit("start", c, &[]);
                self.watch_health(c);
                Ok(())
            }
            Started::Failed { error } => Err(anyhow!(error)),
        }
    }

    async fn spawn_shim(&self, dir: &Path) -> Result<(i32, Started)> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shim.log"))?;
        let mut cmd = std::process::Command::new(&self.agent_exe);
        cmd.arg("shim")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; the shim leaves the agent's session so that
        // signals aimed at the agent's process group do not reach it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .context("starting the container's supervisor")?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("supervisor has no report pipe"))?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(120), reader.read_line(&mut line))
            .await
            .map_err(|_| anyhow!("the container's supervisor did not report within 120s"))??;
        // The child is reaped by tokio when it exits; we follow it through a pidfd.
        drop(child);
        if line.trim().is_empty() {
            let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no message").to_string();
            return Err(anyhow!("the container's supervisor failed: {last}"));
        }
        let started: Started =
            serde_json::from_str(line.trim()).context("reading the supervisor's report")?;
        Ok((pid, started))
    }

    pub(super) fn watch_shim(self: &Arc<Self>, c: Arc<Container>, shim_pid: i32) {
        let me = self.clone();
        tokio::spawn(async move {
            wait_for_process(shim_pid).await;
            me.on_exit(c, false).await;
        });
    }

    /// The shim is gone: record how the container ended, then apply --rm / --restart.
    pub(super) async fn on_exit(self: Arc<Self>, c: Arc<Container>, recovered: bool) {
        // No report (or an unreadable one) is itself an answer, handled below.
        let info: Option<ExitInfo> = std::fs::read(c.dir.join(shim::EXIT_FILE))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok());
        if let Err(e) = rootfs::unmount_rootfs(&c.paths()) {
            tracing::warn!("unmounting {} after its end: {e:#}", c.id);
        }
        if self
            .flush_on_exit
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let dir = c.dir.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || syncfs(&dir)).await {
                tracing::warn!("flushing {} after its end: {e}", c.id);
            }
        }
        self.release_network(&c).await;
        self.release_volumes(&c);
        let rec = c.record();
        let res = c.update(|r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            match &info {
                Some(i) => {
                    r.state.exit_code = i.exit_code;
                    r.state.oom_killed = i.oom_killed;
                    r.state.finished_at = i.finished_at.clone();
                }
                None => {
                    // The supervisor died without a word (killed with the host?): docker's
                    // answer for a container whose status is unknowable.
                    r.state.exit_code = 255;
                    r.state.error = "the container's supervisor ended unexpectedly".into();
                    r.state.finished_at = now_rfc3339();
                }
            }
        });
        if let Err(e) = res {
            tracing::warn!("recording the exit of {}: {e:#}", c.id);
        }
        let ended = c.record().state;
        if ended.oom_killed {
            self.emit("oom", &c, &[]);
        }
        self.emit("die", &c, &[("exitCode", ended.exit_code.to_string())]);
        if rec.host_config.auto_remove.unwrap_or(false) {
            if let Err(e) = self.remove(&c, true, true).await {
                tracing::warn!("auto-removing {}: {e}", c.id);
            }
            return;
        }
        let rec = c.record();
        if should_restart(&rec, recovered) {
            let delay = Duration::from_millis(100u64 << rec.restart_count.clamp(0, 9));
            c.update_or_warn("recording the restart", |r| {
                r.restart_count += 1;
                r.state.status = Status::Restarting;
            });
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if c.status() != Status::Restarting {
                    return;
                }
                // It stays "restarting" until it runs again (or fails to): a client never sees
                // it exited between two runs.
                if let Err(e) = me.start(&c).await {
                    tracing::warn!("restarting {}: {e}", c.id);
                }
            });
        }
    }
}

/// Removes what a previous run left; that there is nothing to remove is the usual case. A
/// failure is logged, not returned: the start goes on, and says what went wrong if it fails.
fn warn_unless_missing(path: &Path, removed: std::io::Result<()>) {
    if let Err(e) = removed {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing the stale {}: {e}", path.display());
        }
    }
}
