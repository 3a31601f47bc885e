//! `docker push` on skiff's engine, against the test registries: a pulled image pushed to a
//! new repository keeps its manifest (its layers mounted from where they were pulled), a
//! second push finds every layer there, a push to another registry compresses the layers
//! anew and what it pushed pulls back into an empty store as the same image; docker's errors
//! for a missing image, a registry that wants a login and one that is down.

use skiff_e2e::*;

/// A repository name no earlier run has used: the registries keep what is pushed to them.
fn fresh_repo(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("push-{what}-{}-{nanos}", std::process::id())
}

/// The lines of a push's output about layers, by status (`Pushed`, `Mounted from x`…).
fn layer_statuses(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(": ").map(|(_, s)| s.to_string()))
        .filter(|s| s == "Pushed" || s == "Layer already exists" || s.starts_with("Mounted from"))
        .collect()
}

/// The digest a push reports: `v1: digest: sha256:… size: N`.
fn pushed_digest(out: &str, tag: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{tag}: digest: ")))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line for {tag} in:\n{out}"))
        .to_string()
}

#[test]
fn a_pulled_image_pushed_to_a_new_repository_keeps_its_manifest() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    let original = s.inspect(&image("busybox"));
    let repo = format!("{}/{}", registry(), fresh_repo("bb"));
    s.docker(&["tag", &image("busybox"), &format!("{repo}:v1")])
        .ok();

    let out = s.docker(&["push", &format!("{repo}:v1")]).ok();
    assert!(
        out.stdout
            .contains(&format!("The push refers to repository [{repo}]")),
        "{}",
        out.stdout
    );
    // The layer is in the registry already, under busybox: mounted, not uploaded.
    assert_eq!(
        layer_statuses(&out.stdout),
        ["Mounted from busybox"],
        "{}",
        out.stdout
    );
    // Its own manifest went out: the digest is the one busybox was pulled by.
    let digest = pushed_digest(&out.stdout, "v1");
    let pulled_by = original["RepoDigests"][0]
        .as_str()
        .and_then(|d| d.split_once('@'))
        .map(|(_, d)| d.to_string())
        .expect("busybox's repo digest");
    assert_eq!(digest, pulled_by);
    let after = s.inspect(&image("busybox"));
    assert!(
        after["RepoDigests"].as_array().is_some_and(|a| a
            .iter()
            .any(|d| d.as_str() == Some(&format!("{repo}@{digest}")))),
        "{after}"
    );

    // Again: every layer is there.
    let again = s.docker(&["push", &format!("{repo}:v1")]).ok();
    assert_eq!(
        layer_statuses(&again.stdout),
        ["Layer already exists"],
        "{}",
        again.stdout
    );
    assert_eq!(pushed_digest(&again.stdout, "v1"), digest);

    // What was pushed pulls into an empty store as the same image, and runs.
    let empty = Skiff::new();
    empty.run(&["pull", &format!("{repo}:v1")]).ok();
    assert_eq!(
        empty.image_ids(),
        vec![original["Id"].as_str().unwrap_or_default().to_string()]
    );
    let hi = empty
        .run(&["run", "--rm", &format!("{repo}:v1"), "echo", "pushed"])
        .ok();
    assert_eq!(hi.stdout, "pushed\n");
}

#[test]
fn a_push_to_another_registry_compresses_anew_and_pulls_back_as_the_same_image() {
    let s = Skiff::new();
    let layered = image("layered");
    s.run(&["pull", &layered]).ok();
    let id = s.inspect(&layered)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ran = s.run(&["run", "--rm", &layered, "echo", "ran"]).ok().stdout;
    let name = fresh_repo("layered");
    let repo = format!("{}/{name}", auth_registry());
    s.docker(&["tag", &layered, &format!("{repo}:v1")]).ok();
    s.docker(&["tag", &layered, &format!("{repo}:v2")]).ok();

    // No login: docker's words, exit 1, nothing sent.
    let refused = s
        .docker(&["push", &format!("{repo}:v1")])
        .fails_with(1, "no basic auth credentials");
    assert!(refused.stdout.contains("Preparing"), "{}", refused.stdout);
    s.docker_stdin(
        &["login", "-u", "skiff", "--password-stdin", &auth_registry()],
        b"wrong\n",
    )
    .fails_with(1, "incorrect username or password");
    s.docker_stdin(
        &["login", "-u", "skiff", "--password-stdin", &auth_registry()],
        b"skiffpass\n",
    )
    .ok();

    // Every tag of the repository, one after the other; the layers go up once.
    let out = s.docker(&["push", "--all-tags", &repo]).ok();
    let statuses = layer_statuses(&out.stdout);
    assert_eq!(
        statuses.iter().filter(|s| *s == "Pushed").count(),
        3,
        "{}",
        out.stdout
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "Layer already exists")
            .count(),
        3,
        "{}",
        out.stdout
    );
    let v1 = pushed_digest(&out.stdout, "v1");
    assert_eq!(pushed_digest(&out.stdout, "v2"), v1);
    // Compressed here: a new manifest (docker's schema 2), not the one pulled from :5000.
    let pulled_by = s.inspect(&layered)["RepoDigests"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!pulled_by.ends_with(&v1), "{pulled_by} {v1}");

    // Another repository of the same registry mounts what the first push uploaded.
    let other = format!("{}/{}", auth_registry(), fresh_repo("mounted"));
    s.docker(&["tag", &layered, &format!("{other}:v1")]).ok();
    let mounted = s.docker(&["push", &format!("{other}:v1")]).ok();
    assert_eq!(
        layer_statuses(&mounted.stdout),
        vec![format!("Mounted from {name}"); 3],
        "{}",
        mounted.stdout
    );
    assert_eq!(pushed_digest(&mounted.stdout, "v1"), v1);

    // Pulled back into an empty store: the same image ID (every layer's tar stream was
    // rebuilt exactly) and the same output.
    let empty = Skiff::new();
    empty
        .run_stdin(
            &["login", "-u", "skiff", "--password-stdin", &auth_registry()],
            "skiffpass\n",
        )
        .ok();
    empty.run(&["pull", &format!("{repo}:v1")]).ok();
    assert_eq!(empty.image_ids(), vec![id]);
    let again = empty
        .run(&["run", "--rm", &format!("{repo}:v1"), "echo", "ran"])
        .ok()
        .stdout;
    assert_eq!(again, ran);
}

#[test]
fn push_errors_are_dockers() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();

    let missing = format!("{}/{}", registry(), fresh_repo("missing"));
    s.docker(&["push", &format!("{missing}:v1")]).fails_with(
        1,
        &format!("An image does not exist locally with the tag: {missing}"),
    );
    let (code, body) = s.api("POST", &format!("/images/{missing}/push?tag=v1"));
    assert_eq!(code, 404, "{body}");

    // A registry that is not there: Go's words for the refused connection natively; in the
    // VM the host's egress proxy says it could not reach it.
    let down = format!("127.0.0.1:{}/x", free_port());
    s.docker(&["tag", &image("busybox"), &format!("{down}:v1")])
        .ok();
    let refused = if on_vm() {
        "Connection refused"
    } else {
        "connect: connection refused"
    };
    s.docker(&["push", &format!("{down}:v1")])
        .fails_with(1, refused);
    // Credentials the registry refuses: the registry's own words, in the stream.
    let private = format!("{}/{}", auth_registry(), fresh_repo("refused"));
    s.docker(&["tag", &image("busybox"), &format!("{private}:v1")])
        .ok();
    // {"username":"skiff","password":"bad"}, as the docker CLI encodes X-Registry-Auth.
    let request = format!(
        "POST /images/{private}/push?tag=v1 HTTP/1.0\r\nHost: skiff\r\n\
         X-Registry-Auth: eyJ1c2VybmFtZSI6InNraWZmIiwicGFzc3dvcmQiOiJiYWQifQ==\r\n\r\n"
    );
    let (code, body) = s.api_raw(request.as_bytes());
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""error":"unauthorized: authentication required""#),
        "{body}"
    );

    // The store did not change: no digest was added for the failed pushes.
    let digests = s.inspect(&image("busybox"))["RepoDigests"].clone();
    assert_eq!(digests.as_array().map(|a| a.len()), Some(1), "{digests}");
}

#[test]
fn skiff_push_when_the_cli_has_it() {
    let s = Skiff::new();
    if s.run(&["push", "--help"]).code != 0 {
        eprintln!("skiff push is not in the CLI yet");
        return;
    }
    s.run(&["pull", &image("busybox")]).ok();
    let repo = format!("{}/{}", registry(), fresh_repo("cli"));
    s.run(&["tag", &image("busybox"), &format!("{repo}:v1")])
        .ok();
    let out = s.run(&["push", &format!("{repo}:v1")]).ok();
    assert!(
        out.stdout.contains("Mounted from busybox") && out.stdout.contains("v1: digest: sha256:"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_committed_image_is_compressed_once_and_mounted_after() {
    let s = Skiff::new();
    let bb = image("busybox");
    s.run(&["pull", &bb]).ok();
    s.docker(&["run", "--name", "made", &bb, "sh", "-c", "echo local > /f"])
        .ok();
    let repo = format!("{}/{}", registry(), fresh_repo("local"));
    if s.docker(&["commit", "made", &format!("{repo}:v1")]).code != 0 {
        eprintln!("commit is not in the engine yet");
        return;
    }
    let id = s.inspect(&format!("{repo}:v1"))["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The new layer is compressed and uploaded; busybox's is mounted where it was pulled.
    let out = s.docker(&["push", &format!("{repo}:v1")]).ok();
    let mut statuses = layer_statuses(&out.stdout);
    statuses.sort();
    assert_eq!(
        statuses,
        ["Mounted from busybox", "Pushed"],
        "{}",
        out.stdout
    );
    let digest = pushed_digest(&out.stdout, "v1");

    // Its compressed form is remembered: another repository mounts it from this one, and
    // the manifest is the same.
    let name = repo.rsplit('/').next().unwrap_or_default().to_string();
    let other = format!("{}/{}", registry(), fresh_repo("local2"));
    s.docker(&["tag", &format!("{repo}:v1"), &format!("{other}:v1")])
        .ok();
    let again = s.docker(&["push", &format!("{other}:v1")]).ok();
    let mut statuses = layer_statuses(&again.stdout);
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "Mounted from busybox".to_string(),
            format!("Mounted from {name}")
        ],
        "{}",
        again.stdout
    );
    assert_eq!(pushed_digest(&again.stdout, "v1"), digest);

    let empty = Skiff::new();
    empty.run(&["pull", &format!("{other}:v1")]).ok();
    assert_eq!(empty.image_ids(), vec![id]);
    let f = empty
        .run(&["run", "--rm", &format!("{other}:v1"), "cat", "/f"])
        .ok();
    assert_eq!(f.stdout, "local\n");
}
