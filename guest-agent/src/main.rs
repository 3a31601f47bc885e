//! The skiff agent daemon: `skiff-agent --root DIR --socket PATH`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use skiff_agent::api::{self, Ctx};
use skiff_agent::containers::Containers;
use skiff_agent::images::pull::{PullLimits, Puller};
use skiff_agent::images::registry::RegistryConfig;
use skiff_agent::images::store::Store;

/// The skiff engine: serves the Docker Engine API on a unix socket.
#[derive(Parser, Debug)]
#[command(name = "skiff-agent", version)]
struct Args {
    /// Directory holding images, containers and the agent's state.
    #[arg(long, env = "SKIFF_ROOT", default_value = "/var/lib/skiff")]
    root: PathBuf,
    /// Unix socket to serve the API on [default: ROOT/skiff.sock].
    #[arg(long, env = "SKIFF_SOCKET")]
    socket: Option<PathBuf>,
    /// A registry (host or host:port) to reach over plain http; loopback ones always are.
    #[arg(
        long = "insecure-registry",
        value_name = "REGISTRY",
        env = "SKIFF_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// A mirror of Docker Hub (`http[s]://host[:port]`), tried before Docker Hub for its
    /// images; repeat for more, in order (daemon.json's `registry-mirrors`).
    #[arg(
        long = "registry-mirror",
        value_name = "URL",
        env = "SKIFF_REGISTRY_MIRRORS",
        value_delimiter = ','
    )]
    registry_mirrors: Vec<skiff_agent::images::registry::Mirror>,
    /// Largest uncompressed layer accepted, in bytes (a small layer that inflates past it, a
    /// gzip bomb, is refused as it streams).
    #[arg(long, env = "SKIFF_MAX_LAYER_SIZE", default_value_t = 64 << 30)]
    max_layer_size: u64,
    /// Seconds a registry may stay silent in the middle of an answer before the request fails.
    #[arg(long, env = "SKIFF_REGISTRY_READ_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    registry_read_timeout: u64,
    /// In skiff's VM: also serve the API on this vsock listener, a descriptor PID 1 bound and
    /// handed over (for the host's machine daemon).
    #[arg(long, value_name = "FD", hide = true)]
    vsock_api_fd: Option<i32>,
    /// In skiff's VM: receive published ports' connections on this vsock listener (a
    /// descriptor, as above).
    #[arg(long, value_name = "FD", hide = true, requires = "vsock_api_fd")]
    vsock_forward_fd: Option<i32>,
    /// In skiff's VM: pull images through the host's proxy on this vsock port.
    #[arg(long, value_name = "PORT", hide = true, requires = "vsock_token_file")]
    vsock_egress: Option<u32>,
    /// In skiff's VM: the file holding the token that proves this engine to the host.
    #[arg(long, value_name = "PATH", hide = true)]
    vsock_token_file: Option<PathBuf>,
}

fn main() {
    if skiff_agent::vm::init::is_vm_init() {
        skiff_agent::vm::init::main();
    }
    // Helper roles of the same binary, started by the agent itself.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 3 && argv[1] == "shim" {
        std::process::exit(skiff_agent::containers::shim::main(std::path::Path::new(
            &argv[2],
        )));
    }
    if argv.len() >= 5 && argv[1] == "archive" {
        std::process::exit(skiff_agent::containers::archive::helper_main(&argv[2..]));
    }
    if argv.len() >= 5 && argv[1] == "exec" {
        std::process::exit(skiff_agent::containers::exec::helper_main(&argv[2..]));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("skiff-agent: {e:#}");
        std::process::exit(1);
    }
}

/// Each published-port connection holds two sockets and two pipes in the agent: the shell's
/// usual soft limit of 1024 descriptors would cap it near 250 connections.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run(args: Args) -> Result<()> {
    raise_fd_limit();
    // reqwest is built without a bundled crypto provider; ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    skiff_agent::state_root::secure(&args.root)?;
    let root = std::fs::canonicalize(&args.root)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| root.join("skiff.sock"));
    // One agent per state dir: a second one would clear the first one's work in progress.
    let _lock = lock_root(&root)?;
    let store = Arc::new(Store::open(&root)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut registries = RegistryConfig::new(args.insecure_registries.clone());
    registries.mirrors = args.registry_mirrors.clone();
    registries.read_timeout = std::time::Duration::from_secs(args.registry_read_timeout);
    if let Some(path) = &args.vsock_token_file {
        skiff_agent::vm::vsock::load_token(path)?;
    }
    if let Some(port) = args.vsock_egress {
        registries.proxy = Some(rt.block_on(skiff_agent::vm::vsock::start_egress(port))?);
    }
    let puller = Arc::new(Puller {
        store: store.clone(),
        registries,
        limits: PullLimits {
            max_layer: args.max_layer_size,
            ..PullLimits::default()
        },
    });
    let id = agent_id(&root)?;
    // In the VM the host's daemon holds published ports for us; its connections arrive on the
    // forward port PID 1 bound. The listener is served on the runtime, which outlives this.
    let publisher = match (args.vsock_api_fd, args.vsock_forward_fd) {
        (Some(_), Some(fd)) => rt.block_on(async {
            skiff_agent::vm::ports::publisher(skiff_agent::vm::vsock::listener_from_fd(fd)?)
        })?,
        (Some(_), None) => anyhow::bail!("--vsock-api-fd needs --vsock-forward-fd"),
        (None, _) => skiff_agent::network::Publisher::Local,
    };
    let networks = skiff_agent::network::Networks::open(&root, publisher)?;
    let volumes = skiff_agent::volumes::Volumes::open(
        &root,
        skiff_agent::volumes::HostPaths::from_env(&socket)?,
    )?;
    let containers = Containers::open(&root, store.clone(), networks.clone(), volumes)?;
    containers.set_flush_on_exit(args.vsock_api_fd.is_some());
    rt.block_on(async move {
        let listener = api::bind(&socket)?;
        let vsock_listener = match args.vsock_api_fd {
            Some(fd) => Some(skiff_agent::vm::vsock::listener_from_fd(fd)?),
            None => None,
        };
        // Tests and `skiff` find the daemon by this file.
        std::fs::write(root.join("agent.pid"), std::process::id().to_string())?;
        tracing::info!(
            "serving the Docker Engine API on unix://{}",
            socket.display()
        );
        containers.recover().await;
        tokio::spawn(api::heap::trim_when_quiet());
        let ctx = Arc::new(Ctx {
            containers,
            execs: Default::default(),
            store,
            puller,
            root,
            socket: socket.clone(),
            id,
        });
        let vsock_api = async {
            match vsock_listener {
                Some(l) => skiff_agent::vm::vsock::serve_api(l, ctx.clone()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = api::serve(listener, ctx.clone()) => r,
            r = vsock_api => r,
            _ = shutdown_signal() => {
                tracing::info!("shutting down");
                // Bridges nobody uses go now rather than outlive us; running containers
                // keep theirs.
                networks.sweep().await;
                let _ = std::fs::remove_file(&socket);
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Hold an exclusive lock on ROOT/agent.lock for the life of the process.
fn lock_root(root: &std::path::Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = root.join("agent.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A POSIX record lock, not flock: it belongs to this process and goes with it, where a
    // flock belongs to the open file, which a child forked but not yet exec'd when the agent
    // was killed still holds (once, under load, the next agent found the state dir taken).
    // No other code opens this file, whose closing would release the lock.
    let whole_file = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: the fd is valid and `whole_file` outlives the call.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &whole_file) } != 0 {
        anyhow::bail!(
            "another skiff-agent is already using {}; stop it first or give another --root",
            root.display()
        );
    }
    Ok(f)
}

/// A stable engine ID kept in the state dir, as docker's `ID` in /info.
fn agent_id(root: &std::path::Path) -> Result<String> {
    let p = root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        return Ok(s.trim().to_string());
    }
    let id = skiff_common::ids::random_hex(16)?;
    std::fs::write(&p, &id).with_context(|| format!("writing {}", p.display()))?;
    Ok(id)
}
