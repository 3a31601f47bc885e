//! An image's life outside the engine's store: `commit`, `diff`, `save`, `load`, `export`,
//! `import` and `push`, with docker's requests, output and messages; and the image
//! references these commands (and `build`'s tags) are checked against, as docker's
//! `reference.ParseNormalizedNamed` checks them before anything is sent.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Result;
use tokio::sync::mpsc;

use super::api::{query, seg, Body, Response};
use super::pull::{registry_of, show_progress};
use super::{term, Engine};
use crate::cli::{CommitArgs, DiffArgs, ExportArgs, ImportArgs, LoadArgs, PushArgs, SaveArgs};
use crate::dockercfg;
use crate::SkiffError;

pub const DOCKER_DOMAIN: &str = "docker.io";

/// An image reference, normalized as docker normalizes it (`busybox` is
/// `docker.io/library/busybox`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub domain: String,
    /// The repository's path (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// The fully qualified repository: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as docker shows it: `busybox`, `user/app`, `127.0.0.1:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_DOMAIN {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The full reference: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        let mut s = self.name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

const INVALID: &str = "invalid reference format";

/// docker's `reference.ParseNormalizedNamed`, with its messages.
pub fn parse_normalized(s: &str) -> Result<Reference, String> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (mut domain, mut remainder) = match s.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_DOMAIN.to_string(), s.to_string()),
    };
    if domain == "index.docker.io" {
        domain = DOCKER_DOMAIN.to_string();
    }
    if domain == DOCKER_DOMAIN && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    let remote = remainder.split(':').next().unwrap_or_default();
    if remote.to_lowercase() != remote {
        return Err(format!(
            "invalid reference format: repository name ({remote}) must be lowercase"
        ));
    }
    let (rest, digest) = match remainder.split_once('@') {
        Some((r, d)) => (r.to_string(), Some(d.to_string())),
        None => (remainder.clone(), None),
    };
    let (path, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => {
            (rest[..i].to_string(), Some(rest[i + 1..].to_string()))
        }
        _ => (rest, None),
    };
    if s.is_empty() {
        return Err("repository name must have at least one component".into());
    }
    if !valid_domain(&domain)
        || path.is_empty()
        || !path.split('/').all(valid_component)
        || !tag.as_deref().is_none_or(valid_tag)
        || !digest.as_deref().is_none_or(valid_digest)
    {
        return Err(INVALID.into());
    }
    if domain.len() + 1 + path.len() > 255 {
        return Err("repository name must not be more than 255 characters".into());
    }
    Ok(Reference {
        domain,
        path,
        tag,
        digest,
    })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// Host names joined by dots, with an optional port; or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("", Some(p)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `algorithm:hex` with at least 32 hex digits.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn usage_error(msg: impl Into<String>) -> anyhow::Error {
    SkiffError::new(msg).into()
}

/// `commit`'s request target: docker's query, every key present (empty when not given).
pub fn commit_target(a: &CommitArgs) -> Result<String> {
    let (repo, tag) = match a.reference.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let parsed = parse_normalized(r).map_err(usage_error)?;
            if parsed.digest.is_some() {
                return Err(usage_error(
                    "refusing to create a tag with a digest reference",
                ));
            }
            (
                parsed.name(),
                parsed.tag.clone().unwrap_or_else(|| "latest".into()),
            )
        }
        None => (String::new(), String::new()),
    };
    let mut q = vec![
        ("container", a.container.clone()),
        ("repo", repo),
        ("tag", tag),
        ("comment", a.message.clone().unwrap_or_default()),
        ("author", a.author.clone().unwrap_or_default()),
    ];
    for c in &a.changes {
        q.push(("changes", c.clone()));
    }
    if !a.pause {
        q.push(("pause", "0".into()));
    }
    Ok(format!("/commit{}", query(&q)))
}

/// `skiff commit`: prints the new image's ID (`sha256:…`).
pub async fn commit(engine: &Engine, a: &CommitArgs) -> Result<u8> {
    let target = commit_target(a)?;
    let v = engine.api().json("POST", &target, Body::None).await?;
    crate::output::out_line!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

/// docker's letters for a change's kind.
fn change_kind(kind: i64) -> &'static str {
    match kind {
        0 => "C",
        1 => "A",
        2 => "D",
        _ => "?",
    }
}

/// `skiff diff`: one `KIND PATH` line per change.
pub async fn diff(engine: &Engine, a: &DiffArgs) -> Result<u8> {
    let v = engine
        .api()
        .json(
            "GET",
            &format!("/containers/{}/changes", seg(&a.container)),
            Body::None,
        )
        .await?;
    for c in v.as_array().into_iter().flatten() {
        crate::output::out_line!(
            "{} {}",
            change_kind(c["Kind"].as_i64().unwrap_or(-1)),
            c["Path"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}

const TERMINAL_REFUSAL: &str =
    "cowardly refusing to save to a terminal. Use the -o flag or redirect";

/// `skiff save`: the engine's tar of the images, to a file or stdout.
pub async fn save(engine: &Engine, a: &SaveArgs) -> Result<u8> {
    let output = a.output.as_deref().filter(|o| !o.is_empty());
    if output.is_none() && term::stdout_is_tty() {
        return Err(usage_error(TERMINAL_REFUSAL));
    }
    let q: Vec<(&str, String)> = a.images.iter().map(|n| ("names", n.clone())).collect();
    let resp = engine
        .api()
        .call("GET", &format!("/images/get{}", query(&q)), Body::None)
        .await?;
    write_body(resp, output, "failed to save image").await?;
    Ok(0)
}

/// `skiff export`: the container's filesystem as a tar, to a file or stdout.
pub async fn export(engine: &Engine, a: &ExportArgs) -> Result<u8> {
    let output = a.output.as_deref().filter(|o| !o.is_empty());
    if output.is_none() && term::stdout_is_tty() {
        return Err(usage_error(TERMINAL_REFUSAL));
    }
    let resp = engine
        .api()
        .call(
            "GET",
            &format!("/containers/{}/export", seg(&a.container)),
            Body::None,
        )
        .await?;
    write_body(resp, output, "failed to export container").await?;
    Ok(0)
}

/// A file that appears at its path only once it is complete (docker's atomic writer):
/// written beside it under a temporary name, renamed at the end, removed on failure.
struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<fs::File>,
}

impl AtomicFile {
    /// The error is the text after "failed to save image: " (atomicwriter's words).
    fn create(dest: &str) -> Result<AtomicFile, String> {
        let dest = PathBuf::from(dest);
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "invalid output path: directory {:?} does not exist",
                dir.display().to_string()
            ));
        }
        let base = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{base}.skiff-tmp-{}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| {
                format!(
                    "open {}: {}",
                    tmp.display(),
                    crate::goerror::go_io_error(&e)
                )
            })?;
        Ok(AtomicFile {
            tmp,
            dest,
            file: Some(file),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(b),
            None => Err(io::Error::other("file already closed")),
        }
    }

    fn commit(mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
        fs::rename(&self.tmp, &self.dest)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Stream a response's body to `output` (a file, complete or not at all) or stdout.
async fn write_body(mut resp: Response, output: Option<&str>, what: &str) -> Result<()> {
    let io_err = |e: io::Error| usage_error(format!("{what}: {}", crate::goerror::go_io_error(&e)));
    match output {
        Some(path) => {
            let mut f =
                AtomicFile::create(path).map_err(|e| usage_error(format!("{what}: {e}")))?;
            while let Some(c) = resp.chunk().await? {
                f.write_all(&c).map_err(io_err)?;
            }
            f.commit().map_err(io_err)?;
        }
        None => {
            while let Some(c) = resp.chunk().await? {
                crate::output::out_bytes(&c);
            }
        }
    }
    Ok(())
}

/// Where an upload's body comes from.
pub enum Source {
    Stdin,
    File(fs::File),
}

/// What reading an upload's source came to, known once the engine has answered.
pub struct Pending(tokio::sync::oneshot::Receiver<io::Result<u64>>);

/// Read `source` on a thread of its own into a body stream (`Body::Stream`), `first` (bytes
/// already read from it) first. The thread is detached: a stdin that never ends must not
/// keep skiff from exiting once the engine has answered.
pub fn upload(source: Source, first: Vec<u8>) -> (mpsc::Receiver<Vec<u8>>, Pending) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = match source {
            Source::Stdin => pump(io::stdin().lock(), first, &tx),
            Source::File(f) => pump(f, first, &tx),
        };
        let _ = done_tx.send(r);
    });
    (rx, Pending(done))
}

fn pump<R: Read>(mut r: R, first: Vec<u8>, tx: &mpsc::Sender<Vec<u8>>) -> io::Result<u64> {
    let mut total = first.len() as u64;
    if !first.is_empty() && tx.blocking_send(first).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the agent stopped reading",
        ));
    }
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        total += n as u64;
        if tx.blocking_send(buf).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the agent stopped reading",
            ));
        }
    }
}

impl Pending {
    /// The bytes sent, if the source was read to its end. A read error is reported (the
    /// engine saw a cut body); a source still open after the engine's answer (a terminal,
    /// a pipe nobody closes) is not waited for.
    pub async fn finish(self) -> Result<Option<u64>> {
        match tokio::time::timeout(std::time::Duration::from_millis(200), self.0).await {
            Ok(Ok(Ok(n))) => Ok(Some(n)),
            Ok(Ok(Err(e))) if e.kind() != io::ErrorKind::BrokenPipe => Err(usage_error(format!(
                "error reading the archive: {}",
                crate::goerror::go_io_error(&e)
            ))),
            _ => Ok(None),
        }
    }
}

/// Open a file to upload, with Go's message when it cannot be.
fn open_source(path: &str) -> Result<fs::File> {
    fs::File::open(path)
        .map_err(|e| usage_error(format!("open {path}: {}", crate::goerror::go_io_error(&e))))
}

/// `load`'s request target: docker asks for the quiet form unless a terminal shows it.
pub fn load_target(quiet: bool, stdout_tty: bool) -> String {
    let q = if quiet || !stdout_tty { "1" } else { "0" };
    format!("/images/load{}", query(&[("quiet", q.to_string())]))
}

/// `skiff load`: the engine reads an archive `save` wrote (or an OCI layout) and says what
/// it loaded.
pub async fn load(engine: &Engine, a: &LoadArgs) -> Result<u8> {
    let source = match a.input.as_deref().filter(|i| !i.is_empty()) {
        Some(path) => Source::File(open_source(path)?),
        None => {
            if term::stdin_is_tty() {
                return Err(usage_error("requested load from stdin, but stdin is empty"));
            }
            Source::Stdin
        }
    };
    let target = load_target(a.quiet, term::stdout_is_tty());
    let (rx, pending) = upload(source, Vec::new());
    let resp = engine.api().call("POST", &target, Body::Stream(rx)).await;
    let resp = resp?;
    pending.finish().await?;
    let json = resp
        .header("Content-Type")
        .is_some_and(|c| c.contains("json"));
    if json {
        show_progress(resp, false, false).await?;
    } else {
        write_body(resp, None, "failed to load").await?;
    }
    Ok(0)
}

/// `import`'s request target: docker's query (the reference as given, in `repo`).
pub fn import_target(a: &ImportArgs) -> Result<String> {
    let mut q = Vec::new();
    let remote = a.source.starts_with("http://") || a.source.starts_with("https://");
    q.push((
        "fromSrc",
        if remote { a.source.clone() } else { "-".into() },
    ));
    if let Some(r) = a.reference.as_deref().filter(|r| !r.is_empty()) {
        parse_normalized(r).map_err(usage_error)?;
        q.push(("repo", r.to_string()));
    }
    if let Some(m) = a.message.as_deref().filter(|m| !m.is_empty()) {
        q.push(("message", m.to_string()));
    }
    for c in &a.changes {
        q.push(("changes", c.clone()));
    }
    Ok(format!("/images/create{}", query(&q)))
}

/// `skiff import`: a filesystem tarball becomes a one-layer image; prints its ID.
pub async fn import(engine: &Engine, a: &ImportArgs) -> Result<u8> {
    let target = import_target(a)?;
    let api = engine.api();
    let resp = if a.source.starts_with("http://") || a.source.starts_with("https://") {
        api.call("POST", &target, Body::None).await?
    } else {
        let source = if a.source == "-" {
            Source::Stdin
        } else {
            Source::File(open_source(&a.source)?)
        };
        let (rx, pending) = upload(source, Vec::new());
        let resp = api.call("POST", &target, Body::Stream(rx)).await?;
        pending.finish().await?;
        resp
    };
    show_progress(resp, false, false).await?;
    Ok(0)
}

/// What `push` sends: the request target and the reference docker prints with `-q`.
pub fn push_target(a: &PushArgs) -> Result<(String, Reference, bool)> {
    let mut r = parse_normalized(&a.image).map_err(usage_error)?;
    let name_only = r.tag.is_none() && r.digest.is_none();
    if a.all_tags && !name_only {
        return Err(usage_error("tag can't be used with --all-tags/-a"));
    }
    if r.digest.is_some() {
        return Err(usage_error("cannot push a digest reference"));
    }
    let mut defaulted = false;
    if !a.all_tags && name_only {
        r.tag = Some("latest".into());
        defaulted = true;
    }
    let mut q = Vec::new();
    if !a.all_tags {
        q.push(("tag", r.tag.clone().unwrap_or_default()));
    }
    let target = format!("/images/{}/push{}", seg(&r.familiar_name()), query(&q));
    Ok((target, r, defaulted))
}

/// The `X-Registry-Auth` header for a registry: its login from docker's config, or `{}`.
fn registry_auth(registry: &str) -> Result<String> {
    Ok(match dockercfg::credentials_for(registry)? {
        Some(c) => c.header()?,
        None => "e30=".to_string(),
    })
}

/// `skiff push`: the engine's progress as pull shows it.
pub async fn push(engine: &Engine, a: &PushArgs) -> Result<u8> {
    let (target, r, defaulted) = push_target(a)?;
    if defaulted && !a.quiet {
        crate::output::out_line!("Using default tag: latest");
    }
    let auth = registry_auth(&registry_of(&r.familiar_name()))?;
    let resp = engine
        .api()
        .call_with("POST", &target, &[("X-Registry-Auth", auth)], Body::None)
        .await?;
    show_progress(resp, a.quiet, false).await?;
    if a.quiet {
        crate::output::out_line!("{}", r.full());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, ContainerCommand, ContainerVerb, ImageCommand, ImageVerb};

    fn parse(args: &[&str]) -> Command {
        Cli::parse_from_args(args).unwrap().command
    }

    #[test]
    fn references_normalize_like_docker() {
        let r = parse_normalized("busybox").unwrap();
        assert_eq!(r.full(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");
        let r = parse_normalized("127.0.0.1:5000/capapp:v1").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "capapp", Some("v1"))
        );
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/capapp");
        let r = parse_normalized("user/app:1.0").unwrap();
        assert_eq!(r.name(), "docker.io/user/app");
        assert_eq!(r.familiar_name(), "user/app");
        assert_eq!(
            parse_normalized("localhost/a/b").unwrap().name(),
            "localhost/a/b"
        );
        assert_eq!(
            parse_normalized("Foo").unwrap_err(),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        for bad in [
            "a b",
            "a:",
            ":x",
            "a//b",
            "-a",
            "a:b:c",
            "a@sha256:zz",
            "a:-x",
        ] {
            assert_eq!(parse_normalized(bad).unwrap_err(), INVALID, "{bad:?}");
        }
        assert!(parse_normalized(&"a".repeat(64).replace('a', "f"))
            .unwrap_err()
            .contains("cannot specify 64-byte hexadecimal strings"));
        let d = format!("a@sha256:{}", "0".repeat(64));
        assert!(parse_normalized(&d).unwrap().digest.is_some());
    }

    #[test]
    fn commit_sends_dockers_query() {
        let Command::OfContainer(ContainerVerb::Commit(a)) =
            parse(&["skiff", "commit", "-m", "msg", "capcm", "capcm:v1"])
        else {
            panic!("not commit");
        };
        assert_eq!(
            commit_target(&a).unwrap(),
            "/commit?author=&comment=msg&container=capcm&repo=docker.io%2Flibrary%2Fcapcm&tag=v1"
        );
        let Command::Container(ContainerCommand::Verb(ContainerVerb::Commit(a))) = parse(&[
            "skiff",
            "container",
            "commit",
            "-a",
            "Me <me@x>",
            "-c",
            "ENV A=1",
            "--change",
            "CMD [\"sh\"]",
            "--pause=false",
            "c1",
        ]) else {
            panic!("not container commit");
        };
        assert_eq!(
            commit_target(&a).unwrap(),
            "/commit?author=Me+%3Cme%40x%3E&changes=ENV+A%3D1&changes=CMD+%5B%22sh%22%5D&comment=&container=c1&pause=0&repo=&tag="
        );
    }

    #[test]
    fn commit_refuses_bad_names() {
        let Command::OfContainer(ContainerVerb::Commit(a)) =
            parse(&["skiff", "commit", "c1", "Bad:v1"])
        else {
            panic!("not commit");
        };
        let e = commit_target(&a).unwrap_err();
        assert_eq!(e.downcast_ref::<SkiffError>().unwrap().code, 125);
    }

    #[test]
    fn save_load_import_targets() {
        let Command::OfImage(ImageVerb::Save(a)) =
            parse(&["skiff", "save", "-o", "/tmp/x.tar", "busybox", "capapp:v1"])
        else {
            panic!("not save");
        };
        let q: Vec<(&str, String)> = a.images.iter().map(|n| ("names", n.clone())).collect();
        assert_eq!(query(&q), "?names=busybox&names=capapp%3Av1");
        assert_eq!(a.output.as_deref(), Some("/tmp/x.tar"));
        assert!(matches!(
            parse(&["skiff", "image", "save", "x"]),
            Command::Image(ImageCommand::Verb(ImageVerb::Save(_)))
        ));
        assert!(Cli::parse_from_args(["skiff", "save"]).is_err());

        assert_eq!(load_target(false, false), "/images/load?quiet=1");
        assert_eq!(load_target(false, true), "/images/load?quiet=0");
        assert_eq!(load_target(true, true), "/images/load?quiet=1");
        let Command::OfImage(ImageVerb::Load(a)) = parse(&["skiff", "load", "-qi", "f.tar"]) else {
            panic!("not load");
        };
        assert!(a.quiet);
        assert_eq!(a.input.as_deref(), Some("f.tar"));

        let Command::OfImage(ImageVerb::Import(a)) =
            parse(&["skiff", "import", "/tmp/capex.tar", "capimp:v1"])
        else {
            panic!("not import");
        };
        assert_eq!(
            import_target(&a).unwrap(),
            "/images/create?fromSrc=-&repo=capimp%3Av1"
        );
        let Command::OfImage(ImageVerb::Import(a)) = parse(&[
            "skiff",
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-m",
            "hi there",
            "-",
        ]) else {
            panic!("not import");
        };
        assert_eq!(a.source, "-");
        assert_eq!(
            import_target(&a).unwrap(),
            "/images/create?changes=CMD+%5B%22sh%22%5D&fromSrc=-&message=hi+there"
        );
        let Command::OfImage(ImageVerb::Import(a)) =
            parse(&["skiff", "import", "https://example.com/r.tar"])
        else {
            panic!("not import");
        };
        assert_eq!(
            import_target(&a).unwrap(),
            "/images/create?fromSrc=https%3A%2F%2Fexample.com%2Fr.tar"
        );
    }

    #[test]
    fn push_targets() {
        let push = |args: &[&str]| match parse(args) {
            Command::OfImage(ImageVerb::Push(a))
            | Command::Image(ImageCommand::Verb(ImageVerb::Push(a))) => push_target(&a),
            other => panic!("not push: {other:?}"),
        };
        let (t, r, defaulted) = push(&["skiff", "push", "127.0.0.1:5000/capapp:v1"]).unwrap();
        assert_eq!(t, "/images/127.0.0.1%3A5000%2Fcapapp/push?tag=v1");
        assert_eq!(r.full(), "127.0.0.1:5000/capapp:v1");
        assert!(!defaulted);
        let (t, r, defaulted) = push(&["skiff", "push", "busybox"]).unwrap();
        assert_eq!(t, "/images/busybox/push?tag=latest");
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert!(defaulted);
        let (t, _, _) = push(&["skiff", "image", "push", "-a", "user/app"]).unwrap();
        assert_eq!(t, "/images/user%2Fapp/push");
        let e = push(&["skiff", "push", "-a", "user/app:v1"]).unwrap_err();
        assert_eq!(
            crate::commands::api::message_of(&e),
            "tag can't be used with --all-tags/-a"
        );
        let d = format!("app@sha256:{}", "0".repeat(64));
        let e = push(&["skiff", "push", &d]).unwrap_err();
        assert_eq!(
            crate::commands::api::message_of(&e),
            "cannot push a digest reference"
        );
    }

    #[test]
    fn diff_letters_and_export_args() {
        assert_eq!(
            [change_kind(0), change_kind(1), change_kind(2)],
            ["C", "A", "D"]
        );
        assert!(matches!(
            parse(&["skiff", "diff", "c1"]),
            Command::OfContainer(ContainerVerb::Diff(_))
        ));
        let Command::OfContainer(ContainerVerb::Export(a)) =
            parse(&["skiff", "export", "capex", "-o", "/tmp/capex.tar"])
        else {
            panic!("not export");
        };
        assert_eq!(
            (a.container.as_str(), a.output.as_deref()),
            ("capex", Some("/tmp/capex.tar"))
        );
    }

    #[test]
    fn atomic_files_appear_complete_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.tar");
        {
            let mut f = AtomicFile::create(&dest.to_string_lossy()).unwrap();
            f.write_all(b"half").unwrap();
            // Dropped without commit: nothing is left behind.
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest.to_string_lossy()).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(AtomicFile::create(&d.path().join("no/such/x").to_string_lossy()).is_err());
    }
}
