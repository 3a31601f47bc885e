//! The local terminal: raw mode while a container owns it, and its size.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// The terminal's size as docker reads it from stdout: (height, width), zero when stdout
/// is not a terminal. The one console-size check: `run`/`create`'s console size, `exec -t`
/// and every resize on SIGWINCH read it here.
pub fn size() -> (u16, u16) {
    if !std::io::stdout().is_terminal() {
        return (0, 0);
    }
    size_of_fd(1)
}

fn size_of_fd(fd: i32) -> (u16, u16) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    if rc != 0 {
        return (0, 0);
    }
    (ws.ws_row, ws.ws_col)
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Stdin in raw mode (as moby/term's MakeRaw) until restored; restoring twice is harmless
/// and dropping the last handle restores too, so every way out of a command leaves the
/// terminal as it was.
#[derive(Clone)]
pub struct RawMode {
    saved: Arc<Mutex<Option<libc::termios>>>,
}

impl RawMode {
    /// Put stdin in raw mode if it is a terminal (and `NORAW` is not set, as docker).
    pub fn enable() -> std::io::Result<RawMode> {
        let saved = Arc::new(Mutex::new(None));
        if !stdin_is_tty() || std::env::var_os("NORAW").is_some() {
            return Ok(RawMode { saved });
        }
        // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal (checked above); tcgetattr fills `t`.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let original = t;
        t.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        t.c_oflag &= !libc::OPOST;
        t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
        t.c_cflag &= !(libc::CSIZE | libc::PARENB);
        t.c_cflag |= libc::CS8;
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        // SAFETY: `t` is a complete termios derived from the terminal's own.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        *saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(original);
        Ok(RawMode { saved })
    }

    /// A handle that restores nothing: the terminal was left as it was.
    pub fn disabled() -> RawMode {
        RawMode {
            saved: Arc::new(Mutex::new(None)),
        }
    }

    pub fn restore(&self) {
        let mut guard = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = guard.take() {
            // SAFETY: restoring the termios read from this terminal before.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if Arc::strong_count(&self.saved) == 1 {
            self.restore();
        }
    }
}

/// docker's prompt.Confirm: the question on stdout, yes only for "y".
pub fn confirm(message: &str) -> std::io::Result<bool> {
    crate::output::out_text!("{message} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}
