//! Makes a container's `/sys/fs/cgroup` read-only on cgroup v1 hosts.
//!
//! The spec asks for the cgroup mount `ro`, as docker's does, and libcontainer 0.7 honours that
//! on cgroup v2; on v1 (and the v1/v2 hybrid) it mounts a tmpfs and one read-write mount per
//! hierarchy and drops the option. A container root could then raise its own `pids.max` or
//! memory limit. Until libcontainer fixes it, the agent asks libcontainer to run this role of
//! its own binary as a `createContainer` hook: that runs in the container's mount namespace
//! after the mounts are made and before `pivot_root`, with the capabilities the container is
//! about to lose, and a failure stops the container from starting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};

/// The argv[1] that selects this role.
pub const ROLE: &str = "cgroup-ro";

/// True where libcontainer mounts cgroups the v1 way.
pub fn needed() -> bool {
    use libcgroups::common::{get_cgroup_setup, CgroupSetup};
    matches!(
        get_cgroup_setup(),
        Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)
    )
}

/// The hook as the OCI spec's `hooks.createContainer` entry, for a container rooted at `rootfs`.
pub fn hook(agent_exe: &Path, rootfs: &Path) -> serde_json::Value {
    serde_json::json!({
        "path": agent_exe,
        "args": [agent_exe, ROLE, rootfs.join("sys/fs/cgroup")],
    })
}

/// The hook's process: `argv` is what follows the role name. Exit code 0 on success.
pub fn helper_main(argv: &[std::ffi::OsString]) -> i32 {
    let Some(dir) = argv.first().map(PathBuf::from) else {
        eprintln!("skiff-agent {ROLE}: expected the container's cgroup directory");
        return 2;
    };
    match make_read_only(&dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skiff-agent {ROLE}: {e:#}");
            1
        }
    }
}

fn make_read_only(dir: &Path) -> Result<()> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut points = mount_points_under(&mountinfo, dir);
    // Deepest first: the tmpfs that holds the others goes read-only last.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
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
    anyhow::ensure!(
        !points.is_empty(),
        "nothing is mounted at {}",
        dir.display()
    );
    Ok(())
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
