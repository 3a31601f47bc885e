//! docker's copy-path rules: Go's lexical path functions (on '/') and go-archive's
//! CopyInfo, PrepareArchiveCopy and RebaseArchiveEntries, which decide where a copy lands
//! and under which name.

use std::fs;
use std::io;

use super::ArchiveError;

pub use skiff_common::gopath::clean as go_clean;

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

/// Go's `filepath.Join`.
pub fn go_join(a: &str, b: &str) -> String {
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
pub fn prepare_copy(
    src: &CopyInfo,
    dst: &CopyInfo,
) -> Result<(String, Option<String>), ArchiveError> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err(ArchiveError::DirectoryOntoFile);
    }
    if !dst.exists
        && !src.is_dir
        && (has_trailing_sep(&dst.path) || specifies_current_dir(&dst.path))
    {
        return Err(ArchiveError::NoSuchDirectory);
    }
    Ok((dst_dir, Some(dst_base)))
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

/// go-archive's CopyInfoSourcePath (with ResolveHostSourcePath).
pub fn copy_info_source_path(path: &str, follow: bool) -> Result<CopyInfo, ArchiveError> {
    let (resolved, rebase_name) = if follow {
        let r = fs::canonicalize(path).map_err(ArchiveError::io("lstat", path))?;
        get_rebase_name(path, &r.to_string_lossy())
    } else {
        let i = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (dir, base) = (&path[..i], &path[i..]);
        let dir_resolved = if dir.is_empty() {
            ".".to_string()
        } else {
            fs::canonicalize(dir)
                .map_err(ArchiveError::io("lstat", dir))?
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
    let md = fs::symlink_metadata(&resolved).map_err(ArchiveError::io("lstat", &resolved))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: md.is_dir(),
        rebase_name,
    })
}

/// go-archive's CopyInfoDestinationPath: the destination, following its own symlinks.
pub fn copy_info_destination_path(path: &str) -> Result<CopyInfo, ArchiveError> {
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
                    return Err(ArchiveError::TooManySymlinks(original));
                }
                let target = fs::read_link(&path).map_err(ArchiveError::io("readlink", &path))?;
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
                let md = fs::metadata(&parent).map_err(ArchiveError::io("stat", &parent))?;
                if !md.is_dir() {
                    return Err(ArchiveError::NotADirectory);
                }
                return Ok(CopyInfo {
                    path,
                    ..Default::default()
                });
            }
            Err(e) => {
                return Err(ArchiveError::Io {
                    op: "lstat",
                    path: path.into(),
                    source: e,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_paths() {
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

    /// `prepare_copy` with its error as the user reads it.
    fn prepare(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<String>), String> {
        prepare_copy(src, dst).map_err(|e| e.to_string())
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
        assert_eq!(prepare(&file, &existing_dir), Ok(("/dst".into(), None)));
        assert_eq!(
            prepare(&file, &existing_file),
            Ok(("/dst".into(), Some("g".into())))
        );
        assert_eq!(
            prepare(&dir, &existing_file),
            Err("cannot copy directory".into())
        );
        assert_eq!(
            prepare(&dir, &missing),
            Ok(("/dst".into(), Some("new".into())))
        );
        assert_eq!(
            prepare(&dir, &missing_slash),
            Ok(("/dst".into(), Some("new".into())))
        );
        assert_eq!(
            prepare(&file, &missing_slash),
            Err("no such directory".into())
        );
        assert_eq!(
            prepare(&file, &missing),
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
}
