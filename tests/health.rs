//! Healthchecks as docker runs them: a passing check makes a container healthy and a failing
//! one unhealthy after its retries (inspect's `State.Health`, `ps`'s STATUS, the `health`
//! filter, `health_status` events); a check past its timeout is killed; an image's HEALTHCHECK,
//! `--health-*` over it and `--no-healthcheck`; the state kept across an agent kill, checks
//! stopped with the container and reset to `starting` by its next start; bad settings refused
//! in docker's words; the docker CLI's view of it on skiff's socket.

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::*;

fn ready() -> (Skiff, String) {
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    (s, image("busybox"))
}

/// A container's `State` from `inspect`.
fn state(s: &Skiff, name: &str) -> Value {
    let out = s.run(&["container", "inspect", name]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    v[0]["State"].clone()
}

/// Waits (up to 30s) for the container's health to read `want`; its `State.Health` then.
#[track_caller]
fn wait_health(s: &Skiff, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = state(s, name)["Health"].clone();
        if h["Status"] == want {
            return h;
        }
        assert!(Instant::now() < deadline, "{name} never became {want}: {h}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status_of(s: &Skiff, name: &str) -> String {
    let ps = s
        .run(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"])
        .ok();
    ps.lines()
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .unwrap_or_default()
        .to_string()
}

fn names_with(s: &Skiff, filter: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .run(&["ps", "--filter", filter, "--format", "{{.Names}}"])
        .ok()
        .lines()
        .iter()
        .map(|l| l.to_string())
        .collect();
    v.sort();
    v
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn passing_and_failing_checks_make_containers_healthy_and_unhealthy() {
    let (s, bb) = ready();
    let since = unix_now();
    let run = |name: &str, health: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(health);
        args.extend_from_slice(&[&bb, "sleep", "300"]);
        s.run(&args).ok();
    };
    run(
        "ok",
        &["--health-cmd", "echo fine", "--health-interval", "1s"],
    );
    run(
        "bad",
        &[
            "--health-cmd",
            "echo broken >&2; exit 3",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
        ],
    );
    run("plain", &[]);

    // Before the first check (a whole interval after the start): starting.
    let first = state(&s, "ok")["Health"].clone();
    assert_eq!(first["Status"], "starting", "{first}");
    assert!(status_of(&s, "ok").ends_with("(health: starting)"));
    assert!(state(&s, "plain").get("Health").is_none());

    let h = wait_health(&s, "ok", "healthy");
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().expect("log");
    assert_eq!(log[0]["ExitCode"], 0);
    assert_eq!(log[0]["Output"], "fine\n");
    for k in ["Start", "End"] {
        assert!(log[0][k].as_str().is_some_and(|t| t.ends_with('Z')), "{h}");
    }
    let st = status_of(&s, "ok");
    assert!(st.starts_with("Up ") && st.ends_with(" (healthy)"), "{st}");

    let h = wait_health(&s, "bad", "unhealthy");
    assert!(h["FailingStreak"].as_i64() >= Some(2), "{h}");
    let log = h["Log"].as_array().expect("log");
    assert!(log.len() >= 2, "{h}");
    assert!(
        log.iter()
            .all(|r| r["ExitCode"] == 3 && r["Output"] == "broken\n"),
        "{h}"
    );
    assert!(status_of(&s, "bad").ends_with(" (unhealthy)"));
    assert_eq!(status_of(&s, "plain").find('('), None);

    // The health filter, docker's four values, and its refusal of others.
    assert_eq!(names_with(&s, "health=healthy"), ["ok"]);
    assert_eq!(names_with(&s, "health=unhealthy"), ["bad"]);
    assert_eq!(names_with(&s, "health=none"), ["plain"]);
    assert!(names_with(&s, "health=starting").is_empty());
    s.run(&["ps", "--filter", "health=sick"])
        .fails_with(1, "Unrecognised filter value for health: sick");

    // Only the last five results are kept.
    std::thread::sleep(Duration::from_secs(6));
    let h = state(&s, "ok")["Health"].clone();
    assert_eq!(h["Log"].as_array().map(Vec::len), Some(5), "{h}");

    // docker's events, `health_status` standing for all of them.
    let filters = r#"{"event":["health_status"]}"#;
    let (code, body) = s.api(
        "GET",
        &format!(
            "/events?since={since}&until={}&filters={}",
            unix_now() + 1,
            filters
                .replace('"', "%22")
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('[', "%5B")
                .replace(']', "%5D")
        ),
    );
    assert_eq!(code, 200, "{body}");
    let actions: Vec<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            let name = e["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap_or_default();
            format!("{name} {}", e["Action"].as_str().unwrap_or_default())
        })
        .collect();
    assert!(
        actions.contains(&"ok health_status: healthy".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"bad health_status: unhealthy".to_string()),
        "{actions:?}"
    );
    assert_eq!(actions.len(), 2, "one change each: {actions:?}");
}

#[test]
fn a_check_past_its_timeout_is_killed_and_fails_in_dockers_words() {
    let (s, bb) = ready();
    s.run(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "echo partial; exec sleep 37",
        "--health-timeout",
        "1s",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        &bb,
        "sleep",
        "300",
    ])
    .ok();
    let h = wait_health(&s, "slow", "unhealthy");
    let r = &h["Log"][0];
    assert_eq!(r["ExitCode"], -1, "{h}");
    assert_eq!(
        r["Output"], "Health check exceeded timeout (1s): partial\n",
        "{h}"
    );
    // Each check is killed at its timeout, not left running in the container: at most the
    // one under way is there.
    std::thread::sleep(Duration::from_millis(3500));
    let ps = s.run(&["exec", "slow", "ps"]).ok().stdout;
    assert!(
        ps.matches("sleep 37").count() <= 1,
        "timed-out checks pile up:\n{ps}"
    );
}

#[test]
fn an_images_healthcheck_runs_unless_overridden_or_disabled() {
    let (s, bb) = ready();
    let ctx = tempfile::Builder::new()
        .prefix("skiff-ctx-")
        .tempdir_in(test_tmp())
        .expect("context dir");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {bb}\n\
             HEALTHCHECK --interval=1s --retries=2 CMD test -e /etc/hostname && echo image-check\n\
             CMD [\"sleep\", \"300\"]\n"
        ),
    )
    .expect("Dockerfile");
    s.run(&[
        "build",
        "-q",
        "-t",
        "checked",
        ctx.path().to_str().expect("path"),
    ])
    .ok();
    let img = s.inspect("checked");
    assert_eq!(
        img["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /etc/hostname && echo image-check"])
    );

    s.run(&["run", "-d", "--name", "inherits", "checked"]).ok();
    s.run(&["run", "-d", "--name", "off", "--no-healthcheck", "checked"])
        .ok();
    // The user's command over the image's; its interval and retries still the image's.
    s.run(&[
        "run",
        "-d",
        "--name",
        "own",
        "--health-cmd",
        "exit 1",
        "checked",
    ])
    .ok();

    let h = wait_health(&s, "inherits", "healthy");
    assert_eq!(h["Log"][0]["Output"], "image-check\n");
    let h = wait_health(&s, "own", "unhealthy");
    assert!(h["FailingStreak"].as_i64() >= Some(2), "{h}");

    let off = s.run(&["container", "inspect", "off"]).ok();
    let off: Value = serde_json::from_str(&off.stdout).expect("inspect JSON");
    assert!(
        off[0]["State"].get("Health").is_none(),
        "{}",
        off[0]["State"]
    );
    assert_eq!(
        off[0]["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(status_of(&s, "off").starts_with("Up "));
    assert_eq!(status_of(&s, "off").find('('), None);
    assert_eq!(names_with(&s, "health=none"), ["off"]);
}

#[test]
fn health_survives_an_agent_kill_and_stops_and_restarts_with_the_container() {
    let (s, bb) = ready();
    s.run(&[
        "run",
        "-d",
        "--name",
        "kept",
        "--health-cmd",
        "date +%s%N",
        "--health-interval",
        "1s",
        &bb,
        "sleep",
        "300",
    ])
    .ok();
    let h = wait_health(&s, "kept", "healthy");
    let last = |h: &Value| {
        h["Log"]
            .as_array()
            .and_then(|l| l.last())
            .map(|r| r["Start"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let before = last(&h);

    s.kill_agent();
    // Any command brings the agent back: the record still says healthy.
    let h = state(&s, "kept")["Health"].clone();
    assert_eq!(h["Status"], "healthy", "{h}");
    assert!(last(&h) >= before, "{h}");
    // And checks go on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while last(&state(&s, "kept")["Health"]) <= before {
        assert!(
            Instant::now() < deadline,
            "no checks after the agent's restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Stopped: no more checks, the last health kept.
    s.run(&["stop", "-t", "0", "kept"]).ok();
    let stopped = state(&s, "kept")["Health"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(state(&s, "kept")["Health"], stopped);
    assert_eq!(stopped["Status"], "healthy");

    // Started again: starting (as docker's), the log kept, then healthy again.
    s.run(&["start", "kept"]).ok();
    let h = state(&s, "kept")["Health"].clone();
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0);
    assert_eq!(h["Log"], stopped["Log"]);
    wait_health(&s, "kept", "healthy");
}

#[test]
fn bad_settings_are_refused_in_dockers_words() {
    let (s, bb) = ready();
    s.run(&["run", "--health-interval", "-1s", &bb, "true"])
        .fails_with(125, "--health-interval cannot be negative");
    s.run(&["create", "--no-healthcheck", "--health-cmd", "true", &bb])
        .fails_with(125, "--no-healthcheck conflicts with --health-* options");
    s.run(&["create", "--health-timeout", "soon", &bb])
        .fails_with(
            125,
            "invalid argument \"soon\" for \"--health-timeout\" flag",
        );
    let create = |hc: &str| {
        s.api_body(
            "POST",
            "/containers/create",
            format!(r#"{{"Image":"{bb}","Cmd":["sleep","300"],"Healthcheck":{hc}}}"#).as_bytes(),
        )
    };
    for (hc, msg) in [
        (
            r#"{"Test":["CMD","true"],"Interval":-1000000000}"#,
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            r#"{"Test":["CMD","true"],"Timeout":5}"#,
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            r#"{"Test":["CMD","true"],"Retries":-2}"#,
            "Retries in Healthcheck cannot be negative",
        ),
        (
            r#"{"Test":["PING","x"]}"#,
            "unknown Healthcheck type \"PING\": use CMD, CMD-SHELL or NONE",
        ),
    ] {
        let (code, body) = create(hc);
        assert_eq!(code, 400, "{hc}: {body}");
        let v: Value = serde_json::from_str(&body).expect("error JSON");
        assert_eq!(v["message"], msg, "{hc}");
    }
    // Nothing was made by the refusals.
    assert_eq!(s.run(&["ps", "-aq"]).ok().stdout, "");
    // The exec form runs as given.
    let (code, body) = create(r#"{"Test":["CMD","true"],"Interval":1000000000}"#);
    assert_eq!(code, 201, "{body}");
    let id: Value = serde_json::from_str(&body).expect("create JSON");
    let id = id["Id"].as_str().expect("Id");
    s.run(&["start", id]).ok();
    wait_health(&s, id, "healthy");
}

#[test]
fn the_docker_cli_sees_health_on_skiffs_socket() {
    // A 60s interval: healthy within seconds only by the start interval.
    let (s, bb) = ready();
    s.docker(&[
        "run",
        "-d",
        "--name",
        "dk",
        "--health-cmd",
        "true",
        "--health-interval",
        "60s",
        "--health-start-period",
        "30s",
        "--health-start-interval",
        "1s",
        &bb,
        "sleep",
        "300",
    ])
    .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = s
            .docker(&[
                "ps",
                "--filter",
                "health=healthy",
                "--format",
                "{{.Names}} {{.Status}}",
            ])
            .ok();
        if ps.stdout.starts_with("dk Up ") {
            assert!(ps.stdout.trim_end().ends_with("(healthy)"), "{}", ps.stdout);
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {}", ps.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }
    let h = s
        .docker(&["inspect", "-f", "{{json .State.Health}}", "dk"])
        .ok();
    let h: Value = serde_json::from_str(h.stdout.trim()).expect("health JSON");
    assert_eq!(h["Status"], "healthy");
    assert_eq!(h["FailingStreak"], 0);
    assert_eq!(h["Log"][0]["ExitCode"], 0);
    let cfg = s
        .docker(&["inspect", "-f", "{{json .Config.Healthcheck}}", "dk"])
        .ok();
    let cfg: Value = serde_json::from_str(cfg.stdout.trim()).expect("config JSON");
    assert_eq!(cfg["Test"], serde_json::json!(["CMD-SHELL", "true"]));
    assert_eq!(cfg["StartPeriod"], 30_000_000_000i64);
    assert_eq!(cfg["StartInterval"], 1_000_000_000i64);
}
