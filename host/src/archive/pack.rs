//! The archive we upload: a local file or tree as go-archive's TarResourceRebase writes it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::CHUNK;

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
    append_special(b, h, name, md)
}

/// A fifo or device node as its header alone; a socket is skipped (Go's tar refuses them,
/// go-archive leaves them out).
pub fn append_special<W: Write>(
    b: &mut tar::Builder<W>,
    mut h: tar::Header,
    name: &str,
    md: &fs::Metadata,
) -> io::Result<()> {
    let ft = md.file_type();
    let kind = if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else {
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
pub struct PadTo<R> {
    inner: R,
    left: u64,
}

impl<R: Read> PadTo<R> {
    pub fn new(inner: R, size: u64) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shrunk_file_is_padded_to_its_header_size() {
        let mut out = Vec::new();
        PadTo::new(&b"ab"[..], 5).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab\0\0\0");
        let mut out = Vec::new();
        PadTo::new((&b"abcdef"[..]).take(3), 3)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn children_of_the_top_dot_keep_their_dot() {
        assert_eq!(child_name(".", "a"), "./a");
        assert_eq!(child_name("top", "a"), "top/a");
    }
}
