//! One module per group of commands; `run` connects to the engine and dispatches.

mod api;
mod attach;
mod build;
mod containers;
mod cp;
mod disk;
mod endpoint;
mod events;
mod exec;
mod gofmt;
mod imageio;
mod images;
mod inspect;
mod inspected;
mod login;
mod logs;
pub mod machine;
mod mounts;
mod network;
mod opts;
mod port;
mod ps;
mod pull;
mod run;
mod stats;
mod system;
mod term;
mod update;
mod volume;

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{
    Cli, Command, ContainerCommand, ContainerVerb, ImageCommand, ImageVerb, NetworkCommand,
    SystemCommand, VolumeCommand,
};
use crate::machine::{choose_backend, ensure_running, vm, Backend, Endpoint};
use crate::SkiffError;

/// The engine a command talks to.
pub struct Engine {
    pub endpoint: Endpoint,
}

impl Engine {
    /// The API client every command uses (see `api.rs` for why it is hand-spoken).
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
    Ok(Engine { endpoint })
}

pub async fn run(cli: Cli) -> Result<u8> {
    // The one command that never talks to the engine.
    if let Command::Logout(a) = &cli.command {
        return login::logout(a);
    }
    // What docker's CLI refuses before it talks to the daemon must not start the engine.
    match &cli.command {
        Command::OfContainer(ContainerVerb::Update(a))
        | Command::Container(ContainerCommand::Verb(ContainerVerb::Update(a))) => update::check(a)?,
        Command::System(SystemCommand::Events(a)) | Command::Events(a) => events::check(a)?,
        _ => {}
    }
    let engine = connect(&cli).await?;
    match cli.command {
        Command::OfImage(v) | Command::Image(ImageCommand::Verb(v)) => image_verb(&engine, v).await,
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&engine, &a).await,
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(&engine, &a).await,
        Command::Image(ImageCommand::Prune(a)) => images::prune(&engine, &a).await,
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&engine, &a, true).await,
        Command::Inspect(a) => inspect::inspect_objects(&engine, &a).await,
        Command::Container(ContainerCommand::Inspect(a)) => {
            inspect::inspect_containers(&engine, &a).await
        }
        Command::OfContainer(v) | Command::Container(ContainerCommand::Verb(v)) => {
            container_verb(&engine, v).await
        }
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => ps::ps(&engine, &a).await,
        Command::Container(ContainerCommand::Prune(a)) => containers::prune(&engine, &a).await,
        Command::Network(NetworkCommand::Create(a)) => network::create(&engine, &a).await,
        Command::Network(NetworkCommand::Ls(a)) => network::list(&engine, &a).await,
        Command::Network(NetworkCommand::Inspect(a)) => network::inspect(&engine, &a).await,
        Command::Network(NetworkCommand::Rm(a)) => network::remove(&engine, &a).await,
        Command::Network(NetworkCommand::Connect(a)) => network::connect(&engine, &a).await,
        Command::Network(NetworkCommand::Disconnect(a)) => network::disconnect(&engine, &a).await,
        Command::Network(NetworkCommand::Prune(a)) => network::prune(&engine, &a).await,
        Command::Volume(VolumeCommand::Create(a)) => volume::create(&engine, &a).await,
        Command::Volume(VolumeCommand::Ls(a)) => volume::list(&engine, &a).await,
        Command::Volume(VolumeCommand::Inspect(a)) => volume::inspect(&engine, &a).await,
        Command::Volume(VolumeCommand::Rm(a)) => volume::remove(&engine, &a).await,
        Command::Volume(VolumeCommand::Prune(a)) => volume::prune(&engine, &a).await,
        Command::System(SystemCommand::Prune(a)) => disk::system_prune(&engine, &a).await,
        Command::System(SystemCommand::Df(a)) => disk::df(&engine, &a).await,
        Command::System(SystemCommand::Check(a)) => system::check(&engine, &a).await,
        Command::System(SystemCommand::Events(a)) | Command::Events(a) => {
            events::events(&engine, &a).await
        }
        Command::Login(a) => login::login(&engine, &a).await,
        Command::Logout(_) => unreachable!("handled above"),
        Command::Machine(c) => machine::run(&c),
        Command::System(SystemCommand::Info(a)) | Command::Info(a) => {
            system::info(&engine, &a).await
        }
        Command::Version(a) => system::version(&engine, &a).await,
    }
}

/// `skiff pull|history|tag|build|push|save|load|import` and the same under `skiff image`.
async fn image_verb(engine: &Engine, v: ImageVerb) -> Result<u8> {
    match v {
        ImageVerb::Pull(a) => pull::pull(engine, &a).await,
        ImageVerb::History(a) => images::history(engine, &a).await,
        ImageVerb::Tag(a) => images::tag(engine, &a).await,
        ImageVerb::Build(a) => build::build(engine, &a).await,
        ImageVerb::Push(a) => imageio::push(engine, &a).await,
        ImageVerb::Save(a) => imageio::save(engine, &a).await,
        ImageVerb::Load(a) => imageio::load(engine, &a).await,
        ImageVerb::Import(a) => imageio::import(engine, &a).await,
    }
}

/// `skiff X` and `skiff container X` for the container commands both have.
async fn container_verb(engine: &Engine, v: ContainerVerb) -> Result<u8> {
    match v {
        ContainerVerb::Run(a) => run::run(engine, &a).await,
        ContainerVerb::Create(a) => run::create(engine, &a).await,
        ContainerVerb::Start(a) => containers::start(engine, &a).await,
        ContainerVerb::Stop(a) => containers::stop(engine, &a, false).await,
        ContainerVerb::Restart(a) => containers::stop(engine, &a, true).await,
        ContainerVerb::Kill(a) => containers::kill(engine, &a).await,
        ContainerVerb::Rm(a) => containers::remove(engine, &a).await,
        ContainerVerb::Pause(a) => containers::simple(engine, &a, "pause").await,
        ContainerVerb::Unpause(a) => containers::simple(engine, &a, "unpause").await,
        ContainerVerb::Rename(a) => containers::rename(engine, &a).await,
        ContainerVerb::Wait(a) => containers::wait(engine, &a).await,
        ContainerVerb::Attach(a) => containers::attach_cmd(engine, &a).await,
        ContainerVerb::Logs(a) => logs::logs(engine, &a).await,
        ContainerVerb::Exec(a) => exec::exec(engine, &a).await,
        ContainerVerb::Top(a) => containers::top(engine, &a).await,
        ContainerVerb::Stats(a) => stats::stats(engine, &a).await,
        ContainerVerb::Cp(a) => cp::cp(engine, &a).await,
        ContainerVerb::Port(a) => port::port(engine, &a).await,
        ContainerVerb::Commit(a) => imageio::commit(engine, &a).await,
        ContainerVerb::Export(a) => imageio::export(engine, &a).await,
        ContainerVerb::Diff(a) => imageio::diff(engine, &a).await,
        ContainerVerb::Update(a) => update::update(engine, &a).await,
    }
}

pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
