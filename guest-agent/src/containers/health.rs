//! Healthchecks as dockerd runs them (moby's `daemon/health.go`), the policy only: which check a
//! container has (its own settings over its image's), docker's defaults and limits, when the
//! next check is due, and what a check's result does to the state kept in the record
//! (`starting` until the first success, `healthy`, `unhealthy` after `retries` failures in a
//! row, the last 5 results). Running the checks is `engine/health.rs`'s.

use std::time::Duration;

use bollard::models::{ContainerConfig, HealthConfig};
use serde::{Deserialize, Serialize};

/// docker's defaults, for a setting left at zero.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: i64 = 3;
/// How many results are kept, and how much of a check's output.
pub const MAX_LOG_ENTRIES: usize = 5;
pub const MAX_OUTPUT_LEN: usize = 4096;
/// The shortest duration docker accepts for a non-zero setting (`MinimumDuration`, 1ms).
const MINIMUM_DURATION_NS: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One check's result, as inspect shows it (`State.Health.Log[]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health` as inspect shows it, kept in the record as it is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: i64,
    pub log: Vec<HealthResult>,
}

/// The `health` filter's values docker accepts.
pub const FILTER_VALUES: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];

/// What the `health` filter matches a container's health against: `none` without a check.
pub fn filter_value(h: Option<&Health>) -> &'static str {
    h.map_or("none", |h| h.status.as_str())
}

/// The words `docker ps` adds to a running container's `Up …`.
pub fn ps_words(h: &Health) -> &'static str {
    match h.status {
        HealthStatus::Starting => "health: starting",
        HealthStatus::Healthy => "healthy",
        HealthStatus::Unhealthy => "unhealthy",
    }
}

/// A container's check with docker's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The process to run: `CMD`'s arguments, or the shell and `CMD-SHELL`'s command.
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn or_default(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The check a container runs, if any: none without a `Test`, or with `NONE`.
pub fn probe_of(config: &ContainerConfig) -> Option<Probe> {
    let hc = config.healthcheck.as_ref()?;
    let test = hc.test.as_deref()?;
    let cmd = match test.first().map(String::as_str)? {
        "CMD" => test[1..].to_vec(),
        "CMD-SHELL" => {
            let mut cmd = config
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            cmd.extend_from_slice(&test[1..]);
            cmd
        }
        _ => return None,
    };
    Some(Probe {
        cmd,
        interval: or_default(hc.interval, DEFAULT_INTERVAL),
        timeout: or_default(hc.timeout, DEFAULT_TIMEOUT),
        start_period: or_default(hc.start_period, DEFAULT_START_PERIOD),
        start_interval: or_default(hc.start_interval, DEFAULT_START_INTERVAL),
        retries: hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
    })
}

/// The checks dockerd makes of a create request's `Healthcheck`, with its messages; and what it
/// would silently ignore (a `Test` of an unknown kind, or a `CMD` with nothing to run) refused.
pub fn validate(hc: &HealthConfig) -> Result<(), String> {
    let durations = [
        ("Interval", hc.interval),
        ("Timeout", hc.timeout),
        ("StartPeriod", hc.start_period),
        ("StartInterval", hc.start_interval),
    ];
    for (name, ns) in durations {
        if ns.is_some_and(|n| n != 0 && n < MINIMUM_DURATION_NS) {
            return Err(format!("{name} in Healthcheck cannot be less than 1ms"));
        }
    }
    if hc.retries.is_some_and(|r| r < 0) {
        return Err("Retries in Healthcheck cannot be negative".into());
    }
    let test = hc.test.as_deref().unwrap_or_default();
    match test.first().map(String::as_str) {
        None | Some("NONE") => Ok(()),
        Some("CMD") | Some("CMD-SHELL")
            if test.len() < 2 || test[1..].iter().all(|a| a.is_empty()) =>
        {
            Err(format!(
                "Healthcheck's Test {:?} names no command to run",
                test[0]
            ))
        }
        Some("CMD") | Some("CMD-SHELL") => Ok(()),
        Some(other) => Err(format!(
            "unknown Healthcheck type {other:?}: use CMD, CMD-SHELL or NONE"
        )),
    }
}

/// The user's `Healthcheck` over the image's, as dockerd merges them: none of the user's takes
/// the image's whole; otherwise each field left empty (or zero) is the image's.
pub fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(image) = image else {
        return user;
    };
    let Some(mut user) = user else {
        return Some(image);
    };
    if user.test.as_ref().is_none_or(|t| t.is_empty()) {
        user.test = image.test;
    }
    let zero = |v: &Option<i64>| v.is_none_or(|n| n == 0);
    if zero(&user.interval) {
        user.interval = image.interval;
    }
    if zero(&user.timeout) {
        user.timeout = image.timeout;
    }
    if zero(&user.start_period) {
        user.start_period = image.start_period;
    }
    if zero(&user.start_interval) {
        user.start_interval = image.start_interval;
    }
    if zero(&user.retries) {
        user.retries = image.retries;
    }
    Some(user)
}

/// The health a container starts (or restarts) with: `starting`, no failures, the last run's
/// results kept, as dockerd's `initHealthMonitor`; unchanged without a check.
pub fn on_start(previous: Option<Health>, config: &ContainerConfig) -> Option<Health> {
    if probe_of(config).is_none() {
        return previous;
    }
    let mut h = previous.unwrap_or(Health {
        status: HealthStatus::Starting,
        failing_streak: 0,
        log: Vec::new(),
    });
    h.status = HealthStatus::Starting;
    h.failing_streak = 0;
    Some(h)
}

/// How long until the next check: `start_interval` while the container is still `starting`
/// within its start period, `interval` otherwise (and before the first check).
pub fn next_delay(probe: &Probe, status: HealthStatus, since_start: Duration) -> Duration {
    if since_start >= probe.start_period || status != HealthStatus::Starting {
        probe.interval
    } else {
        probe.start_interval
    }
}

/// A check's result applied: the log keeps the last 5; a success makes it `healthy`; a failure
/// adds to the streak (except while `starting` within the start period, counted from the
/// container's start to the check's) and `retries` of them in a row make it `unhealthy`.
pub fn record(h: &mut Health, result: HealthResult, probe: &Probe, check_since_start: Duration) {
    if h.log.len() >= MAX_LOG_ENTRIES {
        h.log.drain(..=h.log.len() - MAX_LOG_ENTRIES);
    }
    let passed = result.exit_code == 0;
    h.log.push(result);
    if passed {
        h.failing_streak = 0;
        h.status = HealthStatus::Healthy;
        return;
    }
    if h.status == HealthStatus::Starting && check_since_start < probe.start_period {
        return;
    }
    h.failing_streak += 1;
    if h.failing_streak >= probe.retries {
        h.status = HealthStatus::Unhealthy;
    }
}

/// A check's output as docker keeps it: its first 4096 bytes, and `...` if there was more.
pub fn capped_output(out: &[u8], truncated: bool) -> String {
    let keep = &out[..out.len().min(MAX_OUTPUT_LEN)];
    let mut s = String::from_utf8_lossy(keep).into_owned();
    if truncated || out.len() > MAX_OUTPUT_LEN {
        s.push_str("...");
    }
    s
}

/// docker's output for a check that ran past its timeout (and was killed).
pub fn timeout_output(timeout: Duration, output: &str) -> String {
    let d = go_duration(timeout);
    if output.is_empty() {
        format!("Health check exceeded timeout ({d})")
    } else {
        format!("Health check exceeded timeout ({d}): {output}")
    }
}

/// Go's `time.Duration.String()`: `1s`, `1m30s`, `500ms`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let trim = |f: f64| {
        let t = format!("{f:.9}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1.0)
        } else if nanos < 1_000_000 {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        return format!("{}{unit}", trim(nanos as f64 / div));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = format!(
        "{}s",
        trim((secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9)
    );
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn config(test: &[&str], interval: i64, retries: i64, start_period: i64) -> ContainerConfig {
        ContainerConfig {
            healthcheck: Some(HealthConfig {
                test: Some(test.iter().map(|s| s.to_string()).collect()),
                interval: Some(interval),
                timeout: None,
                retries: Some(retries),
                start_period: Some(start_period),
                start_interval: None,
            }),
            ..Default::default()
        }
    }

    fn result(code: i64) -> HealthResult {
        HealthResult {
            start: "s".into(),
            end: "e".into(),
            exit_code: code,
            output: format!("code {code}"),
        }
    }

    fn starting() -> Health {
        Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    #[test]
    fn zero_settings_take_dockers_defaults() {
        let p = probe_of(&config(&["CMD", "true"], 0, 0, 0)).unwrap();
        assert_eq!(p.cmd, ["true"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.start_period, Duration::ZERO);
        assert_eq!(p.start_interval, Duration::from_secs(5));
        assert_eq!(p.retries, 3);
        let p = probe_of(&config(&["CMD-SHELL", "test -e /x"], S, 2, 0)).unwrap();
        assert_eq!(p.cmd, ["/bin/sh", "-c", "test -e /x"]);
        assert_eq!((p.interval, p.retries), (Duration::from_secs(1), 2));
    }

    #[test]
    fn cmd_shell_runs_in_the_containers_shell() {
        let mut c = config(&["CMD-SHELL", "echo hi"], 0, 0, 0);
        c.shell = Some(vec!["/bin/bash".into(), "-ec".into()]);
        assert_eq!(probe_of(&c).unwrap().cmd, ["/bin/bash", "-ec", "echo hi"]);
    }

    #[test]
    fn none_an_empty_test_or_no_healthcheck_run_nothing() {
        assert!(probe_of(&config(&["NONE"], 0, 0, 0)).is_none());
        assert!(probe_of(&config(&[], S, 0, 0)).is_none());
        assert!(probe_of(&ContainerConfig::default()).is_none());
        assert_eq!(filter_value(None), "none");
        assert!(on_start(None, &config(&["NONE"], 0, 0, 0)).is_none());
    }

    #[test]
    fn bad_settings_are_refused_in_dockers_words() {
        let hc = |f: &dyn Fn(&mut HealthConfig)| {
            let mut h = HealthConfig {
                test: Some(vec!["CMD".into(), "true".into()]),
                ..Default::default()
            };
            f(&mut h);
            validate(&h)
        };
        assert_eq!(hc(&|_| {}), Ok(()));
        assert_eq!(
            hc(&|h| h.interval = Some(-S)).unwrap_err(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            hc(&|h| h.timeout = Some(999_999)).unwrap_err(),
            "Timeout in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            hc(&|h| h.start_period = Some(-1)).unwrap_err(),
            "StartPeriod in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            hc(&|h| h.start_interval = Some(5)).unwrap_err(),
            "StartInterval in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            hc(&|h| h.retries = Some(-1)).unwrap_err(),
            "Retries in Healthcheck cannot be negative"
        );
        assert!(hc(&|h| h.interval = Some(1_000_000)).is_ok());
        assert!(hc(&|h| h.test = Some(vec!["NONE".into()])).is_ok());
        assert!(hc(&|h| h.test = None).is_ok());
        assert_eq!(
            hc(&|h| h.test = Some(vec!["CMD-SHELL".into()])).unwrap_err(),
            "Healthcheck's Test \"CMD-SHELL\" names no command to run"
        );
        assert_eq!(
            hc(&|h| h.test = Some(vec!["PING".into(), "x".into()])).unwrap_err(),
            "unknown Healthcheck type \"PING\": use CMD, CMD-SHELL or NONE"
        );
    }

    #[test]
    fn the_users_settings_go_over_the_images_field_by_field() {
        let image = config(&["CMD-SHELL", "image-check"], 2 * S, 4, 0).healthcheck;
        assert_eq!(merge(None, image.clone()), image);
        let user = HealthConfig {
            interval: Some(S),
            ..Default::default()
        };
        let m = merge(Some(user), image.clone()).unwrap();
        assert_eq!(m.test.unwrap(), ["CMD-SHELL", "image-check"]);
        assert_eq!((m.interval, m.retries), (Some(S), Some(4)));
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        let m = merge(Some(none), image).unwrap();
        assert_eq!(m.test.unwrap(), ["NONE"]);
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn a_success_makes_it_healthy_and_retries_failures_unhealthy() {
        let p = probe_of(&config(&["CMD", "x"], S, 3, 0)).unwrap();
        let mut h = starting();
        record(&mut h, result(1), &p, Duration::from_secs(1));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        record(&mut h, result(0), &p, Duration::from_secs(2));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        record(&mut h, result(1), &p, Duration::from_secs(3));
        record(&mut h, result(2), &p, Duration::from_secs(4));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 2));
        record(&mut h, result(-1), &p, Duration::from_secs(5));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 3));
        record(&mut h, result(1), &p, Duration::from_secs(6));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 4));
        record(&mut h, result(0), &p, Duration::from_secs(7));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        // Only the last five results are kept, oldest first.
        assert_eq!(h.log.len(), 5);
        let codes: Vec<i64> = h.log.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, [1, 2, -1, 1, 0]);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let p = probe_of(&config(&["CMD", "x"], S, 1, 10 * S)).unwrap();
        let mut h = starting();
        for s in 1..10 {
            record(&mut h, result(1), &p, Duration::from_secs(s));
        }
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        record(&mut h, result(1), &p, Duration::from_secs(10));
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 1));
        // Once healthy, the start period no longer shields it.
        let mut h = starting();
        record(&mut h, result(0), &p, Duration::from_secs(1));
        record(&mut h, result(1), &p, Duration::from_secs(2));
        assert_eq!(h.status, HealthStatus::Unhealthy);
    }

    #[test]
    fn the_start_interval_applies_while_starting_in_the_start_period() {
        let mut c = config(&["CMD", "x"], 60 * S, 0, 30 * S);
        let p = probe_of(&c).unwrap();
        let at = Duration::from_secs;
        assert_eq!(next_delay(&p, HealthStatus::Starting, at(0)), at(5));
        assert_eq!(next_delay(&p, HealthStatus::Healthy, at(0)), at(60));
        assert_eq!(next_delay(&p, HealthStatus::Starting, at(30)), at(60));
        c.healthcheck.as_mut().unwrap().start_period = Some(0);
        let p = probe_of(&c).unwrap();
        assert_eq!(next_delay(&p, HealthStatus::Starting, at(0)), at(60));
    }

    #[test]
    fn a_start_resets_status_and_streak_but_keeps_the_log() {
        let c = config(&["CMD", "x"], 0, 0, 0);
        let h = on_start(None, &c).unwrap();
        assert_eq!(h, starting());
        let before = Health {
            status: HealthStatus::Unhealthy,
            failing_streak: 7,
            log: vec![result(1)],
        };
        let h = on_start(Some(before), &c).unwrap();
        assert_eq!(
            (h.status, h.failing_streak, h.log.len()),
            (HealthStatus::Starting, 0, 1)
        );
    }

    #[test]
    fn inspect_shows_it_as_docker() {
        let h = Health {
            status: HealthStatus::Healthy,
            failing_streak: 0,
            log: vec![HealthResult {
                start: "2026-12-04T19:30:30.68508011Z".into(),
                end: "2026-12-04T19:30:30.735587363Z".into(),
                exit_code: 0,
                output: String::new(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"Status":"healthy","FailingStreak":0,"Log":[{"Start":"2026-12-04T19:30:30.68508011Z","End":"2026-12-04T19:30:30.735587363Z","ExitCode":0,"Output":""}]}"#
        );
        assert_eq!(ps_words(&h), "healthy");
        assert_eq!(ps_words(&starting()), "health: starting");
        assert_eq!(filter_value(Some(&h)), "healthy");
    }

    #[test]
    fn output_is_capped_and_timeouts_say_so_in_dockers_words() {
        assert_eq!(capped_output(b"ok\n", false), "ok\n");
        let long = vec![b'x'; 5000];
        let out = capped_output(&long, false);
        assert_eq!(out.len(), 4096 + 3);
        assert!(out.ends_with("x..."));
        assert_eq!(capped_output(b"x", true), "x...");
        assert_eq!(
            timeout_output(Duration::from_secs(1), ""),
            "Health check exceeded timeout (1s)"
        );
        assert_eq!(
            timeout_output(Duration::from_millis(1500), "partial\n"),
            "Health check exceeded timeout (1.5s): partial\n"
        );
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
    }
}
