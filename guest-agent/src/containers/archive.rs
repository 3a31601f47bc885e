//! `docker cp`: files into and out of a container's root filesystem, as tar streams.
//!
//! Why a helper process in a chroot: paths come from the user and symlinks from the
//! container, which may change them while we copy (docker's cp CVEs). The helper
//! (`skiff-agent archive stat|get|put ROOTFS PATH`) chroots into the container's root first,
//! so every path, `..` and absolute symlink resolves inside the container, never on the
//! host; and the stream's entries are checked before anything is written.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use skiff_common::targuard::{HeaderTooLarge, TarGuard};

/// Exit codes the agent maps to HTTP statuses.
pub const NOT_FOUND: i32 = 2;
pub const NOT_A_DIR: i32 = 3;
pub const REFUSED: i32 = 4;

/// The environment variable that hands the helper a stopped container's mounts, as JSON.
pub const MOUNTS_ENV: &str = "SKIFF_COPY_MOUNTS";

/// A volume or bind of a stopped container, which the helper mounts for the copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CopyMount {
    /// Where the agent has it (a volume's directory, a staged bind source).
    pub source: PathBuf,
    /// Where the container has it.
    pub destination: String,
    pub readonly: bool,
    pub recursive: bool,
}

pub fn helper_main(args: &[OsString]) -> i32 {
    let res = (|| -> Result<i32> {
        let [op, rootfs, path, flags @ ..] = args else {
            bail!("usage: skiff-agent archive stat|get|put ROOTFS PATH [FLAGS]");
        };
        let mounts: Vec<CopyMount> = match std::env::var(MOUNTS_ENV) {
            Ok(j) => serde_json::from_str(&j).context("reading the mounts to make")?,
            Err(_) => Vec::new(),
        };
        enter_root(Path::new(rootfs), &mounts)?;
        let path = path.to_string_lossy().to_string();
        let flags: Vec<String> = flags.iter().map(|f| f.to_string_lossy().into()).collect();
        match op.to_str() {
            Some("stat") => stat(&path).map(|s| {
                println!("{s}");
                0
            }),
            Some("get") => get(&path),
            Some("put") => put(
                &path,
                flags.iter().any(|f| f == "--copy-uid-gid"),
                flags.iter().any(|f| f == "--no-overwrite-dir-non-dir"),
            ),
            _ => bail!("unknown archive operation"),
        }
    })();
    match res {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<Coded>().map(|c| c.0).unwrap_or(1);
            eprintln!("{e:#}");
            code
        }
    }
}

#[derive(Debug)]
struct Coded(i32, String);
impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl std::error::Error for Coded {}

fn coded(code: i32, msg: impl Into<String>) -> anyhow::Error {
    anyhow!(Coded(code, msg.into()))
}

/// `pid:N` joins the mount namespace of a running container's init (its root then becomes
/// ours, with its tmpfs and bind mounts, as the container sees them); a directory is
/// chrooted into (a stopped container's temporarily mounted root), with its `mounts` made.
fn enter_root(rootfs: &Path, mounts: &[CopyMount]) -> Result<()> {
    if let Some(pid) = rootfs.to_str().and_then(|s| s.strip_prefix("pid:")) {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
            .context("opening the container's mount namespace")?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
            .context("joining the container's mount namespace")?;
        nix::unistd::chdir("/").context("entering /")?;
        return Ok(());
    }
    let trees = if mounts.is_empty() {
        Vec::new()
    } else {
        detach_sources(mounts)?
    };
    nix::unistd::chroot(rootfs).with_context(|| format!("entering {}", rootfs.display()))?;
    nix::unistd::chdir("/").context("entering /")?;
    for (tree, m) in trees {
        attach(tree, m)?;
    }
    Ok(())
}

/// In a mount namespace of the helper's own, so that the mounts go when it exits and none
/// reaches the host's: each source cloned as a detached tree, before the chroot hides the
/// agent's paths. Parents first, as the runtime mounts them.
fn detach_sources(mounts: &[CopyMount]) -> Result<Vec<(OwnedFd, &CopyMount)>> {
    use nix::mount::{mount, MsFlags};
    use rustix::mount::{open_tree, OpenTreeFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("making a mount namespace for the copy")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making the copy's mounts private")?;
    let mut sorted: Vec<&CopyMount> = mounts.iter().collect();
    sorted.sort_by_key(|m| Path::new(&m.destination).components().count());
    sorted
        .into_iter()
        .map(|m| {
            let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            if m.recursive {
                flags |= OpenTreeFlags::AT_RECURSIVE;
            }
            let tree = open_tree(rustix::fs::CWD, &m.source, flags)
                .with_context(|| format!("cloning the mount for {}", m.destination))?;
            if m.readonly {
                set_read_only(&tree, m.recursive)
                    .with_context(|| format!("making {} read-only", m.destination))?;
            }
            Ok((tree, m))
        })
        .collect()
}

/// Inside the root: the destination found (and made, as the runtime makes it) as the
/// container would find it, then the tree moved onto it.
fn attach(tree: OwnedFd, m: &CopyMount) -> Result<()> {
    use rustix::mount::{move_mount, MoveMountFlags};
    let dest = Path::new(&m.destination);
    let is_dir = rustix::fs::fstat(&tree)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .with_context(|| format!("reading the mount for {}", m.destination))?;
    let made = if is_dir {
        std::fs::create_dir_all(dest)
    } else {
        dest.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dest)
                    .map(drop)
            })
    };
    made.with_context(|| format!("making the mount point {}", m.destination))?;
    let at = rustix::fs::open(
        dest,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening the mount point {}", m.destination))?;
    move_mount(
        &tree,
        "",
        &at,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .with_context(|| format!("mounting {}", m.destination))?;
    Ok(())
}

/// `mount_setattr(2)` on a detached tree, by hand: rustix does not wrap it. Done before the
/// tree is attached, so there is no moment where a read-only mount is writable.
fn set_read_only(tree: &OwnedFd, recursive: bool) -> std::io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a static empty C string, attr lives across the call and its size
    // is passed with it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Go's os.FileMode bits for a file, as docker's path-stat header carries them.
fn go_mode(md: &std::fs::Metadata) -> u64 {
    let ft = md.file_type();
    let mut m = (md.permissions().mode() & 0o777) as u64;
    let raw = md.mode();
    if ft.is_dir() {
        m |= 1 << 31;
    }
    if ft.is_symlink() {
        m |= 1 << 27;
    }
    if ft.is_fifo() {
        m |= 1 << 25;
    }
    if ft.is_socket() {
        m |= 1 << 24;
    }
    if ft.is_block_device() {
        m |= 1 << 26;
    }
    if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    }
    if raw & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

fn stat(path: &str) -> Result<String> {
    let p = Path::new(path);
    let md = std::fs::symlink_metadata(p).map_err(|_| {
        coded(
            NOT_FOUND,
            format!("Could not find the file {path} in container"),
        )
    })?;
    let link = if md.file_type().is_symlink() {
        std::fs::read_link(p)
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let mtime = chrono::DateTime::from_timestamp(md.mtime(), md.mtime_nsec() as u32)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string();
    Ok(json!({
        "name": name,
        "size": md.size(),
        "mode": go_mode(&md),
        "mtime": mtime,
        "linkTarget": link,
    })
    .to_string())
}

/// The tar of `path`, entries named from its base name (docker's rebase), on stdout.
fn get(path: &str) -> Result<i32> {
    let p = Path::new(path);
    let md = std::fs::symlink_metadata(p).map_err(|_| {
        coded(
            NOT_FOUND,
            format!("Could not find the file {path} in container"),
        )
    })?;
    let base = if path.ends_with("/.") {
        PathBuf::from(".")
    } else {
        p.file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let added = if md.is_dir() {
        b.append_dir_all(&base, p)
    } else {
        b.append_path_with_name(p, &base)
    };
    if let Err(e) = added {
        // Dropping a Builder ends the archive cleanly, which would pass a half copy off as a
        // whole one: leave it unfinished, so the agent sees the failure.
        std::mem::forget(b);
        return Err(coded(
            NOT_FOUND,
            format!("Could not copy {path} from container: {e}"),
        ));
    }
    b.into_inner()?.flush()?;
    Ok(0)
}

/// Check one entry of an uploaded stream before anything of it is written.
pub fn check_entry(name: &Path, kind: tar::EntryType, link: Option<&Path>) -> Result<()> {
    let refuse = |why: String| Err(coded(REFUSED, why));
    if name.is_absolute() {
        return refuse(format!(
            "refusing {}: absolute paths are not accepted in a copy",
            name.display()
        ));
    }
    if name.components().any(|c| matches!(c, Component::ParentDir)) {
        return refuse(format!(
            "refusing {}: paths with .. are not accepted in a copy",
            name.display()
        ));
    }
    match kind {
        tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo => refuse(format!(
            "refusing {}: device nodes and fifos are not accepted in a copy",
            name.display()
        )),
        tar::EntryType::Link => {
            let target = link.unwrap_or(Path::new(""));
            if target.is_absolute()
                || target
                    .components()
                    .any(|c| matches!(c, Component::ParentDir))
            {
                return refuse(format!(
                    "refusing hard link {} -> {}: it points outside the copied files",
                    name.display(),
                    target.display()
                ));
            }
            Ok(())
        }
        tar::EntryType::Symlink => {
            // Lexically: a relative target may not climb above the container's root.
            let target = link.unwrap_or(Path::new(""));
            if !target.is_absolute() {
                let mut depth: i64 = name.components().count() as i64 - 1;
                for c in target.components() {
                    match c {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    if depth < 0 {
                        return refuse(format!(
                            "refusing symlink {} -> {}: it points outside the destination",
                            name.display(),
                            target.display()
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn put(dest: &str, copy_uid_gid: bool, no_overwrite_dir_non_dir: bool) -> Result<i32> {
    let d = Path::new(dest);
    let md = std::fs::metadata(d).map_err(|_| {
        coded(
            NOT_FOUND,
            format!("Could not find the file {dest} in container"),
        )
    })?;
    if !md.is_dir() {
        return Err(coded(NOT_A_DIR, "extraction point is not a directory"));
    }
    let input = io::BufReader::with_capacity(1 << 20, io::stdin().lock());
    unpack_into(input, d, copy_uid_gid, no_overwrite_dir_non_dir)
}

/// Unpack an uploaded stream into the directory `d`, checking each entry first.
fn unpack_into<R: io::Read>(
    input: R,
    d: &Path,
    copy_uid_gid: bool,
    no_overwrite_dir_non_dir: bool,
) -> Result<i32> {
    // The tar crate would read a long name or PAX header whole into memory, whatever size it
    // declares: the guard refuses one over 1 MiB from its header.
    let mut ar = tar::Archive::new(TarGuard::new(input));
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    // Without -a docker gives the files to the container's root: that is us, unpreserved.
    ar.set_preserve_ownerships(copy_uid_gid);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    for entry in ar.entries().context("reading the tar stream")? {
        let mut e = entry.map_err(|err| match HeaderTooLarge::find(&err) {
            Some(refusal) => coded(REFUSED, format!("refusing the copy: {refusal}")),
            None => anyhow::Error::new(err).context("reading the tar stream"),
        })?;
        // dockerd unpacks `/a/b` as `a/b` under the destination (testcontainers sends its
        // files so, for `put_archive(path="/")`), as the tar crate's unpack_in places it.
        let name = below_root(&e.path().context("entry name")?);
        let link = e.link_name().context("entry link")?.map(|l| l.into_owned());
        let kind = e.header().entry_type();
        check_entry(&name, kind, link.as_deref())?;
        if no_overwrite_dir_non_dir {
            let at = d.join(&name);
            if let Ok(existing) = std::fs::symlink_metadata(&at) {
                let incoming_dir = kind == tar::EntryType::Directory;
                if existing.is_dir() != incoming_dir {
                    let what = if existing.is_dir() {
                        "cannot overwrite directory"
                    } else {
                        "cannot overwrite non-directory"
                    };
                    return Err(coded(
                        REFUSED,
                        format!(
                            "{what} {:?} with {}",
                            at,
                            if incoming_dir {
                                "directory"
                            } else {
                                "non-directory"
                            }
                        ),
                    ));
                }
            }
        }
        let placed = match e.unpack_in(d) {
            Ok(placed) => placed,
            Err(err) => {
                // A file cut short (a full disk, a broken stream) is not left behind looking
                // complete.
                if kind.is_file() {
                    let _ = std::fs::remove_file(d.join(&name));
                }
                bail!("writing {}: {}", name.display(), innermost(&err));
            }
        };
        if !placed {
            return Err(coded(
                REFUSED,
                format!(
                    "refusing {}: it would land outside the destination",
                    name.display()
                ),
            ));
        }
    }
    // Drain what follows the end-of-archive blocks so the sender sees a clean close.
    let mut rest = ar.into_inner().into_inner();
    let _ = io::copy(&mut rest, &mut io::sink());
    Ok(0)
}

/// `name` without its root (and `.` parts): where it lands below the destination.
fn below_root(name: &Path) -> PathBuf {
    name.components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::Prefix(_) | Component::CurDir
            )
        })
        .collect()
}

/// The tar crate wraps the OS error in a sentence per layer ("failed to unpack `x` into
/// `y`"); the user needs the last one.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::EntryType as T;

    #[test]
    fn hostile_entries_are_refused() {
        assert!(check_entry(Path::new("/etc/passwd"), T::Regular, None).is_err());
        assert!(check_entry(Path::new("a/../../x"), T::Regular, None).is_err());
        assert!(check_entry(Path::new("null"), T::Char, None).is_err());
        assert!(check_entry(Path::new("l"), T::Link, Some(Path::new("/etc/shadow"))).is_err());
        assert!(check_entry(Path::new("l"), T::Link, Some(Path::new("../x"))).is_err());
        assert!(check_entry(Path::new("a/s"), T::Symlink, Some(Path::new("../../x"))).is_err());
        assert!(check_entry(Path::new("a/s"), T::Symlink, Some(Path::new("../b"))).is_ok());
        assert!(check_entry(Path::new("a/s"), T::Symlink, Some(Path::new("/bin/sh"))).is_ok());
        assert!(check_entry(Path::new("dir/file"), T::Regular, None).is_ok());
    }

    /// A PAX header declaring 1.5 GiB, with only a few KiB behind it: refused from its
    /// header, with the REFUSED code (a 400 for the client), nothing written.
    #[test]
    fn an_oversized_pax_header_in_a_copy_is_refused() {
        let dest = tempfile::tempdir().unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("x").unwrap();
        h.set_entry_type(T::XHeader);
        h.set_size(1536 << 20);
        h.set_cksum();
        let mut stream = h.as_bytes().to_vec();
        stream.extend(vec![b'1'; 4096]);
        let err = unpack_into(&stream[..], dest.path(), false, true).unwrap_err();
        assert_eq!(err.downcast_ref::<Coded>().map(|c| c.0), Some(REFUSED));
        assert_eq!(
            format!("{err:#}"),
            "refusing the copy: entry 'x' declares a 1610612736-byte PAX header, over the 1 MiB limit"
        );
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_absolute_entry_name_lands_below_the_destination() {
        let dest = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(T::Regular);
        h.set_mode(0o644);
        h.set_size(2);
        // set_path refuses an absolute name: write the raw header field, as Python's tarfile does.
        h.as_gnu_mut().unwrap().name[..11].copy_from_slice(b"/w/./in.txt");
        h.set_cksum();
        b.append(&h, &b"ok"[..]).unwrap();
        let stream = b.into_inner().unwrap();
        std::fs::create_dir(dest.path().join("w")).unwrap();
        assert_eq!(
            unpack_into(&stream[..], dest.path(), false, true).unwrap(),
            0
        );
        assert_eq!(std::fs::read(dest.path().join("w/in.txt")).unwrap(), b"ok");
        assert_eq!(below_root(Path::new("/../x")), Path::new("../x"));
    }

    #[test]
    fn a_copy_with_long_names_still_unpacks() {
        let dest = tempfile::tempdir().unwrap();
        let long = format!("{}/file", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(T::Regular);
        h.set_mode(0o644);
        h.set_size(2);
        b.append_data(&mut h, &long, &b"ok"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(T::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", &long).unwrap();
        let stream = b.into_inner().unwrap();
        assert_eq!(
            unpack_into(&stream[..], dest.path(), false, true).unwrap(),
            0
        );
        assert_eq!(std::fs::read(dest.path().join(&long)).unwrap(), b"ok");
        assert_eq!(
            std::fs::read_link(dest.path().join("link")).unwrap(),
            Path::new(&long)
        );
    }
}
