//! `GET /containers/{id}/stats` (docker's resource figures, read from the container's cgroup)
//! and `GET /system/df` (disk usage of images and containers).
//!
//! A container's cgroup is `/skiff/<id>` below each hierarchy root (see `spec::cgroup_path`):
//! `/sys/fs/cgroup/skiff/<id>` on cgroup v2, `/sys/fs/cgroup/<controller>/skiff/<id>` on v1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use super::http::{body_json, json, json_stream, ApiError, Query, Resp};
use super::Ctx;
use crate::containers::record::{now_rfc3339, ZERO_TIME};
use crate::containers::Container;
use crate::images::store::ImageRecord;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// docker's stats collector samples once a second; CPU percentages are deltas over it.
const INTERVAL: Duration = Duration::from_secs(1);

// The stats JSON, shaped (names, omitted zeros, nulls) as dockerd encodes its StatsResponse.

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    /// cgroup v1 only (v2 has no per-CPU usage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time in nanoseconds (all CPUs, idle included), from /proc/stat.
    #[serde(skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub online_cpus: u64,
    pub throttling_data: Throttling,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    /// memory.stat as it is (v1: `total_inactive_file` and friends; v2: `inactive_file`…).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failcnt: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// Lists docker leaves out are null, as dockerd sends them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioEntry>>,
    pub io_time_recursive: Option<Vec<BlkioEntry>>,
    pub sectors_recursive: Option<Vec<BlkioEntry>>,
}

/// What one read of a container's cgroup gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupSample {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

/// docker's StatsResponse. `networks` is left out for a container without interfaces of its
/// own (`none`, `host`, not running), as dockerd does: clients sum over whatever is listed.
#[derive(Clone, Debug, Serialize)]
pub struct StatsResponse {
    pub name: String,
    pub id: String,
    pub read: String,
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: BTreeMap<String, u64>,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

/// One interface's counters, as dockerd reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `/proc/<pid>/net/dev`: the counters of the interfaces in that process's network
/// namespace, but the loopback (dockerd lists the endpoints' interfaces only).
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if name == "lo" || n.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetworkStats {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            },
        );
    }
    out
}

/// The container's interfaces, read in its network namespace through its process; none for
/// the host's network (dockerd shows none there either).
fn container_networks(
    rec: &crate::containers::record::Record,
) -> Option<BTreeMap<String, NetworkStats>> {
    let mode = rec.host_config.network_mode.as_deref().unwrap_or("");
    if rec.state.pid <= 0 || crate::network::mode_of(mode) == crate::network::Mode::Host {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{}/net/dev", rec.state.pid)).ok()?;
    Some(parse_net_dev(&text)).filter(|m| !m.is_empty())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StatsResponse {
    /// What dockerd answers for a container that is not running: names and zeros.
    fn empty(name: &str, id: &str) -> Self {
        Self::from_sample(name, id, ZERO_TIME.into(), CgroupSample::default())
    }

    fn from_sample(name: &str, id: &str, read: String, s: CgroupSample) -> Self {
        StatsResponse {
            name: format!("/{name}"),
            id: id.to_string(),
            read,
            preread: ZERO_TIME.into(),
            pids_stats: s.pids,
            blkio_stats: s.blkio,
            num_procs: 0,
            storage_stats: BTreeMap::new(),
            cpu_stats: s.cpu,
            precpu_stats: CpuStats::default(),
            memory_stats: s.memory,
            networks: None,
        }
    }

    /// Carry the previous sample's CPU figures and time, as dockerd's `precpu_stats`.
    fn after(mut self, prev: Option<&StatsResponse>) -> Self {
        if let Some(p) = prev {
            self.precpu_stats = p.cpu_stats.clone();
            self.preread = p.read.clone();
        }
        self
    }
}

// Parsing of the cgroup and proc files.

/// `key value` lines (cpu.stat, memory.stat, cpuacct.stat, memory.events).
pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (k, v) = (f.next()?, f.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A single number; `max` (v2's "no limit") and anything unreadable are None.
pub fn parse_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// cpuacct.usage_percpu: nanoseconds per CPU, space separated.
pub fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn device(dev: &str) -> Option<(u64, u64)> {
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// cgroup v2 io.stat (`8:0 rbytes=… wbytes=… rios=…`): a read and a write entry per device,
/// as dockerd reports them.
pub fn parse_io_stat(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(device) else {
            continue;
        };
        let kv: HashMap<&str, u64> = fields
            .filter_map(|f| {
                let (k, v) = f.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        for (op, key) in [("read", "rbytes"), ("write", "wbytes")] {
            out.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: kv.get(key).copied().unwrap_or(0),
            });
        }
    }
    out
}

/// cgroup v1 blkio.*_recursive (`8:0 Read 4096`, …, and a `Total 4096` line that is dropped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, value] = f.as_slice() else {
                return None;
            };
            let (major, minor) = device(dev)?;
            Some(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// /proc/stat: the host's CPU time in nanoseconds as dockerd counts it (the first seven
/// fields of the `cpu` line: user nice system idle iowait irq softirq), and the CPUs listed.
pub fn parse_proc_stat(text: &str, clk_tck: u64) -> (u64, u64) {
    let mut total = 0u64;
    let mut cpus = 0u64;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u128 = f
                    .take(7)
                    .filter_map(|v| v.parse::<u128>().ok())
                    .sum::<u128>();
                total = (ticks * 1_000_000_000 / u128::from(clk_tck.max(1))) as u64;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

/// /proc/meminfo's MemTotal in bytes.
pub fn parse_mem_total(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Reads one file of the container's cgroup: (controller, file name) → contents. The
/// controller picks the v1 hierarchy; on v2 there is one directory.
pub type CgroupReader<'a> = dyn Fn(&str, &str) -> Option<String> + 'a;

/// One sample of a container's cgroup. None when the cgroup is not there (not running).
/// `mem_total` (host memory) stands for "no limit", as dockerd reports it; `clk_tck` converts
/// v1's cpuacct.stat ticks.
pub fn read_cgroup(
    v2: bool,
    read: &CgroupReader,
    mem_total: u64,
    clk_tck: u64,
) -> Option<CgroupSample> {
    let mut s = if v2 {
        read_v2(read)?
    } else {
        read_v1(read, clk_tck)?
    };
    if s.memory.limit == 0 || (mem_total > 0 && s.memory.limit > mem_total) {
        s.memory.limit = mem_total;
    }
    Some(s)
}

fn read_v2(read: &CgroupReader) -> Option<CgroupSample> {
    let cpu = parse_keyed(&read("cpu", "cpu.stat")?);
    let k = |m: &BTreeMap<String, u64>, key: &str| m.get(key).copied().unwrap_or(0);
    let mut s = CgroupSample::default();
    s.cpu.cpu_usage = CpuUsage {
        total_usage: k(&cpu, "usage_usec") * 1000,
        percpu_usage: Vec::new(),
        usage_in_kernelmode: k(&cpu, "system_usec") * 1000,
        usage_in_usermode: k(&cpu, "user_usec") * 1000,
    };
    s.cpu.throttling_data = Throttling {
        periods: k(&cpu, "nr_periods"),
        throttled_periods: k(&cpu, "nr_throttled"),
        throttled_time: k(&cpu, "throttled_usec") * 1000,
    };
    s.memory = MemoryStats {
        usage: read("memory", "memory.current")
            .and_then(|t| parse_number(&t))
            .unwrap_or(0),
        max_usage: 0,
        stats: read("memory", "memory.stat")
            .map(|t| parse_keyed(&t))
            .unwrap_or_default(),
        failcnt: read("memory", "memory.events")
            .map(|t| k(&parse_keyed(&t), "oom"))
            .unwrap_or(0),
        limit: read("memory", "memory.max")
            .and_then(|t| parse_number(&t))
            .unwrap_or(0),
    };
    s.pids = read_pids(read);
    s.blkio.io_service_bytes_recursive = read("io", "io.stat")
        .map(|t| parse_io_stat(&t))
        .filter(|l| !l.is_empty());
    Some(s)
}

fn read_v1(read: &CgroupReader, clk_tck: u64) -> Option<CgroupSample> {
    let total = parse_number(&read("cpuacct", "cpuacct.usage")?)?;
    let ticks = read("cpuacct", "cpuacct.stat")
        .map(|t| parse_keyed(&t))
        .unwrap_or_default();
    let ns = |key: &str| {
        let t = u128::from(ticks.get(key).copied().unwrap_or(0));
        (t * 1_000_000_000 / u128::from(clk_tck.max(1))) as u64
    };
    let mut s = CgroupSample::default();
    s.cpu.cpu_usage = CpuUsage {
        total_usage: total,
        percpu_usage: read("cpuacct", "cpuacct.usage_percpu")
            .map(|t| parse_percpu(&t))
            .unwrap_or_default(),
        usage_in_kernelmode: ns("system"),
        usage_in_usermode: ns("user"),
    };
    let throttle = read("cpu", "cpu.stat")
        .map(|t| parse_keyed(&t))
        .unwrap_or_default();
    let k = |key: &str| throttle.get(key).copied().unwrap_or(0);
    s.cpu.throttling_data = Throttling {
        periods: k("nr_periods"),
        throttled_periods: k("nr_throttled"),
        throttled_time: k("throttled_time"),
    };
    let num = |file: &str| {
        read("memory", file)
            .and_then(|t| parse_number(&t))
            .unwrap_or(0)
    };
    s.memory = MemoryStats {
        usage: num("memory.usage_in_bytes"),
        max_usage: num("memory.max_usage_in_bytes"),
        stats: read("memory", "memory.stat")
            .map(|t| parse_keyed(&t))
            .unwrap_or_default(),
        failcnt: num("memory.failcnt"),
        limit: num("memory.limit_in_bytes"),
    };
    s.pids = read_pids(read);
    // The throttle files count every request; the CFQ/BFQ ones only what their scheduler saw.
    let blkio = |kind: &str| {
        [
            format!("blkio.throttle.{kind}_recursive"),
            format!("blkio.{kind}_recursive"),
            format!("blkio.bfq.{kind}_recursive"),
        ]
        .iter()
        .filter_map(|f| read("blkio", f))
        .map(|t| parse_blkio_v1(&t))
        .find(|l| !l.is_empty())
    };
    s.blkio.io_service_bytes_recursive = blkio("io_service_bytes");
    s.blkio.io_serviced_recursive = blkio("io_serviced");
    Some(s)
}

fn read_pids(read: &CgroupReader) -> PidsStats {
    PidsStats {
        current: read("pids", "pids.current")
            .and_then(|t| parse_number(&t))
            .unwrap_or(0),
        limit: read("pids", "pids.max")
            .and_then(|t| parse_number(&t))
            .unwrap_or(0),
    }
}

// The live system.

fn cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .map(|t| parse_mem_total(&t))
        .unwrap_or(0)
}

fn system_cpu() -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .map(|t| parse_proc_stat(&t, clock_ticks()))
        .unwrap_or((0, 0))
}

fn sample_container(id: &str) -> Option<CgroupSample> {
    let rel = crate::containers::spec::cgroup_path(id);
    let rel = rel.trim_start_matches('/');
    let v2 = cgroup_v2();
    let dir_of = |controller: &str| -> PathBuf {
        if v2 {
            Path::new(CGROUP_ROOT).join(rel)
        } else {
            Path::new(CGROUP_ROOT).join(controller).join(rel)
        }
    };
    let read = |controller: &str, file: &str| -> Option<String> {
        std::fs::read_to_string(dir_of(controller).join(file)).ok()
    };
    read_cgroup(v2, &read, host_memory(), clock_ticks())
}

/// One sample of the container, with the host's CPU time taken right after its cgroup's
/// (as dockerd does, to keep the two deltas comparable). Zeros when it is not running.
fn take(c: &Container) -> StatsResponse {
    let rec = c.record();
    if !rec.state.status.is_live() {
        return StatsResponse::empty(&rec.name, &rec.id);
    }
    let Some(mut sample) = sample_container(&rec.id) else {
        return StatsResponse::empty(&rec.name, &rec.id);
    };
    let read = now_rfc3339();
    let (system, cpus) = system_cpu();
    sample.cpu.system_cpu_usage = system;
    sample.cpu.online_cpus = cpus;
    let mut s = StatsResponse::from_sample(&rec.name, &rec.id, read, sample);
    s.networks = container_networks(&rec);
    s
}

/// docker's boolean query values: absent or empty is the default; 0/false/no/none are false.
fn bool_or(q: &Query, key: &str, default: bool) -> bool {
    match q.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => default,
        Some(v) if v.is_empty() => default,
        Some(v) => !matches!(v.as_str(), "0" | "false" | "no" | "none"),
    }
}

/// `GET /containers/{id}/stats?stream=…&one-shot=…`, as dockerd answers it:
/// - stream (the default): a sample a second, one JSON document per line, until the client
///   goes away or the container is removed (a stopped container streams zeros, and real
///   figures again once it is started);
/// - stream=0: one sample, taken a second after a first so that `precpu_stats` holds the
///   previous CPU figures (what `docker stats --no-stream` computes its CPU % from);
/// - stream=0&one-shot=1: one sample at once, with an empty `precpu_stats`;
/// - a container that is not running, with stream=0: names and zeros at once.
pub async fn stats(ctx: &Ctx, c: Arc<Container>, q: &Query) -> Result<Resp, ApiError> {
    let stream = bool_or(q, "stream", true);
    let one_shot = bool_or(q, "one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    if !stream {
        let first = take(&c);
        if one_shot || !c.status().is_live() {
            return Ok(json(StatusCode::OK, &first));
        }
        tokio::time::sleep(INTERVAL).await;
        return Ok(json(StatusCode::OK, &take(&c).after(Some(&first))));
    }

    let engine = ctx.containers.clone();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        // dockerd primes `precpu_stats` with a first sample it does not send.
        let mut prev: Option<StatsResponse> = None;
        loop {
            let s = take(&c).after(prev.as_ref());
            if prev.is_some()
                && tx
                    .send(serde_json::to_value(&s).unwrap_or(Value::Null))
                    .is_err()
            {
                return;
            }
            prev = Some(s);
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = tx.closed() => return,
            }
            if engine.get(&c.id).is_err() {
                return;
            }
        }
    });
    Ok(json_stream(rx))
}

/// Per image, the size of its layers that other images share; and the size of all layers
/// once each (docker's `LayersSize`).
fn layer_sharing(images: &[ImageRecord]) -> (HashMap<String, u64>, u64) {
    let mut users: HashMap<&str, usize> = HashMap::new();
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for img in images {
        let mut seen = HashSet::new();
        for l in &img.layers {
            sizes.insert(&l.diff_id, l.size);
            if seen.insert(&l.diff_id) {
                *users.entry(&l.diff_id).or_default() += 1;
            }
        }
    }
    let shared = images
        .iter()
        .map(|img| {
            let mut seen = HashSet::new();
            let size = img
                .layers
                .iter()
                .filter(|l| seen.insert(&l.diff_id) && users[l.diff_id.as_str()] > 1)
                .map(|l| l.size)
                .sum();
            (img.id.clone(), size)
        })
        .collect();
    (shared, sizes.values().sum())
}

/// `GET /system/df`: images as `/images/json` lists them with their container count and
/// shared size, containers as `/containers/json?all=1&size=1` does; no volumes or build cache.
pub fn df(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    if let Some(t) = q.get("type") {
        if !["container", "image", "volume", "build-cache"].contains(&t) {
            return Err(ApiError::bad_request(format!(
                "unknown object type: {t}: use container, image, volume or build-cache"
            )));
        }
    }
    let containers = body_json(super::containers::list(
        ctx,
        &Query::parse(Some("all=1&size=1")),
    )?)?;
    let mut per_image: HashMap<String, i64> = HashMap::new();
    for c in containers.as_array().into_iter().flatten() {
        if let Some(id) = c["ImageID"].as_str() {
            *per_image.entry(id.to_string()).or_default() += 1;
        }
    }
    let mut images = body_json(super::images::list(&*ctx.store, &Query::default())?)?;
    let records: Vec<ImageRecord> = ctx.store.images().into_iter().map(|i| i.record).collect();
    let (shared, layers_size) = layer_sharing(&records);
    for img in images.as_array_mut().into_iter().flatten() {
        let id = img["Id"].as_str().unwrap_or_default().to_string();
        img["Containers"] = json!(per_image.get(&id).copied().unwrap_or(0));
        img["SharedSize"] = json!(shared.get(&id).copied().unwrap_or(0));
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": super::volumes::usage(&*ctx.containers),
            "BuildCache": [],
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(files: &[(&str, &str)]) -> impl Fn(&str, &str) -> Option<String> {
        let map: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |controller: &str, file: &str| {
            map.get(&format!("{controller}/{file}"))
                .or_else(|| map.get(file))
                .cloned()
        }
    }

    const V2_FILES: &[(&str, &str)] = &[
        (
            "cpu.stat",
            "usage_usec 52000\nuser_usec 30000\nsystem_usec 22000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 1500\n",
        ),
        ("memory.current", "8388608\n"),
        ("memory.max", "max\n"),
        (
            "memory.stat",
            "anon 4194304\nfile 3145728\ninactive_file 2097152\nactive_file 1048576\npgfault 1200\n",
        ),
        ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        (
            "io.stat",
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        ),
    ];

    #[test]
    fn cgroup_v2_sample() {
        let read = reader(V2_FILES);
        let s = read_cgroup(true, &read, 2_000_000_000, 100).unwrap();
        assert_eq!(
            s.cpu.cpu_usage,
            CpuUsage {
                total_usage: 52_000_000,
                percpu_usage: vec![],
                usage_in_kernelmode: 22_000_000,
                usage_in_usermode: 30_000_000,
            }
        );
        assert_eq!(
            s.cpu.throttling_data,
            Throttling {
                periods: 10,
                throttled_periods: 2,
                throttled_time: 1_500_000
            }
        );
        assert_eq!(s.memory.usage, 8_388_608);
        // memory.max "max": the host's memory.
        assert_eq!(s.memory.limit, 2_000_000_000);
        assert_eq!(s.memory.stats["inactive_file"], 2_097_152);
        assert_eq!(s.memory.failcnt, 1);
        assert_eq!(
            s.pids,
            PidsStats {
                current: 3,
                limit: 0
            }
        );
        let io = s.blkio.io_service_bytes_recursive.unwrap();
        assert_eq!(io.len(), 4);
        assert_eq!(
            io[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "read".into(),
                value: 4096
            }
        );
        assert_eq!((io[1].op.as_str(), io[1].value), ("write", 8192));
        assert_eq!((io[2].major, io[2].minor, io[2].value), (253, 1, 512));
    }

    #[test]
    fn cgroup_v2_limits() {
        let mut files = V2_FILES.to_vec();
        files.retain(|(f, _)| !["memory.max", "pids.max", "io.stat"].contains(f));
        files.push(("memory.max", "67108864\n"));
        files.push(("pids.max", "100\n"));
        files.push(("io.stat", ""));
        let read = reader(&files);
        let s = read_cgroup(true, &read, 2_000_000_000, 100).unwrap();
        assert_eq!(s.memory.limit, 67_108_864);
        assert_eq!(s.pids.limit, 100);
        assert_eq!(s.blkio.io_service_bytes_recursive, None);
        // No cgroup: not running.
        assert_eq!(read_cgroup(true, &reader(&[]), 1, 100), None);
    }

    const V1_FILES: &[(&str, &str)] = &[
        ("cpuacct/cpuacct.usage", "123456789\n"),
        ("cpuacct/cpuacct.usage_percpu", "100000000 23456789 \n"),
        ("cpuacct/cpuacct.stat", "user 7\nsystem 3\n"),
        (
            "cpu/cpu.stat",
            "nr_periods 5\nnr_throttled 1\nthrottled_time 2000000\n",
        ),
        ("memory/memory.usage_in_bytes", "10485760\n"),
        ("memory/memory.max_usage_in_bytes", "12582912\n"),
        ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory/memory.failcnt", "0\n"),
        (
            "memory/memory.stat",
            "cache 4194304\nrss 5242880\ninactive_file 1048576\nhierarchical_memory_limit 9223372036854771712\ntotal_cache 4194304\ntotal_inactive_file 2097152\n",
        ),
        ("pids/pids.current", "2\n"),
        ("pids/pids.max", "max\n"),
        ("blkio/blkio.throttle.io_service_bytes_recursive", "Total 0\n"),
        (
            "blkio/blkio.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 12288\n8:0 Sync 16384\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 16384\nTotal 16384\n",
        ),
        (
            "blkio/blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\n8:0 Write 3\nTotal 4\n",
        ),
    ];

    #[test]
    fn cgroup_v1_sample() {
        let read = reader(V1_FILES);
        let s = read_cgroup(false, &read, 2_000_000_000, 100).unwrap();
        assert_eq!(
            s.cpu.cpu_usage,
            CpuUsage {
                total_usage: 123_456_789,
                percpu_usage: vec![100_000_000, 23_456_789],
                usage_in_kernelmode: 30_000_000,
                usage_in_usermode: 70_000_000,
            }
        );
        assert_eq!(s.cpu.throttling_data.throttled_time, 2_000_000);
        assert_eq!(s.memory.usage, 10_485_760);
        assert_eq!(s.memory.max_usage, 12_582_912);
        // Unlimited (the page-rounded i64 max): the host's memory.
        assert_eq!(s.memory.limit, 2_000_000_000);
        assert_eq!(s.memory.stats["total_inactive_file"], 2_097_152);
        assert_eq!(
            s.pids,
            PidsStats {
                current: 2,
                limit: 0
            }
        );
        // The throttle file had only its Total line: the CFQ one is used.
        let io = s.blkio.io_service_bytes_recursive.unwrap();
        assert_eq!(io.len(), 6);
        assert_eq!((io[0].op.as_str(), io[0].value), ("Read", 4096));
        assert_eq!((io[1].op.as_str(), io[1].value), ("Write", 12288));
        assert_eq!(s.blkio.io_serviced_recursive.unwrap().len(), 2);
        assert_eq!(read_cgroup(false, &reader(&[]), 1, 100), None);
    }

    #[test]
    fn proc_files() {
        let stat = "cpu  528150 0 161745 1943527 7714 0 1298 206 0 0\ncpu0 256942 0 79060 983313 1468 0 269 104 0 0\ncpu1 271208 0 82685 960214 6246 0 1028 102 0 0\nintr 1 2 3\nctxt 99\n";
        let (ns, cpus) = parse_proc_stat(stat, 100);
        assert_eq!(ns, (528150 + 161745 + 1943527 + 7714 + 1298) * 10_000_000);
        assert_eq!(cpus, 2);
        assert_eq!(
            parse_mem_total("MemTotal:        2035856 kB\nMemFree: 1 kB\n"),
            2035856 * 1024
        );
        assert_eq!(parse_number("max\n"), None);
        assert_eq!(parse_number(" 42\n"), Some(42));
    }

    #[test]
    fn net_dev_counters_per_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0
";
        let m = parse_net_dev(text);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m["eth0"],
            NetworkStats {
                rx_bytes: 1296,
                rx_packets: 16,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 726,
                tx_packets: 9,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["eth0"]["tx_dropped"], 4);
    }

    #[test]
    fn json_shape_like_dockerd() {
        let v = serde_json::to_value(StatsResponse::empty("web", "abc")).unwrap();
        assert_eq!(v["name"], "/web");
        assert_eq!(v["read"], ZERO_TIME);
        assert_eq!(v["pids_stats"], json!({}));
        assert_eq!(v["memory_stats"], json!({}));
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], Value::Null);
        assert_eq!(
            v["cpu_stats"],
            json!({
                "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
            })
        );
        assert!(v.get("networks").is_none());

        let read = reader(V2_FILES);
        let mut s1 = read_cgroup(true, &read, 1 << 30, 100).unwrap();
        s1.cpu.system_cpu_usage = 1_000;
        s1.cpu.online_cpus = 2;
        let first = StatsResponse::from_sample("web", "abc", "t1".into(), s1.clone());
        let second = StatsResponse::from_sample("web", "abc", "t2".into(), s1).after(Some(&first));
        let v = serde_json::to_value(second).unwrap();
        assert_eq!(v["preread"], "t1");
        assert_eq!(v["precpu_stats"]["system_cpu_usage"], 1_000);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["memory_stats"]["limit"], 1u64 << 30);
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
    }

    #[test]
    fn shared_layers() {
        use crate::images::store::LayerRecord;
        let image = |id: &str, layers: &[(&str, u64)]| ImageRecord {
            id: id.into(),
            manifest_digest: String::new(),
            manifest_media_type: String::new(),
            layers: layers
                .iter()
                .map(|(d, size)| LayerRecord {
                    diff_id: d.to_string(),
                    digest: String::new(),
                    media_type: String::new(),
                    compressed_size: 0,
                    size: *size,
                    tree: None,
                    source: None,
                })
                .collect(),
            stored_at: String::new(),
            parent: None,
        };
        let images = [
            image("a", &[("base", 100), ("app", 10)]),
            image("b", &[("base", 100), ("other", 5), ("other", 5)]),
            image("c", &[("alone", 7)]),
        ];
        let (shared, total) = layer_sharing(&images);
        assert_eq!(total, 122);
        assert_eq!((shared["a"], shared["b"], shared["c"]), (100, 100, 0));
    }

    #[test]
    fn boolean_queries() {
        let q = Query::parse(Some("stream=0&one-shot=true&x=False"));
        assert!(!bool_or(&q, "stream", true));
        assert!(bool_or(&q, "one-shot", false));
        assert!(!bool_or(&q, "x", true));
        assert!(bool_or(&q, "absent", true));
        assert!(bool_or(&Query::parse(Some("stream=")), "stream", true));
    }
}
