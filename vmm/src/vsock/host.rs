//! The host side in Firecracker's hybrid form: unix sockets on the host stand for vsock ports.
//!
//! - Host-initiated: a host process connects to `<uds_path>`, writes `CONNECT <port>\n`, and once
//!   the guest accepts, reads `OK <local port>\n`; after that the socket carries raw bytes.
//! - Guest-initiated: a guest connection to host port P becomes a connection to `<uds_path>_P`.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use socket2::{Domain, SockAddr, Socket, Type};

/// Longest `CONNECT <port>` line we wait for; anything longer is not a CONNECT line.
const MAX_LINE: usize = 32;

/// The unix socket host processes connect to. Removed from the filesystem when dropped.
#[derive(Debug)]
pub struct HostListener {
    listener: UnixListener,
    path: PathBuf,
}

impl HostListener {
    /// Binds `path`, replacing a socket file nobody listens on any more (a previous run's).
    pub fn bind(path: &Path) -> io::Result<HostListener> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another listener", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(HostListener {
            listener,
            path: path.to_owned(),
        })
    }

    /// Takes one pending connection, if any.
    pub fn accept(&self) -> io::Result<Option<UnixStream>> {
        match self.listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                Ok(Some(stream))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A host connection that has not finished its `CONNECT <port>\n` line yet.
#[derive(Debug)]
pub struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
    pub deadline: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// The line is incomplete; wait for more.
    Pending,
    /// The host asked for this guest port.
    Connect(u32),
    /// EOF, an error, or not a CONNECT line: drop the connection.
    Failed,
}

impl Handshake {
    pub fn new(stream: UnixStream, deadline: Instant) -> Handshake {
        Handshake {
            stream,
            line: Vec::with_capacity(MAX_LINE),
            deadline,
        }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Reads what has arrived of the line. One byte at a time, so that nothing the host sends
    /// after the newline is consumed here: those are already stream bytes for the guest.
    pub fn poll(&mut self) -> HandshakeStatus {
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return HandshakeStatus::Failed,
                Ok(_) if byte[0] == b'\n' => {
                    return match parse_connect(&self.line) {
                        Some(port) => HandshakeStatus::Connect(port),
                        None => HandshakeStatus::Failed,
                    };
                }
                Ok(_) if self.line.len() >= MAX_LINE => return HandshakeStatus::Failed,
                Ok(_) => self.line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HandshakeStatus::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return HandshakeStatus::Failed,
            }
        }
    }
}

/// Parses `CONNECT <port>` (the newline already stripped; a trailing CR is tolerated).
pub fn parse_connect(line: &[u8]) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let port = line.strip_prefix("CONNECT ")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// `<uds_path>_<port>`, built on the OS string so that non-UTF-8 paths work too.
pub fn port_path(uds_path: &Path, port: u32) -> PathBuf {
    let mut p = OsString::from(uds_path.as_os_str());
    p.push(format!("_{port}"));
    PathBuf::from(p)
}

/// Connects to a host listener without ever blocking: a unix connect blocks while the
/// listener's backlog is full, and the device thread must not wait on a host process. A full
/// backlog therefore counts as a refusal.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::unix(path)?)?;
    Ok(UnixStream::from(OwnedFd::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn parses_connect_lines() {
        assert_eq!(parse_connect(b"CONNECT 1024"), Some(1024));
        assert_eq!(parse_connect(b"CONNECT 52\r"), Some(52));
        assert_eq!(parse_connect(b"CONNECT 4294967295"), Some(u32::MAX));
        assert_eq!(parse_connect(b"CONNECT 4294967296"), None);
        assert_eq!(parse_connect(b"CONNECT "), None);
        assert_eq!(parse_connect(b"CONNECT +5"), None);
        assert_eq!(parse_connect(b"connect 5"), None);
        assert_eq!(parse_connect(b"CONNECT 5 6"), None);
        assert_eq!(parse_connect(&[0xff, 0xfe]), None);
    }

    #[test]
    fn port_path_appends_the_port() {
        assert_eq!(
            port_path(Path::new("/run/v.sock"), 5000),
            PathBuf::from("/run/v.sock_5000")
        );
    }

    #[test]
    fn handshake_reads_only_the_line() {
        let (mut host, dev) = UnixStream::pair().unwrap();
        dev.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut hs = Handshake::new(dev, deadline);
        assert_eq!(hs.poll(), HandshakeStatus::Pending);
        host.write_all(b"CONNECT 10").unwrap();
        assert_eq!(hs.poll(), HandshakeStatus::Pending);
        host.write_all(b"24\nearly bytes").unwrap();
        assert_eq!(hs.poll(), HandshakeStatus::Connect(1024));
        let mut rest = [0u8; 11];
        hs.into_stream().read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"early bytes");
    }

    #[test]
    fn handshake_fails_on_garbage_and_eof() {
        let (mut host, dev) = UnixStream::pair().unwrap();
        dev.set_nonblocking(true).unwrap();
        let mut hs = Handshake::new(dev, Instant::now());
        host.write_all(&[b'x'; 100]).unwrap();
        assert_eq!(hs.poll(), HandshakeStatus::Failed);

        let (host, dev) = UnixStream::pair().unwrap();
        dev.set_nonblocking(true).unwrap();
        let mut hs = Handshake::new(dev, Instant::now());
        drop(host);
        assert_eq!(hs.poll(), HandshakeStatus::Failed);
    }

    #[test]
    fn connect_refuses_without_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody");
        assert!(connect(&path).is_err());
        let _l = UnixListener::bind(&path).unwrap();
        assert!(connect(&path).is_ok());
    }

    #[test]
    fn bind_replaces_stale_socket_but_not_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "std leaves the socket file behind");
        let first = HostListener::bind(&path).unwrap();
        assert!(HostListener::bind(&path).is_err());
        drop(first);
        assert!(!path.exists());
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(HostListener::bind(&path).is_err());
    }
}
