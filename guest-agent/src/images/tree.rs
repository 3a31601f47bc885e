//! The shape of an unpacked layer, recorded in its `layer.json` when it is committed and
//! compared again by `skiff system check` (`check.rs`): each entry's path, type, mode, owner,
//! size, device number and link target, hashed in name order. That finds a missing,
//! truncated, extra or retyped entry without re-reading every byte of every file (what a
//! pull would pay on each layer); a bit flipped inside a file is the filesystem's to catch.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The shape of an unpacked layer, as stored in its `layer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSummary {
    pub entries: u64,
    pub digest: String,
}

/// Summarise the tree under `dir` (the layer's `diff/`).
pub fn summarize_tree(dir: &Path) -> Result<TreeSummary> {
    let mut hasher = Sha256::new();
    let mut entries = 0u64;
    // Depth-first in name order with an explicit stack: layers can be thousands of directories
    // deep, deeper than a recursive walk's thread stack would allow.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = dir.join(&rel);
        let md = fs::symlink_metadata(&path).with_context(|| format!("reading {rel:?}"))?;
        let ft = md.file_type();
        let (kind, size) = if ft.is_dir() {
            ('d', 0)
        } else if ft.is_file() {
            ('f', md.size())
        } else if ft.is_symlink() {
            ('l', 0)
        } else if ft.is_char_device() {
            ('c', 0)
        } else if ft.is_block_device() {
            ('b', 0)
        } else if ft.is_fifo() {
            ('p', 0)
        } else {
            ('s', 0)
        };
        hasher.update(rel.as_os_str().as_bytes());
        hasher.update(
            format!(
                "\0{kind} {:o} {} {} {size} {}\0",
                md.mode() & 0o7777,
                md.uid(),
                md.gid(),
                md.rdev()
            )
            .as_bytes(),
        );
        if ft.is_symlink() {
            let target = fs::read_link(&path).with_context(|| format!("reading {rel:?}"))?;
            hasher.update(target.as_os_str().as_bytes());
        }
        hasher.update(b"\n");
        entries += 1;
        if ft.is_dir() {
            let mut names = fs::read_dir(&path)
                .with_context(|| format!("listing {rel:?}"))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
                .with_context(|| format!("listing {rel:?}"))?;
            names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            stack.extend(names.into_iter().map(|n| rel.join(n)));
        }
    }
    Ok(TreeSummary {
        entries,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_summary_changes_with_any_entry_and_not_with_order_of_creation() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::create_dir_all(a.path().join("x/y")).unwrap();
        fs::write(a.path().join("x/y/f"), b"12345").unwrap();
        fs::write(a.path().join("g"), b"").unwrap();
        fs::write(b.path().join("g"), b"").unwrap();
        fs::create_dir_all(b.path().join("x/y")).unwrap();
        fs::write(b.path().join("x/y/f"), b"12345").unwrap();
        let sa = summarize_tree(a.path()).unwrap();
        assert_eq!(sa, summarize_tree(b.path()).unwrap());
        assert_eq!(sa.entries, 5);
        fs::write(b.path().join("x/y/f"), b"1234").unwrap();
        assert_ne!(sa, summarize_tree(b.path()).unwrap());
        fs::write(b.path().join("x/y/f"), b"12345").unwrap();
        std::os::unix::fs::symlink("f", b.path().join("x/l")).unwrap();
        assert_ne!(sa, summarize_tree(b.path()).unwrap());
    }
}
