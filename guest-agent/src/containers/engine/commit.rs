//! A container's changes: listed (`docker diff`) and stored as a layer (`docker commit`, and
//! each build step).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::images::diff::{rel_path, Change, Upper};
use crate::images::ingest::ingest_changes;
use crate::images::store::LayerRecord;

/// What the engine mounts into every container (docker keeps these in an "init" layer of
/// their own): their mount points in the upper dir are not the container's changes.
const ENGINE_MOUNTS: &[&str] = &[
    ".dockerenv",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "dev",
    "proc",
    "sys",
];

impl Containers {
    fn upper_of(&self, c: &Container) -> Result<(PathBuf, Vec<PathBuf>), ContainerError> {
        let rec = c.record();
        let lowers = self.lower_dirs(&rec)?;
        Ok((c.paths().upper(), lowers))
    }

    /// docker's `GET /containers/{id}/changes`.
    pub fn changes(&self, c: &Container) -> Result<Vec<Change>, ContainerError> {
        let (dir, lowers) = self.upper_of(c)?;
        let skip: Vec<PathBuf> = ENGINE_MOUNTS.iter().map(|p| rel_path(p)).collect();
        Ok(Upper {
            dir: &dir,
            lowers: &lowers,
            skip: &skip,
        }
        .changes()
        .with_context(|| format!("reading the changes of container {}", c.id))?)
    }

    /// Store the container's changes as a layer; `limit` bounds its size as a pulled layer's.
    /// The caller keeps the container from changing meanwhile (paused or stopped).
    pub async fn commit_changes(
        &self,
        c: &Arc<Container>,
        limit: u64,
    ) -> Result<LayerRecord, ContainerError> {
        let (dir, lowers) = self.upper_of(c)?;
        let store = self.images.clone();
        let name = format!("of container {}", &c.id[..12]);
        let rec = tokio::task::spawn_blocking(move || {
            let skip: Vec<PathBuf> = ENGINE_MOUNTS.iter().map(|p| rel_path(p)).collect();
            let upper = Upper {
                dir: &dir,
                lowers: &lowers,
                skip: &skip,
            };
            ingest_changes(&store, &upper, &name, limit)
        })
        .await
        .map_err(|e| anyhow!("committing a layer: {e}"))??;
        Ok(rec)
    }
}
