//! `docker rm`: the container's mounts, namespace and directory, then its place in the index.

use std::sync::Arc;

use super::{Container, Containers, Signal};
use crate::containers::error::ContainerError;
use crate::containers::record::Status;
use crate::containers::rootfs;

impl Containers {
    /// `docker rm`; `volumes` (`-v`, and `--rm`) takes its anonymous volumes with it.
    pub async fn remove(
        &self,
        c: &Arc<Container>,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        if c.status().is_live() {
            if !force {
                let verb = if c.status() == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ContainerError::conflict(format!(
                    "cannot remove container \"/{}\": container is {verb}: stop the container before removing or force remove",
                    c.record().name
                )));
            }
            self.stop(c, Some(0), Some(Signal::KILL)).await?;
        }
        let _op = c.op.lock().await;
        if self.is_removed(c) {
            return Ok(());
        }
        let before = c.status();
        c.update_or_warn("recording the removal", |r| {
            r.state.status = Status::Removing
        });
        // A start cut short (the agent killed mid-way) can leave a pinned network namespace
        // the record never learnt of; it would hold the directory.
        crate::network::link::remove_netns(&c.dir.join("netns"));
        let removed = match rootfs::unmount_rootfs(&c.paths()) {
            Ok(()) => remove_dir(&c.dir).await,
            Err(e) => Err(ContainerError::Internal(e)),
        };
        if let Err(e) = removed {
            // Not stuck in "Removal In Progress": as it was, so that `rm` can be tried again.
            c.update_or_warn("restoring the state after a failed removal", |r| {
                r.state.status = before
            });
            return Err(e);
        }
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        idx.by_id.remove(&c.id);
        let name = c.record().name;
        if idx.names.get(&name) == Some(&c.id) {
            idx.names.remove(&name);
        }
        drop(idx);
        if volumes {
            self.remove_anonymous_volumes(&c.record());
        }
        // Waiters for "removed" see the sender's generation bump; the record stays readable.
        c.changed.send_modify(|g| *g += 1);
        self.emit("destroy", c, &[]);
        Ok(())
    }
}

/// The container's directory, gone. Something can still create an entry in it while it is
/// being emptied (the vm pass saw "Directory not empty" once after `rm -f`, the writer not yet
/// found): a few tries, each logging what appeared, before the error is the user's.
async fn remove_dir(dir: &std::path::Path) -> Result<(), ContainerError> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 5 => {
                let left: Vec<String> = std::fs::read_dir(dir)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                tracing::warn!(
                    "removing {}: {e}; appeared meanwhile: {left:?}; trying again",
                    dir.display()
                );
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
            }
            Err(e) => {
                return Err(ContainerError::internal(format!(
                    "removing {}: {e}",
                    dir.display()
                )))
            }
        }
    }
}
