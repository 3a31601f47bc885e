//! A container's root filesystem: overlayfs over the image's shared layer dirs, with the
//! container's own upper dir (kept across stop/start, removed with the container), and the
//! files docker provides (/etc/hostname, /etc/hosts, /etc/resolv.conf).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.into() }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// Bytes in the writable layer (docker's `SizeRw`).
    pub fn rw_size(&self) -> u64 {
        dir_size(&self.upper())
    }
}

pub use crate::volumes::dir_size;

/// Create the container's directories (at create time).
pub fn prepare(paths: &Paths) -> Result<()> {
    for d in [paths.rootfs(), paths.upper(), paths.work()] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

pub use crate::mountinfo::is_mounted;

/// Mount the overlay (idempotent: an already mounted rootfs is left as it is).
pub fn mount_rootfs(paths: &Paths, lower_dirs_top_first: &[PathBuf]) -> Result<()> {
    let target = paths.rootfs();
    if is_mounted(&target) {
        return Ok(());
    }
    prepare(paths)?;
    if lower_dirs_top_first.is_empty() {
        bail!("the image has no layers to mount");
    }
    // One layer can appear twice in an image (two RUN steps that changed nothing both have
    // the empty layer), and overlayfs refuses a lower directory given twice (ELOOP). Only the
    // topmost occurrence counts: every path of the lower one is the same path of the upper
    // one, which masks it, so dropping it changes nothing in the merged tree.
    let mut seen = std::collections::HashSet::new();
    let lower = lower_dirs_top_first
        .iter()
        .filter(|p| seen.insert(p.as_path()))
        .map(|p| p.to_string_lossy().replace(':', "\\:").replace(',', "\\,"))
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        paths.upper().display(),
        paths.work().display()
    );
    // The kernel takes mount options in one page.
    if opts.len() >= 4000 {
        bail!(
            "the image has too many layers ({}) for one overlay mount with this state directory; use a shorter --root",
            lower_dirs_top_first.len()
        );
    }
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .with_context(|| {
        format!(
            "mounting the container's root filesystem at {}",
            target.display()
        )
    })?;
    Ok(())
}

pub fn unmount_rootfs(paths: &Paths) -> Result<()> {
    let target = paths.rootfs();
    if !is_mounted(&target) {
        return Ok(());
    }
    match umount2(&target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        // Something still holds it (a cp in flight): detach, it goes when released.
        Err(nix::errno::Errno::EBUSY) => umount2(&target, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", target.display())),
        Err(e) => Err(e).with_context(|| format!("unmounting {}", target.display())),
    }
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container, in its directory.
/// `hosts_extra` (the container's own address, `--add-host`) follows docker's fixed lines.
pub fn write_etc_files(dir: &Path, hostname: &str, hosts_extra: &str, resolv: &str) -> Result<()> {
    std::fs::write(dir.join("hostname"), format!("{hostname}\n")).context("writing hostname")?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n{hosts_extra}"
    );
    std::fs::write(dir.join("hosts"), hosts).context("writing hosts")?;
    std::fs::write(dir.join("resolv.conf"), resolv).context("writing resolv.conf")?;
    Ok(())
}
