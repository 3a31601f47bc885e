//! `/volumes`: list, create, inspect, remove and prune, as dockerd answers them.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::filters::Filters;
use super::http::{empty, json, ApiError, Query, Resp};
use super::Ctx;
use crate::volumes::{CreateRequest, Volume, ANONYMOUS_LABEL};

/// A volume as `GET /volumes/{name}` shows it.
pub fn view(ctx: &Ctx, v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": ctx.containers.volumes.mountpoint(&v.name),
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
    let f = Filters::parse(q.get("filters"))?;
    f.only(&["dangling", "name", "label", "driver"])?;
    let dangling = f.bool("dangling")?;
    let vols: Vec<Value> = ctx
        .containers
        .volumes
        .list()
        .iter()
        .filter(|v| {
            f.any("name", |p| name_matches(p, &v.name))
                && f.any("driver", |d| d == v.driver)
                && f.labels_match(|k| v.labels.get(k).map(String::as_str))
                && dangling.is_none_or(|d| d == ctx.containers.volume_users(&v.name).is_empty())
        })
        .map(|v| view(ctx, v))
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"Volumes": vols, "Warnings": null}),
    ))
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
    Ok(json(StatusCode::CREATED, &view(ctx, &v)))
}

pub fn inspect(ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let v = ctx.containers.volumes.get(name)?;
    Ok(json(StatusCode::OK, &view(ctx, &v)))
}

pub fn remove(ctx: &Ctx, name: &str, q: &Query) -> Result<Resp, ApiError> {
    ctx.containers.remove_volume(name, q.flag("force"))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// From API 1.42 a prune without `all=true` removes anonymous volumes only; older clients
/// get every unused volume, as they did from dockerd then.
pub fn prune(ctx: &Ctx, q: &Query, api: (u32, u32)) -> Result<Resp, ApiError> {
    let f = Filters::parse(q.get("filters"))?;
    f.only(&["label", "label!", "all"])?;
    let all = f.bool("all")?.unwrap_or(api < (1, 42));
    let (deleted, bytes) = ctx.containers.prune_volumes(|v| {
        (all || v.labels.contains_key(ANONYMOUS_LABEL))
            && f.labels_match(|k| v.labels.get(k).map(String::as_str))
    });
    Ok(json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": bytes}),
    ))
}

/// The volumes as `/system/df` lists them: with their size and how many containers use them.
pub fn usage(ctx: &Ctx) -> Vec<Value> {
    ctx.containers
        .volumes
        .list()
        .iter()
        .map(|v| {
            let mut j = view(ctx, v);
            j["UsageData"] = json!({
                "Size": ctx.containers.volumes.size(&v.name),
                "RefCount": ctx.containers.volume_users(&v.name).len(),
            });
            j
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
