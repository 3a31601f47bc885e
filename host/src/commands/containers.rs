//! The container lifecycle commands (`start`, `stop`, `restart`, `kill`, `rm`, `pause`,
//! `unpause`, `rename`, `wait`, `attach`, `top`, `inspect`, `container prune`), with
//! docker's output: each name as given on success, the engine's error per failure, exit 1
//! if any failed.

use std::io::{BufRead, Write};

use anyhow::Result;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::api::{message_of, query, seg, status_of, Api, Body};
use super::attach::{
    self, exit_code, monitor_size, ResizeTarget, SignalProxy, StreamConfig, Waiter,
};
use super::gofmt::human_size;
use super::run::{follow, status_code};
use super::term;
use super::Engine;
use crate::cli::{
    AttachArgs, ContainerInspectArgs, ContainerPruneArgs, ContainersArgs, KillArgs,
    ObjectInspectArgs, RenameArgs, RmArgs, StartArgs, StopArgs, TopArgs,
};
use crate::output::{outln, render, table_min};
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

/// Go's json.Indent with four spaces (key order kept as the engine sent it).
pub fn indent_json(src: &[u8]) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut need_indent = false;
    let text = String::from_utf8_lossy(src);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    for c in text.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            newline(&mut out, depth);
            need_indent = false;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                depth += 1;
                need_indent = true;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if need_indent {
                    // An empty object or array stays on one line.
                    need_indent = false;
                } else {
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// Go's json.Compact.
fn compact_json(src: &[u8]) -> String {
    let text = String::from_utf8_lossy(src);
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Print inspected objects as docker does: an indented JSON array, `json` compact, or a
/// template per object.
pub(super) fn print_inspected(raws: &[Vec<u8>], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("") => {
            if raws.is_empty() {
                outln("[]");
                return Ok(());
            }
            let mut all = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            outln(&indent_json(&all));
        }
        Some("json") => {
            let mut all = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            outln(&compact_json(&all));
        }
        Some(t) => {
            let t = t.replace("\\n", "\n").replace("\\t", "\t");
            let mut out = String::new();
            for r in raws {
                let v: Value = serde_json::from_slice(r)?;
                out.push_str(&render(&t, &v).map_err(|e| {
                    SkiffError::with_code(format!("template parsing error: {e}"), 64)
                })?);
                out.push('\n');
            }
            if out.is_empty() {
                out.push('\n');
            }
            crate::output::out(&out);
        }
    }
    Ok(())
}

async fn get_raw(api: &Api, target: &str) -> Result<Vec<u8>> {
    let resp = api.call("GET", target, Body::None).await?;
    let mut body = resp.bytes().await?;
    while body.last().is_some_and(|b| b.is_ascii_whitespace()) {
        body.pop();
    }
    Ok(body)
}

fn container_target(name: &str, size: bool) -> String {
    let q = if size {
        query(&[("size", "1".to_string())])
    } else {
        String::new()
    };
    format!("/containers/{}/json{q}", seg(name))
}

pub async fn inspect_containers(engine: &Engine, a: &ContainerInspectArgs) -> Result<u8> {
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match get_raw(&api, &container_target(n, a.size)).await {
            Ok(r) => raws.push(r),
            Err(e) => errors.push(message_of(&e)),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

/// `inspect`: a container first, then an image, then a network (or only the `--type`
/// asked for).
pub async fn inspect_objects(engine: &Engine, a: &ObjectInspectArgs) -> Result<u8> {
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image" | "network") {
        return Err(SkiffError::new(format!("\"{kind}\" is not a valid value for --type")).into());
    }
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        let mut found = None;
        let mut error = None;
        if kind.is_empty() || kind == "container" {
            match get_raw(&api, &container_target(n, a.size)).await {
                Ok(r) => found = Some(r),
                Err(e) if kind.is_empty() && status_of(&e) == Some(404) => {}
                Err(e) => error = Some(message_of(&e)),
            }
        }
        if found.is_none() && error.is_none() && (kind.is_empty() || kind == "image") {
            match get_raw(&api, &format!("/images/{}/json", image_path(n))).await {
                Ok(r) => {
                    if a.size {
                        eprintln!("WARNING: --size ignored for image");
                    }
                    found = Some(r)
                }
                Err(e)
                    if kind.is_empty()
                        && (status_of(&e) == Some(404)
                            || message_of(&e).contains("invalid reference format")) => {}
                Err(e) => error = Some(message_of(&e)),
            }
        }
        if found.is_none() && error.is_none() && (kind.is_empty() || kind == "network") {
            match super::network::inspect_raw(&api, n, false).await? {
                Ok(r) => {
                    if a.size {
                        eprintln!("WARNING: --size ignored for network");
                    }
                    found = Some(r)
                }
                Err(e)
                    if kind.is_empty()
                        && (e.status == Some(404) || e.message.contains("not supported")) => {}
                Err(e) => error = Some(e.message),
            }
        }
        match (found, error) {
            (Some(r), _) => raws.push(r),
            (None, Some(e)) => errors.push(e),
            (None, None) => errors.push(format!("Error: No such object: {n}")),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

/// An image reference in a path keeps its slashes and colons (as the image commands send it).
fn image_path(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b':')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'@');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// docker's prompt.Confirm: the question on stdout, yes only for "y".
pub fn confirm(message: &str) -> Result<bool> {
    crate::output::out_text!("{message} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_indents_like_go() {
        let src = br#"[{"Id":"abc","Args":["-f","x"],"Labels":{},"Empty":[],"State":{"Running":true,"Pid":1}}
]"#;
        let want = r#"[
    {
        "Id": "abc",
        "Args": [
            "-f",
            "x"
        ],
        "Labels": {},
        "Empty": [],
        "State": {
            "Running": true,
            "Pid": 1
        }
    }
]"#;
        assert_eq!(indent_json(src), want);
        assert_eq!(
            indent_json(br#"{"a":"x, {y}: \"z\""}"#),
            "{\n    \"a\": \"x, {y}: \\\"z\\\"\"\n}"
        );
        assert_eq!(
            compact_json(b"[{\"a\": 1,\n \"b\": \" c \"}]"),
            "[{\"a\":1,\"b\":\" c \"}]"
        );
    }
}
