//! `/networks`: list, inspect, create, remove, connect, disconnect, prune; and the network
//! part of container inspect and list.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::filters::Filters;
use super::http::{empty, json, ApiError, Query, Resp};
use super::Ctx;
use crate::containers::record::Record as CRecord;
use crate::network::store::Network;
use crate::network::{self, EndpointConfig, Mode};

fn network_json(ctx: &Ctx, n: &Network, with_containers: bool) -> Value {
    let mut containers = serde_json::Map::new();
    if with_containers {
        for c in ctx.containers.on_network(&n.id) {
            let rec = c.record();
            let Some(ep) = rec
                .net
                .as_ref()
                .filter(|_| rec.state.status.is_live())
                .and_then(|s| s.endpoints.iter().find(|e| e.network_id == n.id))
            else {
                continue;
            };
            containers.insert(
                rec.id.clone(),
                json!({"Name": rec.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                       "IPv4Address": format!("{}/{}", ep.ip, ep.prefix), "IPv6Address": ""}),
            );
        }
    }
    let config: Vec<Value> = match (n.subnet, n.gateway) {
        (Some(s), Some(g)) => {
            let mut c = json!({"Subnet": s.to_string(), "Gateway": g.to_string()});
            if let Some(r) = n.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            vec![c]
        }
        _ => Vec::new(),
    };
    let mut options: BTreeMap<String, String> = n.options.clone();
    if n.is_bridge() {
        options.insert(
            "com.docker.network.bridge.name".into(),
            n.bridge_name(ctx.containers.networks.tag()),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

fn matches(ctx: &Ctx, n: &Network, f: &Filters) -> Result<bool, ApiError> {
    for key in f.keys() {
        let values = f.get(key);
        let ok = match key {
            "name" => values.iter().any(|v| n.name.contains(v.as_str())),
            "id" => values.iter().any(|v| n.id.starts_with(v.as_str())),
            "driver" => values.contains(&n.driver),
            "label" => f.labels_match(|k| n.labels.get(k).map(String::as_str)),
            "type" => values.iter().any(|v| match v.as_str() {
                "custom" => !n.builtin(),
                "builtin" => n.builtin(),
                _ => false,
            }),
            "dangling" => values.iter().any(|v| {
                let dangling = !n.builtin() && ctx.containers.on_network(&n.id).is_empty();
                (v == "true" || v == "1") == dangling
            }),
            "scope" => values.iter().any(|v| v == "local"),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{other}': networks filter on name, id, driver, label, type, dangling or scope"
                )))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn list(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let f = q.filters()?;
    let mut out = Vec::new();
    for n in ctx.containers.networks.all() {
        if matches(ctx, &n, &f)? {
            out.push(network_json(ctx, &n, false));
        }
    }
    Ok(json(StatusCode::OK, &Value::Array(out)))
}

pub fn inspect(ctx: &Ctx, key: &str) -> Result<Resp, ApiError> {
    let n = ctx.containers.networks.get(key)?;
    Ok(json(StatusCode::OK, &network_json(ctx, &n, true)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    gateway: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    attachable: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

fn parse_net(what: &str, s: &str) -> Result<ipnet::Ipv4Net, ApiError> {
    if s.contains(':') {
        return Err(ApiError::bad_request(format!(
            "{what} {s}: IPv6 networks are not supported by skiff yet; give an IPv4 subnet"
        )));
    }
    s.parse::<ipnet::Ipv4Net>()
        .map(|n| n.trunc())
        .map_err(|_| ApiError::bad_request(format!("invalid CIDR address: {s}")))
}

pub fn create(ctx: &Ctx, body: &[u8]) -> Result<Resp, ApiError> {
    let b: CreateBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid network create request: {e}")))?;
    if b.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    if !crate::containers::names::valid(&b.name) && b.name.len() > 1 {
        return Err(ApiError::bad_request(format!(
            "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            b.name
        )));
    }
    let driver = b
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "bridge".into());
    if driver != "bridge" {
        return Err(ApiError::not_found(format!(
            "plugin \"{driver}\" not found: skiff creates bridge networks only"
        )));
    }
    if b.enable_ipv6 == Some(true) {
        return Err(ApiError::bad_request(
            "IPv6 networks are not supported by skiff yet: drop --ipv6",
        ));
    }
    let ipam = b.ipam.unwrap_or_default();
    if ipam
        .driver
        .as_deref()
        .is_some_and(|d| !d.is_empty() && d != "default")
    {
        return Err(ApiError::not_found(format!(
            "plugin \"{}\" not found: only the default IPAM driver exists",
            ipam.driver.unwrap_or_default()
        )));
    }
    let configs = ipam.config.unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request(
            "only one IPv4 subnet per network is supported",
        ));
    }
    let cfg = configs.into_iter().next().unwrap_or_default();
    let subnet = cfg
        .subnet
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_net("subnet", s))
        .transpose()?;
    let ip_range = cfg
        .ip_range
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_net("ip-range", s))
        .transpose()?;
    let gateway = cfg
        .gateway
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|g| {
            g.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ApiError::bad_request(format!("invalid gateway address: {g}")))
        })
        .transpose()?;
    if (gateway.is_some() || ip_range.is_some()) && subnet.is_none() {
        return Err(ApiError::bad_request(
            "--gateway and --ip-range need --subnet",
        ));
    }
    let n = ctx.containers.networks.create(Network {
        id: String::new(),
        name: b.name,
        driver,
        created: crate::containers::record::now_rfc3339(),
        subnet,
        gateway,
        ip_range,
        internal: b.internal,
        attachable: b.attachable,
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        subnet_given: false,
    })?;
    network_event(ctx, "create", &n);
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": n.id, "Warning": ""}),
    ))
}

/// docker's `create` and `destroy` events of a network.
fn network_event(ctx: &Ctx, action: &str, n: &Network) {
    let attrs = std::collections::HashMap::from([
        ("name".to_string(), n.name.clone()),
        ("type".to_string(), n.driver.clone()),
    ]);
    ctx.containers.events.emit_network(action, &n.id, attrs);
}

pub async fn remove(ctx: &Ctx, key: &str) -> Result<Resp, ApiError> {
    let n = ctx.containers.networks.get(key)?;
    ctx.containers.networks.remove(&n).await?;
    network_event(ctx, "destroy", &n);
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<bollard::models::EndpointSettings>,
    force: bool,
}

pub async fn connect(
    ctx: &Ctx,
    key: &str,
    body: &[u8],
    disconnect: bool,
) -> Result<Resp, ApiError> {
    let b: ConnectBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    let n = ctx.containers.networks.get(key)?;
    let c = ctx.containers.get(&b.container)?;
    if disconnect {
        let _ = b.force;
        ctx.containers.disconnect(&c, &n).await?;
    } else {
        let es = b.endpoint_config.unwrap_or_default();
        let cfg = crate::containers::engine::networking::endpoint_config(&es)?;
        ctx.containers.connect(&c, &n, cfg).await?;
    }
    Ok(empty(StatusCode::OK))
}

pub async fn prune(ctx: &Ctx, q: &Query) -> Result<Resp, ApiError> {
    let f = q.filters()?;
    f.only(&["until", "label", "label!"])?;
    let until = f.until()?;
    let mut deleted = Vec::new();
    for n in ctx.containers.networks.all() {
        if n.builtin() || ctx.containers.networks.live_users(&n.id) > 0 {
            continue;
        }
        let labels_ok = f.labels_match(|k| n.labels.get(k).map(String::as_str));
        let old_enough =
            until.is_none_or(|cut| crate::images::model::parse_time(Some(&n.created)) < cut);
        if !labels_ok || !old_enough {
            continue;
        }
        if ctx.containers.networks.remove(&n).await.is_ok() {
            network_event(ctx, "destroy", &n);
            deleted.push(n.name.clone());
        }
    }
    ctx.containers.networks.sweep().await;
    Ok(json(
        StatusCode::OK,
        &json!({"NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }}),
    ))
}

fn endpoint_json(rec: &CRecord, network_id: &str, cfg: Option<&EndpointConfig>) -> Value {
    let ep = rec
        .net
        .as_ref()
        .filter(|_| rec.state.status.is_live())
        .and_then(|s| s.endpoints.iter().find(|e| e.network_id == network_id));
    let aliases = cfg
        .filter(|c| !c.aliases.is_empty())
        .map(|c| c.aliases.clone());
    let ipam = cfg
        .and_then(|c| c.ipv4)
        .map(|ip| json!({"IPv4Address": ip.to_string()}));
    json!({
        "IPAMConfig": ipam,
        "Links": Value::Null,
        "Aliases": aliases,
        "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
        "DriverOpts": Value::Null,
        "GwPriority": 0,
        "NetworkID": network_id,
        "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": ep.map(|e| e.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": ep.map(|e| json!(e.dns_names)).unwrap_or(Value::Null),
    })
}

/// `NetworkSettings.Networks` of a container, keyed by network name as docker does.
pub fn container_networks(ctx: &Ctx, rec: &CRecord) -> Value {
    let mut out = serde_json::Map::new();
    let mode = rec.host_config.network_mode.clone().unwrap_or_default();
    match network::mode_of(&mode) {
        Mode::Host => {
            out.insert(
                "host".into(),
                endpoint_json(rec, &net_id(ctx, "host"), None),
            );
        }
        Mode::Container(_) => {}
        Mode::Own if rec.networks.is_empty() => {
            out.insert(
                "none".into(),
                endpoint_json(rec, &net_id(ctx, "none"), None),
            );
        }
        Mode::Own => {
            for (id, cfg) in &rec.networks {
                let name = ctx
                    .containers
                    .networks
                    .get(id)
                    .map(|n| n.name)
                    .unwrap_or_else(|_| id.clone());
                out.insert(name, endpoint_json(rec, id, Some(cfg)));
            }
        }
    }
    Value::Object(out)
}

fn net_id(ctx: &Ctx, name: &str) -> String {
    ctx.containers
        .networks
        .get(name)
        .map(|n| n.id)
        .unwrap_or_default()
}

/// The published ports of a running container (none otherwise).
pub fn published(rec: &CRecord) -> Vec<network::ports::Published> {
    rec.net
        .as_ref()
        .filter(|_| rec.state.status.is_live())
        .map(|s| s.ports.clone())
        .unwrap_or_default()
}

/// inspect's `NetworkSettings`.
pub fn network_settings(ctx: &Ctx, c: &crate::containers::Container) -> Value {
    let rec = c.record();
    let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
    let live = rec.state.status.is_live();
    let bridge_id = net_id(ctx, "bridge");
    // docker's top-level fields describe the default bridge endpoint only.
    let top = rec
        .net
        .as_ref()
        .filter(|_| live)
        .and_then(|s| s.endpoints.iter().find(|e| e.network_id == bridge_id));
    let sandbox = rec
        .net
        .as_ref()
        .filter(|_| live)
        .and_then(|s| s.netns.clone())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    json!({
        "Bridge": "",
        "SandboxID": if sandbox.is_empty() { String::new() } else { c.id.clone() },
        "SandboxKey": sandbox,
        "Ports": network::ports::inspect_ports(&exposed, &published(&rec)),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": Value::Null,
        "SecondaryIPv6Addresses": Value::Null,
        "EndpointID": top.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": top.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": top.map(|e| e.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "MacAddress": top.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": container_networks(ctx, &rec),
    })
}
