//! PID 1's side of the host's shared directories: mount each virtio-fs share the host offers
//! (on the kernel command line, `skiff_common::shares`) at its host path under `/mnt/host`,
//! and tell the engines which are there (`/run/skiff/shares.json`, named by `SKIFF_SHARES`).

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use skiff_common::shares::{guest_path, Offer, Share, Shares, SHARES_ENV, SHARES_FILE};

/// Mount the offered shares and write the list of those mounted. A share that fails to mount
/// is said on the console and left out of the list: bind mounts from it then fail in the
/// engine, with its message, rather than reach an empty directory of the VM's.
pub fn mount_all() -> Result<()> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let (offers, errors) = Offer::decode(&cmdline);
    for e in errors {
        eprintln!("skiff-init: {e}");
    }
    let mut mounted = Shares::default();
    for offer in offers {
        let guest = guest_path(&offer.host);
        match mount_one(&offer, &guest) {
            Ok(()) => {
                eprintln!(
                    "skiff-init: host directory {} mounted at {}{}",
                    offer.host.display(),
                    guest.display(),
                    if offer.readonly { " (read-only)" } else { "" }
                );
                mounted.shares.push(Share {
                    host: offer.host,
                    guest,
                    readonly: offer.readonly,
                });
            }
            Err(e) => eprintln!(
                "skiff-init: cannot mount the host directory {} ({}): {e:#}; bind mounts from it will fail",
                offer.host.display(),
                offer.tag
            ),
        }
    }
    write_list(&mounted)?;
    // Every engine PID 1 starts inherits it (the machine's own and the extra ones).
    std::env::set_var(SHARES_ENV, SHARES_FILE);
    Ok(())
}

fn mount_one(offer: &Offer, guest: &Path) -> Result<()> {
    std::fs::create_dir_all(guest).with_context(|| format!("creating {}", guest.display()))?;
    // The host's set-user-ID files and device nodes mean nothing good in the VM.
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if offer.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(
        Some(offer.tag.as_str()),
        guest,
        Some("virtiofs"),
        flags,
        None::<&str>,
    )
    .with_context(|| format!("mounting virtio-fs {} on {}", offer.tag, guest.display()))
}

/// Written whole or not at all: an engine starting meanwhile reads the old file or the new.
fn write_list(shares: &Shares) -> Result<()> {
    let path = Path::new(SHARES_FILE);
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".shares.json.tmp");
    std::fs::write(&tmp, shares.to_json()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {SHARES_FILE}"))
}
