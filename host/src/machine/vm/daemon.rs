//! The machine daemon: one long-lived host process per running machine. It serves our vsock
//! device to QEMU (vhost-user), runs QEMU, and is the host side of the guest's services: the
//! agent's API on a host unix socket, and the egress proxy for pulls. It ends with QEMU.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config::MachineConfig;
use super::{bind_private, egress, engines, guest, net, ports, qemu, virtiofs, Machine};
use skiff_common::vsock;

pub fn main(machine: &Machine) -> Result<()> {
    let cfg = MachineConfig::load(&machine.dir)?
        .with_context(|| format!("no machine at {}", machine.dir.display()))?;
    cfg.validate()?;
    let _lock = machine.lock_daemon()?;
    for p in [
        machine.api_socket(),
        machine.vhost_socket(),
        machine.device_socket(),
        machine.egress_socket(),
        machine.control_socket(),
        machine.engines_socket(),
        machine.net_socket(),
    ]
    .into_iter()
    .chain(virtiofs::all_sockets(&machine.dir))
    {
        let _ = std::fs::remove_file(p);
    }
    std::fs::write(
        machine.dir.join("daemon.pid"),
        std::process::id().to_string(),
    )?;
    let accel = qemu::Accel::detect()?;
    std::fs::write(machine.dir.join("accel"), accel.name())?;

    // The device listens before QEMU starts: QEMU connects to it as a client.
    let backend = skiff_vmm::vsock::VhostUserVsock::bind(
        &machine.vhost_socket(),
        skiff_vmm::vsock::VsockConfig {
            guest_cid: 3,
            uds_path: machine.device_socket(),
        },
    )
    .context("starting the vsock device")?;
    let device = std::thread::Builder::new()
        .name("vsock-device".into())
        .spawn(move || backend.serve())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(machine, &cfg, accel));
    for p in [
        machine.api_socket(),
        machine.device_socket(),
        machine.egress_socket(),
        machine.control_socket(),
        machine.engines_socket(),
        machine.net_socket(),
        machine.dir.join("daemon.pid"),
        machine.dir.join("passt.pid"),
    ]
    .into_iter()
    .chain(virtiofs::all_sockets(&machine.dir))
    {
        let _ = std::fs::remove_file(p);
    }
    // QEMU is gone, so the device's frontend disconnected and its thread ends; if QEMU never
    // connected (it failed to start), the device still waits in accept: knock once to end it.
    if !device.is_finished() {
        let _ = std::os::unix::net::UnixStream::connect(machine.vhost_socket());
    }
    let _ = device.join();
    result
}

async fn run(machine: &Machine, cfg: &MachineConfig, accel: qemu::Accel) -> Result<()> {
    // QEMU connects its netdev at start: the relay listens first.
    let net = bind_private(&machine.net_socket())?;
    let net_task = tokio::spawn(net::serve(net, machine.dir.clone()));
    // QEMU connects to each share's virtiofsd at start: they run first. Started from this
    // thread, the one block_on polls on and which lives as long as the daemon:
    // PR_SET_PDEATHSIG fires when the thread that forked ends, not the process.
    let mut shares = virtiofs::start(&machine.dir, &cfg.shares()).await;
    let devices: Vec<virtiofs::Device> = shares.iter().map(|s| s.device(&machine.dir)).collect();
    let qemu_log = std::fs::File::create(machine.dir.join("qemu.log"))?;
    let engine_env = crate::machine::engine_env()?;
    let mut cmd = tokio::process::Command::new(qemu::binary());
    cmd.args(qemu::args(
        cfg,
        accel,
        &qemu::Paths {
            vhost_socket: &machine.vhost_socket(),
            disk: &machine.disk(),
            serial_log: &machine.serial_log(),
            net_socket: &machine.net_socket(),
            shares: &devices,
            engine_env: &engine_env,
        },
    ))
    .stdin(Stdio::null())
    .stdout(qemu_log.try_clone()?)
    .stderr(qemu_log)
    .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe. QEMU must not outlive a killed daemon: nothing
    // would serve its vsock device, and the next start needs the disk.
    unsafe {
        cmd.as_std_mut().pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu::binary().display()))?;
    if let Some(pid) = child.id() {
        std::fs::write(machine.dir.join("qemu.pid"), pid.to_string())?;
    }
    tracing::info!(
        "started QEMU ({}, {} CPUs, {} MiB)",
        accel.name(),
        cfg.cpus,
        cfg.memory_mib
    );

    let api = bind_private(&machine.api_socket())?;
    let egress = bind_private(&machine.egress_socket())?;
    let control = bind_private(&machine.control_socket())?;
    let engines = bind_private(&machine.engines_socket())?;
    let device = machine.device_socket();
    // This boot's proof for guest-initiated connections (skiff_common::auth says why).
    let token = skiff_common::auth::new_token().context("drawing the VM's vsock token")?;
    let api_loop = async {
        loop {
            let Ok((client, _)) = api.accept().await else {
                continue;
            };
            let device = device.clone();
            tokio::spawn(async move {
                match guest::connect(&device, vsock::API_PORT).await {
                    Ok(up) => {
                        let _ = skiff_common::relay::relay(client, up).await;
                    }
                    // The client sees its connection closed: the engine is not up yet.
                    Err(e) => tracing::debug!("api: {e:#}"),
                }
            });
        }
    };
    let egress_loop = async {
        loop {
            if let Ok((conn, _)) = egress.accept().await {
                tokio::spawn(egress::serve_connection(conn, token.clone()));
            }
        }
    };
    let control_loop = async {
        loop {
            if let Ok((conn, _)) = control.accept().await {
                tokio::spawn(ports::serve_control(conn, device.clone(), token.clone()));
            }
        }
    };
    let engines_loop = engines::serve(engines, device.clone(), Default::default());
    let clock_loop = async {
        greet_guest(&device, &token).await;
        keep_guest_clock(&device).await
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let status = tokio::select! {
        s = child.wait() => s?,
        _ = api_loop => unreachable!(),
        _ = egress_loop => unreachable!(),
        _ = control_loop => unreachable!(),
        _ = engines_loop => unreachable!(),
        _ = clock_loop => unreachable!(),
        _ = virtiofs::watch(&mut shares) => unreachable!(),
        _ = term.recv() => {
            tracing::info!("stopping the VM");
            shutdown_guest(&device).await;
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(s) => s?,
                Err(_) => {
                    tracing::warn!("the VM did not stop within 30 s; killing QEMU");
                    let _ = child.kill().await;
                    child.wait().await?
                }
            }
        }
    };
    net_task.abort();
    let _ = std::fs::remove_file(machine.dir.join("qemu.pid"));
    tracing::info!("QEMU exited ({status})");
    Ok(())
}

/// Hand this boot's token to the guest's PID 1 as soon as it listens; PID 1 starts the engine
/// only then, so the wait is part of every boot: ask often. The init port is one only the host
/// can reach (the guest kernel has no vsock loopback, and the device drops packets a guest
/// addresses to anything but the host), and PID 1 takes a token once per boot.
async fn greet_guest(device: &Path, token: &str) {
    let started = std::time::Instant::now();
    loop {
        let asked = engines::ask_init_answer(device, || format!("hello {token}"));
        match tokio::time::timeout(Duration::from_secs(5), asked).await {
            Ok(Ok(Ok(_))) => {
                tracing::info!(
                    "gave the guest its vsock token {} ms after QEMU started",
                    started.elapsed().as_millis()
                );
                return;
            }
            // Not the request's words in the log: they carry the token.
            Ok(Ok(Err(refusal))) => {
                tracing::warn!("the guest refused its vsock token: {refusal}");
                return;
            }
            // PID 1 is not listening yet.
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Keep the guest's wall clock on the host's (guest-agent/src/vm/clock.rs says why): as soon
/// as PID 1 answers after boot, then every 10 s (which also catches up after the host
/// resumes from suspend).
async fn keep_guest_clock(device: &Path) {
    let mut synced = false;
    loop {
        let asked = engines::ask_init_made(device, || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("time {now}")
        });
        // A guest that takes the connection but never answers must not stop the rounds.
        let answer = tokio::time::timeout(Duration::from_secs(5), asked)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("PID 1 did not answer within 5 s")));
        match answer {
            Ok(behind) => {
                if !synced {
                    tracing::info!("guest clock set from the host's ({behind} ns behind)");
                }
                synced = true;
            }
            Err(e) if synced => tracing::warn!("cannot set the guest's clock: {e:#}"),
            // PID 1 is not listening yet.
            Err(_) => {}
        }
        let wait = if synced { 10_000 } else { 200 };
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Ask the guest's init to stop the engine, flush the disk and end the VM.
async fn shutdown_guest(device: &Path) {
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        engines::ask_init(device, "shutdown"),
    );
    match asked.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("cannot ask the guest to shut down: {e:#}"),
        Err(_) => tracing::warn!("the guest did not answer the shutdown request"),
    }
}
