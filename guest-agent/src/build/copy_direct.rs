//! A COPY's layer made straight from its sources, without writing them into the step's
//! overlay first.
//!
//! The overlay route (`copy_step.rs`) unpacks the COPY's stream into an overlay of the step's
//! image through the chrooted archive helper, then reads the upper dir back as the layer and
//! unpacks that into the store: every file is written twice and read back once. Here the
//! helper's unpacking is played on a model of the upper dir instead, against the image as
//! the overlay shows it (still mounted, read only by us), and the layer the diff would have
//! made from that upper dir is written from the model and the sources, straight into the
//! store's ingest. The layer has the same entries, in the same order, with the same headers;
//! only the times that are "now" in either (a directory something was created in) are the
//! clock's of each.
//!
//! The model follows what the helper's unpacking (the tar crate, `containers/archive.rs`'s
//! settings: permissions, owners and file times kept, overwrite on) and overlayfs do, and only
//! as far as it is sure. Whenever one of these does not hold, the step takes the overlay
//! route, which is always right:
//!
//! - No ADD archive to extract: its entries are whatever the archive holds (hard links,
//!   devices, `..`, duplicates), which the model does not play.
//! - Each directory on the way to an entry is a plain directory of the image, or missing: a
//!   symlink there is followed by the helper (to wherever it leads in the image), and a file
//!   there makes the helper fail, with its own message.
//! - The image's directories the copy writes into carry no extended attributes besides
//!   overlayfs's own: copy-up takes them along into the upper dir (and the diff writes them as
//!   PAX records), and a default ACL would give the new files ACLs of their own.
//! - An entry lands either where the image has nothing, or where it has the same kind of
//!   thing: a directory onto a directory (the helper keeps it and sets its mode and owner), a
//!   file or symlink onto a regular file or symlink (the helper unlinks it and writes its own,
//!   with nothing of the old one left). A directory onto a file, a file onto a directory, or
//!   anything onto a device, fifo or socket is left to the helper (it fails, or does what the
//!   model does not play).
//! - No path is written twice (two sources with one name): the second write's effect depends
//!   on the first's.
//! - The process's umask can be read: the helper makes the missing parents of the
//!   destination with 0777 less the umask it inherits from us.
//!
//! Two things overlayfs does are part of the model: a directory copied up keeps the image's
//! time, and so does its parent when only the copy-up happened in it (overlayfs restores the
//! parent's times); and a directory made where the image has nothing is a plain one (no
//! opaque mark). The tests compare both routes' layers over a real overlay on the running
//! kernel, so a kernel that behaves otherwise fails them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use super::copy::{self, Placement, Planned, Source, What};
use crate::images::diff::lower_metadata;
use crate::images::ingest::ingest_written;
use crate::images::store::{LayerRecord, Store};

/// The step's image: its merged tree (the mounted overlay, read and never written here) and
/// its layer trees, top first (what the diff compares the upper dir with).
pub(super) struct Image<'a> {
    pub root: &'a Path,
    pub lowers: &'a [PathBuf],
}

/// How a COPY's layer is made.
pub(super) enum Route {
    Direct(DirectLayer),
    /// Through the overlay, and why.
    Overlay(String),
}

/// The entries of the layer, in the diff's order.
pub(super) struct DirectLayer {
    entries: Vec<(PathBuf, Node)>,
}

#[derive(Debug, Clone)]
struct Node {
    what: What,
    /// Permission bits (with setuid, setgid, sticky).
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    /// A directory the image has (copied up, not created): it keeps the image's time until
    /// something is created or removed in it.
    copied_up: bool,
}

/// Decide the route of a COPY whose stream `write_copy` would make from these arguments, and
/// for the direct one, what its layer holds.
pub(super) fn route(
    image: &Image,
    sources: &[Source],
    dest: &Path,
    dest_is_dir: bool,
    make_dest: bool,
    place: Placement,
) -> Result<Route> {
    let Some(umask) = process_umask() else {
        return Ok(Route::Overlay(
            "the process's umask could not be read".into(),
        ));
    };
    let stream = copy::plan_copy(sources, dest, dest_is_dir, make_dest, place)?;
    let root_md = fs::symlink_metadata(image.root)
        .with_context(|| format!("reading {}", image.root.display()))?;
    let mut model = Model {
        image,
        nodes: HashMap::new(),
        now: now_secs(),
        umask,
        euid: nix::unistd::geteuid().as_raw(),
        egid: nix::unistd::getegid().as_raw(),
    };
    if has_own_xattrs(image.root)? {
        return Ok(Route::Overlay(
            "the image's root directory has extended attributes".into(),
        ));
    }
    // The root is the upper dir itself, never an entry; it is in the model for its children.
    model.nodes.insert(
        PathBuf::new(),
        Node {
            what: What::Dir,
            mode: root_md.mode() & 0o7777,
            uid: root_md.uid(),
            gid: root_md.gid(),
            mtime: 0,
            copied_up: true,
        },
    );
    for entry in &stream {
        if let Err(why) = model.unpack(entry)? {
            return Ok(Route::Overlay(why));
        }
    }
    model.nodes.remove(Path::new(""));
    let mut entries: Vec<(PathBuf, Node)> = model.nodes.into_iter().collect();
    // Path order is the diff's walk order: depth first, names sorted by their bytes.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Route::Direct(DirectLayer {
        entries: unchanged_dirs_left_out(entries, image.lowers),
    }))
}

/// The diff's rule (`Upper::entries`): a directory the image's layers have with the same mode
/// and owner, holding nothing kept, is no change and is left out.
fn unchanged_dirs_left_out(
    entries: Vec<(PathBuf, Node)>,
    lowers: &[PathBuf],
) -> Vec<(PathBuf, Node)> {
    let mut keep = vec![true; entries.len()];
    let mut holding: HashSet<PathBuf> = HashSet::new();
    for i in (0..entries.len()).rev() {
        let (rel, node) = &entries[i];
        if matches!(node.what, What::Dir) && !holding.contains(rel) {
            let same = lower_metadata(lowers, rel).is_some_and(|l| {
                l.is_dir()
                    && l.mode() == libc::S_IFDIR | node.mode
                    && l.uid() == node.uid
                    && l.gid() == node.gid
            });
            if same {
                keep[i] = false;
            }
        }
        if keep[i] {
            if let Some(parent) = rel.parent() {
                holding.insert(parent.to_path_buf());
            }
        }
    }
    entries
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// The upper dir as the helper would leave it, entry by entry.
struct Model<'a> {
    image: &'a Image<'a>,
    nodes: HashMap<PathBuf, Node>,
    now: u64,
    umask: u32,
    euid: u32,
    egid: u32,
}

/// Ok(Err(why)): the model cannot tell; the overlay route decides.
type Played = Result<std::result::Result<(), String>>;

impl Model<'_> {
    /// What the image has at `rel`, looked at only where the image can have something: under
    /// a directory the copy made, it has nothing. Every directory above `rel` is known by now
    /// to be a plain directory of the image (or the copy's), so no symlink is followed.
    fn in_image(&self, rel: &Path) -> Result<Option<fs::Metadata>> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        if self.nodes.get(parent).is_some_and(|p| !p.copied_up) {
            return Ok(None);
        }
        match fs::symlink_metadata(self.image.root.join(rel)) {
            Ok(md) => Ok(Some(md)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading /{}", rel.display()))),
        }
    }

    /// Something was created or removed in `dir`: its time is now.
    fn touch(&mut self, dir: &Path) {
        let now = self.now;
        if let Some(n) = self.nodes.get_mut(dir) {
            n.mtime = now;
        }
    }

    /// One entry of the stream, as the tar crate's `unpack_in` places it: its missing parents
    /// made (`create_dir_all`), then the entry.
    fn unpack(&mut self, e: &Planned) -> Played {
        let mut above: Vec<&Path> = e.to.ancestors().skip(1).collect();
        above.pop(); // the root
        for dir in above.into_iter().rev() {
            if let Err(why) = self.parent(dir)? {
                return Ok(Err(why));
            }
        }
        if self.nodes.contains_key(&e.to) {
            return Ok(Err(format!("the copy writes /{} twice", e.to.display())));
        }
        let parent = e.to.parent().unwrap_or(Path::new("")).to_path_buf();
        let existing = self.in_image(&e.to)?;
        let node = match (&e.what, existing) {
            (What::Dir, Some(md)) if md.is_dir() => {
                // Kept, with the stream's mode and owner set on its copy-up; its time is the
                // image's until something is made in it (copy-up restores the parent's time).
                if has_own_xattrs(&self.image.root.join(&e.to))? {
                    return Ok(Err(format!(
                        "/{} has extended attributes in the image",
                        e.to.display()
                    )));
                }
                Node {
                    what: What::Dir,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    mtime: md.mtime().max(0) as u64,
                    copied_up: true,
                }
            }
            (What::Dir, None) => {
                self.touch(&parent);
                // The tar crate does not set a directory's time: it is its last change's.
                Node {
                    what: What::Dir,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    mtime: self.now,
                    copied_up: false,
                }
            }
            // Over an image's file or link, the helper unlinks it first (a whiteout the new
            // entry then replaces): either way a new entry, and a change of its directory.
            (What::File { .. } | What::Symlink(_), None) => self.leaf(e, &parent),
            (What::File { .. } | What::Symlink(_), Some(md))
                if md.is_file() || md.file_type().is_symlink() =>
            {
                self.leaf(e, &parent)
            }
            (_, Some(md)) => {
                return Ok(Err(format!(
                    "/{} is {} in the image and the copy writes {} there",
                    e.to.display(),
                    kind_of(&md),
                    match e.what {
                        What::Dir => "a directory",
                        What::File { .. } => "a file",
                        What::Symlink(_) => "a symlink",
                    }
                )))
            }
        };
        self.nodes.insert(e.to.clone(), node);
        Ok(Ok(()))
    }

    /// A file or symlink the helper makes in `parent`.
    fn leaf(&mut self, e: &Planned, parent: &Path) -> Node {
        self.touch(parent);
        let symlink = matches!(e.what, What::Symlink(_));
        Node {
            what: e.what.clone(),
            // A symlink's own mode is always 0777 on Linux.
            mode: if symlink { 0o777 } else { e.mode },
            uid: e.uid,
            gid: e.gid,
            // The tar crate sets a time of 0 as 1.
            mtime: e.mtime.max(1),
            copied_up: false,
        }
    }

    /// A directory above an entry: the copy's, the image's (copied up as its children are
    /// made), or made by the tar crate's `create_dir_all`.
    fn parent(&mut self, dir: &Path) -> Played {
        if let Some(n) = self.nodes.get(dir) {
            return Ok(match n.what {
                What::Dir => Ok(()),
                _ => Err(format!(
                    "the copy writes into its own file /{}",
                    dir.display()
                )),
            });
        }
        let up = dir.parent().unwrap_or(Path::new("")).to_path_buf();
        let node = match self.in_image(dir)? {
            Some(md) if md.is_dir() => {
                if has_own_xattrs(&self.image.root.join(dir))? {
                    return Ok(Err(format!(
                        "/{} has extended attributes in the image",
                        dir.display()
                    )));
                }
                Node {
                    what: What::Dir,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime: md.mtime().max(0) as u64,
                    copied_up: true,
                }
            }
            Some(md) => {
                return Ok(Err(format!(
                    "/{} is {} in the image",
                    dir.display(),
                    kind_of(&md)
                )))
            }
            None => {
                // mkdir's rules: 0777 less the umask, our owner; in a setgid directory its
                // group and the setgid bit.
                let (setgid, up_gid) = self
                    .nodes
                    .get(&up)
                    .map(|p| (p.mode & libc::S_ISGID != 0, p.gid))
                    .ok_or_else(|| anyhow!("/{} was not placed before its child", up.display()))?;
                self.touch(&up);
                Node {
                    what: What::Dir,
                    mode: (0o777 & !self.umask) | if setgid { libc::S_ISGID } else { 0 },
                    uid: self.euid,
                    gid: if setgid { up_gid } else { self.egid },
                    mtime: self.now,
                    copied_up: false,
                }
            }
        };
        self.nodes.insert(dir.to_path_buf(), node);
        Ok(Ok(()))
    }
}

fn kind_of(md: &fs::Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a file"
    } else {
        "a special file"
    }
}

/// Whether `path` has extended attributes other than overlayfs's own (which copy-up leaves
/// behind and the diff leaves out).
fn has_own_xattrs(path: &Path) -> Result<bool> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => Ok(buf[..n]
            .split(|b| *b == 0)
            .any(|name| !name.is_empty() && !name.starts_with(b"trusted.overlay."))),
        // More names than the buffer holds: surely one of them counts.
        Err(rustix::io::Errno::RANGE) => Ok(true),
        Err(rustix::io::Errno::NOTSUP) => Ok(false),
        Err(e) => Err(anyhow::Error::new(io::Error::from(e)).context(format!(
            "listing the extended attributes of {}",
            path.display()
        ))),
    }
}

/// The umask this process (and so the helper it would start) has, from /proc: `umask(2)`
/// cannot read it without setting it, for every thread at once.
fn process_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DirectLayer {
    /// Store the layer: its tar written on one thread, unpacked into the store on this one.
    /// `failed` words an error of the writing side (a source that went away) for the user.
    /// Blocking.
    pub(super) fn ingest(
        &self,
        store: &Store,
        name: &str,
        limit: u64,
        failed: impl FnOnce(anyhow::Error) -> anyhow::Error,
    ) -> Result<LayerRecord> {
        ingest_written(store, name, limit, |w| self.write(w).map(drop), failed)
    }

    /// The layer's tar stream, with the headers the diff (`Upper::write_layer`) gives the
    /// same entries of an upper dir.
    fn write<W: Write>(&self, out: W) -> Result<W> {
        let mut tar = tar::Builder::new(out);
        for (rel, n) in &self.entries {
            copy::append_entry(&mut tar, rel, &n.what, [n.mode, n.uid, n.gid], n.mtime)?;
        }
        tar.finish().context("finishing the layer's tar stream")?;
        tar.into_inner().context("finishing the layer's tar stream")
    }
}

#[cfg(test)]
mod tests {
    //! Each case makes one COPY's layer both ways over the same image and compares them entry
    //! by entry, header bytes included; the times of directories something was created in
    //! are the clock's of each route, so any time within the run counts as "now" on both.

    use super::*;
    use crate::build::copy_step::{layer_through_overlay, CopyJob, Destination, Mounted};
    use crate::images::unpack::set_xattr;
    use std::ffi::OsString;
    use std::io::Read;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
    use std::time::{Duration, SystemTime};

    const HELPER_ENV: &str = "SKIFF_TEST_ARCHIVE_HELPER";
    /// The image's and the sources' times: far from "now".
    const OLD: u64 = 1_000_000_000;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// The agent's `archive` role for the overlay route: a wrapper script runs this test
    /// binary on this test alone, the helper's arguments in the environment.
    #[test]
    fn archive_helper_role() {
        let Some(args) = std::env::var_os(HELPER_ENV) else {
            return;
        };
        let args: Vec<OsString> = args
            .as_bytes()
            .split(|b| *b == b'\n')
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        std::process::exit(crate::containers::archive::helper_main(&args));
    }

    fn set_time(path: &Path, secs: u64) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let times = fs::FileTimes::new().set_accessed(t).set_modified(t);
        fs::File::open(path).unwrap().set_times(times).unwrap();
    }

    /// Every file and directory under `dir` (not symlinks) at time `secs`.
    fn age(dir: &Path, secs: u64) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                age(&p, secs);
            }
            if !md.file_type().is_symlink() && !md.file_type().is_char_device() {
                set_time(&p, secs);
            }
        }
        set_time(dir, secs);
    }

    fn write(path: &Path, body: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mkdir(path: &Path, mode: u32) {
        fs::create_dir_all(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// One entry of a layer as compared: what a reader sees, and the header's bytes but for
    /// the time (and so the checksum).
    #[derive(Debug, PartialEq)]
    struct Seen {
        path: String,
        kind: u8,
        mode: u32,
        uid: u64,
        gid: u64,
        /// None: within the run ("now").
        mtime: Option<u64>,
        link: Option<String>,
        data: Vec<u8>,
        header: String,
    }

    struct Case {
        dir: tempfile::TempDir,
        store: Store,
        agent: PathBuf,
        /// The image's layer trees, bottom first.
        layers: Vec<PathBuf>,
    }

    impl Case {
        fn new(layers: usize) -> Case {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("root")).unwrap();
            let agent = dir.path().join("agent.sh");
            let exe = std::env::current_exe().unwrap();
            let name = format!(
                "{}::archive_helper_role",
                module_path!().split_once("::").unwrap().1
            );
            fs::write(
                &agent,
                format!(
                    "#!/bin/sh\n[ \"$1\" = archive ] || exit 99\nshift\n\
                     {HELPER_ENV}=\"$(printf '%s\\n' \"$@\")\"\nexport {HELPER_ENV}\n\
                     exec '{}' '{name}' --exact --nocapture --test-threads=1 --quiet\n",
                    exe.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&agent, fs::Permissions::from_mode(0o755)).unwrap();
            let layers = (0..layers)
                .map(|i| {
                    let l = dir.path().join(format!("layer{i}"));
                    fs::create_dir_all(&l).unwrap();
                    l
                })
                .collect();
            let ctx = dir.path().join("ctx");
            fs::create_dir_all(&ctx).unwrap();
            Case {
                dir,
                store,
                agent,
                layers,
            }
        }

        fn ctx(&self) -> PathBuf {
            self.dir.path().join("ctx")
        }

        fn layer(&self, i: usize) -> &Path {
            &self.layers[i]
        }

        /// Sources and image at their old times, as a pulled image's and a checkout's: the
        /// tests call it once all is in place.
        fn settle(&self) {
            age(&self.ctx(), OLD);
            for l in &self.layers {
                age(l, OLD + 7);
            }
        }

        fn job(&self, target: &Mounted, words: &[&str], dest: &str, place: Placement) -> CopyJob {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let sources = copy::find_sources(&self.ctx(), &words, true).unwrap();
            let dest = Destination::find(&target.root(), &sources, dest, "");
            CopyJob {
                plain: sources,
                archives: Vec::new(),
                dest,
                place,
            }
        }

        fn mount(&self) -> Mounted {
            let work = self.dir.path().join("work");
            fs::create_dir_all(&work).unwrap();
            Mounted::over(&work, self.layers.iter().rev().cloned().collect()).unwrap()
        }

        fn route(&self, target: &Mounted, job: &CopyJob) -> Route {
            let root = target.root();
            route(
                &Image {
                    root: &root,
                    lowers: &target.lowers,
                },
                &job.plain,
                &job.dest.rel(),
                job.dest.is_dir,
                !job.dest.exists_as_dir,
                job.place,
            )
            .unwrap()
        }

        /// The COPY's layer both ways: (direct, overlay).
        fn both(&self, words: &[&str], dest: &str, place: Placement) -> (Vec<Seen>, Vec<Seen>) {
            let t0 = now_secs();
            let target = self.mount();
            let job = self.job(&target, words, dest, place);
            let direct = match self.route(&target, &job) {
                Route::Direct(d) => d.ingest(&self.store, "direct", u64::MAX, |e| e).unwrap(),
                Route::Overlay(why) => panic!("COPY {words:?} {dest}: no direct route: {why}"),
            };
            let overlay =
                layer_through_overlay(&self.agent, &target, &job, &self.store, u64::MAX, "COPY")
                    .unwrap();
            drop(target);
            let t1 = now_secs();
            (
                self.seen(&direct.diff_id, t0, t1),
                self.seen(&overlay.diff_id, t0, t1),
            )
        }

        fn declined(&self, words: &[&str], dest: &str, place: Placement) -> String {
            let target = self.mount();
            let job = self.job(&target, words, dest, place);
            match self.route(&target, &job) {
                Route::Direct(_) => panic!("COPY {words:?} {dest} took the direct route"),
                Route::Overlay(why) => why,
            }
        }

        fn seen(&self, diff_id: &str, t0: u64, t1: u64) -> Vec<Seen> {
            let mut tar = tar::Archive::new(self.store.layer_tar(diff_id).unwrap());
            let mut out = Vec::new();
            for e in tar.entries().unwrap() {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut header = h.as_bytes().to_vec();
                header[136..156].fill(0);
                let header = hex::encode(header).trim_end_matches('0').to_string();
                let mtime = h.mtime().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                out.push(Seen {
                    path: e.path().unwrap().display().to_string(),
                    kind: h.entry_type().as_byte(),
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    mtime: (mtime < t0 || mtime > t1).then_some(mtime),
                    link: e.link_name().unwrap().map(|l| l.display().to_string()),
                    data,
                    header,
                });
            }
            out
        }
    }

    fn as_root() -> Placement {
        Placement {
            uid: 0,
            gid: 0,
            mode: None,
        }
    }

    fn paths(seen: &[Seen]) -> Vec<&str> {
        seen.iter().map(|s| s.path.as_str()).collect()
    }

    fn mtime_of(seen: &[Seen], path: &str) -> Option<u64> {
        seen.iter().find(|s| s.path == path).unwrap().mtime
    }

    /// The benchmark's shape: a tree of directories into a new directory of an existing one,
    /// with modes, a symlink, an empty directory and a file dated 0.
    #[test]
    fn a_tree_into_a_new_directory() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(1);
        mkdir(&c.layer(0).join("app/bin"), 0o755);
        write(
            &c.layer(0).join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n",
            0o644,
        );
        let ctx = c.ctx();
        for d in 0..3 {
            for f in 0..4 {
                write(
                    &ctx.join(format!("tree/d{d}/f{f}.txt")),
                    &format!("{d}-{f}\n").repeat(300 * (f + 1)),
                    0o644,
                );
            }
        }
        write(&ctx.join("tree/d0/run.sh"), "#!/bin/sh\n", 0o4755);
        write(&ctx.join("tree/secret"), "s", 0o600);
        mkdir(&ctx.join("tree/empty"), 0o700);
        symlink("d0/f0.txt", ctx.join("tree/link")).unwrap();
        c.settle();
        let (direct, overlay) = c.both(&["tree/"], "/app/tree/", as_root());
        assert_eq!(direct, overlay);
        assert_eq!(paths(&direct)[..3], ["app", "app/tree", "app/tree/d0"]);
        // /app had a directory made in it: its time is now.
        assert_eq!(mtime_of(&direct, "app"), None);
        // The zero time: the tar crate makes it 1 as it unpacks.
        set_time(&ctx.join("tree/secret"), 0);
        let (direct, overlay) = c.both(&["tree/secret"], "/app/", as_root());
        assert_eq!(direct, overlay);
        assert_eq!(mtime_of(&direct, "app/secret"), Some(1));
    }

    /// Parents the image lacks, made by the helper with mkdir's mode and our owner, for a
    /// directory destination and for a file one; and in a setgid directory of the image,
    /// its group and setgid bit.
    #[test]
    fn missing_parents_are_made_as_mkdir_makes_them() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(1);
        mkdir(&c.layer(0).join("usr/share"), 0o755);
        mkdir(&c.layer(0).join("srv"), 0o2775);
        std::os::unix::fs::chown(c.layer(0).join("srv"), Some(0), Some(50)).unwrap();
        write(&c.ctx().join("one.txt"), "one\n", 0o644);
        c.settle();
        for dest in [
            "/a/b/c/",
            "/opt/x/y/renamed.txt",
            "/usr/share/doc/pkg/",
            "/srv/new/deep/one.txt",
        ] {
            let (direct, overlay) = c.both(&["one.txt"], dest, as_root());
            assert_eq!(direct, overlay, "COPY one.txt {dest}");
        }
        let (direct, _) = c.both(&["one.txt"], "/srv/new/deep/one.txt", as_root());
        let new = direct.iter().find(|s| s.path == "srv/new").unwrap();
        assert_eq!((new.mode & 0o7777, new.gid), (0o2755, 50));
        // /usr only had /usr/share copied up in it: the image's time, restored by overlayfs.
        let (direct, _) = c.both(&["one.txt"], "/usr/share/doc/pkg/", as_root());
        assert_eq!(mtime_of(&direct, "usr"), Some(OLD + 7));
        assert_eq!(mtime_of(&direct, "usr/share"), None);
    }

    /// A directory of the image that the copy only changes the mode of: overlayfs copies it
    /// up, and its parent keeps the image's time (copy-up restores it).
    #[test]
    fn a_directory_copied_up_leaves_its_parent_time() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(1);
        write(&c.layer(0).join("usr/share/doc/old"), "old", 0o644);
        mkdir(&c.ctx().join("tree/share/doc"), 0o700);
        c.settle();
        let (direct, overlay) = c.both(&["tree/"], "/usr/", as_root());
        assert_eq!(direct, overlay);
        assert_eq!(paths(&direct), ["usr", "usr/share", "usr/share/doc"]);
        assert_eq!(mtime_of(&direct, "usr/share"), Some(OLD + 7));
        assert_eq!(mtime_of(&direct, "usr/share/doc"), Some(OLD + 7));
    }

    /// `--chown` and `--chmod` over directories and files the image has: an existing file is
    /// replaced, an existing directory takes the copy's mode and owner, and one that ends up
    /// as the image has it, holding nothing new, is no change.
    #[test]
    fn chown_chmod_and_what_the_image_has() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(1);
        let img = c.layer(0);
        write(
            &img.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
            0o644,
        );
        write(&img.join("etc/group"), "root:x:0:\napp:x:1001:\n", 0o644);
        mkdir(&img.join("etc/app"), 0o750);
        mkdir(&img.join("etc/keep"), 0o755);
        write(&img.join("etc/keep/old.conf"), "old\n", 0o644);
        write(&img.join("etc/app/app.conf"), "old\n", 0o644);
        symlink("app.conf", img.join("etc/app/current")).unwrap();
        let ctx = c.ctx();
        write(&ctx.join("etc/app/app.conf"), "new\n", 0o600);
        write(&ctx.join("etc/app/current"), "a file now\n", 0o644);
        symlink("app.conf", ctx.join("etc/app/alias")).unwrap();
        mkdir(&ctx.join("etc/keep"), 0o755);
        write(&ctx.join("etc/motd"), "hi\n", 0o644);
        let place = Placement {
            uid: 1000,
            gid: 1001,
            mode: Some(0o640),
        };
        c.settle();
        let (direct, overlay) = c.both(&["etc/"], "/etc/", place);
        assert_eq!(direct, overlay);
        assert!(paths(&direct).contains(&"etc/keep"), "{:?}", paths(&direct));
        let (direct, overlay) = c.both(&["etc/"], "/etc/", as_root());
        assert_eq!(direct, overlay);
        // /etc/keep is the image's, as the image has it, with nothing new in it.
        assert!(
            !paths(&direct).contains(&"etc/keep"),
            "{:?}",
            paths(&direct)
        );
        assert_eq!(mtime_of(&direct, "etc/app"), None);
    }

    /// Wildcards: several files into a directory, and directories whose contents go in.
    #[test]
    fn wildcard_sources() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(1);
        mkdir(&c.layer(0).join("dst"), 0o755);
        let ctx = c.ctx();
        write(&ctx.join("a.txt"), "a", 0o644);
        write(&ctx.join("b.txt"), "b", 0o755);
        write(&ctx.join("dir1/x"), "x", 0o644);
        write(&ctx.join("dir2/sub/y"), "y", 0o644);
        c.settle();
        let (direct, overlay) = c.both(&["*.txt"], "/dst/", as_root());
        assert_eq!(direct, overlay);
        let (direct, overlay) = c.both(&["dir?", "a.txt"], "/multi/", as_root());
        assert_eq!(direct, overlay);
        assert_eq!(
            paths(&direct),
            [
                "multi",
                "multi/a.txt",
                "multi/sub",
                "multi/sub/y",
                "multi/x"
            ]
        );
    }

    /// A symlink over an image's file and a file over its symlink; and an image of two
    /// layers where the top one deleted a directory (a whiteout) or made it opaque.
    #[test]
    fn replaced_entries_and_layers_that_hide_others() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(2);
        let (bottom, top) = (c.layer(0), c.layer(1));
        write(&bottom.join("usr/bin/tool"), "tool", 0o755);
        symlink("tool", bottom.join("usr/bin/alias")).unwrap();
        write(&bottom.join("opt/old/file"), "old", 0o644);
        write(&bottom.join("var/lib/dpkg/status"), "s", 0o644);
        let wh = std::ffi::CString::new(top.join("opt").as_os_str().as_bytes()).unwrap();
        // SAFETY: wh is a valid C string.
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        mkdir(&top.join("var"), 0o755);
        set_xattr(&top.join("var"), "trusted.overlay.opaque", b"y").unwrap();
        let ctx = c.ctx();
        write(&ctx.join("bin/alias"), "now a file", 0o755);
        symlink("/bin/sh", ctx.join("bin/tool")).unwrap();
        write(&ctx.join("lib/dpkg/status"), "new", 0o644);
        c.settle();
        let (direct, overlay) = c.both(&["bin/"], "/usr/bin/", as_root());
        assert_eq!(direct, overlay);
        let (direct, overlay) = c.both(&["bin/alias"], "/opt/old/", as_root());
        assert_eq!(direct, overlay);
        let (direct, overlay) = c.both(&["lib/"], "/var/lib/", as_root());
        assert_eq!(direct, overlay);
    }

    /// FROM scratch: nothing below the copy.
    #[test]
    fn into_an_empty_image() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and owners need root");
            return;
        }
        let c = Case::new(0);
        write(&c.ctx().join("tree/a/b"), "b", 0o644);
        write(&c.ctx().join("tree/c"), "c", 0o644);
        c.settle();
        let (direct, overlay) = c.both(&["tree/"], "/", as_root());
        assert_eq!(direct, overlay);
        let (direct, overlay) = c.both(&["tree/c"], "/x/y", as_root());
        assert_eq!(direct, overlay);
    }

    /// What the model does not play goes through the overlay.
    #[test]
    fn the_overlay_route_takes_what_the_model_cannot_tell() {
        if !is_root() {
            eprintln!("skipped: overlay mounts and xattrs need root");
            return;
        }
        let c = Case::new(1);
        let img = c.layer(0);
        mkdir(&img.join("usr/lib"), 0o755);
        symlink("usr/lib", img.join("lib")).unwrap();
        mkdir(&img.join("labelled"), 0o755);
        set_xattr(&img.join("labelled"), "user.label", b"x").unwrap();
        write(
            &img.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n",
            0o644,
        );
        mkdir(&img.join("etc/conf.d"), 0o755);
        let ctx = c.ctx();
        write(&ctx.join("one.txt"), "one", 0o644);
        write(&ctx.join("a/same"), "a", 0o644);
        write(&ctx.join("b/same"), "b", 0o644);
        write(&ctx.join("conf.d"), "a file", 0o644);
        mkdir(&ctx.join("dir/passwd"), 0o755);
        c.settle();
        for (words, dest, why) in [
            (&["one.txt"][..], "/lib/x/", "is a symlink in the image"),
            (&["one.txt"], "/labelled/", "extended attributes"),
            (&["a/", "b/"], "/dup/", "twice"),
            (&["conf.d"], "/etc/", "is a directory in the image"),
            (&["dir/"], "/etc/", "is a file in the image"),
        ] {
            let got = c.declined(words, dest, as_root());
            assert!(got.contains(why), "COPY {words:?} {dest}: {got}");
        }
    }
}
