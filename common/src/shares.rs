//! The host's directories that the VM sees through virtio-fs ("shares"), as the machine
//! daemon offers them at boot and as the guest's PID 1 tells its engines where they are.
//!
//! A share of host `/root` is mounted at `/mnt/host/root` in the VM. PID 1 writes the shares
//! it mounted to [`SHARES_FILE`] (JSON, [`Shares`]) and gives every engine that file's path in
//! [`SHARES_ENV`]; an engine translates the host path of a bind mount with
//! [`Shares::translate`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where in the VM the host's shared directories appear, each at its host path below this.
pub const GUEST_ROOT: &str = "/mnt/host";
/// The file PID 1 writes once the shares are mounted, before any engine starts.
pub const SHARES_FILE: &str = "/run/skiff/shares.json";
/// The engines' environment variable naming [`SHARES_FILE`].
pub const SHARES_ENV: &str = "SKIFF_SHARES";
/// The kernel command-line parameter that carries the host's offers to PID 1.
pub const CMDLINE_KEY: &str = "skiff.shares";
/// At most this many shares. QEMU's microvm has 8 virtio-mmio slots; vsock, disk, rng and
/// network take 4, and one stays free for the memory balloon.
pub const MAX_SHARES: usize = 3;
/// The offers' part of the kernel command line may take this much: x86's whole command line
/// is 2048 bytes, and the rest of ours must still fit.
pub const MAX_CMDLINE_BYTES: usize = 1536;

/// One mounted share, as the engines read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The directory on the host (absolute, canonical).
    pub host: PathBuf,
    /// Where it is mounted in the VM.
    pub guest: PathBuf,
    pub readonly: bool,
}

/// The content of [`SHARES_FILE`]: `{"shares":[{"host":…,"guest":…,"readonly":…}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shares {
    pub shares: Vec<Share>,
}

impl Shares {
    /// Read the file PID 1 wrote.
    pub fn load(path: &Path) -> std::io::Result<Shares> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    pub fn to_json(&self) -> String {
        // A struct of paths and booleans always serialises; paths that are not UTF-8 fail,
        // and PID 1 never puts one in (see `Offer::decode`).
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"shares":[]}"#.to_string())
    }

    /// Where host path `host_path` is in the VM, and whether its share is read-only: the share
    /// whose host directory is the longest prefix of `host_path`, compared by whole path
    /// components (`/root2` is not under `/root`). None for a path under no share, a
    /// relative one, or one with `..` or `.` in it: those could name a place outside the
    /// share once the VM resolves them.
    ///
    /// The result is a path in the VM: a symbolic link inside the share resolves there, so a
    /// link to `/etc` leads to the VM's `/etc`, not the host's. Resolve it with that in mind.
    pub fn translate(&self, host_path: &Path) -> Option<(PathBuf, bool)> {
        if !host_path.is_absolute()
            || host_path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return None;
        }
        let share = self
            .shares
            .iter()
            .filter(|s| host_path.starts_with(&s.host))
            .max_by_key(|s| s.host.components().count())?;
        let rest = host_path.strip_prefix(&share.host).ok()?;
        let guest = if rest.as_os_str().is_empty() {
            share.guest.clone()
        } else {
            share.guest.join(rest)
        };
        Some((guest, share.readonly))
    }
}

/// The mount point in the VM of host directory `host` (absolute).
pub fn guest_path(host: &Path) -> PathBuf {
    let mut p = PathBuf::from(GUEST_ROOT);
    p.extend(
        host.components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    p
}

/// The virtio-fs tag of the `index`th share's device.
pub fn tag(index: usize) -> String {
    format!("skiffshare{index}")
}

/// A share as the host offers it at boot: the device's tag, the host directory, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub tag: String,
    pub host: PathBuf,
    pub readonly: bool,
}

impl Offer {
    /// The kernel command-line parameter for `offers`: `skiff.shares=TAG:rw:HEX,…` with each
    /// host path hex-encoded (a path may hold spaces, commas, anything but NUL). Empty for
    /// no offers.
    pub fn encode(offers: &[Offer]) -> String {
        if offers.is_empty() {
            return String::new();
        }
        let items: Vec<String> = offers
            .iter()
            .map(|o| {
                let mode = if o.readonly { "ro" } else { "rw" };
                format!("{}:{mode}:{}", o.tag, hex(o.host.as_os_str().as_bytes()))
            })
            .collect();
        format!("{CMDLINE_KEY}={}", items.join(","))
    }

    /// The offers in a kernel command line (`/proc/cmdline`); an offer that does not parse
    /// is an error naming it, the others still count.
    pub fn decode(cmdline: &str) -> (Vec<Offer>, Vec<String>) {
        let mut offers = Vec::new();
        let mut errors = Vec::new();
        let prefix = format!("{CMDLINE_KEY}=");
        for param in cmdline.split_whitespace() {
            let Some(list) = param.strip_prefix(&prefix) else {
                continue;
            };
            for item in list.split(',').filter(|i| !i.is_empty()) {
                match Offer::parse(item) {
                    Some(o) => offers.push(o),
                    None => errors.push(format!("cannot read the share offer {item:?}")),
                }
            }
        }
        (offers, errors)
    }

    fn parse(item: &str) -> Option<Offer> {
        let mut parts = item.split(':');
        let (tag, mode, path) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || tag.is_empty() {
            return None;
        }
        let readonly = match mode {
            "ro" => true,
            "rw" => false,
            _ => return None,
        };
        let host = PathBuf::from(OsStr::from_bytes(&unhex(path)?));
        // Only what `machine init` accepts: absolute, plain, UTF-8 (shares.json is JSON).
        let plain = host.is_absolute()
            && host.to_str().is_some()
            && host
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        plain.then(|| Offer {
            tag: tag.to_string(),
            host,
            readonly,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares() -> Shares {
        let share = |host: &str, readonly| Share {
            host: host.into(),
            guest: guest_path(Path::new(host)),
            readonly,
        };
        Shares {
            shares: vec![
                share("/root", false),
                share("/srv/data", true),
                share("/srv/data/inner", false),
            ],
        }
    }

    #[test]
    fn translate_takes_the_longest_share_by_whole_components() {
        let s = shares();
        let t = |p: &str| s.translate(Path::new(p));
        assert_eq!(t("/root"), Some(("/mnt/host/root".into(), false)));
        assert_eq!(
            t("/root/src/app"),
            Some(("/mnt/host/root/src/app".into(), false))
        );
        assert_eq!(t("/root/"), Some(("/mnt/host/root".into(), false)));
        assert_eq!(t("/root2"), None);
        assert_eq!(t("/ro"), None);
        assert_eq!(
            t("/srv/data/x"),
            Some(("/mnt/host/srv/data/x".into(), true))
        );
        assert_eq!(
            t("/srv/data/inner/y"),
            Some(("/mnt/host/srv/data/inner/y".into(), false))
        );
        assert_eq!(
            t("/srv/data/innerx"),
            Some(("/mnt/host/srv/data/innerx".into(), true))
        );
        assert_eq!(t("/srv"), None);
        assert_eq!(t("/"), None);
        // Nothing that could leave the share once resolved, nothing relative.
        assert_eq!(t("/root/../etc/passwd"), None);
        assert_eq!(t("/root/./x"), Some(("/mnt/host/root/x".into(), false)));
        assert_eq!(t("root/x"), None);
        assert_eq!(Shares::default().translate(Path::new("/root")), None);
    }

    #[test]
    fn guest_paths_sit_under_the_guest_root() {
        assert_eq!(guest_path(Path::new("/root")), Path::new("/mnt/host/root"));
        assert_eq!(
            guest_path(Path::new("/var/tmp/a b")),
            Path::new("/mnt/host/var/tmp/a b")
        );
    }

    #[test]
    fn the_file_is_the_agreed_json() {
        let s = Shares {
            shares: vec![Share {
                host: "/root".into(),
                guest: "/mnt/host/root".into(),
                readonly: false,
            }],
        };
        assert_eq!(
            s.to_json(),
            r#"{"shares":[{"host":"/root","guest":"/mnt/host/root","readonly":false}]}"#
        );
        let dir = std::env::temp_dir().join(format!("skiff-shares-{}", std::process::id()));
        std::fs::write(&dir, s.to_json()).unwrap();
        assert_eq!(Shares::load(&dir).unwrap(), s);
        std::fs::write(&dir, "{").unwrap();
        assert_eq!(
            Shares::load(&dir).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn offers_round_trip_through_the_command_line() {
        let offers = vec![
            Offer {
                tag: tag(0),
                host: "/root".into(),
                readonly: false,
            },
            Offer {
                tag: tag(1),
                host: "/var/tmp/a b,c:d".into(),
                readonly: true,
            },
        ];
        let param = Offer::encode(&offers);
        assert!(!param.contains(' '), "{param}");
        assert!(param.starts_with("skiff.shares=skiffshare0:rw:2f726f6f74,"));
        let cmdline = format!("console=ttyS0 {param} quiet");
        assert_eq!(Offer::decode(&cmdline), (offers, vec![]));
        assert_eq!(Offer::encode(&[]), "");
        assert_eq!(Offer::decode("console=ttyS0 quiet"), (vec![], vec![]));
    }

    #[test]
    fn bad_offers_are_named_and_the_rest_kept() {
        let (offers, errors) =
            Offer::decode("skiff.shares=t0:rw:2f78,t1:xx:2f78,t2:ro:2f7,t3:ro:2e2e,t4:ro:2f2e2e");
        assert_eq!(
            offers,
            vec![Offer {
                tag: "t0".into(),
                host: "/x".into(),
                readonly: false
            }]
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("t1:xx:2f78"), "{errors:?}");
    }
}
