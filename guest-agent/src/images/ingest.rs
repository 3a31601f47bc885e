//! A layer stored from a tar stream made here or handed to us — a build step, `commit`,
//! `load`, `import` — rather than pulled: unpacked with its recipe (see `tarsplit`), its diff
//! ID computed on the way, and renamed into the store as a pulled layer is.

use std::fs;
use std::io::{self, Read};

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

use super::diff::Upper;
use super::store::{tempfile_in, LayerRecord, Store};
use super::tarsplit::RECIPE_FILE;
use super::tree::summarize_tree;
use super::unpack::unpack_layer_recorded;

/// Chunks arriving on a channel (a download, a request body) as a `Read` for a blocking
/// consumer (an unpacker).
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

/// A channel of at most `cap` chunks in flight and the reader of its other end.
pub fn channel_reader(cap: usize) -> (tokio::sync::mpsc::Sender<bytes::Bytes>, ChannelReader) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap);
    (
        tx,
        ChannelReader {
            rx,
            cur: bytes::Bytes::new(),
        },
    )
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Hashes the uncompressed stream (for the diff ID) and stops a decompression bomb.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub count: u64,
    pub limit: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
        }
    }

    pub fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(format!(
                "the layer unpacks to more than the limit of {} bytes",
                self.limit
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Store the layer whose (uncompressed) tar stream is `input`, read to its end; `name` says
/// which layer in errors. A layer the store already has is kept as it is. Blocking.
pub fn ingest_layer<R: Read>(
    store: &Store,
    input: R,
    name: &str,
    limit: u64,
) -> Result<LayerRecord> {
    let tmp_home = tempfile_in(&store.tmp_dir())?;
    let result = ingest_into(store, input, name, limit, &tmp_home);
    if tmp_home.exists() {
        let _ = fs::remove_dir_all(&tmp_home);
    }
    result
}

fn ingest_into<R: Read>(
    store: &Store,
    input: R,
    name: &str,
    limit: u64,
    tmp_home: &std::path::Path,
) -> Result<LayerRecord> {
    let dest = tmp_home.join("diff");
    fs::create_dir_all(&dest).context("creating the layer's temporary directory")?;
    let mut hashing = HashingReader::new(input, limit);
    let (stats, _) = unpack_layer_recorded(&mut hashing, &dest, name, &tmp_home.join(RECIPE_FILE))?;
    let diff_id = hashing.digest();
    if let Some(existing) = store.layer_record(&diff_id) {
        return Ok(existing);
    }
    let tree =
        summarize_tree(&dest).with_context(|| format!("layer {name}: summarising the tree"))?;
    let rec = LayerRecord {
        diff_id,
        // Not compressed yet: a push compresses it and records what it sent.
        digest: String::new(),
        media_type: String::new(),
        compressed_size: 0,
        size: stats.size,
        tree: Some(tree),
        source: None,
    };
    store.commit_layer(tmp_home, &rec)?;
    Ok(rec)
}

/// Store an overlay upper dir's changes as a layer (a build step, `commit`). Blocking.
pub fn ingest_changes(store: &Store, upper: &Upper, name: &str, limit: u64) -> Result<LayerRecord> {
    ingest_written(
        store,
        name,
        limit,
        |w| upper.write_layer(w).map(drop),
        |e| e.context("writing the changes as a layer"),
    )
}

/// Store the layer whose tar `write` makes: written on one thread and unpacked into the store
/// on this one, never held whole in memory or on disk twice. A failure of the writing side
/// is the cause (worded by `failed`) unless it is a broken pipe, which only echoes the
/// store's side stopping first. Blocking.
pub fn ingest_written(
    store: &Store,
    name: &str,
    limit: u64,
    write: impl FnOnce(io::PipeWriter) -> Result<()> + Send,
    failed: impl FnOnce(anyhow::Error) -> anyhow::Error,
) -> Result<LayerRecord> {
    let (reader, writer) = io::pipe().context("making a pipe")?;
    std::thread::scope(|s| {
        let packer = s.spawn(move || write(writer));
        let stored = ingest_layer(store, reader, name, limit);
        let packed = packer
            .join()
            .map_err(|_| anyhow::anyhow!("the thread writing the layer panicked"))?;
        match (stored, packed) {
            (Ok(rec), Ok(())) => Ok(rec),
            (_, Err(e)) if !is_broken_pipe(&e) => Err(failed(e)),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(failed(e)),
        }
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
