//! A machine's settings, as `skiff machine init` wrote them to `DIR/machine.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::SkiffError;

pub const MIN_MEMORY_MIB: u64 = 256;
pub const MIN_DISK_GIB: u64 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineConfig {
    pub name: String,
    pub cpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub created: String,
    /// The host directories the VM sees through virtio-fs. Absent in the files of machines
    /// made before shares existed: those share the user's home, as new ones do by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<SharedDir>>,
}

/// One shared host directory, as `machine init --mount PATH[:ro]` gave it (canonical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDir {
    pub path: PathBuf,
    pub readonly: bool,
}

impl MachineConfig {
    pub fn load(dir: &Path) -> Result<Option<MachineConfig>> {
        let path = dir.join("machine.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).with_context(|| {
                format!(
                    "{} is damaged; remove the machine and init it again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("machine.json");
        let tmp = dir.join(".machine.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Every setting checked before anything is created or started, so that a bad one
    /// changes nothing and says what to do.
    pub fn validate(&self) -> Result<()> {
        let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        if self.cpus == 0 || self.cpus > host_cpus {
            return Err(bad(format!(
                "--cpus {} is out of range: this host has {host_cpus} CPUs; give 1 to {host_cpus}",
                self.cpus
            )));
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(bad(format!(
                "--memory {} MiB is too little: the VM needs at least {MIN_MEMORY_MIB} MiB (its image alone unpacks into memory)",
                self.memory_mib
            )));
        }
        if self.disk_gib < MIN_DISK_GIB {
            return Err(bad(format!(
                "--disk-size {} GiB is too small: give at least {MIN_DISK_GIB} GiB",
                self.disk_gib
            )));
        }
        check_kernel(&self.kernel)?;
        check_initramfs(&self.initramfs)?;
        check_shares(&self.shares())?;
        Ok(())
    }

    /// The shares this machine has: those it was made with, else the user's home.
    pub fn shares(&self) -> Vec<SharedDir> {
        match &self.shares {
            Some(s) => s.clone(),
            None => default_shares(),
        }
    }
}

/// What a machine shares unless told otherwise: the user's home, as Docker Desktop does.
/// Nothing when there is no home to share.
pub fn default_shares() -> Vec<SharedDir> {
    // SAFETY: geteuid has no preconditions.
    let home = if unsafe { libc::geteuid() } == 0 {
        Some(PathBuf::from("/root"))
    } else {
        std::env::var_os("HOME").map(PathBuf::from)
    };
    home.and_then(|h| std::fs::canonicalize(h).ok())
        .filter(|h| h.is_dir() && h.parent().is_some() && h.to_str().is_some())
        .map(|path| {
            vec![SharedDir {
                path,
                readonly: false,
            }]
        })
        .unwrap_or_default()
}

/// `--mount PATH[:ro]` (or `:rw`): an existing directory, given absolute, kept canonical so
/// that the host paths of bind mounts compare with it.
pub fn parse_mount(spec: &str) -> Result<SharedDir> {
    let (path, readonly) = if let Some(p) = spec.strip_suffix(":ro") {
        (p, true)
    } else if let Some(p) = spec.strip_suffix(":rw") {
        (p, false)
    } else {
        (spec, false)
    };
    let given = Path::new(path);
    if !given.is_absolute() {
        return Err(bad(format!(
            "--mount {spec}: give the directory to share as an absolute path"
        )));
    }
    let path = std::fs::canonicalize(given)
        .map_err(|e| bad(format!("--mount {spec}: cannot share {path}: {e}")))?;
    if !path.is_dir() {
        return Err(bad(format!(
            "--mount {spec}: {} is not a directory; share the directory that holds it",
            path.display()
        )));
    }
    if path.parent().is_none() {
        return Err(bad(format!(
            "--mount {spec}: sharing the host's whole filesystem is refused; share the directories containers need"
        )));
    }
    if path.to_str().is_none() {
        return Err(bad(format!(
            "--mount {spec}: {} is not valid UTF-8, which the VM's list of shares cannot hold",
            path.display()
        )));
    }
    Ok(SharedDir { path, readonly })
}

/// What holds for every machine's shares, however they were made: few enough for the VM's
/// device slots and its command line, absolute, none inside another.
pub fn check_shares(shares: &[SharedDir]) -> Result<()> {
    use skiff_common::shares::{Offer, MAX_CMDLINE_BYTES, MAX_SHARES};
    if shares.len() > MAX_SHARES {
        return Err(bad(format!(
            "{} shared directories are too many: the VM has device slots for {MAX_SHARES}; share a common parent instead",
            shares.len()
        )));
    }
    for (i, a) in shares.iter().enumerate() {
        if !a.path.is_absolute() || a.path.parent().is_none() {
            return Err(bad(format!(
                "cannot share {}: give an absolute directory other than /",
                a.path.display()
            )));
        }
        for b in &shares[i + 1..] {
            if a.path == b.path {
                return Err(bad(format!(
                    "{} is shared twice; give it once",
                    a.path.display()
                )));
            }
            let (outer, inner) = if b.path.starts_with(&a.path) {
                (a, b)
            } else if a.path.starts_with(&b.path) {
                (b, a)
            } else {
                continue;
            };
            return Err(bad(format!(
                "{} is inside the shared {}; share only one of them",
                inner.path.display(),
                outer.path.display()
            )));
        }
    }
    let offers: Vec<Offer> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| Offer {
            tag: skiff_common::shares::tag(i),
            host: s.path.clone(),
            readonly: s.readonly,
        })
        .collect();
    if Offer::encode(&offers).len() > MAX_CMDLINE_BYTES {
        return Err(bad(
            "the shared directories' paths are too long together for the VM's kernel command line; share shorter paths".to_string(),
        ));
    }
    Ok(())
}

fn bad(msg: String) -> anyhow::Error {
    SkiffError::new(msg).into()
}

fn head(path: &Path, what: &str, hint: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| {
        bad(format!(
            "cannot open the guest {what} {}: {e}; {hint}",
            path.display()
        ))
    })?;
    let mut buf = vec![0u8; 0x210];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(bad(format!("cannot read {}: {e}", path.display()))),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

const KERNEL_HINT: &str =
    "install skiff with scripts/install.sh (it puts the kernel in PREFIX/share/skiff), or build it with scripts/build-kernel.sh and pass its vmlinux with --kernel";
const INITRAMFS_HINT: &str =
    "install skiff with scripts/install.sh (it puts the image in PREFIX/share/skiff), or build it with scripts/build-initramfs.sh and pass the image with --initramfs";

/// QEMU boots an ELF vmlinux through PVH (the fast path) or a bzImage; anything else would
/// only fail inside QEMU with a message about the file format.
pub fn check_kernel(path: &Path) -> Result<()> {
    let b = head(path, "kernel", KERNEL_HINT)?;
    let elf = b.starts_with(b"\x7fELF");
    let bzimage = b.len() >= 0x206 && &b[0x202..0x206] == b"HdrS";
    if !elf && !bzimage {
        return Err(bad(format!(
            "{} is not a Linux kernel (neither an ELF vmlinux nor a bzImage); {KERNEL_HINT}",
            path.display()
        )));
    }
    Ok(())
}

pub fn check_initramfs(path: &Path) -> Result<()> {
    let b = head(path, "initramfs", INITRAMFS_HINT)?;
    let known = b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) // zstd
        || b.starts_with(&[0x1f, 0x8b]) // gzip
        || b.starts_with(b"070701"); // plain newc cpio
    if !known {
        return Err(bad(format!(
            "{} is not an initramfs (a zstd, gzip or plain cpio archive); {INITRAMFS_HINT}",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> MachineConfig {
        let kernel = dir.join("vmlinux");
        let initramfs = dir.join("initramfs");
        std::fs::write(&kernel, b"\x7fELF\x02\x01\x01").unwrap();
        std::fs::write(&initramfs, [0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap();
        MachineConfig {
            name: "default".into(),
            cpus: 1,
            memory_mib: 512,
            disk_gib: 4,
            kernel,
            initramfs,
            created: String::new(),
            shares: None,
        }
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let dir = tempfile::tempdir().unwrap();
        let good = cfg(dir.path());
        good.validate().unwrap();

        let mut c = good.clone();
        c.memory_mib = 64;
        assert!(c.validate().unwrap_err().to_string().contains("too little"));
        let mut c = good.clone();
        c.cpus = 0;
        assert!(c.validate().unwrap_err().to_string().contains("--cpus 0"));
        let mut c = good.clone();
        c.kernel = dir.path().join("missing");
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("build-kernel.sh"));
        let mut c = good.clone();
        std::fs::write(dir.path().join("junk"), b"not a kernel at all").unwrap();
        c.kernel = dir.path().join("junk");
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not a Linux kernel"));
        let mut c = good;
        c.initramfs = dir.path().join("junk");
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not an initramfs"));
    }

    #[test]
    fn mounts_are_existing_absolute_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        let spec = |suffix: &str| format!("{}{suffix}", d.display());
        assert_eq!(
            parse_mount(&spec("")).unwrap(),
            SharedDir {
                path: d.clone(),
                readonly: false
            }
        );
        assert!(parse_mount(&spec(":ro")).unwrap().readonly);
        assert!(!parse_mount(&spec(":rw")).unwrap().readonly);
        // Canonical: a path through a symbolic link is stored as the real one.
        std::os::unix::fs::symlink(&d, d.join("link")).unwrap();
        assert_eq!(parse_mount(&spec("/link/")).unwrap().path, d);
        let err = |s: &str| parse_mount(s).unwrap_err().to_string();
        assert!(err("relative/dir").contains("absolute path"));
        assert!(err(&spec("/missing")).contains("cannot share"));
        std::fs::write(d.join("file"), b"").unwrap();
        assert!(err(&spec("/file")).contains("not a directory"));
        assert!(err("/").contains("whole filesystem"));
    }

    #[test]
    fn shares_may_not_nest_repeat_or_be_too_many() {
        let s = |p: &str| SharedDir {
            path: p.into(),
            readonly: false,
        };
        check_shares(&[]).unwrap();
        check_shares(&[s("/root"), s("/srv/a"), s("/srv/ab")]).unwrap();
        let err = |v: &[SharedDir]| check_shares(v).unwrap_err().to_string();
        assert!(err(&[s("/root"), s("/root")]).contains("shared twice"));
        let nested = err(&[s("/srv/a/b"), s("/srv/a")]);
        assert!(
            nested.contains("/srv/a/b is inside the shared /srv/a"),
            "{nested}"
        );
        assert!(err(&[s("/a"), s("/b"), s("/c"), s("/d")]).contains("too many"));
        let long = format!("/{}", "x".repeat(800));
        assert!(err(&[s(&long)]).contains("too long"));
        assert!(err(&[s("relative")]).contains("absolute"));
    }

    #[test]
    fn a_machine_file_without_shares_shares_home() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        c.save(dir.path()).unwrap();
        let saved = std::fs::read_to_string(dir.path().join("machine.json")).unwrap();
        assert!(!saved.contains("shares"), "{saved}");
        let loaded = MachineConfig::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.shares(), default_shares());

        let mut c = c;
        c.shares = Some(vec![SharedDir {
            path: "/srv".into(),
            readonly: true,
        }]);
        c.save(dir.path()).unwrap();
        let saved = std::fs::read_to_string(dir.path().join("machine.json")).unwrap();
        assert!(
            saved.contains(
                r#""shares": [
    {
      "path": "/srv",
      "readonly": true
    }
  ]"#
            ),
            "{saved}"
        );
        let loaded = MachineConfig::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.shares(), c.shares.unwrap());
    }
}
