//! Backends in memory, for the handlers' tests: what a client sees is asserted without root, a
//! store on disk or a running container.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::json;

use super::{ContainerBackend, ImageBackend, NetworkBackend, VolumeBackend};
use crate::containers::record::Record;
use crate::containers::ContainerError;
use crate::images::reference::ImageRef;
use crate::images::store::{Image, ImageRecord, LookupError};
use crate::network::store::Network;
use crate::network::NetworkError;
use crate::volumes::{Volume, VolumeError};

/// An image store in memory: images by ID, references (fully qualified tags and
/// `name@digest` keys) → ID.
#[derive(Default)]
pub struct FakeStore {
    pub images: Vec<Image>,
    refs: Mutex<BTreeMap<String, String>>,
    deleted: Mutex<Vec<String>>,
    /// Images a build in progress holds.
    pub held: Vec<String>,
}

pub fn image(n: u8, created: &str, labels: &[(&str, &str)]) -> Image {
    let id = format!("sha256:{}", format!("{n:x}").repeat(64));
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let config = serde_json::from_value(json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "d".repeat(63)) + &n.to_string()]},
    }))
    .unwrap();
    let record: ImageRecord = serde_json::from_value(json!({
        "id": id, "manifest_digest": "sha256:m", "manifest_media_type": "m",
        "layers": [{"diff_id": format!("layer{n}"), "digest": "d", "media_type": "t",
                    "compressed_size": 10, "size": 100 * n as u64}],
        "stored_at": created,
    }))
    .unwrap();
    Image {
        record,
        config,
        config_raw: Default::default(),
    }
}

impl FakeStore {
    pub fn with(images: Vec<Image>, tags: &[(&str, usize)]) -> Self {
        let refs = tags
            .iter()
            .map(|(t, i)| (t.to_string(), images[*i].record.id.clone()))
            .collect();
        FakeStore {
            images,
            refs: Mutex::new(refs),
            ..Default::default()
        }
    }
    pub fn refs(&self) -> BTreeMap<String, String> {
        self.refs.lock().unwrap().clone()
    }
}

impl ImageBackend for FakeStore {
    fn images(&self) -> Vec<Image> {
        let gone = self.deleted.lock().unwrap();
        let live = self.images.iter().filter(|i| !gone.contains(&i.record.id));
        live.cloned().collect()
    }
    fn resolve(&self, name: &str) -> Result<Image, LookupError> {
        let r = ImageRef::parse(name).ok();
        let key = r.and_then(|r| r.digest_key().or_else(|| r.tag_key()));
        let id = key.and_then(|k| self.refs().get(&k).cloned());
        self.images()
            .into_iter()
            .find(|i| Some(&i.record.id) == id.as_ref() || i.record.id.contains(name))
            .ok_or_else(|| LookupError::NotFound(name.to_string()))
    }
    fn tags_of(&self, id: &str) -> Vec<String> {
        let refs = self.refs();
        refs.into_iter()
            .filter(|(t, i)| i == id && !t.contains('@'))
            .map(|(t, _)| t)
            .collect()
    }
    fn digests_of(&self, id: &str) -> Vec<String> {
        let refs = self.refs();
        refs.into_iter()
            .filter(|(t, i)| i == id && t.contains('@'))
            .map(|(t, _)| t)
            .collect()
    }
    fn last_tag_time(&self, _id: &str) -> Option<String> {
        None
    }
    fn layer_dir(&self, diff_id: &str) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from("/layers").join(diff_id))
    }
    fn tag(&self, id: &str, tag_key: &str) -> anyhow::Result<()> {
        self.refs.lock().unwrap().insert(tag_key.into(), id.into());
        Ok(())
    }
    fn untag(&self, keys: &[String]) -> anyhow::Result<Vec<String>> {
        let mut refs = self.refs.lock().unwrap();
        Ok(keys
            .iter()
            .filter(|k| refs.remove(*k).is_some())
            .cloned()
            .collect())
    }
    fn held(&self, id: &str) -> bool {
        self.held.iter().any(|h| h == id)
    }
    fn delete(&self, id: &str) -> anyhow::Result<Vec<String>> {
        self.deleted.lock().unwrap().push(id.into());
        let img = self.images.iter().find(|i| i.record.id == id).unwrap();
        Ok(img
            .record
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect())
    }
}

/// Containers by their records, with the size of each one's writable layer.
#[derive(Default)]
pub struct FakeContainers {
    pub records: Vec<Record>,
    pub rw_sizes: HashMap<String, u64>,
}

impl ContainerBackend for FakeContainers {
    fn records(&self) -> Vec<Record> {
        self.records.clone()
    }
    fn record(&self, name: &str) -> Result<Record, ContainerError> {
        self.records
            .iter()
            .find(|r| r.name == name || r.id.starts_with(name))
            .cloned()
            .ok_or_else(|| ContainerError::not_found(format!("No such container: {name}")))
    }
    fn rw_size(&self, id: &str) -> u64 {
        self.rw_sizes.get(id).copied().unwrap_or(0)
    }
    fn volume_path(&self, name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from("/var/lib/skiff/volumes")
            .join(name)
            .join("_data")
    }
}

/// Networks, with how many running containers use each.
#[derive(Default)]
pub struct FakeNetworks {
    pub networks: Vec<Network>,
    pub live_users: HashMap<String, usize>,
}

impl FakeNetworks {
    /// docker's three built-in networks and these user-defined bridges.
    pub fn with(user_defined: &[(&str, &str)]) -> Self {
        let mut networks = vec![
            network("bridge", "bridge", "172.17.0.0/16"),
            network("host", "host", ""),
            network("none", "null", ""),
        ];
        for (name, subnet) in user_defined {
            networks.push(network(name, "bridge", subnet));
        }
        FakeNetworks {
            networks,
            live_users: HashMap::new(),
        }
    }
}

/// A network whose ID is its name repeated, and whose gateway is the subnet's first host.
pub fn network(name: &str, driver: &str, subnet: &str) -> Network {
    let subnet: Option<ipnet::Ipv4Net> = subnet.parse().ok();
    Network {
        id: name.repeat(64 / name.len() + 1)[..64].to_string(),
        name: name.into(),
        driver: driver.into(),
        created: "2026-01-01T00:00:00Z".into(),
        subnet,
        gateway: subnet.and_then(|s| s.hosts().next()),
        ip_range: None,
        internal: false,
        attachable: false,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        subnet_given: false,
    }
}

impl NetworkBackend for FakeNetworks {
    fn networks(&self) -> Vec<Network> {
        self.networks.clone()
    }
    fn network(&self, key: &str) -> Result<Network, NetworkError> {
        self.networks
            .iter()
            .find(|n| n.name == key || n.id.starts_with(key))
            .cloned()
            .ok_or_else(|| NetworkError::not_found(format!("network {key} not found")))
    }
    fn bridge_name(&self, n: &Network) -> String {
        format!("br-{}", &n.id[..12])
    }
    fn live_users(&self, network_id: &str) -> usize {
        self.live_users.get(network_id).copied().unwrap_or(0)
    }
}

/// Volumes in memory, with the containers that use each.
#[derive(Default)]
pub struct FakeVolumes {
    pub volumes: Vec<Volume>,
    pub users: HashMap<String, Vec<String>>,
}

impl FakeVolumes {
    /// Volumes by name with their labels (`""` values for a bare key).
    pub fn with(vols: &[(&str, &[(&str, &str)])]) -> Self {
        FakeVolumes {
            volumes: vols
                .iter()
                .map(|(name, labels)| Volume {
                    name: name.to_string(),
                    driver: "local".into(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    options: BTreeMap::new(),
                    created_at: "2026-12-04T19:30:18Z".into(),
                })
                .collect(),
            users: HashMap::new(),
        }
    }
}

impl VolumeBackend for FakeVolumes {
    fn volumes(&self) -> Vec<Volume> {
        self.volumes.clone()
    }
    fn volume(&self, name: &str) -> Result<Volume, VolumeError> {
        self.volumes
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| VolumeError::not_found(format!("get {name}: no such volume")))
    }
    fn mountpoint(&self, name: &str) -> PathBuf {
        PathBuf::from("/var/lib/skiff/volumes")
            .join(name)
            .join("_data")
    }
    fn users(&self, name: &str) -> Vec<String> {
        self.users.get(name).cloned().unwrap_or_default()
    }
    fn size(&self, name: &str) -> u64 {
        name.len() as u64
    }
}
