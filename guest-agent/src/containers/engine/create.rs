//! `docker create`: the checks docker makes of a request, then the container's directory and
//! record.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};

use super::config::{check_healthcheck, command_of, config_of, merge_config};
use super::{new_id, save, Container, Containers, LOG_FILE};
use crate::containers::error::ContainerError;
use crate::containers::record::{now_rfc3339, Record, State};
use crate::containers::rootfs::{self, Paths};
use crate::containers::{links, names, security, security_opt, spec};
use crate::network::{self, Mode};

impl Containers {
    pub fn create(
        &self,
        body: ContainerCreateBody,
        name: Option<&str>,
    ) -> Result<(String, Vec<String>), ContainerError> {
        // A start usually follows (`docker run`): its cgroup attach is the slowest part.
        crate::containers::cgroup_prime::prime();
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                ContainerError::invalid("config.Image is required: say which image to run")
            })?;
        let image = self
            .images
            .resolve(&image_name)
            .map_err(|e| ContainerError::not_found(e.to_string()))?;
        let mut host_config = body.host_config.clone().unwrap_or_default();
        validate_host_config(&host_config)?;
        host_config.log_config = Some(log_config(host_config.log_config.as_ref())?);
        host_config.runtime = Some(runtime(host_config.runtime.as_deref())?);
        for l in host_config.links.iter().flatten() {
            let link = links::parse(l).map_err(|e| ContainerError::invalid(e.to_string()))?;
            self.get(&link.name).map_err(|_| {
                ContainerError::not_found(format!(
                    "could not get container for {0}: No such container: {0}",
                    link.name
                ))
            })?;
        }
        check_healthcheck(&body)?;
        let user_config = config_of(&body);
        let run = image.config.config.clone().unwrap_or_default();
        let config = merge_config(user_config, &run, &image_name);
        let (path, args) = command_of(&body, &run)?;
        if host_config.init.unwrap_or(false) && !Path::new(spec::INIT_BINARY).exists() {
            return Err(ContainerError::invalid(format!(
                "--init needs {}; install Debian's tini package",
                spec::INIT_BINARY
            )));
        }
        if host_config
            .network_mode
            .as_deref()
            .is_none_or(|m| m.is_empty())
        {
            host_config.network_mode = Some("default".into());
        }
        let networks = self.members_of(&body, &host_config)?;
        let exposed = config.exposed_ports.clone().unwrap_or_default();
        network::ports::requests(&host_config, &exposed).map_err(ContainerError::invalid)?;

        if let Some(n) = name.filter(|n| !n.is_empty() && !names::valid(n)) {
            return Err(ContainerError::invalid(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let id = new_id()?;
        let _use = self.volume_use.lock().unwrap_or_else(|p| p.into_inner());
        let (mounts, made_volumes) = self.make_mounts(&host_config, &config)?;
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                if let Some(other) = idx.names.get(&n) {
                    self.drop_volumes(&made_volumes);
                    return Err(ContainerError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => {
                let seed = u64::from_str_radix(&id[..16], 16).unwrap_or(7);
                names::generate(seed, |n| idx.names.contains_key(n))
            }
        };
        let rec = Record {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image_id: image.record.id.clone(),
            path,
            args,
            config,
            host_config,
            state: State::default(),
            restart_count: 0,
            layers: image
                .record
                .layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect(),
            networks,
            net: None,
            link_env: Vec::new(),
            mounts: mounts.clone(),
        };
        let dir = self.dir.join(&id);
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(&dir)?;
            rootfs::prepare(&Paths::new(&dir))?;
            std::fs::File::create(dir.join(LOG_FILE))?;
            save(&dir, &rec)
        })();
        if let Err(e) = made {
            match std::fs::remove_dir_all(&dir) {
                // The directory itself may be what could not be made.
                Err(re) if re.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("removing the half-made {}: {re}", dir.display());
                }
                _ => {}
            }
            self.drop_volumes(&made_volumes);
            return Err(ContainerError::Internal(
                e.context("creating the container"),
            ));
        }
        idx.names.insert(name, id.clone());
        let c = Arc::new(Container::new(dir, rec));
        idx.by_id.insert(id.clone(), c.clone());
        drop(idx);
        drop(_use);
        self.emit("create", &c, &[]);
        let mut warnings = Vec::new();
        let hc = &c.record().host_config;
        let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports.unwrap_or(false);
        if publishes && network::mode_of(hc.network_mode.as_deref().unwrap_or("")) == Mode::Host {
            warnings.push("Published ports are discarded when using host network mode".into());
        }
        Ok((id, warnings))
    }
}

/// What skiff's runtime is called (`/info` lists it as the only one).
pub const RUNTIME: &str = "skiff";

/// The runtime asked for: none, or skiff's. dockerd's words for any other.
pub(super) fn runtime(asked: Option<&str>) -> Result<String, ContainerError> {
    match asked.unwrap_or("") {
        "" | RUNTIME => Ok(RUNTIME.into()),
        other => Err(ContainerError::invalid(format!(
            "Unknown runtime specified {other}: skiff runs containers with its own runtime, {RUNTIME}"
        ))),
    }
}

/// The log driver asked for. skiff keeps one log per container (`containers/logs.rs`), read
/// back by `logs` and `attach` with json-file's semantics (lines, tail, since, until,
/// timestamps, follow), so the default is shown as dockerd's default, `json-file`; `local`
/// is the same log under its own name. Nothing else is accepted (no driver ships the output
/// elsewhere), and no option: the log does not rotate.
pub fn log_config(
    asked: Option<&HostConfigLogConfig>,
) -> Result<HostConfigLogConfig, ContainerError> {
    let typ = asked.and_then(|l| l.typ.as_deref()).unwrap_or("");
    let typ = match typ {
        "" => "json-file",
        "json-file" | "local" => typ,
        other => {
            return Err(ContainerError::invalid(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    };
    // dockerd's options for these drivers; skiff applies none of them.
    const KNOWN: &[&str] = &[
        "max-size",
        "max-file",
        "compress",
        "labels",
        "labels-regex",
        "env",
        "env-regex",
        "tag",
    ];
    let mut opts: Vec<&String> = asked
        .and_then(|l| l.config.as_ref())
        .map(|c| c.keys().collect())
        .unwrap_or_default();
    opts.sort();
    if let Some(k) = opts.first() {
        if !KNOWN.contains(&k.as_str()) {
            return Err(ContainerError::invalid(format!(
                "unknown log opt '{k}' for {typ} log driver"
            )));
        }
        return Err(ContainerError::invalid(format!(
            "log opt '{k}' is not supported by skiff: its {typ} log does not rotate and takes no options"
        )));
    }
    Ok(HostConfigLogConfig {
        typ: Some(typ.into()),
        config: Some(Default::default()),
    })
}

/// The host config checks docker makes at create, with its messages.
pub(super) fn validate_host_config(hc: &HostConfig) -> Result<(), ContainerError> {
    if let Some(m) = hc.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(ContainerError::invalid(
                "Minimum memory limit allowed is 6MB",
            ));
        }
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 10_000_000 || n > cpus * 1_000_000_000 {
            return Err(ContainerError::invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(p) = &hc.restart_policy {
        use bollard::models::RestartPolicyNameEnum as R;
        let name = p.name.unwrap_or(R::EMPTY);
        if p.maximum_retry_count.unwrap_or(0) < 0 {
            return Err(ContainerError::invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        if !matches!(name, R::EMPTY | R::NO) && hc.auto_remove.unwrap_or(false) {
            return Err(ContainerError::invalid(
                "Conflicting options: --restart and --rm: a container removed on exit cannot be restarted",
            ));
        }
        if p.maximum_retry_count.unwrap_or(0) > 0 && name != R::ON_FAILURE {
            return Err(ContainerError::invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
    }
    security::resolve_caps(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        hc.privileged.unwrap_or(false),
    )
    .map_err(|e| ContainerError::invalid(e.to_string()))?;
    security_opt::parse(hc.security_opt.as_deref().unwrap_or_default())
        .map_err(|e| ContainerError::invalid(e.to_string()))?;
    for dest in hc.tmpfs.iter().flatten().map(|(k, _)| k) {
        if !dest.starts_with('/') {
            return Err(ContainerError::invalid(format!(
                "invalid mount path for --tmpfs: {dest:?} must be absolute"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Result<(), String> {
        let hc: HostConfig = serde_json::from_value(v).unwrap();
        validate_host_config(&hc).map_err(|e| match e {
            ContainerError::InvalidArgument(m) => m,
            other => panic!("not an invalid argument: {other:?}"),
        })
    }

    #[test]
    fn a_reasonable_config_is_accepted() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(
            check(json!({
                "Memory": 64 << 20,
                "NanoCpus": 500_000_000,
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "CapDrop": ["NET_RAW", "chown"],
                "SecurityOpt": ["no-new-privileges", "seccomp=unconfined"],
                "Tmpfs": {"/run": "rw,size=64m"},
            })),
            Ok(())
        );
        // Zero means "no limit", as in docker.
        assert_eq!(check(json!({"Memory": 0, "NanoCpus": 0})), Ok(()));
        assert_eq!(
            check(json!({"RestartPolicy": {"Name": "no"}, "AutoRemove": true})),
            Ok(())
        );
    }

    #[test]
    fn memory_below_6mb_is_refused() {
        assert_eq!(
            check(json!({"Memory": (6 << 20) - 1})).unwrap_err(),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(check(json!({"Memory": 6 << 20})), Ok(()));
    }

    #[test]
    fn cpus_outside_the_hosts_range_are_refused() {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        let msg = format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        );
        assert_eq!(check(json!({"NanoCpus": 9_999_999})).unwrap_err(), msg);
        assert_eq!(
            check(json!({"NanoCpus": cpus * 1_000_000_000 + 1})).unwrap_err(),
            msg
        );
        assert_eq!(check(json!({"NanoCpus": cpus * 1_000_000_000})), Ok(()));
    }

    #[test]
    fn restart_policies_are_checked_as_docker_does() {
        assert_eq!(
            check(json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}))
                .unwrap_err(),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        assert_eq!(
            check(json!({"RestartPolicy": {"Name": "always"}, "AutoRemove": true})).unwrap_err(),
            "Conflicting options: --restart and --rm: a container removed on exit cannot be restarted"
        );
        assert_eq!(
            check(json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}))
                .unwrap_err(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
    }

    #[test]
    fn bad_capabilities_security_options_and_tmpfs_paths_are_refused() {
        assert_eq!(
            check(json!({"CapDrop": ["NOPE"]})).unwrap_err(),
            "unknown capability: \"CAP_NOPE\""
        );
        assert!(check(json!({"SecurityOpt": ["seccomp=/etc/profile.json"]}))
            .unwrap_err()
            .starts_with("invalid --security-opt seccomp: custom seccomp profiles"));
        assert_eq!(
            check(json!({"Tmpfs": {"run": ""}})).unwrap_err(),
            "invalid mount path for --tmpfs: \"run\" must be absolute"
        );
    }

    #[test]
    fn log_drivers_other_than_skiffs_log_are_refused_as_dockerd_does() {
        let lc = |v: serde_json::Value| {
            let asked: Option<HostConfigLogConfig> = serde_json::from_value(v).unwrap();
            log_config(asked.as_ref()).map_err(|e| e.to_string())
        };
        let typ = |v| lc(v).unwrap().typ.unwrap();
        assert_eq!(typ(json!(null)), "json-file");
        assert_eq!(typ(json!({"Type": "", "Config": {}})), "json-file");
        assert_eq!(typ(json!({"Type": "json-file"})), "json-file");
        assert_eq!(typ(json!({"Type": "local"})), "local");
        assert_eq!(
            lc(json!({"Type": "syslog"})).unwrap_err(),
            "logger: no log driver named 'syslog' is registered"
        );
        assert_eq!(
            lc(json!({"Type": "json-file", "Config": {"colour": "red"}})).unwrap_err(),
            "unknown log opt 'colour' for json-file log driver"
        );
        assert!(lc(json!({"Type": "", "Config": {"max-size": "1m"}}))
            .unwrap_err()
            .starts_with("log opt 'max-size' is not supported by skiff"));
    }

    #[test]
    fn the_runtime_is_skiffs() {
        assert_eq!(runtime(None).unwrap(), "skiff");
        assert_eq!(runtime(Some("")).unwrap(), "skiff");
        assert_eq!(runtime(Some("skiff")).unwrap(), "skiff");
        assert!(runtime(Some("runc")).is_err());
    }
}
