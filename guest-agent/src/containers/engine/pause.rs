//! `docker pause` and `unpause`: libcontainer freezes or thaws the container's cgroup.

use anyhow::{anyhow, Result};

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::record::Status;

impl Containers {
    pub async fn set_paused(&self, c: &Container, pause: bool) -> Result<(), ContainerError> {
        let status = c.status();
        let name = c.record().name;
        if pause && status != Status::Running {
            return Err(ContainerError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if !pause && status != Status::Paused {
            return Err(ContainerError::conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        let state = self.runtime_root.join(&c.id);
        let res = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut rc =
                libcontainer::container::Container::load(state).map_err(|e| anyhow!("{e}"))?;
            if pause {
                rc.pause().map_err(|e| anyhow!("{e}"))
            } else {
                rc.resume().map_err(|e| anyhow!("{e}"))
            }
        })
        .await
        .map_err(ContainerError::internal)?;
        res.map_err(|e| {
            ContainerError::internal(format!(
                "{} {name}: {e:#}",
                if pause { "pausing" } else { "unpausing" }
            ))
        })?;
        c.update(|r| {
            r.state.status = if pause {
                Status::Paused
            } else {
                Status::Running
            };
        })?;
        self.emit(if pause { "pause" } else { "unpause" }, c, &[]);
        Ok(())
    }
}
