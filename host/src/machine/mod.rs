//! Where the agent runs: natively on this Linux host, or in skiff's VM (the only choice on
//! macOS and Windows). Both end in the same thing for the rest of the CLI: a unix socket that
//! serves the Docker Engine API.

pub mod native;
pub mod vm;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::SkiffError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The agent runs on this Linux host (root needed).
    Native,
    /// The agent runs in skiff's VM, started on first use.
    Vm,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Vm => "vm",
        }
    }
}

/// Where the engine keeps its state and serves its API.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub backend: Backend,
    /// The native agent's state dir (unused by the vm backend, whose state is in the VM).
    pub root: PathBuf,
    pub socket: PathBuf,
    /// With the vm backend: a separate engine of the machine (`--engine`).
    pub engine: Option<String>,
}

/// The user's settings file: `$XDG_CONFIG_HOME/skiff/config.json` (or `~/.config/...`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub backend: Option<Backend>,
    /// Docker Hub's mirrors, in order (daemon.json's key and meaning).
    #[serde(default, rename = "registry-mirrors")]
    pub registry_mirrors: Vec<String>,
    /// Registries reached over plain http (daemon.json's key).
    #[serde(default, rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
}

pub fn settings_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SKIFF_CONFIG") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("skiff").join("config.json"))
}

fn read_settings(path: &Path) -> Result<Settings> {
    match std::fs::read(path) {
        Ok(b) => {
            let settings: Settings = serde_json::from_slice(&b).map_err(|e| {
                SkiffError::new(format!(
                    "{} is not valid: {e}; expected for example {{\"backend\": \"vm\", \"registry-mirrors\": [\"https://mirror.example.com\"]}}",
                    path.display()
                ))
            })?;
            check_mirrors(settings.registry_mirrors.iter().map(String::as_str))
                .map_err(|e| SkiffError::new(format!("{}: {e}", path.display())))?;
            Ok(settings)
        }
        // A file this user may not read (root's, under a shared HOME) is not their settings.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(Settings::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn check_mirrors<'a>(mirrors: impl Iterator<Item = &'a str>) -> Result<(), String> {
    for m in mirrors {
        m.parse::<skiff_common::mirror::Mirror>()?;
    }
    Ok(())
}

/// The engine's settings for an engine being started (`skiff_common::vsock::ENGINE_ENV`), as
/// `KEY=VALUE`: from this process's environment, else, for the registry lists, from the
/// settings file. Read when an engine starts: a changed setting takes effect when the engine
/// is next started, as daemon.json's do when dockerd restarts.
pub fn engine_env() -> Result<Vec<String>> {
    let settings = match settings_path() {
        Some(p) => read_settings(&p)?,
        None => Settings::default(),
    };
    if let Ok(list) = std::env::var("SKIFF_REGISTRY_MIRRORS") {
        check_mirrors(list.split(',').filter(|m| !m.is_empty()))
            .map_err(|e| SkiffError::new(format!("SKIFF_REGISTRY_MIRRORS: {e}")))?;
    }
    let from_file = |k: &str| {
        let list = match k {
            "SKIFF_REGISTRY_MIRRORS" => &settings.registry_mirrors,
            "SKIFF_INSECURE_REGISTRIES" => &settings.insecure_registries,
            _ => return None,
        };
        Some(list.join(",")).filter(|l| !l.is_empty())
    };
    Ok(skiff_common::vsock::engine_env_words(|k| {
        std::env::var(k).ok().or_else(|| from_file(k))
    }))
}

/// The flag (or `SKIFF_BACKEND`, which clap folds into it) wins, then the settings file, then
/// the platform's default. Off Linux there is no native backend to choose.
pub fn choose_backend(flag: Option<Backend>) -> Result<Backend> {
    let chosen = match flag {
        Some(b) => Some(b),
        None => match settings_path() {
            Some(p) => read_settings(&p)?.backend,
            None => None,
        },
    };
    if cfg!(not(target_os = "linux")) && chosen == Some(Backend::Native) {
        return Err(SkiffError::new(
            "the native backend needs a Linux host; on this system skiff runs containers in its VM (--backend vm)",
        )
        .into());
    }
    Ok(chosen.unwrap_or(if cfg!(target_os = "linux") {
        Backend::Native
    } else {
        Backend::Vm
    }))
}

/// Make sure the endpoint's engine answers, starting the agent or the machine if needed.
pub fn ensure_running(ep: &Endpoint) -> Result<()> {
    match ep.backend {
        Backend::Native => native::ensure_running(ep),
        Backend::Vm => vm::ensure_running(ep),
    }
}

/// Whether something answers `GET /_ping` with 200 on this socket.
pub fn answers(socket: &Path) -> bool {
    use std::io::{Read, Write};
    use std::time::Duration;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_reject_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("skiff-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(&p, br#"{"backend": "vm"}"#).unwrap();
        assert_eq!(read_settings(&p).unwrap().backend, Some(Backend::Vm));
        std::fs::write(&p, br#"{"backend": "kvm"}"#).unwrap();
        let e = read_settings(&p).unwrap_err().to_string();
        assert!(e.contains("is not valid"), "{e}");
        std::fs::write(&p, br#"{"backnd": "vm"}"#).unwrap();
        assert!(read_settings(&p).is_err());
        std::fs::write(
            &p,
            br#"{"registry-mirrors": ["http://127.0.0.1:5000"], "insecure-registries": ["r.lan:5000"]}"#,
        )
        .unwrap();
        let s = read_settings(&p).unwrap();
        assert_eq!(s.registry_mirrors, ["http://127.0.0.1:5000"]);
        assert_eq!(s.insecure_registries, ["r.lan:5000"]);
        std::fs::write(&p, br#"{"registry-mirrors": ["mirror.example.com"]}"#).unwrap();
        let e = read_settings(&p).unwrap_err().to_string();
        assert!(
            e.contains("invalid registry mirror \"mirror.example.com\""),
            "{e}"
        );
        assert!(read_settings(&dir.join("missing.json"))
            .unwrap()
            .backend
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
