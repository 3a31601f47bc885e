//! The Docker Engine API over HTTP/1.1 on a unix socket.

pub mod archive;
pub mod backends;
pub mod build;
pub mod commit;
pub mod containers;
pub mod errors;
pub mod events;
pub mod exec;
pub mod filters;
pub mod heap;
pub mod http;
pub mod imageio;
pub mod images;
pub mod networks;
pub mod push;
pub mod stats;
pub mod streams;
pub mod system;
pub mod volumes;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use self::http::{error_response, full, ApiError, Query, Resp};
use crate::containers::Containers;
use crate::images::pull::Puller;
use crate::images::registry::AuthConfig;
use crate::images::store::Store;
use oci_client::secrets::RegistryAuth;

/// The API version we announce; the docker CLI negotiates down to it.
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";
/// Request bodies we read whole (JSON) are capped here.
const MAX_JSON_BODY: usize = 1 << 20;

pub struct Ctx {
    pub containers: Arc<Containers>,
    pub execs: crate::containers::exec::Execs,
    pub store: Arc<Store>,
    pub puller: Arc<Puller>,
    pub root: PathBuf,
    pub socket: PathBuf,
    pub id: String,
}

/// Bind the socket (owner and group only: whoever can write to it controls the host).
pub fn bind(socket: &Path) -> Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if socket.exists() {
        // A live agent answers; a stale socket from a killed one does not.
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            anyhow::bail!("another agent is already serving {}", socket.display());
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("removing stale socket {}", socket.display()))?;
    }
    // The socket is born without permissions for others (no window before the chmod).
    // SAFETY: umask only changes this process's file-creation mask.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(socket);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(previous) };
    let listener = bound.with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, ctx: Arc<Ctx>) -> Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .context("accepting on the API socket")?;
        let client = streams::ClientSocket::of(&stream);
        tokio::spawn(serve_client(stream, ctx.clone(), Some(client)));
    }
}

/// One client connection, whatever carries it (the unix socket natively, vsock in the VM).
pub async fn serve_connection<S>(stream: S, ctx: Arc<Ctx>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_client(stream, ctx, None).await
}

/// `client`, when the connection's own socket is at hand, goes with each request to the
/// handlers that hijack the connection.
async fn serve_client<S>(stream: S, ctx: Arc<Ctx>, client: Option<streams::ClientSocket>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let ctx = ctx.clone();
        if let Some(c) = client {
            req.extensions_mut().insert(c);
        }
        async move { Ok::<_, std::convert::Infallible>(handle(ctx, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(1 << 20)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("API connection ended: {e}");
    }
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Resp {
    heap::note_request();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match route(ctx, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!("{method} {path}: {} {}", e.status, e.message);
            error_response(&e)
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("skiff/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// Strip docker's `/v1.NN` prefix, refusing versions we do not speak.
fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((major, minor)) = ver.split_once('.') else {
        return Ok(path);
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Ok(path);
    };
    let (min_major, min_minor) = (1u32, 24u32);
    if (major, minor) < (min_major, min_minor) {
        return Err(ApiError::bad_request(format!(
            "client version {major}.{minor} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(if tail.is_empty() { "/" } else { tail })
}

/// The API version a request's path asks for; ours when it names none.
fn requested_version(path: &str) -> (u32, u32) {
    let ours = (1, 47);
    let Some(rest) = path.strip_prefix("/v") else {
        return ours;
    };
    let ver = rest.split('/').next().unwrap_or_default();
    match ver.split_once('.') {
        Some((a, b)) => match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => ours,
        },
        None => ours,
    }
}

async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_JSON_BODY);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body rejected: {e}"),
        )
    })
}

/// The credentials a pull, push or registry lookup carries (`X-Registry-Auth`, docker's
/// base64 JSON); anonymous without them or when they do not parse.
fn registry_auth(req: &Request<Incoming>) -> RegistryAuth {
    req.headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .and_then(AuthConfig::from_header)
        .unwrap_or_default()
        .to_registry_auth()
}

async fn route(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let raw_path = req.uri().path().to_string();
    let path = strip_version(&raw_path)?;
    let path = percent_decode(path);
    let q = Query::parse(req.uri().query());
    let method = req.method().clone();

    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/_ping") => {
            let mut r = hyper::Response::new(full(if method == Method::HEAD { "" } else { "OK" }));
            r.headers_mut().insert(
                "Cache-Control",
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            r.headers_mut()
                .insert("Pragma", HeaderValue::from_static("no-cache"));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        (&Method::GET, "/version") => return Ok(system::version()),
        (&Method::GET, "/info") => return Ok(system::info(&ctx)),
        (&Method::GET, "/skiff/system/check") => return system::check(&ctx).await,
        (&Method::POST, "/auth") => {
            let body = read_body(req).await?;
            return system::auth(&ctx, &body).await;
        }
        (&Method::GET, "/images/json") => return images::list(&*ctx.store, &q),
        (&Method::POST, "/images/create") if q.get("fromSrc").is_some() => {
            let raw = req.uri().query().map(String::from);
            return imageio::import(ctx.clone(), raw.as_deref(), req).await;
        }
        (&Method::GET, "/images/get") => return imageio::save(&ctx, req.uri().query(), None).await,
        (&Method::POST, "/images/load") => return imageio::load(ctx.clone(), req).await,
        (&Method::POST, "/images/create") => {
            let auth = registry_auth(&req);
            return images::create(ctx.clone(), q, auth).await;
        }
        (&Method::POST, "/images/prune") => {
            return images::prune(&*ctx.store, &*ctx.containers, &q)
        }
        (&Method::POST, "/containers/create") => {
            let body = read_body(req).await?;
            return containers::create(&ctx, &q, &body);
        }
        (&Method::GET, "/containers/json") => return containers::list(&ctx, &q),
        (&Method::GET, "/system/df") => return stats::df(&ctx, &q),
        (&Method::GET, "/events") => return events::events(&ctx, &q),
        (&Method::POST, "/containers/prune") => return containers::prune(&ctx, &q).await,
        (&Method::GET, "/networks") => return networks::list(&ctx, &q),
        (&Method::POST, "/networks/create") => {
            let body = read_body(req).await?;
            return networks::create(&ctx, &body).await;
        }
        (&Method::POST, "/networks/prune") => return networks::prune(&ctx, &q).await,
        (&Method::GET, "/volumes") => return volumes::list(&ctx, &q),
        (&Method::POST, "/volumes/create") => {
            let body = read_body(req).await?;
            return volumes::create(&ctx, &body);
        }
        (&Method::POST, "/volumes/prune") => {
            return volumes::prune(&ctx, &q, requested_version(&raw_path)).await
        }
        (&Method::POST, "/build") => return build::build(ctx.clone(), req).await,
        (&Method::POST, "/commit") => {
            let raw = req.uri().query().map(String::from);
            let body = read_body(req).await?;
            return commit::commit(&ctx, &q, raw.as_deref(), &body).await;
        }
        // skiff is no swarm node: dockerd's answer on a node outside a swarm.
        (_, "/swarm") | (_, "/swarm/leave") | (_, "/swarm/unlock") | (_, "/swarm/unlockkey") => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This node is not part of a swarm",
            ))
        }
        // The build cache is not ours yet; `system prune` asks for it.
        (&Method::POST, "/build/prune") => {
            return Ok(http::json(
                StatusCode::OK,
                &serde_json::json!({"CachesDeleted": null, "SpaceReclaimed": 0}),
            ))
        }
        _ => {}
    }

    if let Some(rest) = path.strip_prefix("/exec/") {
        let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
        return match (&method, action) {
            (&Method::POST, "start") => exec::start(&ctx, id, req).await,
            (&Method::POST, "resize") => exec::resize(&ctx, id, &q),
            (&Method::GET, "json") => exec::inspect(&ctx, id),
            _ => Err(ApiError::not_found(format!(
                "page not found: {method} {raw_path} is not supported by skiff"
            ))),
        };
    }
    if let Some(rest) = path.strip_prefix("/containers/") {
        return route_container(ctx, req, &method, rest, &q).await;
    }
    if let Some(rest) = path.strip_prefix("/networks/") {
        let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
        return match (&method, action) {
            (&Method::GET, "") => networks::inspect(&ctx, id),
            (&Method::DELETE, "") => networks::remove(&ctx, id).await,
            (&Method::POST, "connect") | (&Method::POST, "disconnect") => {
                let body = read_body(req).await?;
                networks::connect(&ctx, id, &body, action == "disconnect").await
            }
            _ => Err(ApiError::not_found(format!(
                "page not found: {method} {raw_path} is not supported by skiff"
            ))),
        };
    }

    if let Some(name) = path.strip_prefix("/volumes/") {
        return match method {
            Method::GET => volumes::inspect(&ctx, name),
            Method::DELETE => volumes::remove(&ctx, name, &q).await,
            _ => Err(ApiError::not_found(format!(
                "page not found: {method} {raw_path} is not supported by skiff"
            ))),
        };
    }
    if let Some(name) = path
        .strip_prefix("/distribution/")
        .and_then(|r| r.strip_suffix("/json"))
    {
        if method == Method::GET {
            let auth = registry_auth(&req);
            return images::distribution(&ctx, name, auth).await;
        }
    }
    if let Some(rest) = path.strip_prefix("/images/") {
        if method == Method::DELETE {
            return images::delete(&*ctx.store, &*ctx.containers, rest, &q);
        }
        if let Some(name) = rest.strip_suffix("/json") {
            if method == Method::GET {
                return images::inspect(&*ctx.store, name);
            }
        }
        if let Some(name) = rest.strip_suffix("/history") {
            if method == Method::GET {
                return images::history(&*ctx.store, name);
            }
        }
        if let Some(name) = rest.strip_suffix("/tag") {
            if method == Method::POST {
                return images::tag(&*ctx.store, name, &q);
            }
        }
        if let Some(name) = rest.strip_suffix("/get") {
            if method == Method::GET {
                return imageio::save(&ctx, None, Some(name)).await;
            }
        }
        if let Some(name) = rest.strip_suffix("/push") {
            if method == Method::POST {
                let auth = registry_auth(&req);
                return push::push(ctx.clone(), name, &q, auth).await;
            }
        }
    }
    Err(ApiError::not_found(format!(
        "page not found: {method} {raw_path} is not supported by skiff"
    )))
}

async fn route_container(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
    method: &Method,
    rest: &str,
    q: &Query,
) -> Result<Resp, ApiError> {
    let (name, action) = match rest.split_once('/') {
        Some((n, a)) => (n, a),
        None => (rest, ""),
    };
    let c = ctx.containers.get(name)?;
    match (method, action) {
        (&Method::DELETE, "") => containers::remove(&ctx, c, q).await,
        (&Method::GET, "json") => containers::inspect(&ctx, c, q),
        (&Method::POST, "start") => containers::start(&ctx, c).await,
        (&Method::POST, "stop") => containers::stop(&ctx, c, q).await,
        (&Method::POST, "restart") => containers::restart(&ctx, c, q).await,
        (&Method::POST, "kill") => containers::kill(&ctx, c, q).await,
        (&Method::POST, "wait") => containers::wait(&ctx, c, q),
        (&Method::POST, "rename") => containers::rename(&ctx, c, q),
        (&Method::POST, "resize") => containers::resize(&ctx, c, q).await,
        (&Method::POST, "pause") => containers::pause(&ctx, c, true).await,
        (&Method::POST, "unpause") => containers::pause(&ctx, c, false).await,
        (&Method::POST, "attach") => containers::attach(&ctx, c, q, req),
        (&Method::GET, "logs") => containers::logs(&ctx, c, q),
        (&Method::GET, "top") => containers::top(&ctx, c, q),
        (&Method::GET, "export") => imageio::export(&ctx, c).await,
        (&Method::GET, "changes") => commit::changes(&ctx, &c),
        (&Method::GET, "stats") => stats::stats(&ctx, c, q).await,
        (&Method::HEAD, "archive") => archive::head(&ctx, c, q).await,
        (&Method::GET, "archive") => archive::get(&ctx, c, q).await,
        (&Method::PUT, "archive") => archive::put(&ctx, c, q, req).await,
        (&Method::POST, "exec") => {
            let body = read_body(req).await?;
            exec::create(&ctx, c, &body)
        }
        (&Method::POST, "update") => {
            let body = read_body(req).await?;
            containers::update(&ctx, c, &body).await
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {method} /containers/{rest} is not supported by skiff"
        ))),
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_stripped() {
        assert_eq!(strip_version("/v1.47/images/json").unwrap(), "/images/json");
        assert_eq!(strip_version("/_ping").unwrap(), "/_ping");
        assert!(strip_version("/v1.12/info").is_err());
    }

    #[test]
    fn paths_decode() {
        assert_eq!(
            percent_decode("/images/127.0.0.1%3A5000%2Fbusybox/json"),
            "/images/127.0.0.1:5000/busybox/json"
        );
    }
}
