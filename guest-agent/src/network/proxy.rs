//! The forwarder behind published ports: the agent holds the host socket and relays each
//! connection (TCP) or client flow (UDP) to the container's address.
//!
//! Why in the agent rather than kernel DNAT: the same code serves the native backend and the VM
//! (where connections reach the agent over vsock), there are no per-container firewall rules to
//! get out of step, `127.0.0.1` bindings and half-closes behave exactly, and with `splice(2)`
//! the bytes are not copied through user space: each direction moves socket pages through a
//! pipe into the other socket. Pipes are made on a direction's first data, at the kernel's
//! default size: their size counts against the per-user pipe budget (no CAP_SYS_RESOURCE
//! here), so idle connections hold none and a thousand busy ones stay within it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A UDP flow with no datagram either way for this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);
const MAX_UDP_FLOWS: usize = 4096;

enum Sock {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// A host socket bound but not serving yet: binding first lets the caller find a port
/// conflict (or pick random and range ports) before the container starts.
pub struct Bound {
    sock: Sock,
    addr: SocketAddr,
}

impl Bound {
    pub fn bind(proto: Proto, addr: SocketAddr) -> io::Result<Bound> {
        use socket2::{Domain, Socket, Type};
        let ty = match proto {
            Proto::Tcp => Type::STREAM,
            Proto::Udp => Type::DGRAM,
        };
        let s = Socket::new(Domain::for_address(addr), ty, None)?;
        if addr.is_ipv6() {
            // docker binds 0.0.0.0:P and [::]:P as two sockets; a dual-stack [::] would clash.
            s.set_only_v6(true)?;
        }
        if proto == Proto::Tcp {
            // A port just released by a stopped container is in TIME_WAIT; it is still ours.
            s.set_reuse_address(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let sock = match proto {
            Proto::Tcp => {
                s.listen(4096)?;
                Sock::Tcp(s.into())
            }
            Proto::Udp => Sock::Udp(s.into()),
        };
        let addr = match &sock {
            Sock::Tcp(l) => l.local_addr()?,
            Sock::Udp(u) => u.local_addr()?,
        };
        Ok(Bound { sock, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn proto(&self) -> Proto {
        match self.sock {
            Sock::Tcp(_) => Proto::Tcp,
            Sock::Udp(_) => Proto::Udp,
        }
    }

    /// Start forwarding to `target`. Must be called inside a tokio runtime.
    pub fn serve(self, target: SocketAddr) -> Forward {
        let (stop, stopped) = watch::channel(false);
        let active = Arc::new(AtomicUsize::new(0));
        let counter = active.clone();
        match self.sock {
            Sock::Tcp(l) => {
                tokio::spawn(async move {
                    match TcpListener::from_std(l) {
                        Ok(l) => serve_tcp(l, target, stopped, counter).await,
                        Err(e) => tracing::warn!("forwarder for {target}: {e}"),
                    }
                });
            }
            Sock::Udp(u) => {
                tokio::spawn(async move {
                    match UdpSocket::from_std(u) {
                        Ok(u) => serve_udp(Arc::new(u), target, stopped, counter, UDP_IDLE).await,
                        Err(e) => tracing::warn!("forwarder for {target}: {e}"),
                    }
                });
            }
        }
        Forward {
            addr: self.addr,
            stop,
            active,
        }
    }
}

/// A published port being served. Dropping it closes the listener and every connection.
pub struct Forward {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    active: Arc<AtomicUsize>,
}

impl Forward {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Open connections (TCP) or flows (UDP).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Counts a connection or flow for as long as it lives.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Live(c.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the Forward is gone: stop as well.
    let _ = rx.wait_for(|s| *s).await;
}

async fn serve_tcp(
    l: TcpListener,
    target: SocketAddr,
    stop: watch::Receiver<bool>,
    active: Arc<AtomicUsize>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(stop.clone()) => return,
            a = l.accept() => a,
        };
        let client = match accepted {
            Ok((c, _)) => c,
            Err(e) => {
                // Out of descriptors and the like: do not spin, do not give up the port.
                tracing::warn!("accepting on {target}'s published port: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let live = Live::new(&active);
        let stop = stop.clone();
        tokio::spawn(async move {
            let _live = live;
            tokio::select! {
                _ = stopped(stop) => {}
                r = connect_and_relay(client, target) => {
                    if let Err(e) = r {
                        tracing::debug!("connection to {target}: {e}");
                    }
                }
            }
        });
    }
}

async fn connect_and_relay(client: TcpStream, target: SocketAddr) -> io::Result<()> {
    let server = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::try_join!(pump(&client, &server), pump(&server, &client))?;
    Ok(())
}

/// A pipe for splice, both ends non-blocking.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn splice(from: i32, to: i32, len: usize) -> io::Result<usize> {
    // SAFETY: plain splice between fds we hold; no user memory is involved.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Bytes asked of one splice call; the pipe takes what it has room for.
const CHUNK: usize = 1 << 20;
/// A direction that has moved this much is a bulk transfer: its pipe grows to `BULK_PIPE`
/// (fewer, larger splices). Only then, because a pipe's size counts against the per-user
/// pipe budget whether it is used or not.
const BULK_AFTER: u64 = 4 << 20;
const BULK_PIPE: i32 = 1 << 20;

/// One direction: `from` → pipe → `to`, then a half-close of `to` at `from`'s end of stream.
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let mut pipe_fds: Option<(OwnedFd, OwnedFd)> = None;
    let mut in_pipe = 0usize;
    let mut eof = false;
    let mut moved = 0u64;
    let mut grown = false;
    loop {
        if eof && in_pipe == 0 {
            // The other side learns of the end only now that everything before it arrived.
            let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
            return Ok(());
        }
        let mut progress = false;
        if !eof {
            let (_, w) = match &pipe_fds {
                Some(p) => p,
                None => {
                    // No pipe until there is data: idle connections hold none.
                    from.readable().await?;
                    pipe_fds.insert(pipe()?)
                }
            };
            let w = w.as_raw_fd();
            let res = if in_pipe == 0 {
                // An empty pipe always has room, so EAGAIN here means the socket is drained:
                // let tokio clear the readiness and wait for the next.
                from.try_io(Interest::READABLE, || splice(from.as_raw_fd(), w, CHUNK))
            } else {
                // Here EAGAIN may mean a full pipe; the socket's readiness must stay set.
                splice(from.as_raw_fd(), w, CHUNK)
            };
            match res {
                Ok(0) => {
                    eof = true;
                    progress = true;
                }
                Ok(n) => {
                    in_pipe += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if in_pipe > 0 {
            if let Some((r, _)) = &pipe_fds {
                let r = r.as_raw_fd();
                match to.try_io(Interest::WRITABLE, || splice(r, to.as_raw_fd(), in_pipe)) {
                    Ok(n) => {
                        in_pipe -= n;
                        progress = true;
                        moved += n as u64;
                        if !grown && moved >= BULK_AFTER {
                            grown = true;
                            // SAFETY: fcntl on a pipe we own; refusal (budget) just keeps the size.
                            unsafe { libc::fcntl(r, libc::F_SETPIPE_SZ, BULK_PIPE) };
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !progress {
            if in_pipe > 0 {
                // Data is waiting for the destination: that is what must move next.
                to.writable().await?;
            } else {
                from.readable().await?;
            }
        }
    }
}

async fn serve_udp(
    sock: Arc<UdpSocket>,
    target: SocketAddr,
    stop: watch::Receiver<bool>,
    active: Arc<AtomicUsize>,
    idle: Duration,
) {
    use std::collections::HashMap;
    let flows: Arc<std::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    let mut warned = false;
    loop {
        let got = tokio::select! {
            _ = stopped(stop.clone()) => return,
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, client) = match got {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("udp forwarder for {target}: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                if flows.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_UDP_FLOWS {
                    if !warned {
                        tracing::warn!(
                            "udp forwarder for {target}: {MAX_UDP_FLOWS} flows, dropping new ones"
                        );
                        warned = true;
                    }
                    continue;
                }
                let bind: SocketAddr = if target.is_ipv6() {
                    "[::]:0".parse().unwrap_or(target)
                } else {
                    "0.0.0.0:0".parse().unwrap_or(target)
                };
                let u = match UdpSocket::bind(bind).await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::debug!("udp flow to {target}: {e}");
                        continue;
                    }
                };
                if let Err(e) = u.connect(target).await {
                    tracing::debug!("udp flow to {target}: {e}");
                    continue;
                }
                let u = Arc::new(u);
                flows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(client, u.clone());
                let live = Live::new(&active);
                let (sock, flows, up, stop) =
                    (sock.clone(), flows.clone(), u.clone(), stop.clone());
                tokio::spawn(async move {
                    let _live = live;
                    tokio::select! {
                        _ = stopped(stop) => {}
                        _ = replies(&sock, &up, client, idle) => {}
                    }
                    flows
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&client);
                });
                u
            }
        };
        if let Err(e) = upstream.send(&buf[..n]).await {
            tracing::debug!("udp flow to {target}: {e}");
        }
    }
}

/// A flow's replies back to its client, until it has been idle for `idle`. Traffic from the
/// client also keeps it alive: each datagram it sends is a reason to expect an answer.
async fn replies(sock: &UdpSocket, up: &UdpSocket, client: SocketAddr, idle: Duration) {
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(idle, up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Err(e) = sock.send_to(&buf[..n], client).await {
                    tracing::debug!("udp reply to {client}: {e}");
                }
            }
            // ICMP port unreachable from the container arrives as an error: keep the flow.
            Ok(Err(_)) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        a
    }

    fn forward(target: SocketAddr) -> Forward {
        Bound::bind(Proto::Tcp, "127.0.0.1:0".parse().unwrap())
            .unwrap()
            .serve(target)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_bytes_arrive_whole_both_ways() {
        let f = forward(echo_server().await);
        let mut c = TcpStream::connect(f.local_addr()).await.unwrap();
        let data = pattern(6 << 20);
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (_, got) = tokio::join!(send, recv);
        got.unwrap();
        assert!(
            back == data,
            "echoed {} of {} bytes",
            back.len(),
            data.len()
        );
        drop(c);
        for _ in 0..100 {
            if f.active() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("connection still counted after close");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_half_closed_client_gets_the_whole_answer() {
        // The server answers only after the request's end, with several MiB.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let answer = pattern(5 << 20);
        let sent = answer.clone();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).await.unwrap();
            assert_eq!(req, b"request");
            s.write_all(&sent).await.unwrap();
        });
        let f = forward(target);
        let mut c = TcpStream::connect(f.local_addr()).await.unwrap();
        c.write_all(b"request").await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert!(got == answer, "got {} of {} bytes", got.len(), answer.len());
    }

    #[tokio::test]
    async fn a_refusing_target_closes_the_client() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = dead.local_addr().unwrap();
        drop(dead);
        let f = forward(target);
        let mut c = TcpStream::connect(f.local_addr()).await.unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn dropping_the_forward_closes_listener_and_connections() {
        let f = forward(echo_server().await);
        let addr = f.local_addr();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        drop(f);
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "connection closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
        // The port can be bound again at once (a restarted container takes it back).
        Bound::bind(Proto::Tcp, addr).expect("rebind");
    }

    #[tokio::test]
    async fn udp_flows_get_their_own_replies_and_idle_out() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let b = Bound::bind(Proto::Udp, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = b.local_addr();
        let Sock::Udp(u) = b.sock else { panic!("udp") };
        let (stop_tx, stop_rx) = watch::channel(false);
        let active = Arc::new(AtomicUsize::new(0));
        let sock = Arc::new(UdpSocket::from_std(u).unwrap());
        tokio::spawn(serve_udp(
            sock,
            target,
            stop_rx,
            active.clone(),
            Duration::from_millis(300),
        ));
        let c1 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c1.send_to(b"one", addr).await.unwrap();
        c2.send_to(b"two", addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = c1.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = c2.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"two");
        assert_eq!(active.load(Ordering::Relaxed), 2);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(active.load(Ordering::Relaxed), 0, "idle flows forgotten");
        let _ = stop_tx.send(true);
    }
}
