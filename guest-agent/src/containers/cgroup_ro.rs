//! Makes a container's `/sys/fs/cgroup` read-only on cgroup v1 hosts.
//!
//! The spec asks for the cgroup mount `ro`, as docker's does, and libcontainer 0.7 honours that
//! on cgroup v2; on v1 (and the v1/v2 hybrid) it mounts a tmpfs and one read-write mount per
//! hierarchy and drops the option. A container root could then raise its own `pids.max` or
//! memory limit. Until libcontainer fixes it, the shim remounts them between the runtime's
//! create and start: the container's process then exists, with its mounts made and its root
//! pivoted, but waits to exec, so none of its code has run. A thread of the shim enters the
//! container's mount namespace (where `/` is the container's root) and remounts each
//! hierarchy, then the tmpfs that holds them; a failure stops the container from starting.
//! (This was a `createContainer` hook, an exec of the agent's binary inside every start.)

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::mount::{mount, MsFlags};

/// True where libcontainer mounts cgroups the v1 way.
pub fn needed() -> bool {
    use libcgroups::common::{get_cgroup_setup, CgroupSetup};
    matches!(
        get_cgroup_setup(),
        Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)
    )
}

/// Remounts `/sys/fs/cgroup` and every mount below it read-only in the mount namespace of
/// `pid`, a container's process that the runtime created and has not started.
pub fn make_read_only(pid: i32) -> Result<()> {
    // The mount points as the container's process sees them, relative to its root.
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .context("reading the container's mountinfo")?;
    let mut points = mount_points_under(&mountinfo, Path::new("/sys/fs/cgroup"));
    anyhow::ensure!(
        !points.is_empty(),
        "nothing is mounted at /sys/fs/cgroup in the container"
    );
    // Deepest first: the tmpfs that holds the others goes read-only last.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .context("opening the container's mount namespace")?;
    std::thread::spawn(move || -> Result<()> {
        use nix::sched::CloneFlags;
        // A thread that shares its root and working directory with others cannot enter
        // another mount namespace: this one gets its own first.
        nix::sched::unshare(CloneFlags::CLONE_FS).context("unsharing the thread's root")?;
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNS)
            .context("entering the container's mount namespace")?;
        let flags = MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        for p in &points {
            mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
                .with_context(|| format!("remounting {} read-only", p.display()))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("the cgroup remount thread panicked"))?
}

/// Mount points at or below `dir`, from mountinfo's fifth field (octal escapes undone).
fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(octal) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mounts_below_the_directory_only() {
        let info = "\
112 107 0:47 / /c/root/sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw
113 112 0:29 / /c/root/sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
114 112 0:30 / /c/root/sys/fs/cgroup/name\\040with\\040space rw - cgroup cgroup rw
115 107 0:31 / /c/root/sys/fs/cgroupx rw - tmpfs tmpfs rw
116 1 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        let got = mount_points_under(info, Path::new("/c/root/sys/fs/cgroup"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/c/root/sys/fs/cgroup"),
                PathBuf::from("/c/root/sys/fs/cgroup/cpu"),
                PathBuf::from("/c/root/sys/fs/cgroup/name with space"),
            ]
        );
    }
}
