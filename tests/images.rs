//! Images end to end: pull from the real test registry, the store on disk, the image
//! commands and their errors. Each test runs its own skiff (state dir, socket, agent).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use skiff_e2e::hostile::{Answer, BearerAuth, HostileRegistry, LayerTar};
use skiff_e2e::*;

#[test]
fn pull_oci_and_docker_v2s2_images() {
    let s = Skiff::new();
    let out = s.run(&["pull", &image("busybox")]).ok();
    assert!(
        out.stdout.contains("Using default tag: latest"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Status: Downloaded newer image for"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .trim_end()
        .ends_with(&format!("{}:latest", image("busybox"))));

    // The same image as Docker v2 schema 2, pulled into an empty store first.
    let s2 = Skiff::new();
    s2.run(&["pull", &image("busybox:v2s2")]).ok();
    let v2 = s2.inspect(&image("busybox:v2s2"));
    assert_eq!(
        v2["Descriptor"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let oci = s.inspect(&image("busybox:latest"));
    assert_eq!(
        oci["Descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(oci["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v2["Id"], oci["Id"], "one config, one image ID");

    // Pulled under a second tag, the same image gains a tag and a repo digest, nothing else.
    s.run(&["pull", &image("busybox:v2s2")]).ok();
    let both = s.inspect(&image("busybox:v2s2"));
    assert_eq!(both["Id"], oci["Id"]);
    assert_eq!(both["RepoTags"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        both["RepoDigests"].as_array().map(Vec::len),
        Some(2),
        "{both}"
    );

    let images = s.run(&["images"]).ok();
    let header = images.lines()[0];
    assert!(
        header.starts_with("REPOSITORY") && header.contains("IMAGE ID") && header.ends_with("SIZE"),
        "{header}"
    );
    assert!(
        images.stdout.contains(&image("busybox")),
        "{}",
        images.stdout
    );
    assert!(images.stdout.contains("v2s2"));

    // The busybox binary arrived whole and runs: straight from the store on this host, in
    // a container where the store is in the VM.
    if on_vm() {
        let out = s
            .run(&[
                "run",
                "--rm",
                &image("busybox"),
                "busybox",
                "echo",
                "unpacked-ok",
            ])
            .ok();
        assert_eq!(out.stdout.trim(), "unpacked-ok");
        return;
    }
    let upper = oci["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .expect("UpperDir")
        .to_string();
    let out = sh(&format!("{upper}/bin/busybox echo unpacked-ok"));
    assert_eq!(out.trim(), "unpacked-ok");
}

/// Mount the image's layers read-only with overlayfs, as a container root would be.
fn mount_image(inspect: &serde_json::Value, at: &Path) {
    let data = &inspect["GraphDriver"]["Data"];
    let mut dirs = vec![data["UpperDir"].as_str().expect("upper").to_string()];
    if let Some(l) = data["LowerDir"].as_str() {
        dirs.push(l.to_string());
    }
    std::fs::create_dir_all(at).expect("mountpoint");
    sh(&format!(
        "mount -t overlay overlay -o ro,lowerdir={} {}",
        dirs.join(":"),
        at.display()
    ));
}

#[test]
fn layered_image_whiteouts_opaque_dirs_and_metadata() {
    let s = Skiff::new();
    s.run(&["pull", &image("layered")]).ok();
    let img = s.inspect(&image("layered"));
    if on_vm() {
        merged_view_in_a_container(&s);
    } else {
        layer_tree_on_the_host(&s, &img);
    }
    image_config_and_history(&s, &img);
}

/// The merged view a container of `layered` sees, checked from inside one (the vm backend:
/// the store is in the VM).
fn merged_view_in_a_container(s: &Skiff) {
    let script = "test ! -e /etc/skiff/deleted-file && echo deleted-file-gone; \
                  test -e /etc/skiff/kept-file && echo kept; \
                  test ! -e /opt/gone && echo dir-gone; \
                  echo opaque: $(ls /opt/opaque); \
                  echo link: $(readlink /opt/link); \
                  test $(stat -c %i /opt/hard1) = $(stat -c %i /opt/hard2) && echo hardlinked; \
                  echo suid: $(stat -c %a /opt/suid); \
                  echo owner: $(stat -c %u:%g /home/app/owned); \
                  test -x /bin/busybox && echo base-visible";
    let out = s
        .run(&[
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "/bin/sh",
            &image("layered"),
            "-c",
            script,
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "deleted-file-gone\nkept\ndir-gone\nopaque: new\nlink: /etc/skiff/kept-file\n\
         hardlinked\nsuid: 4755\nowner: 1000:1000\nbase-visible\n"
    );
}

/// The top layer's own tree in the store, and the merged view through overlayfs.
fn layer_tree_on_the_host(s: &Skiff, img: &serde_json::Value) {
    let upper = img["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .expect("upper")
        .to_string();

    // In the top layer's own tree: overlayfs whiteouts and the opaque marker.
    let wh =
        std::fs::symlink_metadata(format!("{upper}/etc/skiff/deleted-file")).expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout must be a 0:0 char device"
    );
    let gone = std::fs::symlink_metadata(format!("{upper}/opt/gone")).expect("dir whiteout");
    assert!(gone.file_type().is_char_device());
    let opaque = sh(&format!(
        "getfattr --absolute-names -n trusted.overlay.opaque --only-values {upper}/opt/opaque"
    ));
    assert_eq!(opaque.trim(), "y");

    // Through overlayfs, the merged view is what a container sees.
    let mnt = s.dir.path().join("merged");
    mount_image(img, &mnt);
    let check = std::panic::catch_unwind(|| {
        assert!(
            !mnt.join("etc/skiff/deleted-file").exists(),
            "deleted file must be gone"
        );
        assert!(mnt.join("etc/skiff/kept-file").exists());
        assert!(
            !mnt.join("opt/gone").exists(),
            "deleted directory must be gone"
        );
        let mut opaque: Vec<String> = std::fs::read_dir(mnt.join("opt/opaque"))
            .expect("opaque dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        opaque.sort();
        assert_eq!(
            opaque,
            vec!["new".to_string()],
            "opaque dir must hide the lower entries"
        );
        assert_eq!(
            std::fs::read_link(mnt.join("opt/link"))
                .expect("symlink")
                .to_str(),
            Some("/etc/skiff/kept-file")
        );
        let h1 = std::fs::metadata(mnt.join("opt/hard1")).expect("hard1");
        let h2 = std::fs::metadata(mnt.join("opt/hard2")).expect("hard2");
        assert_eq!(h1.ino(), h2.ino(), "hardlinks must share an inode");
        let suid = std::fs::metadata(mnt.join("opt/suid")).expect("suid");
        assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid bit kept");
        let owned = std::fs::metadata(mnt.join("home/app/owned")).expect("owned");
        assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
        assert!(mnt.join("bin/busybox").exists(), "base layer visible");
    });
    sh(&format!("umount {}", mnt.display()));
    if let Err(e) = check {
        std::panic::resume_unwind(e);
    }
}

fn image_config_and_history(s: &Skiff, img: &serde_json::Value) {
    let cfg = &img["Config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"FOO=bar") && env.contains(&"GREETING=hello world"),
        "{env:?}"
    );
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["WorkingDir"], "/home/app");
    assert_eq!(cfg["Cmd"], serde_json::json!(["echo", "default-cmd"]));
    assert!(cfg["Entrypoint"][0] == "/bin/sh");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some());
    assert_eq!(cfg["Labels"]["org.skiff.test"], "layered");

    let hist = s.run(&["history", &image("layered")]).ok();
    assert!(hist.lines()[0].starts_with("IMAGE") && hist.lines()[0].contains("CREATED BY"));
    assert!(hist.lines().len() >= 4, "{}", hist.stdout);
    assert!(hist.lines()[1].starts_with(&img["Id"].as_str().expect("id")[7..19]));
    assert!(hist.stdout.contains("<missing>"));
    let quiet = s.run(&["history", "-q", &image("layered")]).ok();
    assert_eq!(quiet.lines().len(), hist.lines().len() - 1);
}

#[test]
fn shared_layers_are_fetched_once_and_repull_fetches_only_the_manifest() {
    let s = Skiff::new();
    let reg = registry();
    let out = s.run(&["pull", &image("shared-a")]).ok();
    assert_eq!(
        out.stdout.matches("Pull complete").count(),
        3,
        "{}",
        out.stdout
    );

    let from = registry_log_len(&reg);
    let out = s.run(&["pull", &image("shared-b")]).ok();
    assert_eq!(
        out.stdout.matches("Already exists").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("Pull complete").count(),
        1,
        "{}",
        out.stdout
    );
    let b_layers = registry_layers(&image("shared-b"));
    let gets = blob_gets_since(&reg, from);
    let layer_gets: Vec<&String> = gets
        .iter()
        // Other tests pull from the same registry at the same time: count shared-b's requests only.
        .filter(|l| {
            l.contains("/v2/shared-b/blobs/") && b_layers.iter().any(|d| l.contains(d.as_str()))
        })
        .collect();
    assert_eq!(
        layer_gets.len(),
        1,
        "only the new layer is fetched: {layer_gets:#?}"
    );
    assert!(layer_gets[0].contains(b_layers[2].as_str()));

    let from = registry_log_len(&reg);
    let out = s.run(&["pull", &image("shared-b")]).ok();
    assert!(
        out.stdout.contains("Status: Image is up to date for"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Pull complete"));
    assert!(
        blob_gets_since(&reg, from).is_empty(),
        "a re-pull fetches no blob"
    );
}

#[test]
fn zstd_layers_and_platform_choice() {
    let s = Skiff::new();
    s.run(&["pull", &image("zstd")]).ok();
    let z = s.inspect(&image("zstd"));
    assert!(z["RootFS"]["Layers"].as_array().expect("layers").len() >= 2);

    s.run(&["pull", "--platform", "linux/arm64", &image("multiarch")])
        .ok();
    let arm = s.inspect(&image("multiarch"));
    assert_eq!(arm["Architecture"], "arm64");
    let upper = arm["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .expect("upper");
    // The store is only readable here natively; the architecture above says it on both.
    if !on_vm() {
        assert_eq!(
            std::fs::read_to_string(format!("{upper}/etc/arch"))
                .expect("arch")
                .trim(),
            "arm64"
        );
    }

    // The default is this machine's platform; the tag moves, the arm64 image is left dangling.
    s.run(&["pull", &image("multiarch")]).ok();
    assert_eq!(s.inspect(&image("multiarch"))["Architecture"], "amd64");
    let dangling = s.run(&["images", "-q", "--filter", "dangling=true"]).ok();
    assert_eq!(
        dangling.lines(),
        vec![&arm["Id"].as_str().expect("id")[7..19]]
    );
    let listing = s.run(&["images"]).ok();
    assert!(listing.stdout.contains("<none>"), "{}", listing.stdout);

    s.run(&["pull", "--platform", "linux/s390x", &image("multiarch")])
        .fails_with(1, "no matching manifest for linux/s390x");
}

#[test]
fn corrupted_blob_fails_with_a_digest_error_and_changes_nothing() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    let before = s.run(&["images"]).ok().stdout;

    let layers = registry_layers(&image("victim"));
    let unique = layers.last().expect("victim layer").clone();
    let path = registry_blob_path(&registry(), &unique);
    let original = std::fs::read(&path).expect("victim blob");
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&path, &bad).expect("corrupt");
    let out = s.run(&["pull", &image("victim")]);
    std::fs::write(&path, &original).expect("restore");
    out.fails_with(1, "digest mismatch");

    assert_eq!(s.run(&["images"]).ok().stdout, before, "images unchanged");
    if !on_vm() {
        let tmp = s.root().join("images/tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).expect("tmp").count(),
            0,
            "nothing half-written left"
        );
    }
    // And with the registry repaired, the same pull completes.
    s.run(&["pull", &image("victim")]).ok();
}

/// `system check` finds a damaged blob, a damaged layer tree and a reference to an image whose
/// record is gone, says which, and exits 1; a whole store passes with exit 0.
#[test]
fn system_check_names_what_is_damaged() {
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    s.run(&["pull", "-q", &image("web")]).ok();
    let out = s.run(&["system", "check"]).ok();
    assert!(
        out.stdout.contains("The store is consistent."),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 images"), "{}", out.stdout);
    if native_only("damages the store's files on the host") {
        return;
    }
    let store = s.root().join("images");
    let busybox = s.inspect(&image("busybox"));
    let busybox_id = busybox["Id"].as_str().expect("id").to_string();
    let manifest = busybox["RepoDigests"][0]
        .as_str()
        .and_then(|d| d.split('@').nth(1))
        .expect("repo digest")
        .to_string();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let manifest_blob = store.join("blobs/sha256").join(hex(&manifest));
    let mut bytes = std::fs::read(&manifest_blob).expect("manifest blob");
    bytes.push(b'\n');
    std::fs::write(&manifest_blob, bytes).expect("damage the blob");
    let big = sh(&format!(
        "find {} -path '*/diff/www/big.bin'",
        store.join("layers").display()
    ));
    let big = big.trim();
    assert!(!big.is_empty(), "web's big file in a layer");
    std::fs::OpenOptions::new()
        .write(true)
        .open(big)
        .and_then(|f| f.set_len(1000))
        .expect("truncate a file in a layer");
    std::fs::remove_file(
        store
            .join("records")
            .join(format!("{}.json", hex(&busybox_id))),
    )
    .expect("remove busybox's record");

    let out = s.run(&["system", "check"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    for needle in [
        format!("blob {manifest}: its content does not match its digest"),
        "its layer sha256:".to_string(),
        format!("points at image {busybox_id}, which is not in the store"),
    ] {
        assert!(
            out.stdout.contains(&needle),
            "{needle:?} in:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("The store is consistent."));
    let json = s.run(&["system", "check", "--format", "json"]);
    assert_eq!(json.code, 1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("check JSON");
    // The blob, web's layer, and busybox's two references (its tag and its digest).
    assert_eq!(v["Problems"].as_array().map(|p| p.len()), Some(4), "{v}");
}

#[test]
fn private_registry_needs_login() {
    let s = Skiff::new();
    let private = format!("{}/private/busybox:latest", auth_registry());
    s.run(&["pull", &private]).fails_with(1, "skiff login");
    s.run_stdin(
        &["login", "-u", "skiff", "--password-stdin", &auth_registry()],
        "wrong\n",
    )
    .fails_with(1, "incorrect username or password");
    let out = s
        .run_stdin(
            &["login", "-u", "skiff", "--password-stdin", &auth_registry()],
            "skiffpass\n",
        )
        .ok();
    assert!(out.stdout.contains("Login Succeeded"));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.docker_config().join("config.json")).expect("config"),
    )
    .expect("json");
    assert!(cfg["auths"][auth_registry()]["auth"].is_string(), "{cfg}");
    let mode = std::fs::metadata(s.docker_config().join("config.json"))
        .expect("meta")
        .mode();
    assert_eq!(mode & 0o077, 0, "credentials file is private");

    s.run(&["pull", &private]).ok();
    s.run(&["logout", &auth_registry()]).ok();

    // Stored credentials that the registry refuses are named as the cause.
    std::fs::write(
        s.docker_config().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"c2tpZmY6d3Jvbmc="}}}}}}"#,
            auth_registry()
        ),
    )
    .expect("write config");
    s.run(&["rmi", &private]).ok();
    s.run(&["pull", &private])
        .fails_with(1, "refused the credentials");
    s.run(&["logout", &auth_registry()]).ok();
    let cfg = std::fs::read_to_string(s.docker_config().join("config.json")).expect("config");
    assert!(!cfg.contains(&auth_registry()));
}

#[test]
fn bad_references_and_unreachable_registries() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox:no-such-tag")])
        .fails_with(1, "not found");
    s.run(&["pull", &image("no-such-repo")])
        .fails_with(1, "not found");
    s.run(&["pull", "127.0.0.1:1/busybox"])
        .fails_with(1, "cannot reach registry 127.0.0.1:1");
    s.run(&["pull", "Busybox"])
        .fails_with(1, "invalid reference format");
    s.run(&["pull", "busybox@sha256:nothex"])
        .fails_with(1, "invalid reference format");
    assert!(s.image_ids().is_empty(), "nothing stored by failed pulls");
}

#[test]
fn malformed_manifests_and_truncated_downloads() {
    let s = Skiff::new();
    let h = HostileRegistry::start();
    h.route(
        "/v2/garbage/manifests/latest",
        Answer::json(
            "{ this is not json",
            "application/vnd.oci.image.manifest.v1+json",
        ),
    );
    s.run(&["pull", &format!("{}/garbage", h.addr)])
        .fails_with(1, "malformed");

    // A well-formed image whose only layer arrives cut short.
    let (layer_digest, layer) = publish_tiny_image(&h, "trunc");
    h.route(
        &format!("/v2/trunc/blobs/{layer_digest}"),
        Answer {
            claimed_len: Some(layer.len()),
            ..Answer::json(&layer[..layer.len() / 2], "application/octet-stream")
        },
    );
    let out = s.run(&["pull", &format!("{}/trunc", h.addr)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&layer_digest[..19]) || out.stderr.contains("truncated"),
        "{out:?}"
    );
    assert!(s.image_ids().is_empty());
    if !on_vm() {
        assert_eq!(
            std::fs::read_dir(s.root().join("images/tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    // A Content-Length that claims less than the body: what was read fails its digest, and
    // nothing is stored.
    let (layer_digest, layer) = publish_tiny_image(&h, "short-claim");
    h.route(
        &format!("/v2/short-claim/blobs/{layer_digest}"),
        Answer {
            claimed_len: Some(layer.len() / 2),
            ..Answer::json(layer.clone(), "application/octet-stream")
        },
    );
    let out = s.run(&["pull", &format!("{}/short-claim", h.addr)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(&layer_digest[..19]), "{out:?}");
    assert!(s.image_ids().is_empty());
}

#[test]
fn full_disk_during_unpack_is_a_clear_error() {
    if native_only("the small filesystem is loop-mounted on this host") {
        return;
    }
    let s = Skiff::new();
    let fs = SmallFs::mount(s.dir.path(), "6M");
    let small = Skiff::with_root(&fs.mnt.join("root"));
    let result = std::panic::catch_unwind(|| {
        small.run(&["pull", &image("busybox")]).ok();
        let before = small.image_ids();
        small
            .run(&["pull", &image("web")])
            .fails_with(1, "No space left on device");
        assert_eq!(small.image_ids(), before, "the store is as it was");
        assert_eq!(
            std::fs::read_dir(small.root().join("images/tmp"))
                .expect("tmp")
                .count(),
            0,
            "space reclaimed"
        );
    });
    small.stop_agent();
    drop(fs);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn images_listing_filters_and_formats() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    s.run(&["pull", &image("layered")]).ok();
    let fmt = s
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    let mut names = fmt.lines();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("{}:latest", image("busybox")),
            format!("{}:latest", image("layered"))
        ]
    );

    let only = s
        .run(&[
            "images",
            "--filter",
            &format!("reference={}/busy*", registry()),
        ])
        .ok();
    assert_eq!(only.lines().len(), 2, "{}", only.stdout);
    let by_arg = s.run(&["images", &image("layered")]).ok();
    assert_eq!(by_arg.lines().len(), 2);
    assert!(by_arg.stdout.contains("layered"));

    let digests = s.run(&["images", "--digests"]).ok();
    assert!(digests.lines()[0].contains("DIGEST"));
    assert!(digests.stdout.contains("sha256:"));

    let json = s.run(&["images", "--format", "json"]).ok();
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json line");
        assert!(v["ID"].is_string() && v["Size"].is_string());
    }
    let table = s
        .run(&["images", "--format", "table {{.ID}}\\t{{.Repository}}"])
        .ok();
    assert!(table.lines()[0].starts_with("IMAGE ID"));
    s.run(&["images", "--filter", "bogus=1"])
        .fails_with(1, "invalid filter");
    assert!(s
        .run(&["images", "-q", "--filter", "dangling=true"])
        .ok()
        .stdout
        .is_empty());
    let notrunc = s.run(&["images", "--no-trunc", "-q"]).ok();
    assert!(notrunc
        .lines()
        .iter()
        .all(|l| l.starts_with("sha256:") && l.len() == 71));
}

#[test]
fn tag_rmi_and_prune_follow_docker() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    let id = s.inspect(&image("busybox"))["Id"]
        .as_str()
        .expect("id")
        .to_string();
    let short = &id[7..19];
    s.run(&["tag", &image("busybox"), "mine/box:v1"]).ok();
    s.run(&["tag", &image("busybox"), "mine/box:v2"]).ok();
    assert_eq!(s.inspect("mine/box:v1")["Id"], id.as_str());

    // By digest: the digest reference goes, the tagged image stays.
    let digest_ref = s.inspect(&image("busybox"))["RepoDigests"][0]
        .as_str()
        .expect("repo digest")
        .to_string();
    let out = s.run(&["rmi", &digest_ref]).ok();
    assert_eq!(out.stdout.trim(), format!("Untagged: {digest_ref}"));
    assert_eq!(
        s.inspect(&image("busybox"))["RepoDigests"],
        serde_json::json!([])
    );

    // Untag while other tags remain; the image stays.
    let out = s.run(&["rmi", "mine/box:v2"]).ok();
    assert_eq!(out.stdout.trim(), "Untagged: mine/box:v2");
    // By ID with tags in two repositories: refused without -f.
    s.run(&["rmi", short]).fails_with(1, "must be forced");
    s.run(&["rmi", "no-such-image"])
        .fails_with(1, "No such image");
    let out = s.run(&["rmi", "-f", short]).ok();
    assert!(out.stdout.contains("Untagged: mine/box:v1"));
    assert!(out.stdout.contains(&format!("Deleted: {id}")));
    assert!(s.image_ids().is_empty());
    if !on_vm() {
        assert_eq!(
            std::fs::read_dir(s.root().join("images/layers"))
                .expect("layers")
                .count(),
            0,
            "layers removed"
        );
    }

    // A tag that moves leaves the old image dangling; image prune removes it and frees its
    // own layer (zstd has one no other image here shares; victim is kept for the corruption test).
    s.run(&["pull", &image("busybox")]).ok();
    s.run(&["pull", &image("zstd")]).ok();
    let victim = s.inspect(&image("zstd"))["Id"]
        .as_str()
        .expect("id")
        .to_string();
    s.run(&["tag", &image("zstd"), "moving:latest"]).ok();
    let out = s.run(&["rmi", &image("zstd")]).ok();
    assert!(
        !out.stdout.contains("Deleted"),
        "still tagged as moving:latest: {}",
        out.stdout
    );
    s.run(&["tag", &image("busybox"), "moving:latest"]).ok();
    let dangling = s.run(&["images", "-q", "-f", "dangling=true"]).ok();
    assert_eq!(dangling.lines(), vec![&victim[7..19]]);
    let out = s.run(&["image", "prune", "-f"]).ok();
    assert!(
        out.stdout.contains(&format!("deleted: {victim}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Total reclaimed space:"));
    assert!(
        !out.stdout.contains("Total reclaimed space: 0B"),
        "the zstd image's own layer was freed: {}",
        out.stdout
    );
    assert_eq!(
        s.inspect(&image("busybox"))["Id"],
        id.as_str(),
        "tagged images stay"
    );
    let out = s.run(&["image", "prune", "-a", "-f"]).ok();
    assert!(
        out.stdout.contains("untagged: moving:latest"),
        "{}",
        out.stdout
    );
    assert!(s.image_ids().is_empty());
}

#[test]
fn info_shows_the_socket_and_the_socket_is_private() {
    let s = Skiff::new();
    let out = s.run(&["system", "info"]).ok();
    let line = format!("API socket: unix://{}", s.socket().display());
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    assert!(s.run(&["info"]).ok().stdout.contains(&line));
    // docker's mode natively (owner and group); the machine daemon's sockets are the user's
    // alone, in a 0700 machine directory.
    let mode = std::fs::metadata(s.socket()).expect("socket").mode();
    let want = if on_vm() { 0o600 } else { 0o660 };
    assert_eq!(mode & 0o7777, want, "socket mode {:o}", mode & 0o7777);

    // A reader that goes away (`skiff info | head -0`) ends skiff quietly, as docker.
    let mut child = s
        .command()
        .arg("info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn skiff info");
    drop(child.stdout.take());
    let done = child.wait_with_output().expect("wait skiff info");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(done.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

#[test]
fn concurrent_first_use_starts_one_agent() {
    let s = Skiff::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            s.command()
                .args(["images", "-q"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn skiff")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("skiff images");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if native_only("the second agent would run on this host") {
        return;
    }
    // A second agent on the same state dir is refused, and the first keeps serving.
    let out = std::process::Command::new(bin_dir().join("skiff-agent"))
        .args(["--root"])
        .arg(s.root())
        .args(["--socket"])
        .arg(s.dir.path().join("other.sock"))
        .output()
        .expect("second agent");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already using"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.run(&["images"]).ok();
}

#[test]
fn not_root_is_told_clearly() {
    if native_only("root is what the native backend needs") {
        return;
    }
    let s = Skiff::new();
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin_dir().join("skiff"))
        .arg("images")
        .env("SKIFF_ROOT", s.root())
        .env("SKIFF_SOCKET", s.socket())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn pull_on_a_terminal_shows_progress_bars() {
    let s = Skiff::new();
    let cmdline = format!(
        "{} pull {}",
        bin_dir().join("skiff").display(),
        image("layered")
    );
    // `script` gives skiff a pseudo-terminal, as a user's shell would.
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .envs(s.env())
        // A terminal that can redraw (a caller's TERM=dumb rightly gets plain lines).
        .env("TERM", "xterm")
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Pull complete"), "{text}");
    assert!(
        text.contains('\u{1b}'),
        "a terminal gets redrawn bars, not plain lines: {text}"
    );
    assert!(text.contains(&format!("{}:latest", image("layered"))));
}

#[test]
fn unknown_flags_exit_125() {
    let s = Skiff::new();
    let out = s.run(&["images", "--no-such-flag"]);
    assert_eq!(out.code, 125);
}

/// Serve a one-layer image (a file /f holding "hi") under `repo:latest` on the hostile
/// registry; returns the layer's digest and bytes.
fn publish_tiny_image(h: &HostileRegistry, repo: &str) -> (String, Vec<u8>) {
    let tar = LayerTar::default().file(b"f", b"hi\n").finish();
    let digest = h.publish(repo, std::slice::from_ref(&tar)).remove(0);
    let layer = h.body(&format!("/v2/{repo}/blobs/{digest}"));
    (digest, layer)
}

#[test]
fn bearer_token_registries_work_with_and_without_login() {
    let s = Skiff::new();
    let h = HostileRegistry::start();
    publish_tiny_image(&h, "tokened");
    // base64("skiff:skiffpass")
    h.require_bearer(BearerAuth {
        token: "t0k3n".into(),
        token_credentials: Some("Basic c2tpZmY6c2tpZmZwYXNz".into()),
    });
    let image = format!("{}/tokened", h.addr);
    s.run(&["pull", &image])
        .fails_with(1, &format!("skiff login {}", h.addr));
    s.run_stdin(
        &["login", "-u", "skiff", "--password-stdin", &h.addr],
        "nope\n",
    )
    .fails_with(1, "incorrect username or password");
    s.run_stdin(
        &["login", "-u", "skiff", "--password-stdin", &h.addr],
        "skiffpass\n",
    )
    .ok();
    let out = s.run(&["pull", &image]).ok();
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    let upper = s.inspect(&image)["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .expect("upper")
        .to_string();
    if !on_vm() {
        assert_eq!(
            std::fs::read_to_string(format!("{upper}/f")).expect("f"),
            "hi\n"
        );
    }

    // A registry that hands tokens to anyone (like Docker Hub for public images).
    let open = HostileRegistry::start();
    publish_tiny_image(&open, "public");
    open.require_bearer(BearerAuth {
        token: "anon".into(),
        token_credentials: None,
    });
    s.run(&["pull", &format!("{}/public", open.addr)]).ok();
}

/// Docker Hub's images through mirrors named in the settings file, as daemon.json's
/// `registry-mirrors`: the first mirror is down, the second (the test registry, which keeps
/// `library/busybox`) answers; the image is Docker Hub's `busybox` for every command.
#[test]
fn docker_hub_images_come_through_the_mirrors_in_order() {
    let s = Skiff::new();
    let reg = registry();
    let settings = s.dir.path().join("settings.json");
    let with_settings = |args: &[&str]| {
        Run::from(
            s.command()
                .env("SKIFF_CONFIG", &settings)
                .args(args)
                .output()
                .expect("run skiff"),
        )
    };
    // Mirrors are the engine's settings, read when it starts.
    std::fs::write(
        &settings,
        format!(r#"{{"registry-mirrors": ["http://127.0.0.1:1", "http://{reg}"]}}"#),
    )
    .expect("settings");
    s.kill_agent();
    let out = with_settings(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(out.stdout, "hi\n");
    let info = with_settings(&["info"]).ok().stdout;
    assert!(
        info.contains(&format!(
            " Registry Mirrors:\n  http://127.0.0.1:1/\n  http://{reg}/\n"
        )),
        "{info}"
    );
    let v = s.inspect("busybox");
    assert_eq!(v["RepoTags"], serde_json::json!(["busybox:latest"]), "{v}");
    let digests = v["RepoDigests"].to_string();
    assert!(digests.contains("\"busybox@sha256:"), "{digests}");

    // A mirror docker would not take is refused by name, before anything starts.
    std::fs::write(&settings, r#"{"registry-mirrors": ["mirror.example.com"]}"#).expect("w");
    s.kill_agent();
    with_settings(&["pull", "busybox"])
        .fails_with(125, "invalid registry mirror \"mirror.example.com\"");
}

/// A pull from a registry that gave no token challenge asks `/v2/` once, and a re-pull of an
/// unchanged tag is one request, the manifest's: the probe is not repeated. When the registry starts to want a token,
/// the next pull meets the 401, takes the challenge and still succeeds.
#[test]
fn a_repull_from_an_open_registry_is_the_manifest_request_alone() {
    let s = Skiff::new();
    let h = HostileRegistry::start();
    h.publish("open", &[LayerTar::default().file(b"f", b"open").finish()]);
    let name = format!("{}/open", h.addr);
    s.run(&["pull", "-q", &name]).ok();
    // The first pull asks `/v2/` once, not again before each blob.
    let probes = h.seen().iter().filter(|r| r.path == "/v2/").count();
    assert_eq!(probes, 1, "{:?}", h.seen());
    let before = h.seen().len();
    s.run(&["pull", "-q", &name]).ok();
    let asked: Vec<String> = h.seen()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(asked, ["GET /v2/open/manifests/latest"]);

    h.require_bearer(BearerAuth {
        token: "now-with-a-token".into(),
        token_credentials: None,
    });
    let before = h.seen().len();
    s.run(&["pull", "-q", &name]).ok();
    let seen = h.seen();
    assert!(
        seen[before..]
            .iter()
            .any(|r| r.path.ends_with("/manifests/latest")
                && r.authorization.as_deref() == Some("Bearer now-with-a-token")),
        "{:?}",
        &seen[before..]
    );
}
