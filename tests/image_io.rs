//! Images in and out as tar files with the docker CLI on skiff's socket: save and load (one
//! image, two in one archive, archives skopeo writes in docker's and in the OCI format),
//! export a container and import the tree as an image, and bad archives refused with nothing
//! stored.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use skiff_e2e::*;

/// A skiff whose engine is up (the docker CLI does not start it) with `names` pulled.
fn ready(names: &[&str]) -> Skiff {
    let s = Skiff::new();
    s.run(&["version"]).ok();
    for n in names {
        s.docker(&["pull", "-q", &image(n)]).ok();
    }
    s
}

fn image_id(s: &Skiff, name: &str) -> String {
    s.docker(&["image", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The entries of a tar file: name → content (directories and links with none).
fn entries(path: &Path) -> HashMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(path).expect("archive"));
    let mut out = HashMap::new();
    for e in a.entries().expect("tar") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read entry");
        out.insert(name, data);
    }
    out
}

fn tmp_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir_in(test_tmp()).expect("tmp");
    let p = d.path().join(name);
    (d, p)
}

#[test]
fn save_rmi_load_gives_the_same_image_back() {
    let s = ready(&["busybox"]);
    let bb = format!("{}:latest", image("busybox"));
    let id = image_id(&s, &bb);
    let (_d, file) = tmp_file("bb.tar");
    s.docker(&["save", "-o", file.to_str().unwrap(), &bb]).ok();

    let files = entries(&file);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let hex = id.trim_start_matches("sha256:");
    assert_eq!(manifest[0]["Config"], format!("{hex}.json"));
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([bb.clone()]));
    let layer = manifest[0]["Layers"][0].as_str().expect("a layer");
    let dir = layer.trim_end_matches("/layer.tar");
    assert_eq!(files[&format!("{dir}/VERSION")], b"1.0");
    let repos: serde_json::Value =
        serde_json::from_slice(&files["repositories"]).expect("repositories");
    assert_eq!(repos[&registry_repo("busybox")]["latest"], dir);
    // The layer is the exact stream the config's diff ID names.
    let config: serde_json::Value =
        serde_json::from_slice(&files[&format!("{hex}.json")]).expect("config");
    use sha2::Digest;
    assert_eq!(
        format!("sha256:{:x}", sha2::Sha256::digest(&files[layer])),
        config["rootfs"]["diff_ids"][0]
    );

    s.docker(&["rmi", &bb]).ok();
    assert!(s.image_ids().is_empty());
    let out = s.docker(&["load", "-i", file.to_str().unwrap()]).ok();
    assert_eq!(out.stdout.trim(), format!("Loaded image: {bb}"));
    assert_eq!(image_id(&s, &bb), id);
    let run = s.docker(&["run", "--rm", &bb, "echo", "loaded"]).ok();
    assert_eq!(run.stdout, "loaded\n");

    // Loading it again over itself changes nothing; by stdin too.
    let bytes = std::fs::read(&file).expect("read archive");
    let again = s.docker_stdin(&["load"], &bytes).ok();
    assert!(
        again.stdout.contains(&format!("Loaded image: {bb}")),
        "{}",
        again.stdout
    );
    assert_eq!(s.image_ids(), vec![id]);
}

/// The repository's name as `repositories` keys it (familiar; ours has a registry host).
fn registry_repo(name: &str) -> String {
    format!("{}/{name}", registry())
}

#[test]
fn two_images_in_one_archive_and_an_untagged_one() {
    let s = ready(&["busybox", "layered"]);
    let (bb, layered) = (
        format!("{}:latest", image("busybox")),
        format!("{}:latest", image("layered")),
    );
    let (id_bb, id_layered) = (image_id(&s, &bb), image_id(&s, &layered));
    let (_d, file) = tmp_file("two.tar");
    s.docker(&["save", "-o", file.to_str().unwrap(), &bb, &layered])
        .ok();
    let files = entries(&file);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    assert_eq!(manifest.as_array().map(Vec::len), Some(2));
    // busybox's one layer is a top layer in one image and the bottom one in the other: two
    // v1 directories, as docker writes them (a top layer's v1 ID holds its image's config).
    let layer_tars = files.keys().filter(|k| k.ends_with("/layer.tar")).count();
    assert_eq!(layer_tars, 4, "{:?}", files.keys().collect::<Vec<_>>());

    s.docker(&["rmi", &bb, &layered]).ok();
    let out = s.docker(&["load", "-i", file.to_str().unwrap()]).ok();
    assert_eq!(
        out.lines(),
        vec![
            format!("Loaded image: {bb}").as_str(),
            format!("Loaded image: {layered}").as_str()
        ]
    );
    assert_eq!(image_id(&s, &bb), id_bb);
    assert_eq!(image_id(&s, &layered), id_layered);
    let run = s.docker(&["run", "--rm", &layered]).ok();
    assert!(run.stdout.contains("GREETING"), "{}", run.stdout);

    // Saved by ID, an image comes back without a tag, named by its ID.
    let (_d2, by_id) = tmp_file("byid.tar");
    s.docker(&["save", "-o", by_id.to_str().unwrap(), &id_bb[7..19]])
        .ok();
    s.docker(&["rmi", &bb]).ok();
    let out = s.docker(&["load", "-i", by_id.to_str().unwrap()]).ok();
    assert_eq!(out.stdout.trim(), format!("Loaded image ID: {id_bb}"));

    // A tag that names another image moves, as docker says.
    let (_d3, moving) = tmp_file("moving.tar");
    s.docker(&["tag", &id_bb, "moving:x"]).ok();
    s.docker(&["save", "-o", moving.to_str().unwrap(), "moving:x"])
        .ok();
    s.docker(&["tag", &layered, "moving:x"]).ok();
    let out = s.docker(&["load", "-i", moving.to_str().unwrap()]).ok();
    assert!(
        out.stdout.contains(&format!(
            "The image moving:x already exists, renaming the old one with ID {id_layered} to empty string"
        )),
        "{}",
        out.stdout
    );
    assert_eq!(image_id(&s, "moving:x"), id_bb);
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn archives_skopeo_writes_load() {
    let s = ready(&[]);
    let (_d, dir) = tmp_file("sk");
    std::fs::create_dir(&dir).expect("dir");
    let docker_archive = dir.join("docker.tar");
    let oci_archive = dir.join("oci.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", image("layered")),
        &format!("docker-archive:{}:sk/layered:v1", docker_archive.display()),
    ]);
    // zstd-compressed layers, kept as they are in an OCI layout.
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", image("zstd")),
        &format!("oci-archive:{}:sk/zstd:v1", oci_archive.display()),
    ]);
    let out = s
        .docker(&["load", "-i", docker_archive.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout.trim(), "Loaded image: sk/layered:v1");
    let run = s.docker(&["run", "--rm", "sk/layered:v1"]).ok();
    assert!(run.stdout.contains("GREETING"), "{}", run.stdout);

    let out = s
        .docker(&["load", "-i", oci_archive.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout.trim(), "Loaded image: sk/zstd:v1");
    let run = s
        .docker(&["run", "--rm", "sk/zstd:v1", "cat", "/etc/compression"])
        .ok();
    assert!(run.stdout.contains("zstd"), "{}", run.stdout);

    // The same image as pulled: the same ID.
    s.docker(&["pull", "-q", &image("zstd")]).ok();
    assert_eq!(image_id(&s, "sk/zstd:v1"), image_id(&s, &image("zstd")));
}

#[test]
fn export_a_container_and_import_it_as_an_image() {
    let s = ready(&["busybox"]);
    let bb = image("busybox");
    s.docker(&[
        "run",
        "--name",
        "exme",
        &bb,
        "sh",
        "-c",
        "echo exported > /marker && rm /bin/vi",
    ])
    .ok();
    let (_d, file) = tmp_file("ex.tar");
    s.docker(&["export", "-o", file.to_str().unwrap(), "exme"])
        .ok();
    let files = entries(&file);
    assert_eq!(files["marker"], b"exported\n");
    assert!(files.contains_key("bin/busybox"));
    assert!(
        !files.contains_key("bin/vi"),
        "a removed file is not exported"
    );
    assert!(
        !files.keys().any(|k| k.contains(".wh.")),
        "no whiteouts in an export"
    );

    let out = s
        .docker(&[
            "import",
            "--change",
            r#"CMD ["cat", "/marker"]"#,
            "--change",
            "ENV WHO=imported",
            "-m",
            "from a test",
            file.to_str().unwrap(),
            "imp:v1",
        ])
        .ok();
    let id = out.stdout.trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(image_id(&s, "imp:v1"), id);
    let run = s.docker(&["run", "--rm", "imp:v1"]).ok();
    assert_eq!(run.stdout, "exported\n");
    let env = s
        .docker(&["run", "--rm", "imp:v1", "sh", "-c", "echo $WHO"])
        .ok();
    assert_eq!(env.stdout, "imported\n");
    let inspect = s
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Comment}}|{{.Os}}|{{len .RootFS.Layers}}",
            "imp:v1",
        ])
        .ok();
    assert_eq!(inspect.stdout.trim(), "from a test|linux|1");

    // A running container exports too; gzip on the way in is undone.
    s.docker(&["run", "-d", "--name", "live", &bb, "sleep", "60"])
        .ok();
    let (_d2, live) = tmp_file("live.tar");
    s.docker(&["export", "-o", live.to_str().unwrap(), "live"])
        .ok();
    assert!(entries(&live).contains_key("bin/busybox"));
    let gz = Command::new("gzip")
        .arg("-k")
        .arg(&live)
        .status()
        .expect("gzip");
    assert!(gz.success());
    let gz_path = live.with_extension("tar.gz");
    let out = s
        .docker(&["import", gz_path.to_str().unwrap(), "imp:gz"])
        .ok();
    assert!(out.stdout.trim().starts_with("sha256:"));
    assert_eq!(
        s.docker(&["run", "--rm", "imp:gz", "echo", "ok"])
            .ok()
            .stdout,
        "ok\n"
    );

    // Changes docker would not take, and URLs skiff does not fetch.
    s.docker(&[
        "import",
        "--change",
        "RUN true",
        file.to_str().unwrap(),
        "bad:1",
    ])
    .fails_with(1, "run is not a valid change command");
    s.docker(&["import", "http://127.0.0.1:1/x.tar", "bad:2"])
        .fails_with(1, "skiff does not download");
    s.remove_all_containers();
}

#[test]
fn bad_archives_are_refused_with_nothing_stored() {
    let s = ready(&["busybox"]);
    let bb = image("busybox");

    s.docker_stdin(&["load"], b"this is not a tar archive at all\n")
        .fails_with(1, "not a tar file");
    let (_d0, nowhere) = tmp_file("none.tar");
    s.docker(&["save", "-o", nowhere.to_str().unwrap(), "nosuch:tag"])
        .fails_with(1, "reference does not exist");

    // A tar without a manifest.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "foo", &b"bar"[..]).expect("tar");
    s.docker_stdin(&["load"], &b.into_inner().expect("tar"))
        .fails_with(1, "neither manifest.json");

    // A saved archive whose layer was swapped for another: refused, naming the layer.
    let (_d, file) = tmp_file("bb.tar");
    s.docker(&["save", "-o", file.to_str().unwrap(), &bb]).ok();
    let files = entries(&file);
    let mut out = tar::Builder::new(Vec::new());
    let mut other = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    other
        .append_data(&mut h, "evil", &b"evil\n"[..])
        .expect("tar");
    let other = other.into_inner().expect("tar");
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    for name in names {
        let data = if name.ends_with("layer.tar") {
            &other
        } else {
            &files[name]
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, name, data.as_slice()).expect("tar");
    }
    s.docker(&["rmi", &bb]).ok();
    s.docker_stdin(&["load"], &out.into_inner().expect("tar"))
        .fails_with(1, "damaged or was altered");
    assert!(s.image_ids().is_empty(), "no half image");

    // And the real archive still loads.
    s.docker(&["load", "-i", file.to_str().unwrap()]).ok();
    assert_eq!(s.image_ids().len(), 1);
}

#[test]
fn skiffs_own_commands_save_load_export_import() {
    let s = ready(&["busybox"]);
    let bb = format!("{}:latest", image("busybox"));
    let id = image_id(&s, &bb);
    let (_d, dir) = tmp_file("cli");
    std::fs::create_dir(&dir).expect("dir");
    let saved = dir.join("bb.tar");
    s.run(&["save", "-o", saved.to_str().unwrap(), &bb]).ok();
    s.run(&["rmi", &bb]).ok();
    let out = s.run(&["load", "-i", saved.to_str().unwrap()]).ok();
    assert!(
        out.stdout.contains(&format!("Loaded image: {bb}")),
        "{}",
        out.stdout
    );
    assert_eq!(image_id(&s, &bb), id);

    s.run(&["run", "--name", "cliex", &bb, "sh", "-c", "echo cli > /m"])
        .ok();
    let exported = dir.join("ex.tar");
    s.run(&["export", "-o", exported.to_str().unwrap(), "cliex"])
        .ok();
    let out = s
        .run(&["import", exported.to_str().unwrap(), "cliimp:1"])
        .ok();
    assert!(out.stdout.trim().starts_with("sha256:"), "{}", out.stdout);
    let run = s.run(&["run", "--rm", "cliimp:1", "cat", "/m"]).ok();
    assert_eq!(run.stdout, "cli\n");

    s.run_stdin(&["load"], "not a tar")
        .fails_with(1, "not a tar file");
    s.remove_all_containers();
}
