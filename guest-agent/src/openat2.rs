//! `openat2` as every confined lookup of ours calls it. With `RESOLVE_IN_ROOT` or
//! `RESOLVE_BENEATH` the kernel fails a lookup with EAGAIN when a rename anywhere on the
//! system raced with it, and asks the caller to try again; each caller keeps its own meaning
//! for the other errors.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// A few tries, as the kernel's documentation suggests: renames racing every one of them
/// means the tree is being changed on purpose, and the caller reports the EAGAIN.
const RETRIES: usize = 8;

/// `openat2(dir, path, flags, 0, resolve)`, tried again while the kernel answers EAGAIN.
pub fn open<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    path: P,
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut attempt = 0;
    loop {
        match rustix::fs::openat2(dir.as_fd(), path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if attempt < RETRIES => attempt += 1,
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_beneath_and_passes_other_errors_through() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        let root = std::fs::File::open(d.path()).unwrap();
        let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        assert!(open(&root, "sub", flags, beneath).is_ok());
        assert_eq!(
            open(&root, "missing", flags, beneath).err(),
            Some(Errno::NOENT)
        );
        assert_eq!(open(&root, "out", flags, beneath).err(), Some(Errno::LOOP));
        assert_eq!(open(&root, "../x", flags, beneath).err(), Some(Errno::XDEV));
    }
}
