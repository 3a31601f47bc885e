//! Pushing an image to a registry, as dockerd does: each layer is found in the target
//! repository already (`Layer already exists`), mounted from another repository of the same
//! registry that holds it (`Mounted from …`), or uploaded; then the config and the manifest.
//!
//! The store keeps layers unpacked, not their compressed blobs. A layer is uploaded by
//! rebuilding its exact tar stream (`Store::layer_tar`) and compressing it anew: a pulled
//! layer then goes out under a new digest (gzip by another compressor gives other bytes), and
//! its image under a new manifest, as with docker. A pulled image whose layers all go out
//! under their original digests is pushed with its original manifest, so its digest stays.
//!
//! Nothing of the store changes until a tag's manifest is accepted; then the compressed forms
//! the push made are remembered in their layers' `layer.json` (so the next push knows their
//! digests and where to mount them from) and `repo@digest` joins the image's references.

use std::fs;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::blockgzip;
use super::model::{layer_compression, Compression, MT_DOCKER_MANIFEST};
use super::progress::Progress;
use super::reference::{split_tag_key, ImageRef};
use super::registry::{OwnAuth, RegistryConfig};
use super::store::{sha256_digest, Image, LayerRecord, Store};
use super::tarsplit::LayerTar;

pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The registry's refusal or failure, worded as docker words it.
    #[error("{0}")]
    Registry(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl crate::errdefs::Classify for PushError {
    fn kind(&self) -> crate::errdefs::Kind {
        use crate::errdefs::Kind;
        match self {
            PushError::NotFound(_) => Kind::NotFound,
            PushError::InvalidArgument(_) => Kind::InvalidArgument,
            PushError::Registry(_) | PushError::Internal(_) => Kind::Internal,
        }
    }
}

pub struct PushRequest {
    /// The repository, with a tag when one was named.
    pub reference: ImageRef,
    /// Push every tag of the repository (docker's push without a tag).
    pub all_tags: bool,
    pub auth: RegistryAuth,
}

pub struct Pusher {
    pub store: Arc<Store>,
    pub registries: RegistryConfig,
    pub concurrent_layers: usize,
}

/// A compressed (or plain) form of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A form of a layer known before the push, and the repository known to hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub blob: Blob,
    pub source: Option<String>,
}

/// The tags to push, each with its image ID, in docker's order (by name). `reference` names a
/// repository, with a tag unless `all_tags`.
pub fn push_targets(
    store: &Store,
    reference: &ImageRef,
    all_tags: bool,
) -> Result<Vec<(String, String)>, PushError> {
    if reference.digest().is_some() {
        return Err(PushError::InvalidArgument(
            "cannot push a digest reference".into(),
        ));
    }
    let missing = || {
        PushError::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        ))
    };
    let refs = store.references();
    if !all_tags {
        let key = reference.tag_key().ok_or_else(missing)?;
        let id = refs.tags.get(&key).ok_or_else(missing)?;
        let (_, tag) = split_tag_key(&key);
        return Ok(vec![(tag.to_string(), id.clone())]);
    }
    let name = reference.full_name();
    let found: Vec<(String, String)> = refs
        .tags
        .iter()
        .filter_map(|(key, id)| {
            let (n, tag) = split_tag_key(key);
            (n == name).then(|| (tag.to_string(), id.clone()))
        })
        .collect();
    if found.is_empty() {
        return Err(missing());
    }
    Ok(found)
}

/// The repository (path on the registry) a blob can be mounted from, when `source`
/// (`registry/repo`) is another repository of the target's registry.
pub fn mount_source(source: &str, registry: &str, repository: &str) -> Option<String> {
    let (reg, repo) = source.split_once('/')?;
    (reg == registry && repo != repository && !repo.is_empty()).then(|| repo.to_string())
}

/// The forms of a layer known before pushing it: the one the image was pulled with (its
/// record), then the one a push made (`layer.json`), without repeats or empty ones.
pub fn known_forms(in_image: &LayerRecord, in_store: Option<&LayerRecord>) -> Vec<Known> {
    let mut out: Vec<Known> = Vec::new();
    for r in std::iter::once(in_image).chain(in_store) {
        if r.digest.is_empty() || out.iter().any(|k| k.blob.digest == r.digest) {
            continue;
        }
        out.push(Known {
            blob: Blob {
                digest: r.digest.clone(),
                media_type: r.media_type.clone(),
                size: r.compressed_size,
            },
            source: r.source.clone(),
        });
    }
    out
}

/// The blobs to try mounting, with the repository to mount each from.
pub fn mount_candidates(known: &[Known], registry: &str, repository: &str) -> Vec<(Blob, String)> {
    known
        .iter()
        .filter_map(|k| {
            let from = mount_source(k.source.as_deref()?, registry, repository)?;
            Some((k.blob.clone(), from))
        })
        .collect()
}

/// Whether the image's own manifest can be pushed: it has one, and every layer went out
/// under the digest that manifest lists.
pub fn keeps_manifest(image_layers: &[LayerRecord], manifest_digest: &str, sent: &[Blob]) -> bool {
    !manifest_digest.is_empty()
        && image_layers.len() == sent.len()
        && image_layers
            .iter()
            .zip(sent)
            .all(|(l, b)| l.digest == b.digest)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDescriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DockerManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: ManifestDescriptor<'a>,
    layers: Vec<ManifestDescriptor<'a>>,
}

/// A Docker schema 2 manifest, serialised as docker's distribution library does
/// (`json.MarshalIndent` with three spaces, fields in its order), so that the same image
/// pushed by docker and by skiff has the same manifest digest.
pub fn docker_manifest(config_digest: &str, config_size: u64, layers: &[Blob]) -> Vec<u8> {
    let m = DockerManifest {
        schema_version: 2,
        media_type: MT_DOCKER_MANIFEST,
        config: ManifestDescriptor {
            media_type: MT_DOCKER_CONFIG,
            size: config_size,
            digest: config_digest,
        },
        layers: layers
            .iter()
            .map(|b| ManifestDescriptor {
                media_type: &b.media_type,
                size: b.size,
                digest: &b.digest,
            })
            .collect(),
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising plain strings and numbers into a Vec cannot fail.
    let _ = m.serialize(&mut ser);
    out
}

/// The media type a docker manifest gives a layer sent in `media_type`: docker names every
/// gzip layer with its own type.
fn docker_layer_type(media_type: &str) -> String {
    match layer_compression(media_type) {
        Ok(Compression::Gzip) => MT_DOCKER_LAYER_GZIP.into(),
        Ok(Compression::None) => MT_DOCKER_LAYER_TAR.into(),
        _ => media_type.into(),
    }
}

/// A registry error body (`{"errors":[{"code":…,"message":…}]}`) as docker's errcode prints
/// it: `unauthorized: authentication required`.
pub fn registry_words(status: u16, body: &str) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let entries = serde_json::from_str::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default();
    let words: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.code.to_ascii_lowercase().replace('_', " "),
                e.message
            )
        })
        .collect();
    match words.len() {
        0 => match status {
            401 => "unauthorized: authentication required".into(),
            403 => "denied: requested access to the resource is denied".into(),
            _ => format!(
                "received unexpected HTTP status: {status} {}",
                hyper::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
            )
            .trim_end()
            .to_string(),
        },
        1 => words[0].clone(),
        _ => format!("errors:\n{}\n", words.join("\n")),
    }
}

/// Go's words for a request that failed before an answer: `Get "http://…/v2/": dial tcp
/// 127.0.0.1:5999: connect: connection refused`.
fn request_words(method: &str, url: &str, host: &str, e: &reqwest::Error) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let cause = match cur.downcast_ref::<io::Error>().map(io::Error::kind) {
        Some(io::ErrorKind::ConnectionRefused) => "connect: connection refused".to_string(),
        _ => cur.to_string(),
    };
    if e.is_connect() {
        format!("{method} \"{url}\": dial tcp {host}: {cause}")
    } else if e.is_timeout() {
        format!("{method} \"{url}\": net/http: timeout awaiting response headers")
    } else {
        format!("{method} \"{url}\": {cause}")
    }
}

/// An oci-client error in docker's words.
fn oci_words(e: &OciDistributionError, registry: &str) -> String {
    use OciDistributionError as E;
    match e {
        E::ServerError { code, message, .. } => registry_words(*code, message),
        E::RegistryError { envelope, .. } => {
            let body = json!({ "errors": envelope.errors.iter().map(|x| json!({
                "code": serde_json::to_value(&x.code).unwrap_or_default(),
                "message": x.message,
            })).collect::<Vec<_>>() });
            registry_words(0, &body.to_string())
        }
        E::UnauthorizedError { .. } => "unauthorized: authentication required".into(),
        E::AuthenticationFailure(body) => {
            let w = registry_words(401, body);
            if w.starts_with("unauthorized") || w.starts_with("denied") {
                w
            } else {
                format!("unauthorized: {}", body.trim())
            }
        }
        E::RequestError(re) => match re.status().map(|s| s.as_u16()) {
            Some(code) => registry_words(code, ""),
            None => {
                let url = re.url().map(|u| u.to_string()).unwrap_or_default();
                request_words("Post", &url, registry, re)
            }
        },
        other => other.to_string(),
    }
}

/// One registry session for one repository: the client, and what the first `/v2/` answer
/// said.
struct Session {
    client: Client,
    registry: String,
    repository: String,
    /// The repository's reference for blob requests (the tag does not matter there).
    target: oci_client::Reference,
    /// The registry wants basic credentials and none were given: docker's client refuses
    /// its first request to it, after announcing the layers.
    no_basic_credentials: bool,
    /// For the requests of our own (uploads): the client, the registry's `/v2/` URL, and how
    /// to authenticate.
    http: reqwest::Client,
    base: String,
    auth: OwnAuth,
}

impl Session {
    /// One request of our own to the registry (`method` in Go's spelling, for docker's error
    /// words), authenticated: the answer when it has the status `want`, else the registry's
    /// words.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        url: &str,
        want: reqwest::StatusCode,
    ) -> Result<reqwest::Response, PushError> {
        let res = self
            .auth
            .apply(req)
            .send()
            .await
            .map_err(|e| PushError::Registry(request_words(method, url, &self.registry, &e)))?;
        if res.status() == want {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        Err(PushError::Registry(registry_words(status, &body)))
    }
}

/// Where a layer's blob goes as it is made: hashed, counted, and handed to the upload. A
/// refused hand-over means the upload has ended (the registry failed it); the producer then
/// stops without an error of its own.
struct BlobSink {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    hasher: Sha256,
    size: u64,
    stopped: bool,
}

impl BlobSink {
    fn emit(&mut self, piece: Vec<u8>) -> io::Result<()> {
        self.hasher.update(&piece);
        self.size += piece.len() as u64;
        if self.tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
            self.stopped = true;
            return Err(io::Error::other("the upload ended"));
        }
        Ok(())
    }
}

/// A layer's tar stream, reporting docker's `Pushing` progress as it is read: dockerd counts
/// the uncompressed bytes read against the layer's size, and so does this.
struct ProgressReader<R> {
    inner: R,
    read: u64,
    total: u64,
    last: Instant,
    progress: Progress,
    short: String,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.last.elapsed() > Duration::from_millis(100) || (n > 0 && self.read == self.total) {
            self.progress
                .bytes(&self.short, "Pushing", self.read, self.total);
            self.last = Instant::now();
        }
        Ok(n)
    }
}

/// Threads compressing one layer: every core, up to four (a registry nearby takes a layer
/// about as fast as four cores of the fastest deflate make it).
fn compress_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// Rebuild a layer's tar stream and hand it to `sink`, gzip-compressed (`blockgzip`) or as
/// it is. `None` when the upload ended first.
fn produce_blob(
    store: &Store,
    diff_id: &str,
    gzip: bool,
    mut sink: BlobSink,
    progress: Progress,
    short: String,
) -> anyhow::Result<Option<Blob>> {
    let total = LayerTar::stream_len(&store.layer_home(diff_id)?, diff_id)?;
    progress.bytes(&short, "Pushing", 0, total);
    let tar = ProgressReader {
        inner: store.layer_tar(diff_id)?,
        read: 0,
        total,
        last: Instant::now(),
        progress,
        short,
    };
    let made = if gzip {
        blockgzip::compress(tar, compress_workers(), |piece| sink.emit(piece)).map(|_| ())
    } else {
        copy_in_pieces(tar, |piece| sink.emit(piece))
    };
    if let Err(e) = made {
        if sink.stopped {
            return Ok(None);
        }
        // The upload must not end as a whole blob: the registry would keep what it got.
        let _ = sink
            .tx
            .blocking_send(Err(io::Error::other(format!("layer {diff_id}: {e}"))));
        return Err(e).with_context(|| format!("reading layer {diff_id}"));
    }
    Ok(Some(Blob {
        digest: format!("sha256:{}", hex::encode(sink.hasher.finalize())),
        media_type: if gzip {
            MT_DOCKER_LAYER_GZIP.into()
        } else {
            MT_DOCKER_LAYER_TAR.into()
        },
        size: sink.size,
    }))
}

/// A plain tar goes out in `blockgzip::BLOCK` pieces, as the compressed form does.
fn copy_in_pieces(
    mut r: impl Read,
    mut emit: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        let mut buf = Vec::with_capacity(blockgzip::BLOCK);
        let n = (&mut r)
            .take(blockgzip::BLOCK as u64)
            .read_to_end(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        emit(buf)?;
    }
}

fn short_id(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// The absolute URL of the upload a response's `Location` names (registries may give it
/// relative to the request).
fn upload_location(request: &str, res: reqwest::Response) -> Result<url::Url, PushError> {
    let header = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            PushError::Registry("the registry's answer has no upload location".into())
        })?;
    let base = url::Url::parse(request).map_err(|e| anyhow!("{request}: {e}"))?;
    let url = base.join(header).map_err(|e| {
        PushError::Registry(format!("the registry's upload location {header:?}: {e}"))
    })?;
    Ok(url)
}

impl Pusher {
    /// Push the tags `req` names. An image that is not here fails before any progress (the
    /// API answers 404 then); everything after is reported on `progress` and in the error.
    pub async fn push(&self, req: PushRequest, progress: Progress) -> Result<(), PushError> {
        let targets = push_targets(&self.store, &req.reference, req.all_tags)?;
        let repo = &req.reference;
        progress.status(&format!(
            "The push refers to repository [{}]",
            repo.full_name()
        ));
        let session = self.session(repo, &req.auth).await?;
        for (tag, id) in targets {
            let img = self.store.get(&id).ok_or_else(|| {
                PushError::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    repo.familiar_name()
                ))
            })?;
            self.push_tag(&session, repo, &tag, &img, &progress).await?;
        }
        Ok(())
    }

    /// The client for the target registry, authenticated for pushing and for the existence
    /// checks (oci-client keeps a token per operation).
    async fn session(&self, repo: &ImageRef, auth: &RegistryAuth) -> Result<Session, PushError> {
        let registry = repo.registry().to_string();
        let repository = repo.inner.repository().to_string();
        let no_basic_credentials = self.ping(&registry, auth).await?;
        let (client, _) = self.registries.client_for(&registry, auth);
        let target =
            oci_client::Reference::with_tag(registry.clone(), repository.clone(), "latest".into());
        let mut token = None;
        for op in [RegistryOperation::Pull, RegistryOperation::Push] {
            token = client
                .auth(&target, auth, op)
                .await
                .map_err(|e| PushError::Registry(oci_words(&e, &registry)))?;
        }
        let own_auth = OwnAuth::new(token, auth);
        let (base, http) = super::registry::transfer_client(&self.registries, &registry)?;
        Ok(Session {
            client,
            registry,
            repository,
            target,
            no_basic_credentials,
            http,
            base,
            auth: own_auth,
        })
    }

    /// `GET /v2/` of our own, as docker's first request: oci-client's challenge flow does not
    /// say when a registry wants basic credentials that were not given (true then: docker
    /// refuses to send anything, `no basic auth credentials`), and its connection errors are
    /// not in docker's words.
    async fn ping(&self, registry: &str, auth: &RegistryAuth) -> Result<bool, PushError> {
        let (url, client) = super::registry::probe_client(&self.registries, registry)?;
        let res = client
            .get(&url)
            .send()
            .await
            .map_err(|e| PushError::Registry(request_words("Get", &url, registry, &e)))?;
        let status = res.status().as_u16();
        let basic = res
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.to_ascii_lowercase().starts_with("basic"));
        if status == 502 {
            // In skiff's VM: the host's proxy could not reach the registry.
            let body = res.text().await.unwrap_or_default();
            if body.starts_with(skiff_common::vsock::EGRESS_UNREACHABLE) {
                let err = super::registry::RegistryError::from_oci(
                    OciDistributionError::ServerError {
                        code: 502,
                        url: url.clone(),
                        message: body,
                    },
                    registry,
                    "the push",
                    false,
                );
                return Err(PushError::Registry(err.to_string()));
            }
        }
        Ok(status == 401 && basic && matches!(auth, RegistryAuth::Anonymous))
    }

    async fn push_tag(
        &self,
        s: &Session,
        repo: &ImageRef,
        tag: &str,
        img: &Image,
        progress: &Progress,
    ) -> Result<(), PushError> {
        let layers = &img.record.layers;
        // Top layer first, as docker lists them.
        for l in layers.iter().rev() {
            progress.layer(&short_id(&l.diff_id), "Preparing");
        }
        if s.no_basic_credentials {
            return Err(PushError::Registry("no basic auth credentials".into()));
        }
        let sem = Arc::new(Semaphore::new(self.concurrent_layers.max(1)));
        let jobs = layers.iter().enumerate().rev().map(|(i, l)| {
            let sem = sem.clone();
            async move {
                let short = short_id(&l.diff_id);
                let _permit = match sem.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        progress.layer(&short, "Waiting");
                        sem.acquire_owned()
                            .await
                            .map_err(|e| anyhow!("waiting for an upload slot: {e}"))?
                    }
                };
                let (blob, made) = self.push_layer(s, l, progress, &short).await?;
                Ok::<_, PushError>((i, blob, made))
            }
        });
        let mut sent: Vec<(usize, Blob, bool)> = futures::future::try_join_all(jobs).await?;
        sent.sort_by_key(|(i, _, _)| *i);
        // The forms made here are remembered only once the tag is pushed: a push cut short
        // leaves the store as it was.
        let made: Vec<(String, Blob)> = sent
            .iter()
            .filter(|(_, _, made)| *made)
            .map(|(i, b, _)| (layers[*i].diff_id.clone(), b.clone()))
            .collect();
        let sent: Vec<Blob> = sent.into_iter().map(|(_, b, _)| b).collect();

        self.ensure_config(s, img).await?;

        let (body, media_type) = if keeps_manifest(layers, &img.record.manifest_digest, &sent) {
            let raw = fs::read(self.store.blob_path(&img.record.manifest_digest)?)
                .with_context(|| format!("reading the manifest {}", img.record.manifest_digest))?;
            (raw, img.record.manifest_media_type.clone())
        } else {
            let layers: Vec<Blob> = sent
                .iter()
                .map(|b| Blob {
                    media_type: docker_layer_type(&b.media_type),
                    ..b.clone()
                })
                .collect();
            (
                docker_manifest(&img.record.id, img.config_raw.len() as u64, &layers),
                MT_DOCKER_MANIFEST.to_string(),
            )
        };
        let digest = sha256_digest(&body);
        let size = body.len();
        let tag_ref = oci_client::Reference::with_tag(
            s.registry.clone(),
            s.repository.clone(),
            tag.to_string(),
        );
        let content_type = reqwest::header::HeaderValue::from_str(&media_type)
            .map_err(|e| anyhow!("the manifest media type {media_type:?}: {e}"))?;
        s.client
            .push_manifest_raw(&tag_ref, body, content_type)
            .await
            .map_err(|e| PushError::Registry(oci_words(&e, &s.registry)))?;
        for (diff_id, blob) in &made {
            self.store.record_layer_blob(
                diff_id,
                &blob.digest,
                &blob.media_type,
                blob.size,
                &format!("{}/{}", s.registry, s.repository),
            )?;
        }
        self.store.commit_image(
            img.record.clone(),
            &[],
            &[format!("{}@{digest}", repo.full_name())],
        )?;
        progress.status(&format!("{tag}: digest: {digest} size: {size}"));
        progress.aux(json!({ "Tag": tag, "Digest": digest, "Size": size }));
        Ok(())
    }

    /// A HEAD of the blob in the target repository; a failed check counts as absent (as in
    /// docker: the upload that follows reports what is wrong).
    async fn exists(&self, s: &Session, digest: &str) -> bool {
        match s.client.blob_exists(&s.target, digest).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("push: HEAD {digest} in {}: {e}", s.repository);
                false
            }
        }
    }

    async fn push_layer(
        &self,
        s: &Session,
        layer: &LayerRecord,
        progress: &Progress,
        short: &str,
    ) -> Result<(Blob, bool), PushError> {
        let in_store = self.store.layer_record(&layer.diff_id);
        let known = known_forms(layer, in_store.as_ref());
        for k in &known {
            if self.exists(s, &k.blob.digest).await {
                progress.layer(short, "Layer already exists");
                return Ok((k.blob.clone(), false));
            }
        }
        for (blob, from) in mount_candidates(&known, &s.registry, &s.repository) {
            let source = oci_client::Reference::with_digest(
                s.registry.clone(),
                from.clone(),
                blob.digest.clone(),
            );
            // A registry that cannot mount answers 202 and opens an upload instead, which
            // oci-client reports as an error; the upload below goes its own way.
            match s.client.mount_blob(&s.target, &source, &blob.digest).await {
                Ok(()) => {
                    progress.layer(short, &format!("Mounted from {from}"));
                    return Ok((blob, false));
                }
                Err(e) => tracing::debug!("push: mounting {} from {from}: {e}", blob.digest),
            }
        }

        // Upload. A plain-tar form rebuilds byte for byte; anything else is compressed anew.
        // The blob is streamed as it is made, so its digest is known only at the end: a
        // registry that already holds these very bytes gets them again (a push records the
        // form it made, so the next one finds it with the checks above).
        let plain = known.iter().any(|k| {
            k.blob.digest == layer.diff_id
                && matches!(layer_compression(&k.blob.media_type), Ok(Compression::None))
        });
        let blob = self
            .stream_upload(s, &layer.diff_id, !plain, progress, short)
            .await?;
        progress.layer(short, "Pushed");
        tracing::debug!("push: layer {} pushed as {}", layer.diff_id, blob.digest);
        Ok((blob, true))
    }

    /// Send a layer's blob while it is made: a `POST` opens the upload, one `PATCH` carries
    /// the blob as the compressor gives it, and a `PUT` with the digest, known only then,
    /// closes it. oci-client's streamed push sends each piece in a `PATCH` of its own and
    /// waits for each answer; a registry nearby takes one long request much faster.
    async fn stream_upload(
        &self,
        s: &Session,
        diff_id: &str,
        gzip: bool,
        progress: &Progress,
        short: &str,
    ) -> Result<Blob, PushError> {
        // A few pieces in flight: enough that the compressor never waits on the network.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let sink = BlobSink {
            tx,
            hasher: Sha256::new(),
            size: 0,
            stopped: false,
        };
        let (store, diff, progress2, short2) = (
            self.store.clone(),
            diff_id.to_string(),
            progress.clone(),
            short.to_string(),
        );
        let producer = tokio::task::spawn_blocking(move || {
            produce_blob(&store, &diff, gzip, sink, progress2, short2)
        });
        let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let sent = self.send_body(s, reqwest::Body::wrap_stream(body)).await;
        // The layer's own failure (a damaged layer) says more than the request it cut short.
        let made = producer
            .await
            .map_err(|e| anyhow!("compressing layer {diff_id}: {e}"))??;
        let mut url = sent?;
        let blob = made.ok_or_else(|| anyhow!("layer {diff_id}: the upload ended early"))?;
        url.query_pairs_mut().append_pair("digest", &blob.digest);
        let put = s.http.put(url.as_str());
        s.send(
            put.header(reqwest::header::CONTENT_LENGTH, 0),
            "Put",
            url.as_str(),
            reqwest::StatusCode::CREATED,
        )
        .await?;
        Ok(blob)
    }

    /// Open an upload and send `body` in one `PATCH`; the location to close it at.
    async fn send_body(&self, s: &Session, body: reqwest::Body) -> Result<url::Url, PushError> {
        let start = format!("{}{}/blobs/uploads/", s.base, s.repository);
        let post = s.http.post(&start);
        let opened = s
            .send(
                post.header(reqwest::header::CONTENT_LENGTH, 0),
                "Post",
                &start,
                reqwest::StatusCode::ACCEPTED,
            )
            .await?;
        let location = upload_location(&start, opened)?;
        let patch = s.http.patch(location.as_str());
        let sent = s
            .send(
                patch
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body),
                "Patch",
                location.as_str(),
                reqwest::StatusCode::ACCEPTED,
            )
            .await?;
        upload_location(location.as_str(), sent)
    }

    async fn ensure_config(&self, s: &Session, img: &Image) -> Result<(), PushError> {
        if self.exists(s, &img.record.id).await {
            return Ok(());
        }
        s.client
            .push_blob(&s.target, img.config_raw.as_ref().clone(), &img.record.id)
            .await
            .map_err(|e| PushError::Registry(oci_words(&e, &s.registry)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(diff: &str, digest: &str, source: Option<&str>) -> LayerRecord {
        LayerRecord {
            diff_id: diff.into(),
            digest: digest.into(),
            media_type: if digest.is_empty() {
                String::new()
            } else {
                "application/vnd.oci.image.layer.v1.tar+gzip".into()
            },
            compressed_size: 10,
            size: 20,
            tree: None,
            source: source.map(String::from),
        }
    }

    #[test]
    fn mounts_only_from_another_repository_of_the_same_registry() {
        let reg = "127.0.0.1:5000";
        assert_eq!(
            mount_source("127.0.0.1:5000/busybox", reg, "mine"),
            Some("busybox".into())
        );
        assert_eq!(
            mount_source("127.0.0.1:5000/team/app", reg, "mine"),
            Some("team/app".into())
        );
        assert_eq!(mount_source("127.0.0.1:5000/mine", reg, "mine"), None);
        assert_eq!(mount_source("127.0.0.1:5001/busybox", reg, "mine"), None);
        assert_eq!(mount_source("docker.io/library/busybox", reg, "mine"), None);
        assert_eq!(mount_source("nonsense", reg, "mine"), None);
    }

    #[test]
    fn known_forms_come_from_the_image_then_the_store() {
        let pulled = layer("sha256:d", "sha256:a", Some("127.0.0.1:5000/busybox"));
        let pushed = layer("sha256:d", "sha256:b", Some("127.0.0.1:5001/mine"));
        let k = known_forms(&pulled, Some(&pushed));
        assert_eq!(
            k.iter().map(|k| k.blob.digest.as_str()).collect::<Vec<_>>(),
            ["sha256:a", "sha256:b"]
        );
        // On another repository of :5001 only the pushed form can be mounted.
        let m = mount_candidates(&k, "127.0.0.1:5001", "other");
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].0.digest.as_str(), m[0].1.as_str()),
            ("sha256:b", "mine")
        );
        // A local layer never pushed has no form: it is uploaded.
        let local = layer("sha256:d", "", None);
        assert!(known_forms(&local, Some(&local)).is_empty());
        // The same form twice is tried once.
        assert_eq!(known_forms(&pulled, Some(&pulled)).len(), 1);
    }

    #[test]
    fn the_original_manifest_only_when_every_layer_kept_its_digest() {
        let layers = [
            layer("sha256:1", "sha256:a", None),
            layer("sha256:2", "sha256:b", None),
        ];
        let blob = |d: &str| Blob {
            digest: d.into(),
            media_type: MT_DOCKER_LAYER_GZIP.into(),
            size: 1,
        };
        assert!(keeps_manifest(
            &layers,
            "sha256:m",
            &[blob("sha256:a"), blob("sha256:b")]
        ));
        assert!(!keeps_manifest(
            &layers,
            "sha256:m",
            &[blob("sha256:a"), blob("sha256:c")]
        ));
        assert!(!keeps_manifest(
            &layers,
            "",
            &[blob("sha256:a"), blob("sha256:b")]
        ));
    }

    #[test]
    fn docker_manifest_is_dockers_bytes() {
        let cfg = format!("sha256:{}", "c".repeat(64));
        let l = format!("sha256:{}", "1".repeat(64));
        let m = docker_manifest(
            &cfg,
            1469,
            &[Blob {
                digest: l.clone(),
                media_type: MT_DOCKER_LAYER_GZIP.into(),
                size: 2797612,
            }],
        );
        let expected = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {{\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": 1469,\n      \"digest\": \"{cfg}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n         \"size\": 2797612,\n         \"digest\": \"{l}\"\n      }}\n   ]\n}}"
        );
        assert_eq!(String::from_utf8(m).unwrap(), expected);
    }

    #[test]
    fn registry_errors_in_dockers_words() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            registry_words(401, body),
            "unauthorized: authentication required"
        );
        assert_eq!(
            registry_words(401, ""),
            "unauthorized: authentication required"
        );
        assert_eq!(
            registry_words(403, ""),
            "denied: requested access to the resource is denied"
        );
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(
            registry_words(403, body),
            "denied: requested access to the resource is denied"
        );
        let body = r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"a"},{"code":"NAME_UNKNOWN","message":"b"}]}"#;
        assert_eq!(
            registry_words(400, body),
            "errors:\nblob upload invalid: a\nname unknown: b\n"
        );
        assert_eq!(
            registry_words(500, "oops"),
            "received unexpected HTTP status: 500 Internal Server Error"
        );
    }
}
