//! `skiff system info` / `skiff info` and `skiff version`.

use anyhow::Result;

use super::api::{Body, API_VERSION};
use super::Engine;
use crate::cli::FormatOnly;
use crate::output::render;
use crate::SkiffError;

pub async fn info(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let v = engine.api().json("GET", "/info", Body::None).await?;
    if let Some(f) = &a.format {
        let text = if f == "json" {
            "{{json .}}"
        } else {
            f.as_str()
        };
        crate::output::out_line!("{}", render(text, &v).map_err(SkiffError::new)?);
        return Ok(0);
    }
    let s = |k: &str| {
        v.get(k)
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_default()
    };
    crate::output::out_line!("Client:");
    crate::output::out_line!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    crate::output::out_line!(" Backend:    {}", engine.endpoint.backend.name());
    crate::output::out_line!();
    crate::output::out_line!("Server:");
    crate::output::out_line!(" API socket: unix://{}", engine.endpoint.socket.display());
    crate::output::out_line!(" Containers: {}", s("Containers"));
    crate::output::out_line!("  Running: {}", s("ContainersRunning"));
    crate::output::out_line!("  Paused: {}", s("ContainersPaused"));
    crate::output::out_line!("  Stopped: {}", s("ContainersStopped"));
    crate::output::out_line!(" Images: {}", s("Images"));
    crate::output::out_line!(" Server Version: {}", s("ServerVersion"));
    crate::output::out_line!(" Storage Driver: {}", s("Driver"));
    crate::output::out_line!(" Cgroup Driver: {}", s("CgroupDriver"));
    crate::output::out_line!(" Cgroup Version: {}", s("CgroupVersion"));
    crate::output::out_line!(" Kernel Version: {}", s("KernelVersion"));
    crate::output::out_line!(" Operating System: {}", s("OperatingSystem"));
    crate::output::out_line!(" OSType: {}", s("OSType"));
    crate::output::out_line!(" Architecture: {}", s("Architecture"));
    crate::output::out_line!(" CPUs: {}", s("NCPU"));
    crate::output::out_line!(
        " Total Memory: {}",
        skiff_common::units::human_size(v["MemTotal"].as_u64().unwrap_or(0))
    );
    crate::output::out_line!(" Skiff Root Dir: {}", s("DockerRootDir"));
    let reg = &v["RegistryConfig"];
    let names = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut insecure = names(&reg["InsecureRegistries"]);
    insecure.extend(names(&reg["InsecureRegistryCIDRs"]));
    crate::output::out_line!(" Insecure Registries:");
    for r in insecure {
        crate::output::out_line!("  {r}");
    }
    let mirrors = names(&reg["Mirrors"]);
    if !mirrors.is_empty() {
        crate::output::out_line!(" Registry Mirrors:");
        for m in mirrors {
            crate::output::out_line!("  {m}");
        }
    }
    Ok(0)
}

/// `skiff system check`: the agent verifies its store; problems are listed one per line.
pub async fn check(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let v = engine
        .api()
        .json("GET", "/skiff/system/check", Body::None)
        .await?;
    let problems: Vec<&str> = v["Problems"]
        .as_array()
        .map(|p| p.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let code = if problems.is_empty() { 0 } else { 1 };
    if let Some(f) = &a.format {
        let text = if f == "json" {
            "{{json .}}"
        } else {
            f.as_str()
        };
        crate::output::out_line!("{}", render(text, &v).map_err(SkiffError::new)?);
        return Ok(code);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    crate::output::out_line!(
        "Checked {} blobs, {} layers ({} entries), {} images, {} references, {} containers.",
        n("Blobs"),
        n("Layers"),
        n("LayerEntries"),
        n("Images"),
        n("References"),
        n("Containers")
    );
    if n("UnreferencedBlobs") + n("UnreferencedLayers") > 0 {
        crate::output::out_line!(
            "Not used by any image (left by an interrupted pull; reused by the next one): {} blobs, {} layers.",
            n("UnreferencedBlobs"),
            n("UnreferencedLayers")
        );
    }
    if n("UnsummarisedLayers") > 0 {
        crate::output::out_line!(
            "{} layers were stored by an older skiff: present, their content not checked.",
            n("UnsummarisedLayers")
        );
    }
    if problems.is_empty() {
        crate::output::out_line!("The store is consistent.");
    } else {
        for p in &problems {
            crate::output::out_line!("problem: {p}");
        }
        crate::output::out_line!(
            "The store has {} problems. Remove the images named (skiff rmi -f) and pull them again.",
            problems.len()
        );
    }
    Ok(code)
}

pub async fn version(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let value = engine.api().json("GET", "/version", Body::None).await?;
    if let Some(f) = &a.format {
        let text = if f == "json" {
            "{{json .}}"
        } else {
            f.as_str()
        };
        crate::output::out_line!("{}", render(text, &value).map_err(SkiffError::new)?);
        return Ok(0);
    }
    crate::output::out_line!("Client:");
    crate::output::out_line!(" Version:     {}", env!("CARGO_PKG_VERSION"));
    crate::output::out_line!(" API version: {API_VERSION}");
    crate::output::out_line!();
    crate::output::out_line!("Server: skiff");
    crate::output::out_line!(" Engine:");
    let s = |k: &str| value[k].as_str().unwrap_or_default();
    crate::output::out_line!("  Version:     {}", s("Version"));
    crate::output::out_line!(
        "  API version: {} (minimum version {})",
        s("ApiVersion"),
        s("MinAPIVersion")
    );
    crate::output::out_line!("  OS/Arch:     {}/{}", s("Os"), s("Arch"));
    crate::output::out_line!("  Kernel:      {}", s("KernelVersion"));
    Ok(0)
}
