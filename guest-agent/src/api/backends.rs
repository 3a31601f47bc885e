//! What the API handlers need from the engine, as traits (moby's `backend.go` interfaces): a
//! handler takes the backend it uses rather than the whole engine, so that it, docker's
//! filters and its JSON can be tested with a fake, without root or a store on disk.

#[cfg(test)]
pub mod fake;

use std::path::PathBuf;

use anyhow::Result;

use crate::containers::record::{Record, Status};
use crate::containers::{ContainerError, Containers};
use crate::images::store::{Image, LookupError, Store};
use crate::network::store::Network;
use crate::network::NetworkError;
use crate::volumes::{Volume, VolumeError};

/// The image store, as the image endpoints use it.
pub trait ImageBackend: Send + Sync {
    fn images(&self) -> Vec<Image>;
    fn resolve(&self, name: &str) -> Result<Image, LookupError>;
    /// Fully qualified `registry/repo:tag` keys of an image.
    fn tags_of(&self, id: &str) -> Vec<String>;
    fn digests_of(&self, id: &str) -> Vec<String>;
    fn last_tag_time(&self, id: &str) -> Option<String>;
    fn layer_dir(&self, diff_id: &str) -> Result<PathBuf>;
    fn tag(&self, id: &str, tag_key: &str) -> Result<()>;
    /// Removes these references; returns those that existed.
    fn untag(&self, keys: &[String]) -> Result<Vec<String>>;
    /// Deletes an image; returns the layers deleted with it.
    fn delete(&self, id: &str) -> Result<Vec<String>>;
    /// An operation in progress relies on the image (a build's base or step).
    fn held(&self, id: &str) -> bool;
}

/// Which container holds an image (docker's rules for `rmi` and `image prune`).
pub trait ImageUsers: Send + Sync {
    /// A container made from the image, and its state: a running one if there is one (the
    /// conflict `rmi` cannot force), else any.
    fn image_in_use(&self, image_id: &str) -> Option<(String, Status)>;
}

/// The containers, as their list, prune and the network endpoints read them.
pub trait ContainerBackend: Send + Sync {
    /// Every container's record, in no particular order.
    fn records(&self) -> Vec<Record>;
    /// A container by ID, name or unique ID prefix.
    fn record(&self, name: &str) -> Result<Record, ContainerError>;
    /// Bytes in a container's writable layer.
    fn rw_size(&self, id: &str) -> u64;
    /// Where a volume's files are, for a container's `Mounts`.
    fn volume_path(&self, name: &str) -> std::path::PathBuf;
}

/// The networks, as the network endpoints and a container's network settings read them.
pub trait NetworkBackend: Send + Sync {
    fn networks(&self) -> Vec<Network>;
    /// A network by name, ID or unique ID prefix.
    fn network(&self, key: &str) -> Result<Network, NetworkError>;
    /// The Linux bridge behind a bridge network.
    fn bridge_name(&self, n: &Network) -> String;
    /// Running containers with an endpoint on the network.
    fn live_users(&self, network_id: &str) -> usize;
}

/// The volumes, as their endpoints and `/system/df` read them.
pub trait VolumeBackend: Send + Sync {
    /// Every volume, by name.
    fn volumes(&self) -> Vec<Volume>;
    fn volume(&self, name: &str) -> Result<Volume, VolumeError>;
    /// Where its files are.
    fn mountpoint(&self, name: &str) -> PathBuf;
    /// The containers (running or not) that use it, by ID.
    fn users(&self, name: &str) -> Vec<String>;
    /// Bytes in it.
    fn size(&self, name: &str) -> u64;
}

impl VolumeBackend for Containers {
    fn volumes(&self) -> Vec<Volume> {
        self.volumes.list()
    }
    fn volume(&self, name: &str) -> Result<Volume, VolumeError> {
        self.volumes.get(name)
    }
    fn mountpoint(&self, name: &str) -> PathBuf {
        self.volumes.mountpoint(name)
    }
    fn users(&self, name: &str) -> Vec<String> {
        self.volume_users(name)
    }
    fn size(&self, name: &str) -> u64 {
        self.volumes.size(name)
    }
}

impl ImageBackend for Store {
    fn images(&self) -> Vec<Image> {
        Store::images(self)
    }
    fn resolve(&self, name: &str) -> Result<Image, LookupError> {
        Store::resolve(self, name)
    }
    fn tags_of(&self, id: &str) -> Vec<String> {
        Store::tags_of(self, id)
    }
    fn digests_of(&self, id: &str) -> Vec<String> {
        Store::digests_of(self, id)
    }
    fn last_tag_time(&self, id: &str) -> Option<String> {
        self.references().last_tag_time.get(id).cloned()
    }
    fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Store::layer_dir(self, diff_id)
    }
    fn tag(&self, id: &str, tag_key: &str) -> Result<()> {
        Store::tag(self, id, tag_key)
    }
    fn untag(&self, keys: &[String]) -> Result<Vec<String>> {
        Store::untag(self, keys)
    }
    fn held(&self, id: &str) -> bool {
        crate::images::holds::HoldStore::holds(self).image_held(id)
    }
    fn delete(&self, id: &str) -> Result<Vec<String>> {
        Store::delete(self, id)
    }
}

impl ImageUsers for Containers {
    fn image_in_use(&self, image_id: &str) -> Option<(String, Status)> {
        let mut users = self.all().into_iter().filter_map(|c| {
            let r = c.record();
            (r.image_id == image_id).then(|| (r.id.clone(), r.state.status))
        });
        let first = users.next()?;
        if first.1.is_live() {
            return Some(first);
        }
        Some(users.find(|(_, s)| s.is_live()).unwrap_or(first))
    }
}

impl ContainerBackend for Containers {
    fn records(&self) -> Vec<Record> {
        self.all().iter().map(|c| c.record()).collect()
    }
    fn record(&self, name: &str) -> Result<Record, ContainerError> {
        Ok(self.get(name)?.record())
    }
    fn rw_size(&self, id: &str) -> u64 {
        self.get(id).map(|c| c.paths().rw_size()).unwrap_or(0)
    }
    fn volume_path(&self, name: &str) -> std::path::PathBuf {
        self.volumes.mountpoint(name)
    }
}

impl NetworkBackend for Containers {
    fn networks(&self) -> Vec<Network> {
        self.networks.all()
    }
    fn network(&self, key: &str) -> Result<Network, NetworkError> {
        self.networks.get(key)
    }
    fn bridge_name(&self, n: &Network) -> String {
        n.bridge_name(self.networks.tag())
    }
    fn live_users(&self, network_id: &str) -> usize {
        self.networks.live_users(network_id)
    }
}
