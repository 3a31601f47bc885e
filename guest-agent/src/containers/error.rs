//! What can go wrong with a container, in the engine's own words.
//!
//! The kinds are the engine's (`errdefs`, after moby's); `api/errors.rs` maps them to
//! docker's status codes, in one place.
//! The message is what `docker` prints after "Error response from daemon: ".

use crate::network::NetworkError;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No such container, or something it names (an image, a network, a path) is missing.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong: a bad option, value or combination.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is valid but the container's state refuses it (running, name taken…).
    #[error("{0}")]
    Conflict(String),
    /// skiff will not do this here (a port below 1024 in the VM, a refused privilege…).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing to do: already started, already stopped.
    #[error("{0}")]
    NotModified(String),
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A failure of the engine or the host; the chain of causes is the message.
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

crate::domain_error!(
    ContainerError,
    Self::NotModified(_) => Kind::NotModified,
    Self::Network(n) => n.kind(),
);
