//! Unpacks one layer tar stream into its own directory, ready to be an overlayfs lower dir.
//!
//! Written by hand rather than with `tar::Archive::unpack` because a layer is not a plain
//! archive: OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) must become overlayfs whiteouts
//! (0:0 character devices, `trusted.overlay.opaque`), and every entry is hostile input that
//! must land inside the layer directory and nowhere else. The directory is private to this
//! unpack (a temporary name until the layer is verified), so checking each parent with
//! `lstat` is race-free: nobody else writes there.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use skiff_common::targuard::{HeaderTooLarge, TarGuard};
use tar::{Archive, EntryType};

use super::tarsplit::{Recorder, Recording};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What unpacking a layer produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Sum of the entries' sizes, as docker counts a layer's size.
    pub size: u64,
    pub entries: u64,
}

/// Unpack the tar stream `input` into `dest` (an existing, empty directory).
/// `layer` names the layer in errors.
pub fn unpack_layer<R: Read>(input: R, dest: &Path, layer: &str) -> Result<UnpackStats> {
    unpack(input, dest, layer, None)
}

/// Unpack as [`unpack_layer`], reading `input` to its end, and write the recipe that rebuilds
/// the exact stream from the tree to `recipe` (see `tarsplit`). The flag says whether the
/// stream can be rebuilt (if not, no recipe is left).
pub fn unpack_layer_recorded<R: Read>(
    input: R,
    dest: &Path,
    layer: &str,
    recipe: &Path,
) -> Result<(UnpackStats, bool)> {
    let recording = Recording::create(recipe)?;
    let stats = unpack(input, dest, layer, Some(recording.clone()))?;
    let rebuildable = recording
        .borrow_mut()
        .finish()
        .with_context(|| format!("layer {layer}"))?;
    Ok((stats, rebuildable))
}

fn unpack<R: Read>(
    input: R,
    dest: &Path,
    layer: &str,
    recording: Option<Rc<RefCell<Recording>>>,
) -> Result<UnpackStats> {
    // The tar crate would read a long name or PAX header whole into memory, whatever size
    // it declares: the guard refuses one over 1 MiB from its header. The recorder sits above
    // the guard, where positions are the tar crate's own.
    let mut archive = Archive::new(Recorder {
        inner: TarGuard::new(input),
        recording: recording.clone(),
    });
    let mut unpacker = Unpacker {
        root: dest.to_path_buf(),
        known_dirs: HashSet::new(),
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
        writers: Writers::new(WRITER_THREADS),
        recording,
    };
    let entries = archive
        .entries()
        .with_context(|| format!("layer {layer}: not a tar stream"))?;
    let named = |e: anyhow::Error, shown: &str| match e.downcast_ref::<WriterFailure>() {
        // A writer thread's failure names its own entry.
        Some(_) => anyhow!("layer {layer}: {e}"),
        None => e.context(format!("layer {layer}: entry {shown:?}")),
    };
    for entry in entries {
        let mut entry = entry.map_err(|e| match HeaderTooLarge::find(&e) {
            // It names the entry itself.
            Some(refusal) => anyhow!("layer {layer}: {refusal}"),
            None => anyhow::Error::new(e).context(format!("layer {layer}: reading the tar stream")),
        })?;
        let raw_name = entry.path_bytes().into_owned();
        let shown = shown_name(&raw_name);
        unpacker
            .entry(&mut entry, &raw_name)
            .map_err(|e| named(e, &shown))?;
    }
    unpacker.finish().map_err(|e| named(e, "(end)"))?;
    if unpacker.recording.is_some() {
        // What follows the end-of-archive blocks is part of the stream (and of its digest).
        io::copy(&mut archive.into_inner(), &mut io::sink())
            .with_context(|| format!("layer {layer}: reading past the tar end"))?;
    }
    Ok(unpacker.stats)
}

/// An entry's name as errors show it: a hostile name can be tens of KiB, so only its start
/// and end are kept.
fn shown_name(raw: &[u8]) -> String {
    const KEEP: usize = 60;
    let text = String::from_utf8_lossy(raw);
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 2 * KEEP {
        return text.into_owned();
    }
    let head: String = chars[..KEEP].iter().collect();
    let tail: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{head}…{tail} ({} bytes)", raw.len())
}

/// Files up to this size are handed to the writer threads; bigger ones are streamed inline.
const SMALL_FILE: u64 = 1 << 20;
/// Creating files is mostly kernel time; two writers overlap it with reading the stream.
const WRITER_THREADS: usize = 2;

/// A small file read from the stream, to be created by a writer thread.
struct FileJob {
    rel: PathBuf,
    path: PathBuf,
    data: Vec<u8>,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
}

#[derive(Debug)]
struct WriterFailure(String);

impl std::fmt::Display for WriterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WriterFailure {}

#[derive(Default)]
struct WriterState {
    outstanding: usize,
    error: Option<String>,
}

/// A small pool of threads that create files, so that file creation (kernel time) runs beside
/// decompressing and parsing the stream. Paths handed out and not yet written are tracked:
/// any entry that touches one of them waits for the writers first, so the stream's order is
/// kept wherever it matters (duplicates, hardlinks, replaced directories).
struct Writers {
    tx: Option<std::sync::mpsc::SyncSender<FileJob>>,
    state: std::sync::Arc<(std::sync::Mutex<WriterState>, std::sync::Condvar)>,
    handles: Vec<std::thread::JoinHandle<()>>,
    in_flight: HashSet<PathBuf>,
}

impl Writers {
    fn new(n: usize) -> Self {
        use std::sync::{Arc, Condvar, Mutex};
        let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(128);
        let rx = Arc::new(Mutex::new(rx));
        let state = Arc::new((Mutex::new(WriterState::default()), Condvar::new()));
        let handles = (0..n)
            .map(|_| {
                let rx = rx.clone();
                let state = state.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = write_small_file(&job);
                    let (lock, cv) = &*state;
                    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = result {
                        st.error.get_or_insert_with(|| {
                            let name = job.rel.as_os_str().as_bytes();
                            format!("entry {:?}: {e:#}", shown_name(name))
                        });
                    }
                    st.outstanding -= 1;
                    cv.notify_all();
                })
            })
            .collect();
        Writers {
            tx: Some(tx),
            state,
            handles,
            in_flight: HashSet::new(),
        }
    }

    fn submit(&mut self, job: FileJob) -> Result<()> {
        self.in_flight.insert(job.rel.clone());
        self.state
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outstanding += 1;
        let tx = self.tx.as_ref().ok_or_else(|| anyhow!("writers stopped"))?;
        tx.send(job)
            .map_err(|_| anyhow!("the writer threads stopped"))
    }

    /// Wait until every file handed out is written; report the first failure.
    fn flush(&mut self) -> Result<()> {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        while st.outstanding > 0 {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        self.in_flight.clear();
        match st.error.take() {
            Some(e) => Err(WriterFailure(e).into()),
            None => Ok(()),
        }
    }

    /// Wait for the writers if `rel` (or, for a directory, anything under it) is pending.
    fn settle(&mut self, rel: &Path, subtree: bool) -> Result<()> {
        let pending = if subtree {
            self.in_flight.iter().any(|p| p.starts_with(rel))
        } else {
            self.in_flight.contains(rel)
        };
        if pending {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn write_small_file(job: &FileJob) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&job.path)
        .context("creating the file")?;
    file.write_all(&job.data).context("writing the file")?;
    finish_file(&file, job.uid, job.gid, job.mode, job.mtime)
}

/// Owner, then mode (chown clears setuid/setgid), then mtime.
fn finish_file(file: &fs::File, uid: u32, gid: u32, mode: u32, mtime: u64) -> Result<()> {
    std::os::unix::fs::fchown(file, Some(uid), Some(gid)).context("setting the owner")?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .context("setting the mode")?;
    set_times_fd(file, mtime)
}

struct Unpacker {
    root: PathBuf,
    /// Relative directories already checked to be real directories inside the root.
    known_dirs: HashSet<PathBuf>,
    /// Directory mtimes applied at the end, since writing inside a directory changes its mtime.
    dir_times: Vec<(PathBuf, u64)>,
    stats: UnpackStats,
    writers: Writers,
    recording: Option<Rc<RefCell<Recording>>>,
}

/// Turn an entry name into a path relative to the layer root, refusing anything that climbs out.
/// A leading `/` is taken relative to the root, as docker does.
pub fn sanitize(raw: &[u8]) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for comp in Path::new(OsStr::from_bytes(raw)).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => bail!("path climbs out of the layer with '..'"),
            Component::Prefix(_) => bail!("path has a prefix"),
        }
    }
    Ok(out)
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, raw_name: &[u8]) -> Result<()> {
        let rel = sanitize(raw_name)?;
        let Some(name) = rel.file_name().map(|n| n.to_owned()) else {
            // The root itself ("./"): the layer directory's own metadata is ours.
            return Ok(());
        };
        let parent_rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let header = entry.header().clone();
        self.stats.entries += 1;

        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE_MARKER.as_bytes() {
            let parent = self.ensure_dir(&parent_rel)?;
            set_xattr(&parent, "trusted.overlay.opaque", b"y")
                .context("marking the directory opaque")?;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                bail!("whiteout names no valid file");
            }
            let parent = self.ensure_dir(&parent_rel)?;
            let target = parent.join(OsStr::from_bytes(hidden));
            self.remove_existing(&parent_rel.join(OsStr::from_bytes(hidden)), &target)?;
            mknod(&target, libc::S_IFCHR, 0).context("creating the overlay whiteout")?;
            return Ok(());
        }

        let parent = self.ensure_dir(&parent_rel)?;
        let path = parent.join(&name);
        let mode = header.mode().context("bad mode")? & 0o7777;
        let uid = header.uid().context("bad uid")? as u32;
        let gid = header.gid().context("bad gid")? as u32;
        let mtime = header.mtime().unwrap_or(0);

        let kind = header.entry_type();
        match kind {
            EntryType::Directory => {
                self.writers.settle(&rel, false)?;
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        self.remove_existing(&rel, &path)?;
                        fs::create_dir(&path).context("creating the directory")?;
                    }
                    Err(_) => fs::create_dir(&path).context("creating the directory")?,
                }
                lchown(&path, uid, gid)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .context("setting the directory mode")?;
                self.known_dirs.insert(rel.clone());
                self.dir_times.push((path.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                self.remove_existing(&rel, &path)?;
                let size = header.size().unwrap_or(0);
                if let Some(r) = &self.recording {
                    r.borrow_mut().file(entry.raw_file_position(), size, &rel);
                }
                if size <= SMALL_FILE && !has_xattrs(entry)? {
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).context("reading the file")?;
                    if data.len() as u64 != size {
                        bail!(
                            "the layer ends inside this file ({} of {size} bytes)",
                            data.len()
                        );
                    }
                    self.stats.size += size;
                    self.writers.submit(FileJob {
                        rel: rel.clone(),
                        path,
                        data,
                        uid,
                        gid,
                        mode,
                        mtime,
                    })?;
                    return Ok(());
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .context("creating the file")?;
                let n = io::copy(entry, &mut file).context("writing the file")?;
                if n != size {
                    bail!("the layer ends inside this file ({n} of {size} bytes)");
                }
                self.stats.size += n;
                finish_file(&file, uid, gid, mode, mtime)?;
            }
            EntryType::Symlink => {
                self.remove_existing(&rel, &path)?;
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("symlink without a target"))?;
                symlink(OsStr::from_bytes(&target), &path).context("creating the symlink")?;
                lchown(&path, uid, gid)?;
                set_times_path(&path, mtime)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("hardlink without a target"))?;
                let target_rel = sanitize(&target).context("hardlink target")?;
                let target_parent = target_rel.parent().unwrap_or(Path::new(""));
                if !self.is_known_dir(target_parent)? {
                    bail!("hardlink target {:?} is not inside this layer", target_rel);
                }
                self.writers.settle(&target_rel, false)?;
                let source = self.root.join(&target_rel);
                let meta = fs::symlink_metadata(&source).with_context(|| {
                    format!("hardlink target {target_rel:?} is not in this layer")
                })?;
                if meta.is_dir() {
                    bail!("hardlink target {target_rel:?} is a directory");
                }
                if source == path {
                    return Ok(());
                }
                self.remove_existing(&rel, &path)?;
                // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never what it points at.
                fs::hard_link(&source, &path).context("creating the hardlink")?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.remove_existing(&rel, &path)?;
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let file_type = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                mknod(&path, file_type | mode, libc::makedev(major, minor))
                    .context("creating the device node")?;
                lchown(&path, uid, gid)?;
                // mknod applies the umask; the layer's mode is what counts.
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .context("setting the mode")?;
                set_times_path(&path, mtime)?;
            }
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => return Ok(()),
            other => bail!("unsupported tar entry type {other:?}"),
        }
        self.apply_xattrs(entry, &path)?;
        if kind != EntryType::Directory {
            self.forget_dirs_under(&rel);
        }
        Ok(())
    }

    /// Copy the entry's extended attributes, except the overlayfs ones: only our whiteout
    /// conversion may set those, or a layer could forge whiteouts and redirects.
    fn apply_xattrs<R: Read>(&self, entry: &mut tar::Entry<R>, path: &Path) -> Result<()> {
        let Some(exts) = entry.pax_extensions().context("bad PAX header")? else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.context("bad PAX record")?;
            let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            let allowed = name.starts_with(b"user.") || name == b"security.capability";
            if allowed {
                let name = String::from_utf8_lossy(name).into_owned();
                set_xattr(path, &name, ext.value_bytes())
                    .with_context(|| format!("setting xattr {name}"))?;
            }
        }
        Ok(())
    }

    /// Make sure `rel` is a real directory inside the root (creating missing ones), and return
    /// its full path. A symlink on the way is refused: following it could leave the layer.
    fn ensure_dir(&mut self, rel: &Path) -> Result<PathBuf> {
        if rel.as_os_str().is_empty() || self.known_dirs.contains(rel) {
            return Ok(self.root.join(rel));
        }
        let mut cur = PathBuf::new();
        for comp in rel.components() {
            cur.push(comp);
            if self.known_dirs.contains(&cur) {
                continue;
            }
            let full = self.root.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    bail!("parent {cur:?} is a symlink; refusing to write through it")
                }
                Ok(_) => bail!("parent {cur:?} is not a directory"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).with_context(|| format!("creating parent {cur:?}"))?;
                    fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "checking parent {:?}",
                            shown_name(cur.as_os_str().as_bytes())
                        )
                    })
                }
            }
            self.known_dirs.insert(cur.clone());
        }
        Ok(self.root.join(rel))
    }

    /// Like `ensure_dir` without creating anything: true when `rel` is a real directory.
    fn is_known_dir(&mut self, rel: &Path) -> Result<bool> {
        if rel.as_os_str().is_empty() || self.known_dirs.contains(rel) {
            return Ok(true);
        }
        let mut cur = PathBuf::new();
        for comp in rel.components() {
            cur.push(comp);
            match fs::symlink_metadata(self.root.join(&cur)) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(false),
            }
        }
        self.known_dirs.insert(rel.to_path_buf());
        Ok(true)
    }

    /// A later entry replaces an earlier one of the same name (duplicates, file↔dir swaps).
    fn remove_existing(&mut self, rel: &Path, path: &Path) -> Result<()> {
        self.writers.settle(rel, false)?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                if let Some(r) = &self.recording {
                    r.borrow_mut().replaced(rel, true);
                }
                // Writers may still be filling it.
                self.writers.settle(rel, true)?;
                fs::remove_dir_all(path).context("replacing an earlier directory")?;
                self.forget_dirs_under(rel);
            }
            Ok(_) => {
                if let Some(r) = &self.recording {
                    r.borrow_mut().replaced(rel, false);
                }
                fs::remove_file(path).context("replacing an earlier entry")?
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn forget_dirs_under(&mut self, rel: &Path) {
        if self.known_dirs.iter().any(|d| d.starts_with(rel)) {
            self.known_dirs.retain(|d| !d.starts_with(rel));
            self.dir_times
                .retain(|(p, _)| !p.starts_with(self.root.join(rel)));
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.writers.flush()?;
        for (path, mtime) in self.dir_times.iter().rev() {
            set_times_path(path, *mtime)?;
        }
        Ok(())
    }
}

/// Whether an entry carries extended attributes we would set (then it is written inline).
fn has_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> Result<bool> {
    let Some(exts) = entry.pax_extensions().context("bad PAX header")? else {
        return Ok(false);
    };
    for ext in exts {
        if ext
            .context("bad PAX record")?
            .key_bytes()
            .starts_with(b"SCHILY.xattr.")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| anyhow!("path has a NUL byte"))
}

fn lchown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).context("setting the owner")
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated path; mknod does not retain it.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    if rc != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| anyhow!("xattr name has a NUL byte"))?;
    // SAFETY: pointers are valid for the given lengths during the call.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

fn timespecs(mtime: u64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

fn set_times_fd(file: &fs::File, mtime: u64) -> Result<()> {
    use std::os::fd::AsRawFd;
    let ts = timespecs(mtime);
    // SAFETY: fd is open for the duration of the call, ts points at two timespecs.
    let rc = unsafe { libc::futimens(file.as_raw_fd(), ts.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("setting the mtime");
    }
    Ok(())
}

fn set_times_path(path: &Path, mtime: u64) -> Result<()> {
    let c = cpath(path)?;
    let ts = timespecs(mtime);
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps this on the entry itself.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("setting the mtime");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// (name, type, data, link target, mode)
    type Entry<'a> = (&'a str, EntryType, &'a [u8], Option<&'a str>, u32);

    fn tar_of(entries: &[Entry]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // set_path refuses "..", so write the raw name to build hostile entries.
            let raw = name.as_bytes();
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..raw.len()].copy_from_slice(raw);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !is_root() {
            eprintln!("skipped: needs root for mknod and trusted xattrs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("etc/", EntryType::Directory, b"", None, 0o755),
            ("etc/.wh.gone", EntryType::Regular, b"", None, 0o644),
            (
                "opt/opaque/.wh..wh..opq",
                EntryType::Regular,
                b"",
                None,
                0o644,
            ),
            ("opt/opaque/new", EntryType::Regular, b"new", None, 0o644),
        ]);
        let stats = unpack_layer(&t[..], dir.path(), "test").unwrap();
        let wh = fs::symlink_metadata(dir.path().join("etc/gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        let mut buf = [0u8; 4];
        let c = cpath(&dir.path().join("opt/opaque")).unwrap();
        let n = CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid pointers for the call.
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(len, 1);
        assert_eq!(buf[0], b'y');
        assert_eq!(stats.size, 3);
    }

    #[test]
    fn device_nodes_fifos_and_symlinks_keep_mode_and_mtime() {
        if !is_root() {
            eprintln!("skipped: needs root for mknod");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("null", EntryType::Char, b"", None, 0o666),
            ("fifo", EntryType::Fifo, b"", None, 0o622),
            ("link", EntryType::Symlink, b"", Some("/nowhere"), 0o777),
        ]);
        unpack_layer(&t[..], dir.path(), "L8").unwrap();
        let null = fs::symlink_metadata(dir.path().join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.mode() & 0o7777, 0o666, "umask must not apply");
        assert_eq!(null.mtime(), 1_700_000_000);
        let fifo = fs::symlink_metadata(dir.path().join("fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o622);
        let link = fs::symlink_metadata(dir.path().join("link")).unwrap();
        assert_eq!(link.mtime(), 1_700_000_000);
    }

    #[test]
    fn many_small_files_through_the_writers_match_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..500).map(|i| format!("d{}/f{i}", i % 7)).collect();
        let bodies: Vec<Vec<u8>> = (0..500).map(|i| vec![(i % 251) as u8; i * 37]).collect();
        let mut entries: Vec<Entry> = names
            .iter()
            .zip(&bodies)
            .map(|(n, b)| (n.as_str(), EntryType::Regular, b.as_slice(), None, 0o640))
            .collect();
        // A duplicate of a file still being written, and a hardlink to another.
        entries.push(("d1/f1", EntryType::Regular, b"again", None, 0o600));
        entries.push(("hl", EntryType::Link, b"", Some("d2/f2"), 0o640));
        let t = tar_of(&entries);
        let stats = unpack_layer(&t[..], dir.path(), "L9").unwrap();
        for (i, (n, b)) in names.iter().zip(&bodies).enumerate() {
            let got = fs::read(dir.path().join(n)).unwrap();
            if i == 1 {
                assert_eq!(got, b"again");
            } else {
                assert_eq!(&got, b, "{n}");
                assert_eq!(
                    fs::metadata(dir.path().join(n)).unwrap().mode() & 0o7777,
                    0o640
                );
            }
        }
        assert_eq!(fs::read(dir.path().join("hl")).unwrap(), bodies[2]);
        assert_eq!(stats.entries, 502);
    }

    #[test]
    fn parent_dir_escape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("../evil", EntryType::Regular, b"x", None, 0o644)]);
        let err = unpack_layer(&t[..], &dir.path().join("."), "L1").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("L1") && msg.contains("../evil"), "{msg}");
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn write_through_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let link_target = outside.path().to_str().unwrap().to_string();
        let t = tar_of(&[
            ("escape", EntryType::Symlink, b"", Some(&link_target), 0o777),
            ("escape/pwned", EntryType::Regular, b"x", None, 0o644),
        ]);
        let err = unpack_layer(&t[..], dir.path(), "L2").unwrap_err();
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
        assert!(!outside.path().join("pwned").exists());
    }

    #[test]
    fn absolute_names_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("/abs-file", EntryType::Regular, b"abc", None, 0o640)]);
        unpack_layer(&t[..], dir.path(), "L3").unwrap();
        let m = fs::metadata(dir.path().join("abs-file")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
    }

    #[test]
    fn hardlink_outside_is_refused_and_inside_works() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("a", EntryType::Regular, b"same", None, 0o644),
            ("b", EntryType::Link, b"", Some("a"), 0o644),
        ]);
        unpack_layer(&t[..], dir.path(), "L4").unwrap();
        let a = fs::metadata(dir.path().join("a")).unwrap();
        let b = fs::metadata(dir.path().join("b")).unwrap();
        assert_eq!(a.ino(), b.ino());

        let dir2 = tempfile::tempdir().unwrap();
        let t = tar_of(&[("b", EntryType::Link, b"", Some("../../etc/passwd"), 0o644)]);
        assert!(unpack_layer(&t[..], dir2.path(), "L5").is_err());
        assert!(!dir2.path().join("b").exists());
    }

    #[test]
    fn later_duplicate_wins_and_file_dir_swap_works() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("x", EntryType::Regular, b"first", None, 0o644),
            ("x", EntryType::Regular, b"second", None, 0o644),
            ("d", EntryType::Directory, b"", None, 0o755),
            ("d/in", EntryType::Regular, b"1", None, 0o644),
            ("d", EntryType::Regular, b"now a file", None, 0o644),
        ]);
        unpack_layer(&t[..], dir.path(), "L6").unwrap();
        assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"second");
        assert_eq!(fs::read(dir.path().join("d")).unwrap(), b"now a file");
    }

    /// A header block declaring `size` bytes of `kind`, and then only a few KiB: a reader
    /// that believes the header would wait for (or allocate) 1.5 GiB.
    fn huge_extension(kind: EntryType, name: &[u8], size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend(vec![b'7'; 4096]);
        t
    }

    #[test]
    fn oversized_pax_and_long_name_headers_are_refused_from_the_header() {
        for (kind, what) in [
            (EntryType::XHeader, "PAX header"),
            (EntryType::GNULongName, "GNU long name"),
            (EntryType::GNULongLink, "GNU long link name"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let t = huge_extension(kind, b"x", 1536 << 20);
            let err = unpack_layer(&t[..], dir.path(), "sha256:feed").unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                format!(
                    "layer sha256:feed: entry 'x' declares a 1610612736-byte {what}, over the 1 MiB limit"
                )
            );
        }
    }

    /// Names over 100 bytes (GNU long names and links, PAX paths) and PAX xattrs: the
    /// guard lets them through.
    #[test]
    fn long_names_and_pax_xattrs_still_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/file", "d".repeat(150));
        let pax_path = format!("{}/paxfile", "p".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        let owned = |mut h: tar::Header| {
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h
        };
        let mut h = owned(tar::Header::new_gnu());
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
        let mut h = owned(tar::Header::new_gnu());
        h.set_mode(0o777);
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", &long).unwrap();
        let record = |k: &str, v: &str| {
            let rest = k.len() + v.len() + 3;
            let mut n = rest + 1;
            while n != rest + n.to_string().len() {
                n = rest + n.to_string().len();
            }
            format!("{n} {k}={v}\n")
        };
        let pax = format!(
            "{}{}",
            record("path", &pax_path),
            record("SCHILY.xattr.user.skiff", "kept")
        );
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/paxfile").unwrap();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(pax.len() as u64);
        h.set_cksum();
        b.append(&h, pax.as_bytes()).unwrap();
        let mut h = owned(tar::Header::new_ustar());
        h.set_path("short").unwrap();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(3);
        h.set_cksum();
        b.append(&h, &b"pax"[..]).unwrap();
        let t = b.into_inner().unwrap();

        let stats = unpack_layer(&t[..], dir.path(), "L10").unwrap();
        assert_eq!(stats.entries, 3);
        assert_eq!(fs::read(dir.path().join(&long)).unwrap(), b"hello");
        assert_eq!(
            fs::read_link(dir.path().join("link")).unwrap(),
            Path::new(&long)
        );
        let paxfile = dir.path().join(&pax_path);
        assert_eq!(fs::read(&paxfile).unwrap(), b"pax");
        let mut buf = [0u8; 16];
        let c = cpath(&paxfile).unwrap();
        let n = CString::new("user.skiff").unwrap();
        // SAFETY: valid pointers for the call.
        let len =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..len.max(0) as usize], b"kept");
    }

    #[test]
    fn truncated_tar_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_of(&[("big", EntryType::Regular, &[7u8; 4096], None, 0o644)]);
        let cut = &t[..1024];
        assert!(unpack_layer(cut, dir.path(), "L7").is_err());
    }
}
