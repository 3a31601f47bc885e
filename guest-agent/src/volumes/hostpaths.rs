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
    /// In the VM: the machine's shares, longest host path first, and this engine's own API
    /// socket, which a bind of the docker socket's usual path gets (`-v
    /// /var/run/docker.sock:…`, as under Docker Desktop: the engine the container runs on).
    Shared {
        shares: Vec<skiff_common::shares::Share>,
        engine_socket: PathBuf,
    },
}

/// Where tools expect the docker socket on a host. Natively these are the host's own paths
/// (dockerd's socket, if it runs); in the VM a bind of either is this engine's socket.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

impl HostPaths {
    pub fn native() -> Self {
        HostPaths::Native
    }

    /// From the environment PID 1 gives the engine in the VM; native when it is not there.
    /// `engine_socket` is where this engine serves its API.
    pub fn from_env(engine_socket: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let Some(file) = std::env::var_os(skiff_common::shares::SHARES_ENV) else {
            return Ok(HostPaths::Native);
        };
        let shares = skiff_common::shares::Shares::load(Path::new(&file))
            .with_context(|| format!("reading the machine's shares from {file:?}"))?;
        Ok(HostPaths::Shared {
            shares: shares.shares,
            engine_socket: engine_socket.to_path_buf(),
        })
    }

    /// The host path's place here, and whether its share is read-only.
    pub fn resolve(&self, host: &Path) -> Result<(PathBuf, bool), VolumeError> {
        let shares = match self {
            HostPaths::Native => return Ok((host.to_path_buf(), false)),
            HostPaths::Shared { engine_socket, .. }
                if DOCKER_SOCKETS.iter().any(|d| host == Path::new(d)) =>
            {
                return Ok((engine_socket.clone(), false))
            }
            HostPaths::Shared { shares, .. } => shares,
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
        // `-v` is to make the rest; `pin` checks the made path again and opens what it
        // checked, and the engine binds that descriptor rather than the path.
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
            return Err(leads_outside(host, &real));
        }
        Ok((guest, readonly))
    }

    /// In the VM, the bind source `host`, existing at `guest` (where `resolve` put it), opened
    /// as an `O_PATH` descriptor by its real path, with no symbolic link allowed on the way
    /// and nothing outside its share: a container writing to the share cannot swap in a link
    /// between the check and the mount. A link out of the share gets `resolve`'s error,
    /// so a source made after `resolve` is checked here. None natively, where the runtime
    /// mounts the path.
    pub fn pin(&self, host: &Path, guest: &Path) -> Result<Option<OwnedFd>, VolumeError> {
        let HostPaths::Shared {
            shares,
            engine_socket,
        } = self
        else {
            return Ok(None);
        };
        // The engine's own socket is in no share and nothing in a container can move it.
        if guest == engine_socket.as_path() {
            return Ok(None);
        }
        let changed = |why: String| {
            VolumeError::invalid(format!(
                "invalid mount config: bind source path {} changed while it was being mounted ({why}); try again",
                host.display()
            ))
        };
        let share = share_root(shares, host).ok_or_else(|| changed("no share holds it".into()))?;
        let share = std::fs::canonicalize(&share).map_err(|e| changed(e.to_string()))?;
        let real = std::fs::canonicalize(guest).map_err(|e| changed(e.to_string()))?;
        let rel = real
            .strip_prefix(&share)
            .map_err(|_| leads_outside(host, &real))?;
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
        crate::openat2::open(&root, rel, OFlags::PATH | OFlags::CLOEXEC, resolve)
            .map(Some)
            .map_err(|e| changed(std::io::Error::from(e).to_string()))
    }
}

fn leads_outside(host: &Path, real: &Path) -> VolumeError {
    VolumeError::invalid(format!(
        "invalid mount config: bind source path {} leads outside its share (a symbolic link to {}): bind the link's target's host path instead",
        host.display(),
        real.display()
    ))
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
        let paths = HostPaths::Shared {
            shares: vec![Share {
                host: "/home/u".into(),
                guest: guest.clone(),
                readonly: false,
            }],
            engine_socket: "/run/skiff/engines/e.sock".into(),
        };
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
            .pin(Path::new("/srv"), Path::new("/srv"))
            .unwrap()
            .is_none());
        let (d, paths, guest) = vm();
        let fd = paths
            .pin(Path::new("/home/u/proj"), &guest.join("proj"))
            .unwrap()
            .unwrap();
        let pinned = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let there = std::fs::metadata(guest.join("proj")).unwrap();
        assert_eq!((pinned.dev(), pinned.ino()), (there.dev(), there.ino()));
        assert!(paths.pin(Path::new("/home/u"), &guest).unwrap().is_some());
        // A link inside the share is followed to its real place, which is what is opened.
        std::os::unix::fs::symlink(guest.join("proj"), guest.join("inside")).unwrap();
        let fd = paths
            .pin(Path::new("/home/u/inside"), &guest.join("inside"))
            .unwrap()
            .unwrap();
        let pinned = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(pinned.ino(), there.ino());
        // One that leads out is refused, as by `resolve`.
        std::os::unix::fs::symlink(d.path(), guest.join("out")).unwrap();
        let e = paths
            .pin(Path::new("/home/u/out"), &guest.join("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("leads outside its share"), "{e}");
    }

    #[test]
    fn the_docker_socket_is_the_engines_own_in_the_vm_and_the_hosts_natively() {
        let (_d, paths, _) = vm();
        let engine = PathBuf::from("/run/skiff/engines/e.sock");
        for p in DOCKER_SOCKETS {
            assert_eq!(
                paths.resolve(Path::new(p)).unwrap(),
                (engine.clone(), false)
            );
            let native = HostPaths::native().resolve(Path::new(p)).unwrap();
            assert_eq!(native, (PathBuf::from(p), false));
        }
        assert!(paths
            .pin(Path::new(DOCKER_SOCKETS[0]), &engine)
            .unwrap()
            .is_none());
        // Only those paths: another socket outside the shares is refused as any path is.
        let e = paths.resolve(Path::new("/var/run/other.sock")).unwrap_err();
        assert!(e.to_string().contains("is not shared"), "{e}");
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
