//! `update` / `container update`: new resource limits and restart policy for containers.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::api::{message_of, seg, Body};
use super::opts::{flag_error, mem_swap_bytes, parse_cpus, parse_restart, ram_in_bytes};
use super::run::with_help;
use super::Engine;
use crate::cli::UpdateArgs;
use crate::output::outln;
use crate::SkiffError;

/// How many of the update flags were given (docker's `NFlag`; a flag given as 0 counts).
fn flags_given(a: &UpdateArgs) -> usize {
    [
        a.blkio_weight.is_some(),
        a.cpu_period.is_some(),
        a.cpu_quota.is_some(),
        a.cpu_rt_period.is_some(),
        a.cpu_rt_runtime.is_some(),
        a.cpu_shares.is_some(),
        a.cpus.is_some(),
        a.cpuset_cpus.is_some(),
        a.cpuset_mems.is_some(),
        a.memory.is_some(),
        a.memory_reservation.is_some(),
        a.memory_swap.is_some(),
        a.pids_limit.is_some(),
        a.restart.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count()
}

/// The `POST /containers/{id}/update` body (docker's `UpdateConfig`) with only the flags
/// given; the engine leaves what is absent as it was.
fn update_body(a: &UpdateArgs) -> Result<Value> {
    if flags_given(a) == 0 {
        // docker returns this as a plain error: exit 1, no usage hint.
        return Err(SkiffError::daemon(
            "you must provide one or more flags when using this command",
        )
        .into());
    }
    let bad_flag = |e: String| with_help(&e, "update", 125);
    let mut b = Map::new();
    let mut put = |k: &str, v: Value| {
        b.insert(k.to_string(), v);
    };
    if let Some(w) = a.blkio_weight {
        put("BlkioWeight", json!(w));
    }
    for (key, v) in [
        ("CpuPeriod", a.cpu_period),
        ("CpuQuota", a.cpu_quota),
        ("CpuRealtimePeriod", a.cpu_rt_period),
        ("CpuRealtimeRuntime", a.cpu_rt_runtime),
        ("CpuShares", a.cpu_shares),
    ] {
        if let Some(v) = v {
            put(key, json!(v));
        }
    }
    if let Some(c) = &a.cpus {
        let nano = parse_cpus(c).map_err(|e| bad_flag(flag_error(c, "--cpus", &e)))?;
        put("NanoCpus", json!(nano));
    }
    if let Some(s) = &a.cpuset_cpus {
        put("CpusetCpus", json!(s));
    }
    if let Some(s) = &a.cpuset_mems {
        put("CpusetMems", json!(s));
    }
    for (key, flag, v) in [
        ("Memory", "-m, --memory", &a.memory),
        (
            "MemoryReservation",
            "--memory-reservation",
            &a.memory_reservation,
        ),
    ] {
        if let Some(m) = v {
            let bytes = ram_in_bytes(m).map_err(|e| bad_flag(flag_error(m, flag, &e)))?;
            put(key, json!(bytes));
        }
    }
    if let Some(m) = &a.memory_swap {
        let bytes = mem_swap_bytes(m).map_err(|e| bad_flag(flag_error(m, "--memory-swap", &e)))?;
        put("MemorySwap", json!(bytes));
    }
    // docker sends no PidsLimit for 0 (its pointer stays nil), so 0 changes nothing.
    if let Some(p) = a.pids_limit.filter(|p| *p != 0) {
        put("PidsLimit", json!(p));
    }
    if let Some(r) = a.restart.as_deref().filter(|r| !r.is_empty()) {
        // docker's ParseRestartPolicy error is a plain one (exit 1).
        let (name, count) = parse_restart(r).map_err(SkiffError::daemon)?;
        put(
            "RestartPolicy",
            json!({"Name": name, "MaximumRetryCount": count}),
        );
    }
    Ok(Value::Object(b))
}

/// The refusals that come before any request.
pub fn check(a: &UpdateArgs) -> Result<()> {
    update_body(a).map(drop)
}

pub async fn update(engine: &Engine, a: &UpdateArgs) -> Result<u8> {
    let body = update_body(a)?;
    let api = engine.api();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for c in &a.containers {
        let target = format!("/containers/{}/update", seg(c));
        match api.json("POST", &target, Body::Json(&body)).await {
            Ok(v) => {
                outln(c);
                if let Some(w) = v.get("Warnings").and_then(Value::as_array) {
                    warnings.extend(w.iter().filter_map(Value::as_str).map(String::from));
                }
            }
            Err(e) => errors.push(message_of(&e)),
        }
    }
    if !warnings.is_empty() {
        outln(&warnings.join("\n"));
    }
    if !errors.is_empty() {
        return Err(SkiffError::daemon(errors.join("\n")).into());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> UpdateArgs {
        UpdateArgs {
            containers: vec!["web".into()],
            ..Default::default()
        }
    }

    fn refusal(a: &UpdateArgs) -> SkiffError {
        let e = update_body(a).unwrap_err();
        let se = e.downcast_ref::<SkiffError>().unwrap();
        SkiffError::with_code(se.message.clone(), se.code)
    }

    #[test]
    fn no_flag_is_refused_as_docker_refuses_it() {
        let se = refusal(&args());
        assert_eq!(
            se.message,
            "you must provide one or more flags when using this command"
        );
        assert_eq!(se.code, 1);
    }

    #[test]
    fn only_the_flags_given_are_sent() {
        let a = UpdateArgs {
            memory: Some("64m".into()),
            restart: Some("on-failure:2".into()),
            ..args()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({"Memory": 67108864, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
        );
        let a = UpdateArgs {
            blkio_weight: Some(300),
            cpu_period: Some(100_000),
            cpu_quota: Some(50_000),
            cpu_rt_period: Some(1000),
            cpu_rt_runtime: Some(500),
            cpu_shares: Some(512),
            cpus: Some("1.5".into()),
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            memory_reservation: Some("32m".into()),
            memory_swap: Some("-1".into()),
            pids_limit: Some(-1),
            ..args()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({
                "BlkioWeight": 300, "CpuPeriod": 100000, "CpuQuota": 50000,
                "CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500, "CpuShares": 512,
                "NanoCpus": 1_500_000_000i64, "CpusetCpus": "0-1", "CpusetMems": "0",
                "MemoryReservation": 32 << 20, "MemorySwap": -1, "PidsLimit": -1,
            })
        );
        // A zero counts as a flag given; a zero pids limit and an empty policy send nothing.
        let a = UpdateArgs {
            pids_limit: Some(0),
            restart: Some(String::new()),
            ..args()
        };
        assert_eq!(update_body(&a).unwrap(), json!({}));
    }

    #[test]
    fn bad_values_are_refused_in_dockers_words() {
        let se = refusal(&UpdateArgs {
            memory: Some("lots".into()),
            ..args()
        });
        assert_eq!(se.code, 125);
        assert!(
            se.message.starts_with(
                "skiff: invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
            ),
            "{}",
            se.message
        );
        let se = refusal(&UpdateArgs {
            cpus: Some("x".into()),
            ..args()
        });
        assert!(se.message.contains("\"--cpus\" flag"), "{}", se.message);
        let se = refusal(&UpdateArgs {
            restart: Some(":3".into()),
            ..args()
        });
        assert_eq!(se.code, 1);
        assert_eq!(
            se.message,
            "invalid restart policy format: no policy provided before colon"
        );
    }
}
