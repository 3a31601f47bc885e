//! Published ports on the host for containers in the VM. The agent asks on the control port
//! (one JSON line per request and per answer); the daemon binds the host socket and tunnels
//! each accepted connection to the agent's forward port, behind one header line naming the
//! published address. Publications belong to their control connection: when it closes (the
//! agent restarted or the VM ended), their ports close with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::guest;
use skiff_common::vsock::{datagram, FORWARD_PORT};

/// Publications one control connection may hold: more than any engine's containers need
/// (docker's own default range of ephemeral ports is about 28,000 wide, but a container
/// publishing thousands is an accident), few enough that a runaway engine cannot exhaust the
/// host's ports or descriptors.
const MAX_PUBLISHED: usize = 4096;

/// Serve one control connection until the agent closes it. Its first line must prove this
/// boot's token (skiff_common::auth): anything else in the guest that reaches the control
/// port is shut out before a single request is read.
pub async fn serve_control(mut conn: UnixStream, device: PathBuf, token: String) {
    if !skiff_common::auth::proves_itself(&mut conn, &token).await {
        super::refusals::warn(format_args!(
            "control: refused a guest connection without this VM's token"
        ));
        return;
    }
    let (rd, mut wr) = conn.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut published: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req)
                if req.get("op").and_then(Value::as_str) == Some("publish")
                    && published.len() >= MAX_PUBLISHED =>
            {
                json!({ "error": format!("this engine holds {MAX_PUBLISHED} published ports already") })
            }
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

/// Where accepted connections go: the engine's forward port in the guest.
#[derive(Clone)]
struct Forward {
    device: PathBuf,
    port: u32,
}

impl Forward {
    async fn connect(&self) -> anyhow::Result<tokio::net::UnixStream> {
        guest::connect(&self.device, self.port).await
    }
}

fn handle(req: &Value, device: &Path, published: &mut HashMap<String, JoinHandle<()>>) -> Value {
    let op = req.get("op").and_then(Value::as_str).unwrap_or_default();
    let proto = req.get("proto").and_then(Value::as_str).unwrap_or_default();
    // Each engine in the VM has its own forward port; older agents name none.
    let to = Forward {
        device: device.to_path_buf(),
        port: req
            .get("forward")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(FORWARD_PORT),
    };
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
                let task = tokio::spawn(accept_loop(l, key.clone(), to));
                published.insert(key, task);
                json!({ "addr": bound.to_string() })
            }
            Err(e) => json!({
                "error": e.to_string(),
                "inUse": e.kind() == std::io::ErrorKind::AddrInUse,
            }),
        },
        ("publish", "udp") => match bind_udp(addr) {
            Ok(sock) => {
                let bound = sock.local_addr().unwrap_or(addr);
                let key = format!("udp {bound}");
                let task = tokio::spawn(udp_loop(Arc::new(sock), key.clone(), to));
                published.insert(key, task);
                json!({ "addr": bound.to_string() })
            }
            Err(e) => json!({
                "error": e.to_string(),
                "inUse": e.kind() == std::io::ErrorKind::AddrInUse,
            }),
        },
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
/// a TCP port in TIME_WAIT from a stopped container is still ours.
fn socket(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket(addr, socket2::Type::STREAM)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket(addr, socket2::Type::DGRAM)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// A UDP flow with no datagram either way for this long is forgotten (as natively).
const UDP_IDLE: Duration = Duration::from_secs(60);
const MAX_UDP_FLOWS: usize = 4096;

/// Datagrams from each client address go to the guest on a vsock stream of their own, so that
/// the container's answers find their way back to that client.
async fn udp_loop(sock: Arc<UdpSocket>, header: String, to: Forward) {
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let d = buf[..n].to_vec();
        flows.retain(|_, tx| !tx.is_closed());
        if let Some(tx) = flows.get(&client) {
            // A full queue drops the datagram, as a full socket buffer would.
            let _ = tx.try_send(d);
            continue;
        }
        if flows.len() >= MAX_UDP_FLOWS {
            continue;
        }
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.try_send(d);
        flows.insert(client, tx);
        let (sock, header, to) = (sock.clone(), header.clone(), to.clone());
        tokio::spawn(async move {
            if let Err(e) = udp_flow(sock, client, rx, &header, &to).await {
                tracing::debug!("udp flow {client} for {header}: {e:#}");
            }
        });
    }
}

async fn udp_flow(
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    header: &str,
    to: &Forward,
) -> anyhow::Result<()> {
    let mut up = to.connect().await?;
    up.write_all(format!("{header}\n").as_bytes()).await?;
    let (mut rd, mut wr) = up.into_split();
    let last_back = Arc::new(Mutex::new(Instant::now()));
    let mut back = {
        let (sock, last_back) = (sock.clone(), last_back.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while datagram::read(&mut rd, &mut buf).await? {
                *last_back.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                sock.send_to(&buf, client).await?;
            }
            Ok::<_, std::io::Error>(())
        })
    };
    let mut last_out = Instant::now();
    loop {
        let last = last_out.max(*last_back.lock().unwrap_or_else(|e| e.into_inner()));
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    datagram::write(&mut wr, &d).await?;
                    last_out = Instant::now();
                }
                None => break,
            },
            _ = &mut back => break,
            _ = tokio::time::sleep_until((last + UDP_IDLE).into()) => {
                let latest = last_out.max(*last_back.lock().unwrap_or_else(|e| e.into_inner()));
                if latest.elapsed() >= UDP_IDLE {
                    break;
                }
            }
        }
    }
    back.abort();
    Ok(())
}

async fn accept_loop(l: TcpListener, header: String, to: Forward) {
    loop {
        let Ok((client, _)) = l.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let header = header.clone();
        let to = to.clone();
        tokio::spawn(async move {
            let mut up = match to.connect().await {
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
            let _ = skiff_common::relay::relay(client, up).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const PUBLISH: &[u8] = b"{\"op\":\"publish\",\"proto\":\"tcp\",\"addr\":\"127.0.0.1:0\"}\n";

    #[tokio::test]
    async fn control_requests_need_the_token_first() {
        let device = PathBuf::from("/nonexistent/vsock.sock");
        for first in [&b""[..], b"skiff-auth 00\n", b"skiff-auth ffff\n"] {
            let (mut guest, daemon) = UnixStream::pair().unwrap();
            let served = tokio::spawn(serve_control(daemon, device.clone(), TOKEN.into()));
            guest.write_all(first).await.unwrap();
            guest.write_all(PUBLISH).await.unwrap();
            // Closed unanswered (a reset, when the request was left unread).
            let mut answer = Vec::new();
            let _ = guest.read_to_end(&mut answer).await;
            assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
            served.await.unwrap();
        }

        let (guest, daemon) = UnixStream::pair().unwrap();
        tokio::spawn(serve_control(daemon, device, TOKEN.into()));
        let (rd, mut wr) = guest.into_split();
        wr.write_all(skiff_common::auth::line(TOKEN).as_bytes())
            .await
            .unwrap();
        wr.write_all(PUBLISH).await.unwrap();
        let mut line = String::new();
        BufReader::new(rd).read_line(&mut line).await.unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        let addr: SocketAddr = answer["addr"].as_str().unwrap().parse().unwrap();
        assert_ne!(addr.port(), 0);
        tokio::net::TcpStream::connect(addr).await.unwrap();
    }
}
