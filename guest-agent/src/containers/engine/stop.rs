//! `docker kill` and `docker stop` (the stop signal, then SIGKILL after the timeout).

use std::sync::Arc;
use std::time::Duration;

use super::{Container, Containers, Signal};
use crate::containers::error::ContainerError;
use crate::containers::record::Status;

impl Containers {
    pub async fn kill(
        &self,
        c: &Container,
        signal: Signal,
        by_user: bool,
    ) -> Result<(), ContainerError> {
        if !c.status().is_live() {
            return Err(ContainerError::conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                c.record().name,
                c.id
            )));
        }
        if by_user {
            c.update_or_warn("recording the user's stop", |r| {
                r.state.stopped_by_user = true
            });
        }
        if c.status() == Status::Paused && signal == Signal::KILL {
            // A frozen process cannot die: thaw it so the SIGKILL lands.
            if let Err(e) = self.set_paused(c, false).await {
                tracing::warn!("unpausing {} to kill it: {e}", c.id);
            }
        }
        c.shim_request(&format!("kill {signal}"))
            .await
            .map_err(|e| ContainerError::Internal(e.context("signalling the container")))?;
        self.emit("kill", c, &[("signal", signal.to_string())]);
        Ok(())
    }

    /// The API's kill: the signal; for SIGKILL (the default), as dockerd, the answer waits
    /// for the end of the run (10 seconds at most), so that an inspect right after sees it.
    pub async fn kill_and_wait(&self, c: &Container, signal: Signal) -> Result<(), ContainerError> {
        let mut rx = c.subscribe();
        let started_at = c.record().state.started_at;
        self.kill(c, signal, true).await?;
        if signal != Signal::KILL {
            return Ok(());
        }
        let ended = async {
            loop {
                let r = c.record();
                if !r.state.status.is_live() || r.state.started_at != started_at {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .is_err()
        {
            tracing::warn!("{} still runs 10 seconds after SIGKILL", c.id);
        }
        Ok(())
    }

    /// docker stop: the stop signal, then SIGKILL after the timeout. Ok(false): not running.
    pub async fn stop(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<Signal>,
    ) -> Result<bool, ContainerError> {
        let stopped = self.stop_running(c, timeout, signal).await?;
        if stopped {
            self.emit("stop", c, &[]);
        }
        Ok(stopped)
    }

    async fn stop_running(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<Signal>,
    ) -> Result<bool, ContainerError> {
        if !c.status().is_live() {
            c.update_or_warn("recording the user's stop", |r| {
                if r.state.status == Status::Restarting {
                    r.state.status = Status::Exited;
                }
                r.state.stopped_by_user = true;
            });
            return Ok(false);
        }
        let rec = c.record();
        let sig = match signal {
            Some(s) => s,
            None => Signal::parse(rec.config.stop_signal.as_deref().unwrap_or("SIGTERM"))?,
        };
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = c.subscribe();
        if sig != Signal::KILL {
            if let Err(e) = self.kill(c, sig, true).await {
                if c.status().is_live() {
                    return Err(e);
                }
            }
            let ended = async {
                while c.status().is_live() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if timeout < 0 {
                ended.await;
                return Ok(true);
            }
            if tokio::time::timeout(Duration::from_secs(timeout as u64), ended)
                .await
                .is_ok()
            {
                return Ok(true);
            }
        }
        if c.status().is_live() {
            // It may end by itself meanwhile (then the kill finds it not running): the wait
            // below is what tells.
            if let Err(e) = self.kill(c, Signal::KILL, true).await {
                tracing::warn!("killing {} after the stop timeout: {e}", c.id);
            }
        }
        while c.status().is_live() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        Ok(true)
    }
}
