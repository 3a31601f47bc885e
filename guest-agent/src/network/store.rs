//! What the agent keeps about a network, on disk as `networks/<id>.json`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// docker's three networks that always exist and cannot be removed.
pub const BUILTIN: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Where container addresses come from; the whole subnet when absent.
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    /// No route out: only the network's own members are reachable.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The subnet the user asked for; otherwise it came from the pool.
    #[serde(default)]
    pub subnet_given: bool,
}

impl Network {
    pub fn builtin(&self) -> bool {
        BUILTIN.iter().any(|(n, _)| *n == self.name)
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// Containers find each other by name: docker does this on user-defined networks only.
    pub fn serves_names(&self) -> bool {
        self.is_bridge() && !self.builtin()
    }

    /// The Linux bridge: `bridge_prefix` and the network's ID, within IFNAMSIZ.
    pub fn bridge_name(&self, tag: &str) -> String {
        format!("{}{}", bridge_prefix(tag), &self.id[..8])
    }
}

/// What every bridge of the agent tagged `tag` is named with: skiff's prefix and the tag, so
/// two agents never share a name.
pub fn bridge_prefix(tag: &str) -> String {
    format!("sk{tag}")
}

/// The agent tag of one of skiff's bridges, any agent's (the prefix, a 4-digit tag and 8
/// digits of the network's ID); None for any other name.
pub fn bridge_tag(name: &str) -> Option<&str> {
    name.strip_prefix("sk")
        .filter(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|rest| &rest[..4])
}

pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    pub fn load_all(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let raw = std::fs::read(&path)?;
            match serde_json::from_slice::<Network>(&raw) {
                Ok(n) => out.push(n),
                Err(e) => tracing::warn!("ignoring unreadable network {}: {e}", path.display()),
            }
        }
        Ok(out)
    }

    /// Written whole to a temporary name and renamed: a crash never leaves half a record.
    pub fn save(&self, n: &Network) -> Result<()> {
        let tmp = self.dir.join(format!(".{}.tmp", n.id));
        std::fs::write(&tmp, serde_json::to_vec_pretty(n)?)?;
        std::fs::rename(&tmp, self.path(&n.id))
            .with_context(|| format!("saving network {}", n.name))
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub fn exists(&self, id: &str) -> bool {
        self.path(id).exists()
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}
