//! The API's error — a status code and the message the docker CLI prints — and the one place
//! where the domains' errors become docker's status codes (moby's `errdefs` mapping): the
//! engine's modules say what went wrong, only the API edge speaks HTTP.

use hyper::StatusCode;

use crate::containers::ContainerError;
use crate::network::NetworkError;

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

fn network_status(e: &NetworkError) -> StatusCode {
    match e {
        NetworkError::NotFound(_) => StatusCode::NOT_FOUND,
        NetworkError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        NetworkError::Conflict(_) => StatusCode::CONFLICT,
        NetworkError::Forbidden(_) => StatusCode::FORBIDDEN,
        NetworkError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn container_status(e: &ContainerError) -> StatusCode {
    match e {
        ContainerError::NotFound(_) => StatusCode::NOT_FOUND,
        ContainerError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        ContainerError::Conflict(_) => StatusCode::CONFLICT,
        ContainerError::Forbidden(_) => StatusCode::FORBIDDEN,
        ContainerError::NotModified(_) => StatusCode::NOT_MODIFIED,
        ContainerError::Network(n) => network_status(n),
        ContainerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        ApiError::new(network_status(&e), e.to_string())
    }
}

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        ApiError::new(container_status(&e), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
