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
        Ok(())
    }
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
    "build it with scripts/build-kernel.sh and pass its vmlinux with --kernel";
const INITRAMFS_HINT: &str =
    "build it with scripts/build-initramfs.sh and pass the image with --initramfs";

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
}
