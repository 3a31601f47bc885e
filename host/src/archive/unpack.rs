//! The archive the engine sends, unpacked on this machine: go-archive's CopyTo and Untar,
//! with every entry, symlink and hard link kept inside the destination.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use skiff_common::targuard::TarGuard;

use super::paths::{
    copy_info_destination_path, go_clean, go_join, prepare_copy, rebase, split_path_dir_entry,
    CopyInfo,
};
use super::{ArchiveError, CHUNK};
use crate::goerror::go_io_error;

/// go-archive's CopyTo: unpack what the engine sent so that `src` ends up at `dst` by
/// docker's rules. What was left out is told in `warnings`, one line each.
pub fn copy_to<R: Read>(
    content: R,
    src: &CopyInfo,
    dst: &str,
    opts: UntarOptions,
    warnings: &mut Vec<String>,
) -> Result<(), ArchiveError> {
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

/// Refuse to write through a symlink that leads out of `dest`: each parent of `name`
/// inside `dest` is looked at without following it.
fn check_parents(dest: &Path, dest_canon: &Path, name: &str) -> Result<(), ArchiveError> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<&str> = name.split('/').collect();
    for comp in &comps[..comps.len().saturating_sub(1)] {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.file_type().is_symlink() => {
                let real = fs::canonicalize(&cur).map_err(|e| ArchiveError::Breakout {
                    detail: format!("{}: {}", cur.display(), go_io_error(&e)),
                    source: Some(e),
                })?;
                if !real.starts_with(dest_canon) {
                    return Err(ArchiveError::breakout(format!(
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
fn keep_owner(opts: UntarOptions, path: &Path, uid: u64, gid: u64) -> Result<(), ArchiveError> {
    // SAFETY: geteuid has no preconditions.
    if !opts.keep_owner_and_setid || unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let (Ok(uid32), Ok(gid32)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Err(ArchiveError::OwnerOutOfRange {
            path: path.to_path_buf(),
            uid,
            gid,
        });
    };
    std::os::unix::fs::lchown(path, Some(uid32), Some(gid32))
        .map_err(ArchiveError::io("lchown", path))
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
) -> Result<(), ArchiveError> {
    // The tar crate would read a long name or PAX header whole into memory, whatever size it
    // declares: the guard refuses one over 1 MiB from its header.
    let mut archive = tar::Archive::new(TarGuard::new(content));
    let dest_canon = fs::canonicalize(dest).map_err(|source| ArchiveError::Destination {
        path: dest.to_path_buf(),
        source,
    })?;
    let dest_str = dest.to_string_lossy().into_owned();
    let mut dirs: Vec<(PathBuf, i64, u32)> = Vec::new();
    // Device entries left out, so that hard links to them are left out too.
    let mut skipped: HashSet<String> = HashSet::new();
    let entries = archive.entries().map_err(ArchiveError::Stream)?;
    let mut buf = vec![0u8; CHUNK];
    for entry in entries {
        let mut entry = entry.map_err(ArchiveError::Stream)?;
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
            return Err(ArchiveError::breakout(format!(
                "{name:?} is outside of {dest_str:?}"
            )));
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
                fs::create_dir_all(parent).map_err(ArchiveError::io("mkdir", parent))?;
            }
        }
        if let Ok(md) = fs::symlink_metadata(&path) {
            let is_dir_entry = kind == tar::EntryType::Directory;
            if md.is_dir() && !is_dir_entry {
                return Err(ArchiveError::DirectoryWithNonDirectory {
                    path: path.display().to_string(),
                    dest: dest_str,
                });
            }
            if !md.is_dir() && is_dir_entry {
                return Err(ArchiveError::NonDirectoryWithDirectory {
                    path: path.display().to_string(),
                    dest: dest_str,
                });
            }
            if md.is_dir() && name == "." {
                continue;
            }
            if !md.is_dir() {
                fs::remove_file(&path).map_err(ArchiveError::io("remove", &path))?;
            }
        }
        match kind {
            tar::EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(ArchiveError::io("mkdir", &path))?;
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
                    .map_err(ArchiveError::io("open", &path))?;
                loop {
                    let n = entry.read(&mut buf).map_err(ArchiveError::Stream)?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n])
                        .map_err(ArchiveError::io("write", &path))?;
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
                    return Err(ArchiveError::breakout(format!(
                        "invalid symlink {:?} -> {target:?}",
                        path.display().to_string()
                    )));
                }
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(ArchiveError::io("symlink", &path))?;
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
                fs::hard_link(&target_path, &path).map_err(ArchiveError::io("link", &path))?;
                continue;
            }
            tar::EntryType::Fifo => {
                mkfifo(&path, mode).map_err(ArchiveError::io("mkfifo", &path))?;
            }
            other => return Err(ArchiveError::UnsupportedEntry(other.as_byte())),
        }
        // Owner first: chown clears setuid/setgid, the mode sets them again (with -a).
        keep_owner(opts, &path, uid, gid)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(ArchiveError::io("chmod", &path))?;
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
) -> Result<PathBuf, ArchiveError> {
    let refuse = |why: String, source: Option<io::Error>| ArchiveError::Breakout {
        detail: format!(
            "invalid hardlink {:?} -> {target:?}: {why}",
            link.display().to_string()
        ),
        source,
    };
    let outside = || refuse("it is outside of the destination".into(), None);
    if target == "." || target == ".." || target.starts_with("../") {
        return Err(outside());
    }
    check_parents(dest, dest_canon, target)?;
    let target_path = dest.join(target);
    match fs::symlink_metadata(&target_path) {
        Ok(md) if md.is_file() => {}
        Ok(_) => return Err(refuse("the target is not a regular file".into(), None)),
        Err(e) => return Err(refuse(format!("the target: {}", go_io_error(&e)), Some(e))),
    }
    let canon = fs::canonicalize(&target_path).map_err(|e| refuse(go_io_error(&e), Some(e)))?;
    if !canon.starts_with(dest_canon) {
        return Err(outside());
    }
    Ok(target_path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;
    use crate::archive::write_tar;

    fn copy_plain(data: &[u8], info: &CopyInfo, dst: &str) -> Result<(), ArchiveError> {
        copy_to(data, info, dst, UntarOptions::default(), &mut Vec::new())
    }

    /// Unpack `data` into `dest` without `-a`: the warnings, or the error as the user reads it.
    fn untar_plain(data: &[u8], dest: &Path) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        untar(data, dest, &[], UntarOptions::default(), &mut warnings)
            .map_err(|e| e.to_string())?;
        Ok(warnings)
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "skiff-archive-test-{}-{}",
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

    /// Each failure is its own kind, and reads as docker's does.
    #[test]
    fn failures_are_typed_and_read_as_docker_words_them() {
        let root = tmp();
        let file = CopyInfo {
            path: "/ctr/f".into(),
            exists: true,
            is_dir: false,
            rebase_name: None,
        };
        let missing_parent = root.join("missing/x");
        let err = copy_plain(&[], &file, missing_parent.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Io { op: "stat", .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "stat {}: no such file or directory",
                root.join("missing").display()
            )
        );
        let into_missing_dir = root.join("new/");
        let err = copy_plain(&[], &file, into_missing_dir.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ArchiveError::NoSuchDirectory), "{err:?}");

        // The tar crate refuses to write a ".." name, so the header is filled in by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..5].copy_from_slice(b"../up");
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(1);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let err = untar(
            &data[..],
            &root,
            &[],
            UntarOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ArchiveError::Breakout { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "Error processing tar file: \"../up\" is outside of {:?}",
                root.display().to_string()
            )
        );

        let err = untar(
            &[1u8; 700][..],
            &root,
            &[],
            UntarOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ArchiveError::Stream(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("Error processing tar file: "),
            "{err}"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
