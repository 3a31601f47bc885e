//! `POST /build` as dockerd's classic builder serves it: the context tar read whole (the
//! client stops uploading once an answer starts), then docker's JSON stream of the steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};

use super::http::{json_stream, ApiError, Resp};
use super::imageio::{body_reader, pump_body};
use super::Ctx;
use crate::build::builder::{BuildRequest, Builder};
use crate::build::context::Context;
use crate::images::model::Platform;
use crate::images::reference::{familiar, ImageRef};
use crate::images::registry::AuthConfig;

/// Query parameters of resources skiff's builder does not limit or features it does not
/// have: refused when set rather than accepted and ignored.
const REFUSED: &[(&str, &str)] = &[
    ("cpusetcpus", "--cpuset-cpus"),
    ("cpusetmems", "--cpuset-mems"),
    ("cpushares", "--cpu-shares"),
    ("cpuquota", "--cpu-quota"),
    ("cpuperiod", "--cpu-period"),
    ("memory", "--memory"),
    ("memswap", "--memory-swap"),
    ("shmsize", "--shm-size"),
    ("squash", "--squash"),
    ("extrahosts", "--add-host"),
    ("isolation", "--isolation"),
    ("outputs", "--output"),
    ("ulimits", "--ulimit"),
    ("cgroupparent", "--cgroup-parent"),
];

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// The build request from the query, checked before the context is read.
fn request(
    ctx: &Ctx,
    raw: Option<&str>,
    config_header: Option<&str>,
) -> Result<BuildRequest, ApiError> {
    let all = pairs(raw);
    let get = |k: &str| {
        all.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let flag = |k: &str| {
        matches!(
            get(k).map(str::to_ascii_lowercase).as_deref(),
            Some("1") | Some("true")
        )
    };
    // The CLI asks for BuildKit with version=2 and then expects a session over gRPC; skiff
    // serves the classic builder's stream only.
    if let Some(v) = get("version").filter(|v| *v != "1") {
        return Err(ApiError::bad_request(format!(
            "skiff serves the classic builder only (version=1), not version={v}: BuildKit is not supported; build with DOCKER_BUILDKIT=0"
        )));
    }
    if let Some(remote) = get("remote") {
        return Err(ApiError::bad_request(format!(
            "building from a remote context ({remote}) is not supported by skiff: send the context as a tar (a directory or `-` with the CLI)"
        )));
    }
    for (key, flag_name) in REFUSED {
        if let Some(v) = get(key) {
            if !matches!(v, "0" | "false" | "[]" | "{}" | "null" | "default" | "-1") {
                return Err(ApiError::bad_request(format!(
                    "build option {flag_name} ({key}={v}) is not supported by skiff's builder yet; build without it"
                )));
            }
        }
    }
    if let Some(cache_from) = get("cachefrom").filter(|v| *v != "[]" && *v != "null") {
        return Err(ApiError::bad_request(format!(
            "--cache-from ({cache_from}) is not supported by skiff's builder; the local build cache is used"
        )));
    }
    if let Some(p) = get("platform") {
        let wanted = Platform::parse(p).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !wanted.matches(&Platform::host()) {
            return Err(ApiError::bad_request(format!(
                "--platform {p}: skiff builds for this machine's platform ({}) only",
                Platform::host()
            )));
        }
    }
    let mut tags = Vec::new();
    for (k, v) in &all {
        if k != "t" || v.is_empty() {
            continue;
        }
        let r = ImageRef::parse(v)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {v:?}: {e}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid tag {v:?}: a tag cannot name a digest"
            )));
        }
        let key = r
            .tag_key()
            .ok_or_else(|| ApiError::bad_request(format!("invalid tag {v:?}")))?;
        let shown = familiar(&key);
        tags.push((key, shown));
    }
    let json_map = |k: &str| -> Result<BTreeMap<String, Option<String>>, ApiError> {
        match get(k) {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str::<Option<BTreeMap<String, Option<String>>>>(text)
                .map(Option::unwrap_or_default)
                .map_err(|e| {
                    ApiError::bad_request(format!("{k} is not a JSON object of strings: {e}"))
                }),
        }
    };
    let build_args = json_map("buildargs")?;
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let network_mode = match get("networkmode") {
        None | Some("default") => None,
        Some(m @ ("bridge" | "host" | "none")) => Some(m.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "--network {other}: a build step runs on default, bridge, host or none"
            )))
        }
    };
    let mut auths = HashMap::new();
    if let Some(h) = config_header {
        for (registry, auth) in AuthConfig::map_from_header(h) {
            auths.insert(normalize_registry(&registry), auth.to_registry_auth());
        }
    }
    Ok(BuildRequest {
        dockerfile: get("dockerfile").unwrap_or("Dockerfile").to_string(),
        tags,
        build_args,
        target: get("target").map(String::from),
        no_cache: flag("nocache"),
        pull: flag("pull"),
        labels,
        quiet: flag("q"),
        network_mode,
        keep_containers: matches!(get("rm"), Some("0") | Some("false") | Some("False")),
        auths,
        max_layer: ctx.puller.limits.max_layer,
    })
}

/// docker's config keys name registries as `https://index.docker.io/v1/` or `host:port`.
fn normalize_registry(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

pub async fn build(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let header = req
        .headers()
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let build_req = request(&ctx, req.uri().query(), header.as_deref())?;

    // The whole context first, unpacked as it arrives.
    let (tx, reader) = body_reader();
    let tmp = ctx.store.tmp_dir();
    let limit = build_req.max_layer;
    let unpacking = tokio::task::spawn_blocking(move || Context::unpack(&tmp, reader, limit));
    pump_body(req, tx).await?;
    let context = unpacking
        .await
        .map_err(|e| ApiError::internal(format!("unpacking the build context: {e}")))?
        .map_err(|e| ApiError::bad_request(format!("reading the build context: {e:#}")))?;

    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let builder = Builder {
        containers: ctx.containers.clone(),
        store: ctx.store.clone(),
        puller: ctx.puller.clone(),
    };
    // The build runs on its own task, so that a client going away does not drop it halfway
    // through a step: the build notices (its stream's receiver is gone), kills a running
    // step's command and stops without tagging; the steps done stay as the cache, as with
    // docker.
    tokio::spawn(async move {
        if let Err(f) = builder.build(&build_req, &context.dir, &out_tx).await {
            let detail = match f.code {
                Some(code) => json!({"code": code, "message": f.message}),
                None => json!({"message": f.message}),
            };
            let _ = out_tx.send(json!({"errorDetail": detail, "error": f.message}));
        }
        drop(context);
    });
    Ok(json_stream(out_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys_as_docker_writes_them() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("127.0.0.1:5001"), "127.0.0.1:5001");
        assert_eq!(
            normalize_registry("http://r.example:5000/v2/"),
            "r.example:5000"
        );
    }
}
