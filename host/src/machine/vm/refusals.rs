//! Warnings about guest connections refused for want of the VM's token. Such a connection
//! means something in the guest other than skiff's engine is knocking, which the user should
//! hear of, but a container that knocks in a loop must not fill the daemon's log: at most one
//! line a second, saying how many went unreported in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static LAST: Mutex<Option<Instant>> = Mutex::new(None);
static QUIET: AtomicU64 = AtomicU64::new(0);

pub fn warn(what: std::fmt::Arguments<'_>) {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        QUIET.fetch_add(1, Ordering::Relaxed);
        return;
    }
    *last = Some(Instant::now());
    match QUIET.swap(0, Ordering::Relaxed) {
        0 => tracing::warn!("{what} (something in the VM that is not skiff's engine)"),
        n => tracing::warn!("{what} (something in the VM that is not skiff's engine; {n} more refused since the last warning)"),
    }
}
