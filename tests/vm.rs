//! The vm backend: skiff's own kernel and agent in a QEMU microVM, reached over our vsock
//! device. Needs the guest kernel and image that scripts/test.sh builds (SKIFF_KERNEL,
//! SKIFF_INITRAMFS).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::*;

/// One machines dir of its own, so that tests never share or stop each other's VM.
struct Vm {
    dir: tempfile::TempDir,
}

fn guest_file(var: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run the suite with scripts/test.sh, which builds the guest kernel and image")
    });
    assert!(p.exists(), "{var}={} does not exist", p.display());
    p
}

impl Vm {
    fn new() -> Vm {
        // Short: unix socket paths inside it must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("vm-")
            .tempdir_in(test_tmp())
            .expect("tempdir");
        Vm { dir }
    }

    fn machine_dir(&self) -> PathBuf {
        self.dir.path().join("default")
    }

    fn bare_command(&self) -> Command {
        let mut c = Command::new(bin_dir().join("skiff"));
        // This test's machine, whatever the caller's environment names (the vm pass of
        // scripts/test.sh, or a developer's shell, sets these for a shared machine).
        for var in [
            "SKIFF_MACHINE",
            "SKIFF_ENGINE",
            "SKIFF_SOCKET",
            "SKIFF_ROOT",
        ] {
            c.env_remove(var);
        }
        c.env("SKIFF_BACKEND", "vm")
            .env("SKIFF_MACHINES", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null());
        c
    }

    fn command(&self) -> Command {
        let mut c = self.bare_command();
        c.env("SKIFF_KERNEL", guest_file("SKIFF_KERNEL"))
            .env("SKIFF_INITRAMFS", guest_file("SKIFF_INITRAMFS"));
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().expect("run skiff"))
    }

    fn init(&self) {
        self.run(&["machine", "init", "--memory", "1024", "--disk-size", "4"])
            .ok();
    }

    fn pid_file(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.machine_dir().join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.bare_command().args(["machine", "stop"]).output();
    }
}

fn guest_release() -> String {
    let kernel = guest_file("SKIFF_KERNEL");
    let release = kernel.with_file_name("release");
    std::fs::read_to_string(&release)
        .unwrap_or_else(|e| panic!("{}: {e}", release.display()))
        .trim()
        .to_string()
}

#[test]
fn vm_machine_boots_our_kernel_and_runs_containers() {
    let vm = Vm::new();

    // Bad settings are refused with the reason, and create nothing.
    vm.run(&["machine", "init", "--memory", "64"])
        .fails_with(125, "too little");
    vm.run(&["machine", "init", "--kernel", "/nonexistent/vmlinux"])
        .fails_with(125, "build-kernel.sh");
    let status = vm.run(&["machine", "status"]).ok();
    assert_eq!(status.stdout.trim(), "missing");

    vm.init();
    assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "stopped");
    // No QEMU: said so, with what to install.
    Run::from(
        vm.command()
            .env("SKIFF_QEMU", "/nonexistent/qemu-system-x86_64")
            .args(["machine", "start"])
            .output()
            .expect("run skiff"),
    )
    .fails_with(125, "is not installed");
    assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "stopped");
    vm.run(&["machine", "start"]).ok();
    assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "running");

    let inspect: serde_json::Value =
        serde_json::from_str(&vm.run(&["machine", "inspect"]).ok().stdout).expect("json");
    let accel = inspect[0]["Accelerator"].as_str().unwrap_or_default();
    assert!(["kvm", "hvf", "whpx", "tcg"].contains(&accel), "{inspect}");

    // The container runs on the guest's kernel, not the host's.
    let out = vm
        .run(&["run", "--rm", &image("busybox"), "uname", "-r"])
        .ok();
    assert_eq!(out.stdout.trim(), guest_release());
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_ne!(out.stdout.trim(), host_release.trim());

    // The guest's wall clock is the host's (its RTC has one-second resolution and drifts
    // under emulation: a trailing guest made `--since` from the host miss events).
    let host_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    };
    let before = host_now();
    let out = vm
        .run(&[
            "run",
            "--rm",
            &image("busybox"),
            "sh",
            "-c",
            "busybox adjtimex | grep -E 'tv_(sec|usec)'",
        ])
        .ok();
    let after = host_now();
    let fields: Vec<f64> = out
        .stdout
        .lines()
        .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
        .collect();
    assert_eq!(fields.len(), 2, "{out:?}");
    let guest = fields[0] + fields[1] / 1e6;
    assert!(
        guest >= before - 0.25 && guest <= after + 0.25,
        "the guest's clock reads {guest:.3}, the host's was {before:.3}..{after:.3}"
    );

    // A separate engine is listed with the memory it uses, and goes with `engine rm`.
    Run::from(
        vm.command()
            .env("SKIFF_ENGINE", "side")
            .args(["ps", "-q"])
            .output()
            .expect("run skiff"),
    )
    .ok();
    let listed = vm.run(&["machine", "engine", "ls"]).ok().stdout;
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(rows[0], ["NAME", "MEMORY"], "{listed}");
    assert_eq!(rows[1][0], "side", "{listed}");
    assert!(rows[1][1].ends_with("MiB"), "{listed}");
    assert_eq!(
        vm.run(&["machine", "engine", "ls", "-q"]).ok().stdout,
        "side\n"
    );
    vm.run(&["machine", "engine", "rm", "side"]).ok();
    assert_eq!(vm.run(&["machine", "engine", "ls", "-q"]).ok().stdout, "");

    let info = vm.run(&["info"]).ok();
    assert!(info.stdout.contains("Backend:    vm"), "{}", info.stdout);
    assert!(
        info.stdout.contains(&format!(
            "unix://{}",
            vm.machine_dir().join("api.sock").display()
        )),
        "{}",
        info.stdout
    );

    // A published port answers on the host; the bytes arrive whole.
    let port = free_port();
    vm.run(&[
        "run",
        "-d",
        "--name",
        "web1",
        "-p",
        &format!("{port}:80"),
        &image("web"),
    ])
    .ok();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        match http_get(&addr, "/", false) {
            Ok(r) => break r,
            Err(e) if Instant::now() > deadline => panic!("{addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(status.contains("200"), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("hello from web"));
    let (_, big) = http_get(&addr, "/big.bin", true).expect("big file");
    assert_eq!(sha256_hex(&big), web_big_sha());
    // A host port already taken is refused as docker refuses it, and nothing runs.
    let held = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let busy = held.local_addr().expect("addr").port();
    vm.run(&[
        "run",
        "-d",
        "--name",
        "w2",
        "-p",
        &format!("{busy}:80"),
        &image("web"),
    ])
    .fails_with(125, "address already in use");
    vm.run(&["rm", "-f", "web1"]).ok();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the port stayed open after rm"
    );

    // A published UDP port: each client's datagrams come back to that client.
    let echo = udp_echo_binary(vm.dir.path());
    let uport = std::net::UdpSocket::bind("0.0.0.0:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    vm.run(&[
        "create",
        "--name",
        "echo1",
        "-p",
        &format!("{uport}:9999/udp"),
        &image("busybox"),
        "/udp-echo",
        "9999",
    ])
    .ok();
    vm.run(&["cp", echo.to_str().expect("utf8"), "echo1:/udp-echo"])
        .ok();
    vm.run(&["start", "echo1"]).ok();
    let clients = [
        std::net::UdpSocket::bind("127.0.0.1:0").expect("a"),
        std::net::UdpSocket::bind("127.0.0.1:0").expect("b"),
    ];
    for (i, c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let msg = format!("datagram from client {i}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 256];
        let got = loop {
            c.send_to(msg.as_bytes(), ("127.0.0.1", uport))
                .expect("send");
            match c.recv(&mut buf) {
                Ok(n) => break String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) if Instant::now() < deadline => continue,
                Err(e) => panic!("no UDP answer: {e}"),
            }
        };
        assert_eq!(got, msg);
    }
    vm.run(&["rm", "-f", "echo1"]).ok();

    // The docker CLI on the machine's socket: a hijacked stream with stdin, through the relay.
    let mut docker = Command::new("docker")
        .arg("-H")
        .arg(format!(
            "unix://{}",
            vm.machine_dir().join("api.sock").display()
        ))
        .args([
            "run",
            "--rm",
            "-i",
            &image("busybox"),
            "sh",
            "-c",
            "cat; exit 3",
        ])
        .env("DOCKER_CONFIG", vm.dir.path().join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    {
        use std::io::Write;
        let mut stdin = docker.stdin.take().expect("stdin");
        stdin.write_all(b"through the vm\n").expect("write stdin");
    }
    let out = Run::from(docker.wait_with_output().expect("docker"));
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "through the vm\n");

    // logs, exec and cp into a running container.
    vm.run(&[
        "run",
        "-d",
        "--name",
        "lg",
        &image("busybox"),
        "sh",
        "-c",
        "echo out; echo err >&2; sleep 1000",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = vm.run(&["logs", "lg"]).ok();
        if logs.stdout.contains("out") && logs.stderr.contains("err") {
            break;
        }
        assert!(Instant::now() < deadline, "{logs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let src = vm.dir.path().join("in.txt");
    std::fs::write(&src, "copied in\n").expect("write");
    vm.run(&["cp", src.to_str().expect("utf8"), "lg:/in.txt"])
        .ok();
    let out = vm.run(&["exec", "lg", "cat", "/in.txt"]).ok();
    assert_eq!(out.stdout, "copied in\n");
    vm.run(&["exec", "lg", "sh", "-c", "exit 5"])
        .fails_with(5, "");
    vm.run(&["rm", "-f", "lg"]).ok();

    // Exit codes cross the VM boundary unchanged.
    vm.run(&["run", "--rm", &image("busybox"), "sh", "-c", "exit 7"])
        .fails_with(7, "");

    let logs = vm.run(&["machine", "logs"]).ok();
    assert!(
        logs.stdout.contains("serving the Docker Engine API"),
        "{}",
        logs.stdout
    );

    let daemon = vm.pid_file("daemon.pid").expect("daemon pid");
    vm.run(&["machine", "stop"]).ok();
    assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "stopped");
    // Gone, or about to be reaped by whoever adopted it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(daemon) {
        assert!(
            Instant::now() < deadline,
            "the machine daemon outlived stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn vm_data_survives_a_killed_vm_a_killed_daemon_and_a_restart() {
    let vm = Vm::new();
    vm.init();
    vm.run(&["pull", &image("busybox")]).ok();
    vm.run(&[
        "run",
        "--name",
        "keep",
        &image("busybox"),
        "sh",
        "-c",
        "echo kept > /data.txt",
    ])
    .ok();

    // A crash: QEMU dies at once, without the guest flushing anything more.
    kill_vmm(vm.pid_file("qemu.pid").expect("qemu pid"), || {
        vm.run(&["machine", "status"]).ok().stdout
    });

    // The next command starts the machine again and finds everything.
    let images = vm.run(&["images", "--format", "{{.Repository}}"]).ok();
    assert!(
        images
            .stdout
            .contains(&image("busybox").replace(":latest", "")),
        "{}",
        images.stdout
    );
    let out = vm.dir.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    vm.run(&["cp", "keep:/data.txt", out.to_str().expect("utf8")])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("data.txt")).expect("copied file"),
        "kept\n"
    );
    vm.run(&["run", "--rm", &image("busybox"), "true"]).ok();

    // The machine daemon killed: QEMU dies with it, and again nothing is lost.
    vm.run(&[
        "run",
        "--name",
        "keep2",
        &image("busybox"),
        "sh",
        "-c",
        "echo two > /two.txt",
    ])
    .ok();
    let daemon = vm.pid_file("daemon.pid").expect("daemon pid");
    // SAFETY: plain signal delivery to the daemon our machine started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while vm.run(&["machine", "status"]).ok().stdout.trim() != "stopped" {
        assert!(
            Instant::now() < deadline,
            "the dead daemon is not reported stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    vm.run(&["cp", "keep2:/two.txt", out.to_str().expect("utf8")])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("two.txt")).expect("copied file"),
        "two\n"
    );

    // A clean stop and start keeps images and containers.
    vm.run(&["machine", "stop"]).ok();
    vm.run(&["machine", "start"]).ok();
    let names = vm.run(&["ps", "-a", "--format", "{{.Names}}"]).ok();
    let mut names = names.lines();
    names.sort();
    assert_eq!(names, ["keep", "keep2"]);
    vm.run(&["run", "--rm", &image("busybox"), "true"]).ok();
}

#[test]
fn vm_broken_kernel_is_reported_with_qemus_words() {
    let vm = Vm::new();
    // An ELF header and nothing else: it passes the quick check, QEMU cannot load it.
    let kernel = vm.dir.path().join("vmlinux");
    let real = std::fs::read(guest_file("SKIFF_KERNEL")).expect("kernel");
    std::fs::write(&kernel, &real[..4096]).expect("write");
    vm.run(&[
        "machine",
        "init",
        "--memory",
        "512",
        "--kernel",
        kernel.to_str().expect("utf8"),
    ])
    .ok();
    let out = vm
        .run(&["machine", "start"])
        .fails_with(125, "failed to start");
    assert!(out.stderr.contains("qemu.log"), "{}", out.stderr);
    assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "stopped");
}

/// What of the host's network a root-only change would show: interfaces and iptables rules.
fn host_network_shape() -> String {
    sh("ip -o link show | awk '{print $2}' | sort; iptables -S; iptables -t nat -S")
}

#[test]
fn vm_containers_reach_the_host_and_survive_a_network_restart() {
    let vm = Vm::new();
    vm.init();
    let before = host_network_shape();
    let bb = image("busybox");
    vm.run(&["pull", &bb]).ok();
    let port = host_server("host says hi");
    let fetch = |url: &str| vm.run(&["run", "--rm", &bb, "wget", "-qO-", url]);

    // A server on the host's loopback, by docker's name for the host and by host-gateway.
    let url = format!("http://host.docker.internal:{port}/");
    assert_eq!(fetch(&url).ok().stdout, "host says hi");
    let out = vm
        .run(&[
            "run",
            "--rm",
            "--add-host",
            "myhost:host-gateway",
            &bb,
            "wget",
            "-qO-",
            &format!("http://myhost:{port}/"),
        ])
        .ok();
    assert_eq!(out.stdout, "host says hi");

    // --network none: no route, nothing reached.
    let none = vm
        .run(&["run", "--rm", "--network", "none", &bb, "ip", "route"])
        .ok();
    assert_eq!(none.stdout, "", "routes with --network none");
    let out = vm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &bb,
        "wget",
        "-qO-",
        &format!("http://{}:{port}/", "192.168.65.1"),
    ]);
    assert_ne!(out.code, 0, "reached the host with --network none: {out:?}");

    // The user-mode stack restarts (as after a change of the host's network): the VM keeps
    // running and new connections work again.
    let passt = vm.pid_file("passt.pid").expect("passt pid");
    // SAFETY: plain signal delivery to the passt our machine daemon started.
    unsafe { libc::kill(passt, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = fetch(&url);
        if out.code == 0 {
            assert_eq!(out.stdout, "host says hi");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no way to the host after the stack restarted: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(vm.pid_file("passt.pid"), Some(passt), "a new passt runs");

    // Nothing of this needed a tap device or a host firewall rule.
    assert_eq!(host_network_shape(), before);
}

/// A full disk in the VM: a container fills the machine's 1 GiB data disk; its writes, a
/// `cp` into it and a pull fail with "No space left on device", the half-copied file is not left behind,
/// the container's exit code survives a killed VM, the store stays consistent, and `rm`
/// gives the space back.
#[test]
fn vm_full_disk_fails_writes_and_cp_clearly_and_loses_nothing() {
    let vm = Vm::new();
    vm.run(&["machine", "init", "--memory", "1024", "--disk-size", "1"])
        .ok();
    vm.run(&["pull", "-q", &image("busybox")]).ok();
    let free_kib = || -> u64 {
        let out = vm
            .run(&["run", "--rm", &image("busybox"), "df", "-k", "/"])
            .ok();
        out.lines()
            .get(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("df: {}", out.stdout))
    };
    let free = free_kib();
    let filled = vm.run(&[
        "run",
        "--name",
        "filler",
        &image("busybox"),
        "sh",
        "-c",
        // Exit 3 if 2 GiB fit on the 1 GiB disk, 7 once the write failed.
        "dd if=/dev/zero of=/fill bs=1M count=2048 2>/dev/null && exit 3; \
         dd if=/dev/zero of=/fill2 bs=1k 2>/dev/null; exit 7",
    ]);
    // What the container printed while the disk was full is not asserted: attach reads the
    // container's log, which cannot grow then (SECURITY.md, known gaps).
    assert_eq!(filled.code, 7, "{}{}", filled.stdout, filled.stderr);

    let big = vm.dir.path().join("big");
    std::fs::write(&big, vec![7u8; 32 << 20]).expect("write");
    vm.run(&["cp", big.to_str().expect("utf8"), "filler:/big"])
        .fails_with(1, "No space left on device");
    vm.run(&["cp", "filler:/big", "-"])
        .fails_with(1, "Could not find the file");
    vm.run(&["pull", "-q", &image("web")])
        .fails_with(1, "No space left on device");

    // The hardest stop: QEMU killed, the guest's page cache gone with it.
    kill_vmm(vm.pid_file("qemu.pid").expect("qemu pid"), || {
        vm.run(&["machine", "status"]).ok().stdout
    });
    let code = vm
        .run(&["inspect", "-f", "{{.State.ExitCode}}", "filler"])
        .ok();
    assert_eq!(code.stdout, "7\n", "the exit code written on a full disk");
    let check = vm.run(&["system", "check"]).ok();
    assert!(
        check.stdout.contains("The store is consistent."),
        "{}",
        check.stdout
    );

    assert_eq!(
        vm.run(&["images", "-q"]).ok().lines().len(),
        1,
        "busybox only: nothing of the failed pull"
    );

    let full = disk_allocated(&vm);
    vm.run(&["rm", "filler"]).ok();
    let after = free_kib();
    assert!(
        after + 1024 >= free,
        "space given back: {after} KiB free, {free} before"
    );
    // And to the host: the guest discards what it frees, QEMU punches it out of the file.
    let back = shrinks_below(
        &vm,
        full.saturating_sub(512 << 20),
        "after rm of the filled container",
    );
    // The first reading under the bound can come before the last of the discards.
    let back = settled(&vm).min(back);
    vm.run(&["pull", "-q", &image("web")]).ok();
    vm.run(&["run", "--rm", &image("web"), "true"]).ok();
    // web's layer holds 8 MiB of random bytes (the store keeps it unpacked, the blob not);
    // removing the image gives most of it back.
    let pulled = settled(&vm);
    assert!(
        pulled >= back + (6 << 20),
        "the pull took {pulled} bytes, from {back}"
    );
    vm.run(&["rmi", &image("web")]).ok();
    shrinks_below(&vm, pulled.saturating_sub(6 << 20), "after rmi of web");
}

/// The data disk's allocated bytes on the host, as `machine inspect` shows them.
fn disk_allocated(vm: &Vm) -> u64 {
    let out = vm.run(&["machine", "inspect"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    let apparent = v[0]["DiskApparentBytes"]
        .as_u64()
        .expect("DiskApparentBytes");
    assert_eq!(apparent, 1 << 30, "the disk's size as the guest sees it");
    v[0]["DiskAllocatedBytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("DiskAllocatedBytes in {out}"))
}

/// The disk file's allocation once it has not moved for 6 s (the journal commits every 5 s,
/// and discards follow), waiting at most a minute.
fn settled(vm: &Vm) -> u64 {
    let start = Instant::now();
    let mut last = disk_allocated(vm);
    loop {
        std::thread::sleep(Duration::from_secs(6));
        let now = disk_allocated(vm);
        if now == last || start.elapsed() > Duration::from_secs(60) {
            return now;
        }
        last = now;
    }
}

/// Wait up to 60 s (the journal commits every 5 s) for the disk file to take less than
/// `bound` bytes on the host; what it takes then.
fn shrinks_below(vm: &Vm, bound: u64, what: &str) -> u64 {
    let start = Instant::now();
    loop {
        let now = disk_allocated(vm);
        if now < bound {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: the disk file still takes {now} bytes on the host, expected under {bound}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The processes running `virtiofsd` whose working directory is `dir` (the daemon starts each
/// share's virtiofsd there), with their real uid.
fn virtiofsds_in(dir: &std::path::Path) -> Vec<(i32, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"virtiofsd\0") || !alive(pid) {
            continue;
        }
        if std::fs::read_link(entry.path().join("cwd")).ok().as_deref() != Some(dir) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .expect("uid");
        found.push((pid, uid));
    }
    found
}

/// Shared host directories: `--mount` values are checked before anything is made; the
/// machine keeps and shows its shares; each is served by a virtiofsd running as the
/// directory's owner and mounted by PID 1 at /mnt/host/PATH; what the guest's root writes
/// belongs to that owner on the host; a read-only share refuses writes in virtiofsd itself
/// (a privileged container's own mount of it is refused too); a virtiofsd that dies is
/// reported; without virtiofsd the machine starts without shares and says so.
#[test]
fn vm_machine_shares_host_directories_as_their_owner() {
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    let vm = Vm::new();
    guest_file("SKIFF_VIRTIOFSD");
    // In the test's private (0700) directory: the owner cannot walk to the shares itself.
    let rw = vm.dir.path().join("rw share");
    let ro = vm.dir.path().join("ro");
    for (dir, owner) in [(&rw, 4242), (&ro, 4243)] {
        std::fs::create_dir(dir).expect("mkdir");
        chown(dir, Some(owner), Some(owner)).expect("chown");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(ro.join("hello.txt"), "from the host\n").expect("write");
    chown(ro.join("hello.txt"), Some(4243), Some(4243)).expect("chown");
    for (name, owner) in [("owners.txt", 4242), ("others.txt", 4300)] {
        std::fs::write(rw.join(name), "x\n").expect("write");
        chown(rw.join(name), Some(owner), Some(owner)).expect("chown");
    }
    let path = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let (rw_s, ro_s) = (path(&rw), path(&ro));

    // Bad values: refused with the reason, and nothing is made.
    let file = path(&ro.join("hello.txt"));
    let inner = rw.join("inner");
    std::fs::create_dir(&inner).expect("mkdir");
    let init = |mounts: &[&str]| {
        let mut args = vec!["machine", "init", "--memory", "1024", "--disk-size", "4"];
        for m in mounts {
            args.extend(["--mount", m]);
        }
        vm.run(&args)
    };
    for (mounts, why) in [
        (vec!["relative/dir"], "absolute path"),
        (
            vec!["/nonexistent/skiff-share"],
            "cannot share /nonexistent/skiff-share",
        ),
        (vec![file.as_str()], "is not a directory"),
        (vec!["/"], "whole filesystem"),
        (vec![rw_s.as_str(), rw_s.as_str()], "shared twice"),
        (
            vec![rw_s.as_str(), inner.to_str().expect("utf8")],
            "is inside the shared",
        ),
        (vec!["/usr", "/etc", "/var", "/srv"], "too many"),
    ] {
        init(&mounts).fails_with(125, why);
        assert_eq!(vm.run(&["machine", "status"]).ok().stdout.trim(), "missing");
        assert!(!vm.machine_dir().exists(), "{mounts:?} left a machine");
    }
    std::fs::remove_dir(&inner).expect("rmdir");

    let ro_spec = format!("{ro_s}:ro");
    let made = init(&[&rw_s, &ro_spec]).ok();
    assert!(
        made.stderr
            .contains(&format!("Shared with the VM: {rw_s}, {ro_s} (read-only)")),
        "{}",
        made.stderr
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&vm.run(&["machine", "inspect"]).ok().stdout).expect("json");
    assert_eq!(
        inspect[0]["Shares"],
        serde_json::json!([
            {"Source": rw_s, "Destination": format!("/mnt/host{rw_s}"), "ReadOnly": false},
            {"Source": ro_s, "Destination": format!("/mnt/host{ro_s}"), "ReadOnly": true},
        ]),
        "{inspect}"
    );

    vm.run(&["machine", "start"]).ok();
    // Each share's virtiofsd runs as the directory's owner, not as root.
    let mut served: Vec<u32> = [&rw, &ro]
        .iter()
        .flat_map(|d| virtiofsds_in(d))
        .map(|(_, uid)| uid)
        .collect();
    served.sort();
    assert_eq!(served, [4242, 4243]);
    let console = vm.run(&["machine", "logs"]).ok().stdout;
    for want in [
        format!("skiff-init: host directory {rw_s} mounted at /mnt/host{rw_s}"),
        format!("skiff-init: host directory {ro_s} mounted at /mnt/host{ro_s} (read-only)"),
    ] {
        assert!(
            console.lines().any(|l| l.trim_end() == want),
            "{want:?} not in:\n{console}"
        );
    }

    // Until the engine bind-mounts shares, a privileged container mounts them itself, as
    // PID 1 does (SECURITY.md: it can).
    let bb = image("busybox");
    let script = "mkdir -p /rw /ro && mount -t virtiofs skiffshare0 /rw && \
        mount -t virtiofs skiffshare1 /ro && \
        echo made in the vm > /rw/made.txt && mkdir /rw/sub && \
        stat -c '%u:%g' /rw/owners.txt /rw/others.txt /ro/hello.txt && cat /ro/hello.txt && \
        if echo no > /ro/nope.txt; then echo WROTE; fi; \
        if touch /ro/hello.txt; then echo TOUCHED; fi; true";
    let out = vm
        .run(&["run", "--rm", "--privileged", &bb, "sh", "-c", script])
        .ok();
    // A share's owner's files look like root's in the VM, others keep their ids.
    assert_eq!(
        out.stdout, "0:0\n4300:4300\n0:0\nfrom the host\n",
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    // What the guest's root wrote belongs to the share's owner.
    for made in ["made.txt", "sub"] {
        let meta = std::fs::metadata(rw.join(made)).expect("made in the vm");
        assert_eq!((meta.uid(), meta.gid()), (4242, 4242), "{made}");
    }
    assert_eq!(
        std::fs::read_to_string(rw.join("made.txt")).expect("read"),
        "made in the vm\n"
    );
    assert!(!ro.join("nope.txt").exists());

    // A virtiofsd that dies while the VM runs is reported.
    let (victim, _) = virtiofsds_in(&ro)[0];
    // SAFETY: plain signal delivery to the virtiofsd our machine daemon started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let daemon_log = vm.machine_dir().join("daemon.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&daemon_log).unwrap_or_default();
        if log.contains(&format!("the virtiofsd sharing {ro_s} ended")) {
            break;
        }
        assert!(Instant::now() < deadline, "not reported:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.run(&["machine", "stop"]).ok();
    assert!(virtiofsds_in(&rw).is_empty(), "a virtiofsd outlived the VM");

    // Without virtiofsd the machine still starts, says so, and mounts nothing.
    let started = Run::from(
        vm.command()
            .env("SKIFF_VIRTIOFSD", "/nonexistent/virtiofsd")
            .args(["machine", "start"])
            .output()
            .expect("run skiff"),
    )
    .ok();
    assert!(
        started
            .stderr
            .contains("starts without its shared directories"),
        "{}",
        started.stderr
    );
    let console = vm.run(&["machine", "logs"]).ok().stdout;
    assert!(!console.contains("mounted at"), "{console}");
    let log = std::fs::read_to_string(&daemon_log).expect("daemon log");
    assert!(
        log.contains("SKIFF_VIRTIOFSD=/nonexistent/virtiofsd"),
        "{log}"
    );
}

/// Installed as a package would be (scripts/install.sh into a prefix), skiff finds its agent,
/// the guest kernel and image and virtiofsd by itself: `machine start` creates the default
/// machine and the container runs on the guest's kernel, with none of skiff's variables set
/// (only where machines live, so that the test's machine is its own).
#[test]
fn vm_an_installed_skiff_needs_no_variables() {
    let vm = Vm::new();
    let prefix = vm.dir.path().join("prefix");
    // In the environment a build starts from, not the test's: the variables cargo test and
    // its runner add (CARGO_*, RUSTC_BOOTSTRAP) change the build's fingerprints, and
    // install.sh's cargo would build everything anew instead of finding it built.
    let mut install = Command::new(repo_root().join("scripts/install.sh"));
    install.env_clear();
    for var in ["PATH", "HOME", "CI", "SKIFF_CACHE"] {
        if let Some(v) = std::env::var_os(var) {
            install.env(var, v);
        }
    }
    let status = install
        .arg(&prefix)
        .stdin(Stdio::null())
        .status()
        .expect("run install.sh");
    assert!(status.success(), "install.sh failed");
    for file in [
        "bin/skiff",
        "bin/skiff-agent",
        "share/skiff/vmlinux",
        "share/skiff/initramfs.cpio",
        "libexec/skiff/virtiofsd",
    ] {
        assert!(prefix.join(file).is_file(), "{file} was not installed");
    }
    let home = vm.dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let clean = |args: &[&str]| {
        Run::from(
            Command::new(prefix.join("bin/skiff"))
                .env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .env("HOME", &home)
                .env("SKIFF_MACHINES", vm.dir.path())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run the installed skiff"),
        )
    };
    let started = clean(&["machine", "start"]).ok();
    assert!(
        started.stderr.contains("Creating machine default..."),
        "{}",
        started.stderr
    );
    let out = clean(&[
        "--backend",
        "vm",
        "run",
        "--rm",
        &image("busybox"),
        "uname",
        "-r",
    ])
    .ok();
    assert_eq!(out.stdout.trim(), guest_release());
    clean(&["machine", "rm", "-f"]).ok();
}

/// Memory back to the host: a container that allocates and frees 600 MiB, and a 400 MiB file
/// written and read (its pages stay in the guest's page cache), each leave QEMU's resident
/// memory within 200 MiB of its idle value soon after (free page reporting; PID 1 drops the
/// page cache once the guest idles).
#[test]
fn vm_memory_goes_back_to_the_host_after_an_allocation_and_a_file_read() {
    let vm = Vm::new();
    vm.init();
    vm.run(&["pull", "-q", &image("busybox")]).ok();
    let qemu = vm.pid_file("qemu.pid").expect("qemu pid");
    let rss_mib = || proc_status_kib(qemu, "VmRSS").expect("QEMU's VmRSS") >> 10;
    let comes_back = |idle: u64, what: &str| {
        let start = Instant::now();
        loop {
            let now = rss_mib();
            if now <= idle + 200 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{what}: QEMU still holds {now} MiB, {idle} MiB when idle"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Idle: after the boot's own cache has gone the same way.
    std::thread::sleep(Duration::from_secs(15));
    let idle = rss_mib();

    // dd reads /dev/zero into one 600 MiB buffer, touching every page of it.
    vm.run(&[
        "run",
        "--rm",
        &image("busybox"),
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=600M",
        "count=1",
    ])
    .ok();
    comes_back(idle, "after a 600 MiB allocation");

    vm.run(&["volume", "create", "cache"]).ok();
    vm.run(&[
        "run",
        "--rm",
        "-v",
        "cache:/data",
        &image("busybox"),
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/f bs=1M count=400 2>/dev/null && sync && cat /data/f >/dev/null",
    ])
    .ok();
    comes_back(idle, "after a 400 MiB file was written and read");
}
