//! `/networks`: list, inspect, create, remove, connect, disconnect, prune; and the network
//! part of container inspect and list.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::backends::{ContainerBackend, NetworkBackend};
use super::filters::{Filters, PruneFilters};
use super::http::{empty, json, ApiError, Query, Resp};
use super::Ctx;
use crate::containers::record::Record as CRecord;
use crate::network::store::Network;
use crate::network::{self, EndpointConfig, Mode};

/// A network as `GET /networks` lists it; with the containers on it as inspect shows them.
fn network_json(b: &dyn NetworkBackend, on_it: Option<&[CRecord]>, n: &Network) -> Value {
    let mut containers = serde_json::Map::new();
    if let Some(recs) = on_it {
        for rec in recs {
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
    // dockerd names the Linux bridge in Options only for the default network (docker0), whose
    // options are set at daemon start; a user network's Options are what its creator gave.
    // compose compares them with the file's driver_opts, and an extra key made it demand that
    // every project network be recreated.
    if n.is_bridge() && n.builtin() {
        options.insert("com.docker.network.bridge.name".into(), b.bridge_name(n));
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

/// The containers attached to a network, whatever their state.
fn attached(recs: &[CRecord], network_id: &str) -> Vec<CRecord> {
    recs.iter()
        .filter(|r| r.networks.iter().any(|(id, _)| id == network_id))
        .cloned()
        .collect()
}

fn matches(recs: &[CRecord], n: &Network, f: &Filters) -> Result<bool, ApiError> {
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
                let dangling = !n.builtin() && attached(recs, &n.id).is_empty();
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
    let items = list_items(&*ctx.containers, &*ctx.containers, q)?;
    Ok(json(StatusCode::OK, &Value::Array(items)))
}

fn list_items(
    networks: &dyn NetworkBackend,
    containers: &dyn ContainerBackend,
    q: &Query,
) -> Result<Vec<Value>, ApiError> {
    let f = q.filters()?;
    let recs = containers.records();
    let mut out = Vec::new();
    for n in networks.networks() {
        if matches(&recs, &n, &f)? {
            out.push(network_json(networks, None, &n));
        }
    }
    Ok(out)
}

pub fn inspect(ctx: &Ctx, key: &str) -> Result<Resp, ApiError> {
    let body = inspect_json(&*ctx.containers, &*ctx.containers, key)?;
    Ok(json(StatusCode::OK, &body))
}

fn inspect_json(
    networks: &dyn NetworkBackend,
    containers: &dyn ContainerBackend,
    key: &str,
) -> Result<Value, ApiError> {
    let n = networks.network(key)?;
    let on_it = attached(&containers.records(), &n.id);
    Ok(network_json(networks, Some(&on_it), &n))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    gateway: Option<String>,
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    options: Option<BTreeMap<String, String>>,
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

pub async fn create(ctx: &Ctx, body: &[u8]) -> Result<Resp, ApiError> {
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
    if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "skiff's IPAM takes no options: drop --ipam-opt",
        ));
    }
    let configs = ipam.config.unwrap_or_default();
    if configs.iter().any(|c| {
        c.auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
    }) {
        return Err(ApiError::bad_request(
            "skiff cannot reserve auxiliary addresses in a network: drop --aux-address",
        ));
    }
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
    // A subnet is free again only once the bridge of a network removed just before is gone.
    ctx.containers.networks.settle_bridges().await;
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
    ctx.containers.networks.warm(&n);
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
    let mut deleted = Vec::new();
    // A container removed just before still counts on its networks until its veth is gone.
    ctx.containers.networks.settle_all().await;
    for n in prunable(&*ctx.containers, q)? {
        match ctx.containers.networks.remove(&n).await {
            Ok(()) => {
                network_event(ctx, "destroy", &n);
                deleted.push(n.name.clone());
            }
            // A container joined it since it was chosen.
            Err(e) => tracing::info!("prune: keeping network {}: {e}", n.name),
        }
    }
    ctx.containers.networks.sweep().await;
    Ok(json(
        StatusCode::OK,
        &json!({"NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }}),
    ))
}

/// The networks `network prune` removes: user-defined, unused, by its filters.
fn prunable(networks: &dyn NetworkBackend, q: &Query) -> Result<Vec<Network>, ApiError> {
    let prune = PruneFilters::parse(q.get("filters"), &[])?;
    Ok(networks
        .networks()
        .into_iter()
        .filter(|n| {
            !n.builtin()
                && networks.live_users(&n.id) == 0
                && prune.admit(crate::images::model::parse_time(Some(&n.created)), |k| {
                    n.labels.get(k).map(String::as_str)
                })
        })
        .collect())
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
pub fn container_networks(networks: &dyn NetworkBackend, rec: &CRecord) -> Value {
    let mut out = serde_json::Map::new();
    let mode = rec.host_config.network_mode.clone().unwrap_or_default();
    match network::mode_of(&mode) {
        Mode::Host => {
            out.insert(
                "host".into(),
                endpoint_json(rec, &net_id(networks, "host"), None),
            );
        }
        Mode::Container(_) => {}
        Mode::Own if rec.networks.is_empty() => {
            out.insert(
                "none".into(),
                endpoint_json(rec, &net_id(networks, "none"), None),
            );
        }
        Mode::Own => {
            for (id, cfg) in &rec.networks {
                let name = networks
                    .network(id)
                    .map(|n| n.name)
                    .unwrap_or_else(|_| id.clone());
                out.insert(name, endpoint_json(rec, id, Some(cfg)));
            }
        }
    }
    Value::Object(out)
}

fn net_id(networks: &dyn NetworkBackend, name: &str) -> String {
    networks.network(name).map(|n| n.id).unwrap_or_default()
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
pub fn network_settings(networks: &dyn NetworkBackend, rec: &CRecord) -> Value {
    let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
    let live = rec.state.status.is_live();
    let bridge_id = net_id(networks, "bridge");
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
        "SandboxID": if sandbox.is_empty() { String::new() } else { rec.id.clone() },
        "SandboxKey": sandbox,
        "Ports": network::ports::inspect_ports(&exposed, &published(rec)),
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
        "Networks": container_networks(networks, rec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backends::fake::{FakeContainers, FakeNetworks};
    use crate::containers::record::{sample_record, Status};
    use crate::network::{Endpoint, NetState};

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    /// `name`, attached to `net` (with alias `db`), running with an endpoint there or stopped.
    fn on(name: &str, net: &Network, running: bool) -> CRecord {
        let mut r = sample_record();
        r.name = name.into();
        r.id = format!("{:0<64}", name);
        let cfg = EndpointConfig {
            aliases: vec!["db".into()],
            ipv4: None,
        };
        r.networks = vec![(net.id.clone(), cfg)];
        r.state.status = if running {
            Status::Running
        } else {
            Status::Exited
        };
        r.net = running.then(|| NetState {
            netns: Some("/run/netns/x".into()),
            endpoints: vec![Endpoint {
                network_id: net.id.clone(),
                endpoint_id: "e".repeat(64),
                host_veth: "veth0".into(),
                ifname: "eth0".into(),
                ip: "10.5.0.2".parse().unwrap(),
                prefix: 24,
                gateway: "10.5.0.1".parse().unwrap(),
                mac: "02:42:0a:05:00:02".into(),
                dns_names: vec![name.into(), "db".into()],
            }],
            ports: Vec::new(),
        });
        r
    }

    fn names(items: &[Value]) -> Vec<&str> {
        items.iter().map(|n| n["Name"].as_str().unwrap()).collect()
    }

    #[test]
    fn list_filters_as_docker() {
        let mut nets = FakeNetworks::with(&[("front", "10.5.0.0/24"), ("back", "10.6.0.0/24")]);
        nets.networks[3].labels.insert("tier".into(), "web".into());
        let containers = FakeContainers {
            records: vec![on("api", &nets.networks[3], false)],
            ..Default::default()
        };
        let only = |f: &str| {
            let items = list_items(&nets, &containers, &q(&format!("filters={f}"))).unwrap();
            names(&items)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(only("{}"), ["bridge", "host", "none", "front", "back"]);
        // A network is dangling with no container attached, running or not.
        assert_eq!(only(r#"{"dangling":["true"]}"#), ["back"]);
        assert_eq!(only(r#"{"type":["custom"]}"#), ["front", "back"]);
        assert_eq!(only(r#"{"type":["builtin"]}"#), ["bridge", "host", "none"]);
        assert_eq!(only(r#"{"driver":["null"]}"#), ["none"]);
        assert_eq!(only(r#"{"name":["ro"]}"#), ["front"]);
        assert_eq!(only(r#"{"label":["tier=web"]}"#), ["front"]);
        assert_eq!(only(r#"{"id":["hosthost"]}"#), ["host"]);
        let e = list_items(&nets, &containers, &q(r#"filters={"colour":["x"]}"#)).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(
            e.message.starts_with("invalid filter 'colour'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn inspect_shows_running_members_and_the_bridge() {
        let nets = FakeNetworks::with(&[("front", "10.5.0.0/24")]);
        let front = nets.networks[3].clone();
        let containers = FakeContainers {
            records: vec![on("api", &front, true), on("old", &front, false)],
            ..Default::default()
        };
        let v = inspect_json(&nets, &containers, "front").unwrap();
        assert_eq!(
            v["IPAM"]["Config"],
            json!([{"Subnet": "10.5.0.0/24", "Gateway": "10.5.0.1"}])
        );
        assert!(
            v["Options"].get("com.docker.network.bridge.name").is_none(),
            "a user network's Options are its creator's: {}",
            v["Options"]
        );
        let default = inspect_json(&nets, &containers, "bridge").unwrap();
        assert!(default["Options"]["com.docker.network.bridge.name"].is_string());
        let members = v["Containers"].as_object().unwrap();
        assert_eq!(
            members.len(),
            1,
            "only running containers are members: {members:?}"
        );
        let api = &members[&format!("{:0<64}", "api")];
        assert_eq!(api["Name"], "api");
        assert_eq!(api["IPv4Address"], "10.5.0.2/24");
        let e = inspect_json(&nets, &containers, "nope").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (404, "network nope not found")
        );
    }

    #[test]
    fn prune_takes_unused_user_defined_networks_by_filter() {
        let mut nets = FakeNetworks::with(&[("front", "10.5.0.0/24"), ("back", "10.6.0.0/24")]);
        nets.live_users.insert(nets.networks[3].id.clone(), 1);
        nets.networks[4].labels.insert("keep".into(), "yes".into());
        let chosen = |f: &str| {
            let p = prunable(&nets, &q(&format!("filters={f}"))).unwrap();
            p.into_iter().map(|n| n.name).collect::<Vec<_>>()
        };
        assert_eq!(chosen("{}"), ["back"]);
        assert!(chosen(r#"{"label!":["keep"]}"#).is_empty());
        assert!(chosen(r#"{"until":["2025-01-01T00:00:00Z"]}"#).is_empty());
        assert_eq!(chosen(r#"{"until":["2026-06-01T00:00:00Z"]}"#), ["back"]);
        let e = prunable(&nets, &q(r#"filters={"dangling":["true"]}"#)).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn a_container_shows_its_networks_by_name_with_aliases() {
        let nets = FakeNetworks::with(&[("front", "10.5.0.0/24")]);
        let running = on("api", &nets.networks[3], true);
        let v = container_networks(&nets, &running);
        let front = &v["front"];
        assert_eq!(front["IPAddress"], "10.5.0.2");
        assert_eq!(front["Aliases"], json!(["db"]));
        assert_eq!(front["DNSNames"], json!(["api", "db"]));
        // Stopped, it keeps its network and aliases but has no address.
        let stopped = on("api", &nets.networks[3], false);
        let v = container_networks(&nets, &stopped);
        assert_eq!(v["front"]["IPAddress"], "");
        assert_eq!(v["front"]["Aliases"], json!(["db"]));
        // With no network of its own it is on `none`; with --network host, on `host`.
        let mut none = sample_record();
        none.host_config.network_mode = Some("none".into());
        assert_eq!(
            container_networks(&nets, &none)["none"]["NetworkID"],
            nets.networks[2].id
        );
        let mut host = sample_record();
        host.host_config.network_mode = Some("host".into());
        assert!(container_networks(&nets, &host)
            .as_object()
            .unwrap()
            .contains_key("host"));
    }
}
