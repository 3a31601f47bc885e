//! One module per group of commands; `run` connects to the engine and dispatches.

mod api;
mod attach;
mod containers;
mod cp;
mod disk;
mod exec;
mod gofmt;
mod images;
mod login;
mod logs;
pub mod machine;
mod network;
mod opts;
mod port;
mod ps;
mod pull;
mod raw;
mod run;
mod stats;
mod system;
mod term;

use std::path::PathBuf;

use anyhow::Result;
use bollard::Docker;

use crate::cli::{Cli, Command, ContainerCommand, ImageCommand, NetworkCommand, SystemCommand};
use crate::machine::{choose_backend, ensure_running, vm, Backend, Endpoint};
use crate::SkiffError;

/// A connection to the engine, typed (bollard) and raw for exact JSON pass-through.
pub struct Engine {
    pub docker: Docker,
    pub endpoint: Endpoint,
}

impl Engine {
    pub fn raw(&self) -> raw::RawClient {
        raw::RawClient::new(self.endpoint.socket.clone())
    }

    /// The hand-spoken API client the container commands use (see `api.rs` for why).
    pub fn api(&self) -> api::Api {
        api::Api::new(self.endpoint.socket.clone())
    }
}

fn endpoint(cli: &Cli) -> Result<Endpoint> {
    let backend = choose_backend(cli.backend)?;
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/skiff"));
    let root = std::path::absolute(&root).unwrap_or(root);
    let socket = match backend {
        Backend::Native => cli
            .socket
            .clone()
            .unwrap_or_else(|| root.join("skiff.sock")),
        Backend::Vm => {
            let m = vm::Machine::current()?;
            match &cli.engine {
                Some(e) => cli.socket.clone().unwrap_or_else(|| m.engine_socket(e)),
                None => m.api_socket(),
            }
        }
    };
    if cli.engine.is_some() && backend == Backend::Native {
        return Err(SkiffError::new(
            "--engine (SKIFF_ENGINE) selects an engine in skiff's VM; use it with --backend vm, or use --root for a separate native engine",
        )
        .into());
    }
    Ok(Endpoint {
        backend,
        root,
        socket,
        engine: cli.engine.clone(),
    })
}

async fn connect(cli: &Cli) -> Result<Engine> {
    let endpoint = endpoint(cli)?;
    ensure_running(&endpoint)?;
    let path = endpoint.socket.to_string_lossy().into_owned();
    let docker =
        Docker::connect_with_unix(&path, 600, bollard::API_DEFAULT_VERSION).map_err(|e| {
            SkiffError::new(format!(
                "cannot connect to the skiff agent at unix://{path}: {e}"
            ))
        })?;
    Ok(Engine { docker, endpoint })
}

pub async fn run(cli: Cli) -> Result<u8> {
    // The one command that never talks to the engine.
    if let Command::Logout(a) = &cli.command {
        return login::logout(a);
    }
    let engine = connect(&cli).await?;
    match cli.command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => pull::pull(&engine, &a).await,
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&engine, &a).await,
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(&engine, &a).await
        }
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&engine, &a).await,
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(&engine, &a).await,
        Command::Image(ImageCommand::Prune(a)) => images::prune(&engine, &a).await,
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&engine, &a, true).await,
        Command::Inspect(a) => containers::inspect_objects(&engine, &a).await,
        Command::Container(ContainerCommand::Inspect(a)) => {
            containers::inspect_containers(&engine, &a).await
        }
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            run::run(&engine, &a).await
        }
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            run::create(&engine, &a).await
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            containers::start(&engine, &a).await
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            containers::stop(&engine, &a, false).await
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            containers::stop(&engine, &a, true).await
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            containers::kill(&engine, &a).await
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => {
            containers::remove(&engine, &a).await
        }
        Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => {
            containers::simple(&engine, &a, "pause").await
        }
        Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => {
            containers::simple(&engine, &a, "unpause").await
        }
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => {
            containers::rename(&engine, &a).await
        }
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => {
            containers::wait(&engine, &a).await
        }
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            containers::attach_cmd(&engine, &a).await
        }
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => ps::ps(&engine, &a).await,
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => {
            logs::logs(&engine, &a).await
        }
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => {
            exec::exec(&engine, &a).await
        }
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => {
            containers::top(&engine, &a).await
        }
        Command::Stats(a) | Command::Container(ContainerCommand::Stats(a)) => {
            stats::stats(&engine, &a).await
        }
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => cp::cp(&engine, &a).await,
        Command::Container(ContainerCommand::Prune(a)) => containers::prune(&engine, &a).await,
        Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => {
            port::port(&engine, &a).await
        }
        Command::Network(NetworkCommand::Create(a)) => network::create(&engine, &a).await,
        Command::Network(NetworkCommand::Ls(a)) => network::list(&engine, &a).await,
        Command::Network(NetworkCommand::Inspect(a)) => network::inspect(&engine, &a).await,
        Command::Network(NetworkCommand::Rm(a)) => network::remove(&engine, &a).await,
        Command::Network(NetworkCommand::Connect(a)) => network::connect(&engine, &a).await,
        Command::Network(NetworkCommand::Disconnect(a)) => network::disconnect(&engine, &a).await,
        Command::Network(NetworkCommand::Prune(a)) => network::prune(&engine, &a).await,
        Command::System(SystemCommand::Prune(a)) => disk::system_prune(&engine, &a).await,
        Command::System(SystemCommand::Df(a)) => disk::df(&engine, &a).await,
        Command::System(SystemCommand::Check(a)) => system::check(&engine, &a).await,
        Command::Login(a) => login::login(&engine, &a).await,
        Command::Logout(_) => unreachable!("handled above"),
        Command::Machine(c) => machine::run(&c),
        Command::System(SystemCommand::Info(a)) | Command::Info(a) => {
            system::info(&engine, &a).await
        }
        Command::Version(a) => system::version(&engine, &a).await,
    }
}

/// Turn a bollard error into what docker prints: "Error response from daemon: …" (exit 1).
pub fn daemon_error(e: bollard::errors::Error) -> anyhow::Error {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => {
            SkiffError::daemon(format!("Error response from daemon: {message}")).into()
        }
        E::DockerStreamError { error } => SkiffError::daemon(error).into(),
        other => SkiffError::new(format!("skiff: talking to the agent failed: {other}")).into(),
    }
}

/// `--filter key=value` flags into docker's filter map.
pub fn parse_filters(flags: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let mut m: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for f in flags {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            SkiffError::new(format!(
                "invalid filter {f:?}: use --filter key=value, e.g. dangling=true"
            ))
        })?;
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
