//! The agent's vsock services inside the VM: the Docker Engine API for the host, and the way
//! out that image pulls take (the host's network view: its DNS, VPN, localhost registries).

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
/// URL, with the VM's token as its credentials: a `--network host` container shares this
/// loopback and can reach the relay too, so the host checks the token on every request.
pub async fn start_egress(port: u32) -> Result<String> {
    let token = token()?;
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
    Ok(format!(
        "http://{}:{token}@{addr}",
        skiff_common::auth::PROXY_USER
    ))
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
