//! A new container's config and command: the image's defaults under the user's settings, as
//! docker merges them.

use std::collections::HashMap;

use bollard::models::{ContainerConfig, ContainerCreateBody, HealthConfig};

use crate::containers::error::ContainerError;
use crate::containers::health;
use crate::images::model::RunConfig;

/// The container config part of a create request (the rest is host and network config).
pub(super) fn config_of(b: &ContainerCreateBody) -> ContainerConfig {
    ContainerConfig {
        hostname: b.hostname.clone(),
        domainname: b.domainname.clone(),
        user: b.user.clone(),
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: b.exposed_ports.clone(),
        tty: b.tty,
        open_stdin: b.open_stdin,
        stdin_once: b.stdin_once,
        env: b.env.clone(),
        cmd: b.cmd.clone(),
        healthcheck: b.healthcheck.clone(),
        args_escaped: b.args_escaped,
        image: b.image.clone(),
        volumes: b.volumes.clone(),
        working_dir: b.working_dir.clone(),
        entrypoint: b.entrypoint.clone(),
        network_disabled: b.network_disabled,
        on_build: b.on_build.clone(),
        labels: b.labels.clone(),
        stop_signal: b.stop_signal.clone(),
        stop_timeout: b.stop_timeout,
        shell: b.shell.clone(),
    }
}

/// The request's `Healthcheck` checked as dockerd checks it, with its messages.
pub(super) fn check_healthcheck(b: &ContainerCreateBody) -> Result<(), ContainerError> {
    match &b.healthcheck {
        Some(hc) => health::validate(hc).map_err(ContainerError::invalid),
        None => Ok(()),
    }
}

/// The image's defaults under the user's settings, as docker merges them.
pub(super) fn merge_config(
    mut c: ContainerConfig,
    run: &RunConfig,
    image: &str,
) -> ContainerConfig {
    let mut env: Vec<String> = run.env.clone().unwrap_or_default();
    for kv in c.env.take().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or(&kv).to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    c.env = Some(env);
    if c.user.as_deref().is_none_or(str::is_empty) {
        c.user = Some(run.user.clone().unwrap_or_default());
    }
    if c.working_dir.as_deref().is_none_or(str::is_empty) {
        c.working_dir = Some(run.working_dir.clone().unwrap_or_default());
    }
    let mut labels: HashMap<String, String> =
        run.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
    let mut ports: Vec<String> = run
        .exposed_ports
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for p in c.exposed_ports.take().unwrap_or_default() {
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    c.exposed_ports = (!ports.is_empty()).then_some(ports);
    // The image's VOLUMEs and the user's `-v /path` alike become anonymous volumes.
    let mut volumes: Vec<String> = run
        .volumes
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for v in c.volumes.take().unwrap_or_default() {
        if !volumes.contains(&v) {
            volumes.push(v);
        }
    }
    c.volumes = (!volumes.is_empty()).then_some(volumes);
    // The image's HEALTHCHECK (a field the store keeps as it came) under the user's settings.
    let image_check = run
        .extra
        .get("Healthcheck")
        .and_then(|v| serde_json::from_value::<HealthConfig>(v.clone()).ok());
    c.healthcheck = health::merge(c.healthcheck.take(), image_check);
    if c.stop_signal.as_deref().is_none_or(str::is_empty) {
        c.stop_signal = run.stop_signal.clone();
    }
    if c.cmd.as_ref().is_none_or(|v| v.is_empty()) && user_entrypoint(&c).is_none() {
        c.cmd = run.cmd.clone();
    }
    if c.entrypoint.is_none() {
        c.entrypoint = run.entrypoint.clone();
    } else if user_entrypoint(&c).is_none() {
        c.entrypoint = None;
    }
    c.image = Some(image.to_string());
    c.tty = Some(c.tty.unwrap_or(false));
    c.open_stdin = Some(c.open_stdin.unwrap_or(false));
    c.stdin_once = Some(c.stdin_once.unwrap_or(false));
    c
}

/// The user's own non-empty entrypoint (`--entrypoint ""` clears the image's).
fn user_entrypoint(c: &ContainerConfig) -> Option<&Vec<String>> {
    c.entrypoint.as_ref().filter(|e| !clears_entrypoint(e))
}

/// `--entrypoint ""` arrives as `[]` or `[""]`: it clears the image's entrypoint.
fn clears_entrypoint(e: &[String]) -> bool {
    e.iter().all(|s| s.is_empty())
}

/// The process to run (path, args): entrypoint then cmd. A user's entrypoint drops the
/// image's cmd as well, as in docker.
pub(super) fn command_of(
    b: &ContainerCreateBody,
    run: &RunConfig,
) -> Result<(String, Vec<String>), ContainerError> {
    let user_cmd = b.cmd.clone().filter(|c| !c.is_empty());
    let user_ep = b.entrypoint.as_ref();
    let (ep, cmd) = match user_ep {
        Some(e) if !clears_entrypoint(e) => (e.clone(), user_cmd.unwrap_or_default()),
        Some(_) => (
            Vec::new(),
            user_cmd.or_else(|| run.cmd.clone()).unwrap_or_default(),
        ),
        None => (
            run.entrypoint.clone().unwrap_or_default(),
            user_cmd.or_else(|| run.cmd.clone()).unwrap_or_default(),
        ),
    };
    let mut all = ep.into_iter().chain(cmd);
    let path = all
        .next()
        .ok_or_else(|| ContainerError::invalid("No command specified"))?;
    Ok((path, all.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> RunConfig {
        serde_json::from_value(json!({
            "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "A=image"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Entrypoint": ["/docker-entrypoint.sh"],
            "WorkingDir": "/srv",
            "User": "www-data",
            "Labels": {"maintainer": "image", "tier": "image"},
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
        }))
        .unwrap()
    }

    fn body(v: serde_json::Value) -> ContainerCreateBody {
        serde_json::from_value(v).unwrap()
    }

    fn merged(v: serde_json::Value) -> ContainerConfig {
        merge_config(config_of(&body(v)), &image(), "nginx:latest")
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_user_settings_the_image_defaults_apply() {
        let c = merged(json!({"Image": "nginx"}));
        assert_eq!(
            c.env.unwrap(),
            strings(&["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "A=image"])
        );
        assert_eq!(c.cmd.unwrap(), strings(&["nginx", "-g", "daemon off;"]));
        assert_eq!(c.entrypoint.unwrap(), strings(&["/docker-entrypoint.sh"]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("www-data"));
        assert_eq!(c.exposed_ports.unwrap(), strings(&["80/tcp"]));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(c.labels.unwrap().len(), 2);
        // The name as the user gave it, and docker's explicit falses.
        assert_eq!(c.image.as_deref(), Some("nginx:latest"));
        assert_eq!(
            (c.tty, c.open_stdin, c.stdin_once),
            (Some(false), Some(false), Some(false))
        );
    }

    #[test]
    fn user_env_replaces_the_images_per_key_and_adds_the_rest_after() {
        let c = merged(json!({"Env": ["A=user", "B=1", "LANG"]}));
        assert_eq!(
            c.env.unwrap(),
            strings(&["PATH=/usr/bin:/bin", "A=user", "B=1", "LANG"])
        );
    }

    #[test]
    fn user_settings_win_and_empty_ones_fall_back_to_the_image() {
        let c = merged(json!({
            "User": "1000:1000", "WorkingDir": "/tmp", "StopSignal": "SIGINT",
            "Labels": {"tier": "user", "extra": "x"},
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "Tty": true,
        }));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        let labels = c.labels.unwrap();
        assert_eq!(labels["tier"], "user");
        assert_eq!(labels["maintainer"], "image");
        assert_eq!(labels["extra"], "x");
        // The image's first, then the user's new ones, each once.
        assert_eq!(c.exposed_ports.unwrap(), strings(&["80/tcp", "443/tcp"]));
        assert_eq!(c.tty, Some(true));

        let c = merged(json!({"User": "", "WorkingDir": "", "StopSignal": ""}));
        assert_eq!(c.user.as_deref(), Some("www-data"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn no_ports_at_all_stays_none() {
        let c = merge_config(config_of(&body(json!({}))), &RunConfig::default(), "x");
        assert_eq!(c.exposed_ports, None);
        assert_eq!(c.user.as_deref(), Some(""));
        assert_eq!(c.working_dir.as_deref(), Some(""));
        assert_eq!(c.env, Some(Vec::new()));
    }

    #[test]
    fn cmd_and_entrypoint_follow_dockers_rules() {
        // A user's cmd replaces the image's; the image's entrypoint stays.
        let c = merged(json!({"Cmd": ["sh"]}));
        assert_eq!(c.cmd.unwrap(), strings(&["sh"]));
        assert_eq!(c.entrypoint.unwrap(), strings(&["/docker-entrypoint.sh"]));
        // A user's entrypoint drops the image's cmd.
        let c = merged(json!({"Entrypoint": ["/bin/echo"]}));
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint.unwrap(), strings(&["/bin/echo"]));
        // `--entrypoint ""` clears the entrypoint and keeps the image's cmd.
        for cleared in [json!([]), json!([""])] {
            let c = merged(json!({"Entrypoint": cleared}));
            assert_eq!(c.entrypoint, None);
            assert_eq!(c.cmd.unwrap(), strings(&["nginx", "-g", "daemon off;"]));
        }
    }

    #[test]
    fn the_command_is_entrypoint_then_cmd() {
        let cmd = |v| command_of(&body(v), &image());
        assert_eq!(
            cmd(json!({})).unwrap(),
            (
                "/docker-entrypoint.sh".into(),
                strings(&["nginx", "-g", "daemon off;"])
            )
        );
        assert_eq!(
            cmd(json!({"Cmd": ["ls", "-l"]})).unwrap(),
            ("/docker-entrypoint.sh".into(), strings(&["ls", "-l"]))
        );
        assert_eq!(
            cmd(json!({"Entrypoint": ["/bin/echo"]})).unwrap(),
            ("/bin/echo".into(), Vec::new())
        );
        assert_eq!(
            cmd(json!({"Entrypoint": [""], "Cmd": ["id"]})).unwrap(),
            ("id".into(), Vec::new())
        );
        assert_eq!(
            cmd(json!({"Entrypoint": []})).unwrap(),
            ("nginx".into(), strings(&["-g", "daemon off;"]))
        );
        let none = command_of(&body(json!({"Entrypoint": [""]})), &RunConfig::default());
        match none {
            Err(ContainerError::InvalidArgument(m)) => assert_eq!(m, "No command specified"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_images_healthcheck_is_kept_under_the_users_settings() {
        let mut run = image();
        run.extra.insert(
            "Healthcheck".into(),
            json!({"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 2_000_000_000i64}),
        );
        let hc = |v| merge_config(config_of(&body(v)), &run, "app").healthcheck;
        let kept = hc(json!({})).unwrap();
        assert_eq!(kept.test.unwrap(), strings(&["CMD-SHELL", "test -e /ok"]));
        assert_eq!(kept.interval, Some(2_000_000_000));
        let mixed = hc(json!({"Healthcheck": {"Retries": 5}})).unwrap();
        assert_eq!(
            (mixed.retries, mixed.interval),
            (Some(5), Some(2_000_000_000))
        );
        let off = hc(json!({"Healthcheck": {"Test": ["NONE"]}})).unwrap();
        assert_eq!(off.test.unwrap(), strings(&["NONE"]));
        assert!(merged(json!({})).healthcheck.is_none());
        let bad = body(json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": -1}}));
        match check_healthcheck(&bad) {
            Err(ContainerError::InvalidArgument(m)) => {
                assert_eq!(m, "Interval in Healthcheck cannot be less than 1ms")
            }
            other => panic!("{other:?}"),
        }
    }
}
