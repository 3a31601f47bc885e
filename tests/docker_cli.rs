//! The real docker CLI (client 28) pointed at skiff's socket gives the same results as skiff.

use skiff_e2e::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn docker_cli_image_commands_match_skiff() {
    let s = Skiff::new();
    s.run(&["info"]).ok(); // starts the agent

    let out = s.docker(&["pull", &image("layered")]).ok();
    assert!(out.stdout.contains("Pull complete"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!(
        "Status: Downloaded newer image for {}:latest",
        image("layered")
    )));
    let again = s.docker(&["pull", &image("layered")]).ok();
    assert!(
        again.stdout.contains("Image is up to date"),
        "{}",
        again.stdout
    );
    s.run(&["pull", &image("busybox")]).ok();

    let d = s.docker(&["images"]).ok();
    let k = s.run(&["images"]).ok();
    assert_eq!(d.stdout, k.stdout, "docker images and skiff images agree");
    assert_eq!(d.lines().len(), 3);
    assert_eq!(
        s.docker(&["images", "-q"]).ok().stdout,
        s.run(&["images", "-q"]).ok().stdout
    );
    assert_eq!(
        s.docker(&["images", "--digests", "--no-trunc"]).ok().stdout,
        s.run(&["images", "--digests", "--no-trunc"]).ok().stdout
    );
    assert_eq!(
        s.docker(&[
            "images",
            "--format",
            "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}"
        ])
        .ok()
        .stdout,
        s.run(&[
            "images",
            "--format",
            "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}"
        ])
        .ok()
        .stdout
    );

    assert_eq!(
        s.docker(&["history", &image("layered")]).ok().stdout,
        s.run(&["history", &image("layered")]).ok().stdout,
        "history agrees"
    );
    assert_eq!(
        json(
            &s.docker(&["image", "inspect", &image("layered")])
                .ok()
                .stdout
        ),
        json(&s.run(&["image", "inspect", &image("layered")]).ok().stdout),
        "inspect agrees"
    );

    s.docker(&["tag", &image("busybox"), "extra:one"]).ok();
    let d = s.docker(&["rmi", "extra:one"]).ok();
    assert_eq!(d.stdout.trim(), "Untagged: extra:one");
    let d = s.docker(&["rmi", &image("layered")]).ok();
    assert!(
        d.stdout
            .contains(&format!("Untagged: {}:latest", image("layered"))),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("Deleted: sha256:"));
    let e = s.docker(&["rmi", "no-such:image"]);
    assert_eq!(e.code, 1);
    assert!(e.stderr.contains("No such image"), "{}", e.stderr);

    // Make busybox dangling, then prune it through docker.
    s.run(&["pull", &image("busybox:v2s2")]).ok();
    s.run(&["rmi", &image("busybox:latest")]).ok();
    s.run(&["pull", &image("zstd")]).ok();
    s.run(&["tag", &image("zstd"), &image("busybox:v2s2")]).ok();
    let dangling = s.run(&["images", "-q", "-f", "dangling=true"]).ok();
    assert_eq!(dangling.lines().len(), 1);
    let d = s.docker(&["image", "prune", "-f"]).ok();
    assert!(d.stdout.contains("Deleted Images:"), "{}", d.stdout);
    assert!(
        d.stdout.contains(&format!("deleted: sha256:{}", "")),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("Total reclaimed space:"));
    assert!(s
        .run(&["images", "-q", "-f", "dangling=true"])
        .ok()
        .stdout
        .is_empty());
    assert_eq!(
        s.docker(&["image", "prune", "-f"]).ok().stdout.trim(),
        "Total reclaimed space: 0B"
    );
}

#[test]
fn docker_cli_login_and_errors() {
    let s = Skiff::new();
    s.run(&["info"]).ok();
    let private = format!("{}/private/busybox:latest", auth_registry());
    let out = s.docker(&["pull", &private]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("skiff login"), "{}", out.stderr);

    let mut child = std::process::Command::new("docker")
        .args([
            "-H",
            &format!("unix://{}", s.socket().display()),
            "login",
            "-u",
            "skiff",
            "--password-stdin",
            &auth_registry(),
        ])
        .env("DOCKER_CONFIG", s.docker_config())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker login");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"skiffpass\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    // docker's credentials are skiff's credentials: the same config.json.
    s.run(&["pull", &private]).ok();
    s.docker(&["pull", &private]).ok();
    let out = s.docker(&["pull", &image("busybox:no-such-tag")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
}
