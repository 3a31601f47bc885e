//! The container lifecycle commands (`start`, `stop`, `restart`, `kill`, `rm`, `pause`,
//! `unpause`, `rename`, `wait`, `attach`, `top`, `container prune`), with
//! docker's output: each name as given on success, the engine's error per failure, exit 1
//! if any failed.

use anyhow::Result;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::api::{message_of, query, seg, status_of, Api, Body};
use super::attach::{
    self, exit_code, monitor_size, ResizeTarget, SignalProxy, StreamConfig, Waiter,
};
use super::gofmt::human_size;
use super::run::{follow, status_code};
use super::term::{self, confirm};
use super::Engine;
use crate::cli::{
    AttachArgs, ContainerPruneArgs, ContainersArgs, KillArgs, RenameArgs, RmArgs, StartArgs,
    StopArgs, TopArgs,
};
use crate::output::{outln, table_min};
use crate::SkiffError;

/// docker runs these in parallel (up to 50) and reports in the order given.
const PARALLEL: usize = 50;

/// Run `op` for each container; print each name that worked, each error, and say whether
/// all worked.
async fn for_each<F, Fut>(containers: &[String], op: F) -> Vec<(String, Result<()>)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    stream::iter(containers.iter().cloned())
        .map(|c| {
            let fut = op(c.clone());
            async move { (c, fut.await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}

fn report(results: Vec<(String, Result<()>)>) -> u8 {
    let mut failed = false;
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => outln(&name),
            Err(e) => {
                failed = true;
                errors.push(message_of(&e));
            }
        }
    }
    for e in errors {
        eprintln!("{e}");
    }
    u8::from(failed)
}

fn post_target(id: &str, action: &str, q: &[(&str, String)]) -> String {
    format!("/containers/{}/{action}{}", seg(id), query(q))
}

pub async fn stop(engine: &Engine, a: &StopArgs, restart: bool) -> Result<u8> {
    let api = engine.api();
    let mut q = Vec::new();
    if let Some(t) = a.timeout {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = a.signal.as_ref().filter(|s| !s.is_empty()) {
        q.push(("signal", s.clone()));
    }
    let action = if restart { "restart" } else { "stop" };
    let op = |c: String| {
        let api = api.clone();
        let target = post_target(&c, action, &q);
        async move { api.call("POST", &target, Body::None).await.map(|_| ()) }
    };
    let results = if restart {
        // docker restarts one after the other.
        let mut out = Vec::new();
        for c in &a.containers {
            out.push((c.clone(), op(c.clone()).await));
        }
        out
    } else {
        for_each(&a.containers, op).await
    };
    Ok(report(results))
}

pub async fn kill(engine: &Engine, a: &KillArgs) -> Result<u8> {
    let api = engine.api();
    let mut q = Vec::new();
    if let Some(s) = a.signal.as_ref().filter(|s| !s.is_empty()) {
        q.push(("signal", s.clone()));
    }
    let results = for_each(&a.containers, |c| {
        let api = api.clone();
        let target = post_target(&c, "kill", &q);
        async move { api.call("POST", &target, Body::None).await.map(|_| ()) }
    })
    .await;
    Ok(report(results))
}

/// `pause` and `unpause`.
pub async fn simple(engine: &Engine, a: &ContainersArgs, action: &str) -> Result<u8> {
    let api = engine.api();
    let results = for_each(&a.containers, |c| {
        let api = api.clone();
        let target = post_target(&c, action, &[]);
        async move { api.call("POST", &target, Body::None).await.map(|_| ()) }
    })
    .await;
    Ok(report(results))
}

pub async fn remove(engine: &Engine, a: &RmArgs) -> Result<u8> {
    let api = engine.api();
    let mut q = Vec::new();
    if a.volumes {
        q.push(("v", "1".to_string()));
    }
    if a.link {
        q.push(("link", "1".to_string()));
    }
    if a.force {
        q.push(("force", "1".to_string()));
    }
    let results = for_each(&a.containers, |c| {
        let api = api.clone();
        let q = q.clone();
        async move {
            let id = c.trim_matches('/');
            if id.is_empty() {
                return Err(SkiffError::daemon("container name cannot be empty").into());
            }
            let target = format!("/containers/{}{}", seg(id), query(&q));
            api.call("DELETE", &target, Body::None).await.map(|_| ())
        }
    })
    .await;
    let mut failed = false;
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => outln(&name),
            // With -f a container that is already gone is no failure.
            Err(e) if a.force && status_of(&e) == Some(404) => eprintln!("{}", message_of(&e)),
            Err(e) => {
                failed = true;
                errors.push(message_of(&e));
            }
        }
    }
    for e in errors {
        eprintln!("{e}");
    }
    Ok(u8::from(failed))
}

pub async fn rename(engine: &Engine, a: &RenameArgs) -> Result<u8> {
    let old = a.container.trim();
    let new = a.new_name.trim();
    if old.is_empty() || new.is_empty() {
        return Err(SkiffError::daemon("Error: Neither old nor new names may be empty").into());
    }
    let target = post_target(old, "rename", &[("name", new.to_string())]);
    if let Err(e) = engine.api().call("POST", &target, Body::None).await {
        eprintln!("{}", message_of(&e));
        return Err(
            SkiffError::daemon(format!("Error: failed to rename container named {old}")).into(),
        );
    }
    Ok(0)
}

pub async fn wait(engine: &Engine, a: &ContainersArgs) -> Result<u8> {
    let api = engine.api();
    let mut errors = Vec::new();
    for c in &a.containers {
        let target = format!("/containers/{}/wait", seg(c));
        match api.json("POST", &target, Body::None).await {
            Ok(v) => outln(
                &v.get("StatusCode")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
            ),
            Err(e) => errors.push(message_of(&e)),
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

async fn inspect_json(api: &Api, id: &str) -> Result<Value> {
    api.json("GET", &format!("/containers/{}/json", seg(id)), Body::None)
        .await
}

fn attach_query(stdin: bool, detach_keys: &Option<String>) -> String {
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if let Some(k) = detach_keys.as_ref().filter(|k| !k.is_empty()) {
        q.push(("detachKeys", k.clone()));
    }
    query(&q)
}

fn flag(v: &Value, path: &[&str]) -> bool {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_bool().unwrap_or(false)
}

pub async fn start(engine: &Engine, a: &StartArgs) -> Result<u8> {
    let api = engine.api();
    if !(a.attach || a.interactive) {
        let mut failed = Vec::new();
        for c in &a.containers {
            match api
                .call("POST", &post_target(c, "start", &[]), Body::None)
                .await
            {
                Ok(_) => outln(c),
                Err(e) => {
                    eprintln!("{}", message_of(&e));
                    failed.push(c.clone());
                }
            }
        }
        if !failed.is_empty() {
            return Err(SkiffError::daemon(format!(
                "Error: failed to start containers: {}",
                failed.join(", ")
            ))
            .into());
        }
        return Ok(0);
    }
    if a.containers.len() > 1 {
        return Err(
            SkiffError::daemon("you cannot start and attach multiple containers at once").into(),
        );
    }
    let c = inspect_json(&api, &a.containers[0]).await?;
    let id = c["Id"].as_str().unwrap_or(&a.containers[0]).to_string();
    let tty = flag(&c, &["Config", "Tty"]);
    let _proxy = (!tty).then(|| SignalProxy::start(&api, &id));
    let stdin = a.interactive && flag(&c, &["Config", "OpenStdin"]);
    let hijacked = api
        .hijack(
            &format!(
                "/containers/{}/attach{}",
                seg(&id),
                attach_query(stdin, &a.detach_keys)
            ),
            None,
        )
        .await?;
    let streaming = attach::start(
        hijacked,
        &StreamConfig {
            tty,
            stdin,
            stdout: true,
            stderr: true,
            detach_keys: a.detach_keys.clone(),
        },
    )?;
    let auto_remove = flag(&c, &["HostConfig", "AutoRemove"]);
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let waiter = Waiter::register(&api, &id, Some(condition)).await;
    if let Err(e) = api
        .call("POST", &post_target(&id, "start", &[]), Body::None)
        .await
    {
        streaming.close();
        if auto_remove {
            let _ = waiter.outcome().await;
        }
        return Err(e);
    }
    let _resize = (tty && term::stdout_is_tty())
        .then(|| monitor_size(&api, ResizeTarget::Container, &id, None));
    Ok(match follow(streaming, waiter, true).await? {
        Some(o) => status_code(o),
        None => 0,
    })
}

fn check_attachable(c: &Value) -> Result<()> {
    let st = &c["State"];
    let msg = if !flag(st, &["Running"]) {
        "You cannot attach to a stopped container, start it first"
    } else if flag(st, &["Paused"]) {
        "You cannot attach to a paused container, unpause it first"
    } else if flag(st, &["Restarting"]) {
        "You cannot attach to a restarting container, wait until it is running"
    } else {
        return Ok(());
    };
    Err(SkiffError::daemon(msg).into())
}

pub async fn attach_cmd(engine: &Engine, a: &AttachArgs) -> Result<u8> {
    let api = engine.api();
    // Registered first, as docker does, so an exit while we set up is not missed.
    let waiter = Waiter::register(&api, &a.container, None).await;
    let c = inspect_json(&api, &a.container).await?;
    check_attachable(&c)?;
    let tty = flag(&c, &["Config", "Tty"]);
    if tty && !a.no_stdin && !term::stdin_is_tty() {
        return Err(SkiffError::daemon("the input device is not a TTY").into());
    }
    let id = c["Id"].as_str().unwrap_or(&a.container).to_string();
    let stdin = !a.no_stdin && flag(&c, &["Config", "OpenStdin"]);
    let _proxy = (a.sig_proxy && !tty).then(|| SignalProxy::start(&api, &id));
    let hijacked = api
        .hijack(
            &format!(
                "/containers/{}/attach{}",
                seg(&id),
                attach_query(stdin, &a.detach_keys)
            ),
            None,
        )
        .await?;
    check_attachable(&inspect_json(&api, &id).await?)?;
    let mut streaming = attach::start(
        hijacked,
        &StreamConfig {
            tty,
            stdin,
            stdout: true,
            stderr: true,
            detach_keys: a.detach_keys.clone(),
        },
    )?;
    let _resize = (tty && term::stdout_is_tty()).then(|| {
        // One size off first, so the program in the container redraws (as docker does).
        let (h, w) = term::size();
        monitor_size(
            &api,
            ResizeTarget::Container,
            &id,
            Some((h.saturating_add(1), w.saturating_add(1))),
        )
    });
    let end = streaming.next().await;
    streaming.close();
    match end {
        attach::Ended::Detached => Err(SkiffError::daemon("read escape sequence").into()),
        attach::Ended::Failed(e) => Err(SkiffError::daemon(e).into()),
        attach::Ended::Done => match waiter.outcome().await {
            attach::WaitOutcome::Exited(code) => Ok(exit_code(code)),
            attach::WaitOutcome::WaitError(m) => Err(SkiffError::daemon(m).into()),
            attach::WaitOutcome::Failed(e) => Err(e),
        },
    }
}

pub async fn top(engine: &Engine, a: &TopArgs) -> Result<u8> {
    let container = &a.container_and_args[0];
    let args = &a.container_and_args[1..];
    let mut q = Vec::new();
    if !args.is_empty() {
        q.push(("ps_args", args.join(" ")));
    }
    let v = engine
        .api()
        .json(
            "GET",
            &format!("/containers/{}/top{}", seg(container), query(&q)),
            Body::None,
        )
        .await?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut rows = vec![strings(&v["Titles"])];
    if let Some(procs) = v["Processes"].as_array() {
        rows.extend(procs.iter().map(strings));
    }
    crate::output::out(&table_min(&rows, 20));
    Ok(0)
}

/// `POST /containers/prune`: (space reclaimed, what to print).
pub async fn prune_containers(api: &Api, filters: &[String]) -> Result<(u64, String)> {
    let q = match super::api::filters_json(filters)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let v = api
        .json("POST", &format!("/containers/prune{q}"), Body::None)
        .await?;
    let mut out = String::new();
    let mut space = 0;
    if let Some(ids) = v["ContainersDeleted"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("Deleted Containers:\n");
        for id in ids.iter().filter_map(Value::as_str) {
            out.push_str(id);
            out.push('\n');
        }
        space = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    }
    Ok((space, out))
}

pub async fn prune(engine: &Engine, a: &ContainerPruneArgs) -> Result<u8> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(0);
    }
    let (space, out) = prune_containers(&engine.api(), &a.filters).await?;
    if !out.is_empty() {
        crate::output::out_line!("{out}");
    }
    crate::output::out_line!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}
