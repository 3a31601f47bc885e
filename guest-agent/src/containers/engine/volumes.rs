//! A container's volumes and bind mounts through its life: made at create, prepared at start
//! (volumes mounted and filled from the image, host paths found), given back at its end, and
//! its anonymous volumes removed with it. Also the engine's side of `volume rm` and `prune`:
//! whether a volume is in use is read from the containers' records, under `volume_use`, so
//! that no container takes a volume between that check and the removal.

use std::path::{Path, PathBuf};

use bollard::models::{ContainerConfig, HostConfig};
use serde_json::Value;

use super::staged::StagedBinds;
use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::mounts::{self, MountPoint, MountType};
use crate::containers::record::Record;
use crate::volumes::{CreateRequest, Volume, VolumeError};

impl From<VolumeError> for ContainerError {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::NotFound(m) => ContainerError::NotFound(m),
            VolumeError::InvalidArgument(m) => ContainerError::InvalidArgument(m),
            VolumeError::Conflict(m) => ContainerError::Conflict(m),
            VolumeError::Forbidden(m) => ContainerError::Forbidden(m),
            VolumeError::Internal(e) => ContainerError::Internal(e),
        }
    }
}

impl Containers {
    /// The new container's mounts, with its volumes made: named ones that do not exist yet
    /// and an anonymous one for each mount point without a name; and the names of the
    /// volumes this call made (only those may go if the create fails after all). Called with
    /// `volume_use` held, so no volume it names is removed before its record exists.
    pub(super) fn make_mounts(
        &self,
        hc: &HostConfig,
        config: &ContainerConfig,
    ) -> Result<(Vec<MountPoint>, Vec<String>), ContainerError> {
        if let Some(d) = hc
            .volume_driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "local")
        {
            return Err(ContainerError::not_found(format!(
                "error looking up volume plugin {d}: plugin \"{d}\" not found: skiff has the local driver only"
            )));
        }
        let mut from = Vec::new();
        for raw in hc.volumes_from.iter().flatten() {
            let (name, rw) = mounts::parse_volumes_from(raw).map_err(ContainerError::invalid)?;
            let other = self.get(&name)?;
            for mut mp in other.record().mounts {
                // moby: `:rw` keeps a read-only mount read-only, `:ro` makes any so; the
                // other container's volumes were filled already.
                if let Some(rw) = rw {
                    mp.rw = mp.rw && rw;
                }
                mp.copy_data = false;
                from.push(mp);
            }
        }
        let mut mps = mounts::resolve(
            from,
            hc.binds.as_deref().unwrap_or_default(),
            hc.mounts.as_deref().unwrap_or_default(),
            config.volumes.as_deref().unwrap_or_default(),
        )
        .map_err(ContainerError::invalid)?;
        for mp in &mps {
            if mp.kind == MountType::Bind {
                let (here, _) = self.volumes.host_paths.resolve(Path::new(&mp.source))?;
                if !mp.create_source && !here.exists() {
                    return Err(ContainerError::invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        mp.source
                    )));
                }
            }
            if mp.named && !crate::volumes::valid_name(&mp.name) {
                return Err(crate::volumes::invalid_name(&mp.name).into());
            }
        }
        let mut made: Vec<String> = Vec::new();
        let result = (|| -> Result<(), ContainerError> {
            for mp in mps.iter_mut().filter(|m| m.kind == MountType::Volume) {
                if mp.name.is_empty() {
                    let v = self.volumes.create_anonymous()?;
                    made.push(v.name.clone());
                    mp.name = v.name;
                } else {
                    let (v, new) = self.volumes.create_new(CreateRequest {
                        name: mp.name.clone(),
                        labels: mp.volume_labels.clone(),
                        options: mp.volume_options.clone(),
                        ..Default::default()
                    })?;
                    if new {
                        made.push(v.name);
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.drop_volumes(&made);
            return Err(e);
        }
        Ok((mps, made))
    }

    /// Volumes made for a container that was not created after all.
    pub(super) fn drop_volumes(&self, names: &[String]) {
        for n in names {
            if let Err(e) = self.volumes.remove_unused(n) {
                tracing::warn!("removing volume {n} of a container not created: {e}");
            }
        }
    }

    /// Just before the container's process exists (its root filesystem mounted): each
    /// volume mounted and, if new, filled from the image; each host path found (and made,
    /// for `-v`). The mounts for its OCI spec.
    pub(super) fn prepare_mounts(
        &self,
        rec: &Record,
        rootfs: &Path,
        staged: &mut StagedBinds,
    ) -> Result<Vec<Value>, ContainerError> {
        let mut out = Vec::new();
        for mp in &rec.mounts {
            let (source, force_ro) = match mp.kind {
                MountType::Tmpfs => (PathBuf::new(), false),
                MountType::Volume => {
                    let v = self.volumes.get(&mp.name).map_err(|_| {
                        ContainerError::not_found(format!(
                            "volume {} of the container is gone: it was removed while the container existed",
                            mp.name
                        ))
                    })?;
                    self.volumes.mount(&v)?;
                    let mut data = self.volumes.mountpoint(&v.name);
                    if !mp.subpath.is_empty() {
                        // What was checked is what gets mounted: a container using the
                        // volume meanwhile could swap a directory on the way for a link.
                        let fd = open_subpath(&data, &mp.subpath, &mp.name)?;
                        data = staged.stage(fd).map_err(ContainerError::Internal)?;
                    }
                    // Never into a volume a running container can write to meanwhile: it
                    // could swap a directory the copy goes into for a symlink out. The lock
                    // makes another container starting with this volume wait for the copy.
                    if mp.copy_data {
                        let _copying = self
                            .volumes
                            .copy_up
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        if !self.in_live_use(&mp.name, &rec.id) {
                            copy_up(rootfs, &mp.destination, &data)?;
                        }
                    }
                    (data, false)
                }
                MountType::Bind => {
                    let (here, share_ro) =
                        self.volumes.host_paths.resolve(Path::new(&mp.source))?;
                    if !here.exists() {
                        if !mp.create_source {
                            return Err(ContainerError::invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                mp.source
                            )));
                        }
                        std::fs::create_dir_all(&here).map_err(|e| {
                            ContainerError::internal(format!(
                                "creating the bind mount's source {}: {e}",
                                mp.source
                            ))
                        })?;
                    }
                    // `pin` checks what was just made as `resolve` checked what existed.
                    match self.volumes.host_paths.pin(Path::new(&mp.source), &here)? {
                        Some(fd) => (
                            staged.stage(fd).map_err(ContainerError::Internal)?,
                            share_ro,
                        ),
                        None => (here, share_ro),
                    }
                }
            };
            out.push(mounts::oci_mount(mp, &source, force_ro));
        }
        Ok(out)
    }

    /// The container has ended: a volume's driver mount (tmpfs, bind) goes once no running
    /// container uses it.
    pub(super) fn release_volumes(&self, c: &Container) {
        let rec = c.record();
        for mp in rec.mounts.iter().filter(|m| m.kind == MountType::Volume) {
            if let Ok(v) = self.volumes.get(&mp.name) {
                self.volumes
                    .release_unless_used(&v, || self.in_live_use(&mp.name, &c.id));
            }
        }
    }

    /// Held by a start from before its volumes are mounted until its process has its own
    /// copy of the mounts (and its status says it runs): a container ending meanwhile must
    /// not take a driver mount (a tmpfs volume, a bind) from under it.
    pub(super) fn hold_volumes(&self, rec: &Record) -> crate::volumes::Starting {
        let names = rec
            .mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume)
            .map(|m| m.name.clone())
            .collect();
        self.volumes.starting(names)
    }

    /// Whether a running container other than `except` has the volume mounted.
    fn in_live_use(&self, name: &str, except: &str) -> bool {
        self.all()
            .iter()
            .any(|o| o.id != except && o.status().is_live() && uses_volume(&o.record(), name))
    }

    /// The containers that use a volume, by ID.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| uses_volume(&c.record(), name))
            .map(|c| c.id.clone())
            .collect()
    }

    /// `volume rm`: refused while a container (running or not) uses it, as docker does.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let _use = self.volume_use.lock().unwrap_or_else(|p| p.into_inner());
        let v = match self.volumes.get(name) {
            Ok(v) => v,
            Err(VolumeError::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let users = self.volume_users(&v.name);
        if !users.is_empty() {
            return Err(VolumeError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.volumes.remove_unused(&v.name)
    }

    /// `volume prune`: the unused volumes `admit` accepts, removed; their names and bytes.
    pub fn prune_volumes(&self, admit: impl Fn(&Volume) -> bool) -> (Vec<String>, u64) {
        let _use = self.volume_use.lock().unwrap_or_else(|p| p.into_inner());
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in self.volumes.list() {
            if !admit(&v) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            let size = self.volumes.size(&v.name);
            match self.volumes.remove_unused(&v.name) {
                Ok(()) => {
                    removed.push(v.name);
                    bytes += size;
                }
                Err(e) => tracing::warn!("pruning volume {}: {e}", v.name),
            }
        }
        (removed, bytes)
    }

    /// `rm -v` and `--rm`: the container's anonymous volumes go with it, unless another
    /// container still uses one (`--volumes-from`), as docker does.
    pub(super) fn remove_anonymous_volumes(&self, rec: &Record) {
        let _use = self.volume_use.lock().unwrap_or_else(|p| p.into_inner());
        for mp in rec
            .mounts
            .iter()
            .filter(|m| m.kind == MountType::Volume && !m.named)
        {
            if !self.volume_users(&mp.name).is_empty() {
                continue;
            }
            match self.volumes.get(&mp.name) {
                Ok(v) if v.anonymous() => {
                    if let Err(e) = self.volumes.remove_unused(&v.name) {
                        tracing::warn!("removing volume {} with its container: {e}", v.name);
                    }
                }
                _ => {}
            }
        }
    }
}

fn uses_volume(rec: &Record, name: &str) -> bool {
    rec.mounts
        .iter()
        .any(|m| m.kind == MountType::Volume && m.name == name)
}

/// docker's copy-up: a volume that is still empty gets what the image has at `dest`.
fn copy_up(rootfs: &Path, dest: &str, data: &Path) -> Result<(), ContainerError> {
    let empty = std::fs::read_dir(data)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let Some(dir) = open_dir_in_root(rootfs, dest)? else {
        return Ok(());
    };
    let src = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    crate::volumes::copy::copy_tree(&src, data).map_err(|e| {
        ContainerError::Internal(e.context(format!("copying the image's {dest} into its volume")))
    })
}

/// A volume's `volume-subpath`, opened beneath the volume's directory as docker does: links
/// in the volume are followed while they stay inside it; one leading out (an absolute link,
/// or `..` past the top) is refused, as is a path the volume does not have.
fn open_subpath(
    data: &Path,
    subpath: &str,
    volume: &str,
) -> Result<std::os::fd::OwnedFd, ContainerError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let root = rustix::fs::open(
        data,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ContainerError::internal(format!("opening volume {volume}: {e}")))?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    crate::openat2::open(&root, subpath, OFlags::PATH | OFlags::CLOEXEC, resolve).map_err(|e| {
        match e {
            Errno::XDEV => ContainerError::invalid(format!(
                "invalid mount config for type \"volume\": volume-subpath {subpath} leads outside volume {volume} through a symbolic link: path concatenation escapes the base directory"
            )),
            Errno::NOENT | Errno::NOTDIR => ContainerError::invalid(format!(
                "cannot access path {subpath} in volume {volume}: no such file or directory: create it in the volume first"
            )),
            e => ContainerError::internal(format!(
                "opening {subpath} in volume {volume}: {e}"
            )),
        }
    })
}

/// A directory of the container's root filesystem, found as the container would find it:
/// symlinks and `..` resolve inside the root, never onto the host. None when it is missing
/// or not a directory.
fn open_dir_in_root(
    rootfs: &Path,
    path: &str,
) -> Result<Option<std::os::fd::OwnedFd>, ContainerError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ContainerError::internal(format!("opening {}: {e}", rootfs.display())))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    match crate::openat2::open(&root, path, flags, resolve) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(ContainerError::internal(format!(
            "opening {path} in the container: {e}"
        ))),
    }
}
