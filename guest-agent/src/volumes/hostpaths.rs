//! Where a path of the user's host is, as the engine sees it. Natively it is the same path.
//! In the VM only the machine's shares are there (virtio-fs, mounted by PID 1, which lists
//! them in the file `SKIFF_SHARES` names): a bind mount of a host path is translated to its
//! place in its share, and a path outside every share is refused with the list of shares.

use std::os::fd::OwnedFd;
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
        let share = share_root(shares, host).unwrap_or_else(|| guest.clone());
        // A share whose host directory went away shows as an error on its mount point.
        if let Err(e) = std::fs::metadata(&share) {
            return Err(VolumeError::not_found(format!(
                "the share holding {} cannot be reached in the skiff machine ({e}): was its host directory removed or moved? restart the machine once it is back",
                host.display()
            )));
        }
        // A symlink inside the share resolves in the VM: one planted by a container (or
        // anyone who can write to the share) must not hand the VM's own files to the next
        // bind mount of it. Checked on the path, or on its nearest existing ancestor when
        // `-v` is to make the rest; the caller resolves again once it has made it. (The
        // runtime would resolve the path once more when it mounts it: `pin` opens what was
        // checked, and the engine binds that descriptor.)
        let mut existing = guest.as_path();
        let real = loop {
            match std::fs::canonicalize(existing) {
                Ok(r) => break Some(r),
                Err(_) => match existing.parent() {
                    Some(p) => existing = p,
                    None => break None,
                },
            }
        };
        if let Some(real) = real.filter(|r| !r.starts_with(&share)) {
            return Err(VolumeError::invalid(format!(
                "invalid mount config: bind source path {} leads outside its share (a symbolic link to {}): bind the link's target's host path instead",
                host.display(),
                real.display()
            )));
        }
        Ok((guest, readonly))
    }

    /// In the VM, the bind source `host` (existing, and checked by `resolve`) opened as an
    /// `O_PATH` descriptor by its real path, with no symbolic link allowed on the way and
    /// nothing outside its share: a container writing to the share cannot swap in a link
    /// between the check and the mount. None natively, where the runtime mounts the path.
    pub fn pin(&self, host: &Path) -> Result<Option<OwnedFd>, VolumeError> {
        let HostPaths::Shared(shares) = self else {
            return Ok(None);
        };
        let (guest, _) = self.resolve(host)?;
        let changed = |why: String| {
            VolumeError::invalid(format!(
                "invalid mount config: bind source path {} changed while it was being mounted ({why}); try again",
                host.display()
            ))
        };
        let share = share_root(shares, host).ok_or_else(|| changed("no share holds it".into()))?;
        let share = std::fs::canonicalize(&share).map_err(|e| changed(e.to_string()))?;
        let real = std::fs::canonicalize(&guest).map_err(|e| changed(e.to_string()))?;
        let rel = real
            .strip_prefix(&share)
            .map_err(|_| changed(format!("it leads to {}", real.display())))?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let root = rustix::fs::open(
            &share,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| changed(format!("opening its share: {e}")))?;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename raced with the lookup, and the kernel asks for another try.
        let mut last = rustix::io::Errno::AGAIN;
        for _ in 0..8 {
            match rustix::fs::openat2(
                &root,
                rel,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            ) {
                Ok(fd) => return Ok(Some(fd)),
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(changed(std::io::Error::from(last).to_string()))
    }
}

/// The guest mount point of the share `translate` chose for `host`: the one with the longest
/// host path holding it.
fn share_root(shares: &[skiff_common::shares::Share], host: &Path) -> Option<PathBuf> {
    shares
        .iter()
        .filter(|s| host.starts_with(&s.host))
        .max_by_key(|s| s.host.as_os_str().len())
        .map(|s| s.guest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_common::shares::Share;
    use std::os::fd::AsRawFd;

    /// A "VM" in a temp dir: host `/home/u` shared at `<tmp>/mnt/host/home/u`.
    fn vm() -> (tempfile::TempDir, HostPaths, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let guest = d.path().join("mnt/host/home/u");
        std::fs::create_dir_all(guest.join("proj")).unwrap();
        let paths = HostPaths::Shared(vec![Share {
            host: "/home/u".into(),
            guest: guest.clone(),
            readonly: false,
        }]);
        (d, paths, guest)
    }

    #[test]
    fn natively_a_host_path_is_itself() {
        let p = Path::new("/srv/data");
        assert_eq!(
            HostPaths::native().resolve(p).unwrap(),
            (p.to_path_buf(), false)
        );
    }

    #[test]
    fn a_shared_path_is_found_in_its_share_and_others_are_refused_with_the_list() {
        let (_d, paths, guest) = vm();
        let (here, ro) = paths.resolve(Path::new("/home/u/proj")).unwrap();
        assert_eq!((here, ro), (guest.join("proj"), false));
        // Not made yet: fine, `-v` makes it.
        assert_eq!(
            paths.resolve(Path::new("/home/u/new/dir")).unwrap().0,
            guest.join("new/dir")
        );
        let e = paths.resolve(Path::new("/etc")).unwrap_err().to_string();
        assert!(
            e.contains("/etc is not shared with the skiff machine (shared: /home/u)"),
            "{e}"
        );
        let e = paths
            .resolve(Path::new("/home/u/../../etc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not shared"), "{e}");
    }

    #[test]
    fn a_symlink_out_of_the_share_is_refused_even_below_a_path_not_made_yet() {
        let (d, paths, guest) = vm();
        let outside = d.path().join("vm-root-files");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, guest.join("proj/link")).unwrap();
        for p in ["/home/u/proj/link", "/home/u/proj/link/not/made"] {
            let e = paths.resolve(Path::new(p)).unwrap_err().to_string();
            assert!(e.contains("leads outside its share"), "{p}: {e}");
        }
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink(guest.join("proj"), guest.join("inside")).unwrap();
        assert!(paths.resolve(Path::new("/home/u/inside")).is_ok());
    }

    #[test]
    fn a_pinned_source_is_the_checked_one_and_a_link_on_the_way_is_refused() {
        use std::os::unix::fs::MetadataExt;
        assert!(HostPaths::native()
            .pin(Path::new("/srv"))
            .unwrap()
            .is_none());
        let (d, paths, guest) = vm();
        let fd = paths.pin(Path::new("/home/u/proj")).unwrap().unwrap();
        let pinned = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let there = std::fs::metadata(guest.join("proj")).unwrap();
        assert_eq!((pinned.dev(), pinned.ino()), (there.dev(), there.ino()));
        assert!(paths.pin(Path::new("/home/u")).unwrap().is_some());
        // A link inside the share is followed to its real place, which is what is opened.
        std::os::unix::fs::symlink(guest.join("proj"), guest.join("inside")).unwrap();
        let fd = paths.pin(Path::new("/home/u/inside")).unwrap().unwrap();
        let pinned = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(pinned.ino(), there.ino());
        // One that leads out is refused, as by `resolve`.
        std::os::unix::fs::symlink(d.path(), guest.join("out")).unwrap();
        let e = paths.pin(Path::new("/home/u/out")).unwrap_err().to_string();
        assert!(e.contains("leads outside its share"), "{e}");
    }

    #[test]
    fn a_share_that_is_gone_says_so() {
        let (_d, paths, guest) = vm();
        std::fs::remove_dir_all(&guest).unwrap();
        let e = paths.resolve(Path::new("/home/u/proj")).unwrap_err();
        assert!(
            matches!(&e, VolumeError::NotFound(m) if m.contains("cannot be reached")),
            "{e}"
        );
    }
}
