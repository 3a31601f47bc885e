//! Bind sources from the VM's shares, mounted by descriptor where no container can reach
//! (`ROOT/runtime/binds/<id>/<n>`), for the runtime to bind from. The runtime resolves a
//! source path again when it mounts it; a container writing to the same share could swap a
//! component of that path for a symbolic link in between and hand the next container the
//! VM's own files. The staged path is the agent's alone, and what is mounted there is the
//! descriptor `HostPaths::pin` opened. The mounts live only while the container starts:
//! once its process exists it has its own copy of each.
//!
//! Never removed recursively: a staged path that could not be unmounted would lead into the
//! user's files.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub(super) struct StagedBinds {
    dir: PathBuf,
    staged: Vec<PathBuf>,
}

impl StagedBinds {
    pub fn new(runtime_root: &Path, id: &str) -> StagedBinds {
        StagedBinds {
            dir: runtime_root.join("binds").join(id),
            staged: Vec::new(),
        }
    }

    /// Mount what `fd` opened at the next staged path, and return that path.
    pub fn stage(&mut self, fd: OwnedFd) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let at = self.dir.join(self.staged.len().to_string());
        let file = std::fs::File::from(fd);
        let is_dir = file
            .metadata()
            .context("reading the bind source's type")?
            .is_dir();
        if is_dir {
            std::fs::create_dir(&at)
        } else {
            std::fs::File::create(&at).map(drop)
        }
        .with_context(|| format!("creating {}", at.display()))?;
        self.staged.push(at.clone());
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        mount(
            Some(source.as_str()),
            &at,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("mounting the bind source at {}", at.display()))?;
        Ok(at)
    }

    /// What an agent stopped while a container started left staged.
    pub fn sweep(runtime_root: &Path) {
        let binds = runtime_root.join("binds");
        let Ok(ids) = std::fs::read_dir(&binds) else {
            return;
        };
        for id in ids.flatten() {
            let staged = std::fs::read_dir(id.path())
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            drop(StagedBinds {
                dir: id.path(),
                staged,
            });
        }
    }
}

impl Drop for StagedBinds {
    fn drop(&mut self) {
        for at in &self.staged {
            // Not mounted (a stage that failed half-way) is fine.
            let _ = umount2(at, MntFlags::MNT_DETACH);
            let removed = std::fs::remove_dir(at).or_else(|_| std::fs::remove_file(at));
            if let Err(e) = removed {
                tracing::warn!("removing the staged bind source {}: {e}", at.display());
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_path(p: &Path) -> OwnedFd {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn staged_sources_show_what_was_opened_and_go_without_touching_it() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let share = d.path().join("share");
        std::fs::create_dir_all(share.join("proj")).unwrap();
        std::fs::write(share.join("proj/f.txt"), "kept\n").unwrap();
        std::fs::write(share.join("one.txt"), "file\n").unwrap();
        let runtime = d.path().join("runtime");
        let mut staged = StagedBinds::new(&runtime, "c1");
        let dir_fd = open_path(&share.join("proj"));
        // Swapped for a link after it was opened: the staged mount is still what was opened.
        std::fs::rename(share.join("proj"), share.join("moved")).unwrap();
        std::os::unix::fs::symlink("/", share.join("proj")).unwrap();
        let at = staged.stage(dir_fd).unwrap();
        assert_eq!(std::fs::read_to_string(at.join("f.txt")).unwrap(), "kept\n");
        let file_at = staged.stage(open_path(&share.join("one.txt"))).unwrap();
        assert_eq!(std::fs::read_to_string(&file_at).unwrap(), "file\n");
        drop(staged);
        assert!(!runtime.join("binds/c1").exists());
        assert_eq!(
            std::fs::read_to_string(share.join("moved/f.txt")).unwrap(),
            "kept\n"
        );

        // Left by an agent that stopped mid-start: the next one unmounts and removes them,
        // and the source's files stay.
        let mut left = StagedBinds::new(&runtime, "c2");
        left.stage(open_path(&share.join("moved"))).unwrap();
        std::mem::forget(left);
        StagedBinds::sweep(&runtime);
        assert!(!runtime.join("binds/c2").exists());
        assert!(share.join("moved/f.txt").exists());
        assert!(share.join("one.txt").exists());
    }
}
