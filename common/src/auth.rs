//! The per-boot secret that tells skiff's own processes in the VM from everything else that
//! can open a vsock connection there (a `--privileged` container can).
//!
//! The machine daemon draws a fresh token for each boot and hands it to the guest's PID 1 over
//! a connection the host initiates (never on the kernel command line: containers read
//! `/proc/cmdline`). Every connection the guest initiates to the host then proves it by a
//! first line `skiff-auth TOKEN`: the engine's control connection, and each connection of its
//! egress relay (which serves only the engine's own sockets, as a `--network host` container
//! shares its loopback).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Random bytes in a token; written as hex.
const TOKEN_BYTES: usize = 32;
const LINE_PREFIX: &str = "skiff-auth ";

/// A fresh token from the kernel's random pool. Fails rather than fall back to anything
/// guessable.
pub fn new_token() -> io::Result<String> {
    crate::ids::random_hex(TOKEN_BYTES)
}

/// Whether `s` has a token's shape (so that a request line can carry it as one word).
pub fn is_token(s: &str) -> bool {
    s.len() == TOKEN_BYTES * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The line a guest-initiated control connection starts with.
pub fn line(token: &str) -> String {
    format!("{LINE_PREFIX}{token}\n")
}

/// Compare without an early exit, so that the time taken says nothing about how much of a
/// guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `line` (without its newline) is `skiff-auth TOKEN` for this `token`.
pub fn line_proves(line: &[u8], token: &str) -> bool {
    match line.strip_prefix(LINE_PREFIX.as_bytes()) {
        Some(presented) => same(presented, token.as_bytes()),
        None => false,
    }
}

/// How long a new guest connection has to prove itself.
pub const PROOF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the connection's first line, read within `PROOF_TIMEOUT`, proves `token`; the
/// rest of the stream is left for the caller.
pub async fn proves_itself<R: AsyncRead + Unpin>(r: &mut R, token: &str) -> bool {
    let first = tokio::time::timeout(PROOF_TIMEOUT, read_line(r)).await;
    matches!(&first, Ok(Ok(line)) if line_proves(line, token))
}

/// The first line of a connection, read byte by byte so that nothing after it is taken from
/// the caller, and at most a little longer than a proof: a peer that sends more, or closes,
/// proves nothing.
pub async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let limit = LINE_PREFIX.len() + TOKEN_BYTES * 2 + 1;
    let mut line = Vec::with_capacity(limit);
    loop {
        let b = r.read_u8().await?;
        if b == b'\n' {
            return Ok(line);
        }
        line.push(b);
        if line.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the first line is longer than a proof",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex_and_prove_only_themselves() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert!(!is_token("abc") && !is_token(&"g".repeat(64)));

        let l = line(&a);
        assert!(l.ends_with('\n'));
        assert!(line_proves(l.trim_end().as_bytes(), &a));
        assert!(!line_proves(l.trim_end().as_bytes(), &b));
        assert!(!line_proves(b"skiff-auth ", &a));
        assert!(!line_proves(a.as_bytes(), &a));
        let short = &l.trim_end()[..l.len() - 2];
        assert!(!line_proves(short.as_bytes(), &a));
    }

    #[tokio::test]
    async fn the_first_line_is_bounded_and_leaves_the_rest() {
        let mut input: &[u8] = b"skiff-auth 00\nGET / HTTP/1.1\r\n";
        assert_eq!(read_line(&mut input).await.unwrap(), b"skiff-auth 00");
        assert_eq!(input, b"GET / HTTP/1.1\r\n");

        let long = vec![b'a'; 4096];
        let mut input: &[u8] = &long;
        assert!(read_line(&mut input).await.is_err());
        let mut input: &[u8] = b"no newline";
        assert!(read_line(&mut input).await.is_err());
    }
}
