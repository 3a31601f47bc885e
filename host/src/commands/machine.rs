//! `skiff machine …`: create, start, stop and look at skiff's VM. These work without a
//! running engine.

use anyhow::Result;

use crate::cli::{
    MachineCommand, MachineEngineCommand, MachineEngineLsArgs, MachineEngineRmArgs,
    MachineInitArgs, MachineName, MachineRmArgs,
};
use crate::machine::vm::{self, config, config::MachineConfig, Machine, State};
use crate::SkiffError;

fn pick(name: &Option<String>) -> Result<Machine> {
    match name {
        Some(n) => Machine::named(n),
        None => Machine::current(),
    }
}

pub fn run(cmd: &MachineCommand) -> Result<u8> {
    match cmd {
        MachineCommand::Init(a) => init(a),
        MachineCommand::Start(a) => {
            let m = pick(&a.name)?;
            // As every other command does on first use: a machine never initialised is made
            // with the defaults (`machine init` chooses otherwise).
            if m.config()?.is_none() {
                eprintln!("Creating machine {}...", m.name);
                m.init(&vm::default_config(&m.name))?;
            }
            m.start(true)?;
            Ok(0)
        }
        MachineCommand::Stop(a) => stop(a),
        MachineCommand::Status(a) => {
            let m = pick(&a.name)?;
            crate::output::out_line!("{}", m.state()?.name());
            Ok(0)
        }
        MachineCommand::Rm(a) => rm(a),
        MachineCommand::Logs(a) => logs(a),
        MachineCommand::Inspect(a) => inspect(a),
        MachineCommand::Engine(MachineEngineCommand::Ls(a)) => engine_ls(a),
        MachineCommand::Engine(MachineEngineCommand::Rm(a)) => engine_rm(a),
        MachineCommand::Daemon(a) => daemon(a),
    }
}

fn running(name: &Option<String>) -> Result<Machine> {
    let m = pick(name)?;
    if m.state()? != State::Running {
        return Err(SkiffError::new(format!(
            "machine {} is not running; start it with `skiff machine start {}`",
            m.name, m.name
        ))
        .into());
    }
    Ok(m)
}

fn engine_ls(a: &MachineEngineLsArgs) -> Result<u8> {
    let m = running(&a.name)?;
    let v = vm::engines::request(&m.engines_socket(), &serde_json::json!({ "op": "ls" }))?;
    let engines = v["engines"].as_array().cloned().unwrap_or_default();
    let name_of = |e: &serde_json::Value| e["name"].as_str().unwrap_or_default().to_string();
    if a.quiet {
        for e in &engines {
            crate::output::out(&format!("{}\n", name_of(e)));
        }
        return Ok(0);
    }
    let mut rows = vec![vec!["NAME".to_string(), "MEMORY".to_string()]];
    for e in &engines {
        let memory = match e["memory_kib"].as_u64() {
            Some(kib) => crate::commands::gofmt::bytes_size((kib * 1024) as f64),
            None => "-".to_string(),
        };
        rows.push(vec![name_of(e), memory]);
    }
    crate::output::out(&crate::output::table(&rows));
    Ok(0)
}

/// Containers go first, through the engine's API, so that none keeps running without an
/// engine; then PID 1 stops the engine and deletes its state.
fn engine_rm(a: &MachineEngineRmArgs) -> Result<u8> {
    let m = running(&a.machine)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for name in &a.engines {
        let socket = m.engine_socket(name);
        m.ensure_engine(name, &socket)?;
        rt.block_on(remove_containers(&socket)).map_err(|e| {
            SkiffError::new(format!("engine {name}: removing its containers: {e:#}"))
        })?;
        vm::engines::request(
            &m.engines_socket(),
            &serde_json::json!({ "op": "rm", "name": name }),
        )
        .map_err(|e| SkiffError::new(format!("engine {name}: {e:#}")))?;
        crate::output::out_line!("{name}");
    }
    Ok(0)
}

async fn remove_containers(socket: &std::path::Path) -> Result<()> {
    use super::api::{message_of, seg, Api, Body};
    let api = Api::new(socket.to_path_buf());
    let engine_error = |e: anyhow::Error| anyhow::anyhow!(message_of(&e));
    let all = api
        .json("GET", "/containers/json?all=1", Body::None)
        .await
        .map_err(engine_error)?;
    for c in all.as_array().into_iter().flatten() {
        if let Some(id) = c["Id"].as_str() {
            api.call(
                "DELETE",
                &format!("/containers/{}?force=1", seg(id)),
                Body::None,
            )
            .await
            .map_err(engine_error)?;
        }
    }
    Ok(())
}

fn init(a: &MachineInitArgs) -> Result<u8> {
    let m = pick(&a.name)?;
    let mut cfg: MachineConfig = vm::default_config(&m.name);
    if let Some(c) = a.cpus {
        cfg.cpus = c;
    }
    cfg.memory_mib = a.memory;
    cfg.disk_gib = a.disk_size;
    if let Some(k) = &a.kernel {
        cfg.kernel = std::path::absolute(k)?;
    }
    if let Some(i) = &a.initramfs {
        cfg.initramfs = std::path::absolute(i)?;
    }
    if !a.mounts.is_empty() {
        let shares = a
            .mounts
            .iter()
            .map(|spec| config::parse_mount(spec))
            .collect::<Result<Vec<_>>>()?;
        cfg.shares = Some(shares);
    }
    m.init(&cfg)?;
    eprintln!(
        "Machine {} created: {} CPUs, {} MiB, {} GiB disk, kernel {}",
        m.name,
        cfg.cpus,
        cfg.memory_mib,
        cfg.disk_gib,
        cfg.kernel.display()
    );
    let shares = cfg.shares();
    if shares.is_empty() {
        eprintln!("It shares no host directory: bind mounts of host paths will fail");
    } else {
        let list: Vec<String> = shares.iter().map(share_words).collect();
        eprintln!("Shared with the VM: {}", list.join(", "));
    }
    if a.now {
        m.start(true)?;
    }
    Ok(0)
}

fn share_words(s: &config::SharedDir) -> String {
    let mode = if s.readonly { " (read-only)" } else { "" };
    format!("{}{mode}", s.path.display())
}

fn stop(a: &MachineName) -> Result<u8> {
    let m = pick(&a.name)?;
    if m.state()? == State::Missing {
        return Err(SkiffError::new(format!("machine {} does not exist", m.name)).into());
    }
    if m.stop()? {
        eprintln!("Machine {} stopped", m.name);
    } else {
        eprintln!("Machine {} is not running", m.name);
    }
    Ok(0)
}

fn rm(a: &MachineRmArgs) -> Result<u8> {
    let m = pick(&a.name)?;
    match m.state()? {
        State::Missing => {
            return Err(SkiffError::new(format!("machine {} does not exist", m.name)).into())
        }
        State::Running | State::Starting if !a.force => {
            return Err(SkiffError::new(format!(
                "machine {} is running; stop it first or use --force",
                m.name
            ))
            .into())
        }
        State::Running | State::Starting => {
            m.stop()?;
        }
        State::Stopped => {}
    }
    std::fs::remove_dir_all(&m.dir)?;
    crate::output::out_line!("{}", m.name);
    Ok(0)
}

fn logs(a: &MachineName) -> Result<u8> {
    let m = pick(&a.name)?;
    match std::fs::read(m.serial_log()) {
        Ok(b) => {
            use std::io::Write;
            std::io::stdout().write_all(&b)?;
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SkiffError::new(format!(
            "machine {} has not booted yet: no console log at {}",
            m.name,
            m.serial_log().display()
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

fn inspect(a: &MachineName) -> Result<u8> {
    use std::os::unix::fs::MetadataExt;
    let m = pick(&a.name)?;
    let Some(cfg) = m.config()? else {
        return Err(SkiffError::new(format!("machine {} does not exist", m.name)).into());
    };
    let state = m.state()?;
    let accel = match state {
        // The accelerator the running VM was started with.
        State::Running | State::Starting => std::fs::read_to_string(m.dir.join("accel")).ok(),
        _ => vm::qemu::Accel::detect().ok().map(|a| a.name().to_string()),
    };
    let disk = std::fs::metadata(m.disk()).ok();
    let v = serde_json::json!({
        "Name": m.name,
        "State": state.name(),
        "Backend": "qemu",
        "Accelerator": accel,
        "CPUs": cfg.cpus,
        "MemoryMiB": cfg.memory_mib,
        "DiskGiB": cfg.disk_gib,
        // What the sparse disk file takes on the host, and its size as the guest sees it.
        "DiskAllocatedBytes": disk.as_ref().map(|d| d.blocks() * 512),
        "DiskApparentBytes": disk.as_ref().map(|d| d.len()),
        "Kernel": cfg.kernel,
        "Initramfs": cfg.initramfs,
        "Created": cfg.created,
        "Shares": cfg.shares().iter().map(|s| serde_json::json!({
            "Source": s.path,
            "Destination": skiff_common::shares::guest_path(&s.path),
            "ReadOnly": s.readonly,
        })).collect::<Vec<_>>(),
        "Dir": m.dir,
        "APISocket": m.api_socket(),
        "DaemonPid": if state == State::Stopped { None } else { m.daemon_pid() },
    });
    crate::output::out_line!("{}", serde_json::to_string_pretty(&[v])?);
    Ok(0)
}

fn daemon(a: &MachineName) -> Result<u8> {
    let m = pick(&a.name)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    vm::daemon::main(&m)?;
    Ok(0)
}
