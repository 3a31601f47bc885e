//! What can go wrong with a volume, in docker's words (the message follows "Error response
//! from daemon: "); `api/errors.rs` maps the kinds to status codes.

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// In use by a container, or a name taken by another driver.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

crate::domain_error!(VolumeError);
