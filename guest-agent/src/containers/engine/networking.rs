//! A container's networks: which it joins at create, wiring them at start and undoing them at
//! its end, `docker network connect`/`disconnect`, and its `--link`s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig};

use super::{Container, Containers};
use crate::containers::error::ContainerError;
use crate::containers::links;
use crate::containers::record::Record;
use crate::network::store::Network;
use crate::network::{self, EndpointConfig, Mode};

impl Containers {
    /// A network's connect or disconnect of container `container_id`, as docker reports it.
    fn emit_network(&self, action: &str, network_id: &str, container_id: &str) {
        let Ok(n) = self.networks.get(network_id) else {
            return;
        };
        let attrs = HashMap::from([
            ("container".to_string(), container_id.to_string()),
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]);
        self.events.emit_network(action, &n.id, attrs);
    }

    /// The networks a new container joins: the one its network mode names (the default
    /// bridge for "default"), then any other the request lists, each with its aliases and
    /// requested address, checked as docker checks them.
    pub(super) fn members_of(
        &self,
        body: &ContainerCreateBody,
        hc: &HostConfig,
    ) -> Result<Vec<(String, EndpointConfig)>, ContainerError> {
        let mode = hc.network_mode.as_deref().unwrap_or("default");
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        match network::mode_of(mode) {
            Mode::Host | Mode::Container(_) => return Ok(Vec::new()),
            Mode::Own if mode == "none" => return Ok(Vec::new()),
            Mode::Own => {}
        }
        let primary_key = if mode == "default" { "bridge" } else { mode };
        let primary = self.networks.get(primary_key)?;
        if primary.driver == "null" {
            return Ok(Vec::new());
        }
        let mut keys: Vec<&String> = endpoints.keys().collect();
        // The mode's own network first: it gets eth0 and the default route.
        keys.sort_by_key(|k| !(k.as_str() == "default" || *k == mode || *k == &primary.name));
        let mut out: Vec<(String, EndpointConfig)> = Vec::new();
        for key in keys {
            let es = &endpoints[key];
            let n = if key == "default" || key == mode {
                primary.clone()
            } else {
                self.networks.get(key)?
            };
            let cfg = endpoint_config(es)?;
            check_endpoint(&n, &cfg)?;
            if !out.iter().any(|(id, _)| *id == n.id) {
                out.push((n.id.clone(), cfg));
            }
        }
        if !out.iter().any(|(id, _)| *id == primary.id) {
            out.insert(0, (primary.id.clone(), EndpointConfig::default()));
        }
        Ok(out)
    }

    /// The container's network for a start: its own namespace wired to its networks, the
    /// host's (None), or another container's.
    pub(super) async fn join_network(
        &self,
        c: &Arc<Container>,
        rec: &Record,
        hostname: &str,
    ) -> Result<(Option<PathBuf>, Option<network::NetState>)> {
        match network::mode_of(rec.host_config.network_mode.as_deref().unwrap_or("")) {
            Mode::Host => Ok((None, None)),
            Mode::Container(other) => {
                let o = self.get(&other).map_err(|e| anyhow!("{e}"))?;
                let orec = o.record();
                let ns = orec
                    .net
                    .as_ref()
                    .and_then(|n| n.netns.clone())
                    .filter(|_| orec.state.status.is_live())
                    .ok_or_else(|| {
                        anyhow!("cannot join network namespace of a non running container: {other} is not running")
                    })?;
                Ok((Some(ns), orec.net.clone()))
            }
            Mode::Own => {
                let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
                let ports =
                    network::ports::requests(&rec.host_config, &exposed).map_err(|e| anyhow!(e))?;
                let joining = network::Joining {
                    id: &rec.id,
                    name: &rec.name,
                    hostname,
                    dir: &c.dir,
                    members: &rec.networks,
                    ports: &ports,
                };
                // Only the message: the start's error is the text docker shows.
                let state = self
                    .networks
                    .attach(&joining)
                    .await
                    .map_err(|e| anyhow!("{}", ContainerError::from(e)))?;
                let saved = c.update(|r| r.net = Some(state.clone()));
                if let Err(e) = saved {
                    self.networks.detach(&rec.id, &state).await;
                    return Err(e);
                }
                for ep in &state.endpoints {
                    self.emit_network("connect", &ep.network_id, &rec.id);
                }
                Ok((state.netns.clone(), Some(state)))
            }
        }
    }

    /// Undo the container's network (after its end, or a failed start).
    pub(super) async fn release_network(&self, c: &Container) {
        if let Some(net) = c.record().net {
            self.networks.detach(&c.id, &net).await;
            c.update_or_warn("recording the network's release", |r| r.net = None);
            for ep in &net.endpoints {
                self.emit_network("disconnect", &ep.network_id, &c.id);
            }
        }
    }

    /// `docker network connect`: now if it runs, at its next start otherwise.
    pub async fn connect(
        &self,
        c: &Arc<Container>,
        n: &Network,
        cfg: EndpointConfig,
    ) -> Result<(), ContainerError> {
        let _op = c.op.lock().await;
        let rec = c.record();
        let mode = rec.host_config.network_mode.clone().unwrap_or_default();
        if network::mode_of(&mode) != Mode::Own || mode == "none" {
            return Err(ContainerError::invalid(format!(
                "container cannot be connected to network {}: it uses network mode {mode}",
                n.name
            )));
        }
        check_endpoint(n, &cfg)?;
        if rec.networks.iter().any(|(id, _)| *id == n.id) {
            return Err(ContainerError::forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, n.name
            )));
        }
        if rec.state.status.is_live() {
            let mut st = rec.net.clone().unwrap_or_default();
            let hostname = rec.config.hostname.clone().unwrap_or_default();
            let joining = network::Joining {
                id: &rec.id,
                name: &rec.name,
                hostname: &hostname,
                dir: &c.dir,
                members: &[],
                ports: &[],
            };
            self.networks
                .connect_live(&joining, n, &cfg, &mut st)
                .await?;
            c.update(|r| r.net = Some(st))?;
            self.emit_network("connect", &n.id, &rec.id);
        }
        c.update(|r| r.networks.push((n.id.clone(), cfg)))?;
        Ok(())
    }

    pub async fn disconnect(&self, c: &Arc<Container>, n: &Network) -> Result<(), ContainerError> {
        let _op = c.op.lock().await;
        let rec = c.record();
        if !rec.networks.iter().any(|(id, _)| *id == n.id) {
            return Err(ContainerError::forbidden(format!(
                "container {} is not connected to network {}",
                rec.id, n.name
            )));
        }
        if let Some(mut st) = rec.net.clone().filter(|_| rec.state.status.is_live()) {
            self.networks.disconnect_live(&rec.id, &n.id, &mut st).await;
            c.update(|r| r.net = Some(st))?;
            self.emit_network("disconnect", &n.id, &rec.id);
        }
        c.update(|r| r.networks.retain(|(id, _)| *id != n.id))?;
        Ok(())
    }

    /// Containers (any state) on network `id`.
    pub fn on_network(&self, id: &str) -> Vec<Arc<Container>> {
        self.all()
            .into_iter()
            .filter(|c| c.record().networks.iter().any(|(n, _)| n == id))
            .collect()
    }

    /// The `/etc/hosts` lines and environment of a starting container's `--link`s. Each
    /// target must be running; its address is the one on a network the two share, else its
    /// first.
    pub(super) fn resolve_links(
        &self,
        rec: &Record,
        net: Option<&network::NetState>,
    ) -> Result<(String, Vec<String>)> {
        let mut hosts = String::new();
        let mut env = Vec::new();
        let mine: Vec<&str> = net
            .map(|n| n.endpoints.iter().map(|e| e.network_id.as_str()).collect())
            .unwrap_or_default();
        let on_default_bridge = net
            .and_then(|n| n.endpoints.first())
            .and_then(|e| self.networks.get(&e.network_id).ok())
            .is_some_and(|n| n.name == "bridge");
        for l in rec.host_config.links.iter().flatten() {
            let link = links::parse(l)?;
            let target = self
                .get(&link.name)
                .map_err(|_| anyhow!("could not get container for {}", link.name))?
                .record();
            let endpoints = target
                .net
                .as_ref()
                .filter(|_| target.state.status.is_live())
                .map(|n| n.endpoints.clone())
                .unwrap_or_default();
            let Some(ep) = endpoints
                .iter()
                .find(|e| mine.contains(&e.network_id.as_str()))
                .or(endpoints.first())
            else {
                bail!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    target.name,
                    rec.name,
                    link.alias
                );
            };
            let ip = ep.ip.to_string();
            hosts.push_str(&links::hosts_line(&link, &target, &ip));
            // On user-defined networks a link is only a name, as in docker.
            if on_default_bridge {
                env.extend(links::env(&link, &rec.name, &target, &ip));
            }
        }
        Ok((hosts, env))
    }
}

/// What a container asks of one network (`--ip`, `--network-alias`), from docker's settings.
pub fn endpoint_config(es: &EndpointSettings) -> Result<EndpointConfig, ContainerError> {
    // What skiff cannot apply is refused, never dropped.
    if es.mac_address.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(ContainerError::invalid(
            "skiff cannot set a container's MAC address: drop --mac-address (each endpoint gets a generated one)",
        ));
    }
    if es.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(ContainerError::invalid(
            "skiff does not support links on a user-defined network (EndpointsConfig Links): containers there find each other by name and --network-alias",
        ));
    }
    // dockerd's bridge driver applies some endpoint options (an interface's sysctls, its
    // name); skiff's applies none, so any is refused rather than kept and ignored.
    if let Some(opts) = es.driver_opts.as_ref().filter(|o| !o.is_empty()) {
        let keys: Vec<&str> = opts.keys().map(String::as_str).collect();
        return Err(ContainerError::invalid(format!(
            "skiff does not apply endpoint driver options ({}): drop --network ...,driver-opt= (EndpointsConfig DriverOpts)",
            keys.join(", ")
        )));
    }
    if let Some(ipam) = &es.ipam_config {
        if ipam.link_local_ips.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ContainerError::invalid(
                "skiff cannot give a container link-local addresses: drop --link-local-ip",
            ));
        }
        if ipam.ipv6_address.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(ContainerError::invalid(
                "IPv6 addresses are not supported by skiff yet: drop --ip6",
            ));
        }
    }
    let ipv4 = es
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv4_address.clone())
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ContainerError::invalid(format!("invalid IPv4 address: {a}")))
        })
        .transpose()?;
    Ok(EndpointConfig {
        aliases: es.aliases.clone().unwrap_or_default(),
        ipv4,
    })
}

/// docker reserves aliases and fixed addresses to user-defined networks.
fn check_endpoint(n: &Network, cfg: &EndpointConfig) -> Result<(), ContainerError> {
    if !n.is_bridge() {
        return Err(ContainerError::invalid(format!(
            "container cannot be connected to network {} (driver {})",
            n.name, n.driver
        )));
    }
    if !cfg.aliases.is_empty() && n.builtin() {
        return Err(ContainerError::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    if cfg.ipv4.is_some() && n.builtin() {
        return Err(ContainerError::invalid(
            "user specified IP address is supported on user defined networks only",
        ));
    }
    if let (Some(ip), Some(subnet)) = (cfg.ipv4, n.subnet) {
        if !subnet.contains(&ip) {
            return Err(ContainerError::invalid(format!(
                "no configured subnet or ip-range contain the IP address {ip} (network {} is {subnet})",
                n.name
            )));
        }
    }
    Ok(())
}
