//! Docker's default confinement for a container: its capability set, `--cap-add`/`--cap-drop`,
//! the default seccomp profile, and the masked and read-only `/proc` and `/sys` paths.
//!
//! The data mirrors what dockerd applies (moby `oci/caps`, `oci/defaults.go` and the
//! seccomp profile in moby/profiles), so a workload that runs under docker runs here with
//! the same permissions, and one docker refuses is refused here too.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Docker's default capabilities (`CapEff` 0x00000000a80425fb).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// Capability names indexed by their number (linux/capability.h).
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("capability {0} is not available: skiff itself does not hold it on this host")]
    NotHeld(String),
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    #[error("capability not supported by your kernel or not available in the current environment: {0:?}")]
    UnsupportedCapability(String),
}

fn cap_number(name: &str) -> Option<usize> {
    CAP_NAMES.iter().position(|n| *n == name)
}

/// The highest capability number the running kernel knows, capped at the ones we can name.
fn last_cap() -> usize {
    let known = CAP_NAMES.len() - 1;
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        // Without /proc, assume a kernel as new as our table, as containerd does; the
        // runtime still refuses what the kernel lacks.
        .map_or(known, |n| n.min(known))
}

/// Every capability the running kernel knows, in number order: what `--privileged` gets.
pub fn all_caps() -> Vec<String> {
    CAP_NAMES[..=last_cap()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The capabilities this process may hand on (its bounding set, from /proc/self/status);
/// all bits when that cannot be read.
fn held_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// What docker means by a capability given on the command line.
#[derive(PartialEq)]
enum CapArg {
    All,
    Cap(usize),
}

/// Docker accepts `chown`, `CAP_CHOWN`, `Cap_Chown`…, and `ALL` (but not `CAP_ALL`).
fn normalize(args: &[String], last: usize) -> Result<Vec<CapArg>, SecurityError> {
    args.iter()
        .map(|arg| {
            let upper = arg.to_uppercase();
            if upper == "ALL" {
                return Ok(CapArg::All);
            }
            let name = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            match cap_number(&name) {
                None => Err(SecurityError::UnknownCapability(name)),
                Some(n) if n > last => Err(SecurityError::UnsupportedCapability(name)),
                Some(n) => Ok(CapArg::Cap(n)),
            }
        })
        .collect()
}

/// The container's capability set from `--cap-add`, `--cap-drop` and `--privileged`, with
/// docker's precedence: privileged wins outright (even over unknown names, as in docker);
/// `ALL` in cap-add means everything but cap-drop; `ALL` in cap-drop means only cap-add;
/// otherwise the defaults minus cap-drop plus cap-add. Sorted by capability number.
pub fn resolve_caps(
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, SecurityError> {
    let last = last_cap();
    let held = held_caps();
    if privileged {
        // Everything we have: a capability outside our own bounding set cannot be granted.
        return Ok(all_caps()
            .into_iter()
            .enumerate()
            .filter(|(n, _)| held & (1u64 << n) != 0)
            .map(|(_, c)| c)
            .collect());
    }
    // Docker validates the drops first, so with two bad lists the drop is reported.
    let drops = normalize(cap_drop, last)?;
    let adds = normalize(cap_add, last)?;
    let dropped = |n: usize| drops.contains(&CapArg::Cap(n));

    let mut set = [false; CAP_NAMES.len()];
    if adds.contains(&CapArg::All) {
        for (n, on) in set.iter_mut().enumerate().take(last + 1) {
            *on = !dropped(n) && held & (1u64 << n) != 0;
        }
    } else {
        if !drops.contains(&CapArg::All) {
            for n in DEFAULT_CAPS.iter().filter_map(|c| cap_number(c)) {
                set[n] = !dropped(n);
            }
        }
        for arg in &adds {
            if let CapArg::Cap(n) = arg {
                if held & (1u64 << n) == 0 {
                    return Err(SecurityError::NotHeld(CAP_NAMES[*n].to_string()));
                }
                set[*n] = true;
            }
        }
    }
    Ok(set
        .iter()
        .zip(CAP_NAMES)
        .filter(|(on, _)| **on)
        .map(|(_, name)| name.to_string())
        .collect())
}

/// Paths docker hides from the container (bind-mounted over with /dev/null or an empty
/// read-only tmpfs): they leak host hardware, kernel memory, keys or timing information.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths docker remounts read-only: writable, they would reconfigure the shared kernel.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// [`MASKED_PATHS`] plus each CPU's `thermal_throttle` directory, which docker also masks
/// since its counters leak host activity to a container (GHSA-6fw5-f8r9-fgfm).
pub fn masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
    let mut cpus: Vec<u32> = std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    for cpu in cpus {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
        if std::path::Path::new(&path).exists() {
            paths.push(path);
        }
    }
    paths
}

// ---------------------------------------------------------------------------------------
// The default seccomp profile.
//
// Everything not allowed below fails with EPERM. The allowlist is docker's, regrouped by
// purpose; names that do not exist on the running architecture are harmless (libseccomp
// resolves them per architecture and skips the ones an architecture lacks).
// ---------------------------------------------------------------------------------------

/// Paths, inodes, directories and their metadata. `mknod` is here because the kernel
/// itself demands CAP_MKNOD for devices; `name_to_handle_at` only encodes a handle (opening
/// one needs CAP_DAC_READ_SEARCH below).
const FILES: &[&str] = &[
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "creat",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "lchown",
    "lchown32",
    "link",
    "linkat",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "readlink",
    "readlinkat",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
];

/// Extended attributes; the kernel applies its own capability checks per namespace.
const XATTRS: &[&str] = &[
    "fgetxattr",
    "flistxattr",
    "fremovexattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "removexattr",
    "setxattr",
];

/// Reading, writing and managing open file descriptors and pipes.
const FD_IO: &[&str] = &[
    "_llseek",
    "close",
    "close_range",
    "copy_file_range",
    "dup",
    "dup2",
    "dup3",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fsync",
    "ioctl",
    "lseek",
    "pipe",
    "pipe2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readv",
    "sendfile",
    "sendfile64",
    "splice",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "vmsplice",
    "write",
    "writev",
];

/// Waiting for events: poll/select/epoll, eventfd, signalfd, timerfd, inotify, AIO.
/// `fanotify_mark` is harmless alone: creating the group (`fanotify_init`) needs
/// CAP_SYS_ADMIN.
const EVENTS: &[&str] = &[
    "_newselect",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
];

/// The process's own address space. NUMA policy calls are not here: they can hurt other
/// tenants' memory placement, so they need CAP_SYS_NICE.
const MEMORY: &[&str] = &[
    "brk",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
];

/// Process and thread lifecycle, limits and self-inspection. Plain `clone` is missing on
/// purpose: it is allowed below only without namespace flags. `ptrace` and
/// `process_vm_*` are here because since Linux 4.8 seccomp can no longer be bypassed
/// through ptrace, and the kernel still confines them to processes the caller may trace.
const PROCESSES: &[&str] = &[
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_time64",
    "futex_waitv",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "restart_syscall",
    "rseq",
    "seccomp",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setpgid",
    "setpriority",
    "setrlimit",
    "setsid",
    "sysinfo",
    "times",
    "ugetrlimit",
    "uname",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
];

/// Signals.
const SIGNALS: &[&str] = &[
    "alarm",
    "kill",
    "pause",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "tgkill",
    "tkill",
];

/// Reading clocks, sleeping, timers. `adjtimex`/`clock_adjtime` are here because reading
/// through them is common (ntp status) and setting still needs CAP_SYS_TIME in the kernel.
const TIME: &[&str] = &[
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
];

/// User and group ids; changing them is governed by CAP_SETUID/CAP_SETGID.
const CREDENTIALS: &[&str] = &[
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getuid",
    "getuid32",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
];

/// CPU and I/O scheduling of the container's own tasks.
const SCHEDULING: &[&str] = &[
    "ioprio_get",
    "ioprio_set",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
];

/// Sockets, except creating one (`socket` is filtered by address family below). 32-bit
/// x86 reaches everything through `socketcall`, which cannot be filtered by family.
const SOCKETS: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
];

/// System V and POSIX IPC; the container has its own IPC namespace.
const IPC: &[&str] = &[
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
];

/// Recent syscalls (Linux 6.5 to 6.13) docker allows. libcontainer skips, with a warning,
/// every name its libseccomp cannot resolve, and a skipped syscall falls to the default
/// action: EPERM. runc answers ENOSYS for syscalls newer than its libseccomp, which lets
/// glibc fall back (`fchmodat2` to `fchmodat`); libcontainer has no such stub, so these
/// lists say which libseccomp the guest needs.
///
/// Known to libseccomp 2.5.5, and to Debian 12's 2.5.4-1+deb12u1, which backports them.
const RECENT_LIBSECCOMP_2_5_5: &[&str] = &[
    "cachestat",
    "fchmodat2",
    "futex_requeue",
    "futex_wait",
    "futex_wake",
    "map_shadow_stack",
];

/// Known only from libseccomp 2.6: refused with EPERM on Debian 12. None is used by
/// glibc or musl as a must-have; callers probe and fall back on any error.
const RECENT_LIBSECCOMP_2_6: &[&str] = &[
    "getxattrat",
    "listmount",
    "listxattrat",
    "mseal",
    "removexattrat",
    "riscv_hwprobe",
    "setxattrat",
    "statmount",
    "uretprobe",
];

/// Always allowed.
const ALWAYS: &[&[&str]] = &[
    FILES,
    XATTRS,
    FD_IO,
    EVENTS,
    MEMORY,
    PROCESSES,
    SIGNALS,
    TIME,
    CREDENTIALS,
    SCHEDULING,
    SOCKETS,
    IPC,
    RECENT_LIBSECCOMP_2_5_5,
    RECENT_LIBSECCOMP_2_6,
];

/// Architecture-specific helpers, keyed by the engine's own architecture, as docker does.
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "sync_file_range2",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE_ARCH: &[&str] = &[];

/// The native architecture plus the compat ones its kernel can run, so a 32-bit binary
/// gets the same filter instead of a bypass.
///
/// docker lists x32 on every x86_64 host; skiff lists it only where the kernel runs x32
/// syscalls (`x32_abi`). Elsewhere (this project's guest kernel, Debian's, most distributions')
/// an x32 syscall can only fail, and the filter kills it instead of letting the kernel answer
/// ENOSYS. The x32 rules are worth leaving out: libseccomp compiles the profile in every
/// container's init, and they are more than half of that work (20 against 10 ms for crun
/// with this profile, 13 ms of a `run --rm` here; BENCHMARKS.md).
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        let mut arches = vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86];
        if x32_abi() {
            arches.push(Arch::ScmpArchX32);
        }
        arches
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        Vec::new()
    }
}

/// Whether this kernel runs x32 syscalls, asked once: a child process makes `getpid` with the
/// x32 bit set. A kernel without the x32 ABI answers ENOSYS; a seccomp filter over the agent
/// (which its containers would inherit) may kill the child instead. Only the first means
/// "runs them"; in a child, so that no answer can harm the agent.
fn x32_abi() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return false;
        }
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        // SAFETY: the child only makes a raw syscall and _exits, both async-signal-safe, so
        // forking a threaded process is sound here.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: getpid takes no arguments; a refused number returns -1 (ENOSYS).
                let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(if r > 0 { 0 } else { 1 }) }
            }
            -1 => false,
            child => {
                let mut status = 0;
                // SAFETY: waiting for our own child, with a valid pointer for its status.
                let waited = unsafe { libc::waitpid(child, &mut status, 0) };
                waited == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            }
        }
    })
}

/// Syscalls that are only as dangerous as a capability the container already holds.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    // Opening by handle bypasses path-based permission checks entirely.
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    // Mounts, namespaces, new-mount-API, BPF, perf, quotas, host and domain names.
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            // libseccomp 2.6, like RECENT_LIBSECCOMP_2_6.
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    // `kexec_load`/`kexec_file_load` stay refused even then: they replace the host kernel.
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "finit_module", "init_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    // Peeking into other processes' files and memory.
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_TIME",
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality(2)` values a container may set: Linux, the 32-bit-compat and
/// uname26 variants, and 0xffffffff which only queries. Others (e.g. ADDR_NO_RANDOMIZE)
/// would weaken the container's own exploit mitigations.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// AF_ALG exposes the kernel's crypto API and AF_VSOCK the hypervisor's sockets (in skiff's
/// VM, the way to the host's machine daemon); both are large attack surfaces few containers
/// need. Every other family up to `AF_MAX` is allowed.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;
/// One past the highest address family Linux knows (AF_MCTP is 45 in 6.1); the kernel answers
/// EAFNOSUPPORT for anything above, so refusing those here changes only the errno.
const AF_MAX: u64 = 46;
/// The kernel reads an `int` argument from the low half of its 64-bit register, while seccomp
/// compares all 64 bits: `socket(0x1_0000_0028, …)` is no match for "== 40" and yet creates an
/// AF_VSOCK socket. Every rule that *allows* an `int` argument therefore compares only its low
/// 32 bits (a masked equality). Rules that compare whole registers are safe only where an
/// upper-bit encoding fails closed (an exact match on an allow-list, as for `personality`) or
/// where the kernel reads all 64 bits (clone's flags are an `unsigned long`).
const LOW_32_BITS: u64 = 0xffff_ffff;

/// The namespace flags of clone(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID and
/// NEWNET. Creating namespaces is reserved to CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn rule(names: &[&str], action: LinuxSeccompAction, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|s| s.to_string()).collect());
    rule.set_action(action);
    if !args.is_empty() {
        rule.set_args(Some(args));
    }
    rule
}

fn arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    let builder = match value_two {
        Some(v) => builder.value_two(v),
        None => builder,
    };
    // LinuxSeccompArg has no setters; its builder fails only on a missing field, and every
    // field has a default.
    builder
        .build()
        .expect("LinuxSeccompArg fields all have defaults")
}

/// Docker's default seccomp profile for a container whose bounding set is `caps`
/// ("CAP_X" names). Docker drops seccomp altogether for `--privileged`; that choice is the
/// caller's.
pub fn default_seccomp(caps: &[String]) -> LinuxSeccomp {
    let has = |cap: &str| caps.iter().any(|c| c == cap);
    let allow = LinuxSeccompAction::ScmpActAllow;

    let mut allowed: Vec<&str> = Vec::new();
    let granted = BY_CAPABILITY
        .iter()
        .filter(|(cap, _)| has(cap))
        .map(|(_, names)| *names);
    for name in ALWAYS
        .iter()
        .copied()
        .chain([NATIVE_ARCH])
        .chain(granted)
        .flatten()
    {
        // Several capabilities unlock the same syscall (syslog, bpf…); one rule suffices.
        if !allowed.contains(name) {
            allowed.push(*name);
        }
    }
    let mut rules = vec![rule(&allowed, allow, Vec::new())];

    use LinuxSeccompOperator::ScmpCmpEq;
    for family in allowed_socket_families() {
        rules.push(rule(&["socket"], allow, vec![low_32_bits_equal(0, family)]));
    }
    for &persona in PERSONALITIES {
        rules.push(rule(
            &["personality"],
            allow,
            vec![arg(0, ScmpCmpEq, persona, None)],
        ));
    }
    if !has("CAP_SYS_ADMIN") {
        // Threads and fork, but no new namespaces. The flags are argument 0 on every
        // architecture we build for (s390 is the exception docker handles).
        rules.push(rule(
            &["clone"],
            allow,
            vec![clone_flags_without_namespaces()],
        ));
        // clone3 passes its flags in memory, out of seccomp's reach, so it is refused;
        // with ENOSYS, glibc falls back to clone, which the rule above can inspect.
        let mut clone3 = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno, Vec::new());
        clone3.set_errno_ret(Some(ENOSYS));
        rules.push(clone3);
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    let arches = architectures();
    if !arches.is_empty() {
        profile.set_architectures(Some(arches));
    }
    profile.set_syscalls(Some(rules));
    profile
}

/// The families `socket(2)` may create: all but AF_ALG and AF_VSOCK.
fn allowed_socket_families() -> impl Iterator<Item = u64> {
    (0..AF_MAX).filter(|f| *f != AF_ALG && *f != AF_VSOCK)
}

/// `arg[index] & 0xffffffff == value`, in libcontainer 0.7's operand order (see
/// `clone_flags_without_namespaces`): `value` carries the expected result, `value_two` the mask.
fn low_32_bits_equal(index: usize, value: u64) -> LinuxSeccompArg {
    arg(
        index,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
        value,
        Some(LOW_32_BITS),
    )
}

/// `flags & CLONE_NAMESPACE_FLAGS == 0`, written for libcontainer 0.7 rather than for the
/// OCI spec.
///
/// The spec (and runc, and docker's profile) put the mask in `value` and the expected
/// result in `valueTwo`. libcontainer 0.7 hands them to libseccomp the other way round, so
/// docker's rule becomes "flags & 0 == 0x7E020000", which libseccomp turns into an
/// unconditional allow: any container could create namespaces. Swapping the two here
/// yields the intended filter; `kernel_applies_the_default_profile` checks the result in
/// the kernel, so a libcontainer that fixes the order fails that test instead of silently
/// reopening the hole.
fn clone_flags_without_namespaces() -> LinuxSeccompArg {
    arg(
        0,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
        0,
        Some(CLONE_NAMESPACE_FLAGS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn mask(caps: &[String]) -> u64 {
        caps.iter()
            .map(|c| 1u64 << cap_number(c).unwrap())
            .fold(0, |a, b| a | b)
    }

    #[test]
    fn default_caps_match_dockers_capeff() {
        assert_eq!(DEFAULT_CAPS.len(), 14);
        assert_eq!(mask(&strings(DEFAULT_CAPS)), 0xa804_25fb);
        assert_eq!(mask(&resolve_caps(&[], &[], false).unwrap()), 0xa804_25fb);
    }

    #[test]
    fn cap_table_is_numbered_like_the_kernel() {
        assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("CAP_AUDIT_READ"), Some(37));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        let all = all_caps();
        assert_eq!(all[0], "CAP_CHOWN");
        assert!(all.len() <= CAP_NAMES.len());
        let kernel: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(all.len(), (kernel + 1).min(CAP_NAMES.len()));
    }

    #[test]
    fn add_and_drop_accept_docker_spellings() {
        let caps = resolve_caps(
            &strings(&["sys_admin", "Cap_Net_Admin"]),
            &strings(&["CHOWN", "cap_mknod"]),
            false,
        )
        .unwrap();
        let want = (mask(&strings(DEFAULT_CAPS)) & !(1 << 0) & !(1 << 27)) | (1 << 21) | (1 << 12);
        assert_eq!(mask(&caps), want);
        // Sorted by number, no duplicates.
        assert_eq!(caps[0], "CAP_DAC_OVERRIDE");
        let again = resolve_caps(&strings(&["KILL", "kill"]), &[], false).unwrap();
        assert_eq!(again, resolve_caps(&[], &[], false).unwrap());
    }

    /// What `--privileged` and `ALL` can give here: every cap the test process itself holds.
    fn grantable() -> Vec<String> {
        let held = held_caps();
        all_caps()
            .into_iter()
            .enumerate()
            .filter(|(n, _)| held & (1u64 << n) != 0)
            .map(|(_, c)| c)
            .collect()
    }

    #[test]
    fn all_in_add_or_drop() {
        let all = grantable();
        assert_eq!(resolve_caps(&strings(&["ALL"]), &[], false).unwrap(), all);
        let caps = resolve_caps(&strings(&["all"]), &strings(&["SYS_ADMIN"]), false).unwrap();
        assert_eq!(caps.len(), all.len() - 1);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));

        let caps =
            resolve_caps(&strings(&["NET_BIND_SERVICE"]), &strings(&["ALL"]), false).unwrap();
        assert_eq!(caps, strings(&["CAP_NET_BIND_SERVICE"]));
        assert!(resolve_caps(&[], &strings(&["ALL"]), false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn privileged_gets_everything() {
        assert_eq!(resolve_caps(&[], &[], true).unwrap(), grantable());
        // Docker does not even look at the lists then.
        assert_eq!(
            resolve_caps(&strings(&["FOO"]), &strings(&["ALL"]), true).unwrap(),
            grantable()
        );
    }

    #[test]
    fn unknown_capability_is_refused_like_docker() {
        let err = resolve_caps(&strings(&["foo"]), &[], false).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_FOO""#);
        let err = resolve_caps(&[], &strings(&["CAP_ALL"]), false).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_ALL""#);
        // Drops are checked first.
        let err = resolve_caps(&strings(&["bad1"]), &strings(&["bad2"]), false).unwrap_err();
        assert_eq!(err, SecurityError::UnknownCapability("CAP_BAD2".into()));
    }

    fn rules_for<'a>(profile: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    /// Allowed with no conditions at all.
    fn allows(profile: &LinuxSeccomp, name: &str) -> bool {
        rules_for(profile, name)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
    }

    /// The probe agrees with the kernel's build configuration where the host shows it.
    #[test]
    fn the_x32_probe_matches_the_kernels_configuration() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let Ok(config) = std::fs::read_to_string(format!("/boot/config-{}", release.trim())) else {
            return;
        };
        let built = config.lines().any(|l| l == "CONFIG_X86_X32_ABI=y");
        if !built {
            assert!(!x32_abi(), "x32 reported on a kernel built without it");
        }
    }

    #[test]
    fn default_profile_shape() {
        let p = default_seccomp(&strings(DEFAULT_CAPS));
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        if cfg!(target_arch = "x86_64") {
            let mut arches = vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86];
            if x32_abi() {
                arches.push(Arch::ScmpArchX32);
            }
            assert_eq!(p.architectures().as_deref(), Some(&arches[..]));
        }
        for name in [
            "read",
            "write",
            "execve",
            "openat",
            "futex",
            "exit_group",
            "chown",
        ] {
            assert!(allows(&p, name), "{name} should be allowed");
        }
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "kexec_load",
            "init_module",
            "open_by_handle_at",
            "clock_settime",
            "bpf",
            "perf_event_open",
            "kcmp",
            "clone3",
            "clone",
        ] {
            assert!(!allows(&p, name), "{name} should not be allowed");
        }
        // chroot comes with the default CAP_SYS_CHROOT.
        assert!(allows(&p, "chroot"));

        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].args().as_deref(),
            Some(&[clone_flags_without_namespaces()][..])
        );
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));

        assert_eq!(rules_for(&p, "personality").len(), PERSONALITIES.len());
        let socket = rules_for(&p, "socket");
        assert_eq!(socket.len(), AF_MAX as usize - 2);
        // Every argument rule that allows something compares the low 32 bits only, or is an
        // exact match (which an upper-bit encoding fails, closed).
        for r in p.syscalls().as_deref().unwrap_or_default() {
            for a in r.args().as_deref().unwrap_or_default() {
                let safe = match a.op() {
                    LinuxSeccompOperator::ScmpCmpEq => true,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        a.value_two() == Some(LOW_32_BITS) || r.names().contains(&"clone".into())
                    }
                    _ => false,
                };
                assert!(safe, "rule {:?} compares {:?} on all 64 bits", r.names(), a);
            }
        }
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let p = default_seccomp(&strings(&[
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_PTRACE",
        ]));
        for name in [
            "mount", "unshare", "setns", "clone", "clone3", "reboot", "kcmp", "syslog",
        ] {
            assert!(allows(&p, name), "{name} should be allowed");
        }
        assert!(!allows(&p, "kexec_load"));
        assert!(!allows(&p, "chroot"));
        // No conditional clone rules once clone is fully allowed.
        assert_eq!(rules_for(&p, "clone").len(), 1);
        assert_eq!(rules_for(&p, "clone3").len(), 1);

        let p = default_seccomp(&all_caps());
        let names: Vec<&String> = p
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        // socket and personality have one rule per permitted value.
        let families = allowed_socket_families().count();
        assert_eq!(
            names.len(),
            dedup.len() + (families - 1) + (PERSONALITIES.len() - 1)
        );
    }

    #[test]
    fn every_name_is_known_to_libseccomp() {
        let mut unknown = Vec::new();
        let mut names: Vec<&str> = ALWAYS.iter().copied().flatten().copied().collect();
        names.extend(NATIVE_ARCH);
        names.extend(BY_CAPABILITY.iter().flat_map(|(_, n)| n.iter().copied()));
        names.extend(["socket", "personality", "clone", "clone3"]);
        for name in names {
            if libseccomp::ScmpSyscall::from_name(name).is_err() {
                unknown.push(name);
            }
        }
        // Only the syscalls documented as recent may be missing (on Debian 12, the 2.6
        // ones); anything else is a typo that would silently never be allowed.
        let surprising: Vec<&&str> = unknown
            .iter()
            .filter(|n| {
                ![
                    RECENT_LIBSECCOMP_2_5_5,
                    RECENT_LIBSECCOMP_2_6,
                    SYS_ADMIN_LIBSECCOMP_2_6,
                ]
                .iter()
                .any(|group| group.contains(n))
            })
            .collect();
        assert!(
            surprising.is_empty(),
            "unknown to libseccomp: {surprising:?}"
        );
        eprintln!("unknown to this libseccomp: {unknown:?}");
    }

    #[test]
    fn cap_names_used_in_the_profile_exist() {
        for (cap, _) in BY_CAPABILITY {
            assert!(cap_number(cap).is_some(), "{cap}");
        }
        for cap in DEFAULT_CAPS {
            assert!(cap_number(cap).is_some(), "{cap}");
        }
    }

    #[test]
    fn masked_paths_include_dockers() {
        let paths = masked_paths();
        for p in MASKED_PATHS {
            assert!(paths.iter().any(|x| x == p));
        }
        assert!(paths[MASKED_PATHS.len()..]
            .iter()
            .all(|p| p.ends_with("/thermal_throttle")));
    }

    // ---- The filter as the kernel applies it -------------------------------------------
    //
    // Loading a seccomp filter cannot be undone, so each probe runs in a fresh copy of this
    // test binary: the parent re-executes itself with PROBE_ENV naming the profile, and
    // the child loads it through libcontainer (the code path containers use) and checks
    // what the kernel answers.

    /// The CAP_SYS_ADMIN syscalls that need libseccomp 2.6.
    const SYS_ADMIN_LIBSECCOMP_2_6: &[&str] =
        &["lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr"];

    const PROBE_ENV: &str = "SKIFF_SECCOMP_PROBE";

    fn run_probe(test: &str, profile: &str) {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, rest)| rest);
        let name = format!("{module}::{test}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(PROBE_ENV, profile)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "probe {profile} failed:\n{stdout}\n{stderr}"
        );
    }

    fn errno_of(ret: libc::c_long) -> i32 {
        if ret < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    }

    fn raw_syscall(nr: libc::c_long, args: [libc::c_long; 4]) -> i32 {
        // SAFETY: every call below passes only integers or null pointers the kernel
        // validates; none writes to our memory.
        errno_of(unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3]) })
    }

    fn socket_errno(family: i32) -> i32 {
        // SAFETY: plain integers in; the descriptor, if any, is owned and closed at once.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd >= 0 {
            // SAFETY: fd was just returned by socket() and nothing else holds it.
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
        errno_of(fd.into())
    }

    /// fork through raw clone(2) with `flags`; the child exits at once.
    fn clone_errno(flags: libc::c_long) -> i32 {
        // SAFETY: with a null stack clone behaves like fork; the child only calls _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as libc::c_long,
                0,
                0,
                0,
                0,
            )
        };
        if pid == 0 {
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(0) };
        }
        if pid > 0 {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
        }
        errno_of(pid)
    }

    fn load(caps: &[&str]) {
        nix::sys::prctl::set_no_new_privs().unwrap();
        libcontainer::seccomp::initialize_seccomp(&default_seccomp(&strings(caps))).unwrap();
    }

    const EPERM: i32 = libc::EPERM;

    /// A namespace flag the kernel rejects (EINVAL) before any privilege check, so the
    /// answer tells the filter's EPERM apart from the kernel's whoever runs the tests.
    const NEWUSER_WITH_FS: libc::c_long = (libc::CLONE_NEWUSER | libc::CLONE_FS) as libc::c_long;

    #[test]
    fn kernel_applies_the_default_profile() {
        if std::env::var(PROBE_ENV).as_deref() != Ok("default") {
            return run_probe("kernel_applies_the_default_profile", "default");
        }
        load(DEFAULT_CAPS);
        assert!(std::process::id() > 0);
        // fork and threads work; namespaces do not.
        assert_eq!(clone_errno(0), 0, "plain clone");
        assert_eq!(clone_errno(NEWUSER_WITH_FS), EPERM);
        assert_eq!(clone_errno(libc::CLONE_NEWNET as libc::c_long), EPERM);
        std::thread::spawn(|| ()).join().unwrap();
        assert_eq!(raw_syscall(libc::SYS_clone3, [0, 0, 0, 0]), libc::ENOSYS);
        assert_eq!(
            raw_syscall(libc::SYS_unshare, [libc::CLONE_NEWUTS as _, 0, 0, 0]),
            EPERM
        );
        // Bad magic numbers: had the filter let them through, the kernel would say EINVAL
        // rather than reboot or unload anything.
        assert_eq!(raw_syscall(libc::SYS_reboot, [0, 0, 0, 0]), EPERM);
        assert_eq!(
            raw_syscall(libc::SYS_kexec_load, [0, 0, 0, 0x7fff_0000]),
            EPERM
        );
        assert_eq!(
            raw_syscall(libc::SYS_mount, [0, c"/nonexistent".as_ptr() as _, 0, 0]),
            EPERM
        );
        assert_eq!(socket_errno(libc::AF_UNIX), 0);
        assert_eq!(socket_errno(libc::AF_INET), 0);
        assert_eq!(socket_errno(libc::AF_VSOCK), EPERM);
        assert_eq!(socket_errno(libc::AF_ALG), EPERM);
        // The kernel reads the family from the low 32 bits: the upper ones must not sneak a
        // refused family past the filter, nor lock out an allowed one.
        for upper in [1_i64 << 32, 0x7fff_ffff_i64 << 32, -1_i64 << 32] {
            for family in [libc::AF_VSOCK, libc::AF_ALG] {
                let encoded = upper | family as i64;
                assert_eq!(
                    raw_syscall(
                        libc::SYS_socket,
                        [encoded as _, libc::SOCK_STREAM as _, 0, 0]
                    ),
                    EPERM,
                    "socket({encoded:#x})"
                );
            }
            let inet = upper | libc::AF_INET as i64;
            // SAFETY: plain integers in; the descriptor is owned and closed below.
            let fd = unsafe { libc::syscall(libc::SYS_socket, inet, libc::SOCK_STREAM, 0) };
            assert!(fd >= 0, "socket({inet:#x}) is AF_INET to the kernel");
            // SAFETY: fd was just returned by socket() and nothing else holds it.
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) });
        }
        assert_eq!(socket_errno(AF_MAX as i32), EPERM);
        assert_eq!(
            raw_syscall(libc::SYS_personality, [0xffff_ffff, 0, 0, 0]),
            0
        );
        assert_eq!(
            raw_syscall(libc::SYS_personality, [0x0040000, 0, 0, 0]),
            EPERM
        );
        assert_eq!(raw_syscall(libc::SYS_personality, [0, 0, 0, 0]), 0);
    }

    #[test]
    fn kernel_applies_the_sys_admin_profile() {
        if std::env::var(PROBE_ENV).as_deref() != Ok("sys_admin") {
            return run_probe("kernel_applies_the_sys_admin_profile", "sys_admin");
        }
        let mut caps = DEFAULT_CAPS.to_vec();
        caps.push("CAP_SYS_ADMIN");
        load(&caps);
        assert_eq!(clone_errno(NEWUSER_WITH_FS), libc::EINVAL);
        // Allowed through to the kernel, which then finds no such directory.
        assert_ne!(
            raw_syscall(libc::SYS_mount, [0, c"/nonexistent".as_ptr() as _, 0, 0]),
            EPERM
        );
        assert_ne!(raw_syscall(libc::SYS_clone3, [0, 0, 0, 0]), libc::ENOSYS);
        assert_eq!(raw_syscall(libc::SYS_reboot, [0, 0, 0, 0]), EPERM);
    }
}
