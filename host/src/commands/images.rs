//! `images`, `history`, `tag`, `rmi`, `image prune`, `image inspect` — with docker's columns.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};

use anyhow::Result;
use bollard::query_parameters::{
    ListImagesOptions, PruneImagesOptions, RemoveImageOptions, TagImageOptions,
};
use serde_json::{json, Value};
use skiff_common::units::{human_duration, human_size};

use super::pull::split_reference;
use super::{daemon_error, parse_filters, short_id, Engine};
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
fn image_rows(images: &[bollard::models::ImageSummary], no_trunc: bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for img in images {
        let id = if no_trunc {
            img.id.clone()
        } else {
            short_id(&img.id)
        };
        // repository → (tags, digest) as docker groups them.
        let mut repos: BTreeMap<String, (Vec<String>, Option<String>)> = BTreeMap::new();
        for t in &img.repo_tags {
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
        for d in &img.repo_digests {
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
                "CreatedSince": ago(img.created),
                "CreatedAt": created_at(img.created),
                "Size": human_size(img.size.max(0) as u64),
                "VirtualSize": human_size(img.size.max(0) as u64),
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

pub async fn list(engine: &Engine, a: &ImagesArgs) -> Result<u8> {
    let mut filters = parse_filters(&a.filters)?;
    if let Some(r) = &a.reference {
        filters
            .entry("reference".into())
            .or_default()
            .push(r.clone());
    }
    let opts = ListImagesOptions {
        all: a.all,
        digests: true,
        filters: if filters.is_empty() {
            None
        } else {
            Some(filters)
        },
        ..Default::default()
    };
    let images = engine
        .docker
        .list_images(Some(opts))
        .await
        .map_err(daemon_error)?;
    if a.quiet {
        let mut seen = HashSet::new();
        for img in &images {
            let id = if a.no_trunc {
                img.id.clone()
            } else {
                short_id(&img.id)
            };
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

/// docker's `Ellipsis`: cut to `max` characters, the last one an ellipsis.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub async fn history(engine: &Engine, a: &HistoryArgs) -> Result<u8> {
    let items = engine
        .docker
        .image_history(&a.image)
        .await
        .map_err(daemon_error)?;
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = if h.id == "<missing>" || a.no_trunc { h.id.clone() } else { short_id(&h.id) };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if a.no_trunc { created_by } else { ellipsis(&created_by, 45) };
            json!({
                "ID": id,
                "CreatedSince": if a.human { ago(h.created) } else { created_at(h.created) },
                "CreatedAt": chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(h.size.max(0) as u64) } else { h.size.to_string() },
                "Comment": h.comment,
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
    let opts = TagImageOptions {
        repo: Some(repo),
        tag: Some(tag.unwrap_or_else(|| "latest".into())),
    };
    engine
        .docker
        .tag_image(&a.source, Some(opts))
        .await
        .map_err(daemon_error)?;
    Ok(0)
}

pub async fn remove(engine: &Engine, a: &RmiArgs) -> Result<u8> {
    let mut failed = false;
    for name in &a.images {
        let opts = RemoveImageOptions {
            force: a.force,
            noprune: a.no_prune,
            ..Default::default()
        };
        match engine.docker.remove_image(name, Some(opts), None).await {
            Ok(items) => {
                for i in items {
                    if let Some(u) = i.untagged {
                        crate::output::out_line!("Untagged: {u}");
                    }
                    if let Some(d) = i.deleted {
                        crate::output::out_line!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                failed = true;
                let err = daemon_error(e);
                eprintln!("{err}");
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn confirm(warning: &str) -> Result<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub async fn prune(engine: &Engine, a: &PruneArgs) -> Result<u8> {
    let mut filters = parse_filters(&a.filters)?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning)? {
        return Ok(0);
    }
    filters.insert("dangling".into(), vec![(!a.all).to_string()]);
    let res = engine
        .docker
        .prune_images(Some(PruneImagesOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(daemon_error)?;
    let deleted = res.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        crate::output::out_line!("Deleted Images:");
        for d in &deleted {
            if let Some(u) = &d.untagged {
                crate::output::out_line!("untagged: {u}");
            }
            if let Some(x) = &d.deleted {
                crate::output::out_line!("deleted: {x}");
            }
        }
        crate::output::out_line!();
    }
    crate::output::out_line!(
        "Total reclaimed space: {}",
        human_size(res.space_reclaimed.unwrap_or(0).max(0) as u64)
    );
    Ok(0)
}

fn encode_name(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b':')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'@');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// `image inspect` (images only) and `inspect` (any object; images for now).
pub async fn inspect(engine: &Engine, a: &InspectArgs, images_only: bool) -> Result<u8> {
    let client = engine.raw();
    let mut found = Vec::new();
    let mut failed = false;
    for name in &a.names {
        let resp = client.request("GET", &format!("/images/{}/json", encode_name(name)), None)?;
        if resp.status == 200 {
            found.push(serde_json::from_slice::<Value>(&resp.body)?);
        } else {
            failed = true;
            let what = if images_only { "image" } else { "object" };
            if resp.status == 404 {
                eprintln!("Error: No such {what}: {name}");
            } else {
                eprintln!("Error response from daemon: {}", resp.message());
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
