//! Where the VM keeps its state, shared by PID 1 (which prepares it) and the engines it runs
//! (which live in it), and how a tree of mounts under it is cleared.

use std::path::Path;

use nix::mount::{umount2, MntFlags};

/// The data disk's mount point: images, containers, each engine's root.
pub const STATE_DIR: &str = "/var/lib/skiff";
/// Where PID 1 keeps the token the machine daemon gave it, for the engines it starts (in the
/// VM's own /run, which no container's mount namespace shows).
pub const TOKEN_FILE: &str = "/run/skiff-init/vsock-token";

/// Unmount everything mounted at or below `prefix`, deepest first. A mount that stays busy is
/// detached instead, so that the disk can still be flushed; one that cannot be is logged on
/// the console (PID 1 has no other log).
pub fn unmount_under(prefix: &str) {
    let mounts = match std::fs::read_to_string("/proc/self/mounts") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skiff-init: cannot read /proc/self/mounts to unmount {prefix}: {e}");
            return;
        }
    };
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| Path::new(m).starts_with(prefix))
        .collect();
    under.reverse();
    for m in under {
        if umount2(m, MntFlags::empty()).is_err() {
            if let Err(e) = umount2(m, MntFlags::MNT_DETACH) {
                eprintln!("skiff-init: cannot unmount {m}: {e}");
            }
        }
    }
}
