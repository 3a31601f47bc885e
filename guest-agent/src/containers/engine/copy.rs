//! The root filesystem for `docker cp`: a running container's through its process, a stopped
//! one's mounted for the copy, with its volumes and binds when the copy reaches them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::staged::StagedBinds;
use super::{Container, Containers};
use crate::containers::archive::CopyMount;
use crate::containers::error::ContainerError;
use crate::containers::mounts::{MountPoint, MountType};
use crate::containers::record::Record;
use crate::containers::rootfs::{self, Paths};
use crate::volumes::Starting;

/// Where a copy happens: a running container's process, or a stopped container's root
/// filesystem mounted for the copy with the mounts the helper makes there.
pub struct CopyRoot {
    /// `pid:N` for a running container, else the mounted root filesystem.
    pub root: PathBuf,
    /// A stopped container's volumes and binds, when the copy reaches into one.
    pub mounts: Vec<CopyMount>,
    /// Held for what it keeps mounted and locked until dropped.
    _guard: Option<RootfsGuard>,
}

impl CopyRoot {
    /// The mounts for the helper's environment (`archive::MOUNTS_ENV`); None when there are none.
    pub fn mounts_json(&self) -> Option<String> {
        (!self.mounts.is_empty()).then(|| serde_json::to_string(&self.mounts).unwrap_or_default())
    }
}

/// A stopped container's root filesystem, mounted until dropped; it also holds the
/// container's operation lock, so that it does not start meanwhile, and its volumes, so
/// that a container ending meanwhile does not take a driver mount away.
struct RootfsGuard {
    paths: Paths,
    staged: Option<StagedBinds>,
    hold: Option<Starting>,
    /// Gives back driver mounts (a tmpfs volume) no running container uses, as a container's
    /// end does; docker's copy into a stopped container unmounts its volumes the same way.
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
    _op: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for RootfsGuard {
    fn drop(&mut self) {
        drop(self.staged.take());
        drop(self.hold.take());
        if let Some(release) = self.release.take() {
            release();
        }
        if let Err(e) = rootfs::unmount_rootfs(&self.paths) {
            tracing::warn!("unmounting a root filesystem after a copy: {e:#}");
        }
    }
}

impl Containers {
    /// Where to copy `path`. A stopped container's root filesystem is mounted for the
    /// length of the copy (which also keeps it from starting meanwhile); when the path is
    /// at or around one of its volumes or binds, those are made ready (as a start makes
    /// them) for the helper to mount. `writing`: the copy puts files there.
    pub async fn rootfs_for_copy(
        self: &Arc<Self>,
        c: &Arc<Container>,
        path: &str,
        writing: bool,
    ) -> Result<CopyRoot, ContainerError> {
        let paths = c.paths();
        let op = c.op.clone().lock_owned().await;
        let rec = c.record();
        if rec.state.status.is_live() && rec.state.pid > 0 {
            return Ok(CopyRoot {
                root: PathBuf::from(format!("pid:{}", rec.state.pid)),
                mounts: Vec::new(),
                _guard: None,
            });
        }
        if writing {
            refuse_tmpfs(&rec, path)?;
        }
        let lowers = self.lower_dirs(&rec)?;
        rootfs::mount_rootfs(&paths, &lowers)?;
        let mut guard = RootfsGuard {
            paths,
            staged: None,
            hold: None,
            release: None,
            _op: op,
        };
        let mut mounts = Vec::new();
        if rec.mounts.iter().any(|m| reaches(path, &m.destination)) {
            guard.hold = Some(self.hold_volumes(&rec));
            let me = self.clone();
            let ended = c.clone();
            guard.release = Some(Box::new(move || me.release_volumes(&ended)));
            let staged = guard
                .staged
                .insert(StagedBinds::new(&self.runtime_root, &rec.id));
            let oci = self.prepare_mounts(&rec, &guard.paths.rootfs(), staged)?;
            mounts = oci.iter().filter_map(copy_mount).collect();
        }
        Ok(CopyRoot {
            root: guard.paths.rootfs(),
            mounts,
            _guard: Some(guard),
        })
    }
}

/// A bind of the container's OCI spec as the helper mounts it; None for a tmpfs, which holds
/// nothing while the container is stopped.
fn copy_mount(m: &Value) -> Option<CopyMount> {
    if m["type"] != "bind" {
        return None;
    }
    let options: Vec<&str> = m["options"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(CopyMount {
        source: PathBuf::from(m["source"].as_str()?),
        destination: m["destination"].as_str()?.to_string(),
        readonly: options.contains(&"ro"),
        recursive: !options.contains(&"bind"),
    })
}

/// Whether a copy of `path` reaches the mount at `dest`: it is at, in or around it.
fn reaches(path: &str, dest: &str) -> bool {
    let clean = crate::containers::mounts::clean(path);
    let (path, dest) = (Path::new(&clean), Path::new(dest));
    path.starts_with(dest) || dest.starts_with(path)
}

/// A stopped container's tmpfs mounts do not exist: a copy into one would land hidden in the
/// root filesystem below the mount point. Refused with what to do, rather than done wrong.
fn refuse_tmpfs(rec: &Record, path: &str) -> Result<(), ContainerError> {
    let mounts = rec.mounts.iter().filter(|m| m.kind == MountType::Tmpfs);
    let dests = mounts.map(|m| m.destination.as_str());
    let flags = rec
        .host_config
        .tmpfs
        .iter()
        .flatten()
        .map(|(d, _)| d.as_str());
    match dests.chain(flags).find(|d| reaches(path, d)) {
        Some(dest) => Err(ContainerError::conflict(format!(
            "copying into {path} of a stopped container: {dest} is its tmpfs mount, which exists only while the container runs; start the container first"
        ))),
        None => Ok(()),
    }
}

/// Docker's rule for a copy into a container: into a read-only volume or bind it is refused;
/// into the root filesystem it is refused when that is read-only. Ok(true) when the path is
/// in a mount.
pub fn check_writable(
    mounts: &[MountPoint],
    readonly_rootfs: bool,
    path: &str,
) -> Result<bool, ContainerError> {
    let clean = crate::containers::mounts::clean(path);
    let path = Path::new(&clean);
    // The deepest mount holding the path is the one written to.
    let holder = mounts
        .iter()
        .filter(|m| path.starts_with(&m.destination))
        .max_by_key(|m| Path::new(&m.destination).components().count());
    match holder {
        Some(m) if !m.rw => Err(ContainerError::invalid(format!(
            "mounted volume is marked read-only: {} is mounted read-only in the container",
            m.destination
        ))),
        Some(_) => Ok(true),
        None if readonly_rootfs => Err(ContainerError::Forbidden(
            "container rootfs is marked read-only".into(),
        )),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::mounts::parse_bind;

    #[test]
    fn a_copy_reaches_the_mounts_at_in_and_below_its_path() {
        for p in ["/data", "/data/x", "/", "/etc/../data/x"] {
            assert!(reaches(p, "/data"), "{p}");
        }
        for p in ["/etc/hosts", "/database", "/dat"] {
            assert!(!reaches(p, "/data"), "{p}");
        }
    }

    #[test]
    fn writes_follow_dockers_read_only_rules() {
        let mounts = vec![
            parse_bind("vol:/data").unwrap(),
            parse_bind("/host:/data/ro:ro").unwrap(),
        ];
        assert!(check_writable(&mounts, false, "/data/x").unwrap());
        // The deepest mount decides, and a read-only root does not matter inside a volume.
        assert!(check_writable(&mounts, true, "/data/x").unwrap());
        for p in ["/data/ro", "/data/ro/x", "/data/../data/ro/x"] {
            let e = check_writable(&mounts, false, p).unwrap_err().to_string();
            assert!(e.contains("mounted volume is marked read-only"), "{p}: {e}");
        }
        assert!(!check_writable(&mounts, false, "/etc/x").unwrap());
        assert!(!check_writable(&mounts, false, "/database").unwrap());
        let e = check_writable(&mounts, true, "/etc/x").unwrap_err();
        assert_eq!(e.to_string(), "container rootfs is marked read-only");
    }

    #[test]
    fn the_helper_mounts_binds_as_the_spec_has_them_and_no_tmpfs() {
        let bind = serde_json::json!({"destination": "/d", "type": "bind", "source": "/v/d",
            "options": ["rbind", "rprivate", "ro"]});
        assert_eq!(
            copy_mount(&bind),
            Some(CopyMount {
                source: PathBuf::from("/v/d"),
                destination: "/d".into(),
                readonly: true,
                recursive: true,
            })
        );
        let plain = serde_json::json!({"destination": "/d", "type": "bind", "source": "/h",
            "options": ["bind", "rprivate"]});
        let m = copy_mount(&plain).expect("a bind");
        assert!(!m.readonly && !m.recursive);
        let tmpfs = serde_json::json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "options": []});
        assert_eq!(copy_mount(&tmpfs), None);
    }
}
