//! The root filesystem for `docker cp`: a running container's through its process, a stopped
//! one's mounted for the copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::mounts::MountPoint;
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
    /// The container's root filesystem, mounted for a copy of `path`. A stopped container's
    /// is mounted for the length of the guard (which also keeps it from starting meanwhile).
    pub async fn rootfs_for_copy(
        &self,
        c: &Arc<Container>,
        path: &str,
    ) -> Result<(PathBuf, Option<RootfsGuard>), ContainerError> {
        let paths = c.paths();
        let guard = c.op.clone().lock_owned().await;
        let rec = c.record();
        if rec.state.status.is_live() && rec.state.pid > 0 {
            return Ok((PathBuf::from(format!("pid:{}", rec.state.pid)), None));
        }
        refuse_mounted(&rec.mounts, path)?;
        let lowers = self.lower_dirs(&rec)?;
        rootfs::mount_rootfs(&paths, &lowers)?;
        Ok((paths.rootfs(), Some(RootfsGuard { paths, _op: guard })))
    }
}

/// A stopped container's volumes and bind mounts are mounted only while it runs: a copy into
/// one would land hidden in the overlay below the mount point, and a copy out of one would
/// read that instead of the volume. Refused with what to do, rather than done wrong.
fn refuse_mounted(mounts: &[MountPoint], path: &str) -> Result<(), ContainerError> {
    let clean = crate::containers::mounts::clean(path);
    let path = Path::new(&clean);
    for m in mounts {
        let dest = Path::new(&m.destination);
        if path.starts_with(dest) || dest.starts_with(path) {
            return Err(ContainerError::conflict(format!(
                "copying {} of a stopped container: {} is its {} mount, which skiff mounts only while the container runs; start the container first, or copy through a container that mounts it",
                path.display(),
                m.destination,
                m.kind.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::mounts::parse_bind;

    #[test]
    fn copies_touching_a_stopped_containers_mounts_are_refused() {
        let mounts = vec![parse_bind("vol:/data").unwrap()];
        for p in ["/data", "/data/x", "/", "/etc/../data/x"] {
            let e = refuse_mounted(&mounts, p).unwrap_err().to_string();
            assert!(e.contains("/data is its volume mount"), "{p}: {e}");
        }
        for p in ["/etc/hosts", "/database", "/dat"] {
            assert!(refuse_mounted(&mounts, p).is_ok(), "{p}");
        }
    }
}
