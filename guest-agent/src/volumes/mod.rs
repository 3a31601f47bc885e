//! Volumes: docker's `local` driver. A volume is a directory the engine owns and mounts into
//! containers; it outlives them. Which containers use a volume is the containers' business
//! (their records say so); this layer keeps the volumes themselves.
//!
//! ```text
//! ROOT/volumes/<name>/_data          what containers see (or where the driver's mount goes)
//! ROOT/volumes/<name>/volume.json    name, driver, labels, options, creation time
//! ROOT/volumes/.trash-<rand>/        a volume being removed
//! ```
//!
//! A volume exists once its `volume.json` is in place (written aside, then renamed);
//! a directory without one is a create cut short and is removed when the engine starts.
//! Removal renames the directory away first, so a crash never leaves half a volume visible.

pub mod copy;
pub mod driver;
pub mod error;
pub mod hostpaths;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use error::VolumeError;
pub use hostpaths::HostPaths;

/// The label docker (23 and later) puts on the volumes it makes for a container, so that
/// `volume prune` without `--all` removes only those.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
pub const LOCAL: &str = "local";
const DATA: &str = "_data";
const RECORD: &str = "volume.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver's options (`-o type=tmpfs`…), as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339 to the second, as docker shows it.
    pub created_at: String,
}

impl Volume {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// What `volume create` asks for.
#[derive(Default, Debug, Clone)]
pub struct CreateRequest {
    /// Empty: a random name, as docker gives.
    pub name: String,
    /// Empty means `local`.
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

pub struct Volumes {
    dir: PathBuf,
    /// One create or remove at a time, so a name is made or removed once. (Whether a volume
    /// is in use is the containers' records' business: the engine holds its own lock across
    /// that check and the removal.)
    op: Mutex<()>,
    /// Held from finding a volume empty to having filled it from an image (copy-up), so
    /// that a second container starting with the same new volume waits for the copy
    /// instead of running beside it.
    pub copy_up: Mutex<()>,
    /// Volumes of containers being started, with how many starts each: from before a start
    /// mounts them until its process holds its own copy of the mounts, a container that
    /// ends must not unmount them (`release_unless_used`).
    starting: Mutex<BTreeMap<String, usize>>,
    pub host_paths: HostPaths,
}

/// A start's hold on its volumes' mounts; dropping it lets them go again.
pub struct Starting {
    volumes: Arc<Volumes>,
    names: Vec<String>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let mut starting = self
            .volumes
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for n in &self.names {
            if let Some(count) = starting.get_mut(n) {
                *count -= 1;
                if *count == 0 {
                    starting.remove(n);
                }
            }
        }
    }
}

/// docker's rule for a local volume's name: it becomes a directory name.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub fn invalid_name(name: &str) -> VolumeError {
    VolumeError::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    ))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Volumes {
    pub fn open(root: &Path, host_paths: HostPaths) -> Result<Arc<Self>> {
        let dir = root.join("volumes");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Others may pass through to a volume's files (a container's non-root user reads them
        // through the mount) but not list the volumes: docker's 0701.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o701))
            .with_context(|| format!("restricting {}", dir.display()))?;
        let volumes = Arc::new(Self {
            dir,
            op: Mutex::new(()),
            copy_up: Mutex::new(()),
            starting: Mutex::default(),
            host_paths,
        });
        volumes.sweep();
        Ok(volumes)
    }

    /// Creates cut short and removals cut short, from before a crash.
    fn sweep(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let leftover = name.starts_with(".trash-")
                || (!path.join(RECORD).exists() && !name.starts_with('.'));
            if leftover {
                if let Err(err) = self.delete_dir(&path) {
                    tracing::warn!(
                        "removing the leftover volume dir {}: {err:#}",
                        path.display()
                    );
                }
            } else if let Err(err) = driver::unmount(&path.join(DATA)) {
                // A driver mount (tmpfs, bind) of the last run: containers mount it again.
                tracing::warn!("unmounting the volume {name}: {err:#}");
            }
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        let missing = || VolumeError::not_found(format!("get {name}: no such volume"));
        if !valid_name(name) {
            return Err(missing());
        }
        let raw = match std::fs::read(self.dir.join(name).join(RECORD)) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => {
                return Err(VolumeError::Internal(
                    anyhow::Error::new(e).context(format!("reading volume {name}")),
                ))
            }
        };
        serde_json::from_slice(&raw)
            .with_context(|| format!("reading volume {name}"))
            .map_err(VolumeError::Internal)
    }

    pub fn list(&self) -> Vec<Volume> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Volume> = rd
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `volume create`: a new volume, or the existing one of that name (docker answers an
    /// existing name with the volume, not an error).
    pub fn create(&self, req: CreateRequest) -> Result<Volume, VolumeError> {
        self.create_new(req).map(|(v, _)| v)
    }

    /// `create`, and whether this call made the volume (false: it existed).
    pub fn create_new(&self, req: CreateRequest) -> Result<(Volume, bool), VolumeError> {
        let driver = if req.driver.is_empty() {
            LOCAL
        } else {
            req.driver.as_str()
        };
        if driver != LOCAL {
            return Err(VolumeError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found: skiff has the local driver only"
            )));
        }
        driver::validate(&req.options)?;
        let name = if req.name.is_empty() {
            skiff_common::ids::random_hex(32)
                .context("making a volume name")
                .map_err(VolumeError::Internal)?
        } else {
            req.name
        };
        if !valid_name(&name) {
            return Err(invalid_name(&name));
        }
        let _g = self.guard();
        match self.get(&name) {
            Ok(v) => return Ok((v, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let v = Volume {
            name: name.clone(),
            driver: LOCAL.into(),
            labels: req.labels,
            options: req.options,
            created_at: now(),
        };
        let dir = self.dir.join(&name);
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(dir.join(DATA))?;
            let tmp = dir.join(".volume.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&v)?)?;
            std::fs::rename(&tmp, dir.join(RECORD))?;
            Ok(())
        })();
        if let Err(e) = made {
            if let Err(re) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("removing the half-made volume {}: {re}", dir.display());
            }
            return Err(VolumeError::Internal(
                e.context(format!("creating volume {name}")),
            ));
        }
        Ok((v, true))
    }

    /// A new anonymous volume for a container's mount point.
    pub fn create_anonymous(&self) -> Result<Volume, VolumeError> {
        self.create(CreateRequest {
            labels: BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]),
            ..Default::default()
        })
    }

    /// Removes a volume the caller has found unused.
    pub fn remove_unused(&self, name: &str) -> Result<(), VolumeError> {
        let _g = self.guard();
        self.get(name)?;
        let dir = self.dir.join(name);
        driver::unmount(&dir.join(DATA)).map_err(VolumeError::Internal)?;
        let trash = self.dir.join(format!(
            ".trash-{}",
            skiff_common::ids::random_hex(8)
                .context("naming the volume's removal")
                .map_err(VolumeError::Internal)?
        ));
        std::fs::rename(&dir, &trash)
            .with_context(|| format!("removing volume {name}"))
            .map_err(VolumeError::Internal)?;
        self.delete_dir(&trash).map_err(VolumeError::Internal)
    }

    /// Deletes a volume's directory, never through a mount: a bind-mounted host directory
    /// under `_data` must not lose its files because the volume went.
    fn delete_dir(&self, dir: &Path) -> Result<()> {
        let data = dir.join(DATA);
        driver::unmount(&data)?;
        if crate::mountinfo::is_mounted(&data) {
            anyhow::bail!("{} is still mounted; not removing it", data.display());
        }
        remove_tree_on_one_fs(dir)
    }

    /// Bytes in the volume (docker's `UsageData.Size`).
    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.mountpoint(name))
    }

    /// Mounts what the volume's driver options ask for on its `_data`, once; a plain volume
    /// needs nothing. Called as a container using it starts.
    pub fn mount(&self, v: &Volume) -> Result<(), VolumeError> {
        driver::mount(&v.options, &self.mountpoint(&v.name), &self.host_paths)
    }

    /// Holds the mounts of the volumes `names` for a container being started, before it
    /// mounts them: see `starting`.
    pub fn starting(self: &Arc<Self>, names: Vec<String>) -> Starting {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        for n in &names {
            *starting.entry(n.clone()).or_default() += 1;
        }
        Starting {
            volumes: self.clone(),
            names,
        }
    }

    /// A volume's driver mount (tmpfs, bind) goes when the last container using it has
    /// stopped, so a tmpfs volume is empty again at its next use, as with docker: unless a
    /// start holds it or `used` (asked under the same lock as starts take their hold) says a
    /// running container has it.
    pub fn release_unless_used(&self, v: &Volume, used: impl FnOnce() -> bool) {
        let starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        if starting.contains_key(&v.name) || used() {
            return;
        }
        self.release(v);
    }

    fn release(&self, v: &Volume) {
        if driver::mounts_something(&v.options) {
            if let Err(e) = driver::unmount(&self.mountpoint(&v.name)) {
                tracing::warn!("unmounting volume {}: {e:#}", v.name);
            }
        }
    }
}

/// Removes a tree without crossing into another filesystem: what is mounted below is left.
fn remove_tree_on_one_fs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let top = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    fn walk(p: &Path, dev: u64) -> Result<()> {
        for e in std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))? {
            let e = e?;
            let path = e.path();
            let md = std::fs::symlink_metadata(&path)?;
            if md.is_dir() {
                if md.dev() != dev {
                    anyhow::bail!("{} is another filesystem; not removing it", path.display());
                }
                walk(&path, dev)?;
                std::fs::remove_dir(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            } else {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }
    walk(dir, top.dev())?;
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Bytes used by a directory tree (apparent sizes, hard links once).
pub fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<Volumes>) {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::open(d.path(), HostPaths::native()).unwrap();
        (d, v)
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["ab", "data", "my_vol-1.2", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "-ab", ".ab", "a/b", "../x", "a b", "a:b", "vol@1"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(
            invalid_name("a/b").to_string(),
            "create a/b: \"a/b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
    }

    #[test]
    fn a_volume_is_created_once_listed_found_and_removed() {
        let (_d, vols) = store();
        let req = CreateRequest {
            name: "data".into(),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            ..Default::default()
        };
        let v = vols.create(req.clone()).unwrap();
        assert_eq!((v.name.as_str(), v.driver.as_str()), ("data", "local"));
        assert!(vols.mountpoint("data").is_dir());
        std::fs::write(vols.mountpoint("data").join("f"), "x").unwrap();
        // The same name again is the same volume, its files kept.
        assert_eq!(vols.create(req).unwrap(), v);
        assert_eq!(vols.size("data"), 1);
        assert_eq!(vols.list(), vec![v]);
        vols.remove_unused("data").unwrap();
        assert!(
            matches!(vols.get("data"), Err(VolumeError::NotFound(m)) if m == "get data: no such volume")
        );
        assert!(vols.list().is_empty());
    }

    #[test]
    fn anonymous_volumes_get_a_random_name_and_the_label() {
        let (_d, vols) = store();
        let v = vols.create_anonymous().unwrap();
        assert_eq!(v.name.len(), 64);
        assert!(v.anonymous());
        let named = vols
            .create(CreateRequest::default())
            .expect("an unnamed create gets a name too");
        assert!(!named.anonymous());
    }

    #[test]
    fn bad_requests_change_nothing() {
        let (_d, vols) = store();
        let e = vols
            .create(CreateRequest {
                name: "x/y".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, VolumeError::InvalidArgument(_)));
        let e = vols
            .create(CreateRequest {
                name: "vv".into(),
                driver: "nfs-plugin".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, VolumeError::NotFound(_)), "{e}");
        let e = vols
            .create(CreateRequest {
                name: "vv".into(),
                options: BTreeMap::from([("colour".into(), "red".into())]),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "invalid option key: \"colour\"");
        assert!(vols.list().is_empty());
        assert!(matches!(vols.get("../etc"), Err(VolumeError::NotFound(_))));
    }

    /// A container ending while another starts with the same tmpfs volume: the start's hold
    /// keeps the mount, which goes once neither a start nor a running container has it.
    #[test]
    fn a_start_in_progress_keeps_its_volumes_mounted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::open(d.path(), HostPaths::native()).unwrap();
        let v = vols
            .create(CreateRequest {
                name: "scratch".into(),
                options: BTreeMap::from([
                    ("type".into(), "tmpfs".into()),
                    ("device".into(), "tmpfs".into()),
                ]),
                ..Default::default()
            })
            .unwrap();
        let mounted = || crate::mountinfo::is_mounted(&vols.mountpoint("scratch"));
        let hold = vols.starting(vec!["scratch".into()]);
        vols.mount(&v).unwrap();
        let second = vols.starting(vec!["scratch".into()]);
        vols.release_unless_used(&v, || false);
        assert!(mounted(), "released under a start");
        drop(hold);
        vols.release_unless_used(&v, || false);
        assert!(mounted(), "released under the second start");
        drop(second);
        vols.release_unless_used(&v, || true);
        assert!(mounted(), "released under a running container");
        vols.release_unless_used(&v, || false);
        assert!(!mounted());
    }

    #[test]
    fn leftovers_of_a_crash_are_swept_at_open() {
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::open(d.path(), HostPaths::native()).unwrap();
        vols.create(CreateRequest {
            name: "kept".into(),
            ..Default::default()
        })
        .unwrap();
        let half = d.path().join("volumes/half/_data");
        std::fs::create_dir_all(&half).unwrap();
        let trash = d.path().join("volumes/.trash-0011/_data");
        std::fs::create_dir_all(&trash).unwrap();
        drop(vols);
        let vols = Volumes::open(d.path(), HostPaths::native()).unwrap();
        assert_eq!(vols.list().len(), 1);
        assert!(!half.exists() && !trash.exists());
    }
}
