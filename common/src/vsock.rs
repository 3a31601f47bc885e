//! The vsock ports the VM's agent and the host's machine daemon agree on.
//!
//! The host is CID 2 for the guest, as on every virtio-vsock transport; the guest's CID is
//! the machine's and only the host side needs it.

/// The Docker Engine API, served by the agent (host connects).
pub const API_PORT: u32 = 1024;
/// Published-port connections, one vsock stream per forwarded connection (host connects).
pub const FORWARD_PORT: u32 = 1025;
/// Publish and unpublish requests from the agent to the daemon (guest connects).
pub const CONTROL_PORT: u32 = 1026;
/// The guest's way out: an HTTP proxy served by the daemon on the host (guest connects).
pub const EGRESS_PORT: u32 = 1027;
/// PID 1's own control: `shutdown` (host connects).
pub const INIT_PORT: u32 = 1028;
/// Echoes every byte back: measures the vsock device alone (`scripts/bench-vm.sh`).
pub const ECHO_PORT: u32 = 1029;
/// The CID every guest sees its host at.
pub const HOST_CID: u32 = 2;

/// A published UDP port's datagrams over a vsock stream (one stream per client flow): each
/// datagram is a 2-byte big-endian length, then its bytes. A stream keeps no boundaries of its
/// own; this is the least that keeps them.
/// How the host's egress proxy starts the body of its 502 when it cannot reach a server, so
/// that the agent tells the user "cannot reach registry …" rather than a bare 502.
pub const EGRESS_UNREACHABLE: &str = "skiff egress: cannot reach ";

pub mod datagram {
    use std::io;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, d: &[u8]) -> io::Result<()> {
        let len = u16::try_from(d.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "datagram over 64 KiB"))?;
        let mut frame = Vec::with_capacity(d.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(d);
        w.write_all(&frame).await
    }

    /// The next datagram into `buf`; false at a clean end of the stream. Not cancel-safe: run
    /// it in a task of its own rather than in a `select!`.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
        let mut len = [0u8; 2];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        buf.resize(u16::from_be_bytes(len) as usize, 0);
        r.read_exact(buf).await?;
        Ok(true)
    }

    #[cfg(test)]
    mod tests {
        #[tokio::test]
        async fn frames_keep_boundaries_and_empty_datagrams() {
            let (mut a, mut b) = tokio::io::duplex(1 << 17);
            for d in [&b"one"[..], b"", &[7u8; 65535][..]] {
                super::write(&mut a, d).await.unwrap();
            }
            assert!(super::write(&mut a, &[0u8; 65536]).await.is_err());
            drop(a);
            let mut buf = Vec::new();
            assert!(super::read(&mut b, &mut buf).await.unwrap());
            assert_eq!(buf, b"one");
            assert!(super::read(&mut b, &mut buf).await.unwrap());
            assert!(buf.is_empty());
            assert!(super::read(&mut b, &mut buf).await.unwrap());
            assert_eq!(buf.len(), 65535);
            assert!(!super::read(&mut b, &mut buf).await.unwrap());
        }
    }
}

/// The engine's settings that the `skiff` starting an engine in the VM passes on from its own
/// environment (or its settings file), as the agent it starts natively gets them. The first
/// two are whole numbers, the others comma-separated lists of registries or URLs.
pub const ENGINE_ENV: &[&str] = &[
    "SKIFF_MAX_LAYER_SIZE",
    "SKIFF_REGISTRY_READ_TIMEOUT",
    "SKIFF_REGISTRY_MIRRORS",
    "SKIFF_INSECURE_REGISTRIES",
];

/// Whether `value` may go into PID 1's one-line request for `key`: whole numbers for the
/// numeric settings; for the lists, the characters of host names, ports and URLs only (no
/// space, which would end the word).
fn env_value_ok(key: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    match key {
        "SKIFF_MAX_LAYER_SIZE" | "SKIFF_REGISTRY_READ_TIMEOUT" => {
            value.bytes().all(|b| b.is_ascii_digit())
        }
        _ => value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/,[]".contains(&b)),
    }
}

/// `KEY=VALUE` words for PID 1's `engine` request, from `lookup`; values that do not fit
/// their key are left out (the request is one line of space-separated words).
pub fn engine_env_words(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    ENGINE_ENV
        .iter()
        .filter_map(|k| lookup(k).map(|v| (k, v)))
        .filter(|(k, v)| env_value_ok(k, v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_env_keeps_known_keys_with_values_that_fit_them() {
        let words = engine_env_words(|k| match k {
            "SKIFF_MAX_LAYER_SIZE" => Some("8388608".into()),
            "SKIFF_REGISTRY_READ_TIMEOUT" => Some("3 shutdown".into()),
            "SKIFF_REGISTRY_MIRRORS" => Some("http://127.0.0.1:5000,https://m.example/".into()),
            "SKIFF_INSECURE_REGISTRIES" => Some("a.lan:5000 shutdown".into()),
            _ => Some("1".into()),
        });
        assert_eq!(
            words,
            vec![
                "SKIFF_MAX_LAYER_SIZE=8388608".to_string(),
                "SKIFF_REGISTRY_MIRRORS=http://127.0.0.1:5000,https://m.example/".to_string()
            ]
        );
    }
}
