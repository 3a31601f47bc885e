//! The VM's wall clock, kept to the host's.
//!
//! At boot the guest kernel reads the emulated RTC, which has one-second resolution, and
//! from then on its clock drifts (much more under emulation, where timer ticks arrive late).
//! A guest that trails the host by a second makes `logs --since` and `events --since`, given
//! host times, miss what just happened. The machine daemon therefore sends the host's time
//! to PID 1 at boot and then every 10 s.
//!
//! A guest behind the host is stepped forward: under emulation it loses about 4 ms every
//! second (measured: 5-7 s behind after 25 minutes), faster than adjtime's 500 ppm slew
//! could ever make up, and a clock that jumps forward breaks nothing that orders events. A
//! guest ahead of the host is slewed back, so that its time never runs backwards, unless it
//! is far ahead.

use anyhow::{bail, Context, Result};

/// Behind by this much or more: step forward.
const STEP_FORWARD_NANOS: i128 = 1_000_000;
/// Ahead by this much or more: step back after all (slewing would take minutes).
const STEP_BACK_NANOS: i128 = 100_000_000;

/// Set the clock from the host's time, `host_nanos` since the epoch; returns the error that
/// was corrected, in nanoseconds (positive when the guest was behind).
pub fn sync_to(host_nanos: &str) -> Result<i128> {
    let host: i128 = host_nanos
        .trim()
        .parse()
        .with_context(|| format!("not a time in nanoseconds: {host_nanos:?}"))?;
    if host <= 0 {
        bail!("not a time after the epoch: {host}");
    }
    let behind = host - now_nanos()?;
    if behind >= STEP_FORWARD_NANOS || -behind >= STEP_BACK_NANOS {
        let ts = libc::timespec {
            tv_sec: (host / 1_000_000_000) as libc::time_t,
            tv_nsec: (host % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: a plain syscall on a timespec we own; PID 1 holds CAP_SYS_TIME.
        if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setting the clock");
        }
    } else if behind < 0 {
        let micros = behind / 1000;
        let delta = libc::timeval {
            tv_sec: (micros / 1_000_000) as libc::time_t,
            tv_usec: (micros % 1_000_000) as libc::suseconds_t,
        };
        // SAFETY: as above; the old adjustment is not wanted.
        if unsafe { libc::adjtime(&delta, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("slewing the clock");
        }
    }
    Ok(behind)
}

fn now_nanos() -> Result<i128> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before the epoch")?;
    Ok(now.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad input is refused before anything touches the clock (the tests do not run as
    /// PID 1 of a VM, so only the refusals are checked here; vm.rs checks the effect).
    #[test]
    fn only_times_after_the_epoch_are_taken() {
        assert!(sync_to("soon").is_err());
        assert!(sync_to("-5").is_err());
        assert!(sync_to("").is_err());
    }
}
