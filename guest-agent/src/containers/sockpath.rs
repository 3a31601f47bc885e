//! Unix socket paths short enough for the kernel (108 bytes), wherever the state dir is.
//!
//! A container's sockets live in its directory, which under a deep `--root` (tests use the
//! build dir) is too long for `sockaddr_un`. Through an open fd of the directory,
//! `/proc/<pid>/fd/<n>/<name>` names the same file in a few dozen bytes; it stays valid for
//! as long as the returned handle (and so the fd) lives, for any process allowed to look.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct SocketPath {
    _dir: Option<File>,
    pub path: PathBuf,
}

pub fn socket_path(dir: &Path, name: &str) -> std::io::Result<SocketPath> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok(SocketPath {
            _dir: None,
            path: full,
        });
    }
    let d = File::open(dir)?;
    let path = PathBuf::from(format!(
        "/proc/{}/fd/{}/{name}",
        std::process::id(),
        d.as_raw_fd()
    ));
    Ok(SocketPath {
        _dir: Some(d),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_dirs_get_a_short_name_that_works() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let p = socket_path(&deep, "x.sock").unwrap();
        assert!(p.path.as_os_str().len() < 100);
        let l = std::os::unix::net::UnixListener::bind(&p.path).unwrap();
        assert!(deep.join("x.sock").exists());
        let _c = std::os::unix::net::UnixStream::connect(&p.path).unwrap();
        drop(l);
    }
}
