//! The agent's vsock services inside the VM: the Docker Engine API for the host, and the way
//! out that image pulls take (the host's network view: its DNS, VPN, localhost registries).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_vsock::{VsockAddr, VsockListener, VsockStream, VMADDR_CID_ANY};

use crate::api::{self, Ctx};
use skiff_common::vsock::HOST_CID;

/// Connections the guest kernel queues for one listener before it refuses more.
const BACKLOG: libc::c_int = 4096;

pub fn bind(port: u32) -> Result<VsockListener> {
    let listener = VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port))
        .with_context(|| format!("listening on vsock port {port}"))?;
    // The crate listens with a backlog of 128, and vsock refuses what does not fit: a burst of
    // a few hundred API clients (or `exec`s) at once lost connections. Listening again on
    // the same socket only raises the queue's length.
    // SAFETY: listen on a socket we own and that is bound.
    if unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) } < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("raising the backlog of vsock port {port}"));
    }
    Ok(listener)
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
/// proxy, so the proxy logic (and the network it reaches) stays on the host.
pub async fn start_egress(port: u32) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the egress relay")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                match VsockStream::connect(VsockAddr::new(HOST_CID, port)).await {
                    Ok(mut up) => {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                    }
                    Err(e) => tracing::warn!("egress: cannot reach the host's proxy: {e}"),
                }
            });
        }
    });
    Ok(addr)
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

/// A listening vsock socket for code that runs without the async runtime (PID 1).
pub fn listen_blocking(port: u32) -> Result<OwnedFd> {
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
    if rc < 0 || unsafe { libc::listen(sock.as_raw_fd(), 16) } < 0 {
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

/// A blocking connection to the host's `port` (short requests made from sync code paths).
pub fn connect_host_blocking(port: u32) -> std::io::Result<VsockFile> {
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
    Ok(std::fs::File::from(sock))
}
