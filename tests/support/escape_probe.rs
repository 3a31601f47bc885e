//! Escape probes for `tests/escape.rs`: built statically at test time, copied into a container
//! (skiff's or podman's) and run there. Each probe tries one thing a container breakout needs and
//! prints `name<TAB>allowed|denied<TAB>detail`.
//!
//! Every call is chosen to be harmless when it is allowed (as under `--privileged`): arguments
//! that pass the permission check and then fail validation (a bad fd, a bad magic number), or
//! that change nothing (`settimeofday(NULL, NULL)`). So "allowed" here means "got past the
//! permission check", and the errno that proves it is printed as the detail. "denied" means the
//! kernel or the seccomp filter refused: EPERM, EACCES, EROFS or ENOSYS.
//!
//! Standard library only (the tests build it with plain `rustc`), so raw syscalls go through
//! libc's variadic `syscall`, x86_64 numbers.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("the escape probe's syscall numbers are x86_64's");

use std::ffi::CString;
use std::io::Read;

extern "C" {
    fn syscall(num: i64, ...) -> i64;
}

const EPERM: i32 = 1;
const ESRCH: i32 = 3;
const EACCES: i32 = 13;
const EROFS: i32 = 30;
const ENOSYS: i32 = 38;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    let known = [
        (1, "EPERM"),
        (2, "ENOENT"),
        (3, "ESRCH"),
        (9, "EBADF"),
        (13, "EACCES"),
        (14, "EFAULT"),
        (16, "EBUSY"),
        (19, "ENODEV"),
        (22, "EINVAL"),
        (30, "EROFS"),
        (38, "ENOSYS"),
        (95, "EOPNOTSUPP"),
        (116, "ESTALE"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == e)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("errno {e}"))
}

fn denied(e: i32) -> bool {
    matches!(e, EPERM | EACCES | EROFS | ENOSYS)
}

fn report(name: &str, ret: i64) {
    if ret >= 0 {
        println!("{name}\tallowed\tok");
    } else {
        let e = errno();
        let verdict = if denied(e) { "denied" } else { "allowed" };
        println!("{name}\t{verdict}\t{}", errno_name(e));
    }
}

/// For paths: a file that is not there at all (ENOENT) is denied too, by its absence.
fn report_io(name: &str, r: std::io::Result<()>) {
    match r {
        Ok(()) => println!("{name}\tallowed\tok"),
        Err(e) => {
            let n = e.raw_os_error().unwrap_or(0);
            let verdict = if denied(n) || n == 2 { "denied" } else { "allowed" };
            println!("{name}\t{verdict}\t{}", errno_name(n));
        }
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in probe paths")
}

fn status_lines() {
    let mut status = String::new();
    if std::fs::File::open("/proc/self/status")
        .and_then(|mut f| f.read_to_string(&mut status))
        .is_err()
    {
        println!("status\tdenied\tunreadable");
        return;
    }
    for line in status.lines() {
        for key in [
            "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
        ] {
            if let Some(v) = line.strip_prefix(&format!("{key}:")) {
                println!("{key}\tinfo\t{}", v.trim());
            }
        }
    }
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap_or_default();
    if let Ok(n) = last.trim().parse::<u32>() {
        println!("CapFull\tinfo\t{:016x}", (1u64 << (n + 1)) - 1);
    }
}

/// PIDs this process can signal or trace although its /proc does not have them: any such PID
/// is a process outside the container's PID namespace. Only PIDs that answer `kill(pid, 0)` and
/// have no /proc entry (thread IDs have one, though unlisted) are ever given to ptrace, so run
/// on a host by mistake the probe attaches to nothing.
fn outside_pids() {
    let visible = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    let (mut killable, mut traceable) = (0, 0);
    for pid in 1..=65536i64 {
        // kill(pid, 0) checks existence and permission without sending anything.
        let answered = unsafe { syscall(62, pid, 0i64) } == 0 || errno() != ESRCH;
        if !answered || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        killable += 1;
        // PTRACE_ATTACH, and PTRACE_DETACH at once if it worked.
        if unsafe { syscall(101, 16i64, pid, 0i64, 0i64) } == 0 {
            traceable += 1;
            unsafe { syscall(101, 17i64, pid, 0i64, 0i64) };
        } else if errno() != ESRCH {
            traceable += 1;
        }
    }
    println!("visible-pids\tinfo\t{visible}");
    let verdict = |n| if n == 0 { "denied" } else { "allowed" };
    println!("kill-outside\t{}\t{killable}", verdict(killable));
    println!("ptrace-outside\t{}\t{traceable}", verdict(traceable));
}

fn write_file(path: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    // Nothing is written: opening for write is what a breakout needs and what must fail.
    f.flush()
}

fn kcore() {
    match std::fs::File::open("/proc/kcore") {
        Err(e) => report_io("read-kcore", Err(e)),
        Ok(mut f) => {
            let mut b = [0u8; 1];
            match f.read(&mut b) {
                Ok(0) => println!("read-kcore\tdenied\tmasked"),
                Ok(_) => println!("read-kcore\tallowed\tok"),
                Err(e) => report_io("read-kcore", Err(e)),
            }
        }
    }
}

fn raw_device() {
    let node = c("/tmp/probe-disk");
    // mknodat(AT_FDCWD, path, S_IFBLK | 0600, makedev(8, 0)): the first SCSI disk.
    let made = unsafe { syscall(259, -100i64, node.as_ptr(), 0o060600i64, 8i64 << 8) };
    report("mknod-block", made);
    if made == 0 {
        report_io(
            "open-block",
            std::fs::File::open("/tmp/probe-disk").map(|_| ()),
        );
        let _ = std::fs::remove_file("/tmp/probe-disk");
    } else {
        println!("open-block\tdenied\tno node");
    }
}

fn main() {
    let host_path = std::env::args().nth(1);
    status_lines();
    outside_pids();
    if let Some(p) = host_path {
        report_io("host-path", std::fs::metadata(&p).map(|_| ()));
    }

    let mnt = c("/tmp/probe-mnt");
    let _ = std::fs::create_dir_all("/tmp/probe-mnt");
    let (none, tmpfs) = (c("none"), c("tmpfs"));
    let mounted = unsafe { syscall(165, none.as_ptr(), mnt.as_ptr(), tmpfs.as_ptr(), 0i64, 0i64) };
    report("mount", mounted);
    if mounted == 0 {
        unsafe { syscall(166, mnt.as_ptr(), 0i64) };
    }
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create = 0)
    report("keyctl", unsafe { syscall(250, 0i64, -3i64, 0i64) });
    // finit_module(-1, "", 0): the capability check comes before the fd is looked at.
    let empty = c("");
    report("finit_module", unsafe {
        syscall(313, -1i64, empty.as_ptr(), 0i64)
    });
    report("init_module", unsafe {
        syscall(175, 0i64, 0i64, empty.as_ptr())
    });
    // bpf(BPF_MAP_CREATE, NULL, 0)
    report("bpf", unsafe { syscall(321, 0i64, 0i64, 0i64) });
    // perf_event_open(NULL, 0, -1, -1, 0)
    report("perf_event_open", unsafe {
        syscall(298, 0i64, 0i64, -1i64, -1i64, 0i64)
    });
    // settimeofday(NULL, NULL) changes nothing but still needs CAP_SYS_TIME.
    report("settimeofday", unsafe { syscall(164, 0i64, 0i64) });
    // reboot with a wrong magic number: refused for want of CAP_SYS_BOOT before the magic
    // is checked, EINVAL past it.
    report("reboot", unsafe { syscall(169, 0i64, 0i64, 0i64, 0i64) });
    // swapon of a path that does not exist: the capability check comes first.
    let nowhere = c("/nonexistent-swap");
    report("swapon", unsafe { syscall(167, nowhere.as_ptr(), 0i64) });
    // open_by_handle_at, the call of the "shocker" breakout, with an empty handle.
    let root = std::fs::File::open("/").map(|f| {
        use std::os::fd::IntoRawFd;
        f.into_raw_fd() as i64
    });
    let handle = [8u32, 1, 0, 0];
    report("open_by_handle_at", unsafe {
        syscall(304, root.unwrap_or(-1), handle.as_ptr(), 0i64)
    });
    // syslog(SYSLOG_ACTION_SIZE_BUFFER)
    report("syslog", unsafe { syscall(103, 10i64, 0i64, 0i64) });
    // ioperm(0x80, 1, 1): the POST diagnostic port, never touched.
    report("ioperm", unsafe { syscall(173, 0x80i64, 1i64, 1i64) });
    // socket(AF_PACKET, SOCK_RAW, 0)
    let raw = unsafe { syscall(41, 17i64, 3i64, 0i64) };
    report("packet-socket", raw);
    report("userfaultfd", unsafe { syscall(323, 0i64) });
    raw_device();
    report_io(
        "write-sysrq-trigger",
        write_file("/proc/sysrq-trigger"),
    );
    report_io(
        "write-core-pattern",
        write_file("/proc/sys/kernel/core_pattern"),
    );
    report_io(
        "mkdir-sys-cgroup",
        std::fs::create_dir("/sys/fs/cgroup/probe-escape").and_then(|()| {
            std::fs::remove_dir("/sys/fs/cgroup/probe-escape")
        }),
    );
    // Writable by root on a read-write /sys, and present on every kernel.
    report_io("write-sys", write_file("/sys/class/net/lo/mtu"));
    kcore();
    // Last: when allowed, the process is in a new user namespace afterwards.
    report("unshare-user", unsafe { syscall(272, 0x1000_0000i64) });
}
