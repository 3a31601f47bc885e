//! Escape probes: a static program (`tests/support/escape_probe.rs`) tries, from inside a
//! container, each step a breakout needs (host PIDs, host paths, mount, keyctl, module loading,
//! bpf, raw devices, `/proc` and `/sys` writes, user namespaces...). The same probe runs in
//! skiff's containers and in rootful podman's on this machine, with and without
//! `--privileged`: skiff must refuse everything podman's defaults refuse, and `--privileged`
//! must grant what podman's (and docker's) grants and nothing more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_e2e::*;

/// docker's default capability set, which skiff follows.
const DOCKER_CAPS: u64 = 0xa804_25fb;
/// MKNOD, NET_RAW and AUDIT_WRITE: in docker's set; some podman versions drop them.
const DOCKER_ONLY_CAPS: u64 = (1 << 27) | (1 << 13) | (1 << 29);

/// What docker's extra capabilities allow (creating device nodes, which the device cgroup
/// still keeps shut; raw packet sockets), by probe.
const DOCKER_ONLY_PROBES: &[(&str, u64)] = &[("mknod-block", 1 << 27), ("packet-socket", 1 << 13)];

/// Probes a default container must fail, whatever podman does.
const MUST_DENY: &[&str] = &[
    "kill-outside",
    "ptrace-outside",
    "host-path",
    "mount",
    "keyctl",
    "finit_module",
    "init_module",
    "bpf",
    "perf_event_open",
    "settimeofday",
    "reboot",
    "swapon",
    "open_by_handle_at",
    "syslog",
    "ioperm",
    "userfaultfd",
    "open-block",
    "write-sysrq-trigger",
    "write-core-pattern",
    "mkdir-sys-cgroup",
    "write-sys",
    "read-kcore",
    "unshare-user",
];

/// Probes `--privileged` must pass: the powers docker documents for it.
const PRIVILEGED_GRANTS: &[&str] = &[
    "mount",
    "bpf",
    "settimeofday",
    "reboot",
    "swapon",
    "open_by_handle_at",
    "syslog",
    "mknod-block",
    "open-block",
    "write-core-pattern",
    "write-sys",
    "unshare-user",
];

/// Probes that stay refused even when privileged: namespaces still separate the container.
const ALWAYS_DENY: &[&str] = &["kill-outside", "ptrace-outside", "host-path"];

/// One probe run: name → (verdict, detail), verdict being allowed, denied or info.
struct Probe(BTreeMap<String, (String, String)>);

impl Probe {
    fn parse(out: &str) -> Probe {
        let mut m = BTreeMap::new();
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 3, "probe line {line:?} in:\n{out}");
            m.insert(f[0].to_string(), (f[1].to_string(), f[2].to_string()));
        }
        assert!(
            m.contains_key("unshare-user"),
            "the probe did not finish:\n{out}"
        );
        Probe(m)
    }

    fn verdict(&self, name: &str) -> &str {
        &self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no probe {name}"))
            .0
    }

    fn detail(&self, name: &str) -> &str {
        &self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no probe {name}"))
            .1
    }

    fn hex(&self, name: &str) -> u64 {
        u64::from_str_radix(self.detail(name), 16).expect("hex capability mask")
    }

    /// Whether the result depends on what the kernel was built with rather than on the
    /// container's confinement (a syscall or a file the kernel lacks).
    fn kernel_dependent(&self, name: &str) -> bool {
        matches!(self.detail(name), "ENOSYS" | "ENOENT")
    }
}

fn table(title: &str, a: (&str, &Probe), b: (&str, &Probe)) -> String {
    let mut s = format!("{title}\n{:<22} {:<24} {}\n", "probe", a.0, b.0);
    for (name, (v, d)) in &a.1 .0 {
        let other =
            b.1 .0
                .get(name)
                .map(|(v, d)| format!("{v} {d}"))
                .unwrap_or_default();
        s += &format!("{name:<22} {:<24} {other}\n", format!("{v} {d}"));
    }
    s
}

fn skiff_probe(s: &Skiff, probe: &Path, name: &str, extra: &[&str]) -> Probe {
    let host_path = s.dir.path().to_str().expect("utf8 path");
    let mut create = vec!["create", "--name", name];
    create.extend_from_slice(extra);
    let img = image("busybox");
    create.extend_from_slice(&[&img, "/escape-probe", host_path]);
    s.run(&create).ok();
    s.run(&[
        "cp",
        probe.to_str().expect("utf8"),
        &format!("{name}:/escape-probe"),
    ])
    .ok();
    let out = s.run(&["start", "-a", name]).ok();
    s.run(&["rm", name]).ok();
    Probe::parse(&out.stdout)
}

/// Rootful podman with its own storage, set up as ../shared/reference/peers.md says it runs
/// here (cgroupfs, file events, runc, ulimits this host can grant) and otherwise its defaults.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        let found = Command::new("podman").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "podman is the peer these probes are compared with: run scripts/setup.sh"
        );
        let p = Podman {
            dir: test_tmp().join("podman-peer"),
        };
        let pull = p
            .command()
            .args(["pull", "-q", "--tls-verify=false", &image("busybox")])
            .output()
            .expect("podman pull");
        assert!(
            pull.status.success(),
            "podman pull: {}",
            String::from_utf8_lossy(&pull.stderr)
        );
        p
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        // podman refuses a runroot longer than 50 bytes (its sockets live there), and the
        // test directory of a CI checkout can be deeper than that.
        c.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg("/run/skiff-e2e-podman")
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runc",
            ]);
        c
    }

    fn probe(&self, probe: &Path, host_path: &Path, extra: &[&str]) -> Probe {
        let out = self
            .command()
            .args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=32768:32768",
            ])
            .arg("-v")
            .arg(format!("{}:/escape-probe:ro", probe.display()))
            .args(extra)
            .arg(image("busybox"))
            .arg("/escape-probe")
            .arg(host_path)
            .output()
            .expect("podman run");
        assert!(
            out.status.success(),
            "podman run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Probe::parse(&String::from_utf8_lossy(&out.stdout))
    }
}

#[test]
fn escape_probes_are_refused_as_podman_refuses_them() {
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    let probe = support_binary(s.dir.path(), "escape_probe");
    let podman = Podman::new();

    let ours = skiff_probe(&s, &probe, "probe-default", &[]);
    let theirs = podman.probe(&probe, s.dir.path(), &[]);
    let shown = table(
        "default container",
        ("skiff", &ours),
        ("podman (runc)", &theirs),
    );
    eprintln!("{shown}");

    for name in MUST_DENY {
        assert_eq!(ours.verdict(name), "denied", "{name} passed:\n{shown}");
    }
    assert_eq!(ours.hex("CapEff"), DOCKER_CAPS, "{shown}");
    assert_eq!(ours.hex("CapBnd"), DOCKER_CAPS, "{shown}");
    assert_eq!(ours.detail("CapAmb"), "0000000000000000", "{shown}");
    assert_eq!(ours.detail("Seccomp"), "2", "{shown}");
    assert_eq!(
        ours.detail("visible-pids"),
        "1",
        "only the probe itself: {shown}"
    );
    // Nothing podman's defaults refuse gets through skiff's, on the same machine.
    for (name, (verdict, _)) in &theirs.0 {
        let docker_grants = DOCKER_ONLY_PROBES
            .iter()
            .any(|(p, cap)| p == name && theirs.hex("CapEff") & cap == 0);
        if verdict == "denied" && !docker_grants && !(on_vm() && theirs.kernel_dependent(name)) {
            assert_eq!(
                ours.verdict(name),
                "denied",
                "podman refuses {name}, skiff lets it through:\n{shown}"
            );
        }
    }
    let extra_caps = ours.hex("CapEff") & !theirs.hex("CapEff");
    assert_eq!(
        extra_caps & !DOCKER_ONLY_CAPS,
        0,
        "capabilities beyond docker's and podman's:\n{shown}"
    );

    let ours = skiff_probe(&s, &probe, "probe-privileged", &["--privileged"]);
    let theirs = podman.probe(&probe, s.dir.path(), &["--privileged"]);
    let shown = table("--privileged", ("skiff", &ours), ("podman (runc)", &theirs));
    eprintln!("{shown}");
    for name in PRIVILEGED_GRANTS {
        assert_eq!(ours.verdict(name), "allowed", "{name} refused:\n{shown}");
    }
    for name in ALWAYS_DENY {
        assert_eq!(ours.verdict(name), "denied", "{name} passed:\n{shown}");
    }
    assert_eq!(ours.detail("Seccomp"), "0", "{shown}");
    assert_eq!(ours.detail("visible-pids"), "1", "{shown}");
    if on_vm() {
        // The VM's kernel is the container's, and the agent there holds every capability.
        assert_eq!(ours.hex("CapEff"), ours.hex("CapFull"), "{shown}");
    } else {
        assert_eq!(ours.hex("CapEff"), theirs.hex("CapEff"), "{shown}");
    }
    // Same grants as podman's --privileged, no more and no fewer, except where the two
    // kernels (the VM's and the host's) differ in what they were built with.
    for (name, (verdict, _)) in &theirs.0 {
        if verdict == "info"
            || (on_vm() && (theirs.kernel_dependent(name) || ours.kernel_dependent(name)))
        {
            continue;
        }
        assert_eq!(ours.verdict(name), verdict, "{name} differs:\n{shown}");
    }
}

/// The container's own cgroup limits cannot be lifted from inside: the cgroup filesystem is
/// read-only (on cgroup v1 hosts libcontainer mounts it writable; skiff remounts it).
#[test]
fn a_container_cannot_raise_its_own_limits() {
    let s = Skiff::new();
    let script = "for f in /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do \
                    [ -e $f ] && { echo max > $f 2>/dev/null && echo RAISED; cat $f; }; done; \
                  mkdir /sys/fs/cgroup/child 2>/dev/null && echo CHILD; true";
    let out = s
        .run(&[
            "run",
            "--rm",
            "--pids-limit",
            "50",
            &image("busybox"),
            "sh",
            "-c",
            script,
        ])
        .ok();
    assert_eq!(out.stdout, "50\n", "{}", out.stderr);

    // --privileged gives the cgroup filesystem back, as docker does.
    let out = s
        .run(&[
            "run",
            "--rm",
            "--privileged",
            &image("busybox"),
            "sh",
            "-c",
            "mkdir /sys/fs/cgroup/probe-child && rmdir /sys/fs/cgroup/probe-child && echo WRITABLE",
        ])
        .ok();
    assert_eq!(out.stdout, "WRITABLE\n");
}

/// The API listens on a private unix socket only: neither the agent nor (on the vm backend)
/// the machine's processes hold a listening TCP socket while containers run without `-p`.
#[test]
fn nothing_listens_on_tcp_unless_asked() {
    let s = Skiff::new();
    s.run(&[
        "run",
        "-d",
        "--name",
        "quiet",
        &image("busybox"),
        "sleep",
        "600",
    ])
    .ok();
    let pids: Vec<i32> = if on_vm() {
        ["daemon.pid", "qemu.pid", "passt.pid"]
            .iter()
            .filter_map(|f| vm_machine_pid(f))
            .collect()
    } else {
        vec![s.agent_pid().expect("agent pid")]
    };
    assert!(!pids.is_empty(), "found no skiff process to look at");
    for pid in pids {
        let tcp: Vec<String> = listening_sockets_of(pid)
            .into_iter()
            .filter(|l| l.starts_with("tcp"))
            .collect();
        assert!(tcp.is_empty(), "process {pid} listens on TCP: {tcp:?}");
    }
    s.run(&["rm", "-f", "quiet"]).ok();
}
