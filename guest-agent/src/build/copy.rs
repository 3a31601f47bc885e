//! COPY and ADD: which files a step takes (from the build context, another stage or an
//! image), the hash the build cache compares them by, and the tar stream that places them at
//! their destination with docker's rules.
//!
//! Paths are resolved inside the tree they come from: a symlink in a context or an image is
//! followed as the container would see it (its root is the tree's root), never out of it. The
//! stream is then unpacked into the step's root filesystem by the engine's chrooted archive
//! helper (the one `docker cp` uses), so nothing is ever written through a path the image or
//! the context controls.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

/// How many symlinks one path may pass through, as Linux's own limit.
const MAX_LINKS: usize = 40;

/// Resolve `path` inside `root` as a process chrooted there would, following symlinks
/// (absolute ones from `root`), except the last component when `follow_last` is false.
/// Returns the host path, which may not exist (its parent does or did).
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = Vec::new();
    push_components(&mut pending, Path::new(path));
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(comp) = pending.pop() {
        let name = comp.as_os_str();
        if name == ".." {
            cur.pop();
            continue;
        }
        let candidate = cur.join(name);
        let is_last = pending.is_empty();
        match fs::symlink_metadata(root.join(&candidate)) {
            Ok(md) if md.file_type().is_symlink() && (follow_last || !is_last) => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("too many levels of symbolic links in {path}");
                }
                let target = fs::read_link(root.join(&candidate))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            _ => cur = candidate,
        }
    }
    Ok(root.join(cur))
}

/// Push `p`'s components onto a stack so that the first is popped first.
fn push_components(stack: &mut Vec<PathBuf>, p: &Path) {
    let comps: Vec<PathBuf> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

/// Go's `filepath.Match` on one path: `*` and `?` do not cross `/`, `[…]` classes with `^`
/// or `!` negation and ranges, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let mut lo = p[i];
            if lo == '\\' {
                i += 1;
                lo = *p.get(i)?;
            }
            let mut hi = lo;
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                hi = p[i + 2];
                if hi == '\\' {
                    hi = *p.get(i + 3)?;
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 1;
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i < n.len() && n[i] == '/' {
                        break;
                    }
                }
                false
            }
            Some('?') => !n.is_empty() && n[0] != '/' && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&'\0'))) {
                (Some(c), Some((true, used))) if *c != '/' => go(&p[1 + used..], &n[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && go(&p[2..], &n[1..]),
            Some(c) => !n.is_empty() && n[0] == *c && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One source of a COPY: the host path of what it names in its tree, and the name it had.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub shown: String,
}

/// The sources a COPY names, resolved in `root` (the context or another image's tree):
/// wildcards matched against the tree, each source checked to exist.
pub fn find_sources(root: &Path, words: &[String], from_context: bool) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for w in words {
        let clean = w.trim_start_matches('/');
        if has_wildcards(clean) {
            let mut found = Vec::new();
            walk_names(root, Path::new(""), &mut |rel| {
                if glob_match(clean.trim_end_matches('/'), &rel.to_string_lossy()) {
                    found.push(rel.to_path_buf());
                }
            })?;
            if found.is_empty() {
                bail!("{}", not_found(w, from_context));
            }
            found.sort();
            for rel in found {
                // A match may be a symlink: followed inside the tree as a named source is.
                let shown = rel.to_string_lossy().into_owned();
                let path = resolve_in_root(root, &shown, true)?;
                if fs::symlink_metadata(&path).is_err() {
                    bail!("{}", not_found(&shown, from_context));
                }
                out.push(Source { path, shown });
            }
            continue;
        }
        let path = resolve_in_root(root, clean, true)?;
        if fs::symlink_metadata(&path).is_err() {
            bail!("{}", not_found(w, from_context));
        }
        out.push(Source {
            path,
            shown: clean.to_string(),
        });
    }
    Ok(out)
}

fn not_found(word: &str, from_context: bool) -> String {
    if from_context {
        format!(
            "COPY failed: file not found in build context or excluded by .dockerignore: stat {word}: file does not exist"
        )
    } else {
        format!("COPY failed: stat {word}: file does not exist")
    }
}

/// Every path under `dir` (relative to `base`), directories before their contents.
fn walk_names(base: &Path, rel: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    let dir = base.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in names {
        let child = rel.join(&n);
        f(&child);
        if fs::symlink_metadata(base.join(&child)).is_ok_and(|m| m.is_dir()) {
            walk_names(base, &child, f)?;
        }
    }
    Ok(())
}

/// Ownership and mode a COPY gives what it writes.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub uid: u32,
    pub gid: u32,
    /// `--chmod`: replaces the permission bits of files and directories copied.
    pub mode: Option<u32>,
}

/// One entry to write: where it comes from and its name under the destination.
struct Item {
    from: PathBuf,
    to: PathBuf,
}

/// What a COPY will write, in order: for a directory source its contents (not itself) under
/// the destination, for anything else the destination path itself or a name inside it.
fn plan(sources: &[Source], dest: &Path, dest_is_dir: bool) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for s in sources {
        let md = fs::symlink_metadata(&s.path)
            .with_context(|| format!("reading the COPY source {}", s.shown))?;
        if md.is_dir() {
            walk_names(&s.path, Path::new(""), &mut |rel| {
                items.push(Item {
                    from: s.path.join(rel),
                    to: dest.join(rel),
                });
            })?;
        } else if dest_is_dir {
            let name = s
                .path
                .file_name()
                .ok_or_else(|| anyhow!("COPY source {} has no name", s.shown))?;
            items.push(Item {
                from: s.path.clone(),
                to: dest.join(name),
            });
        } else {
            items.push(Item {
                from: s.path.clone(),
                to: dest.to_path_buf(),
            });
        }
    }
    Ok(items)
}

/// The cache's view of the sources: each entry's name, type, mode, size, link target and
/// content, not its times (a checkout's mtimes change without its files changing). Returns
/// docker's `file:`, `dir:` or `multi:` form.
pub fn sources_digest(sources: &[Source]) -> Result<String> {
    let mut h = Sha256::new();
    let mut add = |rel: &Path, path: &Path| -> Result<()> {
        let md = fs::symlink_metadata(path)?;
        h.update(rel.as_os_str().as_bytes());
        h.update([0]);
        h.update(format!("{:o} {} ", md.mode(), md.len()).as_bytes());
        if md.file_type().is_symlink() {
            h.update(fs::read_link(path)?.as_os_str().as_bytes());
        } else if md.is_file() {
            let mut f = fs::File::open(path)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update([0]);
        Ok(())
    };
    for s in sources {
        add(Path::new(&s.shown), &s.path)?;
        if fs::symlink_metadata(&s.path).is_ok_and(|m| m.is_dir()) {
            let mut rels = Vec::new();
            walk_names(&s.path, Path::new(""), &mut |rel| {
                rels.push(rel.to_path_buf())
            })?;
            for rel in rels {
                add(&rel, &s.path.join(&rel))?;
            }
        }
    }
    let kind = match sources {
        [one] if fs::symlink_metadata(&one.path).is_ok_and(|m| m.is_dir()) => "dir",
        [_] => "file",
        _ => "multi",
    };
    Ok(format!("{kind}:{}", hex::encode(h.finalize())))
}

/// One entry of a COPY's tar stream, in stream order: where it lands (relative to the root)
/// and the header the stream gives it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub to: PathBuf,
    pub what: What,
    /// Permission bits as the header carries them (`--chmod`'s for files and directories).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

#[derive(Debug, Clone)]
pub enum What {
    Dir,
    File { from: PathBuf, size: u64 },
    Symlink(PathBuf),
}

/// The entries of the stream that places `sources` at `dest` (relative to the root, e.g.
/// `app/src`), as `write_copy` writes them.
/// `make_dest` adds the destination directory itself (when the image lacks it: an existing
/// one keeps its owner and mode).
pub fn plan_copy(
    sources: &[Source],
    dest: &Path,
    dest_is_dir: bool,
    make_dest: bool,
    place: Placement,
) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    if dest_is_dir && make_dest && !dest.as_os_str().is_empty() {
        // The destination directory itself, made as docker makes it.
        out.push(Planned {
            to: dest.to_path_buf(),
            what: What::Dir,
            mode: 0o755,
            uid: place.uid,
            gid: place.gid,
            mtime: now_secs(),
        });
    }
    for item in plan(sources, dest, dest_is_dir)? {
        let md = fs::symlink_metadata(&item.from)
            .with_context(|| format!("reading {}", item.from.display()))?;
        let ft = md.file_type();
        let perm = md.permissions().mode() & 0o7777;
        let what = if ft.is_dir() {
            What::Dir
        } else if ft.is_symlink() {
            What::Symlink(fs::read_link(&item.from)?)
        } else if ft.is_file() {
            What::File {
                from: item.from,
                size: md.len(),
            }
        } else {
            bail!(
                "COPY of {}: only files, directories and symlinks can be copied",
                item.from.display()
            );
        };
        out.push(Planned {
            to: item.to,
            // --chmod is not a symlink's: its own mode is what the link had.
            mode: match what {
                What::Symlink(_) => perm,
                _ => place.mode.unwrap_or(perm),
            },
            what,
            uid: place.uid,
            gid: place.gid,
            mtime: md.mtime().max(0) as u64,
        });
    }
    Ok(out)
}

/// Write the tar stream that places `sources` at `dest` (see `plan_copy`) into `out`.
pub fn write_copy<W: Write>(
    sources: &[Source],
    dest: &Path,
    dest_is_dir: bool,
    make_dest: bool,
    place: Placement,
    out: W,
) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    for p in plan_copy(sources, dest, dest_is_dir, make_dest, place)? {
        append_entry(&mut tar, &p.to, &p.what, [p.mode, p.uid, p.gid], p.mtime)?;
    }
    tar.finish()?;
    Ok(tar.into_inner()?)
}

/// Append one entry of a copy to `tar`, with the headers the diff (`Upper::write_layer`)
/// gives the same entry of an upper dir; `[mode, uid, gid]` as the entry is to have them.
pub fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    to: &Path,
    what: &What,
    [mode, uid, gid]: [u32; 3],
    mtime: u64,
) -> Result<()> {
    let mut h = Header::new_gnu();
    h.set_mode(mode & 0o7777);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    match what {
        What::Dir => {
            h.set_entry_type(EntryType::Directory);
            tar.append_data(&mut h, to, io::empty())?;
        }
        What::Symlink(target) => {
            h.set_entry_type(EntryType::Symlink);
            tar.append_link(&mut h, to, target)?;
        }
        What::File { from, size } => {
            h.set_entry_type(EntryType::Regular);
            h.set_size(*size);
            tar.append_data(&mut h, to, open_sized(from, *size)?)?;
        }
    }
    Ok(())
}

/// A source file to read for exactly the size its header announced: one that shrank or grew
/// since it was planned is an error, not a tar whose later entries are misplaced.
pub fn open_sized(path: &Path, size: u64) -> Result<impl Read> {
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sized {
        inner: f.take(size + 1),
        left: size,
        path: path.to_path_buf(),
    })
}

struct Sized {
    inner: io::Take<fs::File>,
    left: u64,
    path: PathBuf,
}

impl Read for Sized {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left || (n == 0 && self.left > 0 && !buf.is_empty()) {
            return Err(io::Error::other(format!(
                "{} changed size while it was copied",
                self.path.display()
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `--chown=user[:group]` resolved against the image's `/etc/passwd` and `/etc/group` (under
/// `root`, read without following anything out of it), as dockerd's builder does: numbers as
/// they are, and a bare user's group looked up by the same word (`--chown=app` is `app:app`).
pub fn resolve_chown(root: &Path, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, spec),
    };
    let (passwd, groups) = crate::containers::user::passwd_and_group(root)?;
    let lookup = |text: Option<&str>, name: &str| -> Option<u32> {
        text?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0] != name {
                return None;
            }
            f[2].parse().ok()
        })
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup(passwd.as_deref(), user).ok_or_else(|| {
            anyhow!("unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}")
        })?,
    };
    let gid = match group.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup(groups.as_deref(), group).ok_or_else(|| {
            anyhow!("unable to convert uid/gid chown string to host mapping: can't find gid for group {group}: no such group: {group}")
        })?,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn globs_as_go_matches_them() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("fil?", "file"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("a*", "b"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("real/sub")).unwrap();
        symlink("/real", r.join("abs")).unwrap();
        symlink("../../../../etc", r.join("climb")).unwrap();
        assert_eq!(
            resolve_in_root(r, "/abs/sub", true).unwrap(),
            r.join("real/sub")
        );
        assert_eq!(
            resolve_in_root(r, "climb/passwd", true).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(resolve_in_root(r, "abs", false).unwrap(), r.join("abs"));
    }

    #[test]
    fn a_directory_source_copies_its_contents_and_the_digest_ignores_mtimes() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path();
        fs::create_dir_all(ctx.join("src/d")).unwrap();
        fs::write(ctx.join("src/a.txt"), b"a").unwrap();
        fs::write(ctx.join("src/d/b.txt"), b"b").unwrap();
        fs::write(ctx.join("top"), b"t").unwrap();
        let s = find_sources(ctx, &["src/".into(), "to?".into()], true).unwrap();
        let d1 = sources_digest(&s).unwrap();
        assert!(d1.starts_with("multi:"));
        let place = Placement {
            uid: 0,
            gid: 0,
            mode: None,
        };
        let t1 = write_copy(&s, Path::new("app"), true, true, place, Vec::new()).unwrap();
        let names: Vec<String> = tar::Archive::new(&t1[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            ["app", "app/a.txt", "app/d", "app/d/b.txt", "app/top"]
        );
        // A touch changes nothing the cache compares; new content does.
        let f = fs::File::options()
            .write(true)
            .open(ctx.join("top"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(sources_digest(&s).unwrap(), d1);
        fs::write(ctx.join("src/d/b.txt"), b"B").unwrap();
        assert_ne!(sources_digest(&s).unwrap(), d1);
        let err = find_sources(ctx, &["nope".into()], true).unwrap_err();
        assert!(
            err.to_string().contains("file not found in build context"),
            "{err}"
        );
    }

    #[test]
    fn chown_names_resolve_from_the_image() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1002:\n",
        )
        .unwrap();
        // docker's rule: a bare name is user and group of that name.
        assert_eq!(resolve_chown(t.path(), "app").unwrap(), (1000, 1002));
        assert_eq!(resolve_chown(t.path(), "app:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_chown(t.path(), "7:8").unwrap(), (7, 8));
        assert_eq!(resolve_chown(t.path(), "7").unwrap(), (7, 7));
        assert!(resolve_chown(t.path(), "ghost").is_err());
    }
}
