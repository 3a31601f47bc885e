//! An HTTP request over a unix socket, for a container that was given the docker socket
//! (busybox's tools speak TCP only): `unix-ping SOCKET PATH` prints the answer's body.
//!
//! Standard library only (the tests build it with plain `rustc`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: unix-ping SOCKET PATH");
        std::process::exit(2);
    };
    let mut conn = match UnixStream::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connecting to {socket}: {e}");
            std::process::exit(1);
        }
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let mut answer = Vec::new();
    if let Err(e) = conn
        .write_all(request.as_bytes())
        .and_then(|_| conn.read_to_end(&mut answer))
    {
        eprintln!("talking to {socket}: {e}");
        std::process::exit(1);
    }
    let answer = String::from_utf8_lossy(&answer);
    match answer.split_once("\r\n\r\n") {
        Some((_, body)) => print!("{body}"),
        None => {
            eprintln!("not an HTTP answer: {answer}");
            std::process::exit(1);
        }
    }
}
