//! `images`, `history`, `tag`, `rmi`, `image prune`, `image inspect` — with docker's columns.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use serde_json::{json, Value};
use skiff_common::units::{human_duration, human_size};

use super::api::{message_of, query, seg, status_of, Body, Filters};
use super::gofmt::ellipsis;
use super::pull::split_reference;
use super::term::confirm;
use super::{short_id, Engine};
use crate::cli::{HistoryArgs, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};
use crate::output::{print_template, render, table, Format};
use crate::SkiffError;

fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

fn created_at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// Split `name@sha256:…` into name and digest.
fn split_digest(s: &str) -> (&str, &str) {
    s.split_once('@').unwrap_or((s, ""))
}

/// One row of `skiff images`, with the fields docker's templates know.
fn image_rows(images: &[Value], no_trunc: bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for img in images {
        let id = image_id(img, no_trunc);
        let created = img["Created"].as_i64().unwrap_or(0);
        let size = img["Size"].as_i64().unwrap_or(0).max(0) as u64;
        // repository → (tags, digest) as docker groups them.
        let mut repos: BTreeMap<String, (Vec<String>, Option<String>)> = BTreeMap::new();
        for t in strings(&img["RepoTags"]) {
            if t == "<none>:<none>" {
                continue;
            }
            let (name, tag) = split_reference(t);
            repos
                .entry(name)
                .or_default()
                .0
                .push(tag.unwrap_or_default());
        }
        for d in strings(&img["RepoDigests"]) {
            let (name, digest) = split_digest(d);
            if name == "<none>" {
                continue;
            }
            repos.entry(name.to_string()).or_default().1 = Some(digest.to_string());
        }
        let base = |repo: &str, tag: &str, digest: &Option<String>| {
            json!({
                "ID": id,
                "Repository": repo,
                "Tag": tag,
                "Digest": digest.clone().unwrap_or_else(|| "<none>".into()),
                "CreatedSince": ago(created),
                "CreatedAt": created_at(created),
                "Size": human_size(size),
                "VirtualSize": human_size(size),
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "Containers": "N/A",
            })
        };
        if repos.is_empty() {
            rows.push(base("<none>", "<none>", &None));
        }
        for (repo, (tags, digest)) in &repos {
            if tags.is_empty() {
                rows.push(base(repo, "<none>", digest));
            }
            for t in tags {
                rows.push(base(repo, t, digest));
            }
        }
    }
    rows
}

/// The strings of a JSON array (absent or null: none).
fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn image_id(img: &Value, no_trunc: bool) -> String {
    let id = img["Id"].as_str().unwrap_or_default();
    if no_trunc {
        id.to_string()
    } else {
        short_id(id)
    }
}

/// The engine's answer as a list (an absent one is empty).
fn list_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

pub async fn list(engine: &Engine, a: &ImagesArgs) -> Result<u8> {
    let mut filters = Filters::parse(&a.filters, "-f, --filter")?;
    if let Some(r) = &a.reference {
        filters.add("reference", r);
    }
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    if let Some(f) = filters.to_query() {
        q.push(("filters", f));
    }
    let images = list_of(
        engine
            .api()
            .json("GET", &format!("/images/json{}", query(&q)), Body::None)
            .await?,
    );
    if a.quiet {
        let mut seen = HashSet::new();
        for img in &images {
            let id = image_id(img, a.no_trunc);
            if seen.insert(id.clone()) {
                crate::output::out_line!("{id}");
            }
        }
        return Ok(0);
    }
    let rows = image_rows(&images, a.no_trunc);
    match Format::parse(a.format.as_deref()) {
        Format::Json => {
            for r in &rows {
                crate::output::out_line!("{}", serde_json::to_string(r)?);
            }
        }
        Format::Template { table, text } => {
            print_template(table, &text, &image_header, &rows).map_err(SkiffError::new)?;
        }
        Format::Default => {
            let mut cols = vec!["Repository", "Tag"];
            if a.digests {
                cols.push("Digest");
            }
            cols.extend(["ID", "CreatedSince", "Size"]);
            let mut out = vec![cols.iter().map(|c| image_header(c)).collect::<Vec<_>>()];
            for r in &rows {
                out.push(
                    cols.iter()
                        .map(|c| r[*c].as_str().unwrap_or_default().to_string())
                        .collect(),
                );
            }
            crate::output::out_text!("{}", table(&out));
        }
    }
    Ok(0)
}

fn image_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID",
        "CreatedSince" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "SharedSize" => "SHARED SIZE",
        "UniqueSize" => "UNIQUE SIZE",
        "VirtualSize" => "VIRTUAL SIZE",
        other => return other.to_uppercase(),
    }
    .to_string()
}

pub async fn history(engine: &Engine, a: &HistoryArgs) -> Result<u8> {
    let items = list_of(
        engine
            .api()
            .json(
                "GET",
                &format!("/images/{}/history", seg(&a.image)),
                Body::None,
            )
            .await?,
    );
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let raw_id = h["Id"].as_str().unwrap_or_default();
            let id = if raw_id == "<missing>" || a.no_trunc { raw_id.to_string() } else { short_id(raw_id) };
            let created = h["Created"].as_i64().unwrap_or(0);
            let size = h["Size"].as_i64().unwrap_or(0);
            let created_by = h["CreatedBy"].as_str().unwrap_or_default().replace('\t', " ");
            let created_by = if a.no_trunc { created_by } else { ellipsis(&created_by, 45) };
            json!({
                "ID": id,
                "CreatedSince": if a.human { ago(created) } else { created_at(created) },
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(size.max(0) as u64) } else { size.to_string() },
                "Comment": h["Comment"].as_str().unwrap_or_default(),
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            crate::output::out_line!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let header = |f: &str| match f {
        "ID" => "IMAGE".to_string(),
        "CreatedSince" => "CREATED".to_string(),
        "CreatedBy" => "CREATED BY".to_string(),
        "CreatedAt" => "CREATED AT".to_string(),
        other => other.to_uppercase(),
    };
    match Format::parse(a.format.as_deref()) {
        Format::Json => {
            for r in &rows {
                crate::output::out_line!("{}", serde_json::to_string(r)?);
            }
        }
        Format::Template { table, text } => {
            print_template(table, &text, &header, &rows).map_err(SkiffError::new)?
        }
        Format::Default => {
            let cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"];
            let mut out = vec![cols.iter().map(|c| header(c)).collect::<Vec<_>>()];
            for r in &rows {
                out.push(
                    cols.iter()
                        .map(|c| r[*c].as_str().unwrap_or_default().to_string())
                        .collect(),
                );
            }
            crate::output::out_text!("{}", table(&out));
        }
    }
    Ok(0)
}

pub async fn tag(engine: &Engine, a: &TagArgs) -> Result<u8> {
    let (repo, tag) = split_reference(&a.target);
    if a.target.contains('@') {
        return Err(SkiffError::new(format!(
            "refusing to create a tag with a digest reference: {}",
            a.target
        ))
        .into());
    }
    let q = query(&[
        ("repo", repo),
        ("tag", tag.unwrap_or_else(|| "latest".into())),
    ]);
    engine
        .api()
        .call(
            "POST",
            &format!("/images/{}/tag{q}", seg(&a.source)),
            Body::None,
        )
        .await?;
    Ok(0)
}

pub async fn remove(engine: &Engine, a: &RmiArgs) -> Result<u8> {
    let api = engine.api();
    let mut q = Vec::new();
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let q = query(&q);
    let mut failed = false;
    for name in &a.images {
        let target = format!("/images/{}{q}", seg(name));
        match api.json("DELETE", &target, Body::None).await {
            Ok(items) => {
                for i in list_of(items) {
                    if let Some(u) = i["Untagged"].as_str() {
                        crate::output::out_line!("Untagged: {u}");
                    }
                    if let Some(d) = i["Deleted"].as_str() {
                        crate::output::out_line!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{}", message_of(&e));
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn prune(engine: &Engine, a: &PruneArgs) -> Result<u8> {
    let mut filters = Filters::parse(&a.filters, "--filter")?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(warning)? {
        return Ok(0);
    }
    filters.set("dangling", &(!a.all).to_string());
    let q = query(&[("filters", filters.to_query().unwrap_or_default())]);
    let res = engine
        .api()
        .json("POST", &format!("/images/prune{q}"), Body::None)
        .await?;
    let deleted = list_of(res["ImagesDeleted"].clone());
    if !deleted.is_empty() {
        crate::output::out_line!("Deleted Images:");
        for d in &deleted {
            if let Some(u) = d["Untagged"].as_str() {
                crate::output::out_line!("untagged: {u}");
            }
            if let Some(x) = d["Deleted"].as_str() {
                crate::output::out_line!("deleted: {x}");
            }
        }
        crate::output::out_line!();
    }
    crate::output::out_line!(
        "Total reclaimed space: {}",
        human_size(res["SpaceReclaimed"].as_i64().unwrap_or(0).max(0) as u64)
    );
    Ok(0)
}

/// `image inspect` (images only) and `inspect` (any object; images for now).
pub async fn inspect(engine: &Engine, a: &InspectArgs, images_only: bool) -> Result<u8> {
    let api = engine.api();
    let mut found = Vec::new();
    let mut failed = false;
    for name in &a.names {
        match api
            .json("GET", &format!("/images/{}/json", seg(name)), Body::None)
            .await
        {
            Ok(v) => found.push(v),
            Err(e) => {
                let Some(status) = status_of(&e) else {
                    // Not an engine answer: the agent is unreachable, and so for every name.
                    return Err(e);
                };
                failed = true;
                let what = if images_only { "image" } else { "object" };
                if status == 404 {
                    eprintln!("Error: No such {what}: {name}");
                } else {
                    eprintln!("{}", message_of(&e));
                }
            }
        }
    }
    match a.format.as_deref() {
        Some(f) => {
            let text = if f == "json" { "{{json .}}" } else { f };
            for v in &found {
                crate::output::out_line!("{}", render(text, v).map_err(SkiffError::new)?);
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&found, &mut ser)?;
            crate::output::out_line!("{}", String::from_utf8_lossy(&buf));
        }
    }
    Ok(if failed { 1 } else { 0 })
}
