//! The build context a client uploads: a tar (plain or gzip, as the docker CLI sends it for
//! `build - < ctx.tar.gz`), unpacked for the length of the build.
//!
//! Why a tmpfs: on these disks creating and then deleting thousands of small files is mostly
//! kernel time — unpacking a 2,000-file context onto ext4 took 1.1–1.4 s, on tmpfs 41 ms
//! (BENCHMARKS.md), and a cached rebuild is little else. So the upload is spooled to one
//! file (a sequential write) and unpacked into a tmpfs capped at a share of the free memory;
//! a context that does not fit is unpacked from the spool onto the disk instead.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::images::store::tempfile_in;
use crate::images::unpack::unpack_layer;

/// The tmpfs never takes more than this, nor more than a quarter of the available memory.
const TMPFS_MAX: u64 = 2 << 30;

pub struct Context {
    home: PathBuf,
    pub dir: PathBuf,
    on_tmpfs: bool,
}

impl Context {
    /// Unpack `input` under `tmp`. Entries are checked as a layer's are (nothing lands
    /// outside, no write through a symlink); `limit` bounds the upload and the unpacked size.
    pub fn unpack<R: Read>(tmp: &Path, input: R, limit: u64) -> Result<Context> {
        let home = tempfile_in(tmp)?;
        let dir = home.join("context");
        fs::create_dir_all(&dir).context("creating the build context's directory")?;
        let mut ctx = Context {
            home,
            dir,
            on_tmpfs: false,
        };
        let spool_path = ctx.home.join("upload");
        let mut spool = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spool_path)
            .context("creating the build context's spool")?;
        let _ = fs::remove_file(&spool_path);
        let size = io::copy(
            &mut Bounded {
                inner: input,
                left: limit,
            },
            &mut spool,
        )
        .context("reading the build context")?;

        let room = tmpfs_room();
        if size.saturating_mul(2) <= room && ctx.mount_tmpfs(room).is_ok() {
            spool.seek(SeekFrom::Start(0))?;
            match unpack_from(&spool, &ctx.dir, limit) {
                Ok(()) => return Ok(ctx),
                // Larger than the tmpfs once unpacked (a gzip context): onto the disk.
                Err(e) if is_no_space(&e) => ctx.unmount_tmpfs()?,
                Err(e) => return Err(e),
            }
        }
        spool.seek(SeekFrom::Start(0))?;
        unpack_from(&spool, &ctx.dir, limit)?;
        Ok(ctx)
    }

    fn mount_tmpfs(&mut self, size: u64) -> Result<()> {
        mount(
            Some("tmpfs"),
            &self.dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0700").as_str()),
        )
        .context("mounting a tmpfs for the build context")?;
        self.on_tmpfs = true;
        Ok(())
    }

    fn unmount_tmpfs(&mut self) -> Result<()> {
        if self.on_tmpfs {
            umount2(&self.dir, MntFlags::MNT_DETACH).context("unmounting the context's tmpfs")?;
            self.on_tmpfs = false;
        }
        Ok(())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_tmpfs() {
            tracing::warn!("{e:#}");
            return;
        }
        let _ = fs::remove_dir_all(&self.home);
    }
}

/// Unpack a spooled tar (plain or gzip) into `dir`, bounded after decompression.
fn unpack_from(spool: &fs::File, dir: &Path, limit: u64) -> Result<()> {
    let mut input = BufReader::with_capacity(1 << 16, spool);
    let gzip = input
        .fill_buf()
        .context("reading the build context")?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    // Bounded after decompression: a few MB of gzip may inflate to any size.
    let bounded = Bounded {
        inner: reader,
        left: limit,
    };
    unpack_layer(bounded, dir, "the build context").map(drop)
}

fn is_no_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
    })
}

/// What a context's tmpfs may hold: a quarter of the available memory, at most `TMPFS_MAX`.
fn tmpfs_room() -> u64 {
    let available = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    (available / 4).min(TMPFS_MAX)
}

/// Stops a context larger than the limit.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other("the build context is larger than the engine's layer limit")
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_unpacks_and_goes_away() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "Dockerfile", &b"x\n"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let home;
        {
            let ctx = Context::unpack(tmp.path(), &t[..], 1 << 20).unwrap();
            assert_eq!(fs::read(ctx.dir.join("Dockerfile")).unwrap(), b"x\n");
            home = ctx.home.clone();
        }
        assert!(!home.exists(), "the context is removed with the build");
        let err = Context::unpack(tmp.path(), &t[..], 100).err().unwrap();
        assert!(format!("{err:#}").contains("layer limit"), "{err:#}");
    }
}
