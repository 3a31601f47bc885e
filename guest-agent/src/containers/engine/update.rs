//! `docker update`: new memory, CPU and pids limits written into a running container's cgroup
//! (and kept for its next starts), and a new restart policy. What skiff cannot change is
//! refused by name, never dropped.

use std::path::PathBuf;

use bollard::models::{ContainerUpdateBody, HostConfig, RestartPolicyNameEnum as R};

use super::{Container, Containers};
use crate::containers::error::ContainerError;

/// One cgroup file to write: its v2 name, and its v1 controller and name.
#[derive(Debug, PartialEq)]
pub(super) struct Write {
    pub v2: Option<&'static str>,
    pub v1: Option<(&'static str, &'static str)>,
    pub value: String,
}

impl Containers {
    pub async fn update(
        &self,
        c: &Container,
        body: &ContainerUpdateBody,
    ) -> Result<Vec<String>, ContainerError> {
        let _op = c.op.lock().await;
        let rec = c.record();
        let new = merged(&rec.host_config, body)?;
        if rec.state.status.is_live() {
            let writes = cgroup_writes(&rec.host_config, &new);
            let id = rec.id.clone();
            tokio::task::spawn_blocking(move || apply(&id, &writes))
                .await
                .map_err(|e| ContainerError::Internal(anyhow::anyhow!("{e}")))?
                .map_err(ContainerError::Internal)?;
        }
        c.update(|r| r.host_config = new)
            .map_err(|e| ContainerError::Internal(e.context("saving the new limits")))?;
        self.emit("update", c, &[]);
        Ok(Vec::new())
    }
}

/// The host config after an update, as dockerd merges it: a zero or absent figure leaves the
/// old one; anything skiff cannot change is refused.
pub(super) fn merged(
    old: &HostConfig,
    u: &ContainerUpdateBody,
) -> Result<HostConfig, ContainerError> {
    let refuse = |what: &str| {
        Err(ContainerError::invalid(format!(
            "skiff cannot update {what} of a container: only memory, memory-swap, cpu-shares, cpu-period, cpu-quota, cpus, pids-limit and the restart policy"
        )))
    };
    let nonzero = |v: Option<i64>| v.unwrap_or(0) != 0;
    let nonempty_s = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if u.blkio_weight.unwrap_or(0) != 0
        || u.blkio_weight_device
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || u.blkio_device_read_bps
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || u.blkio_device_write_bps
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || u.blkio_device_read_iops
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || u.blkio_device_write_iops
            .as_ref()
            .is_some_and(|v| !v.is_empty())
    {
        return refuse("the block IO limits");
    }
    if nonempty_s(&u.cpuset_cpus) || nonempty_s(&u.cpuset_mems) {
        return refuse("the cpuset");
    }
    if nonzero(u.cpu_realtime_period) || nonzero(u.cpu_realtime_runtime) {
        return refuse("the realtime CPU time");
    }
    if nonzero(u.memory_reservation) {
        return refuse("the memory reservation");
    }
    if u.memory_swappiness.is_some_and(|s| s >= 0) {
        return refuse("the memory swappiness");
    }
    if u.oom_kill_disable.is_some() {
        return refuse("the OOM killer setting");
    }
    if nonempty_s(&u.cgroup_parent) {
        return refuse("the cgroup parent");
    }
    if u.devices.as_ref().is_some_and(|v| !v.is_empty())
        || u.device_cgroup_rules
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || u.device_requests.as_ref().is_some_and(|v| !v.is_empty())
    {
        return refuse("the devices");
    }
    if u.ulimits.as_ref().is_some_and(|v| !v.is_empty()) {
        return refuse("the ulimits");
    }
    if nonzero(u.cpu_count)
        || nonzero(u.cpu_percent)
        || nonzero(u.io_maximum_iops)
        || nonzero(u.io_maximum_bandwidth)
    {
        return refuse("Windows' CPU and IO limits");
    }
    let mut hc = old.clone();
    if let Some(m) = u.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(ContainerError::invalid(
                "Minimum memory limit allowed is 6MB",
            ));
        }
        hc.memory = Some(m);
    }
    if let Some(s) = u.memory_swap.filter(|s| *s != 0) {
        hc.memory_swap = Some(s);
    }
    let memory = hc.memory.unwrap_or(0);
    let swap = hc.memory_swap.unwrap_or(0);
    if swap > 0 && memory == 0 {
        return Err(ContainerError::invalid(
            "You should always set the Memory limit when using Memoryswap limit",
        ));
    }
    if swap > 0 && swap < memory {
        return Err(ContainerError::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if let Some(s) = u.cpu_shares.filter(|s| *s != 0) {
        hc.cpu_shares = Some(s);
    }
    let quota_asked = nonzero(u.cpu_quota) || nonzero(u.cpu_period);
    if let Some(n) = u.nano_cpus.filter(|n| *n != 0) {
        if quota_asked || nonzero(hc.cpu_quota) {
            return Err(ContainerError::invalid(
                "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
            ));
        }
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(ContainerError::invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
        hc.nano_cpus = Some(n);
    }
    if quota_asked {
        if nonzero(hc.nano_cpus) {
            return Err(ContainerError::invalid(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
        if let Some(p) = u.cpu_period.filter(|p| *p != 0) {
            if !(1000..=1_000_000).contains(&p) {
                return Err(ContainerError::invalid(
                    "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
                ));
            }
            hc.cpu_period = Some(p);
        }
        if let Some(q) = u.cpu_quota.filter(|q| *q != 0) {
            if q > 0 && q < 1000 {
                return Err(ContainerError::invalid(
                    "CPU cfs quota can not be less than 1ms (i.e. 1000)",
                ));
            }
            hc.cpu_quota = Some(q);
        }
    }
    if let Some(p) = u.pids_limit {
        hc.pids_limit = Some(p);
    }
    if let Some(p) = &u.restart_policy {
        let name = p.name.unwrap_or(R::EMPTY);
        if !matches!(name, R::EMPTY | R::NO) && old.auto_remove.unwrap_or(false) {
            return Err(ContainerError::invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        if p.maximum_retry_count.unwrap_or(0) < 0 {
            return Err(ContainerError::invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        if p.maximum_retry_count.unwrap_or(0) > 0 && name != R::ON_FAILURE {
            return Err(ContainerError::invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
        hc.restart_policy = Some(p.clone());
    }
    Ok(hc)
}

/// What changes in the cgroup from `old` to `new` (only what changed is written).
pub(super) fn cgroup_writes(old: &HostConfig, new: &HostConfig) -> Vec<Write> {
    let mut w = Vec::new();
    let unlimited = |v: i64| if v > 0 { v.to_string() } else { "max".into() };
    let (om, os) = (old.memory.unwrap_or(0), old.memory_swap.unwrap_or(0));
    let (nm, ns) = (new.memory.unwrap_or(0), new.memory_swap.unwrap_or(0));
    if (om, os) != (nm, ns) {
        // docker: without --memory-swap as much swap as memory; -1 is unlimited swap.
        let total = match ns {
            0 if nm > 0 => nm * 2,
            0 => 0,
            s => s,
        };
        let v1 = |t: i64| if t > 0 { t.to_string() } else { "-1".into() };
        let swap_only = if total > 0 && nm > 0 {
            (total - nm).to_string()
        } else {
            "max".into()
        };
        // A value "a|b" is a for v2, b for v1. v1 wants memory+swap at or above memory at
        // every step: lift it first, then set memory, then memory+swap.
        w.push(Write {
            v2: None,
            v1: Some(("memory", "memory.memsw.limit_in_bytes")),
            value: "-1".into(),
        });
        w.push(Write {
            v2: Some("memory.max"),
            v1: Some(("memory", "memory.limit_in_bytes")),
            value: format!("{}|{}", unlimited(nm), v1(nm)),
        });
        w.push(Write {
            v2: Some("memory.swap.max"),
            v1: Some(("memory", "memory.memsw.limit_in_bytes")),
            value: format!("{swap_only}|{}", v1(total)),
        });
    }
    if old.cpu_shares != new.cpu_shares {
        let s = new.cpu_shares.unwrap_or(0);
        let shares = if s > 0 { s } else { 1024 };
        // libcgroups' conversion of shares (2..262144) to a v2 weight (1..10000).
        let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
        w.push(Write {
            v2: Some("cpu.weight"),
            v1: Some(("cpu", "cpu.shares")),
            value: format!("{weight}|{shares}"),
        });
    }
    let quota_of = |hc: &HostConfig| -> (i64, i64) {
        match hc.nano_cpus.unwrap_or(0) {
            n if n > 0 => (n / 10_000, 100_000),
            _ => (
                hc.cpu_quota.unwrap_or(0),
                hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000),
            ),
        }
    };
    if quota_of(old) != quota_of(new) {
        let (q, p) = quota_of(new);
        w.push(Write {
            v2: None,
            v1: Some(("cpu", "cpu.cfs_period_us")),
            value: p.to_string(),
        });
        w.push(Write {
            v2: Some("cpu.max"),
            v1: Some(("cpu", "cpu.cfs_quota_us")),
            value: format!(
                "{} {p}|{}",
                unlimited(q),
                if q > 0 { q.to_string() } else { "-1".into() }
            ),
        });
    }
    if old.pids_limit != new.pids_limit {
        let p = unlimited(new.pids_limit.unwrap_or(0));
        w.push(Write {
            v2: Some("pids.max"),
            v1: Some(("pids", "pids.max")),
            value: p,
        });
    }
    w
}

/// Writes the changes into the container's cgroup (v2, or v1's controllers).
fn apply(id: &str, writes: &[Write]) -> anyhow::Result<()> {
    use anyhow::Context;
    let rel = crate::containers::spec::cgroup_path(id);
    let rel = rel.trim_start_matches('/');
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for w in writes {
        // A value "a|b" is a for v2, b for v1.
        let (v2_value, v1_value) = w.value.split_once('|').unwrap_or((&w.value, &w.value));
        let (path, value): (PathBuf, &str) = if v2 {
            match w.v2 {
                Some(f) => (PathBuf::from(format!("/sys/fs/cgroup/{rel}/{f}")), v2_value),
                None => continue,
            }
        } else {
            match w.v1 {
                Some((ctl, f)) => (
                    PathBuf::from(format!("/sys/fs/cgroup/{ctl}/{rel}/{f}")),
                    v1_value,
                ),
                None => continue,
            }
        };
        // memory.memsw exists only with swap accounting; without it there is no swap limit
        // to keep, as in docker ("Your kernel does not support swap limit capabilities").
        if !path.exists() && path.to_string_lossy().contains("memsw") {
            continue;
        }
        std::fs::write(&path, value)
            .with_context(|| format!("writing {value} to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc(v: serde_json::Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    fn upd(v: serde_json::Value) -> ContainerUpdateBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zeros_keep_the_old_figures_and_the_clis_body_is_accepted() {
        // docker update --memory 64m --memory-swap 128m --restart on-failure:2, as the CLI sends it.
        let body = upd(
            json!({"CpuShares":0,"Memory":67108864,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":null,"MemoryReservation":0,"MemorySwap":134217728,"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2}}),
        );
        let old = hc(json!({"CpuShares": 512, "PidsLimit": 50}));
        let new = merged(&old, &body).unwrap();
        assert_eq!(new.memory, Some(64 << 20));
        assert_eq!(new.memory_swap, Some(128 << 20));
        assert_eq!(new.cpu_shares, Some(512));
        assert_eq!(new.pids_limit, Some(50));
        assert_eq!(new.restart_policy.unwrap().maximum_retry_count, Some(2));
        let w = cgroup_writes(&old, &merged(&old, &body).unwrap());
        let last = w.iter().find(|w| w.v2 == Some("memory.swap.max")).unwrap();
        assert_eq!(last.value, format!("{}|{}", 64 << 20, 128 << 20));
    }

    #[test]
    fn what_skiff_cannot_change_is_refused() {
        let old = hc(json!({}));
        for body in [
            json!({"CpusetCpus": "0"}),
            json!({"BlkioWeight": 300}),
            json!({"MemoryReservation": 1 << 20}),
            json!({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}]}),
        ] {
            let e = merged(&old, &upd(body.clone())).unwrap_err().to_string();
            assert!(e.starts_with("skiff cannot update"), "{body}: {e}");
        }
        assert_eq!(
            merged(&old, &upd(json!({"MemorySwap": 1 << 30})))
                .unwrap_err()
                .to_string(),
            "You should always set the Memory limit when using Memoryswap limit"
        );
        let nano = hc(json!({"NanoCpus": 500_000_000}));
        assert!(merged(&nano, &upd(json!({"CpuQuota": 50_000}))).is_err());
    }

    #[test]
    fn cpu_and_pids_writes_in_both_hierarchies_words() {
        let old = hc(json!({}));
        let new = merged(
            &old,
            &upd(json!({"CpuQuota": 50_000, "CpuPeriod": 100_000, "CpuShares": 512, "PidsLimit": 20})),
        )
        .unwrap();
        let w = cgroup_writes(&old, &new);
        let v = |f: &str| w.iter().find(|w| w.v2 == Some(f)).unwrap().value.clone();
        assert_eq!(v("cpu.max"), "50000 100000|50000");
        assert_eq!(
            v("cpu.weight"),
            format!("{}|512", 1 + (510 * 9999) / 262_142)
        );
        assert_eq!(v("pids.max"), "20");
        let unlimited = merged(&new, &upd(json!({"PidsLimit": -1}))).unwrap();
        assert_eq!(cgroup_writes(&new, &unlimited)[0].value, "max");
    }
}
