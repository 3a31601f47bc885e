//! `skiff build`: docker's classic `build`. The context (a directory packed with its
//! `.dockerignore` applied, or stdin: an archive or a Dockerfile's text) is prepared by
//! `buildctx` and streamed to `POST /build`; the engine's JSON stream is shown as docker's
//! CLI shows it in classic mode.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use base64::Engine as _;
use serde_json::{json, Value};
use skiff_common::units::human_size4;
use tokio::sync::mpsc;

use super::api::{query, Body, BodyWriter};
use super::imageio::{parse_normalized, upload, Source};
use super::pull::stream_error;
use super::Engine;
use crate::buildctx::{self, ContextError, Entry, ExtraDockerfile, StdinKind};
use crate::cli::BuildArgs;
use crate::dockercfg;
use crate::SkiffError;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    SkiffError::new(msg).into()
}

fn prepare_error(e: ContextError) -> anyhow::Error {
    usage(format!("unable to prepare context: {e}"))
}

/// The flags, checked before anything is read or sent.
#[derive(Debug, PartialEq)]
pub struct Checked {
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// docker's flag checks, with its messages: tags are image references, build args are
/// `KEY=VALUE` or a `KEY` taken from the environment (left out when unset), labels have a
/// name; the platform is this machine's and the network one the builder knows.
pub fn check_flags(a: &BuildArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Checked> {
    if a.context == "-" && a.file.as_deref() == Some("-") {
        return Err(usage(
            "invalid argument: can't use stdin for both build context and dockerfile",
        ));
    }
    for t in &a.tags {
        parse_normalized(t).map_err(|e| {
            usage(format!(
                "invalid argument {t:?} for \"-t, --tag\" flag: {e}"
            ))
        })?;
    }
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        if b.starts_with('=') {
            return Err(usage(format!(
                "invalid argument {b:?} for \"--build-arg\" flag: invalid environment variable: {b}"
            )));
        }
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Some(v) = env(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.trim().is_empty() {
            return Err(usage(format!(
                "invalid argument {l:?} for \"--label\" flag: invalid label '{l}': empty name"
            )));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        check_platform(p)?;
    }
    if !matches!(a.network.as_str(), "default" | "bridge" | "host" | "none") {
        return Err(usage(format!(
            "skiff build: --network {:?} is not supported: the builder's networks are default, bridge, host and none",
            a.network
        )));
    }
    Ok(Checked { build_args, labels })
}

/// This machine's platform, as docker names it (`linux/amd64`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

fn check_platform(p: &str) -> Result<()> {
    let host = host_platform();
    let p_low = p.to_lowercase();
    let ok = p_low == "linux"
        || p_low == host
        || (host == "linux/arm64" && p_low == "linux/arm64/v8")
        || (host == "linux/amd64" && p_low == "linux/x86_64");
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "skiff build: --platform {p:?} is not supported: skiff builds for this machine's platform ({host}) only"
        )))
    }
}

/// `POST /build`'s query as docker's CLI writes it for these flags (empty values left
/// out; `rm` is the engine's default unless `--rm=false`).
pub fn build_target(a: &BuildArgs, checked: &Checked, dockerfile: Option<&str>) -> String {
    let mut q: Vec<(&str, String)> = a.tags.iter().map(|t| ("t", t.clone())).collect();
    if let Some(d) = dockerfile.filter(|d| !d.is_empty()) {
        q.push(("dockerfile", d.to_string()));
    }
    if !checked.build_args.is_empty() {
        q.push(("buildargs", json!(checked.build_args).to_string()));
    }
    if !checked.labels.is_empty() {
        q.push(("labels", json!(checked.labels).to_string()));
    }
    if let Some(t) = a.target.as_deref().filter(|t| !t.is_empty()) {
        q.push(("target", t.to_string()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if a.quiet {
        q.push(("q", "1".into()));
    }
    if !a.rm {
        q.push(("rm", "0".into()));
    }
    if a.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if a.network != "default" {
        q.push(("networkmode", a.network.clone()));
    }
    q.push(("version", "1".into()));
    format!("/build{}", query(&q))
}

/// `X-Registry-Config`: every login of docker's config (`auths`), keyed as there, so the
/// engine can pull a private `FROM` image; `e30=` (`{}`) when there are none.
pub fn registry_config(config: &Value) -> String {
    let mut all = serde_json::Map::new();
    if let Some(auths) = config.get("auths").and_then(Value::as_object) {
        let mut keys: Vec<&String> = auths.keys().collect();
        keys.sort();
        for key in keys {
            let Some(auth) = auths[key].get("auth").and_then(Value::as_str) else {
                continue;
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(auth) else {
                continue;
            };
            let text = String::from_utf8_lossy(&decoded);
            let Some((user, pass)) = text.split_once(':') else {
                continue;
            };
            let creds = dockercfg::Credentials {
                username: user.to_string(),
                password: pass.to_string(),
                serveraddress: key.clone(),
            };
            if let Ok(v) = serde_json::to_value(&creds) {
                all.insert(key.clone(), v);
            }
        }
    }
    base64::engine::general_purpose::URL_SAFE.encode(Value::Object(all).to_string())
}

fn load_registry_config() -> String {
    let config = dockercfg::config_path()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    registry_config(&config)
}

/// docker's "Sending build context" line (go-units' `HumanSize` in a field of 8).
pub fn sending_line(bytes: u64) -> String {
    format!(
        "Sending build context to Docker daemon {:>8}",
        human_size4(bytes as f64)
    )
}

/// What is sent as the context.
enum Context {
    /// A directory's entries, and a Dockerfile from elsewhere.
    Dir {
        entries: Vec<Entry>,
        extra: Option<ExtraDockerfile>,
    },
    /// An archive on stdin, its first bytes already read.
    Stdin(Vec<u8>),
    /// A small archive made here (a Dockerfile's text from stdin).
    Memory(Vec<u8>),
}

/// Read up to `n` bytes (fewer only at the end of the input).
fn read_head<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn looks_remote(c: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| c.starts_with(p))
}

/// The context and the Dockerfile's name in it, as docker's CLI decides them.
fn prepare(a: &BuildArgs) -> Result<(Context, Option<String>)> {
    if a.context == "-" {
        let mut stdin = io::stdin().lock();
        let head = read_head(&mut stdin, 1024)
            .map_err(|e| usage(format!("failed to peek context header from STDIN: {e}")))?;
        return match buildctx::detect_stdin(&head) {
            StdinKind::Tar | StdinKind::Gzip => Ok((Context::Stdin(head), a.file.clone())),
            StdinKind::Bzip2 | StdinKind::Xz | StdinKind::Zstd => Err(usage(
                "skiff build: the context on stdin is compressed in a way skiff does not take; send a plain or gzip-compressed tar archive",
            )),
            StdinKind::Dockerfile => {
                if a.file.is_some() {
                    return Err(prepare_error(ContextError(
                        "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles".into(),
                    )));
                }
                let mut text = head;
                stdin
                    .read_to_end(&mut text)
                    .map_err(|e| usage(format!("unable to read the Dockerfile from stdin: {e}")))?;
                let tar = buildctx::dockerfile_only_tar(&text)?;
                Ok((
                    Context::Memory(tar),
                    Some(buildctx::DEFAULT_DOCKERFILE.to_string()),
                ))
            }
        };
    }
    if std::fs::metadata(&a.context).is_err() {
        if looks_remote(&a.context) {
            return Err(usage(format!(
                "skiff build: remote build contexts are not supported ({}); clone or download it and build the directory",
                a.context
            )));
        }
        return Err(usage(format!(
            "unable to prepare context: path {:?} not found",
            a.context
        )));
    }
    let root = buildctx::resolve_context_dir(&a.context).map_err(prepare_error)?;
    let rel = buildctx::dockerfile_rel_path(&root, a.file.as_deref()).map_err(prepare_error)?;
    let from_stdin = rel == "-";
    let extra = if from_stdin {
        let mut text = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut text)
            .map_err(|e| usage(format!("unable to read the Dockerfile from stdin: {e}")))?;
        Some(ExtraDockerfile::new(text))
    } else if rel.starts_with("../") {
        let path = a.file.clone().unwrap_or_default();
        let text = std::fs::read(&path).map_err(|e| {
            usage(format!(
                "unable to open Dockerfile: open {path}: {}",
                crate::goerror::go_io_error(&e)
            ))
        })?;
        Some(ExtraDockerfile::new(text))
    } else {
        None
    };
    let excludes = buildctx::read_dockerignore(&root).map_err(|e| usage(e.0))?;
    let excludes = buildctx::trim_build_files(excludes, &rel, from_stdin);
    let entries = buildctx::collect(&root, &excludes).map_err(|e| usage(e.0))?;
    let dockerfile = match &extra {
        Some(x) => x.name.clone(),
        None => rel,
    };
    Ok((Context::Dir { entries, extra }, Some(dockerfile)))
}

const PIECE: usize = 1 << 20;

/// How a build's stream ended badly: the message and docker's exit code (the failed
/// step's, as `errorDetail.code` carries it; 1 when it carries none).
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

/// The engine's build stream, shown as docker's CLI shows it without a terminal's
/// progress bars: `stream` text as it is, `status` lines (a `FROM`'s pull) as
/// `ID: STATUS` without byte counters, the image ID from `aux`.
#[derive(Default)]
pub struct BuildStream {
    pub quiet: bool,
    pub image_id: Option<String>,
    /// With `-q`, the text the engine sent (the image ID), printed on success.
    pub captured: String,
}

impl BuildStream {
    /// Take one message; `out` prints text on stdout. `Err` ends the build.
    pub fn take(&mut self, msg: &Value, out: &mut dyn FnMut(&str)) -> Result<(), Failure> {
        if let Some(message) = stream_error(msg) {
            let code = msg["errorDetail"]["code"].as_i64().unwrap_or(0);
            // As Go's os.Exit: the code's low byte; none (or 0) is 1.
            let code = match (code & 0xff) as u8 {
                0 => 1,
                c => c,
            };
            return Err(Failure { message, code });
        }
        if let Some(aux) = msg.get("aux") {
            if let Some(id) = aux["ID"].as_str() {
                self.image_id = Some(id.to_string());
            }
            return Ok(());
        }
        let text = if let Some(s) = msg["stream"].as_str() {
            s.to_string()
        } else if let Some(status) = msg["status"].as_str() {
            let detail = &msg["progressDetail"];
            let counters = detail["current"].as_i64().unwrap_or(0) > 0
                || detail["total"].as_i64().unwrap_or(0) > 0;
            if counters {
                return Ok(());
            }
            match msg["id"].as_str().filter(|i| !i.is_empty()) {
                Some(id) => format!("{id}: {status}\n"),
                None => format!("{status}\n"),
            }
        } else {
            return Ok(());
        };
        if self.quiet {
            self.captured.push_str(&text);
        } else {
            out(&text);
        }
        Ok(())
    }

    /// The ID `--iidfile` gets.
    pub fn id_for_file(&self) -> Option<String> {
        self.image_id.clone().or_else(|| {
            let t = self.captured.trim();
            (!t.is_empty()).then(|| t.to_string())
        })
    }
}

pub async fn build(engine: &Engine, a: &BuildArgs) -> Result<u8> {
    let checked = check_flags(a, &|k| std::env::var(k).ok())?;
    if let Some(f) = a.iidfile.as_deref().filter(|f| !f.is_empty()) {
        // No stale ID is left behind by a build that fails.
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(usage(format!(
                    "Removing image ID file: remove {f}: {}",
                    crate::goerror::go_io_error(&e)
                )))
            }
        }
    }
    let (context, dockerfile) = prepare(a)?;
    let target = build_target(a, &checked, dockerfile.as_deref());
    let headers = [("X-Registry-Config", load_registry_config())];

    let total = Arc::new(AtomicU64::new(0));
    let api = engine.api();
    let (resp, sent) = match context {
        Context::Stdin(head) => {
            let (rx, pending) = upload(Source::Stdin, head);
            let resp = api
                .request_with("POST", &target, &headers, Body::Stream(rx))
                .await;
            let sent = pending.finish().await;
            (resp, sent)
        }
        Context::Memory(bytes) => {
            let (tx, rx) = mpsc::channel(1);
            total.store(bytes.len() as u64, Ordering::Relaxed);
            let _ = tx.send(bytes).await;
            drop(tx);
            let resp = api
                .request_with("POST", &target, &headers, Body::Stream(rx))
                .await;
            (resp, Ok(None))
        }
        Context::Dir { entries, extra } => {
            let (tx, rx) = mpsc::channel(8);
            let counter = total.clone();
            let task = tokio::task::spawn_blocking(move || {
                let mut w = BodyWriter::new(tx, counter, PIECE);
                buildctx::write_context(&mut w, &entries, extra.as_ref())
            });
            let resp = api
                .request_with("POST", &target, &headers, Body::Stream(rx))
                .await;
            let sent = match task.await {
                Ok(Ok(())) => Ok(None),
                Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(None),
                Ok(Err(e)) => Err(usage(format!(
                    "error sending the build context: {}",
                    crate::goerror::go_io_error(&e)
                ))),
                Err(e) => Err(usage(format!("error sending the build context: {e}"))),
            };
            (resp, sent)
        }
    };
    let resp = resp?;
    let sent_bytes = sent?.unwrap_or_else(|| total.load(Ordering::Relaxed));
    if !a.quiet {
        crate::output::out_line!("{}", sending_line(sent_bytes));
    }
    if resp.status >= 400 {
        return Err(resp.into_error().await);
    }
    let mut resp = resp;
    let mut stream = BuildStream {
        quiet: a.quiet,
        ..Default::default()
    };
    let mut print = |t: &str| crate::output::out_text!("{t}");
    loop {
        let Some(msg) = resp.json_line().await? else {
            break;
        };
        if let Err(f) = stream.take(&msg, &mut print) {
            if a.quiet {
                eprint!("{}", stream.captured);
            }
            return Err(SkiffError::with_code(f.message, f.code).into());
        }
    }
    if a.quiet {
        if stream.captured.is_empty() {
            if let Some(id) = &stream.image_id {
                crate::output::out_line!("{id}");
            }
        } else {
            crate::output::out_text!("{}", stream.captured);
        }
    }
    if let Some(f) = a.iidfile.as_deref().filter(|f| !f.is_empty()) {
        let Some(id) = stream.id_for_file() else {
            return Err(usage(format!(
                "Server did not provide an image ID. Cannot write {f}"
            )));
        };
        std::fs::write(f, id.as_bytes())
            .map_err(|e| usage(format!("open {f}: {}", crate::goerror::go_io_error(&e))))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, ImageCommand, ImageVerb};

    fn args(argv: &[&str]) -> BuildArgs {
        match Cli::parse_from_args(argv).unwrap().command {
            Command::OfImage(ImageVerb::Build(a))
            | Command::Image(ImageCommand::Verb(ImageVerb::Build(a))) => a,
            other => panic!("not build: {other:?}"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_capture_s_query() {
        let a = args(&[
            "skiff",
            "build",
            "-t",
            "capapp:v1",
            "--build-arg",
            "G=hello",
            "/tmp/cap-ctx",
        ]);
        let c = check_flags(&a, &no_env).unwrap();
        assert_eq!(
            build_target(&a, &c, Some("Dockerfile")),
            "/build?buildargs=%7B%22G%22%3A%22hello%22%7D&dockerfile=Dockerfile&t=capapp%3Av1&version=1"
        );
        let a = args(&["skiff", "build", "-t", "capbad", "-"]);
        let c = check_flags(&a, &no_env).unwrap();
        assert_eq!(
            build_target(&a, &c, Some("Dockerfile")),
            "/build?dockerfile=Dockerfile&t=capbad&version=1"
        );
    }

    #[test]
    fn every_flag_reaches_the_query() {
        let a = args(&[
            "skiff",
            "image",
            "build",
            "-t",
            "a:1",
            "--tag",
            "b",
            "-f",
            "-",
            "--build-arg",
            "FROM_ENV",
            "--build-arg",
            "UNSET",
            "--label",
            "team=x",
            "--label",
            "flag",
            "--target",
            "stage2",
            "--no-cache",
            "--pull",
            "-q",
            "--rm=false",
            "--force-rm",
            "--network",
            "host",
            "--platform",
            &host_platform(),
            "ctx",
        ]);
        assert_eq!(a.file.as_deref(), Some("-"));
        let env = |k: &str| (k == "FROM_ENV").then(|| "v".to_string());
        let c = check_flags(&a, &env).unwrap();
        assert_eq!(
            c.build_args.len(),
            1,
            "an unset --build-arg KEY is left out"
        );
        assert_eq!(
            build_target(&a, &c, Some(".dockerfile.0123")),
            "/build?buildargs=%7B%22FROM_ENV%22%3A%22v%22%7D&dockerfile=.dockerfile.0123&forcerm=1&labels=%7B%22flag%22%3A%22%22%2C%22team%22%3A%22x%22%7D&networkmode=host&nocache=1&pull=1&q=1&rm=0&t=a%3A1&t=b&target=stage2&version=1"
        );
    }

    #[test]
    fn bad_flags_are_refused_before_anything_is_read() {
        let refused = |argv: &[&str]| {
            let e = check_flags(&args(argv), &no_env).unwrap_err();
            let se = e.downcast_ref::<SkiffError>().unwrap();
            assert_eq!(se.code, 125);
            se.message.clone()
        };
        assert_eq!(
            refused(&["skiff", "build", "-f", "-", "-"]),
            "invalid argument: can't use stdin for both build context and dockerfile"
        );
        assert_eq!(
            refused(&["skiff", "build", "-t", "Bad", "."]),
            "invalid argument \"Bad\" for \"-t, --tag\" flag: invalid reference format: repository name (library/Bad) must be lowercase"
        );
        assert_eq!(
            refused(&["skiff", "build", "--build-arg", "=x", "."]),
            "invalid argument \"=x\" for \"--build-arg\" flag: invalid environment variable: =x"
        );
        assert_eq!(
            refused(&["skiff", "build", "--label", "=x", "."]),
            "invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name"
        );
        assert!(
            refused(&["skiff", "build", "--platform", "windows/amd64", "."])
                .contains("skiff builds for this machine's platform")
        );
        assert!(refused(&["skiff", "build", "--network", "mynet", "."])
            .contains("--network \"mynet\" is not supported"));
        assert!(Cli::parse_from_args(["skiff", "build"]).is_err());
    }

    #[test]
    fn registry_config_carries_every_login() {
        assert_eq!(registry_config(&json!({})), "e30=");
        let cfg = json!({"auths": {
            "127.0.0.1:5001": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p:w")},
            "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("hub:pw")},
            "helper-only.example": {},
        }});
        let header = registry_config(&cfg);
        let decoded = base64::engine::general_purpose::URL_SAFE
            .decode(header)
            .unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(
            v,
            json!({
                "127.0.0.1:5001": {"username": "u", "password": "p:w", "serveraddress": "127.0.0.1:5001"},
                "https://index.docker.io/v1/": {"username": "hub", "password": "pw", "serveraddress": "https://index.docker.io/v1/"},
            })
        );
    }

    #[test]
    fn the_sending_line_is_dockers() {
        assert_eq!(
            sending_line(4608),
            "Sending build context to Docker daemon  4.608kB"
        );
        assert_eq!(
            sending_line(2048),
            "Sending build context to Docker daemon  2.048kB"
        );
        assert_eq!(
            sending_line(512),
            "Sending build context to Docker daemon     512B"
        );
    }

    fn run_stream(quiet: bool, lines: &[&str]) -> (BuildStream, String, Result<(), Failure>) {
        let mut s = BuildStream {
            quiet,
            ..Default::default()
        };
        let mut out = String::new();
        let mut result = Ok(());
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap();
            result = s.take(&v, &mut |t| out.push_str(t));
            if result.is_err() {
                break;
            }
        }
        (s, out, result)
    }

    #[test]
    fn the_stream_prints_as_docker_classic() {
        let (s, out, r) = run_stream(
            false,
            &[
                r#"{"stream":"Step 1/2 : FROM busybox"}"#,
                r#"{"stream":"\n"}"#,
                r#"{"status":"Pulling from library/busybox","id":"latest"}"#,
                r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"id":"abc"}"#,
                r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
                r#"{"stream":" ---\u003e 032dc4602b47\n"}"#,
                r#"{"aux":{"ID":"sha256:a546f4dedd92"}}"#,
                r#"{"stream":"Successfully built a546f4dedd92\n"}"#,
            ],
        );
        assert!(r.is_ok());
        assert_eq!(
            out,
            "Step 1/2 : FROM busybox\nlatest: Pulling from library/busybox\nabc: Pull complete\n ---> 032dc4602b47\nSuccessfully built a546f4dedd92\n"
        );
        assert_eq!(s.image_id.as_deref(), Some("sha256:a546f4dedd92"));
        assert_eq!(s.id_for_file().as_deref(), Some("sha256:a546f4dedd92"));
    }

    #[test]
    fn a_failed_step_ends_with_its_code() {
        let (_, out, r) = run_stream(
            false,
            &[
                r#"{"stream":" ---\u003e Running in 123ca63bc5c8\n"}"#,
                r#"{"errorDetail":{"code":7,"message":"The command '/bin/sh -c exit 7' returned a non-zero code: 7"},"error":"The command '/bin/sh -c exit 7' returned a non-zero code: 7"}"#,
                r#"{"stream":"never"}"#,
            ],
        );
        assert_eq!(out, " ---> Running in 123ca63bc5c8\n");
        assert_eq!(
            r.unwrap_err(),
            Failure {
                message: "The command '/bin/sh -c exit 7' returned a non-zero code: 7".into(),
                code: 7
            }
        );
        let (_, _, r) = run_stream(false, &[r#"{"error":"no such image"}"#]);
        assert_eq!(r.unwrap_err().code, 1);
        let (_, _, r) = run_stream(false, &[r#"{"errorDetail":{"code":256,"message":"x"}}"#]);
        assert_eq!(r.unwrap_err().code, 1);
    }

    #[test]
    fn quiet_keeps_the_text_for_the_end() {
        let (s, out, r) = run_stream(
            true,
            &[
                r#"{"stream":"sha256:abc\n"}"#,
                r#"{"aux":{"ID":"sha256:abc"}}"#,
            ],
        );
        assert!(r.is_ok());
        assert_eq!(out, "");
        assert_eq!(s.captured, "sha256:abc\n");
        assert_eq!(s.id_for_file().as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn stdin_heads_are_read_whole() {
        let mut r = &b"FROM busybox\n"[..];
        assert_eq!(read_head(&mut r, 1024).unwrap(), b"FROM busybox\n");
        let data = vec![7u8; 3000];
        let mut r = &data[..];
        assert_eq!(read_head(&mut r, 1024).unwrap().len(), 1024);
        assert!(looks_remote("https://github.com/x/y.git"));
        assert!(looks_remote("git@github.com:x/y"));
        assert!(!looks_remote("./ctx"));
    }
}
