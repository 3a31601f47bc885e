//! Docker's `--user` (and the image's `User`) resolved against the container's own
//! `/etc/passwd` and `/etc/group`, with the semantics runc and dockerd share
//! (moby/sys/user `GetExecUser` and `GetAdditionalGroups`).
//!
//! The files belong to the image, so they are untrusted: they are opened with
//! `openat2(RESOLVE_IN_ROOT)` so that no symlink in them can reach the host, and only a
//! bounded amount of them is read.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// runc refuses ids it cannot pass through a signed 32-bit int, and so do we, to give the
/// same error for the same input.
const MAX_ID: i64 = i32::MAX as i64;

/// Real passwd and group files are a few KiB; the cap only stops a hostile image from
/// making the engine read gigabytes.
const MAX_FILE_BYTES: u64 = 4 << 20;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The identity a container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// What goes into the OCI spec's `additionalGids`, in docker's order: the primary gid,
    /// then the groups listing the user in `/etc/group`, then `--group-add`. Docker puts
    /// the primary gid there too, which is why `id` in a docker container shows it.
    pub additional_gids: Vec<u32>,
    /// For `HOME` when the image and the user did not set it; `/` when passwd has no entry.
    pub home: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    /// Docker spells the `--group-add` case with a capital U; kept so messages match.
    #[error("Unable to find group {0}: no matching entries in group file")]
    NoSuchAdditionalGroup(String),
    #[error("uids and gids must be in range 0-{MAX_ID}")]
    OutOfRange,
    #[error("cannot open the container's root filesystem {path}: {source}")]
    Rootfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path} in the container: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{path} in the container is not a regular file")]
    NotAFile { path: &'static str },
    #[error("{path} in the container is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: &'static str },
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) and `group_add`
/// against the passwd and group files inside `rootfs`.
pub fn resolve_user(
    rootfs: &Path,
    user: &str,
    group_add: &[String],
) -> Result<ResolvedUser, UserError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    resolve_from(passwd.as_deref(), group.as_deref(), user, group_add)
}

/// The passwd and group files inside `rootfs`, each `None` when missing, read as
/// `resolve_user` reads them (never through a symlink out of the root, bounded, regular files
/// only): for a build's `COPY --chown`, whose rule for a bare user differs from runc's.
pub fn passwd_and_group(rootfs: &Path) -> Result<(Option<String>, Option<String>), UserError> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UserError::Rootfs {
        path: rootfs.to_path_buf(),
        source: e.into(),
    })?;
    Ok((read_in_root(&root, PASSWD)?, read_in_root(&root, GROUP)?))
}

/// Reads `path` as seen from inside the container, or `None` when it does not exist
/// (runc treats a missing file as an empty one, so numeric ids still work).
fn read_in_root(root: &OwnedFd, path: &'static str) -> Result<Option<String>, UserError> {
    let read_err = |e: std::io::Error| UserError::Read { path, source: e };
    // O_NONBLOCK: a FIFO planted at /etc/passwd must not hang the engine in open().
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    // IN_ROOT makes absolute symlinks and `..` resolve against the container's root, so
    // `/etc/passwd -> /etc/shadow` reads the container's shadow, never the host's.
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let fd = match crate::openat2::open(root, path, flags, resolve) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(read_err(e.into())),
    };
    let file = File::from(fd);
    // Devices and FIFOs are refused: reading them could block or never end.
    if !file.metadata().map_err(read_err)?.is_file() {
        return Err(UserError::NotAFile { path });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(UserError::TooLarge { path });
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

impl GroupEntry<'_> {
    fn lists(&self, user: &str) -> bool {
        self.members.split(',').any(|m| m == user)
    }
}

/// The meaningful lines of a passwd or group file, split on ':'.
///
/// Comment lines and lines whose ids are not numbers are skipped; runc would read such
/// an id as 0, which would let a stray line stand in for root.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn field<'a>(fields: &[&'a str], i: usize) -> &'a str {
    fields.get(i).copied().unwrap_or("")
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).filter_map(|f| {
        Some(PasswdEntry {
            name: field(&f, 0),
            uid: field(&f, 2).parse().ok()?,
            gid: field(&f, 3).parse().ok()?,
            home: field(&f, 5),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).filter_map(|f| {
        Some(GroupEntry {
            name: field(&f, 0),
            gid: field(&f, 2).parse().ok()?,
            members: field(&f, 3),
        })
    })
}

/// Parses an id the way Go's `strconv.Atoi` does (an optional sign, decimal digits);
/// `None` means "not a number", which makes the argument a name.
fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

fn checked_id(id: i64) -> Result<u32, UserError> {
    if (0..=MAX_ID).contains(&id) {
        u32::try_from(id).map_err(|_| UserError::OutOfRange)
    } else {
        Err(UserError::OutOfRange)
    }
}

/// `resolve_user` on file contents already read; `None` is a missing file.
fn resolve_from(
    passwd: Option<&str>,
    group: Option<&str>,
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser, UserError> {
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_num = parse_id(user_arg);
    let gid_num = parse_id(group_arg);

    // Without a user, runc looks up uid 0 so that root's home and groups come from the
    // image; a numeric user is always a uid, even if some account is named like a number.
    let matched = passwd.and_then(|text| {
        passwd_entries(text).find(|e| match (user_arg, uid_num) {
            ("", _) => e.uid == 0,
            (_, Some(n)) => i64::from(e.uid) == n,
            (name, None) => e.name == name,
        })
    });

    let (uid, mut gid, home, user_name) = match (&matched, uid_num) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, _) if user_arg.is_empty() => (0, 0, "/".to_string(), None),
        (None, Some(n)) => (checked_id(n)?, 0, "/".to_string(), None),
        (None, None) => return Err(UserError::NoSuchUser(user_arg.to_string())),
    };

    let mut supplementary = Vec::new();
    if !group_arg.is_empty() {
        let found = group.and_then(|text| {
            group_entries(text).find(|g| match gid_num {
                Some(n) => i64::from(g.gid) == n,
                None => g.name == group_arg,
            })
        });
        gid = match (found, gid_num) {
            (Some(g), _) => g.gid,
            (None, Some(n)) => checked_id(n)?,
            (None, None) => return Err(UserError::NoSuchGroup(group_arg.to_string())),
        };
    } else if let (Some(name), Some(text)) = (user_name, group) {
        // Membership only counts when the group was not given explicitly, as in runc:
        // `-u app:app` asks for exactly that group.
        supplementary.extend(group_entries(text).filter(|g| g.lists(name)).map(|g| g.gid));
    }

    let mut additional_gids = vec![gid];
    additional_gids.extend(supplementary);
    let mut added: Vec<u32> = Vec::new();
    for wanted in group_add {
        let gid = additional_group(group, wanted)?;
        // Go returns these from a map, so docker dedups (in random order); we dedup and
        // keep the order given.
        if !added.contains(&gid) {
            added.push(gid);
        }
    }
    additional_gids.extend(added);

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// One `--group-add` entry: a group name or gid from the file, else any number in range.
fn additional_group(group: Option<&str>, wanted: &str) -> Result<u32, UserError> {
    let found = group.and_then(|text| {
        group_entries(text).find(|g| g.name == wanted || g.gid.to_string() == wanted)
    });
    match (found, parse_id(wanted)) {
        (Some(g), _) => Ok(g.gid),
        (None, Some(n)) => checked_id(n),
        (None, None) => Err(UserError::NoSuchAdditionalGroup(wanted.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment line is not an account
app:x:1000:1000:App,,,:/home/app:/bin/sh
1234:x:4321:4321::/home/numeric:/bin/sh
";

    const GROUP_TEXT: &str = "\
root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app
video:x:44:daemon
staff:x:50:
";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        if let Some(text) = passwd {
            fs::write(dir.path().join("etc/passwd"), text).unwrap();
        }
        if let Some(text) = group {
            fs::write(dir.path().join("etc/group"), text).unwrap();
        }
        dir
    }

    fn resolve(user: &str, group_add: &[&str]) -> Result<ResolvedUser, UserError> {
        let dir = rootfs(Some(PASSWD_TEXT), Some(GROUP_TEXT));
        let add: Vec<String> = group_add.iter().map(|s| s.to_string()).collect();
        resolve_user(dir.path(), user, &add)
    }

    fn user(uid: u32, gid: u32, additional: &[u32], home: &str) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: additional.to_vec(),
            home: home.to_string(),
        }
    }

    #[test]
    fn empty_user_is_root_from_passwd() {
        assert_eq!(resolve("", &[]).unwrap(), user(0, 0, &[0, 10], "/root"));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            resolve("app", &[]).unwrap(),
            user(1000, 1000, &[1000, 10, 29], "/home/app")
        );
        assert_eq!(
            resolve("1000", &[]).unwrap(),
            user(1000, 1000, &[1000, 10, 29], "/home/app")
        );
        assert_eq!(
            resolve("daemon", &[]).unwrap(),
            user(1, 1, &[1, 44], "/usr/sbin")
        );
        // A number is a uid even when an account carries that number as its name.
        assert_eq!(resolve("1234", &[]).unwrap(), user(1234, 0, &[0], "/"));
    }

    #[test]
    fn unknown_numeric_uid_is_allowed() {
        assert_eq!(resolve("4242", &[]).unwrap(), user(4242, 0, &[0], "/"));
        assert_eq!(resolve("4242:77", &[]).unwrap(), user(4242, 77, &[77], "/"));
    }

    #[test]
    fn explicit_groups() {
        // An explicit group replaces both the passwd gid and the memberships.
        assert_eq!(
            resolve("app:staff", &[]).unwrap(),
            user(1000, 50, &[50], "/home/app")
        );
        assert_eq!(
            resolve("app:44", &[]).unwrap(),
            user(1000, 44, &[44], "/home/app")
        );
        assert_eq!(
            resolve("1000:audio", &[]).unwrap(),
            user(1000, 29, &[29], "/home/app")
        );
        assert_eq!(
            resolve("app:9999", &[]).unwrap(),
            user(1000, 9999, &[9999], "/home/app")
        );
        assert_eq!(resolve(":wheel", &[]).unwrap(), user(0, 10, &[10], "/root"));
    }

    #[test]
    fn group_add_by_name_and_number() {
        assert_eq!(
            resolve("daemon", &["audio", "50", "12345", "audio"]).unwrap(),
            user(1, 1, &[1, 44, 29, 50, 12345], "/usr/sbin")
        );
    }

    #[test]
    fn errors_read_like_docker() {
        let e = resolve("nobody", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        let e = resolve("app:nogroup", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let e = resolve("app", &["nogroup"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unable to find group nogroup: no matching entries in group file"
        );
    }

    #[test]
    fn ids_must_fit_a_signed_int() {
        assert!(resolve("2147483647", &[]).is_ok());
        for spec in ["2147483648", "-1", "0:2147483648", "0:-5"] {
            let e = resolve(spec, &[]).unwrap_err();
            assert_eq!(e.to_string(), "uids and gids must be in range 0-2147483647");
        }
        assert!(matches!(
            resolve("app", &["4294967296"]),
            Err(UserError::OutOfRange)
        ));
        // Too big for any integer: it is a name, like in runc.
        assert!(matches!(
            resolve("99999999999999999999", &[]),
            Err(UserError::NoSuchUser(_))
        ));
    }

    #[test]
    fn missing_files_are_fine_for_numbers() {
        let dir = rootfs(None, None);
        let r = resolve_user(dir.path(), "", &[]).unwrap();
        assert_eq!(r, user(0, 0, &[0], "/"));
        let r = resolve_user(dir.path(), "33:44", &["55".to_string()]).unwrap();
        assert_eq!(r, user(33, 44, &[44, 55], "/"));
        assert!(matches!(
            resolve_user(dir.path(), "app", &[]),
            Err(UserError::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve_user(dir.path(), "0:staff", &[]),
            Err(UserError::NoSuchGroup(_))
        ));

        // Not even an /etc directory.
        let bare = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_user(bare.path(), "7", &[]).unwrap(),
            user(7, 0, &[0], "/")
        );
        // /etc is a file: lookups below it fail with ENOTDIR, which is "missing" too.
        fs::write(bare.path().join("etc"), "").unwrap();
        assert_eq!(
            resolve_user(bare.path(), "7", &[]).unwrap(),
            user(7, 0, &[0], "/")
        );
    }

    #[test]
    fn passwd_without_root_keeps_root_defaults() {
        let dir = rootfs(Some("app:x:1000:1000::/home/app:/bin/sh\n"), None);
        let r = resolve_user(dir.path(), "", &[]).unwrap();
        assert_eq!(r, user(0, 0, &[0], "/"));
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        let host_passwd = outside.path().join("passwd-host");
        fs::write(&host_passwd, "app:x:1:1::/host:/bin/sh\n").unwrap();

        let dir = rootfs(None, None);
        // The same absolute path, but under the container's root.
        let inner = dir.path().join(host_passwd.strip_prefix("/").unwrap());
        fs::create_dir_all(inner.parent().unwrap()).unwrap();
        fs::write(&inner, "app:x:2000:2000::/inside:/bin/sh\n").unwrap();
        symlink(&host_passwd, dir.path().join("etc/passwd")).unwrap();

        // A relative escape attempt is clamped at the root as well.
        fs::write(outside.path().join("group"), "g:x:1:app\n").unwrap();
        fs::write(dir.path().join("group"), "g:x:2:app\n").unwrap();
        let dots = "../".repeat(32);
        symlink(format!("{dots}group"), dir.path().join("etc/group")).unwrap();

        let r = resolve_user(dir.path(), "app", &[]).unwrap();
        assert_eq!(r, user(2000, 2000, &[2000, 2], "/inside"));
    }

    #[test]
    fn hostile_files_are_refused() {
        let dir = rootfs(None, None);
        let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
        fs::write(dir.path().join("etc/passwd"), big).unwrap();
        assert!(matches!(
            resolve_user(dir.path(), "0", &[]),
            Err(UserError::TooLarge { .. })
        ));

        let dir = rootfs(None, None);
        nix::unistd::mkfifo(
            &dir.path().join("etc/group"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(
            resolve_user(dir.path(), "0", &[]),
            Err(UserError::NotAFile { .. })
        ));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let passwd = "+::::::\nbroken\nx:x:notanumber:0::/:\nok:x:5:6::/ok:\n";
        let r = resolve_from(Some(passwd), None, "", &[]).unwrap();
        assert_eq!(r, user(0, 0, &[0], "/"));
        let r = resolve_from(Some(passwd), None, "ok", &[]).unwrap();
        assert_eq!(r, user(5, 6, &[6], "/ok"));
    }
}
