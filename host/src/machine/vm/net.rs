//! The VM's network: a virtio-net device whose host side is passt, a user-mode network stack.
//! passt turns the guest's frames into ordinary sockets of the host, so the VM reaches what
//! the host reaches (its loopback too, through the gateway address) with no root, no tap
//! device and no host firewall rule.
//!
//! QEMU 7.2's `stream` netdev cannot reconnect, and a user-mode stack should be restartable
//! (a network change on a laptop, a crash) without restarting the VM. So QEMU connects to the
//! daemon, which relays frames (QEMU's stream format: a 4-byte big-endian length, then the
//! Ethernet frame) to a passt it runs on a socket pair; when passt ends, the daemon starts a
//! new one and goes on at the next frame boundary. The guest keeps its interface and address;
//! open connections break, as they would on a real network change, new ones work at once.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, Mutex};

use skiff_common::vmnet;

/// Larger than any frame of a 1500-byte MTU or passt's 65520: a length beyond is a broken
/// stream, not a frame.
const MAX_FRAME: usize = 256 << 10;

/// The user-mode stack's program: `SKIFF_PASST`, else `passt` on PATH.
pub fn passt_binary() -> PathBuf {
    std::env::var_os("SKIFF_PASST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("passt"))
}

/// QEMU's side: the netdev connects to `socket`, which the daemon serves.
///
/// `SKIFF_VM_NET=user` swaps in QEMU's own user-mode stack (slirp) instead, only to compare
/// the two (`scripts/bench-vm.sh`): slirp cannot be restarted apart from QEMU, and its DNS
/// address is not the one the guest is given, so names do not resolve there.
/// `SKIFF_VM_NET=stream:PATH` connects QEMU straight to a stack listening on PATH (a passt
/// started by hand with `--socket PATH`), to measure the relay's own cost.
pub fn qemu_args(socket: &Path) -> Vec<String> {
    let mode = std::env::var("SKIFF_VM_NET").unwrap_or_default();
    let netdev = if let Some(path) = mode.strip_prefix("stream:") {
        format!("stream,id=net0,server=off,addr.type=unix,addr.path={path}")
    } else if mode == "user" {
        let mask = u32::MAX << (32 - u32::from(vmnet::PREFIX_LEN));
        let network = std::net::Ipv4Addr::from(u32::from(vmnet::GATEWAY) & mask);
        format!(
            "user,id=net0,net={network}/{},host={},dns=192.168.65.2",
            vmnet::PREFIX_LEN,
            vmnet::GATEWAY
        )
    } else {
        format!(
            "stream,id=net0,server=off,addr.type=unix,addr.path={}",
            socket.display()
        )
    };
    vec![
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-net-device,netdev=net0".into(),
    ]
}

/// Frames read from passt and waiting for QEMU: a short queue, so that the relay reads passt's
/// socket while QEMU takes the last batch, without adding delay of its own.
const QUEUE_FRAMES: usize = 64;

/// Socket buffers of the pair to passt. passt writes without blocking and, under this
/// version, drops the frames a full socket refuses, then waits for its own retransmission
/// timer: with the default buffer (about 200 KiB) a 100 MiB download took 33 s instead of
/// 2.5 s. The guest's receive window is held to 1 MiB (its PID 1 sets `tcp_rmem`), so what
/// passt has in flight for one connection fits several times over. Deeper is worse, not
/// better: passt resends a whole window on duplicate ACKs, and a deep queue of resent
/// frames fed itself (measured: 8 MiB buffers stalled 2 downloads in 5).
const STACK_SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Relay QEMU's frames to passt, restarting passt whenever it ends, until QEMU goes.
///
/// Each direction reads as fast as its sender writes. QEMU reads only as fast as the guest's
/// queue empties, so frames for the guest go through a queue to a writer of their own: passt
/// never finds its socket full (see `STACK_SOCKET_BUFFER`).
pub async fn serve(listener: UnixListener, dir: PathBuf) {
    let Ok((qemu, _)) = listener.accept().await else {
        return;
    };
    let (from_vm, to_vm) = qemu.into_split();
    let to_stack: Arc<Mutex<Option<OwnedWriteHalf>>> = Arc::default();
    let outbound = {
        let to_stack = to_stack.clone();
        async move {
            let mut from_vm = BufReader::with_capacity(MAX_FRAME, from_vm);
            let mut frame = Vec::new();
            while read_frame(&mut from_vm, &mut frame).await.unwrap_or(false) {
                let mut slot = to_stack.lock().await;
                // Without a stack the frame is lost, as on an unplugged cable; TCP resends.
                if let Some(w) = slot.as_mut() {
                    if write_frame(w, &frame).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
    };
    let (queue, mut queued) = mpsc::channel::<Vec<u8>>(QUEUE_FRAMES);
    let to_guest = async move {
        let mut to_vm = BufWriter::with_capacity(MAX_FRAME, to_vm);
        while let Some(frame) = queued.recv().await {
            let mut next = Some(frame);
            // Whatever else is already waiting goes in the same write.
            while let Some(frame) = next {
                if write_frame(&mut to_vm, &frame).await.is_err() {
                    return;
                }
                next = queued.try_recv().ok();
            }
            if to_vm.flush().await.is_err() {
                return;
            }
        }
    };
    let inbound = async move {
        loop {
            match start_stack(&dir) {
                Ok((mut child, sock)) => {
                    let (rd, wr) = sock.into_split();
                    *to_stack.lock().await = Some(wr);
                    let mut rd = BufReader::with_capacity(MAX_FRAME, rd);
                    loop {
                        let mut frame = Vec::new();
                        if !read_frame(&mut rd, &mut frame).await.unwrap_or(false) {
                            break;
                        }
                        if queue.send(frame).await.is_err() {
                            return;
                        }
                    }
                    *to_stack.lock().await = None;
                    let _ = child.kill().await;
                    tracing::warn!("the network stack (passt) ended; starting a new one");
                }
                Err(e) => tracing::warn!("the VM has no network: {e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = outbound => {}
        _ = inbound => {}
        _ = to_guest => {}
    }
}

/// Grow both buffers of one end of the pair (the forced variant as root, past `wmem_max`).
fn grow_buffers(fd: std::os::fd::RawFd) {
    for (force, plain) in [
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
    ] {
        let size = STACK_SOCKET_BUFFER;
        let len = std::mem::size_of_val(&size) as libc::socklen_t;
        let ptr = (&size as *const libc::c_int).cast();
        // SAFETY: a valid socket and an int option of the given length.
        unsafe {
            if libc::setsockopt(fd, libc::SOL_SOCKET, force, ptr, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, plain, ptr, len);
            }
        }
    }
}

/// Start passt on one end of a fresh socket pair; returns it with the other end.
fn start_stack(dir: &Path) -> Result<(tokio::process::Child, tokio::net::UnixStream)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    grow_buffers(ours.as_raw_fd());
    grow_buffers(theirs.as_raw_fd());
    let log = std::fs::File::create(dir.join("passt.log"))?;
    let mut cmd = tokio::process::Command::new(passt_binary());
    cmd.args([
        "--foreground",
        "--stderr",
        "--quiet",
        "--fd",
        "3",
        "--ipv4-only",
    ])
    .args(["--address", &vmnet::GUEST.to_string()])
    .args(["--netmask", &vmnet::PREFIX_LEN.to_string()])
    .args(["--gateway", &vmnet::GATEWAY.to_string()])
    .args(["--dns-forward", &vmnet::DNS.to_string()])
    // Nothing of the host's is forwarded into the VM: published ports go over vsock.
    .args(["--tcp-ports", "none", "--udp-ports", "none"])
    // The guest's address is set by its PID 1, not asked for.
    .args(["--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra"])
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log)
    .kill_on_drop(true);
    let fd = theirs.as_raw_fd();
    // SAFETY: dup2, fcntl and prctl are async-signal-safe; the fd stays open until spawn.
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", passt_binary().display()))?;
    drop(theirs);
    if let Some(pid) = child.id() {
        std::fs::write(dir.join("passt.pid"), pid.to_string())?;
    }
    ours.set_nonblocking(true)?;
    Ok((child, tokio::net::UnixStream::from_std(ours)?))
}

/// One frame into `buf`; false at a clean end of the stream.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        bail!("a frame of {len} bytes: the stream is out of step");
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

/// A whole frame in one write, so that a stack that dies mid-way never leaves half of one
/// for the next.
async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
    w.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_garbage_lengths_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        write_frame(&mut a, b"first").await.unwrap();
        write_frame(&mut a, &[7u8; 1500]).await.unwrap();
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, b"first");
        assert!(read_frame(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf.len(), 1500);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(read_frame(&mut b, &mut buf).await.is_err());
        drop(a);
        assert!(!read_frame(&mut b, &mut buf).await.unwrap());
    }
}
