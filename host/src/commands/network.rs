//! `network create|ls|inspect|rm|connect|disconnect|prune`: the requests, columns and
//! messages of the docker 28 CLI (`cli/command/network`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::api::{error_message, filters_json, filters_json_flag, message_of, query, seg};
use super::api::{status_of, Api, Body};
use super::disk::listed;
use super::endpoint::{endpoint_ipam, endpoint_settings};
use super::gofmt::{go_time_string, natural_cmp};
use super::inspected::print_inspected;
use super::opts::{cidr_contains, go_parse_ip, kv_map, parse_cidr, validate_label};
use super::ps::truncate_id;
use super::run::with_help;
use super::term::confirm;
use super::Engine;
use crate::cli::{
    NetworkConnectArgs, NetworkCreateArgs, NetworkDisconnectArgs, NetworkInspectArgs,
    NetworkLsArgs, NetworkPruneArgs, NetworkRmArgs,
};
use crate::output::{outln, write_template, Format};
use crate::SkiffError;

const DEFAULT_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

const PRUNE_WARNING: &str =
    "WARNING! This will remove all custom networks not used by at least one container.
Are you sure you want to continue?";

/// The docker client's `trimID`: names are trimmed, and an empty one is refused before any
/// request (a bare `/networks/` would be a list, not an error).
pub fn trim_id(kind: &str, id: &str) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() {
        return Err(format!("invalid {kind} name or ID: value is empty"));
    }
    Ok(id.to_string())
}

/// A failure docker prints as it is and exits 1 for (it is no cli.StatusError).
fn plain(message: impl Into<String>) -> anyhow::Error {
    SkiffError::with_code(message, 1).into()
}

/// docker's subnetMatches: whether `data` (an address or a CIDR) lies in `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let net = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        Some(parse_cidr(data)?.0)
    } else {
        go_parse_ip(data)
    };
    Ok(ip.is_some_and(|ip| cidr_contains(net, ip)))
}

/// docker's createIPAMConfig: each --ip-range, --gateway and --aux-address goes with the
/// --subnet containing it. Subnets stay in the order given (docker's come out of a Go map,
/// in no particular order).
fn ipam_config(a: &NetworkCreateArgs) -> Result<Value, String> {
    if a.subnet.len() < a.ip_range.len() || a.subnet.len() < a.gateway.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    struct Pool {
        subnet: String,
        ip_range: String,
        gateway: String,
        aux: BTreeMap<String, String>,
    }
    let mut pools: Vec<Pool> = Vec::new();
    for s in &a.subnet {
        for p in &pools {
            if subnet_matches(s, &p.subnet)? || subnet_matches(&p.subnet, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        pools.push(Pool {
            subnet: s.clone(),
            ip_range: String::new(),
            gateway: String::new(),
            aux: BTreeMap::new(),
        });
    }
    for r in &a.ip_range {
        let mut matched = false;
        for p in pools.iter_mut() {
            parse_cidr(r)?;
            if !subnet_matches(&p.subnet, r)? {
                continue;
            }
            if !p.ip_range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    p.ip_range, p.subnet
                ));
            }
            p.ip_range = r.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in &a.gateway {
        let mut matched = false;
        for p in pools.iter_mut() {
            if !subnet_matches(&p.subnet, g)? {
                continue;
            }
            if !p.gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    p.gateway, p.subnet
                ));
            }
            p.gateway = g.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, addr) in kv_map(&a.aux_address) {
        let mut matched = false;
        for p in pools.iter_mut() {
            if !subnet_matches(&p.subnet, &addr)? {
                continue;
            }
            p.aux.insert(key.clone(), addr.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {addr}"));
        }
    }
    let config: Vec<Value> = pools
        .into_iter()
        .map(|p| {
            // IPAMConfig's fields are all omitempty.
            let mut m = Map::new();
            m.insert("Subnet".into(), json!(p.subnet));
            if !p.ip_range.is_empty() {
                m.insert("IPRange".into(), json!(p.ip_range));
            }
            if !p.gateway.is_empty() {
                m.insert("Gateway".into(), json!(p.gateway));
            }
            if !p.aux.is_empty() {
                m.insert("AuxiliaryAddresses".into(), json!(p.aux));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({
        "Driver": a.ipam_driver,
        "Options": kv_map(&a.ipam_opt),
        "Config": config,
    }))
}

/// Why `create_body` refused: a flag error (125, with the usage hint) or one docker reports
/// plainly (exit 1).
#[derive(Debug, PartialEq)]
pub enum CreateError {
    Flag(String),
    Plain(String),
}

/// The `POST /networks/create` body the docker 28 CLI sends. `CheckDuplicate` is left out:
/// the client only sets it below API 1.44, and the agent speaks 1.47.
pub fn create_body(a: &NetworkCreateArgs) -> Result<Value, CreateError> {
    for l in &a.label {
        validate_label(l).map_err(|e| {
            CreateError::Flag(format!(
                "invalid argument \"{l}\" for \"--label\" flag: {e}"
            ))
        })?;
    }
    let ipam = ipam_config(a).map_err(CreateError::Plain)?;
    let mut body = Map::new();
    body.insert("Name".into(), json!(a.name));
    body.insert("Driver".into(), json!(a.driver));
    body.insert("Scope".into(), json!(a.scope.clone().unwrap_or_default()));
    // Sent only when given, so the engine's own default applies otherwise.
    if let Some(v) = a.ipv4 {
        body.insert("EnableIPv4".into(), json!(v));
    }
    if let Some(v) = a.ipv6 {
        body.insert("EnableIPv6".into(), json!(v));
    }
    body.insert("IPAM".into(), ipam);
    body.insert("Internal".into(), json!(a.internal));
    body.insert("Attachable".into(), json!(a.attachable));
    body.insert("Ingress".into(), json!(false));
    body.insert("ConfigOnly".into(), json!(a.config_only));
    body.insert(
        "ConfigFrom".into(),
        match a.config_from.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => json!({ "Network": c }),
            None => Value::Null,
        },
    );
    body.insert("Options".into(), json!(kv_map(&a.opt)));
    body.insert("Labels".into(), json!(kv_map(&a.label)));
    Ok(Value::Object(body))
}

pub async fn create(engine: &Engine, a: &NetworkCreateArgs) -> Result<u8> {
    let body = match create_body(a) {
        Ok(b) => b,
        Err(CreateError::Flag(e)) => return Err(with_help(&e, "network create", 125)),
        Err(CreateError::Plain(e)) => return Err(plain(e)),
    };
    let v = engine
        .api()
        .json("POST", "/networks/create", Body::Json(&body))
        .await?;
    outln(v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Go's `strconv.FormatBool` of a field that may be absent.
fn go_bool(v: &Value) -> String {
    v.as_bool().unwrap_or(false).to_string()
}

/// One network summary as the template fields of docker's networkContext.
pub fn row(n: &Value, trunc: bool) -> Value {
    let id = s(n, "Id");
    let labels_map = n["Labels"].as_object().cloned().unwrap_or_default();
    // docker joins them in Go's random map order; sorted is one of those orders, and stable.
    let labels: Vec<String> = labels_map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    json!({
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Name": s(n, "Name"),
        "Driver": s(n, "Driver"),
        "Scope": s(n, "Scope"),
        "IPv4": go_bool(&n["EnableIPv4"]),
        "IPv6": go_bool(&n["EnableIPv6"]),
        "Internal": go_bool(&n["Internal"]),
        "Labels": labels.join(","),
        "Label": Value::Object(labels_map),
        "CreatedAt": go_time_string(s(n, "Created")),
    })
}

pub fn header(field: &str) -> String {
    match field.split_whitespace().next().unwrap_or(field) {
        "ID" => "NETWORK ID",
        "Name" => "NAME",
        "Driver" => "DRIVER",
        "Scope" => "SCOPE",
        "IPv4" => "IPV4",
        "IPv6" => "IPV6",
        "Internal" => "INTERNAL",
        "Labels" => "LABELS",
        "Label" => "LABEL",
        "CreatedAt" => "CREATED AT",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// What `network ls` prints for the engine's list: sorted by name in natural order, as
/// docker. `-q` only replaces the table format (docker's newFormat), so `-q --format X`
/// still uses X.
pub fn render_list(list: &[Value], a: &NetworkLsArgs) -> Result<String, String> {
    let mut list: Vec<&Value> = list.iter().collect();
    list.sort_by(|x, y| natural_cmp(s(x, "Name"), s(y, "Name")));
    let rows: Vec<Value> = list.iter().map(|n| row(n, !a.no_trunc)).collect();
    let mut out = Vec::new();
    let is_table = matches!(a.format.as_deref(), None | Some("") | Some("table"));
    if a.quiet && is_table {
        write_template(&mut out, false, "{{.ID}}", &header, &rows)?;
    } else {
        match Format::parse(a.format.as_deref()) {
            Format::Json => {
                for r in &rows {
                    let mut m = r.as_object().cloned().unwrap_or_default();
                    m.remove("Label");
                    out.extend_from_slice(Value::Object(m).to_string().as_bytes());
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

pub async fn list(engine: &Engine, a: &NetworkLsArgs) -> Result<u8> {
    let mut q = Vec::new();
    if let Some(f) = filters_json(&a.filters)? {
        q.push(("filters", f));
    }
    let v = engine
        .api()
        .json("GET", &format!("/networks{}", query(&q)), Body::None)
        .await?;
    let list = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    crate::output::out(&render_list(list, a).map_err(SkiffError::new)?);
    Ok(0)
}

/// What a failed `GET /networks/{id}` prints. docker 28 prints the engine's own message
/// ("network x not found"); only a 404 without one falls back to the older client's words.
pub fn inspect_error(status: u16, reason: &str, body: &[u8], name: &str) -> String {
    if status == 404 && body.iter().all(u8::is_ascii_whitespace) {
        return format!("Error: No such network: {name}");
    }
    format!(
        "Error response from daemon: {}",
        error_message(status, reason, body)
    )
}

/// Why one network could not be inspected: the text to print, and the engine's status.
#[derive(Debug)]
pub struct InspectFailure {
    pub status: Option<u16>,
    pub message: String,
}

/// One network's JSON as the engine sent it, or why not for this name. Only a failure to
/// reach the engine at all is an `Err`.
pub async fn inspect_raw(
    api: &Api,
    name: &str,
    verbose: bool,
) -> Result<Result<Vec<u8>, InspectFailure>> {
    let id = match trim_id("network", name) {
        Ok(id) => id,
        Err(message) => {
            return Ok(Err(InspectFailure {
                status: None,
                message,
            }))
        }
    };
    let mut q = Vec::new();
    if verbose {
        q.push(("verbose", "true".to_string()));
    }
    let target = format!("/networks/{}{}", seg(&id), query(&q));
    let resp = api.request("GET", &target, Body::None).await?;
    let (status, reason) = (resp.status, resp.head.reason.clone());
    let mut body = resp.bytes().await?;
    if status >= 400 {
        return Ok(Err(InspectFailure {
            status: Some(status),
            message: inspect_error(status, &reason, &body, name),
        }));
    }
    while body.last().is_some_and(u8::is_ascii_whitespace) {
        body.pop();
    }
    Ok(Ok(body))
}

pub async fn inspect(engine: &Engine, a: &NetworkInspectArgs) -> Result<u8> {
    let api = engine.api();
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match inspect_raw(&api, n, a.verbose).await? {
            Ok(r) => raws.push(r),
            Err(e) => errors.push(e.message),
        }
    }
    print_inspected(&raws, a.format.as_deref())?;
    // docker joins the errors into the one it exits with, after the output.
    if !errors.is_empty() {
        return Err(plain(errors.join("\n")));
    }
    Ok(0)
}

pub async fn remove(engine: &Engine, a: &NetworkRmArgs) -> Result<u8> {
    let api = engine.api();
    let mut failed = false;
    // One after the other, each result printed as it comes, as docker.
    for name in &a.names {
        let result = match trim_id("network", name) {
            Ok(id) => api
                .call("DELETE", &format!("/networks/{}", seg(&id)), Body::None)
                .await
                .map(|_| ()),
            Err(e) => Err(plain(e)),
        };
        match result {
            Ok(()) => outln(name),
            Err(e) if a.force && status_of(&e) == Some(404) => {}
            Err(e) => {
                eprintln!("{}", message_of(&e));
                failed = true;
            }
        }
    }
    if failed {
        // docker's cli.StatusError{Status: "exit status 1"}, which its main prints too.
        return Err(plain("exit status 1"));
    }
    Ok(0)
}

/// docker's convertDriverOpt for `--driver-opt`: keys and values trimmed, a key required.
fn driver_opts(items: &[String]) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for o in items {
        match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                m.insert(k.trim().to_string(), json!(v.trim()));
            }
            _ => return Err("invalid key/value pair format in driver options".into()),
        }
    }
    Ok(m)
}

/// The `POST /networks/{id}/connect` body: docker always sends an IPAMConfig (empty
/// without addresses) and its slices as given, so `[]` rather than null for no aliases.
pub fn connect_body(a: &NetworkConnectArgs, container: &str) -> Result<Value, String> {
    let opts = driver_opts(&a.driver_opt)?;
    let ipam = endpoint_ipam(
        a.ip.as_deref().unwrap_or(""),
        a.ip6.as_deref().unwrap_or(""),
        &a.link_local_ip,
    );
    Ok(json!({
        "Container": container,
        "EndpointConfig": endpoint_settings(ipam, json!(a.alias), Value::Object(opts), a.gw_priority),
    }))
}

pub async fn connect(engine: &Engine, a: &NetworkConnectArgs) -> Result<u8> {
    let network = trim_id("network", &a.network).map_err(plain)?;
    let container = trim_id("container", &a.container).map_err(plain)?;
    let body = connect_body(a, &container).map_err(plain)?;
    engine
        .api()
        .call(
            "POST",
            &format!("/networks/{}/connect", seg(&network)),
            Body::Json(&body),
        )
        .await?;
    Ok(0)
}

pub async fn disconnect(engine: &Engine, a: &NetworkDisconnectArgs) -> Result<u8> {
    let network = trim_id("network", &a.network).map_err(plain)?;
    let container = trim_id("container", &a.container).map_err(plain)?;
    let body = json!({ "Container": container, "Force": a.force });
    engine
        .api()
        .call(
            "POST",
            &format!("/networks/{}/disconnect", seg(&network)),
            Body::Json(&body),
        )
        .await?;
    Ok(0)
}

pub async fn prune(engine: &Engine, a: &NetworkPruneArgs) -> Result<u8> {
    let filters = filters_json_flag(&a.filters, "--filter")?;
    // A "no" is docker's cancelled error: nothing printed, exit 0.
    if !a.force && !confirm(PRUNE_WARNING)? {
        return Ok(0);
    }
    let q = match filters {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let v = engine
        .api()
        .json("POST", &format!("/networks/prune{q}"), Body::None)
        .await?;
    let out = listed(&v, "NetworksDeleted", "Deleted Networks:");
    // docker prints the list (which ends in a newline) with Println: a blank line follows.
    if !out.is_empty() {
        outln(&out);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, NetworkCommand};
    use clap::Parser;

    fn create_args(args: &[&str]) -> NetworkCreateArgs {
        let mut all = vec!["skiff", "network", "create"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Network(NetworkCommand::Create(a))) => a,
            other => panic!("not network create: {other:?}"),
        }
    }

    fn ls_args(args: &[&str]) -> NetworkLsArgs {
        let mut all = vec!["skiff", "network", "ls"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Network(NetworkCommand::Ls(a))) => a,
            other => panic!("not network ls: {other:?}"),
        }
    }

    fn connect_args(args: &[&str]) -> NetworkConnectArgs {
        let mut all = vec!["skiff", "network", "connect"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Network(NetworkCommand::Connect(a))) => a,
            other => panic!("not network connect: {other:?}"),
        }
    }

    #[test]
    fn create_body_like_docker() {
        let b = create_body(&create_args(&["n1"])).unwrap();
        assert_eq!(
            b,
            json!({
                "Name": "n1", "Driver": "bridge", "Scope": "",
                "IPAM": {"Driver": "default", "Options": {}, "Config": []},
                "Internal": false, "Attachable": false, "Ingress": false, "ConfigOnly": false,
                "ConfigFrom": null, "Options": {}, "Labels": {}
            })
        );
        let b = create_body(&create_args(&[
            "--driver",
            "bridge",
            "--subnet",
            "172.30.0.0/16",
            "--gateway",
            "172.30.0.1",
            "--ip-range",
            "172.30.5.0/24",
            "--internal",
            "--attachable",
            "--label",
            "a=1",
            "--label",
            "b",
            "-o",
            "com.docker.network.bridge.name=br-x",
            "--aux-address",
            "host=172.30.0.5",
            "--ipv6=false",
            "n2",
        ]))
        .unwrap();
        assert_eq!(
            b["IPAM"],
            json!({"Driver": "default", "Options": {}, "Config": [{
                "Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1", "IPRange": "172.30.5.0/24",
                "AuxiliaryAddresses": {"host": "172.30.0.5"}
            }]})
        );
        assert_eq!(b["Internal"], true);
        assert_eq!(b["Attachable"], true);
        assert_eq!(b["Labels"], json!({"a": "1", "b": ""}));
        assert_eq!(
            b["Options"],
            json!({"com.docker.network.bridge.name": "br-x"})
        );
        assert_eq!(b["EnableIPv6"], false);
        assert!(b.get("EnableIPv4").is_none());
        assert!(b.get("CheckDuplicate").is_none());
        let b = create_body(&create_args(&[
            "--subnet",
            "10.1.0.0/24,fd00::/64",
            "--gateway",
            "fd00::1",
            "n3",
        ]))
        .unwrap();
        assert_eq!(
            b["IPAM"]["Config"],
            json!([{"Subnet": "10.1.0.0/24"}, {"Subnet": "fd00::/64", "Gateway": "fd00::1"}])
        );
    }

    #[test]
    fn create_refuses_what_docker_refuses() {
        let err = |args: &[&str]| create_body(&create_args(args)).unwrap_err();
        let plain = |m: &str| CreateError::Plain(m.to_string());
        assert_eq!(
            err(&["--gateway", "10.0.0.1", "n"]),
            plain("every ip-range or gateway must have a corresponding subnet")
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16", "n"]),
            plain("multiple overlapping subnet configuration is not supported")
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/24", "--gateway", "10.9.0.1", "n"]),
            plain("no matching subnet for gateway 10.9.0.1")
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/24", "--ip-range", "10.9.0.0/28", "n"]),
            plain("no matching subnet for range 10.9.0.0/28")
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/24", "--ip-range", "bad", "n"]),
            plain("invalid CIDR address: bad")
        );
        assert_eq!(
            err(&["--subnet", "bad", "--gateway", "10.0.0.1", "n"]),
            plain("invalid subnet: invalid CIDR address: bad")
        );
        assert_eq!(
            err(&["--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1,10.0.0.2", "--subnet", "10.1.0.0/24", "n"]),
            plain("cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)")
        );
        assert_eq!(
            err(&[
                "--subnet",
                "10.0.0.0/24",
                "--aux-address",
                "x=10.7.0.1",
                "n"
            ]),
            plain("no matching subnet for aux-address 10.7.0.1")
        );
        assert_eq!(
            err(&["--label", "=x", "n"]),
            CreateError::Flag(
                "invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name"
                    .into()
            )
        );
        // A lone subnet is not parsed client-side (docker compares only pairs): the engine says.
        assert!(create_body(&create_args(&["--subnet", "bad", "n"])).is_ok());
    }

    fn summaries() -> Vec<Value> {
        vec![
            json!({"Name": "web10", "Id": "c".repeat(64), "Driver": "bridge", "Scope": "local",
                   "Created": "2024-05-01T10:00:00.5Z", "Labels": {"b": "2", "a": "1"}, "Internal": true}),
            json!({"Name": "bridge", "Id": "a".repeat(64), "Driver": "bridge", "Scope": "local",
                   "EnableIPv4": true, "Labels": {}}),
            json!({"Name": "web2", "Id": "b".repeat(64), "Driver": "bridge", "Scope": "local"}),
            json!({"Name": "host", "Id": "d".repeat(64), "Driver": "host", "Scope": "local"}),
        ]
    }

    #[test]
    fn ls_table_like_docker() {
        let out = render_list(&summaries(), &ls_args(&[])).unwrap();
        assert_eq!(
            out,
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             aaaaaaaaaaaa   bridge    bridge    local\n\
             dddddddddddd   host      host      local\n\
             bbbbbbbbbbbb   web2      bridge    local\n\
             cccccccccccc   web10     bridge    local\n"
        );
        let out = render_list(&summaries(), &ls_args(&["-q", "--no-trunc"])).unwrap();
        let ids: Vec<&str> = out.lines().collect();
        assert_eq!(ids[0], "a".repeat(64));
        assert_eq!(ids.len(), 4);
        // -q gives way to a custom format, as in docker.
        let out = render_list(&summaries(), &ls_args(&["-q", "--format", "{{.Name}}"])).unwrap();
        assert_eq!(out, "bridge\nhost\nweb2\nweb10\n");
        assert_eq!(
            render_list(&[], &ls_args(&[])).unwrap(),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
    }

    #[test]
    fn ls_fields_like_docker() {
        let rows = summaries();
        let out = render_list(
            &rows[..1],
            &ls_args(&[
                "--format",
                "{{.IPv4}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.Label \"b\"}} {{.CreatedAt}}",
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            "false false true a=1,b=2 2 2024-05-01 10:00:00.5 +0000 UTC\n"
        );
        let out = render_list(&rows[1..2], &ls_args(&["--format", "json"])).unwrap();
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["ID"], "aaaaaaaaaaaa");
        assert_eq!(v["IPv4"], "true");
        assert!(v.get("Label").is_none());
        let out = render_list(
            &rows[1..2],
            &ls_args(&["--format", "table {{.Name}}\t{{.Internal}}"]),
        )
        .unwrap();
        assert_eq!(out, "NAME      INTERNAL\nbridge    false\n");
    }

    #[test]
    fn connect_and_run_endpoints_like_docker() {
        let b = connect_body(&connect_args(&["n1", "web"]), "web").unwrap();
        assert_eq!(b["Container"], "web");
        let ep = &b["EndpointConfig"];
        assert_eq!(ep["IPAMConfig"], json!({}));
        assert_eq!(ep["Aliases"], json!([]));
        assert_eq!(ep["DriverOpts"], json!({}));
        assert_eq!(ep["Links"], Value::Null);
        let b = connect_body(
            &connect_args(&[
                "--alias",
                "db",
                "--alias",
                "sql",
                "--ip",
                "172.30.0.9",
                "--driver-opt",
                " k = v ",
                "n1",
                "web",
            ]),
            "web",
        )
        .unwrap();
        let ep = &b["EndpointConfig"];
        assert_eq!(ep["IPAMConfig"], json!({"IPv4Address": "172.30.0.9"}));
        assert_eq!(ep["Aliases"], json!(["db", "sql"]));
        assert_eq!(ep["DriverOpts"], json!({"k": "v"}));
        assert_eq!(
            connect_body(
                &connect_args(&["--driver-opt", "novalue", "n1", "web"]),
                "web"
            ),
            Err("invalid key/value pair format in driver options".into())
        );
    }

    #[test]
    fn errors_like_docker() {
        assert_eq!(
            inspect_error(
                404,
                "Not Found",
                br#"{"message":"network nope not found"}"#,
                "nope"
            ),
            "Error response from daemon: network nope not found"
        );
        assert_eq!(
            inspect_error(404, "Not Found", b"", "nope"),
            "Error: No such network: nope"
        );
        assert_eq!(
            trim_id("network", "  "),
            Err("invalid network name or ID: value is empty".into())
        );
        assert_eq!(trim_id("network", " n1 "), Ok("n1".into()));
    }
}
