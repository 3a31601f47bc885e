//! The config of an imported root filesystem, as dockerd's `ImportImage` writes it (the
//! `--change` lines are applied before, by the builder's own instructions).

use serde_json::{json, Map, Value};

use super::archive::ArchiveError;
use super::model::{Platform, RunConfig};

/// Go's zero `container.Config`: dockerd builds an import's config from it.
fn zero_config() -> Map<String, Value> {
    match json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        "StdinOnce": false, "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The config of an image imported from a root filesystem tar whose diff ID is `diff_id`:
/// this host's platform, one history entry, `comment` (docker: the message, or "Imported
/// from SRC").
pub fn import_config(
    diff_id: &str,
    changes: &RunConfig,
    comment: &str,
    created: &str,
) -> Result<Vec<u8>, ArchiveError> {
    // Go's zero config with what the changes set over it.
    let mut config = zero_config();
    if let Value::Object(set) =
        serde_json::to_value(changes).map_err(|e| ArchiveError::Internal(e.into()))?
    {
        for (k, v) in set {
            if !v.is_null() {
                config.insert(k, v);
            }
        }
    }
    let host = Platform::host();
    let doc = json!({
        "architecture": host.architecture,
        "comment": comment,
        "config": config,
        "container_config": zero_config(),
        "created": created,
        "history": [{"created": created, "comment": comment}],
        "os": host.os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    serde_json::to_vec(&doc).map_err(|e| ArchiveError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::model::ImageConfig;

    #[test]
    fn an_import_config_is_dockerds() {
        let changes = RunConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let raw = import_config(
            "sha256:ab",
            &changes,
            "Imported from -",
            "2024-01-01T00:00:00Z",
        )
        .unwrap();
        let c: ImageConfig = serde_json::from_slice(&raw).unwrap();
        assert_eq!(c.rootfs.diff_ids, vec!["sha256:ab".to_string()]);
        assert_eq!(c.rootfs.kind, "layers");
        assert_eq!(c.history[0].comment.as_deref(), Some("Imported from -"));
        assert!(c.history[0].created_by.is_none());
        assert_eq!(c.config.unwrap().cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.os, "linux");
    }
}
