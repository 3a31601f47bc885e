//! The tar side of `skiff cp` on this machine: docker's copy-path rules (`paths`), building
//! the archive we upload (`pack`) and unpacking the one the engine sends (`unpack`).
//!
//! It is apart from the command because it is where a hostile container meets the host's
//! filesystem: every entry it writes must stay inside the destination, whatever names,
//! symlinks and hard links the stream holds. The command (`commands/cp.rs`) talks to the
//! engine and streams the bytes; it uses this module, never the reverse.

mod pack;
mod paths;
mod unpack;

use std::io;
use std::path::{Path, PathBuf};

use crate::goerror::go_io_error;

pub use pack::{append_special, write_tar, PadTo};
pub use paths::{
    copy_info_source_path, get_rebase_name, go_clean, go_dir, go_join, prepare_copy,
    preserve_trailing, split_path_dir_entry, CopyInfo,
};
pub use unpack::{copy_to, UntarOptions};

/// Large pieces: fewer wakeups and syscalls per megabyte.
pub const CHUNK: usize = 1 << 20;

/// Why a copy failed. Each message is the one docker prints for the same failure, word for
/// word, because users' scripts and our end-to-end tests match on them.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry that would land outside the destination, a symlink or hard link that would
    /// lead out of it, or a hard link to anything but a regular file inside it: refused
    /// before anything of the entry is written. `source` is the failure that left us unable
    /// to tell where it leads, when that was the reason.
    #[error("Error processing tar file: {detail}")]
    Breakout {
        detail: String,
        #[source]
        source: Option<io::Error>,
    },
    /// The stream is not a tar archive we can read, or the header guard refused one of its
    /// headers.
    #[error("Error processing tar file: {0}")]
    Stream(#[source] io::Error),
    /// A filesystem operation that failed, named as Go's `PathError` names it ("mkdir",
    /// "open", "lchown", …).
    #[error("{op} {}: {}", path.display(), go_io_error(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory we extract into cannot be resolved.
    #[error("{}: {}", path.display(), go_io_error(source))]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// NoOverwriteDirNonDir: a non-directory entry where a directory is.
    #[error("cannot overwrite directory {path:?} with non-directory {dest:?}")]
    DirectoryWithNonDirectory { path: String, dest: String },
    /// NoOverwriteDirNonDir: a directory entry where a non-directory is.
    #[error("cannot overwrite non-directory {path:?} with directory {dest:?}")]
    NonDirectoryWithDirectory { path: String, dest: String },
    /// An entry type we do not make on the host (its tar type byte).
    #[error("unhandled tar header type {0}")]
    UnsupportedEntry(u8),
    /// `-a` with an owner no `lchown` can give.
    #[error("lchown {}: the archive's owner {uid}:{gid} is out of range", path.display())]
    OwnerOutOfRange { path: PathBuf, uid: u64, gid: u64 },
    /// docker's copy rules: a directory cannot replace a file.
    #[error("cannot copy directory")]
    DirectoryOntoFile,
    /// docker's copy rules: a file cannot go into a directory that is not there.
    #[error("no such directory")]
    NoSuchDirectory,
    /// The destination's parent is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// The destination is a chain of symlinks longer than we follow.
    #[error("too many symlinks in {0}")]
    TooManySymlinks(String),
}

impl ArchiveError {
    /// A breakout refused on the names alone.
    fn breakout(detail: String) -> Self {
        ArchiveError::Breakout {
            detail,
            source: None,
        }
    }

    /// For `map_err`: operation `op` on `path` failed.
    fn io(op: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| ArchiveError::Io { op, path, source }
    }
}
