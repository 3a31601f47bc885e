//! Image references as dockerd keeps them (moby's `daemon/images/image_delete.go`): removing a
//! repository's last tag takes that repository's digest references and no other's, an image
//! goes only with its last reference, `rmi` by ID wants `-f` for references in several
//! repositories, and containers keep their image with docker's messages.

use skiff_e2e::*;

/// The test registry's busybox under a second repository: the same manifest, copied once
/// (skopeo copies a manifest unchanged between registries of one kind).
fn second_repository() -> String {
    let dest = image("refs-b");
    sh(&format!(
        "skopeo copy -q --src-tls-verify=false --dest-tls-verify=false docker://{} docker://{dest}:latest",
        image("busybox")
    ));
    dest
}

fn id_of(s: &Skiff, name: &str) -> String {
    s.inspect(name)["Id"].as_str().expect("Id").to_string()
}

#[test]
fn rmi_of_a_tag_keeps_another_repositorys_digest_reference() {
    let s = Skiff::new();
    let b = second_repository();
    s.run(&["pull", &image("busybox")]).ok();
    let id = id_of(&s, &image("busybox"));
    let digest = s.inspect(&image("busybox"))["RepoDigests"][0]
        .as_str()
        .and_then(|d| d.split_once('@'))
        .map(|(_, d)| d.to_string())
        .expect("a repo digest");
    let by_digest = format!("{b}@{digest}");
    s.run(&["pull", &by_digest]).ok();
    assert_eq!(id_of(&s, &by_digest), id, "one image");

    // The repository's last tag takes its digest with it, not repo-b's.
    let out = s.run(&["rmi", &image("busybox:latest")]).ok();
    assert_eq!(
        out.lines(),
        vec![
            format!("Untagged: {}:latest", image("busybox")),
            format!("Untagged: {}@{digest}", image("busybox")),
        ]
    );
    let left = s.inspect(&id);
    assert_eq!(left["RepoTags"], serde_json::json!([]));
    assert_eq!(left["RepoDigests"], serde_json::json!([by_digest]));
    // `images` shows it as repo-b <none>, with its digest under --digests.
    let out = s.run(&["images", "--digests"]).ok();
    let row: Vec<&str> = out
        .lines()
        .iter()
        .find(|l| l.starts_with(&b))
        .unwrap_or_else(|| panic!("no {b} row in:\n{}", out.stdout))
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        &[b.as_str(), "<none>", digest.as_str(), &id[7..19]]
    );
    // No tag: dangling (a digest does not count), as dockerd lists it.
    let dangling = s.run(&["images", "-q", "-f", "dangling=true"]).ok();
    assert_eq!(dangling.lines(), vec![&id[7..19]]);

    // The last reference takes the image.
    let out = s.run(&["rmi", &by_digest]).ok();
    assert_eq!(
        out.lines()[..2].to_vec(),
        vec![format!("Untagged: {by_digest}"), format!("Deleted: {id}")]
    );
    assert!(s.image_ids().is_empty());
}

#[test]
fn rmi_of_tags_in_one_repository_and_by_id() {
    let s = Skiff::new();
    let b = second_repository();
    s.run(&["pull", &image("busybox")]).ok();
    let id = id_of(&s, &image("busybox"));
    let short = &id[7..19];
    let digest_ref = s.inspect(&id)["RepoDigests"][0]
        .as_str()
        .expect("digest")
        .to_string();
    s.run(&["tag", &image("busybox"), &image("busybox:second")])
        .ok();

    // Two tags in one repository: by ID needs -f.
    s.run(&["rmi", short]).fails_with(
        1,
        &format!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"),
    );
    // One of them: the other and the digest stay.
    let out = s.run(&["rmi", &image("busybox:second")]).ok();
    assert_eq!(
        out.lines(),
        vec![format!("Untagged: {}:second", image("busybox"))]
    );
    assert_eq!(
        s.inspect(&id)["RepoDigests"],
        serde_json::json!([digest_ref])
    );
    // A tag and its repository's digest are one reference: by ID, no -f needed.
    let out = s.run(&["rmi", short]).ok();
    assert_eq!(
        out.lines()[..3].to_vec(),
        vec![
            format!("Untagged: {}:latest", image("busybox")),
            format!("Untagged: {digest_ref}"),
            format!("Deleted: {id}"),
        ]
    );

    // Digest references in two repositories, no tag: by ID with -f, every reference goes.
    s.run(&["pull", &digest_ref]).ok();
    let digest = digest_ref.split_once('@').expect("@").1;
    s.run(&["pull", &format!("{b}@{digest}")]).ok();
    s.run(&["rmi", short]).fails_with(1, "must be forced");
    let out = s.run(&["rmi", "-f", short]).ok();
    let mut untagged: Vec<&str> = out
        .lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix("Untagged: "))
        .collect();
    untagged.sort();
    let mut want = vec![digest_ref.clone(), format!("{b}@{digest}")];
    want.sort();
    assert_eq!(untagged, want);
    assert!(out.stdout.contains(&format!("Deleted: {id}")));
    assert!(s.image_ids().is_empty());
}

#[test]
fn rmi_of_an_image_containers_use() {
    let s = Skiff::new();
    let bb = image("busybox");
    s.run(&["pull", &bb]).ok();
    let id = id_of(&s, &bb);
    let short = &id[7..19];
    let stopped = s
        .run(&["create", &bb, "true"])
        .ok()
        .stdout
        .trim()
        .to_string();

    // Its only repository: the tag cannot go without -f, nor the image by ID.
    s.run(&["rmi", &bb]).fails_with(
        1,
        &format!(
            "conflict: unable to remove repository reference \"{bb}\" (must force) - container {} is using its referenced image {short}",
            &stopped[..12]
        ),
    );
    s.run(&["rmi", short]).fails_with(
        1,
        &format!(
            "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
            &stopped[..12]
        ),
    );
    // A running container cannot be forced.
    let running = s
        .run(&["run", "-d", &bb, "sleep", "1000"])
        .ok()
        .stdout
        .trim()
        .to_string();
    s.run(&["rmi", "-f", short]).fails_with(
        1,
        &format!(
            "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
            &running[..12]
        ),
    );
    // With another tag left, the name goes without -f.
    s.run(&["tag", &bb, "mine:v1"]).ok();
    let out = s.run(&["rmi", "mine:v1"]).ok();
    assert_eq!(out.lines(), vec!["Untagged: mine:v1"]);
    // Forced by name: the references go; the image stays for its containers, <none>.
    let out = s.run(&["rmi", "-f", &bb]).ok();
    assert!(
        out.lines().iter().all(|l| l.starts_with("Untagged: ")),
        "{}",
        out.stdout
    );
    assert_eq!(s.image_ids(), vec![id.clone()]);
    s.run(&["rm", "-f", &running, &stopped]).ok();
    let out = s.run(&["image", "prune", "-f"]).ok();
    assert!(
        out.stdout.contains(&format!("deleted: {id}")),
        "{}",
        out.stdout
    );
}
