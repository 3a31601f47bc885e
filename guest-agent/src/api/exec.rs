//! `/containers/{id}/exec` and `/exec/{id}/...`.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::http::{empty, json, ApiError, Query, Resp};
use super::streams::{self, frame};
use super::Ctx;
use crate::containers::exec::{process_json, Exec, ExecConfig};
use crate::containers::{tty, Container};

pub fn create(ctx: &Ctx, c: Arc<Container>, body: &[u8]) -> Result<Resp, ApiError> {
    let cfg: ExecConfig = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    let id = ctx.execs.create(c, cfg)?;
    Ok(json(StatusCode::CREATED, &json!({"Id": id})))
}

pub fn inspect(ctx: &Ctx, id: &str) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &ctx.execs.get(id)?.inspect()))
}

pub fn resize(ctx: &Ctx, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let exec = ctx.execs.get(id)?;
    let (h, w) = super::containers::size_of(q)?;
    let st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
    match &st.master {
        Some(m) if st.running => {
            tty::set_winsize(m.as_raw_fd(), h, w);
            Ok(empty(StatusCode::OK))
        }
        _ => Err(ApiError::conflict(format!(
            "cannot resize exec {id}: it is not running with a terminal"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct StartBody {
    #[serde(default)]
    detach: bool,
    #[serde(default)]
    console_size: Option<Vec<u16>>,
    /// How the output travels, as dockerd: raw when true, in docker's multiplexed frames
    /// when false, whether or not the process has a terminal (the exec's own `Tty`). A start
    /// that does not say keeps the exec's.
    #[serde(default)]
    tty: Option<bool>,
}

enum Io {
    /// `exec -d`: nobody reads the output.
    Detached,
    Pipes {
        stdin: Option<tokio::process::ChildStdin>,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
    },
    Tty {
        master: Arc<std::os::fd::OwnedFd>,
        stderr: tokio::process::ChildStderr,
    },
}

pub async fn start(ctx: &Ctx, id: &str, mut req: Request<Incoming>) -> Result<Resp, ApiError> {
    let exec = ctx.execs.get(id)?;
    // Taken before the body is read: reading consumes the request.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = super::read_body(req).await?;
    let sb: StartBody = if body.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?
    };
    {
        let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.running || st.exit_code.is_some() {
            return Err(ApiError::conflict(format!(
                "Exec command {id} has already run"
            )));
        }
        st.running = true;
    }
    let mut exec_cfg = exec.config.clone();
    if sb.console_size.is_some() {
        exec_cfg.console_size = sb.console_size;
    }
    let launched = launch(ctx, &exec, &exec_cfg, sb.detach).await;
    let (child, io) = match launched {
        Ok(x) => x,
        Err(e) => {
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            st.exit_code = Some(126);
            return Err(e);
        }
    };
    let tty = sb.tty.unwrap_or(exec_cfg.tty.unwrap_or(false));
    if sb.detach {
        let exec = exec.clone();
        tokio::spawn(async move { finish(&exec, child).await });
        return Ok(empty(StatusCode::OK));
    }
    let keys = streams::parse_detach_keys(
        exec.config
            .detach_keys
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("ctrl-p,ctrl-q"),
    )?;
    let exec2 = exec.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            finish(&exec2, child).await;
            return;
        };
        let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
        relay(&exec2, io, rd, wr, child, &keys, !tty).await;
    });
    Ok(streams::upgrade_response(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }))
}

async fn launch(
    ctx: &Ctx,
    exec: &Arc<Exec>,
    cfg: &ExecConfig,
    detach: bool,
) -> Result<(tokio::process::Child, Io), ApiError> {
    use std::process::Stdio;
    let c = &exec.container;
    let rootfs = c.paths().rootfs();
    let with_cfg = Exec {
        id: exec.id.clone(),
        container: c.clone(),
        config: cfg.clone(),
        state: Default::default(),
    };
    let process = process_json(&with_cfg, &rootfs)?;
    let internal = |e: std::io::Error| ApiError::internal(format!("starting exec: {e}"));
    let pfile = c.dir.join(format!("exec-{}.json", exec.id));
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap_or_default()).map_err(internal)?;
    let tty = cfg.tty.unwrap_or(false);
    let mut cmd = tokio::process::Command::new(ctx.containers.agent_exe());
    cmd.arg("exec")
        .arg(ctx.containers.runtime_root())
        .arg(&c.id)
        .arg(&pfile)
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let console_name = format!("exec-{}.sock", &exec.id[..12]);
    let console = c.dir.join(&console_name);
    let console_short =
        crate::containers::sockpath::socket_path(&c.dir, &console_name).map_err(internal)?;
    let listener = if tty {
        let _ = std::fs::remove_file(&console);
        let l = std::os::unix::net::UnixListener::bind(&console_short.path).map_err(internal)?;
        cmd.arg(&console_short.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Some(l)
    } else {
        let attach_in = cfg.attach_stdin.unwrap_or(false) && !detach;
        cmd.stdin(if attach_in {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if detach {
            Stdio::null()
        } else {
            Stdio::piped()
        });
        None
    };
    let mut child = cmd.spawn().map_err(internal)?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| ApiError::internal("exec helper has no stderr"))?;
    let io = match listener {
        Some(l) => {
            l.set_nonblocking(true).map_err(internal)?;
            let l = tokio::net::UnixListener::from_std(l).map_err(internal)?;
            let accepted = tokio::select! {
                a = l.accept() => Some(a.map_err(internal)?),
                _ = child.wait() => None,
            };
            let _ = std::fs::remove_file(&console);
            let Some((conn, _)) = accepted else {
                // The helper ended before a terminal existed: its stderr says why.
                let mut msg = String::new();
                let mut stderr = stderr;
                let _ = stderr.read_to_string(&mut msg).await;
                let _ = std::fs::remove_file(&pfile);
                return Err(ApiError::bad_request(msg.trim().to_string()));
            };
            let conn = conn.into_std().map_err(internal)?;
            conn.set_nonblocking(false).map_err(internal)?;
            let master = tokio::task::spawn_blocking(move || tty::receive_from(&conn))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            if let Some(size) = cfg.console_size.as_ref().filter(|s| s.len() == 2) {
                tty::set_winsize(master.as_raw_fd(), size[0], size[1]);
            }
            Io::Tty {
                master: Arc::new(master),
                stderr,
            }
        }
        None if detach => Io::Detached,
        None => Io::Pipes {
            stdin: child.stdin.take(),
            stdout: child
                .stdout
                .take()
                .ok_or_else(|| ApiError::internal("exec helper has no stdout"))?,
            stderr,
        },
    };
    {
        let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
        st.pid = child.id().map(|p| p as i64).unwrap_or(0);
        if let Io::Tty { master, .. } = &io {
            st.master = Some(master.clone());
        }
    }
    Ok((child, io))
}

async fn finish(exec: &Exec, mut child: tokio::process::Child) {
    let code = match child.wait().await {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code()
                .map(|c| c as i64)
                .or_else(|| s.signal().map(|sig| 128 + sig as i64))
                .unwrap_or(255)
        }
        Err(_) => 255,
    };
    let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
    st.running = false;
    st.exit_code = Some(code);
    st.master = None;
}

/// Output for the client: in docker's frame for `stream`, or as it is.
fn put(framed: bool, stream: u8, data: &[u8], wire: &mut Vec<u8>) {
    if framed {
        frame(stream, data, wire);
    } else {
        wire.extend_from_slice(data);
    }
}

async fn relay<R, W>(
    exec: &Exec,
    io: Io,
    mut client_in: R,
    mut client_out: W,
    child: tokio::process::Child,
    detach_keys: &[u8],
    framed: bool,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    match io {
        Io::Detached => {}
        Io::Pipes {
            stdin,
            mut stdout,
            mut stderr,
        } => {
            let input = stdin.map(|mut to| {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_in, &mut to).await;
                    let _ = to.shutdown().await;
                })
            });
            let (mut out_done, mut err_done) = (false, false);
            let mut ob = vec![0u8; 64 << 10];
            let mut eb = vec![0u8; 16 << 10];
            let mut wire = Vec::with_capacity(72 << 10);
            while !(out_done && err_done) {
                wire.clear();
                tokio::select! {
                    r = stdout.read(&mut ob), if !out_done => match r {
                        Ok(0) | Err(_) => out_done = true,
                        Ok(n) => put(framed, 1, &ob[..n], &mut wire),
                    },
                    r = stderr.read(&mut eb), if !err_done => match r {
                        Ok(0) | Err(_) => err_done = true,
                        Ok(n) => put(framed, 2, &eb[..n], &mut wire),
                    },
                }
                if !wire.is_empty() && client_out.write_all(&wire).await.is_err() {
                    break;
                }
            }
            if let Some(t) = input {
                t.abort();
            }
        }
        Io::Tty { master, mut stderr } => {
            let dup = |m: &std::os::fd::OwnedFd| {
                m.try_clone()
                    .map(|fd| tokio::fs::File::from_std(std::fs::File::from(fd)))
            };
            let (Ok(mut m_read), Ok(mut m_write)) = (dup(&master), dup(&master)) else {
                finish(exec, child).await;
                return;
            };
            let keys = detach_keys.to_vec();
            // mpsc, not oneshot: the receiver may be polled again after the sender is gone.
            let (det_tx, mut det_rx) = tokio::sync::mpsc::channel::<()>(1);
            let input = tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut matched = 0usize;
                loop {
                    let n = match client_in.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut out = Vec::with_capacity(n);
                    for &b in &buf[..n] {
                        if !keys.is_empty() && b == keys[matched] {
                            matched += 1;
                            if matched == keys.len() {
                                let _ = m_write.write_all(&out).await;
                                let _ = det_tx.send(()).await;
                                return;
                            }
                            continue;
                        }
                        out.extend_from_slice(&keys[..matched]);
                        matched = 0;
                        out.push(b);
                    }
                    if m_write.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
            let mut buf = vec![0u8; 64 << 10];
            let mut ebuf = vec![0u8; 4096];
            let mut wire = Vec::with_capacity(72 << 10);
            let mut err_done = false;
            loop {
                wire.clear();
                tokio::select! {
                    r = m_read.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => put(framed, 1, &buf[..n], &mut wire),
                    },
                    r = stderr.read(&mut ebuf), if !err_done => match r {
                        Ok(0) | Err(_) => err_done = true,
                        Ok(n) => put(framed, 2, &ebuf[..n], &mut wire),
                    },
                    Some(()) = det_rx.recv() => {
                        let _ = client_out.shutdown().await;
                        input.abort();
                        // Detached: the process keeps running; record its end later.
                        finish(exec, child).await;
                        return;
                    }
                }
                if !wire.is_empty() && client_out.write_all(&wire).await.is_err() {
                    break;
                }
            }
            input.abort();
        }
    }
    finish(exec, child).await;
    let _ = client_out.flush().await;
    let _ = client_out.shutdown().await;
}
