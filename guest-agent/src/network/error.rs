//! What can go wrong with a network, in the engine's own words; `api/errors.rs` maps the kinds
//! to docker's status codes (the same kinds as `ContainerError`, after moby's `errdefs`).

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl NetworkError {
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::InvalidArgument(m.into())
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::Conflict(m.into())
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::Forbidden(m.into())
    }
    pub fn internal(m: impl std::fmt::Display) -> Self {
        Self::Internal(anyhow::anyhow!("{m}"))
    }
}
