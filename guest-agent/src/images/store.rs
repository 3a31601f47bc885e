//! The image store on disk: content-addressed blobs, one unpacked directory per layer (shared
//! by every image that has it), one record per image, and the references (tags and digests).
//!
//! Layout under `<root>/images`:
//!   blobs/sha256/<hex>          manifests and configs, verified on write (compressed layers
//!                               are verified as they stream in, then not kept: the unpacked
//!                               layer is what containers use, as in docker's overlay2 store)
//!   layers/<diff-hex>/diff/     the unpacked layer, an overlayfs lower dir
//!   layers/<diff-hex>/layer.json
//!   records/<id-hex>.json       an image: its manifest, config and layer list
//!   references.json             tags and digests → image ID
//!   tmp/                        everything in progress; emptied at start
//!
//! Everything becomes visible by a rename after its content is synced, in the order
//! layers → blobs → record → references, so a crash at any point leaves no half image visible.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::holds::{HoldStore, Holds};
use super::model::ImageConfig;
use super::reference::{looks_like_id, ImageRef};
use super::tarsplit::LayerTar;
use super::tree::TreeSummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: String,
    /// Compressed blob digest and media type as the registry served it.
    pub digest: String,
    pub media_type: String,
    pub compressed_size: u64,
    /// Unpacked size, as docker counts it (sum of entry sizes).
    pub size: u64,
    /// The unpacked tree's shape at commit, for `system check` (absent in older stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeSummary>,
    /// The repository (`registry/repo`) known to hold the blob `digest` names: where it was
    /// pulled from, or last pushed to. A push to another repository of that registry mounts
    /// the blob from there instead of uploading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the config blob, as docker's image ID.
    pub id: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
    /// When the image was first stored here (RFC 3339).
    pub stored_at: String,
    /// The image a build step or `commit` started from (docker's `Parent`); pulled and
    /// loaded images have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl ImageRecord {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// An image as held in memory: its record and its parsed config.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub config_raw: Arc<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct References {
    /// `registry/repo:tag` → image ID
    pub tags: BTreeMap<String, String>,
    /// `registry/repo@sha256:…` → image ID
    pub digests: BTreeMap<String, String>,
    /// image ID → when it was last tagged (RFC 3339)
    #[serde(default)]
    pub last_tag_time: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    images: HashMap<String, Image>,
    refs: References,
}

pub struct Store {
    root: PathBuf,
    state: RwLock<State>,
    /// Serialises metadata commits (records and references) so each write sees the last one.
    commit: Mutex<()>,
    /// One lock per layer being fetched, so two pulls of images sharing a layer fetch it once.
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What operations in progress rely on (`holds.rs`).
    holds: Holds,
}

pub fn hex_of(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| anyhow!("unsupported digest {digest:?}: only sha256 is supported"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        bail!("malformed digest {digest:?}");
    }
    Ok(hex)
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Write `data` to `path` atomically: temporary file in `tmp_dir`, fsync, rename, fsync dir.
pub fn write_atomic(tmp_dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tempfile_in(tmp_dir)?;
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("moving into place {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// A fresh unique name inside `dir` (not created).
pub fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(
        "{}-{}-{n}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )))
}

/// Flush every dirty page of the filesystem holding `path` (one syscall for a whole
/// unpacked layer, instead of an fsync per file).
pub fn syncfs(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the fd is valid for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("syncfs");
    }
    Ok(())
}

impl Store {
    pub fn open(root: &Path) -> Result<Self> {
        let root = root.join("images");
        for d in ["blobs/sha256", "layers", "records", "tmp"] {
            fs::create_dir_all(root.join(d))
                .with_context(|| format!("creating {}", root.join(d).display()))?;
        }
        // Whatever was in progress when the agent stopped is abandoned: a build's context
        // tmpfs and step overlays are unmounted first, or their removal would fail (or walk a
        // whole image through an overlay).
        for m in crate::mountinfo::mounts_under(&root.join("tmp")) {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting {} left by an earlier agent: {e}", m.display());
            }
        }
        for e in fs::read_dir(root.join("tmp"))? {
            let p = e?.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        let store = Store {
            root,
            state: RwLock::new(State::default()),
            commit: Mutex::new(()),
            layer_locks: Mutex::new(HashMap::new()),
            holds: Holds::default(),
        };
        store.load()?;
        Ok(store)
    }

    fn load(&self) -> Result<()> {
        let mut images = HashMap::new();
        for e in fs::read_dir(self.root.join("records"))? {
            let path = e?.path();
            match self.load_image(&path) {
                Ok(img) => {
                    images.insert(img.record.id.clone(), img);
                }
                Err(err) => tracing::warn!("ignoring image record {}: {err:#}", path.display()),
            }
        }
        let refs_path = self.root.join("references.json");
        let mut refs: References = match fs::read(&refs_path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("parsing {}", refs_path.display()))?,
            Err(_) => References::default(),
        };
        refs.tags.retain(|_, id| images.contains_key(id));
        refs.digests.retain(|_, id| images.contains_key(id));
        let mut st = self
            .state
            .write()
            .map_err(|_| anyhow!("store lock poisoned"))?;
        st.images = images;
        st.refs = refs;
        Ok(())
    }

    fn load_image(&self, path: &Path) -> Result<Image> {
        let record: ImageRecord = serde_json::from_slice(&fs::read(path)?)?;
        for l in &record.layers {
            if !self.layer_dir(&l.diff_id)?.exists() {
                bail!("layer {} is missing", l.diff_id);
            }
        }
        let config_raw = fs::read(self.blob_path(&record.id)?)?;
        let config: ImageConfig = serde_json::from_slice(&config_raw)?;
        Ok(Image {
            record,
            config,
            config_raw: Arc::new(config_raw),
        })
    }

    /// The store's own directory (`<root>/images`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// The directory holding `layers/<hex>/` for a diff ID.
    pub fn layer_home(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(hex_of(diff_id)?))
    }

    /// The unpacked tree of a layer (an overlayfs lower dir).
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.layer_home(diff_id)?.join("diff"))
    }

    pub fn layer_record(&self, diff_id: &str) -> Option<LayerRecord> {
        let p = self.layer_home(diff_id).ok()?.join("layer.json");
        serde_json::from_slice(&fs::read(p).ok()?).ok()
    }

    pub fn layer_lock(&self, diff_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.layer_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(diff_id.to_string()).or_default().clone()
    }

    /// Store a small blob whose bytes are in memory, after checking its digest.
    pub fn put_blob(&self, digest: &str, data: &[u8]) -> Result<()> {
        let actual = sha256_digest(data);
        if actual != digest {
            bail!("digest mismatch: expected {digest}, got {actual}");
        }
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        write_atomic(&self.tmp_dir(), &path, data)
    }

    /// Move a verified, synced layer directory (holding `diff/`) into place.
    pub fn commit_layer(&self, tmp_home: &Path, rec: &LayerRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(rec)?;
        fs::write(tmp_home.join("layer.json"), json)?;
        syncfs(tmp_home)?;
        let home = self.layer_home(&rec.diff_id)?;
        if home.exists() {
            // Another pull won the race; ours is a duplicate.
            let _ = fs::remove_dir_all(tmp_home);
            return Ok(());
        }
        fs::rename(tmp_home, &home).with_context(|| format!("storing layer {}", rec.diff_id))?;
        sync_dir(&self.root.join("layers"))?;
        Ok(())
    }

    /// Remember a compressed form of a layer that a push made and where it went, in its
    /// `layer.json` (image records keep the form they were pulled with): the next push of
    /// the layer then knows its digest without compressing it again, and can mount it.
    pub fn record_layer_blob(
        &self,
        diff_id: &str,
        digest: &str,
        media_type: &str,
        compressed_size: u64,
        source: &str,
    ) -> Result<()> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let home = self.layer_home(diff_id)?;
        let mut rec = self
            .layer_record(diff_id)
            .ok_or_else(|| anyhow!("layer {diff_id} is not in the store"))?;
        rec.digest = digest.to_string();
        rec.media_type = media_type.to_string();
        rec.compressed_size = compressed_size;
        rec.source = Some(source.to_string());
        write_atomic(
            &self.tmp_dir(),
            &home.join("layer.json"),
            &serde_json::to_vec_pretty(&rec)?,
        )
    }

    /// The layer's tar stream, exactly as its diff ID names it (see `tarsplit`).
    pub fn layer_tar(&self, diff_id: &str) -> Result<LayerTar> {
        LayerTar::open(&self.layer_home(diff_id)?, diff_id)
    }

    /// Store an image made here (a build step, `commit`, `load`, `import`) from its config and
    /// its layers, already in the store; it has no manifest until it is pushed.
    pub fn commit_local_image(
        &self,
        config_raw: &[u8],
        layers: Vec<LayerRecord>,
        parent: Option<String>,
        tag_keys: &[String],
    ) -> Result<Image> {
        let id = sha256_digest(config_raw);
        self.put_blob(&id, config_raw)?;
        let record = ImageRecord {
            id,
            manifest_digest: String::new(),
            manifest_media_type: String::new(),
            layers,
            stored_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            parent,
        };
        self.commit_image(record, tag_keys, &[])
    }

    /// The images whose parent is `id`.
    pub fn children(&self, id: &str) -> Vec<String> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.images
            .values()
            .filter(|i| i.record.parent.as_deref() == Some(id))
            .map(|i| i.record.id.clone())
            .collect()
    }

    /// Make an image visible (record written) and point `tags`/`digests` at it.
    pub fn commit_image(
        &self,
        record: ImageRecord,
        tag_keys: &[String],
        digest_keys: &[String],
    ) -> Result<Image> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let path = self
            .root
            .join("records")
            .join(format!("{}.json", hex_of(&record.id)?));
        if !path.exists() {
            write_atomic(&self.tmp_dir(), &path, &serde_json::to_vec_pretty(&record)?)?;
        }
        let image = self.load_image(&path)?;
        let mut refs = self.refs_snapshot();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        for t in tag_keys {
            if refs.tags.get(t) != Some(&record.id) {
                refs.tags.insert(t.clone(), record.id.clone());
                refs.last_tag_time.insert(record.id.clone(), now.clone());
            }
        }
        for d in digest_keys {
            refs.digests.insert(d.clone(), record.id.clone());
        }
        // An unchanged re-pull writes nothing.
        if refs != self.refs_snapshot() {
            self.write_refs(&refs)?;
        }
        let mut st = self
            .state
            .write()
            .map_err(|_| anyhow!("store lock poisoned"))?;
        st.images.insert(image.record.id.clone(), image.clone());
        st.refs = refs;
        Ok(image)
    }

    fn refs_snapshot(&self) -> References {
        self.state
            .read()
            .map(|s| s.refs.clone())
            .unwrap_or_default()
    }

    fn write_refs(&self, refs: &References) -> Result<()> {
        write_atomic(
            &self.tmp_dir(),
            &self.root.join("references.json"),
            &serde_json::to_vec_pretty(refs)?,
        )
    }

    pub fn images(&self) -> Vec<Image> {
        self.state
            .read()
            .map(|s| s.images.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn references(&self) -> References {
        self.refs_snapshot()
    }

    pub fn get(&self, id: &str) -> Option<Image> {
        self.state.read().ok()?.images.get(id).cloned()
    }

    /// Tags (`name:tag` keys) pointing at an image.
    pub fn tags_of(&self, id: &str) -> Vec<String> {
        self.refs_snapshot()
            .tags
            .into_iter()
            .filter(|(_, v)| v == id)
            .map(|(k, _)| k)
            .collect()
    }

    pub fn digests_of(&self, id: &str) -> Vec<String> {
        self.refs_snapshot()
            .digests
            .into_iter()
            .filter(|(_, v)| v == id)
            .map(|(k, _)| k)
            .collect()
    }

    /// Find an image by name[:tag], name@digest, full ID or unique ID prefix, as docker does.
    pub fn resolve(&self, name: &str) -> Result<Image, LookupError> {
        let st = self
            .state
            .read()
            .map_err(|_| LookupError::NotFound(name.into()))?;
        let as_id = if name.starts_with("sha256:") {
            name.to_string()
        } else {
            format!("sha256:{name}")
        };
        if let Some(img) = st.images.get(&as_id) {
            return Ok(img.clone());
        }
        if let Ok(r) = ImageRef::parse(name) {
            let id = r
                .digest_key()
                .and_then(|k| st.refs.digests.get(&k))
                .or_else(|| r.tag_key().and_then(|k| st.refs.tags.get(&k)))
                .or_else(|| {
                    // name@digest also matches an image with that manifest digest under any name.
                    r.digest().and_then(|d| {
                        st.images
                            .values()
                            .find(|i| i.record.manifest_digest == d)
                            .map(|i| &i.record.id)
                    })
                });
            if let Some(img) = id.and_then(|id| st.images.get(id)) {
                return Ok(img.clone());
            }
        }
        if looks_like_id(name) {
            let prefix = as_id;
            let found: BTreeSet<&String> = st
                .images
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .collect();
            match found.len() {
                1 => return Ok(st.images[*found.iter().next().expect("one")].clone()),
                0 => {}
                _ => return Err(LookupError::Ambiguous(name.into())),
            }
        }
        Err(LookupError::NotFound(name.into()))
    }

    /// Point a tag at an image.
    pub fn tag(&self, id: &str, tag_key: &str) -> Result<()> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.refs_snapshot();
        refs.tags.insert(tag_key.to_string(), id.to_string());
        refs.last_tag_time.insert(
            id.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        );
        self.write_refs(&refs)?;
        self.state
            .write()
            .map_err(|_| anyhow!("store lock poisoned"))?
            .refs = refs;
        Ok(())
    }

    /// Remove references (tag or digest keys). Returns the ones that existed.
    pub fn untag(&self, keys: &[String]) -> Result<Vec<String>> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.refs_snapshot();
        let mut removed = Vec::new();
        for k in keys {
            if refs.tags.remove(k).is_some() || refs.digests.remove(k).is_some() {
                removed.push(k.clone());
            }
        }
        self.write_refs(&refs)?;
        self.state
            .write()
            .map_err(|_| anyhow!("store lock poisoned"))?
            .refs = refs;
        Ok(removed)
    }

    /// Delete an image with every reference to it, then its layers and blobs that no other
    /// image uses. Returns the diff IDs of the layers removed.
    /// Remove those of `candidates` that no image uses and no operation holds; returns them.
    pub fn remove_unused_layers(&self, candidates: &[String]) -> Result<Vec<String>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_unused_layers_locked(candidates)
    }

    /// `remove_unused_layers` with the commit lock held.
    fn remove_unused_layers_locked(&self, candidates: &[String]) -> Result<Vec<String>> {
        let used: BTreeSet<String> = {
            let st = self
                .state
                .read()
                .map_err(|_| anyhow!("store lock poisoned"))?;
            st.images
                .values()
                .flat_map(|i| i.record.layers.iter().map(|l| l.diff_id.clone()))
                .collect()
        };
        let mut removed = Vec::new();
        for l in candidates {
            if used.contains(l) || removed.contains(l) {
                continue;
            }
            let home = self.layer_home(l)?;
            let doomed = tempfile_in(&self.tmp_dir())?;
            // Move out of sight first (a half-deleted layer must never be visible), and only
            // while no operation holds it.
            let moved = self
                .holds
                .unless_layer_held(l, || fs::rename(&home, &doomed).is_ok());
            if moved == Some(true) {
                let _ = fs::remove_dir_all(&doomed);
                removed.push(l.clone());
            }
        }
        Ok(removed)
    }

    pub fn delete(&self, id: &str) -> Result<Vec<String>> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        if self.holds.image_held(id) {
            bail!("image {id} is in use by a build in progress");
        }
        let mut refs = self.refs_snapshot();
        refs.tags.retain(|_, v| v != id);
        refs.digests.retain(|_, v| v != id);
        refs.last_tag_time.remove(id);
        self.write_refs(&refs)?;
        let removed_img = {
            let mut st = self
                .state
                .write()
                .map_err(|_| anyhow!("store lock poisoned"))?;
            st.refs = refs;
            st.images.remove(id)
        };
        let Some(img) = removed_img else {
            return Ok(vec![]);
        };
        let rec_path = self
            .root
            .join("records")
            .join(format!("{}.json", hex_of(id)?));
        let _ = fs::remove_file(&rec_path);
        sync_dir(&self.root.join("records"))?;

        let used_blobs = {
            let st = self
                .state
                .read()
                .map_err(|_| anyhow!("store lock poisoned"))?;
            let mut blobs = BTreeSet::new();
            for i in st.images.values() {
                blobs.insert(i.record.id.clone());
                blobs.insert(i.record.manifest_digest.clone());
            }
            blobs
        };
        let doomed: Vec<String> = img
            .record
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect();
        let removed = self.remove_unused_layers_locked(&doomed)?;
        for d in [&img.record.id, &img.record.manifest_digest] {
            // An image made here has no manifest.
            if !d.is_empty() && !used_blobs.contains(d) {
                let _ = fs::remove_file(self.blob_path(d)?);
            }
        }
        Ok(removed)
    }
}

impl HoldStore for Store {
    fn holds(&self) -> &Holds {
        &self.holds
    }

    fn released(&self, layers: &[String]) {
        if let Err(e) = self.remove_unused_layers(layers) {
            tracing::warn!("removing layers no image uses: {e:#}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("ambiguous image reference {0:?}: more than one image ID starts with it; give more characters")]
    Ambiguous(String),
}

impl crate::errdefs::Classify for LookupError {
    fn kind(&self) -> crate::errdefs::Kind {
        match self {
            LookupError::NotFound(_) => crate::errdefs::Kind::NotFound,
            LookupError::Ambiguous(_) => crate::errdefs::Kind::InvalidArgument,
        }
    }
}
