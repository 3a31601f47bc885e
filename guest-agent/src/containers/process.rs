//! The OCI process of an exec (`docker exec`, and a healthcheck's each check): the
//! container's user, environment, capabilities and working directory under the exec's own
//! settings. The helper that runs it is `exec.rs`'s.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ContainerError;
use super::record::Record;
use super::{security, spec, user};

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub tty: Option<bool>,
    #[serde(default)]
    pub attach_stdin: Option<bool>,
    #[serde(default)]
    pub attach_stdout: Option<bool>,
    #[serde(default)]
    pub attach_stderr: Option<bool>,
    #[serde(default)]
    pub detach_keys: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub console_size: Option<Vec<u16>>,
}

/// The OCI process for an exec into the container `rec` is the record of (`rootfs` its root
/// as the agent sees it, where the user is looked up).
pub fn process_json(
    rec: &Record,
    cfg: &ExecConfig,
    rootfs: &Path,
) -> Result<Value, ContainerError> {
    let user_spec = cfg
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| rec.config.user.clone())
        .unwrap_or_default();
    let group_add = rec.host_config.group_add.clone().unwrap_or_default();
    let u = user::resolve_user(rootfs, &user_spec, &group_add)
        .map_err(|e| ContainerError::invalid(e.to_string()))?;
    let hostname = rec.hostname();
    let mut env = spec::environment(rec, &hostname);
    for kv in cfg.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let tty = cfg.tty.unwrap_or(false);
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    spec::set_home(&mut env, &u.home);
    let hc = &rec.host_config;
    let caps = security::resolve_caps(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        hc.privileged.unwrap_or(false) || cfg.privileged.unwrap_or(false),
    )
    .map_err(|e| ContainerError::invalid(e.to_string()))?;
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| rec.config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let mut p = json!({
        "terminal": tty,
        "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids},
        "args": cfg.cmd.clone().unwrap_or_default(),
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    if let Some(size) = cfg
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
    {
        p["consoleSize"] = json!({"height": size[0], "width": size[1]});
    }
    Ok(p)
}
