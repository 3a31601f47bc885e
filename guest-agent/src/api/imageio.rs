//! Images in and out as tar streams: `GET /images/get` and `/images/{name}/get` (save),
//! `POST /images/load`, `GET /containers/{id}/export`, and `POST /images/create?fromSrc=-`
//! (import). The archive formats are `images::archive`'s; here are the streams: a blocking
//! thread writes into a bounded channel the response body reads, or reads the request body
//! through one, so a layer is never held in memory whole.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::commit::apply_changes;
use super::http::{query_all, query_one, ApiError, Resp};
use super::Ctx;
use crate::containers::Container;
use crate::images::archive::{
    decompressed, load_items, plan_load, plan_save, write_save, ArchiveError, ArchiveIndex,
    SaveItem,
};
use crate::images::import::import_config;
use crate::images::ingest::{channel_reader, ingest_layer, ChannelReader};
use crate::images::model::RunConfig;
use crate::images::reference::{familiar, looks_like_id, ImageRef};
use crate::images::store::tempfile_in;

/// Bytes handed to the response body at a time, and how many may wait in the channel.
const CHUNK: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 4;

/// A `Write` whose bytes become the response body's frames; it blocks while the client is
/// slower than we are, and fails once the client is gone.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// End the body: an error becomes a broken transfer, so a client never takes a partial
    /// archive for a whole one.
    fn finish(mut self, result: anyhow::Result<()>) {
        let result = result.and_then(|()| Ok(self.send()?));
        if let Err(e) = result {
            tracing::info!("streaming a tar: {e:#}");
            let _ = self
                .tx
                .blocking_send(Err(io::Error::other(format!("{e:#}"))));
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A response whose body a blocking thread writes with `produce`.
fn streamed_tar(
    content_type: &'static str,
    produce: impl FnOnce(&mut BodyWriter) -> anyhow::Result<()> + Send + 'static,
) -> Resp {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let result = produce(&mut w);
        w.finish(result);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map(Frame::data), rx))
    });
    let mut r = hyper::Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// Feed the request body to a `ChannelReader`. When the reader gives up (a refused archive),
/// the rest is read and dropped, so the client gets our verdict rather than a broken pipe.
pub(super) async fn pump_body(
    req: Request<Incoming>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(), ApiError> {
    let mut body = req.into_body();
    let mut open = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if open && tx.send(data).await.is_err() {
                open = false;
            }
        }
    }
    Ok(())
}

pub(super) fn body_reader() -> (tokio::sync::mpsc::Sender<Bytes>, ChannelReader) {
    channel_reader(8)
}

fn not_found(name: &str) -> ApiError {
    // dockerd's words, kept exact: scripts match them.
    let _ = name;
    ApiError::not_found("reference does not exist")
}

/// Whether a reference names a tag itself (the parser fills in `latest` when it does not).
fn explicit_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split('@').next().unwrap_or(last).contains(':')
}

/// The images `names` ask for, each with the tags it is asked by, in the order first asked.
/// As moby's `tarexport`: `name:tag` is that tag, a bare name every tag of the repository, an
/// ID (or `name@digest`) the image without tags.
fn images_to_save(
    store: &crate::images::store::Store,
    names: &[String],
) -> Result<Vec<SaveItem>, ApiError> {
    let refs = store.references();
    let mut order: Vec<String> = Vec::new();
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |id: String, tag: Option<String>| {
        if !order.contains(&id) {
            order.push(id.clone());
        }
        let list = tags.entry(id).or_default();
        if let Some(t) = tag {
            let t = familiar(&t);
            if !list.contains(&t) {
                list.push(t);
            }
        }
    };
    for name in names {
        let by_id = || -> Option<String> {
            looks_like_id(name)
                .then(|| store.resolve(name).ok())
                .flatten()
                .map(|i| i.record.id)
        };
        let parsed = ImageRef::parse(name);
        let Ok(r) = parsed else {
            match by_id() {
                Some(id) => add(id, None),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "invalid reference format: {name}"
                    )))
                }
            }
            continue;
        };
        if r.digest().is_some() {
            let img = store.resolve(name).map_err(|_| not_found(name))?;
            add(img.record.id, None);
        } else if explicit_tag(name) {
            let key = r.tag_key().unwrap_or_default();
            let id = refs.tags.get(&key).ok_or_else(|| not_found(name))?;
            add(id.clone(), Some(key));
        } else {
            let prefix = format!("{}:", r.full_name());
            let mut found = false;
            for (key, id) in refs.tags.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                found = true;
                add(id.clone(), Some(key.clone()));
            }
            if !found {
                add(by_id().ok_or_else(|| not_found(name))?, None);
            }
        }
    }
    order
        .into_iter()
        .map(|id| {
            let img = store.get(&id).ok_or_else(|| not_found(&id))?;
            Ok(SaveItem {
                config_raw: img.config_raw.clone(),
                repo_tags: tags.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: docker's archive of the images.
pub async fn save(
    ctx: &Ctx,
    raw_query: Option<&str>,
    name: Option<&str>,
) -> Result<Resp, ApiError> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => query_all(raw_query, "names"),
    };
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "no image to save: give one or more names (names=…)",
        ));
    }
    let items = images_to_save(&ctx.store, &names)?;
    let store = ctx.store.clone();
    // Each layer's recipe is opened now: one that cannot be exported is an HTTP error, not
    // an archive broken half way.
    let plan = tokio::task::spawn_blocking(move || plan_save(&items, &*store))
        .await
        .map_err(|e| ApiError::internal(format!("the save task failed: {e}")))??;
    let store = ctx.store.clone();
    Ok(streamed_tar("application/x-tar", move |w| {
        write_save(&plan, &*store, w).map(|_| ())
    }))
}

fn archive_error(e: ArchiveError) -> ApiError {
    ApiError::from(e)
}

/// `POST /images/load`: a docker archive or an OCI layout, plain or compressed.
pub async fn load(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let (tx, reader) = body_reader();
    let store = ctx.store.clone();
    let limit = ctx.puller.limits.max_layer;
    let reading = tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let path = tempfile_in(&store.tmp_dir())?;
        let mut spool = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                ArchiveError::Internal(anyhow::Error::new(e).context("creating the spool file"))
            })?;
        // Unlinked at once: nothing is left behind whatever happens next.
        let _ = std::fs::remove_file(&path);
        // A whole archive of layers may be several layers' size; the layer limit times 16
        // still stops a compressed bomb long before a disk fills.
        let index = ArchiveIndex::spool(reader, &mut spool, limit.saturating_mul(16))?;
        let items = plan_load(&index, &spool)?;
        Ok((index, spool, items))
    });
    pump_body(req, tx).await?;
    let (index, spool, items) = reading
        .await
        .map_err(|e| ApiError::internal(format!("the load task failed: {e}")))?
        .map_err(archive_error)?;

    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let store = ctx.store.clone();
    let limit = ctx.puller.limits.max_layer;
    // Its own thread: a client that goes away does not leave an image half stored.
    tokio::task::spawn_blocking(move || {
        let tx = out_tx.clone();
        let result = load_items(&store, &index, &spool, &items, limit, &mut |ev| {
            let _ = tx.send(json!({ "stream": ev.line() }));
        });
        if let Err(e) = result {
            let msg = e.to_string();
            tracing::info!("load: {msg}");
            let _ = out_tx.send(json!({"errorDetail": {"message": msg}, "error": msg}));
        }
    });
    Ok(super::http::json_stream(out_rx))
}

/// `GET /containers/{id}/export`: the container's filesystem as its processes see it, less
/// what the engine mounts there (volumes, /etc/hosts…), as `docker export`.
pub async fn export(ctx: &Ctx, c: Arc<Container>) -> Result<Resp, ApiError> {
    // `rootfs_for_copy` mounts a stopped container's overlay and keeps it from starting
    // until it drops. For a path at or around one of its mount points it makes the volumes
    // and binds ready as well; an export does not want them, so it asks for a path that is
    // no mount's.
    let at = ctx
        .containers
        .rootfs_for_copy(&c, "/.skiff-export", false)
        .await?;
    let rootfs = at.root.clone();
    // A running container's overlay is mounted on the host already: its view there has none
    // of the mounts made in the container's namespace, which is what docker exports.
    let rootfs = if rootfs.to_string_lossy().starts_with("pid:") {
        c.paths().rootfs()
    } else {
        rootfs
    };
    if !crate::mountinfo::is_mounted(&rootfs) {
        return Err(ApiError::conflict(format!(
            "the root filesystem of container {} is not mounted (it stopped meanwhile?); try again",
            c.record().name.trim_start_matches('/')
        )));
    }
    Ok(streamed_tar("application/octet-stream", move |w| {
        // The merged tree read as an upper dir over nothing: every entry, no whiteouts (the
        // overlay hides them and its own attributes).
        let tree = crate::images::diff::Upper {
            dir: &rootfs,
            lowers: &[],
            skip: &[],
        };
        let result = tree.write_layer(&mut *w).map(|_| ());
        drop(at);
        result
    }))
}

/// `POST /images/create?fromSrc=-&repo=…&tag=…&message=…&changes=…`: one layer from a root
/// filesystem tar (plain or compressed) in the body, as `docker import`.
pub async fn import(
    ctx: Arc<Ctx>,
    raw_query: Option<&str>,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let (tag_keys, changes, comment) = match import_options(raw_query) {
        Ok(o) => o,
        Err(e) => {
            // Read and drop the upload first: an answer before it is read is a broken pipe to
            // a client still writing, and our message is lost.
            let (tx, rx) = body_reader();
            drop(rx);
            pump_body(req, tx).await?;
            return Err(e);
        }
    };
    let (tx, reader) = body_reader();
    let store = ctx.store.clone();
    let limit = ctx.puller.limits.max_layer;
    let work = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let input = decompressed(reader)
            .map_err(|e| ApiError::bad_request(format!("reading the imported tar: {e}")))?;
        let rec = ingest_layer(&store, input, "the imported root filesystem", limit)
            .map_err(|e| ApiError::bad_request(format!("importing: {e:#}")))?;
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let config =
            import_config(&rec.diff_id, &changes, &comment, &created).map_err(archive_error)?;
        let img = store.commit_local_image(&config, vec![rec], None, &tag_keys)?;
        Ok(img.record.id)
    });
    pump_body(req, tx).await?;
    let id = work
        .await
        .map_err(|e| ApiError::internal(format!("the import task failed: {e}")))??;
    let mut line = serde_json::to_vec(&json!({ "status": id })).unwrap_or_default();
    line.extend_from_slice(b"\r\n");
    let mut r = hyper::Response::new(super::http::full(line));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// An import's tags, changes and comment, checked before the upload is used.
#[allow(clippy::type_complexity)]
fn import_options(raw_query: Option<&str>) -> Result<(Vec<String>, RunConfig, String), ApiError> {
    let src = query_one(raw_query, "fromSrc").unwrap_or_default();
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "skiff does not download {src:?} to import it: fetch it yourself and give the tar on \
             standard input (skiff import - or docker import -)"
        )));
    }
    let tag_keys = match query_one(raw_query, "repo") {
        None => vec![],
        Some(repo) => {
            let full = match query_one(raw_query, "tag") {
                Some(t) => format!("{repo}:{t}"),
                None => repo,
            };
            let r = ImageRef::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if r.digest().is_some() {
                return Err(ApiError::bad_request("cannot import digest reference"));
            }
            r.tag_key().into_iter().collect()
        }
    };
    let changes = apply_changes(RunConfig::default(), &query_all(raw_query, "changes"))?;
    let comment = query_one(raw_query, "message").unwrap_or_else(|| format!("Imported from {src}"));
    Ok((tag_keys, changes, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_all_kept() {
        let q = Some("names=a%3A1&names=b&changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1");
        assert_eq!(query_all(q, "names"), vec!["a:1", "b"]);
        assert_eq!(query_all(q, "changes"), vec![r#"CMD ["sh"]"#, "ENV A=1"]);
        assert_eq!(query_one(q, "names").as_deref(), Some("b"));
        assert_eq!(query_one(None, "names"), None);
    }

    #[test]
    fn save_resolves_names_as_dockers_tarexport() {
        let root = tempfile::tempdir().unwrap();
        let store = crate::images::store::Store::open(root.path()).unwrap();
        let config = |cmd: &str| {
            serde_json::to_vec(&json!({"os": "linux", "config": {"Cmd": [cmd]}, "rootfs": {"type": "layers", "diff_ids": []}}))
                .unwrap()
        };
        let a = store
            .commit_local_image(
                &config("a"),
                vec![],
                None,
                &[
                    "docker.io/library/app:1".into(),
                    "docker.io/library/app:2".into(),
                ],
            )
            .unwrap();
        let b = store
            .commit_local_image(
                &config("b"),
                vec![],
                None,
                &["docker.io/library/other:latest".into()],
            )
            .unwrap();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let items = images_to_save(&store, &names(&["app"])).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].repo_tags, vec!["app:1", "app:2"]);

        let id_b = b.record.id.trim_start_matches("sha256:")[..12].to_string();
        let items = images_to_save(&store, &names(&["app:2", &id_b, "other:latest"])).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].repo_tags, vec!["app:2"]);
        assert_eq!(*items[0].config_raw, *a.config_raw);
        assert_eq!(items[1].repo_tags, vec!["other:latest"]);

        let e = images_to_save(&store, &names(&["app:3"])).err().unwrap();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(
            e.message.starts_with("reference does not exist"),
            "{}",
            e.message
        );
        assert!(images_to_save(&store, &names(&["nosuch"])).is_err());
    }
}
