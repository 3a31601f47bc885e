//! Following a container's log file as it grows, until the container ends: what `logs -f`,
//! `attach` and a build step's output read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::logs::{LogReader, Record, Stream};
use super::record::Status;
use super::{Container, Containers};

/// Which records a follower hands out, and when it stops.
pub struct FollowSpec {
    pub offset: u64,
    /// Bytes of the record at `offset` that are not wanted (the part of a write before the
    /// first line `--tail` keeps).
    pub skip: usize,
    pub stdout: bool,
    pub stderr: bool,
    /// Keep following while the container runs (or until it starts and ends, when attached
    /// before the start).
    pub follow: bool,
    /// A container not started yet is waited for (attach before start), not taken as ended.
    pub wait_for_start: bool,
    pub since_nanos: Option<i64>,
    pub until_nanos: Option<i64>,
}

/// Wakes when the log file grows (inotify), with a slow poll as a safety net.
struct Growth {
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Growth {
    fn new(path: &std::path::Path) -> Self {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .ok()
            .and_then(|fd| {
                inotify::add_watch(&fd, path, inotify::WatchFlags::MODIFY).ok()?;
                // SAFETY: the AsyncFd owns the inotify fd for as long as it is registered.
                unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok()
            });
        Self { fd }
    }

    async fn wait(&self) {
        match &self.fd {
            Some(fd) => {
                if let Ok(Ok(mut guard)) =
                    tokio::time::timeout(Duration::from_millis(500), fd.readable()).await
                {
                    let mut buf = [0u8; 4096];
                    while rustix::io::read(fd.get_ref(), &mut buf).is_ok_and(|n| n > 0) {}
                    guard.clear_ready();
                }
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Follow a container's log, sending records to `tx` until the spec says stop or the
/// receiver goes away.
pub async fn follow(
    engine: Arc<Containers>,
    c: Arc<Container>,
    spec: FollowSpec,
    tx: mpsc::Sender<Record>,
) {
    let path: PathBuf = c.log_path();
    let growth = Growth::new(&path);
    let mut reader = match LogReader::open(&path, spec.offset) {
        Ok(r) => r,
        Err(_) => return,
    };
    let first = c.record();
    let mut skip = spec.skip;
    let mut changes = c.subscribe();
    let ended = || {
        let now = c.record();
        engine.is_removed(&c)
            || (!now.state.status.is_live()
                && now.state.status != Status::Restarting
                && (!spec.wait_for_start
                    || now.state.finished_at != first.state.finished_at
                    || first.state.status != Status::Created))
    };
    loop {
        // Decided before reading: the shim wrote its last bytes before the exit was recorded,
        // so a pass that starts after the end was seen takes everything.
        let over = !spec.follow || ended();
        loop {
            match reader.next_record() {
                Ok(Some(mut rec)) => {
                    if skip > 0 {
                        rec.data.drain(..skip.min(rec.data.len()));
                        skip = 0;
                    }
                    if spec.until_nanos.is_some_and(|u| rec.nanos > u) {
                        return;
                    }
                    let wanted = match rec.stream {
                        Stream::Stdout => spec.stdout,
                        Stream::Stderr => spec.stderr,
                    };
                    if wanted
                        && spec.since_nanos.is_none_or(|s| rec.nanos >= s)
                        && tx.send(rec).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("reading log of {}: {e}", c.id);
                    return;
                }
            }
        }
        if over {
            return;
        }
        tokio::select! {
            _ = growth.wait() => {}
            _ = changes.changed() => {}
            _ = tx.closed() => return,
        }
    }
}
