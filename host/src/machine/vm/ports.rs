//! Published ports on the host for containers in the VM. The agent asks on the control port
//! (one JSON line per request and per answer); the daemon binds the host socket and tunnels
//! each accepted connection to the agent's forward port, behind one header line naming the
//! published address. Publications belong to their control connection: when it closes (the
//! agent restarted or the VM ended), their ports close with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinHandle;

use super::guest;
use skiff_common::vsock::FORWARD_PORT;

/// Serve one control connection until the agent closes it.
pub async fn serve_control(conn: UnixStream, device: PathBuf) {
    let (rd, mut wr) = conn.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut published: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => handle(&req, &device, &mut published),
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        };
        let mut out = answer.to_string();
        out.push('\n');
        if wr.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
    for (_, task) in published {
        task.abort();
    }
}

fn handle(req: &Value, device: &Path, published: &mut HashMap<String, JoinHandle<()>>) -> Value {
    let op = req.get("op").and_then(Value::as_str).unwrap_or_default();
    let proto = req.get("proto").and_then(Value::as_str).unwrap_or_default();
    let Some(addr) = req
        .get("addr")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return json!({ "error": "the request names no valid address" });
    };
    match (op, proto) {
        ("publish", "tcp") => match bind(addr) {
            Ok(l) => {
                let bound = l.local_addr().unwrap_or(addr);
                let key = format!("tcp {bound}");
                let task = tokio::spawn(accept_loop(l, key.clone(), device.to_path_buf()));
                published.insert(key, task);
                json!({ "addr": bound.to_string() })
            }
            Err(e) => json!({
                "error": e.to_string(),
                "inUse": e.kind() == std::io::ErrorKind::AddrInUse,
            }),
        },
        ("publish", "udp") => json!({
            "error": "UDP ports are not published by the vm backend yet; publish TCP ports or use the native backend"
        }),
        ("unpublish", _) => {
            if let Some(task) = published.remove(&format!("{proto} {addr}")) {
                task.abort();
            }
            json!({ "ok": true })
        }
        _ => json!({ "error": format!("unknown request {op} {proto}") }),
    }
}

/// As the agent binds natively: `[::]` only for IPv6 (docker binds 0.0.0.0 and :: apart), and
/// a port in TIME_WAIT from a stopped container is still ours.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => {
            let s = tokio::net::TcpSocket::new_v6()?;
            set_v6only(&s)?;
            s
        }
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(4096)
}

fn set_v6only(s: &tokio::net::TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option on our socket.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

async fn accept_loop(l: TcpListener, header: String, device: PathBuf) {
    loop {
        let Ok((mut client, _)) = l.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let header = header.clone();
        let device = device.clone();
        tokio::spawn(async move {
            let mut up = match guest::connect(&device, FORWARD_PORT).await {
                Ok(up) => up,
                Err(e) => {
                    tracing::debug!("forward {header}: {e:#}");
                    return;
                }
            };
            if up
                .write_all(format!("{header}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        });
    }
}
