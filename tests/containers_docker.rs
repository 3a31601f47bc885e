//! Containers through the real docker CLI (client 28) pointed at skiff's socket: the
//! tutorial commands, isolation as seen from inside, stdio, exit codes, cp, bad input.

use std::time::{Duration, Instant};

use skiff_e2e::*;

fn ready() -> (Skiff, String) {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok(); // starts the agent too
    (s, image("busybox"))
}

fn state(s: &Skiff, name: &str, field: &str) -> String {
    s.docker(&["inspect", "-f", &format!("{{{{.State.{field}}}}}"), name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[track_caller]
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_prints_passes_exit_codes_and_removes() {
    let (s, bb) = ready();
    let out = s.docker(&["run", "--rm", &bb, "echo", "hi"]).ok();
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(
        s.docker(&["ps", "-a", "-q"]).ok().stdout,
        "",
        "--rm removed it"
    );

    assert_eq!(
        s.docker(&["run", "--rm", &bb, "sh", "-c", "exit 3"]).code,
        3
    );
    s.docker(&["run", "--rm", &bb, "nosuchcommand"])
        .fails_with(127, "executable file not found");
    s.docker(&["run", "--rm", &bb, "/etc/passwd"])
        .fails_with(126, "permission denied");

    let piped = s.docker_stdin(&["run", "--rm", "-i", &bb, "cat"], b"hi from stdin\n");
    assert_eq!(piped.ok().stdout, "hi from stdin\n");

    // stdout and stderr stay apart.
    let both = s
        .docker(&["run", "--rm", &bb, "sh", "-c", "echo out; echo err >&2"])
        .ok();
    assert_eq!(
        (both.stdout.as_str(), both.stderr.as_str()),
        ("out\n", "err\n")
    );

    // Binary output arrives byte for byte.
    let bin = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", s.socket().display()))
        .args(["run", "--rm", &bb, "cat", "/bin/busybox"])
        .output()
        .expect("docker");
    let host = std::fs::read("/bin/busybox").ok();
    assert_eq!(bin.status.code(), Some(0));
    assert!(bin.stdout.len() > 100_000, "busybox binary came out whole");
    if let Some(h) = host {
        // The image's busybox is Debian's busybox-static, as on this host.
        assert_eq!(bin.stdout.len(), h.len());
    }
}

#[test]
fn isolation_as_seen_from_inside() {
    let (s, bb) = ready();
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; ps -o pid,comm | wc -l; \
                  hostname; mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED; \
                  echo b > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ; \
                  cat /etc/hosts | head -1; test -c /dev/null && echo devnull; \
                  ls /dev/pts/ptmx >/dev/null && echo devpts; grep -c mqueue /proc/mounts; \
                  touch /proc/sys/kernel/x 2>/dev/null || echo procsys-ro; \
                  ip link show lo | grep -q LOWER_UP && echo lo-up; ip -o link | wc -l";
    let out = s
        .docker(&["run", "--name", "iso", &bb, "sh", "-c", script])
        .ok();
    let lines = out.lines();
    assert_eq!(lines[0], "CapEff:\t00000000a80425fb", "{}", out.stdout);
    assert_eq!(lines[1], "Seccomp:\t2");
    // ps header + sh + ps + wc: only the container's own processes.
    assert!(
        lines[2].trim().parse::<u32>().unwrap() <= 4,
        "{}",
        out.stdout
    );
    let id = s
        .docker(&["inspect", "-f", "{{.Id}}", "iso"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(lines[3], &id[..12], "hostname is the short ID");
    assert!(!out.stdout.contains("MOUNTED"));
    assert!(!out.stdout.contains("SYSRQ"));
    assert_eq!(lines[4], "127.0.0.1\tlocalhost");
    assert!(out.stdout.contains("devnull") && out.stdout.contains("devpts"));
    assert!(out.stdout.contains("procsys-ro"));
    // Its own network namespace: its loopback, up, and its end of the default bridge.
    assert!(out.stdout.contains("lo-up"), "{}", out.stdout);
    assert_eq!(lines.last().map(|l| l.trim()), Some("2"), "{}", out.stdout);

    let named = s
        .docker(&[
            "run",
            "--rm",
            "-h",
            "boat",
            "-u",
            "nobody",
            &bb,
            "sh",
            "-c",
            "hostname; id",
        ])
        .ok();
    assert_eq!(
        named.stdout,
        "boat\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
    let layered = s.docker(&["run", "--rm", &image("layered")]).ok();
    assert!(
        layered
            .stdout
            .contains("user: uid=1000(app) gid=1000(app) groups=1000(app)"),
        "{}",
        layered.stdout
    );

    // cap-add / cap-drop / privileged change the effective set.
    let capped = s
        .docker(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            &bb,
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(capped.stdout, "CapEff:\t0000000000001000\n");
    let privileged = s
        .docker(&[
            "run",
            "--rm",
            "--privileged",
            &bb,
            "sh",
            "-c",
            "mount -t tmpfs none /tmp && echo MOUNTED",
        ])
        .ok();
    assert_eq!(privileged.stdout, "MOUNTED\n");

    s.docker(&["run", "--rm", "--read-only", &bb, "touch", "/x"])
        .fails_with(1, "Read-only file system");
    let tmpfs = s
        .docker(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/scratch",
            &bb,
            "sh",
            "-c",
            "echo ok > /scratch/f && cat /scratch/f",
        ])
        .ok();
    assert_eq!(tmpfs.stdout, "ok\n");
    let init = s
        .docker(&["run", "--rm", "--init", &bb, "cat", "/proc/1/cmdline"])
        .ok();
    assert!(
        init.stdout.starts_with("/sbin/docker-init"),
        "{:?}",
        init.stdout
    );
}

#[test]
fn limits_oom_and_pids() {
    let (s, bb) = ready();
    let oom = s.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        &bb,
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(oom.code, 137, "{oom:?}");
    assert_eq!(state(&s, "hog", "OOMKilled"), "true");
    assert_eq!(state(&s, "hog", "ExitCode"), "137");

    let forks = s.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        &bb,
        "sh",
        "-c",
        "for i in $(seq 1 40); do sleep 30 & done; kill $(jobs -p)",
    ]);
    assert!(forks.stderr.contains("can't fork"), "{forks:?}");

    let cpu = s
        .docker(&[
            "run",
            "--rm",
            "--cpus",
            "0.5",
            &bb,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ])
        .ok();
    assert!(cpu.stdout.starts_with("50000"), "{}", cpu.stdout);
}

#[test]
fn detached_lifecycle_logs_stop_start_kill_rm() {
    let (s, bb) = ready();
    let script = "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done";
    let id = s
        .docker(&["run", "-d", "--name", "web", &bb, "sh", "-c", script])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    wait_until("first log line", || {
        s.docker(&["logs", "web"]).stdout.contains("started")
    });
    let ps = s.docker(&["ps"]).ok();
    assert!(
        ps.stdout.contains(&id[..12]) && ps.stdout.contains("web"),
        "{}",
        ps.stdout
    );
    assert_eq!(state(&s, "web", "Status"), "running");

    // The same name again is refused and changes nothing.
    s.docker(&["run", "-d", "--name", "web", &bb, "true"])
        .fails_with(125, "is already in use");
    s.docker(&["rm", "web"])
        .fails_with(1, "container is running");

    assert_eq!(s.docker(&["stop", "web"]).ok().stdout, "web\n");
    assert_eq!(state(&s, "web", "Status"), "exited");
    assert_eq!(state(&s, "web", "ExitCode"), "0");
    assert!(s.docker(&["logs", "web"]).ok().stdout.contains("bye"));
    s.docker(&["exec", "web", "true"])
        .fails_with(1, "is not running");

    s.docker(&["start", "web"]).ok();
    assert_eq!(state(&s, "web", "Status"), "running");
    s.docker(&["restart", "-t", "5", "web"]).ok();
    assert_eq!(state(&s, "web", "Status"), "running");
    s.docker(&["kill", "web"]).ok();
    wait_until("kill", || state(&s, "web", "Status") == "exited");
    assert_eq!(state(&s, "web", "ExitCode"), "137");
    let logs = s.docker(&["logs", "web"]).ok().stdout;
    assert_eq!(logs.matches("started").count(), 3, "{logs}");

    let exited = s.docker(&["ps", "-a", "-q", "-f", "status=exited"]).ok();
    assert_eq!(exited.stdout.trim(), &id[..12]);
    s.docker(&["rm", &id[..12]]).ok();
    s.docker(&["inspect", "web"]).fails_with(1, "No such");
}

#[test]
fn logs_follow_tail_timestamps_and_wait() {
    let (s, bb) = ready();
    s.docker(&[
        "run",
        "-d",
        "--name",
        "talk",
        &bb,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; echo err$i >&2; sleep 0.2; done; exit 4",
    ])
    .ok();
    // -f ends when the container does, with everything.
    let f = s.docker(&["logs", "-f", "talk"]).ok();
    assert_eq!(f.stdout, "line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(f.stderr, "err1\nerr2\nerr3\nerr4\nerr5\n");
    assert_eq!(s.docker(&["wait", "talk"]).ok().stdout, "4\n");
    // As docker: the tail counts lines of both streams, then the streams part.
    let tail = s.docker(&["logs", "--tail", "2", "talk"]).ok();
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        ("line5\n", "err5\n")
    );
    let ts = s.docker(&["logs", "-t", "talk"]).ok().stdout;
    let first = ts.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("20") && first.ends_with("Z line1"),
        "{ts}"
    );
}

#[test]
fn exec_forms_and_exit_codes() {
    let (s, bb) = ready();
    s.docker(&["run", "-d", "--name", "box", &bb, "sleep", "1000"])
        .ok();
    s.docker(&["exec", "box", "true"]).ok();
    assert_eq!(s.docker(&["exec", "box", "sh", "-c", "exit 5"]).code, 5);
    s.docker(&["exec", "box", "nosuch"])
        .fails_with(127, "executable file not found");
    s.docker(&["exec", "box", "/etc/passwd"])
        .fails_with(126, "permission denied");
    let env = s
        .docker(&[
            "exec",
            "-e",
            "A=b",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "box",
            "sh",
            "-c",
            "echo $A; id -u; pwd",
        ])
        .ok();
    assert_eq!(env.stdout, "b\n65534\n/tmp\n");
    let piped = s.docker_stdin(&["exec", "-i", "box", "cat"], b"through exec\n");
    assert_eq!(piped.ok().stdout, "through exec\n");
    s.docker(&["exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d"])
        .ok();
    wait_until("detached exec", || {
        s.docker(&["exec", "box", "cat", "/tmp/d"]).stdout == "detached\n"
    });
    let tty = sh(&format!(
        "script -qec \"stty rows 33 cols 77; docker -H unix://{} exec -it box sh -c 'tty; stty size'\" /dev/null",
        s.socket().display()
    ));
    assert!(
        tty.contains("/dev/pts/") && tty.contains("33 77"),
        "{tty:?}"
    );
}

#[test]
fn cp_both_ways_and_hostile_streams() {
    let (s, bb) = ready();
    s.docker(&["run", "-d", "--name", "files", &bb, "sleep", "1000"])
        .ok();
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tree/sub")).unwrap();
    std::fs::write(d.join("tree/sub/a.txt"), "alpha").unwrap();
    std::os::unix::fs::symlink("sub/a.txt", d.join("tree/link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.join("tree/sub/a.txt"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();

    s.docker(&["cp", d.join("tree").to_str().unwrap(), "files:/tmp/"])
        .ok();
    let inside = s
        .docker(&[
            "exec",
            "files",
            "sh",
            "-c",
            "cat /tmp/tree/link; stat -c %a /tmp/tree/sub/a.txt; readlink /tmp/tree/link",
        ])
        .ok();
    assert_eq!(inside.stdout, "alpha751\nsub/a.txt\n");

    s.docker(&["cp", "files:/etc/hostname", d.join("h").to_str().unwrap()])
        .ok();
    let id = s.docker(&["inspect", "-f", "{{.Id}}", "files"]).ok().stdout;
    assert_eq!(
        std::fs::read_to_string(d.join("h")).unwrap(),
        format!("{}\n", &id[..12])
    );
    s.docker(&["cp", "files:/tmp/tree", d.join("back").to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(d.join("back/sub/a.txt")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read_link(d.join("back/link")).unwrap().to_str(),
        Some("sub/a.txt")
    );

    // A symlink inside the container pointing at an absolute path resolves in the container.
    s.docker(&[
        "exec",
        "files",
        "sh",
        "-c",
        "echo container-secret > /tmp/secret; ln -s /tmp/secret /tmp/abs",
    ])
    .ok();
    s.docker(&[
        "cp",
        "-L",
        "files:/tmp/abs",
        d.join("abs").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(d.join("abs")).unwrap(),
        "container-secret\n"
    );
    // `..` cannot climb out of the container's root.
    s.docker(&[
        "cp",
        "files:/../../../../etc/hostname",
        d.join("h2").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(d.join("h2")).unwrap(),
        format!("{}\n", &id[..12])
    );

    // Hostile tar streams into `cp -` are refused and write nothing.
    for (name, build) in [
        ("dotdot", "i=tarfile.TarInfo('../../escaped'); i.size=1; t.addfile(i, io.BytesIO(b'x'))"),
        ("device", "i=tarfile.TarInfo('escaped'); i.type=tarfile.CHRTYPE; i.devmajor=1; i.devminor=3; t.addfile(i)"),
        ("hardlink", "i=tarfile.TarInfo('escaped'); i.type=tarfile.LNKTYPE; i.linkname='../../etc/shadow'; t.addfile(i)"),
        ("symlink", "i=tarfile.TarInfo('escaped'); i.type=tarfile.SYMTYPE; i.linkname='../../../../x'; t.addfile(i)"),
    ] {
        let tar = d.join(format!("{name}.tar"));
        sh(&format!(
            "python3 -c \"import tarfile, io; t=tarfile.open('{}', 'w'); {build}; t.close()\"",
            tar.display()
        ));
        let bytes = std::fs::read(&tar).unwrap();
        s.docker_stdin(&["cp", "-", "files:/tmp"], &bytes)
            .fails_with(1, "refusing");
        let left = s.docker(&["exec", "files", "sh", "-c", "ls /tmp /escaped 2>/dev/null | grep -c escaped"]);
        assert_eq!(left.stdout.trim(), "0", "{name} wrote nothing");
    }
    // An absolute name lands below the destination, as dockerd unpacks it (testcontainers
    // sends every file so).
    sh(&format!(
        "python3 -c \"import tarfile, io; t=tarfile.open('{}', 'w'); i=tarfile.TarInfo('/rooted'); i.size=1; t.addfile(i, io.BytesIO(b'x')); t.close()\"",
        d.join("abs.tar").display()
    ));
    let bytes = std::fs::read(d.join("abs.tar")).unwrap();
    s.docker_stdin(&["cp", "-", "files:/tmp"], &bytes).ok();
    let landed = s.docker(&[
        "exec",
        "files",
        "sh",
        "-c",
        "cat /tmp/rooted; ls /rooted 2>&1",
    ]);
    assert_eq!(landed.stdout, "xls: /rooted: No such file or directory\n");
    s.docker(&["cp", "files:/nonexistent", d.join("x").to_str().unwrap()])
        .fails_with(1, "Could not find the file /nonexistent");

    // Owners: kept with -a, the container's root's without.
    let owned = d.join("owned");
    std::fs::write(&owned, "o").unwrap();
    std::os::unix::fs::chown(&owned, Some(1234), Some(2345)).unwrap();
    s.docker(&["cp", "-a", owned.to_str().unwrap(), "files:/tmp/kept"])
        .ok();
    s.docker(&["cp", owned.to_str().unwrap(), "files:/tmp/plain"])
        .ok();
    let owners = s
        .docker(&[
            "exec",
            "files",
            "stat",
            "-c",
            "%u:%g",
            "/tmp/kept",
            "/tmp/plain",
        ])
        .ok();
    assert_eq!(owners.stdout, "1234:2345\n0:0\n");
}

#[test]
fn attach_ps_filters_prune_and_bad_input() {
    let (s, bb) = ready();
    s.docker(&[
        "create", "--name", "made", "-l", "team=a", &bb, "echo", "attached",
    ])
    .ok();
    assert_eq!(state(&s, "made", "Status"), "created");
    let started = s.docker(&["start", "-a", "made"]).ok();
    assert_eq!(started.stdout, "attached\n");

    // attach to a running container: its later output, and its exit code.
    s.docker(&[
        "run",
        "-d",
        "--name",
        "late",
        &bb,
        "sh",
        "-c",
        "sleep 1; echo late; exit 6",
    ])
    .ok();
    let att = s.docker(&["attach", "late"]);
    assert_eq!((att.code, att.stdout.as_str()), (6, "late\n"));

    s.docker(&["run", "-d", "--name", "up", &bb, "sleep", "1000"])
        .ok();
    s.docker(&["run", "--name", "three", &bb, "sh", "-c", "exit 3"]);
    let names = |f: &[&str]| {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
        args.extend_from_slice(f);
        let mut v: Vec<String> = s
            .docker(&args)
            .ok()
            .lines()
            .iter()
            .map(|l| l.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&["-f", "status=exited"]), ["late", "made", "three"]);
    assert_eq!(names(&["-f", "exited=3"]), ["three"]);
    assert_eq!(names(&["-f", "label=team=a"]), ["made"]);
    assert_eq!(names(&["-f", "name=thr"]), ["three"]);
    assert_eq!(names(&["-f", "status=running"]), ["up"]);
    assert_eq!(names(&["-f", &format!("ancestor={bb}")]).len(), 4);

    // Bad input: clear errors, nothing changed.
    s.docker(&["stop", "nosuch"])
        .fails_with(1, "No such container: nosuch");
    s.docker(&["run", "--rm", "-m", "1k", &bb, "true"])
        .fails_with(125, "Minimum memory limit");
    s.docker(&["run", "--rm", "--cpus", "99", &bb, "true"])
        .fails_with(125, "Range of CPUs");
    s.docker(&["kill", "-s", "NOPE", "up"])
        .fails_with(1, "Invalid signal");
    s.docker(&["run", "--rm", "-u", "ghost", &bb, "true"])
        .fails_with(125, "unable to find user ghost");
    s.docker(&["run", "--rm", "--name", "x", &bb, "true"])
        .fails_with(125, "Invalid container name");
    assert_eq!(names(&[]), ["late", "made", "three", "up"]);

    // The tutorial's clean-ups.
    let ids = s
        .docker(&["ps", "-a", "-q", "-f", "status=exited"])
        .ok()
        .stdout;
    let mut rm = vec!["rm"];
    rm.extend(ids.split_whitespace());
    s.docker(&rm).ok();
    assert_eq!(names(&[]), ["up"]);
    s.docker(&["stop", "-t", "1", "up"]).ok();
    let pruned = s.docker(&["system", "prune", "-f"]).ok();
    assert!(
        pruned.stdout.contains("Total reclaimed space"),
        "{}",
        pruned.stdout
    );
    assert!(names(&[]).is_empty());
}

#[test]
fn cp_never_reaches_the_host_while_the_container_swaps_symlinks() {
    let (s, bb) = ready();
    // The same path holds "HOST" on the host and "CONTAINER" in the container.
    let marker = format!("skiff-cp-race-{}", std::process::id());
    let host_file = std::path::Path::new("/tmp").join(&marker);
    std::fs::write(&host_file, "HOST").unwrap();
    // Inside, /tmp/sw flips between a real directory and a symlink to "/" as fast as it can.
    let script = format!(
        "echo CONTAINER > /tmp/{marker}; mkdir -p /tmp/real/tmp; echo DIR > /tmp/real/tmp/{marker}; \
         while true; do ln -sfn / /tmp/sw; ln -sfn /tmp/real /tmp/sw; done"
    );
    s.docker(&["run", "-d", "--name", "swapper", &bb, "sh", "-c", &script])
        .ok();
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let dest = dir.path().join(format!("got{i}"));
        let r = s.docker(&[
            "cp",
            "-L",
            &format!("swapper:/tmp/sw/tmp/{marker}"),
            dest.to_str().unwrap(),
        ]);
        if r.code == 0 {
            let got = std::fs::read_to_string(&dest).unwrap_or_else(|e| {
                panic!(
                    "{e}: {r:?} {:?}",
                    std::fs::read_dir(dir.path())
                        .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                )
            });
            assert_ne!(got.trim(), "HOST", "cp read the host's file");
            seen.insert(got.trim().to_string());
        }
    }
    assert!(!seen.is_empty(), "some copies went through");
    // And into the container: writes land inside, never on the host.
    let upload = dir.path().join(&marker);
    std::fs::write(&upload, "UPLOADED").unwrap();
    for _ in 0..10 {
        let _ = s.docker(&["cp", upload.to_str().unwrap(), "swapper:/tmp/sw/tmp/"]);
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "HOST");
    let _ = std::fs::remove_file(&host_file);
}

#[test]
fn events_tell_what_happened_to_containers() {
    let (s, bb) = ready();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    s.docker(&[
        "run", "--rm", "--name", "evented", &bb, "sh", "-c", "exit 4",
    ]);
    s.docker(&["run", "-d", "--name", "other", &bb, "true"])
        .ok();
    let until = (t0 + 3).to_string();
    let ev = s
        .docker(&[
            "events",
            "--since",
            &t0.saturating_sub(1).to_string(),
            "--until",
            &until,
            "--filter",
            "container=evented",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
        ])
        .ok();
    let lines: Vec<&str> = ev.lines();
    assert_eq!(
        lines,
        [
            "container create evented <no value>",
            "container start evented <no value>",
            "container die evented 4",
            "container destroy evented <no value>",
        ],
        "{}",
        ev.stdout
    );
}
