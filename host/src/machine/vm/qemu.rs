//! Starting the VM with QEMU: the accelerator this host offers, and the command line of a
//! microvm with our kernel, our image, our vsock device (through vhost-user) and the data disk.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::config::MachineConfig;
use crate::SkiffError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Hvf,
    Whpx,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Hvf => "hvf",
            Accel::Whpx => "whpx",
            Accel::Tcg => "tcg",
        }
    }

    /// What this host offers, best first. `SKIFF_ACCEL` overrides (for tests and for hosts
    /// where detection guesses wrong).
    pub fn detect() -> Result<Accel> {
        if let Ok(v) = std::env::var("SKIFF_ACCEL") {
            return match v.as_str() {
                "kvm" => Ok(Accel::Kvm),
                "hvf" => Ok(Accel::Hvf),
                "whpx" => Ok(Accel::Whpx),
                "tcg" => Ok(Accel::Tcg),
                other => Err(SkiffError::new(format!(
                    "SKIFF_ACCEL={other} is not an accelerator; use kvm, hvf, whpx or tcg"
                ))
                .into()),
            };
        }
        Ok(if cfg!(target_os = "macos") {
            Accel::Hvf
        } else if cfg!(target_os = "windows") {
            Accel::Whpx
        } else if kvm_runs_standard_guests() {
            Accel::Kvm
        } else {
            Accel::Tcg
        })
    }
}

/// `/dev/kvm` is not enough: under PVM (software virtualization, module `kvm_pvm`) it runs only
/// PVM-patched guest kernels, and ours dies in it. Hardware KVM shows as kvm_intel/kvm_amd.
fn kvm_runs_standard_guests() -> bool {
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    rw && !Path::new("/sys/module/kvm_pvm").exists()
        && (Path::new("/sys/module/kvm_intel").exists()
            || Path::new("/sys/module/kvm_amd").exists())
}

pub fn binary() -> PathBuf {
    std::env::var_os("SKIFF_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// The files of one running machine that QEMU needs.
pub struct Paths<'a> {
    pub vhost_socket: &'a Path,
    pub disk: &'a Path,
    pub serial_log: &'a Path,
    /// Where the daemon relays the virtio-net frames to the user-mode stack.
    pub net_socket: &'a Path,
    /// The shared host directories, each served by its virtiofsd.
    pub shares: &'a [super::virtiofs::Device],
    /// The engine's settings (`KEY=VALUE`, `crate::machine::engine_env`) for the machine's
    /// engines: on the kernel command line, which hands words with `=` it does not know to
    /// PID 1 as its environment; the engines PID 1 starts inherit it.
    pub engine_env: &'a [String],
}

/// The guest's kernel command line. `reboot=t` makes the agent's restart a triple fault, which
/// ends QEMU at once (`-no-reboot`); without ACPI a power-off would only halt the CPU.
/// `tsc=reliable`: under emulation the kernel's TSC synchronisation check fails (the vCPUs
/// are host threads) and falls back to jiffies, and with a jiffies clock the tick never stops
/// when the guest idles: 100 wake-ups a second per vCPU, each one costly under TCG (3 % of a
/// host core for an idle machine). QEMU's TSC is the host's, monotonic across vCPUs.
pub const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet tsc=reliable";

pub fn args(cfg: &MachineConfig, accel: Accel, p: &Paths) -> Vec<String> {
    let mem = cfg.memory_mib;
    let cpu = match accel {
        Accel::Tcg => "max",
        _ => "host",
    };
    let mut a: Vec<String> = vec![
        "-M".into(),
        // Devices on virtio-mmio are announced on the command line only without ACPI.
        "microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi=off,memory-backend=mem".into(),
        // vhost-user needs guest RAM it can map: a shared memfd.
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        "-accel".into(),
        // TCG: one translation thread per vCPU (the default on x86 hosts, said for clarity).
        match accel {
            Accel::Tcg => "tcg,thread=multi".into(),
            other => other.name().into(),
        },
        "-cpu".into(),
        cpu.into(),
        "-m".into(),
        format!("{mem}M"),
        "-smp".into(),
        cfg.cpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-no-reboot".into(),
        "-serial".into(),
        format!("file:{}", p.serial_log.display()),
        "-kernel".into(),
        cfg.kernel.display().to_string(),
        "-initrd".into(),
        cfg.initramfs.display().to_string(),
        "-append".into(),
        cmdline(p.shares, p.engine_env),
        "-chardev".into(),
        format!("socket,id=vsock,path={}", p.vhost_socket.display()),
        "-device".into(),
        "vhost-user-vsock-device,chardev=vsock".into(),
        // writeback cache with the guest's flushes passed through: fsync in the guest is
        // an fdatasync on the host, so a killed QEMU loses nothing the guest committed.
        "-drive".into(),
        format!(
            "id=data,file={},format=raw,if=none,cache=writeback,discard=unmap",
            p.disk.display()
        ),
        "-device".into(),
        "virtio-blk-device,drive=data".into(),
        "-object".into(),
        "rng-random,id=rng,filename=/dev/urandom".into(),
        "-device".into(),
        "virtio-rng-device,rng=rng".into(),
        // Blocks the guest frees are reported and given back to the host (QEMU discards them
        // from the shared RAM); PID 1 frees the page cache once the guest idles
        // (`vm/reclaim.rs` in the agent).
        "-device".into(),
        "virtio-balloon-device,free-page-reporting=on".into(),
    ];
    a.extend(super::net::qemu_args(p.net_socket));
    // Guest RAM is a shared memfd already (for vhost-user), which virtiofsd needs too.
    for (i, d) in p.shares.iter().enumerate() {
        a.extend([
            "-chardev".into(),
            format!("socket,id=vfs{i},path={}", d.socket.display()),
            "-device".into(),
            format!("vhost-user-fs-device,chardev=vfs{i},tag={}", d.offer.tag),
        ]);
    }
    a
}

/// The kernel command line, with the shares PID 1 is to mount and the engines' settings.
fn cmdline(shares: &[super::virtiofs::Device], engine_env: &[String]) -> String {
    let offers: Vec<_> = shares.iter().map(|d| d.offer.clone()).collect();
    let param = skiff_common::shares::Offer::encode(&offers);
    let mut line = CMDLINE.to_string();
    for w in std::iter::once(&param).chain(engine_env) {
        if !w.is_empty() {
            line.push(' ');
            line.push_str(w);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_the_devices_and_memory() {
        let cfg = MachineConfig {
            name: "default".into(),
            cpus: 2,
            memory_mib: 1024,
            disk_gib: 8,
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/initramfs".into(),
            created: String::new(),
            shares: None,
        };
        let p = Paths {
            vhost_socket: Path::new("/m/vhost.sock"),
            disk: Path::new("/m/disk.raw"),
            serial_log: Path::new("/m/serial.log"),
            net_socket: Path::new("/m/net.sock"),
            shares: &[],
            engine_env: &[],
        };
        let a = args(&cfg, Accel::Tcg, &p).join(" ");
        assert!(
            a.contains("-accel tcg,thread=multi -cpu max -m 1024M -smp 2"),
            "{a}"
        );
        assert!(
            a.contains("memory-backend-memfd,id=mem,size=1024M,share=on"),
            "{a}"
        );
        assert!(a.contains("socket,id=vsock,path=/m/vhost.sock"), "{a}");
        assert!(a.contains("file=/m/disk.raw,format=raw"), "{a}");
        assert!(a.contains("-kernel /k/vmlinux -initrd /k/initramfs"), "{a}");
        let k = args(&cfg, Accel::Kvm, &p).join(" ");
        assert!(k.contains("-accel kvm -cpu host"), "{k}");
        assert!(!a.contains("vhost-user-fs"), "{a}");
        assert!(a.contains(&format!("-append {CMDLINE} -chardev")), "{a}");
    }

    #[test]
    fn each_share_is_a_device_and_a_word_of_the_command_line_as_are_the_engine_settings() {
        let cfg = MachineConfig {
            name: "default".into(),
            cpus: 1,
            memory_mib: 512,
            disk_gib: 8,
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/initramfs".into(),
            created: String::new(),
            shares: None,
        };
        let dev = |i: usize, host: &str, readonly| super::super::virtiofs::Device {
            socket: format!("/m/vfs-{i}.sock").into(),
            offer: skiff_common::shares::Offer {
                tag: skiff_common::shares::tag(i),
                host: host.into(),
                readonly,
            },
        };
        let shares = [dev(0, "/root", false), dev(2, "/srv", true)];
        let env = ["SKIFF_REGISTRY_MIRRORS=http://127.0.0.1:5000".to_string()];
        let p = Paths {
            vhost_socket: Path::new("/m/vhost.sock"),
            disk: Path::new("/m/disk.raw"),
            serial_log: Path::new("/m/serial.log"),
            net_socket: Path::new("/m/net.sock"),
            shares: &shares,
            engine_env: &env,
        };
        let a = args(&cfg, Accel::Tcg, &p);
        let joined = a.join(" ");
        assert!(
            joined.contains("-chardev socket,id=vfs0,path=/m/vfs-0.sock -device vhost-user-fs-device,chardev=vfs0,tag=skiffshare0"),
            "{joined}"
        );
        assert!(
            joined.contains("-chardev socket,id=vfs1,path=/m/vfs-2.sock -device vhost-user-fs-device,chardev=vfs1,tag=skiffshare2"),
            "{joined}"
        );
        let append = a.iter().position(|w| w == "-append").unwrap();
        assert_eq!(
            a[append + 1],
            format!("{CMDLINE} skiff.shares=skiffshare0:rw:2f726f6f74,skiffshare2:ro:2f737276 SKIFF_REGISTRY_MIRRORS=http://127.0.0.1:5000")
        );
    }
}
