//! The agent's vsock services inside the VM: the Docker Engine API for the host, and the way
//! out that image pulls take (the host's network view: its DNS, VPN, localhost registries).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

use crate::api::{self, Ctx};
use skiff_common::vsock::HOST_CID;

/// Connections the guest kernel queues for one listener before it refuses more. The default
/// of 128 lost connections in a burst of a few hundred API clients (or `exec`s) at once.
pub const BACKLOG: libc::c_int = 4096;

/// This VM's token for guest-initiated connections to the host (skiff_common::auth), read
/// once from the file PID 1 wrote.
static TOKEN: OnceLock<String> = OnceLock::new();

/// Read the token PID 1 received from the machine daemon.
pub fn load_token(path: &Path) -> Result<()> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the VM's vsock token from {}", path.display()))?;
    let token = token.trim();
    if !skiff_common::auth::is_token(token) {
        bail!("{} does not hold a vsock token", path.display());
    }
    let _ = TOKEN.set(token.to_string());
    Ok(())
}

fn token() -> std::io::Result<&'static str> {
    TOKEN.get().map(String::as_str).ok_or_else(|| {
        std::io::Error::other(
            "this engine has no token from the machine daemon (start it with --vsock-token-file)",
        )
    })
}

/// A listener PID 1 bound and handed over as descriptor `fd` (PID 1 binds the engines' ports
/// before any container exists, and keeps them across engine restarts, so that nothing else
/// in the VM can answer the host as an engine).
pub fn listener_from_fd(fd: RawFd) -> Result<VsockListener> {
    // Close-on-exec at once: every shim, helper and container the engine starts would
    // inherit it otherwise, and could take the host's connections meant for the engine.
    // SAFETY: F_SETFD with a flag argument only.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!("descriptor {fd} is not open (PID 1 hands the listeners over)")
        });
    }
    // SAFETY: the descriptor is open, was handed to this process for it alone, and is owned
    // from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    let mut len = SOCKADDR_VM_LEN;
    // SAFETY: getsockname writes at most `len` bytes into addr.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut addr as *mut libc::sockaddr_vm as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc < 0 || addr.svm_family != libc::AF_VSOCK as libc::sa_family_t {
        bail!("descriptor {} is not a vsock listener", fd.as_raw_fd());
    }
    Ok(VsockListener::from(fd))
}

/// Serve the API to the host's machine daemon, one vsock stream per client connection.
pub async fn serve_api(listener: VsockListener, ctx: Arc<Ctx>) -> Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .context("accepting on the vsock API port")?;
        tokio::spawn(api::serve_connection(stream, ctx.clone()));
    }
}

/// A loopback TCP port whose connections are relayed, byte for byte, to the HTTP proxy the
/// machine daemon serves on the host's vsock `port`. The registry client uses it as its
/// proxy, so the proxy logic (and the network it reaches) stays on the host. Returns the proxy
/// URL.
///
/// Each relayed connection starts with the VM's proof line. A `--network host` container
/// shares this loopback and could reach the relay too, so the relay serves only connections
/// whose other end is a socket of this very process. (Proxy credentials on every request
/// would have been simpler, but reqwest drops them on a redirect to another host, which is
/// how registries hand out blobs from a CDN.)
pub async fn start_egress(port: u32) -> Result<String> {
    let token = token()?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the egress relay")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            if !peer_is_this_process(peer, addr) {
                tracing::warn!("egress: refused {peer}, which is not this engine");
                continue;
            }
            tokio::spawn(async move {
                match VsockStream::connect(VsockAddr::new(HOST_CID, port)).await {
                    Ok(mut up) => {
                        use tokio::io::AsyncWriteExt;
                        if up
                            .write_all(skiff_common::auth::line(token).as_bytes())
                            .await
                            .is_ok()
                        {
                            let _ = skiff_common::relay::relay(tcp, up).await;
                        }
                    }
                    Err(e) => tracing::warn!("egress: cannot reach the host's proxy: {e}"),
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// Whether the client end of a connection from `peer` to the relay at `relay` (both on IPv4
/// loopback) is one of this process's sockets: the kernel's socket table names its inode, and
/// /proc/self/fd shows whether we hold it.
fn peer_is_this_process(peer: SocketAddr, relay: SocketAddr) -> bool {
    let (SocketAddr::V4(peer), SocketAddr::V4(relay)) = (peer, relay) else {
        return false;
    };
    let ours = |inodes: &[String]| {
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        std::fs::read_dir("/proc/self/fd").is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|t| wanted.iter().any(|w| t.as_os_str() == w.as_str()))
            })
        })
    };
    // The kernel prints the table in page-sized reads and a socket closed between two of
    // them can shift a live one past the reader, so a miss is read once more before the
    // connection is refused.
    (0..2).any(|_| {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let inodes = socket_inodes(&table, peer, relay);
        !inodes.is_empty() && ours(&inodes)
    })
}

/// The inodes of the sockets whose local address is `local` and remote address `remote` in a
/// /proc/net/tcp table (addresses there are hex, the IPv4 address in the kernel's byte
/// order). Entries without a socket (inode 0: TIME_WAIT, and the kernel reuses a loopback
/// port that is in TIME_WAIT for a new connection) are left out; a port taken for a
/// connection elsewhere is told apart by its remote end.
fn socket_inodes(
    table: &str,
    local: std::net::SocketAddrV4,
    remote: std::net::SocketAddrV4,
) -> Vec<String> {
    let hex = |a: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (local, remote) = (hex(local), hex(remote));
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let inode = f.get(9)?;
            (f.get(1) == Some(&local.as_str())
                && f.get(2) == Some(&remote.as_str())
                && *inode != "0")
                .then(|| inode.to_string())
        })
        .collect()
}

/// A blocking vsock stream; a `File` reads and writes any descriptor.
pub type VsockFile = std::fs::File;

fn socket() -> std::io::Result<OwnedFd> {
    // SAFETY: socket() has no memory preconditions; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; zero is a valid start.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_port = port;
    addr.svm_cid = cid;
    addr
}

const SOCKADDR_VM_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;

pub fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl with flag arguments only, on a descriptor the caller holds.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error()).context("making a listener non-blocking");
    }
    Ok(())
}

/// A listening vsock socket for code that runs without the async runtime (PID 1).
pub fn listen_blocking(port: u32, backlog: libc::c_int) -> Result<OwnedFd> {
    let sock = socket().context("creating a vsock socket")?;
    let addr = sockaddr(libc::VMADDR_CID_ANY, port);
    // SAFETY: addr is a valid sockaddr_vm of the size we pass.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_vm as *const libc::sockaddr,
            SOCKADDR_VM_LEN,
        )
    };
    // SAFETY: listen on our bound socket.
    if rc < 0 || unsafe { libc::listen(sock.as_raw_fd(), backlog) } < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("listening on vsock port {port}"));
    }
    Ok(sock)
}

pub fn accept_blocking(listener: &OwnedFd) -> std::io::Result<VsockFile> {
    // SAFETY: accept4 on a listening socket; null address pointers are allowed.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is the connection accept4 just returned, owned from here on.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// A blocking connection to the host's `port` (short requests made from sync code paths),
/// proven with the VM's token as its first line.
pub fn connect_host_blocking(port: u32) -> std::io::Result<VsockFile> {
    use std::io::Write;
    let token = token()?;
    let sock = socket()?;
    let addr = sockaddr(HOST_CID, port);
    // SAFETY: addr is a valid sockaddr_vm of the size we pass.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_vm as *const libc::sockaddr,
            SOCKADDR_VM_LEN,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut conn = std::fs::File::from(sock);
    conn.write_all(skiff_common::auth::line(token).as_bytes())?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_knows_its_own_sockets_from_others() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer, ours.local_addr().unwrap());
        let relay = l.local_addr().unwrap();
        assert!(peer_is_this_process(peer, relay));
        // Another process's socket: bash holds one for two seconds.
        let port = l.local_addr().unwrap().port();
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}; sleep 2"))
            .spawn()
            .unwrap();
        l.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let peer = loop {
            match l.accept() {
                Ok((_, peer)) => break peer,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("bash never connected: {e}"),
            }
        };
        assert!(!peer_is_this_process(peer, relay));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!peer_is_this_process("127.0.0.1:1".parse().unwrap(), relay));
    }

    /// A port the kernel reused while an earlier connection from it lingers in TIME_WAIT:
    /// the table lists both, the dead one (inode 0) first. The relay refused such
    /// connections, and the client saw its request reset.
    #[test]
    fn a_reused_port_is_told_by_its_live_socket() {
        let peer: std::net::SocketAddrV4 = "127.0.0.1:40000".parse().unwrap();
        let relay: std::net::SocketAddrV4 = "127.0.0.1:35000".parse().unwrap();
        let registry: std::net::SocketAddrV4 = "127.0.0.1:5000".parse().unwrap();
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:9C40 0100007F:88B8 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n\
   1: 0100007F:9C40 0100007F:1388 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000\n\
   2: 0100007F:9C40 0100007F:88B8 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000\n";
        assert_eq!(socket_inodes(table, peer, relay), ["4242"]);
        assert_eq!(socket_inodes(table, peer, registry), ["777"]);
        assert!(socket_inodes(table, relay, peer).is_empty());
    }
}
