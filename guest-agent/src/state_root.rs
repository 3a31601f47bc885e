//! The state root holds every image's files (setuid binaries and device nodes included) and
//! every container's: whoever can walk into it can run those binaries or open those devices
//! outside any container, so it is the agent's own. Mode 0710, as docker keeps
//! /var/lib/docker: the owner's group may reach a socket placed inside, nobody else may list
//! or open anything under it.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

pub const MODE: u32 = 0o710;

/// Create the root private, or make an existing one private again (a root created by an
/// older skiff, under a loose umask, or changed by hand), and say so when it was not.
pub fn secure(root: &Path) -> Result<()> {
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(MODE).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("creating the state directory {}", root.display()))
        }
    }
    let md =
        std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if !md.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give --root a directory",
            root.display()
        );
    }
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if md.uid() != uid {
        std::os::unix::fs::lchown(root, Some(uid), Some(gid))
            .with_context(|| format!("taking ownership of {}", root.display()))?;
        tracing::warn!(
            "{} belonged to uid {}; it is the agent's now",
            root.display(),
            md.uid()
        );
    }
    if md.mode() & 0o7777 != MODE {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(MODE))
            .with_context(|| format!("making {} private", root.display()))?;
        tracing::warn!(
            "{} had mode {:o}; it is {MODE:o} now (others could reach the images' files)",
            root.display(),
            md.mode() & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_created_private_and_loose_ones_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b/root");
        secure(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&fresh), MODE);

        let loose = dir.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
        secure(&loose).unwrap();
        assert_eq!(mode(&loose), MODE);

        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(secure(&file).is_err());
    }
}
