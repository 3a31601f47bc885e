//! The image endpoints: create (pull), list, inspect, history, tag, delete, prune.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::http::{glob_match, json, json_stream, ApiError, Query, Resp};
use super::Ctx;
use crate::images::model::Platform;
use crate::images::progress::Progress;
use crate::images::pull::{PullError, PullRequest};
use crate::images::reference::{familiar, looks_like_id, split_tag_key, ImageRef};
use crate::images::registry::{AuthConfig, RegistryError};
use crate::images::store::{Image, LookupError};

fn lookup(ctx: &Ctx, name: &str) -> Result<Image, ApiError> {
    ctx.store.resolve(name).map_err(|e| match e {
        LookupError::NotFound(_) => ApiError::not_found(e.to_string()),
        LookupError::Ambiguous(_) => ApiError::bad_request(e.to_string()),
    })
}

/// `POST /images/create?fromImage=…&tag=…&platform=…`: pull with streamed progress.
pub async fn create(
    ctx: Arc<Ctx>,
    q: Query,
    auth_header: Option<String>,
) -> Result<Resp, ApiError> {
    let from = q.get("fromImage").ok_or_else(|| {
        ApiError::bad_request("fromImage is required; importing from a tarball is not supported")
    })?;
    let full = match q.get("tag") {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_string(),
    };
    let reference = ImageRef::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let platform = match q.get("platform") {
        Some(p) => Some(Platform::parse(p).map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let auth = auth_header
        .as_deref()
        .and_then(AuthConfig::from_header)
        .unwrap_or_default()
        .to_registry_auth();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pull_ctx = ctx.clone();
    // The pull runs on its own task: a client that disconnects does not abort it half-way.
    tokio::spawn(async move {
        let res = pull_ctx
            .puller
            .pull(
                PullRequest {
                    reference,
                    platform,
                    auth,
                },
                Progress::new(tx),
            )
            .await;
        let _ = done_tx.send(res);
    });

    // Like dockerd: an error before the first progress line is an HTTP error; after it,
    // the error is the stream's last message.
    let mut done_rx = done_rx;
    let first = tokio::select! {
        biased;
        m = rx.recv() => m,
        r = &mut done_rx => return finished_without_progress(r),
    };
    let Some(first) = first else {
        // The progress channel closed before any message: the pull is over, with its result.
        return finished_without_progress(done_rx.await);
    };
    let first = Some(first);
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let mut done_rx = Some(done_rx);
        let mut pending = first;
        loop {
            if let Some(m) = pending.take() {
                let _ = out_tx.send(m);
            }
            match rx.recv().await {
                Some(m) => pending = Some(m),
                None => break,
            }
        }
        if let Some(d) = done_rx.take() {
            if let Ok(Err(e)) = d.await {
                let msg = pull_error(e).message;
                let _ = out_tx.send(json!({"errorDetail": {"message": msg}, "error": msg}));
            }
        }
    });
    Ok(json_stream(out_rx))
}

fn finished_without_progress(
    r: Result<Result<Image, PullError>, tokio::sync::oneshot::error::RecvError>,
) -> Result<Resp, ApiError> {
    match r {
        Ok(Err(e)) => Err(pull_error(e)),
        Ok(Ok(_)) => Ok(json(StatusCode::OK, &json!({"status": "Done"}))),
        Err(_) => Err(ApiError::internal("the pull task ended unexpectedly")),
    }
}

fn pull_error(e: PullError) -> ApiError {
    match e {
        PullError::Registry(RegistryError::NotFound(m)) => ApiError::not_found(m),
        // As dockerd: a pull refused for lack of credentials is "not found"; a 401 would make
        // the docker CLI stop and prompt for a login on its own.
        PullError::Registry(RegistryError::Unauthorized(m)) => ApiError::not_found(m),
        PullError::Registry(r) => ApiError::internal(r.to_string()),
        PullError::Other(e) => ApiError::internal(format!("{e:#}")),
    }
}

fn repo_tags(ctx: &Ctx, id: &str) -> Vec<String> {
    ctx.store.tags_of(id).iter().map(|t| familiar(t)).collect()
}

fn repo_digests(ctx: &Ctx, id: &str) -> Vec<String> {
    ctx.store
        .digests_of(id)
        .iter()
        .map(|t| familiar(t))
        .collect()
}

fn summary(ctx: &Ctx, img: &Image) -> Value {
    let id = &img.record.id;
    json!({
        "Containers": -1,
        "Created": img.config.created_unix(),
        "Id": id,
        "Labels": img.config.config.as_ref().and_then(|c| c.labels.clone()),
        "ParentId": "",
        "RepoDigests": repo_digests(ctx, id),
        "RepoTags": repo_tags(ctx, id),
        "SharedSize": -1,
        "Size": img.record.size(),
    })
}

/// `GET /images/json`
pub fn list(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters()?;
    filters.only(&["dangling", "reference", "label", "before", "since"])?;
    let dangling = filters.bool("dangling")?;
    let before = filters
        .get("before")
        .first()
        .map(|r| lookup(ctx, r))
        .transpose()?;
    let since = filters
        .get("since")
        .first()
        .map(|r| lookup(ctx, r))
        .transpose()?;
    let mut images = ctx.store.images();
    images.sort_by(|a, b| {
        b.config
            .created_unix()
            .cmp(&a.config.created_unix())
            .then_with(|| a.record.id.cmp(&b.record.id))
    });
    let mut out = Vec::new();
    for img in &images {
        let tags = ctx.store.tags_of(&img.record.id);
        if let Some(d) = dangling {
            if d != tags.is_empty() {
                continue;
            }
        }
        let refs = filters.get("reference");
        if !refs.is_empty() {
            let hit = tags.iter().any(|t| {
                let fam = familiar(t);
                let (name, _) = split_tag_key(&fam);
                refs.iter()
                    .any(|p| glob_match(p, &fam) || glob_match(p, name))
            });
            if !hit {
                continue;
            }
        }
        if !label_match(img, filters.get("label")) {
            continue;
        }
        if let Some(b) = &before {
            if img.config.created_unix() >= b.config.created_unix() {
                continue;
            }
        }
        if let Some(s) = &since {
            if img.config.created_unix() <= s.config.created_unix() {
                continue;
            }
        }
        out.push(summary(ctx, img));
    }
    Ok(json(StatusCode::OK, &out))
}

fn label_match(img: &Image, wanted: &[String]) -> bool {
    let labels = img
        .config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).map(|x| x == v).unwrap_or(false),
        None => labels.contains_key(w.as_str()),
    })
}

/// `GET /images/{name}/json`
pub fn inspect(ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let img = lookup(ctx, name)?;
    let id = &img.record.id;
    let c = &img.config;
    let layer_dirs: Vec<String> = img
        .record
        .layers
        .iter()
        .rev()
        .filter_map(|l| ctx.store.layer_dir(&l.diff_id).ok())
        .map(|p| p.display().to_string())
        .collect();
    let (upper, lower) = match layer_dirs.split_first() {
        Some((u, rest)) => (u.clone(), rest.join(":")),
        None => (String::new(), String::new()),
    };
    let mut graph = json!({ "UpperDir": upper });
    if !lower.is_empty() {
        graph["LowerDir"] = json!(lower);
    }
    let body = json!({
        "Id": id,
        "RepoTags": repo_tags(ctx, id),
        "RepoDigests": repo_digests(ctx, id),
        "Parent": "",
        "Comment": c.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": c.created.clone().unwrap_or_default(),
        "DockerVersion": c.extra.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": c.author.clone().unwrap_or_default(),
        "Config": c.config.clone().map(|cfg| serde_json::to_value(cfg).unwrap_or(Value::Null)),
        "Architecture": c.architecture,
        "Variant": c.variant,
        "Os": c.os,
        "Size": img.record.size(),
        "GraphDriver": { "Name": "overlay2", "Data": graph },
        "RootFS": { "Type": "layers", "Layers": c.rootfs.diff_ids },
        "Metadata": { "LastTagTime": ctx.store.references().last_tag_time.get(id).cloned().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        "Descriptor": { "mediaType": img.record.manifest_media_type, "digest": img.record.manifest_digest },
    });
    Ok(json(StatusCode::OK, &body))
}

/// `GET /images/{name}/history`: newest first, one entry per history step.
pub fn history(ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let img = lookup(ctx, name)?;
    let mut sizes = img.record.layers.iter().map(|l| l.size);
    let mut out: Vec<Value> = img
        .config
        .history
        .iter()
        .map(|h| {
            let size = if h.empty_layer {
                0
            } else {
                sizes.next().unwrap_or(0)
            };
            json!({
                "Id": "<missing>",
                "Created": crate::images::model::parse_time(h.created.as_deref()),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": Value::Null,
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            })
        })
        .collect();
    if out.is_empty() {
        out.push(json!({"Created": img.config.created_unix(), "CreatedBy": "", "Tags": Value::Null, "Size": img.record.size(), "Comment": ""}));
    }
    out.reverse();
    out[0]["Id"] = json!(img.record.id);
    out[0]["Tags"] = json!(repo_tags(ctx, &img.record.id));
    Ok(json(StatusCode::OK, &out))
}

/// `POST /images/{name}/tag?repo=…&tag=…`
pub fn tag(ctx: &Ctx, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let img = lookup(ctx, name)?;
    let repo = q
        .get("repo")
        .ok_or_else(|| ApiError::bad_request("repo is required"))?;
    let target = match q.get("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let r = ImageRef::parse(&target).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if r.digest().is_some() {
        return Err(ApiError::bad_request(
            "refusing to create a tag with a digest reference",
        ));
    }
    let key = r
        .tag_key()
        .ok_or_else(|| ApiError::bad_request("a tag is required"))?;
    ctx.store.tag(&img.record.id, &key)?;
    Ok(super::http::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=…`: untag, and delete when no reference is left (docker's rules).
pub fn delete(ctx: &Ctx, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let force = q.flag("force");
    let img = lookup(ctx, name)?;
    let id = img.record.id.clone();
    let mut items = Vec::new();
    let by_id = looks_like_id(name)
        && id
            .trim_start_matches("sha256:")
            .starts_with(name.trim_start_matches("sha256:"));
    let short = id.trim_start_matches("sha256:")[..12].to_string();
    // A container's root filesystem is made of the image's layers: while any container
    // exists the image stays (docker's rules; with -f a stopped container's image is only
    // untagged and stays as <none>).
    let user = ctx.containers.image_in_use(&id);
    if !by_id {
        let r = ImageRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let key = r.digest_key().or_else(|| r.tag_key()).unwrap_or_default();
        let last_tag = ctx.store.tags_of(&id).iter().all(|t| *t == key);
        if let (Some((cid, _)), true, false) = (&user, last_tag, force) {
            return Err(ApiError::conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                &cid[..12]
            )));
        }
        for k in ctx.store.untag(&[key])? {
            items.push(json!({ "Untagged": familiar(&k) }));
        }
        if !ctx.store.tags_of(&id).is_empty() {
            return Ok(json(StatusCode::OK, &items));
        }
        // The last tag is gone: the digest references go with the image.
    } else {
        let repos: BTreeSet<String> = ctx
            .store
            .tags_of(&id)
            .iter()
            .map(|t| split_tag_key(t).0.to_string())
            .collect();
        if repos.len() > 1 && !force {
            return Err(ApiError::conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                &id.trim_start_matches("sha256:")[..12]
            )));
        }
    }
    match &user {
        Some((cid, status)) if status.is_live() && (by_id || !force) => {
            return Err(ApiError::conflict(format!(
                "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                &cid[..12]
            )));
        }
        Some((cid, _)) if !force && by_id => {
            return Err(ApiError::conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                &cid[..12]
            )));
        }
        _ => {}
    }
    let mut refs: Vec<String> = ctx.store.tags_of(&id);
    refs.extend(ctx.store.digests_of(&id));
    for k in ctx.store.untag(&refs)? {
        items.push(json!({ "Untagged": familiar(&k) }));
    }
    if user.is_some() {
        return Ok(json(StatusCode::OK, &items));
    }
    for d in delete_image(ctx, &id)? {
        items.push(json!({ "Deleted": d }));
    }
    Ok(json(StatusCode::OK, &items))
}

/// Delete an image and its unshared layers; returns the IDs docker reports as deleted.
fn delete_image(ctx: &Ctx, id: &str) -> Result<Vec<String>, ApiError> {
    let layers = ctx.store.delete(id)?;
    let mut out = vec![id.to_string()];
    out.extend(layers);
    Ok(out)
}

/// `POST /images/prune`: dangling images by default, every unused one with dangling=false.
pub fn prune(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters()?;
    filters.only(&["dangling", "label", "until"])?;
    let only_dangling = filters.bool("dangling")?.unwrap_or(true);
    let until = filters
        .get("until")
        .first()
        .map(|u| parse_until(u))
        .transpose()?;
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for img in ctx.store.images() {
        let id = img.record.id.clone();
        let tags = ctx.store.tags_of(&id);
        if ctx.containers.image_in_use(&id).is_some() {
            continue;
        }
        if only_dangling && !tags.is_empty() {
            continue;
        }
        if !label_match(&img, filters.get("label")) {
            continue;
        }
        if let Some(u) = until {
            if img.config.created_unix() >= u {
                continue;
            }
        }
        let mut refs = tags;
        refs.extend(ctx.store.digests_of(&id));
        for k in ctx.store.untag(&refs)? {
            deleted.push(json!({ "Untagged": familiar(&k) }));
        }
        let before: std::collections::HashMap<String, u64> = img
            .record
            .layers
            .iter()
            .map(|l| (l.diff_id.clone(), l.size))
            .collect();
        let removed = ctx.store.delete(&id)?;
        deleted.push(json!({ "Deleted": id }));
        for l in removed {
            reclaimed += before.get(&l).copied().unwrap_or(0);
            deleted.push(json!({ "Deleted": l }));
        }
    }
    let deleted = if deleted.is_empty() {
        Value::Null
    } else {
        Value::Array(deleted)
    };
    Ok(json(
        StatusCode::OK,
        &json!({ "ImagesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// Docker's `until`: a unix timestamp, an RFC 3339 time or a duration such as `24h`.
pub fn parse_until(s: &str) -> Result<i64, ApiError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid until filter {s:?}")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid until filter {s:?}: use e.g. 24h or a timestamp"
            )))
        }
    };
    Ok(chrono::Utc::now().timestamp() - secs)
}
