//! The classic builder: a Dockerfile's stages run step by step into images, as dockerd's
//! legacy builder does — each step an image whose parent is the step before (so `history`
//! reads as docker's and the cache can find it), each RUN a real container of the engine
//! (same runtime, default bridge), each COPY/ADD a layer written through the engine's
//! chrooted archive helper into an overlay of the step's image (or made straight from the
//! sources when what that would leave can be told beforehand: `copy_direct.rs`).
//!
//! The cache is the classic builder's: a step is reused when an image whose parent is the
//! current one recorded the same step (its `container_config`, whose `Cmd` names the step, and
//! for COPY/ADD the digest of the files' names, modes and contents).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use oci_client::secrets::RegistryAuth;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::copy;
use super::dockerfile::{self, parse_trigger, Instruction, Step};
use super::instructions::{StageState, DEFAULT_SHELL};
use crate::containers::Containers;
use crate::images::child::Child;
use crate::images::holds::Hold;
use crate::images::model::{Platform, RunConfig};
use crate::images::progress::Progress;
use crate::images::pull::{PullRequest, Puller};
use crate::images::reference::ImageRef;
use crate::images::store::{sha256_digest, tempfile_in, Image, LayerRecord, Store};

/// What `POST /build` asked for.
#[derive(Debug, Default, Clone)]
pub struct BuildRequest {
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    /// Fully qualified tag keys, and the names as given (for `Successfully tagged`).
    pub tags: Vec<(String, String)>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    pub network_mode: Option<String>,
    /// `--rm=false`: a RUN step's container is kept after it succeeded (a failed step's is
    /// always removed: the build leaves nothing half done behind).
    pub keep_containers: bool,
    /// Credentials for pulling bases, by registry (`X-Registry-Config`).
    pub auths: HashMap<String, RegistryAuth>,
    /// The largest layer a step may make, as a pulled layer's limit.
    pub max_layer: u64,
}

/// A build that failed, as docker's stream reports it (`errorDetail`).
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// A RUN's exit code.
    pub code: Option<i64>,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Failure>() {
            Ok(f) => f,
            Err(e) => Failure {
                message: format!("{e:#}"),
                code: None,
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A build failure in the words the client sees (no exit code: not a RUN's).
pub(super) fn fail(message: impl Into<String>) -> anyhow::Error {
    anyhow!(Failure {
        message: message.into(),
        code: None,
    })
}

pub struct Builder {
    pub containers: Arc<Containers>,
    pub store: Arc<Store>,
    pub puller: Arc<Puller>,
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// A finished stage, for `FROM <stage>` and `COPY --from`.
struct StageOut {
    name: Option<String>,
    image: Option<Image>,
}

/// One build in progress (its RUN and COPY steps are in `run_step.rs` and `copy_step.rs`).
pub(super) struct Run<'a> {
    pub(super) b: &'a Builder,
    pub(super) req: &'a BuildRequest,
    pub(super) context: &'a Path,
    out: &'a UnboundedSender<Value>,
    escape: char,
    step: usize,
    total: usize,
    globals: BTreeMap<String, Option<String>>,
    /// Every ARG a stage declared (for the unused build-arg warning).
    declared: BTreeSet<String>,
    stages: Vec<StageOut>,
    /// Where steps mount their overlays.
    pub(super) work: PathBuf,
    /// The images the build stands on (bases, `COPY --from` sources, each step's result),
    /// held until it ends so that a prune between two steps cannot take one (`holds.rs`).
    hold: std::sync::Mutex<Hold>,
}

impl Builder {
    /// Build the Dockerfile in the unpacked `context`, streaming docker's messages to `out`.
    pub async fn build(
        &self,
        req: &BuildRequest,
        context: &Path,
        out: &UnboundedSender<Value>,
    ) -> Result<Image, Failure> {
        let work = tempfile_in(&self.store.tmp_dir())?;
        std::fs::create_dir_all(&work)
            .map_err(|e| fail(format!("creating the build's work directory: {e}")))?;
        let result = self.run(req, context, out, &work).await;
        let _ = std::fs::remove_dir_all(&work);
        result.map_err(Failure::from)
    }

    async fn run(
        &self,
        req: &BuildRequest,
        context: &Path,
        out: &UnboundedSender<Value>,
        work: &Path,
    ) -> Result<Image> {
        let name = &req.dockerfile;
        let text = read_dockerfile(context, name)?;
        drop_ignored_build_files(context, name)?;
        let text = String::from_utf8_lossy(&text);
        let mut file = dockerfile::parse(&text).map_err(|e| fail(e.docker_message(name)))?;

        let target = match &req.target {
            Some(t) => Some(
                file.stages
                    .iter()
                    .position(|s| matches!(&s.from.instruction, Instruction::From { name: Some(n), .. } if n.eq_ignore_ascii_case(t)))
                    .ok_or_else(|| fail(format!("failed to reach build target {t} in Dockerfile")))?,
            ),
            None => None,
        };
        let last = target.unwrap_or(file.stages.len().saturating_sub(1));
        file.stages.truncate(last + 1);
        if !req.labels.is_empty() {
            // `--label` is a LABEL step at the end of the target stage, as the classic
            // builder adds it.
            let pairs: Vec<(String, String)> = req
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), quote_word(v)))
                .collect();
            let shown: Vec<String> = req
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", dockerfile::goish::go_quote(v)))
                .collect();
            if let Some(stage) = file.stages.last_mut() {
                stage.steps.push(Step {
                    line: 0,
                    original: format!("LABEL {}", shown.join(" ")),
                    instruction: Instruction::Label(pairs),
                });
            }
        }
        let total =
            file.global_args.len() + file.stages.iter().map(|s| 1 + s.steps.len()).sum::<usize>();
        let mut run = Run {
            b: self,
            req,
            context,
            out,
            escape: file.escape,
            step: 0,
            total,
            globals: BTreeMap::new(),
            declared: BTreeSet::new(),
            stages: Vec::new(),
            work: work.to_path_buf(),
            hold: std::sync::Mutex::new(Hold::new(&self.store)),
        };
        for step in &file.global_args {
            run.announce(step);
            if let Instruction::Arg(decls) = &step.instruction {
                for (k, default) in decls {
                    let default = match default {
                        Some(d) => Some(
                            dockerfile::expand_word(d, run.escape, &|n| {
                                run.globals.get(n).cloned().flatten()
                            })
                            .map_err(|e| fail(e.to_string()))?,
                        ),
                        None => None,
                    };
                    let value = match req.build_args.get(k) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default,
                    };
                    run.globals.insert(k.clone(), value);
                }
            }
        }
        let mut image = None;
        for stage in &file.stages {
            image = run.stage(stage).await?;
        }
        let image =
            image.ok_or_else(|| fail("No image was generated. Is your Dockerfile empty?"))?;
        let mut unused: Vec<&String> = req.build_args.keys().filter(|k| !run.used_arg(k)).collect();
        unused.sort();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            run.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        run.still_wanted()?;
        let _ = out.send(json!({"aux": {"ID": image.record.id}}));
        run.say(format!("Successfully built {}\n", short(&image.record.id)));
        for (key, shown) in &req.tags {
            self.store.tag(&image.record.id, key)?;
            run.say(format!("Successfully tagged {shown}\n"));
        }
        if req.quiet {
            let _ = out.send(json!({"stream": format!("{}\n", image.record.id)}));
        }
        Ok(image)
    }
}

/// The build's client went away.
pub(super) fn canceled() -> anyhow::Error {
    fail("the build was canceled: its client went away")
}

/// The largest Dockerfile read (docker's own limit is in the same range).
const MAX_DOCKERFILE: u64 = 16 << 20;

/// The Dockerfile from the context: resolved inside it, a regular file (a device or a FIFO
/// planted there could block or never end), bounded.
fn read_dockerfile(context: &Path, name: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let missing = || fail(format!("Cannot locate specified Dockerfile: {name}"));
    let path = copy::resolve_in_root(context, name, true)?;
    let md = std::fs::symlink_metadata(&path).map_err(|_| missing())?;
    if !md.is_file() {
        return Err(fail(format!(
            "the Dockerfile ({name}) is not a regular file"
        )));
    }
    let mut text = Vec::new();
    std::fs::File::open(&path)
        .map_err(|_| missing())?
        .take(MAX_DOCKERFILE + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_DOCKERFILE {
        return Err(fail(format!(
            "the Dockerfile ({name}) is larger than {MAX_DOCKERFILE} bytes"
        )));
    }
    Ok(text)
}

/// docker's `removeDockerfile`: the CLI sends `.dockerignore` and the Dockerfile even when
/// `.dockerignore` excludes them (the engine must read them); excluded, they are taken out of
/// what the steps see, so that `COPY . /app` copies neither. Both are top-level names in the
/// usual case, where the CLI's legacy match is the daemon's.
fn drop_ignored_build_files(context: &Path, dockerfile: &str) -> Result<()> {
    use skiff_common::dockerignore::{read_patterns, Matcher};
    let path = copy::resolve_in_root(context, ".dockerignore", true)?;
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(format!("reading the context's .dockerignore: {e}"))),
    };
    let patterns = read_patterns(&String::from_utf8_lossy(&text));
    let m =
        Matcher::new(&patterns).map_err(|e| fail(format!("the context's .dockerignore: {e}")))?;
    for name in [".dockerignore", dockerfile] {
        if m.matches_legacy(name) {
            let path = copy::resolve_in_root(context, name, false)?;
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(fail(format!("taking {name} out of the context: {e}")))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A value as a Dockerfile word that expands back to itself.
fn quote_word(v: &str) -> String {
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' {
            s.push_str("'\"'\"'");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

impl Run<'_> {
    pub(super) fn out_sender(&self) -> UnboundedSender<Value> {
        self.out.clone()
    }

    pub(super) fn say(&self, text: impl Into<String>) {
        if !self.req.quiet {
            let _ = self.out.send(json!({"stream": text.into()}));
        }
    }

    /// Hold the image `id` until the build ends (one not stored yet too: a step's image is
    /// held before it is recorded, so that no prune sees it unheld).
    fn hold_id(&self, id: &str) {
        self.hold
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .image(id);
    }

    /// Hold `img` until the build ends, and look again: the image as it is now, or `None`
    /// when a deletion took it between the lookup and the hold.
    fn keep(&self, img: &Image) -> Option<Image> {
        self.hold_id(&img.record.id);
        self.b.store.get(&img.record.id)
    }

    /// The image `name` names (pulled when missing, or with `pull`), held until the build
    /// ends; looked up once more if a deletion took it before the hold did.
    async fn held_image(&self, name: &str, pull: bool) -> Result<Image> {
        for _ in 0..2 {
            let img = self.image(name, pull).await?;
            if let Some(img) = self.keep(&img) {
                return Ok(img);
            }
        }
        Err(fail(format!(
            "the image {name} was removed each time the build took it; build again"
        )))
    }

    /// Stop the build when its client has gone away (its stream's receiver was dropped), as
    /// docker cancels a build whose client disconnects: checked before each step and before
    /// tagging, and raced against a RUN's command (`run_step`). Steps already done stay as
    /// the cache.
    pub(super) fn still_wanted(&self) -> Result<()> {
        if self.out.is_closed() {
            return Err(canceled());
        }
        Ok(())
    }

    /// Resolves once the build's client has gone away.
    pub(super) async fn client_gone(&self) {
        self.out.closed().await
    }

    fn announce(&mut self, step: &Step) {
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}",
            self.step, self.total, step.original
        ));
        self.say("\n");
    }

    fn used_arg(&self, name: &str) -> bool {
        // Docker's predefined proxy args never warn.
        super::instructions::PROXY_ARGS.contains(&name)
            || self.globals.contains_key(name)
            || self.declared.contains(name)
    }

    async fn stage(&mut self, stage: &dockerfile::Stage) -> Result<Option<Image>> {
        self.still_wanted()?;
        self.announce(&stage.from);
        let Instruction::From {
            image,
            name,
            platform,
        } = &stage.from.instruction
        else {
            bail!("a stage that does not start with FROM");
        };
        if let Some(p) = platform {
            let p = self.expand_global(p)?;
            let wanted = Platform::parse(&p).map_err(|e| fail(e.to_string()))?;
            if !wanted.matches(&Platform::host()) {
                return Err(fail(format!(
                    "FROM --platform={p}: skiff builds for this machine's platform ({}) only",
                    Platform::host()
                )));
            }
        }
        let base_name = self.expand_global(image)?;
        let base = self.base_image(&base_name).await?;
        if let Some(img) = &base {
            self.say(format!(" ---> {}\n", short(&img.record.id)));
        }
        let mut config = base
            .as_ref()
            .and_then(|i| i.config.config.clone())
            .unwrap_or_default();
        let triggers: Vec<String> = config
            .extra
            .remove("OnBuild")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let mut state = StageState::new(config, self.escape);
        let mut cur = base;
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in &triggers {
                let step = parse_trigger(t).map_err(|e| fail(e.message.clone()))?;
                self.dispatch(&step, &mut state, &mut cur).await?;
            }
        }
        for step in &stage.steps {
            self.still_wanted()?;
            self.announce(step);
            self.dispatch(step, &mut state, &mut cur).await?;
        }
        self.stages.push(StageOut {
            name: name.clone(),
            image: cur.clone(),
        });
        Ok(cur)
    }

    fn expand_global(&self, word: &str) -> Result<String> {
        dockerfile::expand_word(word, self.escape, &|n| {
            self.globals.get(n).cloned().flatten()
        })
        .map_err(|e| fail(e.to_string()))
    }

    fn earlier_stage(&self, name: &str) -> Option<&StageOut> {
        self.stages.iter().rev().find(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// A stage's base: an earlier stage by name, `scratch`, or an image (pulled when missing
    /// or with `--pull`).
    async fn base_image(&self, name: &str) -> Result<Option<Image>> {
        if let Some(s) = self.earlier_stage(name) {
            return Ok(s.image.clone());
        }
        if name == "scratch" {
            return Ok(None);
        }
        self.held_image(name, self.req.pull).await.map(Some)
    }

    /// `COPY --from=`: an earlier stage by name or number, else an image.
    pub(super) async fn stage_image(&self, name: &str) -> Result<Option<Image>> {
        if let Some(s) = self.earlier_stage(name) {
            return Ok(s.image.clone());
        }
        if let Ok(i) = name.parse::<usize>() {
            return match self.stages.get(i) {
                Some(s) => Ok(s.image.clone()),
                None => Err(fail(format!(
                    "invalid from flag value {i}: refers to current build stage"
                ))),
            };
        }
        self.held_image(name, false).await.map(Some)
    }

    pub(super) async fn image(&self, name: &str, pull: bool) -> Result<Image> {
        if !pull {
            if let Ok(img) = self.b.store.resolve(name) {
                return Ok(img);
            }
        }
        let reference = ImageRef::parse(name).map_err(|e| fail(format!("{name}: {e}")))?;
        let auth = self
            .req
            .auths
            .get(reference.registry())
            .cloned()
            .unwrap_or(RegistryAuth::Anonymous);
        let progress = if self.req.quiet {
            Progress::silent()
        } else {
            Progress::new(self.out.clone())
        };
        self.b
            .puller
            .pull(
                PullRequest {
                    reference,
                    platform: None,
                    auth,
                },
                progress,
            )
            .await
            .map_err(|e| fail(e.to_string()))
    }

    /// The image whose parent is `cur` and whose recorded step is `cc`, if the cache has it.
    pub(super) fn cached(&self, cur: &Option<Image>, cc: &RunConfig) -> Option<Image> {
        if self.req.no_cache {
            return None;
        }
        let want = serde_json::to_value(cc).ok()?;
        let candidates: Vec<String> = match cur {
            Some(p) => self.b.store.children(&p.record.id),
            None => self
                .b
                .store
                .images()
                .into_iter()
                .filter(|i| i.record.parent.is_none() && i.record.manifest_digest.is_empty())
                .map(|i| i.record.id)
                .collect(),
        };
        let depth = cur.as_ref().map_or(0, |c| c.config.history.len()) + 1;
        candidates
            .iter()
            .filter_map(|id| self.b.store.get(id))
            .find(|img| {
                img.config.history.len() == depth
                    && img.config.extra.get("container_config") == Some(&want)
            })
            // Deleted before it was held: a miss, and the step runs.
            .and_then(|img| self.keep(&img))
    }

    pub(super) fn hit(&self, img: Image, cur: &mut Option<Image>) {
        self.say(" ---> Using cache\n");
        self.say(format!(" ---> {}\n", short(&img.record.id)));
        *cur = Some(img);
    }

    /// Store the step's image: `state`'s config over `cur`, with `layer` if the step made one.
    pub(super) fn commit(
        &self,
        state: &StageState,
        cur: &mut Option<Image>,
        cc: &RunConfig,
        created_by: String,
        layer: Option<&LayerRecord>,
        container: Option<&str>,
    ) -> Result<()> {
        let bytes = Child {
            parent: cur.as_ref(),
            config: &state.config,
            container_config: Some(cc),
            container,
            layer,
            created_by,
            author: state.author.as_deref(),
            comment: None,
        }
        .config_json()?;
        let mut layers = cur
            .as_ref()
            .map(|c| c.record.layers.clone())
            .unwrap_or_default();
        layers.extend(layer.cloned());
        self.hold_id(&sha256_digest(&bytes));
        let img = self.b.store.commit_local_image(
            &bytes,
            layers,
            cur.as_ref().map(|c| c.record.id.clone()),
            &[],
        )?;
        self.say(format!(" ---> {}\n", short(&img.record.id)));
        *cur = Some(img);
        Ok(())
    }

    pub(super) fn nop_config(&self, state: &StageState, text: &str) -> RunConfig {
        let mut cc = state.config.clone();
        cc.cmd = Some(
            DEFAULT_SHELL
                .iter()
                .map(|s| s.to_string())
                .chain([format!("#(nop) {text}")])
                .collect(),
        );
        cc
    }

    async fn dispatch(
        &mut self,
        step: &Step,
        state: &mut StageState,
        cur: &mut Option<Image>,
    ) -> Result<()> {
        match &step.instruction {
            Instruction::Run(form) => self.run_step(form, state, cur).await,
            Instruction::Copy(args) => self.copy_step("COPY", args, state, cur).await,
            Instruction::Add(args) => self.copy_step("ADD", args, state, cur).await,
            Instruction::From { .. } => Err(fail("FROM inside a stage")),
            other => {
                if let Instruction::Arg(decls) = other {
                    for (k, _) in decls {
                        self.declared.insert(k.clone());
                    }
                }
                let text = state
                    .apply(other, &self.req.build_args, &self.globals)
                    .map_err(fail)?;
                let cc = self.nop_config(state, &text);
                if let Some(img) = self.cached(cur, &cc) {
                    self.hit(img, cur);
                    return Ok(());
                }
                let created_by = cc.cmd.clone().unwrap_or_default().join(" ");
                if let (Instruction::Workdir(_), Some(_)) = (other, cur.as_ref()) {
                    // dockerd's classic builder makes the directory, in a layer of its own.
                    return self.workdir_step(state, cur, &cc, created_by).await;
                }
                self.commit(state, cur, &cc, created_by, None, None)
            }
        }
    }
}
