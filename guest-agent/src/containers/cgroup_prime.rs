//! Readies the kernel's cgroup migration lock before the runtime needs it.
//!
//! The runtime moves every container's init, and every exec'd process, into the container's
//! cgroups by writing its pid to `cgroup.procs`. For that the kernel takes its one global
//! `cgroup_threadgroup_rwsem` for writing, and unless another writer took it shortly before
//! (within about a grace period), that first waits for an RCU grace period: 8–15 ms on the
//! machines measured, the largest single part of an `exec` (BENCHMARKS.md, "Where an exec
//! goes"). libcontainer writes the pid itself, so the wait cannot be skipped, only moved.
//!
//! So when a request arrives that will soon start a process, a thread of the agent moves the
//! agent into the cgroup it is already in. The kernel migrates nothing for that, but it takes
//! the lock the same way, so the grace period runs while the agent and the runtime prepare
//! the process, and the runtime's own write finds the lock ready.
//!
//! Where cgroup2 is mounted with `favordynmods` (skiff's VM), the kernel keeps the lock ready
//! at all times and there is nothing to prime.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;

/// The priming thread's queue; None where there is nothing to prime.
static PRIMER: OnceLock<Option<SyncSender<()>>> = OnceLock::new();

/// Asks for the lock to be made ready; returns at once. Requests that arrive while one is
/// being served fold into the next.
pub fn prime() {
    if let Some(tx) = PRIMER.get_or_init(start) {
        let _ = tx.try_send(());
    }
}

fn start() -> Option<SyncSender<()>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (mount, root) = cgroup2_mount(&mountinfo)?;
    let (tx, rx) = sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("cgroup-prime".into())
        .spawn(move || {
            for () in rx {
                // Read each time: something (systemd) may have moved the agent since, and a
                // stale path would move it back.
                let Some(dir) = std::fs::read_to_string("/proc/self/cgroup")
                    .ok()
                    .and_then(|c| own_cgroup(&c, &root).map(|rel| mount.join(rel)))
                else {
                    continue;
                };
                // "0" is the writer's own thread group. A failure only means no priming.
                let _ = std::fs::write(dir.join("cgroup.procs"), "0");
            }
        })
        .ok()?;
    Some(tx)
}

/// The mount point of the cgroup2 hierarchy and the cgroup it shows at that point, unless
/// it is mounted with `favordynmods`.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (mine, theirs) = line.split_once(" - ")?;
        let mut fs = theirs.split(' ');
        if fs.next()? != "cgroup2" {
            return None;
        }
        let super_opts = fs.nth(1).unwrap_or("");
        if super_opts.split(',').any(|o| o == "favordynmods") {
            return None;
        }
        let mut f = mine.split(' ');
        let root = f.nth(3)?.to_string();
        let point = f.next()?;
        Some((PathBuf::from(point), root))
    })
}

/// This process's cgroup v2 path, relative to a mount of the hierarchy whose root is `root`.
fn own_cgroup(proc_cgroup: &str, root: &str) -> Option<String> {
    let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rel = path.strip_prefix(root)?;
    // A prefix that stops inside a name (root /a, path /ab) is not below the root.
    if !(root == "/" || rel.is_empty() || rel.starts_with('/')) {
        return None;
    }
    Some(rel.trim_start_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 25 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:11 - cgroup cgroup rw,pids
";

    #[test]
    fn the_hybrid_hosts_unified_hierarchy_is_the_one_primed() {
        let (point, root) = cgroup2_mount(HYBRID).expect("a cgroup2 mount");
        assert_eq!(point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(root, "/");
        let me = "12:pids:/user.slice\n0::/user.slice/user-0.slice/session-3.scope\n";
        assert_eq!(
            own_cgroup(me, &root).as_deref(),
            Some("user.slice/user-0.slice/session-3.scope")
        );
    }

    #[test]
    fn a_hierarchy_mounted_with_favordynmods_needs_no_priming() {
        let vm =
            "22 1 0:20 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n";
        assert!(cgroup2_mount(vm).is_none());
        assert!(cgroup2_mount("").is_none());
    }

    #[test]
    fn a_cgroup_outside_the_mounts_root_is_not_written() {
        assert_eq!(own_cgroup("0::/a/b\n", "/a").as_deref(), Some("b"));
        assert_eq!(own_cgroup("0::/a\n", "/a").as_deref(), Some(""));
        assert_eq!(own_cgroup("0::/ab\n", "/a"), None);
        assert_eq!(own_cgroup("0::/x\n", "/a"), None);
        assert_eq!(own_cgroup("3:cpu:/x\n", "/"), None);
        assert_eq!(own_cgroup("0::/\n", "/").as_deref(), Some(""));
    }
}
