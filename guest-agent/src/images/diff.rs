//! A container's writable layer (its overlayfs upper dir) read back as an image layer: the
//! tar stream `commit` and a build step store, and docker's list of changes (`diff`).
//!
//! The inverse of `unpack.rs`: an overlay whiteout (a 0:0 character device) becomes a
//! `.wh.NAME` entry, an opaque directory (`trusted.overlay.opaque=y`) a `.wh..wh..opq` entry
//! inside it, files that share an inode become hard links, and extended attributes travel as
//! PAX `SCHILY.xattr.*` records — except overlayfs's own, which are the kernel's bookkeeping. A
//! directory renamed by overlayfs (`trusted.overlay.redirect`) or a metadata-only copy-up
//! (`trusted.overlay.metacopy`) would need its lower content; skiff mounts without those
//! features, so meeting one is an error rather than a silently incomplete layer.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tar::{EntryType, Header};

const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// One of docker's change kinds, as `GET /containers/{id}/changes` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    pub path: String,
    pub kind: u8,
}

/// What the walk meets in the upper dir.
#[derive(Clone, Copy)]
enum Node {
    Whiteout,
    Dir { opaque: bool },
    Other,
}

/// Walk `upper` depth-first in name order, calling `visit` with each entry's path relative to
/// it. An explicit stack: a tree can be deeper than a recursive walk's thread stack allows.
fn walk(
    upper: &Path,
    mut visit: impl FnMut(&Path, &fs::Metadata, Node) -> Result<()>,
) -> Result<()> {
    let mut stack: Vec<PathBuf> = list(upper, Path::new(""))?;
    stack.reverse();
    while let Some(rel) = stack.pop() {
        let path = upper.join(&rel);
        let md =
            fs::symlink_metadata(&path).with_context(|| format!("reading /{}", rel.display()))?;
        let ft = md.file_type();
        let node = if ft.is_char_device() && md.rdev() == 0 {
            Node::Whiteout
        } else if ft.is_dir() {
            Node::Dir {
                opaque: get_xattr(&path, "trusted.overlay.opaque")?.as_deref() == Some(b"y"),
            }
        } else {
            Node::Other
        };
        for name in ["trusted.overlay.redirect", "trusted.overlay.metacopy"] {
            if get_xattr(&path, name)?.is_some() {
                bail!(
                    "/{} carries the overlayfs attribute {name}: its content lives in a lower \
                     layer this walk does not read",
                    rel.display()
                );
            }
        }
        let is_dir = matches!(node, Node::Dir { .. });
        visit(&rel, &md, node)?;
        if is_dir {
            let mut children = list(upper, &rel)?;
            children.reverse();
            stack.extend(children);
        }
    }
    Ok(())
}

fn list(upper: &Path, rel: &Path) -> Result<Vec<PathBuf>> {
    let dir = upper.join(rel);
    let mut names: Vec<OsString> = fs::read_dir(&dir)
        .with_context(|| format!("listing /{}", rel.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .with_context(|| format!("listing /{}", rel.display()))?;
    names.sort();
    Ok(names.into_iter().map(|n| rel.join(n)).collect())
}

/// A container's upper dir with what it is read against.
pub struct Upper<'a> {
    pub dir: &'a Path,
    /// The image's layer trees, top first.
    pub lowers: &'a [PathBuf],
    /// Subtrees that are not the container's own changes (relative, e.g. `etc/hosts`): the
    /// mount points of files and filesystems the engine provides.
    pub skip: &'a [PathBuf],
}

type Entry = (PathBuf, fs::Metadata, Node);

/// The metadata of `rel` in the topmost of `lowers` (layer trees, top first) that has it, as
/// the diff compares a directory with the image's (a COPY made without an overlay, too).
pub fn lower_metadata(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    lowers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
}

impl Upper<'_> {
    fn in_lower(&self, rel: &Path) -> bool {
        self.lower_md(rel).is_some()
    }

    fn lower_md(&self, rel: &Path) -> Option<fs::Metadata> {
        lower_metadata(self.lowers, rel)
    }

    /// The entries that are changes, in path order: skipped subtrees left out, and a
    /// directory the image already has, with the same mode and owner, left out too when all
    /// it holds is skipped (docker keeps those mount points in a layer of their own, so
    /// `/etc` does not show as changed because `/etc/hosts` was mounted on; a directory
    /// whose mode or owner changed stays).
    fn entries(&self) -> Result<Vec<Entry>> {
        let mut all: Vec<Entry> = Vec::new();
        walk(self.dir, |rel, md, node| {
            if !self.skip.iter().any(|s| rel.starts_with(s)) {
                all.push((rel.to_path_buf(), md.clone(), node));
            }
            Ok(())
        })?;
        // In path order a directory's descendants follow it: one backward pass knows
        // whether each directory holds anything kept.
        let mut keep = vec![true; all.len()];
        let mut holding: HashSet<PathBuf> = HashSet::new();
        for i in (0..all.len()).rev() {
            let (rel, md, node) = &all[i];
            if let Node::Dir { opaque: false } = node {
                if !holding.contains(rel) {
                    let same = self.lower_md(rel).is_some_and(|l| {
                        l.is_dir()
                            && l.mode() == md.mode()
                            && l.uid() == md.uid()
                            && l.gid() == md.gid()
                    });
                    if same {
                        keep[i] = false;
                    }
                }
            }
            if keep[i] {
                if let Some(parent) = rel.parent() {
                    holding.insert(parent.to_path_buf());
                }
            }
        }
        Ok(all
            .into_iter()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e))
            .collect())
    }

    /// docker's changes: each entry as added (in no lower layer), modified (in one) or
    /// deleted (a whiteout).
    pub fn changes(&self) -> Result<Vec<Change>> {
        Ok(self
            .entries()?
            .into_iter()
            .map(|(rel, _, node)| {
                let kind = match node {
                    Node::Whiteout => ChangeKind::Deleted,
                    _ if self.in_lower(&rel) => ChangeKind::Modified,
                    _ => ChangeKind::Added,
                };
                Change {
                    path: format!("/{}", rel.display()),
                    kind: kind as u8,
                }
            })
            .collect())
    }

    /// Write the changes as a layer tar stream to `out`.
    pub fn write_layer<W: Write>(&self, out: W) -> Result<W> {
        let upper = self.dir;
        // Files are opened beneath this descriptor with no symlink followed: a running
        // container that swaps one of its directories for a link to `/` while the walk goes
        // (export, commit without pausing) cannot make it read the host's files.
        let root = fs::File::open(upper).with_context(|| format!("opening {}", upper.display()))?;
        let mut tar = tar::Builder::new(out);
        // Inodes already written, for hard links: (dev, ino) → first path.
        let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for (rel, md, node) in self.entries()? {
            let (rel, md) = (rel.as_path(), &md);
            let path = upper.join(rel);
            match node {
                Node::Whiteout => {
                    let name = rel
                        .file_name()
                        .ok_or_else(|| anyhow!("a whiteout without a name"))?;
                    let mut wh = OsString::from(".wh.");
                    wh.push(name);
                    let mut h = plain_header(EntryType::Regular, md);
                    h.set_mode(0o600);
                    h.set_uid(0);
                    h.set_gid(0);
                    tar.append_data(&mut h, rel.with_file_name(wh), io::empty())?;
                }
                Node::Dir { opaque } => {
                    append_xattrs(&mut tar, &path, rel)?;
                    let mut h = plain_header(EntryType::Directory, md);
                    tar.append_data(&mut h, rel, io::empty())?;
                    if opaque {
                        let mut h = plain_header(EntryType::Regular, md);
                        h.set_mode(0o600);
                        h.set_size(0);
                        tar.append_data(&mut h, rel.join(".wh..wh..opq"), io::empty())?;
                    }
                }
                Node::Other => {
                    let ft = md.file_type();
                    if md.nlink() > 1 && !ft.is_dir() {
                        if let Some(first) = inodes.get(&(md.dev(), md.ino())) {
                            let mut h = plain_header(EntryType::Link, md);
                            h.set_size(0);
                            tar.append_link(&mut h, rel, first)?;
                            continue;
                        }
                        inodes.insert((md.dev(), md.ino()), rel.to_path_buf());
                    }
                    append_xattrs(&mut tar, &path, rel)?;
                    if ft.is_file() {
                        let mut h = plain_header(EntryType::Regular, md);
                        h.set_size(md.len());
                        let file = open_beneath(&root, rel)
                            .with_context(|| format!("reading /{}", rel.display()))?;
                        let exact = Exact {
                            inner: file.take(md.len()),
                            left: md.len(),
                            rel,
                        };
                        tar.append_data(&mut h, rel, exact)?;
                    } else if ft.is_symlink() {
                        let target = fs::read_link(&path)
                            .with_context(|| format!("reading the link /{}", rel.display()))?;
                        let mut h = plain_header(EntryType::Symlink, md);
                        tar.append_link(&mut h, rel, target)?;
                    } else {
                        let kind = if ft.is_char_device() {
                            EntryType::Char
                        } else if ft.is_block_device() {
                            EntryType::Block
                        } else if ft.is_fifo() {
                            EntryType::Fifo
                        } else {
                            // A socket has no tar form; docker leaves them out too.
                            continue;
                        };
                        let mut h = plain_header(kind, md);
                        let dev = md.rdev();
                        h.set_device_major(libc::major(dev))?;
                        h.set_device_minor(libc::minor(dev))?;
                        tar.append_data(&mut h, rel, io::empty())?;
                    }
                }
            }
        }
        tar.finish().context("finishing the layer's tar stream")?;
        tar.into_inner().context("finishing the layer's tar stream")
    }
}

/// Open `rel` under `root` for reading, refusing any symlink on the way (openat2 with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), and only a regular file.
fn open_beneath(root: &fs::File, rel: &Path) -> io::Result<fs::File> {
    use rustix::fs::{OFlags, ResolveFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let file = fs::File::from(crate::openat2::open(root, rel, flags, resolve)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is no longer a regular file"));
    }
    Ok(file)
}

/// A file read for exactly the size its header announced: one that shrank while it was read
/// is an error, not a tar whose every later entry is misplaced.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    rel: &'a Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("/{} changed size while it was read", self.rel.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn plain_header(kind: EntryType, md: &fs::Metadata) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Write the entry's extended attributes (but overlayfs's) as a PAX header before it.
fn append_xattrs<W: Write>(tar: &mut tar::Builder<W>, path: &Path, rel: &Path) -> Result<()> {
    let mut body = Vec::new();
    for name in list_xattrs(path)? {
        let Ok(text) = std::str::from_utf8(&name) else {
            continue;
        };
        if text.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let Some(value) = get_xattr(path, text)? else {
            continue;
        };
        pax_record(&mut body, &format!("SCHILY.xattr.{text}"), &value);
    }
    if body.is_empty() {
        return Ok(());
    }
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    // Only the PAX body matters to readers; the name is informational, kept short.
    let shown: Vec<u8> = rel
        .as_os_str()
        .as_bytes()
        .iter()
        .take(80)
        .copied()
        .collect();
    let mut name = b"PaxHeaders/".to_vec();
    name.extend_from_slice(&shown);
    h.set_path(Path::new(OsStr::from_bytes(&name[..name.len().min(99)])))
        .context("naming a PAX header")?;
    h.set_cksum();
    tar.append(&h, &body[..])
        .context("writing extended attributes")?;
    Ok(())
}

/// A PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record, itself too.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest > len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| anyhow!("path has a NUL byte"))
}

fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: the buffer is valid for its length during the call.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => {
                return Err(anyhow::Error::new(err)
                    .context(format!("listing xattrs of {}", path.display())))
            }
        }
    }
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| anyhow!("xattr name has a NUL byte"))?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: pointers are valid for the given lengths during the call.
        let r =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 16, 0),
            _ => {
                return Err(anyhow::Error::new(err)
                    .context(format!("reading xattr {name} of {}", path.display())))
            }
        }
    }
}

/// The path bytes of `p` (for tests and callers building skip lists from text).
pub fn rel_path(text: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(
        text.trim_start_matches('/').as_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::unpack::{set_xattr, unpack_layer};
    use std::os::unix::fs::symlink;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn mknod_whiteout(path: &Path) {
        let c = cpath(path).unwrap();
        // SAFETY: c is a valid C string.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
    }

    #[test]
    fn an_upper_dir_becomes_a_layer_that_unpacks_to_the_same_tree() {
        if !is_root() {
            eprintln!("skipped: whiteouts and trusted xattrs need root");
            return;
        }
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        fs::create_dir_all(u.join("etc/opaque")).unwrap();
        fs::write(u.join("etc/opaque/kept"), b"k").unwrap();
        set_xattr(&u.join("etc/opaque"), "trusted.overlay.opaque", b"y").unwrap();
        fs::write(u.join("etc/hostname"), b"engine's").unwrap();
        fs::write(u.join("m"), b"c\n").unwrap();
        fs::hard_link(u.join("m"), u.join("m2")).unwrap();
        symlink("m", u.join("l")).unwrap();
        set_xattr(&u.join("m"), "user.note", b"v").unwrap();
        mknod_whiteout(&u.join("gone"));

        let skip = [rel_path("/etc/hostname")];
        let t = Upper {
            dir: u,
            lowers: &[],
            skip: &skip,
        }
        .write_layer(Vec::new())
        .unwrap();
        let names: Vec<String> = tar::Archive::new(&t[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
        assert!(
            names.contains(&"etc/opaque/.wh..wh..opq".to_string()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains("hostname")), "{names:?}");

        let out = tempfile::tempdir().unwrap();
        unpack_layer(&t[..], out.path(), "t").unwrap();
        let o = out.path();
        assert_eq!(fs::read(o.join("m")).unwrap(), b"c\n");
        assert_eq!(
            fs::metadata(o.join("m")).unwrap().ino(),
            fs::metadata(o.join("m2")).unwrap().ino()
        );
        assert_eq!(fs::read_link(o.join("l")).unwrap(), Path::new("m"));
        assert_eq!(
            get_xattr(&o.join("m"), "user.note").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            get_xattr(&o.join("etc/opaque"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        let gone = fs::symlink_metadata(o.join("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    }

    #[test]
    fn changes_are_added_modified_or_deleted_against_the_lower_layers() {
        if !is_root() {
            eprintln!("skipped: whiteouts need root");
            return;
        }
        let lower = tempfile::tempdir().unwrap();
        fs::create_dir_all(lower.path().join("etc")).unwrap();
        fs::write(lower.path().join("etc/passwd"), b"root").unwrap();
        fs::write(lower.path().join("old"), b"o").unwrap();
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir_all(upper.path().join("etc")).unwrap();
        fs::write(upper.path().join("etc/passwd"), b"root2").unwrap();
        fs::write(upper.path().join("etc/new"), b"n").unwrap();
        mknod_whiteout(&upper.path().join("old"));
        // Mount points the engine made: not changes, nor is /dev that holds only them.
        fs::create_dir_all(upper.path().join("dev")).unwrap();
        fs::write(upper.path().join("etc/hosts"), b"").unwrap();
        fs::create_dir_all(lower.path().join("run")).unwrap();
        fs::create_dir_all(upper.path().join("run")).unwrap();
        fs::write(upper.path().join("run/hidden"), b"").unwrap();
        let lowers = [lower.path().to_path_buf()];
        let skip = [
            rel_path("etc/hosts"),
            rel_path("dev"),
            rel_path("run/hidden"),
        ];
        let got = Upper {
            dir: upper.path(),
            lowers: &lowers,
            skip: &skip,
        }
        .changes()
        .unwrap();
        let shown: Vec<(String, u8)> = got.into_iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            shown,
            vec![
                ("/etc".to_string(), 0),
                ("/etc/new".to_string(), 1),
                ("/etc/passwd".to_string(), 0),
                ("/old".to_string(), 2),
            ]
        );
    }
}
