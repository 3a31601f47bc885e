//! `stats`: CPU, memory, network, block I/O and PIDs per container, computed from the
//! engine's stats JSON exactly as docker's formatter does.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use skiff_common::units::{bytes_size, human_size_with_precision};

use super::api::{message_of, query, seg, Api, Body};
use super::ps::truncate_id;
use super::Engine;
use crate::cli::StatsArgs;
use crate::output::Format;
use crate::SkiffError;

const DEFAULT_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// One container's figures (docker's StatsEntry).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
    pub invalid: bool,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// docker's calculateCPUPercentUnix and friends, from one stats sample.
pub fn entry_from(container: &str, v: &Value) -> Entry {
    let cpu_delta = u(&v["cpu_stats"]["cpu_usage"]["total_usage"]) as f64
        - u(&v["precpu_stats"]["cpu_usage"]["total_usage"]) as f64;
    let system_delta = u(&v["cpu_stats"]["system_cpu_usage"]) as f64
        - u(&v["precpu_stats"]["system_cpu_usage"]) as f64;
    let mut online = u(&v["cpu_stats"]["online_cpus"]) as f64;
    if online == 0.0 {
        online = v["cpu_stats"]["cpu_usage"]["percpu_usage"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0) as f64;
    }
    let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
        (cpu_delta / system_delta) * online * 100.0
    } else {
        0.0
    };

    let (mut read, mut write) = (0u64, 0u64);
    if let Some(list) = v["blkio_stats"]["io_service_bytes_recursive"].as_array() {
        for e in list {
            let op = e["op"].as_str().unwrap_or("");
            match op.as_bytes().first() {
                Some(b'r' | b'R') => read += u(&e["value"]),
                Some(b'w' | b'W') => write += u(&e["value"]),
                _ => {}
            }
        }
    }

    let usage = u(&v["memory_stats"]["usage"]);
    let stats = &v["memory_stats"]["stats"];
    let mem = match stats.get("total_inactive_file").and_then(Value::as_u64) {
        Some(x) if x < usage => (usage - x) as f64,
        _ => match stats.get("inactive_file").and_then(Value::as_u64) {
            Some(x) if x < usage => (usage - x) as f64,
            None if usage > 0 => usage as f64,
            _ => usage as f64,
        },
    };
    let limit = u(&v["memory_stats"]["limit"]) as f64;
    let mem_percent = if limit != 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };

    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = v["networks"].as_object() {
        for n in nets.values() {
            rx += u(&n["rx_bytes"]) as f64;
            tx += u(&n["tx_bytes"]) as f64;
        }
    }

    Entry {
        container: container.to_string(),
        name: v["name"].as_str().unwrap_or("").to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
        cpu_percent,
        memory: mem,
        memory_limit: limit,
        memory_percent: mem_percent,
        net_rx: rx,
        net_tx: tx,
        block_read: read as f64,
        block_write: write as f64,
        pids: u(&v["pids_stats"]["current"]),
        invalid: false,
    }
}

fn percent(v: f64) -> String {
    format!("{v:.2}%")
}

/// The template fields of one entry.
pub fn row(e: &Entry, trunc: bool) -> Value {
    let dash = |s: String| if e.invalid { "--".to_string() } else { s };
    json!({
        "Container": e.container,
        "Name": if e.name.len() > 1 { e.name[1..].to_string() } else { "--".to_string() },
        "ID": if trunc { truncate_id(&e.id) } else { e.id.clone() },
        "CPUPerc": dash(percent(e.cpu_percent)),
        "MemUsage": if e.invalid {
            "-- / --".to_string()
        } else {
            format!("{} / {}", bytes_size(e.memory), bytes_size(e.memory_limit))
        },
        "MemPerc": dash(percent(e.memory_percent)),
        "NetIO": dash(format!("{} / {}", human_size_with_precision(e.net_rx, 3), human_size_with_precision(e.net_tx, 3))),
        "BlockIO": dash(format!("{} / {}", human_size_with_precision(e.block_read, 3), human_size_with_precision(e.block_write, 3))),
        "PIDs": dash(e.pids.to_string()),
    })
}

fn header(field: &str) -> String {
    match field {
        "Container" => "CONTAINER",
        "Name" => "NAME",
        "ID" => "CONTAINER ID",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

fn render_all(entries: &[Entry], format: Option<&str>, trunc: bool) -> Result<String, String> {
    let rows: Vec<Value> = entries.iter().map(|e| row(e, trunc)).collect();
    let mut out = Vec::new();
    let capture = |table: bool, text: &str, out: &mut Vec<u8>| -> Result<(), String> {
        crate::output::write_template(out, table, text, &header, &rows)
    };
    match Format::parse(format) {
        Format::Default => capture(true, DEFAULT_TABLE, &mut out)?,
        Format::Json => {
            for r in &rows {
                out.extend_from_slice(r.to_string().as_bytes());
                out.push(b'\n');
            }
        }
        Format::Template { table, text } => capture(table, &text, &mut out)?,
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One sample (`stream=0`) or a stream of them (`stream=1`) for a container.
async fn collect(
    api: Api,
    container: String,
    stream: bool,
    state: Arc<Mutex<HashMap<String, Result<Entry, String>>>>,
) {
    let target = format!(
        "/containers/{}/stats{}",
        seg(&container),
        query(&[("stream", if stream { "1" } else { "0" }.to_string())])
    );
    let set = |r: Result<Entry, String>| {
        state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container.clone(), r);
    };
    let mut resp = match api.call("GET", &target, Body::None).await {
        Ok(r) => r,
        Err(e) => {
            set(Err(message_of(&e)));
            return;
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                set(Err(message_of(&e)));
                return;
            }
        };
        buf.extend_from_slice(&chunk);
        // Samples are JSON values one after the other; take each complete one.
        loop {
            let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match de.next() {
                Some(Ok(v)) => {
                    let used = de.byte_offset();
                    set(Ok(entry_from(&container, &v)));
                    buf.drain(..used);
                    if !stream {
                        return;
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    set(Err(format!("skiff: unreadable stats from the agent: {e}")));
                    return;
                }
                None => break,
            }
        }
    }
    if !buf.iter().all(|b| b.is_ascii_whitespace()) {
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            set(Ok(entry_from(&container, &v)));
        }
    }
}

pub async fn stats(engine: &Engine, a: &StatsArgs) -> Result<u8> {
    let api = engine.api();
    let show_all = a.containers.is_empty();
    let mut containers = a.containers.clone();
    if show_all {
        let mut q = Vec::new();
        if a.all {
            q.push(("all", "1".to_string()));
        }
        let list = api
            .json("GET", &format!("/containers/json{}", query(&q)), Body::None)
            .await?;
        containers = list
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| c["Id"].as_str().map(truncate_id))
                    .collect()
            })
            .unwrap_or_default();
    }
    let state: Arc<Mutex<HashMap<String, Result<Entry, String>>>> = Default::default();
    let mut tasks = Vec::new();
    for c in &containers {
        tasks.push(tokio::spawn(collect(
            api.clone(),
            c.clone(),
            !a.no_stream,
            state.clone(),
        )));
    }
    let trunc = !a.no_trunc;
    if a.no_stream {
        for t in tasks {
            // Each task records its own failure in `state`; a join error (a panic) is
            // reported by the runtime already.
            let _ = t.await;
        }
        let map = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for c in &containers {
            match map.get(c) {
                Some(Ok(e)) => entries.push(e.clone()),
                Some(Err(e)) if !show_all => errors.push(e.clone()),
                Some(Err(_)) => {}
                None => entries.push(Entry {
                    container: c.clone(),
                    invalid: true,
                    ..Default::default()
                }),
            }
        }
        if !errors.is_empty() {
            return Err(SkiffError::daemon(errors.join("\n")).into());
        }
        crate::output::out(
            &render_all(&entries, a.format.as_deref(), trunc).map_err(SkiffError::new)?,
        );
        return Ok(0);
    }

    // Streaming: redraw every half second, as docker does.
    let mut first = true;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let map = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if first && !show_all {
            let errors: Vec<String> = containers
                .iter()
                .filter_map(|c| map.get(c).and_then(|r| r.as_ref().err().cloned()))
                .collect();
            if !errors.is_empty() {
                return Err(SkiffError::daemon(errors.join("\n")).into());
            }
        }
        first = false;
        let entries: Vec<Entry> = containers
            .iter()
            .map(|c| match map.get(c) {
                Some(Ok(e)) => e.clone(),
                _ => Entry {
                    container: c.clone(),
                    invalid: true,
                    ..Default::default()
                },
            })
            .collect();
        let text = render_all(&entries, a.format.as_deref(), trunc).map_err(SkiffError::new)?;
        let mut screen = String::from("\x1b[H");
        for line in text.split('\n') {
            screen.push_str(line);
            screen.push_str(" \x1b[K\n");
        }
        screen.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        if out
            .write_all(screen.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(0);
        }
        if containers.is_empty() && !show_all {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "name": "/web",
            "id": "c032d492135f3b6352ffecfd513b8d0570aea2513a13274d46d9d3be12abfebb",
            "pids_stats": {"current": 3},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "total", "value": 12288}
            ]},
            "cpu_stats": {
                "cpu_usage": {"total_usage": 200_000_000u64, "percpu_usage": [1, 2]},
                "system_cpu_usage": 2_000_000_000u64,
                "online_cpus": 2
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 100_000_000u64},
                "system_cpu_usage": 1_000_000_000u64
            },
            "memory_stats": {
                "usage": 10_485_760u64,
                "limit": 104_857_600u64,
                "stats": {"inactive_file": 2_097_152u64}
            },
            "networks": {
                "eth0": {"rx_bytes": 1500, "tx_bytes": 500},
                "eth1": {"rx_bytes": 500, "tx_bytes": 500}
            }
        })
    }

    #[test]
    fn figures_like_docker() {
        let e = entry_from("web", &sample());
        assert!((e.cpu_percent - 20.0).abs() < 1e-9);
        assert_eq!(e.memory, 8_388_608.0);
        assert!((e.memory_percent - 8.0).abs() < 1e-9);
        assert_eq!((e.block_read, e.block_write), (4096.0, 8192.0));
        assert_eq!((e.net_rx, e.net_tx), (2000.0, 1000.0));
        let r = row(&e, true);
        assert_eq!(r["ID"], "c032d492135f");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemUsage"], "8MiB / 100MiB");
        assert_eq!(r["MemPerc"], "8.00%");
        assert_eq!(r["NetIO"], "2kB / 1kB");
        assert_eq!(r["BlockIO"], "4.1kB / 8.19kB");
        assert_eq!(r["PIDs"], "3");
    }

    #[test]
    fn cgroup_v1_cache_and_empty_samples() {
        let mut v = sample();
        v["memory_stats"]["stats"] =
            json!({"total_inactive_file": 1_048_576u64, "inactive_file": 5});
        assert_eq!(entry_from("x", &v).memory, 9_437_184.0);
        let e = entry_from("x", &json!({}));
        let r = row(&e, true);
        assert_eq!(r["CPUPerc"], "0.00%");
        assert_eq!(r["MemUsage"], "0B / 0B");
        assert_eq!(r["Name"], "--");
        let bad = Entry {
            invalid: true,
            ..Default::default()
        };
        assert_eq!(row(&bad, true)["MemUsage"], "-- / --");
        let table = render_all(&[e], None, true).unwrap();
        assert!(table.starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"));
    }
}
