//! `run` and `create`: docker's flags into the create body docker sends, the pull on a
//! missing image, then (for `run`) attach, wait, start and the exit code.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::api::{message_of, query, seg, status_of, Body};
use super::attach::{
    self, exit_code, monitor_size, Ended, ResizeTarget, SignalProxy, StreamConfig, WaitOutcome,
    Waiter,
};
use super::endpoint::run_endpoints;
use super::mounts::{go_getwd, parse_mount, split_volumes};
use super::opts::{
    env_lookup, flag_error, go_duration, mem_swap_bytes, parse_cpus, parse_expose,
    parse_port_specs, parse_restart, ram_in_bytes, read_kv_file, validate_attach,
    validate_dns_search, validate_env, validate_extra_host, validate_ip_address, validate_label,
};
use super::pull::{split_reference, stream_pull};
use super::term;
use super::Engine;
use crate::cli::{ContainerFlags, CreateArgs, RunArgs};
use crate::SkiffError;

/// What `create` sends and what `run` needs to know about it afterwards.
#[derive(Debug)]
pub struct Spec {
    pub body: Value,
    pub image: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub auto_remove: bool,
    /// What docker warns about on stderr while reading the flags (deprecated options).
    pub warnings: Vec<String>,
}

/// docker's `withHelp`: "skiff: <err>\n\nRun 'skiff <cmd> --help' for more information".
pub(super) fn with_help(err: &str, cmd: &str, code: u8) -> anyhow::Error {
    SkiffError::with_code(
        format!("skiff: {err}\n\nRun 'skiff {cmd} --help' for more information"),
        code,
    )
    .into()
}

/// docker's `toStatusError` for failures of `run`: 127 when the command was not found,
/// 126 when it could not be executed, 125 otherwise.
fn to_status_error(e: anyhow::Error) -> anyhow::Error {
    let msg = message_of(&e);
    let code = if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    };
    with_help(&msg, "run", code)
}

/// The `--health-*` flags and `--no-healthcheck` as docker's CLI turns them into the
/// config's `Healthcheck` (its fields omitted when empty or zero), with its messages.
fn healthcheck(f: &ContainerFlags) -> Result<Option<Value>, String> {
    let duration = |v: &Option<String>, flag: &str| -> Result<i128, String> {
        match v {
            Some(d) => go_duration(d).map_err(|e| flag_error(d, flag, &e)),
            None => Ok(0),
        }
    };
    let interval = duration(&f.health_interval, "--health-interval")?;
    let timeout = duration(&f.health_timeout, "--health-timeout")?;
    let start_period = duration(&f.health_start_period, "--health-start-period")?;
    let start_interval = duration(&f.health_start_interval, "--health-start-interval")?;
    let retries = f.health_retries.unwrap_or(0);
    let cmd = f.health_cmd.clone().unwrap_or_default();
    let any = !cmd.is_empty()
        || interval != 0
        || timeout != 0
        || start_period != 0
        || retries != 0
        || start_interval != 0;
    if f.no_healthcheck {
        if any {
            return Err("--no-healthcheck conflicts with --health-* options".into());
        }
        return Ok(Some(json!({"Test": ["NONE"]})));
    }
    if !any {
        return Ok(None);
    }
    for (v, flag) in [
        (interval, "--health-interval"),
        (timeout, "--health-timeout"),
        (i128::from(retries), "--health-retries"),
        (start_period, "--health-start-period"),
        (start_interval, "--health-start-interval"),
    ] {
        if v < 0 {
            return Err(format!("{flag} cannot be negative"));
        }
    }
    let mut hc = Map::new();
    if !cmd.is_empty() {
        hc.insert("Test".into(), json!(["CMD-SHELL", cmd]));
    }
    for (k, v) in [
        ("Interval", interval),
        ("Timeout", timeout),
        ("StartPeriod", start_period),
        ("StartInterval", start_interval),
        ("Retries", i128::from(retries)),
    ] {
        if v != 0 {
            hc.insert(k.into(), json!(v as i64));
        }
    }
    Ok(Some(Value::Object(hc)))
}

/// pflag's words for a flag it does not know.
fn unknown_flag(arg: &str) -> String {
    let flag = arg.split('=').next().unwrap_or(arg);
    match flag.strip_prefix("--") {
        Some(long) => format!("unknown flag: --{long}"),
        None => {
            let c = flag.chars().nth(1).unwrap_or('-');
            format!("unknown shorthand flag: '{c}' in {flag}")
        }
    }
}

/// docker's `parse` (opts.go), down to the JSON body the docker CLI sends.
pub fn build_spec(
    f: &ContainerFlags,
    image_and_command: &[String],
    detach: bool,
    console: (u16, u16),
) -> Result<Spec, String> {
    let image = image_and_command
        .first()
        .cloned()
        .ok_or_else(|| "requires at least 1 argument".to_string())?;
    // Flags skiff does not know end up here (the image takes what follows it verbatim), and
    // would otherwise be read as an image name.
    if image.len() > 1 && image.starts_with('-') {
        return Err(unknown_flag(&image));
    }
    let cmd: Vec<String> = image_and_command[1..].to_vec();

    let mut attach_stdin = false;
    let mut attach_stdout = false;
    let mut attach_stderr = false;
    for a in &f.attach {
        match validate_attach(a)
            .map_err(|e| flag_error(a, "-a, --attach", &e))?
            .as_str()
        {
            "stdin" => attach_stdin = true,
            "stdout" => attach_stdout = true,
            _ => attach_stderr = true,
        }
    }
    if f.interactive {
        attach_stdin = true;
    }
    if f.attach.is_empty() {
        attach_stdout = true;
        attach_stderr = true;
    }

    let memory = match &f.memory {
        Some(m) => ram_in_bytes(m).map_err(|e| flag_error(m, "-m, --memory", &e))?,
        None => 0,
    };
    let memory_swap = match f.memory_swap.as_deref() {
        Some(m) => mem_swap_bytes(m).map_err(|e| flag_error(m, "--memory-swap", &e))?,
        None => 0,
    };
    let nano_cpus = match &f.cpus {
        Some(c) => parse_cpus(c).map_err(|e| flag_error(c, "--cpus", &e))?,
        None => 0,
    };

    let mut env_flags = Vec::new();
    for e in &f.env {
        env_flags.push(validate_env(e).map_err(|err| flag_error(e, "-e, --env", &err))?);
    }
    let mut labels_flags = Vec::new();
    for l in &f.label {
        labels_flags.push(validate_label(l).map_err(|err| flag_error(l, "-l, --label", &err))?);
    }

    let mut dns = Vec::new();
    for d in &f.dns {
        dns.push(validate_ip_address(d).map_err(|e| flag_error(d, "--dns", &e))?);
    }
    let mut dns_search = Vec::new();
    for d in &f.dns_search {
        dns_search.push(validate_dns_search(d).map_err(|e| flag_error(d, "--dns-search", &e))?);
    }
    let mut extra_hosts = Vec::new();
    for h in &f.add_host {
        extra_hosts.push(validate_extra_host(h).map_err(|e| flag_error(h, "--add-host", &e))?);
    }

    let (mut exposed, bindings) = parse_port_specs(&f.publish)?;
    for e in &f.expose {
        for p in parse_expose(e)? {
            exposed.entry(p).or_insert(());
        }
    }

    let mut env: Vec<String> = Vec::new();
    for file in &f.env_file {
        env.extend(read_kv_file(file, Some(&env_lookup))?);
    }
    env.extend(env_flags);
    let mut labels_list: Vec<String> = Vec::new();
    for file in &f.label_file {
        labels_list.extend(read_kv_file(file, None)?);
    }
    labels_list.extend(labels_flags);
    let mut labels = Map::new();
    for l in &labels_list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), Value::String(v.to_string()));
    }

    // Only a relative path needs it; docker sends the path as given when it cannot be had.
    let cwd = if f.mount.is_empty() && f.volume.is_empty() {
        None
    } else {
        go_getwd()
    };
    let mut mounts = Vec::new();
    let mut warnings = Vec::new();
    for m in &f.mount {
        let parsed = parse_mount(m, cwd.as_deref())?;
        warnings.extend(parsed.warning.map(String::from));
        mounts.push(parsed.mount);
    }
    let volumes = split_volumes(&f.volume, cwd.as_deref())?;

    let (restart_name, restart_count) = parse_restart(&f.restart)?;
    if f.rm && !(restart_name.is_empty() || restart_name == "no") {
        return Err("conflicting options: cannot specify both --restart and --rm".into());
    }

    let mut tmpfs = BTreeMap::new();
    for t in &f.tmpfs {
        let (k, v) = t.split_once(':').unwrap_or((t.as_str(), ""));
        tmpfs.insert(k.to_string(), v.to_string());
    }

    let entrypoint = match &f.entrypoint {
        Some(e) if e.is_empty() => json!([""]),
        Some(e) => json!([e]),
        None => Value::Null,
    };

    let open_stdin = f.interactive;
    let (mut attach_stdin, mut attach_stdout, mut attach_stderr, mut stdin_once) = (
        attach_stdin,
        attach_stdout,
        attach_stderr,
        open_stdin && attach_stdin,
    );
    if detach {
        attach_stdin = false;
        attach_stdout = false;
        attach_stderr = false;
        stdin_once = false;
    }

    let list_or_null = |v: &Vec<String>| {
        if v.is_empty() {
            Value::Null
        } else {
            json!(v)
        }
    };

    let mut config = Map::new();
    config.insert(
        "Hostname".into(),
        json!(f.hostname.clone().unwrap_or_default()),
    );
    config.insert(
        "Domainname".into(),
        json!(f.domainname.clone().unwrap_or_default()),
    );
    config.insert("User".into(), json!(f.user.clone().unwrap_or_default()));
    config.insert("AttachStdin".into(), json!(attach_stdin));
    config.insert("AttachStdout".into(), json!(attach_stdout));
    config.insert("AttachStderr".into(), json!(attach_stderr));
    if !exposed.is_empty() {
        let ports: Map<String, Value> = exposed.keys().map(|k| (k.clone(), json!({}))).collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    config.insert("Tty".into(), json!(f.tty));
    config.insert("OpenStdin".into(), json!(open_stdin));
    config.insert("StdinOnce".into(), json!(stdin_once));
    config.insert("Env".into(), list_or_null(&env));
    config.insert("Cmd".into(), list_or_null(&cmd));
    if let Some(hc) = healthcheck(f)? {
        config.insert("Healthcheck".into(), hc);
    }
    config.insert("Image".into(), json!(image));
    let anonymous: Map<String, Value> = volumes
        .anonymous
        .iter()
        .map(|t| (t.clone(), json!({})))
        .collect();
    config.insert("Volumes".into(), Value::Object(anonymous));
    config.insert(
        "WorkingDir".into(),
        json!(f.workdir.clone().unwrap_or_default()),
    );
    config.insert("Entrypoint".into(), entrypoint);
    config.insert("OnBuild".into(), Value::Null);
    config.insert("Labels".into(), Value::Object(labels));
    if let Some(s) = &f.stop_signal {
        config.insert("StopSignal".into(), json!(s));
    }
    if let Some(t) = f.stop_timeout {
        config.insert("StopTimeout".into(), json!(t));
    }

    let port_bindings: Map<String, Value> = bindings
        .iter()
        .map(|(port, bs)| {
            let list: Vec<Value> = bs
                .iter()
                .map(|(ip, hp)| json!({"HostIp": ip, "HostPort": hp}))
                .collect();
            (port.clone(), Value::Array(list))
        })
        .collect();
    let network_mode = f.network.clone().unwrap_or_else(|| "default".into());

    let mut host = Map::new();
    host.insert("Binds".into(), list_or_null(&volumes.binds));
    host.insert("ContainerIDFile".into(), json!(""));
    host.insert("LogConfig".into(), json!({"Type": "", "Config": {}}));
    host.insert("NetworkMode".into(), json!(network_mode));
    host.insert("PortBindings".into(), Value::Object(port_bindings));
    host.insert(
        "RestartPolicy".into(),
        json!({"Name": restart_name, "MaximumRetryCount": restart_count}),
    );
    host.insert("AutoRemove".into(), json!(f.rm));
    host.insert(
        "VolumeDriver".into(),
        json!(f.volume_driver.clone().unwrap_or_default()),
    );
    host.insert("VolumesFrom".into(), list_or_null(&f.volumes_from));
    host.insert("ConsoleSize".into(), json!([console.0, console.1]));
    host.insert("CapAdd".into(), list_or_null(&f.cap_add));
    host.insert("CapDrop".into(), list_or_null(&f.cap_drop));
    host.insert("CgroupnsMode".into(), json!(""));
    // docker never sends the DNS lists as null (old engines kept null as "unset").
    host.insert("Dns".into(), json!(dns));
    host.insert("DnsOptions".into(), json!(f.dns_option));
    host.insert("DnsSearch".into(), json!(dns_search));
    host.insert("ExtraHosts".into(), list_or_null(&extra_hosts));
    host.insert("GroupAdd".into(), Value::Null);
    host.insert("IpcMode".into(), json!(""));
    host.insert("Cgroup".into(), json!(""));
    host.insert("Links".into(), list_or_null(&f.link));
    host.insert("OomScoreAdj".into(), json!(0));
    host.insert("PidMode".into(), json!(""));
    host.insert("Privileged".into(), json!(f.privileged));
    host.insert("PublishAllPorts".into(), json!(f.publish_all));
    host.insert("ReadonlyRootfs".into(), json!(f.read_only));
    host.insert("SecurityOpt".into(), list_or_null(&f.security_opt));
    if !tmpfs.is_empty() {
        host.insert("Tmpfs".into(), json!(tmpfs));
    }
    host.insert("UTSMode".into(), json!(""));
    host.insert("UsernsMode".into(), json!(""));
    host.insert("ShmSize".into(), json!(0));
    host.insert("Isolation".into(), json!(""));
    host.insert("CpuShares".into(), json!(0));
    host.insert("Memory".into(), json!(memory));
    host.insert("NanoCpus".into(), json!(nano_cpus));
    host.insert("CgroupParent".into(), json!(""));
    host.insert("BlkioWeight".into(), json!(0));
    for k in [
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
    ] {
        host.insert(k.into(), json!([]));
    }
    for k in [
        "CpuPeriod",
        "CpuQuota",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
    ] {
        host.insert(k.into(), json!(0));
    }
    host.insert("CpusetCpus".into(), json!(""));
    host.insert("CpusetMems".into(), json!(""));
    host.insert("Devices".into(), json!([]));
    host.insert("DeviceCgroupRules".into(), Value::Null);
    host.insert("DeviceRequests".into(), Value::Null);
    host.insert("MemoryReservation".into(), json!(0));
    host.insert("MemorySwap".into(), json!(memory_swap));
    host.insert("MemorySwappiness".into(), json!(-1));
    host.insert("OomKillDisable".into(), json!(false));
    host.insert("PidsLimit".into(), json!(f.pids_limit.unwrap_or(0)));
    host.insert("Ulimits".into(), json!([]));
    for k in [
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
    ] {
        host.insert(k.into(), json!(0));
    }
    if !mounts.is_empty() {
        let mounts = serde_json::to_value(&mounts).map_err(|e| e.to_string())?;
        host.insert("Mounts".into(), mounts);
    }
    host.insert("MaskedPaths".into(), Value::Null);
    host.insert("ReadonlyPaths".into(), Value::Null);
    if f.init {
        host.insert("Init".into(), json!(true));
    }

    let endpoints = run_endpoints(
        f.network.as_deref(),
        &f.network_alias,
        f.ip.as_deref().unwrap_or(""),
        f.ip6.as_deref().unwrap_or(""),
    )?;

    config.insert("HostConfig".into(), Value::Object(host));
    config.insert(
        "NetworkingConfig".into(),
        json!({ "EndpointsConfig": Value::Object(endpoints) }),
    );

    Ok(Spec {
        body: Value::Object(config),
        image,
        tty: f.tty,
        attach_stdin,
        attach_stdout,
        attach_stderr,
        auto_remove: f.rm,
        warnings,
    })
}

fn validate_pull(p: &str) -> Result<(), String> {
    match p {
        "always" | "missing" | "never" | "" => Ok(()),
        _ => Err(format!(
            "invalid pull option: '{p}': must be one of \"always\", \"missing\" or \"never\""
        )),
    }
}

/// The name docker shows in "Unable to find image 'X' locally": familiar, with its tag.
pub fn familiar_tagged(image: &str) -> String {
    let (name, tag) = split_reference(image);
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("index.docker.io/library/"))
        .or_else(|| name.strip_prefix("docker.io/"))
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(&name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    if image.contains('@') {
        return format!("{name}@{}", tag.unwrap_or_default());
    }
    format!("{name}:{}", tag.unwrap_or_else(|| "latest".into()))
}

/// docker's createContainer: create, and on "no such image" pull and create again.
async fn create_container(engine: &Engine, spec: &Spec, f: &ContainerFlags) -> Result<String> {
    for w in &spec.warnings {
        eprintln!("{w}");
    }
    let api = engine.api();
    let mut q = Vec::new();
    if let Some(n) = &f.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &f.platform {
        q.push(("platform", p.clone()));
    }
    let target = format!("/containers/create{}", query(&q));
    if f.pull == "always" {
        stream_pull(engine, &spec.image, f.platform.as_deref(), f.quiet, true).await?;
    }
    let created = match api.json("POST", &target, Body::Json(&spec.body)).await {
        Ok(v) => v,
        Err(e) if status_of(&e) == Some(404) && f.pull != "never" && f.pull != "always" => {
            if !f.quiet {
                eprintln!(
                    "Unable to find image '{}' locally",
                    familiar_tagged(&spec.image)
                );
            }
            stream_pull(engine, &spec.image, f.platform.as_deref(), f.quiet, true).await?;
            api.json("POST", &target, Body::Json(&spec.body)).await?
        }
        Err(e) => return Err(e),
    };
    let id = created
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(SkiffError::new("skiff: the agent created a container without an ID").into());
    }
    if let Some(ws) = created.get("Warnings").and_then(Value::as_array) {
        for w in ws.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(id)
}

fn console_size() -> (u16, u16) {
    term::size()
}

pub async fn create(engine: &Engine, a: &CreateArgs) -> Result<u8> {
    validate_pull(&a.flags.pull).map_err(|e| with_help(&e, "create", 125))?;
    let spec = build_spec(&a.flags, &a.image_and_command, false, console_size())
        .map_err(|e| with_help(&e, "create", 125))?;
    let id = create_container(engine, &spec, &a.flags).await?;
    crate::output::out_line!("{id}");
    Ok(0)
}

pub async fn run(engine: &Engine, a: &RunArgs) -> Result<u8> {
    validate_pull(&a.flags.pull).map_err(|e| with_help(&e, "run", 125))?;
    let spec = build_spec(&a.flags, &a.image_and_command, a.detach, console_size())
        .map_err(|e| with_help(&e, "run", 125))?;
    if a.detach && !a.flags.attach.is_empty() {
        return Err(SkiffError::with_code(
            "conflicting options: cannot specify both --attach and --detach",
            1,
        )
        .into());
    }
    if !a.detach && spec.tty && spec.attach_stdin && !term::stdin_is_tty() {
        return Err(SkiffError::with_code("the input device is not a TTY", 1).into());
    }
    let id = create_container(engine, &spec, &a.flags)
        .await
        .map_err(to_status_error)?;
    let api = engine.api();
    let _proxy = a.sig_proxy.then(|| SignalProxy::start(&api, &id));
    let start_target = format!("/containers/{}/start", seg(&id));

    let attach = spec.attach_stdin || spec.attach_stdout || spec.attach_stderr;
    if !attach {
        // Detached: the ID is the output, printed as docker does before the start returns.
        crate::output::out_line!("{id}");
        api.call("POST", &start_target, Body::None)
            .await
            .map_err(to_status_error)?;
        return Ok(0);
    }

    let mut q = vec![("stream", "1".to_string())];
    if spec.attach_stdin {
        q.push(("stdin", "1".into()));
    }
    if spec.attach_stdout {
        q.push(("stdout", "1".into()));
    }
    if spec.attach_stderr {
        q.push(("stderr", "1".into()));
    }
    if let Some(k) = a.detach_keys.as_ref().filter(|k| !k.is_empty()) {
        q.push(("detachKeys", k.clone()));
    }
    let hijacked = api
        .hijack(
            &format!("/containers/{}/attach{}", seg(&id), query(&q)),
            None,
        )
        .await?;
    let streaming = attach::start(
        hijacked,
        &StreamConfig {
            tty: spec.tty,
            stdin: spec.attach_stdin,
            stdout: spec.attach_stdout,
            stderr: spec.attach_stderr,
            detach_keys: a.detach_keys.clone(),
        },
    )?;
    let condition = if spec.auto_remove {
        "removed"
    } else {
        "next-exit"
    };
    let waiter = Waiter::register(&api, &id, Some(condition)).await;
    if let Err(e) = api.call("POST", &start_target, Body::None).await {
        streaming.close();
        if spec.auto_remove {
            let _ = waiter.outcome().await;
        }
        return Err(to_status_error(e));
    }
    let _resize = (spec.tty && term::stdout_is_tty())
        .then(|| monitor_size(&api, ResizeTarget::Container, &id, None));

    let outcome = follow(streaming, waiter, spec.attach_stdout || spec.attach_stderr).await?;
    Ok(match outcome {
        Some(o) => status_code(o),
        None => 0,
    })
}

/// Stream until the output ends (or, with no output attached, until the container exits),
/// then take the wait's outcome. `None` when the user detached.
pub async fn follow(
    mut streaming: attach::Streaming,
    waiter: Waiter,
    has_output: bool,
) -> Result<Option<WaitOutcome>> {
    enum First {
        Stream(Ended),
        Status(WaitOutcome),
    }
    let mut wait = Box::pin(waiter.outcome());
    let first = tokio::select! {
        end = streaming.next() => First::Stream(end),
        st = &mut wait, if !has_output => First::Status(st),
    };
    let outcome = match first {
        First::Stream(Ended::Detached) => {
            streaming.close();
            return Ok(None);
        }
        First::Stream(Ended::Failed(e)) => {
            streaming.close();
            return Err(SkiffError::with_code(e, 1).into());
        }
        First::Stream(Ended::Done) => {
            streaming.restore_terminal();
            wait.await
        }
        First::Status(st) => st,
    };
    streaming.close();
    Ok(Some(outcome))
}

/// The exit code for a wait outcome, with docker's message when the wait itself failed.
pub fn status_code(o: WaitOutcome) -> u8 {
    match o {
        WaitOutcome::Exited(code) => exit_code(code),
        WaitOutcome::WaitError(msg) => {
            eprintln!("Error waiting for container: {msg}");
            125
        }
        WaitOutcome::Failed(e) => {
            eprintln!("error waiting for container: {}", message_of(&e));
            125
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> ContainerFlags {
        ContainerFlags {
            pull: "missing".into(),
            restart: "no".into(),
            ..Default::default()
        }
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_unknown_flag_is_not_taken_for_the_image() {
        let e = build_spec(&flags(), &args(&["-X", "/a:/b", "busybox"]), false, (0, 0))
            .err()
            .unwrap();
        assert_eq!(e, "unknown shorthand flag: 'X' in -X");
        let e = build_spec(
            &flags(),
            &args(&["--frobnicate=1", "busybox"]),
            false,
            (0, 0),
        )
        .err()
        .unwrap();
        assert_eq!(e, "unknown flag: --frobnicate");
        // A lone "-" is not a flag.
        assert!(build_spec(&flags(), &args(&["-"]), false, (0, 0)).is_ok());
    }

    /// A body the docker 28 CLI sent (docker-api-capture-2.md), against ours for the same
    /// command line, field by field.
    fn assert_body(f: &ContainerFlags, image_and_command: &[&str], captured: &str) {
        let want: Value = serde_json::from_str(captured).unwrap();
        let got = build_spec(f, &args(image_and_command), false, (0, 0))
            .unwrap()
            .body;
        assert_eq!(got, want);
    }

    #[test]
    fn volume_bodies_match_the_capture() {
        // §05: docker run --name capanon -v /scratch busybox true
        let mut f = flags();
        f.volume = vec!["/scratch".into()];
        assert_body(&f, &["busybox", "true"], CAPTURE_05);
        // §06: docker run --rm -v /tmp/cap-bind:/src:ro busybox cat /src/f.txt
        let mut f = flags();
        f.rm = true;
        f.volume = vec!["/tmp/cap-bind:/src:ro".into()];
        assert_body(&f, &["busybox", "cat", "/src/f.txt"], CAPTURE_06);
        // §07: docker run --rm --mount type=bind,src=/tmp/cap-bind,dst=/m,readonly
        //      --mount type=tmpfs,dst=/t,tmpfs-size=1m busybox sh -c 'cat /m/f.txt; df /t'
        let mut f = flags();
        f.rm = true;
        f.mount = vec![
            "type=bind,src=/tmp/cap-bind,dst=/m,readonly".into(),
            "type=tmpfs,dst=/t,tmpfs-size=1m".into(),
        ];
        assert_body(
            &f,
            &["busybox", "sh", "-c", "cat /m/f.txt; df /t"],
            CAPTURE_07,
        );
    }

    const CAPTURE_05: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["true"],"Image":"busybox","Volumes":{"/scratch":{}},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;
    const CAPTURE_06: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["cat","/src/f.txt"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":["/tmp/cap-bind:/src:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;
    const CAPTURE_07: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["sh","-c","cat /m/f.txt; df /t"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"Mounts":[{"Type":"bind","Source":"/tmp/cap-bind","Target":"/m","ReadOnly":true},{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}}],"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;

    #[test]
    fn volume_flags_land_where_docker_puts_them() {
        let cwd = go_getwd().unwrap();
        let mut f = flags();
        f.volume = vec![
            "/scratch".into(),
            "data:/data:ro".into(),
            "./src:/src".into(),
            "/cache".into(),
        ];
        f.volumes_from = vec!["other:ro".into(), "third".into()];
        f.volume_driver = Some("local".into());
        f.mount = vec![
            "type=bind,src=./conf,dst=/etc/app,ro,bind-propagation=rslave".into(),
            "src=named,dst=/n,volume-nocopy,volume-label=k=v,volume-opt=o=bind".into(),
            "type=tmpfs,dst=/t,tmpfs-size=64k,tmpfs-mode=1777".into(),
        ];
        let spec = build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap();
        let b = &spec.body;
        let h = &b["HostConfig"];
        assert_eq!(b["Volumes"], json!({"/scratch": {}, "/cache": {}}));
        assert_eq!(
            h["Binds"],
            json!(["data:/data:ro", format!("{cwd}/src:/src")])
        );
        assert_eq!(h["VolumesFrom"], json!(["other:ro", "third"]));
        assert_eq!(h["VolumeDriver"], "local");
        assert_eq!(
            h["Mounts"],
            json!([
                {"Type": "bind", "Source": format!("{cwd}/conf"), "Target": "/etc/app",
                 "ReadOnly": true, "BindOptions": {"Propagation": "rslave"}},
                {"Type": "volume", "Source": "named", "Target": "/n", "VolumeOptions": {
                    "NoCopy": true, "Labels": {"k": "v"},
                    "DriverConfig": {"Options": {"o": "bind"}}}},
                {"Type": "tmpfs", "Target": "/t",
                 "TmpfsOptions": {"SizeBytes": 65536, "Mode": 1023}}
            ])
        );
        assert!(spec.warnings.is_empty());

        // None given: what docker sends without them.
        let b = build_spec(&flags(), &args(&["img"]), false, (0, 0))
            .unwrap()
            .body;
        assert_eq!(b["Volumes"], json!({}));
        assert_eq!(b["HostConfig"]["Binds"], Value::Null);
        assert_eq!(b["HostConfig"]["VolumesFrom"], Value::Null);
        assert_eq!(b["HostConfig"]["VolumeDriver"], "");
        assert!(b["HostConfig"].get("Mounts").is_none());
    }

    #[test]
    fn bad_mount_flags_fail_before_anything_is_created() {
        let mut f = flags();
        f.mount = vec!["type=bind".into()];
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "invalid argument \"type=bind\" for \"--mount\" flag: target is required"
        );
        let mut f = flags();
        f.volume = vec!["/a:/b:ro:x".into()];
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
        let mut f = flags();
        f.mount = vec!["type=bind,src=/a,dst=/b,bind-nonrecursive=1".into()];
        let spec = build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap();
        assert_eq!(spec.warnings.len(), 1);
        assert_eq!(
            spec.body["HostConfig"]["Mounts"][0]["BindOptions"],
            json!({"NonRecursive": true})
        );
    }

    #[test]
    fn default_body_matches_docker() {
        let spec = build_spec(&flags(), &args(&["busybox", "echo", "hi"]), false, (0, 0)).unwrap();
        let b = &spec.body;
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Env"], Value::Null);
        assert_eq!(b["Entrypoint"], Value::Null);
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["AttachStderr"], true);
        assert_eq!(b["AttachStdin"], false);
        assert_eq!(b["HostConfig"]["NetworkMode"], "default");
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        assert_eq!(b["HostConfig"]["MemorySwappiness"], -1);
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
        assert!(b.get("ExposedPorts").is_none());
        assert!(b["HostConfig"].get("Tmpfs").is_none());
    }

    #[test]
    fn flags_land_where_docker_puts_them() {
        let mut f = flags();
        f.memory = Some("32m".into());
        f.cpus = Some("1.5".into());
        f.pids_limit = Some(50);
        f.tmpfs = vec!["/run:rw,size=64m".into(), "/tmp".into()];
        f.restart = "on-failure:2".into();
        f.interactive = true;
        f.tty = true;
        f.entrypoint = Some(String::new());
        f.publish = vec!["127.0.0.1:8081:80".into()];
        f.label = vec!["a=b".into(), "c".into()];
        f.env = vec!["X=1".into()];
        f.init = true;
        let spec = build_spec(&f, &args(&["img"]), false, (40, 120)).unwrap();
        let b = &spec.body;
        let h = &b["HostConfig"];
        assert_eq!(h["Memory"], 32 << 20);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["PidsLimit"], 50);
        assert_eq!(h["Tmpfs"], json!({"/run": "rw,size=64m", "/tmp": ""}));
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 2})
        );
        assert_eq!(h["ConsoleSize"], json!([40, 120]));
        assert_eq!(h["Init"], true);
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]})
        );
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["Labels"], json!({"a": "b", "c": ""}));
        assert_eq!(b["Env"], json!(["X=1"]));
    }

    #[test]
    fn health_flags_land_where_docker_puts_them() {
        let body = |f: &ContainerFlags| build_spec(f, &args(&["img"]), false, (0, 0));
        assert!(body(&flags()).unwrap().body.get("Healthcheck").is_none());
        let mut f = flags();
        f.health_cmd = Some("test -e /ok".into());
        f.health_interval = Some("1s".into());
        f.health_timeout = Some("500ms".into());
        f.health_retries = Some(2);
        f.health_start_period = Some("1m".into());
        f.health_start_interval = Some("2s".into());
        assert_eq!(
            body(&f).unwrap().body["Healthcheck"],
            json!({
                "Test": ["CMD-SHELL", "test -e /ok"],
                "Interval": 1_000_000_000i64,
                "Timeout": 500_000_000,
                "StartPeriod": 60_000_000_000i64,
                "StartInterval": 2_000_000_000i64,
                "Retries": 2,
            })
        );
        // Settings without a command keep the image's check.
        let mut f = flags();
        f.health_interval = Some("1s".into());
        assert_eq!(
            body(&f).unwrap().body["Healthcheck"],
            json!({"Interval": 1_000_000_000i64})
        );
        let mut f = flags();
        f.no_healthcheck = true;
        assert_eq!(
            body(&f).unwrap().body["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        f.health_retries = Some(1);
        assert_eq!(
            body(&f).unwrap_err(),
            "--no-healthcheck conflicts with --health-* options"
        );
        let mut f = flags();
        f.health_interval = Some("-1s".into());
        assert_eq!(
            body(&f).unwrap_err(),
            "--health-interval cannot be negative"
        );
        let mut f = flags();
        f.health_retries = Some(-1);
        assert_eq!(body(&f).unwrap_err(), "--health-retries cannot be negative");
        let mut f = flags();
        f.health_timeout = Some("soon".into());
        assert_eq!(
            body(&f).unwrap_err(),
            "invalid argument \"soon\" for \"--health-timeout\" flag: time: invalid duration \"soon\""
        );
    }

    #[test]
    fn network_flags_land_where_docker_puts_them() {
        let mut f = flags();
        f.network = Some("mynet".into());
        f.network_alias = vec!["db".into(), "sql".into()];
        f.ip = Some("172.30.0.9".into());
        f.dns = vec![" 8.8.8.8".into(), "2001:DB8::1".into()];
        f.dns_search = vec!["example.com.".into()];
        f.dns_option = vec!["ndots:2".into()];
        f.add_host = vec!["db=10.0.0.2".into(), "v6:[::1]".into()];
        let b = build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap().body;
        let h = &b["HostConfig"];
        assert_eq!(h["NetworkMode"], "mynet");
        assert_eq!(h["Dns"], json!(["8.8.8.8", "2001:db8::1"]));
        assert_eq!(h["DnsSearch"], json!(["example.com"]));
        assert_eq!(h["DnsOptions"], json!(["ndots:2"]));
        assert_eq!(h["ExtraHosts"], json!(["db:10.0.0.2", "v6:::1"]));
        let eps = &b["NetworkingConfig"]["EndpointsConfig"];
        assert_eq!(eps.as_object().map(|m| m.len()), Some(1));
        assert_eq!(eps["mynet"]["Aliases"], json!(["db", "sql"]));
        assert_eq!(
            eps["mynet"]["IPAMConfig"],
            json!({"IPv4Address": "172.30.0.9"})
        );

        // Unset, the DNS lists are empty lists and ExtraHosts null, as docker sends them.
        let b = build_spec(&flags(), &args(&["img"]), false, (0, 0))
            .unwrap()
            .body;
        assert_eq!(b["HostConfig"]["Dns"], json!([]));
        assert_eq!(b["HostConfig"]["DnsSearch"], json!([]));
        assert_eq!(b["HostConfig"]["DnsOptions"], json!([]));
        assert_eq!(b["HostConfig"]["ExtraHosts"], Value::Null);

        // --ip without --network goes on the "default" endpoint; the engine decides.
        let mut f = flags();
        f.ip = Some("172.17.0.9".into());
        let b = build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap().body;
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["default"]["IPAMConfig"],
            json!({"IPv4Address": "172.17.0.9"})
        );

        // docker refuses aliases on the default network before creating anything.
        let mut f = flags();
        f.network_alias = vec!["db".into()];
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "network-scoped aliases are only supported for user-defined networks"
        );
        let mut f = flags();
        f.dns = vec!["dns.example".into()];
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "invalid argument \"dns.example\" for \"--dns\" flag: IP address is not correctly formatted: dns.example"
        );
        let mut f = flags();
        f.add_host = vec!["nohost".into()];
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "invalid argument \"nohost\" for \"--add-host\" flag: bad format for add-host: \"nohost\""
        );
        let mut f = flags();
        f.dns_search = vec!["-x.com".into()];
        assert!(build_spec(&f, &args(&["img"]), false, (0, 0))
            .unwrap_err()
            .ends_with("-x.com is not a valid domain"));
    }

    #[test]
    fn host_network_keeps_published_ports() {
        // docker sends -p as usual with --network host; the engine warns they are discarded.
        let mut f = flags();
        f.network = Some("host".into());
        f.publish = vec!["8080:80".into()];
        let b = build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap().body;
        assert_eq!(b["HostConfig"]["NetworkMode"], "host");
        assert_eq!(
            b["HostConfig"]["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"], json!({}));
    }

    #[test]
    fn detach_clears_attachments() {
        let mut f = flags();
        f.interactive = true;
        let spec = build_spec(&f, &args(&["img"]), true, (0, 0)).unwrap();
        assert!(!spec.attach_stdin && !spec.attach_stdout && !spec.attach_stderr);
        assert_eq!(spec.body["StdinOnce"], false);
        assert_eq!(spec.body["OpenStdin"], true);
    }

    #[test]
    fn bad_flags_fail_before_anything_is_created() {
        let mut f = flags();
        f.memory = Some("lots".into());
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        let mut f = flags();
        f.cpus = Some("x".into());
        assert!(build_spec(&f, &args(&["img"]), false, (0, 0))
            .unwrap_err()
            .contains("failed to parse x as a rational number"));
        let mut f = flags();
        f.restart = "sometimes".into();
        assert!(build_spec(&f, &args(&["img"]), false, (0, 0))
            .unwrap_err()
            .starts_with("invalid restart policy"));
        let mut f = flags();
        f.restart = "always".into();
        f.rm = true;
        assert_eq!(
            build_spec(&f, &args(&["img"]), false, (0, 0)).unwrap_err(),
            "conflicting options: cannot specify both --restart and --rm"
        );
        let mut f = flags();
        f.env_file = vec!["/nonexistent/skiff.env".into()];
        assert!(build_spec(&f, &args(&["img"]), false, (0, 0))
            .unwrap_err()
            .contains("no such file or directory"));
        let mut f = flags();
        f.attach = vec!["bogus".into()];
        assert!(build_spec(&f, &args(&["img"]), false, (0, 0))
            .unwrap_err()
            .contains("valid streams are STDIN, STDOUT and STDERR"));
        assert!(validate_pull("sometimes").is_err());
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar_tagged("busybox"), "busybox:latest");
        assert_eq!(
            familiar_tagged("docker.io/library/busybox:1.36"),
            "busybox:1.36"
        );
        assert_eq!(
            familiar_tagged("127.0.0.1:5000/layered:latest"),
            "127.0.0.1:5000/layered:latest"
        );
        assert_eq!(familiar_tagged("a/b@sha256:00"), "a/b@sha256:00");
    }

    #[test]
    fn run_failures_map_to_docker_codes() {
        let code = |m: &str| {
            let e = to_status_error(SkiffError::daemon(m).into());
            e.downcast_ref::<SkiffError>().map(|s| s.code)
        };
        assert_eq!(
            code("Error response from daemon: exec: \"nope\": executable file not found in $PATH"),
            Some(127)
        );
        assert_eq!(
            code("Error response from daemon: permission denied"),
            Some(126)
        );
        assert_eq!(code("Error response from daemon: No such image"), Some(125));
    }
}
