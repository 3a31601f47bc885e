//! Container output as the Docker API streams it: followed from the log file, framed with
//! docker's 8-byte multiplex header unless the container has a tty, and the hijacked
//! (upgraded) connections of `attach` with their stdin and detach keys.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::http::{ApiError, Resp};
use crate::containers::logs::Record;
use crate::containers::{Container, Containers};

/// docker's multiplexed stream header: stream id, three zero bytes, big-endian length.
pub fn frame(stream: u8, data: &[u8], out: &mut Vec<u8>) {
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

pub use crate::containers::follow::{follow, FollowSpec};

/// Encode records for the wire: framed, or raw for a tty.
pub fn encode(rec: &Record, tty: bool, timestamps: bool) -> Vec<u8> {
    let mut payload = Vec::with_capacity(rec.data.len() + 32);
    if timestamps {
        payload.extend_from_slice(rec.timestamp().as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&rec.data);
    if tty {
        return payload;
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    frame(rec.stream as u8, &payload, &mut out);
    out
}

pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub logs: bool,
    pub stream: bool,
    pub detach_keys: Vec<u8>,
}

/// docker's `--detach-keys` syntax: "ctrl-p,ctrl-q", letters, or "ctrl-@"…"ctrl-_".
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    for key in s.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid detach keys ({s}) provided"
                    )))
                }
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(ApiError::bad_request(format!(
                "Invalid detach keys ({s}) provided"
            )));
        }
    }
    Ok(out)
}

/// The API connection's own unix socket, for a hijacked stream to see when the client has
/// read what was sent (valid while the connection is: the handler holds it).
#[derive(Clone, Copy, Debug)]
pub struct ClientSocket(std::os::fd::RawFd);

impl ClientSocket {
    pub fn of(stream: &tokio::net::UnixStream) -> Self {
        ClientSocket(std::os::fd::AsRawFd::as_raw_fd(stream))
    }

    /// Waits, 100 ms at most, until the client has read all that was sent to it: the
    /// hijack's response head. docker-py reads a hijacked stream from the raw socket, past
    /// http.client's buffer, so bytes that reach it in the same read as the head are lost to
    /// it: `attach(stream=False, logs=True)` of a stopped container, whose whole log is
    /// ready at once, came back empty about once in a hundred. dockerd has the same window,
    /// only a wider one before its first byte. (Through the VM the host's relay holds the
    /// client's socket, and this engine sees a vsock stream: no wait there.)
    pub async fn until_read(self) {
        for _ in 0..100 {
            let mut queued: libc::c_int = 0;
            // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; the fd is the live connection.
            let rc = unsafe { libc::ioctl(self.0, libc::TIOCOUTQ, &mut queued) };
            if rc != 0 || queued == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

pub fn upgrade_response(content_type: &'static str) -> Resp {
    let mut r = hyper::Response::new(super::http::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("Content-Type", HeaderValue::from_static(content_type));
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("tcp"));
    r
}

/// Serve `attach` on the hijacked connection.
pub fn attach(
    engine: Arc<Containers>,
    c: Arc<Container>,
    mut req: Request<Incoming>,
    opts: AttachOptions,
) -> Resp {
    let rec = c.record();
    let tty = rec.tty();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let client = req.extensions().get::<ClientSocket>().copied();
    let offset = if opts.logs {
        0
    } else {
        std::fs::metadata(c.log_path())
            .map(|m| m.len())
            .unwrap_or(0)
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        if let Some(client) = client {
            client.until_read().await;
        }
        let io = TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        let (tx, mut rx) = mpsc::channel::<Record>(64);
        let follower = tokio::spawn(follow(
            engine.clone(),
            c.clone(),
            FollowSpec {
                offset,
                skip: 0,
                stdout: opts.stdout,
                stderr: opts.stderr,
                follow: opts.stream,
                wait_for_start: true,
                since_nanos: None,
                until_nanos: None,
            },
            tx,
        ));
        // mpsc, not oneshot: the receiver may be polled again after the sender is gone.
        let (detach_tx, mut detach_rx) = mpsc::channel::<()>(1);
        let stdin_task = if opts.stdin && rec.config.open_stdin.unwrap_or(false) {
            let c = c.clone();
            let keys = opts.detach_keys.clone();
            Some(tokio::spawn(async move {
                if pump_stdin(&c, &mut rd, &keys, tty).await {
                    let _ = detach_tx.send(()).await;
                }
            }))
        } else {
            None
        };
        loop {
            tokio::select! {
                rec = rx.recv() => match rec {
                    Some(rec) => {
                        if wr.write_all(&encode(&rec, tty, false)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                // A dropped sender (stdin ended without the keys) is not a detach.
                Some(()) = detach_rx.recv() => break,
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
        follower.abort();
        if let Some(t) = stdin_task {
            t.abort();
        }
    });
    upgrade_response(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

/// Copy the client's stdin into the container; true when the client typed the detach keys.
async fn pump_stdin<R: tokio::io::AsyncRead + Unpin>(
    c: &Container,
    from: &mut R,
    detach_keys: &[u8],
    tty: bool,
) -> bool {
    // The container may not be started yet (`run` attaches first): bytes wait in the socket.
    let mut changes = c.subscribe();
    while !c.status().is_live() {
        if changes.changed().await.is_err() {
            return false;
        }
    }
    let mut to = match c.stdin_stream().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("attach: stdin of {}: {e:#}", c.id);
            return false;
        }
    };
    tracing::debug!("attach: stdin of {} connected", c.id);
    let mut buf = vec![0u8; 32 << 10];
    let mut matched = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tracing::debug!("attach: {n} bytes of stdin for {}", c.id);
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if tty && !detach_keys.is_empty() && b == detach_keys[matched] {
                matched += 1;
                if matched == detach_keys.len() {
                    let _ = to.write_all(&out).await;
                    return true;
                }
                continue;
            }
            // A partial match that broke off: those keys were meant for the container.
            out.extend_from_slice(&detach_keys[..matched]);
            matched = 0;
            out.push(b);
        }
        if to.write_all(&out).await.is_err() {
            break;
        }
    }
    // Closing our side tells the shim the client's stdin ended (StdinOnce).
    let _ = to.shutdown().await;
    false
}
