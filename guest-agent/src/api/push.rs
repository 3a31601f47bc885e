//! `POST /images/{name}/push?tag=…`: push with streamed progress, as dockerd serves it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::http::{json_stream, ApiError, Query, Resp};
use super::Ctx;
use crate::images::progress::Progress;
use crate::images::push::{PushError, PushRequest, Pusher};
use crate::images::reference::ImageRef;
use oci_client::secrets::RegistryAuth;

pub async fn push(
    ctx: Arc<Ctx>,
    name: &str,
    q: &Query,
    auth: RegistryAuth,
) -> Result<Resp, ApiError> {
    // An empty `tag` (the docker CLI's `--all-tags`) or none: every tag of the repository,
    // unless the name carries one.
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let full = match tag {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let reference = ImageRef::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The parsed reference says `latest` when no tag was written: look at what was.
    let last = full.rsplit('/').next().unwrap_or(&full);
    let all_tags = !last.contains(':') && !last.contains('@');
    let pusher = Pusher {
        store: ctx.store.clone(),
        registries: ctx.puller.registries.clone(),
        concurrent_layers: ctx.puller.limits.concurrent_layers,
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    // The push runs on its own task: a client that goes away does not cut it off half-way.
    tokio::spawn(async move {
        let res = pusher
            .push(
                PushRequest {
                    reference,
                    all_tags,
                    auth,
                },
                Progress::new(tx),
            )
            .await;
        let _ = done_tx.send(res);
    });

    // As dockerd: an error before the first progress line (no such image) is an HTTP error;
    // after it, the stream's last message.
    let first = tokio::select! {
        biased;
        m = rx.recv() => m,
        r = &mut done_rx => return Err(finished_early(r)),
    };
    let Some(first) = first else {
        return Err(finished_early(done_rx.await));
    };
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let _ = out_tx.send(first);
        while let Some(m) = rx.recv().await {
            let _ = out_tx.send(m);
        }
        let err = match done_rx.await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => ApiError::from(e).message,
            Err(_) => "the push ended unexpectedly".to_string(),
        };
        let _ = out_tx.send(json!({"errorDetail": {"message": err}, "error": err}));
    });
    Ok(json_stream(out_rx))
}

/// A push that said nothing before ending: it can only have failed before starting.
fn finished_early(
    r: Result<Result<(), PushError>, tokio::sync::oneshot::error::RecvError>,
) -> ApiError {
    match r {
        Ok(Err(e)) => ApiError::from(e),
        Ok(Ok(())) | Err(_) => ApiError::internal("the push ended without a word"),
    }
}
