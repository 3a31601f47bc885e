//! `skiff system info` / `skiff info` and `skiff version`.

use anyhow::Result;

use super::{daemon_error, Engine};
use crate::cli::FormatOnly;
use crate::output::render;
use crate::SkiffError;

pub async fn info(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let raw = engine.raw().request("GET", "/info", None)?;
    if raw.status != 200 {
        return Err(
            SkiffError::daemon(format!("Error response from daemon: {}", raw.message())).into(),
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&raw.body)?;
    if let Some(f) = &a.format {
        let text = if f == "json" {
            "{{json .}}"
        } else {
            f.as_str()
        };
        println!("{}", render(text, &v).map_err(SkiffError::new)?);
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
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Backend:    {}", engine.endpoint.backend.name());
    println!();
    println!("Server:");
    println!(" API socket: unix://{}", engine.endpoint.socket.display());
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        skiff_common::units::human_size(v["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Skiff Root Dir: {}", s("DockerRootDir"));
    Ok(0)
}

/// `skiff system check`: the agent verifies its store; problems are listed one per line.
pub async fn check(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let raw = engine.raw().request("GET", "/skiff/system/check", None)?;
    if raw.status != 200 {
        return Err(
            SkiffError::daemon(format!("Error response from daemon: {}", raw.message())).into(),
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&raw.body)?;
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
        println!("{}", render(text, &v).map_err(SkiffError::new)?);
        return Ok(code);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    println!(
        "Checked {} blobs, {} layers ({} entries), {} images, {} references, {} containers.",
        n("Blobs"),
        n("Layers"),
        n("LayerEntries"),
        n("Images"),
        n("References"),
        n("Containers")
    );
    if n("UnreferencedBlobs") + n("UnreferencedLayers") > 0 {
        println!(
            "Not used by any image (left by an interrupted pull; reused by the next one): {} blobs, {} layers.",
            n("UnreferencedBlobs"),
            n("UnreferencedLayers")
        );
    }
    if n("UnsummarisedLayers") > 0 {
        println!(
            "{} layers were stored by an older skiff: present, their content not checked.",
            n("UnsummarisedLayers")
        );
    }
    if problems.is_empty() {
        println!("The store is consistent.");
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!(
            "The store has {} problems. Remove the images named (skiff rmi -f) and pull them again.",
            problems.len()
        );
    }
    Ok(code)
}

pub async fn version(engine: &Engine, a: &FormatOnly) -> Result<u8> {
    let v = engine.docker.version().await.map_err(daemon_error)?;
    let value = serde_json::to_value(&v)?;
    if let Some(f) = &a.format {
        let text = if f == "json" {
            "{{json .}}"
        } else {
            f.as_str()
        };
        println!("{}", render(text, &value).map_err(SkiffError::new)?);
        return Ok(0);
    }
    println!("Client:");
    println!(" Version:     {}", env!("CARGO_PKG_VERSION"));
    println!(" API version: {}", bollard::API_DEFAULT_VERSION);
    println!();
    println!("Server: skiff");
    println!(" Engine:");
    println!("  Version:     {}", v.version.unwrap_or_default());
    println!(
        "  API version: {} (minimum version {})",
        v.api_version.unwrap_or_default(),
        v.min_api_version.unwrap_or_default()
    );
    println!(
        "  OS/Arch:     {}/{}",
        v.os.unwrap_or_default(),
        v.arch.unwrap_or_default()
    );
    println!("  Kernel:      {}", v.kernel_version.unwrap_or_default());
    Ok(0)
}
