//! Pulling an image: resolve the manifest (choosing a platform from an index), fetch the
//! config, then fetch and unpack the missing layers concurrently.
//!
//! Each layer is downloaded and unpacked in one pass: the compressed bytes are written to a
//! temporary blob file and fed to the decompressor and unpacker as they arrive, while both the
//! compressed digest and the uncompressed digest (the diff ID) are computed. Only when both
//! match what the manifest and config promise are the blob and the layer directory renamed into
//! the store; until then nothing of them is visible.

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::ingest::{channel_reader, HashingReader};
use super::model::{
    layer_compression, AnyManifest, Compression, Descriptor, ImageConfig, Platform, MANIFEST_ACCEPT,
};
use super::progress::Progress;
use super::reference::ImageRef;
use super::registry::{fetch_manifest_capped, CappedManifest, RegistryConfig, RegistryError};
use super::store::{hex_of, ImageRecord, LayerRecord, Store};
use super::tarsplit::RECIPE_FILE;
use super::tree::{summarize_tree, TreeSummary};
use super::unpack::unpack_layer_recorded;
use crate::images::holds::Hold;
use crate::images::store::{sync_dir, tempfile_in, Image};

/// Limits that keep a hostile registry from exhausting memory or disk.
#[derive(Debug, Clone)]
pub struct PullLimits {
    pub max_manifest: usize,
    pub max_config: usize,
    /// Largest uncompressed layer accepted (a gzip bomb stops here).
    pub max_layer: u64,
    pub concurrent_layers: usize,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits {
            max_manifest: 4 << 20,
            max_config: 8 << 20,
            max_layer: 64 << 30,
            concurrent_layers: 4,
        }
    }
}

pub struct PullRequest {
    pub reference: ImageRef,
    pub platform: Option<Platform>,
    pub auth: RegistryAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl crate::errdefs::Classify for PullError {
    fn kind(&self) -> crate::errdefs::Kind {
        use crate::errdefs::Kind;
        match self {
            PullError::Registry(RegistryError::NotFound(_)) => Kind::NotFound,
            // As dockerd: a pull refused for lack of credentials is "not found"; a 401 would
            // make the docker CLI stop and prompt for a login on its own.
            PullError::Registry(RegistryError::Unauthorized(_)) => Kind::NotFound,
            PullError::Registry(_) | PullError::Other(_) => Kind::Internal,
        }
    }
}

/// The registry's answer for a name, without pulling it (`registry_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryData {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platforms: Vec<Platform>,
}

pub struct Puller {
    pub store: Arc<Store>,
    pub registries: RegistryConfig,
    pub limits: PullLimits,
}

/// Everything the pull learned about the image before fetching layers.
struct Resolved {
    top_digest: String,
    manifest_digest: String,
    manifest_media_type: String,
    manifest_raw: Bytes,
    manifest: AnyManifest,
}

impl Puller {
    pub async fn pull(&self, req: PullRequest, progress: Progress) -> Result<Image, PullError> {
        let reference = &req.reference;
        let what = named(reference);
        let has_creds = !matches!(req.auth, RegistryAuth::Anonymous);
        let platform = req.platform.clone().unwrap_or_else(Platform::host);
        // Docker Hub's mirrors first, as docker does: a mirror that fails to give the
        // manifest (down, or without the image) passes the pull on to the next source; the
        // last one's failure is the pull's.
        let sources = self.registries.sources(reference.registry());
        let mut found = None;
        for (i, source) in sources.iter().enumerate() {
            match self
                .resolve_at(source, reference, &req.auth, &platform, &what)
                .await
            {
                Ok(r) => {
                    found = Some(r);
                    break;
                }
                Err(e) if i + 1 < sources.len() => {
                    tracing::info!("pull {what}: the mirror {source} did not give it ({e}); trying the next source");
                }
                Err(e) => return Err(e),
            }
        }
        let (registry, client, oci_ref, resolved) =
            found.ok_or_else(|| anyhow!("no source to pull {what} from"))?;

        let tag_label = reference.tag().map(str::to_string).unwrap_or_else(|| {
            reference
                .digest()
                .map(str::to_string)
                .unwrap_or_else(|| "latest".into())
        });
        progress.status_id(
            &tag_label,
            &format!("Pulling from {}", reference.inner.repository()),
        );

        let config_desc = resolved
            .manifest
            .config
            .clone()
            .ok_or_else(|| anyhow!("the manifest of {what} has no config"))?;
        let image_id = config_desc.digest.clone();
        hex_of(&image_id).context("the manifest's config digest")?;

        let tag_keys: Vec<String> = reference.tag_key().into_iter().collect();
        let digest_keys = vec![format!("{}@{}", reference.full_name(), resolved.top_digest)];
        let display = match reference.tag_key() {
            Some(_) => what.clone(),
            None => format!("{}@{}", reference.familiar_name(), resolved.top_digest),
        };

        // The layers this pull finds or stores are held until its image is recorded
        // (`holds.rs`): an `rmi` of another image meanwhile cannot take one from under it.
        let mut hold = Hold::new(&self.store);
        let existing = self.store.get(&image_id).filter(|img| {
            for l in &img.record.layers {
                hold.layer(&l.diff_id);
            }
            // Deleted before the hold took: pulled again below.
            self.store.get(&image_id).is_some()
        });
        // Already have this image: only the references may need to move.
        if let Some(existing) = existing {
            let refs = self.store.references();
            let up_to_date = tag_keys.iter().all(|t| refs.tags.get(t) == Some(&image_id));
            let known = digest_keys
                .iter()
                .all(|d| refs.digests.get(d) == Some(&image_id));
            let img = if up_to_date && known {
                existing
            } else {
                self.store
                    .commit_image(existing.record, &tag_keys, &digest_keys)?
            };
            progress.status(&format!("Digest: {}", resolved.top_digest));
            if up_to_date {
                progress.status(&format!("Status: Image is up to date for {display}"));
            } else {
                progress.status(&format!("Status: Downloaded newer image for {display}"));
            }
            return Ok(img);
        }

        let config_raw = self
            .fetch_config(&client, &oci_ref, &config_desc)
            .await
            .map_err(|e| failure(e, &registry, &format!("config of {what}"), has_creds))?;
        let config: ImageConfig = serde_json::from_slice(&config_raw)
            .with_context(|| format!("the image config of {what} is not valid JSON"))?;
        let layers = resolved.manifest.layers.clone();
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(anyhow!(
                "the image {what} is inconsistent: the manifest lists {} layers but the config {}",
                layers.len(),
                config.rootfs.diff_ids.len()
            )
            .into());
        }
        for l in &layers {
            layer_compression(&l.media_type).with_context(|| format!("layer {}", l.digest))?;
            hex_of(&l.digest).with_context(|| format!("layer {}", l.digest))?;
            if l.size < 0 {
                return Err(anyhow!("layer {} has a negative size", l.digest).into());
            }
        }
        for d in &config.rootfs.diff_ids {
            hex_of(d).context("a diff ID of the image config")?;
        }

        // Announce every layer first, as docker does, then fetch the missing ones.
        let mut missing = Vec::new();
        for diff_id in &config.rootfs.diff_ids {
            hold.layer(diff_id);
        }
        for (desc, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
            let short = short_id(&desc.digest);
            if self.store.layer_home(diff_id)?.exists() {
                progress.layer(&short, "Already exists");
            } else {
                progress.layer(&short, "Pulling fs layer");
                missing.push((desc.clone(), diff_id.clone()));
            }
        }
        let sem = Arc::new(Semaphore::new(self.limits.concurrent_layers.max(1)));
        let fetches = missing.into_iter().map(|(desc, diff_id)| {
            let sem = sem.clone();
            let client = &client;
            let oci_ref = &oci_ref;
            let progress = progress.clone();
            let registry = registry.clone();
            async move {
                let _permit = sem.acquire().await.map_err(|e| anyhow!("{e}"))?;
                self.fetch_layer(client, reference, oci_ref, &desc, &diff_id, &progress)
                    .await
                    .map_err(|e| {
                        failure(e, &registry, &format!("layer {}", desc.digest), has_creds)
                    })
            }
        });
        let results = futures::future::join_all(fetches).await;
        for r in results {
            r?;
        }

        // Every layer is in place: write the blobs the record names, then the record.
        self.store.put_blob(&image_id, &config_raw)?;
        self.store
            .put_blob(&resolved.manifest_digest, &resolved.manifest_raw)?;
        let mut layer_records = Vec::new();
        for (desc, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
            let rec = self
                .store
                .layer_record(diff_id)
                .ok_or_else(|| anyhow!("layer {diff_id} vanished during the pull"))?;
            layer_records.push(LayerRecord {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                compressed_size: desc.size as u64,
                source: Some(reference.full_name()),
                ..rec
            });
        }
        let record = ImageRecord {
            id: image_id,
            manifest_digest: resolved.manifest_digest.clone(),
            manifest_media_type: resolved.manifest_media_type.clone(),
            layers: layer_records,
            stored_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            parent: None,
        };
        let img = self.store.commit_image(record, &tag_keys, &digest_keys)?;
        progress.status(&format!("Digest: {}", resolved.top_digest));
        progress.status(&format!("Status: Downloaded newer image for {display}"));
        Ok(img)
    }

    /// What `GET /distribution/{name}/json` answers, as dockerd does: the descriptor of the
    /// manifest or index the name points at, and the platforms it offers (an index's entries;
    /// a single manifest's config's). Nothing is stored.
    pub async fn registry_data(
        &self,
        reference: &ImageRef,
        auth: &RegistryAuth,
    ) -> Result<RegistryData, PullError> {
        let registry = reference.registry().to_string();
        let has_creds = !matches!(auth, RegistryAuth::Anonymous);
        let what = named(reference);
        let (client, _) = self.registries.client_for(&registry, auth);
        let oci_ref = at_source(reference, &registry);
        let manifest_err = |e| failure(e, &registry, &format!("manifest for {what}"), has_creds);
        let (raw, digest) = self
            .manifest(&client, &oci_ref, auth, &what)
            .await
            .map_err(manifest_err)?;
        let top: AnyManifest = serde_json::from_slice(&raw)
            .with_context(|| format!("the manifest of {what} is malformed"))?;
        let media_type = top
            .media_type
            .clone()
            .unwrap_or_else(|| super::model::MT_OCI_MANIFEST.into());
        let platforms = match (&top.manifests, &top.config) {
            (Some(entries), _) => entries.iter().filter_map(|e| e.platform.clone()).collect(),
            (None, Some(config)) => {
                let raw = self
                    .fetch_config(&client, &oci_ref, config)
                    .await
                    .map_err(|e| failure(e, &registry, &format!("config of {what}"), has_creds))?;
                let v: serde_json::Value = serde_json::from_slice(&raw)
                    .with_context(|| format!("the image config of {what} is not valid JSON"))?;
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                match (field("architecture"), field("os")) {
                    (Some(architecture), Some(os)) => vec![Platform {
                        architecture,
                        os,
                        variant: field("variant"),
                    }],
                    _ => Vec::new(),
                }
            }
            (None, None) => Vec::new(),
        };
        Ok(RegistryData {
            media_type,
            digest,
            size: raw.len() as u64,
            platforms,
        })
    }

    /// Resolve `reference` to a manifest at `source` (its own registry, or a mirror of it):
    /// the source, its client, the reference as that source names it, and the manifest.
    async fn resolve_at(
        &self,
        source: &str,
        reference: &ImageRef,
        auth: &RegistryAuth,
        platform: &Platform,
        what: &str,
    ) -> Result<(String, Client, oci_client::Reference, Resolved), PullError> {
        let (client, fresh) = self.registries.client_for(source, auth);
        let has_creds = !matches!(auth, RegistryAuth::Anonymous);
        let oci_ref = at_source(reference, source);
        let oci_err =
            |e| RegistryError::from_oci(e, source, &format!("manifest for {what}"), has_creds);
        let authenticate = || async {
            client
                .auth(&oci_ref, auth, oci_client::RegistryOperation::Pull)
                .await
                .map_err(oci_err)
        };
        // Credentials are checked up front, so wrong ones fail early; anonymous pulls ask for
        // a token only when the registry answers 401 (a cached client already has one).
        if fresh && has_creds {
            authenticate().await?;
        }
        let mut resolved = self.resolve(&client, &oci_ref, auth, platform, what).await;
        if matches!(
            resolved
                .as_ref()
                .map_err(|e| e.downcast_ref::<oci_client::errors::OciDistributionError>()),
            Err(Some(
                oci_client::errors::OciDistributionError::UnauthorizedError { .. }
            ))
        ) {
            authenticate().await?;
            resolved = self.resolve(&client, &oci_ref, auth, platform, what).await;
        }
        let resolved =
            resolved.map_err(|e| failure(e, source, &format!("manifest for {what}"), has_creds))?;
        Ok((source.to_string(), client, oci_ref, resolved))
    }

    /// One manifest, read up to the size limit (see `fetch_manifest_capped`); when the
    /// registry does not answer it with 2xx, oci-client asks again so that its errors (and the
    /// unauthorized answer the caller retries on) are the ones the user sees.
    async fn manifest(
        &self,
        client: &Client,
        oci_ref: &oci_client::Reference,
        auth: &RegistryAuth,
        what: &str,
    ) -> Result<(Bytes, String)> {
        let limit = self.limits.max_manifest;
        match fetch_manifest_capped(
            &self.registries,
            client,
            oci_ref,
            auth,
            MANIFEST_ACCEPT,
            limit,
            what,
        )
        .await?
        {
            CappedManifest::Got(raw, digest) => Ok((raw, digest)),
            CappedManifest::Unanswered => {
                let (raw, digest) = client
                    .pull_manifest_raw(oci_ref, auth, MANIFEST_ACCEPT)
                    .await?;
                if raw.len() > limit {
                    bail!(
                        "the manifest of {what} is {} bytes, over the {limit} byte limit",
                        raw.len()
                    );
                }
                Ok((raw, digest))
            }
        }
    }

    /// Fetch the manifest; from an index, pick the entry for `platform` and fetch that.
    async fn resolve(
        &self,
        client: &Client,
        oci_ref: &oci_client::Reference,
        auth: &RegistryAuth,
        platform: &Platform,
        what: &str,
    ) -> Result<Resolved> {
        let (raw, top_digest) = self.manifest(client, oci_ref, auth, what).await?;
        let top: AnyManifest = serde_json::from_slice(&raw)
            .with_context(|| format!("the manifest of {what} is malformed"))?;
        if top.schema_version != Some(2) {
            bail!("the manifest of {what} has schema version {:?}; only schema 2 (Docker v2 and OCI) is supported", top.schema_version);
        }
        let Some(entries) = &top.manifests else {
            let mt = top
                .media_type
                .clone()
                .unwrap_or_else(|| super::model::MT_OCI_MANIFEST.into());
            return Ok(Resolved {
                manifest_digest: top_digest.clone(),
                top_digest,
                manifest_media_type: mt,
                manifest_raw: raw,
                manifest: top,
            });
        };
        let chosen = entries
            .iter()
            .find(|e| e.platform.as_ref().map(|p| platform.matches(p)).unwrap_or(false))
            .ok_or_else(|| {
                let offered: Vec<String> = entries
                    .iter()
                    .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                anyhow!(
                    "no matching manifest for {platform} in the manifest list entries of {what} (it offers: {}); choose one with --platform",
                    offered.join(", ")
                )
            })?;
        if chosen.digest == top_digest {
            bail!("the manifest list of {what} points at itself");
        }
        let by_digest = oci_client::Reference::with_digest(
            oci_ref.registry().to_string(),
            oci_ref.repository().to_string(),
            chosen.digest.clone(),
        );
        let (raw, digest) = self
            .manifest(client, &by_digest, auth, &format!("{what} ({platform})"))
            .await?;
        let manifest: AnyManifest = serde_json::from_slice(&raw)
            .with_context(|| format!("the platform manifest of {what} is malformed"))?;
        if manifest.manifests.is_some() {
            bail!("the manifest list of {what} points at another manifest list; nested lists are not supported");
        }
        Ok(Resolved {
            top_digest,
            manifest_digest: digest,
            manifest_media_type: manifest
                .media_type
                .clone()
                .unwrap_or_else(|| chosen.media_type.clone()),
            manifest_raw: raw,
            manifest,
        })
    }

    async fn fetch_config(
        &self,
        client: &Client,
        oci_ref: &oci_client::Reference,
        desc: &Descriptor,
    ) -> Result<Vec<u8>> {
        if let Ok(b) = fs::read(self.store.blob_path(&desc.digest)?) {
            return Ok(b);
        }
        if desc.size < 0 || desc.size as usize > self.limits.max_config {
            bail!(
                "the image config is {} bytes, over the {} byte limit",
                desc.size,
                self.limits.max_config
            );
        }
        let mut buf = Vec::with_capacity(desc.size as usize);
        client
            .pull_blob(oci_ref, &to_oci_desc(desc), &mut buf)
            .await?;
        if buf.len() as i64 != desc.size {
            bail!(
                "the image config has {} bytes, the manifest says {}",
                buf.len(),
                desc.size
            );
        }
        let actual = super::store::sha256_digest(&buf);
        if actual != desc.digest {
            bail!(
                "the image config failed verification: digest {actual}, expected {}",
                desc.digest
            );
        }
        Ok(buf)
    }

    /// Download one layer and unpack it as it arrives; commit both once verified.
    async fn fetch_layer(
        &self,
        client: &Client,
        reference: &ImageRef,
        oci_ref: &oci_client::Reference,
        desc: &Descriptor,
        diff_id: &str,
        progress: &Progress,
    ) -> Result<()> {
        let lock = self.store.layer_lock(diff_id);
        let _guard = lock.lock().await;
        let short = short_id(&desc.digest);
        if self.store.layer_home(diff_id)?.exists() {
            progress.layer(&short, "Already exists");
            return Ok(());
        }
        let compression = layer_compression(&desc.media_type)?;
        let mut attempt = 1;
        let (tmp_home, size, tree) = loop {
            let tmp_home = tempfile_in(&self.store.tmp_dir())?;
            fs::create_dir_all(tmp_home.join("diff"))
                .context("creating the layer's temporary directory")?;
            let result = self
                .download_and_unpack(
                    client,
                    oci_ref,
                    desc,
                    diff_id,
                    compression,
                    &tmp_home,
                    progress,
                    &short,
                )
                .await;
            match result {
                Ok((size, tree)) => break (tmp_home, size, tree),
                Err(e) => {
                    let _ = fs::remove_dir_all(&tmp_home);
                    if attempt >= LAYER_ATTEMPTS || !transient(&e) {
                        return Err(e);
                    }
                    let wait = RETRY_BACKOFF * (1 << (attempt - 1));
                    tracing::warn!("layer {}: attempt {attempt} failed: {e:#}", desc.digest);
                    progress.layer(
                        &short,
                        &format!("Retrying in {} seconds", wait.as_secs().max(1)),
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        };
        let rec = LayerRecord {
            diff_id: diff_id.to_string(),
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            compressed_size: desc.size as u64,
            size,
            tree: Some(tree),
            source: Some(reference.full_name()),
        };
        if let Err(e) = self.store.commit_layer(&tmp_home, &rec) {
            let _ = fs::remove_dir_all(&tmp_home);
            return Err(e);
        }
        sync_dir(
            &self
                .store
                .blob_path(&desc.digest)?
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default(),
        )?;
        progress.layer(&short, "Pull complete");
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn download_and_unpack(
        &self,
        client: &Client,
        oci_ref: &oci_client::Reference,
        desc: &Descriptor,
        diff_id: &str,
        compression: Compression,
        tmp_home: &std::path::Path,
        progress: &Progress,
        short: &str,
    ) -> Result<(u64, TreeSummary)> {
        let total = desc.size as u64;
        let (unpack_tx, mut input) = channel_reader(32);
        let dest = tmp_home.join("diff");
        let recipe = tmp_home.join(RECIPE_FILE);
        let layer_name = desc.digest.clone();
        let max_layer = self.limits.max_layer;
        let unpacker = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
            let (diff, size) = {
                let decoded: Box<dyn Read + '_> = match compression {
                    Compression::None => Box::new(&mut input),
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                        BufReader::with_capacity(1 << 16, &mut input),
                    )),
                    Compression::Zstd => Box::new(
                        zstd::stream::read::Decoder::new(&mut input).context("starting zstd")?,
                    ),
                };
                let mut hashing = HashingReader::new(decoded, max_layer);
                // Reads the stream to its end: the diff ID covers the padding after the end
                // marker too.
                let (stats, _) = unpack_layer_recorded(&mut hashing, &dest, &layer_name, &recipe)?;
                (hashing.digest(), stats.size)
            };
            io::copy(&mut input, &mut io::sink())?;
            Ok((diff, size))
        });

        // The download runs in its own block so that, whatever it ends with, the sender is
        // dropped and the unpacker finished before the temporary files are touched again.
        let download = async {
            let mut stream = client.pull_blob_stream(oci_ref, &to_oci_desc(desc)).await?;
            let mut received: u64 = 0;
            let mut hasher = Sha256::new();
            let mut last = Instant::now();
            progress.bytes(short, "Downloading", 0, total);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| stream_error(e, &desc.digest))?;
                received += chunk.len() as u64;
                if received > total {
                    bail!("layer {}: the registry sent more than the {total} bytes the manifest promises", desc.digest);
                }
                // The compressed digest is checked here, on the way; the compressed blob is not
                // kept (as docker's overlay2 store): the unpacked layer is what is used.
                hasher.update(&chunk);
                if unpack_tx.send(chunk).await.is_err() {
                    // The unpacker stopped early: its error says why.
                    return Ok((true, String::new(), received));
                }
                if last.elapsed() > Duration::from_millis(100) {
                    progress.bytes(short, "Downloading", received, total);
                    last = Instant::now();
                }
            }
            progress.bytes(short, "Downloading", received, total);
            Ok((
                false,
                format!("sha256:{}", hex::encode(hasher.finalize())),
                received,
            ))
        };
        let downloaded: Result<(bool, String, u64)> = download.await;
        drop(unpack_tx);
        let unpacked = unpacker
            .await
            .map_err(|e| anyhow!("unpacker task failed: {e}"));
        let (send_failed, digest, compressed) = downloaded?;
        let (diff_digest, size) = unpacked??;
        let unpacked = Unpacked {
            digest,
            compressed,
            diff_digest,
            size,
        };
        if send_failed {
            bail!(
                "layer {}: unpacking stopped before the download ended",
                desc.digest
            );
        }
        if unpacked.compressed != total {
            bail!(
                "layer {}: download truncated: got {} of {total} bytes; pull again",
                desc.digest,
                unpacked.compressed
            );
        }
        if unpacked.digest != desc.digest {
            bail!(
                "layer {}: digest mismatch: the registry sent content with digest {}; the blob is corrupt in the registry",
                desc.digest,
                unpacked.digest
            );
        }
        progress.layer(short, "Verifying Checksum");
        progress.layer(short, "Download complete");
        if unpacked.diff_digest != diff_id {
            bail!(
                "layer {}: unpacked content has digest {}, but the image config says {diff_id}",
                desc.digest,
                unpacked.diff_digest
            );
        }
        progress.layer(short, "Extracting");
        let tree_dir = tmp_home.join("diff");
        let tree = tokio::task::spawn_blocking(move || summarize_tree(&tree_dir))
            .await
            .map_err(|e| anyhow!("summarising layer {}: {e}", desc.digest))?
            .with_context(|| format!("layer {}: summarising the unpacked tree", desc.digest))?;
        Ok((unpacked.size, tree))
    }
}

struct Unpacked {
    digest: String,
    compressed: u64,
    diff_digest: String,
    size: u64,
}

/// A registry client's error in the user's words; anything else as it is.
fn failure(e: anyhow::Error, registry: &str, what: &str, has_creds: bool) -> PullError {
    match e.downcast::<oci_client::errors::OciDistributionError>() {
        Ok(oe) => PullError::Registry(RegistryError::from_oci(oe, registry, what, has_creds)),
        Err(e) => PullError::Other(e),
    }
}

/// oci-client checks the digest itself at the end of a blob stream; say what that means.
/// Attempts at one layer when the registry fails in a way that may pass. docker makes 5 with
/// a fixed 5 s wait; three with 1 s and then 2 s between ride out a registry restarting or a
/// proxy's hiccup without keeping a user with a broken registry waiting for half a minute.
const LAYER_ATTEMPTS: u32 = 3;
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// A failure worth another attempt: a 5xx or 429 answer, a connection that failed or broke off
/// mid-blob. Not a 4xx, a digest mismatch, or a layer refused for its content.
fn transient(e: &anyhow::Error) -> bool {
    use oci_client::errors::OciDistributionError as E;
    for cause in e.chain() {
        if let Some(oe) = cause.downcast_ref::<E>() {
            return match oe {
                E::ServerError { code, .. } => *code >= 500 || *code == 429,
                E::RequestError(_) => true,
                _ => false,
            };
        }
        if cause.downcast_ref::<reqwest::Error>().is_some() {
            return true;
        }
    }
    let text = format!("{e:#}");
    text.contains("the download broke off") || text.contains("download truncated")
}

fn stream_error(e: io::Error, digest: &str) -> anyhow::Error {
    use oci_client::errors::DigestError;
    match e.get_ref().and_then(|i| i.downcast_ref::<DigestError>()) {
        Some(DigestError::VerificationError { actual, .. }) => anyhow!(
            "layer {digest}: digest mismatch: the registry sent content with digest {actual}; the blob is corrupt in the registry"
        ),
        _ => anyhow!("layer {digest}: the download broke off (truncated or interrupted): {e}; pull again"),
    }
}

/// The image as messages name it: familiar name with its digest, or its tag (`latest` when
/// none was written).
fn named(r: &ImageRef) -> String {
    match (r.tag(), r.digest()) {
        (_, Some(d)) => format!("{}@{d}", r.familiar_name()),
        (t, None) => format!("{}:{}", r.familiar_name(), t.unwrap_or("latest")),
    }
}

fn short_id(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// The reference as `source` names it (the registry itself, or a mirror holding the same
/// repository), with docker's default tag.
fn at_source(r: &ImageRef, source: &str) -> oci_client::Reference {
    let repository = r.inner.repository().to_string();
    match (r.inner.tag(), r.inner.digest()) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            source.into(),
            repository,
            t.into(),
            d.into(),
        ),
        (None, Some(d)) => oci_client::Reference::with_digest(source.into(), repository, d.into()),
        (t, None) => {
            oci_client::Reference::with_tag(source.into(), repository, t.unwrap_or("latest").into())
        }
    }
}

fn to_oci_desc(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
    }
}
