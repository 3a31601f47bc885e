//! Building images on both backends, as docker's tutorial ends: a Dockerfile with stages, build
//! args, RUN, COPY and config steps built into an image whose `history` reads as docker's; the
//! build cache (hits counted, a changed file and --no-cache missing it); a multi-stage build
//! into `scratch`; `--target`; `.dockerignore`; a failing step that leaves nothing behind;
//! Dockerfile errors that name the line; the docker CLI's classic build on skiff's socket;
//! and `commit`/`diff` of a changed container. In the VM the context travels from the host.

use std::path::Path;
use std::process::{Command, Stdio};

use skiff_e2e::*;

fn ready() -> (Skiff, String) {
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    (s, image("busybox"))
}

/// A build context directory with these files.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("skiff-ctx-")
        .tempdir_in(test_tmp())
        .expect("context dir");
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    dir
}

fn build(s: &Skiff, args: &[&str], ctx: &Path) -> Run {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let path = ctx.to_str().expect("utf-8 path");
    all.push(path);
    s.run(&all)
}

fn image_id(s: &Skiff, name: &str) -> String {
    s.run(&["image", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn tutorial(bb: &str) -> String {
    format!(
        "FROM {bb} AS b\n\
         ARG G=hi\n\
         RUN echo $G > /g && echo built-$G\n\
         COPY src/ /src/\n\
         FROM {bb}\n\
         LABEL team=skiff\n\
         COPY --from=b /g /out/g\n\
         COPY --from=b /src /out/src\n\
         HEALTHCHECK --interval=2s CMD test -e /out/g\n\
         CMD [\"cat\", \"/out/g\"]\n"
    )
}

#[test]
fn the_tutorials_build_runs_and_its_history_reads_like_dockers() {
    let (s, bb) = ready();
    let ctx = context(&[
        ("Dockerfile", &tutorial(&bb)),
        ("src/a.txt", "a\n"),
        ("src/d/b.txt", "b\n"),
    ]);
    let out = build(
        &s,
        &["-t", "myapp:v1", "--build-arg", "G=hello"],
        ctx.path(),
    )
    .ok();
    for needle in [
        "Step 1/10 : FROM",
        "Step 3/10 : RUN echo $G > /g && echo built-$G",
        " ---> Running in ",
        "built-hello",
        "Removing intermediate container",
        "Successfully built ",
        "Successfully tagged myapp:v1",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            out.stdout
        );
    }
    assert_eq!(s.run(&["run", "--rm", "myapp:v1"]).ok().stdout, "hello\n");
    let listed = s
        .run(&["run", "--rm", "myapp:v1", "find", "/out/src", "-type", "f"])
        .ok()
        .stdout;
    assert!(
        listed.contains("/out/src/a.txt") && listed.contains("/out/src/d/b.txt"),
        "{listed}"
    );

    let history = s.run(&["history", "--no-trunc", "myapp:v1"]).ok().stdout;
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("IMAGE"), "{history}");
    assert!(
        lines[1].contains("/bin/sh -c #(nop)  CMD [\"cat\" \"/out/g\"]"),
        "{history}"
    );
    assert!(lines[2].contains("HEALTHCHECK"), "{history}");
    assert!(lines[3].contains("#(nop) COPY --from=b dir:"), "{history}");
    let id = image_id(&s, "myapp:v1");
    assert!(
        lines[1].starts_with(&id),
        "the top row names the image:\n{history}"
    );
    // Build steps name their own images, the base's rows are <missing> as docker shows them.
    assert!(!lines[3].starts_with("<missing>"), "{history}");

    let inspect = s.run(&["image", "inspect", "myapp:v1"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(v[0]["Config"]["Labels"]["team"], "skiff");
    assert_eq!(
        v[0]["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /out/g"])
    );
    // The steps' images are kept as the cache, out of `images` unless asked for.
    let shown = s.run(&["images", "-q"]).ok().stdout.lines().count();
    let all = s.run(&["images", "-a", "-q"]).ok().stdout.lines().count();
    assert!(
        all > shown + 3,
        "images -a shows the steps: {all} vs {shown}"
    );
}

#[test]
fn a_rebuild_uses_the_cache_until_a_file_changes() {
    let (s, bb) = ready();
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {bb}\nENV A=1\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n"),
        ),
        ("f", "one\n"),
    ]);
    build(&s, &["-t", "c:1"], ctx.path()).ok();
    let first = image_id(&s, "c:1");
    let again = build(&s, &["-t", "c:1"], ctx.path()).ok();
    assert_eq!(
        again.stdout.matches(" ---> Using cache").count(),
        4,
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("Running in"), "{}", again.stdout);
    assert_eq!(
        image_id(&s, "c:1"),
        first,
        "a fully cached build is the same image"
    );

    // A touch is not a change; new content is, from its COPY on.
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("f"))
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .expect("touch");
    let touched = build(&s, &["-t", "c:1"], ctx.path()).ok();
    assert_eq!(
        touched.stdout.matches(" ---> Using cache").count(),
        4,
        "{}",
        touched.stdout
    );
    std::fs::write(ctx.path().join("f"), "two\n").expect("write");
    let changed = build(&s, &["-t", "c:1"], ctx.path()).ok();
    assert_eq!(
        changed.stdout.matches(" ---> Using cache").count(),
        1,
        "{}",
        changed.stdout
    );
    assert_eq!(s.run(&["run", "--rm", "c:1"]).ok().stdout, "two\n");
    let fresh = build(&s, &["--no-cache", "-t", "c:1"], ctx.path()).ok();
    assert!(!fresh.stdout.contains("Using cache"), "{}", fresh.stdout);
}

#[test]
fn a_multi_stage_build_into_scratch_and_a_target_stage() {
    let (s, bb) = ready();
    let ctx = context(&[(
        "Dockerfile",
        &format!(
            "FROM {bb} AS tools\n\
             RUN mkdir /out && echo static > /out/file\n\
             FROM scratch\n\
             COPY --from=tools /bin/busybox /busybox\n\
             COPY --from=tools /out/file /file\n\
             ENTRYPOINT [\"/busybox\"]\n\
             CMD [\"cat\", \"/file\"]\n"
        ),
    )]);
    build(&s, &["-q", "-t", "tiny"], ctx.path()).ok();
    assert_eq!(s.run(&["run", "--rm", "tiny"]).ok().stdout, "static\n");
    let layers = s
        .run(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "tiny"])
        .ok()
        .stdout;
    let layers: Vec<String> = serde_json::from_str(&layers).expect("layers JSON");
    assert_eq!(layers.len(), 2, "scratch plus two COPY layers");
    let out = build(&s, &["--target", "tools", "-t", "tools"], ctx.path()).ok();
    // As dockerd counts: the stages after the target are not steps of this build.
    assert!(out.stdout.contains("Step 2/2 : RUN"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("Step 3/"),
        "stops at the target:\n{}",
        out.stdout
    );
    assert_eq!(
        s.run(&["run", "--rm", "tools", "cat", "/out/file"])
            .ok()
            .stdout,
        "static\n"
    );
    build(&s, &["--target", "nope"], ctx.path())
        .fails_with(1, "failed to reach build target nope in Dockerfile");
}

#[test]
fn dockerignore_build_args_workdir_and_chown() {
    let (s, bb) = ready();
    let ctx = context(&[
        (
            "Dockerfile",
            &format!(
                "FROM {bb}\n\
                 ARG V=default\n\
                 ENV V=$V\n\
                 WORKDIR /app\n\
                 COPY --chown=1000:1000 . ./\n\
                 ADD pack.tar /unpacked/\n\
                 ADD pack.tar.bz2 /bz/\n\
                 ADD pack.tar.xz /xz/\n\
                 RUN ls -an /app > /listing && echo $V > /v\n"
            ),
        ),
        // The Dockerfile and .dockerignore are sent all the same (the engine reads them) and
        // then kept out of what the steps see, as dockerd does.
        (
            ".dockerignore",
            "secret.txt\n*.log\n!keep.log\nDockerfile\n.dockerignore\n",
        ),
        ("secret.txt", "no\n"),
        ("debug.log", "no\n"),
        ("keep.log", "yes\n"),
        ("code.txt", "yes\n"),
    ]);
    // Tars for ADD to extract: plain, and compressed as docker's ADD takes them.
    let pack = context(&[("inner/x.txt", "from the tar\n")]);
    for (name, flag) in [
        ("pack.tar", "-cf"),
        ("pack.tar.bz2", "-cjf"),
        ("pack.tar.xz", "-cJf"),
    ] {
        let status = Command::new("tar")
            .arg(flag)
            .arg(ctx.path().join(name))
            .arg("-C")
            .arg(pack.path())
            .arg("inner")
            .status()
            .expect("tar");
        assert!(status.success(), "tar {flag}");
    }
    let out = build(
        &s,
        &[
            "-t",
            "ign",
            "--build-arg",
            "V=given",
            "--build-arg",
            "UNUSED=1",
        ],
        ctx.path(),
    )
    .ok();
    assert!(
        out.stdout
            .contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{}",
        out.stdout
    );
    let listing = s
        .run(&["run", "--rm", "ign", "cat", "/listing"])
        .ok()
        .stdout;
    assert!(
        listing.contains("code.txt") && listing.contains("keep.log"),
        "{listing}"
    );
    assert!(
        !listing.contains("secret.txt") && !listing.contains("debug.log"),
        "{listing}"
    );
    assert!(
        !listing.contains("Dockerfile") && !listing.contains(".dockerignore"),
        "{listing}"
    );
    assert!(
        listing.contains(" 1000     1000 "),
        "--chown applied:\n{listing}"
    );
    assert_eq!(
        s.run(&["run", "--rm", "ign", "cat", "/v"]).ok().stdout,
        "given\n"
    );
    assert_eq!(
        s.run(&["run", "--rm", "ign", "cat", "/unpacked/inner/x.txt"])
            .ok()
            .stdout,
        "from the tar\n"
    );
    assert_eq!(
        s.run(&[
            "run",
            "--rm",
            "ign",
            "cat",
            "/bz/inner/x.txt",
            "/xz/inner/x.txt"
        ])
        .ok()
        .stdout,
        "from the tar\nfrom the tar\n"
    );
    assert_eq!(s.run(&["run", "--rm", "ign", "pwd"]).ok().stdout, "/app\n");
}

#[test]
fn a_failing_step_tags_nothing_and_leaves_nothing_after_prune() {
    let (s, bb) = ready();
    let before = s.run(&["images", "-a", "-q"]).ok().stdout;
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nENV A=1\nRUN echo partial-output; exit 7\n"),
    )]);
    let out = build(&s, &["-t", "bad"], ctx.path());
    assert_eq!(
        out.code, 7,
        "docker's CLI exits with the step's code:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("partial-output"), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "The command '/bin/sh -c echo partial-output; exit 7' returned a non-zero code: 7"
        ),
        "{}",
        out.stderr
    );
    s.run(&["image", "inspect", "bad"])
        .fails_with(1, "No such image");
    assert_eq!(
        s.run(&["ps", "-a", "-q"]).ok().stdout,
        "",
        "no step container left"
    );
    s.run(&["image", "prune", "-f"]).ok();
    assert_eq!(s.run(&["images", "-a", "-q"]).ok().stdout, before);
}

#[test]
fn bad_dockerfiles_are_refused_with_the_line_and_what_to_do() {
    let (s, bb) = ready();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("FROM {bb}\nFOO bar\n"),
            "dockerfile parse error on line 2: unknown instruction: FOO",
        ),
        (
            format!("FROM {bb}\nRUN --mount=type=cache,target=/x true\n"),
            "requires BuildKit",
        ),
        (
            format!("FROM {bb}\nRUN <<EOF\necho\nEOF\n"),
            "requires BuildKit",
        ),
        (
            format!("FROM {bb}\nCOPY missing.txt /x\n"),
            "file not found in build context",
        ),
        (
            format!("FROM {bb}\nCOPY ../outside /x\n"),
            "file not found in build context",
        ),
        (
            "FROM 127.0.0.1:5000/no-such-image\n".to_string(),
            "no-such-image",
        ),
        ("ENV A=1\n".to_string(), "no build stage in current context"),
        (String::new(), "cannot be empty"),
    ];
    for (text, needle) in cases {
        let ctx = context(&[("Dockerfile", &text)]);
        let out = build(&s, &["-t", "x"], ctx.path());
        assert_ne!(out.code, 0, "{text:?} built:\n{}", out.stdout);
        assert!(
            out.stderr.contains(needle) || out.stdout.contains(needle),
            "{text:?}: expected {needle:?}:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
    s.run(&["image", "inspect", "x"])
        .fails_with(1, "No such image");
}

#[test]
fn the_docker_cli_builds_on_skiffs_socket() {
    let (s, bb) = ready();
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {bb}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n"),
        ),
        ("msg", "from docker build\n"),
    ]);
    for env in [Some("0"), None] {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", s.socket().display()))
            .args(["build", "-t", "viadocker"])
            .arg(ctx.path())
            .env("DOCKER_CONFIG", s.docker_config())
            .env_remove("DOCKER_BUILDKIT")
            .stdin(Stdio::null());
        if let Some(v) = env {
            cmd.env("DOCKER_BUILDKIT", v);
        }
        let out = Run::from(cmd.output().expect("docker build")).ok();
        assert!(
            out.stdout.contains("Successfully tagged viadocker:latest"),
            "{}",
            out.stdout
        );
        assert_eq!(
            s.docker(&["run", "--rm", "viadocker"]).ok().stdout,
            "from docker build\n"
        );
    }
    let id = s.docker(&["images", "-q", "viadocker"]).ok().stdout;
    assert_eq!(id.trim().len(), 12);
}

#[test]
fn commit_and_diff_of_a_changed_container() {
    let (s, bb) = ready();
    s.run(&[
        "run",
        "--name",
        "changed",
        &bb,
        "sh",
        "-c",
        "echo c > /m && mkdir /d && rm /bin/true",
    ])
    .ok();
    let diff = s.run(&["diff", "changed"]).ok().stdout;
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /m"), "{diff}");
    assert!(lines.contains(&"A /d"), "{diff}");
    assert!(lines.contains(&"D /bin/true"), "{diff}");
    assert!(lines.contains(&"C /bin"), "{diff}");
    assert!(
        !diff.contains("/etc/hosts") && !diff.contains("/proc"),
        "engine mounts are not changes:\n{diff}"
    );
    let id = s
        .run(&[
            "commit",
            "-m",
            "msg",
            "-c",
            "CMD [\"cat\", \"/m\"]",
            "changed",
            "capcm:v1",
        ])
        .ok()
        .stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(s.run(&["run", "--rm", "capcm:v1"]).ok().stdout, "c\n");
    s.run(&["run", "--rm", "capcm:v1", "test", "!", "-e", "/bin/true"])
        .ok();
    let history = s
        .run(&[
            "history",
            "--format",
            "{{.Comment}}|{{.CreatedBy}}",
            "capcm:v1",
        ])
        .ok()
        .stdout;
    assert!(
        history
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("msg|sh -c echo c > /m")),
        "{history}"
    );
    // The docker CLI's diff and commit on the same engine.
    let d = s.docker(&["diff", "changed"]).ok().stdout;
    assert_eq!(d, diff);
    s.docker(&["commit", "changed", "viadocker:commit"]).ok();
    assert_eq!(
        s.run(&["run", "--rm", "viadocker:commit", "cat", "/m"])
            .ok()
            .stdout,
        "c\n"
    );
}

#[test]
fn a_built_image_pushed_then_pulled_into_an_empty_store_is_the_same_image() {
    let (s, bb) = ready();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = format!("{}/built-{}-{nanos}:v1", registry(), std::process::id());
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nRUN echo made-here > /x\nCMD [\"cat\", \"/x\"]\n"),
    )]);
    build(&s, &["-q", "-t", &name], ctx.path()).ok();
    let id = image_id(&s, &name);
    let pushed = s.run(&["push", &name]).ok();
    assert!(pushed.stdout.contains("Pushed"), "{}", pushed.stdout);
    assert!(
        pushed.stdout.contains("v1: digest: sha256:"),
        "{}",
        pushed.stdout
    );

    let empty = Skiff::new();
    empty.run(&["pull", "-q", &name]).ok();
    assert_eq!(image_id(&empty, &name), id, "the same image, by ID");
    assert_eq!(
        empty.run(&["run", "--rm", &name]).ok().stdout,
        "made-here\n"
    );
}

/// `skiff build -t TAG CTX` started in the background and read until its RUN step prints
/// "started": the build, the rest of its output, and what it printed so far.
// The child goes back to the caller, which waits for it; the lint does not follow it there.
#[allow(clippy::zombie_processes)]
fn build_until_started(
    s: &Skiff,
    tag: &str,
    ctx: &Path,
    stderr: Stdio,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = s
        .command()
        .args(["build", "-t", tag])
        .arg(ctx)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn build");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0);
        if n == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the build ended before its RUN step printed started:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("started") {
            return (child, stdout, seen);
        }
    }
}

/// A prune while a build runs takes nothing the build stands on: its base and the image of
/// each step are held until it ends, so the next step still starts from them.
#[test]
fn a_prune_during_a_build_leaves_what_the_build_stands_on() {
    let (s, bb) = ready();
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nRUN echo one > /one\nRUN echo started && sleep 3\nRUN cat /one\n"),
    )]);
    let (child, mut stdout, mut seen) =
        build_until_started(&s, "survivor", ctx.path(), Stdio::piped());
    // The base is untagged now: only the build's hold keeps it and the first step's image.
    s.run(&["rmi", &bb]).ok();
    s.run(&["image", "prune", "-a", "-f"]).ok();
    let out = child.wait_with_output().expect("build output");
    std::io::Read::read_to_string(&mut stdout, &mut seen).expect("read");
    assert!(
        out.status.success(),
        "the build failed:\n{seen}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.contains("Successfully tagged survivor:latest"),
        "{seen}"
    );
    assert_eq!(
        s.run(&["run", "--rm", "survivor", "cat", "/one"])
            .ok()
            .stdout,
        "one\n"
    );
    s.run(&["system", "check"]).ok();
}

/// docker cancels a build whose client goes away: the running step's command is killed, its
/// container removed, nothing tagged; the steps done before stay as the cache.
#[test]
fn a_build_whose_client_goes_away_is_canceled() {
    let (s, bb) = ready();
    let ctx = context(&[(
        "Dockerfile",
        &format!(
            "FROM {bb}\nRUN echo first > /first\nRUN echo started && sleep 60\nCMD [\"true\"]\n"
        ),
    )]);
    let (mut child, _stdout, _) = build_until_started(&s, "abandoned", ctx.path(), Stdio::null());
    let _ = child.kill();
    let _ = child.wait();
    // The step's container goes as soon as the engine sees the client gone, long before the
    // sleep would end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = s.run(&["ps", "-a", "-q"]).ok().stdout;
        if left.trim().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the canceled step's container is still there: {left}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.run(&["image", "inspect", "abandoned"])
        .fails_with(1, "No such image");
    // The first RUN was kept as the cache.
    let ctx2 = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nRUN echo first > /first\n"),
    )]);
    let out = build(&s, &["-t", "kept"], ctx2.path()).ok();
    assert!(out.stdout.contains(" ---> Using cache"), "{}", out.stdout);
}

#[test]
fn a_build_killed_midway_leaves_nothing_half_visible() {
    let (s, bb) = ready();
    let ctx = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nRUN echo started && sleep 60\nCMD [\"true\"]\n"),
    )]);
    let (mut child, _stdout, _) = build_until_started(&s, "killed", ctx.path(), Stdio::null());
    s.kill_agent();
    let _ = child.kill();
    let _ = child.wait();
    s.run(&["image", "inspect", "killed"])
        .fails_with(1, "No such image");
    // The next build works, and the store is whole.
    let ctx2 = context(&[(
        "Dockerfile",
        &format!("FROM {bb}\nRUN echo after > /a\nCMD [\"cat\", \"/a\"]\n"),
    )]);
    build(&s, &["-q", "-t", "after"], ctx2.path()).ok();
    assert_eq!(s.run(&["run", "--rm", "after"]).ok().stdout, "after\n");
    // Exits non-zero on any problem it finds in the store.
    s.run(&["system", "check"]).ok();
    if !on_vm() {
        // The killed build's context tmpfs is gone with the engine that restarted.
        let tmp = s.root().join("images/tmp");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.contains(tmp.to_str().expect("utf-8")),
            "a mount is left under {}",
            tmp.display()
        );
    }
}

/// A raw tar whose entry names are written as given (the tar crate's builder would refuse
/// `..`), as a hostile client can send.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).expect("link");
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn post_build(s: &Skiff, query: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST /build?{query} HTTP/1.0\r\nHost: skiff\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.api_raw(&req)
}

#[test]
fn hostile_contexts_stay_inside_the_context() {
    let (s, bb) = ready();
    // An entry climbing out of the context: refused before any step runs.
    let dockerfile = format!("FROM {bb}\nCOPY . /ctx/\n");
    let climbing = raw_tar(&[
        (
            "Dockerfile",
            tar::EntryType::Regular,
            "",
            dockerfile.as_bytes(),
        ),
        ("../../escaped-by-build", tar::EntryType::Regular, "", b"x"),
    ]);
    let (code, body) = post_build(&s, "t=hostile1", &climbing);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("climbs out"), "{body}");
    s.run(&["image", "inspect", "hostile1"])
        .fails_with(1, "No such image");

    // Symlinks in the context lead nowhere outside it: an absolute one and one climbing with
    // `..` name files of the context's own root, which are not there.
    for target in ["/etc/hostname", "../../../../../../etc/hostname"] {
        let dockerfile = format!("FROM {bb}\nCOPY leak /leak\n");
        let ctx = raw_tar(&[
            (
                "Dockerfile",
                tar::EntryType::Regular,
                "",
                dockerfile.as_bytes(),
            ),
            ("leak", tar::EntryType::Symlink, target, b""),
        ]);
        let (code, body) = post_build(&s, "t=hostile2", &ctx);
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains("file not found in build context"),
            "{target}: {body}"
        );
        s.run(&["image", "inspect", "hostile2"])
            .fails_with(1, "No such image");
    }
    // A directory symlink copied with its tree: the link is copied as a link, not followed.
    let dockerfile = format!("FROM {bb}\nCOPY d /d\nCMD [\"readlink\", \"/d/up\"]\n");
    let ctx = raw_tar(&[
        (
            "Dockerfile",
            tar::EntryType::Regular,
            "",
            dockerfile.as_bytes(),
        ),
        ("d/", tar::EntryType::Directory, "", b""),
        ("d/up", tar::EntryType::Symlink, "/etc", b""),
    ]);
    let (code, body) = post_build(&s, "t=hostile3", &ctx);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("Successfully tagged hostile3:latest"),
        "{body}"
    );
    assert_eq!(s.run(&["run", "--rm", "hostile3"]).ok().stdout, "/etc\n");
}

#[test]
fn docker_rules_for_wildcards_workdir_env_and_directory_modes() {
    let (s, bb) = ready();
    let ctx = context(&[
        (
            "Dockerfile",
            &format!(
                "FROM {bb}\n\
                 RUN mkdir -p /data && chmod 700 /data\n\
                 RUN chmod 1777 /data\n\
                 COPY *.jar app.jar\n\
                 WORKDIR /made/here\n\
                 ENV abc=hello\n\
                 ENV abc=bye def=$abc\n\
                 RUN stat -c %a /data > /mode && echo $def > /def\n"
            ),
        ),
        ("lib-1.0.jar", "jar\n"),
    ]);
    build(&s, &["-q", "-t", "rules"], ctx.path()).ok();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "rules"];
        all.extend_from_slice(args);
        s.run(&all).ok().stdout
    };
    // A directory's mode change alone is a change of its layer.
    assert_eq!(run(&["cat", "/mode"]), "1777\n");
    // One wildcard match is copied to the destination's own name, as docker does.
    assert_eq!(run(&["cat", "/app.jar"]), "jar\n");
    // Each value of one ENV sees the environment from before it.
    assert_eq!(run(&["cat", "/def"]), "hello\n");
    // WORKDIR made its directory, in the image.
    assert_eq!(run(&["pwd"]), "/made/here\n");
    let layers = s
        .run(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "rules"])
        .ok()
        .stdout;
    let layers: Vec<String> = serde_json::from_str(&layers).expect("layers JSON");
    // busybox's one, two RUNs, the COPY, WORKDIR's directory and the last RUN.
    assert_eq!(layers.len(), 6, "{layers:?}");

    // A wildcard match that is a symlink out of the context names nothing there.
    let ctx = context(&[("Dockerfile", &format!("FROM {bb}\nADD *.tar /out/\n"))]);
    std::os::unix::fs::symlink("/etc/passwd", ctx.path().join("host.tar")).expect("symlink");
    build(&s, &["-t", "leak"], ctx.path()).fails_with(1, "file not found in build context");
}

#[test]
fn build_options_skiff_does_not_apply_are_refused_by_name() {
    let (s, bb) = ready();
    let dockerfile = format!("FROM {bb}\nRUN true\n");
    let ctx = raw_tar(&[(
        "Dockerfile",
        tar::EntryType::Regular,
        "",
        dockerfile.as_bytes(),
    )]);
    let ulimits = "%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22%3A64%2C%22Soft%22%3A64%7D%5D";
    for (query, says) in [
        (
            "t=refused1&version=2".to_string(),
            "skiff serves the classic builder only (version=1), not version=2: BuildKit is not supported; build with DOCKER_BUILDKIT=0",
        ),
        (
            format!("t=refused1&ulimits={ulimits}"),
            "build option --ulimit (ulimits=[{\\\"Name\\\":\\\"nofile\\\",\\\"Hard\\\":64,\\\"Soft\\\":64}]) is not supported by skiff's builder yet; build without it",
        ),
        (
            "t=refused1&cgroupparent=%2Fmine".to_string(),
            "build option --cgroup-parent (cgroupparent=/mine) is not supported by skiff's builder yet; build without it",
        ),
    ] {
        let (code, body) = post_build(&s, &query, &ctx);
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    s.run(&["image", "inspect", "refused1"])
        .fails_with(1, "No such image");
    // The empty forms the docker CLI always sends are not requests for anything.
    let (code, body) = post_build(
        &s,
        "t=refused1&version=1&ulimits=%5B%5D&cgroupparent=",
        &ctx,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("Successfully tagged refused1:latest"),
        "{body}"
    );
}
