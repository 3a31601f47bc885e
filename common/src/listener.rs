//! Whether a live process serves a unix socket: how the CLI finds the native agent without a
//! round trip through it, and how a starting agent tells a stale socket from a taken one.
//!
//! A socket file whose process is gone refuses the connection. But a process just killed can
//! still accept while its last threads exit (its main thread already a zombie), and would
//! then reset what was sent: so the listener's process, which the kernel names to the client
//! (`SO_PEERCRED`), must be alive too.

use std::os::fd::AsRawFd;
use std::path::Path;

/// Whether a process that is not dying listens on `socket`. A connection to one still
/// starting waits in the backlog until it serves, and counts. A listener the kernel does
/// not name (one in another PID namespace) counts too: nothing says it is dying.
pub fn live_listener(socket: &Path) -> bool {
    let Ok(s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives across the call.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    r != 0 || cred.pid <= 0 || process_lives(cred.pid)
}

/// A process that exists and is not a zombie.
pub fn process_lives(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold any byte.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_listening_process_is_seen_and_a_leftover_socket_or_a_zombie_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        assert!(!live_listener(&sock));
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(live_listener(&sock));
        drop(l);
        assert!(sock.exists());
        // A child another test forks holds the listener open until it execs: give it time.
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_listener(&sock) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!live_listener(&sock));

        assert!(process_lives(std::process::id() as i32));
        assert!(!process_lives(0) && !process_lives(-1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: a zombie once it has exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_lives(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!process_lives(pid));
        child.wait().unwrap();
        assert!(!process_lives(pid));
    }
}
