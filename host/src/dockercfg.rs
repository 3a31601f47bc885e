//! Registry credentials where docker keeps them: `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, `auths.<registry>.auth` = base64("user:password").
//! Other keys in the file are kept as they are.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

pub fn config_path() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Ok(PathBuf::from(d).join("config.json"));
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; set DOCKER_CONFIG"))?;
    Ok(PathBuf::from(home).join(".docker").join("config.json"))
}

/// The key docker uses for a registry in `auths`.
pub fn key_for(registry: &str) -> String {
    match registry {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        r => r
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

fn load() -> Result<Value> {
    let p = config_path()?;
    match std::fs::read(&p) {
        Ok(b) if !b.is_empty() => {
            serde_json::from_slice(&b).with_context(|| format!("{} is not valid JSON", p.display()))
        }
        _ => Ok(json!({})),
    }
}

fn save(v: &Value) -> Result<PathBuf> {
    let p = config_path()?;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(v)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("replacing {}", p.display()))?;
    Ok(p)
}

/// A registry login as the engine takes it: the JSON of docker's `X-Registry-Auth` header
/// (base64url) and of `POST /auth`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
}

impl Credentials {
    /// The `X-Registry-Auth` header value.
    pub fn header(&self) -> Result<String> {
        Ok(base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(self)?))
    }
}

pub fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    let cfg = load()?;
    let key = key_for(registry);
    let Some(entry) = cfg
        .get("auths")
        .and_then(|a| a.get(&key).or_else(|| a.get(registry)))
    else {
        return Ok(None);
    };
    let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .with_context(|| {
            format!("the credentials for {registry} in the docker config are not valid base64")
        })?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, pass) = text.split_once(':').ok_or_else(|| {
        anyhow!("the credentials for {registry} in the docker config are malformed")
    })?;
    Ok(Some(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
        serveraddress: registry.to_string(),
    }))
}

pub fn store(registry: &str, user: &str, password: &str) -> Result<PathBuf> {
    let mut cfg = load()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if !cfg.get("auths").map(Value::is_object).unwrap_or(false) {
        cfg["auths"] = json!({});
    }
    cfg["auths"][key_for(registry)] = json!({ "auth": auth });
    save(&cfg)
}

/// Forget a registry's credentials; false when there were none.
pub fn remove(registry: &str) -> Result<bool> {
    let mut cfg = load()?;
    let key = key_for(registry);
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|a| a.remove(&key).is_some())
        .unwrap_or(false);
    if removed {
        save(&cfg)?;
    }
    Ok(removed)
}
