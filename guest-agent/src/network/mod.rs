//! Container networking, natively: docker's `bridge`, `host` and `none` networks plus
//! user-defined bridge networks with name resolution, and published ports.
//!
//! Shape (docs/ARCHITECTURE.md "Networks"): each bridge network is a Linux bridge holding the
//! gateway address, brought up in the background when the network is created (`warm`; a
//! container that starts first brings it up itself) and taken down a little after its last
//! one stops (`LINGER`, so back-to-back `run --rm` do not rebuild it each time). `network rm`
//! takes it down in the background, `network prune` before it answers. Each running
//! container has its own network namespace, made and pinned by the agent, with one veth per
//! network. Forwarding and NAT are per-network iptables rules (`firewall`), names are
//! answered by a DNS server on each user-defined network's gateway (`dns`), and published
//! ports are sockets the agent holds and forwards (`proxy`). Natively, published TCP ports on
//! IPv4 are also DNATed by the kernel (`firewall::PortRule`, the fast path), and the agent's
//! socket relays the rest: UDP, IPv6, and connections from containers on the agent's own
//! bridges.

pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod ports;
pub mod proxy;
pub mod publish;
pub mod resolv;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::error::NetworkError;
use self::firewall::{BridgeRules, Firewall, PortRule};
use self::ipam::Claims;
use self::link::Netlink;
use self::ports::Published;
pub use self::publish::Publisher;
use self::store::{Network, NetworkStore};

/// How long an unused bridge stays up.
const LINGER: Duration = Duration::from_secs(10);

/// What a container asked for on one network; kept in its record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
}

/// A container's presence on one network while it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub host_veth: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The names it answers to on this network.
    pub dns_names: Vec<String>,
}

/// A running container's network, kept in its record so that a restarted agent can take it
/// back (and tear it down once the container is gone).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetState {
    pub netns: Option<PathBuf>,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Published>,
}

impl NetState {
    pub fn first_ip(&self) -> Option<Ipv4Addr> {
        self.endpoints.first().map(|e| e.ip)
    }
}

/// What `attach` needs to know about the container.
pub struct Joining<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub dir: &'a Path,
    pub members: &'a [(String, EndpointConfig)],
    pub ports: &'a [ports::Request],
}

/// How a container's network mode resolves.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Its own namespace on these bridge networks (none: loopback only, `--network none`).
    Own,
    Host,
    /// Another container's namespace (`--network container:NAME`).
    Container(String),
}

pub fn mode_of(network_mode: &str) -> Mode {
    match network_mode {
        "host" => Mode::Host,
        m if m.starts_with("container:") => Mode::Container(m["container:".len()..].to_string()),
        _ => Mode::Own,
    }
}

#[derive(Default)]
struct State {
    nets: Vec<Network>,
    used: HashMap<String, BTreeSet<Ipv4Addr>>,
    last: HashMap<String, Ipv4Addr>,
    /// Live endpoints per network.
    users: HashMap<String, usize>,
    /// Networks whose bridge is up, with a generation for the linger timer.
    active: HashMap<String, u64>,
    dns: HashMap<String, dns::Server>,
    forwards: HashMap<String, Vec<publish::Served>>,
    /// Published ports the kernel forwards, per container.
    kernel_ports: HashMap<String, Vec<PortRule>>,
    generation: u64,
    /// Links being deleted in the background, by name: (network, a receiver that ends when
    /// the deletion is done). Host veths after their container left (`leave_one`) and
    /// bridges of removed networks (`remove`).
    teardowns: HashMap<String, (String, tokio::sync::watch::Receiver<()>)>,
}

/// One container's names on a network: (container id, address, names).
type NameEntry = (String, Ipv4Addr, Vec<String>);

/// Names per network for the DNS servers.
#[derive(Default)]
pub struct NameTable {
    by_net: RwLock<HashMap<String, Vec<NameEntry>>>,
}

impl NameTable {
    /// The networks of the container that owns `client`: it sees names on all of them,
    /// whichever of its addresses the query came from.
    fn nets_of(&self, client: IpAddr) -> Vec<String> {
        let IpAddr::V4(c) = client else {
            return Vec::new();
        };
        let t = self.by_net.read().unwrap_or_else(|p| p.into_inner());
        let owners: Vec<&String> = t
            .values()
            .flatten()
            .filter(|(_, ip, _)| *ip == c)
            .map(|(id, _, _)| id)
            .collect();
        t.iter()
            .filter(|(_, entries)| entries.iter().any(|(id, _, _)| owners.contains(&id)))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl dns::Names for NameTable {
    fn lookup(&self, client: IpAddr, name: &str) -> Option<Vec<Ipv4Addr>> {
        let nets = self.nets_of(client);
        let t = self.by_net.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Ipv4Addr> = nets
            .iter()
            .filter_map(|n| t.get(n))
            .flatten()
            .filter(|(_, _, names)| names.iter().any(|x| x.eq_ignore_ascii_case(name)))
            .map(|(_, ip, _)| *ip)
            .collect();
        out.dedup();
        (!out.is_empty()).then_some(out)
    }

    fn reverse(&self, client: IpAddr, addr: Ipv4Addr) -> Option<String> {
        let nets = self.nets_of(client);
        let t = self.by_net.read().unwrap_or_else(|p| p.into_inner());
        nets.iter()
            .filter_map(|n| t.get(n))
            .flatten()
            .find(|(_, ip, _)| *ip == addr)
            .and_then(|(_, _, names)| names.first().cloned())
    }
}

pub struct Networks {
    store: NetworkStore,
    claims: Claims,
    tag: String,
    fw: Firewall,
    state: Mutex<State>,
    /// Serializes bridge, firewall and DNS changes.
    op: tokio::sync::Mutex<()>,
    nl: tokio::sync::OnceCell<Netlink>,
    names: Arc<NameTable>,
    ipv6: bool,
    /// Who holds published ports' host sockets: this process, or the host's daemon.
    publisher: Publisher,
}

/// A network or endpoint ID: 32 random bytes in hex, as docker's.
fn new_id() -> Result<String, NetworkError> {
    skiff_common::ids::random_hex(32).map_err(NetworkError::internal)
}

impl Networks {
    pub fn open(root: &Path, publisher: Publisher) -> Result<Arc<Self>> {
        let store = NetworkStore::open(root)?;
        let tag = hex::encode(&Sha256::digest(root.as_os_str().as_encoded_bytes())[..2]);
        let claims = Claims::new(root, &tag)?;
        let mut nets = store.load_all()?;
        for (name, driver) in store::BUILTIN {
            if nets.iter().any(|n| n.name == name) {
                continue;
            }
            let mut n = Network {
                id: new_id()?,
                name: name.into(),
                driver: driver.into(),
                created: skiff_common::time::now_rfc3339(),
                subnet: None,
                gateway: None,
                ip_range: None,
                internal: false,
                attachable: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                subnet_given: false,
            };
            if driver == "bridge" {
                let subnet = claims.claim(&n.id, None, &[])?;
                n.gateway = Some(ipam::default_gateway(&subnet));
                n.subnet = Some(subnet);
            }
            store.save(&n)?;
            nets.push(n);
        }
        // Re-assert our claims (a host reboot empties /run).
        for n in nets.iter().filter(|n| n.is_bridge()) {
            if let Some(s) = n.subnet {
                let own: Vec<Ipv4Net> = vec![s];
                if let Err(e) = claims.claim(&n.id, Some(s), &own) {
                    tracing::warn!("network {}: {e:#}", n.name);
                }
            }
        }
        Ok(Arc::new(Self {
            store,
            claims,
            fw: Firewall::new(&tag),
            tag,
            state: Mutex::new(State {
                nets,
                ..Default::default()
            }),
            op: tokio::sync::Mutex::new(()),
            nl: tokio::sync::OnceCell::new(),
            names: Arc::new(NameTable::default()),
            ipv6: ports::host_has_ipv6(),
            publisher,
        }))
    }

    /// Distinguishes this agent's interfaces and rules from other agents' on the machine.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn nl(&self) -> Result<&Netlink> {
        self.nl.get_or_try_init(|| async { Netlink::host() }).await
    }

    pub fn all(&self) -> Vec<Network> {
        self.st().nets.clone()
    }

    /// By full name, full ID or a unique ID prefix, as docker.
    pub fn get(&self, key: &str) -> Result<Network, NetworkError> {
        let st = self.st();
        if let Some(n) = st.nets.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let matches: Vec<&Network> = st.nets.iter().filter(|n| n.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(NetworkError::not_found(format!("network {key} not found"))),
            _ => Err(NetworkError::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    pub fn default_bridge(&self) -> Result<Network, NetworkError> {
        self.get("bridge")
    }

    pub fn live_users(&self, id: &str) -> usize {
        self.st().users.get(id).copied().unwrap_or(0)
    }

    /// Live endpoints on a network, less those of containers that have left and whose veth
    /// is still being deleted (`leave_one`).
    fn staying_users(&self, id: &str) -> usize {
        let st = self.st();
        let leaving = st.teardowns.values().filter(|(net, _)| net == id).count();
        st.users
            .get(id)
            .copied()
            .unwrap_or(0)
            .saturating_sub(leaving)
    }

    pub fn create(&self, mut n: Network) -> Result<Network, NetworkError> {
        if self.st().nets.iter().any(|x| x.name == n.name) {
            return Err(NetworkError::conflict(format!(
                "network with name {} already exists",
                n.name
            )));
        }
        n.id = new_id()?;
        if n.is_bridge() {
            let subnet = self
                .claims
                .claim(&n.id, n.subnet, &[])
                .map_err(|e| NetworkError::forbidden(format!("{e:#}")))?;
            // Two of our own networks must not overlap either (their claims are ours).
            let clash = self.st().nets.iter().find_map(|x| {
                x.subnet
                    .filter(|s| ipam::overlaps(s, &subnet))
                    .map(|s| (x.name.clone(), s))
            });
            if let Some((name, s)) = clash {
                self.claims.release(&n.id, &subnet);
                return Err(NetworkError::forbidden(format!("Pool overlaps with other one on this address space: {subnet} overlaps {s} of network {name}"),
                ));
            }
            n.subnet_given = n.subnet.is_some();
            n.subnet = Some(subnet);
            let gw = n.gateway.unwrap_or_else(|| ipam::default_gateway(&subnet));
            if !subnet.contains(&gw) || gw == subnet.network() || gw == subnet.broadcast() {
                self.claims.release(&n.id, &subnet);
                return Err(NetworkError::invalid(format!(
                    "gateway {gw} is not a host address of subnet {subnet}"
                )));
            }
            if let Some(r) = n.ip_range {
                if !subnet.contains(&r) {
                    self.claims.release(&n.id, &subnet);
                    return Err(NetworkError::invalid(format!(
                        "ip-range {r} is not inside subnet {subnet}"
                    )));
                }
            }
            n.gateway = Some(gw);
        }
        if let Err(e) = self.store.save(&n) {
            if let Some(s) = n.subnet {
                self.claims.release(&n.id, &s);
            }
            return Err(NetworkError::internal(format!("saving the network: {e:#}")));
        }
        self.st().nets.push(n.clone());
        Ok(n)
    }

    /// Remove a network nobody is on (the caller checks stopped members). It is gone from the
    /// store and the API at once; its bridge goes in the background (deleting a bridge is
    /// 50-80 ms in the kernel here, twice that for `docker-compose down`'s two networks), and
    /// its subnet is free again only once the bridge is gone. `settle` waits for that.
    pub async fn remove(self: &Arc<Self>, n: &Network) -> Result<(), NetworkError> {
        if n.builtin() {
            return Err(NetworkError::forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        // Containers that have left but whose veth is still going do not hold it; its bridge
        // waits for them below.
        if self.staying_users(&n.id) > 0 {
            return Err(NetworkError::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.store
            .delete(&n.id)
            .map_err(|e| NetworkError::internal(format!("removing the network: {e:#}")))?;
        // From here no container can join it (`activate` refuses a network not listed).
        self.st().nets.retain(|x| x.id != n.id);
        let bridge = n.bridge_name(&self.tag);
        let done = self.tearing_down(&bridge, &n.id);
        let me = self.clone();
        let n = n.clone();
        tokio::spawn(async move {
            me.settle(|link, net| net == n.id && link != bridge).await;
            me.take_down(&n).await;
            if let Some(s) = n.subnet {
                me.claims.release(&n.id, &s);
            }
            me.st().teardowns.remove(&bridge);
            drop(done);
        });
        Ok(())
    }

    /// Bring a new network's bridge up in the background, as dockerd makes it at create:
    /// a client such as compose creates its networks well before it starts their first
    /// containers, and the bridge, its rules and its name server (20-35 ms) are then ready.
    /// Unused, it lingers and goes like any other.
    pub fn warm(self: &Arc<Self>, n: &Network) {
        if !n.is_bridge() {
            return;
        }
        let me = self.clone();
        let n = n.clone();
        tokio::spawn(async move {
            match me.activate(&n).await {
                Ok(_) if me.live_users(&n.id) == 0 => me.linger(&n.id),
                Ok(_) => {}
                // Its first container will try again and report what is wrong.
                Err(e) => tracing::debug!("network {}: bridge not brought up ahead: {e:#}", n.name),
            }
        });
    }

    /// Wait for bridges of removed networks to be gone, so that their subnets are free.
    pub async fn settle_bridges(&self) {
        let prefix = store::bridge_prefix(&self.tag);
        self.settle(|link, _| link.starts_with(&prefix)).await;
    }

    /// Take every idle bridge down now (`network prune`, `system prune`).
    pub async fn sweep(&self) {
        self.settle_all().await;
        let idle: Vec<String> = {
            let st = self.st();
            st.active
                .keys()
                .filter(|id| st.users.get(*id).copied().unwrap_or(0) == 0)
                .cloned()
                .collect()
        };
        for id in idle {
            self.deactivate(&id).await;
        }
    }

    fn bridge_rules(&self) -> Vec<BridgeRules> {
        let st = self.st();
        st.nets
            .iter()
            .filter(|n| st.active.contains_key(&n.id))
            .filter_map(|n| {
                Some(BridgeRules {
                    bridge: n.bridge_name(&self.tag),
                    subnet: n.subnet?,
                    internal: n.internal,
                })
            })
            .collect()
    }

    /// Rewrite the firewall for the bridges and ports in use. Callers hold `op`.
    fn apply_rules(&self) -> Result<()> {
        let rules = self.bridge_rules();
        let ports: Vec<PortRule> = self.st().kernel_ports.values().flatten().cloned().collect();
        tokio::task::block_in_place(|| self.fw.apply(&rules, &ports))
    }

    /// Bridge up, rules in place, DNS listening. Returns the bridge's index.
    async fn activate(&self, n: &Network) -> Result<u32> {
        let (Some(subnet), Some(gw)) = (n.subnet, n.gateway) else {
            return Err(anyhow!("network {} has no subnet", n.name));
        };
        let _op = self.op.lock().await;
        // A removed network's bridge is being taken down (or will be, after us); bringing
        // it up again would leave it behind.
        if !self.st().nets.iter().any(|x| x.id == n.id) {
            return Err(anyhow!("network {} has been removed", n.name));
        }
        let nl = self.nl().await?;
        // The claim counted a dead agent's bridge on this subnet as free; its route must go
        // before ours comes.
        for (_, orphan) in self
            .claims
            .orphaned_bridges()
            .iter()
            .filter(|(net, _)| ipam::overlaps(net, &subnet))
        {
            self.remove_orphan(nl, orphan).await;
        }
        let bridge = n.bridge_name(&self.tag);
        let index = nl.ensure_bridge(&bridge, gw, subnet.prefix_len()).await?;
        let fresh = {
            let mut st = self.st();
            st.generation += 1;
            let g = st.generation;
            st.active.insert(n.id.clone(), g).is_none()
        };
        if fresh {
            if let Err(e) = self.apply_rules() {
                self.st().active.remove(&n.id);
                if let Err(d) = nl.delete(&bridge).await {
                    tracing::warn!("removing bridge {bridge} after a failed start: {d:#}");
                }
                return Err(e);
            }
            if n.serves_names() {
                let upstream = dns::upstream_from_resolv_conf(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                );
                let names: Arc<dyn dns::Names> = self.names.clone();
                let listen = SocketAddr::new(gw.into(), 53);
                match dns::Server::start(listen, subnet, names, upstream).await {
                    Ok(s) => {
                        self.st().dns.insert(n.id.clone(), s);
                    }
                    Err(e) => tracing::warn!(
                        "network {}: no name resolution, cannot listen on {gw}:53: {e}",
                        n.name
                    ),
                }
            }
        }
        Ok(index)
    }

    async fn deactivate(&self, id: &str) {
        let Some(n) = self.st().nets.iter().find(|n| n.id == id).cloned() else {
            return;
        };
        self.take_down(&n).await;
    }

    /// Bridge down, its rules and name server gone, unless it has users.
    async fn take_down(&self, n: &Network) {
        let id = n.id.as_str();
        let _op = self.op.lock().await;
        if self.live_users(id) > 0 {
            return;
        }
        let was = {
            let mut st = self.st();
            st.dns.remove(id);
            st.active.remove(id).is_some()
        };
        let bridge = n.bridge_name(&self.tag);
        if let Ok(nl) = self.nl().await {
            if let Err(e) = nl.delete(&bridge).await {
                tracing::warn!("removing bridge {bridge}: {e:#}");
            }
        }
        if was || !self.bridge_rules().is_empty() || self.st().active.is_empty() {
            if let Err(e) = self.apply_rules() {
                tracing::warn!("updating firewall rules: {e:#}");
            }
        }
    }

    /// After the last user left: take the bridge down unless someone comes back meanwhile.
    fn linger(self: &Arc<Self>, id: &str) {
        let gen = self.st().active.get(id).copied();
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER).await;
            let same = me.st().active.get(&id).copied() == gen;
            if same && me.live_users(&id) == 0 {
                me.deactivate(&id).await;
            }
        });
    }

    fn alloc(&self, n: &Network, want: Option<Ipv4Addr>) -> Result<Ipv4Addr, NetworkError> {
        let (Some(subnet), Some(gw)) = (n.subnet, n.gateway) else {
            return Err(NetworkError::internal(format!(
                "network {} has no subnet",
                n.name
            )));
        };
        let mut st = self.st();
        let last = st.last.get(&n.id).copied();
        let used = st.used.entry(n.id.clone()).or_default();
        let ip = match want {
            Some(ip) => {
                if !subnet.contains(&ip)
                    || ip == gw
                    || ip == subnet.network()
                    || ip == subnet.broadcast()
                {
                    return Err(NetworkError::invalid(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets ({subnet}, gateway {gw})"
                    )));
                }
                if used.contains(&ip) {
                    return Err(NetworkError::conflict(format!(
                        "Address already in use: {ip} is taken on network {}",
                        n.name
                    )));
                }
                ip
            }
            None => {
                ipam::allocate(&subnet, n.ip_range.as_ref(), gw, used, last).ok_or_else(|| {
                    NetworkError::forbidden(format!(
                        "no available IPv4 addresses on network {}",
                        n.name
                    ))
                })?
            }
        };
        used.insert(ip);
        st.last.insert(n.id.clone(), ip);
        *st.users.entry(n.id.clone()).or_default() += 1;
        Ok(ip)
    }

    fn release(&self, network_id: &str, ip: Ipv4Addr) -> bool {
        let mut st = self.st();
        Self::release_in(&mut st, network_id, ip)
    }

    fn release_in(st: &mut State, network_id: &str, ip: Ipv4Addr) -> bool {
        if let Some(u) = st.used.get_mut(network_id) {
            u.remove(&ip);
        }
        let users = st.users.entry(network_id.to_string()).or_default();
        *users = users.saturating_sub(1);
        *users == 0
    }

    fn veth_name(&self, container: &str, network: &str) -> String {
        let h = Sha256::digest(format!("{container}/{network}"));
        format!("vk{}{}", self.tag, &hex::encode(h)[..8])
    }

    fn register_names(&self, container: &str, ep: &Endpoint) {
        let mut t = self.names.by_net.write().unwrap_or_else(|p| p.into_inner());
        let list = t.entry(ep.network_id.clone()).or_default();
        list.retain(|(c, _, _)| c != container);
        list.push((container.to_string(), ep.ip, ep.dns_names.clone()));
    }

    fn unregister_names(&self, container: &str, network: &str) {
        let mut t = self.names.by_net.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = t.get_mut(network) {
            list.retain(|(c, _, _)| c != container);
        }
    }

    /// Give a starting container its namespace, its networks and its ports. On failure
    /// everything done so far is undone.
    pub async fn attach(self: &Arc<Self>, j: &Joining<'_>) -> Result<NetState, NetworkError> {
        let netns = j.dir.join("netns");
        link::remove_netns(&netns);
        let ns = tokio::task::block_in_place(|| link::create_netns(&netns))
            .map_err(|e| NetworkError::internal(format!("{e:#}")))?;
        let mut state = NetState {
            netns: Some(netns.clone()),
            ..Default::default()
        };
        match self.wire(j, &ns, &mut state).await {
            Ok(()) => Ok(state),
            Err(e) => {
                self.detach(j.id, &state).await;
                Err(e)
            }
        }
    }

    async fn wire(
        self: &Arc<Self>,
        j: &Joining<'_>,
        ns: &std::fs::File,
        state: &mut NetState,
    ) -> Result<(), NetworkError> {
        let internal = |e: anyhow::Error| NetworkError::internal(format!("{e:#}"));
        let inside = Netlink::inside(ns).map_err(internal)?;
        inside.loopback_up().await.map_err(internal)?;
        for (net_id, cfg) in j.members {
            let n = self.get(net_id)?;
            let ep = self
                .join_one(j, &n, cfg, ns, &inside, state.endpoints.len())
                .await?;
            state.endpoints.push(ep);
        }
        if !j.ports.is_empty() {
            if let Some(ip) = state.first_ip() {
                self.publish(j.id, j.name, ip, j.ports, state)?;
                self.forward_in_kernel(j.id, j.name, state).await;
            }
        }
        Ok(())
    }

    /// The published ports of `state` that the kernel can forward: TCP, to an IPv4 host
    /// address, into the container's first network when that is a bridge with egress, and
    /// only natively (in the VM the host's socket is the machine daemon's).
    fn kernel_port_rules(&self, state: &NetState) -> Vec<PortRule> {
        let Some(ep) = state.endpoints.first() else {
            return Vec::new();
        };
        if self.publisher.is_remote() {
            return Vec::new();
        }
        let Ok(n) = self.get(&ep.network_id) else {
            return Vec::new();
        };
        if n.internal {
            return Vec::new();
        }
        state
            .ports
            .iter()
            .filter(|p| p.proto == proxy::Proto::Tcp)
            .filter_map(|p| match p.host_ip {
                IpAddr::V4(ip) => Some(PortRule {
                    bridge: n.bridge_name(&self.tag),
                    host_ip: (!ip.is_unspecified()).then_some(ip),
                    host_port: p.host_port,
                    target: std::net::SocketAddrV4::new(ep.ip, p.container_port),
                }),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// Hand a container's TCP ports to the kernel. When the rules cannot be written the
    /// agent's relay still serves the ports, only slower, so this is a warning.
    async fn forward_in_kernel(&self, id: &str, name: &str, state: &NetState) {
        let rules = self.kernel_port_rules(state);
        if rules.is_empty() {
            return;
        }
        let _op = self.op.lock().await;
        self.st().kernel_ports.insert(id.to_string(), rules);
        if let Err(e) = self.apply_rules() {
            tracing::warn!("{name}: published ports stay with the agent's relay: {e:#}");
            self.st().kernel_ports.remove(id);
            if let Err(e) = self.apply_rules() {
                tracing::warn!("{name}: the firewall rules could not be put back: {e:#}");
            }
        }
    }

    async fn join_one(
        self: &Arc<Self>,
        j: &Joining<'_>,
        n: &Network,
        cfg: &EndpointConfig,
        ns: &std::fs::File,
        inside: &Netlink,
        index: usize,
    ) -> Result<Endpoint, NetworkError> {
        let internal = |e: anyhow::Error| NetworkError::internal(format!("{e:#}"));
        if !n.is_bridge() {
            return Err(NetworkError::invalid(format!(
                "container cannot be connected to network {} (driver {}): only bridge networks take endpoints",
                n.name, n.driver
            )));
        }
        let ip = self.alloc(n, cfg.ipv4)?;
        let host_veth = self.veth_name(j.id, &n.id);
        let ifname = format!("eth{index}");
        let res: Result<Endpoint> = async {
            // The same container's veth of its last run may still be going (a restart).
            self.settle(|veth, _| veth == host_veth).await;
            let bridge_index = self.activate(n).await?;
            let nl = self.nl().await?;
            nl.delete(&host_veth).await?;
            nl.add_veth(&host_veth, bridge_index, ns, &ifname).await?;
            let subnet = n.subnet.ok_or_else(|| anyhow!("network has no subnet"))?;
            let gw = n.gateway.ok_or_else(|| anyhow!("network has no gateway"))?;
            let default_via = (index == 0 && !n.internal).then_some(gw);
            let mac = inside
                .configure(&ifname, ip, subnet.prefix_len(), default_via)
                .await?;
            let mut dns_names = vec![j.name.to_string(), j.id[..12].to_string()];
            if !j.hostname.is_empty() && j.hostname != &j.id[..12] {
                dns_names.push(j.hostname.to_string());
            }
            dns_names.extend(cfg.aliases.iter().cloned());
            Ok(Endpoint {
                network_id: n.id.clone(),
                endpoint_id: new_id()?,
                host_veth: host_veth.clone(),
                ifname,
                ip,
                prefix: subnet.prefix_len(),
                gateway: gw,
                mac,
                dns_names,
            })
        }
        .await;
        match res {
            Ok(ep) => {
                if n.serves_names() {
                    self.register_names(j.id, &ep);
                }
                Ok(ep)
            }
            Err(e) => {
                if let Ok(nl) = self.nl().await {
                    if let Err(d) = nl.delete(&host_veth).await {
                        tracing::warn!("removing {host_veth} after a failed join: {d:#}");
                    }
                }
                if self.release(&n.id, ip) {
                    self.linger(&n.id);
                }
                Err(internal(e))
            }
        }
    }

    fn publish(
        &self,
        id: &str,
        name: &str,
        target: Ipv4Addr,
        reqs: &[ports::Request],
        state: &mut NetState,
    ) -> Result<(), NetworkError> {
        let bound = ports::bind_all(reqs, target, self.ipv6, &self.publisher).map_err(|e| {
            NetworkError::internal(format!(
                "driver failed programming external connectivity on endpoint {name} ({}): {e}",
                &id[..12.min(id.len())]
            ))
        })?;
        let mut forwards = Vec::new();
        for (p, b) in bound {
            forwards.push(b.serve(SocketAddr::new(target.into(), p.container_port)));
            state.ports.push(p);
        }
        self.st().forwards.insert(id.to_string(), forwards);
        Ok(())
    }

    /// Undo `attach`: ports closed, names gone, veths deleted, addresses back, namespace
    /// unpinned. Safe on a partial state and after a restart.
    pub async fn detach(self: &Arc<Self>, id: &str, state: &NetState) {
        self.st().forwards.remove(id);
        if self.st().kernel_ports.contains_key(id) {
            let _op = self.op.lock().await;
            self.st().kernel_ports.remove(id);
            if let Err(e) = self.apply_rules() {
                tracing::warn!("removing the port rules of {id}: {e:#}");
            }
        }
        for ep in &state.endpoints {
            self.leave_one(id, ep).await;
        }
        if let Some(ns) = &state.netns {
            link::remove_netns(ns);
        }
    }

    /// The container is off the network at once (no names, no traffic: its namespace goes
    /// next); deleting the host veth waits for the kernel's RTNL lock and an RCU grace period,
    /// 20-40 ms that `run --rm`, `stop` and `rm` need not wait for, so it happens in the
    /// background. Its address and its count on the network are given back only once the
    /// veth is gone; whoever needs it gone first waits in `settle` (a new veth of the same
    /// name, `network rm`, prune).
    async fn leave_one(self: &Arc<Self>, id: &str, ep: &Endpoint) {
        self.unregister_names(id, &ep.network_id);
        let done = self.tearing_down(&ep.host_veth, &ep.network_id);
        let me = self.clone();
        let ep = ep.clone();
        tokio::spawn(async move {
            if let Ok(nl) = me.nl().await {
                if let Err(e) = nl.delete(&ep.host_veth).await {
                    tracing::warn!("removing {}: {e:#}", ep.host_veth);
                }
            }
            // One step, so that `staying_users` never sees the endpoint both released and
            // still leaving.
            let last = {
                let mut st = me.st();
                st.teardowns.remove(&ep.host_veth);
                Self::release_in(&mut st, &ep.network_id, ep.ip)
            };
            if last {
                me.linger(&ep.network_id);
            }
            drop(done);
        });
    }

    /// Record that `link` (of `network`) is being deleted; `settle` waits until the sender
    /// returned is dropped, which the deleting task does once the link is gone and its entry
    /// removed.
    fn tearing_down(&self, link: &str, network: &str) -> tokio::sync::watch::Sender<()> {
        let (done, finished) = tokio::sync::watch::channel(());
        self.st()
            .teardowns
            .insert(link.to_string(), (network.to_string(), finished));
        done
    }

    /// Wait until every veth being deleted is gone, so that each network's count of live
    /// endpoints is final (prune decides by it).
    pub async fn settle_all(&self) {
        self.settle(|_, _| true).await;
    }

    /// Wait until no veth matching `which(veth, network)` is still being deleted.
    async fn settle(&self, which: impl Fn(&str, &str) -> bool) {
        loop {
            let pending = self
                .st()
                .teardowns
                .iter()
                .find(|(veth, (net, _))| which(veth, net))
                .map(|(_, (_, finished))| finished.clone());
            let Some(mut finished) = pending else {
                return;
            };
            // Ends with an error when the deletion's task drops its sender: it is done.
            let _ = finished.changed().await;
        }
    }

    /// `network connect` on a running container.
    pub async fn connect_live(
        self: &Arc<Self>,
        j: &Joining<'_>,
        n: &Network,
        cfg: &EndpointConfig,
        state: &mut NetState,
    ) -> Result<(), NetworkError> {
        let path = state.netns.clone().ok_or_else(|| {
            NetworkError::invalid("the container has no network namespace of its own")
        })?;
        let ns = std::fs::File::open(&path)
            .map_err(|e| NetworkError::internal(format!("opening {}: {e}", path.display())))?;
        let inside = Netlink::inside(&ns).map_err(|e| NetworkError::internal(format!("{e:#}")))?;
        let index = (0..)
            .find(|i| {
                !state
                    .endpoints
                    .iter()
                    .any(|e| e.ifname == format!("eth{i}"))
            })
            .unwrap_or(state.endpoints.len());
        let ep = self.join_one(j, n, cfg, &ns, &inside, index).await?;
        state.endpoints.push(ep);
        Ok(())
    }

    /// `network disconnect` on a running container.
    pub async fn disconnect_live(
        self: &Arc<Self>,
        id: &str,
        network_id: &str,
        state: &mut NetState,
    ) {
        if let Some(pos) = state
            .endpoints
            .iter()
            .position(|e| e.network_id == network_id)
        {
            let ep = state.endpoints.remove(pos);
            self.leave_one(id, &ep).await;
        }
    }

    /// A restarted agent takes back a container that kept running: its addresses count as
    /// used, its bridges come back if the host lost them, its names and ports are served.
    pub async fn adopt(self: &Arc<Self>, id: &str, name: &str, state: &NetState) {
        for ep in &state.endpoints {
            {
                let mut st = self.st();
                st.used
                    .entry(ep.network_id.clone())
                    .or_default()
                    .insert(ep.ip);
                *st.users.entry(ep.network_id.clone()).or_default() += 1;
            }
            let Ok(n) = self.get(&ep.network_id) else {
                continue;
            };
            if let Err(e) = self.activate(&n).await {
                tracing::warn!("restoring network {} for {name}: {e:#}", n.name);
            }
            if n.serves_names() {
                self.register_names(id, ep);
            }
        }
        let Some(target) = state.first_ip() else {
            return;
        };
        let mut forwards = Vec::new();
        for p in &state.ports {
            match self
                .publisher
                .bind(p.proto, SocketAddr::new(p.host_ip, p.host_port))
            {
                Ok(b) => forwards.push(b.serve(SocketAddr::new(target.into(), p.container_port))),
                Err(e) => tracing::warn!(
                    "{name}: cannot publish {}:{} again: {e}",
                    p.host_ip,
                    p.host_port
                ),
            }
        }
        self.st().forwards.insert(id.to_string(), forwards);
        self.forward_in_kernel(id, name, state).await;
    }

    /// After recovery: bridges left up by a previous agent with nobody on them go away, and
    /// its rules. Holds the operations lock throughout, so it runs beside the API: a bridge a
    /// container or `network create` brings up meanwhile is either made after the sweep or
    /// counted busy by it.
    pub async fn sweep_stale(self: &Arc<Self>) {
        let _op = self.op.lock().await;
        let nl = match self.nl().await {
            Ok(nl) => nl.clone(),
            Err(e) => {
                tracing::warn!("netlink: {e:#}");
                return;
            }
        };
        // Ours and idle: a known network's with nobody on it and not brought up ahead, or one
        // whose network was removed while its bridge was still going when the agent stopped
        // (`remove`).
        let busy: Vec<String> = {
            let active: Vec<String> = self.st().active.keys().cloned().collect();
            self.all()
                .iter()
                .filter(|n| n.is_bridge() && (self.live_users(&n.id) > 0 || active.contains(&n.id)))
                .map(|n| n.bridge_name(&self.tag))
                .collect()
        };
        let ours = match nl.names_with_prefix(&store::bridge_prefix(&self.tag)).await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!("{e:#}");
                Vec::new()
            }
        };
        let mut any_stale = false;
        for bridge in ours.iter().filter(|b| !busy.contains(b)) {
            any_stale = true;
            if let Err(e) = nl.delete(bridge).await {
                tracing::warn!("removing the stale bridge {bridge}: {e:#}");
            }
        }
        // Other agents' too, when they died with their state dir gone: nobody else would.
        for (_, orphan) in self.claims.orphaned_bridges() {
            self.remove_orphan(&nl, &orphan).await;
        }
        if any_stale || self.bridge_rules().is_empty() {
            if let Err(e) = self.apply_rules() {
                tracing::debug!("firewall cleanup: {e:#}");
            }
        }
    }

    async fn remove_orphan(&self, nl: &Netlink, bridge: &str) {
        tracing::info!("removing bridge {bridge}, left by an agent that is gone");
        if let Err(e) = nl.delete(bridge).await {
            tracing::warn!("removing bridge {bridge}: {e:#}");
        }
    }

    /// `/etc/hosts` lines and `/etc/resolv.conf` for a container on these endpoints.
    pub fn etc_files(
        &self,
        state: Option<&NetState>,
        hostname: &str,
        hc: &bollard::models::HostConfig,
    ) -> (String, String) {
        let extra_hosts = hc.extra_hosts.as_deref().unwrap_or_default();
        let dns_servers = hc.dns.as_deref().unwrap_or_default();
        let dns_search = hc.dns_search.as_deref().unwrap_or_default();
        let dns_options = hc.dns_options.as_deref().unwrap_or_default();
        let host_network = mode_of(hc.network_mode.as_deref().unwrap_or("")) == Mode::Host;
        let mut hosts = String::new();
        let first = state.and_then(|s| s.endpoints.first());
        if let Some(ep) = first {
            hosts.push_str(&format!("{}\t{hostname}\n", ep.ip));
        }
        // In skiff's VM the host is not the bridge's gateway but the VM's (as under Docker
        // Desktop, where host-gateway means the host too).
        let vm_host = std::env::var(skiff_common::vmnet::HOST_GATEWAY_ENV).ok();
        for h in extra_hosts {
            let Some((name, ip)) = h.split_once(':') else {
                continue;
            };
            let ip = if ip == "host-gateway" {
                match (&vm_host, first) {
                    (Some(host), _) => host.clone(),
                    (None, Some(ep)) => ep.gateway.to_string(),
                    (None, None) => continue,
                }
            } else {
                ip.to_string()
            };
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        // After the user's own entries, which win a lookup.
        if let Some(host) = &vm_host {
            hosts.push_str(&format!("{host}\thost.docker.internal\n"));
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let serves_names = first
            .and_then(|ep| self.get(&ep.network_id).ok())
            .is_some_and(|n| n.serves_names() && self.st().dns.contains_key(&n.id));
        let mut resolv = if host_network && dns_servers.is_empty() {
            host_resolv.clone()
        } else if !dns_servers.is_empty() {
            dns_servers
                .iter()
                .map(|s| format!("nameserver {s}\n"))
                .collect()
        } else if serves_names {
            let gw = first.map(|e| e.gateway.to_string()).unwrap_or_default();
            let mut r = format!("nameserver {gw}\n");
            for line in host_resolv.lines() {
                let w = line.split_whitespace().next();
                if matches!(w, Some("search") | Some("options")) {
                    r.push_str(line);
                    r.push('\n');
                }
            }
            r
        } else {
            resolv::container_resolv_conf(&host_resolv)
        };
        if !dns_search.is_empty() {
            resolv.push_str(&format!("search {}\n", dns_search.join(" ")));
        }
        if !dns_options.is_empty() {
            resolv.push_str(&format!("options {}\n", dns_options.join(" ")));
        }
        (hosts, resolv)
    }
}
