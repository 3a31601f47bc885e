//! The build context `skiff build` sends, prepared as docker's CLI prepares it (classic
//! builder): the context directory and the Dockerfile found with its rules and errors,
//! `.dockerignore` applied as go-archive's walk applies it (`dockerignore.rs`), the
//! Dockerfile and `.dockerignore` always sent, a Dockerfile from stdin or from outside the
//! context added under a random name, and what stdin holds told apart (an archive or a
//! Dockerfile's text).
//!
//! Errors are docker's words (users' scripts match on them); the command decides the exit
//! code.

pub use skiff_common::dockerignore;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dockerignore::{MatchInfo, Matcher};

use crate::archive::{append_special, PadTo};

/// The Dockerfile's name when none is given.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Copies go in pieces this large.
const CHUNK: usize = 1 << 20;

/// A failure preparing the context, in docker's words.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextError(pub String);

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> ContextError {
    ContextError(msg.into())
}

/// Go's `%v` of an `*os.PathError`: "lstat /x: no such file or directory".
fn path_error(op: &str, path: &Path, e: &io::Error) -> String {
    format!(
        "{op} {}: {}",
        path.display(),
        crate::goerror::go_io_error(e)
    )
}

/// `ResolveAndValidateContextPath`: the context directory, absolute with its symlinks
/// resolved. Errors lack docker's "unable to prepare context: " prefix, which the caller adds.
pub fn resolve_context_dir(given: &str) -> Result<PathBuf, ContextError> {
    let abs = std::path::absolute(given).map_err(|e| {
        err(format!(
            "unable to get absolute context directory of given context directory {given:?}: {}",
            crate::goerror::go_io_error(&e)
        ))
    })?;
    let real = eval_symlinks(&abs)
        .map_err(|e| err(format!("unable to evaluate symlinks in context path: {e}")))?;
    let md = fs::symlink_metadata(&real).map_err(|e| {
        err(format!(
            "unable to stat context directory {:?}: {}",
            real.display().to_string(),
            path_error("lstat", &real, &e)
        ))
    })?;
    if !md.is_dir() {
        return Err(err(format!(
            "context must be a directory: {}",
            real.display()
        )));
    }
    Ok(real)
}

/// Go's `filepath.EvalSymlinks` for an absolute path, with its error text: the first
/// component that cannot be `lstat`ed is named.
fn eval_symlinks(abs: &Path) -> Result<PathBuf, String> {
    match fs::canonicalize(abs) {
        Ok(p) => Ok(p),
        Err(e) => {
            // Find the component that failed, for Go's "lstat <that path>: …".
            let mut cur = PathBuf::from("/");
            for c in abs.components().skip(1) {
                cur.push(c);
                if let Err(e) = fs::symlink_metadata(&cur) {
                    return Err(path_error("lstat", &cur, &e));
                }
            }
            Err(path_error("lstat", abs, &e))
        }
    }
}

/// `getDockerfileRelPath` with `GetContextFromLocalDir`'s rule that `-f` is relative to the
/// current directory: the Dockerfile's path relative to the context (it may start with
/// `../`: outside the context). `-` stays `-`.
pub fn dockerfile_rel_path(context: &Path, given: Option<&str>) -> Result<String, ContextError> {
    let abs = match given {
        Some("-") => return Ok("-".into()),
        Some(f) if !f.is_empty() => std::path::absolute(f).map_err(|e| {
            err(format!(
                "unable to get absolute path to Dockerfile: {}",
                crate::goerror::go_io_error(&e)
            ))
        })?,
        _ => {
            let p = context.join(DEFAULT_DOCKERFILE);
            // "Just to be nice ;-)": `dockerfile` too, but only if it is there.
            if fs::symlink_metadata(&p).is_err() {
                let alt = context.join(DEFAULT_DOCKERFILE.to_lowercase());
                if fs::symlink_metadata(&alt).is_ok() {
                    alt
                } else {
                    p
                }
            } else {
                p
            }
        }
    };
    let real = eval_symlinks(&abs).map_err(|e| {
        err(format!(
            "unable to evaluate symlinks in Dockerfile path: {e}"
        ))
    })?;
    if let Err(e) = fs::symlink_metadata(&real) {
        return Err(err(format!(
            "unable to stat Dockerfile: {}",
            path_error("lstat", &real, &e)
        )));
    }
    Ok(relative(context, &real))
}

/// Go's `filepath.Rel` for two clean absolute paths.
fn relative(base: &Path, target: &Path) -> String {
    let b: Vec<_> = base.components().collect();
    let t: Vec<_> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); b.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The patterns of the context's `.dockerignore` (none when it is absent).
pub fn read_dockerignore(context: &Path) -> Result<Vec<String>, ContextError> {
    let p = context.join(".dockerignore");
    match fs::read(&p) {
        Ok(b) => Ok(dockerignore::read_patterns(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(path_error("open", &p, &e))),
    }
}

/// `TrimBuildFilesFromExcludes`: `.dockerignore` and the Dockerfile are sent even when
/// ignored (the engine drops them from what the build sees), unless the Dockerfile comes
/// from stdin.
pub fn trim_build_files(
    mut excludes: Vec<String>,
    dockerfile: &str,
    dockerfile_from_stdin: bool,
) -> Vec<String> {
    // A pattern list that does not compile is reported by the walk that follows.
    let Ok(m) = Matcher::new(&excludes) else {
        return excludes;
    };
    if m.matches_legacy(".dockerignore") {
        excludes.push("!.dockerignore".into());
    }
    if !dockerfile_from_stdin && m.matches_legacy(dockerfile) {
        excludes.push(format!("!{dockerfile}"));
    }
    excludes
}

/// One entry of the context's tar.
#[derive(Debug)]
pub struct Entry {
    /// Where it is on this machine.
    pub path: PathBuf,
    /// Its name in the archive, relative to the context, `/`-separated.
    pub name: String,
    pub md: fs::Metadata,
}

/// The entries of the context directory to send, in go-archive's walk order (lexical,
/// depth first), with `excludes` applied as its `TarWithOptions` applies them. Files that
/// cannot be read fail here, before anything is sent (docker's `ValidateContextDirectory`).
pub fn collect(context: &Path, excludes: &[String]) -> Result<Vec<Entry>, ContextError> {
    let m = Matcher::new(excludes).map_err(|e| err(format!("error checking context: {e}")))?;
    let mut out = Vec::new();
    walk(context, "", &m, &MatchInfo::default(), &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    m: &Matcher,
    parent: &MatchInfo,
    out: &mut Vec<Entry>,
) -> Result<(), ContextError> {
    let rd = fs::read_dir(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            err(format!(
                "error checking context: can't stat '{}'",
                dir.display()
            ))
        } else {
            err(format!(
                "error checking context: {}",
                path_error("open", dir, &e)
            ))
        }
    })?;
    let mut children: Vec<fs::DirEntry> = rd.filter_map(Result::ok).collect();
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let file_name = child.file_name().to_string_lossy().into_owned();
        let name = if rel.is_empty() {
            file_name
        } else {
            format!("{rel}/{file_name}")
        };
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            // Gone since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                return Err(err(format!(
                    "error checking context: can't stat '{}'",
                    path.display()
                )))
            }
        };
        let (skip, info) = m.matches_using_parent(&name, parent);
        if skip {
            if !md.is_dir() || !m.exclusions() {
                continue;
            }
            // A directory with an exception (`!dir/file`) inside is walked, not sent.
            let dir_slash = format!("{name}/");
            let reopened = m
                .patterns()
                .iter()
                .any(|p| p.exclusion() && format!("{}/", p.text()).starts_with(&dir_slash));
            if reopened {
                walk(&path, &name, m, &info, out)?;
            }
            continue;
        }
        let ft = md.file_type();
        if ft.is_file() {
            if let Err(e) = fs::File::open(&path) {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    return Err(err(format!(
                        "error checking context: no permission to read from '{}'",
                        path.display()
                    )));
                }
            }
        }
        let is_dir = md.is_dir();
        out.push(Entry {
            path: path.clone(),
            name: name.clone(),
            md,
        });
        if is_dir {
            walk(&path, &name, m, &info, out)?;
        }
    }
    Ok(())
}

/// A Dockerfile that is not in the context directory (from stdin, or `-f` outside it),
/// added to the archive as docker's `AddDockerfileToBuildContext` adds it.
#[derive(Debug, Clone)]
pub struct ExtraDockerfile {
    pub name: String,
    pub content: Vec<u8>,
}

impl ExtraDockerfile {
    /// `.dockerfile.` and 20 random hex digits, as docker names it.
    pub fn new(content: Vec<u8>) -> Self {
        ExtraDockerfile {
            name: format!(".dockerfile.{}", random_hex(10)),
            content,
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let read = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        // Uniqueness within one archive is all the name needs.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write the context's tar: `entries` as go-archive writes them (owned by 0:0, as docker's
/// CLI asks; directories with a trailing `/`; symlinks as symlinks; a file's further hard
/// links as links to its first name), then an `extra` Dockerfile, whose name is also added
/// to `.dockerignore` (created if there is none) so the build itself does not see it.
pub fn write_context<W: Write>(
    w: W,
    entries: &[Entry],
    extra: Option<&ExtraDockerfile>,
) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut seen: HashMap<(u64, u64), String> = HashMap::new();
    let mut had_ignore_file = false;
    for e in entries {
        if let Some(extra) = extra {
            if e.name == ".dockerignore" && e.md.is_file() {
                had_ignore_file = true;
                let mut content = fs::read(&e.path)?;
                content.extend_from_slice(format!("\n{}\n", extra.name).as_bytes());
                let mut h = header_for(&e.md);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, &e.name, &content[..])?;
                continue;
            }
        }
        append_entry(&mut b, e, &mut seen)?;
    }
    if let Some(extra) = extra {
        let mut h = new_file_header(0o600, extra.content.len() as u64);
        b.append_data(&mut h, &extra.name, &extra.content[..])?;
        if !had_ignore_file {
            let content = format!(".dockerignore\n{}\n", extra.name);
            let mut h = new_file_header(0o600, content.len() as u64);
            b.append_data(&mut h, ".dockerignore", content.as_bytes())?;
        }
    }
    b.into_inner()?.flush()
}

fn new_file_header(mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(now());
    h.set_size(size);
    h
}

fn header_for(md: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    e: &Entry,
    seen: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let ft = e.md.file_type();
    let mut h = header_for(&e.md);
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        return b.append_data(&mut h, format!("{}/", e.name), io::empty());
    }
    if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(&e.path)?;
        return b.append_link(&mut h, &e.name, target);
    }
    if ft.is_file() {
        if e.md.nlink() > 1 {
            let key = (e.md.dev(), e.md.ino());
            if let Some(first) = seen.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                let first = first.clone();
                return b.append_link(&mut h, &e.name, first);
            }
            seen.insert(key, e.name.clone());
        }
        h.set_entry_type(tar::EntryType::Regular);
        let size = e.md.len();
        h.set_size(size);
        let f = fs::File::open(&e.path)?;
        // Never more than the size in the header; a file that shrank is padded.
        let reader = io::BufReader::with_capacity(CHUNK, f).take(size);
        return b.append_data(&mut h, &e.name, PadTo::new(reader, size));
    }
    append_special(b, h, &e.name, &e.md)
}

/// The archive docker's CLI sends for a Dockerfile given as text on stdin (`build -`): only
/// `Dockerfile`.
pub fn dockerfile_only_tar(content: &[u8]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = new_file_header(0o644, content.len() as u64);
    b.append_data(&mut h, DEFAULT_DOCKERFILE, content)?;
    b.into_inner()
}

/// What stdin holds for `build -` (moby's `DetectCompression`, then a tar header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StdinKind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    /// Not an archive: a Dockerfile's text.
    Dockerfile,
}

/// Tell stdin's first bytes (docker peeks 1024) apart.
pub fn detect_stdin(head: &[u8]) -> StdinKind {
    if head.starts_with(&[0x42, 0x5a, 0x68]) {
        return StdinKind::Bzip2;
    }
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        return StdinKind::Gzip;
    }
    if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
        return StdinKind::Xz;
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return StdinKind::Zstd;
    }
    if is_tar_header(head) {
        return StdinKind::Tar;
    }
    StdinKind::Dockerfile
}

/// Whether a tar reader would take the first block as a header: its checksum (unsigned or
/// signed, as Go accepts either) matches. A zero block is the end of an archive, not one.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let block = &head[..512];
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| *c != ' ' && *c != '\0')
        .collect();
    let Ok(want) = i64::from_str_radix(&text, 8) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || want == signed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn names_in(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((name, kind, mode, data, link));
        }
        out
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::write(p.join("Dockerfile"), "FROM busybox\n").unwrap();
        fs::write(p.join("README.md"), "r").unwrap();
        fs::create_dir_all(p.join("src/sub")).unwrap();
        fs::write(p.join("src/main.rs"), "fn main() {}").unwrap();
        fs::write(p.join("src/sub/notes.md"), "n").unwrap();
        fs::set_permissions(p.join("src/main.rs"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::create_dir_all(p.join("node_modules/x")).unwrap();
        fs::write(p.join("node_modules/x/index.js"), "x").unwrap();
        fs::create_dir_all(p.join("logs")).unwrap();
        fs::write(p.join("logs/keep.log"), "k").unwrap();
        fs::write(p.join("logs/drop.log"), "d").unwrap();
        symlink("src/main.rs", p.join("link")).unwrap();
        fs::hard_link(p.join("README.md"), p.join("README.hard")).unwrap();
        d
    }

    fn pack(dir: &Path, dockerfile: &str, extra: Option<&ExtraDockerfile>) -> Vec<u8> {
        let ex = read_dockerignore(dir).unwrap();
        let ex = trim_build_files(ex, dockerfile, extra.is_some());
        let entries = collect(dir, &ex).unwrap();
        let mut out = Vec::new();
        write_context(&mut out, &entries, extra).unwrap();
        out
    }

    #[test]
    fn a_directory_is_packed_with_dockerignore_applied() {
        let d = tree();
        fs::write(
            d.path().join(".dockerignore"),
            "# build files\nnode_modules\n*.md\nlogs\n!logs/keep.log\nDockerfile\n.dockerignore\n",
        )
        .unwrap();
        let tar = pack(d.path(), "Dockerfile", None);
        let got = names_in(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                // Ignored, but always sent, as docker's CLI sends them.
                ".dockerignore",
                "Dockerfile",
                "README.hard",
                "link",
                // `logs` itself is excluded; the exception inside it is sent.
                "logs/keep.log",
                "src/",
                "src/main.rs",
                "src/sub/",
                // `*.md` is the top level only.
                "src/sub/notes.md",
            ]
        );
        let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(by("link").1, tar::EntryType::Symlink);
        assert_eq!(by("link").4, "src/main.rs");
        assert_eq!(by("src/main.rs").2, 0o750);
        assert_eq!(by("src/main.rs").3, b"fn main() {}");
        assert_eq!(by("src/").1, tar::EntryType::Directory);
        assert_eq!(by("Dockerfile").3, b"FROM busybox\n");
        // README.md is ignored, so its hard link carries the data.
        assert_eq!(by("README.hard").1, tar::EntryType::Regular);
        assert_eq!(by("README.hard").3, b"r");
        let mut a = tar::Archive::new(&tar[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(
                (e.header().uid().unwrap(), e.header().gid().unwrap()),
                (0, 0)
            );
        }
    }

    #[test]
    fn hard_links_after_the_first_are_links() {
        let d = tree();
        let got = names_in(&pack(d.path(), "Dockerfile", None));
        let hard = got.iter().find(|e| e.0 == "README.md").unwrap();
        assert_eq!(hard.1, tar::EntryType::Link);
        assert_eq!(hard.4, "README.hard");
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert!(names.contains(&"node_modules/x/index.js"));
        assert!(names.contains(&"logs/drop.log"));
    }

    #[test]
    fn a_dockerfile_from_elsewhere_gets_a_random_name_and_is_ignored() {
        let d = tree();
        let extra = ExtraDockerfile::new(b"FROM scratch\n".to_vec());
        assert!(extra.name.starts_with(".dockerfile."));
        assert_eq!(extra.name.len(), ".dockerfile.".len() + 20);
        let got = names_in(&pack(d.path(), "-", Some(&extra)));
        let last_two: Vec<&str> = got[got.len() - 2..].iter().map(|e| e.0.as_str()).collect();
        assert_eq!(last_two, vec![extra.name.as_str(), ".dockerignore"]);
        assert_eq!(got[got.len() - 2].3, b"FROM scratch\n");
        assert_eq!(got[got.len() - 2].2, 0o600);
        assert_eq!(
            String::from_utf8_lossy(&got[got.len() - 1].3),
            format!(".dockerignore\n{}\n", extra.name)
        );

        // An existing .dockerignore gets the name appended, in place.
        fs::write(d.path().join(".dockerignore"), "logs").unwrap();
        let got = names_in(&pack(d.path(), "-", Some(&extra)));
        assert_eq!(got[0].0, ".dockerignore");
        assert_eq!(
            String::from_utf8_lossy(&got[0].3),
            format!("logs\n{}\n", extra.name)
        );
        assert_eq!(got.last().unwrap().0, extra.name);
    }

    #[test]
    fn the_dockerfile_is_found_as_docker_finds_it() {
        let d = tree();
        let ctx = resolve_context_dir(&d.path().to_string_lossy()).unwrap();
        assert_eq!(dockerfile_rel_path(&ctx, None).unwrap(), "Dockerfile");
        assert_eq!(dockerfile_rel_path(&ctx, Some("-")).unwrap(), "-");
        let sub = ctx.join("src/main.rs");
        assert_eq!(
            dockerfile_rel_path(&ctx, Some(&sub.to_string_lossy())).unwrap(),
            "src/main.rs"
        );
        let outside = tempfile::NamedTempFile::new().unwrap();
        assert!(
            dockerfile_rel_path(&ctx, Some(&outside.path().to_string_lossy()))
                .unwrap()
                .starts_with("../")
        );

        fs::remove_file(ctx.join("Dockerfile")).unwrap();
        let e = dockerfile_rel_path(&ctx, None).unwrap_err();
        assert_eq!(
            e.0,
            format!(
                "unable to evaluate symlinks in Dockerfile path: lstat {}/Dockerfile: no such file or directory",
                ctx.display()
            )
        );
        fs::write(ctx.join("dockerfile"), "FROM x").unwrap();
        assert_eq!(dockerfile_rel_path(&ctx, None).unwrap(), "dockerfile");

        let e = resolve_context_dir(&ctx.join("README.md").to_string_lossy()).unwrap_err();
        assert!(e.0.starts_with("context must be a directory: "), "{e}");
    }

    #[test]
    fn unreadable_files_fail_before_anything_is_sent() {
        if unsafe { libc::geteuid() } == 0 {
            return; // root reads everything
        }
        let d = tree();
        let secret = d.path().join("secret");
        fs::write(&secret, "s").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        let e = collect(d.path(), &[]).unwrap_err();
        assert_eq!(
            e.0,
            format!(
                "error checking context: no permission to read from '{}'",
                secret.display()
            )
        );
        // Ignored, it is no problem.
        assert!(collect(d.path(), &["secret".to_string()]).is_ok());
    }

    #[test]
    fn stdin_is_told_apart() {
        let df = dockerfile_only_tar(b"FROM busybox\nRUN exit 7\n").unwrap();
        assert_eq!(df.len(), 2048, "as the capture's body[2048]");
        assert_eq!(detect_stdin(&df[..1024]), StdinKind::Tar);
        assert_eq!(
            names_in(&df)
                .iter()
                .map(|e| e.0.clone())
                .collect::<Vec<_>>(),
            vec!["Dockerfile"]
        );
        assert_eq!(detect_stdin(&[0x1f, 0x8b, 0x08, 0, 0, 0]), StdinKind::Gzip);
        assert_eq!(detect_stdin(b"BZh91AY&SY"), StdinKind::Bzip2);
        assert_eq!(
            detect_stdin(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1]),
            StdinKind::Xz
        );
        assert_eq!(detect_stdin(&[0x28, 0xb5, 0x2f, 0xfd]), StdinKind::Zstd);
        assert_eq!(
            detect_stdin(b"FROM busybox\nRUN echo hi\n"),
            StdinKind::Dockerfile
        );
        // A long Dockerfile is still text; zeros are no archive.
        assert_eq!(detect_stdin(&[b'#'; 1024]), StdinKind::Dockerfile);
        assert_eq!(detect_stdin(&[0u8; 1024]), StdinKind::Dockerfile);
        assert_eq!(detect_stdin(b""), StdinKind::Dockerfile);
    }

    #[test]
    fn trimming_keeps_the_build_files() {
        let ex = vec!["*".to_string()];
        assert_eq!(
            trim_build_files(ex.clone(), "Dockerfile", false),
            vec!["*", "!.dockerignore", "!Dockerfile"]
        );
        assert_eq!(trim_build_files(ex, "-", true), vec!["*", "!.dockerignore"]);
        assert_eq!(
            trim_build_files(vec!["docs".into()], "Dockerfile", false),
            vec!["docs"]
        );
    }

    #[test]
    fn relative_paths_like_go() {
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b/c/d")), "c/d");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/x")), "../x");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), ".");
    }
}
