//! `/containers/...`: the container endpoints of the Docker Engine API.

use std::sync::Arc;

use bollard::models::ContainerCreateBody;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use skiff_common::units::human_duration;
use tokio::sync::mpsc;

use super::backends::{ContainerBackend, ImageBackend, NetworkBackend};
use super::filters::{glob_match, Filters, PruneFilters};
use super::http::{empty, json, ApiError, Query, Resp};
use super::streams::{self, AttachOptions, FollowSpec};
use super::Ctx;
use crate::containers::health;
use crate::containers::logs::{self, Record};
use crate::containers::record::{Record as CRecord, Status, ZERO_TIME};
use crate::containers::{Container, Signal, WaitCondition};
use crate::images::model::parse_time;

pub fn create(ctx: &Ctx, q: &Query, body: &[u8]) -> Result<Resp, ApiError> {
    let parsed: ContainerCreateBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    // The MAC address where clients before API 1.44 put it (the model no longer has it; newer
    // clients give it per endpoint, where the engine refuses it).
    let raw: Value = serde_json::from_slice(body).unwrap_or_default();
    if raw["MacAddress"].as_str().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::bad_request(
            "skiff cannot set a container's MAC address: drop --mac-address (each endpoint gets a generated one)",
        ));
    }
    let (id, warnings) = ctx.containers.create(parsed, q.get("name"))?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": warnings}),
    ))
}

pub async fn start(ctx: &Ctx, c: Arc<Container>) -> Result<Resp, ApiError> {
    if ctx.containers.start(&c).await? {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Ok(empty(StatusCode::NOT_MODIFIED))
    }
}

fn timeout_of(q: &Query) -> Result<Option<i64>, ApiError> {
    q.get("t")
        .or_else(|| q.get("timeout"))
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("invalid stop timeout {t:?}: give whole seconds"))
            })
        })
        .transpose()
}

pub async fn stop(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let signal = q.get("signal").map(Signal::parse).transpose()?;
    if ctx.containers.stop(&c, timeout_of(q)?, signal).await? {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Ok(empty(StatusCode::NOT_MODIFIED))
    }
}

pub async fn restart(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let signal = q.get("signal").map(Signal::parse).transpose()?;
    ctx.containers.stop(&c, timeout_of(q)?, signal).await?;
    ctx.containers.start(&c).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn kill(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let sig = Signal::parse(q.get("signal").unwrap_or("SIGKILL"))?;
    ctx.containers.kill_and_wait(&c, sig).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `docker update`: limits into the running container's cgroup, and the restart policy.
pub async fn update(ctx: &Ctx, c: Arc<Container>, body: &[u8]) -> Result<Resp, ApiError> {
    let parsed: bollard::models::ContainerUpdateBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid update config: {e}")))?;
    let warnings = ctx.containers.update(&c, &parsed).await?;
    Ok(json(
        StatusCode::OK,
        &json!({"Warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) }}),
    ))
}

pub async fn remove(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    ctx.containers
        .remove(&c, q.flag("force"), q.flag("v"))
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Answers at once with the headers (so the client knows the wait is registered before it
/// starts the container, as docker's CLI relies on), the body when the condition holds.
pub fn wait(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let cond = match q.get("condition").unwrap_or("not-running") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?}: use not-running, next-exit or removed"
            )))
        }
    };
    let engine = ctx.containers.clone();
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let code = engine.wait(&c, cond).await;
        // Like dockerd, a start failure is reported by the start call, not again here.
        let _ = tx.send(json!({"Error": Value::Null, "StatusCode": code}));
    });
    Ok(super::http::json_stream(rx))
}

pub fn rename(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("rename needs a new name (?name=)"))?;
    ctx.containers.rename(&c, name)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn resize(_ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let (h, w) = size_of(q)?;
    if !c.status().is_live() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    c.shim_request(&format!("resize {h} {w}"))
        .await
        .map_err(|e| ApiError::internal(format!("resizing: {e:#}")))?;
    Ok(empty(StatusCode::OK))
}

pub fn size_of(q: &Query) -> Result<(u16, u16), ApiError> {
    let parse = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid {k}: give a number of cells")))
    };
    Ok((parse("h")?, parse("w")?))
}

pub fn attach(
    ctx: &Ctx,
    c: Arc<Container>,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let status = c.status();
    // Logs only (`logs=1&stream=0`): dockerd sends what the stopped container wrote and closes.
    let logs_only = q.flag("logs") && !q.flag("stream");
    if (status == Status::Exited || status == Status::Dead) && !logs_only {
        return Err(ApiError::conflict(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if status == Status::Paused {
        return Err(ApiError::conflict(
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    let opts = AttachOptions {
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        logs: q.flag("logs"),
        stream: q.flag("stream"),
        detach_keys: streams::parse_detach_keys(q.get("detachKeys").unwrap_or("ctrl-p,ctrl-q"))?,
    };
    Ok(streams::attach(ctx.containers.clone(), c, req, opts))
}

/// docker's time filters: RFC 3339, unix seconds (with fraction), or a duration ago.
fn parse_log_time(s: &str) -> Result<i64, ApiError> {
    if let Ok(f) = s.parse::<f64>() {
        return Ok((f * 1e9) as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    Err(ApiError::bad_request(format!(
        "invalid time {s:?}: use RFC 3339 or unix seconds"
    )))
}

pub fn logs(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let since = q
        .get("since")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(parse_log_time)
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(parse_log_time)
        .transpose()?;
    let (offset, skip) = match q.get("tail").unwrap_or("all") {
        "all" | "" => (0, 0),
        n => {
            let n: usize = n.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid tail {n:?}: give a number of lines or all"))
            })?;
            logs::tail_start(&c.log_path(), n)
                .map_err(|e| ApiError::internal(format!("reading the log: {e}")))?
        }
    };
    let rec = c.record();
    let tty = rec.tty();
    let timestamps = q.flag("timestamps");
    let (tx, mut rx) = mpsc::channel::<Record>(64);
    tokio::spawn(streams::follow(
        ctx.containers.clone(),
        c,
        FollowSpec {
            offset,
            skip,
            stdout,
            stderr,
            follow: q.flag("follow"),
            wait_for_start: false,
            since_nanos: since,
            until_nanos: until,
        },
        tx,
    ));
    let (btx, brx) = mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let data = streams::encode(&r, tty, timestamps);
            if btx
                .send(Ok(hyper::body::Frame::data(data.into())))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream_from(brx));
    let mut resp = hyper::Response::new(http_body_util::BodyExt::boxed(body));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        }),
    );
    Ok(resp)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn state_json(rec: &CRecord) -> Value {
    let s = &rec.state;
    let mut state = json!({
        "Status": s.status.as_str(),
        "Running": s.status.is_live(),
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
    });
    // Absent without a healthcheck, as docker's.
    if let Some(h) = &s.health {
        state["Health"] = json!(h);
    }
    state
}

pub fn inspect(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let rec = c.record();
    let dir = c.dir.display().to_string();
    let paths = c.paths();
    let lowers: Vec<String> = rec
        .layers
        .iter()
        .rev()
        .filter_map(|d| ctx.store.layer_dir(d).ok())
        .map(|p| p.display().to_string())
        .collect();
    let mut host_config = serde_json::to_value(&rec.host_config).unwrap_or(json!({}));
    host_config["NetworkMode"] = json!(rec
        .host_config
        .network_mode
        .clone()
        .unwrap_or_else(|| "default".into()));
    // Records from before create filled these in: skiff's log and runtime all the same.
    if host_config.get("LogConfig").is_none() {
        host_config["LogConfig"] = json!({"Type": "json-file", "Config": {}});
    }
    if host_config.get("Runtime").is_none() {
        host_config["Runtime"] = json!(crate::containers::engine::RUNTIME);
    }
    let mut body = json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.path,
        "Args": rec.args,
        "State": state_json(&rec),
        "Image": rec.image_id,
        "ResolvConfPath": format!("{dir}/resolv.conf"),
        "HostnamePath": format!("{dir}/hostname"),
        "HostsPath": format!("{dir}/hosts"),
        "LogPath": c.log_path(),
        "Name": format!("/{}", rec.name),
        "RestartCount": rec.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": lowers.join(":"),
                "UpperDir": paths.upper(),
                "WorkDir": paths.work(),
                "MergedDir": paths.rootfs(),
            }
        },
        "Mounts": mounts_view(&*ctx.containers, &rec),
        "Config": serde_json::to_value(&rec.config).unwrap_or(json!({})),
        "NetworkSettings": super::networks::network_settings(&*ctx.containers, &rec),
    });
    if q.flag("size") {
        add_sizes(&mut body, &*ctx.containers, &*ctx.store, &rec);
    }
    Ok(json(StatusCode::OK, &body))
}

/// `SizeRw` (the writable layer) and `SizeRootFs` (that and the image), as the list and
/// inspect give them with `size=1`; computed only then, as it walks the writable layer.
fn add_sizes(
    item: &mut Value,
    containers: &dyn ContainerBackend,
    images: &dyn ImageBackend,
    rec: &CRecord,
) {
    let rw = containers.rw_size(&rec.id);
    let image_size = images
        .resolve(&rec.image_id)
        .map(|i| i.record.size())
        .unwrap_or(0);
    item["SizeRw"] = json!(rw);
    item["SizeRootFs"] = json!(image_size + rw);
}

/// docker's STATUS column text.
pub fn status_text(rec: &CRecord, now: i64) -> String {
    let s = &rec.state;
    let ago = |t: &str| human_duration(now - parse_time(Some(t)));
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => match &s.health {
            Some(h) => format!("Up {} ({})", ago(&s.started_at), health::ps_words(h)),
            None => format!("Up {}", ago(&s.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", ago(&s.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, ago(&s.finished_at)),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => {
            if s.finished_at == ZERO_TIME {
                "Created".into()
            } else {
                format!("Exited ({}) {} ago", s.exit_code, ago(&s.finished_at))
            }
        }
    }
}

/// Which containers `GET /containers/json` shows: docker's `-a`, `-n` and `--filter` rules.
struct Shown<'a> {
    filters: &'a Filters,
    /// `-a` or `-n`: stopped containers too.
    all: bool,
    exited: Vec<i64>,
    /// Image IDs the `ancestor` filter named.
    ancestors: Vec<String>,
    /// Creation times of the `before` and `since` containers.
    before: Option<String>,
    since: Option<String>,
}

const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl<'a> Shown<'a> {
    /// None when `ancestor` names no image we have: nothing can match then.
    fn new(
        filters: &'a Filters,
        all: bool,
        image_id: impl Fn(&str) -> Option<String>,
        created_of: impl Fn(&str) -> Result<String, ApiError>,
    ) -> Result<Option<Self>, ApiError> {
        filters.only(&[
            "status",
            "name",
            "id",
            "ancestor",
            "label",
            "exited",
            "before",
            "since",
            "network",
            "volume",
            "health",
            "isolation",
            "is-task",
            "publish",
            "expose",
        ])?;
        if let Some(s) = filters
            .get("status")
            .iter()
            .find(|s| !STATUSES.contains(&s.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={s}': use created, restarting, running, removing, paused, exited or dead"
            )));
        }
        if let Some(h) = filters
            .get("health")
            .iter()
            .find(|h| !health::FILTER_VALUES.contains(&h.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
        let mut exited = Vec::new();
        for e in filters.get("exited") {
            exited.push(e.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("invalid filter 'exited={e}': give an exit code"))
            })?);
        }
        let ancestors: Vec<String> = filters
            .get("ancestor")
            .iter()
            .filter_map(|a| image_id(a))
            .collect();
        if !filters.get("ancestor").is_empty() && ancestors.is_empty() {
            return Ok(None);
        }
        let first = |k: &str| filters.get(k).first().map(|c| created_of(c)).transpose();
        Ok(Some(Shown {
            filters,
            all,
            exited,
            ancestors,
            before: first("before")?,
            since: first("since")?,
        }))
    }

    fn keeps(&self, rec: &CRecord) -> bool {
        let f = self.filters;
        let st = rec.state.status;
        let status_filter = f.get("status");
        let shown_by_default = st.is_live() || st == Status::Restarting;
        (self.all || !status_filter.is_empty() || shown_by_default || !self.exited.is_empty())
            && f.any("status", |s| s == st.as_str())
            && (self.exited.is_empty()
                || (st == Status::Exited && self.exited.contains(&rec.state.exit_code)))
            && f.any("name", |n| name_matches(n, &rec.name))
            && f.any("id", |i| rec.id.starts_with(i))
            && f.any("health", |h| {
                h == health::filter_value(rec.state.health.as_ref())
            })
            && (self.ancestors.is_empty() || self.ancestors.contains(&rec.image_id))
            && f.labels_match(|k| rec.label(k))
            && f.any("volume", |v| {
                rec.mounts
                    .iter()
                    .any(|m| m.name == v || m.destination == v || m.source == v)
            })
            && self.before.as_ref().is_none_or(|b| rec.created < *b)
            && self.since.as_ref().is_none_or(|s| rec.created > *s)
    }
}

/// A container's mounts as inspect and the list show them.
fn mounts_view(containers: &dyn ContainerBackend, rec: &CRecord) -> Vec<Value> {
    rec.mounts
        .iter()
        .map(|m| crate::containers::mounts::inspect_view(m, |n| containers.volume_path(n)))
        .collect()
}

pub fn list(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let items = list_items(&*ctx.containers, &*ctx.store, &*ctx.containers, q)?;
    Ok(json(StatusCode::OK, &items))
}

/// `GET /containers/json`'s items, newest first.
fn list_items(
    containers: &dyn ContainerBackend,
    images: &dyn ImageBackend,
    networks: &dyn NetworkBackend,
    q: &Query,
) -> Result<Vec<Value>, ApiError> {
    let filters = q.filters()?;
    let limit: i64 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(-1);
    let shown = Shown::new(
        &filters,
        q.flag("all") || limit > 0,
        |a| images.resolve(a).ok().map(|i| i.record.id),
        |name| Ok(containers.record(name)?.created),
    )?;
    let Some(shown) = shown else {
        return Ok(Vec::new());
    };
    let with_size = q.flag("size");
    let mut recs = containers.records();
    recs.sort_by(|a, b| b.created.cmp(&a.created));
    let now = chrono::Utc::now().timestamp();
    let mut out = Vec::new();
    for rec in recs {
        if !shown.keeps(&rec) {
            continue;
        }
        let st = rec.state.status;
        let labels = rec.config.labels.clone().unwrap_or_default();
        let mut item = json!({
            "Id": rec.id,
            "Names": [format!("/{}", rec.name)],
            "Image": rec.config.image.clone().unwrap_or_default(),
            "ImageID": rec.image_id,
            "Command": rec.command_line(),
            "Created": parse_time(Some(&rec.created)),
            "Ports": crate::network::ports::list_ports(
                &rec.config.exposed_ports.clone().unwrap_or_default(),
                &super::networks::published(&rec),
            ),
            "Labels": labels,
            "State": st.as_str(),
            "Status": status_text(&rec, now),
            "HostConfig": {"NetworkMode": rec.host_config.network_mode.clone().unwrap_or_default()},
            "NetworkSettings": {"Networks": super::networks::container_networks(networks, &rec)},
            "Mounts": mounts_view(containers, &rec),
        });
        if with_size {
            add_sizes(&mut item, containers, images, &rec);
        }
        out.push(item);
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(out)
}

/// docker matches the name filter as a regular expression; a plain name is a substring, and
/// we take glob patterns too.
fn name_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim_start_matches('/');
    if let Some(exact) = p.strip_prefix('^').and_then(|r| r.strip_suffix('$')) {
        return name == exact;
    }
    if let Some(prefix) = p.strip_prefix('^') {
        return name.starts_with(prefix);
    }
    if let Some(suffix) = p.strip_suffix('$') {
        return name.ends_with(suffix);
    }
    name.contains(p) || glob_match(p, name)
}

pub async fn prune(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for rec in prunable(&*ctx.containers, q)? {
        let Ok(c) = ctx.containers.get(&rec.id) else {
            continue;
        };
        let size = c.paths().rw_size();
        match ctx.containers.remove(&c, false, false).await {
            Ok(()) => {
                reclaimed += size;
                deleted.push(rec.id);
            }
            // Started, or removed by another request, since it was chosen.
            Err(e) => tracing::info!("prune: keeping {}: {e}", rec.id),
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": reclaimed,
        }),
    ))
}

/// The stopped containers `container prune` removes, by its filters.
fn prunable(containers: &dyn ContainerBackend, q: &Query) -> Result<Vec<CRecord>, ApiError> {
    let prune = PruneFilters::parse(q.get("filters"), &[])?;
    Ok(containers
        .records()
        .into_iter()
        .filter(|rec| {
            matches!(
                rec.state.status,
                Status::Exited | Status::Created | Status::Dead
            ) && prune.admit(parse_time(Some(&rec.created)), |k| rec.label(k))
        })
        .collect())
}

pub fn top(_ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    if !c.status().is_live() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let pids = cgroup_pids(&c.id);
    let args = q.get("ps_args").filter(|a| !a.is_empty()).unwrap_or("-ef");
    let out = std::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ps {args} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| {
        ApiError::internal(format!("Couldn't find PID field in ps output of ps {args}"))
    })?;
    let mut procs = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) may contain spaces: keep it whole.
        let mut row: Vec<String> = fields
            .iter()
            .take(titles.len().saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        row.push(
            fields
                .iter()
                .skip(titles.len() - 1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        procs.push(row);
    }
    Ok(json(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": procs}),
    ))
}

/// The pids in the container's cgroup (v2, or v1's pids/memory hierarchy).
pub fn cgroup_pids(id: &str) -> Vec<i32> {
    let rel = crate::containers::spec::cgroup_path(id);
    let rel = rel.trim_start_matches('/');
    for base in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
    ] {
        let p = format!("{base}/{rel}/cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(&p) {
            return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

pub async fn pause(ctx: &Ctx, c: Arc<Container>, pause: bool) -> Result<Resp, ApiError> {
    ctx.containers.set_paused(&c, pause).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backends::fake::{image, FakeContainers, FakeNetworks, FakeStore};
    use crate::containers::record::sample_record;

    const NOW: i64 = 1_767_323_045; // 2026-01-02T03:04:05Z

    fn rec(name: &str, status: Status, exit_code: i64) -> CRecord {
        let mut r = sample_record();
        r.name = name.into();
        r.id = format!("{:0<64}", name);
        r.state.status = status;
        r.state.exit_code = exit_code;
        r.state.started_at = "2026-01-02T02:04:05Z".into();
        r.state.finished_at = "2026-01-02T03:03:55Z".into();
        r
    }

    #[test]
    fn status_texts_read_as_dockers() {
        let text = |s, code| status_text(&rec("c1", s, code), NOW);
        assert_eq!(text(Status::Created, 0), "Created");
        assert_eq!(text(Status::Running, 0), "Up About an hour");
        assert_eq!(text(Status::Paused, 0), "Up About an hour (Paused)");
        assert_eq!(text(Status::Exited, 137), "Exited (137) 10 seconds ago");
        assert_eq!(text(Status::Restarting, 1), "Restarting (1) 10 seconds ago");
        assert_eq!(text(Status::Removing, 0), "Removal In Progress");
        assert_eq!(text(Status::Dead, 0), "Dead");
        // Exited without ever finishing: created, then its start failed.
        let mut never = rec("c1", Status::Exited, 127);
        never.state.finished_at = ZERO_TIME.into();
        assert_eq!(status_text(&never, NOW), "Created");
    }

    #[test]
    fn health_shows_in_inspect_the_status_and_the_filter_as_docker() {
        use crate::containers::health::{Health, HealthStatus as H};
        let with = |name, status: Option<H>| {
            let mut r = rec(name, Status::Running, 0);
            r.state.health = status.map(|status| Health {
                status,
                failing_streak: 0,
                log: Vec::new(),
            });
            r
        };
        let list = [
            with("ok", Some(H::Healthy)),
            with("bad", Some(H::Unhealthy)),
            with("new", Some(H::Starting)),
            with("plain", None),
        ];
        let texts: Vec<String> = list.iter().map(|r| status_text(r, NOW)).collect();
        assert_eq!(
            texts,
            [
                "Up About an hour (healthy)",
                "Up About an hour (unhealthy)",
                "Up About an hour (health: starting)",
                "Up About an hour"
            ]
        );
        assert_eq!(
            state_json(&list[0])["Health"],
            json!({"Status": "healthy", "FailingStreak": 0, "Log": []})
        );
        assert!(state_json(&list[3]).get("Health").is_none());
        let names = |f: &str| shown(f, false, &list).unwrap();
        assert_eq!(names(r#"{"health":["healthy"]}"#), ["ok"]);
        assert_eq!(names(r#"{"health":{"none":true}}"#), ["plain"]);
        assert_eq!(
            names(r#"{"health":["starting","unhealthy"]}"#),
            ["bad", "new"]
        );
        assert_eq!(
            shown(r#"{"health":["sick"]}"#, false, &list)
                .unwrap_err()
                .message,
            "Unrecognised filter value for health: sick"
        );
    }

    fn shown(filters: &str, all: bool, list: &[CRecord]) -> Result<Vec<String>, ApiError> {
        let f = Filters::parse(Some(filters))?;
        let created_of = |n: &str| {
            list.iter()
                .find(|r| r.name == n)
                .map(|r| r.created.clone())
                .ok_or_else(|| ApiError::not_found(format!("No such container: {n}")))
        };
        let image_id = |a: &str| (a == "busybox").then(|| format!("sha256:{}", "f".repeat(64)));
        Ok(match Shown::new(&f, all, image_id, created_of)? {
            None => Vec::new(),
            Some(s) => list
                .iter()
                .filter(|r| s.keeps(r))
                .map(|r| r.name.clone())
                .collect(),
        })
    }

    #[test]
    fn ps_shows_live_containers_unless_asked_for_all_or_filtered() {
        let mut list = vec![
            rec("up", Status::Running, 0),
            rec("failed", Status::Exited, 2),
            rec("done", Status::Exited, 0),
            rec("again", Status::Restarting, 1),
        ];
        list[1].config.labels = Some([("tier".to_string(), "db".to_string())].into());
        for (i, r) in list.iter_mut().enumerate() {
            r.created = format!("2026-01-0{}T00:00:00Z", i + 1);
        }
        let names = |f: &str, all| shown(f, all, &list).unwrap();
        assert_eq!(names("", false), ["up", "again"]);
        assert_eq!(names("", true), ["up", "failed", "done", "again"]);
        assert_eq!(names(r#"{"status":["exited"]}"#, false), ["failed", "done"]);
        assert_eq!(names(r#"{"exited":["2"]}"#, false), ["failed"]);
        assert_eq!(names(r#"{"name":["^do"]}"#, true), ["done"]);
        assert_eq!(names(r#"{"name":["a"]}"#, true), ["failed", "again"]);
        assert_eq!(names(r#"{"id":["up0"]}"#, true), ["up"]);
        assert_eq!(names(r#"{"label":["tier=db"]}"#, true), ["failed"]);
        assert_eq!(names(r#"{"ancestor":["busybox"]}"#, true).len(), 4);
        assert!(names(r#"{"ancestor":["alpine"]}"#, true).is_empty());
        assert_eq!(names(r#"{"before":["done"]}"#, true), ["up", "failed"]);
        assert_eq!(names(r#"{"since":["failed"]}"#, true), ["done", "again"]);
    }

    #[test]
    fn ps_refuses_filters_it_cannot_apply() {
        let err = |f: &str| shown(f, false, &[]).unwrap_err();
        assert_eq!(
            err(r#"{"colour":["x"]}"#).message,
            "invalid filter 'colour'"
        );
        assert_eq!(
            err(r#"{"status":["asleep"]}"#).message,
            "invalid filter 'status=asleep': use created, restarting, running, removing, paused, exited or dead"
        );
        assert_eq!(
            err(r#"{"exited":["x"]}"#).message,
            "invalid filter 'exited=x': give an exit code"
        );
        let e = shown(
            r#"{"before":["ghost"]}"#,
            false,
            &[rec("up", Status::Running, 0)],
        );
        assert_eq!(e.unwrap_err().status.as_u16(), 404);
    }

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn list_answers_dockers_json_newest_first() {
        let mut web = rec("web", Status::Running, 0);
        web.created = "2026-01-02T00:00:00Z".into();
        web.config.image = Some("busybox".into());
        web.config.labels = Some([("app".to_string(), "shop".to_string())].into());
        web.host_config.network_mode = Some("none".into());
        let mut job = rec("job", Status::Exited, 2);
        job.created = "2026-01-01T00:00:00Z".into();
        let containers = FakeContainers {
            records: vec![job, web],
            rw_sizes: [(format!("{:0<64}", "web"), 7)].into(),
        };
        // Image 15 is sha256:fff…, the records' image, of 1,500 bytes.
        let store = FakeStore::with(vec![image(15, "2024-01-01T00:00:00Z", &[])], &[]);
        let nets = FakeNetworks::with(&[]);
        let items = |query: &str| list_items(&containers, &store, &nets, &q(query)).unwrap();
        let running = items("");
        assert_eq!(running.len(), 1);
        let v = &running[0];
        assert_eq!(v["Names"], json!(["/web"]));
        assert_eq!(v["Image"], "busybox");
        assert_eq!(
            v["Command"], "/bin/sh -c echo hi",
            "dockerd joins path and args"
        );
        assert_eq!(v["State"], "running");
        assert!(v["Status"].as_str().unwrap().starts_with("Up "), "{v}");
        assert_eq!(v["Labels"], json!({"app": "shop"}));
        assert_eq!(v["HostConfig"]["NetworkMode"], "none");
        assert_eq!(
            v["NetworkSettings"]["Networks"]["none"]["NetworkID"],
            nets.networks[2].id
        );
        assert!(v.get("SizeRw").is_none());
        let all = items("all=1&size=1");
        let shown: Vec<_> = all.iter().map(|i| i["Names"][0].clone()).collect();
        assert_eq!(shown, [json!("/web"), json!("/job")]);
        assert_eq!(all[0]["SizeRw"], 7);
        assert_eq!(
            all[0]["SizeRootFs"], 1507,
            "the image and the writable layer"
        );
        assert!(all[1]["Status"]
            .as_str()
            .unwrap()
            .starts_with("Exited (2) "));
        // A limit lists stopped containers too, newest first.
        let last = items("limit=1");
        assert_eq!(last.len(), 1);
        assert_eq!(last[0]["Names"], json!(["/web"]));
        let e = list_items(
            &containers,
            &store,
            &nets,
            &q(r#"filters={"before":["ghost"]}"#),
        );
        assert_eq!(e.unwrap_err().status.as_u16(), 404);
    }

    #[test]
    fn prune_chooses_stopped_containers_by_filter() {
        let mut list = vec![
            rec("up", Status::Running, 0),
            rec("new", Status::Created, 0),
            rec("done", Status::Exited, 0),
            rec("gone", Status::Dead, 0),
            rec("paused", Status::Paused, 0),
        ];
        list[2].config.labels = Some([("keep".to_string(), "1".to_string())].into());
        list[3].created = "2025-01-01T00:00:00Z".into();
        let containers = FakeContainers {
            records: list,
            ..Default::default()
        };
        let chosen = |f: &str| {
            let p = prunable(&containers, &q(&format!("filters={f}"))).unwrap();
            p.into_iter().map(|r| r.name).collect::<Vec<_>>()
        };
        assert_eq!(chosen("{}"), ["new", "done", "gone"]);
        assert_eq!(chosen(r#"{"label":["keep"]}"#), ["done"]);
        assert_eq!(chosen(r#"{"label!":["keep"]}"#), ["new", "gone"]);
        assert_eq!(chosen(r#"{"until":["2025-06-01T00:00:00Z"]}"#), ["gone"]);
        let e = prunable(&containers, &q(r#"filters={"status":["exited"]}"#)).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
    }
}
