//! What can go wrong with a network, in the engine's own words; `api/errors.rs` maps the kinds
//! to docker's status codes (the engine's `errdefs` kinds, as for every domain).

use crate::errdefs::{Classify, Kind};

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

crate::domain_error_constructors!(NetworkError);

impl Classify for NetworkError {
    fn kind(&self) -> Kind {
        match self {
            Self::NotFound(_) => Kind::NotFound,
            Self::InvalidArgument(_) => Kind::InvalidArgument,
            Self::Conflict(_) => Kind::Conflict,
            Self::Forbidden(_) => Kind::Forbidden,
            Self::Internal(_) => Kind::Internal,
        }
    }
}
