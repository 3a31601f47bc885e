//! The guest's way out for image pulls: an HTTP proxy served on the host, reached from the
//! guest over vsock. It runs here so that pulls see the host's network as the user does: its
//! DNS, VPN and proxies, and registries on the host's own loopback.
//!
//! Written by hand on hyper rather than with a proxy crate: it needs exactly two things, a
//! CONNECT tunnel (https registries) and forwarding of absolute-form requests (plain-http ones).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use skiff_common::vsock::EGRESS_UNREACHABLE as UNREACHABLE;

type Body = BoxBody<Bytes, hyper::Error>;

/// The upstream connection of one proxy connection: the guest's client pools connections by
/// destination, so consecutive requests on one proxy connection go to one server and reuse it.
type Upstream = Arc<Mutex<Option<(String, hyper::client::conn::http1::SendRequest<Incoming>)>>>;

/// Serve one proxy connection from the guest. It must start with this boot's proof line
/// (skiff_common::auth; the engine's relay writes it and serves only the engine's own
/// sockets); anything else in the guest that reaches the egress port is closed unanswered.
pub async fn serve_connection<S>(mut stream: S, token: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !skiff_common::auth::proves_itself(&mut stream, &token).await {
        super::refusals::warn(format_args!(
            "egress: refused a guest connection without this VM's token"
        ));
        return;
    }
    let upstream: Upstream = Arc::default();
    let svc = hyper::service::service_fn(move |req| {
        let upstream = upstream.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, upstream).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("egress connection ended: {e}");
    }
}

fn error(status: StatusCode, msg: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r
}

async fn handle(req: Request<Incoming>, upstream: Upstream) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return tunnel(req).await;
    }
    match forward(req, upstream).await {
        Ok(r) => r,
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("{e:#}\n")),
    }
}

async fn tunnel(req: Request<Incoming>) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
        return error(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n".into());
    };
    let target = match TcpStream::connect(&authority).await {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("{UNREACHABLE}{authority} from the host: {e}\n"),
            )
        }
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => {
                let _ = skiff_common::relay::relay(TokioIo::new(up), target).await;
            }
            Err(e) => tracing::debug!("egress: CONNECT {authority} not upgraded: {e}"),
        }
    });
    Response::new(Empty::new().map_err(|e| match e {}).boxed())
}

async fn forward(mut req: Request<Incoming>, upstream: Upstream) -> anyhow::Result<Response<Body>> {
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("only absolute http:// requests and CONNECT go through this proxy");
    }
    let Some(authority) = uri.authority().map(|a| a.to_string()) else {
        anyhow::bail!("the request has no host");
    };
    let authority = if authority.contains(':') {
        authority
    } else {
        format!("{authority}:80")
    };
    *req.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()?;
    req.headers_mut().remove("proxy-connection");
    req.headers_mut().remove("proxy-authorization");

    let mut slot = upstream.lock().await;
    let reusable = matches!(&*slot, Some((a, s)) if *a == authority && !s.is_closed());
    if !reusable {
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|e| anyhow::anyhow!("{UNREACHABLE}{authority} from the host: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *slot = Some((authority.clone(), sender));
    }
    let Some((_, sender)) = slot.as_mut() else {
        anyhow::bail!("no upstream connection");
    };
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    Ok(resp.map(|b| b.boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every request on a connection with the request line it got.
    async fn origin() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let first = text.lines().next().unwrap_or_default().to_string();
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{first}",
                            first.len()
                        );
                        s.write_all(reply.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A proven proxy connection (the engine's relay writes the proof line first).
    async fn proxy() -> (tokio::io::DuplexStream, String) {
        let (mut client, proxy) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve_connection(proxy, TOKEN.into()));
        client
            .write_all(skiff_common::auth::line(TOKEN).as_bytes())
            .await
            .unwrap();
        (client, String::new())
    }

    async fn read_reply(s: &mut tokio::io::DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn forwards_absolute_requests_in_origin_form() {
        let addr = origin().await;
        let (mut client, auth) = proxy().await;
        for path in ["/v2/", "/v2/busybox/manifests/latest"] {
            let req = format!("GET http://{addr}{path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
            client.write_all(req.as_bytes()).await.unwrap();
            let reply = read_reply(&mut client).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.ends_with(&format!("GET {path} HTTP/1.1")), "{reply}");
        }
    }

    #[tokio::test]
    async fn tunnels_connect_and_reports_unreachable_hosts() {
        let addr = origin().await;
        let (mut client, auth) = proxy().await;
        let req = format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
        client.write_all(req.as_bytes()).await.unwrap();
        let reply = read_reply(&mut client).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        client
            .write_all(b"GET /through HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert!(reply.ends_with("GET /through HTTP/1.1"), "{reply}");

        // A port nothing listens on: a clean 502 naming the target.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let (mut client, auth) = proxy().await;
        let req = format!("GET http://{dead}/v2/ HTTP/1.1\r\nHost: {dead}\r\n{auth}\r\n");
        client.write_all(req.as_bytes()).await.unwrap();
        let reply = read_reply(&mut client).await;
        assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
        assert!(reply.contains(&dead.to_string()), "{reply}");
    }

    #[tokio::test]
    async fn connections_without_the_token_go_nowhere() {
        let addr = origin().await;
        for first in [String::new(), format!("skiff-auth {}\n", "f".repeat(64))] {
            let (mut client, proxy) = tokio::io::duplex(1 << 16);
            let served = tokio::spawn(serve_connection(proxy, TOKEN.into()));
            let req = format!("{first}GET http://{addr}/x HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            client.write_all(req.as_bytes()).await.unwrap();
            served.await.unwrap();
            let mut reply = Vec::new();
            let _ = client.read_to_end(&mut reply).await;
            assert!(reply.is_empty(), "{}", String::from_utf8_lossy(&reply));
        }
    }
}
