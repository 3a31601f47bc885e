//! `cp`: docker's copy semantics between a container (the archive API) and this machine,
//! streaming in both directions. The tar we build and unpack here is `crate::archive`'s.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::api::{query, seg, Api, Body, BodyWriter};
use super::gofmt::human_size3;
use super::Engine;
use crate::archive::{
    copy_info_source_path, copy_to, get_rebase_name, go_clean, go_dir, go_join, prepare_copy,
    preserve_trailing, split_path_dir_entry, write_tar, CopyInfo, UntarOptions, CHUNK,
};
use crate::cli::CpArgs;
use crate::goerror::go_io_error;
use crate::SkiffError;

// Go's os.FileMode bits, which the engine's path stat uses.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;
const MODE_DEVICE: u64 = 1 << 26;
const MODE_IRREGULAR: u64 = 1 << 19;

/// A failure docker reports with exit code 1: the engine's, or the copy's own (an
/// `ArchiveError` included), printed as its message alone.
fn fail(msg: impl std::fmt::Display) -> anyhow::Error {
    SkiffError::daemon(msg.to_string()).into()
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
            let mut w = BodyWriter::new(tx, counter, CHUNK);
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
            return Err(fail(e));
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn stat_header_decodes() {
        let st = decode_stat(Some("eyJuYW1lIjoidG1wIiwic2l6ZSI6NDA5NiwibW9kZSI6MjE0ODUzMjczNSwibXRpbWUiOiIyMDIzLTExLTE0VDIyOjEzOjIwWiIsImxpbmtUYXJnZXQiOiIifQ==")).unwrap();
        assert!(st.mode & MODE_DIR != 0);
        assert!(decode_stat(Some("!!")).is_err());
    }
}
