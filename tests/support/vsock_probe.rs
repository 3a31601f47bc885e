//! What a container can do with AF_VSOCK, for `tests/boundary.rs`: built statically at test
//! time, copied into a container and run there. In skiff's VM the host's machine daemon is one
//! vsock connection away (CID 2), so each step tries one thing an attacker would: create the
//! socket past seccomp in every 64-bit encoding of the family, ask the daemon to publish a
//! host port, use the egress proxy to reach the host's loopback, take an engine's port before
//! the engine does, and hold as many connections as the device allows.
//!
//! Prints `name<TAB>verdict<TAB>detail` lines; verdicts are `allowed`/`denied` for syscalls and
//! free text for the rest.
//!
//! Standard library only (the tests build it with plain `rustc`): raw syscalls through libc's
//! variadic `syscall`, x86_64 numbers.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("the vsock probe's syscall numbers are x86_64's");

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

extern "C" {
    fn syscall(num: i64, ...) -> i64;
}

const SYS_CLOSE: i64 = 3;
const SYS_SOCKET: i64 = 41;
const SYS_CONNECT: i64 = 42;
const SYS_BIND: i64 = 49;
const SYS_LISTEN: i64 = 50;
const SYS_SETSOCKOPT: i64 = 54;
const AF_VSOCK: i64 = 40;
const SOCK_STREAM: i64 = 1;
const SOCK_NONBLOCK: i64 = 0o4000;
const SOL_SOCKET: i64 = 1;
const SO_RCVTIMEO: i64 = 20;
const HOST_CID: u32 = 2;
const ANY_CID: u32 = u32::MAX;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[repr(C)]
struct SockaddrVm {
    family: u16,
    reserved: u16,
    port: u32,
    cid: u32,
    flags: u8,
    zero: [u8; 3],
}

fn addr(cid: u32, port: u32) -> SockaddrVm {
    SockaddrVm {
        family: AF_VSOCK as u16,
        reserved: 0,
        port,
        cid,
        flags: 0,
        zero: [0; 3],
    }
}

fn vsock_socket(family: i64, flags: i64) -> Result<i32, i32> {
    // SAFETY: plain integers in; the descriptor, if any, belongs to the caller.
    let fd = unsafe { syscall(SYS_SOCKET, family, SOCK_STREAM | flags, 0i64) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as i32)
    }
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this program owns.
    unsafe { syscall(SYS_CLOSE, fd as i64) };
}

/// A blocking connection to `port` on the host, reads timing out after `timeout`.
fn connect_host(port: u32, timeout: Duration) -> Result<std::fs::File, i32> {
    connect_to(HOST_CID, port, timeout)
}

fn connect_to(cid: u32, port: u32, timeout: Duration) -> Result<std::fs::File, i32> {
    let fd = vsock_socket(AF_VSOCK, 0)?;
    let a = addr(cid, port);
    // SAFETY: a is a sockaddr_vm of the size passed.
    let rc = unsafe {
        syscall(
            SYS_CONNECT,
            fd as i64,
            &a as *const SockaddrVm,
            std::mem::size_of::<SockaddrVm>() as i64,
        )
    };
    if rc < 0 {
        let e = errno();
        close(fd);
        return Err(e);
    }
    let tv: [i64; 2] = [timeout.as_secs() as i64, timeout.subsec_micros() as i64];
    // SAFETY: tv is a struct timeval of the size passed.
    unsafe {
        syscall(
            SYS_SETSOCKOPT,
            fd as i64,
            SOL_SOCKET,
            SO_RCVTIMEO,
            tv.as_ptr(),
            16i64,
        )
    };
    // SAFETY: fd is ours and nothing else holds it.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Everything the peer sends until it closes or falls silent, as text.
fn read_all(f: &mut std::fs::File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < 64 << 10 {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).replace(['\r', '\n', '\t'], " ")
}

/// Send `request` to the host's `port`; what came back, or why nothing did.
fn exchange(port: u32, request: &[u8]) -> String {
    match connect_host(port, Duration::from_secs(8)) {
        Err(e) => format!("connect errno {e}"),
        Ok(mut f) => {
            if f.write_all(request).is_err() {
                return "write failed".into();
            }
            let got = read_all(&mut f);
            if got.is_empty() {
                "closed".into()
            } else {
                got
            }
        }
    }
}

/// socket(AF_VSOCK) with the family in the low 32 bits and junk above: the kernel reads an
/// int, so each of these is AF_VSOCK to it.
fn encodings() {
    for (name, family) in [
        ("plain", AF_VSOCK),
        ("bit-32", (1i64 << 32) | AF_VSOCK),
        ("upper-ones", (-1i64 << 32) | AF_VSOCK),
        ("upper-7fff", (0x7fff_ffffi64 << 32) | AF_VSOCK),
    ] {
        match vsock_socket(family, 0) {
            Ok(fd) => {
                close(fd);
                println!("socket-{name}\tallowed\t{family:#x}");
            }
            Err(e) => println!("socket-{name}\tdenied\terrno {e}"),
        }
    }
}

fn listen_on(port: u32) -> Result<i32, i32> {
    let fd = vsock_socket(AF_VSOCK, SOCK_NONBLOCK)?;
    let a = addr(ANY_CID, port);
    // SAFETY: a is a sockaddr_vm of the size passed; listen takes integers.
    let ok = unsafe {
        syscall(
            SYS_BIND,
            fd as i64,
            &a as *const SockaddrVm,
            std::mem::size_of::<SockaddrVm>() as i64,
        ) == 0
            && syscall(SYS_LISTEN, fd as i64, 64i64) == 0
    };
    if ok {
        Ok(fd)
    } else {
        let e = errno();
        close(fd);
        Err(e)
    }
}

/// Listen on the engines' ports (the fixed ones and the first extra engines'), and hold them
/// for `hold` while the test starts new engines; report which could be taken and whether the
/// host ever connected to one of ours.
fn takeover(hold: Duration) {
    let mut held = Vec::new();
    for port in [1024u32, 1025, 1028].into_iter().chain(10_000..11_000) {
        match listen_on(port) {
            Ok(fd) => held.push((port, fd)),
            Err(e) if port < 10_000 => println!("bind-{port}\tdenied\terrno {e}"),
            Err(_) => {}
        }
    }
    for (port, _) in &held {
        if *port < 10_000 {
            println!("bind-{port}\tallowed\t");
        }
    }
    println!("held\t{}\t", held.len());
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + hold;
    let mut accepted = 0;
    while Instant::now() < deadline {
        for (_, fd) in &held {
            // SAFETY: accept4 on our listener; null address pointers are allowed.
            let c = unsafe {
                syscall(
                    288,
                    *fd as i64,
                    std::ptr::null_mut::<u8>(),
                    std::ptr::null_mut::<u8>(),
                    0i64,
                )
            };
            if c >= 0 {
                accepted += 1;
                close(c as i32);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("host-connected-to-ours\t{accepted}\t");
}

/// Open connections to the host's guest-facing ports until refused, hold them for `hold`.
fn flood(hold: Duration) {
    let mut held = Vec::new();
    for port in [1026u32, 1027] {
        let mut n = 0;
        for _ in 0..600 {
            match connect_host(port, Duration::from_secs(1)) {
                Ok(f) => {
                    held.push(f);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        println!("flood-{port}\t{n}\t");
    }
    let _ = std::io::stdout().flush();
    std::thread::sleep(hold);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let secs = |i: usize| Duration::from_secs(arg(i).parse().unwrap_or(10));
    match arg(1).as_str() {
        "encodings" => encodings(),
        "publish" => {
            // What an engine would send, for a host port the test chose.
            for (name, addr) in [
                ("loopback", format!("127.0.0.1:{}", arg(2))),
                ("any", format!("0.0.0.0:{}", arg(2))),
                ("low", "0.0.0.0:1".to_string()),
            ] {
                let req = format!(
                    "{{\"op\":\"publish\",\"proto\":\"tcp\",\"addr\":\"{addr}\",\"forward\":4444}}\n"
                );
                println!("publish-{name}\t{}\t", exchange(1026, req.as_bytes()));
                let authed = format!("skiff-auth {}\n{req}", "0".repeat(64));
                println!("publish-guessed-{name}\t{}\t", exchange(1026, authed.as_bytes()));
            }
        }
        "egress" => {
            let target = format!("127.0.0.1:{}", arg(2));
            let get = format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n");
            println!("egress-get\t{}\t", exchange(1027, get.as_bytes()));
            let connect = format!(
                "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            println!("egress-connect\t{}\t", exchange(1027, connect.as_bytes()));
        }
        "takeover" => takeover(secs(2)),
        "init" => {
            // PID 1's own port, which takes `shutdown` and `engine-kill`: only the host may
            // reach it. Try the VM's own addresses (local, and the guest CID skiff gives it).
            for (name, cid) in [("local", 1u32), ("guest", 3), ("host", HOST_CID)] {
                let got = match connect_to(cid, 1028, Duration::from_secs(5)) {
                    Err(e) => format!("connect errno {e}"),
                    Ok(mut f) => {
                        let _ = f.write_all(b"engines\n");
                        format!("answered {}", read_all(&mut f))
                    }
                };
                println!("init-{name}\t{got}\t");
            }
        }
        "flood" => flood(secs(2)),
        other => {
            eprintln!("usage: vsock-probe encodings|publish PORT|egress PORT|init|takeover SECS|flood SECS (got {other:?})");
            std::process::exit(2);
        }
    }
}
