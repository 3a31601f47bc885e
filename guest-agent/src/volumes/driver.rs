//! The local driver's options: `type`, `device` and `o` make a volume a mount of something
//! else on its `_data` (`-o type=tmpfs -o device=tmpfs -o o=size=64m`, or
//! `-o type=none -o o=bind -o device=/path`), mounted while a container uses it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use nix::mount::{mount as sys_mount, umount2, MntFlags, MsFlags};

use super::{HostPaths, VolumeError};

const KEYS: &[&str] = &["type", "device", "o", "size"];

/// docker's checks of a local volume's options, with its messages.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    for k in opts.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(VolumeError::invalid(format!("invalid option key: {k:?}")));
        }
    }
    if opts.contains_key("size") {
        return Err(VolumeError::invalid(
            "quota size requested but no quota support: skiff's local volumes have no size option; use -o type=tmpfs -o device=tmpfs -o o=size=… for a bounded tmpfs",
        ));
    }
    // Each option needs its companions.
    for (opt, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if opts.contains_key(opt) {
            if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return Err(VolumeError::invalid(format!(
                    "missing required option: {missing:?}"
                )));
            }
        }
    }
    if let Some(o) = opts.get("o") {
        parse_o(o)?;
    }
    Ok(())
}

pub fn mounts_something(opts: &BTreeMap<String, String>) -> bool {
    opts.contains_key("type")
}

/// `o`'s words split into mount flags and the filesystem's own data, as mount(8) does.
fn parse_o(o: &str) -> Result<(MsFlags, String), VolumeError> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for w in o.split(',').filter(|w| !w.is_empty()) {
        let f = match w {
            "ro" => MsFlags::MS_RDONLY,
            "rw" => MsFlags::empty(),
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "sync" => MsFlags::MS_SYNCHRONOUS,
            "dirsync" => MsFlags::MS_DIRSYNC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "bind" => MsFlags::MS_BIND,
            "rbind" => MsFlags::MS_BIND | MsFlags::MS_REC,
            "remount" | "move" => {
                return Err(VolumeError::invalid(format!(
                    "invalid volume option o={o}: {w:?} is not a mount option a volume can have"
                )))
            }
            other => {
                data.push(other);
                continue;
            }
        };
        flags |= f;
    }
    Ok((flags, data.join(",")))
}

/// Mounts what the options say on `target`, unless it is mounted already.
pub fn mount(
    opts: &BTreeMap<String, String>,
    target: &Path,
    host_paths: &HostPaths,
) -> Result<(), VolumeError> {
    let (Some(fstype), Some(device)) = (opts.get("type"), opts.get("device")) else {
        return Ok(());
    };
    if crate::mountinfo::is_mounted(target) {
        return Ok(());
    }
    let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""))?;
    let failed = |e: nix::errno::Errno, what: &str| {
        VolumeError::internal(format!(
            "failed to mount local volume: mount {device}:{}, {what}: {e}",
            target.display()
        ))
    };
    if flags.contains(MsFlags::MS_BIND) {
        // A bind's device is a path on the user's host: in the VM, its place in a share.
        let (source, share_ro) = host_paths.resolve(Path::new(device))?;
        if !source.exists() {
            return Err(VolumeError::not_found(format!(
                "failed to mount local volume: mount {device}:{}: no such file or directory",
                target.display()
            )));
        }
        // In the VM the descriptor `pin` checked is what gets mounted, not the path again
        // (a container writing to the share could swap in a link meanwhile).
        let pinned = host_paths.pin(Path::new(device), &source)?;
        let source = match &pinned {
            Some(fd) => std::path::PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            )),
            None => source,
        };
        sys_mount(
            Some(&source),
            target,
            None::<&str>,
            flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
            None::<&str>,
        )
        .map_err(|e| failed(e, "bind"))?;
        // A bind takes its other flags only from a remount.
        let rest = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        let rest = if share_ro {
            rest | MsFlags::MS_RDONLY
        } else {
            rest
        };
        if !rest.is_empty() {
            sys_mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | rest,
                None::<&str>,
            )
            .map_err(|e| failed(e, "remount"))?;
        }
        return Ok(());
    }
    sys_mount(
        Some(device.as_str()),
        target,
        Some(fstype.as_str()),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| failed(e, &format!("type {fstype}")))
}

pub fn unmount(target: &Path) -> anyhow::Result<()> {
    if !crate::mountinfo::is_mounted(target) {
        return Ok(());
    }
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        // A container that still holds it has its own copy of the mount in its namespace;
        // ours can go.
        Err(nix::errno::Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", target.display())),
        Err(e) => Err(e).with_context(|| format!("unmounting {}", target.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_as_docker_does() {
        assert!(validate(&opts(&[])).is_ok());
        assert!(validate(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        assert!(validate(&opts(&[
            ("type", "none"),
            ("device", "/srv"),
            ("o", "bind")
        ]))
        .is_ok());
        let msg = |o: &[(&str, &str)]| validate(&opts(o)).unwrap_err().to_string();
        assert_eq!(msg(&[("colour", "red")]), "invalid option key: \"colour\"");
        assert_eq!(
            msg(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            msg(&[("device", "tmpfs")]),
            "missing required option: \"type\""
        );
        assert_eq!(
            msg(&[("o", "size=1m")]),
            "missing required option: \"device\""
        );
        assert!(msg(&[("size", "1g")]).starts_with("quota size requested but no quota support"));
        assert!(msg(&[("type", "none"), ("device", "/a"), ("o", "move")]).contains("\"move\""));
    }

    #[test]
    fn o_splits_into_flags_and_data() {
        let (f, d) = parse_o("bind,ro,size=1m,uid=1000").unwrap();
        assert_eq!(f, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        assert_eq!(d, "size=1m,uid=1000");
        assert!(!mounts_something(&opts(&[])));
        assert!(mounts_something(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs")
        ])));
    }
}
