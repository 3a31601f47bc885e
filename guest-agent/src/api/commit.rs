//! `POST /commit` (an image from a container's changes) and `GET /containers/{id}/changes`.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::json;

use super::http::{json, query_all, ApiError, Query, Resp};
use super::Ctx;
use crate::build::dockerfile::{self, Instruction};
use crate::build::instructions::StageState;
use crate::containers::record::Status;
use crate::containers::Container;
use crate::images::child::Child;
use crate::images::model::RunConfig;
use crate::images::reference::ImageRef;

/// The instructions `commit --change` takes, as dockerd's list.
fn allowed(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Env(_)
            | Instruction::Expose(_)
            | Instruction::Label(_)
            | Instruction::Onbuild(_)
            | Instruction::StopSignal(_)
            | Instruction::User(_)
            | Instruction::Volume(_)
            | Instruction::Workdir(_)
            | Instruction::Healthcheck(_)
    )
}

/// Apply `--change` lines (Dockerfile instructions) to `config`.
pub fn apply_changes(config: RunConfig, changes: &[String]) -> Result<RunConfig, ApiError> {
    let mut state = StageState::new(config, '\\');
    let none = BTreeMap::new();
    for line in changes {
        let file = dockerfile::parse(&format!("FROM scratch\n{line}")).map_err(|e| {
            ApiError::bad_request(format!("invalid change {line:?}: {}", e.message))
        })?;
        for stage in &file.stages {
            for step in &stage.steps {
                if !allowed(&step.instruction) {
                    let word = line.split_whitespace().next().unwrap_or(line);
                    return Err(ApiError::bad_request(format!(
                        "{} is not a valid change command",
                        // docker's parser lowercases the keyword, and its message shows it so.
                        word.to_ascii_lowercase()
                    )));
                }
                state
                    .apply(&step.instruction, &none, &none)
                    .map_err(|e| ApiError::bad_request(format!("invalid change {line:?}: {e}")))?;
            }
        }
    }
    Ok(state.config)
}

pub async fn commit(
    ctx: &Ctx,
    q: &Query,
    raw: Option<&str>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let name = q.get("container").ok_or_else(|| {
        ApiError::bad_request("container is required: say which container to commit")
    })?;
    let c = ctx.containers.get(name)?;
    let rec = c.record();
    let tag_key = match q.get("repo") {
        Some(repo) => {
            let full = match q.get("tag") {
                Some(t) => format!("{repo}:{t}"),
                None => repo.to_string(),
            };
            let r = ImageRef::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(r.tag_key().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid reference {full:?}: a commit is tagged, not named by digest"
                ))
            })?)
        }
        None => None,
    };
    let parent = ctx.store.get(&rec.image_id).ok_or_else(|| {
        ApiError::conflict(format!(
            "the image of container {name} ({}) is no longer in the store",
            rec.image_id
        ))
    })?;
    let base: RunConfig = serde_json::to_value(&rec.config)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::internal(format!("reading the container's config: {e}")))?;
    let mut config = base.clone();
    let trimmed = String::from_utf8_lossy(body);
    let trimmed = trimmed.trim();
    if !trimmed.is_empty() && trimmed != "null" && trimmed != "{}" {
        // The body overrides the container's config field by field, as dockerd merges it.
        let over: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| ApiError::bad_request(format!("the commit's config is not JSON: {e}")))?;
        let mut merged =
            serde_json::to_value(&config).map_err(|e| ApiError::internal(e.to_string()))?;
        for (k, v) in over {
            if !v.is_null() {
                merged[k] = v;
            }
        }
        config = serde_json::from_value(merged)
            .map_err(|e| ApiError::bad_request(format!("the commit's config: {e}")))?;
    }
    config = apply_changes(config, &query_all(raw, "changes"))?;

    let pause = !matches!(q.get("pause"), Some("0") | Some("false") | Some("False"));
    let paused_here = pause && c.status() == Status::Running;
    if paused_here {
        ctx.containers.set_paused(&c, true).await?;
    }
    let layer = ctx
        .containers
        .commit_changes(&c, ctx.puller.limits.max_layer)
        .await;
    if paused_here {
        ctx.containers.set_paused(&c, false).await?;
    }
    let layer = layer?;
    let created_by = std::iter::once(rec.path.clone())
        .chain(rec.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let bytes = Child {
        parent: Some(&parent),
        config: &config,
        container_config: Some(&base),
        container: Some(&c.id),
        layer: Some(&layer),
        created_by,
        author: q.get("author"),
        comment: q.get("comment"),
    }
    .config_json()
    .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let mut layers = parent.record.layers.clone();
    layers.push(layer);
    let tags: Vec<String> = tag_key.into_iter().collect();
    let img = ctx
        .store
        .commit_local_image(&bytes, layers, Some(parent.record.id.clone()), &tags)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(json(StatusCode::CREATED, &json!({"Id": img.record.id})))
}

/// `GET /containers/{id}/changes`.
pub fn changes(ctx: &Ctx, c: &Container) -> Result<Resp, ApiError> {
    let list = ctx.containers.changes(c)?;
    Ok(json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_dockerfile_lines_and_refuse_others() {
        let c = apply_changes(
            RunConfig::default(),
            &["CMD [\"x\"]".into(), "ENV A=1".into(), "EXPOSE 80".into()],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["x".to_string()]);
        assert_eq!(c.env.unwrap(), vec!["A=1".to_string()]);
        let err = apply_changes(RunConfig::default(), &["RUN true".into()]).unwrap_err();
        assert!(
            err.message.contains("run is not a valid change command"),
            "{}",
            err.message
        );
    }
}
