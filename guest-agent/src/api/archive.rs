//! `/containers/{id}/archive`: docker cp's HEAD (stat), GET (tar out) and PUT (tar in).

use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::{empty, ApiError, Query, Resp};
use super::Ctx;
use crate::containers::archive::{MOUNTS_ENV, NOT_A_DIR, NOT_FOUND, REFUSED};
use crate::containers::engine::{check_writable, CopyRoot};
use crate::containers::Container;

fn helper(ctx: &Ctx, op: &str, at: &CopyRoot, path: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(ctx.containers.agent_exe());
    cmd.arg("archive").arg(op).arg(&at.root).arg(path);
    if let Some(mounts) = at.mounts_json() {
        cmd.env(MOUNTS_ENV, mounts);
    }
    cmd.stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

fn path_of(q: &Query) -> Result<String, ApiError> {
    let p = q.get("path").filter(|p| !p.is_empty()).ok_or_else(|| {
        ApiError::bad_request("path is required: say which file in the container")
    })?;
    // Relative paths are relative to the container's root, as docker's cp takes them.
    Ok(if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    })
}

fn failure(code: Option<i32>, stderr: &[u8], c: &Container) -> ApiError {
    let msg = String::from_utf8_lossy(stderr).trim().to_string();
    match code {
        Some(NOT_FOUND) => ApiError::not_found(format!("{msg} {}", c.record().name)),
        Some(NOT_A_DIR) | Some(REFUSED) => ApiError::bad_request(msg),
        _ => ApiError::internal(if msg.is_empty() {
            "copy failed".into()
        } else {
            msg
        }),
    }
}

async fn stat(
    ctx: &Ctx,
    c: &Arc<Container>,
    at: &CopyRoot,
    path: &str,
) -> Result<String, ApiError> {
    let out = helper(ctx, "stat", at, path)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running the copy helper: {e}")))?;
    if !out.status.success() {
        return Err(failure(out.status.code(), &out.stderr, c));
    }
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

pub async fn head(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let path = path_of(q)?;
    let at = ctx.containers.rootfs_for_copy(&c, &path, false).await?;
    let header = stat(ctx, &c, &at, &path).await?;
    let mut r = empty(StatusCode::OK);
    r.headers_mut().insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&header).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(r)
}

pub async fn get(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let path = path_of(q)?;
    let at = ctx.containers.rootfs_for_copy(&c, &path, false).await?;
    let header = stat(ctx, &c, &at, &path).await?;
    let mut child = helper(ctx, "get", &at, &path)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| ApiError::internal(format!("running the copy helper: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ApiError::internal("copy helper has no stdout"))?;
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure leaves the default size.
        unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    // The path may vanish between the stat and the copy (the container changes its files as
    // it likes): the first bytes, or the helper's verdict, come before our status line.
    let mut stdout = stdout;
    let mut first = BytesMut::with_capacity(1 << 20);
    let n = stdout
        .read_buf(&mut first)
        .await
        .map_err(|e| ApiError::internal(format!("reading the copy helper: {e}")))?;
    if n == 0 {
        let mut err = Vec::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_end(&mut err).await;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| ApiError::internal(format!("copy helper: {e}")))?;
        return Err(failure(status.code().or(Some(1)), &err, &c));
    }
    // The guard (a stopped container's temporary mount) lives as long as the stream.
    let state = (stdout, child, at, Some(first.freeze()));
    let stream = futures::stream::unfold(Some(state), |st| async move {
        let (mut out, mut child, guard, first) = st?;
        if let Some(first) = first {
            return Some((
                Ok::<_, std::io::Error>(Frame::data(first)),
                Some((out, child, guard, None)),
            ));
        }
        let mut buf = BytesMut::with_capacity(1 << 20);
        match out.read_buf(&mut buf).await {
            Ok(n) if n > 0 => Some((
                Ok::<_, std::io::Error>(Frame::data(buf.freeze())),
                Some((out, child, guard, None)),
            )),
            _ => {
                let ok = child.wait().await.map(|s| s.success()).unwrap_or(false);
                drop(guard);
                // A helper that failed mid-way must not look like a complete archive: ending
                // the body with an error makes the client see a broken transfer.
                (!ok).then(|| (Err(std::io::Error::other("the copy failed part way")), None))
            }
        }
    });
    let mut r = hyper::Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&header).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(r)
}

pub async fn put(
    ctx: &Ctx,
    c: Arc<Container>,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let path = path_of(q)?;
    let rec = c.record();
    let readonly_rootfs = rec.host_config.readonly_rootfs.unwrap_or(false);
    check_writable(&rec.mounts, readonly_rootfs, &path)?;
    let at = ctx.containers.rootfs_for_copy(&c, &path, true).await?;
    let mut cmd = helper(ctx, "put", &at, &path);
    if q.flag("copyUIDGID") {
        cmd.arg("--copy-uid-gid");
    }
    if q.flag("noOverwriteDirNonDir") {
        cmd.arg("--no-overwrite-dir-non-dir");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| ApiError::internal(format!("running the copy helper: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ApiError::internal("copy helper has no stdin"))?;
    // A 1 MiB pipe instead of 64 KiB: a fraction of the wake-ups per copied megabyte.
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure leaves the default size.
        unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| ApiError::internal("copy helper has no stderr"))?;
    let err_task = tokio::spawn(async move {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v).await;
        v
    });
    let mut body = req.into_body();
    let mut refused = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let data: Bytes = data;
            // The helper stops reading when it refuses the stream: the rest of the upload is
            // read and dropped, so the client gets our verdict rather than a broken pipe.
            if refused || stdin.write_all(&data).await.is_err() {
                refused = true;
            }
        }
    }
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| ApiError::internal(format!("copy helper: {e}")))?;
    let err = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(failure(status.code(), &err, &c));
    }
    Ok(empty(StatusCode::OK))
}
