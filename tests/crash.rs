//! Nothing lost: a pull killed at any point (SIGKILL of the agent) leaves no half image
//! visible, and the next pull completes.

use std::process::Stdio;
use std::time::Duration;

use skiff_e2e::*;

/// Every listed image is whole: `system check` finds the store consistent, each layer
/// directory exists and web's big file is intact.
fn assert_store_whole(s: &Skiff, big_sha: &str) {
    assert_check_consistent(s);
    if on_vm() {
        return assert_images_run(s, big_sha);
    }
    for id in s.image_ids() {
        let img = s.inspect(&id);
        let data = &img["GraphDriver"]["Data"];
        let mut dirs = vec![data["UpperDir"].as_str().expect("upper").to_string()];
        if let Some(l) = data["LowerDir"].as_str() {
            dirs.extend(l.split(':').map(String::from));
        }
        for d in &dirs {
            assert!(
                std::path::Path::new(d).is_dir(),
                "layer dir {d} of {id} missing"
            );
        }
        let big = format!("{}/www/big.bin", dirs[0]);
        if std::path::Path::new(&big).exists() {
            assert_eq!(
                sh(&format!("sha256sum {big}")).split_whitespace().next(),
                Some(big_sha),
                "big.bin intact"
            );
        }
    }
}

/// The store is in the VM: every image must start a container, and web's big file be whole.
fn assert_images_run(s: &Skiff, big_sha: &str) {
    for id in s.image_ids() {
        let out = s
            .run(&[
                "run",
                "--rm",
                "--entrypoint",
                "/bin/sh",
                &id,
                "-c",
                "test ! -e /www/big.bin || sha256sum /www/big.bin",
            ])
            .ok();
        if let Some(sum) = out.stdout.split_whitespace().next() {
            assert_eq!(sum, big_sha, "big.bin intact in {id}");
        }
    }
}

/// `skiff system check` exits 0 and says the store is consistent.
fn assert_check_consistent(s: &Skiff) {
    let out = s.run(&["system", "check"]);
    assert!(
        out.code == 0 && out.stdout.contains("The store is consistent."),
        "system check after a kill: exit {}\n{}{}",
        out.code,
        out.stdout,
        out.stderr
    );
}

#[test]
fn killed_pulls_leave_no_half_image_and_the_next_pull_completes() {
    let _shared = MACHINE.read().unwrap_or_else(|p| p.into_inner());
    let s = Skiff::new();
    let big_sha = web_big_sha();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        s.run(&["rmi", "-f", &image("web")]);
        let mut child = s
            .command()
            .args(["pull", "-q", &image("web")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pull");
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill_agent();
        let _ = child.wait();
        // The next command starts a fresh agent, which must find the store consistent.
        assert_store_whole(&s, &big_sha);
        assert_no_unpack_leftovers(&s, "leftovers cleared at start");
        s.run(&["pull", "-q", &image("web")]).ok();
        assert_store_whole(&s, &big_sha);
        assert!(s.image_ids().len() == 2, "busybox and web");
    }
}

/// A small deterministic generator, so that a failing sequence can be replayed with
/// `SKIFF_TEST_SEED`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn seeded_rng() -> Lcg {
    let seed = std::env::var("SKIFF_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("SKIFF_TEST_SEED={seed}");
    Lcg(seed)
}

/// `rounds` times: start one of pull, create, start, rm, prune, cp and rmi, and `kill`
/// something at a random moment of it (within `window_ms`, longer for pulls); then the next
/// command must work and `system check` must find the store consistent.
fn crash_loop(s: &Skiff, rounds: u64, window_ms: u64, kill: &dyn Fn(&Skiff)) {
    let mut rng = seeded_rng();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    s.run(&["pull", "-q", &image("web")]).ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "keeper",
        &image("busybox"),
        "sleep",
        "100000",
    ])
    .ok();
    let payload = test_tmp().join(format!("crash-payload-{}", std::process::id()));
    std::fs::write(&payload, vec![7u8; 8 << 20]).expect("payload");
    let payload_path = payload.to_string_lossy().into_owned();
    let cp_target = "keeper:/payload".to_string();
    let ops = ["pull", "create", "start", "rm", "prune", "cp", "image-rm"];
    for round in 0..rounds {
        let op = ops[(round % ops.len() as u64) as usize];
        let name = format!("victim{round}");
        // Set-up that must not be interrupted: what the killed command works on.
        match op {
            "pull" => {
                s.run(&["rmi", "-f", &image("web")]);
            }
            "start" | "rm" => {
                s.run(&["create", "--name", &name, &image("busybox"), "true"])
                    .ok();
            }
            "image-rm" => {
                s.run(&["tag", &image("busybox"), &format!("extra{round}")])
                    .ok();
            }
            "cp" => {
                // A kill of the whole VM takes the keeper with it.
                s.run(&["start", "keeper"]).ok();
            }
            _ => {}
        }
        let image_web = image("web");
        let image_busybox = image("busybox");
        let extra = format!("extra{round}");
        let args: Vec<&str> = match op {
            "pull" => vec!["pull", "-q", &image_web],
            "create" => vec!["create", "--name", &name, &image_busybox, "true"],
            "start" => vec!["start", &name],
            "rm" => vec!["rm", "-f", &name],
            "prune" => vec!["system", "prune", "-f"],
            "cp" => vec!["cp", &payload_path, &cp_target],
            _ => vec!["rmi", &extra],
        };
        let mut child = s
            .command()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the command to interrupt");
        let delay = rng.next(if op == "pull" {
            window_ms * 7
        } else {
            window_ms
        });
        std::thread::sleep(Duration::from_millis(delay));
        kill(s);
        let _ = child.wait();
        // The next command starts a fresh agent; it and the check must work.
        s.run(&["ps", "-a"]).ok();
        assert_check_consistent(s);
        if op == "pull" {
            s.run(&["pull", "-q", &image("web")]).ok();
        }
        // Whatever the kill left of the victim can be removed.
        let _ = s.run(&["rm", "-f", &name]);
    }
    let _ = std::fs::remove_file(&payload);
}

/// Killing the VMM takes down every engine of the shared machine, so that test runs alone;
/// the others kill only their own engine (their own agent natively) and run side by side.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The agent is SIGKILLed at a random moment of pull (download and unpack), create, start,
/// rm, prune and cp, 56 times; after each, the next command works and `system check` finds
/// the store consistent, and at the end every image that was whole before still runs.
#[test]
fn agent_killed_anywhere_leaves_a_consistent_store() {
    let _shared = MACHINE.read().unwrap_or_else(|p| p.into_inner());
    let s = Skiff::new();
    let big_sha = web_big_sha();
    crash_loop(&s, 56, 60, &|s: &Skiff| s.kill_agent());
    assert_check_consistent(&s);
    assert_images_run(&s, &big_sha);
    // Whatever a kill left half-made or half-removed is gone after one more restart: no
    // container directory, and no mount (a pinned network namespace) under the state dir.
    s.run(&["rm", "-f", "keeper"]).ok();
    s.kill_agent();
    let ps = s
        .run(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Status}} {{.Command}}",
        ])
        .ok()
        .stdout;
    assert_eq!(ps, "", "containers left");
    if !on_vm() {
        let containers = s.root().join("containers");
        let left: Vec<_> = std::fs::read_dir(&containers)
            .expect("containers dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "container dirs left: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let prefix = containers.to_string_lossy().into_owned();
        let under: Vec<&str> = mounts.lines().filter(|l| l.contains(&prefix)).collect();
        assert!(
            under.is_empty(),
            "mounts left under the state dir: {under:?}"
        );
    }
}

/// On the vm backend, the VMM itself (QEMU) is SIGKILLed at a random moment of the same
/// operations: the guest loses its page cache and every process at once. The next command
/// boots the machine again; the store must be consistent and every image still run.
/// `SKIFF_VMM_KILLS` sets the number of rounds (50 by default).
#[test]
fn vmm_killed_anywhere_leaves_a_consistent_store() {
    if vm_only("there is no VMM on the native backend") {
        return;
    }
    let _alone = MACHINE.write().unwrap_or_else(|p| p.into_inner());
    let rounds = std::env::var("SKIFF_VMM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let s = Skiff::new();
    let big_sha = web_big_sha();
    let machine = std::path::PathBuf::from(std::env::var_os("SKIFF_MACHINES").expect("machines"))
        .join(std::env::var("SKIFF_MACHINE").expect("machine"));
    crash_loop(&s, rounds, 1500, &|s: &Skiff| {
        let pid: i32 = std::fs::read_to_string(machine.join("qemu.pid"))
            .expect("qemu.pid")
            .trim()
            .parse()
            .expect("pid");
        kill_vmm(pid, || s.run(&["machine", "status"]).stdout);
    });
    assert_check_consistent(&s);
    assert_images_run(&s, &big_sha);
}
