//! HTTP plumbing for the Docker Engine API: bodies, errors in docker's `{"message": …}`
//! shape, query strings.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

pub use super::errors::ApiError;
pub use super::filters::Filters;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    body.push(b'\n');
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Resp {
    json(e.status, &serde_json::json!({ "message": e.message }))
}

/// A chunked JSON stream (one value per line), as pull progress is sent.
pub fn json_stream(rx: tokio::sync::mpsc::UnboundedReceiver<Value>) -> Resp {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(line))), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Every value of a query parameter that may repeat (`names`, `changes`).
pub fn query_all(raw: Option<&str>, key: &str) -> Vec<String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    })
    .unwrap_or_default()
}

pub fn query_one(raw: Option<&str>, key: &str) -> Option<String> {
    query_all(raw, key).into_iter().rfind(|v| !v.is_empty())
}

/// The query string of a request.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let map = q
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// Docker accepts 1/true/True for booleans.
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(|s| s.to_ascii_lowercase()).as_deref(),
            Some("1") | Some("true")
        )
    }

    /// Docker's `filters` parameter (`filters.rs`).
    pub fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters"))
    }
}

/// The JSON of a response whose body is already whole (a listing, an error): for handlers
/// that build on another's answer, and for tests.
pub fn body_json(resp: Resp) -> Result<Value, ApiError> {
    use futures::FutureExt;
    use http_body_util::BodyExt;
    let collected = resp
        .into_body()
        .collect()
        .now_or_never()
        .ok_or_else(|| ApiError::internal("a listing was not ready at once"))?
        .map_err(|e| ApiError::internal(format!("reading a listing: {e}")))?;
    serde_json::from_slice(&collected.to_bytes())
        .map_err(|e| ApiError::internal(format!("decoding a listing: {e}")))
}
