//! What the agent keeps about a container, on disk as `containers/<id>/container.json`.

use bollard::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

/// docker's zero time, shown for times that have not happened yet.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process of the container exists (and so a supervisor holds it).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// The supervisor ("shim") holding the running container, and its start time in clock
    /// ticks since boot: a pid alone could have been reused after a reboot or a long outage.
    #[serde(default)]
    pub shim_pid: i64,
    #[serde(default)]
    pub shim_start: u64,
    /// `docker stop`/`kill` was asked for: restart policies other than `always` hold off.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Its healthcheck's state (`health.rs`), from its first start with a check on; kept
    /// across stops and agent restarts, reset to `starting` at each start, as docker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            shim_pid: 0,
            shim_start: 0,
            stopped_by_user: false,
            health: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without docker's leading "/".
    pub name: String,
    pub created: String,
    /// `sha256:<config digest>`.
    pub image_id: String,
    /// The process as resolved at create time from entrypoint + cmd.
    pub path: String,
    pub args: Vec<String>,
    /// The container's config after the image's defaults were merged in.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    pub restart_count: i64,
    /// The diff IDs of the image's layers, lowest first: the overlay's lower dirs.
    pub layers: Vec<String>,
    /// The networks it is on (by network ID, its first one first), with what it asked for.
    #[serde(default)]
    pub networks: Vec<(String, crate::network::EndpointConfig)>,
    /// Its namespace, endpoints and published ports while it runs.
    #[serde(default)]
    pub net: Option<crate::network::NetState>,
    /// The environment its `--link`s gave it at its last start (exec sees it too).
    #[serde(default)]
    pub link_env: Vec<String>,
    /// Its volumes, bind mounts and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<super::mounts::MountPoint>,
}

impl Record {
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// The hostname it was given, or docker's default: its short ID.
    pub fn hostname(&self) -> String {
        self.config
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.short_id().to_string())
    }

    /// A label's value, for docker's label filters.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// The command as `docker ps` shows it.
    pub fn command_line(&self) -> String {
        std::iter::once(self.path.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A created container's record, for the tests of the modules that read records.
#[cfg(test)]
pub(crate) fn sample_record() -> Record {
    Record {
        id: "0123456789ab".repeat(5) + "cdef",
        name: "web".into(),
        created: "2026-01-02T03:04:05.000000006Z".into(),
        image_id: format!("sha256:{}", "f".repeat(64)),
        path: "/bin/sh".into(),
        args: vec!["-c".into(), "echo hi".into()],
        config: ContainerConfig::default(),
        host_config: HostConfig::default(),
        state: State::default(),
        restart_count: 0,
        layers: Vec::new(),
        networks: Vec::new(),
        net: None,
        link_env: Vec::new(),
        mounts: Vec::new(),
    }
}

pub use skiff_common::time::now_rfc3339;
