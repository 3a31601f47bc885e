//! Signals as docker's API names them, for stop, kill and restart.

use std::fmt;

use crate::containers::error::ContainerError;

/// A signal number the kernel knows (1 to 64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(i32);

/// docker's names without the `SIG` prefix.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Linux's first real-time signal as glibc numbers it (`RTMIN+N` is 34+N, as docker counts).
const RTMIN: i32 = 34;

impl Signal {
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const TERM: Signal = Signal(libc::SIGTERM);

    /// docker's signal names: "SIGTERM", "TERM", "15", "sigkill", "RTMIN+3".
    pub fn parse(s: &str) -> Result<Signal, ContainerError> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            if (1..=64).contains(&n) {
                return Ok(Signal(n));
            }
        }
        let up = t.to_ascii_uppercase();
        let name = up.strip_prefix("SIG").unwrap_or(&up);
        if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
            return Ok(Signal(*n));
        }
        if let Some(off) = name
            .strip_prefix("RTMIN+")
            .and_then(|v| v.parse::<i32>().ok())
        {
            if (0..=30).contains(&off) {
                return Ok(Signal(RTMIN + off));
            }
        }
        Err(ContainerError::invalid(format!("Invalid signal: {s}")))
    }

    pub fn number(self) -> i32 {
        self.0
    }
}

/// The number, as the shim's `kill` request and docker's `kill` event give it.
impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> i32 {
        Signal::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .number()
    }

    fn refused(s: &str) -> String {
        match Signal::parse(s) {
            Err(ContainerError::InvalidArgument(m)) => m,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn names_with_or_without_sig_in_any_case() {
        assert_eq!(n("SIGTERM"), 15);
        assert_eq!(n("TERM"), 15);
        assert_eq!(n("sigkill"), 9);
        assert_eq!(n("kill"), 9);
        assert_eq!(n("SigHup"), 1);
        assert_eq!(n(" SIGUSR1 "), 10);
        assert_eq!(n("IOT"), n("ABRT"));
        assert_eq!(n("SIGWINCH"), 28);
        assert_eq!(n("SYS"), 31);
    }

    #[test]
    fn numbers_from_1_to_64() {
        assert_eq!(n("1"), 1);
        assert_eq!(n("15"), 15);
        assert_eq!(n("64"), 64);
        assert_eq!(n(" 9 "), 9);
    }

    #[test]
    fn real_time_signals_count_from_34() {
        assert_eq!(n("RTMIN+0"), 34);
        assert_eq!(n("SIGRTMIN+3"), 37);
        assert_eq!(n("rtmin+30"), 64);
        assert_eq!(refused("RTMIN+31"), "Invalid signal: RTMIN+31");
        assert_eq!(refused("RTMIN"), "Invalid signal: RTMIN");
    }

    #[test]
    fn anything_else_is_refused_with_the_input_as_given() {
        assert_eq!(refused("0"), "Invalid signal: 0");
        assert_eq!(refused("65"), "Invalid signal: 65");
        assert_eq!(refused("-9"), "Invalid signal: -9");
        assert_eq!(refused("SIGFOO"), "Invalid signal: SIGFOO");
        assert_eq!(refused(" bogus "), "Invalid signal:  bogus ");
        assert_eq!(refused(""), "Invalid signal: ");
    }

    #[test]
    fn shows_as_its_number() {
        assert_eq!(Signal::KILL.to_string(), "9");
        assert_eq!(Signal::parse("TERM").unwrap(), Signal::TERM);
    }
}
