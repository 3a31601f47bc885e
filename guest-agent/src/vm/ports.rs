//! Published ports when the agent runs in skiff's VM: the host sockets belong to the machine
//! daemon on the host. The agent asks for each one on the control port (one JSON line each way)
//! and receives every accepted connection on the forward port, as a vsock stream that starts
//! with one header line naming the published address (`tcp 0.0.0.0:8080`), then raw bytes.
//!
//! Publications live as long as the control connection: a restarted agent starts from none
//! and publishes again what its containers need.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

use super::vsock::{connect_host_blocking, VsockFile};
use crate::network::proxy::Proto;
use crate::network::publish::{self, Publisher};
use skiff_common::vsock::{datagram, CONTROL_PORT};

#[derive(Default)]
pub struct RemotePorts {
    control: Mutex<Option<BufReader<VsockFile>>>,
    /// Where the host sends accepted connections (one port per engine in the VM).
    forward_port: u32,
    targets: Mutex<HashMap<(Proto, SocketAddr), SocketAddr>>,
}

/// The publisher for an engine in the VM: ports held by the host's daemon, whose connections
/// arrive on the forward port's `listener` (bound by PID 1). Must run inside the tokio
/// runtime.
pub fn publisher(listener: tokio_vsock::VsockListener) -> anyhow::Result<Publisher> {
    let forward_port = listener.local_addr()?.port();
    let ports = Arc::new(RemotePorts {
        forward_port,
        ..RemotePorts::default()
    });
    let p = ports.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let p = p.clone();
            tokio::spawn(async move {
                if let Err(e) = p.forward(conn).await {
                    tracing::debug!("forwarded connection: {e}");
                }
            });
        }
    });
    Ok(Publisher::Remote(Arc::new(HostPorts(ports))))
}

/// `RemotePorts` as the network layer sees them.
struct HostPorts(Arc<RemotePorts>);

impl publish::RemotePorts for HostPorts {
    fn reserve(&self, proto: Proto, addr: SocketAddr) -> io::Result<Box<dyn publish::Reservation>> {
        Ok(Box::new(self.0.reserve(proto, addr)?))
    }
}

impl publish::Reservation for Reservation {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    fn proto(&self) -> Proto {
        self.proto
    }
    fn serve(self: Box<Self>, target: SocketAddr) -> Box<dyn publish::RemoteForward> {
        Box::new(Reservation::serve(*self, target))
    }
}

impl publish::RemoteForward for RemoteForward {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl RemotePorts {
    /// One request on the control connection, made on first use and again after a failure.
    fn request(&self, req: &Value) -> io::Result<Value> {
        let mut slot = self.control.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(BufReader::new(connect_host_blocking(CONTROL_PORT)?));
            }
            let Some(conn) = slot.as_mut() else { continue };
            let mut line = serde_json::to_vec(req)?;
            line.push(b'\n');
            let mut answer = String::new();
            let sent = conn.get_mut().write_all(&line);
            let got = sent.and_then(|_| conn.read_line(&mut answer));
            match got {
                Ok(n) if n > 0 => {
                    return serde_json::from_str(&answer)
                        .map_err(|e| io::Error::other(format!("the machine daemon answered: {e}")))
                }
                _ if attempt == 0 => *slot = None,
                Ok(_) => {
                    return Err(io::Error::other(
                        "the machine daemon closed the control connection",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("the machine daemon does not answer"))
    }

    /// Ask the host for `addr` (port 0: the host's choice); returns the address it bound.
    pub fn reserve(self: &Arc<Self>, proto: Proto, addr: SocketAddr) -> io::Result<Reservation> {
        let answer = self.request(&json!({
            "op": "publish",
            "proto": proto,
            "addr": addr.to_string(),
            "forward": self.forward_port,
        }))?;
        if let Some(err) = answer.get("error").and_then(Value::as_str) {
            // Keep the kind: the caller words "address already in use" as docker does.
            let kind = if answer.get("inUse").and_then(Value::as_bool) == Some(true) {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(kind, err.to_string()));
        }
        let bound: SocketAddr = answer
            .get("addr")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::other("the machine daemon did not say which port it bound")
            })?;
        Ok(Reservation {
            ports: self.clone(),
            proto,
            addr: bound,
            served: false,
        })
    }

    fn release(&self, proto: Proto, addr: SocketAddr) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(proto, addr));
        let _ = self.request(&json!({
            "op": "unpublish",
            "proto": proto,
            "addr": addr.to_string(),
        }));
    }

    async fn forward(&self, mut conn: tokio_vsock::VsockStream) -> io::Result<()> {
        let header = read_header(&mut conn).await?;
        let (proto, addr) = parse_header(&header)
            .ok_or_else(|| io::Error::other(format!("bad forward header {header:?}")))?;
        let target = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(proto, addr))
            .copied()
            .ok_or_else(|| io::Error::other(format!("{addr} is not published")))?;
        match proto {
            Proto::Tcp => {
                let up = TcpStream::connect(target).await?;
                let _ = up.set_nodelay(true);
                let (to_target, from_target) = skiff_common::relay::relay(conn, up).await;
                to_target.and(from_target).map(|_| ())
            }
            Proto::Udp => relay_udp(conn, target).await,
        }
    }
}

/// One client flow of a published UDP port: framed datagrams on the vsock stream, plain ones
/// to and from the container. The host ends the stream when the flow goes idle.
async fn relay_udp(conn: tokio_vsock::VsockStream, target: SocketAddr) -> io::Result<()> {
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let sock = Arc::new(UdpSocket::bind(local).await?);
    sock.connect(target).await?;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let mut to_container = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while datagram::read(&mut rd, &mut buf).await? {
                sock.send(&buf).await?;
            }
            Ok::<_, io::Error>(())
        })
    };
    let mut buf = vec![0u8; 65535];
    let result = loop {
        tokio::select! {
            r = sock.recv(&mut buf) => match r {
                Ok(n) => {
                    if let Err(e) = datagram::write(&mut wr, &buf[..n]).await {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            },
            // The host closed the flow, or it broke.
            _ = &mut to_container => break Ok(()),
        }
    };
    to_container.abort();
    result
}

async fn read_header(conn: &mut tokio_vsock::VsockStream) -> io::Result<String> {
    let mut line = Vec::with_capacity(32);
    loop {
        let b = conn.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 64 {
            return Err(io::Error::other("forward header too long"));
        }
    }
    String::from_utf8(line).map_err(|_| io::Error::other("forward header is not text"))
}

fn parse_header(h: &str) -> Option<(Proto, SocketAddr)> {
    let (proto, addr) = h.split_once(' ')?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    Some((proto, addr.parse().ok()?))
}

/// A host port the daemon holds for us, not serving yet.
pub struct Reservation {
    ports: Arc<RemotePorts>,
    proto: Proto,
    addr: SocketAddr,
    served: bool,
}

impl Reservation {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    pub fn serve(mut self, target: SocketAddr) -> RemoteForward {
        self.served = true;
        self.ports
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((self.proto, self.addr), target);
        RemoteForward {
            ports: self.ports.clone(),
            proto: self.proto,
            addr: self.addr,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.served {
            self.ports.release(self.proto, self.addr);
        }
    }
}

/// A published port being served through the host; dropping it gives the host port back.
pub struct RemoteForward {
    ports: Arc<RemotePorts>,
    proto: Proto,
    addr: SocketAddr,
}

impl RemoteForward {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RemoteForward {
    fn drop(&mut self) {
        self.ports.release(self.proto, self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_a_protocol_and_an_address() {
        assert_eq!(
            parse_header("tcp 0.0.0.0:8080"),
            Some((Proto::Tcp, "0.0.0.0:8080".parse().unwrap()))
        );
        assert_eq!(
            parse_header("udp [::1]:53"),
            Some((Proto::Udp, "[::1]:53".parse().unwrap()))
        );
        assert_eq!(parse_header("sctp 0.0.0.0:1"), None);
        assert_eq!(parse_header("tcp nowhere"), None);
        assert_eq!(parse_header(""), None);
    }
}
