//! Volumes and bind mounts on both backends: named volumes that outlive their containers,
//! docker's copy-up, anonymous volumes, bind mounts read and written from both sides, the
//! `--mount` forms, the docker CLI's commands, and bad input refused with nothing changed.
//! In the VM a bind mount's host path must be in one of the machine's shares: the suite's
//! machine shares `SKIFF_TEST_SHARE`, a directory owned by an unprivileged uid.

use std::os::unix::fs::MetadataExt;

use skiff_e2e::*;

fn ready() -> (Skiff, String) {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    (s, image("busybox"))
}

/// A container's `docker inspect`.
fn inspect(s: &Skiff, name: &str) -> serde_json::Value {
    let out = s.run(&["container", "inspect", name]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    v[0].clone()
}

fn volume_names(s: &Skiff) -> Vec<String> {
    s.run(&["volume", "ls", "-q"])
        .ok()
        .stdout
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_named_volume_outlives_its_container_and_survives_the_engine() {
    let (s, bb) = ready();
    assert_eq!(
        s.run(&["volume", "create", "--label", "team=a", "data1"])
            .ok()
            .stdout
            .trim(),
        "data1"
    );
    s.run(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        &bb,
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let read = s
        .run(&["run", "--rm", "-v", "data1:/data:ro", &bb, "cat", "/data/f"])
        .ok();
    assert_eq!(read.stdout, "kept\n");
    s.run(&[
        "run",
        "--rm",
        "-v",
        "data1:/data:ro",
        &bb,
        "sh",
        "-c",
        "echo x > /data/g",
    ])
    .fails_with(1, "Read-only file system");

    let ls = s.run(&["volume", "ls"]).ok();
    assert!(
        ls.stdout.starts_with("DRIVER    VOLUME NAME\n"),
        "{}",
        ls.stdout
    );
    assert!(ls.stdout.contains("local     data1\n"), "{}", ls.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&s.run(&["volume", "inspect", "data1"]).ok().stdout).expect("json");
    assert_eq!(v[0]["Name"], "data1");
    assert_eq!(v[0]["Labels"]["team"], "a");
    assert_eq!(v[0]["Driver"], "local");

    // In use by a container, even a stopped one: refused, and the volume stays.
    let id = s
        .run(&["create", "-v", "data1:/data", &bb, "true"])
        .ok()
        .stdout
        .trim()
        .to_string();
    s.run(&["volume", "rm", "data1"])
        .fails_with(1, &format!("remove data1: volume is in use - [{id}]"));
    let mounts = inspect(&s, &id)["Mounts"].clone();
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "data1");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Mode"], "z");
    assert_eq!(mounts[0]["RW"], true);
    // A stopped container's volume is mounted for a copy, as docker does: what goes in is
    // in the volume, not hidden in the container's own layer below it.
    let local = s.dir.path().join("local.txt");
    std::fs::write(&local, "copied in").expect("write");
    s.run(&[
        "cp",
        local.to_str().expect("utf-8"),
        &format!("{id}:/data/x"),
    ])
    .ok();
    let read = s
        .run(&["run", "--rm", "-v", "data1:/v", &bb, "cat", "/v/x", "/v/f"])
        .ok();
    assert_eq!(read.stdout, "copied inkept\n");
    let out = s.dir.path().join("out.txt");
    s.run(&["cp", &format!("{id}:/data/f"), out.to_str().expect("utf-8")])
        .ok();
    assert_eq!(std::fs::read_to_string(&out).expect("out.txt"), "kept\n");
    let ps = s.run(&["ps", "-a", "--filter", "volume=data1", "-q"]).ok();
    assert_eq!(ps.stdout.trim(), &id[..12]);
    s.run(&["rm", "-v", &id]).ok();
    // `rm -v` takes anonymous volumes only: a named one stays.
    assert!(volume_names(&s).contains(&"data1".to_string()));

    // The store survives the engine's crash.
    s.kill_agent();
    let read = s
        .run(&["run", "--rm", "-v", "data1:/data", &bb, "cat", "/data/f"])
        .ok();
    assert_eq!(read.stdout, "kept\n");
    s.run(&["volume", "rm", "data1"]).ok();
    s.run(&["volume", "inspect", "data1"])
        .fails_with(1, "get data1: no such volume");
}

#[test]
fn a_new_volume_starts_with_the_images_files_and_the_images_volumes_are_anonymous() {
    let s = Skiff::new();
    let img = image("withvolume");
    s.run(&["pull", &img]).ok();

    // The image's VOLUME /data: an anonymous volume, filled from the image with its owners.
    let out = s
        .run(&[
            "run",
            "--name",
            "anon",
            &img,
            "sh",
            "-c",
            "cat /data/seed; stat -c '%u:%g %a' /data /data/sub/deep",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "seeded by the image\n1000:1000 750\n1000:1000 600\n"
    );
    let m = inspect(&s, "anon")["Mounts"].clone();
    let anon = m[0]["Name"].as_str().expect("a volume name").to_string();
    assert_eq!(anon.len(), 64, "{m}");
    assert_eq!(
        (m[0]["Destination"].as_str(), m[0]["Mode"].as_str()),
        (Some("/data"), Some(""))
    );
    assert!(volume_names(&s).contains(&anon));
    s.run(&["rm", "-v", "anon"]).ok();
    assert!(!volume_names(&s).contains(&anon), "rm -v keeps {anon}");

    // A named volume over the same place is filled the same way, once: what the container
    // changes is what the next one sees.
    s.run(&[
        "run",
        "--rm",
        "-v",
        "seeded:/data",
        &img,
        "sh",
        "-c",
        "echo changed > /data/seed",
    ])
    .ok();
    let out = s
        .run(&[
            "run",
            "--rm",
            "-v",
            "seeded:/data",
            &img,
            "cat",
            "/data/seed",
        ])
        .ok();
    assert_eq!(out.stdout, "changed\n");
    // nocopy: empty.
    let out = s
        .run(&[
            "run",
            "--rm",
            "-v",
            "bare:/data:nocopy",
            &img,
            "ls",
            "-A",
            "/data",
        ])
        .ok();
    assert_eq!(out.stdout, "");
    // `run --rm` removes the anonymous volume it made.
    let before = volume_names(&s).len();
    s.run(&["run", "--rm", "-v", "/scratch", &img, "true"]).ok();
    assert_eq!(volume_names(&s).len(), before);

    // --volumes-from: the other container's volumes, read-only when asked.
    s.run(&["create", "--name", "owner", "-v", "seeded:/data", &img])
        .ok();
    let out = s
        .run(&[
            "run",
            "--rm",
            "--volumes-from",
            "owner:ro",
            &img,
            "sh",
            "-c",
            "cat /data/seed; touch /data/x",
        ])
        .fails_with(1, "Read-only file system");
    assert_eq!(out.stdout, "changed\n");

    // Volumes in `system df -v`, and prune: anonymous unused ones by default, all with -a.
    s.run(&["create", "--name", "keeper", "-v", "/keep", &img])
        .ok();
    // A create that fails (the name is taken) removes only what it made, not the volumes it
    // would have shared with `--volumes-from`.
    s.run(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--volumes-from",
        "keeper",
        &img,
        "true",
    ])
    .fails_with(125, "is already in use");
    s.run(&["volume", "create", "loose"]).ok();
    let df = s.run(&["system", "df", "-v"]).ok();
    assert!(
        df.stdout.contains("Local Volumes space usage:"),
        "{}",
        df.stdout
    );
    assert!(df.stdout.contains("seeded"), "{}", df.stdout);
    let pruned = s.run(&["volume", "prune", "-f"]).ok();
    assert!(
        pruned.stdout.contains("Total reclaimed space:"),
        "{}",
        pruned.stdout
    );
    let names = volume_names(&s);
    assert!(names.contains(&"loose".to_string()) && names.contains(&"seeded".to_string()));
    s.run(&["volume", "prune", "-af"]).ok();
    let names = volume_names(&s);
    assert!(!names.contains(&"loose".to_string()), "{names:?}");
    // Still used: `owner`'s named one, `keeper`'s two anonymous ones (its `-v /keep` and the
    // image's /data).
    let mut kept: Vec<String> = inspect(&s, "keeper")["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["Name"].as_str().expect("name").to_string())
        .collect();
    kept.push("seeded".into());
    kept.sort();
    let mut names = names;
    names.sort();
    assert_eq!(names, kept);
}

#[test]
fn a_bind_mount_is_read_and_written_from_both_sides() {
    let (s, bb) = ready();
    let dir = host_dir("bind-");
    let d = dir.path().to_str().expect("utf-8 path").to_string();
    std::fs::write(dir.path().join("f.txt"), "from-host\n").expect("write");

    let out = s
        .run(&[
            "run",
            "--rm",
            "-v",
            &format!("{d}:/src"),
            &bb,
            "sh",
            "-c",
            "cat /src/f.txt; echo from-container > /src/back.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "from-host\n");
    let back = dir.path().join("back.txt");
    assert_eq!(
        std::fs::read_to_string(&back).expect("back.txt"),
        "from-container\n"
    );
    if on_vm() {
        // The container's root writes as the share's owner, as under Docker Desktop.
        let share_owner = std::fs::metadata(dir.path().parent().expect("share"))
            .expect("share")
            .uid();
        assert_eq!(std::fs::metadata(&back).expect("back").uid(), share_owner);
    }
    s.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{d}:/src:ro"),
        &bb,
        "sh",
        "-c",
        "echo x > /src/no",
    ])
    .fails_with(1, "Read-only file system");
    assert!(!dir.path().join("no").exists());

    // A file changed on the host while the container runs is what the container reads next.
    s.run(&[
        "run",
        "-d",
        "--name",
        "watch",
        "-v",
        &format!("{d}:/src"),
        &bb,
        "sleep",
        "600",
    ])
    .ok();
    std::fs::write(dir.path().join("f.txt"), "edited\n").expect("edit");
    let out = s.run(&["exec", "watch", "cat", "/src/f.txt"]).ok();
    assert_eq!(out.stdout, "edited\n");
    // A single file binds too.
    let out = s
        .run(&[
            "run",
            "--rm",
            "-v",
            &format!("{d}/f.txt:/f.txt:ro"),
            &bb,
            "cat",
            "/f.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "edited\n");
    let m = inspect(&s, "watch")["Mounts"].clone();
    assert_eq!(m[0]["Type"], "bind");
    assert_eq!(m[0]["Source"].as_str(), Some(d.as_str()));
    assert_eq!(
        (m[0]["RW"].as_bool(), m[0]["Propagation"].as_str()),
        (Some(true), Some("rprivate"))
    );
    s.run(&["rm", "-f", "watch"]).ok();

    // -v makes a missing host directory; --mount refuses it.
    let made = dir.path().join("made/here");
    s.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", made.display()),
        &bb,
        "true",
    ])
    .ok();
    assert!(made.is_dir());
    s.run(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={}/missing,dst=/m", d),
        &bb,
        "true",
    ])
    .fails_with(125, "bind source path does not exist");

    // --mount forms: a read-only bind and a sized tmpfs.
    let out = s
        .run(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={d},dst=/m,readonly"),
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            &bb,
            "sh",
            "-c",
            "cat /m/f.txt; df -k /t | tail -n 1; touch /m/x",
        ])
        .fails_with(1, "Read-only file system");
    assert!(out.stdout.starts_with("edited\ntmpfs"), "{}", out.stdout);
    assert!(out.stdout.contains(" 1024 "), "{}", out.stdout);

    // cp into a stopped container reaches its binds as its processes would, and refuses
    // what it cannot do right: a read-only bind, a tmpfs that exists only while it runs.
    s.run(&[
        "create",
        "--name",
        "parked",
        "-v",
        &format!("{d}:/src"),
        "-v",
        &format!("{d}:/ro:ro"),
        "--tmpfs",
        "/scratch",
        &bb,
        "true",
    ])
    .ok();
    let local = s.dir.path().join("in.txt");
    std::fs::write(&local, "via cp\n").expect("write");
    let local = local.to_str().expect("utf-8");
    s.run(&["cp", local, "parked:/src/cp-in.txt"]).ok();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cp-in.txt")).expect("cp-in.txt"),
        "via cp\n"
    );
    s.run(&["cp", local, "parked:/ro/no.txt"])
        .fails_with(1, "mounted volume is marked read-only");
    s.run(&["cp", local, "parked:/scratch/no.txt"])
        .fails_with(1, "/scratch is its tmpfs mount");
    assert!(!dir.path().join("no.txt").exists());
    s.run(&["rm", "parked"]).ok();

    // The local driver's options: a volume that is a bounded tmpfs, and one that is a bind of
    // a host directory (in the VM, through its share).
    s.run(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m",
        "scratch",
    ])
    .ok();
    let out = s
        .run(&[
            "run",
            "--rm",
            "-v",
            "scratch:/s",
            &bb,
            "sh",
            "-c",
            "df -k /s | tail -n 1",
        ])
        .ok();
    assert!(
        out.stdout.starts_with("tmpfs") && out.stdout.contains(" 2048 "),
        "{}",
        out.stdout
    );
    s.run(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &format!("device={d}"),
        "hostdir",
    ])
    .ok();
    let out = s
        .run(&["run", "--rm", "-v", "hostdir:/h", &bb, "cat", "/h/f.txt"])
        .ok();
    assert_eq!(out.stdout, "edited\n");
    // Removing the volume leaves the host's files where they are.
    s.run(&["volume", "rm", "hostdir", "scratch"]).ok();
    assert!(dir.path().join("f.txt").exists());
}

#[test]
fn the_docker_cli_drives_volumes_and_mounts() {
    let (s, bb) = ready();
    let dir = host_dir("dbind-");
    let d = dir.path().to_str().expect("utf-8").to_string();
    std::fs::write(dir.path().join("f.txt"), "from-host\n").expect("write");

    assert_eq!(
        s.docker(&["volume", "create", "--label", "team=a", "capvol"])
            .ok()
            .stdout,
        "capvol\n"
    );
    let ls = s.docker(&["volume", "ls"]).ok();
    assert!(ls.stdout.contains("local     capvol"), "{}", ls.stdout);
    let dangling = s
        .docker(&["volume", "ls", "-q", "-f", "dangling=true"])
        .ok();
    assert_eq!(dangling.stdout, "capvol\n");
    let out = s
        .docker(&[
            "run",
            "--rm",
            "-v",
            "capvol:/data",
            &bb,
            "sh",
            "-c",
            "echo x > /data/f; ls /data",
        ])
        .ok();
    assert_eq!(out.stdout, "f\n");
    let out = s
        .docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{d}:/src:ro"),
            &bb,
            "cat",
            "/src/f.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "from-host\n");
    let out = s
        .docker(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={d},dst=/m,readonly"),
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            &bb,
            "sh",
            "-c",
            "cat /m/f.txt; df /t | tail -n 1",
        ])
        .ok();
    assert!(out.stdout.starts_with("from-host\ntmpfs"), "{}", out.stdout);
    s.docker(&[
        "run",
        "-d",
        "--name",
        "capuse",
        "-v",
        "capvol:/data",
        &bb,
        "sleep",
        "100",
    ])
    .ok();
    s.docker(&["volume", "rm", "capvol"])
        .fails_with(1, "remove capvol: volume is in use - [");
    s.docker(&["rm", "-f", "capuse"]).ok();
    assert_eq!(
        s.docker(&["volume", "rm", "capvol"]).ok().stdout,
        "capvol\n"
    );
    s.docker(&["run", "--name", "capanon", "-v", "/scratch", &bb, "true"])
        .ok();
    let m = s
        .docker(&["inspect", "-f", "{{json .Mounts}}", "capanon"])
        .ok();
    assert!(
        m.stdout.contains("\"Destination\":\"/scratch\""),
        "{}",
        m.stdout
    );
    s.docker(&["rm", "capanon"]).ok();
    // The anonymous volume outlived its container (no -v): prune takes it.
    let p = s.docker(&["volume", "prune", "-f"]).ok();
    assert!(p.stdout.starts_with("Deleted Volumes:\n"), "{}", p.stdout);
    assert_eq!(s.docker(&["volume", "ls", "-q"]).ok().stdout, "");
}

/// `--mount type=volume,volume-subpath=…` mounts a directory or a file of the volume, follows
/// links that stay inside it, and refuses one that leads out, a path the volume lacks and one
/// that climbs out with `..` (moby's own test of the feature, on skiff).
#[test]
fn a_volume_subpath_mounts_part_of_the_volume_and_never_leads_out() {
    let (s, bb) = ready();
    s.run(&["volume", "create", "parts"]).ok();
    // A command in a container that has the whole volume at /v: its output.
    let whole = |cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "-v", "parts:/v", bb.as_str()];
        args.extend_from_slice(cmd);
        s.run(&args).ok().stdout
    };
    whole(&[
        "sh",
        "-c",
        "echo foo > /v/bar.txt && mkdir /v/subdir /v/bin /v/hack && echo world > /v/subdir/hello.txt \
         && ln -s / /v/hack/root && ln -s ../subdir /v/hack/good && ln -s root /v/hack/bad",
    ]);
    let mounted = |subpath: &str, dst: &str, cmd: &[&str]| {
        let m = format!("type=volume,src=parts,dst={dst},volume-subpath={subpath}");
        let mut args = vec!["run", "--rm", "--mount", m.as_str(), bb.as_str()];
        args.extend_from_slice(cmd);
        s.run(&args)
    };
    assert_eq!(
        mounted("subdir", "/x", &["ls", "/x"]).ok().stdout,
        "hello.txt\n"
    );
    assert_eq!(
        mounted("hack/good", "/x", &["ls", "/x"]).ok().stdout,
        "hello.txt\n"
    );
    assert_eq!(
        mounted("bar.txt", "/x", &["cat", "/x"]).ok().stdout,
        "foo\n"
    );
    // Written through the subpath, seen in the whole volume.
    mounted("subdir", "/x", &["sh", "-c", "echo more > /x/new.txt"]).ok();
    assert_eq!(whole(&["cat", "/v/subdir/new.txt"]), "more\n");
    // An empty subdirectory is filled from the image, as a new volume is.
    mounted("bin", "/bin", &["ls", "/bin/busybox"]).ok();
    assert_eq!(whole(&["ls", "/v/bin/busybox"]), "/v/bin/busybox\n");
    mounted("../../../../etc/passwd", "/x", &["true"])
        .fails_with(125, "subpath must be a relative path within the volume");
    mounted("/etc", "/x", &["true"])
        .fails_with(125, "subpath must be a relative path within the volume");
    // 127, as docker's: its CLI gives that to any start error saying "no such file or
    // directory", and the daemon's says it here too.
    mounted("not-there", "/x", &["true"]).fails_with(127, "cannot access path not-there");
    for out in ["hack/root", "hack/bad"] {
        mounted(out, "/x", &["ls", "/x"]).fails_with(125, "escapes the base directory");
    }
    // A refused start leaves no container behind (`run --rm`) and the volume whole.
    assert_eq!(s.run(&["ps", "-aq"]).ok().stdout, "");
    assert_eq!(whole(&["ls", "/v"]), "bar.txt\nbin\nhack\nsubdir\n");
}

#[test]
fn bad_volume_input_is_refused_and_changes_nothing() {
    let (s, bb) = ready();
    let refused: &[(&[&str], &str)] = &[
        (
            &["-v", "/a:/b:ro:extra"],
            "invalid spec: /a:/b:ro:extra: too many colons",
        ),
        (
            &["-v", "my/vol:/data"],
            "includes invalid characters for a local volume name",
        ),
        (&["-v", "vol:/proc"], "is the container's own /proc"),
        (&["-v", "vol:/sys/kernel"], "is the container's own /sys"),
        (&["-v", "/a:/b:fast"], "invalid mode: fast"),
        (&["-v", "v1:/d", "-v", "v2:/d"], "Duplicate mount point: /d"),
        (
            &["--mount", "type=volume,src=v,dst=/d,volume-driver=nfs"],
            "plugin \"nfs\" not found",
        ),
    ];
    for (flags, msg) in refused {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend([bb.as_str(), "true"]);
        s.run(&args).fails_with(125, msg);
    }
    // What the docker CLI does not check, the engine does, in the same words.
    let (code, body) = s.api_body(
        "POST",
        "/v1.47/containers/create",
        format!(r#"{{"Image":"{bb}","HostConfig":{{"Binds":["/a:/b:ro:extra"]}}}}"#).as_bytes(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid volume specification: '/a:/b:ro:extra'"),
        "{body}"
    );
    s.run(&["volume", "create", "a/b"])
        .fails_with(1, "includes invalid characters for a local volume name");
    s.run(&["volume", "create", "-o", "colour=red", "vv"])
        .fails_with(1, "invalid option key: \"colour\"");
    s.run(&["volume", "rm", "nosuch"])
        .fails_with(1, "no such volume");
    assert!(volume_names(&s).is_empty(), "{:?}", volume_names(&s));
    assert_eq!(s.run(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn a_path_outside_the_shares_is_refused_in_the_vm() {
    if vm_only("natively every host path can be bound") {
        return;
    }
    let (s, bb) = ready();
    s.run(&["run", "--rm", "-v", "/etc:/x", &bb, "true"])
        .fails_with(125, "is not shared with the skiff machine (shared: ");
    assert_eq!(s.run(&["ps", "-aq"]).ok().stdout, "");
}

/// In the VM, `-v /var/run/docker.sock:…` gives the container the engine it runs on, as
/// Docker Desktop does (testcontainers and CI tools rely on it): the container lists itself
/// through the socket.
#[test]
fn the_docker_socket_bound_in_the_vm_is_the_engine_the_container_runs_on() {
    if vm_only("natively /var/run/docker.sock is the host's own path") {
        return;
    }
    let (s, bb) = ready();
    let dir = tempfile::tempdir().expect("tempdir");
    let ping = support_binary(dir.path(), "unix_ping");
    for path in ["/var/run/docker.sock", "/run/docker.sock"] {
        let bind = format!("{path}:/var/run/docker.sock");
        s.run(&[
            "run", "-d", "--name", "pinger", "-v", &bind, &bb, "sleep", "300",
        ])
        .ok();
        s.run(&["cp", ping.to_str().expect("utf-8"), "pinger:/unix-ping"])
            .ok();
        let out = s
            .run(&[
                "exec",
                "pinger",
                "/unix-ping",
                "/var/run/docker.sock",
                "/containers/json?all=1",
            ])
            .ok();
        let listed: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        let names: Vec<&str> = listed
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|c| c["Names"][0].as_str())
            .collect();
        assert_eq!(names, ["/pinger"], "{path}");
        s.run(&["rm", "-f", "pinger"]).ok();
    }
}
