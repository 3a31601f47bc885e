//! PID 1 in skiff's VM. The kernel starts the agent's binary as `/init`; this part makes the
//! initramfs a system (mounts, loopback, the data disk) and runs the engine as its *child*, so
//! that it can reap every orphan (container shims re-parent to PID 1) without stealing the exit
//! statuses the engine waits for itself. When the engine ends, on request or for good, it stops
//! what is left, flushes the data disk and ends the VM.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

use super::engines::{EnginePorts, Engines};
use super::layout::{unmount_under, STATE_DIR, TOKEN_FILE};
use super::netif;
use skiff_common::vsock;

/// The virtio-blk disk the host gives the VM for images and containers.
const DATA_DISK: &str = "/dev/vda";
/// The engine's own API socket inside the VM (for debugging from the console).
const GUEST_SOCKET: &str = "/run/skiff/skiff.sock";
/// A crashing engine is started again this many times before the VM gives up.
const MAX_RESTARTS: u32 = 5;

pub fn main() -> ! {
    if let Err(e) = run() {
        eprintln!("skiff-init: {e:#}");
    }
    // Whatever happened, end the VM rather than leave it hung: the host notices it exit.
    power_off()
}

fn run() -> Result<()> {
    // The kernel starts init with HOME and TERM only; the tools we run live here.
    std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    // The console is a serial line read from a log file: no colour codes in it.
    std::env::set_var("NO_COLOR", "1");
    leave_rootfs().context("moving off the initramfs root")?;
    mount_system().context("mounting /proc, /sys, /dev and cgroup2")?;
    netif::up("lo").context("bringing up lo")?;

    // Every port the host connects to is bound here, before any container can exist: a
    // container that held one first could answer the host in the engine's place. Bound
    // before the disks are mounted, so that the daemon's greeting crosses meanwhile.
    let init_listener = super::vsock::listen_blocking(vsock::INIT_PORT, 16)?;
    let engine_ports = EnginePorts::bind(vsock::API_PORT, vsock::FORWARD_PORT)
        .context("binding the engine's vsock ports")?;
    let ctl = Arc::new(Control::default());
    {
        let ctl = ctl.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve_control(init_listener, ctl) {
                eprintln!("skiff-init: control port: {e:#}");
            }
        });
    }

    network_up();
    prepare_data_disk().context("preparing the data disk")?;
    // Before any engine starts, so that each finds the list of the host's directories.
    super::shares::mount_all().context("mounting the host's shared directories")?;

    // The engine proves itself to the host with the token the daemon sends as soon as it sees
    // the init port listen; start it only once the token is here.
    let token = ctl.wait_for_token();
    write_token_file(&token).context("keeping the vsock token for the engines")?;
    ctl.ready.store(true, Ordering::SeqCst);

    super::reclaim::spawn();
    std::thread::spawn(|| {
        if let Err(e) = serve_echo() {
            eprintln!("skiff-init: echo port: {e:#}");
        }
    });

    let mut restarts = 0;
    let agent_pid = &ctl.agent_pid;
    agent_pid.store(start_agent(&engine_ports)?, Ordering::SeqCst);
    loop {
        let (pid, code) = wait_any()?;
        if pid != agent_pid.load(Ordering::SeqCst) {
            ctl.engines.reaped(pid);
            continue;
        }
        engine_ports.set_serving(false);
        if ctl.stopping.load(Ordering::SeqCst) || code == Some(0) {
            break;
        }
        restarts += 1;
        eprintln!("skiff-init: the engine ended ({code:?}); starting it again ({restarts})");
        if restarts > MAX_RESTARTS {
            stop_everything();
            bail!("the engine failed {restarts} times in a row; stopping the VM");
        }
        std::thread::sleep(Duration::from_secs(1));
        agent_pid.store(start_agent(&engine_ports)?, Ordering::SeqCst);
    }
    stop_everything();
    Ok(())
}

/// The kernel unpacks the initramfs into `rootfs`, the one mount with no parent, and
/// pivot_root (which every container start does) refuses to move away from it. Bind the
/// whole tree onto itself and make that the root: a mount with a parent, at no copying cost.
fn leave_rootfs() -> Result<()> {
    let new = Path::new("/.root");
    std::fs::create_dir_all(new)?;
    mount(
        Some("/"),
        new,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    std::env::set_current_dir(new)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
    nix::unistd::chroot(".")?;
    std::env::set_current_dir("/")?;
    Ok(())
}

fn mount_system() -> Result<()> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let list: [(&str, &str, &str, MsFlags, &str); 8] = [
        ("proc", "/proc", "proc", nosuid, ""),
        ("sysfs", "/sys", "sysfs", nosuid, ""),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755",
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "shm",
            "/dev/shm",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777",
        ),
        (
            "run",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755",
        ),
        (
            "tmp",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777",
        ),
        // favordynmods: moving a process between cgroups (every container start and exec)
        // then never waits for an RCU grace period; forks pay a little instead.
        (
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            nosuid,
            "nsdelegate,favordynmods",
        ),
    ];
    for (src, target, fstype, flags, data) in list {
        std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
        mount(Some(src), target, Some(fstype), flags, Some(data))
            .with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    // Containers get their controllers from the engine's cgroups below the root.
    let _ = std::fs::write(
        "/sys/fs/cgroup/cgroup.subtree_control",
        "+cpu +cpuset +io +memory +pids",
    );
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
    Ok(())
}

/// The VM's way to the host's network (virtio-net to the daemon's user-mode stack). Without
/// it the VM still works: pulls and published ports go over vsock.
fn network_up() {
    use skiff_common::vmnet;
    if !netif::exists(vmnet::IFACE) {
        eprintln!("skiff-init: no network interface; containers reach only each other");
        return;
    }
    let configured = netif::configure(
        vmnet::IFACE,
        vmnet::GUEST,
        vmnet::PREFIX_LEN,
        vmnet::GATEWAY,
    );
    if let Err(e) = configured {
        eprintln!("skiff-init: configuring {}: {e:#}", vmnet::IFACE);
        return;
    }
    // Engines give containers this resolver, and point host.docker.internal at the gateway.
    let _ = std::fs::write("/etc/resolv.conf", format!("nameserver {}\n", vmnet::DNS));
    // A receive window of at most 1 MiB, for this namespace and every container's (a new
    // network namespace copies these from the first). passt (Debian's 2023 version) sends
    // a guest as much as its window allows and, on duplicate ACKs, sends the whole window
    // again; with the 6 MiB default in flight, queued behind an emulated CPU, one hiccup
    // became a storm of duplicates (downloads fell from 40 to 0.1 MiB/s for tens of
    // seconds). 1 MiB fits in the daemon's buffers to passt and still fills this link.
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_rmem", "4096 131072 1048576");
    std::env::set_var(vmnet::HOST_GATEWAY_ENV, vmnet::GATEWAY.to_string());
}

/// Format the data disk on first boot (an ext4 journal makes a killed VM recover on the next
/// mount) and mount it as the engine's state dir. Without a disk the state lives in memory.
fn prepare_data_disk() -> Result<()> {
    std::fs::create_dir_all(STATE_DIR)?;
    if !Path::new(DATA_DISK).exists() {
        eprintln!(
            "skiff-init: no data disk at {DATA_DISK}; images and containers will not survive"
        );
        return Ok(());
    }
    if !has_ext4(DATA_DISK)? {
        eprintln!("skiff-init: formatting the data disk {DATA_DISK} (first boot)");
        let status = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "skiff-data", DATA_DISK])
            .status()
            .context("running mke2fs")?;
        if !status.success() {
            bail!("mke2fs {DATA_DISK} failed ({status})");
        }
    }
    // `discard`: blocks ext4 frees (a removed image or container) are discarded when the
    // journal commits, and QEMU (`discard=unmap`) punches them out of the sparse disk file,
    // so the host gets the space back, not only the guest.
    mount(
        Some(DATA_DISK),
        STATE_DIR,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        Some("discard"),
    )
    .with_context(|| format!("mounting {DATA_DISK} on {STATE_DIR}"))?;
    Ok(())
}

fn has_ext4(dev: &str) -> Result<bool> {
    let mut f = std::fs::File::open(dev).with_context(|| format!("opening {dev}"))?;
    let mut sb = [0u8; 1024 + 58];
    if f.read_exact(&mut sb).is_err() {
        return Ok(false);
    }
    // The superblock starts at byte 1024; its magic is at offset 56.
    Ok(sb[1024 + 56..1024 + 58] == [0x53, 0xEF])
}

fn start_agent(ports: &EnginePorts) -> Result<i32> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(["--root", STATE_DIR, "--socket", GUEST_SOCKET]);
    let child = ports.spawn(cmd).context("starting the engine")?;
    Ok(child.id() as i32)
}

fn write_token_file(token: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = Path::new(TOKEN_FILE);
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {TOKEN_FILE}"))?;
    f.write_all(token.as_bytes())?;
    Ok(())
}

/// Reap any child; returns its pid and exit code (None when a signal ended it).
fn wait_any() -> Result<(i32, Option<i32>)> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) => return Ok((pid.as_raw(), Some(code))),
            Ok(WaitStatus::Signaled(pid, _, _)) => return Ok((pid.as_raw(), None)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for children"),
        }
    }
}

/// What the init port changes: the VM's end, and the extra engines.
#[derive(Default)]
struct Control {
    stopping: AtomicBool,
    agent_pid: AtomicI32,
    engines: Engines,
    /// The machine daemon's token for this boot, taken once.
    token: Mutex<Option<String>>,
    token_given: Condvar,
    /// The state disk and the shares are mounted and the token kept: engines may start.
    ready: AtomicBool,
}

/// The host's requests to PID 1 on the init port, one line each, answered with one line
/// starting `ok` or `error`: `shutdown` (stop the VM), `engine NAME` (start that engine if
/// needed; answers its API port), `engine-rm NAME`, `engine-kill NAME` (SIGKILL, state
/// kept), `engines` (the running ones, each as `NAME=KIB` with its resident memory, or
/// `NAME` alone when that could not be read), `time NANOS` (the host's wall clock, since the
/// epoch: the guest's is set to it; answers how far behind it was, in nanoseconds), `hello
/// TOKEN` (this boot's token for guest-initiated connections, taken once).
///
/// Only the host reaches this port: the guest kernel has no vsock loopback transport and the
/// device drops whatever a guest addresses to anything but the host.
fn serve_control(listener: std::os::fd::OwnedFd, ctl: Arc<Control>) -> Result<()> {
    loop {
        let Ok(conn) = super::vsock::accept_blocking(&listener) else {
            continue;
        };
        let ctl = ctl.clone();
        // Removing an engine waits for it to stop: never hold up a shutdown behind that.
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(conn.take(256));
            let _ = reader.read_line(&mut line);
            let answer = ctl.handle(line.trim());
            let mut conn = reader.into_inner().into_inner();
            let _ = conn.write_all(format!("{answer}\n").as_bytes());
        });
    }
}

impl Control {
    fn token_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.token.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for the daemon's `hello`, saying so on the console now and then: a VM stuck here
    /// shows why in the log the host prints for a failed boot.
    fn wait_for_token(&self) -> String {
        let mut slot = self.token_slot();
        loop {
            if let Some(t) = slot.as_ref() {
                return t.clone();
            }
            let (next, waited) = self
                .token_given
                .wait_timeout(slot, Duration::from_secs(10))
                .unwrap_or_else(|e| e.into_inner());
            slot = next;
            if waited.timed_out() && slot.is_none() {
                eprintln!("skiff-init: still waiting for the machine daemon's token");
            }
        }
    }

    /// An engine asked for while PID 1 still mounts the disks would start on the bare
    /// initramfs, without the token; the boot is short, so a poll is enough.
    fn wait_until_ready(&self) {
        while !self.ready.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn take_token(&self, token: &str) -> Result<String> {
        if !skiff_common::auth::is_token(token) {
            bail!("not a token");
        }
        let mut slot = self.token_slot();
        match slot.as_deref() {
            // The daemon asks again when it missed the answer.
            Some(t) if t == token => {}
            Some(_) => bail!("this VM has its token already"),
            None => *slot = Some(token.to_string()),
        }
        self.token_given.notify_all();
        Ok(String::new())
    }

    fn handle(&self, request: &str) -> String {
        let (verb, arg) = request.split_once(' ').unwrap_or((request, ""));
        let result = match verb {
            "hello" => self.take_token(arg),
            "shutdown" => {
                self.stopping.store(true, Ordering::SeqCst);
                let pid = self.agent_pid.load(Ordering::SeqCst);
                if pid > 0 {
                    // SAFETY: signal delivery to our own child.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                Ok(String::new())
            }
            "engine" => {
                self.wait_until_ready();
                let mut words = arg.split(' ');
                let name = words.next().unwrap_or_default();
                let env: Vec<(String, String)> = words
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                self.engines.up(name, &env).map(|port| port.to_string())
            }
            "engine-rm" => self.engines.remove(arg).map(|()| String::new()),
            // A crash on purpose, for tests of what survives one.
            "engine-kill" => self
                .engines
                .stop(arg, libc::SIGKILL)
                .map(|()| String::new()),
            "time" => super::clock::sync_to(arg).map(|behind| behind.to_string()),
            "engines" => Ok(self
                .engines
                .list()
                .into_iter()
                .map(|(name, kib)| match kib {
                    Some(kib) => format!("{name}={kib}"),
                    None => name,
                })
                .collect::<Vec<_>>()
                .join(" ")),
            _ => Err(anyhow::anyhow!("unknown request {verb:?}")),
        };
        match result {
            Ok(s) if s.is_empty() => "ok".into(),
            Ok(s) => format!("ok {s}"),
            Err(e) => format!("error {e:#}"),
        }
    }
}

/// The device's own throughput, without the engine in the way: every byte comes back.
fn serve_echo() -> Result<()> {
    let listener = super::vsock::listen_blocking(vsock::ECHO_PORT, 16)?;
    loop {
        let Ok(conn) = super::vsock::accept_blocking(&listener) else {
            continue;
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            let mut conn = conn;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Stop every process, then flush and detach the data disk so that the next boot finds it
/// clean (the journal covers the case where this never runs: a killed VM).
fn stop_everything() {
    // SAFETY: kill(-1) signals every process but PID 1 itself.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && reap_nowait() {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    while reap_nowait() {
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::unistd::sync();
    // Container overlays keep the disk busy.
    unmount_under(STATE_DIR);
    nix::unistd::sync();
}

/// True while some child is still alive.
fn reap_nowait() -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// Without ACPI a power-off only halts the CPU; with `reboot=t` on the kernel command line a
/// restart is a triple fault, which QEMU (`-no-reboot`) and KVM VMMs see as the guest's end.
fn power_off() -> ! {
    nix::unistd::sync();
    // SAFETY: reboot(2) with a valid command; it does not return on success.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    // Only reached if reboot was refused; PID 1 must never return.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// True when the kernel ran this binary as the VM's `/init` (never so natively: there PID 1
/// is the host's init, and inside containers the binary is not PID 1's program).
pub fn is_vm_init() -> bool {
    std::process::id() == 1 && std::env::args_os().next().is_some_and(|a| a == "/init")
}
