//! A minimal HTTP/1.0 server for scripts/bench-ports.sh's held-connection rounds, built static
//! and copied into a busybox container. busybox httpd listens with a backlog of 9, so a burst
//! of 1,000 connects overflowed its accept queue and measured busybox, not the port's path;
//! this one listens with the standard library's backlog and answers each connection from its
//! own thread however long the client holds it first.
//!
//!   bench-server PORT

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8080".into());
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench-server: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        });
    }
}
