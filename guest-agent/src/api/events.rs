//! `GET /events`: docker's event stream (container and network events), history from `since`,
//! live after.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::http::{ApiError, Filters, Query, Resp};
use super::Ctx;
use crate::containers::events::Event;

/// docker sends `since`/`until` as unix seconds, with an optional fraction.
fn unix_nanos(s: &str) -> Result<i64, ApiError> {
    s.parse::<f64>()
        .map(|f| (f * 1e9) as i64)
        .map_err(|_| ApiError::bad_request(format!("invalid time {s:?}: give unix seconds")))
}

fn wanted(f: &Filters, e: &Event) -> bool {
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    let image = e.attributes.get("image").map(String::as_str).unwrap_or("");
    // As dockerd: the container and network filters match every event's actor (its ID or
    // name), whatever its type.
    let actor = |x: &str| e.id.starts_with(x) || name == x.trim_start_matches('/');
    f.any("type", |t| t == e.kind)
        && f.any("container", actor)
        && f.any("network", actor)
        // `health_status` stands for `health_status: healthy` and the others, as dockerd's.
        && f.any("event", |a| {
            a == e.action || (a == "health_status" && e.action.starts_with("health_status: "))
        })
        && f.any("image", |i| image == i)
        && f.labels_match(|k| e.attributes.get(k).map(String::as_str))
}

pub fn events(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let filters = q.filters()?;
    filters.only(&["type", "container", "network", "event", "image", "label"])?;
    let since = q
        .get("since")
        .filter(|s| !s.is_empty())
        .map(unix_nanos)
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty())
        .map(unix_nanos)
        .transpose()?;
    let (past, mut live) = ctx.containers.events.subscribe(since);
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        for e in past.iter().filter(|e| wanted(&filters, e)) {
            if until.is_some_and(|u| e.time_nano > u) || tx.send(e.to_json()).is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = crate::containers::logs::now_nanos();
            Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
        });
        let run = async {
            loop {
                tokio::select! {
                    got = live.recv() => match got {
                        Ok(e) => {
                            if wanted(&filters, &e) && tx.send(e.to_json()).is_err() {
                                return;
                            }
                        }
                        // A slow reader skipped some: go on with what comes next.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        };
        match deadline {
            Some(d) => {
                let _ = tokio::time::timeout(d, run).await;
            }
            None => run.await,
        }
    });
    Ok(super::http::json_stream(rx))
}
