//! The host's directories in the VM (virtio-fs), so that bind mounts of host paths work there.
//! For each share of the machine the daemon runs one virtiofsd before QEMU; QEMU gives the
//! guest a `vhost-user-fs-device` per share, and the kernel command line tells PID 1 which
//! tag is which host directory (`skiff_common::shares`).
//!
//! virtiofsd serves one QEMU connection and exits when QEMU goes, so each boot starts new
//! ones. Like passt and QEMU they die with the daemon (`PR_SET_PDEATHSIG`).
//!
//! Whatever a share holds is reachable by the VM's containers, so virtiofsd runs with the
//! rights of the share directory's owner, not the daemon's: when the daemon is root, it
//! drops to that owner's uid and gid before it starts (a container then can do in the share
//! what the owner can, and no more), and maps every guest uid and gid to the owner's, so that
//! what a container's root writes belongs to the owner on the host, as under Docker Desktop.
//! The owner's own files show as root's in the guest. A read-only share is read-only in
//! virtiofsd itself, not only in the guest's mount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skiff_common::shares::{tag, Offer, MAX_SHARES};

use super::config::SharedDir;

/// The virtiofsd to run: `SKIFF_VIRTIOFSD`, else the one installed with skiff
/// (`../libexec/skiff/virtiofsd`, scripts/install.sh) or beside the skiff binary, else
/// `/usr/libexec/virtiofsd` (where distributions put it), else on PATH. The error says where
/// it looked and how to get one.
pub fn binary() -> std::result::Result<PathBuf, String> {
    let beside: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .map(|d| vec![d.join("../libexec/skiff/virtiofsd"), d.join("virtiofsd")])
        .unwrap_or_default();
    find(
        std::env::var_os("SKIFF_VIRTIOFSD").map(PathBuf::from),
        beside,
        std::env::var_os("PATH"),
    )
}

fn find(
    named: Option<PathBuf>,
    beside: Vec<PathBuf>,
    path_var: Option<std::ffi::OsString>,
) -> std::result::Result<PathBuf, String> {
    if let Some(p) = named {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("SKIFF_VIRTIOFSD={} does not exist", p.display()))
        };
    }
    let on_path: Vec<PathBuf> = path_var
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("virtiofsd"))
                .collect()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain([PathBuf::from("/usr/libexec/virtiofsd")])
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "virtiofsd is not installed (looked at $SKIFF_VIRTIOFSD, skiff's libexec/skiff, beside skiff, /usr/libexec/virtiofsd and PATH); \
             install skiff with scripts/install.sh, or build it with scripts/build-virtiofsd.sh and set SKIFF_VIRTIOFSD to the path it prints"
                .to_string()
        })
}

/// The vhost-user socket of the `index`th share, in the machine's directory.
pub fn socket(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("vfs-{index}.sock"))
}

/// Every socket name a machine's shares may use (for cleaning up after a dead daemon).
pub fn all_sockets(dir: &Path) -> Vec<PathBuf> {
    (0..MAX_SHARES).map(|i| socket(dir, i)).collect()
}

fn log_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("vfs-{index}.log"))
}

/// Why some shares will not be in the VM, known before it starts: said by `machine start`
/// and logged by the daemon, so that no share goes missing silently.
pub fn preflight(shares: &[SharedDir]) -> Vec<String> {
    if shares.is_empty() {
        return Vec::new();
    }
    problems(shares, binary())
}

fn problems(shares: &[SharedDir], bin: std::result::Result<PathBuf, String>) -> Vec<String> {
    if let Err(e) = bin {
        return vec![format!(
            "{e}. The machine starts without its shared directories, so bind mounts of host paths will fail"
        )];
    }
    shares
        .iter()
        .filter(|s| !s.path.is_dir())
        .map(|s| {
            format!(
                "the shared directory {} is gone; the machine starts without it",
                s.path.display()
            )
        })
        .collect()
}

/// A virtiofsd serving one share.
pub struct Server {
    pub share: SharedDir,
    pub index: usize,
    child: tokio::process::Child,
}

impl Server {
    /// What QEMU and the guest need of it.
    pub fn device(&self, dir: &Path) -> Device {
        Device {
            socket: socket(dir, self.index),
            offer: Offer {
                tag: tag(self.index),
                host: self.share.path.clone(),
                readonly: self.share.readonly,
            },
        }
    }
}

/// One share's virtio-fs device: QEMU's side (the socket) and the guest's (tag, path, mode).
#[derive(Debug, Clone)]
pub struct Device {
    pub socket: PathBuf,
    pub offer: Offer,
}

/// The host identity a share's virtiofsd acts as: the share directory's owner when the
/// daemon is root, else the daemon's own user (who cannot act as anyone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    uid: u32,
    gid: u32,
    /// Whether the daemon must switch to it before starting virtiofsd.
    switch: bool,
}

fn identity(owner_uid: u32, owner_gid: u32, euid: u32, egid: u32) -> Identity {
    if euid == 0 {
        Identity {
            uid: owner_uid,
            gid: owner_gid,
            switch: owner_uid != 0 || owner_gid != 0,
        }
    } else {
        Identity {
            uid: euid,
            gid: egid,
            switch: false,
        }
    }
}

/// virtiofsd's arguments past the socket and the directory.
fn arguments(share: &SharedDir, id: Identity) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--fd=3".into(),
        // The daemon has made the share the working directory: the owner may not be
        // allowed to walk the path to it (a share inside root's home, a private temp dir).
        "--shared-dir=.".into(),
        "--cache=auto".into(),
        // Namespace sandboxing needs privileges the daemon often lacks; the share's owner's
        // rights bound what it can reach instead (SECURITY.md, "The VM boundary").
        "--sandbox=none".into(),
    ];
    // Every guest id becomes the owner's on the host; the owner's show as root's in the
    // guest, so the share looks like the guest's own to a container's root.
    for (flag, id) in [("--translate-uid", id.uid), ("--translate-gid", id.gid)] {
        a.push(format!("{flag}=squash-guest:0:{id}:4294967295"));
        a.push(format!("{flag}=host:{id}:0:1"));
    }
    if id.uid != 0 {
        // Opening file handles needs CAP_DAC_READ_SEARCH: without it virtiofsd tries and
        // falls back on every start, with two warnings in its log.
        a.push("--inode-file-handles=never".into());
    }
    if share.readonly {
        a.push("--readonly".into());
    }
    a
}

/// Start a virtiofsd for each share (the `index`th share keeps socket, tag and log number
/// `index` whatever happens to the others). A share that cannot be served is logged and left
/// out: the machine boots without it.
pub async fn start(dir: &Path, shares: &[SharedDir]) -> Vec<Server> {
    if shares.is_empty() {
        return Vec::new();
    }
    for p in preflight(shares) {
        tracing::warn!("{p}");
    }
    let Ok(bin) = binary() else {
        return Vec::new();
    };
    let mut servers = Vec::new();
    for (index, share) in shares.iter().enumerate() {
        if !share.path.is_dir() {
            continue;
        }
        match spawn(&bin, dir, index, share) {
            Ok(child) => servers.push(Server {
                share: share.clone(),
                index,
                child,
            }),
            Err(e) => tracing::warn!(
                "cannot share {} with the VM: {e:#}; the machine starts without it",
                share.path.display()
            ),
        }
    }
    // QEMU refuses to start when a socket it connects to has nobody behind it: let those that
    // fail at once (a bad directory, a bad option) fail now, and leave them out.
    let mut ready = Vec::new();
    for mut s in servers {
        match wait_listening(&mut s.child, &log_path(dir, s.index)).await {
            Ok(()) => {
                tracing::info!(
                    "sharing {}{} with the VM (virtiofsd pid {}, log {})",
                    s.share.path.display(),
                    if s.share.readonly { " read-only" } else { "" },
                    s.child.id().unwrap_or_default(),
                    log_path(dir, s.index).display()
                );
                ready.push(s);
            }
            Err(e) => tracing::warn!(
                "cannot share {} with the VM: {e:#}; the machine starts without it",
                s.share.path.display()
            ),
        }
    }
    ready
}

/// The words virtiofsd logs once it waits for QEMU.
const LISTENING: &str = "Waiting for vhost-user socket connection";

async fn wait_listening(child: &mut tokio::process::Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let last = tail.lines().last().unwrap_or_default().to_string();
            anyhow::bail!(
                "virtiofsd exited at start ({status}): {last} (see {})",
                log.display()
            );
        }
        // The socket listens already (the daemon bound it); the message only says virtiofsd
        // got past its checks. Another version may word it differently: then the deadline.
        let said = std::fs::read_to_string(log).is_ok_and(|l| l.contains(LISTENING));
        if said || Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn(bin: &Path, dir: &Path, index: usize, share: &SharedDir) -> Result<tokio::process::Child> {
    let meta = std::fs::metadata(&share.path)
        .with_context(|| format!("reading {}", share.path.display()))?;
    // SAFETY: geteuid and getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let id = identity(meta.uid(), meta.gid(), euid, egid);

    // Opened while still the daemon's user: the new identity may not walk to either.
    let share_dir = open_path(&share.path, libc::O_DIRECTORY)?;
    let exe = open_path(bin, 0)?;
    let sock = socket(dir, index);
    let _ = std::fs::remove_file(&sock);
    // Bound by the daemon (0600, the daemon's user): the owner may not write in the machine's
    // directory, and QEMU can connect before virtiofsd gets to accept.
    let listener = super::bind_private(&sock)?.into_std()?;
    // tokio made it non-blocking, a flag virtiofsd's copy would share.
    listener.set_nonblocking(false)?;
    let log = std::fs::File::create(log_path(dir, index))?;

    let mut cmd = tokio::process::Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    cmd.arg0("virtiofsd")
        .args(arguments(share, id))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let (lfd, dfd) = (listener.as_raw_fd(), share_dir.as_raw_fd());
    let groups = [id.gid];
    // SAFETY: between fork and exec only async-signal-safe calls (fchdir, fcntl, dup2,
    // setgroups, setgid, setuid, prctl), on descriptors this process holds open until spawn
    // returns. PR_SET_PDEATHSIG comes after the identity change, which would clear it.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            if libc::fchdir(dfd) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if lfd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(lfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if id.switch
                && (libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setgid(id.gid) != 0
                    || libc::setuid(id.uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "starting {} as uid {} for {}",
            bin.display(),
            id.uid,
            share.path.display()
        )
    })?;
    drop((listener, share_dir, exe));
    Ok(child)
}

/// An `O_PATH` descriptor of `path` (close-on-exec: the child reaches it through /proc).
fn open_path(path: &Path, extra: libc::c_int) -> Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} has a NUL byte", path.display()))?;
    // SAFETY: open with a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("opening {}", path.display()));
    }
    // SAFETY: fd was just opened and is ours alone.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Say loudly when a share's virtiofsd ends while the VM runs: the guest's files there fail
/// from then on (the engine reports the errors), and only a restart of the machine brings
/// the share back. Never returns; the daemon drops it when QEMU ends.
pub async fn watch(servers: &mut [Server]) {
    let watches = servers.iter_mut().map(|s| async move {
        let status = s.child.wait().await;
        // virtiofsd also ends when QEMU does: give the daemon the moment it needs to see
        // QEMU's end first and drop this, so that a normal stop logs nothing here.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let how = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(
            "the virtiofsd sharing {} ended ({how}) while the VM runs: its files now fail in the VM until the machine restarts; see vfs-{}.log",
            s.share.path.display(),
            s.index
        );
    });
    futures::future::join_all(watches).await;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtiofsd_acts_as_the_owner_when_the_daemon_can_switch() {
        assert_eq!(
            identity(4242, 4243, 0, 0),
            Identity {
                uid: 4242,
                gid: 4243,
                switch: true
            }
        );
        assert!(!identity(0, 0, 0, 0).switch);
        // An unprivileged daemon cannot act as another user: virtiofsd runs as it.
        assert_eq!(
            identity(0, 0, 1000, 1000),
            Identity {
                uid: 1000,
                gid: 1000,
                switch: false
            }
        );
    }

    #[test]
    fn arguments_map_guest_ids_to_the_owner_and_keep_read_only() {
        let share = SharedDir {
            path: "/srv/x".into(),
            readonly: true,
        };
        let a = arguments(&share, identity(4242, 4243, 0, 0)).join(" ");
        for want in [
            "--fd=3 --shared-dir=. --cache=auto --sandbox=none",
            "--translate-uid=squash-guest:0:4242:4294967295",
            "--translate-uid=host:4242:0:1",
            "--translate-gid=squash-guest:0:4243:4294967295",
            "--translate-gid=host:4243:0:1",
            "--readonly",
        ] {
            assert!(a.contains(want), "{want} missing: {a}");
        }
        let rw = SharedDir {
            path: "/root".into(),
            readonly: false,
        };
        let a = arguments(&rw, identity(0, 0, 0, 0)).join(" ");
        assert!(!a.contains("--readonly"), "{a}");
        assert!(!a.contains("--inode-file-handles"), "{a}");
    }

    #[test]
    fn virtiofsd_is_found_or_said_missing() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("virtiofsd");
        std::fs::write(&there, b"").unwrap();
        let missing = dir.path().join("nothing/virtiofsd");
        assert_eq!(find(Some(there.clone()), vec![], None), Ok(there.clone()));
        let err = find(Some(missing.clone()), vec![there.clone()], None).unwrap_err();
        assert!(err.contains("SKIFF_VIRTIOFSD="), "{err}");
        assert_eq!(find(None, vec![there.clone()], None), Ok(there.clone()));
        let path_var = std::env::join_paths([dir.path().join("nothing"), dir.path().into()]).ok();
        if !Path::new("/usr/libexec/virtiofsd").exists() {
            assert_eq!(find(None, vec![missing.clone()], path_var), Ok(there));
            let err = find(None, vec![missing], None).unwrap_err();
            assert!(err.contains("scripts/build-virtiofsd.sh"), "{err}");

            let share = |p: &Path| SharedDir {
                path: p.into(),
                readonly: false,
            };
            let p = problems(&[share(dir.path())], Err(err));
            assert!(
                p[0].contains("starts without its shared directories"),
                "{p:?}"
            );
        }
        let gone = dir.path().join("gone");
        let p = problems(
            &[SharedDir {
                path: gone,
                readonly: false,
            }],
            Ok("/bin/true".into()),
        );
        assert!(p[0].contains("is gone"), "{p:?}");
        assert!(preflight(&[]).is_empty());
    }
}
