//! What can go wrong with a network, in the engine's own words; `api/errors.rs` maps the kinds
//! to docker's status codes (the engine's `errdefs` kinds, as for every domain).

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

crate::domain_error!(NetworkError);
