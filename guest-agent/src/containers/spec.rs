//! The OCI runtime spec (bundle `config.json`) handed to libcontainer for a container.
//!
//! Written as JSON rather than through oci-spec's builders: the spec is data, and seeing it
//! whole, shaped like the file libcontainer reads, is clearer than hundreds of builder calls.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::record::Record;
use super::security;
use super::user::ResolvedUser;

/// docker's default PATH when neither image nor user sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where `--init` puts its init inside the container (docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";
/// A statically linked init from the host (Debian's `tini` package), for `--init`.
pub const INIT_BINARY: &str = "/usr/bin/tini-static";

/// The container's cgroup below each hierarchy root.
pub fn cgroup_path(id: &str) -> String {
    format!("/skiff/{id}")
}

/// Creates the parent of every container's cgroup on a cgroup v2 host, once, at agent start.
/// libcontainer 0.7 creates each level of a v2 path by checking then calling mkdir, so two
/// containers created at once in a fresh VM raced on `/sys/fs/cgroup/skiff` and one failed
/// with EEXIST. (Its v1 manager uses create_dir_all, which tolerates the race.)
pub fn prepare_cgroup_parent() {
    use libcgroups::common::{get_cgroup_setup, CgroupSetup, DEFAULT_CGROUP_ROOT};
    if !matches!(get_cgroup_setup(), Ok(CgroupSetup::Unified)) {
        return;
    }
    let parent = Path::new(DEFAULT_CGROUP_ROOT).join(cgroup_path("").trim_matches('/'));
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // libcontainer will fail the first create with the same error, in context.
        Err(e) => tracing::warn!("cannot create {}: {e}", parent.display()),
    }
}

pub struct SpecInput<'a> {
    pub rec: &'a Record,
    pub rootfs: &'a Path,
    pub dir: &'a Path,
    pub user: &'a ResolvedUser,
    pub hostname: &'a str,
    /// The network namespace to join; None shares the host's (`--network host`).
    pub netns: Option<&'a Path>,
    /// The container's volumes, binds and tmpfs mounts, parents first.
    pub mounts: Vec<Value>,
}

/// The environment as the process sees it: image + user (user wins per key), then PATH,
/// HOSTNAME and TERM as docker adds them.
pub fn environment(rec: &Record, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.to_string());
    };
    set(&format!("HOSTNAME={hostname}"));
    for kv in &rec.link_env {
        set(kv);
    }
    for kv in rec.config.env.iter().flatten() {
        set(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if rec.tty() && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

/// `HOME` from the user's passwd entry where the image and the user left it unset or empty,
/// as runc sets it. Set here rather than left to libcontainer, which looks the user up with
/// glibc's NSS inside the container's root: that follows the image's `nsswitch.conf`, and
/// the lookup cost every start and exec.
pub fn set_home(env: &mut Vec<String>, home: &str) {
    env.retain(|e| e != "HOME=" && e != "HOME");
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
}

pub fn build(input: &SpecInput) -> Result<Value> {
    let rec = input.rec;
    let hc = &rec.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let opts = super::security_opt::parse(hc.security_opt.as_deref().unwrap_or_default())?;
    let caps = security::resolve_caps(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        privileged,
    )?;

    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let mut mounts = base_mounts(privileged);
    if hc.init.unwrap_or(false) {
        mounts.push(json!({
            "destination": INIT_PATH, "type": "bind", "source": INIT_BINARY,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }));
        args.insert(0, "--".into());
        args.insert(0, INIT_PATH.into());
    }
    for (file, target) in [
        ("resolv.conf", "/etc/resolv.conf"),
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
    ] {
        mounts.push(json!({
            "destination": target, "type": "bind",
            "source": input.dir.join(file),
            "options": ["rbind", "rprivate"],
        }));
    }
    for (dest, opts) in hc.tmpfs.iter().flatten() {
        let mut o = vec!["noexec".to_string(), "nosuid".into(), "nodev".into()];
        o.extend(
            opts.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
        );
        mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    mounts.extend(input.mounts.iter().cloned());

    let cwd = rec
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let (nofile_soft, nofile_hard) = nofile_limits();
    let mut env = environment(rec, input.hostname);
    set_home(&mut env, &input.user.home);
    let mut process = json!({
        "terminal": rec.tty(),
        "user": {
            "uid": input.user.uid,
            "gid": input.user.gid,
            "additionalGids": input.user.additional_gids,
        },
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_hard, "soft": nofile_soft}],
        // noNewPrivileges stays absent, not false: libcontainer 0.7 loads seccomp while it
        // still holds CAP_SYS_ADMIN only when the field is absent (with `false` it loads it
        // after dropping capabilities, and the kernel refuses).
    });
    if opts.no_new_privileges {
        // With `true` libcontainer loads seccomp after setting the flag, which the kernel
        // allows without CAP_SYS_ADMIN.
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(adj) = hc.oom_score_adj.filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }
    if let Some(size) = hc
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
    {
        process["consoleSize"] = json!({"height": size[0], "width": size[1]});
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if let Some(ns) = input.netns {
        namespaces.push(json!({"type": "network", "path": ns}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroup_path(&rec.id),
        "resources": resources(rec)?,
    });
    if !privileged && !opts.systempaths_unconfined {
        linux["maskedPaths"] = json!(security::masked_paths());
        linux["readonlyPaths"] = json!(security::READONLY_PATHS);
    }
    if !privileged && !opts.seccomp_unconfined {
        let seccomp = security::default_seccomp(&caps);
        linux["seccomp"] = serde_json::to_value(seccomp).context("encoding seccomp profile")?;
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": hc.readonly_rootfs.unwrap_or(false)},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    Ok(spec)
}

fn base_mounts(privileged: bool) -> Vec<Value> {
    let sys_opts = if privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": sys_opts}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ]
}

/// Memory, CPU and pids limits, and docker's device allowlist.
fn resources(rec: &Record) -> Result<Value> {
    let hc = &rec.host_config;
    let mut r = json!({});
    let memory = hc.memory.unwrap_or(0);
    if memory > 0 {
        // docker: without --memory-swap a container may use as much swap as memory.
        let swap = match hc.memory_swap.unwrap_or(0) {
            0 => memory * 2,
            s => s,
        };
        r["memory"] = json!({"limit": memory, "swap": swap});
    }
    let nano = hc.nano_cpus.unwrap_or(0);
    let mut cpu = json!({});
    if nano > 0 {
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!(nano / 10_000);
    } else if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        // --cpu-quota/--cpu-period (or a `docker update` of them).
        cpu["period"] = json!(hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000));
        cpu["quota"] = json!(q);
    }
    if let Some(shares) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(shares);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p > 0) {
        r["pids"] = json!({"limit": p});
    }
    r["devices"] = if hc.privileged.unwrap_or(false) {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        let dev = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": access});
        json!([
            {"allow": false, "access": "rwm"},
            dev("c", None, None, "m"),
            dev("b", None, None, "m"),
            dev("c", Some(1), Some(3), "rwm"),   // null
            dev("c", Some(1), Some(5), "rwm"),   // zero
            dev("c", Some(1), Some(7), "rwm"),   // full
            dev("c", Some(1), Some(8), "rwm"),   // random
            dev("c", Some(1), Some(9), "rwm"),   // urandom
            dev("c", Some(5), Some(0), "rwm"),   // tty
            dev("c", Some(5), Some(2), "rwm"),   // ptmx
            dev("c", Some(136), None, "rwm"),    // pty slaves
            dev("c", Some(10), Some(200), "rwm"), // tun
        ])
    };
    Ok(r)
}

/// The open-files limit: what the agent itself may grant (no CAP_SYS_RESOURCE is assumed).
fn nofile_limits() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 4096);
    }
    let hard = lim.rlim_max.min(1 << 20);
    (hard, hard)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use oci_spec::runtime::{LinuxNamespaceType, Spec};

    use super::*;
    use crate::containers::record::sample_record;

    fn spec_of(rec: &Record, netns: Option<&Path>) -> Spec {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![1000, 27],
            home: "/home/app".into(),
        };
        let v = build(&SpecInput {
            rec,
            rootfs: Path::new("/var/lib/skiff/c/rootfs"),
            dir: Path::new("/var/lib/skiff/c"),
            user: &user,
            hostname: "web",
            netns,
            mounts: vec![],
        })
        .unwrap();
        // The runtime reads the spec with these types: what they reject, it would too.
        serde_json::from_value(v).expect("the spec is a valid OCI runtime spec")
    }

    #[test]
    fn home_comes_from_passwd_unless_set() {
        let mut env = vec!["PATH=/bin".to_string()];
        set_home(&mut env, "/root");
        assert_eq!(env, ["PATH=/bin", "HOME=/root"]);
        let mut env = vec!["HOME=/data".to_string()];
        set_home(&mut env, "/root");
        assert_eq!(env, ["HOME=/data"]);
        // Empty counts as unset, as runc has it.
        let mut env = vec!["HOME=".to_string(), "A=1".to_string()];
        set_home(&mut env, "/");
        assert_eq!(env, ["A=1", "HOME=/"]);
    }

    #[test]
    fn a_confined_containers_spec_is_an_oci_spec_with_what_we_asked() {
        let mut rec = sample_record();
        rec.config.env = Some(vec!["A=1".into(), "PATH=/bin".into()]);
        rec.config.working_dir = Some("/srv".into());
        rec.host_config.cap_add = Some(vec!["NET_ADMIN".into()]);
        rec.host_config.cap_drop = Some(vec!["CHOWN".into()]);
        rec.host_config.tmpfs = Some(HashMap::from([("/scratch".into(), "size=1m".into())]));
        rec.host_config.memory = Some(64 << 20);
        rec.host_config.readonly_rootfs = Some(true);
        rec.host_config.init = Some(true);
        rec.host_config.oom_score_adj = Some(500);
        let netns = Path::new("/run/skiff/netns/c");
        let spec = spec_of(&rec, Some(netns));

        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap()[0], INIT_PATH);
        assert!(p.args().as_ref().unwrap().ends_with(&[
            "/bin/sh".into(),
            "-c".into(),
            "echo hi".into()
        ]));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"A=1".to_string()) && env.contains(&"PATH=/bin".to_string()));
        assert_eq!(env.last().map(String::as_str), Some("HOME=/home/app"));
        assert_eq!(p.cwd(), &PathBuf::from("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[1000, 27]);
        assert_eq!(p.oom_score_adj(), Some(500));
        let caps = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        let names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        assert!(names.contains(&"NET_ADMIN".into()), "{names:?}");
        assert!(!names.contains(&"CHOWN".into()), "{names:?}");
        assert!(!names.contains(&"SYS_ADMIN".into()), "{names:?}");
        let nofile = &p.rlimits().as_ref().unwrap()[0];
        assert!(nofile.soft() <= nofile.hard());

        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), &PathBuf::from("/var/lib/skiff/c/rootfs"));
        assert_eq!(root.readonly(), Some(true));
        assert_eq!(spec.hostname().as_deref(), Some("web"));

        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(net.path().as_deref(), Some(netns));
        for t in [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
        ] {
            assert!(ns.iter().any(|n| n.typ() == t), "{t:?} namespace missing");
        }
        assert!(
            linux.seccomp().is_some(),
            "the default seccomp profile applies"
        );
        assert!(!linux.masked_paths().as_ref().unwrap().is_empty());
        let mem = linux
            .resources()
            .as_ref()
            .unwrap()
            .memory()
            .as_ref()
            .unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(128 << 20)));

        let mounts = spec.mounts().as_ref().unwrap();
        let at = |d: &str| mounts.iter().find(|m| m.destination() == Path::new(d));
        let scratch = at("/scratch").expect("the --tmpfs mount");
        assert_eq!(scratch.typ().as_deref(), Some("tmpfs"));
        assert!(scratch
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1m".to_string()));
        assert_eq!(
            at(INIT_PATH).unwrap().source().as_deref(),
            Some(Path::new(INIT_BINARY))
        );
        assert!(at("/proc").is_some() && at("/dev").is_some());
        assert!(spec.hooks().is_none());
    }

    #[test]
    fn a_privileged_host_network_spec_is_an_oci_spec_too() {
        let mut rec = sample_record();
        rec.host_config.privileged = Some(true);
        let spec = spec_of(&rec, None);
        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert!(
            linux.seccomp().is_none(),
            "privileged runs unconfined, as docker"
        );
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let names: Vec<String> = caps
            .bounding()
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(names.contains(&"SYS_ADMIN".into()));
    }
}
