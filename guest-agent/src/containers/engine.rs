//! The containers the agent knows: create, start, stop, kill, remove, wait, and getting them
//! back after an agent restart. Each running container is held by its shim (see `shim.rs`);
//! this side keeps the records and reacts to exits.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerConfig, ContainerCreateBody};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::record::{now_rfc3339, Record, State, Status};
use super::rootfs::{self, Paths};
use super::shim::{self, ExitInfo, ShimConfig, Started};
use super::{links, names, security, spec, user};
use crate::api::http::ApiError;
use crate::images::store::Store;
use crate::network::{self, EndpointConfig, Mode, Networks};

const RECORD_FILE: &str = "container.json";
pub const LOG_FILE: &str = "container.log";

pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    rec: Mutex<Record>,
    /// Bumped on every change of state; waiters and followers watch it.
    changed: watch::Sender<u64>,
    /// One lifecycle operation at a time per container.
    op: Arc<tokio::sync::Mutex<()>>,
}

impl Container {
    pub fn record(&self) -> Record {
        self.rec.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn status(&self) -> Status {
        self.rec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state
            .status
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    pub fn paths(&self) -> Paths {
        Paths::new(&self.dir)
    }

    fn update(&self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let snapshot = {
            let mut r = self.rec.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut r);
            r.clone()
        };
        let res = save(&self.dir, &snapshot);
        self.changed.send_modify(|g| *g += 1);
        res
    }

    fn shim_socket(&self) -> Result<super::sockpath::SocketPath> {
        super::sockpath::socket_path(&self.dir, shim::SOCKET_FILE)
            .context("the supervisor's socket path")
    }

    /// One request to the shim; its one-line answer.
    pub async fn shim_request(&self, line: &str) -> Result<String> {
        let sock = self.shim_socket()?;
        let mut s = tokio::net::UnixStream::connect(&sock.path)
            .await
            .context("connecting to the container's supervisor")?;
        s.write_all(format!("{line}\n").as_bytes()).await?;
        let mut reply = String::new();
        tokio::io::BufReader::new(s).read_line(&mut reply).await?;
        let reply = reply.trim();
        match reply.strip_prefix("error ") {
            Some(e) => Err(anyhow!("{e}")),
            None => Ok(reply.to_string()),
        }
    }

    /// A stream into the container's stdin (the shim forwards it).
    pub async fn stdin_stream(&self) -> Result<tokio::net::UnixStream> {
        let sock = self.shim_socket()?;
        let mut s = tokio::net::UnixStream::connect(&sock.path)
            .await
            .context("connecting to the container's supervisor")?;
        s.write_all(b"stdin\n").await?;
        Ok(s)
    }
}

fn save(dir: &Path, rec: &Record) -> Result<()> {
    let data = serde_json::to_vec_pretty(rec)?;
    let tmp = dir.join(".container.json.tmp");
    if let Err(e) = std::fs::write(&tmp, data) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, dir.join(RECORD_FILE)).context("saving container record")?;
    Ok(())
}

#[derive(Default)]
struct Index {
    by_id: BTreeMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

pub struct Containers {
    pub events: super::events::Events,
    dir: PathBuf,
    runtime_root: PathBuf,
    images: Arc<Store>,
    index: Mutex<Index>,
    agent_exe: PathBuf,
    /// Whether containers need the hook that makes their cgroup v1 mounts read-only.
    cgroup_v1: bool,
    pub networks: Arc<Networks>,
    /// In the VM a killed QEMU takes the guest's page cache with it: flush what a container
    /// wrote as it ends, so that a finished container's files survive (set by main).
    flush_on_exit: std::sync::atomic::AtomicBool,
}

pub struct RootfsGuard {
    paths: Paths,
    _op: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for RootfsGuard {
    fn drop(&mut self) {
        let _ = rootfs::unmount_rootfs(&self.paths);
    }
}

pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// Flush the filesystem holding `dir` (the whole data disk, in the VM).
fn syncfs(dir: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(dir) {
        // SAFETY: syncfs on a descriptor we own.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

impl Containers {
    pub fn set_flush_on_exit(&self, on: bool) {
        self.flush_on_exit
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn open(root: &Path, images: Arc<Store>, networks: Arc<Networks>) -> Result<Arc<Self>> {
        let dir = root.join("containers");
        let runtime_root = root.join("runtime");
        for d in [&dir, &runtime_root] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            // Logs, configs (environment, secrets in it) and the supervisors' sockets are
            // root's business only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", d.display()))?;
        }
        super::spec::prepare_cgroup_parent();
        let agent_exe = std::env::current_exe().context("finding the agent's own binary")?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let raw = match std::fs::read(path.join(RECORD_FILE)) {
                Ok(r) => r,
                // A create that died before its record landed, or a removal that died after
                // the record went: nothing to keep, but its mounts must go first (a pinned
                // network namespace would keep the directory, and the namespace, forever).
                Err(_) => {
                    let _ = rootfs::unmount_rootfs(&Paths::new(&path));
                    crate::network::link::remove_netns(&path.join("netns"));
                    let _ = std::fs::remove_dir_all(&path);
                    continue;
                }
            };
            let rec: Record = match serde_json::from_slice(&raw) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        "skipping unreadable container record {}: {e}",
                        path.display()
                    );
                    continue;
                }
            };
            index.names.insert(rec.name.clone(), rec.id.clone());
            let c = Arc::new(Container {
                id: rec.id.clone(),
                dir: path,
                rec: Mutex::new(rec),
                changed: watch::channel(0).0,
                op: Arc::new(tokio::sync::Mutex::new(())),
            });
            index.by_id.insert(c.id.clone(), c);
        }
        Ok(Arc::new(Self {
            events: Default::default(),
            dir,
            runtime_root,
            images,
            index: Mutex::new(index),
            agent_exe,
            cgroup_v1: super::cgroup_ro::needed(),
            flush_on_exit: Default::default(),
            networks,
        }))
    }

    /// After an agent (re)start: find the shims of running containers again, record the exits
    /// that happened meanwhile, and apply restart policies as docker does at daemon start.
    pub async fn recover(self: &Arc<Self>) {
        for c in self.all() {
            let rec = c.record();
            if rec.state.status.is_live() || rec.state.status == Status::Restarting {
                if rec.state.shim_pid > 0
                    && process_start_time(rec.state.shim_pid as i32) == Some(rec.state.shim_start)
                {
                    if let Some(net) = &rec.net {
                        self.networks.adopt(&rec.id, &rec.name, net).await;
                    }
                    self.watch_shim(c.clone(), rec.state.shim_pid as i32);
                } else {
                    // Recorded before the API answers, so that no client sees it running.
                    self.clone().on_exit(c, true).await;
                }
            } else if restart_on_boot(&rec) {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.start(&c).await {
                        tracing::warn!("restarting {}: {}", c.id, e.message);
                    }
                });
            }
        }
        self.networks.sweep_stale().await;
    }

    /// A network's connect or disconnect of container `container_id`, as docker reports it.
    fn emit_network(&self, action: &str, network_id: &str, container_id: &str) {
        let Ok(n) = self.networks.get(network_id) else {
            return;
        };
        let attrs = HashMap::from([
            ("container".to_string(), container_id.to_string()),
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]);
        self.events.emit_network(action, &n.id, attrs);
    }

    /// A container event with docker's attributes (name, image, labels, and `extra`).
    fn emit(&self, action: &str, c: &Container, extra: &[(&str, String)]) {
        let rec = c.record();
        let mut attrs: HashMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.name.clone());
        attrs.insert("image".into(), rec.config.image.clone().unwrap_or_default());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.emit(action, &c.id, attrs);
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .values()
            .cloned()
            .collect()
    }

    /// docker's lookup: full ID, name, then unique ID prefix.
    pub fn get(&self, name: &str) -> Result<Arc<Container>, ApiError> {
        let idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = idx.by_id.get(name) {
            return Ok(c.clone());
        }
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(id) = idx.names.get(bare) {
            if let Some(c) = idx.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = idx
                .by_id
                .range(name.to_string()..)
                .take_while(|(k, _)| k.starts_with(name));
            if let Some((_, c)) = found.next() {
                if found.next().is_some() {
                    return Err(ApiError::not_found(format!(
                        "multiple IDs found with provided prefix: {name}"
                    )));
                }
                return Ok(c.clone());
            }
        }
        Err(ApiError::not_found(format!("No such container: {name}")))
    }

    pub fn image_in_use(&self, image_id: &str) -> Option<(String, Status)> {
        self.all().into_iter().find_map(|c| {
            let r = c.record();
            (r.image_id == image_id).then(|| (r.id.clone(), r.state.status))
        })
    }

    pub fn create(
        &self,
        body: ContainerCreateBody,
        name: Option<&str>,
    ) -> Result<(String, Vec<String>), ApiError> {
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("config.Image is required: say which image to run")
            })?;
        let image = self
            .images
            .resolve(&image_name)
            .map_err(|e| ApiError::not_found(e.to_string()))?;
        let mut host_config = body.host_config.clone().unwrap_or_default();
        validate_host_config(&host_config)?;
        for l in host_config.links.iter().flatten() {
            let link = links::parse(l).map_err(|e| ApiError::bad_request(e.to_string()))?;
            self.get(&link.name).map_err(|_| {
                ApiError::not_found(format!(
                    "could not get container for {0}: No such container: {0}",
                    link.name
                ))
            })?;
        }
        let user_config = config_of(&body);
        let run = image.config.config.clone().unwrap_or_default();
        let config = merge_config(user_config, &run, &image_name);
        let (path, args) = command_of(&body, &run)?;
        if host_config.init.unwrap_or(false) && !Path::new(spec::INIT_BINARY).exists() {
            return Err(ApiError::bad_request(format!(
                "--init needs {}; install Debian's tini package",
                spec::INIT_BINARY
            )));
        }
        if host_config
            .network_mode
            .as_deref()
            .is_none_or(|m| m.is_empty())
        {
            host_config.network_mode = Some("default".into());
        }
        let networks = self.members_of(&body, &host_config)?;
        let exposed = config.exposed_ports.clone().unwrap_or_default();
        network::ports::requests(&host_config, &exposed).map_err(ApiError::bad_request)?;

        let id = new_id();
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !names::valid(n) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let n = n.trim_start_matches('/').to_string();
                if let Some(other) = idx.names.get(&n) {
                    return Err(ApiError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => {
                let seed = u64::from_str_radix(&id[..16], 16).unwrap_or(7);
                names::generate(seed, |n| idx.names.contains_key(n))
            }
        };
        let rec = Record {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image_id: image.record.id.clone(),
            path,
            args,
            config,
            host_config,
            state: State::default(),
            restart_count: 0,
            layers: image
                .record
                .layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect(),
            networks,
            net: None,
            link_env: Vec::new(),
        };
        let dir = self.dir.join(&id);
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(&dir)?;
            rootfs::prepare(&Paths::new(&dir))?;
            std::fs::File::create(dir.join(LOG_FILE))?;
            save(&dir, &rec)
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::internal(format!("creating the container: {e:#}")));
        }
        idx.names.insert(name, id.clone());
        let c = Arc::new(Container {
            id: id.clone(),
            dir,
            rec: Mutex::new(rec),
            changed: watch::channel(0).0,
            op: Arc::new(tokio::sync::Mutex::new(())),
        });
        idx.by_id.insert(id.clone(), c.clone());
        drop(idx);
        self.emit("create", &c, &[]);
        let mut warnings = Vec::new();
        let hc = &c.record().host_config;
        let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports.unwrap_or(false);
        if publishes && network::mode_of(hc.network_mode.as_deref().unwrap_or("")) == Mode::Host {
            warnings.push("Published ports are discarded when using host network mode".into());
        }
        Ok((id, warnings))
    }

    /// The networks a new container joins: the one its network mode names (the default
    /// bridge for "default"), then any other the request lists, each with its aliases and
    /// requested address, checked as docker checks them.
    fn members_of(
        &self,
        body: &ContainerCreateBody,
        hc: &bollard::models::HostConfig,
    ) -> Result<Vec<(String, EndpointConfig)>, ApiError> {
        let mode = hc.network_mode.as_deref().unwrap_or("default");
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        match network::mode_of(mode) {
            Mode::Host | Mode::Container(_) => return Ok(Vec::new()),
            Mode::Own if mode == "none" => return Ok(Vec::new()),
            Mode::Own => {}
        }
        let primary_key = if mode == "default" { "bridge" } else { mode };
        let primary = self.networks.get(primary_key)?;
        if primary.driver == "null" {
            return Ok(Vec::new());
        }
        let mut keys: Vec<&String> = endpoints.keys().collect();
        // The mode's own network first: it gets eth0 and the default route.
        keys.sort_by_key(|k| !(k.as_str() == "default" || *k == mode || *k == &primary.name));
        let mut out: Vec<(String, EndpointConfig)> = Vec::new();
        for key in keys {
            let es = &endpoints[key];
            let n = if key == "default" || key == mode {
                primary.clone()
            } else {
                self.networks.get(key)?
            };
            let cfg = endpoint_config(es)?;
            check_endpoint(&n, &cfg)?;
            if !out.iter().any(|(id, _)| *id == n.id) {
                out.push((n.id.clone(), cfg));
            }
        }
        if !out.iter().any(|(id, _)| *id == primary.id) {
            out.insert(0, (primary.id.clone(), EndpointConfig::default()));
        }
        Ok(out)
    }

    /// The container's network for a start: its own namespace wired to its networks, the
    /// host's (None), or another container's.
    async fn join_network(
        &self,
        c: &Arc<Container>,
        rec: &Record,
        hostname: &str,
    ) -> Result<(Option<PathBuf>, Option<network::NetState>)> {
        match network::mode_of(rec.host_config.network_mode.as_deref().unwrap_or("")) {
            Mode::Host => Ok((None, None)),
            Mode::Container(other) => {
                let o = self.get(&other).map_err(|e| anyhow!(e.message))?;
                let orec = o.record();
                let ns = orec
                    .net
                    .as_ref()
                    .and_then(|n| n.netns.clone())
                    .filter(|_| orec.state.status.is_live())
                    .ok_or_else(|| {
                        anyhow!("cannot join network namespace of a non running container: {other} is not running")
                    })?;
                Ok((Some(ns), orec.net.clone()))
            }
            Mode::Own => {
                let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
                let ports =
                    network::ports::requests(&rec.host_config, &exposed).map_err(|e| anyhow!(e))?;
                let joining = network::Joining {
                    id: &rec.id,
                    name: &rec.name,
                    hostname,
                    dir: &c.dir,
                    members: &rec.networks,
                    ports: &ports,
                };
                let state = self
                    .networks
                    .attach(&joining)
                    .await
                    .map_err(|e| anyhow!(e.message))?;
                let saved = c.update(|r| r.net = Some(state.clone()));
                if let Err(e) = saved {
                    self.networks.detach(&rec.id, &state).await;
                    return Err(e);
                }
                for ep in &state.endpoints {
                    self.emit_network("connect", &ep.network_id, &rec.id);
                }
                Ok((state.netns.clone(), Some(state)))
            }
        }
    }

    /// Undo the container's network (after its end, or a failed start).
    async fn release_network(&self, c: &Container) {
        if let Some(net) = c.record().net {
            self.networks.detach(&c.id, &net).await;
            let _ = c.update(|r| r.net = None);
            for ep in &net.endpoints {
                self.emit_network("disconnect", &ep.network_id, &c.id);
            }
        }
    }

    /// `docker network connect`: now if it runs, at its next start otherwise.
    pub async fn connect(
        &self,
        c: &Arc<Container>,
        n: &crate::network::store::Network,
        cfg: EndpointConfig,
    ) -> Result<(), ApiError> {
        let _op = c.op.lock().await;
        let rec = c.record();
        let mode = rec.host_config.network_mode.clone().unwrap_or_default();
        if network::mode_of(&mode) != Mode::Own || mode == "none" {
            return Err(ApiError::bad_request(format!(
                "container cannot be connected to network {}: it uses network mode {mode}",
                n.name
            )));
        }
        check_endpoint(n, &cfg)?;
        if rec.networks.iter().any(|(id, _)| *id == n.id) {
            return Err(ApiError::new(
                hyper::StatusCode::FORBIDDEN,
                format!(
                    "endpoint with name {} already exists in network {}",
                    rec.name, n.name
                ),
            ));
        }
        if rec.state.status.is_live() {
            let mut st = rec.net.clone().unwrap_or_default();
            let hostname = rec.config.hostname.clone().unwrap_or_default();
            let joining = network::Joining {
                id: &rec.id,
                name: &rec.name,
                hostname: &hostname,
                dir: &c.dir,
                members: &[],
                ports: &[],
            };
            self.networks
                .connect_live(&joining, n, &cfg, &mut st)
                .await?;
            c.update(|r| r.net = Some(st))
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            self.emit_network("connect", &n.id, &rec.id);
        }
        c.update(|r| r.networks.push((n.id.clone(), cfg)))
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        Ok(())
    }

    pub async fn disconnect(
        &self,
        c: &Arc<Container>,
        n: &crate::network::store::Network,
    ) -> Result<(), ApiError> {
        let _op = c.op.lock().await;
        let rec = c.record();
        if !rec.networks.iter().any(|(id, _)| *id == n.id) {
            return Err(ApiError::new(
                hyper::StatusCode::FORBIDDEN,
                format!(
                    "container {} is not connected to network {}",
                    rec.id, n.name
                ),
            ));
        }
        if let Some(mut st) = rec.net.clone().filter(|_| rec.state.status.is_live()) {
            self.networks.disconnect_live(&rec.id, &n.id, &mut st).await;
            c.update(|r| r.net = Some(st))
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            self.emit_network("disconnect", &n.id, &rec.id);
        }
        c.update(|r| r.networks.retain(|(id, _)| *id != n.id))
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        Ok(())
    }

    /// Containers (any state) on network `id`.
    pub fn on_network(&self, id: &str) -> Vec<Arc<Container>> {
        self.all()
            .into_iter()
            .filter(|c| c.record().networks.iter().any(|(n, _)| n == id))
            .collect()
    }

    fn lower_dirs(&self, rec: &Record) -> Result<Vec<PathBuf>> {
        rec.layers
            .iter()
            .rev()
            .map(|d| {
                let p = self.images.layer_dir(d)?;
                if !p.is_dir() {
                    anyhow::bail!("layer {d} of the container's image is missing from the store");
                }
                Ok(p)
            })
            .collect()
    }

    /// Start a created or exited container. Ok(false) when it was already running.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<bool, ApiError> {
        let _op = c.op.lock().await;
        let status = c.status();
        if status.is_live() {
            return Ok(false);
        }
        if status == Status::Removing || status == Status::Dead {
            return Err(ApiError::conflict(format!(
                "cannot start container {}: it is being removed",
                c.id
            )));
        }
        match self.launch(c).await {
            Ok(()) => Ok(true),
            Err(e) => {
                let msg = format!("{e:#}");
                let code = if msg.contains("executable file not found") {
                    127
                } else if msg.contains("permission denied") {
                    126
                } else {
                    128
                };
                let _ = rootfs::unmount_rootfs(&c.paths());
                self.release_network(c).await;
                let auto_remove = c.record().host_config.auto_remove.unwrap_or(false);
                let _ = c.update(|r| {
                    r.state.exit_code = code;
                    r.state.error = msg.clone();
                    if r.state.status != Status::Created {
                        r.state.status = Status::Exited;
                    }
                });
                if auto_remove {
                    drop(_op);
                    let _ = self.remove(c, true).await;
                }
                Err(ApiError::bad_request(msg))
            }
        }
    }

    /// The `/etc/hosts` lines and environment of a starting container's `--link`s. Each
    /// target must be running; its address is the one on a network the two share, else its
    /// first.
    fn resolve_links(
        &self,
        rec: &Record,
        net: Option<&network::NetState>,
    ) -> Result<(String, Vec<String>)> {
        let mut hosts = String::new();
        let mut env = Vec::new();
        let mine: Vec<&str> = net
            .map(|n| n.endpoints.iter().map(|e| e.network_id.as_str()).collect())
            .unwrap_or_default();
        let on_default_bridge = net
            .and_then(|n| n.endpoints.first())
            .and_then(|e| self.networks.get(&e.network_id).ok())
            .is_some_and(|n| n.name == "bridge");
        for l in rec.host_config.links.iter().flatten() {
            let link = links::parse(l)?;
            let target = self
                .get(&link.name)
                .map_err(|_| anyhow!("could not get container for {}", link.name))?
                .record();
            let endpoints = target
                .net
                .as_ref()
                .filter(|_| target.state.status.is_live())
                .map(|n| n.endpoints.clone())
                .unwrap_or_default();
            let Some(ep) = endpoints
                .iter()
                .find(|e| mine.contains(&e.network_id.as_str()))
                .or(endpoints.first())
            else {
                bail!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    target.name,
                    rec.name,
                    link.alias
                );
            };
            let ip = ep.ip.to_string();
            hosts.push_str(&links::hosts_line(&link, &target, &ip));
            // On user-defined networks a link is only a name, as in docker.
            if on_default_bridge {
                env.extend(links::env(&link, &rec.name, &target, &ip));
            }
        }
        Ok((hosts, env))
    }

    async fn launch(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let rec = c.record();
        let paths = c.paths();
        let lowers = self.lower_dirs(&rec)?;
        rootfs::mount_rootfs(&paths, &lowers)?;
        let user_spec = rec.config.user.clone().unwrap_or_default();
        let group_add = rec.host_config.group_add.clone().unwrap_or_default();
        let resolved = user::resolve_user(&paths.rootfs(), &user_spec, &group_add)
            .map_err(|e| anyhow!("{e}"))?;
        let hostname = rec
            .config
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| rec.short_id().to_string());
        let (netns, net) = self.join_network(c, &rec, &hostname).await?;
        let (mut hosts, resolv) =
            self.networks
                .etc_files(net.as_ref(), &hostname, &rec.host_config);
        let (link_hosts, link_env) = self.resolve_links(&rec, net.as_ref())?;
        hosts.push_str(&link_hosts);
        let rec = if rec.link_env != link_env {
            c.update(|r| r.link_env = link_env)?;
            c.record()
        } else {
            rec
        };
        rootfs::write_etc_files(&c.dir, &hostname, &hosts, &resolv)?;
        let bundle = c.dir.join("bundle");
        std::fs::create_dir_all(&bundle)?;
        let spec = spec::build(&spec::SpecInput {
            rec: &rec,
            rootfs: &paths.rootfs(),
            dir: &c.dir,
            user: &resolved,
            hostname: &hostname,
            netns: netns.as_deref(),
            cgroup_ro_hook: self.cgroup_v1.then_some(self.agent_exe.as_path()),
        })?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec)?)?;
        let console_size = rec
            .host_config
            .console_size
            .as_ref()
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0)
            .map(|s| (s[0] as u16, s[1] as u16));
        let cfg = ShimConfig {
            id: rec.id.clone(),
            bundle,
            runtime_root: self.runtime_root.clone(),
            log: c.log_path(),
            tty: rec.tty(),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            console_size,
            cgroup: spec::cgroup_path(&rec.id),
        };
        std::fs::write(c.dir.join(shim::CONFIG_FILE), serde_json::to_vec(&cfg)?)?;
        let _ = std::fs::remove_file(c.dir.join(shim::EXIT_FILE));
        // A stale runtime state (a shim killed mid-way) would make the create fail.
        let _ = std::fs::remove_dir_all(self.runtime_root.join(&rec.id));

        let (shim_pid, started) = self.spawn_shim(&c.dir).await?;
        match started {
            Started::Running { pid } => {
                let shim_start = process_start_time(shim_pid).unwrap_or(0);
                c.update(|r| {
                    r.state.status = Status::Running;
                    r.state.pid = pid as i64;
                    r.state.exit_code = 0;
                    r.state.error.clear();
                    r.state.oom_killed = false;
                    r.state.started_at = now_rfc3339();
                    r.state.finished_at = super::record::ZERO_TIME.into();
                    r.state.shim_pid = shim_pid as i64;
                    r.state.shim_start = shim_start;
                    r.state.stopped_by_user = false;
                })?;
                self.watch_shim(c.clone(), shim_pid);
                self.emit("start", c, &[]);
                Ok(())
            }
            Started::Failed { error } => Err(anyhow!(error)),
        }
    }

    async fn spawn_shim(&self, dir: &Path) -> Result<(i32, Started)> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shim.log"))?;
        let mut cmd = std::process::Command::new(&self.agent_exe);
        cmd.arg("shim")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; the shim leaves the agent's session so that
        // signals aimed at the agent's process group do not reach it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .context("starting the container's supervisor")?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("supervisor has no report pipe"))?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(120), reader.read_line(&mut line))
            .await
            .map_err(|_| anyhow!("the container's supervisor did not report within 120s"))??;
        // The child is reaped by tokio when it exits; we follow it through a pidfd.
        drop(child);
        if line.trim().is_empty() {
            let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no message").to_string();
            return Err(anyhow!("the container's supervisor failed: {last}"));
        }
        let started: Started =
            serde_json::from_str(line.trim()).context("reading the supervisor's report")?;
        Ok((pid, started))
    }

    fn watch_shim(self: &Arc<Self>, c: Arc<Container>, shim_pid: i32) {
        let me = self.clone();
        tokio::spawn(async move {
            wait_for_process(shim_pid).await;
            me.on_exit(c, false).await;
        });
    }

    /// The shim is gone: record how the container ended, then apply --rm / --restart.
    async fn on_exit(self: Arc<Self>, c: Arc<Container>, recovered: bool) {
        let info: Option<ExitInfo> = std::fs::read(c.dir.join(shim::EXIT_FILE))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok());
        let _ = rootfs::unmount_rootfs(&c.paths());
        if self
            .flush_on_exit
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let dir = c.dir.clone();
            let _ = tokio::task::spawn_blocking(move || syncfs(&dir)).await;
        }
        self.release_network(&c).await;
        let rec = c.record();
        let res = c.update(|r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            match &info {
                Some(i) => {
                    r.state.exit_code = i.exit_code;
                    r.state.oom_killed = i.oom_killed;
                    r.state.finished_at = i.finished_at.clone();
                }
                None => {
                    // The supervisor died without a word (killed with the host?): docker's
                    // answer for a container whose status is unknowable.
                    r.state.exit_code = 255;
                    r.state.error = "the container's supervisor ended unexpectedly".into();
                    r.state.finished_at = now_rfc3339();
                }
            }
        });
        if let Err(e) = res {
            tracing::warn!("recording the exit of {}: {e:#}", c.id);
        }
        let ended = c.record().state;
        if ended.oom_killed {
            self.emit("oom", &c, &[]);
        }
        self.emit("die", &c, &[("exitCode", ended.exit_code.to_string())]);
        if rec.host_config.auto_remove.unwrap_or(false) {
            if let Err(e) = self.remove(&c, true).await {
                tracing::warn!("auto-removing {}: {}", c.id, e.message);
            }
            return;
        }
        let rec = c.record();
        if should_restart(&rec, recovered) {
            let delay = Duration::from_millis(100u64 << rec.restart_count.clamp(0, 9));
            let _ = c.update(|r| {
                r.restart_count += 1;
                r.state.status = Status::Restarting;
            });
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if c.status() != Status::Restarting {
                    return;
                }
                // It stays "restarting" until it runs again (or fails to): a client never sees
                // it exited between two runs.
                if let Err(e) = me.start(&c).await {
                    tracing::warn!("restarting {}: {}", c.id, e.message);
                }
            });
        }
    }

    pub async fn kill(&self, c: &Container, signal: i32, by_user: bool) -> Result<(), ApiError> {
        if !c.status().is_live() {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                c.record().name,
                c.id
            )));
        }
        if by_user {
            let _ = c.update(|r| r.state.stopped_by_user = true);
        }
        if c.status() == Status::Paused && signal == libc::SIGKILL {
            // A frozen process cannot die: thaw it so the SIGKILL lands.
            let _ = self.set_paused(c, false).await;
        }
        c.shim_request(&format!("kill {signal}"))
            .await
            .map_err(|e| ApiError::internal(format!("signalling the container: {e:#}")))?;
        self.emit("kill", c, &[("signal", signal.to_string())]);
        Ok(())
    }

    /// docker stop: the stop signal, then SIGKILL after the timeout. Ok(false): not running.
    pub async fn stop(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<i32>,
    ) -> Result<bool, ApiError> {
        let stopped = self.stop_running(c, timeout, signal).await?;
        if stopped {
            self.emit("stop", c, &[]);
        }
        Ok(stopped)
    }

    async fn stop_running(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<i32>,
    ) -> Result<bool, ApiError> {
        if !c.status().is_live() {
            let _ = c.update(|r| {
                if r.state.status == Status::Restarting {
                    r.state.status = Status::Exited;
                }
                r.state.stopped_by_user = true;
            });
            return Ok(false);
        }
        let rec = c.record();
        let sig = match signal {
            Some(s) => s,
            None => parse_signal(rec.config.stop_signal.as_deref().unwrap_or("SIGTERM"))?,
        };
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = c.subscribe();
        if sig != libc::SIGKILL {
            if let Err(e) = self.kill(c, sig, true).await {
                if c.status().is_live() {
                    return Err(e);
                }
            }
            let ended = async {
                while c.status().is_live() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if timeout < 0 {
                ended.await;
                return Ok(true);
            }
            if tokio::time::timeout(Duration::from_secs(timeout as u64), ended)
                .await
                .is_ok()
            {
                return Ok(true);
            }
        }
        if c.status().is_live() {
            let _ = self.kill(c, libc::SIGKILL, true).await;
        }
        while c.status().is_live() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        Ok(true)
    }

    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<(), ApiError> {
        if c.status().is_live() {
            if !force {
                let verb = if c.status() == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is {verb}: stop the container before removing or force remove",
                    c.record().name
                )));
            }
            self.stop(c, Some(0), Some(libc::SIGKILL)).await?;
        }
        let _op = c.op.lock().await;
        if !self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .contains_key(&c.id)
        {
            return Ok(());
        }
        let before = c.status();
        let _ = c.update(|r| r.state.status = Status::Removing);
        // A start cut short (the agent killed mid-way) can leave a pinned network namespace
        // the record never learnt of; it would hold the directory.
        crate::network::link::remove_netns(&c.dir.join("netns"));
        let removed = rootfs::unmount_rootfs(&c.paths())
            .map_err(|e| ApiError::internal(format!("{e:#}")))
            .and_then(|()| {
                std::fs::remove_dir_all(&c.dir)
                    .map_err(|e| ApiError::internal(format!("removing {}: {e}", c.dir.display())))
            });
        if let Err(e) = removed {
            // Not stuck in "Removal In Progress": as it was, so that `rm` can be tried again.
            let _ = c.update(|r| r.state.status = before);
            return Err(e);
        }
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        idx.by_id.remove(&c.id);
        let name = c.record().name;
        if idx.names.get(&name) == Some(&c.id) {
            idx.names.remove(&name);
        }
        drop(idx);
        // Waiters for "removed" see the sender's generation bump; the record stays readable.
        c.changed.send_modify(|g| *g += 1);
        self.emit("destroy", c, &[]);
        Ok(())
    }

    pub fn is_removed(&self, c: &Container) -> bool {
        !self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .contains_key(&c.id)
    }

    /// docker wait: the exit code once the condition holds.
    pub async fn wait(&self, c: &Arc<Container>, cond: WaitCondition) -> i64 {
        let mut rx = c.subscribe();
        let started_at = c.record().state.started_at;
        let first_status = c.status();
        loop {
            let rec = c.record();
            let done = match cond {
                WaitCondition::NotRunning => {
                    !rec.state.status.is_live() && rec.state.status != Status::Restarting
                }
                WaitCondition::NextExit => {
                    // An exit after the call (a later start, then its end), or the end of the
                    // run that was going on.
                    rec.state.status == Status::Exited
                        && (first_status.is_live() || rec.state.started_at != started_at)
                }
                WaitCondition::Removed => self.is_removed(c),
            };
            if done {
                return rec.state.exit_code;
            }
            if rx.changed().await.is_err() {
                return rec.state.exit_code;
            }
        }
    }

    pub fn rename(&self, c: &Container, new: &str) -> Result<(), ApiError> {
        if !names::valid(new) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let new = new.trim_start_matches('/').to_string();
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let old = c.record().name;
        if old == new {
            return Err(ApiError::bad_request(
                "Renaming a container with the same name as its current name",
            ));
        }
        if let Some(other) = idx.names.get(&new) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        idx.names.remove(&old);
        idx.names.insert(new.clone(), c.id.clone());
        drop(idx);
        c.update(|r| r.name = new)
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        self.emit("rename", c, &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    pub async fn set_paused(&self, c: &Container, pause: bool) -> Result<(), ApiError> {
        let status = c.status();
        let name = c.record().name;
        if pause && status != Status::Running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if !pause && status != Status::Paused {
            return Err(ApiError::conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        let state = self.runtime_root.join(&c.id);
        let res = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut rc =
                libcontainer::container::Container::load(state).map_err(|e| anyhow!("{e}"))?;
            if pause {
                rc.pause().map_err(|e| anyhow!("{e}"))
            } else {
                rc.resume().map_err(|e| anyhow!("{e}"))
            }
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        res.map_err(|e| {
            ApiError::internal(format!(
                "{} {name}: {e:#}",
                if pause { "pausing" } else { "unpausing" }
            ))
        })?;
        c.update(|r| {
            r.state.status = if pause {
                Status::Paused
            } else {
                Status::Running
            };
        })
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        self.emit(if pause { "pause" } else { "unpause" }, c, &[]);
        Ok(())
    }

    /// The container's root filesystem, mounted for a copy. A stopped container's is
    /// mounted for the length of the guard (which also keeps it from starting meanwhile).
    pub async fn rootfs_for_copy(
        &self,
        c: &Arc<Container>,
    ) -> Result<(PathBuf, Option<RootfsGuard>), ApiError> {
        let paths = c.paths();
        let guard = c.op.clone().lock_owned().await;
        let rec = c.record();
        if rec.state.status.is_live() && rec.state.pid > 0 {
            return Ok((PathBuf::from(format!("pid:{}", rec.state.pid)), None));
        }
        let lowers = self
            .lower_dirs(&rec)
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        rootfs::mount_rootfs(&paths, &lowers).map_err(|e| ApiError::internal(format!("{e:#}")))?;
        Ok((paths.rootfs(), Some(RootfsGuard { paths, _op: guard })))
    }

    pub fn agent_exe(&self) -> &Path {
        &self.agent_exe
    }

    pub fn runtime_root(&self) -> &Path {
        &self.runtime_root
    }

    pub fn runtime_state_dir(&self, id: &str) -> PathBuf {
        self.runtime_root.join(id)
    }
}

fn endpoint_config(es: &bollard::models::EndpointSettings) -> Result<EndpointConfig, ApiError> {
    let ipv4 = es
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv4_address.clone())
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {a}")))
        })
        .transpose()?;
    Ok(EndpointConfig {
        aliases: es.aliases.clone().unwrap_or_default(),
        ipv4,
    })
}

/// docker reserves aliases and fixed addresses to user-defined networks.
fn check_endpoint(
    n: &crate::network::store::Network,
    cfg: &EndpointConfig,
) -> Result<(), ApiError> {
    if !n.is_bridge() {
        return Err(ApiError::bad_request(format!(
            "container cannot be connected to network {} (driver {})",
            n.name, n.driver
        )));
    }
    if !cfg.aliases.is_empty() && n.builtin() {
        return Err(ApiError::bad_request(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    if cfg.ipv4.is_some() && n.builtin() {
        return Err(ApiError::bad_request(
            "user specified IP address is supported on user defined networks only",
        ));
    }
    if let (Some(ip), Some(subnet)) = (cfg.ipv4, n.subnet) {
        if !subnet.contains(&ip) {
            return Err(ApiError::bad_request(format!(
                "no configured subnet or ip-range contain the IP address {ip} (network {} is {subnet})",
                n.name
            )));
        }
    }
    Ok(())
}

fn validate_host_config(hc: &bollard::models::HostConfig) -> Result<(), ApiError> {
    if let Some(m) = hc.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(ApiError::bad_request("Minimum memory limit allowed is 6MB"));
        }
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(ApiError::bad_request(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(p) = &hc.restart_policy {
        use bollard::models::RestartPolicyNameEnum as R;
        let name = p.name.unwrap_or(R::EMPTY);
        if p.maximum_retry_count.unwrap_or(0) < 0 {
            return Err(ApiError::bad_request(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        if !matches!(name, R::EMPTY | R::NO) && hc.auto_remove.unwrap_or(false) {
            return Err(ApiError::bad_request(
                "Conflicting options: --restart and --rm: a container removed on exit cannot be restarted",
            ));
        }
        if p.maximum_retry_count.unwrap_or(0) > 0 && name != R::ON_FAILURE {
            return Err(ApiError::bad_request(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
    }
    security::resolve_caps(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        hc.privileged.unwrap_or(false),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    super::security_opt::parse(hc.security_opt.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    for dest in hc.tmpfs.iter().flatten().map(|(k, _)| k) {
        if !dest.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "invalid mount path for --tmpfs: {dest:?} must be absolute"
            )));
        }
    }
    Ok(())
}

fn config_of(b: &ContainerCreateBody) -> ContainerConfig {
    ContainerConfig {
        hostname: b.hostname.clone(),
        domainname: b.domainname.clone(),
        user: b.user.clone(),
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: b.exposed_ports.clone(),
        tty: b.tty,
        open_stdin: b.open_stdin,
        stdin_once: b.stdin_once,
        env: b.env.clone(),
        cmd: b.cmd.clone(),
        healthcheck: b.healthcheck.clone(),
        args_escaped: b.args_escaped,
        image: b.image.clone(),
        volumes: b.volumes.clone(),
        working_dir: b.working_dir.clone(),
        entrypoint: b.entrypoint.clone(),
        network_disabled: b.network_disabled,
        on_build: b.on_build.clone(),
        labels: b.labels.clone(),
        stop_signal: b.stop_signal.clone(),
        stop_timeout: b.stop_timeout,
        shell: b.shell.clone(),
    }
}

/// The image's defaults under the user's settings, as docker merges them.
fn merge_config(
    mut c: ContainerConfig,
    run: &crate::images::model::RunConfig,
    image: &str,
) -> ContainerConfig {
    let mut env: Vec<String> = run.env.clone().unwrap_or_default();
    for kv in c.env.take().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or(&kv).to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    c.env = Some(env);
    if c.user.as_deref().is_none_or(str::is_empty) {
        c.user = Some(run.user.clone().unwrap_or_default());
    }
    if c.working_dir.as_deref().is_none_or(str::is_empty) {
        c.working_dir = Some(run.working_dir.clone().unwrap_or_default());
    }
    let mut labels: HashMap<String, String> =
        run.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
    let mut ports: Vec<String> = run
        .exposed_ports
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for p in c.exposed_ports.take().unwrap_or_default() {
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    c.exposed_ports = (!ports.is_empty()).then_some(ports);
    if c.stop_signal.as_deref().is_none_or(str::is_empty) {
        c.stop_signal = run.stop_signal.clone();
    }
    if c.cmd.as_ref().is_none_or(|v| v.is_empty()) && user_entrypoint(&c).is_none() {
        c.cmd = run.cmd.clone();
    }
    if c.entrypoint.is_none() {
        c.entrypoint = run.entrypoint.clone();
    } else if user_entrypoint(&c).is_none() {
        c.entrypoint = None;
    }
    c.image = Some(image.to_string());
    c.tty = Some(c.tty.unwrap_or(false));
    c.open_stdin = Some(c.open_stdin.unwrap_or(false));
    c.stdin_once = Some(c.stdin_once.unwrap_or(false));
    c
}

/// The user's own non-empty entrypoint (`--entrypoint ""` clears the image's).
fn user_entrypoint(c: &ContainerConfig) -> Option<&Vec<String>> {
    c.entrypoint.as_ref().filter(|e| !clears_entrypoint(e))
}

/// `--entrypoint ""` arrives as `[]` or `[""]`: it clears the image's entrypoint.
fn clears_entrypoint(e: &[String]) -> bool {
    e.iter().all(|s| s.is_empty())
}

fn command_of(
    b: &ContainerCreateBody,
    run: &crate::images::model::RunConfig,
) -> Result<(String, Vec<String>), ApiError> {
    let user_cmd = b.cmd.clone().filter(|c| !c.is_empty());
    let user_ep = b.entrypoint.as_ref();
    let (ep, cmd) = match user_ep {
        Some(e) if !clears_entrypoint(e) => (e.clone(), user_cmd.unwrap_or_default()),
        Some(_) => (
            Vec::new(),
            user_cmd.or_else(|| run.cmd.clone()).unwrap_or_default(),
        ),
        None => (
            run.entrypoint.clone().unwrap_or_default(),
            user_cmd.or_else(|| run.cmd.clone()).unwrap_or_default(),
        ),
    };
    let mut all = ep.into_iter().chain(cmd);
    let path = all
        .next()
        .ok_or_else(|| ApiError::bad_request("No command specified"))?;
    Ok((path, all.collect()))
}

fn should_restart(rec: &Record, recovered: bool) -> bool {
    use bollard::models::RestartPolicyNameEnum as R;
    let Some(p) = &rec.host_config.restart_policy else {
        return false;
    };
    if rec.state.stopped_by_user && !recovered {
        return false;
    }
    match p.name.unwrap_or(R::EMPTY) {
        R::ALWAYS => !rec.state.stopped_by_user,
        R::UNLESS_STOPPED => !rec.state.stopped_by_user,
        R::ON_FAILURE => {
            let max = p.maximum_retry_count.unwrap_or(0);
            rec.state.exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
        _ => false,
    }
}

/// At agent start: `always` comes back even if it had been stopped by the agent going away;
/// `unless-stopped` only if the user had not stopped it.
fn restart_on_boot(rec: &Record) -> bool {
    use bollard::models::RestartPolicyNameEnum as R;
    if rec.state.status != Status::Exited || rec.state.stopped_by_user {
        return false;
    }
    matches!(
        rec.host_config.restart_policy.as_ref().and_then(|p| p.name),
        Some(R::ALWAYS) | Some(R::UNLESS_STOPPED)
    ) && rec.state.error.contains("supervisor ended")
}

pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Resolves when the process is gone (it need not be our child).
async fn wait_for_process(pid: i32) {
    use rustix::process::{pidfd_open, Pid as RPid, PidfdFlags};
    let Some(rpid) = RPid::from_raw(pid) else {
        return;
    };
    let fd = match pidfd_open(rpid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return, // already gone
    };
    // SAFETY: the AsyncFd owns the pidfd, so it stays open for as long as it is registered.
    match unsafe { tokio::io::unix::AsyncFd::register(fd) } {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(_) => {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// docker's signal names ("SIGTERM", "TERM", "15", "sigkill").
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let known: &[(&str, i32)] = &[
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("IOT", libc::SIGIOT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("POLL", libc::SIGPOLL),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
    ];
    if let Some((_, n)) = known.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    if let Some(off) = name
        .strip_prefix("RTMIN+")
        .and_then(|v| v.parse::<i32>().ok())
    {
        if (0..=30).contains(&off) {
            return Ok(34 + off);
        }
    }
    Err(ApiError::bad_request(format!("Invalid signal: {s}")))
}
