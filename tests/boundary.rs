//! The boundary around containers, tried as an attacker would (SECURITY.md's threat model):
//! a container creating an AF_VSOCK socket past seccomp, and, in skiff's VM, a `--privileged`
//! one (which has AF_VSOCK) asking the host's machine daemon to publish ports, using its egress
//! proxy to reach the host's loopback, taking the engines' vsock ports, and flooding the
//! device; an unprivileged local user reading the native store.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_e2e::*;

fn probe_binary(s: &Skiff) -> PathBuf {
    support_binary(s.dir.path(), "vsock_probe")
}

/// A container `name` from busybox running the probe with `args`, created and given the probe
/// but not started.
fn prepare(s: &Skiff, probe: &Path, name: &str, extra: &[&str], args: &[&str]) {
    let img = image("busybox");
    let mut create = vec!["create", "--name", name];
    create.extend_from_slice(extra);
    create.push(&img);
    create.push("/vsock-probe");
    create.extend_from_slice(args);
    s.run(&create).ok();
    let probe = probe.to_str().expect("utf8 path");
    s.run(&["cp", probe, &format!("{name}:/vsock-probe")]).ok();
}

/// Run the probe to its end; its report.
fn probe(s: &Skiff, probe: &Path, name: &str, extra: &[&str], args: &[&str]) -> String {
    prepare(s, probe, name, extra, args);
    let out = s.run(&["start", "-a", name]).ok();
    s.run(&["rm", name]).ok();
    out.stdout
}

/// The detail of report line `key`.
fn field(report: &str, key: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("no {key} in the probe's report:\n{report}"))
        .trim_end_matches('\t')
        .to_string()
}

/// Wait until the detached probe `name` has printed `key`; its logs so far.
fn wait_for_line(s: &Skiff, name: &str, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logs = s.run(&["logs", name]).ok().stdout;
        if logs.lines().any(|l| l.starts_with(&format!("{key}\t"))) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "the probe never printed {key}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn no_container_without_privileges_creates_a_vsock_socket() {
    let s = Skiff::new();
    let probe_bin = probe_binary(&s);
    for (i, extra) in [&[][..], &["--network", "none"][..]].iter().enumerate() {
        let report = probe(&s, &probe_bin, &format!("enc{i}"), extra, &["encodings"]);
        for enc in ["plain", "bit-32", "upper-ones", "upper-7fff"] {
            let line = report
                .lines()
                .find(|l| l.starts_with(&format!("socket-{enc}\t")))
                .unwrap_or_else(|| panic!("no socket-{enc} in:\n{report}"));
            assert!(line.contains("\tdenied\t"), "{extra:?}: {line}\n{report}");
        }
    }
    if on_vm() {
        // The probe can tell: without seccomp the same call succeeds in the VM.
        let report = probe(
            &s,
            &probe_bin,
            "enc-priv",
            &["--privileged"],
            &["encodings"],
        );
        assert!(
            report.contains("socket-bit-32\tallowed"),
            "a privileged container should have AF_VSOCK:\n{report}"
        );
    }
}

fn listens(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[test]
fn a_privileged_container_gets_nothing_from_the_machine_daemon() {
    if vm_only("the machine daemon's vsock services exist there only") {
        return;
    }
    let s = Skiff::new();
    let probe_bin = probe_binary(&s);
    let priv_none = ["--privileged", "--network", "none"];
    // No other test of this file publishes ports, and test files run one after another: what
    // the machine daemon listens on must not change while the attacks run.
    let daemon = vm_machine_pid("daemon.pid").expect("the machine daemon's pid");
    let listening_before = listening_sockets_of(daemon);

    // Publishing: nothing is bound on the host, whatever the address, with or without a
    // guessed proof.
    let port = free_port().to_string();
    let report = probe(&s, &probe_bin, "publish", &priv_none, &["publish", &port]);
    for addr in ["loopback", "any", "low"] {
        for key in [format!("publish-{addr}"), format!("publish-guessed-{addr}")] {
            assert_eq!(field(&report, &key), "closed", "{key}:\n{report}");
        }
    }
    assert!(!listens(&format!("127.0.0.1:{port}")), "{report}");
    assert!(!listens("127.0.0.1:1"), "{report}");

    // PID 1's port (shutdown, engine-kill) is out of reach from inside the VM.
    let report = probe(&s, &probe_bin, "init", &priv_none, &["init"]);
    for key in ["init-local", "init-guest", "init-host"] {
        assert!(
            field(&report, key).starts_with("connect errno"),
            "{key}:\n{report}"
        );
    }

    // Egress: the host's proxy refuses, so the loopback-only server is never reached.
    let secret = "skiff-boundary-secret-7f3a";
    let target = http_server_on("127.0.0.1:0", secret).to_string();
    let report = probe(&s, &probe_bin, "egress", &priv_none, &["egress", &target]);
    assert!(!report.contains(secret), "{report}");
    assert_eq!(field(&report, "egress-get"), "closed", "{report}");
    assert_eq!(field(&report, "egress-connect"), "closed", "{report}");

    // The engines' ports: the fixed ones are PID 1's; extra engines started while a container
    // holds the next ones get others, and the host never connects to the container's.
    prepare(&s, &probe_bin, "takeover", &priv_none, &["takeover", "40"]);
    s.run(&["start", "takeover"]).ok();
    let logs = wait_for_line(&s, "takeover", "held");
    for p in [1024, 1025, 1028] {
        assert_eq!(
            field(&logs, &format!("bind-{p}")),
            "denied\terrno 98",
            "port {p} must be held by PID 1:\n{logs}"
        );
    }
    for _ in 0..2 {
        let other = Skiff::new();
        other.run(&["version"]).ok();
        other
            .run(&["run", "--rm", &image("busybox"), "echo", "engine-ok"])
            .ok();
    }
    let code = s.run(&["wait", "takeover"]).ok().stdout;
    assert_eq!(code.trim(), "0");
    let logs = s.run(&["logs", "takeover"]).ok().stdout;
    assert_eq!(field(&logs, "host-connected-to-ours"), "0", "{logs}");
    s.run(&["rm", "takeover"]).ok();

    // A flood of guest connections leaves the host's own way in: the API answers and
    // containers run while the container holds all it can get.
    prepare(&s, &probe_bin, "flood", &priv_none, &["flood", "30"]);
    s.run(&["start", "flood"]).ok();
    let logs = wait_for_line(&s, "flood", "flood-1027");
    let held: usize = ["flood-1026", "flood-1027"]
        .iter()
        .map(|k| field(&logs, k).parse::<usize>().expect("count"))
        .sum();
    assert!(
        held <= 256,
        "the device let a container hold {held}:\n{logs}"
    );
    s.run(&["ps"]).ok();
    let out = s
        .run(&["run", "--rm", &image("busybox"), "echo", "still-here"])
        .ok();
    assert!(out.stdout.contains("still-here"), "{}", out.stdout);
    // PID 1's port, which the clock sync also uses, still answers the host.
    let engines = s.run(&["machine", "engine", "ls", "-q"]).ok();
    assert!(
        engines.stdout.contains(&s.engine_name()),
        "{}",
        engines.stdout
    );
    s.run(&["rm", "-f", "flood"]).ok();

    assert_eq!(
        listening_sockets_of(daemon),
        listening_before,
        "the machine daemon listens on something new after the attacks"
    );
}

#[test]
fn an_unprivileged_user_cannot_reach_the_native_store() {
    if native_only("the vm backend's store is inside the VM's disk, in a 0700 machine dir") {
        return;
    }
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    s.run(&["create", "--name", "store-probe", &image("busybox"), "true"])
        .ok();
    let root = s.root();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&root).expect("root").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o710, "{}", root.display());

    // A binary of the image, found as root.
    let found = sh(&format!(
        "find {} -name busybox -type f -perm -0001 2>/dev/null | head -n1",
        root.display()
    ));
    let busybox = found.trim();
    assert!(!busybox.is_empty(), "no busybox under {}", root.display());
    let as_nobody = |args: &[&str]| {
        // runuser sets every uid (setpriv --reuid keeps the saved uid 0, and so root's
        // capabilities).
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .args(args)
            .output()
            .expect("setpriv")
    };
    for target in [root.to_str().expect("utf8"), busybox] {
        let ls = as_nobody(&["ls", target]);
        assert!(!ls.status.success(), "nobody could list {target}");
        assert!(
            String::from_utf8_lossy(&ls.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
    }
    let run = as_nobody(&[busybox, "true"]);
    assert!(!run.status.success(), "nobody ran {busybox}");

    // A root made loose by hand is private again after the agent restarts.
    s.stop_agent();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    s.run(&["ps", "-a"]).ok();
    let mode = std::fs::metadata(&root).expect("root").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o710);
}
