//! docker's copy-up: a new volume mounted over a directory of the image starts with that
//! directory's files, owners, modes, times and extended attributes.
//!
//! Written here rather than taken from a crate: the copy must never follow a symlink of the
//! image (a hostile image could point one at the host's files), must keep hard links, device
//! nodes and ownership, and stay on the image's side of any mount; `fs_extra` and the like
//! follow links and drop owners.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Copies the tree under `src` (a directory) into the empty directory `dst`, which takes
/// `src`'s owner and mode too.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links = HashMap::new();
    // `src` may be a descriptor's /proc/self/fd link (the caller resolved it inside a root):
    // its target's metadata is what counts, not the link's.
    let top = fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
    copy_dir(src, dst, top.dev(), &mut links)?;
    apply_meta(dst, &top)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let mut entries: Vec<OsString> = fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for name in entries {
        let from = src.join(&name);
        let to = dst.join(&name);
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_dir() {
            // Another filesystem mounted inside the image's tree is not the image's.
            if md.dev() != dev {
                continue;
            }
            fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
            copy_dir(&from, &to, dev, links)?;
        } else {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    fs::hard_link(first, &to)
                        .with_context(|| format!("linking {}", to.display()))?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), to.clone());
            }
            if ft.is_symlink() {
                let target = fs::read_link(&from)?;
                std::os::unix::fs::symlink(&target, &to)
                    .with_context(|| format!("creating {}", to.display()))?;
            } else if ft.is_file() {
                copy_file(&from, &to)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    rustix::fs::FileType::CharacterDevice
                } else if ft.is_block_device() {
                    rustix::fs::FileType::BlockDevice
                } else {
                    rustix::fs::FileType::Fifo
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &to,
                    kind,
                    rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777),
                    md.rdev(),
                )
                .with_context(|| format!("creating {}", to.display()))?;
            } else {
                // A socket is a live thing of a process, not content.
                continue;
            }
        }
        apply_meta(&to, &md)?;
        copy_xattrs(&from, &to);
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: the entry was a regular file when looked at; it must still be one.
    let mut r = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .with_context(|| format!("reading {}", from.display()))?;
    let mut w = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut r, &mut w).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

/// Owner, mode, extended attributes and times of `md` onto `path` (not following it).
fn apply_meta(path: &Path, md: &fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid()))
        .with_context(|| format!("setting the owner of {}", path.display()))?;
    let is_link = md.file_type().is_symlink();
    if !is_link {
        // After the owner: chown clears set-uid bits.
        fs::set_permissions(path, fs::Permissions::from_mode(md.mode() & 0o7777))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("setting the times of {}", path.display()))?;
    Ok(())
}

/// The extended attributes the source had (a binary's capabilities, ACLs), after the owner
/// and mode (a chown drops `security.capability`). overlayfs's own are the layer store's
/// business, not content. One that cannot be set is logged: the copy matters more.
fn copy_xattrs(from: &Path, to: &Path) {
    let mut names = vec![0u8; 64 << 10];
    let Ok(n) = rustix::fs::llistxattr(from, &mut names[..]) else {
        return;
    };
    let mut value = vec![0u8; 64 << 10];
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        let Ok(len) = rustix::fs::lgetxattr(from, name.as_c_str(), &mut value[..]) else {
            continue;
        };
        if let Err(e) = rustix::fs::lsetxattr(
            to,
            name.as_c_str(),
            &value[..len],
            rustix::fs::XattrFlags::empty(),
        ) {
            tracing::warn!("copying {name:?} of {}: {e}", from.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_with_links_modes_and_owners_and_no_symlink_is_followed() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("sub/f"), "content").unwrap();
        fs::set_permissions(src.join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(src.join("sub/f"), src.join("hard")).unwrap();
        let outside = d.path().join("outside");
        fs::write(&outside, "host secret").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("link")).unwrap();
        std::os::unix::fs::lchown(src.join("sub"), Some(1234), Some(4321)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o1777)).unwrap();

        copy_tree(&src, &dst).unwrap();

        assert_eq!(fs::read_to_string(dst.join("sub/f")).unwrap(), "content");
        let f = fs::metadata(dst.join("sub/f")).unwrap();
        assert_eq!(f.mode() & 0o7777, 0o640);
        assert_eq!(fs::metadata(dst.join("hard")).unwrap().ino(), f.ino());
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), outside);
        let sub = fs::metadata(dst.join("sub")).unwrap();
        assert_eq!((sub.uid(), sub.gid()), (1234, 4321));
        assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o1777);
        assert_eq!(
            fs::metadata(dst.join("sub/f")).unwrap().mtime(),
            fs::metadata(src.join("sub/f")).unwrap().mtime()
        );
    }
}
