//! The image endpoints: create (pull), list, inspect, history, tag, delete, prune.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::backends::{ImageBackend, ImageUsers};
use super::filters::{glob_match, PruneFilters};
use super::http::{json, json_stream, ApiError, Query, Resp};
use super::Ctx;
use crate::images::model::Platform;
use crate::images::progress::Progress;
use crate::images::pull::{PullError, PullRequest};
use crate::images::reference::{familiar, looks_like_id, split_tag_key, ImageRef};
use crate::images::store::Image;
use oci_client::secrets::RegistryAuth;

fn lookup(images: &dyn ImageBackend, name: &str) -> Result<Image, ApiError> {
    Ok(images.resolve(name)?)
}

/// `POST /images/create?fromImage=…&tag=…&platform=…`: pull with streamed progress.
/// `GET /distribution/{name}/json`: what the registry holds under the name (its manifest's
/// descriptor and platforms), without pulling it; the SDK's `get_registry_data`.
pub async fn distribution(ctx: &Ctx, name: &str, auth: RegistryAuth) -> Result<Resp, ApiError> {
    let reference = ImageRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let data = ctx.puller.registry_data(&reference, &auth).await?;
    // dockerd answers null rather than an empty list.
    let platforms = (!data.platforms.is_empty()).then_some(&data.platforms);
    Ok(json(
        StatusCode::OK,
        &json!({
            "Descriptor": {"mediaType": data.media_type, "digest": data.digest, "size": data.size},
            "Platforms": platforms,
        }),
    ))
}

pub async fn create(ctx: Arc<Ctx>, q: Query, auth: RegistryAuth) -> Result<Resp, ApiError> {
    let from = q.get("fromImage").ok_or_else(|| {
        ApiError::bad_request("fromImage (a pull) or fromSrc (an import) is required")
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
                let msg = ApiError::from(e).message;
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
        Ok(Err(e)) => Err(ApiError::from(e)),
        Ok(Ok(_)) => Ok(json(StatusCode::OK, &json!({"status": "Done"}))),
        Err(_) => Err(ApiError::internal("the pull task ended unexpectedly")),
    }
}

fn repo_tags(images: &dyn ImageBackend, id: &str) -> Vec<String> {
    images.tags_of(id).iter().map(|t| familiar(t)).collect()
}

fn repo_digests(images: &dyn ImageBackend, id: &str) -> Vec<String> {
    images.digests_of(id).iter().map(|t| familiar(t)).collect()
}

fn summary(images: &dyn ImageBackend, img: &Image) -> Value {
    let id = &img.record.id;
    json!({
        "Containers": -1,
        "Created": img.config.created_unix(),
        "Id": id,
        "Labels": img.config.config.as_ref().and_then(|c| c.labels.clone()),
        "ParentId": "",
        "RepoDigests": repo_digests(images, id),
        "RepoTags": repo_tags(images, id),
        "SharedSize": -1,
        "Size": img.record.size(),
    })
}

/// `GET /images/json`
pub fn list(images: &dyn ImageBackend, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters()?;
    filters.only(&["dangling", "reference", "label", "before", "since"])?;
    let dangling = filters.bool("dangling")?;
    let before = filters
        .get("before")
        .first()
        .map(|r| lookup(images, r))
        .transpose()?;
    let since = filters
        .get("since")
        .first()
        .map(|r| lookup(images, r))
        .transpose()?;
    let mut all = images.images();
    all.sort_by(|a, b| {
        b.config
            .created_unix()
            .cmp(&a.config.created_unix())
            .then_with(|| a.record.id.cmp(&b.record.id))
    });
    let parents: BTreeSet<String> = all.iter().filter_map(|i| i.record.parent.clone()).collect();
    let show_all = q.flag("all");
    let mut out = Vec::new();
    for img in &all {
        let tags = images.tags_of(&img.record.id);
        let all_refs = references(images, &img.record.id);
        let has_children = parents.contains(&img.record.id);
        // moby's rules: an image without any reference under another (a build step's) is an
        // intermediate, shown with --all only; dangling=true lists the images without tags
        // (digests do not count) nor children, dangling=false those with any reference.
        if all_refs.is_empty() && has_children && !show_all {
            continue;
        }
        match dangling {
            Some(true) if !tags.is_empty() || has_children => continue,
            Some(false) if all_refs.is_empty() => continue,
            _ => {}
        }
        let refs = filters.get("reference");
        if !refs.is_empty() {
            let hit = all_refs.iter().any(|t| {
                let fam = familiar(t);
                let name = repo_of_key(&fam);
                refs.iter()
                    .any(|p| glob_match(p, &fam) || glob_match(p, name))
            });
            if !hit {
                continue;
            }
        }
        if !filters.labels_match(label_of(img)) {
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
        out.push(summary(images, img));
    }
    Ok(json(StatusCode::OK, &out))
}

/// An image's label by key, for the label filters.
fn label_of<'a>(img: &'a Image) -> impl Fn(&str) -> Option<&'a str> + 'a {
    let labels = img.config.config.as_ref().and_then(|c| c.labels.as_ref());
    move |k| labels.and_then(|l| l.get(k)).map(String::as_str)
}

/// `GET /images/{name}/json`
pub fn inspect(images: &dyn ImageBackend, name: &str) -> Result<Resp, ApiError> {
    let img = lookup(images, name)?;
    let id = &img.record.id;
    let c = &img.config;
    let layer_dirs: Vec<String> = img
        .record
        .layers
        .iter()
        .rev()
        .filter_map(|l| images.layer_dir(&l.diff_id).ok())
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
        "RepoTags": repo_tags(images, id),
        "RepoDigests": repo_digests(images, id),
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
        "Metadata": { "LastTagTime": images.last_tag_time(id).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        "Descriptor": { "mediaType": img.record.manifest_media_type, "digest": img.record.manifest_digest },
    });
    Ok(json(StatusCode::OK, &body))
}

/// `GET /images/{name}/history`: newest first, one entry per history step.
pub fn history(images: &dyn ImageBackend, name: &str) -> Result<Resp, ApiError> {
    let img = lookup(images, name)?;
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
    // Each image in the parent chain (a build's steps) names the entry it added.
    let mut chain = Some(img.clone());
    let mut first = true;
    while let Some(c) = chain.take() {
        let n = c.config.history.len();
        if n == 0 || n > out.len() {
            break;
        }
        out[n - 1]["Id"] = json!(c.record.id);
        let tags = repo_tags(images, &c.record.id);
        if first || !tags.is_empty() {
            out[n - 1]["Tags"] = json!(tags);
        }
        first = false;
        chain = c
            .record
            .parent
            .as_deref()
            .and_then(|p| images.resolve(p).ok());
    }
    out.reverse();
    out[0]["Id"] = json!(img.record.id);
    out[0]["Tags"] = json!(repo_tags(images, &img.record.id));
    Ok(json(StatusCode::OK, &out))
}

/// `POST /images/{name}/tag?repo=…&tag=…`
pub fn tag(images: &dyn ImageBackend, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let img = lookup(images, name)?;
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
    images.tag(&img.record.id, &key)?;
    Ok(super::http::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=…&noprune=…`: moby's `ImageDelete`
/// (`daemon/images/image_delete.go`), rule for rule.
///
/// By name (`repo:tag` or `repo@digest`): that reference goes; when it was a repository's last
/// tag, that repository's digest references go with it (no other repository's). The image is
/// deleted only when no reference at all is left, quietly: a container or a child image keeps
/// it, untagged. The only refusal is a container using an image whose references are all in
/// one repository with at most one tag (removing the reference would leave it dangling).
///
/// By ID: an image whose references are all in one repository, with at most one tag, loses
/// them and is deleted; one referenced in several repositories (or by several tags) needs
/// `-f`, which removes every reference. Children and running containers cannot be forced;
/// a stopped container can.
pub fn delete(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    name: &str,
    q: &Query,
) -> Result<Resp, ApiError> {
    let force = q.flag("force");
    let prune = !q.flag("noprune");
    let img = lookup(images, name)?;
    let id = img.record.id.clone();
    let mut out = Deletion::default();
    let by_id = looks_like_id(name)
        && id
            .trim_start_matches("sha256:")
            .starts_with(name.trim_start_matches("sha256:"));
    let mut quiet = false;
    if !by_id {
        if !force && single_reference(&references(images, &id)) {
            if let Some((cid, _)) = users.image_in_use(&id) {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    short_id(&cid),
                    short_id(&id)
                )));
            }
        }
        let r = ImageRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let key = r.digest_key().or_else(|| r.tag_key()).unwrap_or_default();
        // As dockerd, the reference given is reported removed even when the image was found
        // another way (`repo@digest` of an image pulled by that digest under another name).
        images.untag(std::slice::from_ref(&key))?;
        out.untagged(&key);
        if !is_digest_key(&key) {
            let repo = repo_of_key(&key);
            let left = references(images, &id);
            let tag_left = left
                .iter()
                .any(|k| !is_digest_key(k) && repo_of_key(k) == repo);
            if !tag_left {
                let digests: Vec<String> = left
                    .into_iter()
                    .filter(|k| is_digest_key(k) && repo_of_key(k) == repo)
                    .collect();
                for k in images.untag(&digests)? {
                    out.untagged(&k);
                }
            }
        }
        if !references(images, &id).is_empty() {
            return Ok(json(StatusCode::OK, &out.items));
        }
        quiet = true;
    } else {
        let refs = references(images, &id);
        if single_reference(&refs) {
            let mask = if force {
                Conflicts::HARD
            } else {
                Conflicts::HARD | Conflicts::STOPPED
            };
            if let Some(c) = conflict(images, users, &id, mask) {
                return Err(c.into());
            }
            for k in images.untag(&refs)? {
                out.untagged(&k);
            }
        }
    }
    delete_helper(images, users, &id, &mut out, force, prune, quiet)?;
    Ok(json(StatusCode::OK, &out.items))
}

fn short_id(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

fn is_digest_key(key: &str) -> bool {
    key.contains('@')
}

/// The repository (`registry/repo`) of a reference key, tag or digest.
fn repo_of_key(key: &str) -> &str {
    match key.split_once('@') {
        Some((name, _)) => name,
        None => split_tag_key(key).0,
    }
}

/// Every reference to an image, tags and digests, in moby's order (by fully qualified name).
fn references(images: &dyn ImageBackend, id: &str) -> Vec<String> {
    let mut refs = images.tags_of(id);
    refs.extend(images.digests_of(id));
    refs.sort();
    refs
}

/// moby's `isSingleReference`: every reference in one repository, with at most one tag.
/// False for none.
fn single_reference(refs: &[String]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut tags = refs.iter().filter(|k| !is_digest_key(k));
    let tag = tags.next();
    if tags.next().is_some() {
        return false;
    }
    let digest_repos: BTreeSet<&str> = refs
        .iter()
        .filter(|k| is_digest_key(k))
        .map(|k| repo_of_key(k))
        .collect();
    let one = tag.unwrap_or(&refs[0]);
    digest_repos.len() == 1 && digest_repos.contains(repo_of_key(one))
}

/// What keeps an image from being deleted (moby's `conflictType`): children and running
/// containers are hard (never forced), references and stopped containers soft.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Conflicts(u8);

impl Conflicts {
    const CHILD: Conflicts = Conflicts(1);
    const RUNNING: Conflicts = Conflicts(2);
    const REFERENCE: Conflicts = Conflicts(4);
    const STOPPED: Conflicts = Conflicts(8);
    const HARD: Conflicts = Conflicts(1 | 2);
    const SOFT: Conflicts = Conflicts(4 | 8);
    fn has(self, c: Conflicts) -> bool {
        self.0 & c.0 != 0
    }
}

impl std::ops::BitOr for Conflicts {
    type Output = Conflicts;
    fn bitor(self, o: Conflicts) -> Conflicts {
        Conflicts(self.0 | o.0)
    }
}

/// A conflict found, worded as dockerd words it.
struct Conflict {
    hard: bool,
    /// A container uses the image.
    used: bool,
    id: String,
    message: String,
}

impl From<Conflict> for ApiError {
    fn from(c: Conflict) -> ApiError {
        let how = if c.hard {
            "cannot be forced"
        } else {
            "must be forced"
        };
        ApiError::conflict(format!(
            "conflict: unable to delete {} ({how}) - {}",
            short_id(&c.id),
            c.message
        ))
    }
}

/// moby's `checkImageDeleteConflict`, in its order: children, a running container,
/// references, a stopped container.
fn conflict(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    id: &str,
    mask: Conflicts,
) -> Option<Conflict> {
    let found = |hard, used, message: String| {
        Some(Conflict {
            hard,
            used,
            id: id.to_string(),
            message,
        })
    };
    if mask.has(Conflicts::CHILD) && has_children(images, id) {
        return found(true, false, "image has dependent child images".into());
    }
    // Counted as a running user: it cannot be forced, and a prune passes it by.
    if mask.has(Conflicts::RUNNING) && images.held(id) {
        return found(
            true,
            true,
            "image is being used by a build in progress".into(),
        );
    }
    let user = users.image_in_use(id);
    if let Some((cid, status)) = &user {
        if mask.has(Conflicts::RUNNING) && status.is_live() {
            let msg = format!("image is being used by running container {}", short_id(cid));
            return found(true, true, msg);
        }
    }
    if mask.has(Conflicts::REFERENCE) && !references(images, id).is_empty() {
        let msg = "image is referenced in multiple repositories".to_string();
        return found(false, false, msg);
    }
    if let Some((cid, status)) = &user {
        if mask.has(Conflicts::STOPPED) && !status.is_live() {
            let msg = format!("image is being used by stopped container {}", short_id(cid));
            return found(false, true, msg);
        }
    }
    None
}

/// What a deletion did: docker's `Untagged`/`Deleted` items, and the layers' bytes freed.
#[derive(Default)]
struct Deletion {
    items: Vec<Value>,
    reclaimed: u64,
}

impl Deletion {
    fn untagged(&mut self, key: &str) {
        self.items.push(json!({ "Untagged": familiar(key) }));
    }
}

/// moby's `imageDeleteHelper`: delete an image unless a conflict the mask (`force`) keeps
/// stops it, with its remaining references and unshared layers; then, with `prune`, each
/// parent it leaves without references, children or containers (a build's steps), quietly.
/// `quiet`: a conflict keeps the image without an error, unless the image is dangling and
/// unused (then the client is told).
fn delete_helper(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    id: &str,
    out: &mut Deletion,
    force: bool,
    prune: bool,
    quiet: bool,
) -> Result<(), ApiError> {
    let (mut cur, mut force, mut quiet) = (id.to_string(), force, quiet);
    loop {
        let mask = if force {
            Conflicts::HARD
        } else {
            Conflicts::HARD | Conflicts::SOFT
        };
        if let Some(c) = conflict(images, users, &cur, mask) {
            let dangling = references(images, &cur).is_empty() && !has_children(images, &cur);
            if quiet && (!dangling || c.used) {
                return Ok(());
            }
            return Err(c.into());
        }
        let img = images.resolve(&cur).ok();
        for k in images.untag(&references(images, &cur))? {
            out.untagged(&k);
        }
        // Unlike dockerd, an image a (stopped) container still uses stays, untagged: the
        // container's root filesystem is made of the image's layers.
        if users.image_in_use(&cur).is_some() {
            return Ok(());
        }
        let sizes: std::collections::HashMap<String, u64> = img
            .iter()
            .flat_map(|i| i.record.layers.iter())
            .map(|l| (l.diff_id.clone(), l.size))
            .collect();
        let layers = images.delete(&cur)?;
        out.items.push(json!({ "Deleted": cur }));
        for l in layers {
            out.reclaimed += sizes.get(&l).copied().unwrap_or(0);
            out.items.push(json!({ "Deleted": l }));
        }
        match img.and_then(|i| i.record.parent) {
            Some(p) if prune && images.resolve(&p).is_ok() => {
                cur = p;
                force = false;
                quiet = true;
            }
            _ => return Ok(()),
        }
    }
}

fn has_children(images: &dyn ImageBackend, id: &str) -> bool {
    images
        .images()
        .iter()
        .any(|i| i.record.parent.as_deref() == Some(id))
}

/// `POST /images/prune`: dangling images (no tag; digest references do not count) by
/// default, every unused one with dangling=false; each with the untagged parents it frees.
pub fn prune(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    q: &Query,
) -> Result<Resp, ApiError> {
    let prune = PruneFilters::parse(q.get("filters"), &["dangling"])?;
    let only_dangling = prune.filters.bool("dangling")?.unwrap_or(true);
    let mut out = Deletion::default();
    for img in images.images() {
        let id = img.record.id.clone();
        let tags = images.tags_of(&id);
        // Gone with a child pruned before it, or an untagged parent kept for its children
        // (pruning the child takes it with it).
        if images.resolve(&id).is_err()
            || (references(images, &id).is_empty() && has_children(images, &id))
        {
            continue;
        }
        if users.image_in_use(&id).is_some() {
            continue;
        }
        if only_dangling && !tags.is_empty() {
            continue;
        }
        if !prune.admit(img.config.created_unix(), label_of(&img)) {
            continue;
        }
        for k in images.untag(&references(images, &id))? {
            out.untagged(&k);
        }
        // Quietly: a tagged parent of a built image loses its references and stays.
        delete_helper(images, users, &id, &mut out, false, true, true)?;
    }
    let deleted = if out.items.is_empty() {
        Value::Null
    } else {
        Value::Array(out.items)
    };
    Ok(json(
        StatusCode::OK,
        &json!({ "ImagesDeleted": deleted, "SpaceReclaimed": out.reclaimed }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backends::fake::{image, FakeStore};
    use crate::api::http::body_json;
    use crate::containers::record::Status;

    /// Containers, each made from an image, in a state.
    struct Users(Vec<(String, String, Status)>);
    impl ImageUsers for Users {
        fn image_in_use(&self, image_id: &str) -> Option<(String, Status)> {
            let hit = self.0.iter().find(|(_, img, _)| img == image_id);
            hit.map(|(c, _, s)| (c.clone(), *s))
        }
    }
    const NOBODY: Users = Users(Vec::new());

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn two() -> FakeStore {
        FakeStore::with(
            vec![
                image(1, "2024-01-01T00:00:00Z", &[("app", "web")]),
                image(2, "2024-06-01T00:00:00Z", &[]),
            ],
            &[("docker.io/library/busybox:latest", 0)],
        )
    }

    fn tags_listed(v: &Value) -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["RepoTags"].clone())
            .collect()
    }

    #[test]
    fn list_is_newest_first_with_familiar_names() {
        let store = two();
        let v = body_json(list(&store, &Query::default()).unwrap()).unwrap();
        assert_eq!(tags_listed(&v), vec![json!([]), json!(["busybox:latest"])]);
        assert_eq!(v[1]["Labels"], json!({"app": "web"}));
        assert_eq!(v[1]["Size"], 100);
        assert_eq!(v[0]["Created"], 1_717_200_000);
    }

    #[test]
    fn list_filters() {
        let store = two();
        let only = |f: &str| {
            let v = body_json(list(&store, &q(&format!("filters={f}"))).unwrap()).unwrap();
            tags_listed(&v)
        };
        assert_eq!(only(r#"{"dangling":["true"]}"#), vec![json!([])]);
        assert_eq!(
            only(r#"{"dangling":["false"]}"#),
            vec![json!(["busybox:latest"])]
        );
        assert_eq!(
            only(r#"{"reference":["busy*"]}"#),
            vec![json!(["busybox:latest"])]
        );
        assert_eq!(only(r#"{"reference":["alpine"]}"#), Vec::<Value>::new());
        assert_eq!(
            only(r#"{"label":["app=web"]}"#),
            vec![json!(["busybox:latest"])]
        );
        assert_eq!(only(r#"{"since":["busybox"]}"#), vec![json!([])]);
        assert_eq!(only(r#"{"before":["busybox"]}"#), Vec::<Value>::new());
        let e = list(&store, &q(r#"filters={"label!":["a"]}"#)).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "invalid filter 'label!'")
        );
    }

    #[test]
    fn tag_refuses_digests_and_needs_a_repo() {
        let store = two();
        let e = tag(&store, "busybox", &Query::default()).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "repo is required")
        );
        let digest = format!("repo=mine@sha256:{}", "a".repeat(64));
        let e = tag(&store, "busybox", &q(&digest)).unwrap_err();
        assert_eq!(
            e.message,
            "refusing to create a tag with a digest reference"
        );
        let e = tag(&store, "nothing", &q("repo=mine")).unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        assert_eq!(
            tag(&store, "busybox", &q("repo=mine&tag=v1"))
                .unwrap()
                .status(),
            201
        );
        assert!(store.refs().contains_key("docker.io/library/mine:v1"));
    }

    #[test]
    fn rmi_follows_dockers_rules_for_images_in_use() {
        let store = two();
        let id = store.images[0].record.id.clone();
        let running = Users(vec![("c".repeat(64), id.clone(), Status::Running)]);
        let e = delete(&store, &running, "busybox", &Query::default()).unwrap_err();
        assert_eq!(e.status.as_u16(), 409);
        assert!(
            e.message.starts_with(
                "conflict: unable to remove repository reference \"busybox\" (must force) - container cccccccccccc"
            ),
            "{}",
            e.message
        );
        // Forced, a running container's image is only untagged and stays.
        let v = body_json(delete(&store, &running, "busybox", &q("force=1")).unwrap()).unwrap();
        assert_eq!(v, json!([{"Untagged": "busybox:latest"}]));
        assert_eq!(store.images().len(), 2);
        let e = delete(&store, &running, &id[7..19], &q("force=1")).unwrap_err();
        assert!(e
            .message
            .contains("(cannot be forced) - image is being used by running container"));
    }

    #[test]
    fn rmi_of_the_last_tag_deletes_the_image_and_its_layers() {
        let store = two();
        let id = store.images[0].record.id.clone();
        let v = body_json(delete(&store, &NOBODY, "busybox:latest", &Query::default()).unwrap());
        assert_eq!(
            v.unwrap(),
            json!([{"Untagged": "busybox:latest"}, {"Deleted": id}, {"Deleted": "layer1"}])
        );
        assert!(store.refs().is_empty());
    }

    #[test]
    fn prune_takes_unused_dangling_images_unless_told_otherwise() {
        let store = two();
        let dangling = store.images[1].record.id.clone();
        let stopped = Users(vec![("c".repeat(64), dangling.clone(), Status::Exited)]);
        let v = body_json(prune(&store, &stopped, &Query::default()).unwrap()).unwrap();
        assert_eq!(v, json!({"ImagesDeleted": null, "SpaceReclaimed": 0}));
        let v = body_json(prune(&store, &NOBODY, &Query::default()).unwrap()).unwrap();
        assert_eq!(
            v["ImagesDeleted"],
            json!([{"Deleted": dangling}, {"Deleted": "layer2"}])
        );
        assert_eq!(v["SpaceReclaimed"], 200);
        let all = q(r#"filters={"dangling":["false"],"label":["app=web"]}"#);
        let v = body_json(prune(&store, &NOBODY, &all).unwrap()).unwrap();
        assert_eq!(v["ImagesDeleted"][0], json!({"Untagged": "busybox:latest"}));
        assert_eq!(v["SpaceReclaimed"], 100);
    }

    const X: &str = "sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

    /// Image 1 under these references (`@` for `@sha256:X`), image 2 untagged.
    fn refs_to_one(refs: &[&str]) -> FakeStore {
        let keys: Vec<String> = refs
            .iter()
            .map(|r| match r.strip_suffix('@') {
                Some(repo) => format!("docker.io/library/{repo}@{X}"),
                None => format!("docker.io/library/{r}"),
            })
            .collect();
        let tags: Vec<(&str, usize)> = keys.iter().map(|k| (k.as_str(), 0)).collect();
        FakeStore::with(
            vec![
                image(1, "2024-01-01T00:00:00Z", &[]),
                image(2, "2024-06-01T00:00:00Z", &[]),
            ],
            &tags,
        )
    }

    fn rmi(store: &FakeStore, users: &Users, name: &str, query: &str) -> Result<Value, String> {
        match delete(store, users, name, &q(query)) {
            Ok(r) => Ok(body_json(r).unwrap()),
            Err(e) => Err(format!("{} {}", e.status.as_u16(), e.message)),
        }
    }

    fn left(store: &FakeStore) -> Vec<String> {
        store.refs().keys().map(|k| familiar(k)).collect()
    }

    const ONE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn rmi_of_a_repositorys_last_tag_takes_its_digests_and_no_others() {
        // pull repo-a:latest, then pull repo-b@sha256:X of the same image.
        let store = refs_to_one(&["repo-a:latest", "repo-a@", "repo-b@"]);
        let v = rmi(&store, &NOBODY, "repo-a:latest", "").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": "repo-a:latest"}, {"Untagged": format!("repo-a@{X}")}])
        );
        assert_eq!(left(&store), vec![format!("repo-b@{X}")]);
        assert_eq!(store.images().len(), 2, "the image stays");
        // `images` shows it as repo-b <none> with its digest; it has no tag, so it is
        // dangling, and it has a reference, so dangling=false lists it too.
        let listed = body_json(list(&store, &Query::default()).unwrap()).unwrap();
        let it = listed.as_array().unwrap().iter().find(|i| i["Id"] == ONE);
        let it = it.expect("listed");
        assert_eq!(it["RepoTags"], json!([]));
        assert_eq!(it["RepoDigests"], json!([format!("repo-b@{X}")]));
        for f in [r#"{"dangling":["true"]}"#, r#"{"dangling":["false"]}"#] {
            let v = body_json(list(&store, &q(&format!("filters={f}"))).unwrap()).unwrap();
            assert!(v.as_array().unwrap().iter().any(|i| i["Id"] == ONE), "{f}");
        }
        let v = body_json(list(&store, &q(r#"filters={"reference":["repo-b"]}"#)).unwrap());
        assert_eq!(v.unwrap().as_array().unwrap().len(), 1);
        // The last reference goes with the image.
        let v = rmi(&store, &NOBODY, &format!("repo-b@{X}"), "").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": format!("repo-b@{X}")}, {"Deleted": ONE}, {"Deleted": "layer1"}])
        );
        assert!(store.refs().is_empty());
    }

    #[test]
    fn rmi_of_one_tag_among_several_in_a_repository_keeps_the_rest() {
        let store = refs_to_one(&["repo:v1", "repo:v2", "repo@"]);
        let v = rmi(&store, &NOBODY, "repo:v1", "").unwrap();
        assert_eq!(v, json!([{"Untagged": "repo:v1"}]));
        assert_eq!(
            left(&store),
            vec!["repo:v2".to_string(), format!("repo@{X}")]
        );
        let v = rmi(&store, &NOBODY, "repo:v2", "").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": "repo:v2"}, {"Untagged": format!("repo@{X}")},
                   {"Deleted": ONE}, {"Deleted": "layer1"}])
        );
    }

    #[test]
    fn rmi_by_digest_takes_that_digest_only() {
        // A digest while a tag of its repository is left: the tag and the image stay.
        let store = refs_to_one(&["repo:v1", "repo@", "other@"]);
        let v = rmi(&store, &NOBODY, &format!("repo@{X}"), "").unwrap();
        assert_eq!(v, json!([{"Untagged": format!("repo@{X}")}]));
        assert_eq!(left(&store), vec![format!("other@{X}"), "repo:v1".into()]);
        // Digest-only references, by ID: all in one repository, so they go without -f.
        let store = refs_to_one(&["repo@"]);
        let v = rmi(&store, &NOBODY, &ONE[7..19], "").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": format!("repo@{X}")}, {"Deleted": ONE}, {"Deleted": "layer1"}])
        );
    }

    #[test]
    fn rmi_by_id_needs_force_for_several_repositories_or_tags() {
        let must = "409 conflict: unable to delete 111111111111 (must be forced) - image is referenced in multiple repositories";
        for refs in [
            &["repo-a:latest", "repo-b@"][..],
            &["repo:v1", "repo:v2"][..],
            &["repo-a@", "repo-b@"][..],
        ] {
            let store = refs_to_one(refs);
            assert_eq!(
                rmi(&store, &NOBODY, &ONE[7..19], ""),
                Err(must.into()),
                "{refs:?}"
            );
            assert_eq!(store.refs().len(), refs.len(), "nothing removed");
        }
        // A tag and its repository's digest are one reference: no -f needed.
        let store = refs_to_one(&["repo:v1", "repo@"]);
        let v = rmi(&store, &NOBODY, ONE, "").unwrap();
        assert_eq!(v[0], json!({"Untagged": "repo:v1"}));
        assert_eq!(v[2], json!({"Deleted": ONE}));
        // -f: every reference, in docker's order, then the image.
        let store = refs_to_one(&["repo-b@", "repo-a:latest", "repo-a:v2"]);
        let v = rmi(&store, &NOBODY, &ONE[7..19], "force=1").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": "repo-a:latest"}, {"Untagged": "repo-a:v2"},
                   {"Untagged": format!("repo-b@{X}")}, {"Deleted": ONE}, {"Deleted": "layer1"}])
        );
        assert!(store.refs().is_empty());
    }

    #[test]
    fn rmi_of_an_image_a_container_uses() {
        let c = "c".repeat(64);
        let stopped = Users(vec![(c.clone(), ONE.into(), Status::Exited)]);
        let running = Users(vec![(c.clone(), ONE.into(), Status::Running)]);
        // By name, the image's only reference: refused without -f, whatever the state.
        let store = refs_to_one(&["repo:v1", "repo@"]);
        for users in [&stopped, &running] {
            assert_eq!(
                rmi(&store, users, "repo:v1", ""),
                Err("409 conflict: unable to remove repository reference \"repo:v1\" (must force) - container cccccccccccc is using its referenced image 111111111111".into())
            );
        }
        // By ID.
        assert_eq!(
            rmi(&store, &stopped, &ONE[7..19], ""),
            Err("409 conflict: unable to delete 111111111111 (must be forced) - image is being used by stopped container cccccccccccc".into())
        );
        for force in ["", "force=1"] {
            assert_eq!(
                rmi(&store, &running, &ONE[7..19], force),
                Err("409 conflict: unable to delete 111111111111 (cannot be forced) - image is being used by running container cccccccccccc".into())
            );
        }
        assert_eq!(store.refs().len(), 2, "nothing removed");
        // Another repository's reference is left: the name goes without -f, the image stays.
        let store = refs_to_one(&["repo:v1", "other:v1"]);
        let v = rmi(&store, &running, "repo:v1", "").unwrap();
        assert_eq!(v, json!([{"Untagged": "repo:v1"}]));
        // Forced by name: the references go, the image stays for its container (untagged).
        let v = rmi(&store, &running, "other:v1", "force=1").unwrap();
        assert_eq!(v, json!([{"Untagged": "other:v1"}]));
        assert_eq!(store.images().len(), 2);
        // Forced by ID with a stopped container: dockerd deletes the image; skiff keeps it,
        // untagged, as the container's root filesystem is made of its layers.
        let store = refs_to_one(&["repo:v1"]);
        let v = rmi(&store, &stopped, &ONE[7..19], "force=1").unwrap();
        assert_eq!(v, json!([{"Untagged": "repo:v1"}]));
        assert_eq!(store.images().len(), 2);
    }

    /// A built image `app` (3) on an intermediate step (2) on a tagged base (1).
    fn built() -> FakeStore {
        let mut imgs = vec![
            image(1, "2024-01-01T00:00:00Z", &[]),
            image(2, "2024-02-01T00:00:00Z", &[]),
            image(3, "2024-03-01T00:00:00Z", &[]),
        ];
        imgs[1].record.parent = Some(ONE.into());
        imgs[2].record.parent = Some(imgs[1].record.id.clone());
        FakeStore::with(
            imgs,
            &[
                ("docker.io/library/base:latest", 0),
                ("docker.io/library/app:latest", 2),
            ],
        )
    }

    #[test]
    fn an_image_a_build_holds_is_neither_removed_nor_pruned() {
        let mut store = built();
        let three = store.images[2].record.id.clone();
        store.held = vec![three.clone()];
        store
            .untag(&["docker.io/library/app:latest".into()])
            .unwrap();
        let e = rmi(&store, &NOBODY, &three, "force=1").unwrap_err();
        assert!(
            e.contains("image is being used by a build in progress"),
            "{e}"
        );
        // Dangling now, but held: the prune passes it by without an error.
        assert!(prune(&store, &NOBODY, &q("")).is_ok());
        assert!(store.images().iter().any(|i| i.record.id == three));
    }

    #[test]
    fn rmi_keeps_parents_with_children_and_takes_the_steps_of_a_built_image() {
        let store = built();
        let two = store.images[1].record.id.clone();
        let three = store.images[2].record.id.clone();
        // A parent by ID: a child is a hard conflict.
        assert_eq!(
            rmi(&store, &NOBODY, &ONE[7..19], "force=1"),
            Err("409 conflict: unable to delete 111111111111 (cannot be forced) - image has dependent child images".into())
        );
        assert_eq!(
            rmi(&store, &NOBODY, &two[7..19], ""),
            Err("409 conflict: unable to delete 222222222222 (cannot be forced) - image has dependent child images".into())
        );
        // By name, its last reference goes and the image stays for its child, quietly.
        let v = rmi(&store, &NOBODY, "base", "").unwrap();
        assert_eq!(v, json!([{"Untagged": "base:latest"}]));
        // The intermediate is hidden; the untagged base under it too.
        let v = body_json(list(&store, &Query::default()).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        // The built image goes with every step it leaves without references or children.
        let v = rmi(&store, &NOBODY, "app", "").unwrap();
        assert_eq!(
            v,
            json!([{"Untagged": "app:latest"}, {"Deleted": three}, {"Deleted": "layer3"},
                   {"Deleted": two}, {"Deleted": "layer2"}, {"Deleted": ONE}, {"Deleted": "layer1"}])
        );
        // noprune: the steps stay.
        let store = built();
        let v = rmi(&store, &NOBODY, "app", "noprune=1").unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(store.images().len(), 2);
        // A tagged parent stops the pruning; so does a container of a step.
        let store = built();
        let users = Users(vec![("c".repeat(64), two.clone(), Status::Exited)]);
        let v = rmi(&store, &users, "app", "").unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        let store = built();
        let v = rmi(&store, &NOBODY, "app", "").unwrap();
        assert_eq!(
            v.as_array().unwrap().len(),
            5,
            "base:latest keeps the base: {v}"
        );
    }

    #[test]
    fn prune_counts_digest_only_images_as_dangling() {
        let store = refs_to_one(&["repo-b@"]);
        let v = body_json(prune(&store, &NOBODY, &Query::default()).unwrap()).unwrap();
        assert_eq!(
            v["ImagesDeleted"],
            json!([{"Untagged": format!("repo-b@{X}")}, {"Deleted": ONE}, {"Deleted": "layer1"},
                   {"Deleted": format!("sha256:{}", "2".repeat(64))}, {"Deleted": "layer2"}])
        );
        assert_eq!(v["SpaceReclaimed"], 300);
    }
}
