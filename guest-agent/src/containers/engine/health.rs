//! Running a container's healthcheck (the policy is `containers/health.rs`): one task per
//! running container with a check, started by `start` and by the agent's recovery, ended by
//! the end of the run it was started for. Each check is an exec (the same `skiff-agent exec`
//! helper as `docker exec`) with the container's user, working directory and environment; a
//! check past its timeout is killed and counts as a failure in docker's words.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{new_id, Container, Containers};
use crate::containers::health::{self, HealthResult, HealthStatus, Probe};
use crate::containers::process::{process_json, ExecConfig};
use crate::containers::record::{now_rfc3339, Status};

/// How long a finished check's output may take to drain (a background process it left may
/// hold the pipes open), and a killed check to be reaped.
const DRAIN: Duration = Duration::from_secs(1);
const REAP: Duration = Duration::from_secs(5);

/// Where a run is: going on (running or paused), or over.
enum Run {
    Running,
    Paused,
    Over,
}

fn run_of(c: &Container, run: &str) -> Run {
    let rec = c.record();
    if rec.state.started_at != run {
        return Run::Over;
    }
    match rec.state.status {
        Status::Running => Run::Running,
        Status::Paused => Run::Paused,
        _ => Run::Over,
    }
}

/// Time since the run started (zero if its start time cannot be read).
fn since(started_at: &str) -> Duration {
    chrono::DateTime::parse_from_rfc3339(started_at)
        .ok()
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or_default()
}

impl Containers {
    /// Checks `c`'s health for as long as its current run lasts, if it has a check.
    pub(super) fn watch_health(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.record();
        let Some(probe) = health::probe_of(&rec.config) else {
            return;
        };
        if rec.state.health.is_none() {
            // Running since before its record kept health: it starts as docker's would.
            c.update_or_warn("recording the health check's start", |r| {
                r.state.health = health::on_start(None, &r.config);
            });
        }
        let me = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            me.health_checks(&c, &probe, &rec.state.started_at).await;
        });
    }

    async fn health_checks(&self, c: &Arc<Container>, probe: &Probe, run: &str) {
        let mut changed = c.subscribe();
        loop {
            let status = c
                .record()
                .state
                .health
                .map_or(HealthStatus::Starting, |h| h.status);
            let sleep = tokio::time::sleep(health::next_delay(probe, status, since(run)));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    r = changed.changed() => {
                        if r.is_err() || matches!(run_of(c, run), Run::Over) {
                            return;
                        }
                    }
                }
            }
            match run_of(c, run) {
                Run::Over => return,
                // As dockerd: no checks while paused, and a whole interval after the unpause.
                Run::Paused => loop {
                    if changed.changed().await.is_err() {
                        return;
                    }
                    match run_of(c, run) {
                        Run::Over => return,
                        Run::Running => break,
                        Run::Paused => {}
                    }
                },
                Run::Running => {
                    let start = now_rfc3339();
                    let check_since_start = since(run);
                    let result = tokio::select! {
                        r = self.run_check(c, probe) => r,
                        // The run ended mid-check: the check (dropped, its helper killed) is
                        // discarded, as dockerd's.
                        _ = run_over(c, run, &mut changed) => return,
                    };
                    let (exit_code, output) = result;
                    let result = HealthResult {
                        start,
                        end: now_rfc3339(),
                        exit_code,
                        output,
                    };
                    self.record_health(c, probe, run, result, check_since_start);
                }
            }
        }
    }

    /// A check's result into the record (unless the run ended meanwhile), and docker's
    /// `health_status: …` event when the status changed.
    fn record_health(
        &self,
        c: &Container,
        probe: &Probe,
        run: &str,
        result: HealthResult,
        check_since_start: Duration,
    ) {
        let mut now = None;
        c.update_or_warn("recording a health check", |r| {
            if r.state.started_at != run || r.state.status != Status::Running {
                return;
            }
            if let Some(h) = r.state.health.as_mut() {
                let before = h.status;
                health::record(h, result, probe, check_since_start);
                if h.status != before {
                    now = Some(h.status);
                }
            }
        });
        if let Some(s) = now {
            self.emit(&format!("health_status: {}", s.as_str()), c, &[]);
        }
    }

    /// One check: (exit code, output). What keeps it from running is a failure (-1) with the
    /// reason as its output, as in dockerd.
    async fn run_check(&self, c: &Arc<Container>, probe: &Probe) -> (i64, String) {
        match self.spawn_check(c, probe) {
            Ok(child) => collect(child, probe.timeout).await,
            Err(e) => (-1, e),
        }
    }

    fn spawn_check(
        &self,
        c: &Arc<Container>,
        probe: &Probe,
    ) -> Result<tokio::process::Child, String> {
        use std::process::Stdio;
        let id = new_id().map_err(|e| e.to_string())?;
        let config = ExecConfig {
            cmd: Some(probe.cmd.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let process =
            process_json(&c.record(), &config, &c.paths().rootfs()).map_err(|e| e.to_string())?;
        let pfile = c.dir.join(format!("exec-{id}.json"));
        let data = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
        std::fs::write(&pfile, data).map_err(|e| format!("starting the health check: {e}"))?;
        let spawned = tokio::process::Command::new(&self.agent_exe)
            .arg("exec")
            .arg(&self.runtime_root)
            .arg(&c.id)
            .arg(&pfile)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A check abandoned (its container ended) takes its helper with it.
            .kill_on_drop(true)
            .spawn();
        spawned.map_err(|e| {
            let _ = std::fs::remove_file(&pfile);
            format!("starting the health check: {e}")
        })
    }
}

/// Resolves once the run is over (its container stopped, or started again).
async fn run_over(c: &Container, run: &str, changed: &mut tokio::sync::watch::Receiver<u64>) {
    loop {
        if matches!(run_of(c, run), Run::Over) || changed.changed().await.is_err() {
            return;
        }
    }
}

/// The check's output (stdout and stderr as they come, capped as docker's) and exit code; past
/// `timeout` the helper is told to kill it (SIGTERM: it SIGKILLs the process it runs).
async fn collect(mut child: tokio::process::Child, timeout: Duration) -> (i64, String) {
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return (-1, "the health check's helper has no output pipes".into());
    };
    let mut out = Vec::new();
    let mut truncated = false;
    let mut keep = |data: &[u8]| {
        let room = health::MAX_OUTPUT_LEN - out.len();
        out.extend_from_slice(&data[..data.len().min(room)]);
        truncated |= data.len() > room;
    };
    let (mut ob, mut eb) = (vec![0u8; 4096], vec![0u8; 4096]);
    let (mut out_done, mut err_done) = (false, false);
    let mut status = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut timed_out = false;
    while status.is_none() || !(out_done && err_done) {
        tokio::select! {
            r = stdout.read(&mut ob), if !out_done => match r {
                Ok(0) | Err(_) => out_done = true,
                Ok(n) => keep(&ob[..n]),
            },
            r = stderr.read(&mut eb), if !err_done => match r {
                Ok(0) | Err(_) => err_done = true,
                Ok(n) => keep(&eb[..n]),
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN);
            }
            _ = &mut deadline => {
                timed_out = status.is_none();
                break;
            }
        }
    }
    let output = health::capped_output(&out, truncated);
    if timed_out {
        if let Some(pid) = child.id() {
            // SAFETY: a signal to our own child, which has not been reaped (we hold it).
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(REAP, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        return (-1, health::timeout_output(timeout, &output));
    }
    let code = match status {
        Some(Ok(s)) => {
            use std::os::unix::process::ExitStatusExt;
            s.code()
                .map(i64::from)
                .or_else(|| s.signal().map(|sig| 128 + i64::from(sig)))
                .unwrap_or(-1)
        }
        _ => -1,
    };
    (code, output)
}
