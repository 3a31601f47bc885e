//! Where a path of the user's host is, as the engine sees it. Natively it is the same path.
//! In the VM only the machine's shares are there (virtio-fs, mounted by PID 1, which lists
//! them in the file `SKIFF_SHARES` names): a bind mount of a host path is translated to its
//! place in its share, and a path outside every share is refused with the list of shares.

use std::path::{Path, PathBuf};

use super::VolumeError;

#[derive(Clone, Debug)]
pub enum HostPaths {
    Native,
    /// The machine's shares, longest host path first.
    Shared(Vec<skiff_common::shares::Share>),
}

impl HostPaths {
    pub fn native() -> Self {
        HostPaths::Native
    }

    /// From the environment PID 1 gives the engine in the VM; native when it is not there.
    pub fn from_env() -> anyhow::Result<Self> {
        use anyhow::Context;
        let Some(file) = std::env::var_os(skiff_common::shares::SHARES_ENV) else {
            return Ok(HostPaths::Native);
        };
        let shares = skiff_common::shares::Shares::load(Path::new(&file))
            .with_context(|| format!("reading the machine's shares from {file:?}"))?;
        Ok(HostPaths::Shared(shares.shares))
    }

    /// The host path's place here, and whether its share is read-only.
    pub fn resolve(&self, host: &Path) -> Result<(PathBuf, bool), VolumeError> {
        let shares = match self {
            HostPaths::Native => return Ok((host.to_path_buf(), false)),
            HostPaths::Shared(s) => s,
        };
        let found = skiff_common::shares::Shares {
            shares: shares.clone(),
        }
        .translate(host);
        let Some((guest, readonly)) = found else {
            let list = if shares.is_empty() {
                "none".to_string()
            } else {
                shares
                    .iter()
                    .map(|s| s.host.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(VolumeError::invalid(format!(
                "invalid mount config: bind source path {} is not shared with the skiff machine (shared: {list}): only shared host directories can be bind-mounted; share it with `skiff machine init --mount DIR` on a new machine",
                host.display()
            )));
        };
        let share = shares
            .iter()
            .find(|s| host.starts_with(&s.host))
            .map(|s| s.guest.clone())
            .unwrap_or_else(|| guest.clone());
        // A share whose host directory went away shows as an error on its mount point.
        if let Err(e) = std::fs::metadata(&share) {
            return Err(VolumeError::not_found(format!(
                "the share holding {} cannot be reached in the skiff machine ({e}): was its host directory removed or moved? restart the machine once it is back",
                host.display()
            )));
        }
        // A symlink inside the share resolves in the VM: one planted by a container (or
        // anyone who can write to the share) must not hand the VM's own files to the next
        // bind mount of it.
        if let Ok(real) = std::fs::canonicalize(&guest) {
            if !real.starts_with(&share) {
                return Err(VolumeError::invalid(format!(
                    "invalid mount config: bind source path {} leads outside its share (a symbolic link to {}): bind the link's target's host path instead",
                    host.display(),
                    real.display()
                )));
            }
        }
        Ok((guest, readonly))
    }
}
