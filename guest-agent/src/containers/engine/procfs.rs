//! What the agent learns about processes that need not be its children (shims it finds again
//! after a restart) from /proc and pidfds.

use std::time::Duration;

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time_of(&stat)
}

fn start_time_of(stat: &str) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(19)?.parse().ok()
}

/// Resolves when the process is gone (it need not be our child).
pub(super) async fn wait_for_process(pid: i32) {
    use rustix::process::{pidfd_open, Pid as RPid, PidfdFlags};
    let Some(rpid) = RPid::from_raw(pid) else {
        return;
    };
    let fd = match pidfd_open(rpid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return, // already gone
    };
    // SAFETY: the AsyncFd owns the pidfd, so it stays open for as long as it is registered.
    match unsafe { tokio::io::unix::AsyncFd::register(fd) } {
        Ok(afd) => {
            // A pidfd turns readable when the process ends; an error here means the same wait
            // is over (the descriptor is gone), so there is nothing more to learn from it.
            let _ = afd.readable().await;
        }
        Err(_) => {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_after_the_last_parenthesis() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_of(stat), Some(987654));
        assert_eq!(start_time_of("42 (short) S 1"), None);
        assert_eq!(start_time_of("no parenthesis"), None);
    }

    #[test]
    fn our_own_start_time_is_known() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some_and(|t| t > 0));
    }
}
