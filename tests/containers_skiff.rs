//! Containers through skiff's own CLI: the tutorial, terminals, cp, and its error codes.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::*;

fn ready() -> (Skiff, String) {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    (s, image("busybox"))
}

fn field(s: &Skiff, name: &str, f: &str) -> String {
    s.run(&["inspect", "-f", f, name])
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

/// `skiff ARGS` on a real pty (util-linux `script`), with `input` typed into it.
fn on_pty(s: &Skiff, args: &str, input: &[(u64, &[u8])]) -> (i32, String) {
    let mut child = Command::new("script")
        .args([
            "-qefc",
            &format!(
                "stty rows 30 cols 90; {} {args}",
                bin_dir().join("skiff").display()
            ),
            "/dev/null",
        ])
        .envs(s.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    for (delay_ms, bytes) in input {
        std::thread::sleep(Duration::from_millis(*delay_ms));
        stdin.write_all(bytes).expect("type");
    }
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "pty session did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    (
        status.code().unwrap_or(-1),
        reader.join().unwrap_or_default(),
    )
}

#[test]
fn tutorial_run_ps_logs_stop_rm() {
    let (s, bb) = ready();
    assert_eq!(
        s.run(&["run", "--rm", &bb, "echo", "hi"]).ok().stdout,
        "hi\n"
    );
    assert_eq!(s.run(&["run", "--rm", &bb, "sh", "-c", "exit 3"]).code, 3);
    s.run(&["run", "--rm", &bb, "nosuch"])
        .fails_with(127, "executable file not found");
    s.run(&["run", "--rm", &bb, "/etc/passwd"])
        .fails_with(126, "permission denied");
    assert_eq!(
        s.run_stdin(&["run", "-i", "--rm", &bb, "cat"], "hi\n")
            .ok()
            .stdout,
        "hi\n"
    );
    let ep = s
        .run(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            &bb,
            "via",
            "entrypoint",
        ])
        .ok();
    assert_eq!(ep.stdout, "via entrypoint\n");
    let envf = tempfile::NamedTempFile::new_in(test_tmp()).unwrap();
    std::fs::write(envf.path(), "# comment\nFROM_FILE=yes\n").unwrap();
    let e = s
        .run(&[
            "run",
            "--rm",
            "--env-file",
            envf.path().to_str().unwrap(),
            &bb,
            "sh",
            "-c",
            "echo $FROM_FILE",
        ])
        .ok();
    assert_eq!(e.stdout, "yes\n");

    let id = s
        .run(&[
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-l",
            "k=v",
            &bb,
            "sh",
            "-c",
            "echo $X $(pwd); sleep 1000",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    // Container state (logs, environment, supervisor sockets) is root's alone (natively
    // on this host; on the vm backend it lives in the VM).
    if !on_vm() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.root().join("containers"))
            .expect("the state dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "containers dir mode {mode:o}");
    }
    wait_until("log", || s.run(&["logs", "web"]).stdout == "1 /tmp\n");
    let ps = s.run(&["ps"]).ok();
    let head = ps.lines()[0];
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(head.contains(col), "{head}");
    }
    assert!(
        ps.lines()[1].starts_with(&id[..12]) && ps.lines()[1].ends_with("web"),
        "{}",
        ps.stdout
    );
    assert!(ps.lines()[1].contains("Up "), "{}", ps.stdout);
    assert_eq!(field(&s, "web", "{{.Config.Labels.k}}"), "v");
    assert_eq!(field(&s, &id[..8], "{{.Name}}"), "/web", "unique ID prefix");

    s.run(&["rename", "web", "site"]).ok();
    s.run(&["pause", "site"]).ok();
    assert_eq!(field(&s, "site", "{{.State.Status}}"), "paused");
    s.run(&["unpause", "site"]).ok();
    let top = s.run(&["top", "site"]).ok();
    assert!(top.stdout.contains("sleep 1000"), "{}", top.stdout);

    s.run(&["rm", "site"])
        .fails_with(1, "stop the container before removing");
    s.run(&["stop", "-t", "1", "site"]).ok();
    s.run(&["run", "--name", "done", &bb, "true"]).ok();
    let stopped = s.run(&["ps", "-a", "-q", "-f", "status=exited"]).ok();
    assert_eq!(stopped.lines().len(), 2);
    let mut rm = vec!["rm"];
    rm.extend(stopped.lines());
    s.run(&rm).ok();
    assert_eq!(s.run(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn terminals_raw_mode_size_exit_and_detach() {
    let (s, bb) = ready();
    let (code, out) = on_pty(
        &s,
        &format!("run --rm -it {bb} sh -c 'tty; stty size; exit 5'"),
        &[],
    );
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("/dev/pts/0") && out.contains("30 90"),
        "{out:?}"
    );

    // Typing into a shell, then `exit`.
    let (code, out) = on_pty(
        &s,
        &format!("run --rm -it {bb} sh"),
        &[(800, b"echo typed-$((6*7))\r"), (300, b"exit\r")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("typed-42"), "{out:?}");

    // The window size follows the terminal's (SIGWINCH → resize).
    let resized = sh(&format!(
        "{}script -qefc \"stty rows 30 cols 90; \
         (sleep 1.5; stty rows 50 cols 100 </dev/tty) & {} run --rm -it {bb} sh -c 'stty size; sleep 3; stty size'\" /dev/null </dev/null",
        s.env_words(),
        bin_dir().join("skiff").display(),
    ));
    assert!(
        resized.contains("30 90") && resized.contains("50 100"),
        "{resized:?}"
    );

    // Ctrl-P Ctrl-Q leaves it running.
    let (code, _) = on_pty(
        &s,
        &format!("run -it --name keep {bb} sh"),
        &[(800, b"\x10\x11")],
    );
    assert_eq!(code, 0);
    assert_eq!(field(&s, "keep", "{{.State.Status}}"), "running");
    let (code, out) = on_pty(&s, "exec -it keep sh -c 'echo in-exec; exit 2'", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("in-exec"));
    s.run(&["rm", "-f", "keep"]).ok();
}

#[test]
fn cp_exec_and_inspect() {
    let (s, bb) = ready();
    s.run(&["run", "-d", "--name", "box", &bb, "sleep", "1000"])
        .ok();
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let f = dir.path().join("data.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&f, &payload).unwrap();
    s.run(&["cp", f.to_str().unwrap(), "box:/tmp/data.bin"])
        .ok();
    let sum = s
        .run(&["exec", "box", "md5sum", "/tmp/data.bin"])
        .ok()
        .stdout;
    let host = sh(&format!("md5sum < {}", f.display()));
    assert_eq!(
        sum.split_whitespace().next(),
        host.split_whitespace().next()
    );
    let back = dir.path().join("back.bin");
    s.run(&["cp", "box:/tmp/data.bin", back.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&back).unwrap(), payload);

    // Out of a container, setuid/setgid bits arrive only with -a, and device nodes are never
    // made on the host: each is skipped with a warning, and the rest of /dev is copied.
    s.run(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo x > /tmp/su && chmod 4755 /tmp/su && mkfifo /dev/skiff-fifo",
    ])
    .ok();
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    };
    let su = dir.path().join("su");
    s.run(&["cp", "box:/tmp/su", su.to_str().unwrap()]).ok();
    assert_eq!(mode(&su), 0o755, "setuid dropped without -a");
    let su_a = dir.path().join("su-a");
    s.run(&["cp", "-a", "box:/tmp/su", su_a.to_str().unwrap()])
        .ok();
    assert_eq!(mode(&su_a), 0o4755, "setuid kept with -a");
    let dev = dir.path().join("dev");
    let copied = s.run(&["cp", "box:/dev", dev.to_str().unwrap()]).ok();
    let skipped = format!(
        "Warning: skiff cp does not create device nodes on the host: skipped {} (character device 1:3)",
        dev.join("null").display()
    );
    assert!(copied.stderr.contains(&skipped), "{}", copied.stderr);
    for entry in std::fs::read_dir(&dev).unwrap() {
        use std::os::unix::fs::FileTypeExt;
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        assert!(
            !kind.is_char_device() && !kind.is_block_device(),
            "{:?} is a device node on the host",
            entry.path()
        );
    }
    assert!(std::fs::symlink_metadata(dev.join("skiff-fifo"))
        .map(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        })
        .unwrap_or(false));
    assert!(dev.join("shm").is_dir(), "the rest of /dev is there");

    assert_eq!(s.run(&["exec", "box", "sh", "-c", "exit 9"]).code, 9);
    // HOME as docker sets it: the user's passwd entry, `/` for a uid without one, and never
    // over what the user gave.
    let home = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        all.extend(["box", "sh", "-c", "echo $HOME"]);
        s.run(&all).ok().stdout
    };
    assert_eq!(home(&[]), "/root\n");
    assert_eq!(home(&["-u", "4321"]), "/\n");
    assert_eq!(home(&["-u", "nobody"]), "/nonexistent\n");
    assert_eq!(home(&["-e", "HOME=/x"]), "/x\n");
    let out = s
        .run(&["run", "--rm", "-u", "4321", &bb, "sh", "-c", "echo $HOME"])
        .ok();
    assert_eq!(out.stdout, "/\n");
    s.run(&["exec", "box", "nosuch"])
        .fails_with(127, "executable file not found");
    assert_eq!(
        s.run_stdin(&["exec", "-i", "box", "cat"], "via exec\n")
            .ok()
            .stdout,
        "via exec\n"
    );

    let v: serde_json::Value =
        serde_json::from_str(&s.run(&["inspect", "box"]).ok().stdout).unwrap();
    let c = &v[0];
    assert_eq!(c["Name"], "/box");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(c["Config"]["Cmd"][0], "sleep");
    assert_eq!(c["Path"], "sleep");
    assert!(
        c["HostConfig"].is_object() && c["NetworkSettings"].is_object() && c["Mounts"].is_array()
    );

    s.run(&["stop", "-t", "0", "box"]).ok();
    s.run(&["exec", "box", "true"])
        .fails_with(1, "is not running");
    // cp works on a stopped container too.
    s.run(&["cp", f.to_str().unwrap(), "box:/copied"]).ok();
    s.run(&["start", "box"]).ok();
    assert_eq!(
        s.run(&["exec", "box", "sh", "-c", "wc -c < /copied"])
            .ok()
            .stdout
            .trim(),
        "3000000"
    );
}

#[test]
fn bad_input_is_refused_with_docker_codes() {
    let (s, bb) = ready();
    s.run(&["stop", "nosuch"])
        .fails_with(1, "No such container: nosuch");
    s.run(&["run", "-m", "lots", &bb, "true"])
        .fails_with(125, "invalid");
    s.run(&["run", "--cpus", "abc", &bb, "true"])
        .fails_with(125, "invalid");
    s.run(&["run", "--restart", "sometimes", &bb, "true"])
        .fails_with(125, "restart");
    // A flag skiff lacks is named as such, not taken for an image called "-Q".
    s.run(&["run", "--rm", "-Q", &bb, "true"])
        .fails_with(125, "unknown shorthand flag: 'Q' in -Q");
    s.run(&["run", "--rm", "-u", "ghost", &bb, "true"])
        .fails_with(125, "unable to find user ghost");
    s.run(&["run", "--cap-add", "NOT_A_CAP", &bb, "true"])
        .fails_with(125, "unknown capability");
    s.run(&["run", "-d", "--name", "dup", &bb, "sleep", "100"])
        .ok();
    s.run(&["run", "--name", "dup", &bb, "true"])
        .fails_with(125, "already in use");
    s.run(&["kill", "-s", "NOPE", "dup"])
        .fails_with(1, "Invalid signal");
    let listed = s.run(&["ps", "-a", "--format", "{{.Names}}"]).ok();
    assert_eq!(
        listed.stdout, "dup\n",
        "failed commands left nothing behind"
    );
    // The image of a container stays while the container does.
    s.run(&["rmi", &bb]).fails_with(1, "must force");
    let id = field(&s, "dup", "{{.Image}}");
    s.run(&["rmi", &id])
        .fails_with(1, "being used by running container");
    s.run(&["image", "prune", "-a", "-f"]).ok();
    assert_eq!(
        s.image_ids(),
        std::slice::from_ref(&id),
        "prune keeps images in use"
    );
    s.run(&["rm", "-f", "dup"]).ok();
    let pruned = s.run(&["system", "prune", "-f"]).ok();
    assert!(
        pruned.stdout.contains("Total reclaimed space"),
        "{}",
        pruned.stdout
    );
}

#[test]
fn stats_and_disk_usage_match_docker() {
    let (s, bb) = ready();
    s.run(&[
        "run",
        "-d",
        "--name",
        "measured",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        &bb,
        "sleep",
        "1000",
    ])
    .ok();
    let st = s.run(&["stats", "--no-stream", "measured"]).ok();
    let row = st.lines().get(1).map(|l| l.to_string()).unwrap_or_default();
    assert!(
        row.contains("measured") && row.contains("/ 64MiB"),
        "{}",
        st.stdout
    );
    assert!(row.trim_end().ends_with(" 1"), "one process: {row}");
    let d = s
        .docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "measured",
        ])
        .ok();
    assert!(
        d.stdout.starts_with("measured ") && d.stdout.contains("/ 64MiB"),
        "{}",
        d.stdout
    );

    let df = s.run(&["system", "df"]).ok();
    assert!(df.lines()[0].starts_with("TYPE"), "{}", df.stdout);
    assert!(
        df.stdout.contains("Images ") && df.stdout.contains("Containers "),
        "{}",
        df.stdout
    );
    assert_eq!(df.stdout, s.docker(&["system", "df"]).ok().stdout);
    s.run(&["rm", "-f", "measured"]).ok();
}

/// `--security-opt` takes effect as docker's does, and what skiff cannot apply is refused
/// instead of dropped: the container never runs with other confinement than asked for.
#[test]
fn security_opts_take_effect_or_are_refused() {
    let (s, img) = ready();
    let status = |opts: &[&str]| {
        let mut args = vec!["run", "--rm"];
        for o in opts {
            args.extend(["--security-opt", o]);
        }
        args.extend([&img, "sh", "-c"]);
        args.push("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'; grep -c ' /proc/sys ' /proc/self/mountinfo; true");
        s.run(&args).ok().stdout
    };
    assert_eq!(status(&[]), "NoNewPrivs:0\nSeccomp:2\n1\n");
    assert_eq!(
        status(&["seccomp=unconfined"]),
        "NoNewPrivs:0\nSeccomp:0\n1\n"
    );
    assert_eq!(
        status(&["no-new-privileges"]),
        "NoNewPrivs:1\nSeccomp:2\n1\n"
    );
    assert_eq!(
        status(&["systempaths=unconfined"]),
        "NoNewPrivs:0\nSeccomp:2\n0\n"
    );
    assert_eq!(
        status(&["apparmor=unconfined", "label=disable"]),
        "NoNewPrivs:0\nSeccomp:2\n1\n"
    );

    let before = s.run(&["ps", "-aq"]).ok().stdout;
    s.run(&["run", "--rm", "--security-opt", "bogus=1", &img, "true"])
        .fails_with(125, "invalid --security-opt \"bogus=1\"");
    s.run(&["run", "--rm", "--security-opt", "seccomp={}", &img, "true"])
        .fails_with(125, "custom seccomp profiles are not supported");
    assert_eq!(
        s.run(&["ps", "-aq"]).ok().stdout,
        before,
        "a refused run left a container"
    );
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// `events` with `--since`/`--until` prints the past and then the live events in docker's
/// line format, and ends at `until`; `--filter` and `--format` as docker's.
#[test]
fn events_stream_between_since_and_until() {
    let (s, img) = ready();
    let t0 = format!("{:.3}", unix_now() - 1.0);
    s.run(&["run", "--name", "evt-past", &img, "true"]).ok();
    let past_id = field(&s, "evt-past", "{{.Id}}");
    let t1 = format!("{:.3}", unix_now() + 1.0);

    let out = s.run(&["events", "--since", &t0, "--until", &t1]).ok();
    let create = out
        .lines()
        .into_iter()
        .find(|l| l.contains(" container create "))
        .unwrap_or_else(|| panic!("no create event:\n{}", out.stdout))
        .to_string();
    // "2026-…T…:…:….123456789Z container create <full id> (image=…, name=evt-past)"
    let (when, rest) = create.split_once(' ').expect("time");
    // Nine fraction digits always, then "Z" or the local offset.
    assert!(
        when.len() >= 30
            && &when[10..11] == "T"
            && &when[19..20] == "."
            && when[20..29].bytes().all(|b| b.is_ascii_digit())
            && (&when[29..] == "Z" || when[29..].len() == 6),
        "{create}"
    );
    assert!(
        rest.starts_with(&format!("container create {past_id} (")),
        "{create}"
    );
    assert!(rest.contains(&format!("image={img}")), "{create}");
    assert!(rest.ends_with("name=evt-past)"), "{create}");
    let start = out.stdout.find(" container start ").expect("start event");
    assert!(out.stdout.find(" container create ").expect("create") < start);
    assert_eq!(
        out.stdout,
        s.run(&["system", "events", "--since", &t0, "--until", &t1])
            .ok()
            .stdout
    );

    let only_start = s
        .run(&[
            "events",
            "--since",
            &t0,
            "--until",
            &t1,
            "-f",
            "event=start",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.ID}}",
        ])
        .ok();
    assert_eq!(
        only_start.stdout,
        format!("container start evt-past {past_id}\n")
    );
    let json = s
        .run(&[
            "events",
            "--since",
            &t0,
            "--until",
            &t1,
            "--format",
            "json",
            "--filter",
            "container=evt-past",
        ])
        .ok();
    let first: serde_json::Value =
        serde_json::from_str(json.lines()[0]).expect("a JSON event per line");
    assert_eq!(first["Type"], "container");
    assert_eq!(first["Action"], "create");
    assert_eq!(first["Actor"]["Attributes"]["name"], "evt-past");
    s.run(&["events", "--format", "{{.Type"])
        .fails_with(64, "Error parsing format: ");
    s.run(&["events", "--since", "yesterday"]).fails_with(
        1,
        "failed to parse value as time or duration: \"yesterday\"",
    );

    // Live: what happens after the call is streamed as it happens, until `until`.
    let until = format!("{:.3}", unix_now() + 6.0);
    let live = s
        .command()
        .args([
            "events",
            "--until",
            &until,
            "--filter",
            "container=evt-live",
            "--format",
            "{{.Action}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("events");
    std::thread::sleep(Duration::from_millis(500));
    s.run(&["run", "-d", "--name", "evt-live", &img, "sleep", "30"])
        .ok();
    let started = Instant::now();
    let done = live.wait_with_output().expect("events ends");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let actions = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(actions.starts_with("create\n"), "{actions}");
    assert!(actions.contains("start\n"), "{actions}");
    s.run(&["rm", "-f", "evt-past", "evt-live"]).ok();
}

/// `update` changes a container's limits and restart policy, names each container it
/// updated, and reports the ones it could not; with no flag it refuses as docker does.
#[test]
fn update_changes_limits_and_restart_policy() {
    let (s, img) = ready();
    s.run(&["run", "-d", "--name", "upd", &img, "sleep", "300"])
        .ok();
    let out = s
        .run(&[
            "update",
            "--memory",
            "64m",
            "--restart",
            "on-failure:2",
            "upd",
        ])
        .ok();
    assert_eq!(out.stdout, "upd\n");
    assert_eq!(field(&s, "upd", "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(
        field(&s, "upd", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"MaximumRetryCount":2,"Name":"on-failure"}"#
    );
    // The running container's cgroup has the new limit (v2's file, or v1's).
    let limit = s
        .run(&[
            "exec", "upd", "sh", "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .ok();
    assert_eq!(limit.stdout.trim(), "67108864");

    let both = s
        .run(&[
            "container",
            "update",
            "--cpu-shares",
            "512",
            "upd",
            "no-such-upd",
        ])
        .fails_with(
            1,
            "Error response from daemon: No such container: no-such-upd",
        );
    assert_eq!(both.stdout, "upd\n");
    assert_eq!(field(&s, "upd", "{{.HostConfig.CpuShares}}"), "512");
    assert_eq!(
        field(&s, "upd", "{{.HostConfig.Memory}}"),
        "67108864",
        "untouched"
    );

    s.run(&["update", "upd"]).fails_with(
        1,
        "you must provide one or more flags when using this command",
    );
    s.run(&["update", "--memory", "lots", "upd"]).fails_with(
        125,
        "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'",
    );
    s.run(&["rm", "-f", "upd"]).ok();
}

/// `inspect --size` adds `SizeRw` and `SizeRootFs` (the figures `ps --size` shows); without
/// it they are absent, as with dockerd.
#[test]
fn inspect_size_adds_the_sizes() {
    let (s, img) = ready();
    s.run(&[
        "run",
        "--name",
        "sized",
        &img,
        "sh",
        "-c",
        "head -c 300000 /dev/zero > /big",
    ])
    .ok();
    let inspect = |args: &[&str]| -> serde_json::Value {
        let out = s.run(args).ok();
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("inspect JSON")[0].clone()
    };
    for args in [
        &["inspect", "--size", "sized"][..],
        &["container", "inspect", "-s", "sized"][..],
    ] {
        let v = inspect(args);
        let rw = v["SizeRw"]
            .as_u64()
            .unwrap_or_else(|| panic!("{args:?}: {v}"));
        let root = v["SizeRootFs"].as_u64().expect("SizeRootFs");
        assert!(rw >= 300_000, "{rw}");
        assert!(root > rw, "the image counts too: {root} {rw}");
        let (_, list) = s.api("GET", "/containers/json?all=1&size=1");
        let list: serde_json::Value = serde_json::from_str(&list).expect("list JSON");
        let listed = list
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["Names"][0] == "/sized")
            .expect("listed");
        assert_eq!(listed["SizeRw"], v["SizeRw"]);
        assert_eq!(listed["SizeRootFs"], v["SizeRootFs"]);
    }
    for args in [
        &["inspect", "sized"][..],
        &["container", "inspect", "sized"][..],
    ] {
        let v = inspect(args);
        assert!(
            v.get("SizeRw").is_none() && v.get("SizeRootFs").is_none(),
            "{v}"
        );
    }
    s.run(&["rm", "sized"]).ok();
}
