//! A layer's tar stream, rebuilt byte for byte from its unpacked tree.
//!
//! The store keeps layers unpacked (the compressed download is not kept), but `save` must hand
//! out, and `push` must send, a tar whose digest is the diff ID in the image's config: any other
//! serialisation of the same files changes the image ID. So while a layer is unpacked, every
//! byte of its stream that is not a regular file's content — headers, PAX and long-name
//! records, padding, the end-of-archive blocks and whatever follows them — is written to a
//! recipe beside the tree, with a placeholder (path and size) where a file's content was. The
//! stream is then the recipe with each placeholder filled from the tree: as docker's tar-split,
//! our own compact format, zstd-compressed (headers of a 10,000-file layer are ~5 MB raw and
//! compress well).
//!
//! A layer whose stream wrote a file and later replaced or removed it (a duplicate entry, a
//! whiteout of its own file) no longer holds the first content: its recipe is dropped and the
//! layer cannot be exported; `LayerTar::open` says so.
//!
//! Record format, repeated: tag `0` + u32 length + raw bytes, or tag `1` + u64 size + u32
//! length + the file's path relative to the tree.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};

/// The recipe's file name inside a layer's home, beside `diff/`.
pub const RECIPE_FILE: &str = "tar-split.zst";

const TAG_RAW: u8 = 0;
const TAG_FILE: u8 = 1;
/// Raw bytes are written out in records of at most this size.
const RAW_CHUNK: usize = 1 << 16;

/// What is being recorded while a layer is unpacked; shared between the reader that sees the
/// bytes and the unpacker that knows which of them are a file's content.
pub struct Recording {
    out: Option<zstd::Encoder<'static, fs::File>>,
    path: PathBuf,
    raw: Vec<u8>,
    /// Bytes seen so far: the position in the tar stream, as the `tar` crate counts it.
    pos: u64,
    /// The current file's content, `[start, end)`, which is not recorded.
    skip: Option<(u64, u64)>,
    /// Ordered by components, so a directory's files are one range.
    files: BTreeSet<PathBuf>,
    broken: bool,
    error: Option<io::Error>,
}

impl Recording {
    pub fn create(path: &Path) -> Result<Rc<RefCell<Recording>>> {
        let file = fs::File::create(path)
            .with_context(|| format!("creating the layer's tar recipe {}", path.display()))?;
        let out = zstd::Encoder::new(file, 3).context("starting zstd")?;
        Ok(Rc::new(RefCell::new(Recording {
            out: Some(out),
            path: path.to_path_buf(),
            raw: Vec::new(),
            pos: 0,
            skip: None,
            files: BTreeSet::new(),
            broken: false,
            error: None,
        })))
    }

    fn saw(&mut self, buf: &[u8]) {
        let start = self.pos;
        let end = start + buf.len() as u64;
        self.pos = end;
        let Some((s, e)) = self.skip else {
            self.push_raw(buf);
            return;
        };
        // The parts of `buf` before and after the file's content are recorded.
        let before = s.saturating_sub(start).min(buf.len() as u64) as usize;
        let after = e.saturating_sub(start).min(buf.len() as u64) as usize;
        self.push_raw(&buf[..before]);
        self.push_raw(&buf[after..]);
        if end >= e {
            self.skip = None;
        }
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        if self.raw.len() >= RAW_CHUNK {
            self.flush_raw();
        }
    }

    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut self.raw);
        let mut rec = Vec::with_capacity(raw.len() + 5);
        rec.push(TAG_RAW);
        rec.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        rec.extend_from_slice(&raw);
        self.write(&rec);
    }

    fn write(&mut self, rec: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.write_all(rec) {
                self.error = Some(e);
            }
        }
    }

    /// The next `size` bytes from `start` are the content of the file at `rel`.
    pub fn file(&mut self, start: u64, size: u64, rel: &Path) {
        self.flush_raw();
        let name = rel.as_os_str().as_bytes();
        let mut rec = Vec::with_capacity(name.len() + 13);
        rec.push(TAG_FILE);
        rec.extend_from_slice(&size.to_le_bytes());
        rec.extend_from_slice(&(name.len() as u32).to_le_bytes());
        rec.extend_from_slice(name);
        self.write(&rec);
        if size > 0 {
            self.skip = Some((start, start + size));
        }
        if !self.files.insert(rel.to_path_buf()) {
            self.broken = true;
        }
    }

    /// Something at `rel` (a file, or a directory and all under it) is being replaced.
    pub fn replaced(&mut self, rel: &Path, was_dir: bool) {
        if self.broken {
            return;
        }
        let hit = if was_dir {
            self.files
                .range(rel.to_path_buf()..)
                .next()
                .is_some_and(|f| f.starts_with(rel))
        } else {
            self.files.contains(rel)
        };
        if hit {
            self.broken = true;
        }
    }

    /// Close the recipe. `Ok(false)`: the stream cannot be rebuilt from the tree, and the
    /// recipe is removed.
    pub fn finish(&mut self) -> Result<bool> {
        self.flush_raw();
        if let Some(e) = self.error.take() {
            return Err(anyhow::Error::new(e).context("writing the layer's tar recipe"));
        }
        let out = self
            .out
            .take()
            .ok_or_else(|| anyhow!("the tar recipe was already closed"))?;
        let file = out.finish().context("finishing the layer's tar recipe")?;
        file.sync_all().context("syncing the layer's tar recipe")?;
        if self.broken {
            fs::remove_file(&self.path).context("removing an unusable tar recipe")?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// The reader handed to the `tar` crate: passes every byte through and shows it to the
/// recording.
pub struct Recorder<R> {
    pub inner: R,
    pub recording: Option<Rc<RefCell<Recording>>>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(r) = &self.recording {
            r.borrow_mut().saw(&buf[..n]);
        }
        Ok(n)
    }
}

/// A layer's tar stream rebuilt from its recipe and tree; its digest is checked against the
/// diff ID as it ends, and a mismatch is a read error (the layer's tree was changed).
pub struct LayerTar {
    recipe: BufReader<zstd::Decoder<'static, BufReader<fs::File>>>,
    tree: PathBuf,
    diff_id: String,
    current: Current,
    hasher: Sha256,
    verified: bool,
}

enum Current {
    Idle,
    Raw(u64),
    File {
        file: fs::File,
        left: u64,
        rel: PathBuf,
    },
}

impl LayerTar {
    /// `home` is the layer's directory (holding `diff/` and the recipe).
    pub fn open(home: &Path, diff_id: &str) -> Result<LayerTar> {
        let path = home.join(RECIPE_FILE);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
                "layer {diff_id} has no record of its tar stream (it was stored by an older \
                 skiff, or its stream replaced its own files), so it cannot be exported \
                 unchanged; remove the image and pull it again"
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())))
            }
        };
        let decoder = zstd::Decoder::new(file).context("starting zstd")?;
        Ok(LayerTar {
            recipe: BufReader::new(decoder),
            tree: home.join("diff"),
            diff_id: diff_id.to_string(),
            current: Current::Idle,
            hasher: Sha256::new(),
            verified: false,
        })
    }

    /// The length of the stream `open` would give, from the recipe alone: a tar header that
    /// holds the layer (`save`) needs it before the first byte is written.
    pub fn stream_len(home: &Path, diff_id: &str) -> Result<u64> {
        let mut tar = LayerTar::open(home, diff_id)?;
        let mut len = 0u64;
        let damaged = || anyhow!("layer {diff_id}: the tar recipe is damaged");
        loop {
            let mut tag = [0u8; 1];
            if tar.recipe.read(&mut tag)? == 0 {
                return Ok(len);
            }
            match tag[0] {
                TAG_RAW => {
                    let mut n = [0u8; 4];
                    tar.recipe.read_exact(&mut n).map_err(|_| damaged())?;
                    let n = u64::from(u32::from_le_bytes(n));
                    if io::copy(&mut (&mut tar.recipe).take(n), &mut io::sink())? != n {
                        return Err(damaged());
                    }
                    len += n;
                }
                TAG_FILE => {
                    let mut size = [0u8; 8];
                    tar.recipe.read_exact(&mut size).map_err(|_| damaged())?;
                    let mut n = [0u8; 4];
                    tar.recipe.read_exact(&mut n).map_err(|_| damaged())?;
                    let n = u64::from(u32::from_le_bytes(n));
                    if io::copy(&mut (&mut tar.recipe).take(n), &mut io::sink())? != n {
                        return Err(damaged());
                    }
                    len += u64::from_le_bytes(size);
                }
                _ => return Err(damaged()),
            }
        }
    }

    fn next_record(&mut self) -> io::Result<bool> {
        let mut tag = [0u8; 1];
        if self.recipe.read(&mut tag)? == 0 {
            return Ok(false);
        }
        match tag[0] {
            TAG_RAW => {
                let mut len = [0u8; 4];
                self.recipe.read_exact(&mut len)?;
                self.current = Current::Raw(u32::from_le_bytes(len) as u64);
            }
            TAG_FILE => {
                let mut size = [0u8; 8];
                self.recipe.read_exact(&mut size)?;
                let mut len = [0u8; 4];
                self.recipe.read_exact(&mut len)?;
                let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
                self.recipe.read_exact(&mut name)?;
                let size = u64::from_le_bytes(size);
                let rel = PathBuf::from(std::ffi::OsString::from_vec(name));
                let file = self.open_file(&rel, size)?;
                self.current = Current::File {
                    file,
                    left: size,
                    rel,
                };
            }
            other => {
                return Err(io::Error::other(format!(
                    "layer {}: the tar recipe is damaged (record type {other})",
                    self.diff_id
                )))
            }
        }
        Ok(true)
    }

    fn open_file(&self, rel: &Path, size: u64) -> io::Result<fs::File> {
        let path = self.tree.join(rel);
        // The tree's directories are real ones (unpacking never writes through a symlink),
        // and the file itself must not be a symlink either.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("layer {}: opening {}: {e}", self.diff_id, rel.display()),
                )
            })?;
        let md = file.metadata()?;
        if !md.is_file() || md.len() != size {
            return Err(io::Error::other(format!(
                "layer {}: {} changed since the layer was stored (expected a {size}-byte file); \
                 run `skiff system check`",
                self.diff_id,
                rel.display()
            )));
        }
        Ok(file)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        let got = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if got != self.diff_id {
            return Err(io::Error::other(format!(
                "layer {}: the rebuilt tar stream has digest {got}; the layer changed since it \
                 was stored; run `skiff system check`",
                self.diff_id
            )));
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for LayerTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.current {
                Current::Idle => {
                    if !self.next_record()? {
                        self.finish()?;
                        return Ok(0);
                    }
                    continue;
                }
                Current::Raw(0) | Current::File { left: 0, .. } => {
                    self.current = Current::Idle;
                    continue;
                }
                Current::Raw(left) => {
                    let want = buf.len().min(*left as usize);
                    let n = self.recipe.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("layer {}: the tar recipe is truncated", self.diff_id),
                        ));
                    }
                    *left -= n as u64;
                    n
                }
                Current::File { file, left, rel } => {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::other(format!(
                            "layer {}: {} is shorter than when the layer was stored",
                            self.diff_id,
                            rel.display()
                        )));
                    }
                    *left -= n as u64;
                    n
                }
            };
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::unpack::unpack_layer_recorded;
    use tar::{EntryType, Header};

    fn header(kind: EntryType, size: u64, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    /// A stream with the kinds of entry a registry's layers have, and GNU tar's record padding.
    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(
            &mut header(EntryType::Directory, 0, 0o755),
            "etc/",
            io::empty(),
        )
        .unwrap();
        let data = b"hello\n";
        b.append_data(
            &mut header(EntryType::Regular, 6, 0o644),
            "etc/greeting",
            &data[..],
        )
        .unwrap();
        let big = vec![7u8; 3 << 20];
        b.append_data(
            &mut header(EntryType::Regular, big.len() as u64, 0o600),
            "big",
            &big[..],
        )
        .unwrap();
        let long = format!("etc/{}", "n".repeat(150));
        b.append_data(&mut header(EntryType::Regular, 2, 0o644), &long, &b"ok"[..])
            .unwrap();
        b.append_link(
            &mut header(EntryType::Symlink, 0, 0o777),
            "etc/link",
            "greeting",
        )
        .unwrap();
        b.append_link(
            &mut header(EntryType::Link, 0, 0o644),
            "etc/hard",
            "etc/greeting",
        )
        .unwrap();
        b.append_data(
            &mut header(EntryType::Regular, 0, 0o644),
            "etc/.wh.gone",
            io::empty(),
        )
        .unwrap();
        b.append_data(
            &mut header(EntryType::Regular, 0, 0o644),
            "empty",
            io::empty(),
        )
        .unwrap();
        let mut t = b.into_inner().unwrap();
        // GNU tar pads the archive to a 10 KiB record: part of the stream and its digest.
        while t.len() % 10240 != 0 {
            t.push(0);
        }
        t
    }

    fn unpack(t: &[u8]) -> (tempfile::TempDir, bool) {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir(home.path().join("diff")).unwrap();
        let (_, ok) = unpack_layer_recorded(
            t,
            &home.path().join("diff"),
            "test",
            &home.path().join(RECIPE_FILE),
        )
        .unwrap();
        (home, ok)
    }

    fn digest(t: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(t)))
    }

    #[test]
    fn the_stream_is_rebuilt_byte_for_byte() {
        let t = sample();
        let (home, ok) = unpack(&t);
        assert!(ok);
        let mut out = Vec::new();
        LayerTar::open(home.path(), &digest(&t))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), t.len());
        assert!(out == t, "rebuilt stream differs");
        assert_eq!(
            LayerTar::stream_len(home.path(), &digest(&t)).unwrap(),
            t.len() as u64
        );
        // The recipe holds headers, not the 3 MiB file.
        let recipe = fs::metadata(home.path().join(RECIPE_FILE)).unwrap().len();
        assert!(recipe < 16 << 10, "recipe is {recipe} bytes");
    }

    #[test]
    fn a_changed_tree_is_a_read_error_not_a_wrong_stream() {
        let t = sample();
        let (home, _) = unpack(&t);
        fs::write(home.path().join("diff/etc/greeting"), b"HELLO\n").unwrap();
        let mut out = Vec::new();
        let err = LayerTar::open(home.path(), &digest(&t))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("rebuilt tar stream has digest"),
            "{err}"
        );
        fs::write(home.path().join("diff/etc/greeting"), b"longer\n!").unwrap();
        let err = LayerTar::open(home.path(), &digest(&t))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed since the layer was stored"),
            "{err}"
        );
    }

    #[test]
    fn a_stream_that_replaces_its_own_file_has_no_recipe() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(EntryType::Regular, 1, 0o644), "f", &b"a"[..])
            .unwrap();
        b.append_data(&mut header(EntryType::Regular, 1, 0o644), "f", &b"b"[..])
            .unwrap();
        let t = b.into_inner().unwrap();
        let (home, ok) = unpack(&t);
        assert!(!ok);
        assert!(!home.path().join(RECIPE_FILE).exists());
        let err = LayerTar::open(home.path(), &digest(&t)).err().unwrap();
        assert!(
            format!("{err:#}").contains("cannot be exported unchanged"),
            "{err:#}"
        );
    }
}
