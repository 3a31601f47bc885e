//! `cp`: docker's copy semantics between a container (the archive API) and this machine,
//! where we build and unpack the tar ourselves, streaming in both directions.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use serde_json::Value;
use skiff_common::targuard::TarGuard;
use tokio::sync::mpsc;

use super::api::{query, seg, Api, Body};
use super::gofmt::human_size3;
use super::opts::go_io_error;
use super::Engine;
use crate::cli::CpArgs;
use crate::SkiffError;

/// Large pieces: fewer wakeups and syscalls per megabyte.
const CHUNK: usize = 1 << 20;

// Go's os.FileMode bits, which the engine's path stat uses.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;
const MODE_DEVICE: u64 = 1 << 26;
const MODE_IRREGULAR: u64 = 1 << 19;

fn fail(msg: impl Into<String>) -> anyhow::Error {
    SkiffError::daemon(msg).into()
}

// ---- Go's path functions (lexical, on '/') ----

/// Go's `filepath.Clean`.
pub fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Base`.
pub fn go_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `filepath.Dir`.
pub fn go_dir(p: &str) -> String {
    let i = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    go_clean(&p[..i])
}

fn go_join(a: &str, b: &str) -> String {
    if a.is_empty() {
        return go_clean(b);
    }
    go_clean(&format!("{a}/{b}"))
}

fn has_trailing_sep(p: &str) -> bool {
    p.ends_with('/')
}

fn specifies_current_dir(p: &str) -> bool {
    go_base(p) == "."
}

/// go-archive's SplitPathDirEntry: "/a/b/." → ("/a/b", "."), "/a/b/" → ("/a", "b").
pub fn split_path_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = go_clean(p);
    if specifies_current_dir(p) {
        cleaned.push_str("/.");
    }
    (go_dir(&cleaned), go_base(&cleaned))
}

/// go-archive's PreserveTrailingDotOrSeparator.
pub fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut c = cleaned.to_string();
    if !specifies_current_dir(&c) && specifies_current_dir(original) {
        if !has_trailing_sep(&c) {
            c.push('/');
        }
        c.push('.');
    }
    if !has_trailing_sep(&c) && has_trailing_sep(original) {
        c.push('/');
    }
    c
}

/// go-archive's GetRebaseName.
pub fn get_rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_sep(path) && !has_trailing_sep(&resolved) {
        resolved.push('/');
    }
    let rebase = (go_base(path) != go_base(&resolved)).then(|| go_base(path));
    (resolved, rebase)
}

/// docker's splitCpArg: `CONTAINER:PATH`, unless the argument is plainly a local path.
pub fn split_cp_arg(arg: &str) -> (Option<String>, String) {
    if arg.starts_with('/') {
        return (None, arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c.to_string()), p.to_string()),
        _ => (None, arg.to_string()),
    }
}

fn resolve_local_path(p: &str) -> Result<String> {
    let abs = if p.starts_with('/') {
        go_clean(p)
    } else {
        let cwd = std::env::current_dir()?;
        go_join(&cwd.to_string_lossy(), p)
    };
    Ok(preserve_trailing(&abs, p))
}

/// What we know about one side of a copy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    pub rebase_name: Option<String>,
}

/// go-archive's PrepareArchiveCopy: the directory to extract into and the name the
/// source's top entry must get there (`None`: keep it).
pub fn prepare_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<String>), String> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err("cannot copy directory".into());
    }
    if !dst.exists
        && !src.is_dir
        && (has_trailing_sep(&dst.path) || specifies_current_dir(&dst.path))
    {
        return Err("no such directory".into());
    }
    Ok((dst_dir, Some(dst_base)))
}

/// The stat the engine puts in X-Docker-Container-Path-Stat.
#[derive(Debug, Default)]
pub struct PathStat {
    pub mode: u64,
    pub link_target: String,
}

pub fn decode_stat(header: Option<&str>) -> Result<PathStat, String> {
    let raw = header.unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|e| format!("unable to decode container path stat header: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("unable to decode container path stat header: {e}"))?;
    Ok(PathStat {
        mode: v["mode"].as_u64().unwrap_or(0),
        link_target: v["linkTarget"].as_str().unwrap_or("").to_string(),
    })
}

fn archive_target(container: &str, path: &str, extra: &[(&str, String)]) -> String {
    let mut q = vec![("path", path.to_string())];
    q.extend(extra.iter().cloned());
    format!("/containers/{}/archive{}", seg(container), query(&q))
}

async fn stat_path(api: &Api, container: &str, path: &str) -> Result<PathStat> {
    let resp = api
        .call("HEAD", &archive_target(container, path, &[]), Body::None)
        .await?;
    decode_stat(resp.header("X-Docker-Container-Path-Stat")).map_err(fail)
}

/// Prints docker's "Copying … - 12.3MB" on a terminal while a copy runs.
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(show: bool, header: &'static str, total: Arc<AtomicU64>) -> Progress {
        if !show || !super::term::stderr_is_tty() {
            return Progress { task: None };
        }
        eprint!("\x1b7Preparing to copy...");
        let task = tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                let n = total.load(Ordering::Relaxed);
                if n != last {
                    eprint!("\x1b8\x1b[2K{header}{}", human_size3(n as f64));
                    last = n;
                }
                tokio::time::sleep(Duration::from_millis(75)).await;
            }
        });
        Progress { task: Some(task) }
    }

    fn stop(self) {
        if let Some(t) = self.task {
            t.abort();
            eprint!("\x1b8\x1b[2K");
        }
    }
}

pub async fn cp(engine: &Engine, a: &CpArgs) -> Result<u8> {
    if a.source.is_empty() {
        return Err(fail("source can not be empty"));
    }
    if a.destination.is_empty() {
        return Err(fail("destination can not be empty"));
    }
    // As docker: no progress or summary unless a terminal watches.
    let quiet = a.quiet || !super::term::stdout_is_tty();
    let (src_ctr, src_path) = split_cp_arg(&a.source);
    let (dst_ctr, dst_path) = split_cp_arg(&a.destination);
    let api = engine.api();
    match (src_ctr, dst_ctr) {
        (Some(c), None) => {
            let opts = UntarOptions {
                keep_owner_and_setid: a.archive,
            };
            from_container(&api, &c, &src_path, &dst_path, a.follow_link, opts, quiet).await
        }
        (None, Some(c)) => {
            to_container(
                &api,
                &c,
                &src_path,
                &dst_path,
                a.follow_link,
                a.archive,
                quiet,
            )
            .await
        }
        (Some(_), Some(_)) => Err(fail("copying between containers is not supported")),
        (None, None) => Err(fail("must specify at least one container source")),
    }
}

/// docker's ValidateOutputPath.
fn validate_output_path(path: &str) -> Result<(), String> {
    let dir = go_dir(&go_clean(path));
    if !dir.is_empty() && dir != "." && fs::metadata(&dir).is_err() {
        return Err(format!(
            "invalid output path: directory \"{dir}\" does not exist"
        ));
    }
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("stat {path}: {}", go_io_error(&e))),
        Ok(m) => {
            let ft = m.file_type();
            if m.is_dir() || m.is_file() {
                return Ok(());
            }
            let why = if ft.is_block_device() || ft.is_char_device() {
                "got a device"
            } else {
                "got an irregular file"
            };
            Err(format!(
                "invalid output path: \"{path}\" must be a directory or a regular file: {why}"
            ))
        }
    }
}

async fn from_container(
    api: &Api,
    container: &str,
    src: &str,
    dst: &str,
    follow: bool,
    opts: UntarOptions,
    quiet: bool,
) -> Result<u8> {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        resolve_local_path(dst)?
    };
    if dst != "-" {
        validate_output_path(&dst).map_err(fail)?;
    }
    let mut src_path = src.to_string();
    let mut rebase_name = None;
    if follow {
        if let Ok(st) = stat_path(api, container, src).await {
            if st.mode & MODE_SYMLINK != 0 {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    let (parent, _) = split_path_dir_entry(src);
                    target = go_join(&parent, &target);
                }
                let (resolved, rebase) = get_rebase_name(src, &target);
                src_path = resolved;
                rebase_name = rebase;
            }
        }
    }
    let mut resp = api
        .call(
            "GET",
            &archive_target(container, &src_path, &[]),
            Body::None,
        )
        .await?;
    let stat = decode_stat(resp.header("X-Docker-Container-Path-Stat"))
        .map_err(|e| fail(format!("unable to get resource stat from response: {e}")))?;

    if dst == "-" {
        let mut out = io::stdout().lock();
        while let Some(chunk) = resp.chunk().await? {
            if out.write_all(&chunk).is_err() {
                return Ok(0);
            }
        }
        out.flush()?;
        return Ok(0);
    }

    let src_info = CopyInfo {
        path: src_path,
        exists: true,
        is_dir: stat.mode & MODE_DIR != 0,
        rebase_name,
    };
    let total = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(!quiet, "Copying from container - ", total.clone());
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let dst_for_thread = dst.clone();
    let extract = tokio::task::spawn_blocking(move || {
        let reader = ChanReader::new(rx);
        let mut warnings = Vec::new();
        let result = copy_to(reader, &src_info, &dst_for_thread, opts, &mut warnings);
        (result, warnings)
    });
    let mut feed_err = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                total.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                feed_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let (result, warnings) = extract
        .await
        .map_err(|e| fail(format!("skiff: extracting failed: {e}")))?;
    progress.stop();
    for w in warnings {
        eprintln!("{w}");
    }
    if let Some(e) = feed_err {
        return Err(e);
    }
    result.map_err(fail)?;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            human_size3(total.load(Ordering::Relaxed) as f64)
        );
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
async fn to_container(
    api: &Api,
    container: &str,
    src: &str,
    dst: &str,
    follow: bool,
    copy_uid_gid: bool,
    quiet: bool,
) -> Result<u8> {
    let src = if src == "-" {
        src.to_string()
    } else {
        resolve_local_path(src)?
    };
    let mut dst_info = CopyInfo {
        path: dst.to_string(),
        ..Default::default()
    };
    let mut stat = stat_path(api, container, dst).await;
    if let Ok(st) = &stat {
        if st.mode & MODE_SYMLINK != 0 {
            let mut target = st.link_target.clone();
            if !target.starts_with('/') {
                let (parent, _) = split_path_dir_entry(dst);
                target = go_join(&parent, &target);
            }
            dst_info.path = target.clone();
            stat = stat_path(api, container, &target).await;
        }
    }
    if let Ok(st) = &stat {
        let why = if st.mode & MODE_DEVICE != 0 {
            Some("got a device")
        } else if st.mode & MODE_IRREGULAR != 0 {
            Some("got an irregular file")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(fail(format!(
                "destination \"{container}:{dst}\" must be a directory or a regular file: {why}"
            )));
        }
        dst_info.exists = true;
        dst_info.is_dir = st.mode & MODE_DIR != 0;
    }

    let mut extra = vec![("noOverwriteDirNonDir", "true".to_string())];
    if copy_uid_gid {
        extra.push(("copyUIDGID", "true".to_string()));
    }
    let total = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);

    let (target_dir, producer) = if src == "-" {
        if !dst_info.is_dir {
            return Err(fail(format!(
                "destination \"{container}:{dst}\" must be a directory"
            )));
        }
        let counter = total.clone();
        // A detached thread: a terminal on stdin may never reach EOF, and the command must
        // not wait for it at exit.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = pump_stdin(tx, counter);
            let _ = done_tx.send(r);
        });
        (dst_info.path.clone(), Producer::Stdin(done_rx))
    } else {
        let src_info = copy_info_source_path(&src, follow).map_err(fail)?;
        let (dir, top) = prepare_copy(&src_info, &dst_info).map_err(fail)?;
        let (_, src_base) = split_path_dir_entry(&src_info.path);
        let top = top
            .or_else(|| src_info.rebase_name.clone())
            .unwrap_or(src_base);
        let counter = total.clone();
        let path = src_info.path.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut w = ChanWriter::new(tx, counter);
            write_tar(&mut w, &path, &top)?;
            w.flush()
        });
        (dir, Producer::Tar(task))
    };

    let progress = Progress::start(!quiet, "Copying to container - ", total.clone());
    let resp = api
        .request(
            "PUT",
            &archive_target(container, &target_dir, &extra),
            Body::Stream(rx),
        )
        .await;
    progress.stop();
    let produced: io::Result<()> = match producer {
        Producer::Tar(task) => task
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string()))),
        // Stdin may still be open when the engine has answered; don't wait for it then.
        Producer::Stdin(rx) => match tokio::time::timeout(Duration::from_millis(100), rx).await {
            Ok(Ok(r)) => r,
            _ => Ok(()),
        },
    };
    let resp = resp?;
    if resp.status >= 400 {
        return Err(resp.into_error().await);
    }
    let _ = resp.bytes().await;
    if let Err(e) = produced {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(fail(e.to_string()));
        }
    }
    if !quiet {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            human_size3(total.load(Ordering::Relaxed) as f64),
            dst_info.path
        );
    }
    Ok(0)
}

enum Producer {
    Tar(tokio::task::JoinHandle<io::Result<()>>),
    Stdin(tokio::sync::oneshot::Receiver<io::Result<()>>),
}

fn pump_stdin(tx: mpsc::Sender<Vec<u8>>, counter: Arc<AtomicU64>) -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match stdin.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if tx.blocking_send(buf).is_err() {
            return Ok(());
        }
    }
}

/// Bytes from the async side, read by the tar code on a blocking thread.
struct ChanReader {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChanReader {
    fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Tar bytes from a blocking thread to the async request body, in large pieces.
struct ChanWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    counter: Arc<AtomicU64>,
}

impl ChanWriter {
    fn new(tx: mpsc::Sender<Vec<u8>>, counter: Arc<AtomicU64>) -> Self {
        ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            counter,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.counter
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
        self.tx
            .blocking_send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the agent stopped reading"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

// ---- the local side: building an archive ----

/// go-archive's CopyInfoSourcePath (with ResolveHostSourcePath).
pub fn copy_info_source_path(path: &str, follow: bool) -> Result<CopyInfo, String> {
    let (resolved, rebase_name) = if follow {
        let r = fs::canonicalize(path).map_err(|e| format!("lstat {path}: {}", go_io_error(&e)))?;
        get_rebase_name(path, &r.to_string_lossy())
    } else {
        let i = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (dir, base) = (&path[..i], &path[i..]);
        let dir_resolved = if dir.is_empty() {
            ".".to_string()
        } else {
            fs::canonicalize(dir)
                .map_err(|e| format!("lstat {dir}: {}", go_io_error(&e)))?
                .to_string_lossy()
                .into_owned()
        };
        let resolved = if dir_resolved == "/" {
            format!("/{base}")
        } else {
            format!("{dir_resolved}/{base}")
        };
        let rebase =
            (has_trailing_sep(path) && go_base(path) != go_base(&resolved)).then(|| go_base(path));
        (resolved, rebase)
    };
    let md = fs::symlink_metadata(&resolved)
        .map_err(|e| format!("lstat {resolved}: {}", go_io_error(&e)))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: md.is_dir(),
        rebase_name,
    })
}

/// Archive `src` (not following symlinks) with its top entry named `top`, as go-archive's
/// TarResourceRebase does: directories recursively in name order, hard links once.
pub fn write_tar<W: Write>(w: W, src: &str, top: &str) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut seen: HashMap<(u64, u64), String> = HashMap::new();
    let md = fs::symlink_metadata(src)?;
    let top = if top == "/" { "." } else { top };
    add_entry(&mut b, Path::new(src), top, &md, &mut seen)?;
    if md.is_dir() {
        add_dir(&mut b, Path::new(src), top, &mut seen)?;
    }
    b.into_inner()?.flush()
}

fn child_name(parent: &str, name: &str) -> String {
    if parent == "." {
        format!("./{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn add_dir<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
    seen: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let mut children: Vec<fs::DirEntry> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).collect(),
        // As docker: what cannot be read is left out, the copy goes on.
        Err(_) => return Ok(()),
    };
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        let child_name = child_name(name, &child.file_name().to_string_lossy());
        add_entry(b, &path, &child_name, &md, seen)?;
        if md.is_dir() {
            add_dir(b, &path, &child_name, seen)?;
        }
    }
    Ok(())
}

fn add_entry<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    md: &fs::Metadata,
    seen: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let ft = md.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        let dir_name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        return b.append_data(&mut h, dir_name, io::empty());
    }
    if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(path)?;
        return b.append_link(&mut h, name, target);
    }
    if md.nlink() > 1 {
        let key = (md.dev(), md.ino());
        if let Some(first) = seen.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            let first = first.clone();
            return b.append_link(&mut h, name, first);
        }
        seen.insert(key, name.to_string());
    }
    if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        let f = match fs::File::open(path) {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        // The copy reads the file through this buffer in megabyte steps, and never more
        // than the size announced in the header.
        let reader = io::BufReader::with_capacity(CHUNK, f).take(md.len());
        return b.append_data(&mut h, name, PadTo::new(reader, md.len()));
    }
    let kind = if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else {
        // Sockets cannot be archived (Go's tar refuses them too).
        return Ok(());
    };
    h.set_entry_type(kind);
    let rdev = md.rdev();
    h.set_device_major(libc::major(rdev as libc::dev_t))?;
    h.set_device_minor(libc::minor(rdev as libc::dev_t))?;
    b.append_data(&mut h, name, io::empty())
}

/// A file that shrank while we read it is padded with zeros to the size in its header, so
/// the archive stays well-formed.
struct PadTo<R> {
    inner: R,
    left: u64,
}

impl<R: Read> PadTo<R> {
    fn new(inner: R, size: u64) -> Self {
        PadTo { inner, left: size }
    }
}

impl<R: Read> Read for PadTo<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        let n = if n == 0 {
            buf[..max].fill(0);
            max
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

// ---- the local side: unpacking an archive ----

/// go-archive's CopyInfoDestinationPath: the destination, following its own symlinks.
pub fn copy_info_destination_path(path: &str) -> Result<CopyInfo, String> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut n = 0;
    loop {
        match fs::symlink_metadata(&path) {
            Ok(md) if !md.file_type().is_symlink() => {
                return Ok(CopyInfo {
                    path,
                    exists: true,
                    is_dir: md.is_dir(),
                    rebase_name: None,
                })
            }
            Ok(_) => {
                n += 1;
                if n > 10 {
                    return Err(format!("too many symlinks in {original}"));
                }
                let target = fs::read_link(&path)
                    .map_err(|e| format!("readlink {path}: {}", go_io_error(&e)))?;
                let target = target.to_string_lossy().into_owned();
                path = if target.starts_with('/') {
                    target
                } else {
                    let (parent, _) = split_path_dir_entry(&path);
                    go_join(&parent, &target)
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (parent, _) = split_path_dir_entry(&path);
                let md = fs::metadata(&parent)
                    .map_err(|e| format!("stat {parent}: {}", go_io_error(&e)))?;
                if !md.is_dir() {
                    return Err("not a directory".into());
                }
                return Ok(CopyInfo {
                    path,
                    ..Default::default()
                });
            }
            Err(e) => return Err(format!("lstat {path}: {}", go_io_error(&e))),
        }
    }
}

/// go-archive's CopyTo: unpack what the engine sent so that `src` ends up at `dst` by
/// docker's rules. What was left out is told in `warnings`, one line each.
pub fn copy_to<R: Read>(
    content: R,
    src: &CopyInfo,
    dst: &str,
    opts: UntarOptions,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let dst_info = copy_info_destination_path(dst)?;
    let (dst_dir, top) = prepare_copy(src, &dst_info)?;
    let (_, src_base) = split_path_dir_entry(&src.path);
    let mut renames = Vec::new();
    let mut base = src_base;
    if let Some(r) = &src.rebase_name {
        renames.push((base.clone(), r.clone()));
        base = r.clone();
    }
    if let Some(t) = top {
        renames.push((base, t));
    }
    untar(content, Path::new(&dst_dir), &renames, opts, warnings)
}

/// go-archive's RebaseArchiveEntries for one name (already cleaned).
pub fn rebase(name: &str, old: &str, new: &str) -> String {
    let old = if old == "/" { "" } else { old };
    if old == "." || old.is_empty() {
        // Everything in the archive is under its top directory.
        return if name == "." {
            new.to_string()
        } else {
            format!("{new}/{name}")
        };
    }
    if name == old {
        return new.to_string();
    }
    match name.strip_prefix(old).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => format!("{new}/{rest}"),
        None => name.to_string(),
    }
}

fn clean_entry_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let c = go_clean(&s);
    let c = c.trim_start_matches('/');
    if c.is_empty() {
        ".".into()
    } else {
        c.to_string()
    }
}

fn breakout(msg: String) -> String {
    format!("Error processing tar file: {msg}")
}

/// Refuse to write through a symlink that leads out of `dest`: each parent of `name`
/// inside `dest` is looked at without following it.
fn check_parents(dest: &Path, dest_canon: &Path, name: &str) -> Result<(), String> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<&str> = name.split('/').collect();
    for comp in &comps[..comps.len().saturating_sub(1)] {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.file_type().is_symlink() => {
                let real = fs::canonicalize(&cur)
                    .map_err(|e| breakout(format!("{}: {}", cur.display(), go_io_error(&e))))?;
                if !real.starts_with(dest_canon) {
                    return Err(breakout(format!(
                        "{:?} is outside of {:?}",
                        name,
                        dest.display().to_string()
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_times(path: &Path, mtime: i64, nofollow: bool) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: `c` is a valid NUL-terminated path and `times` holds two timespecs.
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
}

/// Make a fifo: the only special file `cp` creates on the host.
fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), (mode & 0o777) as libc::mode_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How the files from a container are made on this machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct UntarOptions {
    /// `-a`: give files the archive's owner (when we are root) and keep setuid/setgid bits.
    /// Without it, as docker, files belong to whoever runs `cp`, and the bits are dropped: a
    /// setuid binary from a container must not become a setuid-root binary on the host
    /// because root copied it out.
    pub keep_owner_and_setid: bool,
}

impl UntarOptions {
    fn mode(&self, mode: u32) -> u32 {
        if self.keep_owner_and_setid {
            mode & 0o7777
        } else {
            mode & 0o1777
        }
    }
}

/// The archive's owner for `path`, with `-a` and when we may give files away.
fn keep_owner(opts: UntarOptions, path: &Path, uid: u64, gid: u64) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if !opts.keep_owner_and_setid || unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Err(format!(
            "lchown {}: the archive's owner {uid}:{gid} is out of range",
            path.display()
        ));
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("lchown {}: {}", path.display(), go_io_error(&e)))
}

/// go-archive's Untar with NoLchown (unless `-a`) and NoOverwriteDirNonDir, into `dest`.
///
/// Unlike docker's, it never creates device nodes on the host (they are skipped, each told
/// in `warnings`: copying a container's `/dev` must still work), drops setuid/setgid bits
/// unless `-a`, and resolves hard-link targets like entry names: inside `dest`, through no
/// symlink that leads out, to a regular file already unpacked there.
pub fn untar<R: Read>(
    content: R,
    dest: &Path,
    renames: &[(String, String)],
    opts: UntarOptions,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    // The tar crate would read a long name or PAX header whole into memory, whatever size it
    // declares: the guard refuses one over 1 MiB from its header.
    let mut archive = tar::Archive::new(TarGuard::new(content));
    let dest_canon =
        fs::canonicalize(dest).map_err(|e| format!("{}: {}", dest.display(), go_io_error(&e)))?;
    let dest_str = dest.to_string_lossy().into_owned();
    let mut dirs: Vec<(PathBuf, i64, u32)> = Vec::new();
    // Device entries left out, so that hard links to them are left out too.
    let mut skipped: HashSet<String> = HashSet::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("Error processing tar file: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("Error processing tar file: {e}"))?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let mut name = clean_entry_name(&entry.path_bytes());
        for (old, new) in renames {
            name = rebase(&name, old, new);
        }
        let name = go_clean(&name);
        if name == ".." || name.starts_with("../") {
            return Err(breakout(format!("{name:?} is outside of {dest_str:?}")));
        }
        let mode = opts.mode(entry.header().mode().unwrap_or(0o644));
        let mtime = entry.header().mtime().unwrap_or(0) as i64;
        let uid = entry.header().uid().unwrap_or(0);
        let gid = entry.header().gid().unwrap_or(0);
        let path = if name == "." {
            dest.to_path_buf()
        } else {
            dest.join(&name)
        };
        check_parents(dest, &dest_canon, &name)?;
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let (major, minor) = (
                entry.header().device_major().ok().flatten().unwrap_or(0),
                entry.header().device_minor().ok().flatten().unwrap_or(0),
            );
            let what = if kind == tar::EntryType::Char {
                "character"
            } else {
                "block"
            };
            warnings.push(format!(
                "Warning: skiff cp does not create device nodes on the host: skipped {} ({what} device {major}:{minor})",
                path.display()
            ));
            skipped.insert(name);
            continue;
        }
        // Parents the archive does not list are made as docker does (0755).
        if let Some(parent) = path.parent() {
            if fs::symlink_metadata(parent).is_err() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("mkdir {}: {}", parent.display(), go_io_error(&e)))?;
            }
        }
        if let Ok(md) = fs::symlink_metadata(&path) {
            let is_dir_entry = kind == tar::EntryType::Directory;
            if md.is_dir() && !is_dir_entry {
                return Err(format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    path.display().to_string(),
                    dest_str
                ));
            }
            if !md.is_dir() && is_dir_entry {
                return Err(format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    path.display().to_string(),
                    dest_str
                ));
            }
            if md.is_dir() && name == "." {
                continue;
            }
            if !md.is_dir() {
                fs::remove_file(&path)
                    .map_err(|e| format!("remove {}: {}", path.display(), go_io_error(&e)))?;
            }
        }
        let io_err =
            |what: &str, e: io::Error| format!("{what} {}: {}", path.display(), go_io_error(&e));
        match kind {
            tar::EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(|e| io_err("mkdir", e))?;
                }
                keep_owner(opts, &path, uid, gid)?;
                dirs.push((path.clone(), mtime, mode));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| io_err("open", e))?;
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| format!("Error processing tar file: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).map_err(|e| io_err("write", e))?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let parent = path.parent().unwrap_or(dest).to_string_lossy().into_owned();
                let joined = go_join(&parent, &target);
                if !Path::new(&joined).starts_with(dest) {
                    return Err(breakout(format!(
                        "invalid symlink {:?} -> {target:?}",
                        path.display().to_string()
                    )));
                }
                std::os::unix::fs::symlink(&target, &path).map_err(|e| io_err("symlink", e))?;
                keep_owner(opts, &path, uid, gid)?;
                set_times(&path, mtime, true);
                continue;
            }
            tar::EntryType::Link => {
                let mut target = entry
                    .link_name_bytes()
                    .map(|b| clean_entry_name(&b))
                    .unwrap_or_default();
                for (old, new) in renames {
                    target = rebase(&target, old, new);
                }
                let target = go_clean(&target);
                if skipped.contains(&target) {
                    warnings.push(format!(
                        "Warning: skiff cp does not create device nodes on the host: skipped {} (a hard link to one)",
                        path.display()
                    ));
                    continue;
                }
                let target_path = hardlink_target(dest, &dest_canon, &path, &target)?;
                fs::hard_link(&target_path, &path).map_err(|e| io_err("link", e))?;
                continue;
            }
            tar::EntryType::Fifo => {
                mkfifo(&path, mode).map_err(|e| io_err("mkfifo", e))?;
            }
            other => return Err(format!("unhandled tar header type {}", other.as_byte())),
        }
        // Owner first: chown clears setuid/setgid, the mode sets them again (with -a).
        keep_owner(opts, &path, uid, gid)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_err("chmod", e))?;
        set_times(&path, mtime, false);
    }
    // Directory modes and times last, so files made in them do not change them again.
    for (path, mtime, mode) in dirs.iter().rev() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(*mode));
        set_times(path, *mtime, false);
    }
    Ok(())
}

/// Where the hard link `link` (its path here) to `target` (a cleaned entry name) points:
/// checked as entry names are (inside `dest`, no parent a symlink that leads out), and a
/// regular file already there, never a symlink (`link` would take it as it is) or a directory.
fn hardlink_target(
    dest: &Path,
    dest_canon: &Path,
    link: &Path,
    target: &str,
) -> Result<PathBuf, String> {
    let refuse = |why: &str| {
        breakout(format!(
            "invalid hardlink {:?} -> {target:?}: {why}",
            link.display().to_string()
        ))
    };
    if target == "." || target == ".." || target.starts_with("../") {
        return Err(refuse("it is outside of the destination"));
    }
    check_parents(dest, dest_canon, target)?;
    let target_path = dest.join(target);
    match fs::symlink_metadata(&target_path) {
        Ok(md) if md.is_file() => {}
        Ok(_) => return Err(refuse("the target is not a regular file")),
        Err(e) => return Err(refuse(&format!("the target: {}", go_io_error(&e)))),
    }
    let canon = fs::canonicalize(&target_path).map_err(|e| refuse(&go_io_error(&e)))?;
    if !canon.starts_with(dest_canon) {
        return Err(refuse("it is outside of the destination"));
    }
    Ok(target_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_paths() {
        assert_eq!(go_clean("/a/b/../c/./"), "/a/c");
        assert_eq!(go_clean("a/../../b"), "../b");
        assert_eq!(go_clean(""), ".");
        assert_eq!(go_clean("/.."), "/");
        assert_eq!(go_base("/a/b/"), "b");
        assert_eq!(go_base("/"), "/");
        assert_eq!(go_dir("/a/b"), "/a");
        assert_eq!(go_dir("b"), ".");
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a"), ("/".into(), "a".into()));
        assert_eq!(preserve_trailing("/x/d", "d/"), "/x/d/");
        assert_eq!(preserve_trailing("/x/d", "d/."), "/x/d/.");
        assert_eq!(preserve_trailing("/x/d", "d"), "/x/d");
    }

    #[test]
    fn cp_args_split_like_docker() {
        assert_eq!(
            split_cp_arg("c1:/etc/hostname"),
            (Some("c1".into()), "/etc/hostname".into())
        );
        assert_eq!(split_cp_arg("/abs:path"), (None, "/abs:path".into()));
        assert_eq!(split_cp_arg("./file:name"), (None, "./file:name".into()));
        assert_eq!(split_cp_arg("plain"), (None, "plain".into()));
        assert_eq!(split_cp_arg("-"), (None, "-".into()));
    }

    #[test]
    fn copy_rules_like_docker() {
        let file = CopyInfo {
            path: "/src/f".into(),
            exists: true,
            is_dir: false,
            rebase_name: None,
        };
        let dir = CopyInfo {
            path: "/src/d".into(),
            exists: true,
            is_dir: true,
            rebase_name: None,
        };
        let existing_dir = CopyInfo {
            path: "/dst".into(),
            exists: true,
            is_dir: true,
            rebase_name: None,
        };
        let existing_file = CopyInfo {
            path: "/dst/g".into(),
            exists: true,
            is_dir: false,
            rebase_name: None,
        };
        let missing = CopyInfo {
            path: "/dst/new".into(),
            ..Default::default()
        };
        let missing_slash = CopyInfo {
            path: "/dst/new/".into(),
            ..Default::default()
        };
        assert_eq!(
            prepare_copy(&file, &existing_dir),
            Ok(("/dst".into(), None))
        );
        assert_eq!(
            prepare_copy(&file, &existing_file),
            Ok(("/dst".into(), Some("g".into())))
        );
        assert_eq!(
            prepare_copy(&dir, &existing_file),
            Err("cannot copy directory".into())
        );
        assert_eq!(
            prepare_copy(&dir, &missing),
            Ok(("/dst".into(), Some("new".into())))
        );
        assert_eq!(
            prepare_copy(&dir, &missing_slash),
            Ok(("/dst".into(), Some("new".into())))
        );
        assert_eq!(
            prepare_copy(&file, &missing_slash),
            Err("no such directory".into())
        );
        assert_eq!(
            prepare_copy(&file, &missing),
            Ok(("/dst".into(), Some("new".into())))
        );
        assert_eq!(rebase("d/x/y", "d", "new"), "new/x/y");
        assert_eq!(rebase("d", "d", "new"), "new");
        assert_eq!(rebase("dd/x", "d", "new"), "dd/x");
        assert_eq!(rebase(".", ".", "new"), "new");
        assert_eq!(rebase("x", ".", "new"), "new/x");
        assert_eq!(
            get_rebase_name("/a/link", "/a/real"),
            ("/a/real".into(), Some("link".into()))
        );
        assert_eq!(
            get_rebase_name("/a/link/", "/a/real"),
            ("/a/real/".into(), Some("link".into()))
        );
        assert_eq!(
            get_rebase_name("/a/same", "/b/same"),
            ("/b/same".into(), None)
        );
    }

    #[test]
    fn stat_header_decodes() {
        let st = decode_stat(Some("eyJuYW1lIjoidG1wIiwic2l6ZSI6NDA5NiwibW9kZSI6MjE0ODUzMjczNSwibXRpbWUiOiIyMDIzLTExLTE0VDIyOjEzOjIwWiIsImxpbmtUYXJnZXQiOiIifQ==")).unwrap();
        assert!(st.mode & MODE_DIR != 0);
        assert!(decode_stat(Some("!!")).is_err());
    }

    fn copy_plain(data: &[u8], info: &CopyInfo, dst: &str) -> Result<(), String> {
        copy_to(data, info, dst, UntarOptions::default(), &mut Vec::new())
    }

    fn untar_plain(data: &[u8], dest: &Path) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        untar(data, dest, &[], UntarOptions::default(), &mut warnings)?;
        Ok(warnings)
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "skiff-cp-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn archives_round_trip_with_docker_rules() {
        let root = tmp();
        let src = root.join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a.txt"), b"hello").unwrap();
        fs::write(src.join("sub/big"), vec![7u8; 3 * CHUNK + 5]).unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        fs::hard_link(src.join("a.txt"), src.join("hard")).unwrap();

        // A directory into a new name: the top entry is renamed.
        let mut tarball = Vec::new();
        write_tar(&mut tarball, src.to_str().unwrap(), "src").unwrap();
        let out = root.join("out");
        fs::create_dir(&out).unwrap();
        let info = CopyInfo {
            path: "/ctr/src".into(),
            exists: true,
            is_dir: true,
            rebase_name: None,
        };
        copy_plain(&tarball[..], &info, out.join("copy").to_str().unwrap()).unwrap();
        assert_eq!(fs::read(out.join("copy/a.txt")).unwrap(), b"hello");
        assert_eq!(
            fs::read(out.join("copy/sub/big")).unwrap().len(),
            3 * CHUNK + 5
        );
        assert_eq!(
            fs::read_link(out.join("copy/link")).unwrap(),
            Path::new("a.txt")
        );
        assert_eq!(fs::metadata(out.join("copy/hard")).unwrap().nlink(), 2);

        // Into an existing directory: kept under its own name.
        copy_plain(&tarball[..], &info, out.to_str().unwrap()).unwrap();
        assert!(out.join("src/sub/big").is_file());

        // "dir/." copies the contents.
        let mut dot = Vec::new();
        write_tar(&mut dot, src.to_str().unwrap(), ".").unwrap();
        let flat = root.join("flat");
        fs::create_dir(&flat).unwrap();
        let dot_info = CopyInfo {
            path: "/ctr/src/.".into(),
            exists: true,
            is_dir: true,
            rebase_name: None,
        };
        copy_plain(&dot[..], &dot_info, flat.to_str().unwrap()).unwrap();
        assert!(flat.join("a.txt").is_file());

        // A file onto an existing file takes its name.
        let mut one = Vec::new();
        write_tar(&mut one, src.join("a.txt").to_str().unwrap(), "a.txt").unwrap();
        fs::write(out.join("target"), b"old").unwrap();
        let finfo = CopyInfo {
            path: "/ctr/a.txt".into(),
            exists: true,
            is_dir: false,
            rebase_name: None,
        };
        copy_plain(&one[..], &finfo, out.join("target").to_str().unwrap()).unwrap();
        assert_eq!(fs::read(out.join("target")).unwrap(), b"hello");

        // A file where a directory is: refused.
        fs::create_dir(out.join("isdir")).unwrap();
        let mut clash = Vec::new();
        write_tar(&mut clash, src.join("a.txt").to_str().unwrap(), "isdir").unwrap();
        assert!(untar_plain(&clash[..], &out)
            .unwrap_err()
            .contains("cannot overwrite directory"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn hostile_archives_stay_inside() {
        let root = tmp();
        let dest = root.join("dest");
        fs::create_dir(&dest).unwrap();
        let outside = root.join("outside");
        fs::create_dir(&outside).unwrap();

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", "../../outside").unwrap();
        let data = b.into_inner().unwrap();
        assert!(untar_plain(&data[..], &dest)
            .unwrap_err()
            .contains("invalid symlink"));

        // A symlink already in the destination leading out is not written through.
        std::os::unix::fs::symlink(&outside, dest.join("out")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "out/evil", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(untar_plain(&data[..], &dest)
            .unwrap_err()
            .contains("outside"));
        assert!(!outside.join("evil").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    /// An entry of `kind` named `name`, with `data`, `mode` and an optional link target.
    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        name: &str,
        data: &[u8],
        mode: u32,
        link: Option<&str>,
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_700_000_000);
        match link {
            Some(l) => b.append_link(&mut h, name, l).unwrap(),
            None => b.append_data(&mut h, name, data).unwrap(),
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn setid_bits_are_dropped_unless_archive_mode() {
        let root = tmp();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Directory, "d/", b"", 0o3775, None);
        entry(&mut b, tar::EntryType::Regular, "d/su", b"#!", 0o4755, None);
        entry(&mut b, tar::EntryType::Regular, "d/sg", b"#!", 0o2711, None);
        entry(&mut b, tar::EntryType::Fifo, "d/fifo", b"", 0o6640, None);
        let data = b.into_inner().unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;

        let plain = root.join("plain");
        fs::create_dir(&plain).unwrap();
        assert_eq!(untar_plain(&data, &plain).unwrap(), Vec::<String>::new());
        assert_eq!(mode(&plain.join("d/su")), 0o755);
        assert_eq!(mode(&plain.join("d/sg")), 0o711);
        assert_eq!(mode(&plain.join("d/fifo")), 0o640);
        assert_eq!(
            mode(&plain.join("d")),
            0o1775,
            "the sticky bit is no setid bit"
        );
        assert!(fs::symlink_metadata(plain.join("d/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        // Without -a the files are ours, as docker's.
        let me = unsafe { libc::geteuid() };
        assert_eq!(fs::symlink_metadata(plain.join("d/su")).unwrap().uid(), me);

        let kept = root.join("kept");
        fs::create_dir(&kept).unwrap();
        let opts = UntarOptions {
            keep_owner_and_setid: true,
        };
        untar(&data[..], &kept, &[], opts, &mut Vec::new()).unwrap();
        assert_eq!(mode(&kept.join("d/su")), 0o4755);
        assert_eq!(mode(&kept.join("d/sg")), 0o2711);
        assert_eq!(mode(&kept.join("d")), 0o3775);
        if is_root() {
            let md = fs::symlink_metadata(kept.join("d/su")).unwrap();
            assert_eq!((md.uid(), md.gid()), (1234, 5678), "-a keeps the owner");
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn device_nodes_are_skipped_with_a_warning_each() {
        let root = tmp();
        let dest = root.join("dest");
        fs::create_dir(&dest).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Directory, "dev/", b"", 0o755, None);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_mode(0o666);
        h.set_size(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/null", io::empty()).unwrap();
        h.set_entry_type(tar::EntryType::Block);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        b.append_data(&mut h, "dev/sda", io::empty()).unwrap();
        entry(
            &mut b,
            tar::EntryType::Link,
            "dev/also-null",
            b"",
            0o666,
            Some("dev/null"),
        );
        entry(
            &mut b,
            tar::EntryType::Fifo,
            "dev/initctl",
            b"",
            0o600,
            None,
        );
        entry(
            &mut b,
            tar::EntryType::Regular,
            "dev/file",
            b"kept",
            0o644,
            None,
        );
        let data = b.into_inner().unwrap();
        let warnings = untar_plain(&data, &dest).unwrap();
        let d = dest.join("dev");
        assert_eq!(
            warnings,
            [
                format!("Warning: skiff cp does not create device nodes on the host: skipped {} (character device 1:3)", d.join("null").display()),
                format!("Warning: skiff cp does not create device nodes on the host: skipped {} (block device 8:0)", d.join("sda").display()),
                format!("Warning: skiff cp does not create device nodes on the host: skipped {} (a hard link to one)", d.join("also-null").display()),
            ]
        );
        for gone in ["null", "sda", "also-null"] {
            assert!(fs::symlink_metadata(d.join(gone)).is_err(), "{gone}");
        }
        assert!(fs::symlink_metadata(d.join("initctl"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(fs::read(d.join("file")).unwrap(), b"kept");
        fs::remove_dir_all(&root).unwrap();
    }

    /// An entry to write: its type, name and link target.
    type Planned<'a> = (tar::EntryType, &'a str, Option<String>);

    /// Hard-link targets are resolved like entry names: not through a symlink that leads out,
    /// never a symlink or a directory, and only a file already in the destination.
    #[test]
    fn hardlink_targets_must_be_regular_files_inside() {
        let root = tmp();
        let outside = root.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"host").unwrap();
        let cases: [(&str, Vec<Planned>, &str); 5] = [
            (
                "through a symlink already in the destination",
                vec![(tar::EntryType::Link, "h", Some("out/secret".into()))],
                "outside",
            ),
            (
                "through a symlink from the archive to that one",
                vec![
                    (tar::EntryType::Symlink, "a", Some("out".into())),
                    (tar::EntryType::Link, "h", Some("a/secret".into())),
                ],
                "outside",
            ),
            (
                "to a symlink",
                vec![(tar::EntryType::Link, "h", Some("out".into()))],
                "not a regular file",
            ),
            (
                "to a directory",
                vec![
                    (tar::EntryType::Directory, "dir/", None),
                    (tar::EntryType::Link, "h", Some("dir".into())),
                ],
                "not a regular file",
            ),
            (
                "to nothing",
                vec![(tar::EntryType::Link, "h", Some("missing".into()))],
                "no such file",
            ),
        ];
        for (i, (what, entries, why)) in cases.iter().enumerate() {
            let dest = root.join(format!("dest{i}"));
            fs::create_dir(&dest).unwrap();
            std::os::unix::fs::symlink(&outside, dest.join("out")).unwrap();
            let mut b = tar::Builder::new(Vec::new());
            for (kind, name, link) in entries {
                entry(&mut b, *kind, name, b"", 0o644, link.as_deref());
            }
            let data = b.into_inner().unwrap();
            let err = untar_plain(&data, &dest).expect_err(what);
            assert!(err.contains(why), "{what}: {err}");
            assert!(fs::symlink_metadata(dest.join("h")).is_err(), "{what}");
        }
        assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);

        // A link to a file the archive made, through a symlink that stays inside: fine.
        let dest = root.join("fine");
        fs::create_dir(&dest).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, tar::EntryType::Directory, "real/", b"", 0o755, None);
        entry(
            &mut b,
            tar::EntryType::Regular,
            "real/f",
            b"same",
            0o644,
            None,
        );
        entry(
            &mut b,
            tar::EntryType::Symlink,
            "alias",
            b"",
            0o777,
            Some("real"),
        );
        entry(
            &mut b,
            tar::EntryType::Link,
            "h",
            b"",
            0o644,
            Some("alias/f"),
        );
        let data = b.into_inner().unwrap();
        untar_plain(&data, &dest).unwrap();
        assert_eq!(fs::metadata(dest.join("h")).unwrap().nlink(), 2);
        fs::remove_dir_all(&root).unwrap();
    }

    /// A PAX header declaring 1.5 GiB with a few KiB behind it: refused from its header.
    #[test]
    fn an_oversized_pax_header_is_refused_from_its_header() {
        let root = tmp();
        let mut h = tar::Header::new_ustar();
        h.set_path("x").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(1536 << 20);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend(vec![b'1'; 4096]);
        assert_eq!(
            untar_plain(&data, &root).unwrap_err(),
            "Error processing tar file: entry 'x' declares a 1610612736-byte PAX header, over the 1 MiB limit"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
