//! `volume create|ls|inspect|rm|prune`: the requests, columns and messages of the docker 28
//! CLI (`cli/command/volume`).

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::api::{filters_json, message_of, query, seg, status_of, Api, Body, Filters};
use super::disk::prune_volumes;
use super::gofmt::{human_size, natural_cmp};
use super::inspected::print_inspected;
use super::network::{trim_id, CreateError};
use super::opts::{kv_map, validate_label};
use super::run::with_help;
use super::term::confirm;
use super::Engine;
use crate::cli::{
    VolumeCreateArgs, VolumeInspectArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs,
};
use crate::output::{out_line, outln, write_template, Format};
use crate::SkiffError;

const DEFAULT_TABLE: &str = "{{.Driver}}\t{{.Name}}";

const PRUNE_WARNING: &str =
    "WARNING! This will remove anonymous local volumes not used by at least one container.
Are you sure you want to continue?";

const PRUNE_ALL_WARNING: &str =
    "WARNING! This will remove all local volumes not used by at least one container.
Are you sure you want to continue?";

/// The `POST /volumes/create` body the docker 28 CLI sends: every field is omitted when
/// empty (Go's omitempty), so a volume without a name goes out without `Name` and the
/// engine names it.
pub fn create_body(a: &VolumeCreateArgs) -> Result<Value, CreateError> {
    for l in &a.label {
        validate_label(l).map_err(|e| {
            CreateError::Flag(format!(
                "invalid argument \"{l}\" for \"--label\" flag: {e}"
            ))
        })?;
    }
    let flag_name = a.name.as_deref().filter(|n| !n.is_empty());
    let name = match (a.volume.as_deref(), flag_name) {
        (Some(_), Some(_)) => {
            return Err(CreateError::Plain(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg".into(),
            ))
        }
        (Some(v), None) => v,
        (None, n) => n.unwrap_or(""),
    };
    let mut body = Map::new();
    if !a.driver.is_empty() {
        body.insert("Driver".into(), json!(a.driver));
    }
    let opts = kv_map(&a.opt);
    if !opts.is_empty() {
        body.insert("DriverOpts".into(), json!(opts));
    }
    let labels = kv_map(&a.label);
    if !labels.is_empty() {
        body.insert("Labels".into(), json!(labels));
    }
    if !name.is_empty() {
        body.insert("Name".into(), json!(name));
    }
    Ok(Value::Object(body))
}

pub async fn create(engine: &Engine, a: &VolumeCreateArgs) -> Result<u8> {
    let body = match create_body(a) {
        Ok(b) => b,
        Err(CreateError::Flag(e)) => return Err(with_help(&e, "volume create", 125)),
        Err(CreateError::Plain(e)) => return Err(SkiffError::daemon(e).into()),
    };
    let v = engine
        .api()
        .json("POST", "/volumes/create", Body::Json(&body))
        .await?;
    outln(v["Name"].as_str().unwrap_or_default());
    Ok(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A Swarm cluster volume's state as docker words it (our engine has none; a volume from
/// another engine may).
fn cluster_status(cluster: Option<&Value>) -> String {
    let Some(c) = cluster else {
        return "N/A".into();
    };
    if s(&c["Info"], "VolumeID").is_empty() {
        return "pending creation".into();
    }
    match c["PublishStatus"].as_array().map_or(0, Vec::len) {
        0 => "created".into(),
        1 => "in use (1 node)".into(),
        n => format!("in use ({n} nodes)"),
    }
}

/// One volume as the template fields of docker's volumeContext.
pub fn row(v: &Value) -> Value {
    let labels_map = v["Labels"].as_object().cloned().unwrap_or_default();
    // docker joins them in Go's random map order; sorted is one of those orders, and stable.
    let labels: Vec<String> = labels_map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let usage = v.get("UsageData").filter(|u| u.is_object());
    let cluster = v.get("ClusterVolume").filter(|c| c.is_object());
    let number = |v: &Value| v.as_i64().unwrap_or(0);
    json!({
        "Name": s(v, "Name"),
        "Driver": s(v, "Driver"),
        "Scope": s(v, "Scope"),
        "Mountpoint": s(v, "Mountpoint"),
        "Labels": labels.join(","),
        "Label": Value::Object(labels_map),
        "Links": usage.map_or("N/A".into(), |u| number(&u["RefCount"]).to_string()),
        "Size": usage.map_or("N/A".into(), |u| human_size(number(&u["Size"]) as f64)),
        "Group": cluster.map_or("N/A", |c| s(&c["Spec"], "Group")),
        "Availability": cluster.map_or("N/A", |c| s(&c["Spec"], "Availability")),
        "Status": cluster_status(cluster),
    })
}

pub fn header(field: &str) -> String {
    match field.split_whitespace().next().unwrap_or(field) {
        "Name" => "VOLUME NAME",
        "Driver" => "DRIVER",
        "Scope" => "SCOPE",
        "Mountpoint" => "MOUNTPOINT",
        "Labels" => "LABELS",
        "Links" => "LINKS",
        "Size" => "SIZE",
        "Group" => "GROUP",
        "Availability" => "AVAILABILITY",
        "Status" => "STATUS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Go's json.Marshal escapes these in strings, where alone they can appear in JSON text.
fn go_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// What `volume ls` prints for the engine's list: sorted by name in natural order, as
/// docker. `-q` only replaces the table format (docker's NewVolumeFormat), so `-q --format
/// X` still uses X.
pub fn render_list(list: &[Value], a: &VolumeLsArgs) -> Result<String, String> {
    let mut list: Vec<&Value> = list.iter().collect();
    list.sort_by(|x, y| natural_cmp(s(x, "Name"), s(y, "Name")));
    let rows: Vec<Value> = list.iter().map(|v| row(v)).collect();
    let mut out = Vec::new();
    let is_table = matches!(a.format.as_deref(), None | Some("") | Some("table"));
    if a.quiet && is_table {
        write_template(&mut out, false, "{{.Name}}", &header, &rows)?;
    } else {
        match Format::parse(a.format.as_deref()) {
            Format::Json => {
                for r in &rows {
                    let mut m = r.as_object().cloned().unwrap_or_default();
                    m.remove("Label");
                    out.extend_from_slice(go_json(&Value::Object(m)).as_bytes());
                    out.push(b'\n');
                }
            }
            Format::Template { table, text } => {
                write_template(&mut out, table, &text, &header, &rows)?
            }
            Format::Default => write_template(&mut out, true, DEFAULT_TABLE, &header, &rows)?,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub async fn list(engine: &Engine, a: &VolumeLsArgs) -> Result<u8> {
    let target = match filters_json(&a.filters)? {
        Some(f) => format!("/volumes{}", query(&[("filters", f)])),
        None => "/volumes".to_string(),
    };
    let v = engine.api().json("GET", &target, Body::None).await?;
    let list = v["Volumes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    crate::output::out(&render_list(list, a).map_err(SkiffError::new)?);
    Ok(0)
}

/// A volume as docker's client holds it after decoding (moby's volume.Volume): its fields
/// in the struct's order, the absent ones as Go leaves them (`null` maps, omitted optional
/// fields), anything else the engine sent dropped. docker prints that, not the raw answer.
pub fn as_docker_volume(v: &Value) -> Value {
    let mut m = Map::new();
    let string = |k: &str| json!(s(v, k));
    let map_or_null = |k: &str| match &v[k] {
        Value::Object(o) => Value::Object(o.clone()),
        _ => Value::Null,
    };
    if let Some(c) = v.get("ClusterVolume").filter(|c| !c.is_null()) {
        m.insert("ClusterVolume".into(), c.clone());
    }
    if !s(v, "CreatedAt").is_empty() {
        m.insert("CreatedAt".into(), string("CreatedAt"));
    }
    m.insert("Driver".into(), string("Driver"));
    m.insert("Labels".into(), map_or_null("Labels"));
    m.insert("Mountpoint".into(), string("Mountpoint"));
    m.insert("Name".into(), string("Name"));
    m.insert("Options".into(), map_or_null("Options"));
    m.insert("Scope".into(), string("Scope"));
    if let Some(st) = v["Status"].as_object().filter(|st| !st.is_empty()) {
        m.insert("Status".into(), Value::Object(st.clone()));
    }
    if let Some(u) = v.get("UsageData").filter(|u| u.is_object()) {
        m.insert(
            "UsageData".into(),
            json!({
                "RefCount": u["RefCount"].as_i64().unwrap_or(0),
                "Size": u["Size"].as_i64().unwrap_or(0),
            }),
        );
    }
    // serde_json's map is ordered by key, which is the struct's order here.
    Value::Object(m)
}

/// One volume for `volume inspect`, or the message docker prints for this name. Only a
/// failure to reach the engine at all is an `Err`.
async fn inspect_one(api: &Api, name: &str) -> Result<Result<Vec<u8>, String>> {
    let id = match trim_id("volume", name) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    match api
        .json("GET", &format!("/volumes/{}", seg(&id)), Body::None)
        .await
    {
        Ok(v) => Ok(Ok(go_json(&as_docker_volume(&v)).into_bytes())),
        Err(e) if status_of(&e).is_some() => Ok(Err(message_of(&e))),
        Err(e) => Err(e),
    }
}

pub async fn inspect(engine: &Engine, a: &VolumeInspectArgs) -> Result<u8> {
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match inspect_one(&api, n).await? {
            Ok(r) => raws.push(r),
            Err(e) => errors.push(e),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    // docker joins the errors into the one it exits with, after the output.
    if !errors.is_empty() {
        return Err(SkiffError::daemon(errors.join("\n")).into());
    }
    Ok(0)
}

pub async fn remove(engine: &Engine, a: &VolumeRmArgs) -> Result<u8> {
    let api = engine.api();
    // docker sends force only when asked (and then as 1).
    let q = if a.force { "?force=1" } else { "" };
    let mut errors = Vec::new();
    // One after the other, each removal printed as it comes; the errors at the end.
    for name in &a.names {
        let result = match trim_id("volume", name) {
            Ok(id) => api
                .call("DELETE", &format!("/volumes/{}{q}", seg(&id)), Body::None)
                .await
                .map(|_| ())
                .map_err(|e| message_of(&e)),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => outln(name),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(SkiffError::daemon(errors.join("\n")).into());
    }
    Ok(0)
}

/// The filters a volume prune sends: the flags', plus `all=true` for `-a` (which docker
/// refuses beside an `all` filter of the user's own).
pub fn prune_filters(a: &VolumePruneArgs) -> Result<Option<String>> {
    let mut filters = Filters::parse(&a.filters, "--filter")?;
    if a.all {
        let has_all = a.filters.iter().any(|f| {
            f.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("all"))
        });
        if has_all {
            return Err(SkiffError::daemon(
                "conflicting options: cannot specify both --all and --filter all=1",
            )
            .into());
        }
        filters.add("all", "true");
    }
    Ok(filters.to_query())
}

pub async fn prune(engine: &Engine, a: &VolumePruneArgs) -> Result<u8> {
    let filters = prune_filters(a)?;
    let warning = if a.all {
        PRUNE_ALL_WARNING
    } else {
        PRUNE_WARNING
    };
    // A "no" is docker's cancelled error: nothing printed, exit 0.
    if !a.force && !confirm(warning)? {
        return Ok(0);
    }
    let (space, out) = prune_volumes(&engine.api(), filters).await?;
    // docker prints the list (which ends in a newline) with Println: a blank line follows.
    if !out.is_empty() {
        outln(&out);
    }
    out_line!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, VolumeCommand};

    fn parse(args: &[&str]) -> VolumeCommand {
        let mut all = vec!["skiff", "volume"];
        all.extend_from_slice(args);
        match Cli::parse_from_args(all).map(|c| c.command) {
            Ok(Command::Volume(c)) => c,
            other => panic!("not a volume command: {other:?}"),
        }
    }

    fn create_args(args: &[&str]) -> VolumeCreateArgs {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        match parse(&all) {
            VolumeCommand::Create(a) => a,
            other => panic!("not volume create: {other:?}"),
        }
    }

    fn ls_args(args: &[&str]) -> VolumeLsArgs {
        let mut all = vec!["ls"];
        all.extend_from_slice(args);
        match parse(&all) {
            VolumeCommand::Ls(a) => a,
            other => panic!("not volume ls: {other:?}"),
        }
    }

    fn prune_args(args: &[&str]) -> VolumePruneArgs {
        let mut all = vec!["prune"];
        all.extend_from_slice(args);
        match parse(&all) {
            VolumeCommand::Prune(a) => a,
            other => panic!("not volume prune: {other:?}"),
        }
    }

    #[test]
    fn create_body_like_docker() {
        // docker-api-capture-2 §01.
        assert_eq!(
            create_body(&create_args(&["--label", "team=a", "capvol"])).unwrap(),
            json!({"Driver": "local", "Labels": {"team": "a"}, "Name": "capvol"})
        );
        assert_eq!(
            create_body(&create_args(&[])).unwrap(),
            json!({"Driver": "local"})
        );
        assert_eq!(
            create_body(&create_args(&[
                "-d",
                "local",
                "-o",
                "type=tmpfs",
                "--opt",
                "device=tmpfs",
                "-o",
                "o=size=1m",
                "--label",
                "a",
                "--name",
                "v1"
            ]))
            .unwrap(),
            json!({"Driver": "local", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
                   "Labels": {"a": ""}, "Name": "v1"})
        );
        assert_eq!(
            create_body(&create_args(&["--name", "", "v2"])).unwrap()["Name"],
            "v2"
        );
        assert_eq!(
            create_body(&create_args(&["--name", "a", "b"])).unwrap_err(),
            CreateError::Plain("conflicting options: cannot specify a volume-name through both --name and as a positional arg".into())
        );
        assert_eq!(
            create_body(&create_args(&["--label", "=x"])).unwrap_err(),
            CreateError::Flag(
                "invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name"
                    .into()
            )
        );
        assert!(Cli::parse_from_args(["skiff", "volume", "create", "a", "b"]).is_err());
    }

    fn summaries() -> Vec<Value> {
        vec![
            json!({"Name": "web10", "Driver": "local", "Scope": "local",
                   "Mountpoint": "/var/lib/skiff/volumes/web10/_data",
                   "Labels": {"b": "2", "a": "1"}, "Options": null,
                   "UsageData": {"Size": 2_000_000, "RefCount": 2}}),
            json!({"Name": "capvol", "Driver": "local", "Scope": "local",
                   "Mountpoint": "/m", "Labels": null, "Options": null}),
            json!({"Name": "web2", "Driver": "local", "Scope": "local", "Labels": {}}),
        ]
    }

    #[test]
    fn ls_like_docker() {
        // docker-api-capture-2 §02.
        assert_eq!(
            render_list(&summaries()[1..2], &ls_args(&[])).unwrap(),
            "DRIVER    VOLUME NAME\nlocal     capvol\n"
        );
        assert_eq!(
            render_list(&summaries(), &ls_args(&[])).unwrap(),
            "DRIVER    VOLUME NAME\nlocal     capvol\nlocal     web2\nlocal     web10\n"
        );
        assert_eq!(
            render_list(&[], &ls_args(&[])).unwrap(),
            "DRIVER    VOLUME NAME\n"
        );
        assert_eq!(
            render_list(&summaries(), &ls_args(&["-q"])).unwrap(),
            "capvol\nweb2\nweb10\n"
        );
        assert_eq!(
            render_list(&summaries(), &ls_args(&["-q", "--format", "table"])).unwrap(),
            "capvol\nweb2\nweb10\n"
        );
        // -q gives way to a custom format, as in docker.
        assert_eq!(
            render_list(
                &summaries(),
                &ls_args(&["-q", "--format", "{{.Driver}}:{{.Name}}"])
            )
            .unwrap(),
            "local:capvol\nlocal:web2\nlocal:web10\n"
        );
    }

    #[test]
    fn ls_fields_like_docker() {
        let rows = summaries();
        let out = render_list(
            &rows[..1],
            &ls_args(&[
                "--format",
                "{{.Scope}} {{.Mountpoint}} {{.Labels}} {{.Label \"b\"}} {{.Links}} {{.Size}} {{.Group}} {{.Availability}} {{.Status}}",
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            "local /var/lib/skiff/volumes/web10/_data a=1,b=2 2 2 2MB N/A N/A N/A\n"
        );
        let out = render_list(
            &rows[1..2],
            &ls_args(&["--format", "{{.Links}} {{.Size}} [{{.Labels}}]"]),
        )
        .unwrap();
        assert_eq!(out, "N/A N/A []\n");
        let out = render_list(&rows[1..2], &ls_args(&["--format", "json"])).unwrap();
        assert_eq!(
            out,
            "{\"Availability\":\"N/A\",\"Driver\":\"local\",\"Group\":\"N/A\",\"Labels\":\"\",\"Links\":\"N/A\",\"Mountpoint\":\"/m\",\"Name\":\"capvol\",\"Scope\":\"local\",\"Size\":\"N/A\",\"Status\":\"N/A\"}\n"
        );
        let out = render_list(
            &rows,
            &ls_args(&["--format", "table {{.Name}}\t{{.Mountpoint}}\t{{.Links}}"]),
        )
        .unwrap();
        assert_eq!(
            out,
            "VOLUME NAME   MOUNTPOINT                           LINKS\n\
             capvol        /m                                   N/A\n\
             web2                                               N/A\n\
             web10         /var/lib/skiff/volumes/web10/_data   2\n"
        );
        let cluster = json!({"Name": "c", "ClusterVolume": {"Spec": {"Group": "g", "Availability": "active"},
                             "Info": {"VolumeID": "x"}, "PublishStatus": [{}, {}]}});
        let out = render_list(
            &[cluster],
            &ls_args(&["--format", "{{.Group}} {{.Availability}} {{.Status}}"]),
        )
        .unwrap();
        assert_eq!(out, "g active in use (2 nodes)\n");
    }

    #[test]
    fn inspect_prints_dockers_volume_struct() {
        // docker-api-capture-2 §03: the engine's answer, in the order docker's struct has.
        let engine = json!({"Name": "capvol", "Scope": "local", "Mountpoint": "/var/lib/docker/volumes/capvol/_data",
                            "Labels": {"team": "a"}, "Driver": "local", "Options": null,
                            "CreatedAt": "2026-12-04T19:30:18Z", "Extra": 1});
        let raw = go_json(&as_docker_volume(&engine));
        assert_eq!(
            raw,
            r#"{"CreatedAt":"2026-12-04T19:30:18Z","Driver":"local","Labels":{"team":"a"},"Mountpoint":"/var/lib/docker/volumes/capvol/_data","Name":"capvol","Options":null,"Scope":"local"}"#
        );
        assert_eq!(
            crate::commands::inspected::indent_json(format!("[{raw}]").as_bytes()),
            "[\n    {\n        \"CreatedAt\": \"2026-12-04T19:30:18Z\",\n        \"Driver\": \"local\",\n        \"Labels\": {\n            \"team\": \"a\"\n        },\n        \"Mountpoint\": \"/var/lib/docker/volumes/capvol/_data\",\n        \"Name\": \"capvol\",\n        \"Options\": null,\n        \"Scope\": \"local\"\n    }\n]"
        );
        let sparse = as_docker_volume(&json!({"Name": "v", "Labels": {}, "Status": {},
                                              "UsageData": {"Size": -1, "RefCount": 0}}));
        assert_eq!(
            sparse,
            json!({"Driver": "", "Labels": {}, "Mountpoint": "", "Name": "v", "Options": null,
                   "Scope": "", "UsageData": {"RefCount": 0, "Size": -1}})
        );
        assert_eq!(
            go_json(&json!({"Labels": {"a": "<b>&"}})),
            r#"{"Labels":{"a":"\u003cb\u003e\u0026"}}"#
        );
    }

    #[test]
    fn prune_filters_like_docker() {
        assert_eq!(prune_filters(&prune_args(&[])).unwrap(), None);
        assert_eq!(
            prune_filters(&prune_args(&["-a"])).unwrap().as_deref(),
            Some(r#"{"all":{"true":true}}"#)
        );
        assert_eq!(
            prune_filters(&prune_args(&["--all", "--filter", "label=a=b"]))
                .unwrap()
                .as_deref(),
            Some(r#"{"all":{"true":true},"label":{"a=b":true}}"#)
        );
        let e = prune_filters(&prune_args(&["-a", "--filter", "ALL=1"])).unwrap_err();
        assert_eq!(
            message_of(&e),
            "conflicting options: cannot specify both --all and --filter all=1"
        );
        assert_eq!(e.downcast_ref::<SkiffError>().map(|s| s.code), Some(1));
        let e = prune_filters(&prune_args(&["--filter", "nope"])).unwrap_err();
        assert_eq!(
            message_of(&e),
            "invalid argument \"nope\" for \"--filter\" flag: bad format of filter (expected name=value)"
        );
    }

    #[test]
    fn rm_and_inspect_take_dockers_flags() {
        let VolumeCommand::Rm(r) = parse(&["remove", "-f", "a", "b"]) else {
            panic!("not volume rm");
        };
        assert!(r.force);
        assert_eq!(r.names, vec!["a", "b"]);
        let VolumeCommand::Inspect(i) = parse(&["inspect", "-f", "{{.Name}}", "a"]) else {
            panic!("not volume inspect");
        };
        assert_eq!(i.format.as_deref(), Some("{{.Name}}"));
        assert!(matches!(parse(&["list"]), VolumeCommand::Ls(_)));
        assert!(Cli::parse_from_args(["skiff", "volume", "rm"]).is_err());
        assert!(Cli::parse_from_args(["skiff", "volume", "inspect"]).is_err());
    }
}
