//! COPY and ADD steps: the files are written into an overlay of the step's image by the
//! engine's chrooted archive helper, and the overlay's upper dir becomes the step's layer —
//! or, when the outcome can be told without writing them there (`copy_direct.rs`), the
//! layer is made straight from the sources.
//! ADD also extracts a local tar archive (plain, gzip or zstd) and fetches an http(s) URL.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use super::builder::{fail, Run};
use super::copy::{self, Placement, Source};
use super::copy_direct::{self, Route};
use super::dockerfile::CopyArgs;
use super::instructions::{clean_path, StageState};
use crate::containers::rootfs::{self, Paths};
use crate::images::diff::Upper;
use crate::images::ingest::ingest_changes;
use crate::images::store::{tempfile_in, Image, LayerRecord, Store};

/// An overlay of an image's layers mounted under a work directory, unmounted and removed when
/// dropped.
pub(super) struct Mounted {
    paths: Paths,
    dir: PathBuf,
    pub(super) lowers: Vec<PathBuf>,
}

impl Mounted {
    fn new(store: &Store, work: &Path, image: Option<&Image>) -> Result<Mounted> {
        let lowers: Vec<PathBuf> = match image {
            Some(img) => img
                .record
                .layers
                .iter()
                .rev()
                .map(|l| store.layer_dir(&l.diff_id))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        Mounted::over(work, lowers)
    }

    /// An overlay of these layer trees, top first.
    pub(super) fn over(work: &Path, mut lowers: Vec<PathBuf>) -> Result<Mounted> {
        let dir = tempfile_in(work)?;
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).context("creating the step's directory")?;
        if lowers.is_empty() {
            // FROM scratch: an empty tree under the upper dir.
            lowers.push(empty);
        }
        let paths = Paths::new(&dir);
        rootfs::mount_rootfs(&paths, &lowers)?;
        Ok(Mounted { paths, dir, lowers })
    }

    pub(super) fn root(&self) -> PathBuf {
        self.paths.rootfs()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.paths) {
            tracing::warn!("unmounting a build step's overlay: {e:#}");
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How an ADD source is compressed, if it is a tar archive to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Archive {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// The most an xz archive's decoder may take (its dictionary and buffers; `xz -9` needs
/// about 65 MiB): an archive asking for more is refused rather than let eat the memory.
const XZ_MEMORY_KIB: u32 = 256 << 10;

fn archive_kind(path: &Path) -> Result<Option<Archive>> {
    let md = fs::metadata(path)?;
    if !md.is_file() {
        return Ok(None);
    }
    let mut head = [0u8; 6];
    let n = fs::File::open(path)?.read(&mut head)?;
    let kind = match &head[..n] {
        [0x1f, 0x8b, ..] => Archive::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Archive::Zstd,
        [b'B', b'Z', b'h', ..] => Archive::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Archive::Xz,
        _ => Archive::Tar,
    };
    // Only a tar inside counts: a compressed non-tar file is copied as it is, as docker does.
    let mut block = vec![0u8; 512];
    let got = read_full(&mut open_archive(path, kind)?, &mut block)?;
    let is_tar = got == 512 && &block[257..262] == b"ustar";
    Ok(is_tar.then_some(kind))
}

fn open_archive(path: &Path, kind: Archive) -> Result<Box<dyn Read>> {
    let f = io::BufReader::new(fs::File::open(path)?);
    Ok(match kind {
        Archive::Tar => Box::new(f),
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Archive::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Archive::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(f, true, XZ_MEMORY_KIB)),
        Archive::Zstd => Box::new(zstd::stream::read::Decoder::new(f)?),
    })
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Stream a tar into the root filesystem at `at` through the chrooted archive helper, which
/// keeps the entries' owners.
fn put(
    agent: &Path,
    root: &Path,
    at: &str,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let mut child = Command::new(agent)
        .arg("archive")
        .arg("put")
        .arg(root)
        .arg(at)
        .arg("--copy-uid-gid")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running the archive helper")?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("the archive helper has no stdin"))?;
    let written = write(&mut stdin);
    drop(stdin);
    let output = child
        .wait_with_output()
        .context("waiting for the archive helper")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    written
}

/// Where a COPY's sources land in the step's image, by docker's rules.
pub(super) struct Destination {
    /// Absolute and clean (`/app/src`).
    pub clean: String,
    /// The image has a directory there (symlinks followed).
    pub exists_as_dir: bool,
    /// The sources go into it, rather than becoming it.
    pub is_dir: bool,
}

impl Destination {
    /// `word` as the COPY gives it (relative ones are under `workdir`), looked up in `root`,
    /// the step's image.
    pub(super) fn find(root: &Path, sources: &[Source], word: &str, workdir: &str) -> Self {
        let abs = if word.starts_with('/') {
            word.to_string()
        } else {
            format!("{}/{word}", if workdir.is_empty() { "/" } else { workdir })
        };
        let clean = clean_path(&abs);
        let exists_as_dir = copy::resolve_in_root(root, &clean, true)
            .map(|p| p.is_dir())
            .unwrap_or(false);
        // Several sources go into it (the caller has refused them without a trailing `/`),
        // and so do a directory's contents.
        let several = sources.len() > 1;
        let single_dir =
            sources.len() == 1 && fs::metadata(&sources[0].path).is_ok_and(|m| m.is_dir());
        let is_dir = word.ends_with('/') || several || single_dir || exists_as_dir;
        Destination {
            clean,
            exists_as_dir,
            is_dir,
        }
    }

    /// Relative to the root (`app/src`).
    pub(super) fn rel(&self) -> PathBuf {
        PathBuf::from(self.clean.trim_start_matches('/'))
    }
}

/// What a COPY writes and where, decided from its arguments and the step's image.
pub(super) struct CopyJob {
    pub plain: Vec<Source>,
    /// ADD's local archives, extracted at the destination.
    pub archives: Vec<(Source, Archive)>,
    pub dest: Destination,
    pub place: Placement,
}

/// The COPY's layer: made straight from the sources when `copy_direct` can tell what the
/// overlay route would make, else through the overlay. Blocking.
pub(super) fn copy_layer(
    agent: &Path,
    target: &Mounted,
    job: &CopyJob,
    store: &Store,
    limit: u64,
    verb: &str,
) -> Result<LayerRecord> {
    if job.archives.is_empty() {
        let root = target.root();
        let image = copy_direct::Image {
            root: &root,
            lowers: &target.lowers,
        };
        let route = copy_direct::route(
            &image,
            &job.plain,
            &job.dest.rel(),
            job.dest.is_dir,
            !job.dest.exists_as_dir,
            job.place,
        )
        .map_err(|e| fail(format!("{verb} failed: {e:#}")))?;
        match route {
            Route::Direct(layer) => {
                return layer.ingest(store, "of a COPY step", limit, |e| {
                    fail(format!("{verb} failed: {e:#}"))
                })
            }
            Route::Overlay(why) => tracing::debug!("{verb} through the step's overlay: {why}"),
        }
    }
    layer_through_overlay(agent, target, job, store, limit, verb)
}

/// The overlay route: the stream unpacked into the step's overlay by the chrooted helper,
/// the upper dir read back as the layer. Blocking.
pub(super) fn layer_through_overlay(
    agent: &Path,
    target: &Mounted,
    job: &CopyJob,
    store: &Store,
    limit: u64,
    verb: &str,
) -> Result<LayerRecord> {
    let root = target.root();
    if !job.plain.is_empty() || !job.archives.is_empty() {
        let make_dir = !job.archives.is_empty();
        put(agent, &root, "/", |w| {
            copy::write_copy(
                &job.plain,
                &job.dest.rel(),
                job.dest.is_dir || make_dir,
                !job.dest.exists_as_dir,
                job.place,
                w,
            )
            .map(drop)
        })
        .map_err(|e| fail(format!("{verb} failed: {e:#}")))?;
    }
    for (s, kind) in &job.archives {
        put(agent, &root, &job.dest.clean, |w| {
            io::copy(&mut open_archive(&s.path, *kind)?, w)
                .map(drop)
                .with_context(|| format!("extracting {}", s.shown))
        })
        .map_err(|e| fail(format!("ADD failed: {}: {e:#}", s.shown)))?;
    }
    ingest_changes(
        store,
        &Upper {
            dir: &target.paths.upper(),
            lowers: &target.lowers,
            skip: &[],
        },
        "of a COPY step",
        limit,
    )
}

impl Run<'_> {
    pub(super) async fn copy_step(
        &mut self,
        verb: &str,
        args: &CopyArgs,
        state: &StageState,
        cur: &mut Option<Image>,
    ) -> Result<()> {
        let mut flags = String::new();
        let from_image = match &args.from {
            Some(f) => {
                let f = state.expand(f).map_err(fail)?;
                flags.push_str(&format!("--from={f} "));
                Some(self.stage_image(&f).await?)
            }
            None => None,
        };
        // The cache key holds the flag as expanded: `--chown=$UID` with another build arg
        // is another step.
        let chown = match &args.chown {
            Some(c) => {
                let c = state.expand(c).map_err(fail)?;
                flags.push_str(&format!("--chown={c} "));
                Some(c)
            }
            None => None,
        };
        let mode = match &args.chmod {
            Some(m) => {
                flags.push_str(&format!("--chmod={m} "));
                Some(
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            fail(format!(
                                "invalid --chmod={m}: give an octal mode such as 0755"
                            ))
                        })?,
                )
            }
            None => None,
        };
        let dest_word = state.expand(&args.dest).map_err(fail)?;
        let mut words = Vec::new();
        for s in &args.sources {
            words.push(state.expand(s).map_err(fail)?);
        }

        // Where the sources come from: the context, another stage or image, or the web.
        let source_mount = match &from_image {
            Some(img) => Some(Mounted::new(&self.b.store, &self.work, img.as_ref())?),
            None => None,
        };
        let downloads = tempfile_in(&self.work)?;
        let mut sources: Vec<Source> = Vec::new();
        let mut local = Vec::new();
        for w in &words {
            if w.starts_with("http://") || w.starts_with("https://") {
                if verb != "ADD" {
                    return Err(fail(format!("{verb} does not fetch URLs ({w}); use ADD")));
                }
                sources.push(self.download(w, &downloads, &dest_word).await?);
            } else {
                local.push(w.clone());
            }
        }
        let (src_root, from_context) = match &source_mount {
            Some(m) => (m.root(), false),
            None => (self.context.to_path_buf(), true),
        };
        // Finding and hashing the sources reads every byte of them: off the async workers.
        let (sources, digest) = {
            let src_root = src_root.clone();
            tokio::task::spawn_blocking(move || -> Result<(Vec<Source>, String)> {
                if !local.is_empty() {
                    sources.extend(
                        copy::find_sources(&src_root, &local, from_context)
                            .map_err(|e| fail(e.to_string()))?,
                    );
                }
                let digest = copy::sources_digest(&sources)?;
                Ok((sources, digest))
            })
            .await
            .map_err(|e| anyhow!("hashing a COPY's sources: {e}"))??
        };
        // As dockerd: the destination is a directory when several files match (a wildcard
        // matching one file copies it to the destination's own name).
        let several = sources.len() > 1;
        if several && !dest_word.ends_with('/') {
            return Err(fail(format!(
                "When using {verb} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let text = format!("{verb} {flags}{digest} in {dest_word} ");
        let cc = self.nop_config(state, &text);
        if let Some(img) = self.cached(cur, &cc) {
            self.hit(img, cur);
            return Ok(());
        }

        let target = Mounted::new(&self.b.store, &self.work, cur.as_ref())?;
        let root = target.root();
        let workdir = state.config.working_dir.clone().unwrap_or_default();
        let dest = Destination::find(&root, &sources, &dest_word, &workdir);
        let (uid, gid) = match &chown {
            Some(spec) => copy::resolve_chown(&root, spec).map_err(|e| fail(format!("{e:#}")))?,
            None => (0, 0),
        };
        let place = Placement { uid, gid, mode };
        let mut archives = Vec::new();
        let mut plain = Vec::new();
        for s in sources {
            let is_local_add = verb == "ADD" && s.path.starts_with(&src_root) && from_context;
            match is_local_add.then(|| archive_kind(&s.path)).transpose()? {
                Some(Some(kind)) => archives.push((s, kind)),
                _ => plain.push(s),
            }
        }
        let agent = self.b.containers.agent_exe().to_path_buf();
        let job = CopyJob {
            plain,
            archives,
            dest,
            place,
        };
        let store = self.b.store.clone();
        let limit = self.req.max_layer;
        let verb = verb.to_string();
        let (layer, target) = tokio::task::spawn_blocking(move || {
            let layer = copy_layer(&agent, &target, &job, &store, limit, &verb);
            (layer, target)
        })
        .await
        .map_err(|e| anyhow!("a COPY step's task failed: {e}"))?;
        let layer = layer?;
        drop(target);
        drop(source_mount);
        let _ = fs::remove_dir_all(&downloads);
        let created_by = cc.cmd.clone().unwrap_or_default().join(" ");
        self.commit(state, cur, &cc, created_by, Some(&layer), None)
    }

    /// WORKDIR's directory, made (0755, root's) when the image lacks it; an image that has it
    /// gets no layer.
    pub(super) async fn workdir_step(
        &mut self,
        state: &StageState,
        cur: &mut Option<Image>,
        cc: &crate::images::model::RunConfig,
        created_by: String,
    ) -> Result<()> {
        let dir = state.config.working_dir.clone().unwrap_or_default();
        let target = Mounted::new(&self.b.store, &self.work, cur.as_ref())?;
        let root = target.root();
        if copy::resolve_in_root(&root, &dir, true).is_ok_and(|p| p.is_dir()) {
            drop(target);
            return self.commit(state, cur, cc, created_by, None, None);
        }
        let agent = self.b.containers.agent_exe().to_path_buf();
        let store = self.b.store.clone();
        let limit = self.req.max_layer;
        let lowers = target.lowers.clone();
        let upper = target.paths.upper();
        let rel = PathBuf::from(dir.trim_start_matches('/'));
        let layer = tokio::task::spawn_blocking(move || -> Result<_> {
            let place = Placement {
                uid: 0,
                gid: 0,
                mode: None,
            };
            put(&agent, &root, "/", |w| {
                copy::write_copy(&[], &rel, true, true, place, w).map(drop)
            })
            .map_err(|e| fail(format!("WORKDIR failed: {e:#}")))?;
            ingest_changes(
                &store,
                &Upper {
                    dir: &upper,
                    lowers: &lowers,
                    skip: &[],
                },
                "of a WORKDIR step",
                limit,
            )
        })
        .await
        .map_err(|e| anyhow!("a WORKDIR step's task failed: {e}"))??;
        drop(target);
        self.commit(state, cur, cc, created_by, Some(&layer), None)
    }

    /// ADD's URL: fetched into `dir` under the name the URL's path ends with (or the
    /// destination's, when that names a file), mode 0600 as docker gives it.
    async fn download(&self, url: &str, dir: &Path, dest: &str) -> Result<Source> {
        fs::create_dir_all(dir)?;
        let parsed = reqwest::Url::parse(url).map_err(|e| fail(format!("ADD {url}: {e}")))?;
        let from_url = parsed
            .path_segments()
            .and_then(|mut s| s.next_back().map(String::from))
            .filter(|s| !s.is_empty());
        let name = if dest.ends_with('/') {
            from_url
        } else {
            Path::new(dest)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .or(from_url)
        }
        .ok_or_else(|| {
            fail(format!(
                "ADD {url}: cannot tell a file name from the URL; give the destination file's name"
            ))
        })?;
        // As a pull's requests: through the engine's proxy (in the VM, the host's way out),
        // and a server that goes silent fails rather than holding the build.
        let cfg = &self.b.puller.registries;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(cfg.read_timeout);
        if let Some(proxy) = &cfg.proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy)?);
        }
        let mut resp = builder
            .build()?
            .get(parsed)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| fail(format!("ADD {url}: {e}")))?;
        let limit = self.req.max_layer;
        let too_large = || {
            fail(format!(
                "ADD {url}: larger than the layer limit of {limit} bytes"
            ))
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let path = dir.join(&name);
        let mut file = tokio::fs::File::create(&path).await?;
        let mut written: u64 = 0;
        // Streamed to the file with a count: a body without a length cannot fill memory.
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fail(format!("ADD {url}: {e}")))?
        {
            written += chunk.len() as u64;
            if written > limit {
                return Err(too_large());
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        drop(file);
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        Ok(Source {
            path,
            shown: url.to_string(),
        })
    }
}
