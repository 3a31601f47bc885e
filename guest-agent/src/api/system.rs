//! `/_ping`, `/version`, `/info`, `/auth`, and skiff's own `/skiff/system/check`.

use hyper::StatusCode;
use oci_client::RegistryOperation;
use serde_json::json;

use super::http::{json, ApiError, Resp};
use super::{API_VERSION, MIN_API_VERSION};
use crate::images::reference::ImageRef;
use crate::images::registry::{AuthConfig, RegistryError};

pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn version() -> Resp {
    let details = json!({
        "ApiVersion": API_VERSION,
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "GitCommit": "",
        "GoVersion": "",
        "BuildTime": "",
        "Experimental": "false",
    });
    json(
        StatusCode::OK,
        &json!({
            "Platform": { "Name": "skiff" },
            "Components": [{ "Name": "Engine", "Version": ENGINE_VERSION, "Details": details }],
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel_version(),
            "BuildTime": "",
        }),
    )
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|n| n.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cgroup_version() -> &'static str {
    // cgroup2 alone mounted at /sys/fs/cgroup means v2; a hybrid host counts as v1, as docker does.
    match std::fs::metadata("/sys/fs/cgroup/cgroup.controllers") {
        Ok(_) => "2",
        Err(_) => "1",
    }
}

pub fn info(ctx: &super::Ctx) -> Resp {
    let images = ctx.store.images().len();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let registries = &ctx.puller.registries;
    let insecure: Vec<String> = registries.insecure.clone();
    let mirrors: Vec<&str> = registries.mirrors.iter().map(|m| m.url.as_str()).collect();
    // As dockerd lists them: Docker Hub with its mirrors, and each registry named insecure.
    let mut index_configs = serde_json::Map::new();
    index_configs.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}),
    );
    for r in &insecure {
        index_configs.insert(
            r.clone(),
            json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
        );
    }
    json(
        StatusCode::OK,
        &json!({
            "ID": ctx.id,
            "Containers": 0,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": 0,
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": { "Volume": [], "Network": ["bridge", "host", "null"], "Authorization": null, "Log": ["json-file"] },
            "MemoryLimit": true,
            "SwapLimit": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "Debug": false,
            "NFd": 0,
            "NGoroutines": 0,
            "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": 0,
            "KernelVersion": kernel_version(),
            "OperatingSystem": "skiff (native)",
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                "IndexConfigs": index_configs,
                "Mirrors": mirrors,
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistries": insecure,
            },
            "NCPU": ncpu,
            "MemTotal": mem_total(),
            "DockerRootDir": ctx.root.display().to_string(),
            "Name": hostname,
            "Labels": [format!("skiff.socket=unix://{}", ctx.socket.display())],
            "ExperimentalBuild": false,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": { "skiff": { "path": "skiff-agent" } },
            "DefaultRuntime": "skiff",
            "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": [],
        }),
    )
}

/// `POST /auth`: check credentials against the registry, as `docker login` expects.
pub async fn auth(ctx: &super::Ctx, body: &[u8]) -> Result<Resp, ApiError> {
    let cfg: AuthConfig = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid login request: {e}")))?;
    let server = cfg
        .server_address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let server = if server.is_empty() || server.contains("index.docker.io") {
        "docker.io".to_string()
    } else {
        server
    };
    // Any repository will do to walk the challenge; distribution answers /v2/ for all.
    let probe = ImageRef::parse(&format!("{server}/skiff-login-probe"))
        .map_err(|e| ApiError::bad_request(format!("invalid registry address {server:?}: {e}")))?;
    let client = ctx.puller.registries.new_client(&server);
    let auth = cfg.to_registry_auth();
    client
        .auth(&probe.inner, &auth, RegistryOperation::Pull)
        .await
        .map_err(
            |e| match RegistryError::from_oci(e, &server, "login", true) {
                RegistryError::Unauthorized(_) => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "login to {server} failed: unauthorized: incorrect username or password"
                    ),
                ),
                other => ApiError::internal(other.to_string()),
            },
        )?;
    // Basic-auth registries answer the challenge without checking; ask /v2/ with the credentials.
    crate::images::registry::check_basic(&ctx.puller.registries, &server, &cfg)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("login to {server} failed: {e}"),
            )
        })?;
    Ok(json(
        StatusCode::OK,
        &json!({ "IdentityToken": "", "Status": "Login Succeeded" }),
    ))
}

/// `GET /skiff/system/check` (skiff's own; docker has no such endpoint): the store re-read
/// and verified, see `images::check`.
pub async fn check(ctx: &super::Ctx) -> Result<Resp, ApiError> {
    let store = ctx.store.clone();
    let containers: Vec<(String, String)> = ctx
        .containers
        .all()
        .iter()
        .map(|c| {
            let r = c.record();
            (r.name.trim_start_matches('/').to_string(), r.image_id)
        })
        .collect();
    let report =
        tokio::task::spawn_blocking(move || crate::images::check::check(&store, &containers))
            .await
            .map_err(|e| ApiError::internal(format!("the store check failed: {e}")))?;
    Ok(json(hyper::StatusCode::OK, &report))
}
