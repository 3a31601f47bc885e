//! The root filesystem for `docker cp`: a running container's through its process, a stopped
//! one's mounted for the copy.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::rootfs::{self, Paths};

/// A stopped container's root filesystem, mounted until dropped; it also holds the
/// container's operation lock, so that it does not start meanwhile.
pub struct RootfsGuard {
    paths: Paths,
    _op: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for RootfsGuard {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.paths) {
            tracing::warn!("unmounting a root filesystem after a copy: {e:#}");
        }
    }
}

impl Containers {
    /// The container's root filesystem, mounted for a copy. A stopped container's is
    /// mounted for the length of the guard (which also keeps it from starting meanwhile).
    pub async fn rootfs_for_copy(
        &self,
        c: &Arc<Container>,
    ) -> Result<(PathBuf, Option<RootfsGuard>), ContainerError> {
        let paths = c.paths();
        let guard = c.op.clone().lock_owned().await;
        let rec = c.record();
        if rec.state.status.is_live() && rec.state.pid > 0 {
            return Ok((PathBuf::from(format!("pid:{}", rec.state.pid)), None));
        }
        let lowers = self.lower_dirs(&rec)?;
        rootfs::mount_rootfs(&paths, &lowers)?;
        Ok((paths.rootfs(), Some(RootfsGuard { paths, _op: guard })))
    }
}
