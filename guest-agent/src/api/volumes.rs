//! `/volumes`: list, create, inspect, remove and prune, as dockerd answers them.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::backends::VolumeBackend;
use super::filters::Filters;
use super::http::{empty, json, ApiError, Query, Resp};
use super::Ctx;
use crate::volumes::{CreateRequest, Volume, ANONYMOUS_LABEL};

/// A volume as `GET /volumes/{name}` shows it.
fn view(vols: &dyn VolumeBackend, v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": vols.mountpoint(&v.name),
        "Name": v.name,
        "Options": (!v.options.is_empty()).then_some(&v.options),
        "Scope": "local",
    })
}

/// docker's `name` filter is a regular expression; the forms people write (a plain part of
/// the name, `^…`, `…$`) are matched here without a regex engine.
fn name_matches(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix('^'), pattern.strip_suffix('$')) {
        (Some(p), _) if p.ends_with('$') => name == &p[..p.len() - 1],
        (Some(p), _) => name.starts_with(p),
        (None, Some(p)) => name.ends_with(p),
        (None, None) => name.contains(pattern),
    }
}

pub fn list(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &list_json(&*ctx.containers, q)?))
}

fn list_json(vols: &dyn VolumeBackend, q: &Query) -> Result<Value, ApiError> {
    let f = Filters::parse(q.get("filters"))?;
    f.only(&["dangling", "name", "label", "driver"])?;
    let dangling = f.bool("dangling")?;
    let shown: Vec<Value> = vols
        .volumes()
        .iter()
        .filter(|v| {
            f.any("name", |p| name_matches(p, &v.name))
                && f.any("driver", |d| d == v.driver)
                && f.labels_match(|k| v.labels.get(k).map(String::as_str))
                && dangling.is_none_or(|d| d == vols.users(&v.name).is_empty())
        })
        .map(|v| view(vols, v))
        .collect();
    Ok(json!({"Volumes": shown, "Warnings": null}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

pub fn create(ctx: &Ctx, body: &[u8]) -> Result<Resp, ApiError> {
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid volume create request: {e}")))?
    };
    let v = ctx.containers.volumes.create(CreateRequest {
        name: b.name.unwrap_or_default(),
        driver: b.driver.unwrap_or_default(),
        labels: b.labels.unwrap_or_default(),
        options: b.driver_opts.unwrap_or_default(),
    })?;
    Ok(json(StatusCode::CREATED, &view(&*ctx.containers, &v)))
}

pub fn inspect(ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let vols: &dyn VolumeBackend = &*ctx.containers;
    Ok(json(StatusCode::OK, &view(vols, &vols.volume(name)?)))
}

/// Deleting a volume's files takes as long as they are many: on a blocking thread, not one of
/// the runtime's workers.
pub async fn remove(ctx: &Ctx, name: &str, q: &Query) -> Result<Resp, ApiError> {
    let (containers, name, force) = (ctx.containers.clone(), name.to_string(), q.flag("force"));
    tokio::task::spawn_blocking(move || containers.remove_volume(&name, force))
        .await
        .map_err(|e| ApiError::internal(format!("removing the volume: {e}")))??;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// What `volume prune` may take, by its filters: from API 1.42 only anonymous volumes unless
/// `all=true`; older clients get every unused volume, as they did from dockerd then.
fn prunable(
    q: &Query,
    api: (u32, u32),
) -> Result<impl Fn(&Volume) -> bool + Send + 'static, ApiError> {
    let f = Filters::parse(q.get("filters"))?;
    f.only(&["label", "label!", "all"])?;
    let all = f.bool("all")?.unwrap_or(api < (1, 42));
    Ok(move |v: &Volume| {
        (all || v.labels.contains_key(ANONYMOUS_LABEL))
            && f.labels_match(|k| v.labels.get(k).map(String::as_str))
    })
}

pub async fn prune(ctx: &Ctx, q: &Query, api: (u32, u32)) -> Result<Resp, ApiError> {
    let admit = prunable(q, api)?;
    let containers = ctx.containers.clone();
    let (deleted, bytes) = tokio::task::spawn_blocking(move || containers.prune_volumes(admit))
        .await
        .map_err(|e| ApiError::internal(format!("pruning volumes: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": bytes}),
    ))
}

/// The volumes as `/system/df` lists them: with their size and how many containers use them.
pub fn usage(vols: &dyn VolumeBackend) -> Vec<Value> {
    vols.volumes()
        .iter()
        .map(|v| {
            let mut j = view(vols, v);
            j["UsageData"] =
                json!({"Size": vols.size(&v.name), "RefCount": vols.users(&v.name).len()});
            j
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backends::fake::FakeVolumes;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn anon() -> (&'static str, &'static str) {
        (ANONYMOUS_LABEL, "")
    }

    fn fixture() -> FakeVolumes {
        let mut vols = FakeVolumes::with(&[
            ("capvol", &[("team", "a")]),
            ("cache", &[]),
            ("a1", &[anon()]),
        ]);
        vols.volumes[1]
            .options
            .insert("type".into(), "tmpfs".into());
        vols.users.insert("capvol".into(), vec!["c1".into()]);
        vols
    }

    fn names(v: &Value) -> Vec<&str> {
        v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_list_is_dockers_json_with_its_filters() {
        let vols = fixture();
        let all = list_json(&vols, &q("")).unwrap();
        assert_eq!(
            all["Volumes"][0],
            json!({"CreatedAt": "2026-12-04T19:30:18Z", "Driver": "local", "Labels": {"team": "a"},
                   "Mountpoint": "/var/lib/skiff/volumes/capvol/_data", "Name": "capvol",
                   "Options": null, "Scope": "local"})
        );
        assert_eq!(all["Volumes"][1]["Options"], json!({"type": "tmpfs"}));
        assert_eq!(all["Warnings"], Value::Null);
        let only = |f: &str| {
            names(&list_json(&vols, &q(&format!("filters={f}"))).unwrap())
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(only(r#"{"dangling":{"true":true}}"#), ["cache", "a1"]);
        assert_eq!(only(r#"{"dangling":["false"]}"#), ["capvol"]);
        assert_eq!(only(r#"{"label":["team=a"]}"#), ["capvol"]);
        assert_eq!(only(r#"{"name":["^ca"]}"#), ["capvol", "cache"]);
        assert_eq!(only(r#"{"driver":["nfs"]}"#), Vec::<String>::new());
        let e = list_json(&vols, &q(r#"filters={"colour":["red"]}"#)).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "invalid filter 'colour'")
        );
    }

    #[test]
    fn prune_takes_anonymous_volumes_unless_all_and_old_clients_all() {
        let vols = fixture();
        let chosen = |query: &str, api| {
            let admit = prunable(&q(query), api).unwrap();
            vols.volumes
                .iter()
                .filter(|v| admit(v))
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(chosen("", (1, 47)), ["a1"]);
        assert_eq!(
            chosen(r#"filters={"all":["true"]}"#, (1, 47)),
            ["capvol", "cache", "a1"]
        );
        assert_eq!(chosen("", (1, 41)), ["capvol", "cache", "a1"]);
        assert_eq!(
            chosen(r#"filters={"all":["1"],"label!":["team"]}"#, (1, 47)),
            ["cache", "a1"]
        );
        assert!(prunable(&q(r#"filters={"until":["1h"]}"#), (1, 47)).is_err());
    }

    #[test]
    fn df_counts_the_users_and_bytes() {
        let u = usage(&fixture());
        assert_eq!(u[0]["UsageData"], json!({"Size": 6, "RefCount": 1}));
        assert_eq!(u[2]["UsageData"], json!({"Size": 2, "RefCount": 0}));
    }

    #[test]
    fn name_filters_match_as_people_write_them() {
        assert!(name_matches("cap", "capvol"));
        assert!(name_matches("^cap", "capvol"));
        assert!(!name_matches("^vol", "capvol"));
        assert!(name_matches("vol$", "capvol"));
        assert!(name_matches("^capvol$", "capvol"));
        assert!(!name_matches("^capvo$", "capvol"));
    }
}
