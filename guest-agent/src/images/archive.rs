//! docker's image archives: the one `docker save` writes (moby's `image/tarexport`: a
//! directory per layer with `layer.tar`, `VERSION` and the legacy v1 `json`, the config as
//! `<id>.json`, `manifest.json` and `repositories`), and, for `load`, that one or an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`, as `skopeo copy … oci-archive:` and
//! docker 25+ write).
//!
//! An archive to load is hostile input. A docker archive's `manifest.json` may come after the
//! layers, so the stream is read once, as it arrives, into an index (each entry's name → where
//! its bytes are) and a spool file in the store's tmp dir holding only the entries' contents;
//! then the manifest is read from the spool and each layer goes through `ingest`'s unpacker,
//! with its usual checks. Names with `..` are refused, as are manifest paths and symlinks that
//! lead outside the archive, and a layer whose diff ID is not the one the config names fails
//! its image before the image's record is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use skiff_common::targuard::TarGuard;

use super::holds::Hold;
use super::ingest::ingest_layer;
use super::model::{ImageConfig, Platform, MT_DOCKER_LIST, MT_OCI_INDEX};
use super::reference::{familiar, ImageRef};
use super::store::{hex_of, sha256_digest, LayerRecord, Store};
use super::tarsplit::LayerTar;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

crate::domain_error!(ArchiveError);

/// JSON documents of an archive (manifests, configs, indexes) are read whole, up to this.
const MAX_DOCUMENT: u64 = 16 << 20;
/// Symlinks followed to find one entry (docker 25+ links `layer.tar` into `blobs/`).
const MAX_LINKS: usize = 16;

// ---------------------------------------------------------------------------------------
// Writing (`save`)

/// One image to save: its config as stored and the tags (familiar, `busybox:latest`) it
/// carries in the archive.
pub struct SaveItem {
    pub config_raw: Arc<Vec<u8>>,
    pub repo_tags: Vec<String>,
}

/// Where a layer's exact tar stream comes from.
pub trait LayerSource {
    /// The stream's length, known before it is read (a tar header holds it).
    fn stream_len(&self, diff_id: &str) -> anyhow::Result<u64>;
    fn open(&self, diff_id: &str) -> anyhow::Result<Box<dyn Read + Send>>;
}

impl LayerSource for Store {
    fn stream_len(&self, diff_id: &str) -> anyhow::Result<u64> {
        LayerTar::stream_len(&self.layer_home(diff_id)?, diff_id)
    }
    fn open(&self, diff_id: &str) -> anyhow::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.layer_tar(diff_id)?))
    }
}

struct SaveLayer {
    v1_id: String,
    json: Vec<u8>,
    diff_id: String,
    len: u64,
}

/// Everything of an archive but the layers' bytes, decided before the first byte is sent, so
/// that a layer that cannot be exported is an error the client gets as an HTTP status.
pub struct SavePlan {
    layers: Vec<SaveLayer>,
    configs: Vec<(String, Arc<Vec<u8>>)>,
    manifest: Vec<u8>,
    repositories: Option<Vec<u8>>,
    mtime: u64,
}

/// Go's zero `container.Config`, as the legacy layer JSON of docker's archives carries it.
fn zero_container_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        "StdinOnce": false, "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The OCI chain IDs of a list of diff IDs.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

pub fn plan_save(items: &[SaveItem], source: &dyn LayerSource) -> anyhow::Result<SavePlan> {
    let mut layers: Vec<SaveLayer> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut lens: HashMap<String, u64> = HashMap::new();
    let mut configs = Vec::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut mtime = 0u64;
    for item in items {
        let id_hex = sha256_hex(&item.config_raw);
        let config: Value = serde_json::from_slice(&item.config_raw)
            .with_context(|| format!("image sha256:{id_hex}: its config is not JSON"))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.is_empty() {
            // moby's words: an image without layers has nothing to put in layer dirs.
            anyhow::bail!("image sha256:{id_hex}: empty export - not implemented");
        }
        let created = config["created"]
            .as_str()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp().max(0) as u64)
            .unwrap_or(0);
        mtime = mtime.max(created);
        let os = config["os"].as_str().unwrap_or("linux").to_string();
        let mut parent = String::new();
        let mut paths = Vec::new();
        for (i, chain) in chain_ids(&diff_ids).iter().enumerate() {
            let top = i + 1 == diff_ids.len();
            // The v1 ID, as moby's v1.CreateID: the layer's chain and its parent, and for
            // the top layer the image's config too (loaders do not recompute it).
            let v1_id = sha256_hex(
                serde_json::to_vec(&json!({
                    "layer_id": chain,
                    "parent": parent,
                    "config": if top { config.clone() } else { Value::Null },
                }))?
                .as_slice(),
            );
            let mut legacy = if top {
                let mut m = config.as_object().cloned().unwrap_or_default();
                m.remove("rootfs");
                m.remove("history");
                m
            } else {
                let mut m = Map::new();
                m.insert("created".into(), json!("1970-01-01T00:00:00Z"));
                m.insert("container_config".into(), zero_container_config());
                m.insert("os".into(), json!(os));
                m
            };
            legacy.insert("id".into(), json!(v1_id));
            if !parent.is_empty() {
                legacy.insert("parent".into(), json!(parent));
            }
            paths.push(format!("{v1_id}/layer.tar"));
            if seen.insert(v1_id.clone()) {
                let diff_id = diff_ids[i].clone();
                let len = match lens.get(&diff_id) {
                    Some(l) => *l,
                    None => {
                        let l = source.stream_len(&diff_id)?;
                        lens.insert(diff_id.clone(), l);
                        l
                    }
                };
                layers.push(SaveLayer {
                    v1_id: v1_id.clone(),
                    json: serde_json::to_vec(&Value::Object(legacy))?,
                    diff_id,
                    len,
                });
            }
            parent = v1_id;
        }
        for t in &item.repo_tags {
            if let Ok(r) = ImageRef::parse(t) {
                if let Some(tag) = r.tag() {
                    repositories
                        .entry(r.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), parent.clone());
                }
            }
        }
        let config_name = format!("{id_hex}.json");
        if !configs.iter().any(|(n, _)| *n == config_name) {
            configs.push((config_name.clone(), item.config_raw.clone()));
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": if item.repo_tags.is_empty() { Value::Null } else { json!(item.repo_tags) },
            "Layers": paths,
        }));
    }
    Ok(SavePlan {
        layers,
        configs,
        manifest: serde_json::to_vec(&manifest)?,
        repositories: if repositories.is_empty() {
            None
        } else {
            Some(serde_json::to_vec(&repositories)?)
        },
        mtime,
    })
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

/// Write the archive: the layers first (the bulk, streamed from `source`), then the small
/// documents. A loader reads the whole archive before it uses any of it.
pub fn write_save<W: Write>(
    plan: &SavePlan,
    source: &dyn LayerSource,
    out: W,
) -> anyhow::Result<W> {
    use tar::EntryType;
    let mut tar = tar::Builder::new(out);
    let t = plan.mtime;
    for l in &plan.layers {
        let dir = format!("{}/", l.v1_id);
        tar.append_data(
            &mut header(EntryType::Directory, 0, 0o755, t),
            &dir,
            io::empty(),
        )?;
        tar.append_data(
            &mut header(EntryType::Regular, 3, 0o644, t),
            format!("{dir}VERSION"),
            &b"1.0"[..],
        )?;
        tar.append_data(
            &mut header(EntryType::Regular, l.json.len() as u64, 0o644, t),
            format!("{dir}json"),
            l.json.as_slice(),
        )?;
        let stream = source.open(&l.diff_id)?;
        // A stream shorter than its header says must fail the archive, not pad it silently.
        let mut counted = Exact {
            inner: stream,
            left: l.len,
            what: l.diff_id.as_str(),
        };
        tar.append_data(
            &mut header(EntryType::Regular, l.len, 0o644, t),
            format!("{dir}layer.tar"),
            &mut counted,
        )?;
        counted.finish()?;
    }
    for (name, raw) in &plan.configs {
        tar.append_data(
            &mut header(EntryType::Regular, raw.len() as u64, 0o644, t),
            name,
            raw.as_slice(),
        )?;
    }
    tar.append_data(
        &mut header(EntryType::Regular, plan.manifest.len() as u64, 0o644, t),
        "manifest.json",
        plan.manifest.as_slice(),
    )?;
    if let Some(repos) = &plan.repositories {
        tar.append_data(
            &mut header(EntryType::Regular, repos.len() as u64, 0o644, t),
            "repositories",
            repos.as_slice(),
        )?;
    }
    Ok(tar.into_inner()?)
}

/// A reader that must give exactly `left` bytes.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    what: &'a str,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("layer {}: the stream ended early", self.what),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read> Exact<'_, R> {
    /// The stream must end where its length said, and (a `LayerTar`) verify at its end.
    fn finish(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe)? != 0 {
            return Err(io::Error::other(format!(
                "layer {}: the stream is longer than its recipe said",
                self.what
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reading (`load`)

#[derive(Debug, Clone)]
enum Entry {
    File { offset: u64, size: u64 },
    Dir,
    Hard(String),
    Sym(String),
}

/// An archive's entries by name, their contents in a spool file.
#[derive(Debug, Default)]
pub struct ArchiveIndex {
    entries: HashMap<String, Entry>,
}

/// A name inside the archive, as `a/b/c`: `.` parts and leading `/` dropped, `..` refused.
fn clean_name(raw: &str) -> Result<String, ArchiveError> {
    let mut parts = Vec::new();
    for p in raw.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                return Err(ArchiveError::invalid(format!(
                    "the archive names {raw:?}, a path that leads outside it"
                )))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The stream, decompressed when it starts with gzip's or zstd's magic.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

/// Far more than any image archive holds (a docker save has three entries per layer).
const MAX_ENTRIES: usize = 1 << 17;
const MAX_NAME_BYTES: usize = 64 << 20;

impl ArchiveIndex {
    /// Read the archive stream `input` (plain or gzip/zstd-compressed) to its end, appending
    /// each file's bytes to `spool`.
    /// `max_bytes` bounds what is spooled (a compressed bomb cannot fill the disk); the number
    /// of entries and the bytes of their names are bounded too (they are held in memory).
    pub fn spool<R: Read>(
        input: R,
        spool: &mut File,
        max_bytes: u64,
    ) -> Result<ArchiveIndex, ArchiveError> {
        let not_tar = |e: io::Error| {
            ArchiveError::invalid(format!(
                "the archive is not a tar file (docker save or an OCI layout): {e}"
            ))
        };
        let mut archive = tar::Archive::new(TarGuard::new(decompressed(input).map_err(not_tar)?));
        let mut index = ArchiveIndex::default();
        let mut offset = 0u64;
        let mut name_bytes = 0usize;
        let mut out = io::BufWriter::with_capacity(1 << 20, &mut *spool);
        for entry in archive.entries().map_err(not_tar)? {
            let mut entry = entry.map_err(not_tar)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean_name(&raw)?;
            name_bytes += raw.len();
            if index.entries.len() >= MAX_ENTRIES || name_bytes > MAX_NAME_BYTES {
                return Err(ArchiveError::invalid(format!(
                    "the archive has more than {MAX_ENTRIES} entries or {MAX_NAME_BYTES} bytes of names: not an image archive"
                )));
            }
            let kind = entry.header().entry_type();
            let link = || -> Result<String, ArchiveError> {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .ok_or_else(|| {
                        ArchiveError::invalid(format!("{raw:?}: a link without a target"))
                    })
            };
            let e = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if entry.size() > max_bytes.saturating_sub(offset) {
                        return Err(ArchiveError::invalid(format!(
                            "the archive holds more than the engine's limit of {max_bytes} bytes"
                        )));
                    }
                    let size = io::copy(&mut entry, &mut out).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof
                            || e.kind() == io::ErrorKind::InvalidData
                        {
                            not_tar(e)
                        } else {
                            ArchiveError::Internal(anyhow::Error::new(e).context("spooling"))
                        }
                    })?;
                    let e = Entry::File { offset, size };
                    offset += size;
                    e
                }
                tar::EntryType::Directory => Entry::Dir,
                tar::EntryType::Link => Entry::Hard(clean_name(&link()?)?),
                tar::EntryType::Symlink => Entry::Sym(link()?),
                // Nothing else belongs in an image archive; nothing refers to it either.
                _ => continue,
            };
            if !name.is_empty() {
                index.entries.insert(name, e);
            }
        }
        out.flush()
            .map_err(|e| ArchiveError::Internal(anyhow::Error::new(e).context("spooling")))?;
        Ok(index)
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    /// Where the bytes of `name` are, following links inside the archive.
    fn resolve(&self, name: &str) -> Result<(u64, u64), ArchiveError> {
        let mut name = clean_name(name)?;
        for _ in 0..MAX_LINKS {
            match self.entries.get(&name) {
                Some(Entry::File { offset, size }) => return Ok((*offset, *size)),
                Some(Entry::Hard(target)) => name = target.clone(),
                Some(Entry::Sym(target)) => {
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        match name.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{target}"),
                            None => target.clone(),
                        }
                    };
                    name = lexical(&joined).ok_or_else(|| {
                        ArchiveError::invalid(format!(
                            "the archive's {name} links to {target:?}, outside the archive"
                        ))
                    })?;
                }
                Some(Entry::Dir) => {
                    return Err(ArchiveError::invalid(format!(
                        "the archive's {name} is a directory, not a file"
                    )))
                }
                None => {
                    return Err(ArchiveError::invalid(format!(
                        "the archive has no file {name}"
                    )))
                }
            }
        }
        Err(ArchiveError::invalid(format!(
            "the archive's {name}: too many links"
        )))
    }

    /// A reader of the file `name`'s bytes in `spool`.
    pub fn open<'a>(&self, spool: &'a File, name: &str) -> Result<Section<'a>, ArchiveError> {
        let (offset, size) = self.resolve(name)?;
        Ok(Section {
            file: spool,
            pos: offset,
            end: offset + size,
        })
    }

    fn read_document(&self, spool: &File, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let (_, size) = self.resolve(name)?;
        if size > MAX_DOCUMENT {
            return Err(ArchiveError::invalid(format!(
                "the archive's {name} is {size} bytes, more than a JSON document of an image \
                 may be ({MAX_DOCUMENT})"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open(spool, name)?.read_to_end(&mut buf).map_err(|e| {
            ArchiveError::Internal(anyhow::Error::new(e).context("reading the spool"))
        })?;
        Ok(buf)
    }
}

/// `a/./b/../c` → `a/c`, or None when `..` climbs above the root.
fn lexical(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A byte range of the spool, read with `pread` (no shared file position).
pub struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spooled archive is shorter than its index",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// One image an archive holds, checked as far as can be without its layers.
#[derive(Debug)]
pub struct LoadItem {
    pub config_raw: Vec<u8>,
    pub diff_ids: Vec<String>,
    /// The archive's name of each layer's blob, in the config's order.
    pub layers: Vec<String>,
    /// (as the archive writes it, the store's tag key).
    pub tags: Vec<(String, String)>,
}

impl LoadItem {
    pub fn id(&self) -> String {
        sha256_digest(&self.config_raw)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDocument {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<OciDescriptor>,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
    #[serde(default)]
    manifests: Option<Vec<OciDescriptor>>,
}

fn parse_config(raw: &[u8], name: &str) -> Result<ImageConfig, ArchiveError> {
    serde_json::from_slice(raw).map_err(|e| {
        ArchiveError::invalid(format!("the archive's {name} is not an image config: {e}"))
    })
}

fn tag_of(written: &str) -> Result<(String, String), ArchiveError> {
    let bad = |why: String| {
        ArchiveError::invalid(format!("the archive tags an image {written:?}: {why}"))
    };
    let r = ImageRef::parse(written).map_err(|e| bad(e.to_string()))?;
    let key = r
        .tag_key()
        .filter(|_| r.digest().is_none())
        .ok_or_else(|| bad("not a name:tag reference".into()))?;
    Ok((familiar(&key), key))
}

/// Read what the archive holds, before anything is stored.
pub fn plan_load(index: &ArchiveIndex, spool: &File) -> Result<Vec<LoadItem>, ArchiveError> {
    if index.has("manifest.json") {
        return plan_docker(index, spool);
    }
    if index.has("index.json") {
        return plan_oci(index, spool);
    }
    Err(ArchiveError::invalid(
        "the archive has neither manifest.json (docker save) nor index.json (an OCI image layout)",
    ))
}

fn plan_docker(index: &ArchiveIndex, spool: &File) -> Result<Vec<LoadItem>, ArchiveError> {
    let raw = index.read_document(spool, "manifest.json")?;
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&raw).map_err(|e| {
        ArchiveError::invalid(format!("the archive's manifest.json is not docker's: {e}"))
    })?;
    let mut out = Vec::new();
    for e in entries {
        let config_raw = index.read_document(spool, &e.config)?;
        let config = parse_config(&config_raw, &e.config)?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::invalid(format!(
                "invalid manifest, layers length mismatch: {} names {} layers, its config {}",
                e.config,
                e.layers.len(),
                diff_ids.len()
            )));
        }
        for l in &e.layers {
            index.resolve(l)?;
        }
        let tags = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| tag_of(t))
            .collect::<Result<_, _>>()?;
        out.push(LoadItem {
            config_raw,
            diff_ids,
            layers: e.layers,
            tags,
        });
    }
    Ok(out)
}

fn blob_name(digest: &str) -> Result<String, ArchiveError> {
    let hex = hex_of(digest).map_err(|e| ArchiveError::invalid(format!("{e:#}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// A blob of an OCI layout, read whole and checked against its digest.
fn read_blob(index: &ArchiveIndex, spool: &File, digest: &str) -> Result<Vec<u8>, ArchiveError> {
    let raw = index.read_document(spool, &blob_name(digest)?)?;
    let got = sha256_digest(&raw);
    if got != digest {
        return Err(ArchiveError::invalid(format!(
            "the archive's blob {digest} has digest {got}: it is damaged"
        )));
    }
    Ok(raw)
}

fn is_index(media_type: &str) -> bool {
    media_type == MT_OCI_INDEX || media_type == MT_DOCKER_LIST
}

fn plan_oci(index: &ArchiveIndex, spool: &File) -> Result<Vec<LoadItem>, ArchiveError> {
    let raw = index.read_document(spool, "index.json")?;
    let top: OciDocument = serde_json::from_slice(&raw).map_err(|e| {
        ArchiveError::invalid(format!("the archive's index.json is not an OCI index: {e}"))
    })?;
    let mut out = Vec::new();
    for desc in top.manifests.unwrap_or_default() {
        let tags = oci_name(&desc.annotations)
            .map(|n| tag_of(&n))
            .transpose()?
            .into_iter()
            .collect();
        let (manifest, _) = oci_manifest(index, spool, &desc, 0)?;
        let config_desc = manifest.config.ok_or_else(|| {
            ArchiveError::invalid(format!(
                "the archive's manifest {} has no config",
                desc.digest
            ))
        })?;
        let config_raw = read_blob(index, spool, &config_desc.digest)?;
        let config = parse_config(&config_raw, &blob_name(&config_desc.digest)?)?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let name = blob_name(&l.digest)?;
                index.resolve(&name)?;
                Ok(name)
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        if layers.len() != config.rootfs.diff_ids.len() {
            return Err(ArchiveError::invalid(format!(
                "the archive's manifest {} has {} layers, its config {}",
                desc.digest,
                layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        out.push(LoadItem {
            diff_ids: config.rootfs.diff_ids.clone(),
            config_raw,
            layers,
            tags,
        });
    }
    if out.is_empty() {
        return Err(ArchiveError::invalid(
            "the archive's index.json lists no image",
        ));
    }
    Ok(out)
}

/// The image manifest a descriptor leads to: an index's entry for this host's platform.
fn oci_manifest(
    index: &ArchiveIndex,
    spool: &File,
    desc: &OciDescriptor,
    depth: usize,
) -> Result<(OciDocument, String), ArchiveError> {
    if depth > 4 {
        return Err(ArchiveError::invalid("the archive's indexes nest too deep"));
    }
    let raw = read_blob(index, spool, &desc.digest)?;
    let doc: OciDocument = serde_json::from_slice(&raw).map_err(|e| {
        ArchiveError::invalid(format!(
            "the archive's manifest {} is not JSON: {e}",
            desc.digest
        ))
    })?;
    let media = doc
        .media_type
        .clone()
        .unwrap_or_else(|| desc.media_type.clone());
    if !is_index(&media) && doc.manifests.is_none() {
        return Ok((doc, desc.digest.clone()));
    }
    let host = Platform::host();
    let list = doc.manifests.unwrap_or_default();
    // An index saved with one image's content holds just that one: take it whatever it says.
    let present: Vec<&OciDescriptor> = list
        .iter()
        .filter(|m| blob_name(&m.digest).map(|n| index.has(&n)).unwrap_or(false))
        .collect();
    let chosen = present
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(&host)))
        .or(if present.len() == 1 {
            present.first()
        } else {
            None
        })
        .ok_or_else(|| {
            ArchiveError::not_found(format!(
                "the archive's index {} has no image for {host}",
                desc.digest
            ))
        })?;
    oci_manifest(index, spool, chosen, depth + 1)
}

/// The image's name an OCI descriptor's annotations give: containerd's full name, or the
/// layout's ref name when it is a whole reference (a bare tag such as `latest` names no
/// repository, and the image is loaded untagged).
fn oci_name(a: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = a.get("io.containerd.image.name") {
        return Some(n.clone());
    }
    a.get("org.opencontainers.image.ref.name")
        .filter(|n| n.contains(':') || n.contains('/'))
        .cloned()
}

/// What `load` says as it goes, one line each (docker's words).
pub enum LoadEvent {
    /// A tag that pointed at another image moves to this one.
    Renamed {
        tag: String,
        old_id: String,
    },
    Tagged(String),
    Untagged(String),
}

impl LoadEvent {
    pub fn line(&self) -> String {
        match self {
            LoadEvent::Renamed { tag, old_id } => format!(
                "The image {tag} already exists, renaming the old one with ID {old_id} to empty string\n"
            ),
            LoadEvent::Tagged(t) => format!("Loaded image: {t}\n"),
            LoadEvent::Untagged(id) => format!("Loaded image ID: {id}\n"),
        }
    }
}

/// Store each planned image: its layers (those the store lacks), then, once every layer has
/// the diff ID its config names, its config and tags. Blocking.
pub fn load_items(
    store: &Arc<Store>,
    index: &ArchiveIndex,
    spool: &File,
    items: &[LoadItem],
    limit: u64,
    report: &mut dyn FnMut(LoadEvent),
) -> Result<(), ArchiveError> {
    for item in items {
        let id = item.id();
        let mut records: Vec<LayerRecord> = Vec::with_capacity(item.layers.len());
        // Each layer, found or stored, is held until the image is recorded: a deletion
        // meanwhile cannot take it, and if the load fails the layers it stored and no image
        // uses go with the hold.
        let mut hold = Hold::new(store);
        for (n, (name, want)) in item.layers.iter().zip(&item.diff_ids).enumerate() {
            hold.layer(want);
            if let Some(rec) = store.layer_record(want) {
                records.push(rec);
                continue;
            }
            let what = format!("{name} (layer {} of image {id})", n + 1);
            let reader = decompressed(index.open(spool, name)?).map_err(|e| {
                ArchiveError::Internal(anyhow::Error::new(e).context(format!("reading {what}")))
            })?;
            // Its errors name the layer already.
            let rec = ingest_layer(store, reader, &what, limit)
                .map_err(|e| ArchiveError::invalid(format!("{e:#}")))?;
            hold.layer(&rec.diff_id);
            if rec.diff_id != *want {
                return Err(ArchiveError::invalid(format!(
                    "{what} has diff ID {}, but the image's config says {want}: the archive is \
                     damaged or was altered",
                    rec.diff_id
                )));
            }
            records.push(rec);
        }
        let refs = store.references();
        for (shown, key) in &item.tags {
            if let Some(old) = refs.tags.get(key).filter(|old| **old != id) {
                report(LoadEvent::Renamed {
                    tag: shown.clone(),
                    old_id: old.clone(),
                });
            }
        }
        let keys: Vec<String> = item.tags.iter().map(|(_, k)| k.clone()).collect();
        store.commit_local_image(&item.config_raw, records, None, &keys)?;
        if item.tags.is_empty() {
            report(LoadEvent::Untagged(id));
        }
        for (shown, _) in &item.tags {
            report(LoadEvent::Tagged(shown.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers held in memory.
    struct Mem(HashMap<String, Vec<u8>>);

    impl LayerSource for Mem {
        fn stream_len(&self, d: &str) -> anyhow::Result<u64> {
            Ok(self.0.get(d).map(|v| v.len() as u64).unwrap_or(0))
        }
        fn open(&self, d: &str) -> anyhow::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(
                self.0.get(d).cloned().unwrap_or_default(),
            )))
        }
    }

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn config(diff_ids: &[&str], cmd: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "x"}],
        }))
        .unwrap()
    }

    fn spool(archive: &[u8]) -> Result<(ArchiveIndex, File), ArchiveError> {
        let mut f = tempfile::tempfile().unwrap();
        let index = ArchiveIndex::spool(archive, &mut f, u64::MAX)?;
        Ok((index, f))
    }

    fn two_images() -> (Mem, Vec<SaveItem>, Vec<String>) {
        let l1 = layer(&[("bin/sh", b"shell")]);
        let l2 = layer(&[("etc/motd", b"hi")]);
        let d1 = sha256_digest(&l1);
        let d2 = sha256_digest(&l2);
        let mem = Mem(HashMap::from([(d1.clone(), l1), (d2.clone(), l2)]));
        let items = vec![
            SaveItem {
                config_raw: Arc::new(config(&[&d1, &d2], "a")),
                repo_tags: vec!["busybox:latest".into(), "busybox:x".into()],
            },
            SaveItem {
                config_raw: Arc::new(config(&[&d1, &d2], "b")),
                repo_tags: vec![],
            },
        ];
        (mem, items, vec![d1, d2])
    }

    fn read_entry(index: &ArchiveIndex, f: &File, name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        index.open(f, name).unwrap().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn a_saved_archive_reads_back_as_dockers() {
        let (mem, items, diffs) = two_images();
        let plan = plan_save(&items, &mem).unwrap();
        let archive = write_save(&plan, &mem, Vec::new()).unwrap();
        let (index, f) = spool(&archive).unwrap();

        let manifest: Value =
            serde_json::from_slice(&read_entry(&index, &f, "manifest.json")).unwrap();
        assert_eq!(
            manifest[0]["RepoTags"],
            json!(["busybox:latest", "busybox:x"])
        );
        assert_eq!(manifest[1]["RepoTags"], Value::Null);
        // The shared bottom layer is one directory, written once; a top layer's v1 ID holds
        // its image's config, as docker's.
        assert_eq!(manifest[0]["Layers"][0], manifest[1]["Layers"][0]);
        assert_ne!(manifest[0]["Layers"][1], manifest[1]["Layers"][1]);
        let dirs = index
            .entries
            .keys()
            .filter(|k| k.ends_with("/layer.tar"))
            .count();
        assert_eq!(dirs, 3);
        let top = manifest[0]["Layers"][1].as_str().unwrap();
        let top_dir = top.trim_end_matches("/layer.tar");
        let repos: Value = serde_json::from_slice(&read_entry(&index, &f, "repositories")).unwrap();
        assert_eq!(repos, json!({"busybox": {"latest": top_dir, "x": top_dir}}));
        assert_eq!(
            read_entry(&index, &f, &format!("{top_dir}/VERSION")),
            b"1.0"
        );
        let legacy: Value =
            serde_json::from_slice(&read_entry(&index, &f, &format!("{top_dir}/json"))).unwrap();
        assert_eq!(legacy["id"], json!(top_dir));
        assert_eq!(legacy["config"]["Cmd"], json!(["a"]));
        assert!(legacy.get("rootfs").is_none());
        let bottom = manifest[0]["Layers"][0]
            .as_str()
            .unwrap()
            .trim_end_matches("/layer.tar");
        assert_eq!(legacy["parent"], json!(bottom));
        assert_eq!(
            sha256_digest(&read_entry(&index, &f, top)),
            diffs[1],
            "layer.tar is the exact stream"
        );

        let items_back = plan_load(&index, &f).unwrap();
        assert_eq!(items_back.len(), 2);
        assert_eq!(items_back[0].config_raw, *items[0].config_raw);
        assert_eq!(items_back[0].diff_ids, diffs);
        assert_eq!(
            items_back[0].tags,
            vec![
                (
                    "busybox:latest".to_string(),
                    "docker.io/library/busybox:latest".to_string()
                ),
                (
                    "busybox:x".to_string(),
                    "docker.io/library/busybox:x".to_string()
                )
            ]
        );
        assert!(items_back[1].tags.is_empty());
    }

    #[test]
    fn a_gzipped_archive_reads_too() {
        let (mem, items, _) = two_images();
        let plan = plan_save(&items, &mem).unwrap();
        let archive = write_save(&plan, &mem, Vec::new()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&archive).unwrap();
        let (index, f) = spool(&gz.finish().unwrap()).unwrap();
        assert_eq!(plan_load(&index, &f).unwrap().len(), 2);
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        layer(entries)
    }

    #[test]
    fn hostile_archives_are_refused() {
        // Not a tar at all.
        let e = spool(
            b"this is not an archive, just some words long enough to fill nothing"
                .repeat(20)
                .as_slice(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a tar file"), "{e}");

        // An entry that climbs out.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        // `set_path` refuses `..`; a hostile writer does not.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let e = spool(&b.into_inner().unwrap()).unwrap_err();
        assert!(e.to_string().contains("leads outside"), "{e}");

        // No manifest.
        let (index, f) = spool(&tar_of(&[("foo", b"bar")])).unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("neither manifest.json"), "{e}");

        // A manifest pointing outside the archive.
        let cfg = config(&["sha256:".to_string().as_str()], "a");
        let m = br#"[{"Config":"../../etc/passwd","RepoTags":null,"Layers":[]}]"#;
        let (index, f) = spool(&tar_of(&[("manifest.json", m), ("c.json", &cfg)])).unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("leads outside"), "{e}");

        // A symlink leading outside.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "c.json", "../../../etc/passwd")
            .unwrap();
        let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":[]}]"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
        let (index, f) = spool(&b.into_inner().unwrap()).unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("outside the archive"), "{e}");

        // A config that is not JSON.
        let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":[]}]"#;
        let (index, f) = spool(&tar_of(&[("manifest.json", m), ("c.json", b"nope")])).unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("not an image config"), "{e}");

        // Layers the config does not have.
        let m = br#"[{"Config":"c.json","RepoTags":null,"Layers":["l.tar"]}]"#;
        let cfg = config(&[], "a");
        let (index, f) = spool(&tar_of(&[
            ("manifest.json", m),
            ("c.json", &cfg),
            ("l.tar", b""),
        ]))
        .unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("layers length mismatch"), "{e}");
    }

    #[test]
    fn an_oci_layout_reads_with_its_name_and_compressed_layers() {
        let l1 = layer(&[("bin/sh", b"shell")]);
        let d1 = sha256_digest(&l1);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&l1).unwrap();
        let blob = gz.finish().unwrap();
        let blob_digest = sha256_digest(&blob);
        let cfg = config(&[&d1], "a");
        let cfg_digest = sha256_digest(&cfg);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob_digest, "size": blob.len()}],
        }))
        .unwrap();
        let m_digest = sha256_digest(&manifest);
        let idx = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_digest, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "example.com/app:v1"}}],
        }))
        .unwrap();
        let hex = |d: &str| format!("blobs/sha256/{}", &d[7..]);
        let archive = tar_of(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", &idx),
            (&hex(&m_digest), &manifest),
            (&hex(&cfg_digest), &cfg),
            (&hex(&blob_digest), &blob),
        ]);
        let (index, f) = spool(&archive).unwrap();
        let items = plan_load(&index, &f).unwrap();
        assert_eq!(items[0].tags[0].0, "example.com/app:v1");
        assert_eq!(items[0].diff_ids, vec![d1.clone()]);
        let mut data = Vec::new();
        decompressed(index.open(&f, &items[0].layers[0]).unwrap())
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(sha256_digest(&data), d1);

        // A blob whose bytes are not its digest's.
        let archive = tar_of(&[("index.json", &idx), (&hex(&m_digest), b"{}")]);
        let (index, f) = spool(&archive).unwrap();
        let e = plan_load(&index, &f).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn a_layer_whose_diff_id_is_not_the_configs_stores_no_image() {
        let root = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(root.path()).unwrap());
        let good = layer(&[("a", b"1")]);
        let other = layer(&[("a", b"2")]);
        let cfg = config(&[&sha256_digest(&good)], "a");
        let m = br#"[{"Config":"c.json","RepoTags":["victim:latest"],"Layers":["l/layer.tar"]}]"#;
        let (index, f) = spool(&tar_of(&[
            ("manifest.json", m),
            ("c.json", &cfg),
            ("l/layer.tar", &other),
        ]))
        .unwrap();
        let items = plan_load(&index, &f).unwrap();
        let mut lines = Vec::new();
        let e = load_items(&store, &index, &f, &items, 1 << 30, &mut |ev| {
            lines.push(ev.line())
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("l/layer.tar (layer 1 of image"),
            "{e}"
        );
        assert!(e.to_string().contains("damaged or was altered"), "{e}");
        assert!(store.images().is_empty());
        // The layer it stored went with the failed load.
        assert!(!store.layer_home(&sha256_digest(&other)).unwrap().exists());
        assert!(store.references().tags.is_empty());
        assert!(lines.is_empty());

        // The same archive with the right layer loads, and says so.
        let (index, f) = spool(&tar_of(&[
            ("manifest.json", m),
            ("c.json", &cfg),
            ("l/layer.tar", &good),
        ]))
        .unwrap();
        let items = plan_load(&index, &f).unwrap();
        load_items(&store, &index, &f, &items, 1 << 30, &mut |ev| {
            lines.push(ev.line())
        })
        .unwrap();
        assert_eq!(lines, vec!["Loaded image: victim:latest\n"]);
        let img = store.resolve("victim:latest").unwrap();
        assert_eq!(img.record.id, sha256_digest(&cfg));
    }
}
