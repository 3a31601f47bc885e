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
use crate::images::registry::AuthConfig;
use crate::images::store::Image;

fn lookup(images: &dyn ImageBackend, name: &str) -> Result<Image, ApiError> {
    Ok(images.resolve(name)?)
}

/// `POST /images/create?fromImage=…&tag=…&platform=…`: pull with streamed progress.
pub async fn create(
    ctx: Arc<Ctx>,
    q: Query,
    auth_header: Option<String>,
) -> Result<Resp, ApiError> {
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
        // A build step's image under another is an intermediate: shown with --all only, and
        // never dangling (docker's rules).
        let intermediate = tags.is_empty() && parents.contains(&img.record.id);
        if intermediate && (!show_all || dangling == Some(true)) {
            continue;
        }
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

/// `DELETE /images/{name}?force=…`: untag, and delete when no reference is left (docker's rules).
pub fn delete(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    name: &str,
    q: &Query,
) -> Result<Resp, ApiError> {
    let force = q.flag("force");
    let img = lookup(images, name)?;
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
    let user = users.image_in_use(&id);
    if !by_id {
        let r = ImageRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let key = r.digest_key().or_else(|| r.tag_key()).unwrap_or_default();
        let last_tag = images.tags_of(&id).iter().all(|t| *t == key);
        if let (Some((cid, _)), true, false) = (&user, last_tag, force) {
            return Err(ApiError::conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                &cid[..12]
            )));
        }
        for k in images.untag(&[key])? {
            items.push(json!({ "Untagged": familiar(&k) }));
        }
        if !images.tags_of(&id).is_empty() {
            return Ok(json(StatusCode::OK, &items));
        }
        // The last tag is gone: the digest references go with the image.
    } else {
        let repos: BTreeSet<String> = images
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
    let mut refs: Vec<String> = images.tags_of(&id);
    refs.extend(images.digests_of(&id));
    for k in images.untag(&refs)? {
        items.push(json!({ "Untagged": familiar(&k) }));
    }
    if user.is_some() {
        return Ok(json(StatusCode::OK, &items));
    }
    if has_children(images, &id) {
        // A build step's image under another: docker keeps it (untagged) for its children.
        return Ok(json(StatusCode::OK, &items));
    }
    for d in delete_image(images, users, &id)?.0 {
        items.push(json!({ "Deleted": d }));
    }
    Ok(json(StatusCode::OK, &items))
}

fn has_children(images: &dyn ImageBackend, id: &str) -> bool {
    images
        .images()
        .iter()
        .any(|i| i.record.parent.as_deref() == Some(id))
}

/// Delete an image and its unshared layers, then each parent it leaves untagged, unused and
/// without children (the build steps under a built image), as docker's rmi and prune do.
/// Returns the IDs docker reports as deleted, and the layers' bytes reclaimed.
fn delete_image(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    id: &str,
) -> Result<(Vec<String>, u64), ApiError> {
    let mut out = Vec::new();
    let mut reclaimed = 0;
    let mut next = Some(id.to_string());
    while let Some(cur) = next.take() {
        let img = images.resolve(&cur).ok();
        let sizes: std::collections::HashMap<String, u64> = img
            .iter()
            .flat_map(|i| i.record.layers.iter())
            .map(|l| (l.diff_id.clone(), l.size))
            .collect();
        let layers = images.delete(&cur)?;
        out.push(cur);
        for l in layers {
            reclaimed += sizes.get(&l).copied().unwrap_or(0);
            out.push(l);
        }
        if let Some(p) = img.and_then(|i| i.record.parent) {
            let free = images.resolve(&p).is_ok()
                && images.tags_of(&p).is_empty()
                && images.digests_of(&p).is_empty()
                && users.image_in_use(&p).is_none()
                && !has_children(images, &p);
            if free {
                next = Some(p);
            }
        }
    }
    Ok((out, reclaimed))
}

/// `POST /images/prune`: dangling images by default, every unused one with dangling=false.
pub fn prune(
    images: &dyn ImageBackend,
    users: &dyn ImageUsers,
    q: &Query,
) -> Result<Resp, ApiError> {
    let prune = PruneFilters::parse(q.get("filters"), &["dangling"])?;
    let only_dangling = prune.filters.bool("dangling")?.unwrap_or(true);
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for img in images.images() {
        let id = img.record.id.clone();
        let tags = images.tags_of(&id);
        // Gone with a child pruned before it, or a parent kept for its children (pruning
        // the child takes it with it).
        if images.resolve(&id).is_err() || has_children(images, &id) {
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
        let mut refs = tags;
        refs.extend(images.digests_of(&id));
        for k in images.untag(&refs)? {
            deleted.push(json!({ "Untagged": familiar(&k) }));
        }
        let (removed, bytes) = delete_image(images, users, &id)?;
        reclaimed += bytes;
        for d in removed {
            deleted.push(json!({ "Deleted": d }));
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
}
