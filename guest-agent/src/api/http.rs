//! HTTP plumbing for the Docker Engine API: bodies, errors in docker's `{"message": …}`
//! shape, query strings and docker's `filters` parameter.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

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

    /// Docker's `filters` parameter: `{"key":{"value":true}}`, or the older `{"key":["value"]}`.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let Some(raw) = self.get("filters") else {
            return Ok(Filters::default());
        };
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters parameter: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            ApiError::bad_request("invalid filters parameter: expected a JSON object")
        })?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(s, _)| s.clone())
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }
}

#[derive(Debug, Default)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn get(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuse keys this endpoint does not know, as docker does.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }

    /// A boolean filter such as dangling=true; None when absent.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        let vals = self.get(k);
        match vals.first().map(|s| s.to_ascii_lowercase()) {
            None => Ok(None),
            Some(s) if s == "true" || s == "1" => Ok(Some(true)),
            Some(s) if s == "false" || s == "0" => Ok(Some(false)),
            Some(s) => Err(ApiError::bad_request(format!(
                "invalid filter '{k}={s}': use true or false"
            ))),
        }
    }
}

/// Go's `path.Match`, which docker uses for `reference=` filters: `*` and `?` do not cross `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if rec(rest, &n[i..]) {
                        return true;
                    }
                    if i < n.len() && n[i] == b'/' {
                        break;
                    }
                }
                false
            }
            Some(b'?') => !n.is_empty() && n[0] != b'/' && rec(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(end) = p.iter().position(|&c| c == b']') else {
                    return false;
                };
                if n.is_empty() {
                    return false;
                }
                let class = &p[1..end];
                let (negate, class) = match class.first() {
                    Some(b'^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= n[0] && n[0] <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == n[0];
                        i += 1;
                    }
                }
                hit != negate && rec(&p[end + 1..], &n[1..])
            }
            Some(b'\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && rec(&p[2..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && rec(&p[1..], &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(!glob_match("*", "127.0.0.1:5000/busybox"));
        assert!(glob_match("*/busybox", "127.0.0.1:5000/busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(glob_match("[a-c]usybox", "busybox"));
        assert!(!glob_match("[^a-c]usybox", "busybox"));
    }

    #[test]
    fn filters_both_shapes() {
        let q = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
        ));
        assert_eq!(q.filters().unwrap().bool("dangling").unwrap(), Some(true));
        let q = Query::parse(Some("filters={\"reference\":[\"busy*\"]}"));
        assert_eq!(
            q.filters().unwrap().get("reference"),
            &["busy*".to_string()]
        );
        let q = Query::parse(Some("filters=nope"));
        assert!(q.filters().is_err());
    }
}
