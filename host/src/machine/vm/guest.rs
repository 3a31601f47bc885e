//! Reaching a vsock port in the guest from the host: our vsock device's host side is a unix
//! socket in Firecracker's hybrid form (`CONNECT <port>\n`, answered `OK <local port>\n`, then
//! raw bytes both ways).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

pub async fn connect(device_socket: &Path, port: u32) -> Result<UnixStream> {
    let mut s = UnixStream::connect(device_socket).await.with_context(|| {
        format!(
            "connecting to the VM's vsock device at {}",
            device_socket.display()
        )
    })?;
    handshake(&mut s, port).await?;
    Ok(s)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, port: u32) -> Result<()> {
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // Byte by byte: whatever the guest sends right after the reply belongs to the caller.
    let mut line = Vec::with_capacity(16);
    loop {
        let b = match s.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!("nothing in the VM listens on vsock port {port} (yet)")
            }
            Err(e) => return Err(e).context("reading the vsock device's answer"),
        };
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 32 {
            bail!("the vsock device answered something unexpected");
        }
    }
    if !line.starts_with(b"OK ") {
        bail!(
            "the vsock device refused port {port}: {}",
            String::from_utf8_lossy(&line)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handshake_leaves_the_payload_for_the_caller() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let dev = tokio::spawn(async move {
            let mut req = [0u8; 13];
            b.read_exact(&mut req).await.unwrap();
            assert_eq!(&req, b"CONNECT 1024\n");
            b.write_all(b"OK 1073741824\nHTTP").await.unwrap();
            b
        });
        handshake(&mut a, 1024).await.unwrap();
        let mut rest = [0u8; 4];
        a.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"HTTP");
        drop(dev.await.unwrap());

        // The device reads the request, then closes: the guest port has no listener.
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let mut req = [0u8; 13];
            let _ = b.read_exact(&mut req).await;
        });
        let e = handshake(&mut a, 1024).await.unwrap_err().to_string();
        assert!(e.contains("nothing in the VM listens"), "{e}");
    }
}
