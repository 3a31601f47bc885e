//! A container's mounts as docker reads them from a create request — `-v` strings
//! (`HostConfig.Binds`), `--mount` objects (`HostConfig.Mounts`), the config's and the image's
//! `Volumes` — with docker's rules and messages (moby's `volume/mounts` parser), and what each
//! becomes in the OCI spec. Pure: what exists on disk is checked by the engine.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use bollard::models::{Mount, MountBindOptionsPropagationEnum, MountType as DockerType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    #[default]
    Volume,
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, as its record keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountType,
    pub destination: String,
    /// A bind's host path, as the user's host names it.
    #[serde(default)]
    pub source: String,
    /// A volume's name; empty until the engine makes an anonymous one.
    #[serde(default)]
    pub name: String,
    /// Given by name by the user: `rm -v` keeps it.
    #[serde(default)]
    pub named: bool,
    pub rw: bool,
    /// The `-v` mode as given (`ro`, `ro,z`…); `z` for a named volume with none (docker's).
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub propagation: String,
    /// A new volume starts with the image's files at its destination (docker's copy-up).
    #[serde(default)]
    pub copy_data: bool,
    /// A `-v` bind's missing host path is created; a `--mount` one is an error.
    #[serde(default)]
    pub create_source: bool,
    #[serde(default)]
    pub non_recursive: bool,
    /// What a `--mount` gives a volume it creates.
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub volume_options: BTreeMap<String, String>,
    #[serde(default)]
    pub subpath: String,
    #[serde(default)]
    pub tmpfs_size: i64,
    #[serde(default)]
    pub tmpfs_mode: u32,
}

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];
const DEFAULT_PROPAGATION: &str = "rprivate";

/// docker's check of a `-v` mode: comma-separated, at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut seen = [0u8; 4];
    for w in mode.split(',') {
        let kind = match w {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            "nocopy" => 2,
            p if PROPAGATIONS.contains(&p) => 3,
            _ => return false,
        };
        seen[kind] += 1;
        if seen[kind] > 1 {
            return false;
        }
    }
    true
}

fn mode_has(mode: &str, w: &str) -> bool {
    mode.split(',').any(|m| m == w)
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn invalid_config(kind: MountType, why: &str) -> String {
    format!("invalid mount config for type \"{}\": {why}", kind.as_str())
}

/// Whether `path` is relative and its `..`s never climb above where it starts (Go's
/// `filepath.IsLocal`, docker's test for a volume's subpath). Links on the way are judged
/// when the path is opened, in the volume.
fn stays_inside(path: &str) -> bool {
    if path.starts_with('/') {
        return false;
    }
    let mut depth = 0usize;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

/// A clean absolute destination, or docker's complaint.
fn destination(kind: MountType, target: &str) -> Result<String, String> {
    if target.is_empty() {
        return Err(invalid_config(kind, "field Target must not be empty"));
    }
    if !target.starts_with('/') {
        return Err(invalid_config(
            kind,
            &format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    let clean = clean(target);
    if clean == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    // The container's own kernel filesystems: what is mounted over them is not what the
    // container's tools expect, and runc refuses the same.
    for own in ["/proc", "/sys"] {
        if clean == own || clean.starts_with(&format!("{own}/")) {
            return Err(format!(
                "invalid mount config: {clean} is the container's own {own}; a mount cannot go there (mount it elsewhere, or use --privileged to see the host's devices)"
            ));
        }
    }
    Ok(clean)
}

/// `filepath.Clean` for absolute paths.
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// One `-v` string (`HostConfig.Binds`): `DEST`, `SRC:DEST` or `SRC:DEST:MODE`, where an
/// absolute SRC is a host path and anything else a volume's name.
pub fn parse_bind(raw: &str) -> Result<MountPoint, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts[..] {
        [d] => ("", d, ""),
        // `/data:ro` names no source: a mode alone with a destination is no volume.
        [_, m] if valid_mode(m) && !m.is_empty() => return Err(invalid_spec(raw)),
        [s, d] => (s, d, ""),
        [s, d, m] => (s, d, m),
        _ => return Err(invalid_spec(raw)),
    };
    if !valid_mode(mode) {
        return Err(format!("invalid mode: {mode}"));
    }
    let kind = if source.starts_with('/') {
        MountType::Bind
    } else {
        MountType::Volume
    };
    if source.is_empty() && parts.len() > 1 {
        return Err(invalid_spec(raw));
    }
    let destination = destination(kind, target)?;
    let propagation = mode
        .split(',')
        .find(|m| PROPAGATIONS.contains(m))
        .unwrap_or_default();
    if kind == MountType::Volume && !propagation.is_empty() {
        return Err(invalid_config(
            kind,
            "field BindOptions must not be specified",
        ));
    }
    let mut mp = MountPoint {
        kind,
        destination,
        rw: !mode_has(mode, "ro"),
        mode: mode.to_string(),
        ..Default::default()
    };
    match kind {
        MountType::Bind => {
            mp.source = clean(source);
            mp.create_source = true;
            mp.propagation = if propagation.is_empty() {
                DEFAULT_PROPAGATION.into()
            } else {
                propagation.into()
            };
        }
        _ => {
            mp.name = source.to_string();
            mp.named = !source.is_empty();
            mp.copy_data = !mode_has(mode, "nocopy");
            if mp.named && mp.mode.is_empty() {
                mp.mode = "z".into();
            }
        }
    }
    Ok(mp)
}

/// One `--mount` (`HostConfig.Mounts`).
pub fn parse_mount(m: &Mount) -> Result<MountPoint, String> {
    let kind = match m.typ {
        Some(DockerType::BIND) => MountType::Bind,
        Some(DockerType::VOLUME) | None => MountType::Volume,
        Some(DockerType::TMPFS) => MountType::Tmpfs,
        Some(other) => {
            return Err(format!(
            "invalid mount config for type \"{other}\": skiff mounts bind, volume and tmpfs only"
        ))
        }
    };
    let source = m.source.clone().unwrap_or_default();
    let destination = destination(kind, m.target.as_deref().unwrap_or_default())?;
    let readonly = m.read_only.unwrap_or(false);
    let has_bind_opts = m.bind_options.is_some();
    let has_volume_opts = m.volume_options.is_some();
    let has_tmpfs_opts = m.tmpfs_options.is_some();
    let refuse = |field: &str| {
        Err(invalid_config(
            kind,
            &format!("field {field} must not be specified"),
        ))
    };
    let mut mp = MountPoint {
        kind,
        destination,
        rw: !readonly,
        ..Default::default()
    };
    match kind {
        MountType::Bind => {
            if has_volume_opts {
                return refuse("VolumeOptions");
            }
            if has_tmpfs_opts {
                return refuse("TmpfsOptions");
            }
            if source.is_empty() {
                return Err(invalid_config(kind, "field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(invalid_config(
                    kind,
                    &format!("invalid mount path: '{source}' mount path must be absolute"),
                ));
            }
            mp.source = clean(&source);
            let opts = m.bind_options.clone().unwrap_or_default();
            mp.propagation = match opts.propagation {
                None | Some(MountBindOptionsPropagationEnum::EMPTY) => DEFAULT_PROPAGATION.into(),
                Some(p) => p.to_string(),
            };
            mp.non_recursive = opts.non_recursive.unwrap_or(false);
            // API 1.42's `CreateMountpoint`: a missing source is made, as for `-v`.
            mp.create_source = opts.create_mountpoint.unwrap_or(false);
            // Our read-only binds are read-only at the top only (what `ReadOnlyNonRecursive`
            // asks for); forcing it down every submount is not done, so it is refused.
            if opts.read_only_force_recursive.unwrap_or(false) {
                return Err(invalid_config(
                    kind,
                    "bind-recursive=readonly (ReadOnlyForceRecursive) is not supported by skiff yet: use readonly, which makes the mount itself read-only",
                ));
            }
        }
        MountType::Volume => {
            if has_bind_opts {
                return refuse("BindOptions");
            }
            if has_tmpfs_opts {
                return refuse("TmpfsOptions");
            }
            let opts = m.volume_options.clone().unwrap_or_default();
            mp.name = source.clone();
            mp.named = !source.is_empty();
            mp.copy_data = !opts.no_copy.unwrap_or(false);
            mp.volume_labels = opts.labels.unwrap_or_default().into_iter().collect();
            if let Some(dc) = opts.driver_config {
                if let Some(d) = dc.name.filter(|d| !d.is_empty() && d != "local") {
                    return Err(format!(
                        "error looking up volume plugin {d}: plugin \"{d}\" not found: skiff has the local driver only"
                    ));
                }
                mp.volume_options = dc.options.unwrap_or_default().into_iter().collect();
            }
            mp.subpath = opts.subpath.unwrap_or_default();
            if !mp.subpath.is_empty() && !stays_inside(&mp.subpath) {
                return Err(invalid_config(
                    kind,
                    "subpath must be a relative path within the volume",
                ));
            }
        }
        MountType::Tmpfs => {
            if has_bind_opts {
                return refuse("BindOptions");
            }
            if has_volume_opts {
                return refuse("VolumeOptions");
            }
            if !source.is_empty() {
                return Err(invalid_config(kind, "field Source must not be specified"));
            }
            let opts = m.tmpfs_options.clone().unwrap_or_default();
            mp.tmpfs_size = opts.size_bytes.unwrap_or(0);
            if mp.tmpfs_size < 0 {
                return Err(invalid_config(
                    kind,
                    "invalid tmpfs size: it must not be negative",
                ));
            }
            mp.tmpfs_mode = opts.mode.unwrap_or(0) as u32;
            // API 1.46's extra tmpfs options (`exec`…) are not applied: refused, not dropped.
            if opts.options.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(invalid_config(
                    kind,
                    "tmpfs options other than size and mode are not supported by skiff yet",
                ));
            }
        }
    }
    Ok(mp)
}

/// `--volumes-from NAME[:ro|rw]`: the container's name and whether to force a mode.
pub fn parse_volumes_from(raw: &str) -> Result<(String, Option<bool>), String> {
    match raw.split_once(':') {
        None => Ok((raw.to_string(), None)),
        Some((name, "rw")) => Ok((name.to_string(), Some(true))),
        Some((name, "ro")) => Ok((name.to_string(), Some(false))),
        Some((_, m)) => Err(format!("invalid mode: {m}")),
    }
}

/// Every mount of a new container, in docker's order of precedence: what `--volumes-from`
/// brings, overridden by `-v`, then `--mount` (which may not meet a `-v` at the same place),
/// then an anonymous volume for each of `volumes` (the config's and the image's) nobody
/// mounted. Sorted so that a parent is mounted before what goes inside it.
pub fn resolve(
    from: Vec<MountPoint>,
    binds: &[String],
    mounts: &[Mount],
    volumes: &[String],
) -> Result<Vec<MountPoint>, String> {
    let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
    for mp in from {
        by_dest.insert(mp.destination.clone(), mp);
    }
    let mut given: Vec<String> = Vec::new();
    for raw in binds {
        let mp = parse_bind(raw)?;
        if given.contains(&mp.destination) {
            return Err(format!("Duplicate mount point: {}", mp.destination));
        }
        given.push(mp.destination.clone());
        by_dest.insert(mp.destination.clone(), mp);
    }
    for m in mounts {
        let mp = parse_mount(m)?;
        if given.contains(&mp.destination) {
            return Err(format!("Duplicate mount point: {}", mp.destination));
        }
        given.push(mp.destination.clone());
        by_dest.insert(mp.destination.clone(), mp);
    }
    for v in volumes {
        // A `-v /data` that reached the config keeps docker's form: the destination alone.
        let mp = parse_bind(v)?;
        if mp.kind != MountType::Volume || mp.named {
            return Err(invalid_spec(v));
        }
        by_dest.entry(mp.destination.clone()).or_insert(mp);
    }
    let mut out: Vec<MountPoint> = by_dest.into_values().collect();
    out.sort_by_key(|m| {
        (
            Path::new(&m.destination).components().count(),
            m.destination.clone(),
        )
    });
    Ok(out)
}

/// The mount point in the OCI spec, from where its source is on this machine.
pub fn oci_mount(mp: &MountPoint, source: &Path, force_ro: bool) -> Value {
    let mut options: Vec<String> = Vec::new();
    match mp.kind {
        MountType::Tmpfs => {
            options.extend(["nosuid", "nodev", "noexec"].map(String::from));
            if mp.tmpfs_size > 0 {
                options.push(format!("size={}", mp.tmpfs_size));
            }
            if mp.tmpfs_mode != 0 {
                options.push(format!("mode={:o}", mp.tmpfs_mode));
            }
            if !mp.rw {
                options.push("ro".into());
            }
            return json!({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs", "options": options});
        }
        MountType::Bind if mp.non_recursive => options.push("bind".into()),
        _ => options.push("rbind".into()),
    }
    options.push(if mp.propagation.is_empty() {
        DEFAULT_PROPAGATION.into()
    } else {
        mp.propagation.clone()
    });
    if !mp.rw || force_ro {
        options.push("ro".into());
    }
    json!({"destination": mp.destination, "type": "bind", "source": source, "options": options})
}

/// The mount as `docker inspect` shows it under `Mounts`; `volume_source` is where a
/// volume's files are.
pub fn inspect_view(mp: &MountPoint, volume_source: impl Fn(&str) -> PathBuf) -> Value {
    match mp.kind {
        MountType::Volume => json!({
            "Type": "volume", "Name": mp.name,
            "Source": volume_source(&mp.name),
            "Destination": mp.destination, "Driver": "local",
            "Mode": mp.mode, "RW": mp.rw, "Propagation": "",
        }),
        MountType::Bind => json!({
            "Type": "bind", "Source": mp.source, "Destination": mp.destination,
            "Mode": mp.mode, "RW": mp.rw, "Propagation": mp.propagation,
        }),
        MountType::Tmpfs => json!({
            "Type": "tmpfs", "Source": "", "Destination": mp.destination,
            "Mode": mp.mode, "RW": mp.rw, "Propagation": "",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(v: Value) -> Mount {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_subpath_stays_inside_its_volume_as_go_judges_it() {
        for ok in [
            "a",
            "a/b",
            "./a",
            "a/../b",
            "a/b/../..",
            "a//b/",
            "..a",
            "a/..",
        ] {
            assert!(stays_inside(ok), "{ok}");
        }
        for out in ["/a", "..", "../a", "a/../..", "a/../../b", "./../a", "/"] {
            assert!(!stays_inside(out), "{out}");
        }
        let e = resolve(
            vec![],
            &[],
            &[mount(
                json!({"Type": "volume", "Source": "v", "Target": "/d",
                "VolumeOptions": {"Subpath": "x/../../etc"}}),
            )],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        );
    }

    #[test]
    fn v_strings_become_dockers_mount_points() {
        let b = parse_bind("/tmp/cap-bind:/src:ro").unwrap();
        assert_eq!(
            (
                b.kind,
                b.source.as_str(),
                b.destination.as_str(),
                b.rw,
                b.mode.as_str()
            ),
            (MountType::Bind, "/tmp/cap-bind", "/src", false, "ro")
        );
        assert_eq!(
            (b.propagation.as_str(), b.create_source),
            ("rprivate", true)
        );
        let v = parse_bind("capvol:/data").unwrap();
        assert_eq!(
            (
                v.kind,
                v.name.as_str(),
                v.named,
                v.mode.as_str(),
                v.copy_data,
                v.rw
            ),
            (MountType::Volume, "capvol", true, "z", true, true)
        );
        let a = parse_bind("/scratch").unwrap();
        assert_eq!(
            (a.kind, a.name.as_str(), a.named, a.mode.as_str()),
            (MountType::Volume, "", false, "")
        );
        assert!(!parse_bind("vol:/d:nocopy").unwrap().copy_data);
        assert_eq!(parse_bind("/h:/c:rshared").unwrap().propagation, "rshared");
        assert_eq!(parse_bind("/h/../h/./x/:/c//d/").unwrap().source, "/h/x");
        assert_eq!(parse_bind("/h:/c//d/").unwrap().destination, "/c/d");
    }

    #[test]
    fn bad_v_strings_get_dockers_messages() {
        let e = |s: &str| parse_bind(s).unwrap_err();
        assert_eq!(
            e("/a:/b:ro:extra"),
            "invalid volume specification: '/a:/b:ro:extra'"
        );
        assert_eq!(e("/data:ro"), "invalid volume specification: '/data:ro'");
        assert_eq!(e("/a:/b:rw,ro"), "invalid mode: rw,ro");
        assert_eq!(e("/a:/b:fast"), "invalid mode: fast");
        assert_eq!(
            e("vol:data"),
            "invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"
        );
        assert_eq!(e("/a:/"), "invalid specification: destination can't be '/'");
        assert!(e("/a:/proc").contains("is the container's own /proc"));
        assert!(e("/a:/sys/fs/x").contains("is the container's own /sys"));
        assert_eq!(
            e("vol:/d:rshared"),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert_eq!(e(":/d"), "invalid volume specification: ':/d'");
    }

    #[test]
    fn mount_objects_follow_dockers_rules() {
        let m = parse_mount(&mount(
            json!({"Type": "bind", "Source": "/tmp/cap-bind", "Target": "/m", "ReadOnly": true}),
        ))
        .unwrap();
        assert_eq!(
            (m.kind, m.rw, m.create_source, m.mode.as_str()),
            (MountType::Bind, false, false, "")
        );
        let t = parse_mount(&mount(json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770}}))).unwrap();
        assert_eq!((t.tmpfs_size, t.tmpfs_mode), (1 << 20, 0o1770));
        let v = parse_mount(&mount(json!({"Type": "volume", "Source": "db", "Target": "/var/lib/db",
            "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"}, "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}}}))).unwrap();
        assert_eq!((v.named, v.copy_data, v.mode.as_str()), (true, false, ""));
        assert_eq!(
            v.volume_options.get("type").map(String::as_str),
            Some("tmpfs")
        );
        assert_eq!(v.volume_labels.get("a").map(String::as_str), Some("b"));
        let e = |v: Value| parse_mount(&mount(v)).unwrap_err();
        assert_eq!(
            e(json!({"Type": "bind", "Target": "/m"})),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(e(json!({"Type": "bind", "Source": "rel", "Target": "/m"})), "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute");
        assert_eq!(
            e(json!({"Type": "tmpfs", "Source": "x", "Target": "/m"})),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            e(json!({"Type": "volume", "Target": "/m", "BindOptions": {"Propagation": "rshared"}})),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert_eq!(
            e(json!({"Type": "bind", "Source": "/a"})),
            "invalid mount config for type \"bind\": field Target must not be empty"
        );
        assert!(e(json!({"Type": "volume", "Source": "v", "Target": "/m", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}})).contains("plugin \"nfs\" not found"));
        assert!(e(json!({"Type": "bind", "Source": "/a", "Target": "/m", "BindOptions": {"ReadOnlyForceRecursive": true}})).contains("not supported by skiff yet"));
        assert!(e(
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["exec"]]}})
        )
        .contains("not supported by skiff yet"));
        let made = parse_mount(&mount(json!({"Type": "bind", "Source": "/a", "Target": "/m", "BindOptions": {"CreateMountpoint": true}}))).unwrap();
        assert!(made.create_source);
    }

    #[test]
    fn precedence_duplicates_and_anonymous_volumes() {
        let from = vec![
            parse_bind("shared:/data").unwrap(),
            parse_bind("/h:/cfg").unwrap(),
        ];
        let out = resolve(
            from,
            &["/host:/data".into()],
            &[mount(json!({"Type": "tmpfs", "Target": "/t"}))],
            &["/data".into(), "/cache".into(), "/t".into()],
        )
        .unwrap();
        let dests: Vec<(&str, MountType)> = out
            .iter()
            .map(|m| (m.destination.as_str(), m.kind))
            .collect();
        assert_eq!(
            dests,
            [
                ("/cache", MountType::Volume),
                ("/cfg", MountType::Bind),
                ("/data", MountType::Bind),
                ("/t", MountType::Tmpfs)
            ]
        );
        assert_eq!(
            resolve(vec![], &["/a:/x".into(), "v:/x".into()], &[], &[]).unwrap_err(),
            "Duplicate mount point: /x"
        );
        assert_eq!(
            resolve(
                vec![],
                &["/a:/x".into()],
                &[mount(json!({"Type": "tmpfs", "Target": "/x/"}))],
                &[]
            )
            .unwrap_err(),
            "Duplicate mount point: /x"
        );
        let nested = resolve(vec![], &["/a:/x/y/z".into(), "/b:/x".into()], &[], &[]).unwrap();
        assert_eq!(nested[0].destination, "/x");
    }

    #[test]
    fn volumes_from_modes() {
        assert_eq!(parse_volumes_from("web").unwrap(), ("web".into(), None));
        assert_eq!(
            parse_volumes_from("web:ro").unwrap(),
            ("web".into(), Some(false))
        );
        assert_eq!(parse_volumes_from("web:x").unwrap_err(), "invalid mode: x");
    }

    #[test]
    fn oci_mounts_carry_the_options() {
        let b = parse_bind("/h:/c:ro").unwrap();
        assert_eq!(
            oci_mount(&b, Path::new("/h"), false),
            json!({"destination": "/c", "type": "bind", "source": "/h", "options": ["rbind", "rprivate", "ro"]})
        );
        let v = parse_bind("vol:/d").unwrap();
        assert_eq!(
            oci_mount(&v, Path::new("/s"), true)["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        let t = parse_mount(&mount(json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o700}}))).unwrap();
        assert_eq!(
            oci_mount(&t, Path::new(""), false)["options"],
            json!(["nosuid", "nodev", "noexec", "size=1024", "mode=700"])
        );
    }
}
