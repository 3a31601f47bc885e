//! The build context a client uploads: a tar (plain or gzip, as the docker CLI sends it for
//! `build - < ctx.tar.gz`), unpacked into the store's work area for the length of the build.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::images::store::tempfile_in;
use crate::images::unpack::unpack_layer;

pub struct Context {
    home: PathBuf,
    pub dir: PathBuf,
}

impl Context {
    /// Unpack `input` under `tmp`. Entries are checked as a layer's are (nothing lands
    /// outside, no write through a symlink); `limit` bounds the unpacked size.
    pub fn unpack<R: Read>(tmp: &Path, input: R, limit: u64) -> Result<Context> {
        let home = tempfile_in(tmp)?;
        let dir = home.join("context");
        fs::create_dir_all(&dir).context("creating the build context's directory")?;
        let ctx = Context { home, dir };
        let mut input = BufReader::with_capacity(1 << 16, input);
        let gzip = input
            .fill_buf()
            .context("reading the build context")?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(input))
        } else {
            Box::new(input)
        };
        // Bounded after decompression: a few MB of gzip may inflate to any size.
        let bounded = Bounded {
            inner: reader,
            left: limit,
        };
        unpack_layer(bounded, &ctx.dir, "the build context")?;
        Ok(ctx)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.home);
    }
}

/// Stops a context larger than the limit.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other("the build context is larger than the engine's layer limit")
        })?;
        Ok(n)
    }
}
