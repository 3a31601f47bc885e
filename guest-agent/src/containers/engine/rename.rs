//! `docker rename`.

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::names;

impl Containers {
    pub fn rename(&self, c: &Container, new: &str) -> Result<(), ContainerError> {
        if !names::valid(new) {
            return Err(ContainerError::invalid(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let new = new.trim_start_matches('/').to_string();
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let old = c.record().name;
        if old == new {
            return Err(ContainerError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        if let Some(other) = idx.names.get(&new) {
            return Err(ContainerError::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        idx.names.remove(&old);
        idx.names.insert(new.clone(), c.id.clone());
        drop(idx);
        c.update(|r| r.name = new)?;
        self.emit("rename", c, &[("oldName", format!("/{old}"))]);
        Ok(())
    }
}
