//! The mount flags of `run` and `create` as the docker 28 CLI reads them: `-v/--volume`
//! specs split into anonymous volumes (`Config.Volumes`) and binds (`HostConfig.Binds`),
//! and `--mount` CSV into the engine's Mount objects (`HostConfig.Mounts`). The CLI checks
//! only the shape of a spec; whether a source exists, a target is absolute or a
//! propagation is known is the engine's to say, in its own words.

use std::collections::BTreeMap;

use serde::Serialize;

use super::gofmt::quote;
use super::opts::ram_in_bytes;
use crate::archive::go_join;

/// What `-v` flags become: targets of anonymous volumes, and binds as sent.
#[derive(Debug, Default, PartialEq)]
pub struct VolumeFlags {
    pub anonymous: Vec<String>,
    pub binds: Vec<String>,
}

/// Split `-v` specs as docker's parse does. A repeated spec counts once (docker keeps them
/// in a set); the order given is kept, where docker's is its map's.
pub fn split_volumes(specs: &[String], cwd: Option<&str>) -> Result<VolumeFlags, String> {
    let mut out = VolumeFlags::default();
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        if !seen.insert(spec.as_str()) {
            continue;
        }
        match spec_source(spec)? {
            None => out.anonymous.push(spec.clone()),
            Some(source) if is_file_path(&source) => out.binds.push(absolute_host_part(spec, cwd)),
            Some(_) => out.binds.push(spec.clone()),
        }
    }
    Ok(out)
}

/// docker's volumespec.Parse, reduced to what the CLI acts on: the spec's source, if it
/// has one, or the error docker gives for a malformed spec.
fn spec_source(spec: &str) -> Result<Option<String>, String> {
    // Go measures in bytes here: one or two bytes is a bare target.
    match spec.len() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => return Ok(None),
        _ => {}
    }
    let wrap = |e: &str| format!("invalid spec: {spec}: {e}");
    let mut source: Option<String> = None;
    let mut target: Option<String> = None;
    let mut buffer = String::new();
    // A NUL ends the spec, as the sentinel docker appends (an embedded one too).
    for c in spec.chars().chain(std::iter::once('\0')) {
        let drive_letter =
            c == ':' && buffer.chars().count() == 1 && buffer.chars().all(char::is_alphabetic);
        if drive_letter {
            buffer.push(c);
        } else if c == ':' || c == '\0' {
            if buffer.is_empty() {
                return Err(wrap("empty section between colons"));
            }
            let section = std::mem::take(&mut buffer);
            if source.is_none() && c == '\0' {
                target = Some(section);
            } else if source.is_none() {
                source = Some(section);
            } else if target.is_none() {
                target = Some(section);
            } else if c == ':' {
                return Err(wrap("too many colons"));
            }
            // The mode section (ro, rw, nocopy, propagation) is the engine's to read.
        } else {
            buffer.push(c);
        }
    }
    Ok(source)
}

/// docker's isFilePath: whether a source names a host path (a bind) rather than a volume.
fn is_file_path(source: &str) -> bool {
    let mut chars = source.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if matches!(first, '.' | '/' | '~') {
        return true;
    }
    if chars.next().is_none() {
        return false;
    }
    // A Windows named pipe or drive ("c:…"); docker reads the byte after the first rune.
    source.starts_with("\\\\")
        || (first.is_alphabetic() && source.as_bytes().get(first.len_utf8()) == Some(&b':'))
}

/// The bind with its host part (what precedes the first colon) made absolute when it is a
/// relative path starting with a dot, as docker does before sending it.
fn absolute_host_part(spec: &str, cwd: Option<&str>) -> String {
    match spec.split_once(':') {
        Some((host, rest)) => format!("{}:{rest}", absolute_if_dotted(host, cwd)),
        None => spec.to_string(),
    }
}

/// docker's rule for `-v` host parts and `--mount` sources: a relative path that starts
/// with "." is made absolute (Go's filepath.Abs, cleaned); anything else is sent as given.
/// Without a working directory docker sends it unchanged, and so do we.
fn absolute_if_dotted(path: &str, cwd: Option<&str>) -> String {
    match cwd {
        Some(cwd) if path.starts_with('.') => go_join(cwd, path),
        _ => path.to_string(),
    }
}

/// Go's os.Getwd, which docker's filepath.Abs uses: $PWD when it names the current
/// directory (so a directory reached through a symlink keeps the name the user sees), else
/// the kernel's.
pub fn go_getwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dot = std::fs::metadata(".").ok()?;
    if let Ok(pwd) = std::env::var("PWD") {
        let same = |m: std::fs::Metadata| m.dev() == dot.dev() && m.ino() == dot.ino();
        if pwd.starts_with('/') && std::fs::metadata(&pwd).is_ok_and(same) {
            return Some(pwd);
        }
    }
    std::env::current_dir().ok()?.to_str().map(String::from)
}

/// The engine's Mount (moby's api/types/mount), with Go's omitempty on every field, so the
/// JSON is what the docker CLI sends.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_options: Option<ImageOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(skip_serializing_if = "is_false")]
    pub non_recursive: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "is_false")]
    pub no_copy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    /// Always there once any volume option is given: docker allocates it with the options,
    /// so `{}` goes out even without a driver.
    pub driver_config: VolumeDriver,
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeDriver {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// What docker's logrus prints when a deprecated mount option is used.
pub const NONRECURSIVE_WARNING: &str =
    "WARN[0000] bind-nonrecursive is deprecated, use bind-recursive=disabled instead";

/// A parsed `--mount`, and the deprecation warning docker prints for it, if any.
#[derive(Debug)]
pub struct ParsedMount {
    pub mount: Mount,
    pub warning: Option<&'static str>,
}

/// One `--mount` value, or docker's flag error for it
/// (`invalid argument "…" for "--mount" flag: …`).
pub fn parse_mount(value: &str, cwd: Option<&str>) -> Result<ParsedMount, String> {
    read_mount(value, cwd).map_err(|e| {
        format!(
            "invalid argument {} for \"--mount\" flag: {e}",
            quote(value)
        )
    })
}

/// Go's strconv.ParseBool.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's strconv.ParseUint(s, 8, 32), which takes no sign and no prefix.
fn parse_octal_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

/// docker's MountOpt.Set, without the flag's prefix on errors.
fn read_mount(value: &str, cwd: Option<&str>) -> Result<ParsedMount, String> {
    let fields = csv_record(value)?;
    let mut m = Mount {
        kind: "volume".into(),
        ..Default::default()
    };
    let mut warning = None;
    // docker skips a map entry whose key is empty.
    fn put(map: &mut BTreeMap<String, String>, kv: &str) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !k.is_empty() {
            map.insert(k.to_string(), v.to_string());
        }
    }
    let bad_value = |key: &str, val: &str| format!("invalid value for {key}: {val}");
    for field in &fields {
        // docker matches keys in any case (and says it should not).
        let Some((key, val)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "readonly" | "ro" => m.read_only = true,
                "volume-nocopy" => {
                    m.volume_options
                        .get_or_insert_with(Default::default)
                        .no_copy = true
                }
                "bind-nonrecursive" => {
                    m.bind_options
                        .get_or_insert_with(Default::default)
                        .non_recursive = true
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_lowercase();
        match key.as_str() {
            "type" => m.kind = val.to_lowercase(),
            "source" | "src" => m.source = absolute_if_dotted(val, cwd),
            "target" | "dst" | "destination" => m.target = val.to_string(),
            "readonly" | "ro" => {
                m.read_only = go_parse_bool(val).ok_or_else(|| bad_value(&key, val))?
            }
            "consistency" => m.consistency = val.to_lowercase(),
            "bind-propagation" => {
                m.bind_options.get_or_insert_with(Default::default).propagation = val.to_lowercase()
            }
            "bind-nonrecursive" => {
                let b = go_parse_bool(val).ok_or_else(|| bad_value(&key, val))?;
                m.bind_options.get_or_insert_with(Default::default).non_recursive = b;
                warning = Some(NONRECURSIVE_WARNING);
            }
            "bind-recursive" => match val {
                // Read-only binds are recursively read-only where the kernel can.
                "enabled" => {}
                "disabled" => {
                    m.bind_options.get_or_insert_with(Default::default).non_recursive = true
                }
                "writable" => {
                    m.bind_options.get_or_insert_with(Default::default).read_only_non_recursive =
                        true
                }
                "readonly" => {
                    m.bind_options
                        .get_or_insert_with(Default::default)
                        .read_only_force_recursive = true
                }
                _ => {
                    return Err(format!(
                        "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                    ))
                }
            },
            "volume-subpath" => {
                m.volume_options.get_or_insert_with(Default::default).subpath = val.to_string()
            }
            "volume-nocopy" => {
                let b = go_parse_bool(val)
                    .ok_or_else(|| format!("invalid value for volume-nocopy: {val}"))?;
                m.volume_options.get_or_insert_with(Default::default).no_copy = b;
            }
            "volume-label" => put(
                &mut m.volume_options.get_or_insert_with(Default::default).labels,
                val,
            ),
            "volume-driver" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .driver_config
                    .name = val.to_string()
            }
            "volume-opt" => put(
                &mut m
                    .volume_options
                    .get_or_insert_with(Default::default)
                    .driver_config
                    .options,
                val,
            ),
            "image-subpath" => {
                m.image_options.get_or_insert_with(Default::default).subpath = val.to_string()
            }
            "tmpfs-size" => {
                let size = ram_in_bytes(val).map_err(|_| bad_value(&key, val))?;
                m.tmpfs_options.get_or_insert_with(Default::default).size_bytes = size;
            }
            "tmpfs-mode" => {
                let mode = parse_octal_u32(val).ok_or_else(|| bad_value(&key, val))?;
                m.tmpfs_options.get_or_insert_with(Default::default).mode = mode;
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    check_mount(&m)?;
    Ok(ParsedMount { mount: m, warning })
}

/// docker's checks once every field is read, in its order.
fn check_mount(m: &Mount) -> Result<(), String> {
    if m.kind.is_empty() {
        return Err("type is required".into());
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    let mixed = |prefix: &str| {
        format!(
            "cannot mix '{prefix}-*' options with mount type '{}'",
            m.kind
        )
    };
    if m.volume_options.is_some() && m.kind != "volume" {
        return Err(mixed("volume"));
    }
    if m.image_options.is_some() && m.kind != "image" {
        return Err(mixed("image"));
    }
    if m.bind_options.is_some() && m.kind != "bind" {
        return Err(mixed("bind"));
    }
    if m.tmpfs_options.is_some() && m.kind != "tmpfs" {
        return Err(mixed("tmpfs"));
    }
    if let Some(b) = &m.bind_options {
        if b.read_only_non_recursive && !m.read_only {
            return Err(
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
                    .into(),
            );
        }
        if b.read_only_force_recursive {
            if !m.read_only {
                return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into());
            }
            if b.propagation != "rprivate" {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into());
            }
        }
    }
    Ok(())
}

/// The first record of `s` as Go's encoding/csv reads it (comma-separated, a field in
/// double quotes may hold commas, newlines and doubled quotes), with its errors.
fn csv_record(s: &str) -> Result<Vec<String>, String> {
    let text = s.replace("\r\n", "\n");
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut lines = text.split_inclusive('\n');
    let mut line_no = 0;
    // Blank lines before the record are skipped; none at all is the end of the input.
    let mut line = loop {
        let Some(l) = lines.next() else {
            return Err("EOF".into());
        };
        line_no += 1;
        if l != "\n" {
            break l;
        }
    };
    let start_line = line_no;
    let error = |line: usize, col: usize, what: &str| {
        if line == start_line {
            format!("parse error on line {line}, column {col}: {what}")
        } else {
            format!("record on line {start_line}; parse error on line {line}, column {col}: {what}")
        }
    };
    const BARE_QUOTE: &str = "bare \" in non-quoted-field";
    const BAD_QUOTE: &str = "extraneous or missing \" in quoted-field";
    let mut fields = Vec::new();
    let mut col = 1;
    'field: loop {
        if !line.starts_with('"') {
            let comma = line.find(',');
            let field = match comma {
                Some(i) => &line[..i],
                None => line.strip_suffix('\n').unwrap_or(line),
            };
            if let Some(j) = field.find('"') {
                return Err(error(line_no, col + j, BARE_QUOTE));
            }
            fields.push(field.to_string());
            match comma {
                Some(i) => {
                    line = &line[i + 1..];
                    col += i + 1;
                    continue 'field;
                }
                None => break 'field,
            }
        }
        line = &line[1..];
        col += 1;
        let mut field = String::new();
        loop {
            if let Some(i) = line.find('"') {
                field.push_str(&line[..i]);
                line = &line[i + 1..];
                col += i + 1;
                if line.starts_with('"') {
                    field.push('"');
                    line = &line[1..];
                    col += 1;
                } else if line.starts_with(',') {
                    line = &line[1..];
                    col += 1;
                    fields.push(field);
                    continue 'field;
                } else if line.is_empty() || line == "\n" {
                    fields.push(field);
                    break 'field;
                } else {
                    return Err(error(line_no, col - 1, BAD_QUOTE));
                }
            } else if !line.is_empty() {
                // The quoted field goes on on the next line.
                field.push_str(line);
                col += line.len();
                line = lines.next().unwrap_or("");
                if !line.is_empty() {
                    line_no += 1;
                    col = 1;
                }
            } else {
                return Err(error(line_no, col, BAD_QUOTE));
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn mount(v: &str) -> Value {
        let p = parse_mount(v, Some("/work/dir")).unwrap_or_else(|e| panic!("{v}: {e}"));
        serde_json::to_value(p.mount).unwrap()
    }

    fn mount_err(v: &str) -> String {
        match parse_mount(v, Some("/work/dir")) {
            Ok(m) => panic!("{v} parsed: {m:?}"),
            Err(e) => e,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mounts_as_the_capture_shows_them() {
        // docker-api-capture-2 §07.
        assert_eq!(
            mount("type=bind,src=/tmp/cap-bind,dst=/m,readonly"),
            json!({"Type": "bind", "Source": "/tmp/cap-bind", "Target": "/m", "ReadOnly": true})
        );
        assert_eq!(
            mount("type=tmpfs,dst=/t,tmpfs-size=1m"),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}})
        );
    }

    #[test]
    fn mount_keys_and_their_aliases() {
        // Type defaults to volume; a named volume keeps its name as the source.
        assert_eq!(
            mount("source=data,target=/data"),
            json!({"Type": "volume", "Source": "data", "Target": "/data"})
        );
        assert_eq!(
            mount("type=volume,destination=/d"),
            json!({"Type": "volume", "Target": "/d"})
        );
        assert_eq!(
            mount("Type=BIND,SRC=/a,DST=/b,RO=true,Consistency=Cached"),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true,
                   "Consistency": "cached"})
        );
        for (ro, want) in [
            ("1", true),
            ("t", true),
            ("True", true),
            ("0", false),
            ("false", false),
        ] {
            let m = mount(&format!("type=bind,src=/a,dst=/b,ro={ro}"));
            assert_eq!(m.get("ReadOnly").is_some(), want, "ro={ro}");
        }
        // The last of a repeated key wins.
        assert_eq!(mount("dst=/a,dst=/b")["Target"], "/b");
    }

    #[test]
    fn relative_sources_starting_with_a_dot_are_made_absolute() {
        assert_eq!(
            mount("type=bind,src=./src,dst=/s")["Source"],
            "/work/dir/src"
        );
        assert_eq!(mount("type=bind,src=.,dst=/s")["Source"], "/work/dir");
        assert_eq!(
            mount("type=bind,src=../up/x/,dst=/s")["Source"],
            "/work/up/x"
        );
        // As docker: only a dot makes it a path; other relative names go as given.
        assert_eq!(mount("type=bind,src=rel/x,dst=/s")["Source"], "rel/x");
        assert_eq!(mount("type=bind,src=/a/../b,dst=/s")["Source"], "/a/../b");
        let p = parse_mount("type=bind,src=./x,dst=/s", None).unwrap();
        assert_eq!(p.mount.source, "./x");
    }

    #[test]
    fn bind_options() {
        assert_eq!(
            mount("type=bind,src=/a,dst=/b,bind-propagation=RSLAVE"),
            json!({"Type": "bind", "Source": "/a", "Target": "/b",
                   "BindOptions": {"Propagation": "rslave"}})
        );
        assert_eq!(
            mount("type=bind,src=/a,dst=/b,bind-recursive=disabled")["BindOptions"],
            json!({"NonRecursive": true})
        );
        assert_eq!(
            mount("type=bind,src=/a,dst=/b,ro,bind-recursive=writable")["BindOptions"],
            json!({"ReadOnlyNonRecursive": true})
        );
        assert_eq!(
            mount("type=bind,src=/a,dst=/b,ro,bind-recursive=readonly,bind-propagation=rprivate")
                ["BindOptions"],
            json!({"Propagation": "rprivate", "ReadOnlyForceRecursive": true})
        );
        // "enabled" is the default and adds nothing.
        assert!(mount("type=bind,src=/a,dst=/b,bind-recursive=enabled")
            .get("BindOptions")
            .is_none());
        let p = parse_mount("type=bind,src=/a,dst=/b,bind-nonrecursive", None).unwrap();
        assert!(p.mount.bind_options.unwrap().non_recursive);
        assert!(p.warning.is_none());
        let p = parse_mount("type=bind,src=/a,dst=/b,bind-nonrecursive=true", None).unwrap();
        assert_eq!(p.warning, Some(NONRECURSIVE_WARNING));
    }

    #[test]
    fn volume_options() {
        assert_eq!(
            mount(
                "src=v,dst=/d,volume-nocopy,volume-label=a=1,volume-label=b,\
                 volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-subpath=sub"
            ),
            json!({"Type": "volume", "Source": "v", "Target": "/d", "VolumeOptions": {
                "NoCopy": true, "Labels": {"a": "1", "b": ""}, "Subpath": "sub",
                "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}
            }})
        );
        // Any volume option brings an empty DriverConfig along, as docker's does.
        assert_eq!(
            mount("dst=/d,volume-nocopy=false")["VolumeOptions"],
            json!({"DriverConfig": {}})
        );
        assert_eq!(
            mount("dst=/d,volume-label==x,volume-opt=")["VolumeOptions"],
            json!({"DriverConfig": {}})
        );
    }

    #[test]
    fn tmpfs_and_image_options() {
        assert_eq!(
            mount("type=tmpfs,dst=/t,tmpfs-size=64k,tmpfs-mode=1777")["TmpfsOptions"],
            json!({"SizeBytes": 65536, "Mode": 1023})
        );
        assert_eq!(
            mount("type=tmpfs,dst=/t,tmpfs-mode=0")["TmpfsOptions"],
            json!({})
        );
        assert_eq!(
            mount("type=image,src=busybox,dst=/i,image-subpath=/bin"),
            json!({"Type": "image", "Source": "busybox", "Target": "/i",
                   "ImageOptions": {"Subpath": "/bin"}})
        );
    }

    #[test]
    fn mount_errors_in_dockers_words() {
        assert_eq!(
            mount_err("type=bind"),
            "invalid argument \"type=bind\" for \"--mount\" flag: target is required"
        );
        assert_eq!(
            mount_err("x"),
            "invalid argument \"x\" for \"--mount\" flag: invalid field 'x' must be a key=value pair"
        );
        assert_eq!(
            mount_err("dst=/a,,"),
            "invalid argument \"dst=/a,,\" for \"--mount\" flag: invalid field '' must be a key=value pair"
        );
        assert_eq!(
            mount_err("foo=bar"),
            "invalid argument \"foo=bar\" for \"--mount\" flag: unexpected key 'foo' in 'foo=bar'"
        );
        assert_eq!(
            mount_err("Foo=bar,dst=/x"),
            "invalid argument \"Foo=bar,dst=/x\" for \"--mount\" flag: unexpected key 'foo' in 'Foo=bar'"
        );
        let tail = |v: &str| {
            let e = mount_err(v);
            e.split_once(" flag: ")
                .map(|(_, t)| t.to_string())
                .unwrap_or(e)
        };
        assert_eq!(tail("type=,dst=/x"), "type is required");
        assert_eq!(tail("type=bind,dst=/x,ro=yes"), "invalid value for ro: yes");
        assert_eq!(
            tail("dst=/x,volume-nocopy=2"),
            "invalid value for volume-nocopy: 2"
        );
        assert_eq!(
            tail("type=tmpfs,dst=/x,tmpfs-size=lots"),
            "invalid value for tmpfs-size: lots"
        );
        assert_eq!(
            tail("type=tmpfs,dst=/x,tmpfs-mode=0999"),
            "invalid value for tmpfs-mode: 0999"
        );
        assert_eq!(
            tail("type=tmpfs,dst=/x,tmpfs-mode=+7"),
            "invalid value for tmpfs-mode: +7"
        );
        assert_eq!(
            tail("type=bind,dst=/x,bind-recursive=maybe"),
            "invalid value for bind-recursive: maybe (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
        );
        assert_eq!(
            tail("type=bind,dst=/x,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            tail("dst=/x,bind-propagation=shared"),
            "cannot mix 'bind-*' options with mount type 'volume'"
        );
        assert_eq!(
            tail("dst=/x,tmpfs-size=1m"),
            "cannot mix 'tmpfs-*' options with mount type 'volume'"
        );
        assert_eq!(
            tail("dst=/x,image-subpath=a"),
            "cannot mix 'image-*' options with mount type 'volume'"
        );
        assert_eq!(
            tail("type=bind,src=/a,dst=/x,bind-recursive=writable"),
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        );
        assert_eq!(
            tail("type=bind,src=/a,dst=/x,ro,bind-recursive=readonly"),
            "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"
        );
        assert_eq!(
            tail("type=bind,src=/a,dst=/x,bind-recursive=readonly"),
            "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"
        );
        assert_eq!(tail(""), "EOF");
        // Go quotes the value in the flag error.
        assert_eq!(
            mount_err("src=\"a,dst=/x"),
            "invalid argument \"src=\\\"a,dst=/x\" for \"--mount\" flag: parse error on line 1, column 5: bare \" in non-quoted-field"
        );
    }

    #[test]
    fn csv_like_go() {
        assert_eq!(
            csv_record("a=1,\"b=2,3\",\"c=\"\"q\"\"\"").unwrap(),
            strings(&["a=1", "b=2,3", "c=\"q\""])
        );
        assert_eq!(csv_record("\n\na,b\nc,d").unwrap(), strings(&["a", "b"]));
        assert_eq!(
            csv_record("a,\"x\ny\",b").unwrap(),
            strings(&["a", "x\ny", "b"])
        );
        assert_eq!(csv_record("a,").unwrap(), strings(&["a", ""]));
        assert_eq!(
            csv_record("a,\"x\"y").unwrap_err(),
            "parse error on line 1, column 5: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            csv_record("a,\"xyz").unwrap_err(),
            "parse error on line 1, column 7: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            csv_record("\"a\nb").unwrap_err(),
            "record on line 1; parse error on line 2, column 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(csv_record("").unwrap_err(), "EOF");
        // A quoted field keeps the comma in a mount value.
        assert_eq!(mount("type=bind,\"src=/a,b\",dst=/x")["Source"], "/a,b");
    }

    #[test]
    fn volume_specs_split_like_docker() {
        let split = |v: &[&str]| split_volumes(&strings(v), Some("/work/dir")).unwrap();
        // docker-api-capture-2 §04, §05, §06.
        assert_eq!(
            split(&["capvol:/data"]),
            VolumeFlags {
                anonymous: vec![],
                binds: strings(&["capvol:/data"])
            }
        );
        assert_eq!(
            split(&["/scratch"]),
            VolumeFlags {
                anonymous: strings(&["/scratch"]),
                binds: vec![]
            }
        );
        assert_eq!(
            split(&["/tmp/cap-bind:/src:ro"]).binds,
            strings(&["/tmp/cap-bind:/src:ro"])
        );
        // A relative host part starting with a dot is made absolute; nothing else changes.
        assert_eq!(
            split(&["./src:/src:ro", "../x:/x", ".:/here", "~/a:/a", "rel:/r"]).binds,
            strings(&[
                "/work/dir/src:/src:ro",
                "/work/x:/x",
                "/work/dir:/here",
                "~/a:/a",
                "rel:/r"
            ])
        );
        // Short specs and Windows-looking ones are bare targets.
        assert_eq!(
            split(&["/a", "ab", "c:/x"]).anonymous,
            strings(&["/a", "ab", "c:/x"])
        );
        assert_eq!(split(&["c:/x:/y"]).binds, strings(&["c:/x:/y"]));
        // The engine judges modes and targets: they go as typed.
        assert_eq!(split(&["v:rel:bogus"]).binds, strings(&["v:rel:bogus"]));
        // One spec given twice is one bind.
        assert_eq!(split(&["/a:/b", "/a:/b"]).binds, strings(&["/a:/b"]));
        assert_eq!(
            split_volumes(&strings(&["./a:/a"]), None).unwrap().binds,
            strings(&["./a:/a"])
        );
    }

    #[test]
    fn volume_spec_errors_like_docker() {
        let err = |v: &str| split_volumes(&strings(&[v]), None).unwrap_err();
        assert_eq!(err(""), "invalid empty volume spec");
        assert_eq!(
            err("/a::/b"),
            "invalid spec: /a::/b: empty section between colons"
        );
        assert_eq!(
            err(":/b"),
            "invalid spec: :/b: empty section between colons"
        );
        assert_eq!(
            err("/a:/b:"),
            "invalid spec: /a:/b:: empty section between colons"
        );
        assert_eq!(
            err("/a:/b:ro:x"),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
    }
}
