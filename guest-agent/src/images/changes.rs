//! Dockerfile instructions applied to an image's config (`docker import --change`), and the
//! config of an imported root filesystem, as dockerd's `ImportImage` writes it.

use serde_json::{json, Map, Value};

use super::archive::ArchiveError;
use super::model::Platform;

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

/// Words of an instruction's arguments: whitespace-separated, with `"…"`, `'…'` and `\`
/// as the Dockerfile's shell-like words have them.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        Some(q) if q == quote => break,
                        Some('\\') if quote == '"' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or the old form `k v…`.
fn pairs(kw: &str, args: &str) -> Result<Vec<(String, String)>, String> {
    let first = args.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = args
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{kw} needs a name and a value"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words(args)?
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("{kw}: {w:?} is not name=value"))
        })
        .collect()
}

/// The JSON form `["a", "b"]`, or the shell form run by `/bin/sh -c`.
fn exec_form(args: &str, shell: bool) -> Vec<String> {
    let t = args.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    if shell {
        vec!["/bin/sh".into(), "-c".into(), t.to_string()]
    } else {
        vec![t.to_string()]
    }
}

/// Apply `--change` instructions to `config` (a `container.Config` object).
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ArchiveError> {
    for change in changes {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (kw, args) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let kw_up = kw.to_ascii_uppercase();
        let bad = |why: String| ArchiveError::invalid(format!("{change:?}: {why}"));
        let args = args.trim();
        if args.is_empty() {
            return Err(bad(format!("{kw_up} requires at least one argument")));
        }
        match kw_up.as_str() {
            "CMD" => {
                config.insert("Cmd".into(), json!(exec_form(args, true)));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), json!(exec_form(args, true)));
            }
            "ENV" => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                for (k, v) in pairs("ENV", args).map_err(bad)? {
                    let item = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(e) => *e = item,
                        None => env.push(item),
                    }
                }
                config.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let mut labels = match config.get("Labels") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for (k, v) in pairs("LABEL", args).map_err(bad)? {
                    labels.insert(k, json!(v));
                }
                config.insert("Labels".into(), Value::Object(labels));
            }
            "WORKDIR" => {
                let dir = args.to_string();
                let cur = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let dir = if dir.starts_with('/') {
                    dir
                } else {
                    format!(
                        "{}/{dir}",
                        if cur.is_empty() {
                            ""
                        } else {
                            cur.trim_end_matches('/')
                        }
                    )
                };
                config.insert("WorkingDir".into(), json!(dir));
            }
            "USER" => {
                config.insert("User".into(), json!(args));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(args));
            }
            "EXPOSE" => {
                let mut ports = match config.get("ExposedPorts") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for p in args.split_whitespace() {
                    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    let ok = !num.is_empty()
                        && num.split('-').all(|n| n.parse::<u16>().is_ok())
                        && matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp");
                    if !ok {
                        return Err(bad(format!("invalid port {p:?}")));
                    }
                    ports.insert(format!("{num}/{}", proto.to_ascii_lowercase()), json!({}));
                }
                config.insert("ExposedPorts".into(), Value::Object(ports));
            }
            "VOLUME" => {
                let mut vols = match config.get("Volumes") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let list = if args.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(args)
                        .map_err(|e| bad(format!("not a JSON list of paths: {e}")))?
                } else {
                    args.split_whitespace().map(String::from).collect()
                };
                for v in list {
                    vols.insert(v, json!({}));
                }
                config.insert("Volumes".into(), Value::Object(vols));
            }
            // docker takes these; skiff's import does not apply them yet.
            "HEALTHCHECK" | "ONBUILD" => {
                return Err(ArchiveError::invalid(format!(
                    "{change:?}: skiff does not apply {kw_up} on import; it applies CMD, \
                     ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR"
                )))
            }
            _ => {
                // dockerd's words.
                return Err(ArchiveError::invalid(format!(
                    "{} is not a valid change command",
                    kw.to_ascii_lowercase()
                )));
            }
        }
    }
    Ok(())
}

/// The config of an image imported from a root filesystem tar whose diff ID is `diff_id`:
/// this host's platform, one history entry, `comment` (docker: the message, or "Imported
/// from SRC").
pub fn import_config(
    diff_id: &str,
    changes: &[String],
    comment: &str,
    created: &str,
) -> Result<Vec<u8>, ArchiveError> {
    let mut config = zero_config();
    apply_changes(&mut config, changes)?;
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

    fn applied(changes: &[&str]) -> Result<Map<String, Value>, ArchiveError> {
        let mut c = zero_config();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes)?;
        Ok(c)
    }

    #[test]
    fn dockerfile_changes_apply_as_docker() {
        let c = applied(&[
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/app --x",
            r#"ENV A=1 B="two words""#,
            "ENV C three words",
            "env A=one",
            "WORKDIR /srv",
            "WORKDIR data",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "LABEL team=a",
            r#"VOLUME ["/v1"]"#,
            "VOLUME /v2",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/app --x"]));
        assert_eq!(c["Env"], json!(["A=one", "B=two words", "C=three words"]));
        assert_eq!(c["WorkingDir"], json!("/srv/data"));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["User"], json!("nobody"));
        assert_eq!(c["Labels"], json!({"team": "a"}));
        assert_eq!(c["Volumes"], json!({"/v1": {}, "/v2": {}}));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
    }

    #[test]
    fn other_instructions_are_refused_in_dockers_words() {
        let e = applied(&["RUN rm -rf /"]).unwrap_err().to_string();
        assert_eq!(e, "run is not a valid change command");
        let e = applied(&["HEALTHCHECK NONE"]).unwrap_err().to_string();
        assert!(e.contains("does not apply HEALTHCHECK"), "{e}");
        assert!(applied(&["EXPOSE http"]).is_err());
        assert!(applied(&["CMD"]).is_err());
    }

    #[test]
    fn an_import_config_is_dockerds() {
        let raw = import_config(
            "sha256:ab",
            &["CMD [\"sh\"]".into()],
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
