//! The config of an image made here from another: a build step, `commit`, `import`. It is the
//! parent's config with the new runtime defaults, one more history entry and, when the step
//! changed files, one more layer — docker's shape, so `history` and `inspect` read as they do
//! for docker's images.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::model::{Platform, RunConfig};
use super::store::{Image, LayerRecord};

pub struct Child<'a> {
    /// None for `FROM scratch` and `import`.
    pub parent: Option<&'a Image>,
    pub config: &'a RunConfig,
    /// What the classic builder records as the step's container config (its `Cmd` names the
    /// step, which is what the build cache compares).
    pub container_config: Option<&'a RunConfig>,
    pub container: Option<&'a str>,
    pub layer: Option<&'a LayerRecord>,
    pub created_by: String,
    pub author: Option<&'a str>,
    pub comment: Option<&'a str>,
}

impl Child<'_> {
    /// The new config's bytes (its digest is the image ID).
    pub fn config_json(&self) -> Result<Vec<u8>> {
        let mut doc: Map<String, Value> = match self.parent {
            Some(p) => {
                serde_json::from_slice(&p.config_raw).context("reading the parent's config")?
            }
            None => {
                let host = Platform::host();
                let mut m = Map::new();
                m.insert("architecture".into(), json!(host.architecture));
                m.insert("os".into(), json!(host.os));
                m
            }
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        doc.insert("created".into(), json!(now));
        doc.insert("config".into(), serde_json::to_value(self.config)?);
        match self.container_config {
            Some(cc) => doc.insert("container_config".into(), serde_json::to_value(cc)?),
            None => doc.remove("container_config"),
        };
        match self.container {
            Some(id) => doc.insert("container".into(), json!(id)),
            None => doc.remove("container"),
        };
        match self.author {
            Some(a) if !a.is_empty() => doc.insert("author".into(), json!(a)),
            _ => doc.remove("author"),
        };
        let rootfs = doc
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if let Some(layer) = self.layer {
            if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
                ids.push(json!(layer.diff_id));
            } else {
                *rootfs = json!({"type": "layers", "diff_ids": [layer.diff_id]});
            }
        }
        let mut entry = Map::new();
        entry.insert("created".into(), json!(now));
        entry.insert("created_by".into(), json!(self.created_by));
        if let Some(a) = self.author.filter(|a| !a.is_empty()) {
            entry.insert("author".into(), json!(a));
        }
        if let Some(c) = self.comment.filter(|c| !c.is_empty()) {
            entry.insert("comment".into(), json!(c));
        }
        if self.layer.is_none() {
            entry.insert("empty_layer".into(), json!(true));
        }
        match doc.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(Value::Object(entry)),
            None => {
                doc.insert("history".into(), json!([entry]));
            }
        }
        Ok(serde_json::to_vec(&doc)?)
    }
}
