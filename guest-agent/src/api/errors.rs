//! The API's error — a status code and the message the docker CLI prints — and the one place
//! where the domains' errors become docker's status codes (moby's `errdefs` mapping): the
//! engine's modules say what went wrong, only the API edge speaks HTTP.

use hyper::StatusCode;

use crate::errdefs::{Classify, Kind};

/// An API error: the status code and the message the docker CLI prints after
/// "Error response from daemon: ".
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(format!("{e:#}"))
    }
}

/// docker's status code for each kind of failure: the one place where a domain's error
/// becomes HTTP.
fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::InvalidArgument => StatusCode::BAD_REQUEST,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotModified => StatusCode::NOT_MODIFIED,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Every domain's error: its kind's status, its own words as the message.
impl<E: Classify + std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::new(status(e.kind()), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::ContainerError;
    use crate::images::pull::PullError;
    use crate::images::registry::RegistryError;
    use crate::images::store::LookupError;
    use crate::network::NetworkError;

    #[test]
    fn each_kind_has_dockers_status_and_keeps_its_message() {
        let cases: Vec<(ContainerError, u16)> = vec![
            (ContainerError::not_found("No such container: x"), 404),
            (ContainerError::invalid("bad"), 400),
            (ContainerError::conflict("in use"), 409),
            (ContainerError::forbidden("no"), 403),
            (ContainerError::NotModified(String::new()), 304),
            (NetworkError::not_found("network n not found").into(), 404),
            (NetworkError::conflict("n has active endpoints").into(), 409),
            (anyhow::anyhow!("disk").context("saving").into(), 500),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status, "{text}");
            assert_eq!(api.message, text);
        }
        assert_eq!(
            ApiError::from(ContainerError::from(
                anyhow::anyhow!("disk").context("saving")
            ))
            .message,
            "saving: disk"
        );
    }

    #[test]
    fn image_errors_have_dockers_status() {
        let status = |e: ApiError| e.status.as_u16();
        assert_eq!(status(LookupError::NotFound("x".into()).into()), 404);
        assert_eq!(status(LookupError::Ambiguous("ab".into()).into()), 400);
        // As dockerd: a pull refused for lack of credentials answers 404, not 401.
        let denied = PullError::Registry(RegistryError::Unauthorized("denied".into()));
        let api = ApiError::from(denied);
        assert_eq!((api.status.as_u16(), api.message.as_str()), (404, "denied"));
        let down = PullError::Registry(RegistryError::Unreachable("down".into()));
        assert_eq!(status(down.into()), 500);
    }
}
